//! registry-host's outgoing HTTP, which a mirror uses to reach its upstream:
//! HTTPS trusting the system's roots (here a test CA in `SSL_CERT_FILE`), and
//! the proxies of `HTTPS_PROXY` (a CONNECT tunnel) and `HTTP_PROXY`
//! (absolute-form requests), served here by a small forward proxy that counts
//! what passes through it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::common::{https_client, RegistryServer, TestCa, TlsFiles};

/// A forward proxy on loopback: the request lines it was sent.
struct ForwardProxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

/// Copies both ways between `a` and `b` until either side closes.
fn splice(a: TcpStream, b: TcpStream) {
    let (mut a2, mut b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let (mut a, mut b) = (a, b);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut a2, &mut b2);
        let _ = b2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut b, &mut a);
    let _ = a.shutdown(std::net::Shutdown::Write);
}

fn forward_proxy() -> ForwardProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let end = line == "\r\n";
                    head.push(line);
                    if end {
                        break;
                    }
                }
                let request_line = head[0].trim().to_string();
                record.lock().unwrap().push(request_line.clone());
                let mut parts = request_line.split_whitespace();
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let mut client = client;
                if method == "CONNECT" {
                    let Ok(upstream) = TcpStream::connect(target) else { return };
                    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
                    splice(client, upstream);
                    return;
                }
                // Absolute form: to the origin, as origin form, with what the client
                // already sent behind the head.
                let rest = target.strip_prefix("http://").unwrap_or(target);
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let Ok(mut upstream) = TcpStream::connect(authority) else { return };
                let mut out = format!("{method} {} HTTP/1.1\r\n", if path.is_empty() { "/" } else { path });
                for line in &head[1..] {
                    if !line.to_ascii_lowercase().starts_with("proxy-") {
                        out.push_str(line);
                    }
                }
                upstream.write_all(out.as_bytes()).unwrap();
                let buffered = reader.buffer().to_vec();
                upstream.write_all(&buffered).unwrap();
                splice(client, upstream);
            });
        }
    });
    ForwardProxy { url, seen }
}

impl ForwardProxy {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_mirror_reaches_https_and_http_upstreams_through_the_proxies() {
    let scratch = tempfile::Builder::new().prefix("registry-e2e-outgoing.").tempdir().unwrap();
    let ca = TestCa::new("e2e outgoing CA");
    let tls = TlsFiles::new(&ca.issue());
    let secure = RegistryServer::start_host_with("127.0.0.1:0", &tls.flags(), https_client(&[&ca], true));
    let plain = RegistryServer::start_host_with("127.0.0.1:0", &[], crate::common::http_client());
    let secure_digest = secure.push_image("e2e/outgoing/app", &["v1"]).await;
    let plain_digest = plain.push_image("e2e/outgoing/app", &["v1"]).await;

    let ca_file = scratch.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let settings = scratch.path().join("mirrors.toml");
    std::fs::write(
        &settings,
        format!(
            "[[upstream]]\nprefix = \"secure\"\nurl = \"{}\"\n[[upstream]]\nprefix = \"plain\"\nurl = \"{}\"\n",
            secure.base_url(),
            plain.base_url()
        ),
    )
    .unwrap();
    let proxy = forward_proxy();
    let env = [
        ("SSL_CERT_FILE", ca_file.to_str().unwrap()),
        ("HTTPS_PROXY", proxy.url.as_str()),
        ("HTTP_PROXY", proxy.url.as_str()),
        // The test command keeps loopback off proxies; here it must not.
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    let mirror = RegistryServer::start_host_with_env(
        "127.0.0.1:0",
        &["--proxy", settings.to_str().unwrap()],
        &env,
        crate::common::http_client(),
    );
    for (prefix, digest) in [("secure", &secure_digest), ("plain", &plain_digest)] {
        let resp = mirror
            .client()
            .get(mirror.url(&format!("/v2/{prefix}/e2e/outgoing/app/manifests/v1")))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{prefix}: {:?}", resp.text().await);
        assert_eq!(resp.headers()["docker-content-digest"], digest.as_str());
    }
    let seen = proxy.seen();
    let secure_authority = secure.host_port();
    assert!(
        seen.iter().any(|l| l.starts_with(&format!("CONNECT {secure_authority} "))),
        "no CONNECT tunnel to the https upstream: {seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.starts_with(&format!("HEAD {}/v2/e2e/outgoing/app/manifests/v1 ", plain.base_url()))),
        "no absolute-form request to the http upstream: {seen:?}"
    );
}

//! `registry-host` with TLS (`--tls-cert`, `--tls-key`): HTTPS with HTTP/2 and
//! HTTP/1.1 chosen by ALPN, the certificate reloaded on SIGHUP (a broken one is
//! refused and the old one kept), and the start-up checks of the TLS and
//! access-control flags. Each test makes its own CA and certificates (rcgen), and
//! its clients trust that CA alone.

use std::path::Path;
use std::time::Duration;

use reqwest::{StatusCode, Version};

use super::{expect_startup_failure, expect_startup_failure_with_env, SHUTDOWN_TIMEOUT};
use crate::common::{
    basic_auth, bcrypt_hash, https_client as client, install_crypto_provider, random_bytes, replace,
    require_host_binary, send_signal, AuthFiles, RegistryServer, TestCa, TlsFiles,
};

/// How long a reload may take to be logged after SIGHUP.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(15);

/// A client for plain HTTP.
fn plain_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap()
}

/// Starts registry-host on 127.0.0.1 with the certificate in `files`, talking to it
/// with `client`.
fn start_tls(files: &TlsFiles, client: reqwest::Client) -> RegistryServer {
    let server = RegistryServer::start_host_with("127.0.0.1:0", &files.flags(), client);
    assert!(server.base_url().starts_with("https://"), "listening line of a TLS server: {}", server.base_url());
    server
}

/// `GET /v2/` with `client`: asserts 200, returns the HTTP version and the server's
/// certificate (DER).
async fn get_base(server: &RegistryServer, client: &reqwest::Client) -> (Version, Vec<u8>) {
    let resp = client.get(server.url("/v2/")).send().await.expect("GET /v2/ over TLS");
    assert_eq!(resp.status(), StatusCode::OK);
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>().expect("TLS info of the response");
    let cert = info.peer_certificate().expect("the server's certificate").to_vec();
    (resp.version(), cert)
}

/// Sends SIGHUP and waits for the log line that `wanted` accepts.
fn reload(server: &RegistryServer, wanted: impl Fn(&str) -> bool, what: &str) -> String {
    send_signal(server.pid(), "HUP");
    server.wait_for_line(wanted, RELOAD_TIMEOUT).unwrap_or_else(|| panic!("no log line {what} after SIGHUP"))
}

/// A blob pushed over HTTPS comes back byte for byte, over HTTP/2, which ALPN
/// picked; the server announces `https://`, and stops gracefully on SIGTERM.
#[tokio::test]
async fn push_and_pull_over_https_with_http2() {
    require_host_binary();
    let ca = TestCa::new("e2e push CA");
    let cert = ca.issue();
    let files = TlsFiles::new(&cert);
    let server = start_tls(&files, client(&[&ca], false));
    let data = random_bytes(70 * 1024);
    let digest = server.push_blob("e2e/tls", &data).await;
    let resp = server.get_blob("e2e/tls", &digest).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2, "ALPN should pick HTTP/2");
    assert_eq!(&resp.bytes().await.unwrap()[..], &data[..]);
    let (version, served) = get_base(&server, server.client()).await;
    assert_eq!(version, Version::HTTP_2);
    assert_eq!(served, cert.der, "the certificate of --tls-cert");

    // The client's HTTP/2 connection is still open: SIGTERM closes it and exits.
    // HTTP/2's graceful close waits for the client to answer a PING after its
    // GOAWAY, so the client's connection task must go on running meanwhile: wait
    // off this runtime's thread.
    let mut server = server;
    let (status, _server) =
        tokio::task::spawn_blocking(move || (server.signal_and_wait("TERM", SHUTDOWN_TIMEOUT), server)).await.unwrap();
    let status = status.expect("registry-host stops on SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// A client that offers only HTTP/1.1 gets HTTP/1.1 over TLS; one that does not
/// trust the test CA gets no answer at all; plain HTTP on the TLS port gets none.
#[tokio::test]
async fn http1_over_tls_and_no_plain_http() {
    require_host_binary();
    let ca = TestCa::new("e2e http1 CA");
    let files = TlsFiles::new(&ca.issue());
    let server = start_tls(&files, client(&[&ca], true));
    let (version, _) = get_base(&server, server.client()).await;
    assert_eq!(version, Version::HTTP_11);
    let data = random_bytes(1000);
    let digest = server.push_blob("e2e/tls1", &data).await;
    let resp = server.get_blob("e2e/tls1", &digest).await;
    assert_eq!(resp.version(), Version::HTTP_11);
    assert_eq!(&resp.bytes().await.unwrap()[..], &data[..]);

    let stranger = client(&[&TestCa::new("another CA")], false);
    let err = stranger.get(server.url("/v2/")).send().await.expect_err("a certificate of an unknown CA");
    assert!(err.is_connect(), "{err:?}");
    let plain = server.url("/v2/").replacen("https://", "http://", 1);
    let answer = plain_client().get(&plain).send().await;
    assert!(answer.is_err(), "plain HTTP to the TLS port was answered: {answer:?}");
}

/// After SIGHUP with a new certificate and key in the files, new connections get
/// the new certificate; a connection opened before keeps working with the old one.
#[tokio::test]
async fn sighup_serves_a_new_certificate_to_new_connections() {
    require_host_binary();
    let (old_ca, new_ca) = (TestCa::new("e2e old CA"), TestCa::new("e2e new CA"));
    let (old, new) = (old_ca.issue(), new_ca.issue());
    let files = TlsFiles::new(&old);
    let server = start_tls(&files, client(&[&old_ca, &new_ca], false));
    // One HTTP/2 connection, kept open by the client's pool.
    let (_, served) = get_base(&server, server.client()).await;
    assert_eq!(served, old.der);

    files.write(&new);
    let line = reload(&server, |l| l.contains("reload: TLS certificate"), "about the TLS certificate");
    assert!(line.contains("changed") && line.contains(files.cert.to_str().unwrap()), "{line}");
    let (_, served) = get_base(&server, &client(&[&old_ca, &new_ca], false)).await;
    assert_eq!(served, new.der, "a new connection after the reload");
    let (_, served) = get_base(&server, &client(&[&new_ca], false)).await;
    assert_eq!(served, new.der, "a client that trusts only the new CA");
    let (_, served) = get_base(&server, server.client()).await;
    assert_eq!(served, old.der, "the connection opened before the reload");
}

/// SIGHUP with a broken certificate file keeps the old certificate, says which file
/// is wrong, and the server keeps answering; a later SIGHUP with good files takes them.
#[tokio::test]
async fn sighup_with_a_broken_certificate_keeps_the_old_one() {
    require_host_binary();
    let ca = TestCa::new("e2e broken CA");
    let (old, new) = (ca.issue(), ca.issue());
    let files = TlsFiles::new(&old);
    let server = start_tls(&files, client(&[&ca], false));

    replace(&files.cert, b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n");
    let line = reload(&server, |l| l.contains("keeping the previous TLS certificate"), "keeping the old certificate");
    assert!(line.contains("ERROR") && line.contains(files.cert.to_str().unwrap()), "{line}");
    let (_, served) = get_base(&server, &client(&[&ca], false)).await;
    assert_eq!(served, old.der, "a new connection after a refused reload");
    let data = random_bytes(2000);
    let digest = server.push_blob("e2e/tls-broken", &data).await;
    assert_eq!(server.get_blob("e2e/tls-broken", &digest).await.status(), StatusCode::OK);

    // A key that is not the certificate's.
    replace(&files.cert, new.cert_pem.as_bytes());
    let line = reload(&server, |l| l.contains("keeping the previous TLS certificate"), "refusing a mismatched key");
    assert!(line.contains(files.key.to_str().unwrap()), "{line}");
    let (_, served) = get_base(&server, &client(&[&ca], false)).await;
    assert_eq!(served, old.der, "a new connection after a refused reload");

    files.write(&new);
    reload(&server, |l| l.contains("reload: TLS certificate") && l.contains("changed"), "taking the new certificate");
    let (_, served) = get_base(&server, &client(&[&ca], false)).await;
    assert_eq!(served, new.der);
}

/// `--tls-cert` without `--tls-key` (and the reverse, and by environment) stops
/// the start with a message naming both.
#[tokio::test]
async fn one_tls_flag_alone_is_a_startup_error() {
    require_host_binary();
    let ca = TestCa::new("e2e flags CA");
    let files = TlsFiles::new(&ca.issue());
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    let (cert, key) = (files.cert.to_str().unwrap(), files.key.to_str().unwrap());
    for (flag, given, env) in [("--tls-cert", cert, "REGISTRY_TLS_CERT"), ("--tls-key", key, "REGISTRY_TLS_KEY")] {
        let stderr = expect_startup_failure(&["--listen", "127.0.0.1:0", "--data-dir", data, flag, given]);
        assert!(stderr.contains("--tls-cert") && stderr.contains("--tls-key"), "{flag} alone:\n{stderr}");
        let stderr = expect_startup_failure_with_env(&["--listen", "127.0.0.1:0", "--data-dir", data], &[(env, given)]);
        assert!(stderr.contains("--tls-cert") && stderr.contains("--tls-key"), "{env} alone:\n{stderr}");
    }
}

/// A certificate file that holds no certificate stops the start, naming the file.
#[tokio::test]
async fn a_certificate_that_is_not_pem_is_a_startup_error() {
    require_host_binary();
    let ca = TestCa::new("e2e not-PEM CA");
    let files = TlsFiles::new(&ca.issue());
    replace(&files.cert, b"this is not PEM\n");
    let data = tempfile::tempdir().unwrap();
    let mut args = vec!["--listen", "127.0.0.1:0", "--data-dir", data.path().to_str().unwrap()];
    args.extend(files.flags());
    let stderr = expect_startup_failure(&args);
    assert!(stderr.contains(files.cert.to_str().unwrap()), "the error does not name the file:\n{stderr}");
}

/// Starts registry-host with an htpasswd file of `contents`, expecting it to fail;
/// the file's path and the host's stderr.
fn htpasswd_startup_failure(contents: &[u8]) -> (String, String) {
    require_host_binary();
    let scratch = tempfile::tempdir().unwrap();
    let htpasswd = scratch.path().join("htpasswd");
    std::fs::write(&htpasswd, contents).unwrap();
    let data = scratch.path().join("data");
    let htpasswd = htpasswd.to_str().unwrap().to_string();
    let stderr = expect_startup_failure(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--htpasswd",
        &htpasswd,
    ]);
    (htpasswd, stderr)
}

/// An htpasswd file that is not UTF-8 text stops the start, naming the file.
#[tokio::test]
async fn an_htpasswd_file_that_is_not_utf8_is_a_startup_error() {
    let (htpasswd, stderr) = htpasswd_startup_failure(b"alice:\xff\xfe\n");
    assert!(
        stderr.contains(&htpasswd) && stderr.contains("UTF-8"),
        "the error does not name the file and the reason:\n{stderr}"
    );
}

/// An htpasswd line that is not bcrypt (here MD5, what `htpasswd -m` writes) stops
/// the start, naming the file and the line.
#[tokio::test]
async fn a_non_bcrypt_htpasswd_line_is_a_startup_error() {
    let alice = bcrypt_hash("alice-pw", 4);
    let (htpasswd, stderr) =
        htpasswd_startup_failure(format!("alice:{alice}\nbob:$apr1$wX2pQ7cJ$kYjZ7j0hHqH3xQe8l2iQm/\n").as_bytes());
    assert!(
        stderr.contains(&htpasswd) && stderr.contains("line 2") && stderr.contains("bcrypt"),
        "the error does not name the file, the line and the reason:\n{stderr}"
    );
}

/// The start-up log says whether access control is on; with it on, plain HTTP on
/// an address that is not loopback draws a warning, and with TLS or on loopback
/// none.
#[tokio::test]
async fn access_control_start_up_lines() {
    require_host_binary();
    let scratch = tempfile::tempdir().unwrap();
    let htpasswd = scratch.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("alice:{}\n", bcrypt_hash("alice-password", 4))).unwrap();
    let htpasswd = htpasswd.to_str().unwrap();
    let warned = |server: &RegistryServer| server.startup_lines().iter().any(|l| l.contains("WITHOUT TLS"));

    let open = RegistryServer::start_host_with("127.0.0.1:0", &[], plain_client());
    assert!(open.startup_lines().iter().any(|l| l.contains("access control off: anyone who can reach")));
    drop(open);

    let exposed = RegistryServer::start_host_with("0.0.0.0:0", &["--htpasswd", htpasswd], plain_client());
    let on = exposed.startup_lines().iter().find(|l| l.contains("access control on")).expect("access control on");
    assert!(on.contains(htpasswd), "{on}");
    assert!(warned(&exposed), "no warning about plain HTTP on 0.0.0.0");
    drop(exposed);

    let local = RegistryServer::start_host_with("127.0.0.1:0", &["--htpasswd", htpasswd], plain_client());
    assert!(!warned(&local), "a warning about plain HTTP on loopback");
    drop(local);

    let ca = TestCa::new("e2e access CA");
    let files = TlsFiles::new(&ca.issue());
    let mut flags = files.flags();
    flags.extend(["--htpasswd", htpasswd]);
    let tls = RegistryServer::start_host_with("0.0.0.0:0", &flags, client(&[&ca], false));
    assert!(!warned(&tls), "a warning about plain HTTP with TLS on");
}

/// SIGHUP rereads the access-control files: it logs which changed, and the users of
/// the new htpasswd file sign in while the removed ones no longer do; a file that is
/// no longer UTF-8 is refused with an error naming it, and the users in force stay.
#[tokio::test]
async fn sighup_rereads_the_access_control_files() {
    require_host_binary();
    let auth = AuthFiles::new(&[("alice", "alice-password", 4)], Some("admins = [\"alice\", \"bob\"]\n"));
    let (htpasswd, policy) = (auth.path("htpasswd"), auth.path("policy.toml"));
    let flags = auth.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = RegistryServer::start_host_with("127.0.0.1:0", &flags, plain_client());
    let signs_in = |user: &'static str, password: &'static str| {
        let request = server.client().get(server.url("/v2/")).header("authorization", basic_auth(user, password));
        async move { request.send().await.unwrap().status() == StatusCode::OK }
    };
    assert!(signs_in("alice", "alice-password").await);
    assert!(!signs_in("bob", "bob-password").await);

    // bob instead of alice; the policy stays.
    replace(&htpasswd, format!("bob:{}\n", bcrypt_hash("bob-password", 4)).as_bytes());
    send_signal(server.pid(), "HUP");
    let about = |path: &Path| {
        let path = path.to_str().unwrap().to_string();
        move |l: &str| l.contains("reload: access control:") && l.contains(&path)
    };
    let line = server.wait_for_line(about(&htpasswd), RELOAD_TIMEOUT).expect("a line about the htpasswd file");
    assert!(line.ends_with(" changed"), "{line}");
    let line = server.wait_for_line(about(&policy), RELOAD_TIMEOUT).expect("a line about the policy file");
    assert!(line.ends_with(" unchanged"), "{line}");
    assert!(signs_in("bob", "bob-password").await, "a user added by the reload");
    assert!(!signs_in("alice", "alice-password").await, "a user removed by the reload");

    replace(&htpasswd, b"alice:\xff\n");
    let line =
        reload(&server, |l| l.contains("keeping the previous access-control files"), "refusing the htpasswd file");
    assert!(line.contains("ERROR") && line.contains(htpasswd.to_str().unwrap()) && line.contains("UTF-8"), "{line}");
    assert!(signs_in("bob", "bob-password").await, "the users in force after a refused reload");
    assert!(!signs_in("alice", "alice-password").await);
}

//! The component's outgoing HTTP (`wasi:http/outgoing-handler`, which pull-
//! through mirrors use to reach their upstreams): HTTP/1.1 over TCP, HTTPS
//! through rustls trusting the system's roots (`SSL_CERT_FILE` and
//! `SSL_CERT_DIR` included) and the webpki roots, and through a proxy when
//! the usual variables name one: `HTTPS_PROXY` (a `CONNECT` tunnel) for
//! https targets, `HTTP_PROXY` (absolute-form requests) for http targets,
//! both spelt in lower case too, an `http://[user:password@]host[:port]`
//! proxy, `NO_PROXY` naming hosts (and their subdomains, or `*`) that are
//! reached directly.

use base64::Engine as _;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// When the guest sets no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// The largest proxy answer to a `CONNECT` read.
const CONNECT_HEAD_LIMIT: usize = 16 << 10;

/// A proxy: where it listens, and its credentials as a header value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Proxy {
    authority: String,
    authorization: Option<String>,
}

/// The outgoing settings of this process.
pub struct Outgoing {
    http: Option<Proxy>,
    https: Option<Proxy>,
    no_proxy: Vec<String>,
    tls: tokio_rustls::TlsConnector,
}

static OUTGOING: LazyLock<Result<Arc<Outgoing>, String>> = LazyLock::new(|| Outgoing::from_env().map(Arc::new));

/// The settings, read from the environment once; why they are unusable.
pub fn outgoing() -> Result<Arc<Outgoing>, String> {
    OUTGOING.clone()
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

impl Outgoing {
    fn from_env() -> Result<Outgoing, String> {
        let var = |name: &str| {
            std::env::var(name).or_else(|_| std::env::var(name.to_ascii_lowercase())).ok().filter(|v| !v.is_empty())
        };
        let proxy =
            |name: &str| var(name).map(|v| parse_proxy(&v).map_err(|e| format!("{name}={v:?}: {e}"))).transpose();
        let no_proxy = var("NO_PROXY")
            .map(|v| {
                v.split(',')
                    .map(|h| h.trim().trim_start_matches('.').to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        // Unreadable system certificates leave the webpki roots.
        let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        Ok(Outgoing {
            http: proxy("HTTP_PROXY")?,
            https: proxy("HTTPS_PROXY")?,
            no_proxy,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// For the start-up log: the proxies in use, never their credentials.
    pub fn describe(&self) -> String {
        let one = |p: &Option<Proxy>| p.as_ref().map_or("none".to_string(), |p| p.authority.clone());
        format!("outgoing HTTP proxy {}, HTTPS proxy {}", one(&self.http), one(&self.https))
    }

    /// The proxy for `host` over http or https, unless NO_PROXY names it.
    fn proxy_for(&self, https: bool, host: &str) -> Option<&Proxy> {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let direct = self.no_proxy.iter().any(|n| n == "*" || host == *n || host.ends_with(&format!(".{n}")));
        if direct {
            return None;
        }
        if https {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        }
    }

    /// Sends `req`; its response, and the connection's remaining work.
    pub async fn send(
        &self,
        mut req: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(http::Response<WasiBody>, impl Future<Output = Result<(), Error>> + Send + 'static), Error> {
        let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(DEFAULT_TIMEOUT);
        let first_byte_timeout = options.and_then(|o| o.first_byte_timeout).unwrap_or(DEFAULT_TIMEOUT);
        let between_bytes = options.and_then(|o| o.between_bytes_timeout).unwrap_or(DEFAULT_TIMEOUT);
        let uri = req.uri().clone();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.to_string();
        let target = format!("{host}:{}", uri.port_u16().unwrap_or(if https { 443 } else { 80 }));
        let proxy = self.proxy_for(https, &host).cloned();
        let connect_to = proxy.as_ref().map_or(target.clone(), |p| p.authority.clone());
        let tcp = match tokio::time::timeout(connect_timeout, TcpStream::connect(&connect_to)).await {
            Ok(stream) => stream.map_err(Error::Connect)?,
            Err(_) => return Err(Error::ConnectionTimeout),
        };
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match (&proxy, https) {
            (Some(proxy), true) => {
                let tunnel = tokio::time::timeout(connect_timeout, tunnel(tcp, &target, proxy))
                    .await
                    .map_err(|_| Error::ConnectionTimeout)??;
                Box::new(self.tls_over(tunnel, &host).await?)
            }
            (None, true) => Box::new(self.tls_over(tcp, &host).await?),
            (_, false) => Box::new(tcp),
        };
        let (mut sender, conn) =
            tokio::time::timeout(connect_timeout, hyper::client::conn::http1::handshake(TokioIo::new(stream)))
                .await
                .map_err(|_| Error::ConnectionTimeout)??;
        match (&proxy, https) {
            // To an http proxy: the absolute URI, and the proxy's credentials.
            (Some(proxy), false) => {
                if let Some(value) = proxy.authorization.as_deref().and_then(|v| http::HeaderValue::from_str(v).ok()) {
                    req.headers_mut().insert(http::header::PROXY_AUTHORIZATION, value);
                }
            }
            _ => {
                let path = uri.path_and_query().map_or("/", |p| p.as_str());
                *req.uri_mut() =
                    http::Uri::builder().path_and_query(path).build().map_err(|_| Error::HttpRequestUriInvalid)?;
            }
        }
        // The connection runs beside the request; its end is the future
        // wasmtime waits for once the response body is done.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = done_tx.send(conn.await);
        });
        let response = tokio::time::timeout(first_byte_timeout, sender.send_request(req))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??;
        let response = response.map(|body| Patient::new(body, between_bytes).boxed_unsync());
        Ok((response, async move {
            match done_rx.await {
                Ok(Ok(())) | Err(_) => Ok(()),
                Ok(Err(e)) => Err(Error::from(e)),
            }
        }))
    }

    async fn tls_over<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        host: &str,
    ) -> Result<tokio_rustls::client::TlsStream<S>, Error> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(Error::InvalidDnsNameError)?;
        self.tls.connect(name, stream).await.map_err(Error::Tls)
    }
}

/// A response body that fails when no bytes come for `patience`.
struct Patient {
    body: hyper::body::Incoming,
    patience: Duration,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Patient {
    fn new(body: hyper::body::Incoming, patience: Duration) -> Self {
        Patient { body, patience, deadline: Box::pin(tokio::time::sleep(patience)) }
    }
}

impl hyper::body::Body for Patient {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Error>>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + self.patience;
                self.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Error::from)))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Asks `proxy` (connected as `tcp`) for a tunnel to `target`.
async fn tunnel(tcp: TcpStream, target: &str, proxy: &Proxy) -> Result<TcpStream, Error> {
    let mut stream = BufReader::new(tcp);
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(authorization) = &proxy.authorization {
        request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
    }
    request.push_str("\r\n");
    stream.get_mut().write_all(request.as_bytes()).await.map_err(Error::Connect)?;
    let mut status_line = String::new();
    let mut read = stream.read_line(&mut status_line).await.map_err(Error::Connect)?;
    let ok = status_line.split_whitespace().nth(1) == Some("200");
    // The rest of the proxy's head, up to its blank line.
    loop {
        let mut line = String::new();
        let n = stream.read_line(&mut line).await.map_err(Error::Connect)?;
        read += n;
        if n == 0 || line == "\r\n" || line == "\n" || read > CONNECT_HEAD_LIMIT {
            break;
        }
    }
    if !ok {
        let why = format!("the proxy {} refused a tunnel to {target}: {}", proxy.authority, status_line.trim());
        return Err(Error::Connect(std::io::Error::other(why)));
    }
    // A proxy says nothing more before the tunnel's first bytes.
    Ok(stream.into_inner())
}

/// `http://[user:password@]host[:port][/]` as a [`Proxy`].
fn parse_proxy(value: &str) -> Result<Proxy, String> {
    let rest = match value.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => return Err(format!("a {scheme}:// proxy is not supported (http:// only)")),
        None => value,
    };
    let rest = rest.trim_end_matches('/');
    let (credentials, host) = match rest.rsplit_once('@') {
        Some((credentials, host)) => (Some(credentials), host),
        None => (None, rest),
    };
    if host.is_empty() || host.contains('/') {
        return Err("expected http://[user:password@]host[:port]".into());
    }
    let authority =
        if host.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) && !host.ends_with(']') {
            host.to_string()
        } else {
            format!("{host}:80")
        };
    let authorization = credentials.map(|c| {
        let decoded = percent_decode(c);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(decoded))
    });
    Ok(Proxy { authority, authorization })
}

/// `%XX` escapes of a URL's user part, decoded.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_parse_with_credentials_and_default_ports() {
        assert_eq!(
            parse_proxy("http://u%40x:p@proxy.example:3128/").unwrap(),
            Proxy {
                authority: "proxy.example:3128".into(),
                authorization: Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("u@x:p"))),
            }
        );
        assert_eq!(parse_proxy("proxy.example").unwrap().authority, "proxy.example:80");
        assert!(parse_proxy("socks5://proxy:1080").unwrap_err().contains("not supported"));
    }

    #[test]
    fn no_proxy_names_hosts_and_their_subdomains() {
        let proxy = Some(Proxy { authority: "p:1".into(), authorization: None });
        let outgoing = Outgoing {
            http: proxy.clone(),
            https: proxy,
            no_proxy: vec!["example.com".into(), "127.0.0.1".into()],
            tls: tokio_rustls::TlsConnector::from(Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )),
        };
        assert!(outgoing.proxy_for(true, "registry.example.com").is_none());
        assert!(outgoing.proxy_for(false, "127.0.0.1").is_none());
        assert!(outgoing.proxy_for(true, "ghcr.io").is_some());
        assert!(outgoing.proxy_for(false, "notexample.com").is_some());
    }
}

//! A minimal HTTP/1.1 client: one keep-alive connection per `Client`,
//! reconnecting when the server has closed it.

use anyhow::{bail, Context as _};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, AUTHORIZATION, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpStream;

pub type ReqBody = BoxBody<Bytes, Infallible>;

pub fn empty() -> ReqBody {
    Empty::new().boxed()
}

pub fn full(bytes: Bytes) -> ReqBody {
    Full::new(bytes).boxed()
}

/// Where the registry is: `http://host:port` (no TLS).
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// `host:port`, sent as the Host header.
    pub authority: String,
    /// `http://host:port`, without a trailing slash.
    pub base: String,
}

impl Target {
    pub async fn parse(url: &str) -> anyhow::Result<Target> {
        let rest = url.strip_prefix("http://").with_context(|| format!("{url}: only http:// URLs are supported"))?;
        let authority = rest.split('/').next().unwrap_or_default().to_string();
        let addr = tokio::net::lookup_host(&authority)
            .await
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} has no address"))?;
        Ok(Target { addr, base: format!("http://{authority}"), authority })
    }
}

/// One keep-alive connection to the registry.
pub struct Client {
    target: Target,
    sender: Option<SendRequest<ReqBody>>,
    /// An `Authorization` header for every request that names none itself.
    authorization: Option<String>,
}

/// The `Authorization` header value of Basic credentials.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// A response whose (small) body has been read.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Fails unless the status is `want`.
    pub fn expect(self, want: u16, what: &str) -> anyhow::Result<Answer> {
        if self.status.as_u16() != want {
            bail!(
                "{what}: expected {want}, got {} {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            );
        }
        Ok(self)
    }

    /// The `Location` header as a path with query (an absolute URL loses its
    /// scheme and authority).
    pub fn location(&self) -> anyhow::Result<String> {
        let loc = self.header("location").context("no Location header")?;
        Ok(path_of(loc))
    }
}

/// `http://h:p/x?y` → `/x?y`; a path is returned as it is.
pub fn path_of(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => rest[i..].to_string(),
            None => "/".to_string(),
        },
        None => location.to_string(),
    }
}

/// Adds `name=value` to a URL path that may already have a query.
pub fn with_param(path: &str, name: &str, value: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{name}={value}")
}

impl Client {
    pub fn new(target: &Target) -> Client {
        Client { target: target.clone(), sender: None, authorization: None }
    }

    /// A client that sends `authorization` with every request.
    pub fn with_authorization(target: &Target, authorization: String) -> Client {
        Client { authorization: Some(authorization), ..Client::new(target) }
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let stream = TcpStream::connect(self.target.addr)
            .await
            .with_context(|| format!("connecting to {}", self.target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends a request and returns the response with its body unread.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: ReqBody,
    ) -> anyhow::Result<Response<Incoming>> {
        let mut builder = Request::builder().method(method).uri(path).header(HOST, &self.target.authority);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(authorization) = &self.authorization {
            if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("authorization")) {
                builder = builder.header(AUTHORIZATION, authorization);
            }
        }
        let req = builder.body(body)?;
        let alive = match self.sender.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !alive {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().expect("connected");
        sender.ready().await?;
        let method = req.method().clone();
        sender.send_request(req).await.with_context(|| format!("{method} {path}"))
    }

    /// Sends a request and reads the whole response body.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: ReqBody,
    ) -> anyhow::Result<Answer> {
        let resp = self.send(method, path, headers, body).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.with_context(|| format!("reading the answer to {path}"))?.to_bytes();
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(path_of("http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=1"), "/v2/a/blobs/uploads/x?_state=1");
        assert_eq!(path_of("/v2/a/blobs/uploads/x"), "/v2/a/blobs/uploads/x");
        assert_eq!(with_param("/u?_state=1", "digest", "d"), "/u?_state=1&digest=d");
        assert_eq!(with_param("/u", "digest", "d"), "/u?digest=d");
    }

    #[test]
    fn basic_credentials() {
        // RFC 7617's example.
        assert_eq!(basic("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }
}

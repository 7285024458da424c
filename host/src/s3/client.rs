//! Requests to the object store: signed by `rusty-s3` (SigV4 in the query
//! string, computed here with no I/O), sent over one hyper pool of
//! keep-alive connections (rustls for `https://` endpoints), each bounded in
//! time, so that a store that does not answer turns into `unavailable`
//! instead of a request that hangs.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method as HttpMethod, Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rusty_s3::{Bucket, Credentials, Method, S3Action};
use std::time::Duration;
use storage_layout::{StorageError, StorageResult};

/// How long a signed request stays valid: it is sent at once.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);
/// Longest wait for a response's head (the request's body sent first).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The same for a copy within the store, which answers only when done:
/// a 5 GiB part at 20 MB/s.
pub const COPY_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait for the next piece of a response body.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A response whose status the caller looks at.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Incoming,
}

impl Answer {
    /// The whole body (small answers: XML, kv values, upload states).
    pub async fn bytes(self, what: &str) -> StorageResult<Bytes> {
        match tokio::time::timeout(HEAD_TIMEOUT, self.body.collect()).await {
            Ok(Ok(body)) => Ok(body.to_bytes()),
            Ok(Err(e)) => Err(StorageError::Unavailable(format!("{what}: reading the answer: {e}"))),
            Err(_) => Err(StorageError::Unavailable(format!("{what}: the answer stalled"))),
        }
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `ETag` header.
    pub fn etag(&self) -> StorageResult<String> {
        self.header("etag").map(str::to_string).ok_or_else(|| StorageError::Other("the store sent no ETag".into()))
    }

    /// The object's size (`Content-Length`).
    pub fn content_length(&self) -> StorageResult<u64> {
        self.header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StorageError::Other("the store sent no Content-Length".into()))
    }

    /// The `Last-Modified` time, seconds since the epoch.
    pub fn last_modified(&self) -> StorageResult<u64> {
        self.header("last-modified")
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .ok_or_else(|| StorageError::Other("the store sent no Last-Modified".into()))
    }

    /// An unexpected status as an error, with the store's error code.
    pub async fn fail(self, what: &str) -> StorageError {
        let status = self.status;
        let body = self.bytes(what).await.unwrap_or_default();
        let code = xml_field(&String::from_utf8_lossy(&body), "Code").unwrap_or_default();
        let message = format!("{what}: the store answered {status} {code}");
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::GATEWAY_TIMEOUT {
            StorageError::Unavailable(message)
        } else if code == "EntityTooLarge" || code == "QuotaExceeded" {
            StorageError::Full
        } else {
            StorageError::Other(message)
        }
    }
}

/// The text of the first `<name>` element of `xml`, if any.
pub fn xml_field(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..end].to_string())
}

/// One bucket, the credentials to sign with, and the connection pool.
pub struct S3Client {
    pub bucket: Bucket,
    credentials: Option<Credentials>,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl S3Client {
    pub fn new(bucket: Bucket, credentials: Option<Credentials>) -> S3Client {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let http = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(https);
        S3Client { bucket, credentials, http }
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// A URL that GETs object `key` for whoever holds it, for `valid`.
    pub fn presigned_get(&self, key: &str, valid: Duration) -> String {
        self.bucket.get_object(self.credentials(), key).sign(valid).into()
    }

    /// Sends `action` with `headers` (signed too) and `body`; `what` names
    /// the request in errors (never the signed URL, which carries a
    /// signature).
    pub async fn send<'a, A: S3Action<'a>>(
        &self,
        action: A,
        headers: &[(&'static str, String)],
        body: Bytes,
        what: &str,
    ) -> StorageResult<Answer> {
        self.send_within(HEAD_TIMEOUT, action, headers, body, what).await
    }

    /// `send`, with `timeout` for the response's head.
    pub async fn send_within<'a, A: S3Action<'a>>(
        &self,
        timeout: Duration,
        mut action: A,
        headers: &[(&'static str, String)],
        body: Bytes,
        what: &str,
    ) -> StorageResult<Answer> {
        for (name, value) in headers {
            action.headers_mut().insert(*name, value.clone());
        }
        let url = action.sign(SIGNED_FOR);
        let method = match A::METHOD {
            Method::Head => HttpMethod::HEAD,
            Method::Get => HttpMethod::GET,
            Method::Post => HttpMethod::POST,
            Method::Put => HttpMethod::PUT,
            Method::Delete => HttpMethod::DELETE,
        };
        let mut request = Request::builder().method(method.clone()).uri(url.as_str());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if method == HttpMethod::PUT || method == HttpMethod::POST {
            request = request.header("content-length", body.len());
        }
        let request = request.body(Full::new(body)).map_err(|e| StorageError::Other(format!("{what}: {e}")))?;
        let response: Response<Incoming> = match tokio::time::timeout(timeout, self.http.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(StorageError::Unavailable(format!("{what}: {}", error_chain(&e)))),
            Err(_) => return Err(StorageError::Unavailable(format!("{what}: no answer in {timeout:?}"))),
        };
        let (parts, body) = response.into_parts();
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }
}

/// An error and its causes on one line (hyper's own message alone is
/// "client error (Connect)").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_fields_are_found() {
        let xml = "<Error><Code>PreconditionFailed</Code><Message>no</Message></Error>";
        assert_eq!(xml_field(xml, "Code").as_deref(), Some("PreconditionFailed"));
        assert_eq!(xml_field(xml, "ETag"), None);
    }
}

//! The thin layer between wasi:http resources and the handlers: a request
//! with its headers read once, and a response that is either small bytes or
//! a stream spliced from storage.

use crate::error::RegistryError;
use std::io::{Read, Write};
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// An incoming request, headers already copied out of the host.
pub struct Request {
    /// Upper-case method name.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    inner: IncomingRequest,
}

impl Request {
    /// Copies what the handlers need out of the wasi:http request.
    pub fn from_wasi(inner: IncomingRequest) -> Request {
        let method = match inner.method() {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Patch => "PATCH".to_string(),
            Method::Options => "OPTIONS".to_string(),
            Method::Connect => "CONNECT".to_string(),
            Method::Trace => "TRACE".to_string(),
            Method::Other(other) => other.to_ascii_uppercase(),
        };
        let path_with_query = inner.path_with_query().unwrap_or_else(|| "/".to_string());
        let (path, query) = match path_with_query.split_once('?') {
            Some((path, query)) => (path.to_string(), Some(query.to_string())),
            None => (path_with_query, None),
        };
        let headers = inner.headers().entries();
        Request { method, path, query, headers, inner }
    }

    /// The first value of header `name` (case-insensitive), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    /// The declared body length, if the client sent a valid Content-Length.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    /// Takes the request body as a stream. The `IncomingBody` must outlive
    /// the stream (the stream is its child resource).
    pub fn body(&self) -> Result<RequestBody, RegistryError> {
        let body = self.inner.consume().map_err(|()| RegistryError::internal("request body already taken"))?;
        let stream = body.stream().map_err(|()| RegistryError::internal("request body stream already taken"))?;
        Ok(RequestBody { stream: Some(stream), _body: body })
    }

    /// Reads the whole body into memory, refusing more than `limit` bytes.
    /// `None` when the body is larger than the limit.
    pub fn read_body(&self, limit: usize) -> Result<Option<Vec<u8>>, RegistryError> {
        if self.content_length().is_some_and(|n| n > limit as u64) {
            return Ok(None);
        }
        let mut body = self.body()?;
        let mut bytes = Vec::new();
        let stream = body.stream.as_mut().expect("stream lives until drop");
        stream
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::BlobUploadInvalid(Some(format!("reading the request body: {e}"))))?;
        if bytes.len() > limit {
            return Ok(None);
        }
        Ok(Some(bytes))
    }
}

/// A request body being read.
pub struct RequestBody {
    // Declared first so that it drops before its parent `_body`.
    stream: Option<InputStream>,
    _body: IncomingBody,
}

impl RequestBody {
    fn stream(&self) -> &InputStream {
        self.stream.as_ref().expect("stream lives until drop")
    }

    /// Splices the whole body into `out` without copying it through this
    /// component's memory. Returns the number of bytes moved.
    pub fn splice_into(&self, out: &OutputStream) -> Result<u64, RegistryError> {
        let mut total = 0u64;
        loop {
            match out.blocking_splice(self.stream(), 64 << 20) {
                Ok(n) => total += n,
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(RegistryError::BlobUploadInvalid(Some(format!(
                        "receiving the body failed after {total} bytes: {}",
                        e.to_debug_string()
                    ))))
                }
            }
        }
        out.blocking_flush().map_err(|e| RegistryError::internal(format!("flushing upload: {e:?}")))?;
        Ok(total)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.stream.take();
    }
}

/// What a response carries.
pub enum Body {
    /// No body (Content-Length: 0 unless the status forbids it).
    Empty,
    /// Small bytes held in memory (JSON, manifests).
    Bytes(Vec<u8>),
    /// A stream of exactly `len` bytes from storage.
    Stream {
        /// The stream.
        stream: InputStream,
        /// Its length.
        len: u64,
    },
    /// Content-Length of a body that is not sent (HEAD).
    Length(u64),
}

/// A response in the making.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Body,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Body::Empty }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    /// A JSON body.
    pub fn json(status: u16, json: String) -> Response {
        Response::new(status).header("Content-Type", "application/json").body(Body::Bytes(json.into_bytes()))
    }

    /// The spec's error envelope for `err`.
    pub fn error(err: &RegistryError) -> Response {
        let response = Response::json(err.status(), err.to_json());
        match err.allow() {
            Some(allow) => response.header("Allow", allow),
            None => response,
        }
    }

    /// Sends the response; for HEAD, headers only (with the GET's length).
    pub fn send(self, out: ResponseOutparam, head: bool) {
        let (len, has_body) = match &self.body {
            Body::Empty => (Some(0), false),
            Body::Bytes(b) => (Some(b.len() as u64), !head),
            Body::Stream { len, .. } => (Some(*len), !head),
            Body::Length(len) => (Some(*len), false),
        };
        let mut entries: Vec<(String, Vec<u8>)> =
            self.headers.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
        entries.push(("Docker-Distribution-Api-Version".into(), b"registry/2.0".to_vec()));
        // 204 and 1xx must not carry a Content-Length.
        if let (Some(len), true) = (len, self.status != 204 && self.status >= 200) {
            entries.push(("Content-Length".into(), len.to_string().into_bytes()));
        }
        let fields = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
        let response = OutgoingResponse::new(fields);
        let _ = response.set_status_code(self.status);
        if !has_body {
            // Take the body resource even when nothing follows: jco's
            // preview2-shim crashes Node.js on a response without one. For
            // HEAD, finishing it empty against a non-zero Content-Length
            // reports a size error (wasmtime and jco alike); the headers are
            // out by then and the connection stays usable.
            let Ok(outgoing) = response.body() else { return };
            ResponseOutparam::set(out, Ok(response));
            let _ = OutgoingBody::finish(outgoing, None);
            return;
        }
        let Ok(outgoing) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        let Ok(mut stream) = outgoing.write() else { return };
        let ok = match self.body {
            Body::Bytes(bytes) => write_all(&mut stream, &bytes),
            Body::Stream { stream: input, len } => splice_all(&stream, &input, len),
            Body::Empty | Body::Length(_) => true,
        };
        drop(stream);
        if ok {
            let _ = OutgoingBody::finish(outgoing, None);
        }
    }
}

fn write_all(out: &mut OutputStream, bytes: &[u8]) -> bool {
    Write::write_all(out, bytes).is_ok() && out.blocking_flush().is_ok()
}

fn splice_all(out: &OutputStream, input: &InputStream, len: u64) -> bool {
    // Stop after `len` bytes rather than at the stream's end: jco's file
    // streams never report `closed` (a splice at EOF returns 0, forever).
    let mut left = len;
    while left > 0 {
        match out.blocking_splice(input, left.min(64 << 20)) {
            Ok(n) => left -= n.min(left),
            Err(StreamError::Closed) => return false,
            Err(StreamError::LastOperationFailed(_)) => return false,
        }
    }
    out.blocking_flush().is_ok()
}

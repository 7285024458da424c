//! The thin layer between wasi:http resources and the handlers: a request
//! with its headers read once, and a response that is either small bytes or
//! a stream spliced from storage.

use crate::error::RegistryError;
use std::cell::Cell;
use std::io::{Read, Write};
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// How much of a request body the registry reads and throws away when it
/// answers without using the body (a 413 manifest, an error before an
/// upload's data). The hyper server of `wasmtime serve` and `registry-host`
/// closes the connection when a request body is left unread: a client still
/// sending it then gets a broken pipe or a reset instead of the answer (the
/// e2e test of the 4 MiB manifest limit failed that way, now and then on
/// `registry-host`, nearly always on `wasmtime serve`). Bodies up to this
/// size are read to their end first, so the answer arrives and the
/// connection stays open; beyond it, the connection is closed as before.
const DISCARD_LIMIT: u64 = 16 << 20;

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
    /// Whether `body` was called. Kept here because jco's preview2-shim
    /// (0.26) lets `consume` succeed twice, the second time on a stream that
    /// is gone (Node.js then fails on it).
    body_taken: Cell<bool>,
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
        Request { method, path, query, headers, inner, body_taken: Cell::new(false) }
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
        if self.body_taken.replace(true) {
            return Err(RegistryError::internal("request body already taken"));
        }
        let body = self.inner.consume().map_err(|()| RegistryError::internal("request body already taken"))?;
        let stream = body.stream().map_err(|()| RegistryError::internal("request body stream already taken"))?;
        Ok(RequestBody { stream: Some(stream), _body: body })
    }

    /// Reads the whole body into memory, refusing more than `limit` bytes.
    /// `None` when the body is larger than the limit (what is left of it is
    /// then discarded, see [`DISCARD_LIMIT`]).
    pub fn read_body(&self, limit: usize) -> Result<Option<Vec<u8>>, RegistryError> {
        if self.content_length().is_some_and(|n| n > limit as u64) {
            // The body stays untaken: `discard_body` reads it before the answer.
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
            discard(body.stream());
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Reads and throws away the body if no handler took it and the client
    /// sends one (a `Content-Length` above 0, or `Transfer-Encoding`), up to
    /// [`DISCARD_LIMIT`] bytes. Not when the client waits for
    /// `100 Continue`: it sends no body unless asked.
    pub fn discard_body(&self) {
        let has_body = self.content_length().map_or(self.header("transfer-encoding").is_some(), |n| n > 0);
        let expects_continue = self.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if !has_body || expects_continue {
            return;
        }
        // Taken already (the handler read it, or gave up on it): nothing to do.
        if self.body_taken.get() {
            return;
        }
        if let Ok(body) = self.body() {
            discard(body.stream());
        }
    }
}

/// Reads `stream` to its end, at most [`DISCARD_LIMIT`] bytes, ignoring
/// errors. With `blocking-read`, not `blocking-skip`: jco's preview2-shim
/// (0.26) implements skip as a read whose length argument is a byte array,
/// which does not work.
fn discard(stream: &InputStream) {
    let mut left = DISCARD_LIMIT;
    while left > 0 {
        match stream.blocking_read(left.min(64 << 10)) {
            // Some runtimes answer an empty read at the end instead of `closed`.
            Ok(bytes) if bytes.is_empty() => return,
            Ok(bytes) => left = left.saturating_sub(bytes.len() as u64),
            Err(_) => return,
        }
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
        let mut entries: Vec<(String, Vec<u8>)> = self.headers.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
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

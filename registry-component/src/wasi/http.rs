//! wasi:http at the edge: the incoming request as a plain
//! [`Request`] (its body a lazily consumed [`WasiBody`]), and a plain
//! [`Response`] sent back, small bodies written and blob streams spliced.

use crate::http::{Body, Request, RequestBody, Response};
use std::io::{Read, Write};
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam, Scheme,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Copies what the handlers need out of the wasi:http request.
pub fn request(inner: IncomingRequest) -> Request<WasiBody> {
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
        Method::Other(other) => other,
    };
    let path_with_query = inner.path_with_query().unwrap_or_else(|| "/".to_string());
    let headers = inner.headers().entries();
    let scheme = match inner.scheme() {
        Some(Scheme::Https) => "https",
        _ => "http",
    };
    let authority = inner.authority();
    Request::new(&method, &path_with_query, headers, WasiBody { stream: None, body: None, request: inner })
        .with_origin(scheme, authority)
}

/// A request body, consumed from the request on first use. `Request`
/// hands it out once: jco's preview2-shim (0.26) lets `consume` succeed
/// twice, the second time on a stream that is gone.
pub struct WasiBody {
    // Declared first so that it drops before its parent `body`.
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    request: IncomingRequest,
}

impl WasiBody {
    /// The body's stream. The `IncomingBody` is kept: the stream is its
    /// child resource.
    pub fn stream(&mut self) -> Result<&mut InputStream, String> {
        if self.stream.is_none() {
            let body = self.request.consume().map_err(|()| "request body already taken".to_string())?;
            let stream = body.stream().map_err(|()| "request body stream already taken".to_string())?;
            self.body = Some(body);
            self.stream = Some(stream);
        }
        Ok(self.stream.as_mut().expect("set above"))
    }
}

impl RequestBody for WasiBody {
    fn read_up_to(&mut self, max: u64) -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        self.stream()?.take(max).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        Ok(bytes)
    }

    /// With `blocking-read`, not `blocking-skip`: jco's preview2-shim (0.26)
    /// implements skip as a read whose length argument is a byte array,
    /// which does not work.
    fn discard(&mut self, max: u64) {
        let Ok(stream) = self.stream() else { return };
        let mut left = max;
        while left > 0 {
            match stream.blocking_read(left.min(64 << 10)) {
                // Some runtimes answer an empty read at the end instead of `closed`.
                Ok(bytes) if bytes.is_empty() => return,
                Ok(bytes) => left = left.saturating_sub(bytes.len() as u64),
                Err(_) => return,
            }
        }
    }
}

/// Sends the response; for HEAD, headers only (with the GET's length).
pub fn send(response: Response<InputStream>, out: ResponseOutparam, head: bool) {
    let (len, has_body) = response.framing(head);
    let mut entries: Vec<(String, Vec<u8>)> = response.headers.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    entries.push(("Docker-Distribution-Api-Version".into(), b"registry/2.0".to_vec()));
    if let Some(len) = len {
        entries.push(("Content-Length".into(), len.to_string().into_bytes()));
    }
    let fields = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
    let outgoing_response = OutgoingResponse::new(fields);
    let _ = outgoing_response.set_status_code(response.status);
    let Ok(outgoing) = outgoing_response.body() else { return };
    ResponseOutparam::set(out, Ok(outgoing_response));
    if !has_body {
        // The body resource is taken even when nothing follows: jco's
        // preview2-shim crashes Node.js on a response without one. For
        // HEAD, finishing it empty against a non-zero Content-Length
        // reports a size error (wasmtime and jco alike); the headers are
        // out by then and the connection stays usable.
        let _ = OutgoingBody::finish(outgoing, None);
        return;
    }
    let Ok(mut stream) = outgoing.write() else { return };
    let ok = match response.body {
        Body::Bytes(bytes) => write_all(&mut stream, &bytes),
        Body::Stream { stream: input, len } => splice_all(&stream, &input, len),
        Body::Produced { produce, .. } => {
            let whole = produce(&mut |chunk| Write::write_all(&mut stream, chunk).is_ok());
            whole && stream.blocking_flush().is_ok()
        }
        Body::Empty | Body::Length(_) => true,
    };
    drop(stream);
    if ok {
        let _ = OutgoingBody::finish(outgoing, None);
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

//! What each request leaves in the log. Every request gets an id (the
//! client's `X-Request-Id` if it sent a plain one, else a new one), returned
//! in the response's `X-Request-Id` and carried by every line the request
//! causes: the component's own lines (its stderr, one event per line) and
//! one access line, written once the response has been sent or given up,
//! with the bytes received and sent. `--log-format json` turns every line
//! into one JSON object.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::HeaderMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::AsyncWrite;

/// The request header (and response header) that carries the id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest id taken from a client.
const MAX_CLIENT_ID: usize = 64;

/// The id of a request with `headers`: the client's, if it is 1 to 64
/// characters of `[A-Za-z0-9._-]` (anything else could forge log lines),
/// else a new one.
pub fn id_for(headers: &HeaderMap) -> String {
    let sent = headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).filter(|id| {
        (1..=MAX_CLIENT_ID).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    match sent {
        Some(id) => id.to_string(),
        None => new_id(),
    }
}

/// A new id: this process's random half (drawn once) and a counter, 32 hex
/// digits in all, unique across instances without a random draw per request.
fn new_id() -> String {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    format!("{process:016x}{:016x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A request as its access line describes it.
pub struct Access {
    pub id: String,
    pub client: IpAddr,
    pub method: hyper::Method,
    pub uri: hyper::Uri,
    /// The metrics' route of the path.
    pub route: &'static str,
    /// Known once the response's head is.
    pub status: u16,
    pub started: Instant,
    /// The request body's bytes, counted as they are read.
    pub received: Arc<AtomicU64>,
    /// The signed-in user, as the component names it.
    pub user: Option<String>,
}

impl Access {
    /// A request from `client`, as it arrives.
    pub fn of<B>(req: &hyper::Request<B>, client: IpAddr) -> Access {
        Access {
            id: id_for(req.headers()),
            client,
            method: req.method().clone(),
            uri: req.uri().clone(),
            route: crate::metrics::route_of(req.uri().path()),
            status: 0,
            started: Instant::now(),
            received: Arc::default(),
            user: None,
        }
    }
}

/// A body that counts the bytes that pass: a request's, into the count its
/// access line reads; or a response's, which writes the access line when
/// it is dropped (sent whole, or given up when the client went away).
pub struct CountedBody<B> {
    inner: B,
    passed: Arc<AtomicU64>,
    access: Option<Access>,
}

impl<B> CountedBody<B> {
    /// A request body, counted into `received`.
    pub fn request(inner: B, received: Arc<AtomicU64>) -> Self {
        Self { inner, passed: received, access: None }
    }

    /// A response body, whose access line is written when it is dropped.
    pub fn response(inner: B, access: Access) -> Self {
        Self { inner, passed: Arc::default(), access: Some(access) }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for CountedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.passed.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for CountedBody<B> {
    fn drop(&mut self) {
        let Some(a) = &self.access else { return };
        let path = a.uri.path();
        let received = a.received.load(Ordering::Relaxed);
        let sent = self.passed.load(Ordering::Relaxed);
        crate::metrics::transferred(received, sent);
        tracing::info!(
            target: "access",
            request_id = %a.id,
            client = %a.client,
            user = a.user.as_deref().unwrap_or(""),
            method = %a.method,
            route = a.route,
            repository = crate::metrics::repository_of(path).unwrap_or(""),
            status = a.status,
            bytes_in = received,
            bytes_out = sent,
            duration_ms = (a.started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
            "{} {} {}",
            a.method,
            a.uri,
            a.status
        );
    }
}

/// The component's stderr: each line it writes becomes one log event that
/// carries the id of the request it served.
pub struct GuestStderr {
    id: StderrId,
}

/// The request id of an instance's stderr lines: a kept instance serves
/// several requests, each with its id.
#[derive(Clone)]
pub struct StderrId(Arc<Mutex<Arc<str>>>);

impl StderrId {
    pub fn set(&self, id: &str) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = id.into();
    }

    fn get(&self) -> Arc<str> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl GuestStderr {
    /// The stderr for a request `id`, and the cell that names later ones.
    pub fn new(id: &str) -> (Self, StderrId) {
        let cell = StderrId(Arc::new(Mutex::new(id.into())));
        (Self { id: cell.clone() }, cell)
    }
}

impl wasmtime_wasi::cli::IsTerminal for GuestStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for GuestStderr {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter { id: self.id.clone(), pending: Vec::new() })
    }
}

/// Splits what the component writes into lines.
struct LineWriter {
    id: StderrId,
    pending: Vec<u8>,
}

/// Longest line kept whole; a longer one is cut into pieces of this size.
const MAX_LINE: usize = 16 << 10;

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end();
        if !line.is_empty() {
            tracing::info!(target: "component", request_id = %self.id.get(), "{line}");
        }
    }

    fn emit_complete_lines(&mut self) {
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line);
        }
        if self.pending.len() >= MAX_LINE {
            let piece = std::mem::take(&mut self.pending);
            self.emit(&piece);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.pending.extend_from_slice(buf);
        self.emit_complete_lines();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let rest = std::mem::take(&mut self.pending);
        self.emit(&rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_client_id_is_kept_and_anything_else_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, "abc-123.x_y".parse().unwrap());
        assert_eq!(id_for(&headers), "abc-123.x_y");
        for bad in ["a b", "a\"b", &"x".repeat(65), ""] {
            headers.insert(REQUEST_ID_HEADER, bad.parse().unwrap());
            let id = id_for(&headers);
            assert_eq!(id.len(), 32, "{bad:?} gave {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(id_for(&HeaderMap::new()), id_for(&HeaderMap::new()));
    }
}

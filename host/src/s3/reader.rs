//! The `input-stream` of a blob read: the store's response body as it
//! arrives, never gathered in memory, with a bound on how long the store
//! may go quiet in the middle of it.

use super::client::BODY_IDLE_TIMEOUT;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio_util::io::StreamReader;
use wasmtime_wasi::p2::pipe::{AsyncReadStream, MemoryInputPipe};
use wasmtime_wasi::p2::DynInputStream;

/// A stream of `body`'s data; a stall longer than [`BODY_IDLE_TIMEOUT`] ends
/// it with an error.
pub fn stream(body: Incoming) -> DynInputStream {
    let chunks = futures_util::stream::unfold(body, |mut body| async move {
        loop {
            return match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Some((Ok::<Bytes, std::io::Error>(data), body)),
                    // Trailers: nothing to read.
                    Err(_) => continue,
                },
                Ok(Some(Err(e))) => Some((Err(std::io::Error::other(format!("reading from the store: {e}"))), body)),
                Ok(None) => None,
                Err(_) => {
                    Some((Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the store stopped sending")), body))
                }
            };
        }
    });
    Box::new(AsyncReadStream::new(StreamReader::new(Box::pin(chunks))))
}

/// A stream with no bytes.
pub fn empty() -> DynInputStream {
    Box::new(MemoryInputPipe::new(Bytes::new()))
}

//! [`WasiStorage`]: the storage seam on the component's imports (`wit/`
//! through `bindings`) and `wasi:random`. Request bodies are spliced into
//! the store's append stream and blob streams go to the response as they
//! are, so blob bytes never pass through the component's memory.

use super::bindings::{blobs, kv, types};
use super::http::WasiBody;
use crate::storage::{AppendError, BlobInfo, Entry, Error, Storage, Upload, UploadInfo};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// The host's storage, reached through the component's imports.
#[derive(Clone, Copy)]
pub struct WasiStorage;

impl From<types::Error> for Error {
    fn from(e: types::Error) -> Self {
        match e {
            types::Error::NotFound => Error::NotFound,
            types::Error::DigestMismatch(actual) => Error::DigestMismatch(actual),
            types::Error::Conflict => Error::Conflict,
            types::Error::Invalid(m) => Error::Invalid(m),
            types::Error::Full => Error::Full,
            types::Error::Unavailable(m) => Error::Unavailable(m),
            types::Error::Other(m) => Error::Other(m),
        }
    }
}

impl Storage for WasiStorage {
    type Body = WasiBody;
    type Reader = InputStream;
    type Upload = blobs::Upload;

    fn kv_get(&self, key: &str) -> Result<Option<Entry>, Error> {
        Ok(kv::get(key)?.map(|e| Entry { value: e.value, version: e.version }))
    }

    fn kv_set(&self, key: &str, value: &[u8]) -> Result<u64, Error> {
        Ok(kv::set(key, value)?)
    }

    fn kv_set_if(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, Error> {
        Ok(kv::set_if(key, value, expected)?)
    }

    fn kv_delete(&self, key: &str) -> Result<bool, Error> {
        Ok(kv::delete(key)?)
    }

    fn kv_list_keys(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<String>, Error> {
        Ok(kv::list_keys(prefix, after, limit)?)
    }

    fn blob_stat(&self, digest: &str) -> Result<Option<u64>, Error> {
        Ok(blobs::stat(digest)?)
    }

    fn blob_read(&self, digest: &str, offset: u64, length: Option<u64>) -> Result<Option<InputStream>, Error> {
        Ok(blobs::read(digest, offset, length)?)
    }

    fn blob_redirect(&self, digest: &str) -> Result<Option<String>, Error> {
        Ok(blobs::redirect(digest)?)
    }

    fn blob_delete(&self, digest: &str) -> Result<bool, Error> {
        Ok(blobs::delete(digest)?)
    }

    fn blob_bytes(&self, digest: &str, max: u64) -> Result<Option<Vec<u8>>, Error> {
        let Some(stream) = blobs::read(digest, 0, Some(max))? else { return Ok(None) };
        let mut bytes = Vec::new();
        loop {
            match stream.blocking_read(64 << 10) {
                Ok(chunk) if chunk.is_empty() => break,
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => return Err(Error::Other(e.to_debug_string())),
            }
        }
        Ok(Some(bytes))
    }

    fn blob_list(&self, after: Option<&str>, limit: u32) -> Result<Vec<BlobInfo>, Error> {
        let page = blobs::list(after, limit)?;
        Ok(page.into_iter().map(|b| BlobInfo { digest: b.digest, size: b.size, touched: b.touched }).collect())
    }

    fn blob_touch(&self, digest: &str) -> Result<bool, Error> {
        Ok(blobs::touch(digest)?)
    }

    fn blob_delete_if_older(&self, digest: &str, before: u64) -> Result<bool, Error> {
        Ok(blobs::delete_if_older(digest, before)?)
    }

    fn list_uploads(&self, after: Option<&str>, limit: u32) -> Result<Vec<UploadInfo>, Error> {
        let page = blobs::list_uploads(after, limit)?;
        Ok(page.into_iter().map(|u| UploadInfo { id: u.id, size: u.size, modified: u.modified }).collect())
    }

    fn start_upload(&self) -> Result<blobs::Upload, Error> {
        Ok(blobs::Upload::start()?)
    }

    fn resume_upload(&self, id: &str) -> Result<blobs::Upload, Error> {
        Ok(blobs::Upload::resume(id)?)
    }

    fn random_bytes(&self, len: usize) -> Vec<u8> {
        wasip2::random::random::get_random_bytes(len as u64)
    }

    fn pause(&self, duration: std::time::Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        wasip2::clocks::monotonic_clock::subscribe_duration(nanos).block();
    }

    fn now(&self) -> std::time::SystemTime {
        let now = wasip2::clocks::wall_clock::now();
        std::time::UNIX_EPOCH + std::time::Duration::new(now.seconds, now.nanoseconds)
    }
}

impl Upload for blobs::Upload {
    type Body = WasiBody;

    fn id(&self) -> String {
        blobs::Upload::id(self)
    }

    fn size(&self) -> Result<u64, Error> {
        Ok(blobs::Upload::size(self)?)
    }

    /// Splices the body into the store's append stream, so its bytes never
    /// pass through this component's memory. A splice fails for either
    /// end; the store says whether it was its own (`append-failure`).
    fn append(&self, body: &mut WasiBody) -> Result<u64, AppendError> {
        let out = blobs::Upload::append(self).map_err(Error::from)?;
        let input = body.stream().map_err(|reason| AppendError::Body { received: 0, reason })?;
        let mut received = 0u64;
        loop {
            match out.blocking_splice(input, 64 << 20) {
                Ok(n) => received += n,
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    drop(out);
                    return Err(match self.append_failure(&e) {
                        Some(store) => AppendError::Storage(store.into()),
                        None => AppendError::Body { received, reason: e.to_debug_string() },
                    });
                }
            }
        }
        if let Err(e) = out.blocking_flush() {
            drop(out);
            return Err(match e {
                StreamError::LastOperationFailed(e) => {
                    self.append_failure(&e).map_or_else(|| Error::Other(e.to_debug_string()), Error::from)
                }
                StreamError::Closed => Error::Other("the upload's stream closed before its flush".into()),
            }
            .into());
        }
        Ok(received)
    }

    fn write(&self, bytes: &[u8]) -> Result<(), Error> {
        let out = blobs::Upload::append(self)?;
        let written = write_all(&out, bytes);
        drop(out);
        match written {
            Ok(()) => Ok(()),
            Err(StreamError::LastOperationFailed(e)) => {
                Err(self.append_failure(&e).map_or_else(|| Error::Other(e.to_debug_string()), Error::from))
            }
            Err(StreamError::Closed) => Err(Error::Other("the upload's stream closed while writing".into())),
        }
    }

    fn commit(&self, expected_digest: &str) -> Result<u64, Error> {
        Ok(blobs::Upload::commit(self, expected_digest)?)
    }

    fn abort(&self) -> Result<(), Error> {
        Ok(blobs::Upload::abort(self)?)
    }
}

/// Writes all of `bytes` and flushes, keeping the stream's own error (the
/// store's `append-failure` needs it; `std::io::Write` would lose it).
fn write_all(out: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let ready = out.check_write()?;
        if ready == 0 {
            out.subscribe().block();
            continue;
        }
        let n = bytes.len().min(usize::try_from(ready).unwrap_or(usize::MAX));
        out.write(&bytes[..n])?;
        bytes = &bytes[n..];
    }
    out.blocking_flush()
}

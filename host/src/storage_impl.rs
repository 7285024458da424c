//! Implements the generated storage `Host` traits by calling the request's
//! backend: the filesystem stores or the S3 store. Storage failures become
//! WIT errors the guest can handle; only host bugs (a bad resource handle,
//! a panicked task) trap. Filesystem writes are atomic when they return;
//! the directories they changed are recorded in the request's state and
//! synced before its response is sent (see `server.rs`), which is when the
//! contract promises durability. S3 writes are durable when the store
//! acknowledges them.

use crate::backend::{Backend, Upload};
use crate::bindings::{blobs, kv, types};
use crate::s3::S3AppendError;
use crate::state::HostState;
use crate::storage::fsutil::Unsynced;
use crate::storage::{Storage, StorageError, StorageResult};
use std::sync::Arc;
use storage_layout::pages;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

impl From<StorageError> for types::Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => types::Error::NotFound,
            StorageError::DigestMismatch(d) => types::Error::DigestMismatch(d),
            StorageError::Conflict => types::Error::Conflict,
            StorageError::Invalid(m) => types::Error::Invalid(m),
            StorageError::Full => types::Error::Full,
            StorageError::Unavailable(m) => {
                tracing::error!("storage unavailable: {m}");
                types::Error::Unavailable(m)
            }
            StorageError::Other(m) => {
                tracing::error!("storage failure: {m}");
                types::Error::Other(m)
            }
        }
    }
}

impl From<pages::BlobInfo> for blobs::BlobInfo {
    fn from(blob: pages::BlobInfo) -> Self {
        blobs::BlobInfo { digest: blob.digest, size: blob.size, touched: blob.touched }
    }
}

impl From<pages::UploadInfo> for blobs::UploadInfo {
    fn from(upload: pages::UploadInfo) -> Self {
        blobs::UploadInfo { id: upload.id, size: upload.size, modified: upload.modified }
    }
}

type WitResult<T> = wasmtime::Result<Result<T, types::Error>>;

impl HostState {
    /// A store's answer as the guest gets it; a write refused for want of
    /// space is also reported to the operator.
    fn wit<T>(&self, r: StorageResult<T>) -> WitResult<T> {
        if let (Err(StorageError::Full), Backend::Fs(fs)) = (&r, &self.storage) {
            fs.out_of_space.refused();
        }
        if let Err(e) = &r {
            crate::metrics::storage_error(crate::metrics::backend_name(&self.storage), e);
        }
        Ok(r.map_err(types::Error::from))
    }

    /// Runs filesystem work that may block for long (fsync, hashing a file)
    /// off the async worker threads, and records the directories it changed.
    async fn blocking<T: Send + 'static>(
        &mut self,
        fs: Arc<Storage>,
        f: impl FnOnce(&Storage, &mut Unsynced) -> StorageResult<T> + Send + 'static,
    ) -> WitResult<T> {
        let (result, dirty) = tokio::task::spawn_blocking(move || {
            let mut dirty = Unsynced::default();
            let result = f(&fs, &mut dirty);
            (result, dirty)
        })
        .await?;
        self.note_dirty(dirty);
        self.wit(result)
    }

    /// Runs quick filesystem work (no flush, no large read) right here, and
    /// records the directories it changed.
    fn inline<T>(&mut self, fs: &Storage, f: impl FnOnce(&Storage, &mut Unsynced) -> StorageResult<T>) -> WitResult<T> {
        let mut dirty = Unsynced::default();
        let result = f(fs, &mut dirty);
        self.note_dirty(dirty);
        self.wit(result)
    }

    fn note_dirty(&mut self, dirty: Unsynced) {
        self.writes.record(dirty);
    }

    /// A blob that another request committed but has not yet answered is
    /// visible already; whoever answers on the strength of it (a HEAD, a
    /// mount, a manifest naming it) waits until it is durable too.
    fn rely_on_blob(&mut self, fs: &Storage, digest: &str) {
        if let Some(seq) = fs.blobs.unnamed_record(digest) {
            let mut unsynced = Unsynced::default();
            unsynced.add_journal(seq);
            self.note_dirty(unsynced);
        }
    }

    /// A new `upload` resource.
    fn push_upload(&mut self, upload: StorageResult<Upload>) -> WitResult<Resource<Upload>> {
        match upload {
            Ok(upload) => Ok(Ok(self.table.push(upload)?)),
            Err(e) => self.wit(Err(e)),
        }
    }
}

impl types::Host for HostState {}

/// `stat` and `read` of the filesystem stay on the async thread: each is
/// one `stat` or `open` of a file whose metadata the kernel caches.
/// Measured here, a `stat` took 1-2 µs inline and 10-24 µs through
/// `spawn_blocking`; the bytes are read by the stream, a chunk at a time.
impl blobs::Host for HostState {
    async fn stat(&mut self, digest: String) -> WitResult<Option<u64>> {
        let _timed = crate::metrics::StorageOp::start("blobs.stat", &self.storage);
        match self.storage.clone() {
            Backend::Fs(fs) => {
                self.rely_on_blob(&fs, &digest);
                self.wit(fs.blobs.stat(&digest))
            }
            Backend::S3(s3) => s3_answer(s3.blob_stat(&digest).await),
        }
    }

    async fn read(
        &mut self,
        digest: String,
        offset: u64,
        length: Option<u64>,
    ) -> WitResult<Option<Resource<DynInputStream>>> {
        let _timed = crate::metrics::StorageOp::start("blobs.read", &self.storage);
        let stream: StorageResult<Option<DynInputStream>> = match self.storage.clone() {
            Backend::Fs(fs) => {
                self.rely_on_blob(&fs, &digest);
                fs.blobs.read(&digest, offset, length).map(|r| r.map(|reader| Box::new(reader) as DynInputStream))
            }
            Backend::S3(s3) => s3.blob_read(&digest, offset, length).await,
        };
        match stream {
            Ok(Some(stream)) => Ok(Ok(Some(self.table.push(stream)?))),
            other => self.wit(other.map(|_| None)),
        }
    }

    async fn redirect(&mut self, digest: String) -> WitResult<Option<String>> {
        let _timed = crate::metrics::StorageOp::start("blobs.redirect", &self.storage);
        match &self.storage {
            // Files have no URL of their own: every blob goes through `read`.
            Backend::Fs(_) => Ok(Ok(None)),
            Backend::S3(s3) => s3_answer(s3.blob_redirect(&digest)),
        }
    }

    async fn delete(&mut self, digest: String) -> WitResult<bool> {
        let _timed = crate::metrics::StorageOp::start("blobs.delete", &self.storage);
        match self.storage.clone() {
            Backend::Fs(fs) => self.blocking(fs, move |s, dirty| s.blobs.delete(&digest, dirty)).await,
            Backend::S3(s3) => s3_answer(s3.blob_delete(&digest).await),
        }
    }

    async fn list(&mut self, after: Option<String>, limit: u32) -> WitResult<Vec<blobs::BlobInfo>> {
        let _timed = crate::metrics::StorageOp::start("blobs.list", &self.storage);
        let page = match self.storage.clone() {
            // Walks directories: as long as the page is.
            Backend::Fs(fs) => self.blocking(fs, move |s, _| s.blobs.list(after.as_deref(), limit)).await?,
            Backend::S3(s3) => s3_answer(s3.blob_list(after.as_deref(), limit).await)?,
        };
        Ok(page.map(|page| page.into_iter().map(blobs::BlobInfo::from).collect()))
    }

    /// Inline on the filesystem, as `stat`: one system call on a cached
    /// path and a journal record, under a lock that is only ever held that
    /// briefly.
    async fn touch(&mut self, digest: String) -> WitResult<bool> {
        let _timed = crate::metrics::StorageOp::start("blobs.touch", &self.storage);
        match self.storage.clone() {
            Backend::Fs(fs) => self.inline(&fs, |s, dirty| s.blobs.touch(&digest, dirty)),
            Backend::S3(s3) => s3_answer(s3.blob_touch(&digest).await),
        }
    }

    async fn delete_if_older(&mut self, digest: String, before: u64) -> WitResult<bool> {
        let _timed = crate::metrics::StorageOp::start("blobs.delete_if_older", &self.storage);
        match self.storage.clone() {
            Backend::Fs(fs) => self.blocking(fs, move |s, dirty| s.blobs.delete_if_older(&digest, before, dirty)).await,
            Backend::S3(s3) => s3_answer(s3.blob_delete_if_older(&digest, before).await),
        }
    }

    async fn list_uploads(&mut self, after: Option<String>, limit: u32) -> WitResult<Vec<blobs::UploadInfo>> {
        let _timed = crate::metrics::StorageOp::start("blobs.list_uploads", &self.storage);
        let page = match self.storage.clone() {
            Backend::Fs(fs) => self.blocking(fs, move |s, _| s.blobs.list_uploads(after.as_deref(), limit)).await?,
            Backend::S3(s3) => s3_answer(s3.upload_list(after.as_deref(), limit).await)?,
        };
        Ok(page.map(|page| page.into_iter().map(blobs::UploadInfo::from).collect()))
    }
}

impl blobs::HostUpload for HostState {
    async fn start(&mut self) -> WitResult<Resource<Upload>> {
        let _timed = crate::metrics::StorageOp::start("upload.start", &self.storage);
        let upload = match self.storage.clone() {
            Backend::Fs(fs) => fs.blobs.start().map(Upload::Fs),
            Backend::S3(s3) => s3.upload_start().await.map(Upload::S3),
        };
        self.push_upload(upload)
    }

    async fn resume(&mut self, id: String) -> WitResult<Resource<Upload>> {
        let _timed = crate::metrics::StorageOp::start("upload.resume", &self.storage);
        let upload = match self.storage.clone() {
            Backend::Fs(fs) => {
                // Known to this process (the usual case): no file to read, no hop.
                if let Some(upload) = fs.blobs.resume_cached(&id) {
                    return Ok(Ok(self.table.push(Upload::Fs(upload))?));
                }
                match self.blocking(fs, move |s, _| s.blobs.resume(&id)).await? {
                    Ok(upload) => Ok(Upload::Fs(upload)),
                    Err(e) => return Ok(Err(e)),
                }
            }
            Backend::S3(s3) => s3.upload_resume(&id).await.map(Upload::S3),
        };
        self.push_upload(upload)
    }

    async fn id(&mut self, upload: Resource<Upload>) -> wasmtime::Result<String> {
        Ok(match self.table.get(&upload)? {
            Upload::Fs(upload) => upload.id().to_string(),
            Upload::S3(upload) => upload.id.clone(),
        })
    }

    async fn size(&mut self, upload: Resource<Upload>) -> WitResult<u64> {
        let _timed = crate::metrics::StorageOp::start("upload.size", &self.storage);
        let size = match (self.table.get(&upload)?, self.storage.clone()) {
            (Upload::Fs(upload), Backend::Fs(fs)) => fs.blobs.size(upload),
            (Upload::S3(upload), Backend::S3(s3)) => {
                let upload = upload.clone();
                s3.upload_size(&upload).await
            }
            _ => return Err(mixed()),
        };
        self.wit(size)
    }

    async fn append(&mut self, upload: Resource<Upload>) -> WitResult<Resource<DynOutputStream>> {
        let _timed = crate::metrics::StorageOp::start("upload.append", &self.storage);
        let writer: StorageResult<DynOutputStream> = match (self.table.get(&upload)?, self.storage.clone()) {
            (Upload::Fs(upload), Backend::Fs(fs)) => fs.blobs.append(upload).map(|w| Box::new(w) as DynOutputStream),
            (Upload::S3(upload), Backend::S3(s3)) => {
                let upload = upload.clone();
                s3.upload_append(&upload, self.writes.clone()).await.map(|w| Box::new(w) as DynOutputStream)
            }
            _ => return Err(mixed()),
        };
        match writer {
            Ok(stream) => Ok(Ok(self.table.push(stream)?)),
            Err(e) => self.wit(Err(e)),
        }
    }

    async fn append_failure(
        &mut self,
        upload: Resource<Upload>,
        failure: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<types::Error>> {
        let blame = match (self.table.get(&upload)?, self.storage.clone()) {
            (Upload::Fs(upload), Backend::Fs(fs)) => {
                let upload = upload.clone();
                let blame = fs.blobs.append_failure(&upload, self.table.get(&failure)?);
                if blame == Some(StorageError::Full) {
                    fs.out_of_space.refused();
                }
                blame
            }
            (Upload::S3(upload), Backend::S3(s3)) => {
                let upload = upload.clone();
                match self.table.get(&failure)?.downcast_ref::<S3AppendError>() {
                    Some(S3AppendError(e)) => {
                        // The contract: after the store's failure the upload
                        // is gone.
                        let e = e.clone();
                        if let Err(abort) = s3.upload_abort(&upload).await {
                            tracing::warn!("removing upload {} after its append failed: {abort}", upload.id);
                        }
                        Some(e)
                    }
                    None => None,
                }
            }
            _ => return Err(mixed()),
        };
        Ok(blame.map(types::Error::from))
    }

    async fn commit(&mut self, upload: Resource<Upload>, expected_digest: String) -> WitResult<u64> {
        let _timed = crate::metrics::StorageOp::start("upload.commit", &self.storage);
        match (self.table.get(&upload)?, self.storage.clone()) {
            (Upload::Fs(upload), Backend::Fs(fs)) => {
                let upload = upload.clone();
                if fs.blobs.commits_through_journal(&upload) {
                    // A small blob: hashed already, read from the page cache,
                    // handed to the journal; no flush here, so no hop to
                    // another thread.
                    return self.inline(&fs, |s, dirty| s.blobs.commit(&upload, &expected_digest, dirty));
                }
                self.blocking(fs, move |s, dirty| s.blobs.commit(&upload, &expected_digest, dirty)).await
            }
            (Upload::S3(upload), Backend::S3(s3)) => {
                let upload = upload.clone();
                s3_answer(s3.upload_commit(&upload, &expected_digest).await)
            }
            _ => Err(mixed()),
        }
    }

    async fn abort(&mut self, upload: Resource<Upload>) -> WitResult<()> {
        let _timed = crate::metrics::StorageOp::start("upload.abort", &self.storage);
        match (self.table.get(&upload)?, self.storage.clone()) {
            (Upload::Fs(upload), Backend::Fs(fs)) => {
                let upload = upload.clone();
                self.blocking(fs, move |s, _| s.blobs.abort(&upload)).await
            }
            (Upload::S3(upload), Backend::S3(s3)) => {
                let upload = upload.clone();
                s3_answer(s3.upload_abort(&upload).await)
            }
            _ => Err(mixed()),
        }
    }

    async fn drop(&mut self, upload: Resource<Upload>) -> wasmtime::Result<()> {
        self.table.delete(upload)?;
        Ok(())
    }
}

/// An S3 store's answer as the guest gets it. Not `HostState::wit`, which
/// borrows the state: held across the call's `await`, that borrow would
/// make the future need a `Sync` state.
fn s3_answer<T>(r: StorageResult<T>) -> WitResult<T> {
    if let Err(e) = &r {
        crate::metrics::storage_error("s3", e);
    }
    Ok(r.map_err(types::Error::from))
}

/// An upload of one backend handed to another: a host bug, so a trap.
fn mixed() -> wasmtime::Error {
    wasmtime::Error::msg("an upload of one storage backend reached another")
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> WitResult<Option<kv::Entry>> {
        let _timed = crate::metrics::StorageOp::start("kv.get", &self.storage);
        let entry = match self.storage.clone() {
            // Inline: the cache answers most reads with no I/O, and a miss
            // reads one small file, usually from the page cache (a cached
            // 4 KiB file took 5 µs inline here, a hop through
            // `spawn_blocking` 20-30 µs more, and far more when the machine
            // is busy).
            Backend::Fs(fs) => fs.kv.get(&key).map(|e| e.map(|e| kv::Entry { value: e.value, version: e.version })),
            Backend::S3(s3) => s3.kv_get(&key).await.map(|e| e.map(|(value, version)| kv::Entry { value, version })),
        };
        self.wit(entry)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> WitResult<u64> {
        let _timed = crate::metrics::StorageOp::start("kv.set", &self.storage);
        match self.storage.clone() {
            Backend::Fs(fs) => self.blocking(fs, move |s, dirty| s.kv.set(&key, &value, dirty)).await,
            Backend::S3(s3) => s3_answer(s3.kv_set(&key, &value).await),
        }
    }

    async fn set_if(&mut self, key: String, value: Vec<u8>, expected: Option<u64>) -> WitResult<u64> {
        let _timed = crate::metrics::StorageOp::start("kv.set_if", &self.storage);
        let fs = match self.storage.clone() {
            Backend::Fs(fs) => fs,
            Backend::S3(s3) => return s3_answer(s3.kv_set_if(&key, &value, expected).await),
        };
        // "Create if absent" of a key that exists, answered from the cache.
        match fs.kv.cached_conflict(&key, expected) {
            Ok(true) => return Ok(Err(types::Error::Conflict)),
            Ok(false) => {}
            Err(e) => return self.wit(Err(e)),
        }
        if value.is_empty() && expected.is_none() {
            // A first empty value (a blob's link, one per push) is one hard
            // link: no data to flush, no inode to allocate, cheaper than a
            // hop to a blocking thread and back.
            return self.inline(&fs, |s, dirty| s.kv.set_if(&key, &value, expected, dirty));
        }
        self.blocking(fs, move |s, dirty| s.kv.set_if(&key, &value, expected, dirty)).await
    }

    async fn delete(&mut self, key: String) -> WitResult<bool> {
        let _timed = crate::metrics::StorageOp::start("kv.delete", &self.storage);
        match self.storage.clone() {
            Backend::Fs(fs) => self.blocking(fs, move |s, dirty| s.kv.delete(&key, dirty)).await,
            Backend::S3(s3) => s3_answer(s3.kv_delete(&key).await),
        }
    }

    async fn list_keys(&mut self, prefix: String, after: Option<String>, limit: u32) -> WitResult<Vec<String>> {
        let _timed = crate::metrics::StorageOp::start("kv.list_keys", &self.storage);
        match self.storage.clone() {
            // Walks directories: as long as the listing is.
            Backend::Fs(fs) => self.blocking(fs, move |s, _| s.kv.list_keys(&prefix, after.as_deref(), limit)).await,
            Backend::S3(s3) => s3_answer(s3.kv_list(&prefix, after.as_deref(), limit).await),
        }
    }
}

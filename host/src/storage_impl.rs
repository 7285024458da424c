//! Implements the generated storage `Host` traits by calling the filesystem
//! stores. Storage failures become WIT errors the guest can handle; only
//! host bugs (a bad resource handle, a panicked task) trap. Writes are
//! atomic when they return; the directories they changed are recorded in
//! the request's state and synced before its response is sent (see
//! `server.rs`), which is when the contract promises durability.

use crate::bindings::{blobs, kv, types};
use crate::state::HostState;
use crate::storage::blobs::HostUpload;
use crate::storage::fsutil::Unsynced;
use crate::storage::{Storage, StorageError, StorageResult};
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
        if r.as_ref().is_err_and(|e| *e == StorageError::Full) {
            self.storage.out_of_space.refused();
        }
        Ok(r.map_err(types::Error::from))
    }

    /// Runs filesystem work that may block for long (fsync, hashing a file)
    /// off the async worker threads, and records the directories it changed.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Storage, &mut Unsynced) -> StorageResult<T> + Send + 'static,
    ) -> WitResult<T> {
        let storage = self.storage.clone();
        let (result, dirty) = tokio::task::spawn_blocking(move || {
            let mut dirty = Unsynced::default();
            let result = f(&storage, &mut dirty);
            (result, dirty)
        })
        .await?;
        self.note_dirty(dirty);
        self.wit(result)
    }

    /// Runs quick filesystem work (no flush, no large read) right here, and
    /// records the directories it changed.
    fn inline<T>(&mut self, f: impl FnOnce(&Storage, &mut Unsynced) -> StorageResult<T>) -> WitResult<T> {
        let mut dirty = Unsynced::default();
        let result = f(&self.storage, &mut dirty);
        self.note_dirty(dirty);
        self.wit(result)
    }

    fn note_dirty(&mut self, dirty: Unsynced) {
        self.writes.record(dirty);
    }

    /// A blob that another request committed but has not yet answered is
    /// visible already; whoever answers on the strength of it (a HEAD, a
    /// mount, a manifest naming it) waits until it is durable too.
    fn rely_on_blob(&mut self, digest: &str) {
        if let Some(seq) = self.storage.blobs.unnamed_record(digest) {
            let mut unsynced = Unsynced::default();
            unsynced.add_journal(seq);
            self.note_dirty(unsynced);
        }
    }
}

impl types::Host for HostState {}

/// `stat` and `read` stay on the async thread: each is one `stat` or
/// `open` of a file whose metadata the kernel caches. Measured here, a
/// `stat` took 1-2 µs inline and 10-24 µs through `spawn_blocking`; the
/// bytes are read by the stream, a chunk at a time.
impl blobs::Host for HostState {
    async fn stat(&mut self, digest: String) -> WitResult<Option<u64>> {
        self.rely_on_blob(&digest);
        self.wit(self.storage.blobs.stat(&digest))
    }

    async fn read(
        &mut self,
        digest: String,
        offset: u64,
        length: Option<u64>,
    ) -> WitResult<Option<Resource<DynInputStream>>> {
        self.rely_on_blob(&digest);
        match self.storage.blobs.read(&digest, offset, length) {
            Ok(Some(reader)) => {
                let stream: DynInputStream = Box::new(reader);
                Ok(Ok(Some(self.table.push(stream)?)))
            }
            other => self.wit(other.map(|_| None)),
        }
    }

    async fn delete(&mut self, digest: String) -> WitResult<bool> {
        self.blocking(move |s, dirty| s.blobs.delete(&digest, dirty)).await
    }

    async fn list(&mut self, after: Option<String>, limit: u32) -> WitResult<Vec<blobs::BlobInfo>> {
        // Walks directories: as long as the page is.
        let page = self.blocking(move |s, _| s.blobs.list(after.as_deref(), limit)).await?;
        Ok(page.map(|page| page.into_iter().map(blobs::BlobInfo::from).collect()))
    }

    /// Inline, as `stat`: one system call on a cached path and a journal
    /// record, under a lock that is only ever held that briefly.
    async fn touch(&mut self, digest: String) -> WitResult<bool> {
        self.inline(|s, dirty| s.blobs.touch(&digest, dirty))
    }

    async fn delete_if_older(&mut self, digest: String, before: u64) -> WitResult<bool> {
        self.blocking(move |s, dirty| s.blobs.delete_if_older(&digest, before, dirty)).await
    }

    async fn list_uploads(&mut self, after: Option<String>, limit: u32) -> WitResult<Vec<blobs::UploadInfo>> {
        let page = self.blocking(move |s, _| s.blobs.list_uploads(after.as_deref(), limit)).await?;
        Ok(page.map(|page| page.into_iter().map(blobs::UploadInfo::from).collect()))
    }
}

impl blobs::HostUpload for HostState {
    async fn start(&mut self) -> WitResult<Resource<HostUpload>> {
        match self.storage.blobs.start() {
            Ok(upload) => Ok(Ok(self.table.push(upload)?)),
            Err(e) => self.wit(Err(e)),
        }
    }

    async fn resume(&mut self, id: String) -> WitResult<Resource<HostUpload>> {
        // Known to this process (the usual case): no file to read, no hop.
        if let Some(upload) = self.storage.blobs.resume_cached(&id) {
            return Ok(Ok(self.table.push(upload)?));
        }
        match self.blocking(move |s, _| s.blobs.resume(&id)).await? {
            Ok(upload) => Ok(Ok(self.table.push(upload)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn id(&mut self, upload: Resource<HostUpload>) -> wasmtime::Result<String> {
        Ok(self.table.get(&upload)?.id().to_string())
    }

    async fn size(&mut self, upload: Resource<HostUpload>) -> WitResult<u64> {
        let upload = self.table.get(&upload)?;
        self.wit(self.storage.blobs.size(upload))
    }

    async fn append(&mut self, upload: Resource<HostUpload>) -> WitResult<Resource<DynOutputStream>> {
        let upload = self.table.get(&upload)?;
        match self.storage.blobs.append(upload) {
            Ok(writer) => {
                let stream: DynOutputStream = Box::new(writer);
                Ok(Ok(self.table.push(stream)?))
            }
            Err(e) => self.wit(Err(e)),
        }
    }

    async fn append_failure(
        &mut self,
        upload: Resource<HostUpload>,
        failure: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<types::Error>> {
        let upload = self.table.get(&upload)?.clone();
        let blame = self.storage.blobs.append_failure(&upload, self.table.get(&failure)?);
        if blame == Some(StorageError::Full) {
            self.storage.out_of_space.refused();
        }
        Ok(blame.map(types::Error::from))
    }

    async fn commit(&mut self, upload: Resource<HostUpload>, expected_digest: String) -> WitResult<u64> {
        let upload = self.table.get(&upload)?.clone();
        if self.storage.blobs.commits_through_journal(&upload) {
            // A small blob: hashed already, read from the page cache, handed
            // to the journal; no flush here, so no hop to another thread.
            return self.inline(|s, dirty| s.blobs.commit(&upload, &expected_digest, dirty));
        }
        self.blocking(move |s, dirty| s.blobs.commit(&upload, &expected_digest, dirty)).await
    }

    async fn abort(&mut self, upload: Resource<HostUpload>) -> WitResult<()> {
        let upload = self.table.get(&upload)?.clone();
        self.blocking(move |s, _| s.blobs.abort(&upload)).await
    }

    async fn drop(&mut self, upload: Resource<HostUpload>) -> wasmtime::Result<()> {
        self.table.delete(upload)?;
        Ok(())
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> WitResult<Option<kv::Entry>> {
        // Inline: the cache answers most reads with no I/O, and a miss reads
        // one small file, usually from the page cache (a cached 4 KiB file
        // took 5 µs inline here, a hop through `spawn_blocking` 20-30 µs
        // more, and far more when the machine is busy).
        self.wit(self.storage.kv.get(&key).map(|e| e.map(|e| kv::Entry { value: e.value, version: e.version })))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> WitResult<u64> {
        self.blocking(move |s, dirty| s.kv.set(&key, &value, dirty)).await
    }

    async fn set_if(&mut self, key: String, value: Vec<u8>, expected: Option<u64>) -> WitResult<u64> {
        // "Create if absent" of a key that exists, answered from the cache.
        match self.storage.kv.cached_conflict(&key, expected) {
            Ok(true) => return Ok(Err(types::Error::Conflict)),
            Ok(false) => {}
            Err(e) => return self.wit(Err(e)),
        }
        if value.is_empty() && expected.is_none() {
            // A first empty value (a blob's link, one per push) is one hard
            // link: no data to flush, no inode to allocate, cheaper than a
            // hop to a blocking thread and back.
            return self.inline(|s, dirty| s.kv.set_if(&key, &value, expected, dirty));
        }
        self.blocking(move |s, dirty| s.kv.set_if(&key, &value, expected, dirty)).await
    }

    async fn delete(&mut self, key: String) -> WitResult<bool> {
        self.blocking(move |s, dirty| s.kv.delete(&key, dirty)).await
    }

    async fn list_keys(&mut self, prefix: String, after: Option<String>, limit: u32) -> WitResult<Vec<String>> {
        // Walks directories: as long as the listing is.
        self.blocking(move |s, _| s.kv.list_keys(&prefix, after.as_deref(), limit)).await
    }
}

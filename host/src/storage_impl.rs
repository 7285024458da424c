//! Implements the generated storage `Host` traits by calling the filesystem
//! stores. Storage failures become WIT errors the guest can handle; only
//! host bugs (a bad resource handle, a panicked task) trap.

use crate::bindings::{blobs, kv, types};
use crate::state::HostState;
use crate::storage::blobs::HostUpload;
use crate::storage::{Storage, StorageError, StorageResult};
use std::sync::Arc;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

impl From<StorageError> for types::Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => types::Error::NotFound,
            StorageError::DigestMismatch(d) => types::Error::DigestMismatch(d),
            StorageError::Conflict => types::Error::Conflict,
            StorageError::Invalid(m) => types::Error::Invalid(m),
            StorageError::Other(m) => {
                tracing::error!("storage failure: {m}");
                types::Error::Other(m)
            }
        }
    }
}

type WitResult<T> = wasmtime::Result<Result<T, types::Error>>;

fn wit<T>(r: StorageResult<T>) -> WitResult<T> {
    Ok(r.map_err(types::Error::from))
}

/// Runs filesystem work that may block for long (fsync, hashing a file)
/// off the async worker threads.
async fn blocking<T: Send + 'static>(
    storage: &Arc<Storage>,
    f: impl FnOnce(&Storage) -> StorageResult<T> + Send + 'static,
) -> WitResult<T> {
    let storage = storage.clone();
    let result = tokio::task::spawn_blocking(move || f(&storage)).await?;
    wit(result)
}

impl types::Host for HostState {}

impl blobs::Host for HostState {
    async fn stat(&mut self, digest: String) -> WitResult<Option<u64>> {
        wit(self.storage.blobs.stat(&digest))
    }

    async fn read(&mut self, digest: String, offset: u64, length: Option<u64>) -> WitResult<Option<Resource<DynInputStream>>> {
        match self.storage.blobs.read(&digest, offset, length) {
            Ok(Some(reader)) => {
                let stream: DynInputStream = Box::new(reader);
                Ok(Ok(Some(self.table.push(stream)?)))
            }
            other => wit(other.map(|_| None)),
        }
    }

    async fn delete(&mut self, digest: String) -> WitResult<bool> {
        wit(self.storage.blobs.delete(&digest))
    }
}

impl blobs::HostUpload for HostState {
    async fn start(&mut self) -> WitResult<Resource<HostUpload>> {
        match self.storage.blobs.start() {
            Ok(upload) => Ok(Ok(self.table.push(upload)?)),
            Err(e) => wit(Err(e)),
        }
    }

    async fn resume(&mut self, id: String) -> WitResult<Resource<HostUpload>> {
        match blocking(&self.storage, move |s| s.blobs.resume(&id)).await? {
            Ok(upload) => Ok(Ok(self.table.push(upload)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn id(&mut self, upload: Resource<HostUpload>) -> wasmtime::Result<String> {
        Ok(self.table.get(&upload)?.id().to_string())
    }

    async fn size(&mut self, upload: Resource<HostUpload>) -> WitResult<u64> {
        let upload = self.table.get(&upload)?;
        wit(self.storage.blobs.size(upload))
    }

    async fn append(&mut self, upload: Resource<HostUpload>) -> WitResult<Resource<DynOutputStream>> {
        let upload = self.table.get(&upload)?;
        match self.storage.blobs.append(upload) {
            Ok(writer) => {
                let stream: DynOutputStream = Box::new(writer);
                Ok(Ok(self.table.push(stream)?))
            }
            Err(e) => wit(Err(e)),
        }
    }

    async fn commit(&mut self, upload: Resource<HostUpload>, expected_digest: String) -> WitResult<u64> {
        let upload = self.table.get(&upload)?.clone();
        blocking(&self.storage, move |s| s.blobs.commit(&upload, &expected_digest)).await
    }

    async fn abort(&mut self, upload: Resource<HostUpload>) -> WitResult<()> {
        let upload = self.table.get(&upload)?.clone();
        blocking(&self.storage, move |s| s.blobs.abort(&upload)).await
    }

    async fn drop(&mut self, upload: Resource<HostUpload>) -> wasmtime::Result<()> {
        self.table.delete(upload)?;
        Ok(())
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> WitResult<Option<kv::Entry>> {
        wit(self.storage.kv.get(&key).map(|e| e.map(|e| kv::Entry { value: e.value, version: e.version })))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> WitResult<u64> {
        blocking(&self.storage, move |s| s.kv.set(&key, &value)).await
    }

    async fn set_if(&mut self, key: String, value: Vec<u8>, expected: Option<u64>) -> WitResult<u64> {
        blocking(&self.storage, move |s| s.kv.set_if(&key, &value, expected)).await
    }

    async fn delete(&mut self, key: String) -> WitResult<bool> {
        blocking(&self.storage, move |s| s.kv.delete(&key)).await
    }

    async fn list_keys(&mut self, prefix: String, after: Option<String>, limit: u32) -> WitResult<Vec<String>> {
        wit(self.storage.kv.list_keys(&prefix, after.as_deref(), limit))
    }
}

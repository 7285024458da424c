//! The storage contract suite (`storage-contract/`) against this store,
//! natively: each client is one request's `HostState`, called through the
//! same `blobs`/`kv` host traits (`storage_impl.rs`) that the registry
//! component calls, and each call is settled (made durable) as a response
//! would be. Clients in several threads share one `Storage`, as concurrent
//! requests do.

use super::{RequestWrites, Storage, StorageError, StorageResult, TestDir};
use crate::backend::{Backend, Upload};
use crate::bindings::blobs::{Host as BlobsHost, HostUpload as UploadHost};
use crate::bindings::kv::Host as KvHost;
use crate::bindings::types::Error as WitError;
use crate::state::{HostState, RegistryHooks};
use std::sync::Arc;
use storage_contract::{BlobInfo, ContractClient, ContractStore, Entry, SmallFs, UploadInfo};
use tokio::runtime::{Handle, Runtime};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, StreamError};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;

/// A data directory opened by `Storage::open`, with the runtime its
/// requests run on.
struct HostStore {
    storage: Arc<Storage>,
    runtime: Runtime,
    dir: Place,
}

/// Where a store's data directory is.
enum Place {
    Temp(#[allow(dead_code, reason = "removes the directory on drop")] TestDir),
    Small(SmallFs),
}

impl HostStore {
    fn open(data_dir: &std::path::Path, dir: Place) -> HostStore {
        let storage = Storage::open(data_dir).expect("opening the store");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        HostStore { storage, runtime, dir }
    }
}

impl ContractStore for HostStore {
    type Client = HostClient;

    fn fresh() -> Self {
        let dir = TestDir::new();
        HostStore::open(&dir.path().join("data"), Place::Temp(dir))
    }

    fn nearly_full(room: u64) -> Self {
        // The journal's file takes 32 MiB of it up front.
        let fs = SmallFs::mount(48);
        let store = HostStore::open(&fs.path().join("data"), Place::Small(fs));
        let Place::Small(fs) = &store.dir else { unreachable!("made just above") };
        fs.fill_but(room);
        store
    }

    fn free_space(&self) {
        if let Place::Small(fs) = &self.dir {
            fs.free();
        }
    }

    fn client(&self) -> HostClient {
        HostClient::new(Backend::Fs(self.storage.clone()), self.runtime.handle().clone())
    }
}

/// One request: on the filesystem store here, on the S3 store in
/// `crate::s3`'s contract tests.
pub(crate) struct HostClient {
    state: HostState,
    runtime: Handle,
}

impl HostClient {
    pub(crate) fn new(storage: Backend, runtime: Handle) -> HostClient {
        let state = HostState {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            storage,
            hooks: RegistryHooks,
            writes: Arc::new(RequestWrites::default()),
        };
        HostClient { state, runtime }
    }

    /// A call's answer, once what it wrote is durable (as before a
    /// response); a trap fails the test.
    fn answer<T>(&mut self, result: wasmtime::Result<Result<T, WitError>>) -> StorageResult<T> {
        let tasks = self.runtime.block_on(self.state.writes.settle_tasks());
        let settled = match self.state.storage.fs() {
            Some(fs) => self.runtime.block_on(self.state.writes.settle(fs)).map_err(|e| e.to_string()),
            None => Ok(()),
        };
        let settled = tasks.map_err(|e| e.to_string()).and(settled);
        let answer = result.expect("the host trapped").map_err(from_wit)?;
        settled.map_err(|e| StorageError::Other(e.to_string()))?;
        Ok(answer)
    }
}

storage_contract::from_wit_error!(WitError);

fn stream_failed(e: StreamError) -> StorageError {
    StorageError::Other(format!("stream: {e}"))
}

/// The upload handle as the guest passes it to a method: a borrow.
fn borrow(upload: &Resource<Upload>) -> Resource<Upload> {
    Resource::new_borrow(upload.rep())
}

impl ContractClient for HostClient {
    type Upload = Resource<Upload>;
    type Reader = Resource<DynInputStream>;

    fn stat(&mut self, digest: &str) -> StorageResult<Option<u64>> {
        let r = self.runtime.block_on(BlobsHost::stat(&mut self.state, digest.to_string()));
        self.answer(r)
    }

    fn read(&mut self, digest: &str, offset: u64, length: Option<u64>) -> StorageResult<Option<Self::Reader>> {
        let r = self.runtime.block_on(BlobsHost::read(&mut self.state, digest.to_string(), offset, length));
        self.answer(r)
    }

    fn read_to_end(&mut self, reader: Self::Reader) -> StorageResult<Vec<u8>> {
        let mut out = Vec::new();
        let stream = self.state.table.get_mut(&reader).expect("a live stream");
        let result = loop {
            match self.runtime.block_on(stream.blocking_read(1 << 20)) {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(StreamError::Closed) => break Ok(out),
                Err(e) => break Err(stream_failed(e)),
            }
        };
        self.state.table.delete(reader).expect("dropping the stream");
        result
    }

    fn delete_blob(&mut self, digest: &str) -> StorageResult<bool> {
        let r = self.runtime.block_on(BlobsHost::delete(&mut self.state, digest.to_string()));
        self.answer(r)
    }

    fn list(&mut self, after: Option<&str>, limit: u32) -> StorageResult<Vec<BlobInfo>> {
        let after = after.map(str::to_string);
        let r = self.runtime.block_on(BlobsHost::list(&mut self.state, after, limit));
        let page = self.answer(r)?;
        Ok(page.into_iter().map(|b| BlobInfo { digest: b.digest, size: b.size, touched: b.touched }).collect())
    }

    fn touch(&mut self, digest: &str) -> StorageResult<bool> {
        let r = self.runtime.block_on(BlobsHost::touch(&mut self.state, digest.to_string()));
        self.answer(r)
    }

    fn delete_if_older(&mut self, digest: &str, before: u64) -> StorageResult<bool> {
        let r = self.runtime.block_on(BlobsHost::delete_if_older(&mut self.state, digest.to_string(), before));
        self.answer(r)
    }

    fn list_uploads(&mut self, after: Option<&str>, limit: u32) -> StorageResult<Vec<UploadInfo>> {
        let after = after.map(str::to_string);
        let r = self.runtime.block_on(BlobsHost::list_uploads(&mut self.state, after, limit));
        let page = self.answer(r)?;
        Ok(page.into_iter().map(|u| UploadInfo { id: u.id, size: u.size, modified: u.modified }).collect())
    }

    fn start(&mut self) -> StorageResult<Self::Upload> {
        let r = self.runtime.block_on(UploadHost::start(&mut self.state));
        self.answer(r)
    }

    fn resume(&mut self, id: &str) -> StorageResult<Self::Upload> {
        let r = self.runtime.block_on(UploadHost::resume(&mut self.state, id.to_string()));
        self.answer(r)
    }

    fn id(&mut self, upload: &Self::Upload) -> String {
        self.runtime.block_on(UploadHost::id(&mut self.state, borrow(upload))).expect("the host trapped")
    }

    fn size(&mut self, upload: &Self::Upload) -> StorageResult<u64> {
        let r = self.runtime.block_on(UploadHost::size(&mut self.state, borrow(upload)));
        self.answer(r)
    }

    fn append(&mut self, upload: &Self::Upload, bytes: &[u8]) -> StorageResult<()> {
        let r = self.runtime.block_on(UploadHost::append(&mut self.state, borrow(upload)));
        let stream: Resource<DynOutputStream> = self.answer(r)?;
        let writer = self.state.table.get_mut(&stream).expect("a live stream");
        let mut failure = None;
        for piece in bytes.chunks(1 << 20) {
            let piece = bytes::Bytes::copy_from_slice(piece);
            if let Err(e) = self.runtime.block_on(writer.blocking_write_and_flush(piece)) {
                failure = Some(e);
                break;
            }
        }
        self.state.table.delete(stream).expect("dropping the stream");
        // What dropping the stream started is done before the answer, as a
        // request's writes are before its response.
        let deferred = self.runtime.block_on(self.state.writes.settle_tasks());
        let Some(failure) = failure else { return deferred };
        let StreamError::LastOperationFailed(error) = failure else { return Err(stream_failed(failure)) };
        // As the registry does: ask the store whose fault it was.
        let error = self.state.table.push(error).expect("a table slot");
        let blame = UploadHost::append_failure(&mut self.state, borrow(upload), Resource::new_borrow(error.rep()));
        let blame = self.runtime.block_on(blame).expect("the host trapped");
        self.state.table.delete(error).expect("dropping the error");
        Err(blame.map_or_else(|| StorageError::Other("the store blamed the caller".into()), from_wit))
    }

    fn commit(&mut self, upload: &Self::Upload, expected_digest: &str) -> StorageResult<u64> {
        let digest = expected_digest.to_string();
        let r = self.runtime.block_on(UploadHost::commit(&mut self.state, borrow(upload), digest));
        self.answer(r)
    }

    fn abort(&mut self, upload: &Self::Upload) -> StorageResult<()> {
        let r = self.runtime.block_on(UploadHost::abort(&mut self.state, borrow(upload)));
        self.answer(r)
    }

    fn get(&mut self, key: &str) -> StorageResult<Option<Entry>> {
        let r = self.runtime.block_on(KvHost::get(&mut self.state, key.to_string()));
        Ok(self.answer(r)?.map(|e| Entry { value: e.value, version: e.version }))
    }

    fn set(&mut self, key: &str, value: &[u8]) -> StorageResult<u64> {
        let r = self.runtime.block_on(KvHost::set(&mut self.state, key.to_string(), value.to_vec()));
        self.answer(r)
    }

    fn set_if(&mut self, key: &str, value: &[u8], expected: Option<u64>) -> StorageResult<u64> {
        let r = self.runtime.block_on(KvHost::set_if(&mut self.state, key.to_string(), value.to_vec(), expected));
        self.answer(r)
    }

    fn delete(&mut self, key: &str) -> StorageResult<bool> {
        let r = self.runtime.block_on(KvHost::delete(&mut self.state, key.to_string()));
        self.answer(r)
    }

    fn list_keys(&mut self, prefix: &str, after: Option<&str>, limit: u32) -> StorageResult<Vec<String>> {
        let after = after.map(str::to_string);
        let r = self.runtime.block_on(KvHost::list_keys(&mut self.state, prefix.to_string(), after, limit));
        self.answer(r)
    }
}

storage_contract::contract_tests!(HostStore);

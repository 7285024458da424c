//! The storage contract suite (`storage-contract/`) against `storage-fs`,
//! the component inside `registry.wasm`: each client is a fresh wasmtime
//! instance (as every request is under `wasmtime serve`) with the store's
//! temporary directory preopened as `/data`, calling the component's
//! exported `blobs` and `kv` functions. Clients of one store in several
//! threads are several instances over the same directory.

use std::sync::OnceLock;
use storage_contract::{
    BlobInfo, ContractClient, ContractStore, Entry, SmallFs, StorageError, StorageResult, UploadInfo,
};
use wasmtime::component::{Component, Linker, Resource, ResourceAny, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, StreamError};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "registry:storage/storage-fs",
    with: { "wasi:io": wasmtime_wasi::p2::bindings::io },
    require_store_data_send: true,
});

use exports::registry::storage::types::Error as WitError;

/// What an instance's store holds: WASI with `/data` preopened.
struct Ctx {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The component, compiled once per test process, ready to instantiate.
fn component() -> &'static StorageFsPre<Ctx> {
    static PRE: OnceLock<StorageFsPre<Ctx>> = OnceLock::new();
    PRE.get_or_init(|| {
        let engine = Engine::default();
        let component = Component::from_file(&engine, registry_wasm::STORAGE_FS_WASM).expect("compiling storage-fs");
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("linking WASI");
        StorageFsPre::new(linker.instantiate_pre(&component).expect("pre-instantiating")).expect("storage-fs world")
    })
}

/// A data directory served by storage-fs.
struct FsComponentStore {
    dir: Place,
}

/// Where a store's data directory is.
enum Place {
    Temp(tempfile::TempDir),
    Small(SmallFs),
}

impl FsComponentStore {
    fn data_dir(&self) -> std::path::PathBuf {
        match &self.dir {
            Place::Temp(dir) => dir.path().to_path_buf(),
            Place::Small(fs) => fs.path().join("data"),
        }
    }
}

impl ContractStore for FsComponentStore {
    type Client = FsClient;

    fn fresh() -> Self {
        FsComponentStore { dir: Place::Temp(tempfile::tempdir().expect("a temporary directory")) }
    }

    fn nearly_full(room: u64) -> Self {
        let fs = SmallFs::mount(16);
        std::fs::create_dir(fs.path().join("data")).expect("creating the data directory");
        fs.fill_but(room);
        FsComponentStore { dir: Place::Small(fs) }
    }

    fn free_space(&self) {
        if let Place::Small(fs) = &self.dir {
            fs.free();
        }
    }

    fn client(&self) -> FsClient {
        let pre = component();
        let mut wasi = WasiCtx::builder();
        wasi.preopened_dir(self.data_dir(), "/data", FsPerms::ReadWrite).expect("preopening /data");
        let ctx = Ctx { wasi: wasi.build(), table: ResourceTable::new() };
        let mut store = Store::new(pre.engine(), ctx);
        let bindings = pre.instantiate(&mut store).expect("instantiating storage-fs");
        FsClient { store, bindings }
    }
}

/// One instance of storage-fs.
struct FsClient {
    store: Store<Ctx>,
    bindings: StorageFs,
}

storage_contract::from_wit_error!(WitError);

/// A call's result: a trap fails the test; a contract error is the answer.
fn answer<T>(r: wasmtime::Result<Result<T, WitError>>) -> StorageResult<T> {
    r.expect("storage-fs trapped").map_err(from_wit)
}

fn stream_failed(e: StreamError) -> StorageError {
    StorageError::Other(format!("stream: {e}"))
}

impl ContractClient for FsClient {
    type Upload = ResourceAny;
    type Reader = Resource<DynInputStream>;

    fn stat(&mut self, digest: &str) -> StorageResult<Option<u64>> {
        answer(self.bindings.registry_storage_blobs().call_stat(&mut self.store, digest))
    }

    fn read(&mut self, digest: &str, offset: u64, length: Option<u64>) -> StorageResult<Option<Self::Reader>> {
        answer(self.bindings.registry_storage_blobs().call_read(&mut self.store, digest, offset, length))
    }

    fn read_to_end(&mut self, reader: Self::Reader) -> StorageResult<Vec<u8>> {
        let mut out = Vec::new();
        let stream = self.store.data_mut().table.get_mut(&reader).expect("a live stream");
        let result = loop {
            match wasmtime_wasi::runtime::in_tokio(stream.blocking_read(1 << 20)) {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(StreamError::Closed) => break Ok(out),
                Err(e) => break Err(stream_failed(e)),
            }
        };
        self.store.data_mut().table.delete(reader).expect("dropping the stream");
        result
    }

    fn delete_blob(&mut self, digest: &str) -> StorageResult<bool> {
        answer(self.bindings.registry_storage_blobs().call_delete(&mut self.store, digest))
    }

    fn list(&mut self, after: Option<&str>, limit: u32) -> StorageResult<Vec<BlobInfo>> {
        let page = answer(self.bindings.registry_storage_blobs().call_list(&mut self.store, after, limit))?;
        Ok(page.into_iter().map(|b| BlobInfo { digest: b.digest, size: b.size, touched: b.touched }).collect())
    }

    fn touch(&mut self, digest: &str) -> StorageResult<bool> {
        answer(self.bindings.registry_storage_blobs().call_touch(&mut self.store, digest))
    }

    fn delete_if_older(&mut self, digest: &str, before: u64) -> StorageResult<bool> {
        answer(self.bindings.registry_storage_blobs().call_delete_if_older(&mut self.store, digest, before))
    }

    fn list_uploads(&mut self, after: Option<&str>, limit: u32) -> StorageResult<Vec<UploadInfo>> {
        let page = answer(self.bindings.registry_storage_blobs().call_list_uploads(&mut self.store, after, limit))?;
        Ok(page.into_iter().map(|u| UploadInfo { id: u.id, size: u.size, modified: u.modified }).collect())
    }

    fn start(&mut self) -> StorageResult<ResourceAny> {
        answer(self.bindings.registry_storage_blobs().upload().call_start(&mut self.store))
    }

    fn resume(&mut self, id: &str) -> StorageResult<ResourceAny> {
        answer(self.bindings.registry_storage_blobs().upload().call_resume(&mut self.store, id))
    }

    fn id(&mut self, upload: &ResourceAny) -> String {
        self.bindings.registry_storage_blobs().upload().call_id(&mut self.store, *upload).expect("storage-fs trapped")
    }

    fn size(&mut self, upload: &ResourceAny) -> StorageResult<u64> {
        answer(self.bindings.registry_storage_blobs().upload().call_size(&mut self.store, *upload))
    }

    fn append(&mut self, upload: &ResourceAny, bytes: &[u8]) -> StorageResult<()> {
        let stream: Resource<DynOutputStream> =
            answer(self.bindings.registry_storage_blobs().upload().call_append(&mut self.store, *upload))?;
        let writer = self.store.data_mut().table.get_mut(&stream).expect("a live stream");
        let mut failure = None;
        for piece in bytes.chunks(1 << 20) {
            let piece = bytes::Bytes::copy_from_slice(piece);
            if let Err(e) = wasmtime_wasi::runtime::in_tokio(writer.blocking_write_and_flush(piece)) {
                failure = Some(e);
                break;
            }
        }
        self.store.data_mut().table.delete(stream).expect("dropping the stream");
        let Some(failure) = failure else { return Ok(()) };
        let StreamError::LastOperationFailed(error) = failure else { return Err(stream_failed(failure)) };
        // As the registry does: ask the store whose fault it was.
        let error = self.store.data_mut().table.push(error).expect("a table slot");
        let blame = self.bindings.registry_storage_blobs().upload().call_append_failure(
            &mut self.store,
            *upload,
            Resource::new_borrow(error.rep()),
        );
        let blame = blame.expect("storage-fs trapped");
        self.store.data_mut().table.delete(error).expect("dropping the error");
        Err(blame.map_or_else(|| StorageError::Other("the store blamed the caller".into()), from_wit))
    }

    fn commit(&mut self, upload: &ResourceAny, expected_digest: &str) -> StorageResult<u64> {
        answer(self.bindings.registry_storage_blobs().upload().call_commit(&mut self.store, *upload, expected_digest))
    }

    fn abort(&mut self, upload: &ResourceAny) -> StorageResult<()> {
        answer(self.bindings.registry_storage_blobs().upload().call_abort(&mut self.store, *upload))
    }

    fn get(&mut self, key: &str) -> StorageResult<Option<Entry>> {
        let entry = answer(self.bindings.registry_storage_kv().call_get(&mut self.store, key))?;
        Ok(entry.map(|e| Entry { value: e.value, version: e.version }))
    }

    fn set(&mut self, key: &str, value: &[u8]) -> StorageResult<u64> {
        answer(self.bindings.registry_storage_kv().call_set(&mut self.store, key, value))
    }

    fn set_if(&mut self, key: &str, value: &[u8], expected: Option<u64>) -> StorageResult<u64> {
        answer(self.bindings.registry_storage_kv().call_set_if(&mut self.store, key, value, expected))
    }

    fn delete(&mut self, key: &str) -> StorageResult<bool> {
        answer(self.bindings.registry_storage_kv().call_delete(&mut self.store, key))
    }

    fn list_keys(&mut self, prefix: &str, after: Option<&str>, limit: u32) -> StorageResult<Vec<String>> {
        answer(self.bindings.registry_storage_kv().call_list_keys(&mut self.store, prefix, after, limit))
    }
}

storage_contract::contract_tests!(FsComponentStore);

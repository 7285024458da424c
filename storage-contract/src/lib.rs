//! The storage contract test suite: the semantics of `wit/blobs.wit` and
//! `wit/kv.wit` written once, as test cases, and run against every storage
//! backend (as distribution's `registry/storage/driver/testsuites`).
//!
//! A backend joins the suite with an adapter and one macro call:
//!
//! 1. Implement [`ContractStore`] for a type that makes a fresh, empty store
//!    (say, on a new temporary directory) and hands out clients, and
//!    [`ContractClient`] for the client: one method per contract function,
//!    answering as the backend does (`from_wit_error!` converts a
//!    binding's `error`). A client stands for one request; for a component
//!    backend, make it a fresh instance. Clients of one store must work from
//!    several threads at once: the concurrency cases use several.
//! 2. In a test module of the backend's crate, write
//!    `storage_contract::contract_tests!(MyStore);`: it expands to one
//!    `#[test]` per case of [`cases`], each on a fresh store.
//! 3. `cargo test` runs them with the backend's other tests (at the
//!    workspace root, `cargo test --release` runs every backend's).
//!
//! For another component exporting `registry:storage/blobs` and `kv`, the
//! storage-fs adapter is the model: the same `bindgen!` of the storage-fs
//! world, another component file, and whatever its WASI context needs.
//!
//! The backends checked so far: `registry-host`'s filesystem store
//! (`host/src/storage/contract.rs`, natively, through the same trait
//! implementations the registry component calls) and `storage-fs` as a
//! component in wasmtime (`registry-wasm/tests/storage_fs_contract.rs`,
//! one wasmtime instance per client over one preopened `/data`).
//!
//! The `full_disk_*` cases run each backend out of space: for a filesystem
//! backend, on a [`SmallFs`] (a tmpfs of its own, so only as root;
//! `scripts/test.sh` leaves them out by name otherwise).
//!
//! [`seaweedfs`] starts SeaweedFS, an S3-compatible store, for the tests of
//! the S3 backend and the end-to-end suite's `host-s3` deployment.
//!
//! What the suite cannot check is left to each backend's own tests:
//! durability across a crash, and the `conflict` of a second append stream
//! (which `storage-fs` cannot detect, see `wit/blobs.wit`).

#![deny(missing_docs)]

pub mod cases;
pub mod seaweedfs;
mod small_fs;

pub use small_fs::SmallFs;
pub use storage_layout::pages::{BlobInfo, UploadInfo};
pub use storage_layout::{StorageError, StorageResult};

/// A backend under test: a store, and clients on it.
pub trait ContractStore: Sync + Sized {
    /// What one request sees.
    type Client: ContractClient;

    /// A new, empty store of its own.
    fn fresh() -> Self;

    /// A new client on this store.
    fn client(&self) -> Self::Client;

    /// A new, empty store of its own with room for only about `room` more
    /// bytes, the rest of its space taken by something else (for a
    /// filesystem: a file beside the data on a small [`SmallFs`]), for the
    /// `full_disk_*` cases. A backend that cannot be filled in a test panics
    /// saying why.
    fn nearly_full(room: u64) -> Self;

    /// Gives back the space that [`nearly_full`](Self::nearly_full) took.
    fn free_space(&self);

    /// The longest key this store takes: the contract's 1024 bytes, or
    /// fewer where the backend's names are shorter (an object store's key
    /// holds the backend's own prefix too; `wit/kv.wit` says so).
    fn max_key_len(&self) -> usize {
        storage_layout::keys::MAX_KEY_LEN
    }
}

/// A stored kv value and its version (`kv.entry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: Vec<u8>,
    /// Its version.
    pub version: u64,
}

/// The contract's functions, as one request calls them.
pub trait ContractClient: Send {
    /// An `upload` resource.
    type Upload;
    /// An open `input-stream` from `blobs.read`.
    type Reader;

    /// `blobs.stat`.
    fn stat(&mut self, digest: &str) -> StorageResult<Option<u64>>;
    /// `blobs.read`: opens the stream.
    fn read(&mut self, digest: &str, offset: u64, length: Option<u64>) -> StorageResult<Option<Self::Reader>>;
    /// Reads a stream from [`read`](Self::read) until it is closed.
    fn read_to_end(&mut self, reader: Self::Reader) -> StorageResult<Vec<u8>>;
    /// `blobs.delete`.
    fn delete_blob(&mut self, digest: &str) -> StorageResult<bool>;
    /// `blobs.list`.
    fn list(&mut self, after: Option<&str>, limit: u32) -> StorageResult<Vec<BlobInfo>>;
    /// `blobs.touch`.
    fn touch(&mut self, digest: &str) -> StorageResult<bool>;
    /// `blobs.delete-if-older`.
    fn delete_if_older(&mut self, digest: &str, before: u64) -> StorageResult<bool>;
    /// `blobs.list-uploads`.
    fn list_uploads(&mut self, after: Option<&str>, limit: u32) -> StorageResult<Vec<UploadInfo>>;
    /// `upload.start`.
    fn start(&mut self) -> StorageResult<Self::Upload>;
    /// `upload.resume`.
    fn resume(&mut self, id: &str) -> StorageResult<Self::Upload>;
    /// `upload.id`.
    fn id(&mut self, upload: &Self::Upload) -> String;
    /// `upload.size`.
    fn size(&mut self, upload: &Self::Upload) -> StorageResult<u64>;
    /// `upload.append`, then writes `bytes` to the stream, flushes it and
    /// drops it. If the stream fails, the answer of `upload.append-failure`
    /// for its error: the store's error, or `other` if it blames the caller.
    fn append(&mut self, upload: &Self::Upload, bytes: &[u8]) -> StorageResult<()>;
    /// `upload.commit`.
    fn commit(&mut self, upload: &Self::Upload, expected_digest: &str) -> StorageResult<u64>;
    /// `upload.abort`.
    fn abort(&mut self, upload: &Self::Upload) -> StorageResult<()>;

    /// `kv.get`.
    fn get(&mut self, key: &str) -> StorageResult<Option<Entry>>;
    /// `kv.set`.
    fn set(&mut self, key: &str, value: &[u8]) -> StorageResult<u64>;
    /// `kv.set-if`.
    fn set_if(&mut self, key: &str, value: &[u8], expected: Option<u64>) -> StorageResult<u64>;
    /// `kv.delete`.
    fn delete(&mut self, key: &str) -> StorageResult<bool>;
    /// `kv.list-keys`.
    fn list_keys(&mut self, prefix: &str, after: Option<&str>, limit: u32) -> StorageResult<Vec<String>>;
}

/// Defines `fn from_wit(e: $error) -> StorageError` for a backend's
/// bindgen-generated `registry:storage/types.error` type (every binding
/// generates its own, with the same cases).
#[macro_export]
macro_rules! from_wit_error {
    ($error:ty) => {
        fn from_wit(e: $error) -> $crate::StorageError {
            type E = $error;
            match e {
                E::NotFound => $crate::StorageError::NotFound,
                E::DigestMismatch(actual) => $crate::StorageError::DigestMismatch(actual),
                E::Conflict => $crate::StorageError::Conflict,
                E::Invalid(m) => $crate::StorageError::Invalid(m),
                E::Full => $crate::StorageError::Full,
                E::Unavailable(m) => $crate::StorageError::Unavailable(m),
                E::Other(m) => $crate::StorageError::Other(m),
            }
        }
    };
}

/// Expands to one `#[test]` per contract case, each on a fresh
/// `<$store as ContractStore>::fresh()`. Call it inside a test module.
#[macro_export]
macro_rules! contract_tests {
    ($store:ty) => {
        $crate::contract_tests!($store, without_full_disk);
        $crate::contract_tests!(@full_cases $store;
            full_disk_append_is_refused_and_releases_the_upload,
            full_disk_kv_write_is_refused_and_keeps_the_old_value,
            full_disk_writes_succeed_again_once_space_is_freed,
        );
    };
    // For a store that no test can fill (a remote object store).
    ($store:ty, without_full_disk) => {
        $crate::contract_tests!(@cases $store;
            blob_absent_is_none,
            blob_bad_digests_are_invalid,
            blob_commit_by_digest,
            blob_commit_mismatch_stores_nothing,
            blob_commit_of_stored_content_keeps_one_copy,
            blob_empty,
            blob_resume_by_id_in_later_requests,
            blob_resume_unknown_or_malformed_id,
            blob_abort_is_idempotent,
            blob_range_reads,
            blob_stream_survives_delete,
            blob_delete_is_idempotent,
            blob_visibility_is_atomic_under_concurrency,
            blob_concurrent_uploads,
            blob_list_pages_in_digest_order,
            blob_touch_refreshes_the_time,
            blob_delete_if_older_keeps_what_is_newer,
            blob_delete_if_older_never_removes_a_blob_touched_meanwhile,
            blob_delete_if_older_never_removes_a_blob_committed_meanwhile,
            blob_list_uploads_pages_uploads_in_progress,
            kv_absent,
            kv_versions_and_set_if,
            kv_delete_is_idempotent,
            kv_key_limits,
            kv_value_limits,
            kv_odd_keys_round_trip,
            kv_list_order_and_prefix,
            kv_list_paging,
            kv_set_if_absent_has_one_winner,
            kv_set_if_version_has_one_winner,
            kv_no_lost_updates,
            kv_visibility_is_atomic_under_concurrency,
        );
    };
    (@cases $store:ty; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let store = <$store as $crate::ContractStore>::fresh();
                $crate::cases::$case(&store);
            }
        )*
    };
    // Each makes its own nearly full store.
    (@full_cases $store:ty; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::cases::$case::<$store>();
            }
        )*
    };
}

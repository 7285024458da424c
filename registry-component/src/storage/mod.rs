//! The seam between the handlers and the host: the storage contract of
//! `wit/` (content-addressed blobs with resumable uploads, and a versioned
//! key-value store) as a Rust trait, plus the randomness the handlers need.
//!
//! `crate::wasi::storage` implements it on the component's imports;
//! [`memory::MemoryStorage`] implements it in plain Rust so that every
//! handler runs under `cargo test`. The handlers are generic over it, so
//! nothing is dispatched dynamically per request. The request body and the
//! blob read stream are associated types: the wasm implementation splices
//! bytes between wasi streams and never copies them through the component.
//! [`typed::StorageExt`] is what the handlers call: typed keys in, and
//! `RegistryError`s out.

pub mod memory;
pub mod typed;

pub use typed::StorageExt;

/// Why a storage call failed: the `error` variant of `wit/types.wit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The named upload (or, where documented, blob) does not exist.
    NotFound,
    /// `commit` found other bytes: the payload is their actual digest.
    DigestMismatch(String),
    /// A conditional write lost a race, or an append stream is already open.
    Conflict,
    /// The caller passed something malformed.
    Invalid(String),
    /// No room left for the write; the operation had no visible effect.
    Full,
    /// The store could not be reached or did not answer in time; the
    /// operation may or may not have taken effect.
    Unavailable(String),
    /// The backend failed; the operation had no visible effect.
    Other(String),
}

/// Why [`Upload::append`] failed: the request body broke (a client
/// problem) or the store did (the upload is then gone, as after `abort`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendError {
    /// Reading the request body failed after `received` bytes.
    Body {
        /// Bytes moved before the failure.
        received: u64,
        /// What went wrong.
        reason: String,
    },
    /// The store refused or failed.
    Storage(Error),
}

impl From<Error> for AppendError {
    fn from(e: Error) -> Self {
        AppendError::Storage(e)
    }
}

/// A kv value and its version (`wit/kv.wit`'s `entry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// Changes on every write of the key.
    pub version: u64,
}

/// A committed blob as [`Storage::blob_list`] reports it (`blob-info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Last commit or touch, seconds since the epoch.
    pub touched: u64,
}

/// An upload in progress as [`Storage::list_uploads`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    /// The id [`Storage::resume_upload`] takes.
    pub id: String,
    /// Bytes received so far.
    pub size: u64,
    /// Last append (or start), seconds since the epoch.
    pub modified: u64,
}

/// An upload in progress (`wit/blobs.wit`'s `upload` resource).
pub trait Upload {
    /// What [`Upload::append`] reads from: the request body.
    type Body: crate::http::RequestBody;

    /// The upload's id, for [`Storage::resume_upload`] in a later request.
    fn id(&self) -> String;
    /// Bytes accepted so far.
    fn size(&self) -> Result<u64, Error>;
    /// Moves the whole of `body` into the upload (spliced, not copied,
    /// where the host allows); the number of bytes moved.
    fn append(&self, body: &mut Self::Body) -> Result<u64, AppendError>;
    /// Appends small bytes held in memory (a manifest).
    fn write(&self, bytes: &[u8]) -> Result<(), Error>;
    /// Stores the bytes as a blob if they hash to `expected_digest`; the
    /// upload is gone afterwards, on success and on a mismatch alike.
    fn commit(&self, expected_digest: &str) -> Result<u64, Error>;
    /// Discards the upload. Idempotent.
    fn abort(&self) -> Result<(), Error>;
}

/// What the handlers need from their host: `wit/blobs.wit`, `wit/kv.wit`,
/// random bytes and the time.
pub trait Storage {
    /// A request body, as [`Upload::append`] takes it.
    type Body: crate::http::RequestBody;
    /// A stream over a blob's bytes, handed to the response.
    type Reader;
    /// An upload in progress.
    type Upload: Upload<Body = Self::Body>;

    /// The value of `key` with its version, if present.
    fn kv_get(&self, key: &str) -> Result<Option<Entry>, Error>;
    /// Stores `value` under `key`; the new version.
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<u64, Error>;
    /// Stores `value` only if the key's version is `expected` (`None`:
    /// only if absent); `Conflict` otherwise.
    fn kv_set_if(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, Error>;
    /// Removes `key`; whether it existed.
    fn kv_delete(&self, key: &str) -> Result<bool, Error>;
    /// Keys starting with `prefix`, in byte order, after `after`, at most `limit`.
    fn kv_list_keys(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<String>, Error>;

    /// Size of the committed blob `digest`, if stored.
    fn blob_stat(&self, digest: &str) -> Result<Option<u64>, Error>;
    /// A stream over `length` bytes (to the end when `None`) of the blob
    /// from `offset`, if stored.
    fn blob_read(&self, digest: &str, offset: u64, length: Option<u64>) -> Result<Option<Self::Reader>, Error>;
    /// A URL the client may fetch the blob from itself (a presigned URL of
    /// the store), or `None` when blobs are served through [`Storage::blob_read`].
    fn blob_redirect(&self, digest: &str) -> Result<Option<String>, Error>;
    /// Removes the blob `digest`; whether it existed.
    fn blob_delete(&self, digest: &str) -> Result<bool, Error>;
    /// The bytes of a small blob (a manifest), at most `max` of them, if
    /// stored.
    fn blob_bytes(&self, digest: &str, max: u64) -> Result<Option<Vec<u8>>, Error>;
    /// Committed blobs in digest order after `after`, at most `limit`.
    fn blob_list(&self, after: Option<&str>, limit: u32) -> Result<Vec<BlobInfo>, Error>;
    /// Marks the blob as in use now; false if it is not stored.
    fn blob_touch(&self, digest: &str) -> Result<bool, Error>;
    /// Removes the blob only if last committed or touched before `before`
    /// (seconds since the epoch); whether it removed it.
    fn blob_delete_if_older(&self, digest: &str, before: u64) -> Result<bool, Error>;
    /// Uploads in progress in id order after `after`, at most `limit`.
    fn list_uploads(&self, after: Option<&str>, limit: u32) -> Result<Vec<UploadInfo>, Error>;
    /// Starts a new, empty upload.
    fn start_upload(&self) -> Result<Self::Upload, Error>;
    /// Reopens the upload `id`: `NotFound` once committed or aborted.
    fn resume_upload(&self, id: &str) -> Result<Self::Upload, Error>;

    /// `len` bytes from a cryptographically secure source.
    fn random_bytes(&self, len: usize) -> Vec<u8>;
    /// The wall-clock time: behind the seam, like randomness, so that
    /// anything that ages (upload expiry, a collection's grace period) runs
    /// under a clock the tests set.
    fn now(&self) -> std::time::SystemTime;
    /// Waits `duration` (a manifest push waiting for a collection's step
    /// on its repository to end).
    fn pause(&self, duration: std::time::Duration);
}

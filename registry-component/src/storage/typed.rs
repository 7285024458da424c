//! Typed access to the storage seam for the handlers: kv keys come only
//! from `store::keys`, blobs are named by [`Digest`], and storage failures
//! become `RegistryError`s.

use super::{AppendError, Error, Storage, Upload};
use crate::error::RegistryError;
use crate::oci::digest::Digest;

impl From<Error> for RegistryError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => RegistryError::internal("storage: not found"),
            Error::DigestMismatch(actual) => {
                RegistryError::DigestInvalid(Some(format!("the content's digest is {actual}")))
            }
            Error::Conflict => RegistryError::internal("storage: conflicting write"),
            Error::Invalid(m) => RegistryError::internal(format!("storage rejected a request: {m}")),
            Error::Full => RegistryError::StorageFull,
            Error::Unavailable(m) => RegistryError::StorageUnavailable(m),
            Error::Other(m) => RegistryError::internal(format!("storage failed: {m}")),
        }
    }
}

impl From<AppendError> for RegistryError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Body { received, reason } => RegistryError::BlobUploadInvalid(Some(format!(
                "receiving the body failed after {received} bytes: {reason}"
            ))),
            AppendError::Storage(e) => e.into(),
        }
    }
}

/// The storage operations as the handlers use them; implemented for every
/// [`Storage`].
pub trait StorageExt: Storage {
    /// The value under `key`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        Ok(self.kv_get(key)?.map(|e| e.value))
    }

    /// Whether `key` exists.
    fn exists(&self, key: &str) -> Result<bool, RegistryError> {
        Ok(self.kv_get(key)?.is_some())
    }

    /// Stores `value` under `key`.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), RegistryError> {
        self.kv_set(key, value)?;
        Ok(())
    }

    /// Stores `value` under `key` unless the key exists; whether it wrote.
    fn set_if_absent(&self, key: &str, value: &[u8]) -> Result<bool, RegistryError> {
        match self.kv_set_if(key, value, None) {
            Ok(_) => Ok(true),
            Err(Error::Conflict) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `key`; whether it existed.
    fn delete(&self, key: &str) -> Result<bool, RegistryError> {
        Ok(self.kv_delete(key)?)
    }

    /// Keys under `prefix` after `after`, at most `limit`.
    fn list(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<String>, RegistryError> {
        Ok(self.kv_list_keys(prefix, after, limit)?)
    }

    /// Size of a stored blob.
    fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        Ok(self.blob_stat(digest.as_str())?)
    }

    /// A stream over a stored blob's bytes (or a range of them).
    fn blob_stream(
        &self,
        digest: &Digest,
        offset: u64,
        length: Option<u64>,
    ) -> Result<Option<Self::Reader>, RegistryError> {
        Ok(self.blob_read(digest.as_str(), offset, length)?)
    }

    /// Removes a blob's bytes.
    fn blob_remove(&self, digest: &Digest) -> Result<bool, RegistryError> {
        Ok(self.blob_delete(digest.as_str())?)
    }

    /// Stores small bytes (a manifest) as a blob under their digest.
    fn blob_put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), RegistryError> {
        let upload = self.start_upload()?;
        if let Err(e) = upload.write(bytes) {
            let _ = upload.abort();
            return Err(e.into());
        }
        upload.commit(digest.as_str())?;
        Ok(())
    }
}

impl<S: Storage> StorageExt for S {}

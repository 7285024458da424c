//! Typed access to the storage contract for the handlers: kv keys come only
//! from `store::keys`, and storage failures become `RegistryError`s.

use crate::bindings::{blobs, kv, types};
use crate::error::RegistryError;
use crate::oci::digest::Digest;
use wasip2::io::streams::InputStream;

pub use blobs::Upload;

impl From<types::Error> for RegistryError {
    fn from(e: types::Error) -> Self {
        match e {
            types::Error::NotFound => RegistryError::internal("storage: not found"),
            types::Error::DigestMismatch(actual) => {
                RegistryError::DigestInvalid(Some(format!("the content's digest is {actual}")))
            }
            types::Error::Conflict => RegistryError::internal("storage: conflicting write"),
            types::Error::Invalid(m) => RegistryError::internal(format!("storage rejected a request: {m}")),
            types::Error::Other(m) => RegistryError::internal(format!("storage failed: {m}")),
        }
    }
}

/// The value under `key`.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
    Ok(kv::get(key)?.map(|e| e.value))
}

/// Whether `key` exists.
pub fn exists(key: &str) -> Result<bool, RegistryError> {
    Ok(kv::get(key)?.is_some())
}

/// Stores `value` under `key`.
pub fn set(key: &str, value: &[u8]) -> Result<(), RegistryError> {
    kv::set(key, value)?;
    Ok(())
}

/// Stores `value` under `key` unless the key exists; whether it wrote.
pub fn set_if_absent(key: &str, value: &[u8]) -> Result<bool, RegistryError> {
    match kv::set_if(key, value, None) {
        Ok(_) => Ok(true),
        Err(types::Error::Conflict) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Removes `key`; whether it existed.
pub fn delete(key: &str) -> Result<bool, RegistryError> {
    Ok(kv::delete(key)?)
}

/// Keys under `prefix` after `after`, at most `limit`.
pub fn list(prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<String>, RegistryError> {
    Ok(kv::list_keys(prefix, after, limit)?)
}

/// Size of a stored blob.
pub fn blob_size(digest: &Digest) -> Result<Option<u64>, RegistryError> {
    Ok(blobs::stat(digest.as_str())?)
}

/// A stream over a stored blob's bytes (or a range of them).
pub fn blob_read(digest: &Digest, offset: u64, length: Option<u64>) -> Result<Option<InputStream>, RegistryError> {
    Ok(blobs::read(digest.as_str(), offset, length)?)
}

/// Removes a blob's bytes.
pub fn blob_delete(digest: &Digest) -> Result<bool, RegistryError> {
    Ok(blobs::delete(digest.as_str())?)
}

/// Stores small bytes (a manifest) as a blob under their digest.
pub fn blob_put(digest: &Digest, bytes: &[u8]) -> Result<(), RegistryError> {
    let upload = Upload::start()?;
    {
        let mut out = upload.append()?;
        std::io::Write::write_all(&mut out, bytes)
            .map_err(|e| RegistryError::internal(format!("writing to storage: {e}")))?;
        out.blocking_flush().map_err(|e| RegistryError::internal(format!("writing to storage: {e:?}")))?;
    }
    upload.commit(digest.as_str())?;
    Ok(())
}

//! Registry state kept in the host's kv store (`wit/kv.wit`).
//!
//! `keys` is the only module that builds kv keys; every other module that
//! reads or writes kv goes through it.

pub mod keys;

use crate::error::RegistryError;
use crate::storage::{Storage, StorageExt};

/// The secret kept under `key`, made of `len` random bytes by whichever
/// request needs it first. Two first requests may race: whichever secret
/// landed first is the one both use.
pub fn secret<S: Storage>(st: &S, key: &str, len: usize) -> Result<Vec<u8>, RegistryError> {
    if let Some(secret) = st.get(key)? {
        return Ok(secret);
    }
    let fresh = st.random_bytes(len);
    st.set_if_absent(key, &fresh)?;
    st.get(key)?.ok_or_else(|| RegistryError::internal(format!("the secret {key} vanished")))
}

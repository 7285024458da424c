//! `kv` on the object store: one object per key, `kv/<key>`, holding the
//! version (8 bytes, little-endian) and then the value, as a value file of
//! the filesystem backends does (`storage_layout::entry`).
//!
//! Versions are checked and written in one step by the store's conditional
//! writes: a write names the ETag of the object it replaces (`If-Match`) or
//! requires that there is none (`If-None-Match: *`), so that writers on any
//! number of instances never lose an update. The version is in the body, so
//! two versions of a key never share an ETag (an ETag is a hash of the
//! body). Each instance remembers the ETag of the versions it read or
//! wrote, so that a `set-if` after a `get` is one request; a remembered
//! ETag that is no longer current only costs a failed write and a re-read.

use super::objects::Precondition;
use super::S3Store;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use storage_layout::entry::{check_value, decode_entry, version_header};
use storage_layout::keys::{key_path, list_start};
use storage_layout::{StorageError, StorageResult};

/// How many keys' ETags an instance remembers; past it, it forgets all.
const REMEMBERED: usize = 100_000;
/// Attempts of an unconditional `set` that keeps meeting other writers.
const SET_ATTEMPTS: usize = 20;

/// Key → (version, ETag) of what this instance last read or wrote.
#[derive(Default)]
pub struct Versions(Mutex<HashMap<String, (u64, String)>>);

impl Versions {
    fn get(&self, key: &str) -> Option<(u64, String)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    fn remember(&self, key: &str, version: u64, etag: String) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= REMEMBERED {
            map.clear();
        }
        map.insert(key.to_string(), (version, etag));
    }

    fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

impl S3Store {
    /// The object of `key`, once the key is checked as every backend does.
    fn kv_object(&self, key: &str) -> StorageResult<String> {
        key_path(key)?;
        if key.len() > self.max_key_len() {
            return Err(StorageError::Invalid(format!(
                "key of {} bytes: this store takes at most {} (an object name holds its prefix too)",
                key.len(),
                self.max_key_len()
            )));
        }
        Ok(format!("{}kv/{key}", self.root))
    }

    /// The current version and ETag of `key`, read from the store.
    async fn kv_current(&self, key: &str, object: &str) -> StorageResult<Option<(u64, String)>> {
        Ok(self.kv_read(key, object).await?.map(|(version, _, etag)| (version, etag)))
    }

    async fn kv_read(&self, key: &str, object: &str) -> StorageResult<Option<(u64, Bytes, String)>> {
        let Some((bytes, meta)) = self.client.get(object).await? else {
            self.versions.forget(key);
            return Ok(None);
        };
        let (version, value) = decode_entry(&bytes)
            .ok_or_else(|| StorageError::Other(format!("kv object {object} is too short to hold a version")))?;
        let value = bytes.slice_ref(value);
        self.versions.remember(key, version, meta.etag.clone());
        Ok(Some((version, value, meta.etag)))
    }

    pub async fn kv_get(&self, key: &str) -> StorageResult<Option<(Vec<u8>, u64)>> {
        let object = self.kv_object(key)?;
        Ok(self.kv_read(key, &object).await?.map(|(version, value, _)| (value.to_vec(), version)))
    }

    /// Writes version `version` of `key` over the object `pre` names.
    async fn kv_write(
        &self,
        key: &str,
        object: &str,
        value: &[u8],
        version: u64,
        pre: Precondition,
    ) -> StorageResult<u64> {
        let mut body = Vec::with_capacity(8 + value.len());
        body.extend_from_slice(&version_header(version));
        body.extend_from_slice(value);
        match self.client.put(object, Bytes::from(body), &pre).await {
            Ok(etag) => {
                self.versions.remember(key, version, etag);
                Ok(version)
            }
            Err(e) => {
                self.versions.forget(key);
                Err(e)
            }
        }
    }

    pub async fn kv_set(&self, key: &str, value: &[u8]) -> StorageResult<u64> {
        check_value(value)?;
        let object = self.kv_object(key)?;
        let mut current = self.versions.get(key);
        for _ in 0..SET_ATTEMPTS {
            let (version, pre) = match &current {
                Some((version, etag)) => (version + 1, Precondition::Is(etag.clone())),
                None => (1, Precondition::Absent),
            };
            match self.kv_write(key, &object, value, version, pre).await {
                Err(StorageError::Conflict) => current = self.kv_current(key, &object).await?,
                other => return other,
            }
        }
        Err(StorageError::Other(format!("kv set {key}: other writers kept winning")))
    }

    pub async fn kv_set_if(&self, key: &str, value: &[u8], expected: Option<u64>) -> StorageResult<u64> {
        check_value(value)?;
        let object = self.kv_object(key)?;
        let Some(expected) = expected else {
            // A key written after a delete starts afresh.
            return self.kv_write(key, &object, value, 1, Precondition::Absent).await;
        };
        // The remembered ETag first; if the key moved on since (or was
        // deleted and written again), the write fails and the store says
        // what is current.
        if let Some((version, etag)) = self.versions.get(key).filter(|(version, _)| *version == expected) {
            match self.kv_write(key, &object, value, version + 1, Precondition::Is(etag)).await {
                Err(StorageError::Conflict) => {}
                other => return other,
            }
        }
        match self.kv_current(key, &object).await? {
            Some((version, etag)) if version == expected => {
                self.kv_write(key, &object, value, version + 1, Precondition::Is(etag)).await
            }
            _ => Err(StorageError::Conflict),
        }
    }

    pub async fn kv_delete(&self, key: &str) -> StorageResult<bool> {
        let object = self.kv_object(key)?;
        self.versions.forget(key);
        // Removed only as the version looked at, so that of two deletes
        // racing, one says it removed the key.
        loop {
            let Some(meta) = self.client.head(&object).await? else { return Ok(false) };
            if self.client.delete(&object, &Precondition::Is(meta.etag)).await? {
                return Ok(true);
            }
        }
    }

    pub async fn kv_list(&self, prefix: &str, after: Option<&str>, limit: u32) -> StorageResult<Vec<String>> {
        // The same checks of the prefix as every backend makes.
        list_start(prefix)?;
        let base = format!("{}kv/", self.root);
        let object_prefix = format!("{base}{prefix}");
        let start_after = after.map(|after| format!("{base}{after}"));
        let listed = self.client.list(&object_prefix, start_after.as_deref(), limit as usize).await?;
        Ok(listed.into_iter().filter_map(|o| o.key.strip_prefix(&base).map(str::to_string)).collect())
    }
}

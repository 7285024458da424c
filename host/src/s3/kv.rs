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
        let encoded = encode_key(key);
        let name = format!("{}kv/{encoded}", self.root);
        let longest_part = encoded.split('/').map(str::len).max().unwrap_or(0);
        if longest_part > MAX_NAME {
            return Err(StorageError::Invalid(format!(
                "key segment of over {MAX_NAME} bytes once encoded: this store cannot name it"
            )));
        }
        if key.len() > self.max_key_len() || name.len() > super::MAX_OBJECT_KEY {
            return Err(StorageError::Invalid(format!(
                "key of {} bytes: this store takes at most {} (an object name holds its prefix too)",
                key.len(),
                self.max_key_len()
            )));
        }
        Ok(name)
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
        let object_prefix = format!("{base}{}", encode_key(prefix));
        let start_after = after.map(|after| format!("{base}{}", encode_key(after)));
        let listed = self.client.list(&object_prefix, start_after.as_deref(), limit as usize).await?;
        Ok(listed.into_iter().filter_map(|o| o.key.strip_prefix(&base).map(decode_key)).collect())
    }
}

/// A key's object name (after `kv/`): `.` becomes `.0`, and `/` becomes
/// `.1/`.
///
/// Why: a store built on a filer (SeaweedFS) keeps `/` as directories, so
/// that key `a` and key `a/b` could not both be objects, and it lists a
/// directory's tree before the next name beside it (`p/a/b` before
/// `p/a-b`), which is not byte order. In these names a key's segments but
/// the last end in `.1`, so `a` (a file) and `a.1/` (a directory) differ,
/// and comparing names segment by segment or byte by byte gives the keys'
/// byte order: each byte below `.` stands for itself, `.0` and `.1` sort
/// between those and every byte above `/` (`.0` first, as `.` before `/`),
/// and no code starts another. A prefix of a key encodes to a prefix of
/// its name.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 16);
    for c in key.chars() {
        match c {
            '.' => out.push_str(".0"),
            '/' => out.push_str(".1/"),
            c => out.push(c),
        }
    }
    out
}

/// The key of an object name that [`encode_key`] made.
fn decode_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c != '.' {
            out.push(c);
        } else if chars.next() == Some('1') {
            out.push('/');
            // The directory separator after `.1`.
            chars.next();
        } else {
            out.push('.');
        }
    }
    out
}

/// Longest name of one directory or file of a filer's path (SeaweedFS,
/// like most filesystems).
const MAX_NAME: usize = 255;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_the_keys_order_and_come_back() {
        let mut keys = vec!["p/a/b", "p/a-b/c", "p/a", "p/a.b", "p/a/", "p.", "p", "p/ab", "p/a0", "é/x", "a..b"];
        keys.sort();
        let mut names: Vec<String> = keys.iter().map(|k| encode_key(k)).collect();
        names.sort();
        let back: Vec<String> = names.iter().map(|n| decode_key(n)).collect();
        assert_eq!(back, keys);
        assert!(encode_key("p/a/b").starts_with(&encode_key("p/a/")));
        // Segment by segment, as a filer lists its tree, the order holds too.
        let mut by_segments = names.clone();
        by_segments.sort_by(|a, b| a.split('/').cmp(b.split('/')));
        assert_eq!(by_segments, names);
        assert_eq!(encode_key("a/b"), "a.1/b");
    }
}

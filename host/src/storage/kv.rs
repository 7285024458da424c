//! `registry:storage/kv` on the filesystem: one file per key, in the
//! layout of `storage-layout` (`keys`: where a key's file is; `entry`: what
//! it holds, and the versions).
//!
//! An empty value file is version 1 with an empty value, so that a first
//! empty value (a link, a marker) is created in place by one exclusive hard link
//! to a shared empty file (`shared_empty.rs`), with no data to flush, no
//! rename and no new inode.
//! Writes go to a temporary file that is fsynced and renamed into place; the
//! directories they touch are returned in an `Unsynced` for the caller to
//! sync before it reports the write as durable. First empty values and
//! deletes are made durable by the journal instead (`changes.rs`), and
//! every write appends a record, so that the journal's order of changes
//! to a key is the order they happened in.
//! Read-modify-write steps (versions, `set-if`) are serialised per key by a
//! striped lock: one host process owns a data directory (`Storage::open`
//! locks it). Since every write goes through this process, reads are served
//! from a bounded in-memory cache that each write updates under its lock.

use super::changes::Change;
use super::fsutil::{self, Unsynced};
use super::journal::Journal;
use super::shared_empty::SharedEmpty;
use super::{StorageError, StorageResult};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use storage_layout::entry::{check_value, decode_entry, next_version, version_header};
use storage_layout::keys::{first_page, key_path, list_start, Listing, KV_DIR};
use storage_layout::names::TMP_DIR;

const LOCK_STRIPES: usize = 64;

/// A stored value with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value bytes.
    pub value: Vec<u8>,
    /// Changes on every write of the key.
    pub version: u64,
}

/// The filesystem key-value store.
pub struct KvStore {
    /// The data directory: key paths are relative to it.
    data: PathBuf,
    /// Its `kv/`.
    root: PathBuf,
    tmp: PathBuf,
    /// Where first empty values come from (hard links, see `shared_empty`).
    empty: SharedEmpty,
    stripes: Vec<Mutex<()>>,
    /// Recently read or written entries (`None`: known absent).
    cache: RwLock<HashMap<String, Option<Entry>>>,
    journal: Arc<Journal>,
}

/// Entries the cache holds at most; past it the cache starts afresh (a
/// registry's hot set is a few tags and links per image).
const CACHE_ENTRIES: usize = 16 * 1024;

impl KvStore {
    /// The store of data directory `data`, using `shared` for the shared
    /// empty files (on the same filesystem).
    pub fn new(data: PathBuf, shared: PathBuf, journal: Arc<Journal>) -> std::io::Result<KvStore> {
        Ok(KvStore {
            root: data.join(KV_DIR),
            tmp: data.join(TMP_DIR),
            data,
            empty: SharedEmpty::open(shared)?,
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            cache: RwLock::new(HashMap::new()),
            journal,
        })
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> StorageResult<Option<Entry>> {
        let path = self.path_of(key)?;
        if let Some(cached) = self.cache.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Ok(cached.clone());
        }
        // Under the key's lock, so that no write lands between reading the
        // file and caching what was read.
        let _guard = self.lock(key);
        let entry = read_entry(&path)?;
        self.remember(key, entry.clone());
        Ok(entry)
    }

    /// Whether the cache already shows that `set_if(key, _, expected)` must
    /// fail: a cached version other than `expected`. Costs no I/O, so the
    /// common "create if absent" of a key that exists needs no thread hop.
    /// `false` means "not known", not "would succeed".
    pub fn cached_conflict(&self, key: &str, expected: Option<u64>) -> StorageResult<bool> {
        self.path_of(key)?;
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        Ok(cache.get(key).is_some_and(|cached| cached.as_ref().map(|e| e.version) != expected))
    }

    fn remember(&self, key: &str, entry: Option<Entry>) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_ENTRIES && !cache.contains_key(key) {
            cache.clear();
        }
        cache.insert(key.to_string(), entry);
    }

    fn forget(&self, key: &str) {
        self.cache.write().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Stores `value` whatever was there; returns the new version.
    pub fn set(&self, key: &str, value: &[u8], dirty: &mut Unsynced) -> StorageResult<u64> {
        self.write(key, value, None, dirty)
    }

    /// Stores `value` only if the current version is `expected` (`None`:
    /// only if absent); otherwise `Conflict`.
    pub fn set_if(&self, key: &str, value: &[u8], expected: Option<u64>, dirty: &mut Unsynced) -> StorageResult<u64> {
        self.write(key, value, Some(expected), dirty)
    }

    fn write(
        &self,
        key: &str,
        value: &[u8],
        expected: Option<Option<u64>>,
        dirty: &mut Unsynced,
    ) -> StorageResult<u64> {
        let path = self.path_of(key)?;
        check_value(value)?;
        let _guard = self.lock(key);
        // Whatever happens below, the file is the truth: read it next time.
        self.forget(key);
        let current = read_entry(&path)?.map(|e| e.version);
        let version = next_version(current, expected)?;
        let change = if current.is_none() && value.is_empty() {
            // Right whether or not it is durable yet: the record makes it so.
            self.empty.create(&path, &mut Unsynced::default())?;
            Change::KvCreatedEmpty { key: key.to_string() }
        } else {
            fsutil::atomic_write(&self.tmp, &path, &[&version_header(version), value], dirty)?;
            Change::KvSynced { key: key.to_string() }
        };
        // Appended under the key's lock: the journal's order is the key's.
        dirty.add_journal(self.journal.append(change.encode())?);
        self.remember(key, Some(Entry { value: value.to_vec(), version }));
        Ok(version)
    }

    /// Redoes a key's change the journal recorded (at start-up).
    pub fn redo(&self, change: &Change) -> StorageResult<()> {
        match change {
            Change::KvCreatedEmpty { key } => {
                let path = self.path_of(key)?;
                match self.empty.create(&path, &mut Unsynced::default()) {
                    Ok(()) => {}
                    // A later change the journal did not reach: keep it.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Change::KvDeleted { key } => {
                let path = self.path_of(key)?;
                if fsutil::remove_if_present(&path)? {
                    fsutil::prune_empty_dirs(path.parent().expect("key path has a parent"), &self.root);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Removes `key`; returns whether it existed.
    pub fn delete(&self, key: &str, dirty: &mut Unsynced) -> StorageResult<bool> {
        let path = self.path_of(key)?;
        let _guard = self.lock(key);
        self.forget(key);
        if !fsutil::remove_if_present(&path)? {
            return Ok(false);
        }
        // Durable through the journal, which removes it again if a crash
        // brought it back.
        dirty.add_journal(self.journal.append(Change::KvDeleted { key: key.to_string() }.encode())?);
        fsutil::prune_empty_dirs(path.parent().expect("key path has a parent"), &self.root);
        Ok(true)
    }

    /// Keys starting with `prefix`, ascending, after `after`, at most `limit`.
    pub fn list_keys(&self, prefix: &str, after: Option<&str>, limit: u32) -> StorageResult<Vec<String>> {
        let (dir, dir_key) = list_start(prefix)?;
        let mut keys = Vec::new();
        Listing { prefix, after }.walk(
            &mut |d: &str| fsutil::list_dir(&self.data.join(d)),
            &dir,
            &dir_key,
            &mut keys,
        )?;
        Ok(first_page(keys, limit))
    }

    fn lock(&self, key: &str) -> std::sync::MutexGuard<'_, ()> {
        // FNV-1a: a cheap, stable spread of keys over the stripes.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in key.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        let stripe = &self.stripes[(h % LOCK_STRIPES as u64) as usize];
        stripe.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn path_of(&self, key: &str) -> StorageResult<PathBuf> {
        Ok(self.data.join(key_path(key)?.full()))
    }
}

fn read_entry(path: &Path) -> StorageResult<Option<Entry>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match decode_entry(&bytes) {
        Some((version, value)) => Ok(Some(Entry { value: value.to_vec(), version })),
        None => Err(StorageError::Other(format!("corrupt value file {}", path.display()))),
    }
}

/// The entries of directory `dir`; `None` if it does not exist. Names that
/// are not UTF-8 are no keys: left out.
#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (crate::storage::TestDir, KvStore) {
        let dir = crate::storage::TestDir::new();
        std::fs::create_dir_all(dir.path().join("kv")).unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let journal = crate::storage::test_journal(dir.path());
        let kv = KvStore::new(dir.path().to_path_buf(), dir.path().join("shared"), journal).unwrap();
        (dir, kv)
    }

    #[test]
    fn set_get_delete() {
        let (_d, kv) = store();
        assert_eq!(kv.get("a/b").unwrap(), None);
        assert_eq!(kv.set("a/b", b"x", &mut Unsynced::default()).unwrap(), 1);
        assert_eq!(kv.set("a/b", b"y", &mut Unsynced::default()).unwrap(), 2);
        assert_eq!(kv.get("a/b").unwrap(), Some(Entry { value: b"y".to_vec(), version: 2 }));
        kv.set("a", b"parent", &mut Unsynced::default()).unwrap();
        assert_eq!(kv.get("a").unwrap().unwrap().value, b"parent");
        assert!(kv.delete("a/b", &mut Unsynced::default()).unwrap());
        assert!(!kv.delete("a/b", &mut Unsynced::default()).unwrap());
        assert_eq!(kv.get("a/b").unwrap(), None);
        assert_eq!(kv.get("a").unwrap().unwrap().value, b"parent");
    }

    #[test]
    fn empty_first_values_and_the_cache_follow_writes() {
        let (_d, kv) = store();
        let mut dirty = Unsynced::default();
        assert_eq!(kv.get("m/k").unwrap(), None);
        assert_eq!(kv.set_if("m/k", b"", None, &mut dirty).unwrap(), 1);
        // Durable through the journal alone: no directory to sync.
        assert!(dirty.journal() > 0);
        assert!(dirty.take_dirs().is_empty());
        assert_eq!(kv.get("m/k").unwrap(), Some(Entry { value: vec![], version: 1 }));
        assert_eq!(kv.set_if("m/k", b"", None, &mut dirty), Err(StorageError::Conflict));
        assert_eq!(kv.set("m/k", b"now full", &mut dirty).unwrap(), 2);
        assert_eq!(kv.get("m/k").unwrap().unwrap().value, b"now full");
        assert!(kv.delete("m/k", &mut dirty).unwrap());
        assert_eq!(kv.get("m/k").unwrap(), None);
        // A store over the same files (no cache) reads the same.
        kv.set("m/e", b"", &mut dirty).unwrap();
        let fresh = KvStore::new(kv.data.clone(), kv.data.join("shared"), kv.journal.clone()).unwrap();
        assert_eq!(fresh.get("m/e").unwrap(), Some(Entry { value: vec![], version: 1 }));
    }

    #[test]
    fn set_if_detects_conflicts() {
        let (_d, kv) = store();
        assert_eq!(kv.set_if("k", b"1", None, &mut Unsynced::default()).unwrap(), 1);
        assert_eq!(kv.set_if("k", b"2", None, &mut Unsynced::default()), Err(StorageError::Conflict));
        assert_eq!(kv.set_if("k", b"2", Some(7), &mut Unsynced::default()), Err(StorageError::Conflict));
        assert_eq!(kv.set_if("k", b"2", Some(1), &mut Unsynced::default()).unwrap(), 2);
        assert_eq!(kv.get("k").unwrap().unwrap().value, b"2");
    }

    #[test]
    fn cached_conflicts_only_from_what_the_cache_knows() {
        let (_d, kv) = store();
        // Nothing cached yet: not known either way.
        assert!(!kv.cached_conflict("c", None).unwrap());
        assert_eq!(kv.set_if("c", b"", None, &mut Unsynced::default()).unwrap(), 1);
        assert!(kv.cached_conflict("c", None).unwrap());
        assert!(kv.cached_conflict("c", Some(2)).unwrap());
        assert!(!kv.cached_conflict("c", Some(1)).unwrap());
        assert!(kv.delete("c", &mut Unsynced::default()).unwrap());
        // Known absent: only "expected present" conflicts.
        assert_eq!(kv.get("c").unwrap(), None);
        assert!(!kv.cached_conflict("c", None).unwrap());
        assert!(kv.cached_conflict("c", Some(1)).unwrap());
        assert!(matches!(kv.cached_conflict("../c", None), Err(StorageError::Invalid(_))));
    }

    #[test]
    fn rejects_bad_keys() {
        let (_d, kv) = store();
        for key in ["", "a//b", "../x", "a/./b", "a/"] {
            assert!(matches!(kv.set(key, b"", &mut Unsynced::default()), Err(StorageError::Invalid(_))), "{key}");
        }
    }

    #[test]
    fn odd_characters_round_trip() {
        let (_d, kv) = store();
        for key in ["t/.hidden", "t/a@b", "t/sha256:abc", "t/%41", "t/ü"] {
            kv.set(key, b"v", &mut Unsynced::default()).unwrap();
        }
        let keys = kv.list_keys("t/", None, 100).unwrap();
        assert_eq!(keys, vec!["t/%41", "t/.hidden", "t/a@b", "t/sha256:abc", "t/ü"]);
    }

    #[test]
    fn list_is_sorted_paged_and_prefix_exact() {
        let (_d, kv) = store();
        for key in ["r/a/_t/x", "r/a/_t/y", "r/a/b/_t/z", "r/a-b/_t/w", "r/a/_t/w"] {
            kv.set(key, b"", &mut Unsynced::default()).unwrap();
        }
        assert_eq!(kv.list_keys("r/a/_t/", None, 10).unwrap(), vec!["r/a/_t/w", "r/a/_t/x", "r/a/_t/y"]);
        assert_eq!(kv.list_keys("r/a/_t/", Some("r/a/_t/w"), 1).unwrap(), vec!["r/a/_t/x"]);
        assert_eq!(
            kv.list_keys("r/a", None, 10).unwrap(),
            vec!["r/a-b/_t/w", "r/a/_t/w", "r/a/_t/x", "r/a/_t/y", "r/a/b/_t/z"]
        );
        assert!(kv.list_keys("nothing/", None, 10).unwrap().is_empty());
        assert!(kv.list_keys("r/", None, 0).unwrap().is_empty());
    }
}

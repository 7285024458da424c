//! `registry:storage/kv` on `wasi:filesystem`: one file per key, in the
//! layout of `registry-host` (`keys.rs`).
//!
//! Reads need no lock: a value file is only ever replaced whole, by
//! renaming a synced temporary file over it, so a reader sees the old value
//! or the new one.
//!
//! Writes (`set`, `set-if`, `delete`) read the current version and then
//! replace the file; two writers must not interleave those steps, or both
//! could write version n+1 and one update would be lost silently. The
//! native host serialises them with a mutex, but here every request may be
//! a fresh instance (even in another thread), so the lock is a file:
//! `locks/<hash of key>`, created with `open-at` `create` + `exclusive`
//! (O_EXCL), which exactly one writer wins; the others wait and retry, and
//! the winner removes it when done. That makes `set-if`'s check and write
//! one atomic step for every writer that goes through this component.
//!
//! What it cannot give:
//! - A writer that dies while holding the lock (the runtime is killed, or
//!   the instance traps between create and remove) leaves the lock behind.
//!   A lock older than [`STALE_AFTER`] is taken to be such a leftover
//!   and removed. If a writer were ever stalled that long inside its
//!   critical section, or two waiters removed the same stale lock at the
//!   same instant, two writers could overlap, and the later rename wins
//!   (last writer wins, with equal versions).
//! - The lock is advisory: it only orders writers that use it. The native
//!   host uses an in-process mutex instead, so `registry-host` and a
//!   runtime running this component must not write the same data directory
//!   at the same time (one server per data directory, as for the host).

use crate::bindings::exports::registry::storage::kv::{Entry, Guest};
use crate::bindings::exports::registry::storage::types::Error;
use crate::fs::{self, fail, Fs};
use crate::StorageFs;
use storage_layout::entry::{check_value, decode_entry, next_version, version_header, VERSION_LEN};
use storage_layout::keys::{first_page, key_path, list_start, lock_name, Listing, KV_DIR, LOCK_DIR};
use storage_layout::names::RelPath;
use storage_layout::{StorageError, StorageResult};
use wasip2::filesystem::types::ErrorCode;

/// A lock older than this is a leftover of a writer that died.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest wait for a lock before giving up with an error.
const MAX_WAIT_MS: u64 = 60_000;

impl Guest for StorageFs {
    fn get(key: String) -> Result<Option<Entry>, Error> {
        let fs = Fs::get()?;
        let path = key_path(&key)?.full();
        let Some(bytes) = fs.read_file(&path)? else { return Ok(None) };
        let (version, value) = decode_entry(&bytes).ok_or_else(|| corrupt(&path))?;
        Ok(Some(Entry { value: value.to_vec(), version }))
    }

    fn set(key: String, value: Vec<u8>) -> Result<u64, Error> {
        Ok(write(&key, &value, None)?)
    }

    fn set_if(key: String, value: Vec<u8>, expected: Option<u64>) -> Result<u64, Error> {
        Ok(write(&key, &value, Some(expected))?)
    }

    fn delete(key: String) -> Result<bool, Error> {
        let fs = Fs::get()?;
        let path = key_path(&key)?;
        let existed = {
            let _lock = KeyLock::acquire(fs, &key)?;
            let existed = fs.remove_file(&path.full())?;
            if existed {
                // Best effort, as in the native host: the value is gone either way.
                let _ = fs.sync_dir(&path.dir);
            }
            existed
        };
        if existed {
            // Empty directories would only slow listings down. A writer that
            // loses its directory to this recreates it (`rename_into`).
            fs.remove_empty_dirs(&path.dir, KV_DIR);
        }
        Ok(existed)
    }

    fn list_keys(prefix: String, after: Option<String>, limit: u32) -> Result<Vec<String>, Error> {
        let fs = Fs::get()?;
        let (dir, dir_key) = list_start(&prefix)?;
        let listing = Listing { prefix: &prefix, after: after.as_deref() };
        let mut keys = Vec::new();
        listing.walk(&mut |d: &str| fs.list_dir(d), &dir, &dir_key, &mut keys)?;
        Ok(first_page(keys, limit))
    }
}

fn corrupt(path: &str) -> StorageError {
    StorageError::Other(format!("corrupt value file {}/{path}", fs::DATA_DIR))
}

/// `set` (`expected = None`) and `set-if` (`Some(expected)`).
fn write(key: &str, value: &[u8], expected: Option<Option<u64>>) -> StorageResult<u64> {
    let fs = Fs::get()?;
    let path = key_path(key)?;
    check_value(value)?;
    let _lock = KeyLock::acquire(fs, key)?;
    let version = next_version(current_version(fs, &path)?, expected)?;
    let tmp = fs.write_temp(&[&version_header(version), value], true)?;
    if let Err(e) = fs.rename_into(&tmp, &path.dir, &path.name, true) {
        let _ = fs.remove_file(&tmp);
        return Err(e);
    }
    Ok(version)
}

/// The version of the value at `path`, reading only its header.
fn current_version(fs: Fs, path: &RelPath) -> StorageResult<Option<u64>> {
    let full = path.full();
    let Some(file) = fs.open_read(&full)? else { return Ok(None) };
    let (bytes, _) = file.read(VERSION_LEN as u64, 0).map_err(|e| fail("reading", &full, e))?;
    let (version, _) = decode_entry(&bytes).ok_or_else(|| corrupt(&full))?;
    Ok(Some(version))
}

/// The write lock of one key, held until dropped (see the module docs).
struct KeyLock {
    fs: Fs,
    path: String,
}

impl KeyLock {
    fn acquire(fs: Fs, key: &str) -> StorageResult<KeyLock> {
        let path = format!("{LOCK_DIR}/{}", lock_name(key));
        let started = fs::now_ms();
        let mut pause = 1;
        loop {
            match fs.create_new(&path) {
                Ok(_) => return Ok(KeyLock { fs, path }),
                Err(ErrorCode::Exist) => {}
                Err(e) => return Err(fail("creating", &path, e)),
            }
            if fs.age(&path).is_some_and(|age| age > STALE_AFTER) {
                let _ = fs.remove_file(&path);
                continue;
            }
            if fs::now_ms().saturating_sub(started) > MAX_WAIT_MS {
                return Err(StorageError::Other(format!("timed out waiting for the write lock of key {key:?}")));
            }
            fs::sleep_ms(pause);
            pause = (pause * 2).min(16);
        }
    }
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        let _ = self.fs.remove_file(&self.path);
    }
}

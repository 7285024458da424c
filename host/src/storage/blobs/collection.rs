//! What garbage collection asks of the blob store (`wit/blobs.wit`):
//! `list`, `touch`, `delete-if-older` and `list-uploads`.
//!
//! A blob's `touched` time is the modification time of its file, set at
//! every commit and touch (to the store's clock, not the kernel's coarser
//! one). A touch is durable as a kv write is: its journal record
//! (`changes.rs`) is flushed with the rest of the request's writes, and
//! redone after a crash.
//!
//! `delete-if-older` is atomic with respect to `touch` and `commit` of the
//! same digest because all three run under the digest's lock
//! ([`DigestLocks`]): a delete that finds the blob old removes it before a
//! touch or commit can refresh it, and one that comes after sees it fresh.
//! One process owns a data directory (`Storage::open` locks it), so an
//! in-process lock is enough.

use super::{BlobStore, Removed};
use crate::storage::changes::Change;
use crate::storage::fsutil::{self, Unsynced};
use crate::storage::{blob_path, StorageResult};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;
use storage_layout::names::{digest_hex, digest_of_hex, UPLOADS_DIR};
use storage_layout::pages::{epoch_secs, upload_page, BlobInfo, BlobPage, UploadInfo};

/// Stripes of the digest locks: digests are uniformly spread, so their
/// first byte picks one.
const STRIPES: usize = 64;

/// Locks by digest, striped: what makes `delete-if-older`, `touch`,
/// `commit` and `delete` of one digest happen one at a time. Held only for
/// quick steps (a stat, a rename, a journal append), never for an fsync.
pub(super) struct DigestLocks(Vec<Mutex<()>>);

impl Default for DigestLocks {
    fn default() -> DigestLocks {
        DigestLocks((0..STRIPES).map(|_| Mutex::new(())).collect())
    }
}

impl DigestLocks {
    /// The lock of the blob with digest hex `hex` (a checked one).
    pub(super) fn lock(&self, hex: &str) -> MutexGuard<'_, ()> {
        let byte = u8::from_str_radix(&hex[..2], 16).unwrap_or(0) as usize;
        self.0[byte % STRIPES].lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BlobStore {
    /// One page of committed blobs, named or not yet named, in digest
    /// order. Reads directories: run it off the async threads.
    pub fn list(&self, after: Option<&str>, limit: u32) -> StorageResult<Vec<BlobInfo>> {
        let unnamed: Vec<(String, PathBuf, u64)> =
            self.unnamed_map().iter().map(|(hex, blob)| (hex.clone(), blob.path.clone(), blob.size)).collect();
        let others = unnamed.iter().map(|(hex, _, _)| hex.clone()).collect();
        let page = BlobPage { after, limit }.walk(&mut |dir: &str| fsutil::list_dir(&self.root.join(dir)), others)?;
        let mut out = Vec::with_capacity(page.len());
        for hex in page {
            // Not yet named: its upload file, unless the namer renamed it
            // since; then, as for every other blob, its name.
            let upload_file = unnamed.iter().find(|(h, _, _)| *h == hex).map(|(_, path, _)| path);
            let meta = match upload_file.map(std::fs::metadata) {
                Some(Ok(meta)) => meta,
                _ => match std::fs::metadata(blob_path(&self.root, &hex)) {
                    Ok(meta) => meta,
                    // Deleted since the directory was read.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                },
            };
            out.push(BlobInfo { digest: digest_of_hex(&hex), size: meta.len(), touched: epoch_secs(meta.modified()?) });
        }
        Ok(out)
    }

    /// Makes the blob's `touched` time now; `false` if there is no such
    /// blob. Durable once `dirty` is.
    pub fn touch(&self, digest: &str, dirty: &mut Unsynced) -> StorageResult<bool> {
        let hex = digest_hex(digest)?;
        let _lock = self.digests.lock(hex);
        self.touch_locked(hex, SystemTime::now(), dirty)
    }

    /// [`touch`](Self::touch) at `now`, the caller holding the digest's
    /// lock.
    pub(super) fn touch_locked(&self, hex: &str, now: SystemTime, dirty: &mut Unsynced) -> StorageResult<bool> {
        {
            // Under the map's lock, so that the namer cannot rename an
            // unnamed blob's file away meanwhile.
            let unnamed = self.unnamed_map();
            let path = match unnamed.get(hex) {
                Some(blob) => {
                    // Whoever relies on the touch relies on the blob.
                    dirty.add_journal(blob.seq);
                    blob.path.clone()
                }
                None => blob_path(&self.root, hex),
            };
            if !fsutil::set_modified(&path, now)? {
                return Ok(false);
            }
        }
        let touched = Change::BlobTouched { hex: hex.to_string(), time: epoch_secs(now) };
        dirty.add_journal(self.journal.append(touched.encode())?);
        Ok(true)
    }

    /// Removes the blob if its `touched` time is before `before` (seconds
    /// since the epoch); whether it did. Durable as `delete` is.
    pub fn delete_if_older(&self, digest: &str, before: u64, dirty: &mut Unsynced) -> StorageResult<bool> {
        let hex = digest_hex(digest)?;
        let removed = {
            let _lock = self.digests.lock(hex);
            match self.touched_locked(hex)? {
                Some(touched) if touched < before => self.remove_locked(hex, dirty)?,
                _ => Removed::Absent,
            }
        };
        Ok(removed.finish())
    }

    /// The blob's `touched` time, `None` if it is absent; the caller holds
    /// the digest's lock.
    fn touched_locked(&self, hex: &str) -> StorageResult<Option<u64>> {
        let unnamed = self.unnamed_map();
        let path = unnamed.get(hex).map_or_else(|| blob_path(&self.root, hex), |blob| blob.path.clone());
        match std::fs::metadata(path) {
            Ok(meta) => Ok(Some(epoch_secs(meta.modified()?))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// One page of the uploads in progress, in id order. Reads a directory:
    /// run it off the async threads.
    pub fn list_uploads(&self, after: Option<&str>, limit: u32) -> StorageResult<Vec<UploadInfo>> {
        let dir = self.root.join(UPLOADS_DIR);
        let names = fsutil::list_dir(&dir)?.unwrap_or_default().into_iter().filter(|e| !e.is_dir).map(|e| e.name);
        // A small blob committed a moment ago is still in its upload's
        // file, but the upload is over.
        let committed: HashSet<PathBuf> = self.unnamed_map().values().map(|blob| blob.path.clone()).collect();
        let names = names.filter(|name| !committed.contains(&dir.join(name)));
        let mut out = Vec::new();
        for id in upload_page(names, after, limit) {
            if let Some(info) = upload_info(&dir.join(&id), id)? {
                out.push(info);
            }
        }
        Ok(out)
    }
}

/// What `list-uploads` says of the upload `id` in file `path`; `None` if
/// it ended since the directory was read.
fn upload_info(path: &Path, id: String) -> StorageResult<Option<UploadInfo>> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(UploadInfo { id, size: meta.len(), modified: epoch_secs(meta.modified()?) })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{append, commit, digest_of, store};
    use super::*;
    use std::time::Duration;

    /// When a blob is older than anything the tests compare it with.
    fn long_ago() -> SystemTime {
        SystemTime::now() - Duration::from_secs(3 * 24 * 3600)
    }

    fn touched(store: &BlobStore, digest: &str) -> u64 {
        let page = store.list(None, 100).unwrap();
        page.into_iter().find(|blob| blob.digest == digest).expect("listed").touched
    }

    #[test]
    fn a_small_blob_not_yet_named_is_listed_touched_and_deleted() {
        let dir = crate::storage::TestDir::new();
        let store = store(dir.path());
        let upload = store.start().unwrap();
        append(&store, &upload, b"unnamed");
        let digest = digest_of(b"unnamed");
        let mut unsynced = Unsynced::default();
        let before = epoch_secs(SystemTime::now());
        store.commit(&upload, &digest, &mut unsynced).unwrap();
        assert!(store.unnamed_record(&digest).is_some(), "nobody waited: not named yet");
        let listed = store.list(None, 10).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].digest.as_str(), listed[0].size), (digest.as_str(), 7));
        assert!(listed[0].touched >= before);
        assert!(store.list_uploads(None, 10).unwrap().is_empty(), "committed, so no upload");
        // Made old, then touched: fresh again.
        let path = store.unnamed(digest_hex(&digest).unwrap()).unwrap().path;
        fsutil::set_modified(&path, long_ago()).unwrap();
        assert!(touched(&store, &digest) < before);
        assert!(store.touch(&digest, &mut unsynced).unwrap());
        assert!(touched(&store, &digest) >= before);
        assert!(!store.delete_if_older(&digest, before, &mut unsynced).unwrap());
        fsutil::set_modified(&path, long_ago()).unwrap();
        assert!(store.delete_if_older(&digest, before, &mut unsynced).unwrap());
        assert_eq!(store.stat(&digest).unwrap(), None);
        assert!(store.list(None, 10).unwrap().is_empty());
        store.journal.wait_blocking(unsynced.journal()).unwrap();
        store.name_durable();
        assert!(!blob_path(dir.path(), digest_hex(&digest).unwrap()).exists());
    }

    #[test]
    fn commit_sets_the_time_of_an_upload_written_long_ago() {
        let dir = crate::storage::TestDir::new();
        let store = store(dir.path());
        for bytes in [b"small".to_vec(), vec![3u8; crate::storage::changes::BLOB_IN_RECORD_MAX as usize + 1]] {
            let upload = store.start().unwrap();
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            append(&store, &upload, bytes);
            let path = dir.path().join(UPLOADS_DIR).join(upload.id());
            fsutil::set_modified(&path, long_ago()).unwrap();
            let listed = store.list_uploads(None, 10).unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!((listed[0].id.as_str(), listed[0].size), (upload.id(), bytes.len() as u64));
            assert!(listed[0].modified < epoch_secs(SystemTime::now()) - 24 * 3600);
            let before = epoch_secs(SystemTime::now());
            let digest = digest_of(bytes);
            commit(&store, &upload, &digest).unwrap();
            assert!(touched(&store, &digest) >= before, "{} bytes", bytes.len());
            assert!(store.list_uploads(None, 10).unwrap().is_empty());
        }
    }

    #[test]
    fn a_touch_is_redone_after_a_crash() {
        let dir = crate::storage::TestDir::new();
        let data = dir.path().join("data");
        let storage = crate::storage::Storage::open(&data).unwrap();
        let bytes = vec![7u8; crate::storage::changes::BLOB_IN_RECORD_MAX as usize + 1];
        let digest = digest_of(&bytes);
        let upload = storage.blobs.start().unwrap();
        let mut writer = storage.blobs.append(&upload).unwrap();
        wasmtime_wasi::p2::OutputStream::write(&mut writer, bytes::Bytes::from(bytes)).unwrap();
        drop(writer);
        let mut unsynced = Unsynced::default();
        storage.blobs.commit(&upload, &digest, &mut unsynced).unwrap();
        let now = epoch_secs(SystemTime::now());
        assert!(storage.blobs.touch(&digest, &mut unsynced).unwrap());
        storage.journal.wait_blocking(unsynced.journal()).unwrap();
        drop(storage);
        // The crash lost the touch's change of the file's time.
        let path = blob_path(&data, digest_hex(&digest).unwrap());
        fsutil::set_modified(&path, long_ago()).unwrap();
        let storage = crate::storage::Storage::open(&data).unwrap();
        assert!(epoch_secs(std::fs::metadata(&path).unwrap().modified().unwrap()) >= now);
        assert!(!storage.blobs.delete_if_older(&digest, now, &mut Unsynced::default()).unwrap());
    }
}

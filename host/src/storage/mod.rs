//! The storage contract (`wit/`) implemented on the local filesystem, in
//! the layout and by the rules of the crate `storage-layout` (shared with
//! `storage-fs`, so that either serves the same directory). `contract.rs`
//! runs the storage contract suite (`storage-contract/`) against it.
//!
//! Layout under the data directory:
//!
//! ```text
//! <data>/
//!   blobs/sha256/<2 hex>/<64 hex>   committed blobs, immutable
//!   uploads/<id>                    bytes of an upload in progress
//!   kv/<seg>/<seg>@                 one file per key (see `kv.rs`)
//!   tmp/                            temporary files, renamed into place, and
//!                                   spare empty files for new uploads
//!   shared/empty-<n>                empty files that empty kv values link to
//!   journal                         records that make changes durable (a
//!                                   write-ahead log, `journal.rs`, of the
//!                                   changes in `changes.rs`), redone at start-up
//! ```
//!
//! Every visible change is a rename within one filesystem, so readers never
//! see half-written data, and a crash leaves at most stray files in `tmp/`
//! (cleared at start-up) and uploads that were never committed.

pub mod blobs;
pub mod changes;
#[cfg(test)]
pub(crate) mod contract;
pub mod fsutil;
pub mod journal;
pub mod kv;
pub mod out_of_space;
pub mod shared_empty;
pub mod spare_files;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use storage_layout::keys::KV_DIR;
use storage_layout::names::{blob_dirs, TMP_DIR, UPLOADS_DIR};
pub use storage_layout::{StorageError, StorageResult};

impl From<journal::JournalError> for StorageError {
    fn from(e: journal::JournalError) -> Self {
        StorageError::Other(e.to_string())
    }
}

/// Why a request's writes could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DurabilityError {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    /// A directory could not be synced.
    #[error(transparent)]
    DirSync(#[from] fsutil::SyncError),
}

/// Both stores over one data directory, shared by every request.
pub struct Storage {
    /// Content-addressed blobs and uploads.
    pub blobs: blobs::BlobStore,
    /// Metadata.
    pub kv: kv::KvStore,
    /// Makes renames durable, batching concurrent requests.
    pub syncer: fsutil::Syncer,
    /// Makes small changes durable with one flush.
    pub journal: Arc<journal::Journal>,
    /// Tells the operator when writes are refused for want of space.
    pub out_of_space: out_of_space::OutOfSpace,
    /// Held for the life of the process: one host per data directory.
    _lock: std::fs::File,
}

impl Storage {
    /// Opens (creating if needed) the layout under `data_dir`, checking that
    /// it is writable and clearing temporary files a crash may have left.
    pub fn open(data_dir: &Path) -> std::io::Result<Arc<Storage>> {
        let tmp = data_dir.join(TMP_DIR);
        std::fs::create_dir_all(data_dir)?;
        let lock = lock_data_dir(data_dir)?;
        // The layout, with all 256 blob prefix directories made up front:
        // otherwise the first pushes pay for creating and syncing them. What
        // was created is synced now, so that no later rename into it is lost.
        let mut created = fsutil::Unsynced::default();
        for dir in [UPLOADS_DIR, KV_DIR, TMP_DIR, "shared"] {
            fsutil::create_dirs(&data_dir.join(dir), &mut created)?;
        }
        for dir in blob_dirs() {
            fsutil::create_dirs(&data_dir.join(dir), &mut created)?;
        }
        for dir in created.take_dirs() {
            fsutil::sync_dir(&dir)?;
        }
        for entry in std::fs::read_dir(&tmp)? {
            let _ = std::fs::remove_file(entry?.path());
        }
        // Fail early, with the OS's reason, when the directory is read-only.
        let probe = fsutil::temp_path(&tmp);
        std::fs::write(&probe, b"")?;
        std::fs::remove_file(&probe)?;
        let (journal, pending, payloads) =
            journal::Journal::open(&data_dir.join("journal"), journal::Options::default(), syncfs_of(data_dir)?)?;
        let redo = changes::to_redo(payloads);
        let storage = Storage {
            blobs: blobs::BlobStore::new(data_dir.to_path_buf(), journal.clone()),
            kv: kv::KvStore::new(data_dir.to_path_buf(), data_dir.join("shared"), journal.clone())?,
            syncer: fsutil::Syncer::start(),
            journal,
            out_of_space: out_of_space::OutOfSpace::new(data_dir.to_path_buf()),
            _lock: lock,
        };
        if !redo.is_empty() {
            tracing::info!("redoing {} changes from the journal", redo.len());
        }
        for change in &redo {
            storage.redo(change)?;
        }
        storage.journal.start(pending)?;
        Ok(Arc::new(storage))
    }

    /// Redoes one change recorded in the journal (the last of its name).
    fn redo(&self, change: &changes::Change) -> std::io::Result<()> {
        let result = if change.is_blob() { self.blobs.redo(change) } else { self.kv.redo(change) };
        result.map_err(|e| std::io::Error::other(format!("redoing {:?} from the journal: {e}", change.name())))
    }

    /// Returns once everything in `unsynced` is durable.
    async fn make_durable(&self, mut unsynced: fsutil::Unsynced) -> Result<(), DurabilityError> {
        let (dirs, journal) = (unsynced.take_dirs(), unsynced.journal());
        let (dirs, journal) = tokio::join!(self.syncer.sync(dirs), self.journal.wait(journal));
        dirs?;
        Ok(journal?)
    }

    /// For a clean shutdown, once no request runs: makes everything
    /// durable, names the small blobs still unnamed, and checkpoints the
    /// journal, so that the next start has nothing to redo (and
    /// `registry.wasm`, which knows no journal, may serve the directory).
    /// Blocks: call it outside async code.
    pub fn close(&self) -> Result<(), journal::JournalError> {
        self.journal.seal()?;
        self.blobs.name_durable();
        self.journal.close()
    }
}

/// The journal's checkpoint for `data_dir`: `syncfs` of its filesystem,
/// after which every change made so far is durable by itself.
fn syncfs_of(data_dir: &Path) -> std::io::Result<journal::Checkpoint> {
    let dir = std::fs::File::open(data_dir)?;
    Ok(Box::new(move || Ok(rustix::fs::syncfs(&dir)?)))
}

/// What one request has written and not yet made durable.
///
/// Two parties settle it: the response, which must not go out before the
/// writes are durable, and the end of the request's task, for writes made
/// after the response was set. Either may come first (the task can finish
/// before the response is picked up), so neither may take writes away from
/// the other: whoever settles first makes them durable while the other
/// waits for it, and a failure is remembered for both.
#[derive(Default)]
pub struct RequestWrites {
    pending: std::sync::Mutex<fsutil::Unsynced>,
    /// Held while settling; holds the first failure.
    settling: tokio::sync::Mutex<Option<DurabilityError>>,
    /// Writes still running in the background (an S3 upload's state, written
    /// when its append stream is dropped): done before the response too.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<StorageResult<()>>>>,
}

impl RequestWrites {
    /// Adds writes that must become durable.
    pub fn record(&self, unsynced: fsutil::Unsynced) {
        if !unsynced.is_empty() {
            self.pending.lock().unwrap_or_else(|p| p.into_inner()).absorb(unsynced);
        }
    }

    /// Adds a write running in the background.
    pub fn defer(&self, task: tokio::task::JoinHandle<StorageResult<()>>) {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
    }

    /// Returns once every background write deferred so far is done; the
    /// first failure.
    pub async fn settle_tasks(&self) -> StorageResult<()> {
        let mut result = Ok(());
        loop {
            let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
            if tasks.is_empty() {
                return result;
            }
            for task in tasks {
                let done = task.await.unwrap_or_else(|e| Err(StorageError::Other(format!("a write's task: {e}"))));
                if result.is_ok() {
                    result = done;
                }
            }
        }
    }

    /// Returns once every write recorded so far is durable.
    pub async fn settle(&self, storage: &Storage) -> Result<(), DurabilityError> {
        let mut failed = self.settling.lock().await;
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Err(e) = storage.make_durable(pending).await {
            failed.get_or_insert(e);
        }
        failed.clone().map_or(Ok(()), Err)
    }
}

/// Takes an exclusive lock on `<data>/lock`: the key-value store caches
/// what it reads and serialises writes in this process only, so a second
/// process on the same directory would see stale data.
fn lock_data_dir(data_dir: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(data_dir.join("lock"))?;
    // Released when the file closes.
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "another registry-host is already using it (lock held)",
        )),
        Err(e) => Err(e.into()),
    }
}

/// The canonical blob path for a validated digest.
pub(crate) fn blob_path(root: &Path, hex: &str) -> PathBuf {
    root.join(storage_layout::names::blob_path(hex).full())
}

/// A started journal in `dir`, for unit tests of the stores.
#[cfg(test)]
pub(crate) fn test_journal(dir: &Path) -> Arc<journal::Journal> {
    let (journal, pending, _) =
        journal::Journal::open(&dir.join("journal"), journal::Options::default(), syncfs_of(dir).unwrap()).unwrap();
    journal.start(pending).unwrap();
    journal
}

/// A throw-away directory for unit tests, removed on drop.
#[cfg(test)]
pub(crate) struct TestDir(PathBuf);

#[cfg(test)]
impl TestDir {
    pub(crate) fn new() -> TestDir {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("registry-host-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a test directory");
        TestDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::blobs::digest_hex;

    #[test]
    fn open_lays_out_every_blob_prefix_and_locks_the_directory() {
        let dir = TestDir::new();
        let data = dir.path().join("data");
        let storage = Storage::open(&data).unwrap();
        for prefix in ["00", "7f", "ff"] {
            assert!(data.join("blobs/sha256").join(prefix).is_dir(), "{prefix}");
        }
        assert_eq!(std::fs::read_dir(data.join("blobs/sha256")).unwrap().count(), 256);
        for sub in ["uploads", "kv", "tmp"] {
            assert!(data.join(sub).is_dir(), "{sub}");
        }
        // A second host on the same directory is refused while this one runs.
        let second = Storage::open(&data).err().expect("a second open must fail");
        assert_eq!(second.kind(), std::io::ErrorKind::WouldBlock);
        drop(storage);
        // Reopening an existing layout works and changes nothing.
        Storage::open(&data).unwrap();
        assert_eq!(std::fs::read_dir(data.join("blobs/sha256")).unwrap().count(), 256);
    }

    /// Pushes `bytes` as a blob linked under `link`, and waits until the
    /// push is durable, as a request does before it answers.
    fn push(storage: &Storage, bytes: &'static [u8], link: &str) -> String {
        use wasmtime_wasi::p2::OutputStream;
        let digest = format!("sha256:{}", changes::hex_of(bytes));
        let upload = storage.blobs.start().unwrap();
        let mut writer = storage.blobs.append(&upload).unwrap();
        writer.write(bytes::Bytes::from_static(bytes)).unwrap();
        drop(writer);
        let mut unsynced = fsutil::Unsynced::default();
        storage.blobs.commit(&upload, &digest, &mut unsynced).unwrap();
        storage.kv.set_if(link, b"", None, &mut unsynced).unwrap();
        assert!(unsynced.take_dirs().is_empty(), "a small push needs no directory sync");
        storage.journal.wait_blocking(unsynced.journal()).unwrap();
        storage.blobs.name_durable();
        digest
    }

    #[test]
    fn the_journal_redoes_what_a_crash_lost() {
        let dir = TestDir::new();
        let data = dir.path().join("data");
        let storage = Storage::open(&data).unwrap();
        let digest = push(&storage, b"small blob", "repo/_blobs/x");
        let blob = blob_path(&data, digest_hex(&digest).unwrap());
        assert_eq!(std::fs::read(&blob).unwrap(), b"small blob");
        // A link made and deleted again.
        storage.kv.set_if("repo/_blobs/gone", b"", None, &mut fsutil::Unsynced::default()).unwrap();
        let mut unsynced = fsutil::Unsynced::default();
        assert!(storage.kv.delete("repo/_blobs/gone", &mut unsynced).unwrap());
        storage.journal.wait_blocking(unsynced.journal()).unwrap();
        drop(storage);

        // A crash of the machine loses what was not flushed: here, the
        // blob's bytes, the new link, and the delete.
        std::fs::write(&blob, b"").unwrap();
        std::fs::remove_file(data.join("kv/repo/_blobs/x@")).unwrap();
        std::fs::write(data.join("kv/repo/_blobs/gone@"), b"").unwrap();

        let storage = Storage::open(&data).unwrap();
        assert_eq!(std::fs::read(&blob).unwrap(), b"small blob");
        assert_eq!(storage.kv.get("repo/_blobs/x").unwrap().map(|e| e.value), Some(vec![]));
        assert_eq!(storage.kv.get("repo/_blobs/gone").unwrap(), None);
        drop(storage);

        // Redone once: a later start does not bring back what was changed
        // after the redo.
        std::fs::remove_file(&blob).unwrap();
        let storage = Storage::open(&data).unwrap();
        assert_eq!(storage.blobs.stat(&digest).unwrap(), None);
    }

    #[test]
    fn a_clean_close_names_every_blob_and_leaves_nothing_to_redo() {
        let dir = TestDir::new();
        let data = dir.path().join("data");
        let storage = Storage::open(&data).unwrap();
        let digest = format!("sha256:{}", changes::hex_of(b"closing"));
        let upload = storage.blobs.start().unwrap();
        let mut writer = storage.blobs.append(&upload).unwrap();
        wasmtime_wasi::p2::OutputStream::write(&mut writer, bytes::Bytes::from_static(b"closing")).unwrap();
        drop(writer);
        storage.blobs.commit(&upload, &digest, &mut fsutil::Unsynced::default()).unwrap();
        storage.close().unwrap();
        assert!(storage.kv.set("after", b"x", &mut fsutil::Unsynced::default()).is_err(), "closed");
        drop(storage);
        let blob = blob_path(&data, digest_hex(&digest).unwrap());
        assert_eq!(std::fs::read(blob).unwrap(), b"closing");
        assert_eq!(std::fs::read_dir(data.join("uploads")).unwrap().count(), 0);
        let (_journal, _, payloads) =
            journal::Journal::open(&data.join("journal"), journal::Options::default(), Box::new(|| Ok(()))).unwrap();
        assert!(payloads.is_empty());
    }

    #[test]
    fn a_journal_in_the_format_of_earlier_versions_is_redone() {
        // Written byte by byte as the format is documented, not by the
        // code under test: a header block of generation 7, then one record
        // of a first empty value of `repo/_blobs/x` (kind 4).
        let dir = TestDir::new();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let generation = 7u64.to_le_bytes();
        let mut file = b"REGJRNL1".to_vec();
        file.extend_from_slice(&generation);
        file.extend_from_slice(&crc32fast::hash(&file).to_le_bytes());
        file.resize(4096, 0);
        let key = b"repo/_blobs/x";
        let mut payload = vec![4, key.len() as u8, 0];
        payload.extend_from_slice(key);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&generation);
        crc.update(&payload);
        file.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        file.extend_from_slice(&crc.finalize().to_le_bytes());
        file.extend_from_slice(&payload);
        file.resize(8192, 0);
        std::fs::write(data.join("journal"), file).unwrap();
        let storage = Storage::open(&data).unwrap();
        assert_eq!(storage.kv.get("repo/_blobs/x").unwrap().map(|e| e.value), Some(vec![]));
    }

    #[tokio::test]
    async fn whoever_settles_second_waits_for_the_first() {
        let dir = TestDir::new();
        let storage = Storage::open(&dir.path().join("data")).unwrap();
        let writes = Arc::new(RequestWrites::default());
        let mut unsynced = fsutil::Unsynced::default();
        storage.kv.set_if("k", b"", None, &mut unsynced).unwrap();
        let seq = unsynced.journal();
        writes.record(unsynced);
        // The request's task settles first and takes the writes; the
        // response, settling right after, must still wait for them.
        let first = tokio::spawn({
            let (writes, storage) = (writes.clone(), storage.clone());
            async move { writes.settle(&storage).await }
        });
        tokio::task::yield_now().await;
        writes.settle(&storage).await.unwrap();
        assert!(storage.journal.durable() >= seq);
        first.await.unwrap().unwrap();
    }

    #[test]
    fn a_blob_record_with_wrong_bytes_is_not_redone() {
        let dir = TestDir::new();
        let data = dir.path().join("data");
        let storage = Storage::open(&data).unwrap();
        let bogus = changes::Change::BlobData { hex: changes::hex_of(b"other"), data: b"bytes".to_vec() };
        storage.blobs.redo(&bogus).unwrap();
        assert_eq!(storage.blobs.stat(&format!("sha256:{}", changes::hex_of(b"other"))).unwrap(), None);
    }
}

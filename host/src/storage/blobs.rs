//! `registry:storage/blobs` on the filesystem.
//!
//! Uploads append to `uploads/<id>`; the SHA-256 state of each upload is kept
//! in host memory next to its size, updated natively as bytes arrive, so
//! `commit` costs no second pass over the data. While an append stream is
//! open, a thread of its own hashes what the stream has written, so that
//! hashing overlaps receiving and writing. Host memory is only a cache:
//! after a restart, `resume` rebuilds the state by hashing the file once.
//! `commit` makes the file the blob `blobs/sha256/<xx>/<hex>`: a small one
//! through the journal (its bytes go into a record; until the record is
//! durable the blob is served from its upload file, and then the store's
//! naming thread renames it), a large one by `fsync` and rename. Either
//! way the file's modification time becomes the commit's time: the blob's
//! `touched` time, which garbage collection goes by (`collection.rs`).

use super::changes::{self, Change};
use super::fsutil::{self, Unsynced};
use super::journal::Journal;
use super::spare_files::SpareFiles;
use super::{blob_path, StorageError, StorageResult};
use bytes::Bytes;
use collection::DigestLocks;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::SystemTime;
pub use storage_layout::names::digest_hex;
use storage_layout::names::{check_upload_id, digest_of_hex, upload_id, upload_path, TMP_DIR};
use storage_layout::span::Span;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

mod collection;

/// Largest piece handed out by one `read` or accepted by one `write`.
const IO_CHUNK: usize = 1024 * 1024;

/// Pieces an append stream may have written but not yet hashed (each at
/// most one request-body frame): bounds the memory an upload holds.
const HASH_QUEUE: usize = 8;

/// An append stream hashes inline up to this many bytes, and only then
/// moves hashing to a thread: small blobs are not worth a thread.
const HASH_INLINE_LIMIT: u64 = 1024 * 1024;

/// After this many bytes appended, start their writeback, so that the
/// commit's fsync waits only for the tail of a large blob. 8 MiB pushed
/// 512 MiB blobs ~9 % faster than 32 MiB here (a shorter tail to wait
/// for); 2 MiB was slower again.
const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

/// The blob store: committed blobs plus uploads in progress.
pub struct BlobStore {
    root: PathBuf,
    uploads: UploadMap,
    /// Empty files for new uploads, made ahead in `tmp/`.
    spares: SpareFiles,
    journal: Arc<Journal>,
    /// Small blobs committed but not yet under their name, by hex digest.
    unnamed: UnnamedMap,
    /// Gives them their names once their records are durable.
    namer: Namer,
    /// Orders commits, touches and deletes of one digest.
    digests: DigestLocks,
}

/// A committed small blob still in its upload file.
#[derive(Clone)]
struct Unnamed {
    path: PathBuf,
    size: u64,
    /// Its journal record: whoever relies on the blob waits for it.
    seq: u64,
    /// Its bytes, should the rename fail.
    data: Arc<[u8]>,
}

type UnnamedMap = Arc<Mutex<HashMap<String, Unnamed>>>;

/// What removing a blob left to do once its digest lock is let go.
enum Removed {
    /// There was no such blob.
    Absent,
    /// It is gone.
    Gone,
    /// Its file, moved into `tmp/`, is to be unlinked.
    Moved(PathBuf),
}

impl Removed {
    /// Unlinks what is left; whether there was a blob.
    fn finish(self) -> bool {
        match self {
            Removed::Absent => false,
            Removed::Gone => true,
            Removed::Moved(doomed) => {
                // Left behind, start-up clears it from `tmp/`.
                let _ = std::fs::remove_file(doomed);
                true
            }
        }
    }
}

/// Hash states of the uploads this process has seen, by id.
type UploadMap = Arc<Mutex<HashMap<String, Arc<UploadShared>>>>;

/// State shared by every handle on one upload.
pub struct UploadShared {
    id: String,
    path: PathBuf,
    state: Mutex<UploadState>,
}

struct UploadState {
    hasher: Sha256,
    size: u64,
    /// Offset up to which writeback has been started. Kept with the upload,
    /// not the stream: a chunked upload opens one stream per chunk, each
    /// smaller than `WRITEBACK_EVERY`, and would otherwise leave the whole
    /// blob for the commit's fsync.
    written_back: u64,
    writer_open: bool,
    /// Committed or aborted: handles still held by a guest must fail.
    gone: bool,
}

/// The Rust type behind a `registry:storage/blobs.upload` resource.
#[derive(Clone)]
pub struct HostUpload {
    shared: Arc<UploadShared>,
}

impl HostUpload {
    /// The upload's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }
}

impl BlobStore {
    /// A store over `root`, the data directory.
    pub fn new(root: PathBuf, journal: Arc<Journal>) -> BlobStore {
        let spares = SpareFiles::start(root.join(TMP_DIR));
        let unnamed = UnnamedMap::default();
        let namer = Namer::start(root.clone(), journal.clone(), unnamed.clone());
        BlobStore { root, uploads: Arc::default(), spares, journal, unnamed, namer, digests: DigestLocks::default() }
    }

    /// Size of a committed blob.
    pub fn stat(&self, digest: &str) -> StorageResult<Option<u64>> {
        let hex = digest_hex(digest)?;
        if let Some(unnamed) = self.unnamed(hex) {
            return Ok(Some(unnamed.size));
        }
        match std::fs::metadata(blob_path(&self.root, hex)) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens a committed blob for reading `offset..offset+length`.
    pub fn read(&self, digest: &str, offset: u64, length: Option<u64>) -> StorageResult<Option<BlobReader>> {
        let hex = digest_hex(digest)?;
        // Not yet named: its upload file, unless renamed since the lookup.
        let unnamed = self.unnamed(hex).and_then(|unnamed| File::open(unnamed.path).ok());
        let opened = match unnamed {
            Some(file) => Ok(file),
            None => File::open(blob_path(&self.root, hex)),
        };
        let mut file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let span = Span::of(file.metadata()?.len(), offset, length)?;
        file.seek(SeekFrom::Start(span.offset))?;
        Ok(Some(BlobReader { file, remaining: span.len }))
    }

    /// Removes a committed blob; whether it existed. Durable through the
    /// journal, which removes it again if a crash brought it back.
    pub fn delete(&self, digest: &str, dirty: &mut Unsynced) -> StorageResult<bool> {
        let hex = digest_hex(digest)?;
        let removed = {
            let _lock = self.digests.lock(hex);
            self.remove_locked(hex, dirty)?
        };
        Ok(removed.finish())
    }

    /// Removes the blob `hex`, the caller holding its digest lock. A named
    /// blob is only moved into `tmp/` here: unlinking a large file takes
    /// long, so the caller does it (`Removed::finish`) once it let go of
    /// the lock.
    fn remove_locked(&self, hex: &str, dirty: &mut Unsynced) -> StorageResult<Removed> {
        let deleted = Change::BlobDeleted { hex: hex.to_string() }.encode();
        {
            // Committed a moment ago: removed before the namer renames it,
            // under the lock it renames under; recorded there too, so that
            // the journal has the commit before the delete.
            let mut unnamed = self.unnamed_map();
            if let Some(blob) = unnamed.get(hex) {
                fsutil::remove_if_present(&blob.path)?;
                unnamed.remove(hex);
                dirty.add_journal(self.journal.append(deleted)?);
                return Ok(Removed::Gone);
            }
        }
        let doomed = fsutil::temp_path(&self.root.join(TMP_DIR));
        match std::fs::rename(blob_path(&self.root, hex), &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Removed::Absent),
            Err(e) => return Err(e.into()),
        }
        dirty.add_journal(self.journal.append(deleted)?);
        Ok(Removed::Moved(doomed))
    }

    /// Redoes a blob change the journal recorded (at start-up).
    pub fn redo(&self, change: &Change) -> StorageResult<()> {
        match change {
            Change::BlobData { hex, data } => {
                if changes::hex_of(data) != *hex {
                    // Cannot pass the record's checksum unless written so:
                    // leave the blob out rather than store wrong bytes.
                    tracing::error!("journal: the bytes recorded for blob {hex} do not match it; not redone");
                    return Ok(());
                }
                let path = blob_path(&self.root, digest_hex(&digest_of_hex(hex))?);
                if std::fs::read(&path).ok().as_deref() != Some(data.as_slice()) {
                    fsutil::atomic_write(&self.root.join(TMP_DIR), &path, &[data], &mut Unsynced::default())?;
                }
                // When it was committed is not recorded: now is later, so
                // a collection can only keep it longer.
                fsutil::set_modified(&path, SystemTime::now())?;
            }
            Change::BlobDeleted { hex } => {
                fsutil::remove_if_present(&blob_path(&self.root, digest_hex(&digest_of_hex(hex))?))?;
            }
            Change::BlobTouched { hex, time } => {
                let path = blob_path(&self.root, digest_hex(&digest_of_hex(hex))?);
                let touched = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*time);
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.modified()? < touched => {
                        fsutil::set_modified(&path, touched)?;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Starts an empty upload.
    pub fn start(&self) -> StorageResult<HostUpload> {
        let id = upload_id(uuid::Uuid::new_v4().into_bytes());
        let path = self.upload_path(&id);
        if !self.spares.take(&path) {
            File::create_new(&path)?;
        }
        let shared = Arc::new(UploadShared {
            id: id.clone(),
            path,
            state: Mutex::new(UploadState {
                hasher: Sha256::new(),
                size: 0,
                written_back: 0,
                writer_open: false,
                gone: false,
            }),
        });
        self.uploads_map().insert(id, shared.clone());
        Ok(HostUpload { shared })
    }

    /// The upload `id` if this process holds its state: no I/O.
    pub fn resume_cached(&self, id: &str) -> Option<HostUpload> {
        self.uploads_map().get(id).map(|shared| HostUpload { shared: shared.clone() })
    }

    /// Reopens an upload by id, rebuilding its hash state from disk when
    /// this process has none (after a restart). May read the whole file.
    pub fn resume(&self, id: &str) -> StorageResult<HostUpload> {
        check_upload_id(id)?;
        if let Some(upload) = self.resume_cached(id) {
            return Ok(upload);
        }
        let path = self.upload_path(id);
        if self.is_unnamed_blob(&path) {
            // Committed: its file is a blob now, only not yet renamed.
            return Err(StorageError::NotFound);
        }
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; IO_CHUNK];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let fresh = Arc::new(UploadShared {
            id: id.to_string(),
            path,
            state: Mutex::new(UploadState { hasher, size, written_back: size, writer_open: false, gone: false }),
        });
        // Another request may have rebuilt it meanwhile: keep the first.
        let shared = self.uploads_map().entry(id.to_string()).or_insert(fresh).clone();
        Ok(HostUpload { shared })
    }

    /// Bytes accepted so far.
    pub fn size(&self, upload: &HostUpload) -> StorageResult<u64> {
        let state = upload.shared.lock_live()?;
        Ok(state.size)
    }

    /// Opens the single append stream of an upload.
    pub fn append(&self, upload: &HostUpload) -> StorageResult<UploadWriter> {
        let mut state = upload.shared.lock_live()?;
        if state.writer_open {
            return Err(StorageError::Conflict);
        }
        let file = std::fs::OpenOptions::new().append(true).open(&upload.shared.path)?;
        let hasher = Hasher::Inline(std::mem::take(&mut state.hasher));
        state.writer_open = true;
        Ok(UploadWriter {
            shared: upload.shared.clone(),
            written: 0,
            file,
            hasher: Some(hasher),
            failed: false,
            uploads: self.uploads.clone(),
        })
    }

    /// Whether committing `upload` needs no flush of its own (a small blob
    /// goes through the journal), so that it may run on a request's thread.
    pub fn commits_through_journal(&self, upload: &HostUpload) -> bool {
        self.size(upload).is_ok_and(|size| size <= changes::BLOB_IN_RECORD_MAX)
    }

    /// Verifies the digest and makes the bytes the blob, visible at once,
    /// touched now. A small blob gets its name only once its journal
    /// record is durable (the request waits for `dirty` before it
    /// answers); until then it is served from its upload file. Bytes that
    /// are stored already are not stored again: the stored blob is touched.
    pub fn commit(&self, upload: &HostUpload, expected: &str, dirty: &mut Unsynced) -> StorageResult<u64> {
        let expected_hex = digest_hex(expected)?;
        let shared = &upload.shared;
        let (actual, size) = {
            let mut state = shared.lock_live()?;
            if state.writer_open {
                return Err(StorageError::Conflict);
            }
            state.gone = true;
            (hex::encode(state.hasher.clone().finalize()), state.size)
        };
        self.uploads_map().remove(&shared.id);
        if actual != expected_hex {
            let _ = std::fs::remove_file(&shared.path);
            return Err(StorageError::DigestMismatch(digest_of_hex(&actual)));
        }
        let now = SystemTime::now();
        if size <= changes::BLOB_IN_RECORD_MAX {
            self.commit_through_journal(&shared.path, expected_hex, size, now, dirty)?;
        } else {
            self.commit_by_fsync(&shared.path, expected_hex, now, dirty)?;
        }
        Ok(size)
    }

    /// Under the digest's lock: when the blob `hex` is stored already,
    /// touches it at `now`, removes the upload file at `path` (one copy is
    /// enough) and returns `true`; the request waits for the stored copy
    /// if it is not yet durable.
    fn keep_stored_copy(&self, path: &Path, hex: &str, now: SystemTime, dirty: &mut Unsynced) -> StorageResult<bool> {
        let stored = {
            let _lock = self.digests.lock(hex);
            self.touch_locked(hex, now, dirty)?
        };
        if stored {
            let _ = std::fs::remove_file(path);
        }
        Ok(stored)
    }

    /// A large blob: its file is fsynced (with its time, `now`) and renamed
    /// into place.
    fn commit_by_fsync(&self, path: &Path, hex: &str, now: SystemTime, dirty: &mut Unsynced) -> StorageResult<()> {
        if self.keep_stored_copy(path, hex, now, dirty)? {
            return Ok(());
        }
        // Outside the digest's lock: the fsync may take long.
        let file = File::open(path)?;
        file.set_modified(now)?;
        file.sync_all()?;
        drop(file);
        let _lock = self.digests.lock(hex);
        fsutil::rename_into(path, &blob_path(&self.root, hex), dirty)?;
        let synced = Change::BlobSynced { hex: hex.to_string() };
        dirty.add_journal(self.journal.append(synced.encode())?);
        Ok(())
    }

    /// Hands a small blob's bytes to the journal; its file is served from
    /// where it is until the namer names it.
    fn commit_through_journal(
        &self,
        path: &Path,
        hex: &str,
        size: u64,
        now: SystemTime,
        dirty: &mut Unsynced,
    ) -> StorageResult<()> {
        let _lock = self.digests.lock(hex);
        if self.touch_locked(hex, now, dirty)? {
            // Stored already, perhaps by another upload of the same bytes
            // a moment ago.
            let _ = std::fs::remove_file(path);
            return Ok(());
        }
        // Hashed already, as it was written: only check that it is all there.
        let data = std::fs::read(path)?;
        if data.len() as u64 != size {
            return Err(StorageError::Other(format!("upload file {} changed under its upload", path.display())));
        }
        let record = Change::BlobData { hex: hex.to_string(), data: data.clone() }.encode();
        fsutil::set_modified(path, now)?;
        // Appended under the map's lock too, so that the namer cannot name
        // the blob (and forget it) before it is listed.
        let mut unnamed = self.unnamed_map();
        let seq = self.journal.append(record)?;
        unnamed.insert(hex.to_string(), Unnamed { path: path.to_path_buf(), size, seq, data: data.into() });
        drop(unnamed);
        self.namer.name_after(seq);
        dirty.add_journal(seq);
        Ok(())
    }

    /// The journal record of `digest` if it is committed but not yet
    /// named (so not yet durable): who answers on the strength of seeing
    /// the blob waits for that record.
    pub fn unnamed_record(&self, digest: &str) -> Option<u64> {
        self.unnamed(digest_hex(digest).ok()?).map(|unnamed| unnamed.seq)
    }

    fn unnamed(&self, hex: &str) -> Option<Unnamed> {
        self.unnamed_map().get(hex).cloned()
    }

    fn unnamed_map(&self) -> MutexGuard<'_, HashMap<String, Unnamed>> {
        lock_unnamed(&self.unnamed)
    }

    /// Names every committed small blob whose record is durable now; the
    /// namer does so on its own, this is for a clean shutdown (before the
    /// journal's last checkpoint) and for tests.
    pub fn name_durable(&self) {
        name_durable(&self.root, &self.unnamed, self.journal.durable());
    }

    /// Whose fault `failure`, reported by a write or splice into one of
    /// `upload`'s append streams, was: the store's own error if its stream
    /// failed (the stream has then ended the upload and removed its file),
    /// `None` if the error came from elsewhere (a request body).
    pub fn append_failure(&self, upload: &HostUpload, failure: &wasmtime::Error) -> Option<StorageError> {
        let AppendWriteError(e) = failure.downcast_ref::<AppendWriteError>()?;
        // Ended already by the stream; this only makes sure.
        let _ = self.abort(upload);
        Some(if storage_layout::error::is_out_of_space(e) {
            StorageError::Full
        } else {
            StorageError::Other(format!("writing upload {}: {e}", upload.id()))
        })
    }

    /// Discards an upload.
    pub fn abort(&self, upload: &HostUpload) -> StorageResult<()> {
        let shared = &upload.shared;
        shared.state.lock().unwrap_or_else(|p| p.into_inner()).gone = true;
        self.uploads_map().remove(&shared.id);
        // A committed upload's file may still be its blob's: keep it.
        if !self.is_unnamed_blob(&shared.path) {
            fsutil::remove_if_present(&shared.path)?;
        }
        Ok(())
    }

    /// Whether the upload file at `path` holds a blob not yet named.
    fn is_unnamed_blob(&self, path: &Path) -> bool {
        self.unnamed_map().values().any(|blob| blob.path == path)
    }

    fn uploads_map(&self) -> MutexGuard<'_, HashMap<String, Arc<UploadShared>>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn upload_path(&self, id: &str) -> PathBuf {
        self.root.join(upload_path(id))
    }
}

fn lock_unnamed(unnamed: &UnnamedMap) -> MutexGuard<'_, HashMap<String, Unnamed>> {
    unnamed.lock().unwrap_or_else(|p| p.into_inner())
}

/// Renames each small blob whose journal record is at most `durable` from
/// its upload file to its name, and forgets it.
fn name_durable(root: &Path, unnamed: &UnnamedMap, durable: u64) {
    let due: Vec<String> = {
        let unnamed = lock_unnamed(unnamed);
        unnamed.iter().filter(|(_, blob)| blob.seq <= durable).map(|(hex, _)| hex.clone()).collect()
    };
    for hex in due {
        // One rename per lock: a delete or a lookup waits for one at most.
        let mut unnamed = lock_unnamed(unnamed);
        let Some(blob) = unnamed.get(&hex).filter(|blob| blob.seq <= durable) else { continue };
        let to = blob_path(root, &hex);
        if let Err(e) = std::fs::rename(&blob.path, &to) {
            tracing::warn!("renaming {} to its blob name failed ({e}); writing it anew", blob.path.display());
            if let Err(e) = fsutil::atomic_write(&root.join(TMP_DIR), &to, &[&blob.data], &mut Unsynced::default()) {
                // Left unnamed: still served from its upload file, and its
                // record redoes it at the next start.
                tracing::error!("writing blob {hex}: {e}");
                continue;
            }
        }
        unnamed.remove(&hex);
    }
}

/// The thread that names small blobs once their records are durable.
struct Namer {
    seqs: Option<Sender<u64>>,
    thread: Option<JoinHandle<()>>,
}

impl Namer {
    fn start(root: PathBuf, journal: Arc<Journal>, unnamed: UnnamedMap) -> Namer {
        let (seqs, received) = channel::<u64>();
        let thread = std::thread::Builder::new()
            .name("blob-namer".into())
            .spawn(move || {
                while let Ok(first) = received.recv() {
                    // Everything queued meanwhile: one wait, one pass. The
                    // requests that committed the blobs ask for the flush
                    // (with the rest of what they wrote); asking here too
                    // would flush a blob's record before its link's.
                    let seq = received.try_iter().fold(first, u64::max);
                    match journal.follow_blocking(seq) {
                        Ok(()) => name_durable(&root, &unnamed, seq),
                        // Nothing becomes durable any more: the blobs stay
                        // served from their upload files, as the requests
                        // that committed them fail.
                        Err(e) => tracing::error!("blob namer: {e}"),
                    }
                }
            })
            .expect("starting the blob-namer thread");
        Namer { seqs: Some(seqs), thread: Some(thread) }
    }

    /// Names the blob of journal record `seq` once that is durable.
    fn name_after(&self, seq: u64) {
        if let Some(seqs) = &self.seqs {
            let _ = seqs.send(seq);
        }
    }
}

impl Drop for Namer {
    /// Names what is queued, then stops.
    fn drop(&mut self) {
        self.seqs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl UploadShared {
    fn lock_live(&self) -> StorageResult<MutexGuard<'_, UploadState>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.gone {
            return Err(StorageError::NotFound);
        }
        Ok(state)
    }
}

/// Hashes, on a thread of its own, the pieces an append stream wrote.
struct HashThread {
    pieces: Option<SyncSender<Bytes>>,
    thread: Option<JoinHandle<Sha256>>,
}

impl HashThread {
    fn start(mut hasher: Sha256) -> std::io::Result<HashThread> {
        let (pieces, received) = sync_channel::<Bytes>(HASH_QUEUE);
        let thread = std::thread::Builder::new().name("upload-hash".into()).spawn(move || {
            for piece in received {
                hasher.update(&piece);
            }
            hasher
        })?;
        Ok(HashThread { pieces: Some(pieces), thread: Some(thread) })
    }

    fn hash(&self, piece: Bytes) {
        if let Some(pieces) = &self.pieces {
            // Blocks only while the hasher is HASH_QUEUE pieces behind.
            let _ = pieces.send(piece);
        }
    }

    /// Waits for every piece to be hashed (at most HASH_QUEUE pieces, so a
    /// short wait); `None` if the thread died.
    fn finish(mut self) -> Option<Sha256> {
        self.pieces.take();
        self.thread.take()?.join().ok()
    }
}

/// Where an append stream's bytes are hashed.
enum Hasher {
    /// On the writing thread (small appends).
    Inline(Sha256),
    /// On a thread of its own (large appends).
    Thread(HashThread),
}

impl Hasher {
    fn finish(self) -> Option<Sha256> {
        match self {
            Hasher::Inline(hasher) => Some(hasher),
            Hasher::Thread(thread) => thread.finish(),
        }
    }
}

/// The failure of an upload's own append stream (as opposed to the other
/// end of a splice into it): what `append_failure` recognizes.
#[derive(Debug, thiserror::Error)]
#[error("writing the upload failed: {0}")]
pub struct AppendWriteError(std::io::Error);

/// The `output-stream` that `upload.append` returns: writes go straight to
/// the upload file; a thread hashes them alongside.
pub struct UploadWriter {
    shared: Arc<UploadShared>,
    file: File,
    /// Bytes written through this stream.
    written: u64,
    hasher: Option<Hasher>,
    failed: bool,
    uploads: UploadMap,
}

impl UploadWriter {
    /// Starts the writeback of what the upload gained since the last start,
    /// once that is large; errors are ignored (the commit's fsync reports
    /// them).
    fn start_writeback(&self, state: &mut UploadState) {
        if state.size - state.written_back < WRITEBACK_EVERY {
            return;
        }
        let (from, len) = (state.written_back, state.size - state.written_back);
        // SAFETY: a plain syscall on a file descriptor this struct owns
        // (rustix offers no sync_file_range).
        unsafe {
            libc::sync_file_range(self.file.as_raw_fd(), from as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
        }
        state.written_back = state.size;
    }

    fn hash(&mut self, piece: Bytes) {
        let hasher = match self.hasher.take() {
            Some(Hasher::Inline(mut hasher)) if self.written > HASH_INLINE_LIMIT => {
                hasher.update(&piece);
                // Large: hand the state to a thread, so hashing overlaps I/O
                // (kept inline if no thread can be had).
                match HashThread::start(hasher.clone()) {
                    Ok(thread) => Hasher::Thread(thread),
                    Err(_) => Hasher::Inline(hasher),
                }
            }
            Some(Hasher::Inline(mut hasher)) => {
                hasher.update(&piece);
                Hasher::Inline(hasher)
            }
            Some(Hasher::Thread(thread)) => {
                thread.hash(piece);
                Hasher::Thread(thread)
            }
            None => return,
        };
        self.hasher = Some(hasher);
    }

    fn forget_upload(&self) {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.shared.id);
    }
}

impl Drop for UploadWriter {
    fn drop(&mut self) {
        let hasher = self.hasher.take().and_then(Hasher::finish);
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.writer_open = false;
        match hasher {
            Some(hasher) => state.hasher = hasher,
            None => {
                // The hash of what was written is lost: this upload can no
                // longer be verified, so end it rather than commit it wrongly.
                state.gone = true;
                drop(state);
                self.forget_upload();
            }
        }
    }
}

#[async_trait::async_trait]
impl Pollable for UploadWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for UploadWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if self.failed {
            return Err(StreamError::Closed);
        }
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.gone {
            return Err(StreamError::Closed);
        }
        if let Err(e) = self.file.write_all(&bytes) {
            // The file may now hold part of `bytes`, and a full disk wants
            // its space back: the upload ends here (the contract's
            // `append-failure`), its bytes released at once.
            self.failed = true;
            state.gone = true;
            drop(state);
            self.forget_upload();
            let _ = fsutil::remove_if_present(&self.shared.path);
            return Err(StreamError::LastOperationFailed(wasmtime::Error::new(AppendWriteError(e))));
        }
        state.size += bytes.len() as u64;
        self.start_writeback(&mut state);
        drop(state);
        self.written += bytes.len() as u64;
        self.hash(bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        if self.failed {
            return Err(StreamError::Closed);
        }
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        if self.failed {
            return Err(StreamError::Closed);
        }
        Ok(IO_CHUNK)
    }
}

/// The `input-stream` that `blobs.read` returns.
pub struct BlobReader {
    file: File,
    remaining: u64,
}

#[async_trait::async_trait]
impl Pollable for BlobReader {
    async fn ready(&mut self) {}
}

impl InputStream for BlobReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if self.remaining == 0 {
            return Err(StreamError::Closed);
        }
        let want = size.min(IO_CHUNK).min(self.remaining.try_into().unwrap_or(usize::MAX));
        // `read_to_end` into reserved capacity: no zero-filling of the buffer.
        let mut buf = Vec::with_capacity(want);
        let n = (&mut self.file)
            .take(want as u64)
            .read_to_end(&mut buf)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))?;
        if n == 0 {
            // The file is shorter than it was when opened: report, don't spin.
            return Err(StreamError::LastOperationFailed(wasmtime::format_err!("blob truncated")));
        }
        self.remaining -= n as u64;
        Ok(Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn store(dir: &std::path::Path) -> BlobStore {
        for sub in ["blobs/sha256", "uploads", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for prefix in 0..=255u8 {
            std::fs::create_dir_all(dir.join(format!("blobs/sha256/{prefix:02x}"))).unwrap();
        }
        BlobStore::new(dir.to_path_buf(), crate::storage::test_journal(dir))
    }

    /// Commits and waits until the commit is durable (and so visible), as
    /// a request does before its response.
    pub(super) fn commit(store: &BlobStore, upload: &HostUpload, digest: &str) -> StorageResult<u64> {
        let mut unsynced = Unsynced::default();
        let result = store.commit(upload, digest, &mut unsynced);
        store.journal.wait_blocking(unsynced.journal()).unwrap();
        result
    }

    pub(super) fn digest_of(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    pub(super) fn append(store: &BlobStore, upload: &HostUpload, bytes: &'static [u8]) {
        let mut writer = store.append(upload).unwrap();
        assert!(matches!(store.append(upload), Err(StorageError::Conflict)));
        writer.write(Bytes::from_static(bytes)).unwrap();
        writer.flush().unwrap();
    }

    fn read_all(store: &BlobStore, digest: &str, offset: u64, len: Option<u64>) -> Vec<u8> {
        let mut reader = store.read(digest, offset, len).unwrap().unwrap();
        let mut out = Vec::new();
        loop {
            match reader.read(7) {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(StreamError::Closed) => return out,
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn chunks_commit_under_their_digest() {
        let dir = crate::storage::TestDir::new();
        let store = store(dir.path());
        let upload = store.start().unwrap();
        append(&store, &upload, b"hello ");
        append(&store, &upload, b"world");
        assert_eq!(store.size(&upload).unwrap(), 11);
        let digest = digest_of(b"hello world");
        assert_eq!(store.stat(&digest).unwrap(), None);
        assert_eq!(commit(&store, &upload, &digest).unwrap(), 11);
        assert_eq!(store.stat(&digest).unwrap(), Some(11));
        assert_eq!(read_all(&store, &digest, 0, None), b"hello world");
        assert_eq!(read_all(&store, &digest, 6, Some(100)), b"world");
        assert_eq!(read_all(&store, &digest, 11, None), b"");
        assert!(matches!(store.read(&digest, 12, None), Err(StorageError::Invalid(_))));
        // The upload is gone once committed.
        assert!(matches!(store.size(&upload), Err(StorageError::NotFound)));
        assert!(matches!(store.resume(upload.id()), Err(StorageError::NotFound)));
    }

    #[test]
    fn a_small_blob_is_served_before_it_is_named() {
        let dir = crate::storage::TestDir::new();
        let store = store(dir.path());
        let upload = store.start().unwrap();
        append(&store, &upload, b"small");
        assert!(store.commits_through_journal(&upload));
        let digest = digest_of(b"small");
        let mut unsynced = Unsynced::default();
        store.commit(&upload, &digest, &mut unsynced).unwrap();
        // Visible at once, from wherever it is now.
        assert_eq!(store.stat(&digest).unwrap(), Some(5));
        assert_eq!(read_all(&store, &digest, 1, None), b"mall");
        // The same bytes again: one copy, touched (a record after the
        // first's, so durable with it).
        let again = store.start().unwrap();
        append(&store, &again, b"small");
        let mut second = Unsynced::default();
        store.commit(&again, &digest, &mut second).unwrap();
        assert_eq!(second.journal(), unsynced.journal() + 1);
        assert_eq!(std::fs::read_dir(dir.path().join("uploads")).unwrap().count(), 1, "the second file is gone");
        // The upload is over, though its file is still the blob's.
        assert!(matches!(store.resume(upload.id()), Err(StorageError::NotFound)));
        store.abort(&upload).unwrap();
        assert_eq!(read_all(&store, &digest, 0, None), b"small");
        assert_eq!(store.unnamed_record(&digest), Some(unsynced.journal()));
        store.journal.wait_blocking(unsynced.journal()).unwrap();
        store.name_durable();
        let hex = digest_hex(&digest).unwrap();
        assert_eq!(std::fs::read(blob_path(dir.path(), hex)).unwrap(), b"small");
        assert!(store.unnamed(hex).is_none());
        assert_eq!(std::fs::read_dir(dir.path().join("uploads")).unwrap().count(), 0);
    }

    #[test]
    fn the_namer_names_a_blob_once_its_record_is_durable() {
        let dir = crate::storage::TestDir::new();
        let store = store(dir.path());
        let upload = store.start().unwrap();
        append(&store, &upload, b"named by the namer");
        let digest = digest_of(b"named by the namer");
        let path = blob_path(dir.path(), digest_hex(&digest).unwrap());
        store.commit(&upload, &digest, &mut Unsynced::default()).unwrap();
        // Nobody waits for the record: the journal's idle flush writes it.
        for _ in 0..500 {
            if store.unnamed_record(&digest).is_none() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(store.unnamed_record(&digest), None);
        assert_eq!(std::fs::read(&path).unwrap(), b"named by the namer");
        assert_eq!(read_all(&store, &digest, 0, None), b"named by the namer");
    }

    #[test]
    fn a_blob_deleted_before_it_is_named_stays_deleted() {
        let dir = crate::storage::TestDir::new();
        let store = store(dir.path());
        let upload = store.start().unwrap();
        append(&store, &upload, b"short-lived");
        let digest = digest_of(b"short-lived");
        let mut unsynced = Unsynced::default();
        store.commit(&upload, &digest, &mut unsynced).unwrap();
        assert!(store.delete(&digest, &mut unsynced).unwrap());
        assert_eq!(store.stat(&digest).unwrap(), None);
        store.journal.wait_blocking(unsynced.journal()).unwrap();
        store.name_durable();
        assert!(!blob_path(dir.path(), digest_hex(&digest).unwrap()).exists());
        assert_eq!(std::fs::read_dir(dir.path().join("uploads")).unwrap().count(), 0);
        assert!(!store.delete(&digest, &mut unsynced).unwrap());
    }

    #[test]
    fn mismatch_stores_nothing() {
        let dir = crate::storage::TestDir::new();
        let store = store(dir.path());
        let upload = store.start().unwrap();
        append(&store, &upload, b"abc");
        let wrong = digest_of(b"abd");
        assert_eq!(commit(&store, &upload, &wrong), Err(StorageError::DigestMismatch(digest_of(b"abc"))));
        assert_eq!(store.stat(&wrong).unwrap(), None);
        assert_eq!(store.stat(&digest_of(b"abc")).unwrap(), None);
        assert_eq!(std::fs::read_dir(dir.path().join("uploads")).unwrap().count(), 0);
    }

    #[test]
    fn resume_after_restart_rebuilds_the_hash() {
        let dir = crate::storage::TestDir::new();
        let id = {
            let store = store(dir.path());
            let upload = store.start().unwrap();
            append(&store, &upload, b"first half, ");
            upload.id().to_string()
        };
        // A new store over the same directory: no state in memory.
        let store = store(dir.path());
        let upload = store.resume(&id).unwrap();
        assert_eq!(store.size(&upload).unwrap(), 12);
        append(&store, &upload, b"second half");
        let digest = digest_of(b"first half, second half");
        assert_eq!(commit(&store, &upload, &digest).unwrap(), 23);
    }

    #[test]
    fn same_content_twice_keeps_one_copy_and_abort_discards() {
        let dir = crate::storage::TestDir::new();
        let store = store(dir.path());
        let digest = digest_of(b"same");
        for _ in 0..2 {
            let upload = store.start().unwrap();
            append(&store, &upload, b"same");
            commit(&store, &upload, &digest).unwrap();
        }
        assert_eq!(store.stat(&digest).unwrap(), Some(4));
        let upload = store.start().unwrap();
        append(&store, &upload, b"never");
        store.abort(&upload).unwrap();
        assert!(matches!(store.resume(upload.id()), Err(StorageError::NotFound)));
        assert!(store.delete(&digest, &mut Unsynced::default()).unwrap());
        assert!(!store.delete(&digest, &mut Unsynced::default()).unwrap());
    }

    #[test]
    fn a_large_blob_is_fsynced_and_visible_when_committed() {
        let dir = crate::storage::TestDir::new();
        let store = store(dir.path());
        let bytes: &'static [u8] = Box::leak(vec![5u8; changes::BLOB_IN_RECORD_MAX as usize + 1].into_boxed_slice());
        let upload = store.start().unwrap();
        append(&store, &upload, bytes);
        assert!(!store.commits_through_journal(&upload));
        let digest = digest_of(bytes);
        let mut unsynced = Unsynced::default();
        store.commit(&upload, &digest, &mut unsynced).unwrap();
        // Visible at once; only the directory sync is left to the request.
        assert_eq!(store.stat(&digest).unwrap(), Some(bytes.len() as u64));
        assert!(unsynced.journal() > 0);
        assert_eq!(unsynced.take_dirs().len(), 1);
    }

    #[test]
    fn rejects_bad_digests_and_ids() {
        let dir = crate::storage::TestDir::new();
        let store = store(dir.path());
        for bad in ["sha256:ABC", "md5:00", "sha256:../../etc/passwd"] {
            assert!(matches!(store.stat(bad), Err(StorageError::Invalid(_))), "{bad}");
        }
        for bad in ["../x", "", "UPPER"] {
            assert!(matches!(store.resume(bad), Err(StorageError::Invalid(_))), "{bad}");
        }
    }
}

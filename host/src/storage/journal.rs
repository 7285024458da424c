//! The intent journal: one preallocated file whose records make small
//! changes durable with a single `fdatasync`, instead of a flush of every
//! new file and of every directory whose entries changed.
//!
//! Every change of a blob or a kv key appends a record naming it, in the
//! order the changes happen to that name. At start-up the last record of
//! each name is redone ([`Record`] says how), so the journal is what makes
//! the name's latest state durable:
//! - a small blob's bytes travel in its record, and its file gets its name
//!   only after the record is durable (the journal's thread renames it;
//!   until then the blob store serves it from the upload file), so that no
//!   crash can expose a name whose data never reached the disk;
//! - a first empty kv value (a link) is created at once: its content is
//!   right whether or not it is durable, and the record recreates it;
//! - deletes are done at once and redone from their records;
//! - everything else (large blobs, values) is fsynced on its own path as
//!   before; its record only keeps an earlier record of the same name from
//!   being redone over it.
//!
//! A response waits for the records its request appended ([`Journal::wait`]);
//! records are written only when someone waits, so the records of one
//! request, and of every request waiting at the same time, share a flush.
//!
//! When the file is full, and at a clean shutdown ([`Journal::close`]), a
//! checkpoint `syncfs`es the data directory's filesystem (after which every
//! recorded change is durable by itself) and starts a new generation from
//! the top. A record's checksum covers its generation, so records of an
//! older generation end the replay.

use super::{StorageError, StorageResult};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The journal file's size. A checkpoint comes every this many bytes of
/// records (~7,000 pushes of 4 KiB blobs).
const CAPACITY: u64 = 32 * 1024 * 1024;

/// The header block: magic, generation, checksum.
const HEADER: u64 = 4096;
const MAGIC: &[u8; 8] = b"REGJRNL1";

/// Blobs up to this size travel in their record; larger ones are fsynced
/// on their own (their bytes would cost more to write twice).
pub const BLOB_IN_RECORD_MAX: u64 = 64 * 1024;

/// The file is zero-filled ahead of the records in steps of this size, so
/// that a flush overwrites allocated blocks and only the data moves.
const ZERO_STEP: u64 = 1024 * 1024;

/// Records nobody waits for are flushed after this long anyway.
const IDLE_FLUSH: Duration = Duration::from_millis(100);

/// One change, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A small blob: redone by writing these bytes under its name.
    BlobData { hex: String, data: Vec<u8> },
    /// A blob fsynced on its own path: nothing to redo.
    BlobSynced { hex: String },
    /// A removed blob: redone by removing it.
    BlobDeleted { hex: String },
    /// A key's first value, empty: redone by creating it if absent.
    KvCreatedEmpty { key: String },
    /// A key written and fsynced on its own path: nothing to redo.
    KvSynced { key: String },
    /// A removed key: redone by removing it.
    KvDeleted { key: String },
}

impl Record {
    fn kind(&self) -> u8 {
        match self {
            Record::BlobData { .. } => 1,
            Record::BlobSynced { .. } => 2,
            Record::BlobDeleted { .. } => 3,
            Record::KvCreatedEmpty { .. } => 4,
            Record::KvSynced { .. } => 5,
            Record::KvDeleted { .. } => 6,
        }
    }

    /// The blob or key the record is about; blobs and keys are apart.
    pub fn name(&self) -> (bool, &str) {
        match self {
            Record::BlobData { hex, .. } | Record::BlobSynced { hex } | Record::BlobDeleted { hex } => (true, hex),
            Record::KvCreatedEmpty { key } | Record::KvSynced { key } | Record::KvDeleted { key } => (false, key),
        }
    }

    /// kind, name length (u16 LE), name, then a blob's data.
    fn encode(&self) -> Vec<u8> {
        let (_, name) = self.name();
        let data: &[u8] = match self {
            Record::BlobData { data, .. } => data,
            _ => &[],
        };
        let mut out = Vec::with_capacity(3 + name.len() + data.len());
        out.push(self.kind());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn decode(payload: &[u8]) -> Option<Record> {
        let (&kind, rest) = payload.split_first()?;
        let len = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let name = std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_string();
        let data = &rest[2 + len..];
        let record = match kind {
            1 => Record::BlobData { hex: name, data: data.to_vec() },
            2 => Record::BlobSynced { hex: name },
            3 => Record::BlobDeleted { hex: name },
            4 => Record::KvCreatedEmpty { key: name },
            5 => Record::KvSynced { key: name },
            6 => Record::KvDeleted { key: name },
            _ => return None,
        };
        (kind == 1 || data.is_empty()).then_some(record)
    }
}

/// A record's frame: payload length (u32 LE), CRC-32 of the generation
/// and the payload (u32 LE), payload.
fn frame(generation: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(generation, payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn checksum(generation: u64, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&generation.to_le_bytes());
    crc.update(payload);
    crc.finalize()
}

fn header(generation: u64) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&out[..16]);
    out[16..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn parse_header(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < 20 || &bytes[..8] != MAGIC || crc32fast::hash(&bytes[..16]).to_le_bytes() != bytes[16..20] {
        return None;
    }
    Some(u64::from_le_bytes(bytes[8..16].try_into().ok()?))
}

/// Reads the records of the current generation, up to the first that is
/// torn, of another generation, or not there.
fn read_records(file: &File) -> std::io::Result<(u64, Vec<Record>)> {
    let len = file.metadata()?.len();
    let mut head = [0u8; 20];
    if len < HEADER || file.read_exact_at(&mut head, 0).is_err() {
        return Ok((0, Vec::new()));
    }
    // A torn header can only come from a checkpoint, after its syncfs:
    // nothing before it needs redoing.
    let Some(generation) = parse_header(&head) else { return Ok((0, Vec::new())) };
    let mut records = Vec::new();
    let mut offset = HEADER;
    let mut frame_head = [0u8; 8];
    while offset + 8 <= len && file.read_exact_at(&mut frame_head, offset).is_ok() {
        let size = u32::from_le_bytes(frame_head[..4].try_into().expect("4 bytes")) as u64;
        let crc = u32::from_le_bytes(frame_head[4..].try_into().expect("4 bytes"));
        if size == 0 || offset + 8 + size > len {
            break;
        }
        let mut payload = vec![0u8; size as usize];
        if file.read_exact_at(&mut payload, offset + 8).is_err() || checksum(generation, &payload) != crc {
            break;
        }
        match Record::decode(&payload) {
            Some(record) => records.push(record),
            None => break,
        }
        offset += 8 + size;
    }
    Ok((generation, records))
}

/// Of `records`, the last one of each name, in journal order: redoing
/// only those gives each name its latest recorded state.
pub fn latest_per_name(records: Vec<Record>) -> Vec<Record> {
    let mut last = std::collections::HashMap::new();
    for (i, record) in records.iter().enumerate() {
        let (is_blob, name) = record.name();
        last.insert((is_blob, name.to_string()), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    let mut records: Vec<Option<Record>> = records.into_iter().map(Some).collect();
    keep.into_iter().filter_map(|i| records[i].take()).collect()
}

/// What the journal's thread does once a record is durable (give a small
/// blob its name); an error stops the journal.
pub type Then = Box<dyn FnOnce() -> std::io::Result<()> + Send>;

struct Appended {
    payload: Vec<u8>,
    then: Option<Then>,
}

struct Queue {
    appended: Vec<Appended>,
    /// Sequence number of the last record appended (the first is 1).
    last: u64,
    /// Highest sequence number someone waits for.
    wanted: u64,
    /// Highest sequence number durable (and its renames done).
    durable: u64,
    /// Set when a write or flush failed: nothing is durable any more.
    failed: Option<String>,
    stop: bool,
    /// Stopping for a clean shutdown: checkpoint last.
    closing: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the journal's thread.
    work: Condvar,
    /// Wakes those waiting for durability.
    done: Condvar,
    durable: tokio::sync::watch::Sender<u64>,
}

/// The journal of one data directory.
pub struct Journal {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<std::io::Result<()>>>>,
}

/// The file side, owned by the journal's thread.
struct Writer {
    file: File,
    /// The data directory, for `syncfs`.
    data_dir: File,
    generation: u64,
    offset: u64,
    zeroed: u64,
}

impl Journal {
    /// Opens `<data_dir>/journal` and returns the records to redo. Nothing
    /// is written until [`Journal::start`], which must follow the redo.
    pub fn open(data_dir: &Path) -> std::io::Result<(Arc<Journal>, PendingStart, Vec<Record>)> {
        let path = data_dir.join("journal");
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        let (generation, records) = read_records(&file)?;
        let (durable, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                appended: Vec::new(),
                last: 0,
                wanted: 0,
                durable: 0,
                failed: None,
                stop: false,
                closing: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            durable,
        });
        let zeroed = file.metadata()?.len();
        // Reserve the whole file now, so that a full disk can never fail a
        // flush later; its size grows only as it is zero-filled.
        // SAFETY: a plain syscall on a descriptor owned here.
        if zeroed < CAPACITY
            && unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, CAPACITY as i64) } != 0
        {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(e);
            }
        }
        let writer = Writer { file, data_dir: File::open(data_dir)?, generation, offset: HEADER, zeroed };
        let replayed = !records.is_empty();
        let journal = Arc::new(Journal { shared, thread: Mutex::new(None) });
        Ok((journal, PendingStart { writer, replayed }, latest_per_name(records)))
    }

    /// After the redo: makes it durable, starts a new generation (so no
    /// old record is ever redone again) and the journal's thread.
    pub fn start(&self, pending: PendingStart) -> std::io::Result<()> {
        let PendingStart { mut writer, replayed } = pending;
        if replayed {
            writer.syncfs()?;
        }
        let fresh = writer.zeroed < HEADER;
        writer.new_generation()?;
        if fresh {
            // The journal file's name, made durable once.
            writer.data_dir.sync_all()?;
        }
        let shared = self.shared.clone();
        let thread = std::thread::Builder::new().name("journal".into()).spawn(move || {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.run(&shared)));
            run.unwrap_or_else(|_| {
                // Never leave requests waiting for a thread that is gone.
                shared.fail("the journal's thread panicked".into());
                Err(std::io::Error::other("the journal's thread panicked"))
            })
        })?;
        *self.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        Ok(())
    }

    /// Appends `record`; returns its sequence number, to [`wait`](Self::wait) for.
    pub fn append(&self, record: &Record) -> StorageResult<u64> {
        self.push(Appended { payload: record.encode(), then: None })
    }

    /// Appends `record`; once it is durable, and before anyone waiting for
    /// it hears so, the journal's thread runs `then`.
    pub fn append_then(&self, record: &Record, then: Then) -> StorageResult<u64> {
        self.push(Appended { payload: record.encode(), then: Some(then) })
    }

    fn push(&self, appended: Appended) -> StorageResult<u64> {
        let mut queue = self.shared.lock();
        if let Some(failed) = &queue.failed {
            return Err(StorageError::Other(failed.clone()));
        }
        if queue.stop {
            return Err(StorageError::Other("the registry is shutting down".into()));
        }
        queue.appended.push(appended);
        queue.last += 1;
        Ok(queue.last)
    }

    /// Returns once record `seq` and all before it are durable.
    pub async fn wait(&self, seq: u64) -> Result<(), String> {
        if seq == 0 {
            return Ok(());
        }
        let mut durable = self.shared.durable.subscribe();
        self.want(seq)?;
        let reached = durable.wait_for(|&d| d >= seq).await.map(|_| ());
        // The thread publishes u64::MAX only after a failure.
        let failed = self.shared.lock().failed.clone();
        match (reached, failed) {
            (_, Some(failed)) => Err(failed),
            (Ok(()), None) => Ok(()),
            (Err(_), None) => Err("the journal stopped".to_string()),
        }
    }

    /// [`wait`](Self::wait) for a thread that may block.
    pub fn wait_blocking(&self, seq: u64) -> Result<(), String> {
        self.want(seq)?;
        let mut queue = self.shared.lock();
        while queue.durable < seq && queue.failed.is_none() {
            queue = self.shared.done.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
        queue.failed.clone().map_or(Ok(()), Err)
    }

    /// The last durable sequence number.
    #[cfg(test)]
    pub fn durable(&self) -> u64 {
        self.shared.lock().durable
    }

    fn want(&self, seq: u64) -> Result<(), String> {
        let mut queue = self.shared.lock();
        if let Some(failed) = &queue.failed {
            return Err(failed.clone());
        }
        if queue.wanted < seq {
            queue.wanted = seq;
            self.shared.work.notify_one();
        }
        Ok(())
    }
}

impl Journal {
    /// For a clean shutdown: writes what was appended, checkpoints (so the
    /// data directory needs no redo, and `registry.wasm`, which knows no
    /// journal, may serve it next) and stops; later appends fail.
    pub fn close(&self) -> std::io::Result<()> {
        self.stop(true)
    }

    fn stop(&self, closing: bool) -> std::io::Result<()> {
        {
            let mut queue = self.shared.lock();
            queue.stop = true;
            queue.closing = closing;
        }
        self.shared.work.notify_one();
        match self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(thread) => thread.join().map_err(|_| std::io::Error::other("the journal's thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Journal {
    /// Writes what was appended and stops, without a checkpoint: what a
    /// crash right after would leave.
    fn drop(&mut self) {
        let _ = self.stop(false);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Nothing becomes durable any more: fail every waiter, now and later.
    fn fail(&self, why: String) {
        tracing::error!("{why}");
        let mut queue = self.lock();
        queue.failed = Some(why);
        queue.durable = u64::MAX;
        self.durable.send_replace(u64::MAX);
        self.done.notify_all();
    }
}

/// A journal opened and read, not yet started.
pub struct PendingStart {
    writer: Writer,
    replayed: bool,
}

impl Writer {
    fn run(mut self, shared: &Shared) -> std::io::Result<()> {
        loop {
            let (batch, last) = {
                let mut queue = shared.lock();
                loop {
                    let waited_for = queue.wanted > queue.durable;
                    if !queue.appended.is_empty() && (waited_for || queue.stop) {
                        break;
                    }
                    if queue.stop && queue.appended.is_empty() {
                        let closing = queue.closing && queue.failed.is_none();
                        drop(queue);
                        return if closing { self.checkpoint() } else { Ok(()) };
                    }
                    let (next, timeout) =
                        shared.work.wait_timeout(queue, IDLE_FLUSH).unwrap_or_else(|p| p.into_inner());
                    queue = next;
                    if timeout.timed_out() && !queue.appended.is_empty() {
                        break;
                    }
                }
                (std::mem::take(&mut queue.appended), queue.last)
            };
            if let Err(e) = self.write(batch) {
                shared.fail(format!("journal: {e}"));
                return Err(e);
            }
            shared.lock().durable = last;
            shared.durable.send_replace(last);
            shared.done.notify_all();
        }
    }

    /// Writes and flushes `batch`, checkpointing when the file is full,
    /// then runs what waited for it.
    fn write(&mut self, batch: Vec<Appended>) -> std::io::Result<()> {
        let mut out = Vec::new();
        let mut then = Vec::new();
        for appended in batch {
            let framed_len = 8 + appended.payload.len() as u64;
            if self.offset + out.len() as u64 + framed_len > CAPACITY {
                self.flush(&out, &mut then)?;
                out.clear();
                self.checkpoint()?;
            }
            out.extend_from_slice(&frame(self.generation, &appended.payload));
            then.extend(appended.then);
        }
        self.flush(&out, &mut then)
    }

    fn flush(&mut self, out: &[u8], then: &mut Vec<Then>) -> std::io::Result<()> {
        if !out.is_empty() {
            let end = self.offset + out.len() as u64;
            self.zero_until(end)?;
            self.file.write_all_at(out, self.offset)?;
            self.file.sync_data()?;
            self.offset = end;
        }
        for then in then.drain(..) {
            then()?;
        }
        Ok(())
    }

    /// Extends the zero-filled part of the file to cover `end`.
    fn zero_until(&mut self, end: u64) -> std::io::Result<()> {
        while self.zeroed < end {
            let step = ZERO_STEP.min(CAPACITY - self.zeroed);
            self.file.write_all_at(&vec![0u8; step as usize], self.zeroed)?;
            self.zeroed += step;
        }
        Ok(())
    }

    /// Makes every change recorded so far durable by itself, then starts
    /// a new generation.
    fn checkpoint(&mut self) -> std::io::Result<()> {
        self.syncfs()?;
        self.new_generation()
    }

    fn syncfs(&self) -> std::io::Result<()> {
        // SAFETY: a plain syscall on a descriptor this struct owns.
        if unsafe { libc::syncfs(self.data_dir.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn new_generation(&mut self) -> std::io::Result<()> {
        self.generation += 1;
        self.zero_until(HEADER)?;
        self.file.write_all_at(&header(self.generation), 0)?;
        self.file.sync_data()?;
        self.offset = HEADER;
        Ok(())
    }
}

/// SHA-256 of `data` in hex, to check a blob record before redoing it.
pub fn hex_of(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::TestDir;

    fn blob(n: u8) -> Record {
        let data = vec![n; 100];
        Record::BlobData { hex: hex_of(&data), data }
    }

    #[test]
    fn records_round_trip() {
        for record in [
            blob(1),
            Record::BlobSynced { hex: "ab".repeat(32) },
            Record::BlobDeleted { hex: "cd".repeat(32) },
            Record::KvCreatedEmpty { key: "repos/a/b".into() },
            Record::KvSynced { key: "k".into() },
            Record::KvDeleted { key: "é/x".into() },
        ] {
            assert_eq!(Record::decode(&record.encode()), Some(record));
        }
        assert_eq!(Record::decode(&[9, 0, 0]), None);
        assert_eq!(Record::decode(&[4, 5, 0, b'a']), None);
    }

    #[test]
    fn the_last_record_of_each_name_wins() {
        let key = |k: &str| k.to_string();
        let records = vec![
            Record::KvCreatedEmpty { key: key("a") },
            blob(1),
            Record::KvDeleted { key: key("a") },
            Record::KvCreatedEmpty { key: key("b") },
            Record::KvSynced { key: key("a") },
        ];
        assert_eq!(
            latest_per_name(records),
            vec![blob(1), Record::KvCreatedEmpty { key: key("b") }, Record::KvSynced { key: key("a") }]
        );
    }

    fn reopen(dir: &Path) -> (Arc<Journal>, Vec<Record>) {
        let (journal, pending, records) = Journal::open(dir).unwrap();
        journal.start(pending).unwrap();
        (journal, records)
    }

    #[test]
    fn durable_records_are_read_back_once() {
        let dir = TestDir::new();
        let (journal, records) = reopen(dir.path());
        assert!(records.is_empty());
        journal.append(&Record::KvCreatedEmpty { key: "x".into() }).unwrap();
        let seq = journal.append(&blob(2)).unwrap();
        journal.wait_blocking(seq).unwrap();
        drop(journal);
        let (journal, records) = reopen(dir.path());
        assert_eq!(records, vec![Record::KvCreatedEmpty { key: "x".into() }, blob(2)]);
        drop(journal);
        // Starting made a new generation: nothing is redone twice.
        let (_journal, records) = reopen(dir.path());
        assert!(records.is_empty());
    }

    #[test]
    fn a_clean_close_leaves_nothing_to_redo() {
        let dir = TestDir::new();
        let (journal, _) = reopen(dir.path());
        journal.append(&blob(1)).unwrap();
        journal.close().unwrap();
        assert!(journal.append(&blob(2)).is_err(), "closed: no more records");
        drop(journal);
        let (_journal, records) = reopen(dir.path());
        assert!(records.is_empty());
    }

    #[test]
    fn waiters_fail_instead_of_hanging_when_the_thread_dies() {
        let dir = TestDir::new();
        let (journal, _) = reopen(dir.path());
        let seq = journal.append_then(&blob(1), Box::new(|| panic!("a bug after the flush"))).unwrap();
        assert!(journal.wait_blocking(seq).is_err());
        assert!(journal.append(&blob(2)).is_err());
    }

    #[test]
    fn replay_stops_at_a_torn_record() {
        let dir = TestDir::new();
        let (journal, _) = reopen(dir.path());
        journal.append(&blob(1)).unwrap();
        let seq = journal.append(&blob(2)).unwrap();
        journal.wait_blocking(seq).unwrap();
        drop(journal);
        // Tear the second record: its last byte never reached the disk.
        let file = std::fs::OpenOptions::new().write(true).open(dir.path().join("journal")).unwrap();
        let second_end = HEADER + 2 * (8 + blob(1).encode().len() as u64);
        file.write_all_at(&[0xff], second_end - 1).unwrap();
        drop(file);
        let (_journal, records) = reopen(dir.path());
        assert_eq!(records, vec![blob(1)]);
    }

    #[test]
    fn a_full_journal_checkpoints_and_goes_on() {
        let dir = TestDir::new();
        let (journal, _) = reopen(dir.path());
        // Well over one file's worth of records, each of its own name.
        let per_file = CAPACITY / (60 * 1024);
        let mut last = 0;
        for round in 0..per_file + 50 {
            let record = Record::BlobData { hex: format!("{round:064}"), data: vec![7; 60 * 1024] };
            last = journal.append(&record).unwrap();
            if round % 64 == 0 {
                journal.wait_blocking(last).unwrap();
            }
        }
        journal.wait_blocking(last).unwrap();
        let tail = Record::KvCreatedEmpty { key: "after".into() };
        let seq = journal.append(&tail).unwrap();
        journal.wait_blocking(seq).unwrap();
        drop(journal);
        assert_eq!(std::fs::metadata(dir.path().join("journal")).unwrap().len(), CAPACITY);
        // Only what came after the last checkpoint is left to redo.
        let (_journal, records) = reopen(dir.path());
        assert_eq!(records.last(), Some(&tail));
        assert!(records.len() > 1 && records.len() < 100, "{}", records.len());
    }
}

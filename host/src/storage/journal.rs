//! A write-ahead log with group commit: one preallocated file of
//! checksummed records, made durable by a single `fdatasync` for every
//! record appended since the last one. It knows nothing of what the
//! records mean (`changes.rs` does).
//!
//! [`Journal::append`] only queues a record and returns its sequence
//! number; records are written when someone waits for one
//! ([`Journal::wait`]), so the records of one request, and of every
//! request waiting at the same moment, share a flush. A record nobody
//! waits for is written after [`Options::idle_flush`] anyway.
//!
//! Every wake-up goes through `tokio::sync::watch`: waiters tell the
//! writer thread how far they want the log durable, the writer tells
//! waiters how far it is. The writer thread drives a current-thread
//! runtime of its own, which also serves [`Journal::wait_blocking`].
//!
//! When the file is full, and at a clean shutdown ([`Journal::close`]),
//! the owner's [`Checkpoint`] makes everything the records describe
//! durable by other means, and a new generation starts from the top. A
//! record's checksum covers its generation, so records of an older
//! generation end the replay, as does a torn record.
//!
//! On disk: a header block (magic, generation, CRC-32), then frames of
//! payload length (u32 LE), CRC-32 of generation and payload (u32 LE),
//! payload; zeroes after the last frame.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// The header block: magic, generation, checksum.
const HEADER: u64 = 4096;
const MAGIC: &[u8; 8] = b"REGJRNL1";
/// A frame's length and checksum.
const FRAME_HEAD: u64 = 8;

/// The file is zero-filled ahead of the records in steps of this size, so
/// that a flush overwrites allocated blocks and only the data moves.
const ZERO_STEP: u64 = 1024 * 1024;

/// How a journal is sized and paced.
#[derive(Debug, Clone)]
pub struct Options {
    /// The file's size: a checkpoint comes every this many bytes of records.
    pub capacity: u64,
    /// Records nobody waits for are written after this long anyway.
    pub idle_flush: Duration,
}

impl Default for Options {
    /// 32 MiB (~7,000 pushes of 4 KiB blobs between checkpoints), 100 ms.
    fn default() -> Options {
        Options { capacity: 32 * 1024 * 1024, idle_flush: Duration::from_millis(100) }
    }
}

/// Makes durable, by other means, every change the journal's records
/// describe, so that the journal may start afresh (for a data directory:
/// `syncfs`).
pub type Checkpoint = Box<dyn FnMut() -> std::io::Result<()> + Send>;

/// Why a record is not (or will never be) durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// Writing, flushing or checkpointing failed: nothing is durable any
    /// more through this journal.
    #[error("the journal failed: {0}")]
    Io(Arc<std::io::Error>),
    /// The writer thread panicked.
    #[error("the journal's writer thread panicked")]
    Panicked,
    /// Closed (or sealed) for a shutdown, or never started.
    #[error("the journal is not running (shutting down)")]
    NotRunning,
    /// A record larger than the file could ever hold.
    #[error("a journal record of {0} bytes does not fit the journal")]
    TooLarge(usize),
}

impl From<std::io::Error> for JournalError {
    fn from(e: std::io::Error) -> Self {
        JournalError::Io(Arc::new(e))
    }
}

fn frame(generation: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(generation, payload).to_le_bytes());
    out.extend_from_slice(payload);
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

fn parse_header(bytes: &[u8; 20]) -> Option<u64> {
    if &bytes[..8] != MAGIC || crc32fast::hash(&bytes[..16]).to_le_bytes() != bytes[16..20] {
        return None;
    }
    Some(u64::from_le_bytes(bytes[8..16].try_into().ok()?))
}

/// Reads the payloads of the current generation, up to the first record
/// that is torn, of another generation, or not there.
fn read_records(file: &File) -> std::io::Result<(u64, Vec<Vec<u8>>)> {
    let len = file.metadata()?.len();
    let mut head = [0u8; 20];
    if len < HEADER || file.read_exact_at(&mut head, 0).is_err() {
        return Ok((0, Vec::new()));
    }
    // A torn header can only come from a checkpoint, after it made
    // everything durable: nothing before it needs redoing.
    let Some(generation) = parse_header(&head) else { return Ok((0, Vec::new())) };
    let mut records = Vec::new();
    let mut offset = HEADER;
    let mut frame_head = [0u8; FRAME_HEAD as usize];
    while offset + FRAME_HEAD <= len && file.read_exact_at(&mut frame_head, offset).is_ok() {
        let size = u32::from_le_bytes(frame_head[..4].try_into().expect("4 bytes")) as u64;
        let crc = u32::from_le_bytes(frame_head[4..].try_into().expect("4 bytes"));
        if size == 0 || offset + FRAME_HEAD + size > len {
            break;
        }
        let mut payload = vec![0u8; size as usize];
        if file.read_exact_at(&mut payload, offset + FRAME_HEAD).is_err() || checksum(generation, &payload) != crc {
            break;
        }
        records.push(payload);
        offset += FRAME_HEAD + size;
    }
    Ok((generation, records))
}

/// What the writer has made durable, as waiters see it.
#[derive(Debug, Clone, Default)]
struct Durable {
    /// Every record up to this sequence number is durable.
    upto: u64,
    /// Set when nothing more will become durable.
    failed: Option<JournalError>,
    /// Flushes so far (each one `fdatasync`).
    flushes: u64,
}

/// Records appended and not yet taken by the writer.
#[derive(Default)]
struct Queue {
    payloads: Vec<Vec<u8>>,
    /// Sequence number of the last record appended (the first is 1).
    last: u64,
    /// No more appends: shutting down.
    sealed: bool,
    /// The writer is to write what is queued and stop.
    stop: Option<Stop>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Checkpoint last (a clean shutdown).
    Close,
    /// Leave the records for the next start to redo (as a crash would).
    Drop,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Waiters to the writer: the highest sequence number someone waits
    /// for. Also bumped to stop the writer.
    wanted: watch::Sender<u64>,
    /// The writer to waiters.
    durable: watch::Sender<Durable>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Nothing becomes durable any more: fail every waiter, now and later.
    fn fail(&self, why: JournalError) {
        tracing::error!("{why}");
        self.durable.send_modify(|durable| {
            durable.failed.get_or_insert(why);
        });
    }

    fn failed(&self) -> Option<JournalError> {
        self.durable.borrow().failed.clone()
    }
}

/// A write-ahead log over one file.
pub struct Journal {
    shared: Arc<Shared>,
    options: Options,
    writer: Mutex<Option<JoinHandle<Result<(), JournalError>>>>,
    /// The writer thread's runtime, for blocking waits.
    runtime: OnceLock<tokio::runtime::Handle>,
}

/// A journal opened and read, not yet started.
pub struct PendingStart {
    writer: Writer,
    replayed: bool,
}

/// The file side, owned by the writer thread.
struct Writer {
    file: File,
    /// The directory holding the file, to make its name durable once.
    dir: File,
    checkpoint: Checkpoint,
    capacity: u64,
    generation: u64,
    offset: u64,
    zeroed: u64,
    flushes: u64,
}

impl Journal {
    /// Opens (creating) the journal at `path` and returns the payloads of
    /// its current generation, oldest first, for the owner to redo.
    /// Nothing is written until [`Journal::start`], which must follow the
    /// redo.
    pub fn open(
        path: &Path,
        options: Options,
        checkpoint: Checkpoint,
    ) -> std::io::Result<(Arc<Journal>, PendingStart, Vec<Vec<u8>>)> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let (generation, records) = read_records(&file)?;
        let zeroed = file.metadata()?.len();
        // Reserve the whole file now, so that a full disk can never fail a
        // flush later; its size grows only as it is zero-filled.
        if zeroed < options.capacity {
            match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, options.capacity) {
                Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let dir = File::open(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))?;
        let writer = Writer {
            file,
            dir,
            checkpoint,
            capacity: options.capacity,
            generation,
            offset: HEADER,
            zeroed,
            flushes: 0,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wanted: watch::channel(0).0,
            durable: watch::channel(Durable::default()).0,
        });
        let replayed = !records.is_empty();
        let journal = Arc::new(Journal { shared, options, writer: Mutex::new(None), runtime: OnceLock::new() });
        Ok((journal, PendingStart { writer, replayed }, records))
    }

    /// After the redo: makes it durable (a checkpoint), starts a new
    /// generation (so no old record is ever redone again) and the writer.
    pub fn start(&self, pending: PendingStart) -> std::io::Result<()> {
        let PendingStart { mut writer, replayed } = pending;
        if replayed {
            (writer.checkpoint)()?;
        }
        let fresh = writer.zeroed < HEADER;
        writer.new_generation()?;
        if fresh {
            // The journal file's name, made durable once.
            writer.dir.sync_all()?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
        let _ = self.runtime.set(runtime.handle().clone());
        let (shared, idle_flush) = (self.shared.clone(), self.options.idle_flush);
        let thread = std::thread::Builder::new().name("journal".into()).spawn(move || {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(writer.run(&shared, idle_flush))
            }));
            let result = run.unwrap_or(Err(JournalError::Panicked));
            if let Err(e) = &result {
                // Never leave requests waiting for a thread that is gone.
                shared.fail(e.clone());
            }
            result
        })?;
        *self.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        Ok(())
    }

    /// Queues `payload`; returns its sequence number, to [`wait`](Self::wait) for.
    pub fn append(&self, payload: Vec<u8>) -> Result<u64, JournalError> {
        if FRAME_HEAD + payload.len() as u64 > self.options.capacity - HEADER || payload.len() > u32::MAX as usize {
            return Err(JournalError::TooLarge(payload.len()));
        }
        if let Some(failed) = self.shared.failed() {
            return Err(failed);
        }
        let mut queue = self.shared.lock();
        if queue.sealed {
            return Err(JournalError::NotRunning);
        }
        queue.payloads.push(payload);
        queue.last += 1;
        Ok(queue.last)
    }

    /// Returns once record `seq` and all before it are durable, asking the
    /// writer to flush them.
    pub async fn wait(&self, seq: u64) -> Result<(), JournalError> {
        if seq == 0 {
            return Ok(());
        }
        let durable = self.shared.durable.subscribe();
        self.shared.wanted.send_if_modified(|wanted| {
            let more = *wanted < seq;
            *wanted = (*wanted).max(seq);
            more
        });
        Self::until(durable, seq).await
    }

    /// Returns once record `seq` and all before it are durable, without
    /// asking for a flush: for whoever only follows the log, so as not to
    /// split the flush the records' own waiters would share.
    pub async fn follow(&self, seq: u64) -> Result<(), JournalError> {
        Self::until(self.shared.durable.subscribe(), seq).await
    }

    async fn until(mut durable: watch::Receiver<Durable>, seq: u64) -> Result<(), JournalError> {
        // The sender lives in `shared`, which the caller holds: never closed.
        let seen =
            durable.wait_for(|d| d.upto >= seq || d.failed.is_some()).await.map_err(|_| JournalError::NotRunning)?;
        match &seen.failed {
            Some(failed) if seen.upto < seq => Err(failed.clone()),
            _ => Ok(()),
        }
    }

    /// [`wait`](Self::wait) for a thread outside any async context (it
    /// would panic inside one).
    pub fn wait_blocking(&self, seq: u64) -> Result<(), JournalError> {
        self.block_on(seq, self.wait(seq))
    }

    /// [`follow`](Self::follow) for a thread outside any async context.
    pub fn follow_blocking(&self, seq: u64) -> Result<(), JournalError> {
        self.block_on(seq, self.follow(seq))
    }

    fn block_on(
        &self,
        seq: u64,
        wait: impl std::future::Future<Output = Result<(), JournalError>>,
    ) -> Result<(), JournalError> {
        match self.runtime.get() {
            Some(runtime) => runtime.block_on(wait),
            None if seq == 0 => Ok(()),
            None => Err(JournalError::NotRunning),
        }
    }

    /// The last durable sequence number.
    pub fn durable(&self) -> u64 {
        self.shared.durable.borrow().upto
    }

    /// For a shutdown: refuses later appends and returns once everything
    /// appended is durable.
    pub fn seal(&self) -> Result<(), JournalError> {
        let last = {
            let mut queue = self.shared.lock();
            queue.sealed = true;
            queue.last
        };
        self.wait_blocking(last)
    }

    /// For a clean shutdown: seals, checkpoints (so nothing is left to
    /// redo) and stops the writer.
    pub fn close(&self) -> Result<(), JournalError> {
        self.stop(Stop::Close)
    }

    fn stop(&self, how: Stop) -> Result<(), JournalError> {
        {
            let mut queue = self.shared.lock();
            queue.sealed = true;
            queue.stop.get_or_insert(how);
        }
        self.shared.wanted.send_modify(|_| {});
        let thread = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        match thread {
            Some(thread) => thread.join().map_err(|_| JournalError::Panicked)?,
            None => Ok(()),
        }
    }
}

impl Drop for Journal {
    /// Writes what was appended and stops, without a checkpoint: what a
    /// crash right after would leave.
    fn drop(&mut self) {
        let _ = self.stop(Stop::Drop);
    }
}

impl Writer {
    async fn run(mut self, shared: &Shared, idle_flush: Duration) -> Result<(), JournalError> {
        let mut wanted = shared.wanted.subscribe();
        let mut idle = false;
        loop {
            // Marks what is seen now, so that a later bump wakes the wait below.
            let want = *wanted.borrow_and_update();
            let (batch, last, stop) = {
                let mut queue = shared.lock();
                let due = want > shared.durable.borrow().upto || queue.stop.is_some() || idle;
                let batch = if due { std::mem::take(&mut queue.payloads) } else { Vec::new() };
                (batch, queue.last, queue.stop)
            };
            idle = false;
            if !batch.is_empty() {
                self.write(batch)?;
                self.flushes += 1;
                let flushes = self.flushes;
                shared.durable.send_modify(|durable| {
                    durable.upto = last;
                    durable.flushes = flushes;
                });
                continue;
            }
            if let Some(stop) = stop {
                tracing::debug!("journal: {last} records in {} flushes", self.flushes);
                if stop == Stop::Close && shared.failed().is_none() {
                    self.checkpoint()?;
                }
                return Ok(());
            }
            tokio::select! {
                changed = wanted.changed() => changed.map_err(|_| JournalError::NotRunning)?,
                () = tokio::time::sleep(idle_flush) => idle = true,
            }
        }
    }

    /// Writes and flushes `batch`, checkpointing when the file is full.
    fn write(&mut self, batch: Vec<Vec<u8>>) -> std::io::Result<()> {
        let mut out = Vec::new();
        for payload in batch {
            if self.offset + (out.len() + payload.len()) as u64 + FRAME_HEAD > self.capacity {
                self.flush(&out)?;
                out.clear();
                self.checkpoint()?;
            }
            frame(self.generation, &payload, &mut out);
        }
        self.flush(&out)
    }

    fn flush(&mut self, out: &[u8]) -> std::io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let end = self.offset + out.len() as u64;
        self.zero_until(end)?;
        self.file.write_all_at(out, self.offset)?;
        self.file.sync_data()?;
        self.offset = end;
        Ok(())
    }

    /// Extends the zero-filled part of the file to cover `end`.
    fn zero_until(&mut self, end: u64) -> std::io::Result<()> {
        while self.zeroed < end {
            let step = ZERO_STEP.min(self.capacity.max(end) - self.zeroed);
            self.file.write_all_at(&vec![0u8; step as usize], self.zeroed)?;
            self.zeroed += step;
        }
        Ok(())
    }

    /// Makes every change recorded so far durable by itself, then starts
    /// a new generation.
    fn checkpoint(&mut self) -> std::io::Result<()> {
        (self.checkpoint)()?;
        self.new_generation()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::TestDir;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn payload(n: u8) -> Vec<u8> {
        vec![n; 100]
    }

    fn no_checkpoint() -> Checkpoint {
        Box::new(|| Ok(()))
    }

    /// A checkpoint that only counts its calls.
    fn counting_checkpoint() -> (Checkpoint, Arc<AtomicU64>) {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let checkpoint: Checkpoint = Box::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        (checkpoint, calls)
    }

    /// Options under which only waiters make the writer flush.
    fn quiet() -> Options {
        Options { idle_flush: Duration::from_secs(3600), ..Options::default() }
    }

    fn reopen_with(dir: &Path, options: Options, checkpoint: Checkpoint) -> (Arc<Journal>, Vec<Vec<u8>>) {
        let (journal, pending, records) = Journal::open(&dir.join("journal"), options, checkpoint).unwrap();
        journal.start(pending).unwrap();
        (journal, records)
    }

    fn reopen(dir: &Path) -> (Arc<Journal>, Vec<Vec<u8>>) {
        reopen_with(dir, quiet(), no_checkpoint())
    }

    fn flushes(journal: &Journal) -> u64 {
        journal.shared.durable.borrow().flushes
    }

    #[test]
    fn durable_records_are_read_back_once() {
        let dir = TestDir::new();
        let (journal, records) = reopen(dir.path());
        assert!(records.is_empty());
        journal.append(payload(1)).unwrap();
        let seq = journal.append(payload(2)).unwrap();
        journal.wait_blocking(seq).unwrap();
        assert_eq!(journal.durable(), seq);
        drop(journal);
        let (journal, records) = reopen(dir.path());
        assert_eq!(records, vec![payload(1), payload(2)]);
        drop(journal);
        // Starting made a new generation: nothing is redone twice.
        let (_journal, records) = reopen(dir.path());
        assert!(records.is_empty());
    }

    #[test]
    fn many_appenders_share_one_flush() {
        let dir = TestDir::new();
        let (journal, _) = reopen(dir.path());
        let seqs: Vec<u64> = std::thread::scope(|scope| {
            let appenders: Vec<_> = (0..16u8)
                .map(|n| {
                    scope.spawn({
                        let journal = &journal;
                        move || journal.append(payload(n)).unwrap()
                    })
                })
                .collect();
            appenders.into_iter().map(|a| a.join().unwrap()).collect()
        });
        assert_eq!(flushes(&journal), 0, "nobody waited yet");
        let last = *seqs.iter().max().unwrap();
        assert_eq!(last, 16);
        journal.wait_blocking(last).unwrap();
        assert_eq!(flushes(&journal), 1);
        // Waiting again for any of them costs nothing.
        for seq in seqs {
            journal.wait_blocking(seq).unwrap();
        }
        assert_eq!(flushes(&journal), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_waiters_are_answered_by_fewer_flushes() {
        let dir = TestDir::new();
        let (journal, _) = reopen(dir.path());
        let waiters: Vec<_> = (0..64u8)
            .map(|n| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    let seq = journal.append(payload(n))?;
                    journal.wait(seq).await
                })
            })
            .collect();
        for waiter in waiters {
            waiter.await.unwrap().unwrap();
        }
        assert_eq!(journal.durable(), 64);
        assert!(flushes(&journal) < 64, "{} flushes", flushes(&journal));
    }

    #[test]
    fn following_asks_for_no_flush() {
        let dir = TestDir::new();
        let (journal, _) = reopen(dir.path());
        let seq = journal.append(payload(1)).unwrap();
        let follower = std::thread::scope(|scope| {
            let follower = scope.spawn(|| journal.follow_blocking(seq));
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(flushes(&journal), 0, "a follower alone makes no flush");
            journal.wait_blocking(seq).unwrap();
            follower.join().unwrap()
        });
        follower.unwrap();
        assert_eq!(flushes(&journal), 1);
    }

    #[test]
    fn unwaited_records_are_flushed_when_idle() {
        let dir = TestDir::new();
        let options = Options { idle_flush: Duration::from_millis(10), ..Options::default() };
        let (journal, _) = reopen_with(dir.path(), options, no_checkpoint());
        let seq = journal.append(payload(1)).unwrap();
        for _ in 0..500 {
            if journal.durable() >= seq {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("an unwaited record was never flushed");
    }

    #[test]
    fn a_clean_close_checkpoints_and_leaves_nothing_to_redo() {
        let dir = TestDir::new();
        let (count, checkpoints) = counting_checkpoint();
        let (journal, _) = reopen_with(dir.path(), quiet(), count);
        let seq = journal.append(payload(1)).unwrap();
        journal.close().unwrap();
        assert_eq!(journal.durable(), seq, "close writes what was appended");
        assert_eq!(checkpoints.load(Ordering::Relaxed), 1);
        assert!(matches!(journal.append(payload(2)), Err(JournalError::NotRunning)), "closed: no more records");
        drop(journal);
        let (_journal, records) = reopen(dir.path());
        assert!(records.is_empty());
    }

    #[test]
    fn a_sealed_journal_refuses_appends_and_has_written_the_rest() {
        let dir = TestDir::new();
        let (journal, _) = reopen(dir.path());
        let seq = journal.append(payload(1)).unwrap();
        journal.seal().unwrap();
        assert_eq!(journal.durable(), seq);
        assert!(matches!(journal.append(payload(2)), Err(JournalError::NotRunning)));
    }

    #[test]
    fn waiters_fail_instead_of_hanging_when_the_writer_fails() {
        let dir = TestDir::new();
        // Room for two records: the third needs a checkpoint, which fails.
        let options = Options { capacity: HEADER + 2 * (FRAME_HEAD + 100), ..quiet() };
        let failing: Checkpoint = Box::new(|| Err(std::io::Error::other("disk gone")));
        let (journal, _) = reopen_with(dir.path(), options, failing);
        let first = journal.append(payload(1)).unwrap();
        journal.wait_blocking(first).unwrap();
        journal.append(payload(2)).unwrap();
        let third = journal.append(payload(3)).unwrap();
        assert!(matches!(journal.wait_blocking(third), Err(JournalError::Io(_))));
        // What was durable before stays so; nothing new is accepted.
        journal.wait_blocking(first).unwrap();
        assert!(matches!(journal.append(payload(4)), Err(JournalError::Io(_))));
        // A record larger than the file is refused up front.
        assert!(matches!(journal.append(vec![0; 4096]), Err(JournalError::TooLarge(4096))));
    }

    #[test]
    fn waiters_fail_when_the_writer_panics() {
        let dir = TestDir::new();
        let options = Options { capacity: HEADER + FRAME_HEAD + 100, ..quiet() };
        let panicking: Checkpoint = Box::new(|| panic!("a bug in the checkpoint"));
        let (journal, _) = reopen_with(dir.path(), options, panicking);
        journal.append(payload(1)).unwrap();
        let second = journal.append(payload(2)).unwrap();
        assert!(matches!(journal.wait_blocking(second), Err(JournalError::Panicked)));
    }

    #[test]
    fn replay_stops_at_a_torn_record() {
        let dir = TestDir::new();
        let (journal, _) = reopen(dir.path());
        for n in 1..=3 {
            journal.append(payload(n)).unwrap();
        }
        journal.wait_blocking(3).unwrap();
        drop(journal);
        let frame_len = FRAME_HEAD + 100;
        let path = dir.path().join("journal");
        let original = std::fs::read(&path).unwrap();
        // The third record's last byte never reached the disk.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0xff], HEADER + 3 * frame_len - 1).unwrap();
        drop(file);
        let (journal, records) = reopen(dir.path());
        assert_eq!(records, vec![payload(1), payload(2)]);
        drop(journal);

        // A tail cut off in the middle of the second frame's payload.
        std::fs::write(&path, &original[..(HEADER + frame_len + 50) as usize]).unwrap();
        let (journal, records) = reopen(dir.path());
        assert_eq!(records, vec![payload(1)]);
        drop(journal);

        // A tail cut off inside the second frame's head.
        std::fs::write(&path, &original[..(HEADER + frame_len + 3) as usize]).unwrap();
        let (journal, records) = reopen(dir.path());
        assert_eq!(records, vec![payload(1)]);
        drop(journal);

        // A torn header: nothing to redo.
        let mut torn = original.clone();
        torn[9] ^= 1;
        std::fs::write(&path, &torn).unwrap();
        let (_journal, records) = reopen(dir.path());
        assert!(records.is_empty());
    }

    #[test]
    fn records_of_an_older_generation_end_the_replay() {
        let dir = TestDir::new();
        let (journal, _) = reopen(dir.path());
        for n in 1..=3 {
            journal.append(payload(n)).unwrap();
        }
        journal.wait_blocking(3).unwrap();
        drop(journal);
        // Restarted (a new generation), one record written over the old
        // first: the old second and third still follow it on disk.
        let (journal, records) = reopen(dir.path());
        assert_eq!(records.len(), 3);
        let seq = journal.append(payload(9)).unwrap();
        journal.wait_blocking(seq).unwrap();
        drop(journal);
        let (_journal, records) = reopen(dir.path());
        assert_eq!(records, vec![payload(9)]);
    }

    #[test]
    fn a_full_journal_checkpoints_and_goes_on() {
        let dir = TestDir::new();
        let (count, checkpoints) = counting_checkpoint();
        let capacity = HEADER + 10 * (FRAME_HEAD + 100);
        let (journal, _) = reopen_with(dir.path(), Options { capacity, ..quiet() }, count);
        let mut last = 0;
        for round in 0..35u8 {
            last = journal.append(payload(round)).unwrap();
            if round % 4 == 0 {
                journal.wait_blocking(last).unwrap();
            }
        }
        journal.wait_blocking(last).unwrap();
        assert_eq!(checkpoints.load(Ordering::Relaxed), 3);
        drop(journal);
        assert_eq!(std::fs::metadata(dir.path().join("journal")).unwrap().len(), capacity);
        // Only what came after the last checkpoint is left to redo.
        let (_journal, records) = reopen(dir.path());
        assert_eq!(records, (30..35).map(payload).collect::<Vec<_>>());
    }
}

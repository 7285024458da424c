//! Small filesystem helpers for atomic, durable replacement of files, and
//! the group commit of directory syncs.
//!
//! A change becomes visible by a rename, after the new file's data is
//! fsynced (so no crash can expose a partial file under its final name).
//! The rename itself becomes durable when its directory is fsynced, or when
//! the journal records it (`journal.rs`). What a request still has to make
//! durable is collected in its [`Unsynced`]: directories, which one
//! [`Syncer`] thread fsyncs before the response is sent (so concurrent
//! requests share one round), and the last journal record it appended.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::SystemTime;
use storage_layout::keys::DirEntry;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, unused path inside `tmp`. Unique within this process; the
/// process id keeps two hosts on one directory apart.
pub fn temp_path(tmp: &Path) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    tmp.join(format!("{}-{n}", std::process::id()))
}

/// fsync a directory so that a rename into it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What must be made durable before a change counts as durable: the
/// directories whose entries changed, in the order they changed, and the
/// journal records up to a sequence number.
#[derive(Debug, Default)]
pub struct Unsynced {
    dirs: Vec<PathBuf>,
    journal: u64,
}

impl Unsynced {
    /// Records that an entry of `dir` changed.
    pub fn add(&mut self, dir: &Path) {
        if !self.dirs.iter().any(|d| d == dir) {
            self.dirs.push(dir.to_path_buf());
        }
    }

    /// Records that journal record `seq` must be durable.
    pub fn add_journal(&mut self, seq: u64) {
        self.journal = self.journal.max(seq);
    }

    /// Moves everything of `other` into this set.
    pub fn absorb(&mut self, other: Unsynced) {
        for dir in other.dirs {
            self.add(&dir);
        }
        self.add_journal(other.journal);
    }

    /// Takes the directories, leaving them empty.
    pub fn take_dirs(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.dirs)
    }

    /// Takes everything, leaving this set empty.
    pub fn take(&mut self) -> Unsynced {
        std::mem::take(self)
    }

    /// The journal record to wait for (0: none).
    pub fn journal(&self) -> u64 {
        self.journal
    }

    /// Whether nothing needs syncing.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty() && self.journal == 0
    }
}

/// Writes `contents` to a temporary file, fsyncs it, and renames it onto
/// `dest` (creating parent directories). Readers see the old file or the
/// new one, never a partial one; the rename is durable once `dirty` is synced.
pub fn atomic_write(tmp: &Path, dest: &Path, contents: &[&[u8]], dirty: &mut Unsynced) -> std::io::Result<()> {
    let temp = temp_path(tmp);
    let result = (|| {
        let mut file = File::create(&temp)?;
        for part in contents {
            file.write_all(part)?;
        }
        file.sync_data()?;
        rename_into(&temp, dest, dirty)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Renames `from` onto `dest`, creating `dest`'s parent directories, and
/// records every directory whose entries changed (including the parents
/// of directories it had to create).
pub fn rename_into(from: &Path, dest: &Path, dirty: &mut Unsynced) -> std::io::Result<()> {
    let parent = dest.parent().expect("destination has a parent");
    // A concurrent delete may remove an empty parent between create and
    // rename; one retry covers that race.
    for attempt in 0..2 {
        create_dirs(parent, dirty)?;
        match std::fs::rename(from, dest) {
            Ok(()) => {
                dirty.add(parent);
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt == 0 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns on its second attempt")
}

/// Creates the empty file `dest` (which must not exist), with its parent
/// directories. Nothing to flush: the directory sync makes it durable.
pub fn create_empty(dest: &Path, dirty: &mut Unsynced) -> std::io::Result<()> {
    let parent = dest.parent().expect("destination has a parent");
    for attempt in 0..2 {
        create_dirs(parent, dirty)?;
        match File::create_new(dest) {
            Ok(_) => {
                dirty.add(parent);
                return Ok(());
            }
            // A concurrent delete pruned the parent: once more.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt == 0 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns on its second attempt")
}

/// `create_dir_all`, noting the parent of each directory it created.
pub fn create_dirs(dir: &Path, dirty: &mut Unsynced) -> std::io::Result<()> {
    let mut missing = VecDeque::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        if d.is_dir() {
            break;
        }
        missing.push_front(d);
        cursor = d.parent();
    }
    for d in missing {
        match std::fs::create_dir(d) {
            Ok(()) => dirty.add(d.parent().expect("a created directory has a parent")),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes the file `path`; whether it was there.
pub fn remove_if_present(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The entries of directory `dir` whose names are UTF-8; `None` if it does
/// not exist.
pub fn list_dir(dir: &Path) -> std::io::Result<Option<Vec<DirEntry>>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push(DirEntry { name, is_dir: entry.file_type()?.is_dir() });
        }
    }
    Ok(Some(out))
}

/// Sets the modification time of file `path` to `time` (its access time
/// stays); `false` if there is no such file. One system call on the path.
pub fn set_modified(path: &Path, time: SystemTime) -> std::io::Result<bool> {
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
        last_modification: rustix::fs::Timespec {
            tv_sec: since_epoch.as_secs() as i64,
            tv_nsec: since_epoch.subsec_nanos() as _,
        },
    };
    match rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Removes empty directories from `dir` upwards, stopping at `stop`.
pub fn prune_empty_dirs(mut dir: &Path, stop: &Path) {
    while dir != stop && dir.starts_with(stop) {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
        match dir.parent() {
            Some(parent) => dir = parent,
            None => break,
        }
    }
}

/// Why directories could not be synced.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SyncError {
    /// The fsync of a directory failed.
    #[error("fsync of {}: {source}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// What the OS said.
        source: Arc<std::io::Error>,
    },
    /// The syncing thread is gone.
    #[error("the dir-sync thread stopped")]
    Stopped,
}

type SyncRequest = (Vec<PathBuf>, tokio::sync::oneshot::Sender<Result<(), SyncError>>);

/// Group commit of directory syncs: one thread takes every request queued
/// since its last round and fsyncs the union of their directories once.
pub struct Syncer {
    queue: mpsc::Sender<SyncRequest>,
}

impl Syncer {
    /// Starts the syncing thread.
    pub fn start() -> Syncer {
        let (queue, rounds) = mpsc::channel::<SyncRequest>();
        std::thread::Builder::new()
            .name("dir-sync".into())
            .spawn(move || {
                while let Ok(first) = rounds.recv() {
                    let mut batch = vec![first];
                    batch.extend(rounds.try_iter());
                    let mut dirs = Unsynced::default();
                    for (request_dirs, _) in &mut batch {
                        for dir in request_dirs.drain(..) {
                            dirs.add(&dir);
                        }
                    }
                    let mut result = Ok(());
                    for dir in dirs.take_dirs() {
                        match sync_dir(&dir) {
                            Ok(()) => {}
                            // Pruned since: nothing in it to make durable.
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => result = Err(SyncError::Dir { dir, source: Arc::new(e) }),
                        }
                    }
                    for (_, done) in batch {
                        let _ = done.send(result.clone());
                    }
                }
            })
            .expect("starting the dir-sync thread");
        Syncer { queue }
    }

    /// Returns once every directory in `dirs` has been fsynced.
    pub async fn sync(&self, dirs: Vec<PathBuf>) -> Result<(), SyncError> {
        if dirs.is_empty() {
            return Ok(());
        }
        let (done, wait) = tokio::sync::oneshot::channel();
        self.queue.send((dirs, done)).map_err(|_| SyncError::Stopped)?;
        wait.await.map_err(|_| SyncError::Stopped)?
    }
}

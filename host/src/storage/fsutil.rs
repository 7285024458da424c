//! Small filesystem helpers for atomic, durable replacement of files.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Writes `contents` to a temporary file, fsyncs it, and renames it onto
/// `dest` (creating parent directories), then fsyncs the parent. Readers see
/// the old file or the new one, never a partial one.
pub fn atomic_write(tmp: &Path, dest: &Path, contents: &[&[u8]]) -> std::io::Result<()> {
    let temp = temp_path(tmp);
    let result = (|| {
        let mut file = File::create(&temp)?;
        for part in contents {
            file.write_all(part)?;
        }
        file.sync_data()?;
        rename_into(&temp, dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Renames `from` onto `dest`, creating `dest`'s parent directories, and
/// fsyncs the parent.
pub fn rename_into(from: &Path, dest: &Path) -> std::io::Result<()> {
    let parent = dest.parent().expect("destination has a parent");
    // A concurrent delete may remove an empty parent between create and
    // rename; one retry covers that race.
    for attempt in 0..2 {
        std::fs::create_dir_all(parent)?;
        match std::fs::rename(from, dest) {
            Ok(()) => return sync_dir(parent),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt == 0 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns on its second attempt")
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

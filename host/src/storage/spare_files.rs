//! Empty files made ahead of need, so that starting an upload renames one
//! into place instead of creating a file on the request's path.
//!
//! Creating a file allocates an inode, and on ext4 without a journal (this
//! project's test machines) that scans past every inode deleted in the last
//! minutes: a create took 20 µs on a quiet filesystem and up to 300 µs
//! after many deletes. A thread keeps a few dozen spare files in `tmp/`
//! (which start-up clears); a rename moves directory entries only.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Spares kept at most; the thread refills up to this.
const HIGH: usize = 64;
/// Below this many, `take` asks the thread to refill.
const LOW: usize = 32;
/// A spare older than this is removed, not used: it is a temporary file
/// until it is taken, and start-up clears those.
const MAX_AGE: Duration = storage_layout::ages::TMP_MAX_AGE;

/// A pool of empty files in one directory.
pub struct SpareFiles {
    files: Arc<Mutex<Vec<(PathBuf, Instant)>>>,
    refill: Option<SyncSender<()>>,
}

impl SpareFiles {
    /// Starts the refilling thread over `dir`; without a thread, `take`
    /// always returns `None` and callers create files themselves.
    pub fn start(dir: PathBuf) -> SpareFiles {
        let files = Arc::new(Mutex::new(Vec::new()));
        let (refill, requests) = sync_channel::<()>(1);
        let pool = files.clone();
        let spawned = std::thread::Builder::new().name("spare-files".into()).spawn(move || {
            while requests.recv().is_ok() {
                fill(&dir, &pool);
            }
        });
        let refill = spawned.ok().map(|_| refill);
        if let Some(refill) = &refill {
            let _ = refill.try_send(());
        }
        SpareFiles { files, refill }
    }

    /// Renames a spare file to `dest` (which must not exist), modified now
    /// (an upload's time is when it started, until bytes arrive); `false`
    /// when there was none, or it could not be moved: then create `dest`
    /// anew.
    pub fn take(&self, dest: &Path) -> bool {
        let (spare, stale, left) = {
            let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            match files.pop() {
                // The newest spare is stale, so all are: start afresh.
                Some(newest) if newest.1.elapsed() > MAX_AGE => {
                    let mut stale = std::mem::take(&mut *files);
                    stale.push(newest);
                    (None, stale, 0)
                }
                spare => (spare.map(|(path, _)| path), Vec::new(), files.len()),
            }
        };
        for (path, _) in stale {
            let _ = std::fs::remove_file(path);
        }
        if left < LOW {
            if let Some(refill) = &self.refill {
                // Full channel: a refill is already pending.
                let _ = refill.try_send(());
            }
        }
        match spare {
            // `dest` is a fresh random name: nothing to overwrite.
            Some(spare) => {
                let moved = std::fs::rename(&spare, dest).is_ok();
                if moved {
                    // Best effort: at worst the spare's time, under an hour old.
                    let _ = super::fsutil::set_modified(dest, std::time::SystemTime::now());
                }
                moved
            }
            None => false,
        }
    }
}

fn fill(dir: &Path, pool: &Mutex<Vec<(PathBuf, Instant)>>) {
    loop {
        if pool.lock().unwrap_or_else(|p| p.into_inner()).len() >= HIGH {
            return;
        }
        let path = super::fsutil::temp_path(dir);
        if std::fs::File::create_new(&path).is_err() {
            return;
        }
        pool.lock().unwrap_or_else(|p| p.into_inner()).push((path, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spares_are_renamed_into_place_and_refilled() {
        let dir = crate::storage::TestDir::new();
        let spare_dir = dir.path().join("tmp");
        std::fs::create_dir_all(&spare_dir).unwrap();
        let spares = SpareFiles::start(spare_dir.clone());
        // Wait for the first fill (a thread of its own).
        for _ in 0..500 {
            if spares.files.lock().unwrap().len() >= HIGH {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(std::fs::read_dir(&spare_dir).unwrap().count(), HIGH);
        let mut taken = 0;
        for i in 0..HIGH + 10 {
            let dest = dir.path().join(format!("upload-{i}"));
            if spares.take(&dest) {
                taken += 1;
                assert_eq!(std::fs::read(&dest).unwrap(), b"");
            }
        }
        assert!(taken >= HIGH - LOW, "took {taken}");
        // Refilled behind the takes.
        for _ in 0..500 {
            if spares.files.lock().unwrap().len() >= LOW {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(spares.files.lock().unwrap().len() >= LOW);
    }

    #[test]
    fn stale_spares_are_removed_not_used() {
        let dir = crate::storage::TestDir::new();
        let spare_dir = dir.path().join("tmp");
        std::fs::create_dir_all(&spare_dir).unwrap();
        let stale = spare_dir.join("stale");
        std::fs::write(&stale, b"").unwrap();
        let old = Instant::now().checked_sub(MAX_AGE + Duration::from_secs(1)).expect("an old instant");
        let spares = SpareFiles { files: Arc::new(Mutex::new(vec![(stale.clone(), old)])), refill: None };
        assert!(!spares.take(&dir.path().join("upload")));
        assert!(!stale.exists());
        assert!(!dir.path().join("upload").exists());
    }
}

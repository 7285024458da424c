//! Empty files made as hard links to one shared empty file.
//!
//! A registry creates an empty kv value (the link of a blob into a
//! repository) on every blob push. A new directory entry is much cheaper
//! than a new inode: on ext4, allocating an inode scans the inode table,
//! and after many deletes that scan took a fifth of a push's server CPU
//! here (`find_inode_bit` → `recently_deleted`). Every such name reads as
//! an empty file, the same as one created on its own; a later write of the
//! key replaces the name by a rename, a delete unlinks it, so the shared
//! file itself is never written.
//!
//! The shared files are `<dir>/empty-<n>`. When one reaches the
//! filesystem's limit of links (`EMLINK`; 65000 on ext4) the next `n` is
//! used. Where hard links are not supported at all, each empty value gets
//! a file of its own, as before.

use super::fsutil::{self, Unsynced};
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The source of hard-linked empty files.
pub struct SharedEmpty {
    dir: PathBuf,
    /// The generation links are made to now, and its path.
    current: Mutex<(u32, PathBuf)>,
}

impl SharedEmpty {
    /// Opens `dir`, continuing with its newest shared file (made durable
    /// when created).
    pub fn open(dir: PathBuf) -> std::io::Result<SharedEmpty> {
        std::fs::create_dir_all(&dir)?;
        let mut newest = 0;
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name();
            if let Some(n) = name.to_str().and_then(|n| n.strip_prefix("empty-")).and_then(|n| n.parse().ok()) {
                newest = newest.max(n);
            }
        }
        let current = ensure(&dir, newest)?;
        Ok(SharedEmpty { dir, current: Mutex::new(current) })
    }

    /// Creates the empty file `dest`, which must not exist (else
    /// `AlreadyExists`), with its parent directories; like
    /// [`fsutil::create_empty`], durable once `dirty` is synced.
    pub fn create(&self, dest: &Path, dirty: &mut Unsynced) -> std::io::Result<()> {
        let parent = dest.parent().expect("destination has a parent");
        for _ in 0..3 {
            fsutil::create_dirs(parent, dirty)?;
            let (generation, shared) = self.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
            match std::fs::hard_link(&shared, dest) {
                Ok(()) => {
                    dirty.add(parent);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(e),
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::MLINK.raw_os_error()) => {
                    self.replace(generation, generation + 1)?
                }
                // The parent was pruned by a concurrent delete, or the
                // shared file was removed from outside: once more.
                Err(e) if e.kind() == ErrorKind::NotFound => self.replace(generation, generation)?,
                // No hard links on this filesystem.
                Err(_) => return fsutil::create_empty(dest, dirty),
            }
        }
        fsutil::create_empty(dest, dirty)
    }

    /// Moves from shared file `failed` (full, or gone) to the first usable
    /// one from `from` on, unless another thread already moved.
    fn replace(&self, failed: u32, from: u32) -> std::io::Result<()> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.0 == failed {
            *current = ensure(&self.dir, from)?;
        }
        Ok(())
    }
}

/// The first usable shared file from `n` on, created (empty, durable) if
/// missing. A non-empty file (written from outside) is skipped: its links
/// would all read its content.
fn ensure(dir: &Path, mut n: u32) -> std::io::Result<(u32, PathBuf)> {
    loop {
        let path = dir.join(format!("empty-{n}"));
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() && meta.len() == 0 => return Ok((n, path)),
            Ok(_) => n += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                match File::create_new(&path) {
                    Ok(file) => file.sync_all()?,
                    // Made meanwhile by another thread: check it again.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
                fsutil::sync_dir(dir)?;
                return Ok((n, path));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn empty_files_share_one_inode_and_stay_independent_names() {
        let dir = crate::storage::TestDir::new();
        let shared = SharedEmpty::open(dir.path().join("shared")).unwrap();
        let mut dirty = Unsynced::default();
        let (a, b) = (dir.path().join("x/a@"), dir.path().join("y/z/b@"));
        shared.create(&a, &mut dirty).unwrap();
        shared.create(&b, &mut dirty).unwrap();
        assert!(!dirty.is_empty());
        assert_eq!(std::fs::read(&a).unwrap(), b"");
        assert_eq!(std::fs::metadata(&a).unwrap().ino(), std::fs::metadata(&b).unwrap().ino());
        assert_eq!(
            shared.create(&a, &mut dirty).unwrap_err().kind(),
            ErrorKind::AlreadyExists,
            "an existing name is not replaced"
        );
        // Replacing one name by a rename leaves the other empty.
        std::fs::write(dir.path().join("tmp"), b"full").unwrap();
        std::fs::rename(dir.path().join("tmp"), &a).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"");
        std::fs::remove_file(&b).unwrap();
        assert_eq!(std::fs::read(dir.path().join("shared/empty-0")).unwrap(), b"");
    }

    #[test]
    fn a_written_or_removed_shared_file_is_not_used_again() {
        let dir = crate::storage::TestDir::new();
        let shared_dir = dir.path().join("shared");
        std::fs::create_dir_all(&shared_dir).unwrap();
        std::fs::write(shared_dir.join("empty-0"), b"not empty").unwrap();
        let shared = SharedEmpty::open(shared_dir.clone()).unwrap();
        let mut dirty = Unsynced::default();
        shared.create(&dir.path().join("k@"), &mut dirty).unwrap();
        assert_eq!(std::fs::read(dir.path().join("k@")).unwrap(), b"");
        // Removed from outside: made again on the next create.
        std::fs::remove_file(shared_dir.join("empty-1")).unwrap();
        shared.create(&dir.path().join("l@"), &mut dirty).unwrap();
        assert_eq!(std::fs::read(dir.path().join("l@")).unwrap(), b"");
        // Full (simulated): the next generation takes over.
        shared.replace(1, 2).unwrap();
        shared.create(&dir.path().join("m@"), &mut dirty).unwrap();
        assert!(shared_dir.join("empty-2").is_file());
        // Reopening continues with the newest.
        let reopened = SharedEmpty::open(shared_dir).unwrap();
        assert_eq!(reopened.current.lock().unwrap().0, 2);
    }
}

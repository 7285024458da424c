//! `registry:storage/blobs` on `wasi:filesystem`.
//!
//! An upload is the file `uploads/<id>`. `append` hands the caller a stream
//! that the runtime appends to the file (`append-via-stream`): the registry
//! splices request bodies into it, so the bytes never pass through this
//! component while they arrive. The digest is checked anyway, in wasm:
//! `uploads/<id>.hash` holds how many leading bytes are hashed and the
//! SHA-256 state after them (`hashstate.rs`). `size`, `append` and `commit`
//! first read back and hash the bytes that arrived since (each byte once),
//! then save the new state by rename. `commit` compares the digest, sets
//! the file's time (the blob's `touched` time), syncs it and renames it to
//! `blobs/sha256/<xx>/<hex>`, even over a copy stored already (see
//! `collection.rs`, which garbage collection calls).
//!
//! What this store cannot do, since the runtime owns the append stream and
//! no instance outlives its request: it cannot tell whether an append
//! stream is still open, so `append` never answers `conflict`, and bytes
//! appended to an upload while another request commits it are not caught
//! in every case (`commit` refuses with `conflict` if the file grew while
//! it was being hashed, but not in the instant between that check and the
//! rename). The registry never does either: one upload session is driven
//! by one client, one request at a time, and a garbled upload fails its
//! digest check. For the same reason a failed append stream is told apart
//! from a failed request body by its error: only the filesystem's errors
//! carry a filesystem error code.

use crate::bindings::exports::registry::storage::blobs::{BlobInfo, Guest, GuestUpload, Upload, UploadInfo};
use crate::bindings::exports::registry::storage::types::Error;
use crate::collection;
use crate::fs::{self, fail, Fs};
use crate::StorageFs;
use storage_layout::hashstate::UploadHash;
use storage_layout::names::{
    blob_path, check_upload_id, digest_hex, digest_of_hex, upload_hash_path, upload_id, upload_path,
};
use storage_layout::span::Span;
use storage_layout::{StorageError, StorageResult};
use wasip2::filesystem::types::{DescriptorFlags, ErrorCode, OpenFlags};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// How the bindings pass `append-failure`'s argument.
type StreamFailure<'a> = &'a wasip2::io::error::Error;

/// The Rust type behind an `upload` resource: only its id. Everything
/// else is on disk.
pub struct FsUpload {
    id: String,
}

impl Guest for StorageFs {
    type Upload = FsUpload;

    fn stat(digest: String) -> Result<Option<u64>, Error> {
        let fs = Fs::get()?;
        Ok(fs.file_size(&blob_path(digest_hex(&digest)?).full())?)
    }

    fn read(digest: String, offset: u64, length: Option<u64>) -> Result<Option<InputStream>, Error> {
        Ok(read(&digest, offset, length)?)
    }

    fn redirect(digest: String) -> Result<Option<String>, Error> {
        // Files have no URL of their own: every blob goes through `read`.
        digest_hex(&digest)?;
        Ok(None)
    }

    fn delete(digest: String) -> Result<bool, Error> {
        let fs = Fs::get()?;
        Ok(fs.remove_file(&blob_path(digest_hex(&digest)?).full())?)
    }

    fn list(after: Option<String>, limit: u32) -> Result<Vec<BlobInfo>, Error> {
        Ok(collection::list(Fs::get()?, after.as_deref(), limit)?)
    }

    fn touch(digest: String) -> Result<bool, Error> {
        Ok(collection::touch(Fs::get()?, &digest)?)
    }

    fn delete_if_older(digest: String, before: u64) -> Result<bool, Error> {
        Ok(collection::delete_if_older(Fs::get()?, &digest, before)?)
    }

    fn list_uploads(after: Option<String>, limit: u32) -> Result<Vec<UploadInfo>, Error> {
        Ok(collection::list_uploads(Fs::get()?, after.as_deref(), limit)?)
    }
}

fn read(digest: &str, offset: u64, length: Option<u64>) -> StorageResult<Option<InputStream>> {
    let fs = Fs::get()?;
    let path = blob_path(digest_hex(digest)?).full();
    let Some(file) = fs.open_read(&path)? else { return Ok(None) };
    let size = file.stat().map_err(|e| fail("inspecting", &path, e))?.size;
    let span = Span::of(size, offset, length)?;
    if span.reaches_end(size) {
        // The stream ends with the file: exactly the span. (An empty span
        // starts at the end.) The stream keeps the file open, so a later
        // delete does not cut it short.
        let start = if span.len == 0 { size } else { span.offset };
        return file.read_via_stream(start).map(Some).map_err(|e| fail("reading", &path, e));
    }
    // A range that stops before the end: a file stream would run on to the
    // end, and this component cannot make a stream of its own (the stream
    // type belongs to the runtime). So copy the range into a temporary
    // file, runtime to runtime (splice), and stream that. It is unlinked at
    // once; the open stream keeps its bytes until it is dropped.
    let (tmp_path, tmp) = fs.temp_file()?;
    let copied = (|| {
        let out = tmp.write_via_stream(0).map_err(|e| fail("writing", &tmp_path, e))?;
        let input = file.read_via_stream(span.offset).map_err(|e| fail("reading", &path, e))?;
        let mut left = span.len;
        while left > 0 {
            match out.blocking_splice(&input, left) {
                Ok(n) => left -= n.min(left),
                Err(StreamError::Closed) => {
                    return Err(StorageError::Other(format!("{path} ended before its size ({size} bytes)")))
                }
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(StorageError::Other(format!("copying a range of {path}: {}", e.to_debug_string())))
                }
            }
        }
        out.blocking_flush().map_err(|e| StorageError::Other(format!("copying a range of {path}: {e:?}")))?;
        drop(out);
        tmp.read_via_stream(0).map_err(|e| fail("reading", &tmp_path, e))
    })();
    let _ = fs.remove_file(&tmp_path);
    copied.map(Some)
}

/// One `start` in this many sweeps `tmp/`.
const SWEEP_ONE_IN: u64 = 64;

/// `registry-host` clears its temporary files when it starts; a component
/// never "starts", so every so often a new upload sweeps them instead.
/// (Abandoned uploads are left to the registry's garbage collection.)
fn sweep_leftovers(fs: Fs) {
    if wasip2::random::random::get_random_u64().is_multiple_of(SWEEP_ONE_IN) {
        collection::sweep_tmp(fs);
    }
}

impl GuestUpload for FsUpload {
    fn start() -> Result<Upload, Error> {
        let fs = Fs::get()?;
        sweep_leftovers(fs);
        loop {
            let random: [u8; 16] = wasip2::random::random::get_random_bytes(16)
                .try_into()
                .map_err(|_| StorageError::Other("wasi:random returned too few bytes".into()))?;
            let id = upload_id(random);
            let path = upload_path(&id);
            match fs.create_new(&path) {
                Ok(_) => return Ok(Upload::new(FsUpload { id })),
                Err(ErrorCode::Exist) => continue,
                Err(e) => return Err(fail("creating", &path, e).into()),
            }
        }
    }

    fn resume(id: String) -> Result<Upload, Error> {
        match Fs::get()?.file_size(&upload_path(check_upload_id(&id)?))? {
            Some(_) => Ok(Upload::new(FsUpload { id })),
            None => Err(StorageError::NotFound.into()),
        }
    }

    fn id(&self) -> String {
        self.id.clone()
    }

    fn size(&self) -> Result<u64, Error> {
        Ok(catch_up(Fs::get()?, &self.id)?.hashed())
    }

    fn append(&self) -> Result<OutputStream, Error> {
        let fs = Fs::get()?;
        // Hash what earlier requests appended, so that `commit` only has
        // the last chunk left to read.
        catch_up(fs, &self.id)?;
        let path = upload_path(&self.id);
        let file = match fs.open(&path, OpenFlags::empty(), DescriptorFlags::WRITE) {
            Ok(file) => file,
            Err(ErrorCode::NoEntry) => return Err(Error::NotFound),
            Err(e) => return Err(fail("opening", &path, e).into()),
        };
        Ok(file.append_via_stream().map_err(|e| fail("appending to", &path, e))?)
    }

    /// The runtime owns the append stream, so its errors are the
    /// filesystem's: one with a filesystem error code is this store's.
    fn append_failure(&self, failure: StreamFailure<'_>) -> Option<Error> {
        let code = wasip2::filesystem::types::filesystem_error_code(failure)?;
        let path = upload_path(&self.id);
        // The upload's bytes are unknown past the failure: end it, and give
        // the space back at once.
        if let Ok(fs) = Fs::get() {
            let _ = discard(fs, &self.id);
        }
        Some(fail("appending to", &path, code).into())
    }

    fn commit(&self, expected_digest: String) -> Result<u64, Error> {
        Ok(commit(Fs::get()?, &self.id, &expected_digest)?)
    }

    fn abort(&self) -> Result<(), Error> {
        Ok(discard(Fs::get()?, &self.id)?)
    }
}

fn commit(fs: Fs, id: &str, expected: &str) -> StorageResult<u64> {
    let hex = digest_hex(expected)?;
    let state = catch_up(fs, id)?;
    let actual = state.hex_digest();
    if actual != hex {
        discard(fs, id)?;
        return Err(StorageError::DigestMismatch(digest_of_hex(&actual)));
    }
    let size = state.hashed();
    let dest = blob_path(hex);
    let path = upload_path(id);
    let file = match fs.open(&path, OpenFlags::empty(), DescriptorFlags::READ | DescriptorFlags::WRITE) {
        Ok(file) => file,
        Err(ErrorCode::NoEntry) => return Err(StorageError::NotFound),
        Err(e) => return Err(fail("opening", &path, e)),
    };
    if file.stat().map_err(|e| fail("inspecting", &path, e))?.size != size {
        // Bytes arrived while we hashed: an append stream is still open.
        return Err(StorageError::Conflict);
    }
    // Touched now, durably. Stored already or not, this copy replaces
    // whatever is at the blob's name (the same bytes), so that no
    // `delete-if-older` running meanwhile can leave the name empty.
    // By path: jco's preview2-shim (0.26) sets a descriptor's times in
    // milliseconds where Node.js takes seconds (a time far in the future).
    fs.set_modified(&path, fs::now()).map_err(|e| fail("touching", &path, e))?;
    file.sync().map_err(|e| fail("syncing", &path, e))?;
    drop(file);
    fs.rename_into(&path, &dest.dir, &dest.name, true)?;
    let _ = fs.remove_file(&upload_hash_path(id));
    Ok(size)
}

/// Removes an upload's bytes and hash state. Idempotent.
fn discard(fs: Fs, id: &str) -> StorageResult<()> {
    fs.remove_file(&upload_path(id))?;
    fs.remove_file(&upload_hash_path(id))?;
    Ok(())
}

/// Brings the persisted hash state of upload `id` up to the end of its
/// file: reads back and hashes the bytes appended since the state was last
/// saved, then saves it again (atomically, by rename). `NotFound` if the
/// upload is gone.
fn catch_up(fs: Fs, id: &str) -> StorageResult<UploadHash> {
    let path = upload_path(id);
    let Some(file) = fs.open_read(&path)? else { return Err(StorageError::NotFound) };
    let hash_path = upload_hash_path(id);
    // A missing or unreadable state (a crash before the first save, a
    // foreign format) costs one pass over the bytes, nothing more.
    let mut state = fs.read_file(&hash_path)?.as_deref().and_then(UploadHash::decode).unwrap_or_default();
    let size = file.stat().map_err(|e| fail("inspecting", &path, e))?.size;
    if state.hashed() > size {
        // The state is ahead of the file (a crash lost appended bytes that
        // were never synced): start over.
        state = UploadHash::new();
    }
    if state.hashed() == size {
        return Ok(state);
    }
    let mut offset = state.hashed();
    loop {
        let (bytes, eof) = file.read(crate::fs::READ_CHUNK, offset).map_err(|e| fail("reading", &path, e))?;
        if bytes.is_empty() {
            break;
        }
        state.update(&bytes);
        offset += bytes.len() as u64;
        if eof {
            break;
        }
    }
    // Not synced: after a crash, a lost or stale state is detected (above)
    // or only costs a rehash; the digest check at commit is what matters.
    let tmp = fs.write_temp(&[&state.encode()], false)?;
    let (dir, name) = hash_path.rsplit_once('/').expect("uploads/<id>.hash");
    if let Err(e) = fs.rename_into(&tmp, dir, name, false) {
        let _ = fs.remove_file(&tmp);
        return Err(e);
    }
    Ok(state)
}

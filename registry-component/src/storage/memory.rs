//! [`MemoryStorage`]: the storage seam in plain Rust, held in memory, with
//! the semantics `wit/` asks of every backend (versions, conditional writes,
//! byte-ordered listings, digest-checked commits, resumable uploads). It
//! lets the handlers run under `cargo test` natively; request bodies are
//! [`MemoryBody`], read with `std::io::Read`.

use super::{AppendError, BlobInfo, Entry, Error, Storage, Upload, UploadInfo};
use crate::http::RequestBody;
use crate::oci::digest::Digest;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A blob's or an upload's bytes, with the time of its last commit or
/// touch (a blob) or append (an upload).
#[derive(Default)]
struct Stored {
    bytes: Vec<u8>,
    time: u64,
}

#[derive(Default)]
struct State {
    kv: BTreeMap<String, Entry>,
    last_version: u64,
    blobs: BTreeMap<String, Stored>,
    uploads: BTreeMap<String, Stored>,
    last_upload: u64,
    last_random: u64,
    /// Seconds after the epoch that [`Storage::now`] answers.
    clock: u64,
    /// Bytes the store may hold in all (values, blobs, uploads); no limit
    /// if `None`.
    room: Option<u64>,
    /// Where blob GETs are redirected to (the digest appended), if set.
    redirect_base: Option<String>,
}

impl State {
    /// Bytes stored: values, blobs and uploads.
    fn used(&self) -> u64 {
        let used: usize = self.kv.values().map(|e| e.value.len()).sum::<usize>()
            + self.blobs.values().map(|b| b.bytes.len()).sum::<usize>()
            + self.uploads.values().map(|u| u.bytes.len()).sum::<usize>();
        used as u64
    }

    /// Whether `more` bytes, beyond what is stored, would not fit.
    fn lacks_room_for(&self, more: u64) -> bool {
        self.room.is_some_and(|room| self.used() + more > room)
    }
}

/// An in-memory store; clones share their contents.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    state: Rc<RefCell<State>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// Digests of the committed blobs, in order.
    pub fn blob_digests(&self) -> Vec<String> {
        self.state.borrow().blobs.keys().cloned().collect()
    }

    /// Sets the time [`Storage::now`] answers (it starts at the epoch and
    /// stands still unless set).
    pub fn set_time(&self, time: SystemTime) {
        self.state.borrow_mut().clock = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    }

    /// Lets the store hold only `room` bytes in all (values, blobs and
    /// uploads), as on a small disk; `None` lifts the limit. A write that
    /// does not fit is `full`, and an append that does not fit ends its
    /// upload, as `wit/blobs.wit` says.
    pub fn set_room(&self, room: Option<u64>) {
        self.state.borrow_mut().room = room;
    }

    /// Lets [`Storage::blob_redirect`] answer `base` followed by the digest,
    /// as a store with presigned URLs would.
    pub fn set_redirect_base(&self, base: Option<&str>) {
        self.state.borrow_mut().redirect_base = base.map(str::to_string);
    }

    /// Bytes stored: values, blobs and uploads.
    pub fn used(&self) -> u64 {
        self.state.borrow().used()
    }

    /// How many uploads are neither committed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.state.borrow().uploads.len()
    }
}

fn check_digest(digest: &str) -> Result<(), Error> {
    digest.parse::<Digest>().map(|_| ()).map_err(|e| Error::Invalid(e.to_string()))
}

fn check_key(key: &str) -> Result<(), Error> {
    let bad_segment = key.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    if key.is_empty() || key.len() > 1024 || bad_segment {
        return Err(Error::Invalid(format!("bad key {key:?}")));
    }
    Ok(())
}

impl Storage for MemoryStorage {
    type Body = MemoryBody;
    type Reader = Cursor<Vec<u8>>;
    type Upload = MemoryUpload;

    fn kv_get(&self, key: &str) -> Result<Option<Entry>, Error> {
        check_key(key)?;
        Ok(self.state.borrow().kv.get(key).cloned())
    }

    fn kv_set(&self, key: &str, value: &[u8]) -> Result<u64, Error> {
        let version = self.state.borrow().kv.get(key).map(|e| e.version);
        self.kv_set_if(key, value, version)
    }

    fn kv_set_if(&self, key: &str, value: &[u8], expected: Option<u64>) -> Result<u64, Error> {
        check_key(key)?;
        let mut state = self.state.borrow_mut();
        let old = state.kv.get(key);
        if old.map(|e| e.version) != expected {
            return Err(Error::Conflict);
        }
        let old_len = old.map_or(0, |e| e.value.len());
        if value.len() > old_len && state.lacks_room_for((value.len() - old_len) as u64) {
            return Err(Error::Full);
        }
        state.last_version += 1;
        let version = state.last_version;
        state.kv.insert(key.to_string(), Entry { value: value.to_vec(), version });
        Ok(version)
    }

    fn kv_delete(&self, key: &str) -> Result<bool, Error> {
        check_key(key)?;
        Ok(self.state.borrow_mut().kv.remove(key).is_some())
    }

    fn kv_list_keys(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<String>, Error> {
        let state = self.state.borrow();
        Ok(state
            .kv
            .range(prefix.to_string()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .filter(|k| after.is_none_or(|a| k.as_str() > a))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    fn blob_stat(&self, digest: &str) -> Result<Option<u64>, Error> {
        check_digest(digest)?;
        Ok(self.state.borrow().blobs.get(digest).map(|b| b.bytes.len() as u64))
    }

    fn blob_read(&self, digest: &str, offset: u64, length: Option<u64>) -> Result<Option<Self::Reader>, Error> {
        check_digest(digest)?;
        let state = self.state.borrow();
        let Some(bytes) = state.blobs.get(digest).map(|b| &b.bytes) else { return Ok(None) };
        let size = bytes.len() as u64;
        if offset > size {
            return Err(Error::Invalid(format!("offset {offset} is past the end ({size})")));
        }
        let end = length.map_or(size, |len| size.min(offset.saturating_add(len)));
        Ok(Some(Cursor::new(bytes[offset as usize..end as usize].to_vec())))
    }

    fn blob_redirect(&self, digest: &str) -> Result<Option<String>, Error> {
        check_digest(digest)?;
        Ok(self.state.borrow().redirect_base.as_ref().map(|base| format!("{base}{digest}")))
    }

    fn blob_delete(&self, digest: &str) -> Result<bool, Error> {
        check_digest(digest)?;
        Ok(self.state.borrow_mut().blobs.remove(digest).is_some())
    }

    fn blob_bytes(&self, digest: &str, max: u64) -> Result<Option<Vec<u8>>, Error> {
        check_digest(digest)?;
        let state = self.state.borrow();
        Ok(state.blobs.get(digest).map(|b| b.bytes[..b.bytes.len().min(max as usize)].to_vec()))
    }

    fn blob_list(&self, after: Option<&str>, limit: u32) -> Result<Vec<BlobInfo>, Error> {
        let state = self.state.borrow();
        Ok(state
            .blobs
            .iter()
            .filter(|(digest, _)| after.is_none_or(|a| digest.as_str() > a))
            .take(limit as usize)
            .map(|(digest, b)| BlobInfo { digest: digest.clone(), size: b.bytes.len() as u64, touched: b.time })
            .collect())
    }

    fn blob_touch(&self, digest: &str) -> Result<bool, Error> {
        check_digest(digest)?;
        let mut state = self.state.borrow_mut();
        let clock = state.clock;
        Ok(state.blobs.get_mut(digest).map(|b| b.time = clock).is_some())
    }

    fn blob_delete_if_older(&self, digest: &str, before: u64) -> Result<bool, Error> {
        check_digest(digest)?;
        let mut state = self.state.borrow_mut();
        if state.blobs.get(digest).is_some_and(|b| b.time < before) {
            state.blobs.remove(digest);
            return Ok(true);
        }
        Ok(false)
    }

    fn list_uploads(&self, after: Option<&str>, limit: u32) -> Result<Vec<UploadInfo>, Error> {
        let state = self.state.borrow();
        Ok(state
            .uploads
            .iter()
            .filter(|(id, _)| after.is_none_or(|a| id.as_str() > a))
            .take(limit as usize)
            .map(|(id, u)| UploadInfo { id: id.clone(), size: u.bytes.len() as u64, modified: u.time })
            .collect())
    }

    fn start_upload(&self) -> Result<MemoryUpload, Error> {
        let mut state = self.state.borrow_mut();
        state.last_upload += 1;
        let id = format!("{:08x}-0000", state.last_upload);
        let time = state.clock;
        state.uploads.insert(id.clone(), Stored { bytes: Vec::new(), time });
        Ok(MemoryUpload { state: self.state.clone(), id })
    }

    fn resume_upload(&self, id: &str) -> Result<MemoryUpload, Error> {
        let valid =
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'));
        if !valid {
            return Err(Error::Invalid(format!("bad upload id {id:?}")));
        }
        if !self.state.borrow().uploads.contains_key(id) {
            return Err(Error::NotFound);
        }
        Ok(MemoryUpload { state: self.state.clone(), id: id.to_string() })
    }

    /// Deterministic bytes: tests need no secrecy, only distinct values.
    fn random_bytes(&self, len: usize) -> Vec<u8> {
        let mut state = self.state.borrow_mut();
        state.last_random += 1;
        let seed = state.last_random.to_le_bytes();
        (0..len).map(|i| seed[i % 8] ^ (i as u8)).collect()
    }

    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.state.borrow().clock)
    }

    /// Single-threaded: nothing can change while it waits, so it returns.
    fn pause(&self, _duration: Duration) {}
}

/// An upload of a [`MemoryStorage`].
pub struct MemoryUpload {
    state: Rc<RefCell<State>>,
    id: String,
}

impl MemoryUpload {
    fn with_bytes<T>(&self, f: impl FnOnce(&mut Vec<u8>) -> T) -> Result<T, Error> {
        let mut state = self.state.borrow_mut();
        state.uploads.get_mut(&self.id).map(|u| f(&mut u.bytes)).ok_or(Error::NotFound)
    }

    /// Appends `more`, or, if it does not fit, ends the upload (its bytes
    /// released) and answers `full`.
    fn extend(&self, more: &[u8]) -> Result<(), Error> {
        let mut state = self.state.borrow_mut();
        if !state.uploads.contains_key(&self.id) {
            return Err(Error::NotFound);
        }
        if state.lacks_room_for(more.len() as u64) {
            state.uploads.remove(&self.id);
            return Err(Error::Full);
        }
        let clock = state.clock;
        let upload = state.uploads.get_mut(&self.id).expect("checked above");
        upload.bytes.extend_from_slice(more);
        upload.time = clock;
        Ok(())
    }
}

impl Upload for MemoryUpload {
    type Body = MemoryBody;

    fn id(&self) -> String {
        self.id.clone()
    }

    fn size(&self) -> Result<u64, Error> {
        self.with_bytes(|bytes| bytes.len() as u64)
    }

    fn append(&self, body: &mut MemoryBody) -> Result<u64, AppendError> {
        let mut received = Vec::new();
        let result = body.read_to_end(&mut received);
        let count = received.len() as u64;
        // As a store does, keep what arrived before the body broke.
        self.extend(&received)?;
        result.map(|_| count).map_err(|e| AppendError::Body { received: count, reason: e.to_string() })
    }

    fn write(&self, bytes: &[u8]) -> Result<(), Error> {
        self.extend(bytes)
    }

    fn commit(&self, expected_digest: &str) -> Result<u64, Error> {
        check_digest(expected_digest)?;
        let mut state = self.state.borrow_mut();
        let bytes = state.uploads.remove(&self.id).ok_or(Error::NotFound)?.bytes;
        let actual = Digest::of_bytes(&bytes);
        if actual.as_str() != expected_digest {
            return Err(Error::DigestMismatch(actual.to_string()));
        }
        let size = bytes.len() as u64;
        let time = state.clock;
        state.blobs.insert(expected_digest.to_string(), Stored { bytes, time });
        Ok(size)
    }

    fn abort(&self) -> Result<(), Error> {
        self.state.borrow_mut().uploads.remove(&self.id);
        Ok(())
    }
}

/// A request body held in memory (empty by default), optionally failing after its bytes (a
/// client that drops the connection mid-body).
#[derive(Default)]
pub struct MemoryBody {
    bytes: Cursor<Vec<u8>>,
    broken: bool,
    read: Rc<Cell<u64>>,
}

impl MemoryBody {
    /// A body of `bytes`.
    pub fn new(bytes: impl Into<Vec<u8>>) -> MemoryBody {
        MemoryBody { bytes: Cursor::new(bytes.into()), broken: false, read: Rc::default() }
    }

    /// A body that fails with an I/O error after `bytes`.
    pub fn broken_after(bytes: impl Into<Vec<u8>>) -> MemoryBody {
        MemoryBody { bytes: Cursor::new(bytes.into()), broken: true, read: Rc::default() }
    }

    /// A counter of the bytes read from this body, which outlives it.
    pub fn bytes_read(&self) -> Rc<Cell<u64>> {
        self.read.clone()
    }
}

impl Read for MemoryBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.bytes.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        if n == 0 && self.broken && !buf.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset"));
        }
        Ok(n)
    }
}

impl RequestBody for MemoryBody {
    fn read_up_to(&mut self, max: u64) -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        self.take(max).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        Ok(bytes)
    }

    fn discard(&mut self, max: u64) {
        let _ = std::io::copy(&mut self.take(max), &mut std::io::sink());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(bytes: &[u8]) -> String {
        Digest::of_bytes(bytes).to_string()
    }

    #[test]
    fn the_clock_is_the_one_the_test_sets() {
        let store = MemoryStorage::new();
        assert_eq!(store.now(), UNIX_EPOCH);
        let later = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        store.set_time(later);
        assert_eq!(store.now(), later);
        assert_eq!(store.clone().now(), later, "clones share the clock");
    }

    #[test]
    fn kv_versions_and_conditional_writes() {
        let store = MemoryStorage::new();
        let v1 = store.kv_set_if("a/b", b"1", None).unwrap();
        assert_eq!(store.kv_set_if("a/b", b"2", None), Err(Error::Conflict));
        let v2 = store.kv_set_if("a/b", b"2", Some(v1)).unwrap();
        assert!(v2 > v1);
        assert_eq!(store.kv_set_if("a/b", b"3", Some(v1)), Err(Error::Conflict));
        assert_eq!(store.kv_get("a/b").unwrap(), Some(Entry { value: b"2".to_vec(), version: v2 }));
        assert!(store.kv_set("a/b", b"4").unwrap() > v2);
        assert!(store.kv_delete("a/b").unwrap());
        assert!(!store.kv_delete("a/b").unwrap());
        for bad in ["", "a//b", "a/./b", "../a", "/a"] {
            assert!(matches!(store.kv_get(bad), Err(Error::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn kv_lists_by_prefix_in_byte_order() {
        let store = MemoryStorage::new();
        for key in ["p/b", "p/a", "p/c", "q/a", "o/z"] {
            store.kv_set(key, b"").unwrap();
        }
        assert_eq!(store.kv_list_keys("p/", None, 10).unwrap(), ["p/a", "p/b", "p/c"]);
        assert_eq!(store.kv_list_keys("p/", Some("p/a"), 1).unwrap(), ["p/b"]);
        assert!(store.kv_list_keys("p/", Some("p/c"), 10).unwrap().is_empty());
    }

    #[test]
    fn uploads_commit_only_their_digest() {
        let store = MemoryStorage::new();
        let upload = store.start_upload().unwrap();
        upload.write(b"hello").unwrap();
        let resumed = store.resume_upload(&upload.id()).unwrap();
        assert_eq!(resumed.append(&mut MemoryBody::new("!")), Ok(1));
        assert_eq!(upload.size(), Ok(6));
        assert_eq!(upload.commit(&digest(b"other")), Err(Error::DigestMismatch(digest(b"hello!"))));
        assert!(store.blob_digests().is_empty());
        assert_eq!(store.resume_upload(&upload.id()).err(), Some(Error::NotFound));
        assert!(matches!(store.resume_upload("NOT-HEX").err(), Some(Error::Invalid(_))));

        let upload = store.start_upload().unwrap();
        upload.write(b"hello!").unwrap();
        assert_eq!(upload.commit(&digest(b"hello!")), Ok(6));
        assert_eq!(store.open_uploads(), 0);
    }

    #[test]
    fn blob_reads_take_ranges() {
        let store = MemoryStorage::new();
        let upload = store.start_upload().unwrap();
        upload.write(b"0123456789").unwrap();
        let d = digest(b"0123456789");
        upload.commit(&d).unwrap();
        let read = |offset, length| store.blob_read(&d, offset, length).map(|r| r.map(Cursor::into_inner));
        assert_eq!(read(0, None), Ok(Some(b"0123456789".to_vec())));
        assert_eq!(read(8, Some(5)), Ok(Some(b"89".to_vec())));
        assert_eq!(read(10, None), Ok(Some(Vec::new())));
        assert!(matches!(read(11, None), Err(Error::Invalid(_))));
        assert_eq!(store.blob_read(&digest(b"x"), 0, None), Ok(None));
        assert!(matches!(store.blob_stat("sha256:abc"), Err(Error::Invalid(_))));
        assert!(store.blob_delete(&d).unwrap());
        assert_eq!(store.blob_stat(&d), Ok(None));
    }

    #[test]
    fn a_broken_body_keeps_what_arrived() {
        let store = MemoryStorage::new();
        let upload = store.start_upload().unwrap();
        let result = upload.append(&mut MemoryBody::broken_after("abc"));
        assert!(matches!(result, Err(AppendError::Body { received: 3, .. })), "{result:?}");
        assert_eq!(upload.size(), Ok(3));
    }
}

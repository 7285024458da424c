//! The contract's cases: each takes a fresh store and panics when the
//! backend breaks a rule of `wit/blobs.wit`, `wit/kv.wit` or
//! `wit/types.wit`. [`contract_tests!`](crate::contract_tests) runs them
//! all; a new case must be listed there too.

use crate::{BlobInfo, ContractClient, ContractStore, Entry, StorageError};
use sha2::{Digest as _, Sha256};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, SystemTime};
use storage_layout::entry::MAX_VALUE_LEN;
use storage_layout::keys::MAX_KEY_LEN;
use storage_layout::names::{hex, MAX_UPLOAD_ID_LEN};

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Deterministic bytes that differ from one `seed` to another.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed as u32 * 7 + (i as u32 >> 9)) as u8).collect()
}

/// Uploads `bytes` in one append and commits them; their digest.
fn push<C: ContractClient>(client: &mut C, bytes: &[u8]) -> String {
    let digest = digest_of(bytes);
    let upload = client.start().expect("start");
    client.append(&upload, bytes).expect("append");
    assert_eq!(client.commit(&upload, &digest), Ok(bytes.len() as u64), "commit");
    digest
}

fn read_all<C: ContractClient>(client: &mut C, digest: &str, offset: u64, length: Option<u64>) -> Vec<u8> {
    let reader = client.read(digest, offset, length).expect("read").expect("the blob exists");
    client.read_to_end(reader).expect("reading the stream")
}

fn is_invalid<T>(result: Result<T, StorageError>) -> bool {
    matches!(result, Err(StorageError::Invalid(_)))
}

/// A blob never stored: `none`, and deleting it is `false`.
pub fn blob_absent_is_none<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let digest = digest_of(b"never stored");
    assert_eq!(c.stat(&digest), Ok(None));
    assert!(c.read(&digest, 0, None).expect("read").is_none());
    assert_eq!(c.delete_blob(&digest), Ok(false));
}

/// Anything but `sha256:<64 lowercase hex>` is `invalid`, everywhere a
/// digest is taken; a malformed `expected-digest` leaves the upload as it
/// was.
pub fn blob_bad_digests_are_invalid<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let good = digest_of(b"x");
    let upper = good.to_uppercase().replace("SHA256", "sha256");
    let short = &good[..good.len() - 1];
    let bad = ["", "sha256:", "sha512:00", upper.as_str(), short, "sha256:../../../../etc/passwd", "x"];
    for digest in bad {
        assert!(is_invalid(c.stat(digest)), "stat {digest:?}");
        assert!(is_invalid(c.read(digest, 0, None).map(|r| r.is_some())), "read {digest:?}");
        assert!(is_invalid(c.delete_blob(digest)), "delete {digest:?}");
        assert!(is_invalid(c.touch(digest)), "touch {digest:?}");
        assert!(is_invalid(c.delete_if_older(digest, u64::MAX)), "delete-if-older {digest:?}");
    }
    let upload = c.start().unwrap();
    c.append(&upload, b"x").unwrap();
    for digest in bad {
        assert!(is_invalid(c.commit(&upload, digest)), "commit {digest:?}");
    }
    assert_eq!(c.size(&upload), Ok(1));
    assert_eq!(c.commit(&upload, &good), Ok(1));
}

/// Bytes appended in chunks become the blob of their digest at `commit`,
/// not before; then the upload is gone.
pub fn blob_commit_by_digest<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let bytes = pattern(300_000, 1);
    let digest = digest_of(&bytes);
    let upload = c.start().unwrap();
    let id = c.id(&upload);
    assert_eq!(c.size(&upload), Ok(0));
    for chunk in bytes.chunks(70_000) {
        c.append(&upload, chunk).unwrap();
    }
    assert_eq!(c.size(&upload), Ok(bytes.len() as u64));
    assert_eq!(c.stat(&digest), Ok(None), "visible before commit");
    assert!(c.read(&digest, 0, None).unwrap().is_none(), "readable before commit");
    assert_eq!(c.commit(&upload, &digest), Ok(bytes.len() as u64));
    assert_eq!(c.stat(&digest), Ok(Some(bytes.len() as u64)));
    assert_eq!(read_all(&mut c, &digest, 0, None), bytes);
    // Another request sees it too.
    assert_eq!(store.client().stat(&digest), Ok(Some(bytes.len() as u64)));
    assert_eq!(c.size(&upload), Err(StorageError::NotFound));
    assert!(matches!(c.resume(&id), Err(StorageError::NotFound)));
}

/// A wrong digest is `digest-mismatch` with the actual one; nothing is
/// stored and the upload is gone.
pub fn blob_commit_mismatch_stores_nothing<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let upload = c.start().unwrap();
    let id = c.id(&upload);
    c.append(&upload, b"abc").unwrap();
    let wrong = digest_of(b"abd");
    assert_eq!(c.commit(&upload, &wrong), Err(StorageError::DigestMismatch(digest_of(b"abc"))));
    assert_eq!(c.stat(&wrong), Ok(None));
    assert_eq!(c.stat(&digest_of(b"abc")), Ok(None));
    assert!(matches!(c.resume(&id), Err(StorageError::NotFound)));
    assert!(matches!(store.client().resume(&id), Err(StorageError::NotFound)));
}

/// Committing bytes already stored succeeds and keeps one blob; deleting it
/// once removes it.
pub fn blob_commit_of_stored_content_keeps_one_copy<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let bytes = pattern(5000, 2);
    let digest = push(&mut c, &bytes);
    let mut other = store.client();
    assert_eq!(push(&mut other, &bytes), digest);
    assert_eq!(c.stat(&digest), Ok(Some(5000)));
    assert_eq!(read_all(&mut c, &digest, 0, None), bytes);
    assert_eq!(c.delete_blob(&digest), Ok(true));
    assert_eq!(c.stat(&digest), Ok(None));
}

/// The empty blob: size 0, an empty stream, and offset 0 is its end.
pub fn blob_empty<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let upload = c.start().unwrap();
    let digest = digest_of(b"");
    assert_eq!(c.commit(&upload, &digest), Ok(0));
    assert_eq!(c.stat(&digest), Ok(Some(0)));
    assert_eq!(read_all(&mut c, &digest, 0, None), b"");
    assert_eq!(read_all(&mut c, &digest, 0, Some(10)), b"");
    assert!(is_invalid(c.read(&digest, 1, None).map(|r| r.is_some())));
}

/// An upload outlives its request: later requests resume it by id, see its
/// size, append to it and commit it. Ids are 1 to 64 of `[0-9a-f-]`.
pub fn blob_resume_by_id_in_later_requests<S: ContractStore>(store: &S) {
    let whole = pattern(3 * 1024 * 1024 + 17, 3);
    let (first, rest) = whole.split_at(1024 * 1024 + 5);
    let id = {
        let mut c = store.client();
        let upload = c.start().unwrap();
        c.append(&upload, first).unwrap();
        c.id(&upload)
    };
    assert!(!id.is_empty() && id.len() <= MAX_UPLOAD_ID_LEN, "{id:?}");
    assert!(id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-')), "{id:?}");
    for chunk in rest.chunks(1024 * 1024) {
        let mut c = store.client();
        let upload = c.resume(&id).unwrap();
        assert_eq!(c.id(&upload), id);
        let before = c.size(&upload).unwrap();
        c.append(&upload, chunk).unwrap();
        assert_eq!(c.size(&upload), Ok(before + chunk.len() as u64));
    }
    let mut c = store.client();
    let upload = c.resume(&id).unwrap();
    assert_eq!(c.size(&upload), Ok(whole.len() as u64));
    let digest = digest_of(&whole);
    assert_eq!(c.commit(&upload, &digest), Ok(whole.len() as u64));
    assert_eq!(read_all(&mut store.client(), &digest, 0, None), whole);
    // Two uploads started at once get different ids.
    let (a, b) = (c.start().unwrap(), c.start().unwrap());
    assert_ne!(c.id(&a), c.id(&b));
}

/// `resume` of an id never issued is `not-found`; of a malformed one,
/// `invalid`.
pub fn blob_resume_unknown_or_malformed_id<S: ContractStore>(store: &S) {
    let mut c = store.client();
    for unknown in ["0", "00000000-0000-4000-8000-000000000000", &"a".repeat(MAX_UPLOAD_ID_LEN)] {
        assert!(matches!(c.resume(unknown), Err(StorageError::NotFound)), "{unknown:?}");
    }
    let too_long = "a".repeat(MAX_UPLOAD_ID_LEN + 1);
    for bad in ["", "ABC", "a/b", "..", "a.hash", "../kv", too_long.as_str()] {
        assert!(is_invalid(c.resume(bad)), "{bad:?}");
    }
}

/// `abort` discards the upload, and again is no error; the handle then
/// finds nothing.
pub fn blob_abort_is_idempotent<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let upload = c.start().unwrap();
    let id = c.id(&upload);
    c.append(&upload, b"never").unwrap();
    assert_eq!(c.abort(&upload), Ok(()));
    assert_eq!(c.abort(&upload), Ok(()));
    assert!(matches!(c.resume(&id), Err(StorageError::NotFound)));
    assert_eq!(c.size(&upload), Err(StorageError::NotFound));
    assert_eq!(c.commit(&upload, &digest_of(b"never")), Err(StorageError::NotFound));
    assert_eq!(c.stat(&digest_of(b"never")), Ok(None));
}

/// Ranges: exact, cut at the end, empty at the end, `invalid` past it.
pub fn blob_range_reads<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let small = b"0123456789";
    let digest = push(&mut c, small);
    let cases: [(u64, Option<u64>, &[u8]); 8] = [
        (0, None, small),
        (3, None, b"3456789"),
        (3, Some(4), b"3456"),
        (3, Some(100), b"3456789"),
        (9, Some(1), b"9"),
        (10, None, b""),
        (10, Some(5), b""),
        (4, Some(0), b""),
    ];
    for (offset, length, want) in cases {
        assert_eq!(read_all(&mut c, &digest, offset, length), want, "{offset} {length:?}");
    }
    for offset in [11, 1000, u64::MAX] {
        assert!(is_invalid(c.read(&digest, offset, None).map(|r| r.is_some())), "{offset}");
        assert!(is_invalid(c.read(&digest, offset, Some(1)).map(|r| r.is_some())), "{offset}");
    }
    assert_eq!(read_all(&mut c, &digest, 2, Some(u64::MAX)), b"23456789");
    // A large blob: ranges that span read chunks.
    let large = pattern(5 * 1024 * 1024 + 3, 4);
    let digest = push(&mut c, &large);
    let (from, len) = (1024 * 1024 - 7, 2 * 1024 * 1024 + 11);
    assert_eq!(read_all(&mut c, &digest, from as u64, Some(len as u64)), &large[from..from + len]);
    assert_eq!(read_all(&mut c, &digest, from as u64, None), &large[from..]);
}

/// A stream opened before a delete still yields every byte.
pub fn blob_stream_survives_delete<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let bytes = pattern(2 * 1024 * 1024, 5);
    let digest = push(&mut c, &bytes);
    let whole = c.read(&digest, 0, None).unwrap().unwrap();
    let part = c.read(&digest, 100, Some(1000)).unwrap().unwrap();
    assert_eq!(store.client().delete_blob(&digest), Ok(true));
    assert_eq!(c.stat(&digest), Ok(None));
    assert_eq!(c.read_to_end(whole).unwrap(), bytes);
    assert_eq!(c.read_to_end(part).unwrap(), &bytes[100..1100]);
}

/// Deleting a blob twice: `true`, then `false`; it is gone for every
/// request.
pub fn blob_delete_is_idempotent<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let digest = push(&mut c, b"delete me");
    assert_eq!(c.delete_blob(&digest), Ok(true));
    assert_eq!(c.delete_blob(&digest), Ok(false));
    let mut other = store.client();
    assert_eq!(other.delete_blob(&digest), Ok(false));
    assert_eq!(other.stat(&digest), Ok(None));
    assert!(other.read(&digest, 0, None).unwrap().is_none());
    // And it can be pushed again.
    assert_eq!(push(&mut other, b"delete me"), digest);
    assert_eq!(c.stat(&digest), Ok(Some(9)));
}

/// While one request uploads and commits a blob, others that look at it
/// see nothing or all of it, never a part.
pub fn blob_visibility_is_atomic_under_concurrency<S: ContractStore>(store: &S) {
    let bytes = pattern(1024 * 1024 + 99, 6);
    let digest = digest_of(&bytes);
    let done = std::sync::atomic::AtomicBool::new(false);
    let seen_whole = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut c = store.client();
                loop {
                    let finished = done.load(std::sync::atomic::Ordering::Acquire);
                    match c.stat(&digest).unwrap() {
                        None => assert!(!finished, "committed, yet not visible"),
                        Some(size) => assert_eq!(size, bytes.len() as u64, "a part is visible"),
                    }
                    if let Some(reader) = c.read(&digest, 0, None).unwrap() {
                        assert!(c.read_to_end(reader).unwrap() == bytes, "read a part or wrong bytes");
                        seen_whole.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    if finished {
                        return;
                    }
                }
            });
        }
        let mut c = store.client();
        let upload = c.start().unwrap();
        for chunk in bytes.chunks(64 * 1024) {
            c.append(&upload, chunk).unwrap();
        }
        assert_eq!(c.commit(&upload, &digest), Ok(bytes.len() as u64));
        done.store(true, std::sync::atomic::Ordering::Release);
    });
    assert!(seen_whole.load(std::sync::atomic::Ordering::Relaxed) >= 2, "every reader saw the committed blob");
}

/// Several requests at once upload different blobs, and the same one:
/// every commit succeeds and every blob holds its bytes.
pub fn blob_concurrent_uploads<S: ContractStore>(store: &S) {
    let shared = pattern(200_000, 7);
    let threads = 4u8;
    let barrier = Barrier::new(threads as usize);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (barrier, shared) = (&barrier, &shared);
            scope.spawn(move || {
                let mut c = store.client();
                barrier.wait();
                for n in 0..4u8 {
                    push(&mut c, &pattern(10_000 + n as usize * 3000, 100 + t * 10 + n));
                }
                push(&mut c, shared);
            });
        }
    });
    let mut c = store.client();
    assert_eq!(read_all(&mut c, &digest_of(&shared), 0, None), shared);
    for t in 0..threads {
        for n in 0..4u8 {
            let bytes = pattern(10_000 + n as usize * 3000, 100 + t * 10 + n);
            assert_eq!(read_all(&mut c, &digest_of(&bytes), 0, None), bytes);
        }
    }
}

/// Whole seconds since the epoch, now, by this machine's clock (the
/// stores' clock: they run here).
fn now_secs() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("a clock after 1970").as_secs()
}

/// Returns once the clock reads `secs` or later, in whole seconds.
fn wait_until(secs: u64) {
    while now_secs() < secs {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every committed blob, paging through `list`.
fn listed<C: ContractClient>(client: &mut C, limit: u32) -> Vec<BlobInfo> {
    let mut all: Vec<BlobInfo> = Vec::new();
    loop {
        let page = client.list(all.last().map(|blob| blob.digest.as_str()), limit).expect("list");
        assert!(page.len() <= limit as usize, "{} blobs in a page of {limit}", page.len());
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// The blob's `touched` time, as `list` reports it.
fn touched<C: ContractClient>(client: &mut C, digest: &str) -> u64 {
    let page = client.list(None, u32::MAX).expect("list");
    page.into_iter().find(|blob| blob.digest == digest).unwrap_or_else(|| panic!("{digest} is not listed")).touched
}

/// `list` pages through every committed blob once, in digest order, with
/// its size and a `touched` time of its commit; `after` is any string and
/// `limit` is honoured; deleted blobs are gone.
pub fn blob_list_pages_in_digest_order<S: ContractStore>(store: &S) {
    let mut c = store.client();
    assert_eq!(c.list(None, 10), Ok(vec![]));
    let started = now_secs();
    // Small blobs and one larger than any a backend keeps in a record.
    let mut blobs: Vec<Vec<u8>> = (0..11u8).map(|n| pattern(100 + 37 * n as usize, 60 + n)).collect();
    blobs.push(pattern(300_000, 71));
    blobs.push(Vec::new());
    for bytes in &blobs {
        push(&mut c, bytes);
    }
    let ended = now_secs();
    let mut expected: Vec<(String, u64)> = blobs.iter().map(|b| (digest_of(b), b.len() as u64)).collect();
    expected.sort();
    for limit in [1, 5, 13, 100] {
        let all = listed(&mut store.client(), limit);
        let got: Vec<(String, u64)> = all.iter().map(|blob| (blob.digest.clone(), blob.size)).collect();
        assert_eq!(got, expected, "limit {limit}");
        for blob in all {
            assert!((started..=ended).contains(&blob.touched), "{blob:?} not touched in {started}..={ended}");
        }
    }
    let digests: Vec<String> = expected.iter().map(|(digest, _)| digest.clone()).collect();
    let page = |c: &mut S::Client, after: &str, limit| -> Vec<String> {
        c.list(Some(after), limit).unwrap().into_iter().map(|blob| blob.digest).collect()
    };
    assert_eq!(page(&mut c, &digests[5], 3), digests[6..9]);
    assert_eq!(page(&mut c, "a", 2), digests[..2]);
    assert_eq!(page(&mut c, "sha256:", 100), digests);
    assert_eq!(page(&mut c, "zzz", 100), Vec::<String>::new());
    assert_eq!(page(&mut c, &digests[12], 100), Vec::<String>::new());
    assert_eq!(c.list(None, 0), Ok(vec![]));
    assert_eq!(c.delete_blob(&digests[0]), Ok(true));
    assert_eq!(c.delete_blob(&digests[7]), Ok(true));
    let left: Vec<String> = listed(&mut c, 4).into_iter().map(|blob| blob.digest).collect();
    let expected_left: Vec<String> =
        digests.iter().enumerate().filter(|(i, _)| ![0, 7].contains(i)).map(|(_, d)| d.clone()).collect();
    assert_eq!(left, expected_left);
}

/// `touch` of an absent blob is `false`; of a stored one, `true`, and its
/// `touched` time becomes now (whole seconds, rounded down).
pub fn blob_touch_refreshes_the_time<S: ContractStore>(store: &S) {
    let mut c = store.client();
    assert_eq!(c.touch(&digest_of(b"never stored")), Ok(false));
    let small = push(&mut c, b"touch me");
    let large = push(&mut c, &pattern(200_000, 72));
    let committed = touched(&mut c, &small).max(touched(&mut c, &large));
    wait_until(committed + 1);
    for digest in [&small, &large] {
        let before = now_secs();
        assert_eq!(store.client().touch(digest), Ok(true));
        let after = now_secs();
        let now_touched = touched(&mut c, digest);
        assert!((before..=after).contains(&now_touched), "touched {now_touched}, not in {before}..={after}");
    }
    assert_eq!(read_all(&mut c, &small, 0, None), b"touch me");
    assert_eq!(c.delete_blob(&small), Ok(true));
    assert_eq!(c.touch(&small), Ok(false));
    assert_eq!(c.stat(&small), Ok(None), "a touch does not bring a blob back");
}

/// `delete-if-older` removes a blob touched before `before` and keeps one
/// touched at or after it; `false` for an absent blob. A blob committed
/// again (the same bytes) is touched by the commit, and kept.
pub fn blob_delete_if_older_keeps_what_is_newer<S: ContractStore>(store: &S) {
    let mut c = store.client();
    assert_eq!(c.delete_if_older(&digest_of(b"never stored"), u64::MAX), Ok(false));
    let bytes = pattern(5000, 73);
    let digest = push(&mut c, &bytes);
    let first = touched(&mut c, &digest);
    assert_eq!(c.delete_if_older(&digest, first), Ok(false), "touched at `before`");
    assert_eq!(c.delete_if_older(&digest, 0), Ok(false));
    assert_eq!(read_all(&mut c, &digest, 0, None), bytes);
    // Committed again, later: the old time no longer counts.
    wait_until(first + 1);
    assert_eq!(push(&mut store.client(), &bytes), digest);
    assert_eq!(c.delete_if_older(&digest, first + 1), Ok(false), "committed again at or after `before`");
    assert_eq!(read_all(&mut c, &digest, 0, None), bytes);
    let again = touched(&mut c, &digest);
    assert!(again > first, "committing again left the time at {again}");
    assert_eq!(c.delete_if_older(&digest, again + 1), Ok(true));
    assert_eq!(c.stat(&digest), Ok(None));
    assert!(c.read(&digest, 0, None).unwrap().is_none());
    assert_eq!(store.client().delete_if_older(&digest, u64::MAX), Ok(false));
    assert!(listed(&mut c, 10).is_empty());
}

/// Rounds of the `delete-if-older` races, each on a blob of its own.
const RACE_ROUNDS: usize = 32;
/// Threads on each side of a race.
const RACERS: usize = 3;

/// One blob per race round (every fourth too large to travel in a journal
/// record), committed before the `before` it returns, which the clock has
/// reached: what is touched or committed from now on is at or after
/// `before`.
fn old_blobs<S: ContractStore>(store: &S, seed: u8) -> (Vec<Vec<u8>>, u64) {
    let mut c = store.client();
    let blobs: Vec<Vec<u8>> =
        (0..RACE_ROUNDS).map(|n| pattern(if n % 4 == 3 { 70_000 + n } else { 3000 + n }, seed + n as u8)).collect();
    for bytes in &blobs {
        push(&mut c, bytes);
    }
    let before = listed(&mut c, 100).iter().map(|blob| blob.touched).max().expect("pushed") + 1;
    wait_until(before);
    (blobs, before)
}

/// Reads the blob whole, allowing a backend a moment in which a
/// `delete-if-older` that keeps it has it out of sight; what is wrong
/// otherwise.
fn read_soon<C: ContractClient>(client: &mut C, digest: &str, bytes: &[u8], why: &str) -> Result<(), String> {
    for _ in 0..200 {
        match client.read(digest, 0, None) {
            Ok(Some(reader)) => {
                return match client.read_to_end(reader) {
                    Ok(read) if read == bytes => Ok(()),
                    Ok(_) => Err(format!("{why}: {digest} has wrong bytes")),
                    Err(e) => Err(format!("{why}: reading {digest}: {e}")),
                };
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("{why}: read {digest}: {e}")),
        }
    }
    Err(format!("{why}, yet the blob {digest} is gone"))
}

/// Races, round after round (one blob each, all threads released at once
/// by a barrier), [`RACERS`] threads calling `delete-if-older` with
/// `before` again and again until as many threads calling `keep` are done
/// with the blob; `keep` says whether the blob must then stay. Who starts
/// first changes from round to round: `keep` waits on the barrier and then
/// from 0 to 90 µs, the deletes start after 0 to 8 ms (backends take
/// from microseconds to milliseconds for a call). Then checks that every
/// blob that must stay is there, whole. A thread goes on through every
/// round whatever fails (or the others would wait at the barrier
/// forever); the failures are reported at the end.
fn race_deletes<S: ContractStore>(
    store: &S,
    blobs: &[Vec<u8>],
    before: u64,
    keep: impl Fn(&mut S::Client, &dyn Fn(), &str, &[u8]) -> Result<bool, String> + Sync,
) {
    let barrier = Barrier::new(2 * RACERS);
    let failures = Mutex::new(Vec::new());
    let kept: Vec<AtomicBool> = blobs.iter().map(|_| AtomicBool::new(false)).collect();
    let keepers_done: Vec<AtomicUsize> = blobs.iter().map(|_| AtomicUsize::new(0)).collect();
    std::thread::scope(|scope| {
        for racer in 0..RACERS {
            let (barrier, keep, failures, kept, keepers_done) = (&barrier, &keep, &failures, &kept, &keepers_done);
            scope.spawn(move || {
                let mut c = store.client();
                for (round, (bytes, keepers_done)) in blobs.iter().zip(keepers_done).enumerate() {
                    let digest = digest_of(bytes);
                    barrier.wait();
                    spin(Duration::from_micros([0, 0, 200, 1000, 3000, 8000][round % 6]));
                    loop {
                        if let Err(e) = c.delete_if_older(&digest, before) {
                            failures.lock().unwrap().push(format!("delete-if-older {digest}: {e}"));
                        }
                        if keepers_done.load(Ordering::Acquire) == RACERS {
                            break;
                        }
                    }
                }
            });
            scope.spawn(move || {
                let mut c = store.client();
                for (round, bytes) in blobs.iter().enumerate() {
                    let go = || {
                        barrier.wait();
                        spin(Duration::from_micros(((round * 7 + racer * 3) % 10) as u64 * 10));
                    };
                    match keep(&mut c, &go, &digest_of(bytes), bytes) {
                        Ok(true) => kept[round].store(true, Ordering::Relaxed),
                        Ok(false) => {}
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                    keepers_done[round].fetch_add(1, Ordering::Release);
                }
            });
        }
    });
    let mut c = store.client();
    for (bytes, kept) in blobs.iter().zip(&kept) {
        if kept.load(Ordering::Relaxed) {
            if let Err(e) = read_soon(&mut c, &digest_of(bytes), bytes, "kept after `before`") {
                failures.lock().unwrap().push(e);
            }
        }
    }
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} failures, the first: {:#?}", failures.len(), &failures[..failures.len().min(5)]);
}

/// Waits `time` without giving up the processor (a sleep could take far
/// longer).
fn spin(time: Duration) {
    let started = std::time::Instant::now();
    while started.elapsed() < time {
        std::hint::spin_loop();
    }
}

/// Requests race `delete-if-older` (with `before` in the past of every
/// touch) against `touch` of the same old blob: whichever comes first
/// wins, but once a touch has returned `true` the blob stays, whole.
pub fn blob_delete_if_older_never_removes_a_blob_touched_meanwhile<S: ContractStore>(store: &S) {
    let (blobs, before) = old_blobs(store, 80);
    race_deletes(store, &blobs, before, |c, go, digest, bytes| {
        go();
        match c.touch(digest) {
            Ok(true) => read_soon(c, digest, bytes, "touch returned true").map(|()| true),
            Ok(false) => Ok(false),
            Err(e) => Err(format!("touch {digest}: {e}")),
        }
    });
}

/// Requests race `delete-if-older` (with `before` in the past of every
/// commit) against commits of the same bytes as an old blob: once a commit
/// has returned, the blob stays, whole.
pub fn blob_delete_if_older_never_removes_a_blob_committed_meanwhile<S: ContractStore>(store: &S) {
    let (blobs, before) = old_blobs(store, 120);
    race_deletes(store, &blobs, before, |c, go, digest, bytes| {
        let upload = c.start().and_then(|upload| c.append(&upload, bytes).map(|()| upload));
        go();
        let committed = upload.and_then(|upload| c.commit(&upload, digest));
        match committed {
            Ok(size) if size == bytes.len() as u64 => read_soon(c, digest, bytes, "commit returned").map(|()| true),
            other => Err(format!("pushing {digest} again: {other:?}")),
        }
    });
}

/// `list-uploads` pages through the uploads in progress in id order, with
/// their sizes and times; committed and aborted ones are not listed.
pub fn blob_list_uploads_pages_uploads_in_progress<S: ContractStore>(store: &S) {
    let mut c = store.client();
    assert_eq!(c.list_uploads(None, 10), Ok(vec![]));
    // The file times come from the kernel's clock, which may trail by a tick.
    let started = now_secs() - 1;
    let sizes = [0usize, 10, 100_000, 5, 70_000, 7];
    let mut uploads = Vec::new();
    for (n, size) in sizes.iter().enumerate() {
        let upload = c.start().expect("start");
        if *size > 0 {
            c.append(&upload, &pattern(*size, 120 + n as u8)).expect("append");
        }
        uploads.push(upload);
    }
    let ended = now_secs();
    // Committed (a small blob and a large one) and aborted: no longer in progress.
    assert_eq!(c.commit(&uploads[1], &digest_of(&pattern(10, 121))), Ok(10));
    assert_eq!(c.commit(&uploads[4], &digest_of(&pattern(70_000, 124))), Ok(70_000));
    c.abort(&uploads[3]).expect("abort");
    let mut expected: Vec<(String, u64)> = [0, 2, 5].iter().map(|&n| (c.id(&uploads[n]), sizes[n] as u64)).collect();
    expected.sort();
    for limit in [1, 2, 100] {
        let mut all: Vec<crate::UploadInfo> = Vec::new();
        loop {
            let page = store.client().list_uploads(all.last().map(|u| u.id.as_str()), limit).expect("list-uploads");
            assert!(page.len() <= limit as usize);
            if page.is_empty() {
                break;
            }
            all.extend(page);
        }
        let got: Vec<(String, u64)> = all.iter().map(|upload| (upload.id.clone(), upload.size)).collect();
        assert_eq!(got, expected, "limit {limit}");
        for upload in all {
            assert!((started..=ended).contains(&upload.modified), "{upload:?} not modified in {started}..={ended}");
        }
    }
    let ids = |page: Vec<crate::UploadInfo>| page.into_iter().map(|u| u.id).collect::<Vec<_>>();
    assert_eq!(ids(c.list_uploads(Some(&expected[0].0), 1).unwrap()), [expected[1].0.clone()]);
    assert_eq!(ids(c.list_uploads(Some(""), 100).unwrap()).len(), 3);
    assert_eq!(c.list_uploads(Some("g"), 100), Ok(vec![]));
    assert_eq!(c.list_uploads(None, 0), Ok(vec![]));
    // Appended to in a later request: listed with its new size.
    let mut later = store.client();
    let resumed = later.resume(&expected[0].0).expect("resume");
    later.append(&resumed, b"more").expect("append");
    let again = c.list_uploads(None, 100).unwrap();
    assert_eq!(again.iter().find(|u| u.id == expected[0].0).map(|u| u.size), Some(expected[0].1 + 4));
}

/// An absent key: `none`, and deleting it is `false`.
pub fn kv_absent<S: ContractStore>(store: &S) {
    let mut c = store.client();
    assert_eq!(c.get("absent"), Ok(None));
    assert_eq!(c.get("a/b/c"), Ok(None));
    assert_eq!(c.delete("absent"), Ok(false));
    assert_eq!(c.list_keys("", None, 10), Ok(vec![]));
}

/// Every write gives a greater version; `set-if` writes only on the
/// expected version (or absence) and otherwise changes nothing.
pub fn kv_versions_and_set_if<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let v1 = c.set("k", b"one").unwrap();
    let v2 = c.set("k", b"two").unwrap();
    assert!(v2 > v1);
    assert_eq!(c.get("k"), Ok(Some(Entry { value: b"two".to_vec(), version: v2 })));
    assert_eq!(c.set_if("k", b"x", None), Err(StorageError::Conflict));
    assert_eq!(c.set_if("k", b"x", Some(v1)), Err(StorageError::Conflict));
    assert_eq!(c.set_if("k", b"x", Some(v2 + 1)), Err(StorageError::Conflict));
    assert_eq!(c.get("k").unwrap().unwrap().value, b"two");
    let v3 = c.set_if("k", b"three", Some(v2)).unwrap();
    assert!(v3 > v2);
    assert_eq!(store.client().get("k"), Ok(Some(Entry { value: b"three".to_vec(), version: v3 })));
    // Absent keys.
    assert_eq!(c.set_if("new", b"x", Some(1)), Err(StorageError::Conflict));
    assert_eq!(c.get("new"), Ok(None));
    let n1 = c.set_if("new", b"x", None).unwrap();
    assert_eq!(c.get("new"), Ok(Some(Entry { value: b"x".to_vec(), version: n1 })));
    // A first empty value, then full, then empty again.
    let e1 = c.set_if("link/a", b"", None).unwrap();
    assert_eq!(c.get("link/a"), Ok(Some(Entry { value: vec![], version: e1 })));
    assert_eq!(c.set_if("link/a", b"", None), Err(StorageError::Conflict));
    let e2 = c.set("link/a", b"full").unwrap();
    assert!(e2 > e1);
    let e3 = c.set_if("link/a", b"", Some(e2)).unwrap();
    assert!(e3 > e2);
    assert_eq!(store.client().get("link/a"), Ok(Some(Entry { value: vec![], version: e3 })));
    let s1 = c.set("plain/empty", b"").unwrap();
    assert_eq!(c.get("plain/empty"), Ok(Some(Entry { value: vec![], version: s1 })));
}

/// Deleting a key twice: `true`, then `false`; keys above and below it
/// stay; it can be written again.
pub fn kv_delete_is_idempotent<S: ContractStore>(store: &S) {
    let mut c = store.client();
    c.set("a", b"parent").unwrap();
    c.set("a/b", b"child").unwrap();
    c.set("a/b/c", b"grandchild").unwrap();
    assert_eq!(c.delete("a/b"), Ok(true));
    assert_eq!(c.delete("a/b"), Ok(false));
    assert_eq!(store.client().delete("a/b"), Ok(false));
    assert_eq!(c.get("a/b"), Ok(None));
    assert_eq!(c.get("a").unwrap().unwrap().value, b"parent");
    assert_eq!(c.get("a/b/c").unwrap().unwrap().value, b"grandchild");
    assert_eq!(c.delete("a/b/c"), Ok(true));
    assert_eq!(c.list_keys("a", None, 10), Ok(vec!["a".to_string()]));
    let again = c.set("a/b/c", b"back").unwrap();
    assert_eq!(c.get("a/b/c"), Ok(Some(Entry { value: b"back".to_vec(), version: again })));
    let empty = c.set_if("e", b"", None).unwrap();
    assert_eq!(c.delete("e"), Ok(true));
    assert_eq!(c.get("e"), Ok(None));
    assert!(c.set_if("e", b"", None).is_ok(), "an empty value again, after version {empty}");
}

/// Keys: 1 to 1024 bytes (or the backend's lower limit) of `/`-separated
/// segments, none empty, `.` or `..`; anything else is `invalid` and
/// stores nothing.
pub fn kv_key_limits<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let max = store.max_key_len();
    assert!((900..=MAX_KEY_LEN).contains(&max), "a backend's key limit of {max} bytes");
    // The longest key in segments of 63 + `/`.
    let mut longest = "s".repeat(63);
    while longest.len() + 64 + 2 <= max {
        longest.push('/');
        longest.push_str(&"s".repeat(63));
    }
    longest.push('/');
    longest.push_str(&"t".repeat(max - longest.len()));
    assert_eq!(longest.len(), max);
    let v = c.set(&longest, b"long").unwrap();
    assert_eq!(c.get(&longest), Ok(Some(Entry { value: b"long".to_vec(), version: v })));
    assert_eq!(c.list_keys("s", None, 10), Ok(vec![longest.clone()]));
    let too_long = format!("{longest}x");
    let bad = ["", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "../a", too_long.as_str()];
    for key in bad {
        assert!(is_invalid(c.set(key, b"v")), "set {key:?}");
        assert!(is_invalid(c.set_if(key, b"v", None)), "set-if {key:?}");
        assert!(is_invalid(c.get(key)), "get {key:?}");
        assert!(is_invalid(c.delete(key)), "delete {key:?}");
    }
    // A segment of 80 bytes, however escaped, is always accepted.
    let odd_segment: String = "é%@ ".repeat(16);
    assert_eq!(odd_segment.len(), 80);
    let key = format!("o/{odd_segment}");
    c.set(&key, b"odd").unwrap();
    assert_eq!(c.get(&key).unwrap().unwrap().value, b"odd");
    // A longer segment is stored or `invalid`, not a backend failure.
    let result = c.set(&format!("o/{}", "é".repeat(200)), b"v");
    assert!(result.is_ok() || is_invalid(result.clone()), "{result:?}");
    assert_eq!(c.list_keys("", None, 100).unwrap().iter().filter(|k| k.contains("..")).count(), 0);
}

/// Values up to 4 MiB are stored whole; a larger one is `invalid` and
/// stores nothing.
pub fn kv_value_limits<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let largest = pattern(MAX_VALUE_LEN, 8);
    let v = c.set("big", &largest).unwrap();
    assert_eq!(store.client().get("big"), Ok(Some(Entry { value: largest.clone(), version: v })));
    let over = pattern(MAX_VALUE_LEN + 1, 9);
    assert!(is_invalid(c.set("big", &over)));
    assert!(is_invalid(c.set_if("big", &over, Some(v))));
    assert!(is_invalid(c.set_if("other", &over, None)));
    assert_eq!(c.get("big").unwrap().unwrap().version, v);
    assert_eq!(c.get("other"), Ok(None));
}

/// Segments with any UTF-8 (dots, `@`, `%`, spaces, colons) round-trip
/// through `get` and `list-keys`.
pub fn kv_odd_keys_round_trip<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let keys = ["t/.hidden", "t/a@b", "t/sha256:abc", "t/%41", "t/ü", "t/sp ace", "t/a.b", "t/-_~", "t/@"];
    for (i, key) in keys.iter().enumerate() {
        c.set(key, &[i as u8]).unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(c.get(key).unwrap().unwrap().value, [i as u8], "{key}");
    }
    let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sorted.sort();
    assert_eq!(c.list_keys("t/", None, 100), Ok(sorted));
    assert_eq!(c.get("t/A"), Ok(None), "t/%41 is not t/A");
}

const LISTED: [&str; 12] =
    ["r/a", "r/a-b/_t/w", "r/a/_t/w", "r/a/_t/x", "r/a/_t/y", "r/a/b/_t/z", "r/a0", "r/ab", "r/b", "s", "s/x", "t"];

/// `list-keys`: ascending byte order (`-` < `/` < `0`), exactly the keys
/// starting with the prefix, even where the prefix ends mid-segment.
pub fn kv_list_order_and_prefix<S: ContractStore>(store: &S) {
    let mut c = store.client();
    for key in LISTED.iter().rev() {
        c.set(key, b"").unwrap();
    }
    let all: Vec<String> = LISTED.iter().map(|k| k.to_string()).collect();
    assert_eq!(c.list_keys("", None, 100), Ok(all.clone()));
    let starting = |p: &str| all.iter().filter(|k| k.starts_with(p)).cloned().collect::<Vec<_>>();
    for prefix in ["r/", "r/a", "r/a/", "r/a/_t/", "r/a-", "s", "s/", "r/a/_t/x", "nothing", "r/a/_t/xx"] {
        assert_eq!(c.list_keys(prefix, None, 100), Ok(starting(prefix)), "{prefix:?}");
    }
    assert_eq!(store.client().list_keys("r/a", None, 3), Ok(starting("r/a")[..3].to_vec()));
}

/// Paging with `after` and `limit` walks every key once, in order, from
/// any `after` (a key or not).
pub fn kv_list_paging<S: ContractStore>(store: &S) {
    let mut c = store.client();
    let mut keys: Vec<String> = (0..40).map(|i| format!("p/{}/{i:02}", ["x", "y", "y-z", "z"][i % 4])).collect();
    for key in &keys {
        c.set(key, b"").unwrap();
    }
    keys.sort();
    for limit in [1, 3, 7, 40, 100] {
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = c.list_keys("p/", after.as_deref(), limit).unwrap();
            assert!(page.len() <= limit as usize);
            if page.is_empty() {
                break;
            }
            after = page.last().cloned();
            paged.extend(page);
        }
        assert_eq!(paged, keys, "limit {limit}");
    }
    assert_eq!(c.list_keys("p/", None, 0), Ok(vec![]));
    assert_eq!(c.list_keys("p/", Some("p/z/99"), 10), Ok(vec![]));
    let after_y: Vec<String> = keys.iter().filter(|k| k.as_str() > "p/y").take(5).cloned().collect();
    assert_eq!(c.list_keys("p/", Some("p/y"), 5), Ok(after_y));
    let after_gap: Vec<String> = keys.iter().filter(|k| k.as_str() > "p/y/50").cloned().collect();
    assert_eq!(c.list_keys("p/", Some("p/y/50"), 100), Ok(after_gap));
    assert_eq!(c.list_keys("p/", Some("a"), 2), Ok(keys[..2].to_vec()));
}

const RIVALS: usize = 6;

/// Many requests `set-if`-absent one key at once: exactly one wins, and
/// its value is the one stored.
pub fn kv_set_if_absent_has_one_winner<S: ContractStore>(store: &S) {
    for round in 0..3 {
        let key = format!("race/{round}");
        let winners = race(store, |c, i| c.set_if(&key, format!("writer {i}").as_bytes(), None));
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let (winner, version) = winners[0];
        let stored = store.client().get(&key).unwrap().unwrap();
        assert_eq!((stored.value, stored.version), (format!("writer {winner}").into_bytes(), version));
    }
}

/// Many requests `set-if` one key on the same version at once: exactly one
/// wins.
pub fn kv_set_if_version_has_one_winner<S: ContractStore>(store: &S) {
    for round in 0..3 {
        let key = format!("race/{round}");
        let start = store.client().set(&key, b"start").unwrap();
        let winners = race(store, |c, i| c.set_if(&key, format!("writer {i}").as_bytes(), Some(start)));
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let (winner, version) = winners[0];
        assert!(version > start);
        let stored = store.client().get(&key).unwrap().unwrap();
        assert_eq!((stored.value, stored.version), (format!("writer {winner}").into_bytes(), version));
    }
}

/// Runs `write` from [`RIVALS`] threads released at once; the writers that
/// succeeded, with their versions. Every other one must have lost with
/// `conflict`.
fn race<S: ContractStore>(
    store: &S,
    write: impl Fn(&mut S::Client, usize) -> Result<u64, StorageError> + Sync,
) -> Vec<(usize, u64)> {
    let barrier = Barrier::new(RIVALS);
    let winners = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for i in 0..RIVALS {
            let (barrier, winners, write) = (&barrier, &winners, &write);
            scope.spawn(move || {
                let mut c = store.client();
                barrier.wait();
                match write(&mut c, i) {
                    Ok(version) => winners.lock().unwrap().push((i, version)),
                    Err(StorageError::Conflict) => {}
                    Err(e) => panic!("writer {i}: {e}"),
                }
            });
        }
    });
    winners.into_inner().unwrap()
}

/// Counters incremented by read, then `set-if`, retried on `conflict`,
/// from several threads at once: no increment is lost.
pub fn kv_no_lost_updates<S: ContractStore>(store: &S) {
    let (threads, increments) = (4, 12);
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let barrier = &barrier;
            scope.spawn(move || {
                let mut c = store.client();
                barrier.wait();
                for _ in 0..increments {
                    loop {
                        let current = c.get("counter").unwrap();
                        let n: u32 = current.as_ref().map_or(0, |e| String::from_utf8_lossy(&e.value).parse().unwrap());
                        let expected = current.map(|e| e.version);
                        match c.set_if("counter", (n + 1).to_string().as_bytes(), expected) {
                            Ok(version) => {
                                assert!(expected.is_none_or(|e| version > e));
                                break;
                            }
                            Err(StorageError::Conflict) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
        }
    });
    let total = store.client().get("counter").unwrap().unwrap().value;
    assert_eq!(String::from_utf8(total).unwrap(), (threads * increments).to_string());
}

/// While one request overwrites a large value again and again, others read
/// one whole value or another, never a mix, and never an older version
/// after a newer one.
pub fn kv_visibility_is_atomic_under_concurrency<S: ContractStore>(store: &S) {
    let values: Vec<Vec<u8>> = (0..2u8).map(|n| vec![b'a' + n; 512 * 1024 + n as usize]).collect();
    store.client().set("v", &values[0]).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let (done, values) = (&done, &values);
            scope.spawn(move || {
                let mut c = store.client();
                let mut last = 0;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    let entry = c.get("v").unwrap().expect("never absent");
                    assert!(values.contains(&entry.value), "a mixed value of {} bytes", entry.value.len());
                    assert!(entry.version >= last, "version {} after {last}", entry.version);
                    last = entry.version;
                }
            });
        }
        let mut c = store.client();
        for round in 1..=12 {
            c.set("v", &values[round % 2]).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
    });
}

/// Room left in the `full_disk_*` cases' stores: more than their small writes
/// need, much less than their big ones.
const ROOM: u64 = 2 << 20;

/// A value bigger than [`ROOM`] that kv still accepts when there is space.
fn big_value() -> Vec<u8> {
    pattern(3 << 20, 9)
}

/// An append that runs out of space is `full`; the upload is gone, its
/// bytes released at once; what was stored before stays whole, and reads
/// and deletes go on working.
pub fn full_disk_append_is_refused_and_releases_the_upload<S: ContractStore>() {
    let store = S::nearly_full(ROOM);
    let mut c = store.client();
    let kept = pattern(64 * 1024, 1);
    let kept_digest = push(&mut c, &kept);
    let tag = c.set("tags/kept", b"v1").expect("a small value fits");
    let upload = c.start().expect("start");
    let id = c.id(&upload);
    assert_eq!(c.append(&upload, &pattern(3 * ROOM as usize, 2)), Err(StorageError::Full));
    assert_eq!(c.size(&upload), Err(StorageError::NotFound), "the failed upload is gone");
    assert!(matches!(c.resume(&id), Err(StorageError::NotFound)));
    assert_eq!(read_all(&mut c, &kept_digest, 0, None), kept);
    assert_eq!(c.get("tags/kept"), Ok(Some(Entry { value: b"v1".to_vec(), version: tag })));
    // The failed upload's bytes were released: half the room fits again.
    let half = pattern(ROOM as usize / 2, 3);
    let half_digest = push(&mut c, &half);
    assert_eq!(read_all(&mut c, &half_digest, 0, None), half);
    assert_eq!(c.delete_blob(&kept_digest), Ok(true));
    assert_eq!(c.delete("tags/kept"), Ok(true));
}

/// A kv write that does not fit is `full` and leaves the old value.
pub fn full_disk_kv_write_is_refused_and_keeps_the_old_value<S: ContractStore>() {
    let store = S::nearly_full(ROOM);
    let mut c = store.client();
    let version = c.set("k", b"old").expect("a small value fits");
    assert_eq!(c.set("k", &big_value()), Err(StorageError::Full));
    assert_eq!(c.set_if("k", &big_value(), Some(version)), Err(StorageError::Full));
    assert_eq!(c.set_if("new", &big_value(), None), Err(StorageError::Full));
    assert_eq!(c.get("k"), Ok(Some(Entry { value: b"old".to_vec(), version })));
    assert_eq!(c.get("new"), Ok(None));
    assert_eq!(c.delete("k"), Ok(true));
}

/// Once space is freed, the writes that were refused succeed, with no
/// restart (the same store, a new request).
pub fn full_disk_writes_succeed_again_once_space_is_freed<S: ContractStore>() {
    let store = S::nearly_full(ROOM);
    let big = pattern(3 * ROOM as usize, 4);
    let mut c = store.client();
    let upload = c.start().expect("start");
    assert_eq!(c.append(&upload, &big), Err(StorageError::Full));
    assert_eq!(c.set("k", &big_value()), Err(StorageError::Full));
    store.free_space();
    let mut c = store.client();
    let big_digest = push(&mut c, &big);
    assert_eq!(read_all(&mut c, &big_digest, 0, None), big);
    let version = c.set("k", &big_value()).expect("the value fits now");
    assert_eq!(c.get("k"), Ok(Some(Entry { value: big_value(), version })));
}

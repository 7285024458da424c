//! Blob uploads: monolithic, chunked, resumed, out of order, cancelled,
//! with a wrong digest or a broken body; and mounts, with and without `from`.

use super::Registry;
use crate::oci::digest::Digest;
use crate::storage::memory::MemoryBody;

const REPO: &str = "lib/app";

/// Starts a session; its Location.
fn start(registry: &Registry, repo: &str) -> String {
    let answer = registry.with_body("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
    answer.expect(202, None);
    assert_eq!(answer.header("Range"), Some("0-0"));
    let location = answer.header("Location").unwrap().to_string();
    assert_eq!(Some(location.rsplit('/').next().unwrap()), answer.header("Docker-Upload-UUID"));
    location
}

fn patch(registry: &Registry, location: &str, range: Option<&str>, chunk: &[u8]) -> super::Answer {
    let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Content-Range", *r)).collect();
    registry.with_body("PATCH", location, &headers, chunk)
}

fn finish(registry: &Registry, location: &str, digest: &Digest, chunk: &[u8]) -> super::Answer {
    registry.with_body("PUT", &format!("{location}?digest={digest}"), &[], chunk)
}

fn assert_blob(registry: &Registry, repo: &str, data: &[u8]) {
    let digest = Digest::of_bytes(data);
    let answer = registry.get(&format!("/v2/{repo}/blobs/{digest}"));
    answer.expect(200, None);
    assert_eq!(answer.body, data);
    assert_eq!(answer.header("Docker-Content-Digest"), Some(digest.as_str()));
}

#[test]
fn monolithic_upload() {
    let registry = Registry::new();
    let data = b"monolithic blob";
    let digest = Digest::of_bytes(data);
    let answer = registry.with_body("POST", &format!("/v2/{REPO}/blobs/uploads/?digest={digest}"), &[], data);
    answer.expect(201, None);
    assert_eq!(answer.header("Location"), Some(format!("/v2/{REPO}/blobs/{digest}").as_str()));
    assert_eq!(answer.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_blob(&registry, REPO, data);
    assert_eq!(registry.storage().open_uploads(), 0);
    // The push made the repository known to the catalog.
    assert_eq!(registry.get("/v2/_catalog").json()["repositories"], serde_json::json!([REPO]));
}

#[test]
fn monolithic_upload_with_wrong_digest_stores_nothing() {
    let registry = Registry::new();
    let wrong = Digest::of_bytes(b"something else");
    let answer = registry.with_body("POST", &format!("/v2/{REPO}/blobs/uploads/?digest={wrong}"), &[], b"data");
    answer.expect(400, Some("DIGEST_INVALID"));
    assert!(registry.storage().blob_digests().is_empty());
    assert_eq!(registry.storage().open_uploads(), 0);
    registry.get(&format!("/v2/{REPO}/blobs/{wrong}")).expect(404, Some("BLOB_UNKNOWN"));
}

#[test]
fn monolithic_upload_with_broken_body_is_aborted() {
    let registry = Registry::new();
    let digest = Digest::of_bytes(b"whole");
    let path = format!("/v2/{REPO}/blobs/uploads/?digest={digest}");
    let answer = registry.send("POST", &path, &[("Content-Length", "5")], MemoryBody::broken_after("who"));
    answer.expect(400, Some("BLOB_UPLOAD_INVALID"));
    let detail = answer.json()["errors"][0]["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("after 3 bytes"), "{detail}");
    assert_eq!(registry.storage().open_uploads(), 0);
    assert!(registry.storage().blob_digests().is_empty());
}

#[test]
fn chunked_upload_with_content_ranges() {
    let registry = Registry::new();
    let location = start(&registry, REPO);
    let answer = patch(&registry, &location, Some("0-4"), b"hello");
    answer.expect(202, None);
    assert_eq!(answer.header("Range"), Some("0-4"));
    assert_eq!(answer.header("Location"), Some(location.as_str()));
    patch(&registry, &location, Some("5-10"), b" world").expect(202, None);
    let data = b"hello world!";
    let answer = finish(&registry, &location, &Digest::of_bytes(data), b"!");
    answer.expect(201, None);
    assert_blob(&registry, REPO, data);
    assert_eq!(registry.storage().open_uploads(), 0);
    // The session is over.
    registry.get(&location).expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
}

#[test]
fn streamed_chunks_without_content_range() {
    let registry = Registry::new();
    let location = start(&registry, REPO);
    patch(&registry, &location, None, b"abc").expect(202, None);
    let answer = patch(&registry, &location, None, b"def");
    assert_eq!(answer.header("Range"), Some("0-5"));
    finish(&registry, &location, &Digest::of_bytes(b"abcdef"), b"").expect(201, None);
    assert_blob(&registry, REPO, b"abcdef");
}

#[test]
fn resumed_upload_reports_progress() {
    let registry = Registry::new();
    let location = start(&registry, REPO);
    let status = registry.get(&location);
    status.expect(204, None);
    assert_eq!(status.header("Range"), Some("0-0"));
    assert_eq!(status.content_length, None, "204 carries no Content-Length");
    patch(&registry, &location, Some("0-2"), b"abc").expect(202, None);
    // A client that lost track asks where the upload stands and goes on from there.
    let status = registry.get(&location);
    status.expect(204, None);
    assert_eq!(status.header("Range"), Some("0-2"));
    assert_eq!(status.header("Location"), Some(location.as_str()));
    patch(&registry, status.header("Location").unwrap(), Some("3-5"), b"def").expect(202, None);
    finish(&registry, &location, &Digest::of_bytes(b"abcdef"), b"").expect(201, None);
    assert_blob(&registry, REPO, b"abcdef");
}

#[test]
fn out_of_order_chunk_is_416_with_the_current_range() {
    let registry = Registry::new();
    let location = start(&registry, REPO);
    patch(&registry, &location, Some("0-2"), b"abc").expect(202, None);
    for range in ["0-2", "4-6", "2-4"] {
        let answer = patch(&registry, &location, Some(range), b"xyz");
        answer.expect(416, Some("BLOB_UPLOAD_INVALID"));
        assert_eq!(answer.header("Range"), Some("0-2"));
        assert_eq!(answer.header("Location"), Some(location.as_str()));
    }
    // A final chunk out of order is refused the same way.
    let answer = registry.with_body(
        "PUT",
        &format!("{location}?digest={}", Digest::of_bytes(b"abcxyz")),
        &[("Content-Range", "5-7")],
        b"xyz",
    );
    answer.expect(416, Some("BLOB_UPLOAD_INVALID"));
    // Nothing was appended by the refused chunks.
    assert_eq!(registry.get(&location).header("Range"), Some("0-2"));
    patch(&registry, &location, Some("3-5"), b"def").expect(202, None);
    finish(&registry, &location, &Digest::of_bytes(b"abcdef"), b"").expect(201, None);
}

#[test]
fn content_range_must_match_content_length() {
    let registry = Registry::new();
    let location = start(&registry, REPO);
    patch(&registry, &location, Some("0-9"), b"abc").expect(400, Some("SIZE_INVALID"));
    patch(&registry, &location, Some("garbage"), b"abc").expect(400, Some("BLOB_UPLOAD_INVALID"));
    assert_eq!(registry.get(&location).header("Range"), Some("0-0"));
}

#[test]
fn cancelled_upload_is_gone() {
    let registry = Registry::new();
    let location = start(&registry, REPO);
    patch(&registry, &location, None, b"abc").expect(202, None);
    registry.delete(&location).expect(204, None);
    assert_eq!(registry.storage().open_uploads(), 0);
    registry.get(&location).expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    patch(&registry, &location, None, b"def").expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    registry.delete(&location).expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
}

#[test]
fn cancelling_is_refused_when_deletes_are_disabled() {
    let registry = Registry::without_delete();
    let location = start(&registry, REPO);
    registry.delete(&location).expect(405, Some("UNSUPPORTED"));
    assert_eq!(registry.storage().open_uploads(), 1);
    registry.get(&location).expect(204, None);
}

#[test]
fn wrong_digest_at_the_end_ends_the_session() {
    let registry = Registry::new();
    let location = start(&registry, REPO);
    patch(&registry, &location, None, b"abc").expect(202, None);
    let answer = finish(&registry, &location, &Digest::of_bytes(b"other"), b"");
    answer.expect(400, Some("DIGEST_INVALID"));
    let detail = answer.json()["errors"][0]["detail"].as_str().unwrap().to_string();
    assert!(detail.contains(Digest::of_bytes(b"abc").as_str()), "{detail}");
    assert!(registry.storage().blob_digests().is_empty());
    registry.get(&location).expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
}

#[test]
fn session_tokens_are_bound_to_their_repository() {
    let registry = Registry::new();
    let location = start(&registry, REPO);
    let token = location.rsplit('/').next().unwrap();
    registry.get(&format!("/v2/other/blobs/uploads/{token}")).expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    let mut forged = token.to_string();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    registry.get(&format!("/v2/{REPO}/blobs/uploads/{forged}")).expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    registry.get(&format!("/v2/{REPO}/blobs/uploads/0-0")).expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    // Later sessions are signed with the same secret, created once.
    let second = start(&registry, REPO);
    registry.get(&location).expect(204, None);
    registry.get(&second).expect(204, None);
}

#[test]
fn an_unread_body_is_read_before_the_answer() {
    let registry = Registry::new();
    let path = format!("/v2/{REPO}/blobs/uploads/0-0");
    // An error before the handler takes the body (an unknown session).
    let body = MemoryBody::new(vec![7; 1000]);
    let read = body.bytes_read();
    registry.send("PATCH", &path, &[("Content-Length", "1000")], body).expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    assert_eq!(read.get(), 1000);
    // Not when the client waits for 100 Continue: it sends nothing unasked.
    let body = MemoryBody::new(vec![7; 1000]);
    let read = body.bytes_read();
    let headers = [("Content-Length", "1000"), ("Expect", "100-continue")];
    registry.send("PATCH", &path, &headers, body).expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    assert_eq!(read.get(), 0);
}

#[test]
fn mount_from_a_repository_that_has_the_blob() {
    let registry = Registry::new();
    let digest = registry.push_blob("source", b"shared layer");
    let answer = registry.with_body("POST", &format!("/v2/{REPO}/blobs/uploads/?mount={digest}&from=source"), &[], b"");
    answer.expect(201, None);
    assert_eq!(answer.header("Location"), Some(format!("/v2/{REPO}/blobs/{digest}").as_str()));
    assert_blob(&registry, REPO, b"shared layer");
    assert_eq!(registry.storage().open_uploads(), 0);
    assert_eq!(registry.storage().blob_digests().len(), 1, "mounted, not copied");
}

#[test]
fn mount_from_a_repository_without_the_blob_starts_a_session() {
    let registry = Registry::new();
    let digest = registry.push_blob("holder", b"private layer");
    let answer = registry.with_body("POST", &format!("/v2/{REPO}/blobs/uploads/?mount={digest}&from=empty"), &[], b"");
    answer.expect(202, None);
    assert!(answer.header("Location").unwrap().starts_with(&format!("/v2/{REPO}/blobs/uploads/")));
    registry.get(&format!("/v2/{REPO}/blobs/{digest}")).expect(404, Some("BLOB_UNKNOWN"));
}

#[test]
fn mount_without_from_finds_a_stored_blob() {
    let registry = Registry::new();
    let digest = registry.push_blob("somewhere", b"known bytes");
    let answer = registry.with_body("POST", &format!("/v2/{REPO}/blobs/uploads/?mount={digest}"), &[], b"");
    answer.expect(201, None);
    assert_blob(&registry, REPO, b"known bytes");
    let absent = Digest::of_bytes(b"never pushed");
    let answer = registry.with_body("POST", &format!("/v2/{REPO}/blobs/uploads/?mount={absent}"), &[], b"");
    answer.expect(202, None);
}

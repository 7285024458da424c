//! Blob GET, HEAD (with ranges) and DELETE, and repository visibility.

use super::Registry;
use crate::oci::digest::Digest;

const REPO: &str = "lib/app";

#[test]
fn get_and_head_a_blob() {
    let registry = Registry::new();
    let digest = registry.push_blob(REPO, b"0123456789");
    let path = format!("/v2/{REPO}/blobs/{digest}");
    for answer in [registry.get(&path), registry.head(&path)] {
        answer.expect(200, None);
        assert_eq!(answer.content_length, Some(10));
        assert_eq!(answer.header("Docker-Content-Digest"), Some(digest.as_str()));
        assert_eq!(answer.header("Accept-Ranges"), Some("bytes"));
        assert_eq!(answer.header("Content-Type"), Some("application/octet-stream"));
    }
    assert_eq!(registry.get(&path).body, b"0123456789");
}

#[test]
fn ranges() {
    let registry = Registry::new();
    let digest = registry.push_blob(REPO, b"0123456789");
    let path = format!("/v2/{REPO}/blobs/{digest}");
    let ranged = |range: &str| registry.send("GET", &path, &[("Range", range)], Default::default());
    let answer = ranged("bytes=2-4");
    answer.expect(206, None);
    assert_eq!(answer.body, b"234");
    assert_eq!(answer.header("Content-Range"), Some("bytes 2-4/10"));
    assert_eq!(ranged("bytes=7-").body, b"789");
    assert_eq!(ranged("bytes=-2").body, b"89");
    let answer = ranged("bytes=10-");
    answer.expect(416, Some("BLOB_UPLOAD_INVALID"));
    assert_eq!(answer.header("Content-Range"), Some("bytes */10"));
}

#[test]
fn a_store_with_urls_of_its_own_gets_blob_gets_redirected() {
    let registry = Registry::new();
    let digest = registry.push_blob(REPO, b"0123456789");
    registry.storage().set_redirect_base(Some("https://store.example/blobs/"));
    let path = format!("/v2/{REPO}/blobs/{digest}");
    for answer in [registry.get(&path), registry.send("GET", &path, &[("Range", "bytes=2-4")], Default::default())] {
        answer.expect(307, None);
        assert_eq!(answer.header("Location"), Some(format!("https://store.example/blobs/{digest}").as_str()));
        assert_eq!(answer.header("Docker-Content-Digest"), Some(digest.as_str()));
        assert!(answer.body.is_empty());
    }
    // HEAD answers itself: the size and digest come from the registry.
    let answer = registry.head(&path);
    answer.expect(200, None);
    assert_eq!(answer.content_length, Some(10));
    // Nothing is redirected that the repository does not hold, nor a range
    // the blob cannot satisfy.
    registry.get(&format!("/v2/other/blobs/{digest}")).expect(404, Some("BLOB_UNKNOWN"));
    registry.send("GET", &path, &[("Range", "bytes=10-")], Default::default()).expect(416, Some("BLOB_UPLOAD_INVALID"));
}

#[test]
fn blobs_are_visible_only_where_linked() {
    let registry = Registry::new();
    let digest = registry.push_blob(REPO, b"private");
    registry.get(&format!("/v2/other/blobs/{digest}")).expect(404, Some("BLOB_UNKNOWN"));
    registry.head(&format!("/v2/other/blobs/{digest}")).expect(404, None);
    let absent = Digest::of_bytes(b"absent");
    registry.get(&format!("/v2/{REPO}/blobs/{absent}")).expect(404, Some("BLOB_UNKNOWN"));
    registry.get(&format!("/v2/{REPO}/blobs/sha256:abc")).expect(400, Some("DIGEST_INVALID"));
}

#[test]
fn delete_unlinks_and_leaves_the_bytes_to_garbage_collection() {
    let registry = Registry::new();
    let digest = registry.push_blob(REPO, b"shared");
    registry.push_blob("other", b"shared");
    registry.delete(&format!("/v2/{REPO}/blobs/{digest}")).expect(202, None);
    registry.get(&format!("/v2/{REPO}/blobs/{digest}")).expect(404, Some("BLOB_UNKNOWN"));
    registry.delete(&format!("/v2/{REPO}/blobs/{digest}")).expect(404, Some("BLOB_UNKNOWN"));
    assert_eq!(registry.get(&format!("/v2/other/blobs/{digest}")).body, b"shared");
    registry.delete(&format!("/v2/other/blobs/{digest}")).expect(202, None);
    registry.get(&format!("/v2/other/blobs/{digest}")).expect(404, Some("BLOB_UNKNOWN"));
    assert_eq!(registry.storage().blob_digests(), [digest.to_string()], "a collection removes the bytes");
}

#[test]
fn delete_can_be_disabled() {
    let registry = Registry::without_delete();
    let digest = registry.push_blob(REPO, b"kept");
    registry.delete(&format!("/v2/{REPO}/blobs/{digest}")).expect(405, Some("UNSUPPORTED"));
    registry.get(&format!("/v2/{REPO}/blobs/{digest}")).expect(200, None);
}

#[test]
fn if_none_match_with_the_digest_is_304_without_a_body() {
    let registry = Registry::new();
    let digest = registry.push_blob(REPO, b"0123456789");
    let path = format!("/v2/{REPO}/blobs/{digest}");
    let etag = format!("\"{digest}\"");
    for method in ["GET", "HEAD"] {
        for tags in [etag.as_str(), "\"other\", W/\"sha256:x\"", "*"] {
            let answer = registry.send(method, &path, &[("If-None-Match", tags)], Default::default());
            if tags.contains("other") {
                answer.expect(200, None);
                continue;
            }
            answer.expect(304, None);
            assert!(answer.body.is_empty());
            assert_eq!(answer.content_length, None, "{method} {tags}");
            assert_eq!(answer.header("ETag"), Some(etag.as_str()));
            assert_eq!(answer.header("Docker-Content-Digest"), Some(digest.as_str()));
        }
    }
    // Before the range, and only for a blob the repository holds.
    let answer = registry.send("GET", &path, &[("If-None-Match", &etag), ("Range", "bytes=2-4")], Default::default());
    answer.expect(304, None);
    registry
        .send("GET", &format!("/v2/other/blobs/{digest}"), &[("If-None-Match", &etag)], Default::default())
        .expect(404, Some("BLOB_UNKNOWN"));
}

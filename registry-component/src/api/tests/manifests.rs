//! Manifests: put, get, head and delete for every media type; by tag and
//! by digest; reference checks, the size limit, `?tag=`, and references
//! that can name nothing.

use super::{image_manifest, index_manifest, Registry};
use crate::oci::digest::Digest;
use crate::oci::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MAX_MANIFEST_SIZE, OCI_INDEX, OCI_MANIFEST};
use crate::storage::memory::MemoryBody;

const REPO: &str = "lib/app";

/// GET and HEAD by `reference` give back `body` with its type and digest.
fn assert_manifest(registry: &Registry, reference: &str, media_type: &str, body: &[u8]) {
    let digest = Digest::of_bytes(body);
    let path = format!("/v2/{REPO}/manifests/{reference}");
    for answer in [registry.get(&path), registry.head(&path)] {
        answer.expect(200, None);
        assert_eq!(answer.header("Content-Type"), Some(media_type));
        assert_eq!(answer.header("Docker-Content-Digest"), Some(digest.as_str()));
        assert_eq!(answer.header("ETag"), Some(format!("\"{digest}\"").as_str()));
        assert_eq!(answer.content_length, Some(body.len() as u64));
    }
    assert_eq!(registry.get(&path).body, body);
}

/// Push by tag, pull by tag and digest, delete by digest: for one media type.
fn round_trip(registry: &Registry, media_type: &str, body: &[u8]) {
    let digest = Digest::of_bytes(body);
    let answer = registry.push_manifest(REPO, "v1", media_type, body);
    answer.expect(201, None);
    assert_eq!(answer.header("Location"), Some(format!("/v2/{REPO}/manifests/{digest}").as_str()));
    assert_eq!(answer.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_manifest(registry, "v1", media_type, body);
    assert_manifest(registry, digest.as_str(), media_type, body);
    registry.delete(&format!("/v2/{REPO}/manifests/{digest}")).expect(202, None);
    for reference in ["v1", digest.as_str()] {
        registry.get(&format!("/v2/{REPO}/manifests/{reference}")).expect(404, Some("MANIFEST_UNKNOWN"));
        registry.head(&format!("/v2/{REPO}/manifests/{reference}")).expect(404, None);
    }
    assert!(registry.storage().blob_digests().contains(&digest.to_string()), "a collection removes the bytes");
}

#[test]
fn image_manifests_of_both_flavours() {
    for media_type in [OCI_MANIFEST, DOCKER_MANIFEST] {
        let registry = Registry::new();
        let config = registry.push_blob(REPO, b"config");
        let layer = registry.push_blob(REPO, b"layer");
        round_trip(&registry, media_type, &image_manifest(media_type, &config, &layer, ""));
        // The blobs it referenced stay.
        registry.get(&format!("/v2/{REPO}/blobs/{layer}")).expect(200, None);
    }
}

#[test]
fn indexes_of_both_flavours() {
    for (index_type, child_type) in [(OCI_INDEX, OCI_MANIFEST), (DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)] {
        let registry = Registry::new();
        let (_, child) = registry.push_image(REPO, "child", child_type, "");
        round_trip(&registry, index_type, &index_manifest(index_type, child_type, &[&child]));
        registry.get(&format!("/v2/{REPO}/manifests/child")).expect(200, None);
    }
}

#[test]
fn push_by_digest_checks_the_digest() {
    let registry = Registry::new();
    let (body, _) = registry.push_image(REPO, "v1", OCI_MANIFEST, "");
    let mut other = body.clone();
    other.push(b' ');
    let digest = Digest::of_bytes(&other);
    registry.push_manifest(REPO, digest.as_str(), OCI_MANIFEST, &other).expect(201, None);
    assert_manifest(&registry, digest.as_str(), OCI_MANIFEST, &other);
    let wrong = Digest::of_bytes(b"not it");
    registry.push_manifest(REPO, wrong.as_str(), OCI_MANIFEST, &other).expect(400, Some("DIGEST_INVALID"));
}

#[test]
fn references_must_exist_in_the_repository() {
    let registry = Registry::new();
    let config = registry.push_blob("elsewhere", b"config");
    let layer = registry.push_blob(REPO, b"layer");
    let body = image_manifest(OCI_MANIFEST, &config, &layer, "");
    registry.push_manifest(REPO, "v1", OCI_MANIFEST, &body).expect(400, Some("MANIFEST_BLOB_UNKNOWN"));
    let missing = Digest::of_bytes(b"no such manifest");
    let index = index_manifest(OCI_INDEX, OCI_MANIFEST, &[&missing]);
    registry.push_manifest(REPO, "v1", OCI_INDEX, &index).expect(400, Some("MANIFEST_BLOB_UNKNOWN"));
    registry.get(&format!("/v2/{REPO}/manifests/v1")).expect(404, Some("MANIFEST_UNKNOWN"));
    assert_eq!(registry.storage().blob_digests().len(), 2, "no manifest bytes were stored");
}

#[test]
fn invalid_and_oversized_manifests() {
    let registry = Registry::new();
    registry.push_manifest(REPO, "v1", OCI_MANIFEST, b"[]").expect(400, Some("MANIFEST_INVALID"));
    registry.push_manifest(REPO, "v1", OCI_MANIFEST, b"{\"schemaVersion\":1}").expect(400, Some("MANIFEST_INVALID"));
    let big = vec![b' '; MAX_MANIFEST_SIZE + 1];
    registry.push_manifest(REPO, "v1", OCI_MANIFEST, &big).expect(413, Some("MANIFEST_INVALID"));
    // Without a Content-Length, the limit is found while reading.
    let path = format!("/v2/{REPO}/manifests/v1");
    let body = MemoryBody::new(big.clone());
    let read = body.bytes_read();
    let headers = [("Content-Type", OCI_MANIFEST), ("Transfer-Encoding", "chunked")];
    registry.send("PUT", &path, &headers, body).expect(413, Some("MANIFEST_INVALID"));
    assert_eq!(read.get(), big.len() as u64, "the rest of the body was read before the answer");
    assert!(registry.storage().blob_digests().is_empty());
}

#[test]
fn tag_parameters_tag_the_manifest() {
    let registry = Registry::new();
    let config = registry.push_blob(REPO, b"config");
    let layer = registry.push_blob(REPO, b"layer");
    let body = image_manifest(OCI_MANIFEST, &config, &layer, "");
    let digest = Digest::of_bytes(&body);
    let path = format!("/v2/{REPO}/manifests/{digest}?tag=one&tag=two");
    let answer = registry.with_body("PUT", &path, &[("Content-Type", OCI_MANIFEST)], &body);
    answer.expect(201, None);
    assert_eq!(answer.headers("OCI-Tag"), ["one", "two"]);
    assert_manifest(&registry, "one", OCI_MANIFEST, &body);
    assert_manifest(&registry, "two", OCI_MANIFEST, &body);
}

#[test]
fn deleting_a_tag_keeps_the_manifest() {
    let registry = Registry::new();
    let (body, digest) = registry.push_image(REPO, "old", OCI_MANIFEST, "");
    registry.push_manifest(REPO, "new", OCI_MANIFEST, &body).expect(201, None);
    registry.delete(&format!("/v2/{REPO}/manifests/old")).expect(202, None);
    registry.get(&format!("/v2/{REPO}/manifests/old")).expect(404, Some("MANIFEST_UNKNOWN"));
    registry.delete(&format!("/v2/{REPO}/manifests/old")).expect(404, Some("MANIFEST_UNKNOWN"));
    assert_manifest(&registry, "new", OCI_MANIFEST, &body);
    assert_manifest(&registry, digest.as_str(), OCI_MANIFEST, &body);
    // Deleting the digest takes every tag with it.
    registry.delete(&format!("/v2/{REPO}/manifests/{digest}")).expect(202, None);
    registry.get(&format!("/v2/{REPO}/manifests/new")).expect(404, Some("MANIFEST_UNKNOWN"));
    assert_eq!(registry.get(&format!("/v2/{REPO}/tags/list")).json()["tags"], serde_json::json!([]));
    registry.delete(&format!("/v2/{REPO}/manifests/{digest}")).expect(404, Some("MANIFEST_UNKNOWN"));
}

#[test]
fn bytes_shared_with_another_repository_stay() {
    let registry = Registry::new();
    let (body, digest) = registry.push_image(REPO, "v1", OCI_MANIFEST, "");
    let (_, same) = registry.push_image("mirror", "v1", OCI_MANIFEST, "");
    assert_eq!(digest, same);
    registry.delete(&format!("/v2/{REPO}/manifests/{digest}")).expect(202, None);
    let answer = registry.get(&format!("/v2/mirror/manifests/{digest}"));
    answer.expect(200, None);
    assert_eq!(answer.body, body);
}

#[test]
fn deletes_can_be_disabled() {
    let registry = Registry::without_delete();
    let (_, digest) = registry.push_image(REPO, "v1", OCI_MANIFEST, "");
    registry.delete(&format!("/v2/{REPO}/manifests/{digest}")).expect(405, Some("UNSUPPORTED"));
    registry.delete(&format!("/v2/{REPO}/manifests/v1")).expect(405, Some("UNSUPPORTED"));
    registry.get(&format!("/v2/{REPO}/manifests/v1")).expect(200, None);
}

#[test]
fn references_that_name_nothing_are_unknown_to_get_and_head() {
    let registry = Registry::new();
    let (body, _) = registry.push_image(REPO, "v1", OCI_MANIFEST, "");
    for reference in [".INVALID_MANIFEST_NAME", "-x", "sha256:abc", "has%20space"] {
        let path = format!("/v2/{REPO}/manifests/{reference}");
        registry.get(&path).expect(404, Some("MANIFEST_UNKNOWN"));
        registry.head(&path).expect(404, None);
    }
    registry.get("/v2/never/pushed/manifests/.INVALID_MANIFEST_NAME").expect(404, Some("MANIFEST_UNKNOWN"));
    registry.push_manifest(REPO, ".INVALID_MANIFEST_NAME", OCI_MANIFEST, &body).expect(400, Some("TAG_INVALID"));
    registry.push_manifest(REPO, "sha256:abc", OCI_MANIFEST, &body).expect(400, Some("DIGEST_INVALID"));
    assert_eq!(registry.get(&format!("/v2/{REPO}/tags/list")).json()["tags"], serde_json::json!(["v1"]));
}

#[test]
fn if_none_match_revalidates_a_tag_until_it_moves() {
    let registry = Registry::new();
    let (_, first) = registry.push_image(REPO, "latest", OCI_MANIFEST, "");
    let etag = format!("\"{first}\"");
    for method in ["GET", "HEAD"] {
        let answer = registry.send(
            method,
            &format!("/v2/{REPO}/manifests/latest"),
            &[("If-None-Match", &etag)],
            Default::default(),
        );
        answer.expect(304, None);
        assert!(answer.body.is_empty());
        assert_eq!(answer.header("Docker-Content-Digest"), Some(first.as_str()));
        assert_eq!(answer.header("ETag"), Some(etag.as_str()));
    }
    let (body, second) = registry.push_image(REPO, "latest", OCI_MANIFEST, r#", "annotations": {"v": "2"}"#);
    let answer =
        registry.send("GET", &format!("/v2/{REPO}/manifests/latest"), &[("If-None-Match", &etag)], Default::default());
    answer.expect(200, None);
    assert_eq!(answer.body, body);
    assert_eq!(answer.header("Docker-Content-Digest"), Some(second.as_str()));
}

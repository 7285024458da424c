//! A store out of space: writes get 507 with a body that says so (a 5xx,
//! so clients retry later), the failed upload is gone, what was stored
//! before is served whole, deletes still work, and writes succeed again
//! once there is room.

use super::{image_manifest, Registry};
use crate::oci::digest::Digest;
use crate::storage::memory::MemoryBody;

const REPO: &str = "lib/app";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry holding one pushed image, then left with `room` bytes free.
fn nearly_full(room: u64) -> (Registry, Vec<u8>, Digest) {
    let registry = Registry::new();
    let (manifest, digest) = registry.push_image(REPO, "kept", OCI_MANIFEST, "");
    registry.storage().set_room(Some(registry.storage().used() + room));
    (registry, manifest, digest)
}

fn is_storage_full(answer: &super::Answer) {
    answer.expect(507, Some("UNKNOWN"));
    let error = &answer.json()["errors"][0];
    assert!(error["message"].as_str().unwrap().contains("insufficient storage"), "{error}");
    assert!(error["detail"].as_str().unwrap().contains("retry"), "{error}");
}

#[test]
fn a_monolithic_push_that_does_not_fit_is_507_and_keeps_nothing() {
    let (registry, manifest, digest) = nearly_full(1024);
    let big = vec![7u8; 64 * 1024];
    let answer =
        registry.with_body("POST", &format!("/v2/{REPO}/blobs/uploads/?digest={}", Digest::of_bytes(&big)), &[], &big);
    is_storage_full(&answer);
    assert_eq!(registry.storage().open_uploads(), 0, "the upload's bytes are released");
    // What was there before is served whole.
    let pulled = registry.get(&format!("/v2/{REPO}/manifests/kept"));
    pulled.expect(200, None);
    assert_eq!(pulled.body, manifest);
    registry.head(&format!("/v2/{REPO}/manifests/{digest}")).expect(200, None);
}

#[test]
fn a_chunk_that_does_not_fit_ends_its_session_with_507() {
    let (registry, _, _) = nearly_full(1024);
    let location = registry
        .with_body("POST", &format!("/v2/{REPO}/blobs/uploads/"), &[], b"")
        .header("Location")
        .unwrap()
        .to_string();
    is_storage_full(&registry.with_body("PATCH", &location, &[], &vec![1u8; 8 * 1024]));
    registry.get(&location).expect(404, Some("BLOB_UPLOAD_UNKNOWN"));
    assert_eq!(registry.storage().open_uploads(), 0);
}

#[test]
fn a_manifest_or_tag_that_does_not_fit_is_507_and_the_old_tag_stays() {
    let (registry, manifest, _) = nearly_full(1024);
    let config = Digest::of_bytes(b"config of kept");
    let layer = Digest::of_bytes(b"layer of kept");
    // A manifest as big as the room allows only with padding: the annotation.
    let padding = format!(r#","annotations":{{"pad":"{}"}}"#, "x".repeat(4096));
    let bigger = image_manifest(OCI_MANIFEST, &config, &layer, &padding);
    is_storage_full(&registry.push_manifest(REPO, "kept", OCI_MANIFEST, &bigger));
    assert_eq!(registry.get(&format!("/v2/{REPO}/manifests/kept")).body, manifest);
}

#[test]
fn deletes_work_on_a_full_store_and_writes_work_again_once_there_is_room() {
    let (registry, _, digest) = nearly_full(1024);
    let big = vec![9u8; 64 * 1024];
    let push = |registry: &Registry| {
        let path = format!("/v2/{REPO}/blobs/uploads/?digest={}", Digest::of_bytes(&big));
        registry.send("POST", &path, &[("Content-Length", &big.len().to_string())], MemoryBody::new(big.clone()))
    };
    is_storage_full(&push(&registry));
    registry.delete(&format!("/v2/{REPO}/manifests/{digest}")).expect(202, None);
    registry.storage().set_room(None);
    push(&registry).expect(201, None);
}

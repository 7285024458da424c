//! `GET /v2/<name>/referrers/<digest>`: manifests whose subject is the
//! digest, with and without an `artifactType` filter.

use super::Registry;
use crate::oci::digest::Digest;
use crate::oci::manifest::{OCI_INDEX, OCI_MANIFEST};

const REPO: &str = "lib/app";

/// A `subject` field pointing at `digest`, plus an `artifactType`.
fn subject(digest: &Digest, artifact_type: &str) -> String {
    format!(
        r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":1}},"artifactType":"{artifact_type}","annotations":{{"k":"v"}}"#
    )
}

fn listed(answer: &super::Answer) -> Vec<String> {
    answer.expect(200, None);
    assert_eq!(answer.header("Content-Type"), Some(OCI_INDEX));
    let index = answer.json();
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(index["schemaVersion"], 2);
    index["manifests"].as_array().unwrap().iter().map(|d| d["digest"].as_str().unwrap().to_string()).collect()
}

#[test]
fn no_referrers_is_an_empty_index() {
    let registry = Registry::new();
    let (_, digest) = registry.push_image(REPO, "v1", OCI_MANIFEST, "");
    assert!(listed(&registry.get(&format!("/v2/{REPO}/referrers/{digest}"))).is_empty());
    // Even for a subject nobody pushed.
    let absent = Digest::of_bytes(b"absent");
    assert!(listed(&registry.get(&format!("/v2/{REPO}/referrers/{absent}"))).is_empty());
    registry.get(&format!("/v2/{REPO}/referrers/sha256:abc")).expect(400, Some("DIGEST_INVALID"));
}

#[test]
fn referrers_with_and_without_a_filter() {
    let registry = Registry::new();
    let (_, target) = registry.push_image(REPO, "v1", OCI_MANIFEST, "");
    let answer_push = |reference: &str, artifact_type: &str| {
        let (_, digest) = registry.push_image(REPO, reference, OCI_MANIFEST, &subject(&target, artifact_type));
        digest
    };
    let signature = answer_push("sig", "application/vnd.example.signature");
    let sbom = answer_push("sbom", "application/vnd.example.sbom+json");
    let answer = registry.get(&format!("/v2/{REPO}/referrers/{target}"));
    let mut expected = vec![signature.to_string(), sbom.to_string()];
    expected.sort();
    assert_eq!(listed(&answer), expected);
    assert_eq!(answer.header("OCI-Filters-Applied"), None);
    let descriptor = &answer.json()["manifests"][0];
    assert_eq!(descriptor["mediaType"], OCI_MANIFEST);
    assert_eq!(descriptor["annotations"]["k"], "v");
    assert!(descriptor["size"].as_u64().unwrap() > 0);

    let answer = registry.get(&format!("/v2/{REPO}/referrers/{target}?artifactType=application/vnd.example.sbom+json"));
    assert_eq!(listed(&answer), vec![sbom.to_string()]);
    assert_eq!(answer.header("OCI-Filters-Applied"), Some("artifactType"));
    assert_eq!(answer.json()["manifests"][0]["artifactType"], "application/vnd.example.sbom+json");
    let answer = registry.get(&format!("/v2/{REPO}/referrers/{target}?artifactType=none%2Fsuch"));
    assert!(listed(&answer).is_empty());

    // Deleting a referrer takes it out of the list; other repositories see none.
    registry.delete(&format!("/v2/{REPO}/manifests/{signature}")).expect(202, None);
    assert_eq!(listed(&registry.get(&format!("/v2/{REPO}/referrers/{target}"))), vec![sbom.to_string()]);
    assert!(listed(&registry.get(&format!("/v2/other/referrers/{target}"))).is_empty());
}

#[test]
fn a_subject_is_answered_with_oci_subject() {
    let registry = Registry::new();
    let target = Digest::of_bytes(b"a manifest not pushed yet");
    let config = registry.push_blob(REPO, b"config");
    let layer = registry.push_blob(REPO, b"layer");
    let body = super::image_manifest(OCI_MANIFEST, &config, &layer, &subject(&target, "application/x"));
    let answer = registry.push_manifest(REPO, "sig", OCI_MANIFEST, &body);
    answer.expect(201, None);
    assert_eq!(answer.header("OCI-Subject"), Some(target.as_str()));
    assert_eq!(
        listed(&registry.get(&format!("/v2/{REPO}/referrers/{target}"))),
        vec![Digest::of_bytes(&body).to_string()]
    );
}

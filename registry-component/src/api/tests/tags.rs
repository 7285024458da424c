//! `GET /v2/<name>/tags/list`: byte order, paging with `n`, `last` and `Link`.

use super::Registry;
use crate::oci::manifest::OCI_MANIFEST;

const REPO: &str = "lib/app";

fn tagged(tags: &[&str]) -> Registry {
    let registry = Registry::new();
    let (body, _) = registry.push_image(REPO, tags[0], OCI_MANIFEST, "");
    for tag in &tags[1..] {
        registry.push_manifest(REPO, tag, OCI_MANIFEST, &body).expect(201, None);
    }
    registry
}

fn tags(answer: &super::Answer) -> serde_json::Value {
    answer.expect(200, None);
    assert_eq!(answer.json()["name"], REPO);
    answer.json()["tags"].clone()
}

#[test]
fn all_tags_in_byte_order() {
    let registry = tagged(&["b", "B", "a.1", "a-1", "_x", "0"]);
    let answer = registry.get(&format!("/v2/{REPO}/tags/list"));
    assert_eq!(tags(&answer), serde_json::json!(["0", "B", "_x", "a-1", "a.1", "b"]));
    assert_eq!(answer.header("Link"), None);
}

#[test]
fn pages_follow_the_link() {
    let registry = tagged(&["v1", "v2", "v3", "v4", "v5"]);
    let answer = registry.get(&format!("/v2/{REPO}/tags/list?n=2"));
    assert_eq!(tags(&answer), serde_json::json!(["v1", "v2"]));
    let link = answer.header("Link").unwrap();
    assert_eq!(link, format!("</v2/{REPO}/tags/list?n=2&last=v2>; rel=\"next\""));
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let answer = registry.get(next);
    assert_eq!(tags(&answer), serde_json::json!(["v3", "v4"]));
    let answer = registry.get(&format!("/v2/{REPO}/tags/list?n=2&last=v4"));
    assert_eq!(tags(&answer), serde_json::json!(["v5"]));
    assert_eq!(answer.header("Link"), None);
    // `last` need not be a tag; `n` larger than the rest ends the listing.
    let answer = registry.get(&format!("/v2/{REPO}/tags/list?n=10&last=v2a"));
    assert_eq!(tags(&answer), serde_json::json!(["v3", "v4", "v5"]));
    assert_eq!(answer.header("Link"), None);
    let answer = registry.get(&format!("/v2/{REPO}/tags/list?n=0"));
    assert_eq!(tags(&answer), serde_json::json!([]));
}

#[test]
fn unknown_repository_and_bad_parameters() {
    let registry = tagged(&["v1"]);
    registry.get("/v2/nobody/tags/list").expect(404, Some("NAME_UNKNOWN"));
    registry.get(&format!("/v2/{REPO}/tags/list?n=x")).expect(400, Some("UNSUPPORTED"));
    // A repository with blobs but no tags lists none.
    registry.push_blob("blobs/only", b"x");
    assert_eq!(registry.get("/v2/blobs/only/tags/list").json()["tags"], serde_json::json!([]));
}

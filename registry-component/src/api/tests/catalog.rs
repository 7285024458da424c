//! `GET /v2/_catalog`: every repository in name order, paged with `Link`.

use super::Registry;

fn repositories(answer: &super::Answer) -> serde_json::Value {
    answer.expect(200, None);
    answer.json()["repositories"].clone()
}

#[test]
fn empty_registry_lists_nothing() {
    let registry = Registry::new();
    let answer = registry.get("/v2/_catalog");
    assert_eq!(repositories(&answer), serde_json::json!([]));
    assert_eq!(answer.header("Link"), None);
}

#[test]
fn pages_in_name_order() {
    let registry = Registry::new();
    for repo in ["b", "a/b", "a-b", "a", "c/d/e"] {
        registry.push_blob(repo, repo.as_bytes());
    }
    assert_eq!(repositories(&registry.get("/v2/_catalog")), serde_json::json!(["a", "a-b", "a/b", "b", "c/d/e"]));
    let answer = registry.get("/v2/_catalog?n=2");
    assert_eq!(repositories(&answer), serde_json::json!(["a", "a-b"]));
    assert_eq!(answer.header("Link"), Some("</v2/_catalog?n=2&last=a-b>; rel=\"next\""));
    let answer = registry.get("/v2/_catalog?n=2&last=a-b");
    assert_eq!(repositories(&answer), serde_json::json!(["a/b", "b"]));
    assert_eq!(answer.header("Link"), Some("</v2/_catalog?n=2&last=b>; rel=\"next\""));
    let answer = registry.get("/v2/_catalog?n=2&last=b");
    assert_eq!(repositories(&answer), serde_json::json!(["c/d/e"]));
    assert_eq!(answer.header("Link"), None);
    // The encoded `last` of a Link reads back.
    assert_eq!(repositories(&registry.get("/v2/_catalog?last=a%2Fb")), serde_json::json!(["b", "c/d/e"]));
}

//! end-8a/8b: `GET /v2/<name>/tags/list[?n=&last=]`. Lexical order, `n` as an
//! upper bound (n=0: an empty list and no `Link`), `last` as an exclusive cursor
//! that need not name an existing tag, the exact `Link` of the next page, a walk of
//! the whole list one tag at a time, and NAME_UNKNOWN for an unknown repository.

use reqwest::StatusCode;

use crate::common::{assert_error, next_link, string_list, RegistryServer};

/// The tags the tests push, in push order (deliberately not sorted).
const PUSHED: [&str; 8] = ["v2", "latest", "1.10", "v10", "v2-rc", "1.0", "v1", "1.2"];

/// [`PUSHED`] in lexical order: `1.10` before `1.2` and `v10` before `v2`, because
/// tags are strings, not versions.
const SORTED: [&str; 8] = ["1.0", "1.10", "1.2", "latest", "v1", "v10", "v2", "v2-rc"];

/// Pushes one image to `repo` and tags it with every tag of [`PUSHED`].
async fn tagged_repo(server: &RegistryServer, repo: &str) {
    server.push_image(repo, &PUSHED).await;
}

/// `GET /v2/<repo>/tags/list<query>`: asserts 200 and the `name` field; returns the
/// tags and the target of the `Link` header, if any.
async fn page(server: &RegistryServer, repo: &str, query: &str) -> (Vec<String>, Option<String>) {
    let (headers, json) = server.get_json(&format!("/v2/{repo}/tags/list{query}")).await;
    assert_eq!(json["name"], repo, "name in the tag list of {repo}{query}: {json}");
    (string_list(&json, "tags"), next_link(&headers))
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Without parameters every tag comes back, in lexical order, with no `Link`: there
/// is no next page. So it is when `n` exceeds the number of tags.
#[tokio::test]
async fn tags_are_listed_in_lexical_order() {
    let server = RegistryServer::start();
    let repo = "e2e/tags/order";
    tagged_repo(&server, repo).await;

    let (tags, link) = page(&server, repo, "").await;
    assert_eq!(tags, strings(&SORTED));
    assert_eq!(link, None, "Link without a next page");

    let (tags, link) = page(&server, repo, "?n=100").await;
    assert_eq!(tags, strings(&SORTED));
    assert_eq!(link, None, "Link without a next page (n=100)");
}

/// n=0 is an empty list and no `Link`, with or without `last`.
#[tokio::test]
async fn n_zero_is_an_empty_list_without_link() {
    let server = RegistryServer::start();
    let repo = "e2e/tags/zero";
    tagged_repo(&server, repo).await;

    for query in ["?n=0", "?n=0&last=1.2", "?last=1.0&n=0"] {
        let (tags, link) = page(&server, repo, query).await;
        assert!(tags.is_empty(), "{query}: {tags:?}");
        assert_eq!(link, None, "{query}: Link on an n=0 page");
    }
}

/// With n=1 the list is walked one tag per page through the `Link` headers, each
/// exactly `</v2/<name>/tags/list?n=1&last=<previous tag>>; rel="next"`, and the
/// walk ends on the last tag without a `Link`.
#[tokio::test]
async fn n_one_walks_the_whole_list_via_link() {
    let server = RegistryServer::start();
    let repo = "e2e/tags/walk";
    tagged_repo(&server, repo).await;

    let mut query = "?n=1".to_string();
    let mut seen = Vec::new();
    for _ in 0..=SORTED.len() {
        let (tags, link) = page(&server, repo, &query).await;
        assert_eq!(tags.len(), 1, "{query}: one tag per page, got {tags:?}");
        seen.push(tags[0].clone());
        let Some(link) = link else { break };
        assert_eq!(link, format!("/v2/{repo}/tags/list?n=1&last={}", tags[0]), "Link after {query}");
        query = link.strip_prefix(&format!("/v2/{repo}/tags/list")).unwrap().to_string();
    }
    assert_eq!(seen, strings(&SORTED), "tags seen in the n=1 walk");
}

/// `n` with `last` pages from the middle: exactly n tags after `last` and a `Link`
/// carrying the same n and the page's final tag; the last page has no `Link`.
#[tokio::test]
async fn n_and_last_page_from_the_middle() {
    let server = RegistryServer::start();
    let repo = "e2e/tags/middle";
    tagged_repo(&server, repo).await;

    let (tags, link) = page(&server, repo, "?n=3&last=1.2").await;
    assert_eq!(tags, strings(&["latest", "v1", "v10"]));
    assert_eq!(link.as_deref(), Some(format!("/v2/{repo}/tags/list?n=3&last=v10").as_str()));

    let (tags, link) = page(&server, repo, "?n=3&last=v10").await;
    assert_eq!(tags, strings(&["v2", "v2-rc"]));
    assert_eq!(link, None, "Link on the final page");

    // A page that ends exactly on the last tag has no next page either.
    let (tags, link) = page(&server, repo, "?n=2&last=v10").await;
    assert_eq!(tags, strings(&["v2", "v2-rc"]));
    assert_eq!(link, None, "Link on a full final page");
}

/// `last` is exclusive and need not be a tag: it may fall between two tags, before
/// the first (everything) or beyond the last (an empty list, no `Link`).
#[tokio::test]
async fn last_is_an_exclusive_cursor() {
    let server = RegistryServer::start();
    let repo = "e2e/tags/last";
    tagged_repo(&server, repo).await;

    let cases: [(&str, &[&str]); 6] = [
        ("?last=v1", &["v10", "v2", "v2-rc"]),
        // Between v10 and v2.
        ("?last=v15", &["v2", "v2-rc"]),
        // Between 1.0 and 1.10.
        ("?last=1.05", &["1.10", "1.2", "latest", "v1", "v10", "v2", "v2-rc"]),
        // Before the first tag.
        ("?last=0", &SORTED),
        // The last tag itself, and beyond the end.
        ("?last=v2-rc", &[]),
        ("?last=zzz", &[]),
    ];
    for (query, expected) in cases {
        let (tags, link) = page(&server, repo, query).await;
        assert_eq!(tags, strings(expected), "{query}");
        assert_eq!(link, None, "{query}: Link without a next page");
    }

    let (tags, link) = page(&server, repo, "?n=2&last=zzz").await;
    assert!(tags.is_empty(), "n=2&last=zzz: {tags:?}");
    assert_eq!(link, None, "Link after the end");
}

/// A repository nobody pushed to is 404 NAME_UNKNOWN, whatever the parameters; one
/// whose name is a prefix of an existing repository's is unknown too.
#[tokio::test]
async fn unknown_repository_is_name_unknown() {
    let server = RegistryServer::start();
    tagged_repo(&server, "e2e/tags/known").await;
    for path in [
        "/v2/e2e/tags/nothing/tags/list",
        "/v2/e2e/tags/nothing/tags/list?n=1",
        "/v2/e2e/tags/nothing/tags/list?n=0",
        "/v2/e2e/tags/nothing/tags/list?n=2&last=v1",
        "/v2/e2e/tags/tags/list",
    ] {
        let resp = server.client().get(server.url(path)).send().await.unwrap();
        assert_error(resp, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
    }
}

/// The `OCI-Tag` values of a response, whether sent as one header each or joined
/// with commas.
fn oci_tags(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all("OCI-Tag")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// end-7 with `?tag=`: a manifest PUT by digest or by tag with repeated `tag`
/// parameters tags the same manifest with each, answering one `OCI-Tag` per
/// parameter; the tags then show in the tag list and resolve to the manifest. A
/// malformed `tag` is TAG_INVALID and stores nothing.
#[tokio::test]
async fn tag_parameters_tag_the_manifest() {
    use crate::common::{media, sha256_digest};
    let server = RegistryServer::start();
    let repo = "e2e/tags/params";
    let image = server.push_image_blobs(repo, 1, false).await;
    let body = image.manifest();
    let digest = sha256_digest(&body);

    let resp = server.put_manifest(repo, &format!("{digest}?tag=one&tag=two"), media::OCI_MANIFEST, body.clone()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(oci_tags(resp.headers()), ["one", "two"]);
    let (tags, _) = page(&server, repo, "").await;
    assert_eq!(tags, strings(&["one", "two"]));

    let resp = server.put_manifest(repo, "main?tag=three", media::OCI_MANIFEST, body.clone()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(oci_tags(resp.headers()), ["three"]);
    let (tags, _) = page(&server, repo, "").await;
    assert_eq!(tags, strings(&["main", "one", "three", "two"]));
    for tag in ["one", "two", "three", "main"] {
        let resp = server
            .client()
            .head(server.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("Accept", media::OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{tag}");
        assert_eq!(resp.headers()["Docker-Content-Digest"], digest.as_str(), "{tag}");
    }

    let resp =
        server.put_manifest(repo, &format!("{digest}?tag=four&tag=-bad"), media::OCI_MANIFEST, body.clone()).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "TAG_INVALID").await;
    let (tags, _) = page(&server, repo, "").await;
    assert_eq!(tags, strings(&["main", "one", "three", "two"]), "after a refused PUT");
}

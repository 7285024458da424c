//! `GET /v2/_catalog[?n=&last=]`: every repository, multi-segment names included,
//! in lexical order, paged by the rules of the tag list (n=0: empty and no `Link`;
//! `last` exclusive; `Link: </v2/_catalog?n=..&last=..>; rel="next"`).
//!
//! Each test's repositories share a unique first component, so that the tests hold
//! against an external registry (`REGISTRY_TEST_URL`) as well; on the suite's own
//! fresh server they also check that the catalog holds nothing else.

use crate::common::{external_registry, next_link, percent_decode, string_list, unique_id, RegistryServer};

/// The repositories of one test, relative to its prefix `P`: `P` itself and names
/// below it. Lexical (byte) order puts `a-b` before `a/b` because `-` < `/`.
const RELATIVE: [&str; 6] = ["", "/a", "/a-b", "/a/b", "/b/c/d", "/z"];

/// Creates the test's repositories (one tagged image each, pushed in reverse order)
/// and returns their names in lexical order.
async fn repositories(server: &RegistryServer) -> Vec<String> {
    let prefix = format!("catalog-{}", unique_id());
    let names: Vec<String> = RELATIVE.iter().map(|r| format!("{prefix}{r}")).collect();
    for name in names.iter().rev() {
        server.push_image(name, &["v1"]).await;
    }
    names
}

/// `GET /v2/_catalog<query>`: the repositories and the target of `Link`, if any.
async fn page(server: &RegistryServer, query: &str) -> (Vec<String>, Option<String>) {
    let (headers, json) = server.get_json(&format!("/v2/_catalog{query}")).await;
    (string_list(&json, "repositories"), next_link(&headers))
}

/// The `last` of a catalog `Link`, which must be `/v2/_catalog?n=<n>&last=<name>`
/// (the name may be percent-encoded: `/` as `%2F`).
fn link_last(link: &str, n: usize) -> String {
    let encoded = link
        .strip_prefix(&format!("/v2/_catalog?n={n}&last="))
        .unwrap_or_else(|| panic!("Link target {link:?} is not /v2/_catalog?n={n}&last=.."));
    percent_decode(encoded)
}

/// The entries of `list` that belong to the test (`names[0]` is its prefix).
fn mine(list: &[String], names: &[String]) -> Vec<String> {
    let prefix = &names[0];
    list.iter().filter(|name| *name == prefix || name.starts_with(&format!("{prefix}/"))).cloned().collect()
}

/// The whole catalog lists every repository, in lexical order, multi-segment names
/// and a name that is a prefix of others included.
#[tokio::test]
async fn catalog_lists_repositories_in_lexical_order() {
    let server = RegistryServer::start();
    let names = repositories(&server).await;

    let (all, link) = page(&server, "").await;
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "catalog order");
    assert_eq!(mine(&all, &names), names);
    if !external_registry() {
        assert_eq!(all, names, "the catalog of a fresh registry");
        assert_eq!(link, None, "Link without a next page");
        let (all, link) = page(&server, "?n=100").await;
        assert_eq!(all, names, "n=100");
        assert_eq!(link, None, "Link without a next page (n=100)");
    }
}

/// n=0 is an empty list and no `Link`, with or without `last`.
#[tokio::test]
async fn n_zero_is_an_empty_list_without_link() {
    let server = RegistryServer::start();
    let names = repositories(&server).await;
    for query in ["?n=0".to_string(), format!("?n=0&last={}", names[1])] {
        let (list, link) = page(&server, &query).await;
        assert!(list.is_empty(), "{query}: {list:?}");
        assert_eq!(link, None, "{query}: Link on an n=0 page");
    }
}

/// With n=1 the catalog is walked one repository per page through `Link` headers of
/// the exact form `</v2/_catalog?n=1&last=<previous name>>; rel="next"`.
#[tokio::test]
async fn n_one_walks_the_whole_catalog_via_link() {
    let server = RegistryServer::start();
    let names = repositories(&server).await;

    let mut query = "?n=1".to_string();
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        let (list, link) = page(&server, &query).await;
        assert_eq!(list.len(), 1, "{query}: one name per page, got {list:?}");
        seen.push(list[0].clone());
        let Some(link) = link else { break };
        assert_eq!(link_last(&link, 1), list[0], "Link after {query}");
        query = link.strip_prefix("/v2/_catalog").unwrap().to_string();
    }
    assert_eq!(mine(&seen, &names), names, "the test's names in the walk");
    if !external_registry() {
        assert_eq!(seen, names, "the walk of a fresh registry");
    }
}

/// `last` is exclusive and need not be a repository: between two names, the page
/// starts at the next; `n` caps the page and its `Link` carries the page's final
/// name; beyond the end the list is empty with no `Link`.
#[tokio::test]
async fn last_is_an_exclusive_cursor() {
    let server = RegistryServer::start();
    let names = repositories(&server).await;
    let prefix = &names[0];

    // `P/a.` falls between `P/a-b` and `P/a/b` (`-` < `.` < `/`); with a unique P no
    // other repository can sort in between, even on an external registry.
    let (list, link) = page(&server, &format!("?n=2&last={prefix}/a.")).await;
    assert_eq!(list, names[3..5].to_vec());
    let link = link.expect("Link when more names follow");
    assert_eq!(link_last(&link, 2), names[4]);

    // Exclusive: starting after P/a gives P/a-b first.
    let (list, _) = page(&server, &format!("?n=3&last={prefix}/a")).await;
    assert_eq!(list, names[2..5].to_vec());

    // The encoded form of `/` in `last` is the same cursor.
    let (list, _) = page(&server, &format!("?n=1&last={prefix}%2Fa")).await;
    assert_eq!(list, names[2..3].to_vec());

    if !external_registry() {
        let (list, link) = page(&server, &format!("?last={prefix}/b")).await;
        assert_eq!(list, names[4..].to_vec());
        assert_eq!(link, None);
        for last in [names[5].clone(), "zzz".to_string()] {
            let (list, link) = page(&server, &format!("?n=2&last={last}")).await;
            assert!(list.is_empty(), "last={last}: {list:?}");
            assert_eq!(link, None, "last={last}: Link after the end");
        }
    }
}

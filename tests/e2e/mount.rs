//! end-11: cross-repository mount, `POST /v2/<name>/blobs/uploads/?mount=<digest>
//! [&from=<repo>]`. With `from` holding the blob: 201, a Location that serves it,
//! and no copy of the bytes. With `from` lacking it: 202 and an ordinary upload
//! session. Without `from`: 201 when the blob is anywhere in the registry, else 202.
//! (uploads.rs checks the basic 201/202 pair; this module the rest.)

use reqwest::header::{CONTENT_LENGTH, LOCATION};
use reqwest::{Response, StatusCode};

use crate::common::{assert_api_version, header, random_bytes, sha256_digest, with_query, RegistryServer};

async fn mount(server: &RegistryServer, to: &str, digest: &str, from: Option<&str>) -> Response {
    let mut path = format!("/v2/{to}/blobs/uploads/?mount={digest}");
    if let Some(from) = from {
        path.push_str(&format!("&from={from}"));
    }
    server.client().post(server.url(&path)).header(CONTENT_LENGTH, "0").send().await.unwrap()
}

/// Asserts a 201 mount of `digest`: the Location serves `data`, and so does the
/// blob URL of `repo`.
async fn assert_mounted(server: &RegistryServer, resp: Response, repo: &str, digest: &str, data: &[u8]) {
    assert_eq!(resp.status(), StatusCode::CREATED, "mount of {digest} into {repo}");
    assert_api_version(resp.headers());
    assert_eq!(header(&resp, "Docker-Content-Digest"), digest);
    let location = server.resolve(header(&resp, LOCATION.as_str()));
    for url in [location, server.url(&format!("/v2/{repo}/blobs/{digest}"))] {
        let got = server.client().get(&url).send().await.unwrap();
        assert_eq!(got.status(), StatusCode::OK, "GET {url}");
        assert!(got.bytes().await.unwrap()[..] == data[..], "GET {url}");
    }
}

/// Asserts a 202 answer to a mount that could not be done: an upload session whose
/// Location accepts the blob (201) and then serves it from `repo`.
async fn assert_session_works(server: &RegistryServer, resp: Response, repo: &str, data: &[u8]) {
    assert_eq!(resp.status(), StatusCode::ACCEPTED, "mount that falls back to an upload");
    assert_api_version(resp.headers());
    let location = server.resolve(header(&resp, LOCATION.as_str()));
    let digest = sha256_digest(data);
    let blob = server.url(&format!("/v2/{repo}/blobs/{digest}"));
    let before = server.client().head(&blob).send().await.unwrap();
    assert_eq!(before.status(), StatusCode::NOT_FOUND, "nothing mounted into {repo}");

    let resp = server
        .client()
        .put(with_query(&location, "digest", &digest))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "PUT to the fallback session");
    let got = server.client().get(&blob).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert!(got.bytes().await.unwrap()[..] == data[..]);
}

/// Mounting from a repository that links the blob is 201 with a Location, writes no
/// second copy of the bytes, and gives the target its own link: the blob stays in
/// the target after the source unlinks it.
#[tokio::test]
async fn mount_with_from_links_without_copying() {
    const SIZE: usize = 1024 * 1024;
    let server = RegistryServer::start();
    let data = random_bytes(SIZE);
    let digest = server.push_blob("e2e/mount/source", &data).await;

    let before = server.stored().map(|stored| stored.total_bytes());
    let resp = mount(&server, "e2e/mount/target", &digest, Some("e2e/mount/source")).await;
    assert_mounted(&server, resp, "e2e/mount/target", &digest, &data).await;
    if let (Some(before), Some(stored)) = (before, server.stored()) {
        let grown = stored.total_bytes().saturating_sub(before);
        assert!(grown < (SIZE / 4) as u64, "the store grew by {grown} bytes on a mount of a {SIZE}-byte blob");
    }

    let resp =
        server.client().delete(server.url(&format!("/v2/e2e/mount/source/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let got = server.client().get(server.url(&format!("/v2/e2e/mount/target/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK, "the target's own link");
    assert!(got.bytes().await.unwrap()[..] == data[..]);
}

/// A `from` that lacks the blob gives 202 and a working upload session, even when
/// the blob is stored for another repository (a mount never reaches past `from`),
/// and when `from` does not exist at all.
#[tokio::test]
async fn mount_from_a_repository_without_the_blob_is_an_upload() {
    let server = RegistryServer::start();
    let data = random_bytes(4096);
    let digest = server.push_blob("e2e/mount/holder", &data).await;
    server.push_blob("e2e/mount/empty-handed", &random_bytes(10)).await;

    let resp = mount(&server, "e2e/mount/one", &digest, Some("e2e/mount/empty-handed")).await;
    assert_session_works(&server, resp, "e2e/mount/one", &data).await;

    let resp = mount(&server, "e2e/mount/two", &digest, Some("e2e/mount/no-such-repo")).await;
    assert_session_works(&server, resp, "e2e/mount/two", &data).await;
}

/// Without `from`, a blob stored anywhere in the registry is mounted (201); one that
/// is stored nowhere, or no longer, gives 202 and an upload session.
#[tokio::test]
async fn mount_without_from() {
    let server = RegistryServer::start_with_args(&["--gc-endpoint", "--gc-grace", "0"]);
    let data = random_bytes(6000);
    let digest = server.push_blob("e2e/mount/somewhere", &data).await;
    let resp = mount(&server, "e2e/mount/anywhere", &digest, None).await;
    assert_mounted(&server, resp, "e2e/mount/anywhere", &digest, &data).await;

    let absent = random_bytes(3000);
    let resp = mount(&server, "e2e/mount/nowhere", &sha256_digest(&absent), None).await;
    assert_session_works(&server, resp, "e2e/mount/nowhere", &absent).await;

    // Unlinked from every repository and collected, the bytes are gone:
    // nothing to mount. (A registry elsewhere cannot be told to collect,
    // nor can the signed-in run's user, who is no admin.)
    if crate::common::external_registry() || std::env::var_os("REGISTRY_TEST_AUTH").is_some() {
        return;
    }
    let gone = random_bytes(2000);
    let gone_digest = server.push_blob("e2e/mount/transient", &gone).await;
    let resp = server
        .client()
        .delete(server.url(&format!("/v2/e2e/mount/transient/blobs/{gone_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    // Blobs touched in the second a collection starts are kept.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    crate::gc::collect(&server, "").await;
    let resp = mount(&server, "e2e/mount/late", &gone_digest, None).await;
    assert_session_works(&server, resp, "e2e/mount/late", &gone).await;
}

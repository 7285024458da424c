//! A data directory that runs out of space, in every deployment: pushes get a
//! 5xx that says so (507 with an OCI error body), the failed upload leaves no
//! bytes behind, what was pushed before pulls back whole, reads and deletes go on,
//! and once space is freed the same push succeeds with no restart.
//!
//! The data directory is on a small tmpfs of the test's own, so the test must run
//! as root; scripts/test.sh leaves this module out by name (`--skip full_disk::`)
//! otherwise, so that it is counted as skipped, never as passed.

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use storage_contract::SmallFs;

use crate::common::{bytes_under, random_bytes, sha256_digest, with_query, Deployment, RegistryServer};

const REPO: &str = "full/app";
/// Free space left on the filesystem once it is filled: more than the small
/// writes need, much less than the big blob.
const ROOM: u64 = 2 << 20;

/// Asserts a 507 whose OCI error names the cause.
async fn assert_out_of_space(resp: reqwest::Response, what: &str) {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{what}: {body}");
    let json: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
    let error = &json["errors"][0];
    assert_eq!(error["code"], "UNKNOWN", "{what}: {body}");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("insufficient storage")), "{what}: {body}");
}

#[tokio::test]
async fn a_full_disk_gets_507_keeps_nothing_half_written_and_recovers_without_a_restart() {
    // registry-host's journal takes 32 MiB up front.
    let fs = SmallFs::mount(64);
    let data_dir = fs.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let server = RegistryServer::start_on(&data_dir);
    let client = server.client();

    let manifest_digest = server.push_image(REPO, &["before"]).await;
    let manifest = client.get(server.url(&format!("/v2/{REPO}/manifests/before"))).send().await.unwrap();
    assert_eq!(manifest.status(), StatusCode::OK);
    let manifest = manifest.bytes().await.unwrap();
    let kept = random_bytes(256 * 1024);
    let kept_digest = server.push_blob(REPO, &kept).await;

    fs.fill_but(ROOM);
    let uploads_before = bytes_under(&data_dir.join("uploads"));

    // A monolithic push that does not fit.
    let big = random_bytes(8 << 20);
    let big_digest = sha256_digest(&big);
    let push_monolithic = || async {
        client
            .post(server.url(&format!("/v2/{REPO}/blobs/uploads/?digest={big_digest}")))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(big.clone())
            .send()
            .await
            .expect("POST the blob")
    };
    assert_out_of_space(push_monolithic().await, "monolithic push into a full disk").await;

    // A chunk that does not fit ends its session.
    let location = server.start_upload(REPO).await;
    let patch = client
        .patch(&location)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, big.len().to_string())
        .body(big.clone())
        .send()
        .await
        .expect("PATCH the chunk");
    assert_out_of_space(patch, "chunk into a full disk").await;
    let status = client.get(&location).send().await.unwrap();
    assert_eq!(status.status(), StatusCode::NOT_FOUND, "the failed session is gone");

    // Nothing half-written stays behind.
    assert!(
        bytes_under(&data_dir.join("uploads")) <= uploads_before,
        "the failed uploads' bytes were released at once"
    );

    // What was pushed before pulls back whole; reads and deletes go on.
    let pulled = client.get(server.url(&format!("/v2/{REPO}/manifests/before"))).send().await.unwrap();
    assert_eq!(pulled.status(), StatusCode::OK);
    assert_eq!(pulled.bytes().await.unwrap(), manifest);
    let pulled = server.get_blob(REPO, &kept_digest).await;
    assert_eq!(pulled.status(), StatusCode::OK);
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), kept.as_slice());
    let deleted = client.delete(server.url(&format!("/v2/{REPO}/manifests/{manifest_digest}"))).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::ACCEPTED, "a delete on a full disk");

    // Space back: the same push succeeds, with no restart.
    fs.free();
    let resp = push_monolithic().await;
    assert_eq!(resp.status(), StatusCode::CREATED, "the push once space is back");
    assert_eq!(resp.headers()[LOCATION].to_str().unwrap(), format!("/v2/{REPO}/blobs/{big_digest}"));
    let pulled = server.get_blob(REPO, &big_digest).await;
    assert_eq!(pulled.status(), StatusCode::OK);
    assert_eq!(sha256_digest(&pulled.bytes().await.unwrap()), big_digest);
    let location = server.start_upload(REPO).await;
    let put = client
        .put(with_query(&location, "digest", &big_digest))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED, "a chunked push once space is back");

    if Deployment::current() == Deployment::Host {
        let logged = server.wait_for_line(|line| line.contains("out of space"), std::time::Duration::from_secs(5));
        let logged = logged.expect("registry-host logs the full disk");
        assert!(logged.contains("MiB free of"), "the log names the free space: {logged}");
    }
}

//! The Cloudflare Worker's blobs in R2 (`REGISTRY_TEST_DEPLOYMENT=wrangler`:
//! `wrangler dev` with the R2 binding `REGISTRY_BLOBS`, which miniflare keeps in
//! the data directory): a pushed blob's bytes are one object of the bucket, even
//! when pushed twice, that leaves the bucket when the blob is collected, and a
//! restarted server serves it again, whole and by range.
//!
//! The other deployments have no R2 bucket: there each test fails if it is run
//! at all, and scripts/test.sh leaves the module out (`--skip r2::`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{random_bytes, Deployment, RegistryServer, StoredData};
use crate::gc::collect;

/// Where miniflare keeps the objects of the bucket of edge/cloudflare/wrangler.jsonc
/// under its persistence directory (`wrangler dev --persist-to`, the data
/// directory): one file per object, holding its bytes.
const BUCKET_FILES: &str = "v3/r2/wasm-registry-blobs/blobs";

/// A blob of several SQLite rows (1 MiB each) and a part of one.
const BLOB_LEN: usize = (3 << 20) + 12_345;

fn require_wrangler() {
    let deployment = Deployment::current();
    assert!(
        deployment == Deployment::Wrangler,
        "this test is about the Worker's R2 bucket and cannot run under REGISTRY_TEST_DEPLOYMENT={}: \
         leave it out with `--skip r2::` (scripts/test.sh does)",
        deployment.name()
    );
}

fn database_dir(server: &RegistryServer) -> PathBuf {
    match server.stored() {
        Some(StoredData::Database(dir)) => dir.clone(),
        other => panic!("wrangler keeps its data in a directory, not {other:?}"),
    }
}

/// How many objects of the bucket hold exactly `bytes`.
fn objects_holding(data_dir: &Path, bytes: &[u8]) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir.join(BUCKET_FILES)) else { return 0 };
    entries.flatten().filter(|entry| std::fs::read(entry.path()).is_ok_and(|held| held == bytes)).count()
}

async fn get_blob(server: &RegistryServer, repo: &str, digest: &str, range: Option<&str>) -> (StatusCode, Vec<u8>) {
    let mut request = server.client().get(server.url(&format!("/v2/{repo}/blobs/{digest}")));
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    let resp = request.send().await.unwrap();
    (resp.status(), resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_blob_is_one_object_of_the_bucket_until_it_is_collected() {
    require_wrangler();
    let server = RegistryServer::start_with_args(&["--gc-endpoint", "--gc-grace", "0"]);
    let dir = database_dir(&server);
    let data = random_bytes(BLOB_LEN);
    let digest = server.push_blob("r2/one", &data).await;
    assert_eq!(objects_holding(&dir, &data), 1, "the blob's bytes are one object of the bucket");
    assert_eq!(server.push_blob("r2/two", &data).await, digest);
    assert_eq!(objects_holding(&dir, &data), 1, "the same bytes pushed again are still one object");
    assert_eq!(get_blob(&server, "r2/two", &digest, None).await, (StatusCode::OK, data.clone()));

    for repo in ["r2/one", "r2/two"] {
        let resp = server.client().delete(server.url(&format!("/v2/{repo}/blobs/{digest}"))).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "DELETE the blob of {repo}");
    }
    // Blobs touched in the second a run starts are kept: start a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let run = collect(&server, "").await;
    assert_eq!(run["counts"]["blobsRemoved"], 1, "{run}");
    // The object is deleted after the step that removed the blob has answered.
    for _ in 0..100 {
        if objects_holding(&dir, &data) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(objects_holding(&dir, &data), 0, "the collected blob's object left the bucket");
    assert_eq!(get_blob(&server, "r2/one", &digest, None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_restarted_server_serves_the_blobs_of_the_bucket() {
    require_wrangler();
    let data_dir = tempfile::Builder::new().prefix("registry-e2e-r2.").tempdir().unwrap();
    let data = random_bytes(BLOB_LEN);
    let digest = {
        let server = RegistryServer::start_on(data_dir.path());
        server.push_blob("r2/restart", &data).await
    };
    let server = RegistryServer::start_on(data_dir.path());
    assert_eq!(objects_holding(data_dir.path(), &data), 1);
    assert_eq!(get_blob(&server, "r2/restart", &digest, None).await, (StatusCode::OK, data.clone()));
    let (from, to) = ((1 << 20) - 7, (2 << 20) + 7);
    let (status, part) = get_blob(&server, "r2/restart", &digest, Some(&format!("bytes={from}-{to}"))).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert!(part == data[from..=to], "the range read other bytes");
}

//! Garbage collection through `/_registry/gc`, in every deployment: deleted
//! images give back exactly their own bytes (measured on the data
//! directory), what is still referenced pulls back whole, a dry run removes
//! nothing; and, for registry-host, the `gc` subcommand on a stopped
//! server's data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{external_registry, media, random_bytes, Descriptor, Deployment, TestImage, RegistryServer};

/// Flags for a registry whose collections keep nothing for a grace period.
const FLAGS: &[&str] = &["--gc-endpoint", "--gc-grace", "0"];

/// Where the store keeps the blob `digest` (every backend shares the layout).
fn blob_file(data_dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    data_dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Bytes in the files under `dir`, recursively.
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// Waits until every digest has its file (registry-host names small blobs
/// shortly after their commit).
async fn wait_for_files(data_dir: &Path, digests: &[&str]) {
    for _ in 0..100 {
        if digests.iter().all(|d| blob_file(data_dir, d).exists()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("blob files did not appear: {digests:?}");
}

/// POSTs steps until the run is done; the run.
async fn collect(server: &RegistryServer, query: &str) -> serde_json::Value {
    for _ in 0..1000 {
        let resp = server.client().post(server.url(&format!("/_registry/gc{query}"))).send().await.unwrap();
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["busy"] == true {
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else if body["done"] == true {
            return body["run"].clone();
        }
    }
    panic!("the collection did not finish");
}

/// Pushes an image of a shared layer and a layer and config of its own;
/// the manifest's digest and the image.
async fn push(server: &RegistryServer, repo: &str, tag: &str, shared: &Descriptor, own: usize) -> (String, TestImage) {
    let config = random_bytes(200);
    let layer = random_bytes(own);
    server.push_blob(repo, &config).await;
    server.push_blob(repo, &layer).await;
    let image = TestImage {
        config: Descriptor::of("application/vnd.oci.image.config.v1+json", &config),
        layers: vec![shared.clone(), Descriptor::of("application/vnd.oci.image.layer.v1.tar", &layer)],
        docker: false,
    };
    let digest = server.push_manifest(repo, tag, media::OCI_MANIFEST, &image.manifest()).await;
    (digest, image)
}

#[tokio::test]
async fn deleted_images_give_back_exactly_their_own_bytes() {
    if external_registry() {
        return;
    }
    let server = RegistryServer::start_with_args(FLAGS);
    let data_dir = server.data_dir().expect("a local data directory").to_path_buf();
    let repo = "gc/app";
    let shared_bytes = random_bytes(300_000);
    server.push_blob(repo, &shared_bytes).await;
    let shared = Descriptor::of("application/vnd.oci.image.layer.v1.tar", &shared_bytes);
    let mut images = Vec::new();
    for i in 0..4 {
        images.push(push(&server, repo, &format!("v{i}"), &shared, 100_000 + i * 1000).await);
    }
    let mut all: Vec<&str> = vec![shared.digest.as_str()];
    for (digest, image) in &images {
        all.extend([digest.as_str(), image.config.digest.as_str(), image.layers[1].digest.as_str()]);
    }
    wait_for_files(&data_dir, &all).await;

    // Delete two images by digest: their own bytes are what must go.
    let mut unique = 0;
    for (digest, image) in &images[..2] {
        let resp = server.client().delete(server.url(&format!("/v2/{repo}/manifests/{digest}"))).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        unique += image.manifest().len() as u64 + image.config.size + image.layers[1].size;
    }
    let before = bytes_under(&data_dir.join("blobs"));
    // Blobs touched in the second a run starts are kept: start a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let dry = collect(&server, "?dry-run=true").await;
    assert_eq!(dry["counts"]["bytesRemoved"], unique, "{dry}");
    assert_eq!(bytes_under(&data_dir.join("blobs")), before, "a dry run removes nothing");

    let run = collect(&server, "").await;
    assert_eq!(run["counts"]["blobsRemoved"], 6, "{run}");
    assert_eq!(run["counts"]["bytesRemoved"], unique, "{run}");
    assert_eq!(before - bytes_under(&data_dir.join("blobs")), unique, "the data directory shrank by exactly that");
    for (digest, image) in &images[..2] {
        for gone in [digest, &image.config.digest, &image.layers[1].digest] {
            assert!(!blob_file(&data_dir, gone).exists(), "{gone}");
        }
        let resp = server.client().get(server.url(&format!("/v2/{repo}/blobs/{}", image.layers[1].digest))).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    for (i, (digest, image)) in images.iter().enumerate().skip(2) {
        let manifest = server.client().get(server.url(&format!("/v2/{repo}/manifests/v{i}"))).header("Accept", media::OCI_MANIFEST).send().await.unwrap();
        assert_eq!(manifest.status(), StatusCode::OK);
        assert_eq!(manifest.bytes().await.unwrap(), image.manifest(), "{digest}");
        for layer in &image.layers {
            let blob = server.client().get(server.url(&format!("/v2/{repo}/blobs/{}", layer.digest))).send().await.unwrap();
            assert_eq!(blob.status(), StatusCode::OK);
            assert_eq!(blob.bytes().await.unwrap().len() as u64, layer.size);
        }
    }
    let status: serde_json::Value =
        server.client().get(server.url("/_registry/gc")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["run"]["phase"], "done");
}

#[tokio::test]
async fn the_endpoint_is_off_by_default_without_access_control() {
    if external_registry() || std::env::var_os("REGISTRY_TEST_AUTH").is_some() {
        return;
    }
    let server = RegistryServer::start();
    let resp = server.client().post(server.url("/_registry/gc")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// registry-host only: `registry-host gc` collects a stopped server's data
/// directory, and refuses while a server holds it.
#[tokio::test]
async fn the_host_subcommand_collects_a_stopped_servers_directory() {
    if external_registry() || Deployment::current() != Deployment::Host {
        return;
    }
    let mut server = RegistryServer::start_with_args(&["--gc-interval", "0"]);
    let data_dir = server.data_dir().expect("a local data directory").to_path_buf();
    let orphan = random_bytes(50_000);
    let digest = server.push_blob("gc/cli", &orphan).await;
    wait_for_files(&data_dir, &[digest.as_str()]).await;
    let host = std::env::var("REGISTRY_HOST_BIN").expect("REGISTRY_HOST_BIN");
    let gc = |extra: &[&str]| {
        std::process::Command::new(&host)
            .args(["gc", "--data-dir"])
            .arg(&data_dir)
            .args(["--gc-grace", "0"])
            .args(extra)
            .output()
            .expect("run registry-host gc")
    };
    let busy = gc(&[]);
    assert!(!busy.status.success(), "refused while the server runs");
    assert!(String::from_utf8_lossy(&busy.stderr).contains("lock"), "{}", String::from_utf8_lossy(&busy.stderr));
    server.signal_and_wait("TERM", Duration::from_secs(30)).expect("the server stops");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let dry = gc(&["--dry-run"]);
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{out} {}", String::from_utf8_lossy(&dry.stderr));
    assert!(out.contains(&format!("would remove {digest}")), "{out}");
    assert!(blob_file(&data_dir, &digest).exists());

    let run = gc(&[]);
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{out} {}", String::from_utf8_lossy(&run.stderr));
    assert!(out.contains("removed 0 untagged manifests, 1 blobs (50000 bytes)"), "{out}");
    assert!(!blob_file(&data_dir, &digest).exists());
}

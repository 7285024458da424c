//! Garbage collection through `/_registry/gc`, in every deployment: deleted
//! images give back exactly their own bytes (as the run counts them and,
//! where the test can read the store, measured on the data directory or in
//! the bucket), what is still referenced pulls back whole, a dry run removes
//! nothing, and pushes and pulls never lose to collections running
//! meanwhile. `host::gc` has registry-host's own: the `gc` subcommand and a
//! run cut by SIGKILL.

use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{external_registry, media, random_bytes, Descriptor, RegistryServer, StoredData, TestImage};

/// Flags for a registry whose collections keep nothing for a grace period.
const FLAGS: &[&str] = &["--gc-endpoint", "--gc-grace", "0"];

/// Waits until every digest has its file (registry-host names small blobs
/// shortly after their commit).
pub(crate) async fn wait_for_files(stored: &StoredData, digests: &[&str]) {
    for _ in 0..100 {
        if digests.iter().all(|d| stored.has_blob(d)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("blob files did not appear: {digests:?}");
}

/// POSTs steps until the run is done; the run.
pub(crate) async fn collect(server: &RegistryServer, query: &str) -> serde_json::Value {
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
    // The store's bytes, where the test can read them by blob (not in the
    // database of workerd or Deno).
    let stored: Option<StoredData> = server.stored().filter(|stored| stored.has_layout()).cloned();
    let blob_bytes = || stored.as_ref().map(|stored| stored.bytes_under("blobs"));
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
    if let Some(stored) = &stored {
        wait_for_files(stored, &all).await;
    }

    // Delete two images by digest: their own bytes are what must go.
    let mut unique = 0;
    for (digest, image) in &images[..2] {
        let resp = server.client().delete(server.url(&format!("/v2/{repo}/manifests/{digest}"))).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        unique += image.manifest().len() as u64 + image.config.size + image.layers[1].size;
    }
    let before = blob_bytes();
    // Blobs touched in the second a run starts are kept: start a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let dry = collect(&server, "?dry-run=true").await;
    assert_eq!(dry["counts"]["bytesRemoved"], unique, "{dry}");
    assert_eq!(blob_bytes(), before, "a dry run removes nothing");

    let run = collect(&server, "").await;
    assert_eq!(run["counts"]["blobsRemoved"], 6, "{run}");
    assert_eq!(run["counts"]["bytesRemoved"], unique, "{run}");
    if let (Some(before), Some(after), Some(stored)) = (before, blob_bytes(), &stored) {
        assert_eq!(before - after, unique, "the store shrank by exactly that");
        for (digest, image) in &images[..2] {
            for gone in [digest, &image.config.digest, &image.layers[1].digest] {
                assert!(!stored.has_blob(gone), "{gone}");
            }
        }
    }
    for (_, image) in &images[..2] {
        let resp = server
            .client()
            .get(server.url(&format!("/v2/{repo}/blobs/{}", image.layers[1].digest)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    for (i, (digest, image)) in images.iter().enumerate().skip(2) {
        let manifest = server
            .client()
            .get(server.url(&format!("/v2/{repo}/manifests/v{i}")))
            .header("Accept", media::OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(manifest.status(), StatusCode::OK);
        assert_eq!(manifest.bytes().await.unwrap(), image.manifest(), "{digest}");
        for layer in &image.layers {
            let blob =
                server.client().get(server.url(&format!("/v2/{repo}/blobs/{}", layer.digest))).send().await.unwrap();
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

/// A client of one server that tasks can share.
#[derive(Clone)]
pub(crate) struct Remote {
    pub(crate) client: reqwest::Client,
    base: String,
}

impl Remote {
    pub(crate) fn of(server: &RegistryServer) -> Remote {
        Remote { client: server.client().clone(), base: server.base_url().to_string() }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A blob pushed in one request (POST `?digest=`), which commits it.
    pub(crate) async fn blob(&self, repo: &str, data: &[u8]) -> Descriptor {
        let digest = crate::common::sha256_digest(data);
        let resp = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "push {digest} to {repo}");
        Descriptor::of("application/vnd.oci.image.layer.v1.tar", data)
    }

    /// A mount of `digest` from `from`: whether it was mounted (201) or the
    /// registry opened an upload instead (202, as the spec allows).
    async fn mount(&self, repo: &str, digest: &str, from: &str) -> bool {
        let resp = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}")))
            .send()
            .await
            .unwrap();
        match resp.status() {
            StatusCode::CREATED => true,
            StatusCode::ACCEPTED => false,
            other => panic!("mount of {digest}: {other}"),
        }
    }

    pub(crate) async fn manifest(&self, repo: &str, reference: &str, body: &[u8]) -> String {
        let resp = self
            .client
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("Content-Type", media::OCI_MANIFEST)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::CREATED, "PUT {repo}:{reference}: {text}");
        crate::common::sha256_digest(body)
    }

    pub(crate) async fn delete_manifest(&self, repo: &str, digest: &str) {
        let resp = self.client.delete(self.url(&format!("/v2/{repo}/manifests/{digest}"))).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }

    /// GET of a manifest and each blob it names: `Ok` if all came back whole,
    /// `Err(status)` at the first that did not.
    pub(crate) async fn pull(&self, repo: &str, digest: &str, image: &TestImage) -> Result<(), String> {
        let resp = self
            .client
            .get(self.url(&format!("/v2/{repo}/manifests/{digest}")))
            .header("Accept", media::OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        if resp.status() != StatusCode::OK {
            return Err(format!("manifest {digest}: {}", resp.status()));
        }
        assert_eq!(resp.bytes().await.unwrap(), image.manifest(), "manifest {digest} comes back whole");
        for blob in std::iter::once(&image.config).chain(&image.layers) {
            let resp = self.client.get(self.url(&format!("/v2/{repo}/blobs/{}", blob.digest))).send().await.unwrap();
            if resp.status() != StatusCode::OK {
                return Err(format!("blob {} of {digest}: {}", blob.digest, resp.status()));
            }
            let bytes = resp.bytes().await.unwrap();
            assert_eq!(crate::common::sha256_digest(&bytes), blob.digest, "blob {} comes back whole", blob.digest);
        }
        Ok(())
    }

    /// Steps until the run is done.
    pub(crate) async fn collect(&self) -> serde_json::Value {
        loop {
            let resp = self.client.post(self.url("/_registry/gc")).send().await.unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert_eq!(status, StatusCode::OK, "a step: {text}");
            let body: serde_json::Value = serde_json::from_str(&text).unwrap();
            if body["busy"] == true {
                tokio::time::sleep(Duration::from_millis(200)).await;
            } else if body["done"] == true {
                return body["run"].clone();
            }
        }
    }
}

/// Pushers (shared and own layers, mounts, re-pushes of identical layers,
/// tag moves, deletes) and pullers while collections run back to back:
/// every push succeeds, every pull of a manifest not deleted comes back
/// whole, and afterwards so does every acknowledged manifest not deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_and_pulls_never_lose_to_collections_running_meanwhile() {
    if external_registry() {
        return;
    }
    // A grace longer than a push takes here, with room for the slowest
    // deployment (jco) on a loaded machine: a layer pushed longer than the
    // grace before its manifest may be collected meanwhile, by design (a
    // CI run on jco once took more than 2 s). Short enough that the runs
    // collect what the pushers delete while they go on.
    let server = RegistryServer::start_with_args(&["--gc-endpoint", "--gc-grace", "5"]);
    let remote = Remote::of(&server);
    let base: Vec<Vec<u8>> = (0..4).map(|i| random_bytes(2000 + i * 1000)).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);

    let collector = {
        let remote = remote.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut runs = 0;
            let mut removed = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let run = remote.collect().await;
                removed += run["counts"]["blobsRemoved"].as_u64().unwrap();
                runs += 1;
            }
            (runs, removed)
        })
    };
    let mut pushers = Vec::new();
    for p in 0..3 {
        let remote = remote.clone();
        let base = base.clone();
        pushers.push(tokio::spawn(async move {
            let repo = format!("stress/p{p}");
            let mut live: Vec<(String, TestImage)> = Vec::new();
            let mut deleted = Vec::new();
            let mut cycle = 0usize;
            while std::time::Instant::now() < deadline {
                cycle += 1;
                // A base layer: mounted from another pusher's repository
                // when it has it, else pushed again (identical bytes).
                let shared = &base[cycle % base.len()];
                let shared_digest = crate::common::sha256_digest(shared);
                let from = format!("stress/p{}", (p + 1) % 3);
                if !remote.mount(&repo, &shared_digest, &from).await {
                    remote.blob(&repo, shared).await;
                }
                let own = remote.blob(&repo, &random_bytes(500 + (cycle % 7) * 3000)).await;
                let config = remote.blob(&repo, format!("{{\"p\":{p},\"cycle\":{cycle}}}").as_bytes()).await;
                let image = TestImage {
                    config: Descriptor { media_type: media::OCI_CONFIG.into(), ..config },
                    layers: vec![Descriptor::of("application/vnd.oci.image.layer.v1.tar", shared), own],
                    docker: false,
                };
                // The tag moves to each new image.
                let digest = remote.manifest(&repo, "latest", &image.manifest()).await;
                live.push((digest, image));
                if cycle.is_multiple_of(3) {
                    let (digest, _) = live.remove(0);
                    remote.delete_manifest(&repo, &digest).await;
                    deleted.push(digest);
                }
                // Pull something not deleted: it must come back whole.
                let (digest, image) = &live[cycle % live.len()];
                remote.pull(&repo, digest, image).await.unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
            }
            (repo, live, deleted)
        }));
    }
    let mut results = Vec::new();
    for pusher in pushers {
        results.push(pusher.await.expect("a pusher"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (runs, removed) = collector.await.expect("the collector");
    assert!(runs >= 2, "{runs} collections ran");
    // Once the grace has passed, a last collection; then everything kept pulls.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let last = remote.collect().await;
    let removed = removed + last["counts"]["blobsRemoved"].as_u64().unwrap();
    assert!(removed > 0, "the deletes gave bytes back during the test");
    for (repo, live, deleted) in &results {
        for (digest, image) in live {
            remote.pull(repo, digest, image).await.unwrap_or_else(|e| panic!("after the runs: {e}"));
        }
        for digest in deleted {
            let resp = remote.client.get(remote.url(&format!("/v2/{repo}/manifests/{digest}"))).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        }
    }
}

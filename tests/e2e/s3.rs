//! Several `registry-host` processes on one S3 store (`REGISTRY_TEST_DEPLOYMENT=host-s3`
//! only): two servers on the same bucket and prefix of SeaweedFS serve one registry.
//! A chunked upload whose requests alternate between them, a manifest pushed on one
//! and pulled from the other, concurrent updates of one tag through both; and the
//! store stopped: 503 with an OCI error body within a bounded time, then recovery
//! without a restart once it is back.
//!
//! [`cluster`]: the same on a SeaweedFS cluster, one registry on each of its
//! gateways, while a volume server is killed under them.
//!
//! scripts/test.sh leaves this module out (`--skip s3::`) for the other deployments,
//! where each test fails if it is run at all.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use storage_contract::seaweedfs::SeaweedFs;

use crate::common::{
    assert_error, external_registry, header, media, random_bytes, sha256_digest, string_list, with_query, Deployment,
    Descriptor, RegistryServer, S3Place, TestImage,
};
use crate::gc::Remote;
use crate::skopeo::{build_layout, read_blobs, Skopeo};

mod cluster;

/// How long a request may take to fail while the store is down.
const UNAVAILABLE_WITHIN: Duration = Duration::from_secs(35);
/// How long the registry may take to serve again once the store is back.
const RECOVERED_WITHIN: Duration = Duration::from_secs(30);
/// The OCI error code of a 503 for a store that does not answer: the spec has no
/// code for it, and the registry keeps to the spec's codes (`UNKNOWN`, as for a full
/// disk), saying what happened in the message.
const UNAVAILABLE_CODE: &str = "UNKNOWN";

/// Fails the test unless this run is `host-s3`.
fn require_s3_deployment() {
    assert!(
        !external_registry() && Deployment::current() == Deployment::HostS3,
        "this test runs two registry-host processes on one S3 store: it needs \
         REGISTRY_TEST_DEPLOYMENT=host-s3 (elsewhere leave it out with `--skip s3::`, as scripts/test.sh does)"
    );
}

/// Two servers on one new prefix of the shared SeaweedFS.
fn two_servers() -> (RegistryServer, RegistryServer) {
    let place = S3Place::new_on(SeaweedFs::shared());
    (RegistryServer::start_on_s3(&place, &[]), RegistryServer::start_on_s3(&place, &[]))
}

/// `location` (absolute, or rooted at `/`) on `server` instead.
fn on(server: &RegistryServer, location: &str) -> String {
    let path = match location.split_once("://") {
        Some((_, rest)) => &rest[rest.find('/').unwrap_or(rest.len())..],
        None => location,
    };
    server.url(path)
}

/// `GET /v2/<repo>/blobs/<digest>` on `server`: the bytes, asserting 200.
async fn pull_blob(server: &RegistryServer, repo: &str, digest: &str) -> Vec<u8> {
    let resp = server.get_blob(repo, digest).await;
    assert_eq!(resp.status(), StatusCode::OK, "GET blob {digest} from {}", server.base_url());
    resp.bytes().await.unwrap().to_vec()
}

/// A chunked upload whose requests alternate between two servers: POST on the
/// first, PATCHes on each in turn (chunks smaller and larger than S3's 5 MiB
/// minimum part), the closing PUT with a last chunk on the second; the blob then
/// pulls back identical from both.
#[tokio::test]
async fn a_chunked_upload_alternates_between_two_instances() {
    require_s3_deployment();
    let (a, b) = two_servers();
    let servers = [&a, &b];
    let repo = "s3/chunks";
    // Four PATCHes (b, a, b, a), so that the PUT goes to b.
    let sizes = [3 << 20, 6 << 20, 100_000, (5 << 20) + 1];
    let whole = random_bytes(sizes.iter().sum::<usize>() + (1 << 20) + 77_777);
    let digest = sha256_digest(&whole);

    let mut location = a.start_upload(repo).await;
    let mut offset = 0;
    for (i, size) in sizes.iter().enumerate() {
        let server = servers[(i + 1) % 2];
        let chunk = &whole[offset..offset + size];
        let resp = server
            .client()
            .patch(on(server, &location))
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("Content-Range", format!("{}-{}", offset, offset + size - 1))
            .header(CONTENT_LENGTH, size.to_string())
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        offset += size;
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "PATCH {i} on {}", server.base_url());
        assert_eq!(header(&resp, "Range"), format!("0-{}", offset - 1), "Range after PATCH {i}");
        location = header(&resp, LOCATION.as_str()).to_string();
    }
    let resp = b
        .client()
        .put(with_query(&on(&b, &location), "digest", &digest))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(whole[offset..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "closing PUT: {}", resp.text().await.unwrap_or_default());

    for server in servers {
        let pulled = pull_blob(server, repo, &digest).await;
        assert_eq!(pulled.len(), whole.len(), "size from {}", server.base_url());
        assert!(pulled == whole, "the blob from {} differs", server.base_url());
    }
}

/// A manifest, its config and layers pushed on one instance pull back from the
/// other, by tag and by digest, and both list its tags.
#[tokio::test]
async fn a_manifest_pushed_on_one_instance_pulls_from_the_other() {
    require_s3_deployment();
    let (a, b) = two_servers();
    let repo = "s3/image";
    let image = a.push_image_blobs(repo, 3, false).await;
    let body = image.manifest();
    let digest = a.push_manifest(repo, "v1", media::OCI_MANIFEST, &body).await;
    a.push_manifest(repo, "v2", media::OCI_MANIFEST, &body).await;

    for reference in ["v1", "v2", digest.as_str()] {
        let resp = b.get_manifest(repo, reference).await;
        assert_eq!(resp.status(), StatusCode::OK, "GET {reference} from the other instance");
        assert_eq!(header(&resp, "Docker-Content-Digest"), digest);
        assert_eq!(resp.bytes().await.unwrap(), body, "manifest {reference}");
    }
    for blob in std::iter::once(&image.config).chain(&image.layers) {
        let pulled = pull_blob(&b, repo, &blob.digest).await;
        assert_eq!(sha256_digest(&pulled), blob.digest);
    }
    for server in [&a, &b] {
        let (_, tags) = server.get_json(&format!("/v2/{repo}/tags/list")).await;
        assert_eq!(string_list(&tags, "tags"), ["v1", "v2"], "tags on {}", server.base_url());
    }
}

/// Writers on many threads, half through each instance, each PUT a manifest of
/// its own under one tag: every PUT is acknowledged, the tag ends on one of them
/// (the same through both), every acknowledged manifest pulls back by digest,
/// and the tag list holds that one tag. A last PUT through one instance is what
/// the other serves at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tag_updates_through_both_instances() {
    const WRITERS: usize = 8;
    const ROUNDS: usize = 6;
    require_s3_deployment();
    let (a, b) = two_servers();
    let repo = "s3/tagged";
    let base = a.push_image_blobs(repo, 1, false).await;
    let remotes = [Remote::of(&a), Remote::of(&b)];

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let remote = remotes[w % 2].clone();
        let base = base.clone();
        writers.push(tokio::spawn(async move {
            let mut pushed = Vec::new();
            for round in 0..ROUNDS {
                let annotation = format!(r#", "annotations": {{"writer": "{w}", "round": "{round}"}}"#);
                let body = base.manifest_with_extra(&annotation);
                let digest = remote.manifest(repo, "latest", &body).await;
                pushed.push((digest, body));
            }
            pushed
        }));
    }
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    let digests: BTreeSet<&str> = acknowledged.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(digests.len(), WRITERS * ROUNDS);

    let mut resolved = Vec::new();
    for server in [&a, &b] {
        let (headers, _) = server.get_json(&format!("/v2/{repo}/manifests/latest")).await;
        let digest = headers["docker-content-digest"].to_str().unwrap().to_string();
        assert!(digests.contains(digest.as_str()), "latest on {} is {digest}, which nobody pushed", server.base_url());
        resolved.push(digest);
        let (_, tags) = server.get_json(&format!("/v2/{repo}/tags/list")).await;
        assert_eq!(string_list(&tags, "tags"), ["latest"], "tags on {}", server.base_url());
    }
    assert_eq!(resolved[0], resolved[1], "the instances disagree on latest");
    for (digest, body) in &acknowledged {
        for server in [&a, &b] {
            let resp = server.get_manifest(repo, digest).await;
            assert_eq!(resp.status(), StatusCode::OK, "acknowledged {digest} from {}", server.base_url());
            assert_eq!(&resp.bytes().await.unwrap()[..], &body[..], "{digest}");
        }
    }

    let last = base.manifest_with_extra(r#", "annotations": {"writer": "last"}"#);
    let last_digest = a.push_manifest(repo, "latest", media::OCI_MANIFEST, &last).await;
    let (headers, _) = b.get_json(&format!("/v2/{repo}/manifests/latest")).await;
    assert_eq!(
        headers["docker-content-digest"].to_str().unwrap(),
        last_digest,
        "the other instance reads the last write"
    );
}

/// Sends what `request` builds, again and again until the answer is not a 503,
/// for at most `within`; the last answer.
async fn first_answer_but_503(within: Duration, request: impl Fn() -> reqwest::RequestBuilder) -> Response {
    let deadline = Instant::now() + within;
    loop {
        let resp = request().send().await.expect("the registry answers");
        if resp.status() != StatusCode::SERVICE_UNAVAILABLE || Instant::now() >= deadline {
            return resp;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The store stopped: reads (a manifest, a blob) and pushes (a blob in one request,
/// a manifest) answer 503 with an OCI error body that says so within a bounded time,
/// never hang; once the store is started again (same ports, same data), the same
/// requests succeed from the same registry process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_store_is_503_unavailable_and_the_registry_recovers_when_it_is_back() {
    require_s3_deployment();
    let mut store = SeaweedFs::start();
    let place = S3Place::new_on(&store);
    let server = RegistryServer::start_on_s3(&place, &[]);
    let repo = "s3/outage";
    let image = server.push_image_blobs(repo, 1, false).await;
    let digest = server.push_manifest(repo, "v1", media::OCI_MANIFEST, &image.manifest()).await;
    let layer = image.layers[0].digest.clone();

    let new_blob = random_bytes(200_000);
    let new_digest = sha256_digest(&new_blob);
    let new_image = TestImage {
        config: image.config.clone(),
        layers: vec![Descriptor::of(media::OCI_LAYER, &new_blob)],
        docker: false,
    };
    let new_manifest = new_image.manifest();
    let client = server.client().clone();
    let get_manifest =
        || client.get(server.url(&format!("/v2/{repo}/manifests/v1"))).header("Accept", media::OCI_MANIFEST);
    let get_blob = || client.get(server.url(&format!("/v2/{repo}/blobs/{layer}")));
    let push_blob = || {
        client
            .post(server.url(&format!("/v2/{repo}/blobs/uploads/?digest={new_digest}")))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(new_blob.clone())
    };
    let push_manifest = || {
        client
            .put(server.url(&format!("/v2/{repo}/manifests/v2")))
            .header(CONTENT_TYPE, media::OCI_MANIFEST)
            .body(new_manifest.clone())
    };

    store.stop();
    let timed = |request: reqwest::RequestBuilder| async move {
        let started = Instant::now();
        let resp = tokio::time::timeout(UNAVAILABLE_WITHIN, request.send())
            .await
            .unwrap_or_else(|_| panic!("no answer within {UNAVAILABLE_WITHIN:?} while the store is down"))
            .expect("the registry answers");
        (resp, started.elapsed())
    };
    let answers = tokio::join!(timed(get_manifest()), timed(get_blob()), timed(push_blob()), timed(push_manifest()));
    let answers = [answers.0, answers.1, answers.2, answers.3];
    for ((resp, took), what) in answers.into_iter().zip(["GET manifest", "GET blob", "push blob", "PUT manifest"]) {
        eprintln!("{what} while the store is down: {} after {took:?}", resp.status());
        let body: Value = assert_error(resp, StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE_CODE).await;
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("unavailable"), "{what}: the message does not say the store is unavailable: {body}");
    }

    store.start_again();
    let started = Instant::now();
    let resp = first_answer_but_503(RECOVERED_WITHIN, get_manifest).await;
    eprintln!("first answer but 503 after the store is back: {} after {:?}", resp.status(), started.elapsed());
    assert_eq!(resp.status(), StatusCode::OK, "GET manifest once the store is back");
    assert_eq!(header(&resp, "Docker-Content-Digest"), digest);
    assert_eq!(resp.bytes().await.unwrap(), image.manifest());
    let resp = get_blob().send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "GET blob once the store is back");
    assert_eq!(sha256_digest(&resp.bytes().await.unwrap()), layer);
    let resp = push_blob().send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "push blob once the store is back");
    let resp = push_manifest().send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "PUT manifest once the store is back");
    let (_, tags) = server.get_json(&format!("/v2/{repo}/tags/list")).await;
    assert_eq!(string_list(&tags, "tags"), ["v1", "v2"]);
}

/// With `--s3-redirect`, a blob GET answers 307 to a presigned URL of the store
/// itself (with or without a `Range`, which the store then serves), HEAD still
/// answers from the registry, a blob the repository does not hold is 404 as
/// always, and skopeo pulls a multi-arch image through the redirects, every blob
/// byte for byte.
#[tokio::test]
async fn blob_gets_are_redirected_to_the_store_with_s3_redirect() {
    require_s3_deployment();
    let store = SeaweedFs::shared();
    let server = RegistryServer::start_on_s3(&S3Place::new_on(store), &["--s3-redirect"]);
    let repo = "s3/redirected";
    let data = random_bytes((3 << 20) + 12_345);
    let digest = server.push_blob(repo, &data).await;
    let path = server.url(&format!("/v2/{repo}/blobs/{digest}"));

    let direct = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = direct.get(&path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(header(&resp, "Docker-Content-Digest"), digest);
    let target = header(&resp, LOCATION.as_str()).to_string();
    assert!(target.starts_with(&store.endpoint()), "the redirect goes to the store, not to {target}");
    assert!(target.contains("X-Amz-Signature="), "the redirect is presigned: {target}");

    let fetched = direct.get(&target).send().await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert!(fetched.bytes().await.unwrap()[..] == data[..], "the store's answer differs from what was pushed");
    let resp = direct.get(&path).header("Range", "bytes=1000-1999").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    let ranged = direct.get(header(&resp, LOCATION.as_str())).header("Range", "bytes=1000-1999").send().await.unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert!(ranged.bytes().await.unwrap()[..] == data[1000..2000]);

    let resp = direct.head(&path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, CONTENT_LENGTH.as_str()), data.len().to_string());
    let resp = direct.get(server.url(&format!("/v2/s3/elsewhere/blobs/{digest}"))).send().await.unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;

    // A real client follows the redirects.
    let scratch = tempfile::Builder::new().prefix("registry-e2e-redirect.").tempdir().unwrap();
    let skopeo = Skopeo::new(scratch.path());
    let layout = build_layout(&scratch.path().join("layout"), "v1");
    let image = format!("docker://{}/{repo}:v1", server.host_port());
    let source = format!("oci:{}:v1", layout.dir.display());
    skopeo.run(&["copy", "--all", "--preserve-digests", "--dest-tls-verify=false", &source, &image]).await;
    let back = scratch.path().join("back");
    skopeo.run(&["copy", "--all", "--src-tls-verify=false", &image, &format!("oci:{}:v1", back.display())]).await;
    assert_eq!(read_blobs(&back), layout.blobs, "the image pulled through the redirects differs");
}

//! Two registries on a SeaweedFS cluster (`SeaweedCluster`: a master with
//! replication `001`, three volume servers, one filer, two S3 gateways), each
//! on its own gateway, same bucket and prefix. A pusher pushes images through
//! them in turn while a volume server is killed: every push acknowledged must
//! pull back whole from both, and every push that failed must have failed
//! cleanly (a 5xx with an OCI error body), never with a hang, a dropped
//! connection or any other answer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;
use storage_contract::seaweedfs::SeaweedCluster;

use super::{on, require_s3_deployment};
use crate::common::{media, random_bytes, sha256_digest, with_query, Descriptor, RegistryServer, S3Place, TestImage};

/// Pushes in all, alternating between the registries.
const ROUNDS: usize = 8;
/// The push during which the volume server is killed.
const KILL_ROUND: usize = 3;
/// How far into that push.
const KILL_AFTER: Duration = Duration::from_millis(300);
/// Which volume server.
const KILLED_VOLUME_SERVER: usize = 1;
/// The longest a request may take: above the registry's 30 s for the store's
/// answer, so that a store that hangs shows as the registry's 503, and a
/// registry that hangs fails the test.
const REQUEST_WITHIN: Duration = Duration::from_secs(40);
/// Layers of each image: small, over one 8 MiB part of a multipart upload (in
/// chunks, so that the part is sent by one request and completed by the next),
/// and under one part (only a tail object); all but the second in one request.
const LAYER_SIZES: [usize; 3] = [60_000, (9 << 20) + 4_321, (3 << 20) + 777];
/// The layer pushed as a chunked upload (POST, PATCH, PUT with the rest).
const CHUNKED_LAYER: usize = 1;

/// What became of one push.
struct Push {
    round: usize,
    /// Blobs the registry acknowledged (201): each must pull back.
    blobs: Vec<Descriptor>,
    /// Set when the manifest PUT was acknowledged: the tag and the manifest.
    manifest: Option<(String, Vec<u8>)>,
    /// The clean failure that ended it, if any.
    failure: Option<String>,
}

/// The outcome of one request of a push.
enum Step {
    Expected(Response),
    /// A 5xx with an OCI error body: what it said.
    CleanFailure(String),
}

/// Sends `request`; the answer if its status is `expected`, a clean failure if
/// it is a 5xx with an OCI error body; panics on anything else (another
/// status, a body that is not an OCI error, no answer, or none within
/// [`REQUEST_WITHIN`]).
async fn step(what: &str, request: RequestBuilder, expected: StatusCode) -> Step {
    let resp = tokio::time::timeout(REQUEST_WITHIN, request.send())
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {REQUEST_WITHIN:?}"))
        .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let status = resp.status();
    if status == expected {
        return Step::Expected(resp);
    }
    let body = resp.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    assert!(status.is_server_error(), "{what}: {status}, expected {expected} or a 5xx: {text}");
    let json: Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{what}: {status} without a JSON body ({e}): {text}"));
    let code = json["errors"][0]["code"].as_str();
    assert!(code.is_some_and(|c| !c.is_empty()), "{what}: {status} without an OCI error body: {text}");
    Step::CleanFailure(format!("{what}: {status} {text}"))
}

/// Pushes `data` as a blob of `repo` through `server`: in one request, or
/// (`chunked`) as POST, a PATCH of all but the last MiB, and a PUT with it.
async fn push_blob(server: &RegistryServer, repo: &str, data: &[u8], chunked: bool) -> Result<String, String> {
    let digest = sha256_digest(data);
    let client = server.client();
    let uploads = server.url(&format!("/v2/{repo}/blobs/uploads/"));
    if !chunked {
        let post = client
            .post(with_query(&uploads, "digest", &digest))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(data.to_vec());
        return match step(&format!("push {digest}"), post, StatusCode::CREATED).await {
            Step::Expected(_) => Ok(digest),
            Step::CleanFailure(why) => Err(why),
        };
    }
    let location =
        match step("POST upload", client.post(&uploads).header(CONTENT_LENGTH, "0"), StatusCode::ACCEPTED).await {
            Step::Expected(resp) => resp.headers()[LOCATION].to_str().unwrap().to_string(),
            Step::CleanFailure(why) => return Err(why),
        };
    let split = data.len() - (1 << 20);
    let patch = client
        .patch(on(server, &location))
        .header(CONTENT_TYPE, "application/octet-stream")
        .header("Content-Range", format!("0-{}", split - 1))
        .header(CONTENT_LENGTH, split.to_string())
        .body(data[..split].to_vec());
    let location = match step(&format!("PATCH {digest}"), patch, StatusCode::ACCEPTED).await {
        Step::Expected(resp) => resp.headers()[LOCATION].to_str().unwrap().to_string(),
        Step::CleanFailure(why) => return Err(why),
    };
    let put = client
        .put(with_query(&on(server, &location), "digest", &digest))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(data[split..].to_vec());
    match step(&format!("closing PUT {digest}"), put, StatusCode::CREATED).await {
        Step::Expected(_) => Ok(digest),
        Step::CleanFailure(why) => Err(why),
    }
}

/// One image (a config, [`LAYER_SIZES`] layers, a manifest tagged `r<round>`)
/// pushed through `server`, up to its first clean failure.
async fn push_image(server: &RegistryServer, repo: &str, round: usize) -> Push {
    let mut push = Push { round, blobs: Vec::new(), manifest: None, failure: None };
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"round":{round}}}"#
    );
    let mut contents = vec![(media::OCI_CONFIG, config.into_bytes(), false)];
    for (i, size) in LAYER_SIZES.into_iter().enumerate() {
        contents.push((media::OCI_LAYER, random_bytes(size), i == CHUNKED_LAYER));
    }
    for (media_type, data, chunked) in &contents {
        match push_blob(server, repo, data, *chunked).await {
            Ok(_) => push.blobs.push(Descriptor::of(media_type, data)),
            Err(why) => {
                push.failure = Some(why);
                return push;
            }
        }
    }
    let image = TestImage { config: push.blobs[0].clone(), layers: push.blobs[1..].to_vec(), docker: false };
    let body = image.manifest();
    let tag = format!("r{round}");
    let put = server
        .client()
        .put(server.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header(CONTENT_TYPE, media::OCI_MANIFEST)
        .body(body.clone());
    match step(&format!("PUT manifest {tag}"), put, StatusCode::CREATED).await {
        Step::Expected(resp) => {
            let digest = resp.headers()["Docker-Content-Digest"].to_str().unwrap();
            assert_eq!(digest, sha256_digest(&body), "the digest of manifest {tag}");
            push.manifest = Some((tag, body));
        }
        Step::CleanFailure(why) => push.failure = Some(why),
    }
    push
}

/// `GET path` on `server`: the body if it is 200, else what went wrong.
async fn pull(server: &RegistryServer, path: &str, accept: &str) -> Result<Vec<u8>, String> {
    let request = server.client().get(server.url(path)).header("Accept", accept);
    let resp = tokio::time::timeout(REQUEST_WITHIN, request.send())
        .await
        .map_err(|_| format!("GET {path}: no answer within {REQUEST_WITHIN:?}"))?
        .map_err(|e| format!("GET {path}: {e}"))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("GET {path}: the body: {e}"))?;
    match status {
        StatusCode::OK => Ok(body.to_vec()),
        _ => Err(format!("GET {path}: {status} {}", String::from_utf8_lossy(&body))),
    }
}

/// What of `push` does not pull back whole from `server`: one line each.
async fn missing(server: &RegistryServer, repo: &str, push: &Push) -> Vec<String> {
    let mut missing = Vec::new();
    let mut check = |what: String, got: Result<Vec<u8>, String>, want: &str| match got {
        Ok(bytes) if sha256_digest(&bytes) == want => {}
        Ok(bytes) => missing.push(format!("{what}: {} bytes of digest {}", bytes.len(), sha256_digest(&bytes))),
        Err(why) => missing.push(why),
    };
    for blob in &push.blobs {
        let got = pull(server, &format!("/v2/{repo}/blobs/{}", blob.digest), "*/*").await;
        check(format!("blob {}", blob.digest), got, &blob.digest);
    }
    if let Some((tag, body)) = &push.manifest {
        let digest = sha256_digest(body);
        for reference in [tag.as_str(), digest.as_str()] {
            let got = pull(server, &format!("/v2/{repo}/manifests/{reference}"), media::OCI_MANIFEST).await;
            check(format!("manifest {reference}"), got, &digest);
        }
    }
    missing
}

/// A volume server killed during pushes through two registries on two
/// gateways: every acknowledged push pulls back whole from both; every
/// failed one failed cleanly; the cluster takes pushes again after the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_push_survives_a_volume_server_killed_during_pushes() {
    require_s3_deployment();
    let started = Instant::now();
    let cluster = Arc::new(Mutex::new(SeaweedCluster::start()));
    eprintln!("the cluster is ready after {:?}", started.elapsed());
    let places = S3Place::new_on_cluster(&cluster.lock().unwrap());
    let servers: Vec<RegistryServer> = places.iter().map(|place| RegistryServer::start_on_s3(place, &[])).collect();
    let repo = "s3/cluster";

    let mut pushes = Vec::new();
    let mut kill = None;
    for round in 0..ROUNDS {
        let server = &servers[round % servers.len()];
        if round == KILL_ROUND {
            let cluster = cluster.clone();
            kill = Some(tokio::task::spawn_blocking(move || {
                std::thread::sleep(KILL_AFTER);
                cluster.lock().unwrap().kill_volume_server(KILLED_VOLUME_SERVER);
                eprintln!("volume server {KILLED_VOLUME_SERVER} killed");
            }));
        }
        let push_started = Instant::now();
        let push = push_image(server, repo, round).await;
        eprintln!(
            "push {round} through {}: {} after {:?}",
            server.base_url(),
            push.failure.as_deref().unwrap_or("acknowledged"),
            push_started.elapsed()
        );
        pushes.push(push);
        if let Some(kill) = kill.take_if(|k| k.is_finished()) {
            kill.await.unwrap();
        }
    }
    if let Some(kill) = kill {
        kill.await.unwrap();
    }

    let mut lost = Vec::new();
    for push in &pushes {
        for server in &servers {
            for what in missing(server, repo, push).await {
                lost.push(format!("push {} from {}: {what}", push.round, server.base_url()));
            }
        }
    }
    let cluster = cluster.lock().unwrap();
    assert!(lost.is_empty(), "acknowledged but not pulled back whole:\n{}\n{}", lost.join("\n"), cluster.logs());
    assert!(
        pushes[..KILL_ROUND].iter().all(|p| p.manifest.is_some()),
        "a push before the kill failed:\n{}",
        cluster.logs()
    );
    assert!(
        pushes[KILL_ROUND + 1..].iter().any(|p| p.manifest.is_some()),
        "no push was acknowledged after the kill:\n{}",
        cluster.logs()
    );
    eprintln!(
        "{} of {ROUNDS} pushes acknowledged, all pulled back from both registries; {:?} in all",
        pushes.iter().filter(|p| p.manifest.is_some()).count(),
        started.elapsed()
    );
}

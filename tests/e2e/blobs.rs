//! end-2: `GET`/`HEAD /v2/<name>/blobs/<digest>`. Exact bytes and headers, per-
//! repository visibility (BLOB_UNKNOWN), digest validation (DIGEST_INVALID) and a
//! big blob streamed both ways.

use futures_util::StreamExt;
use reqwest::header::LOCATION;
use reqwest::{Body, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::common::{
    absent_digest, assert_api_version, assert_error, content_length, header, random_bytes, seeded_digest,
    seeded_stream, with_query, RegistryServer, XorShift,
};

/// end-2: a pushed blob comes back byte for byte, with Content-Length and
/// Docker-Content-Digest; HEAD gives the same headers and no body.
#[tokio::test]
async fn get_and_head_return_the_blob() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let data = random_bytes(100_003);
    let digest = server.push_blob(repo, &data).await;

    let url = server.url(&format!("/v2/{repo}/blobs/{digest}"));
    let resp = server.client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_api_version(resp.headers());
    assert_eq!(content_length(resp.headers()), data.len() as u64);
    assert_eq!(header(&resp, "Docker-Content-Digest"), digest);
    let body = resp.bytes().await.unwrap();
    assert!(body[..] == data[..], "GET returned other bytes than were pushed");

    let resp = server.client().head(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_api_version(resp.headers());
    assert_eq!(content_length(resp.headers()), data.len() as u64);
    assert_eq!(header(&resp, "Docker-Content-Digest"), digest);
    assert!(resp.bytes().await.unwrap().is_empty(), "HEAD has no body");
}

/// An empty blob is a blob like any other.
#[tokio::test]
async fn empty_blob_round_trip() {
    let server = RegistryServer::start();
    let repo = "a/b/c";
    let digest = server.push_blob(repo, b"").await;
    assert_eq!(digest, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    let resp = server.client().get(server.url(&format!("/v2/{repo}/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(content_length(resp.headers()), 0);
    assert!(resp.bytes().await.unwrap().is_empty());
}

/// end-2: a blob nobody pushed is 404 BLOB_UNKNOWN (HEAD: 404, no body).
#[tokio::test]
async fn missing_blob_is_blob_unknown() {
    let server = RegistryServer::start();
    let url = server.url(&format!("/v2/library/busybox/blobs/{}", absent_digest()));
    let resp = server.client().get(&url).send().await.unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;

    let resp = server.client().head(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_api_version(resp.headers());
}

/// Blobs are stored once but linked per repository: a blob pushed to `a/b/c` is
/// BLOB_UNKNOWN in `library/busybox` until it is pushed there too.
#[tokio::test]
async fn blob_of_another_repository_is_blob_unknown() {
    let server = RegistryServer::start();
    let data = random_bytes(4321);
    let digest = server.push_blob("a/b/c", &data).await;

    let other = server.url(&format!("/v2/library/busybox/blobs/{digest}"));
    let resp = server.client().get(&other).send().await.unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    let resp = server.client().head(&other).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_api_version(resp.headers());

    // A parent or a child of the repository name is another repository as well.
    for repo in ["a/b", "a/b/c/d"] {
        let resp = server.client().get(server.url(&format!("/v2/{repo}/blobs/{digest}"))).send().await.unwrap();
        assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    }

    // Pushing the same bytes to the second repository makes them visible there too,
    // and they stay visible in the first.
    assert_eq!(server.push_blob("library/busybox", &data).await, digest);
    for repo in ["a/b/c", "library/busybox"] {
        let resp = server.client().get(server.url(&format!("/v2/{repo}/blobs/{digest}"))).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{repo}");
        assert!(resp.bytes().await.unwrap()[..] == data[..], "{repo}");
    }
}

/// A malformed digest in a blob URL is 400 DIGEST_INVALID, never a 404 or a 5xx.
#[tokio::test]
async fn invalid_digest_in_blob_url_is_digest_invalid() {
    let server = RegistryServer::start();
    let bad = [
        "sha256:abc".to_string(),              // too short
        format!("sha256:{}", "g".repeat(64)),  // not hex
        format!("sha256:{}", "A".repeat(64)),  // uppercase hex
        format!("sha256:{}0", "a".repeat(64)), // too long
        "sha256:".to_string(),                 // empty encoded part
        format!("sha256{}", "a".repeat(64)),   // no separator
        format!(":{}", "a".repeat(64)),        // no algorithm
        "not-a-digest".to_string(),
    ];
    for digest in bad {
        let url = server.url(&format!("/v2/library/busybox/blobs/{digest}"));
        let resp = server.client().get(&url).send().await.unwrap();
        assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
        let resp = server.client().head(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "HEAD {url}");
        assert_api_version(resp.headers());
    }
}

/// A 64 MiB blob goes up as one streamed PATCH (chunked transfer encoding, no
/// Content-Length) and comes back streamed; neither side holds it in memory.
#[tokio::test]
async fn big_blob_round_trip_streamed() {
    const SIZE: u64 = 64 * 1024 * 1024;
    const PIECE: usize = 256 * 1024;
    let server = RegistryServer::start();
    let repo = "e2e/big";
    let seed = {
        let mut rng = XorShift::fresh();
        let mut b = [0u8; 8];
        rng.fill(&mut b);
        u64::from_le_bytes(b)
    };
    let digest = seeded_digest(seed, SIZE, PIECE);

    let location = server.start_upload(repo).await;
    let resp = server
        .client()
        .patch(&location)
        .header("Content-Type", "application/octet-stream")
        .body(Body::wrap_stream(seeded_stream(seed, SIZE, PIECE)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&resp, "Range"), format!("0-{}", SIZE - 1));
    let location = server.resolve(header(&resp, LOCATION.as_str()));

    let resp = server.client().put(with_query(&location, "digest", &digest)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "Docker-Content-Digest"), digest);

    let url = server.url(&format!("/v2/{repo}/blobs/{digest}"));
    let resp = server.client().head(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(content_length(resp.headers()), SIZE);

    let resp = server.client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(content_length(resp.headers()), SIZE);
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.expect("read the blob body");
        received += piece.len() as u64;
        hasher.update(&piece);
    }
    assert_eq!(received, SIZE);
    assert_eq!(format!("sha256:{}", hex::encode(hasher.finalize())), digest);
}

/// Conditional GETs: `If-None-Match` with a blob's or a manifest's ETag (its digest)
/// is answered 304 with no body, over GET and HEAD; a tag is revalidated until it
/// moves to another manifest.
#[tokio::test]
async fn if_none_match_with_the_etag_is_304_not_modified() {
    let server = RegistryServer::start();
    let repo = "e2e/conditional";
    let data = random_bytes(10_000);
    let digest = server.push_blob(repo, &data).await;
    let manifest = server.push_image(repo, &["latest"]).await;
    for (path, etag) in [
        (format!("/v2/{repo}/blobs/{digest}"), format!("\"{digest}\"")),
        (format!("/v2/{repo}/manifests/latest"), format!("\"{manifest}\"")),
    ] {
        let url = server.url(&path);
        let resp = server.client().get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "ETag"), etag, "{path}");
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let resp =
                server.client().request(method.clone(), &url).header("If-None-Match", &etag).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{method} {path}");
            assert_eq!(header(&resp, "ETag"), etag);
            assert!(resp.bytes().await.unwrap().is_empty(), "{method} {path}: a 304 has no body");
        }
        let resp = server.client().get(&url).header("If-None-Match", "\"sha256:other\"").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "another ETag: {path}");
    }
    let moved = server.push_image(repo, &["latest"]).await;
    assert_ne!(moved, manifest);
    let resp = server
        .client()
        .get(server.url(&format!("/v2/{repo}/manifests/latest")))
        .header("If-None-Match", format!("\"{manifest}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the tag moved");
    assert_eq!(header(&resp, "Docker-Content-Digest"), moved);
}

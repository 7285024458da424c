//! Blob uploads: end-4a/4b (`POST .../blobs/uploads/`), end-5 (`PATCH` chunks),
//! end-6 (`PUT ?digest=`), the upload status `GET`, and end-11 (cross-repository
//! mount). Checks the 202/201/204/416 answers with their Location, Range,
//! Docker-Upload-UUID and Docker-Content-Digest headers, and that a failed upload
//! stores nothing.

use bytes::Bytes;
use futures_util::stream;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Body, Response, StatusCode};

use crate::common::{
    absent_digest, assert_api_version, assert_error, header, random_bytes, sha256_digest, with_query, RegistryServer,
};

/// Sends one chunk with an explicit `Content-Range` and `Content-Length`.
async fn patch_range(server: &RegistryServer, location: &str, start: usize, chunk: &[u8]) -> Response {
    server
        .client()
        .patch(location)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header("Content-Range", format!("{}-{}", start, start + chunk.len() - 1))
        .header(CONTENT_LENGTH, chunk.len().to_string())
        .body(chunk.to_vec())
        .send()
        .await
        .unwrap()
}

/// Sends one chunk as a streamed body: no Content-Range, no Content-Length (chunked
/// transfer encoding), the way the Docker client uploads layers.
async fn patch_streamed(server: &RegistryServer, location: &str, chunk: &[u8]) -> Response {
    let pieces: Vec<Result<Bytes, std::io::Error>> =
        chunk.chunks(7000).map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    server
        .client()
        .patch(location)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(Body::wrap_stream(stream::iter(pieces)))
        .send()
        .await
        .unwrap()
}

/// Asserts a 202 to a PATCH that leaves `total` bytes in the upload, and returns the
/// new (absolute) Location.
fn assert_chunk_accepted(server: &RegistryServer, resp: &Response, total: usize) -> String {
    assert_eq!(resp.status(), StatusCode::ACCEPTED, "PATCH of a chunk");
    assert_api_version(resp.headers());
    assert_eq!(header(resp, "Range"), format!("0-{}", total - 1), "Range after {total} bytes");
    server.resolve(header(resp, LOCATION.as_str()))
}

/// Asserts the upload status (`GET` on the upload URL): 204, Location, and
/// `Range: 0-<last byte>`.
async fn assert_status(server: &RegistryServer, location: &str, expected_range: &str) {
    let resp = server.client().get(location).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT, "GET upload status");
    assert_api_version(resp.headers());
    assert_eq!(header(&resp, "Range"), expected_range, "upload status Range");
    let _ = server.resolve(header(&resp, LOCATION.as_str()));
}

/// Closes an upload with `PUT ?digest=` and an optional last chunk; asserts 201 with
/// Location and Docker-Content-Digest, and that the blob now reads back as `whole`.
async fn finish_and_verify(
    server: &RegistryServer,
    repo: &str,
    location: &str,
    last_chunk: Option<&[u8]>,
    whole: &[u8],
) {
    let digest = sha256_digest(whole);
    let mut request = server.client().put(with_query(location, "digest", &digest));
    if let Some(chunk) = last_chunk {
        request = request.header(CONTENT_TYPE, "application/octet-stream").body(chunk.to_vec());
    }
    let resp = request.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "closing PUT");
    assert_api_version(resp.headers());
    assert_eq!(header(&resp, "Docker-Content-Digest"), digest);
    let blob_location = server.resolve(header(&resp, LOCATION.as_str()));

    for url in [blob_location, server.url(&format!("/v2/{repo}/blobs/{digest}"))] {
        let resp = server.client().get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "GET {url}");
        assert_eq!(header(&resp, "Docker-Content-Digest"), digest);
        let body = resp.bytes().await.unwrap();
        assert!(body[..] == whole[..], "{url} returned other bytes than were uploaded");
    }
}

/// Asserts that `digest` is not a blob of `repo`.
async fn assert_no_blob(server: &RegistryServer, repo: &str, digest: &str) {
    let resp = server.client().head(server.url(&format!("/v2/{repo}/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "HEAD blob {digest} in {repo}");
}

/// end-4a: POST opens an upload: 202, Location, Docker-Upload-UUID, `Range: 0-0`;
/// its status is 204 with the same Range.
#[tokio::test]
async fn post_starts_an_upload() {
    let server = RegistryServer::start();
    let resp = server
        .client()
        .post(server.url("/v2/library/busybox/blobs/uploads/"))
        .header(CONTENT_LENGTH, "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_api_version(resp.headers());
    let uuid = header(&resp, "Docker-Upload-UUID");
    assert!(!uuid.is_empty(), "empty Docker-Upload-UUID");
    // Nothing received yet: the spec's (and distribution's) convention is `0-0`.
    assert_eq!(header(&resp, "Range"), "0-0");
    let location = server.resolve(header(&resp, LOCATION.as_str()));

    assert_status(&server, &location, "0-0").await;
}

/// end-4b: POST `?digest=` with the whole blob as body is a single-request upload.
#[tokio::test]
async fn monolithic_post_with_digest_is_201() {
    let server = RegistryServer::start();
    let repo = "a/b/c";
    let data = random_bytes(54_321);
    let digest = sha256_digest(&data);
    let resp = server
        .client()
        .post(with_query(&server.url(&format!("/v2/{repo}/blobs/uploads/")), "digest", &digest))
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, data.len().to_string())
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_api_version(resp.headers());
    assert_eq!(header(&resp, "Docker-Content-Digest"), digest);
    let location = server.resolve(header(&resp, LOCATION.as_str()));
    let got = server.client().get(&location).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert!(got.bytes().await.unwrap()[..] == data[..]);
}

/// end-4b with a digest that does not match the body: 400 DIGEST_INVALID, nothing
/// stored under either digest.
#[tokio::test]
async fn monolithic_post_with_wrong_digest_stores_nothing() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let data = random_bytes(10_000);
    let wrong = absent_digest();
    let resp = server
        .client()
        .post(with_query(&server.url(&format!("/v2/{repo}/blobs/uploads/")), "digest", &wrong))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_no_blob(&server, repo, &wrong).await;
    assert_no_blob(&server, repo, &sha256_digest(&data)).await;
}

/// end-6 right after end-4a: POST, then PUT `?digest=` with the whole blob.
#[tokio::test]
async fn post_then_put_with_body_is_201() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let data = random_bytes(77_777);
    let location = server.start_upload(repo).await;
    finish_and_verify(&server, repo, &location, Some(&data), &data).await;
}

/// end-5 with Content-Range: each 202 reports `Range: 0-<last byte>`, the status
/// agrees, and an empty closing PUT makes the blob.
#[tokio::test]
async fn chunked_upload_with_content_range() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let data = random_bytes(250_000);
    let (one, rest) = data.split_at(100_000);
    let (two, three) = rest.split_at(100_000);

    let location = server.start_upload(repo).await;
    let resp = patch_range(&server, &location, 0, one).await;
    let location = assert_chunk_accepted(&server, &resp, 100_000);
    assert_status(&server, &location, "0-99999").await;

    let resp = patch_range(&server, &location, 100_000, two).await;
    let location = assert_chunk_accepted(&server, &resp, 200_000);
    let resp = patch_range(&server, &location, 200_000, three).await;
    let location = assert_chunk_accepted(&server, &resp, 250_000);
    assert_status(&server, &location, "0-249999").await;

    finish_and_verify(&server, repo, &location, None, &data).await;
}

/// end-5 streamed, without Content-Range or Content-Length, and end-6 carrying the
/// last chunk.
#[tokio::test]
async fn streamed_chunks_without_content_range_then_last_chunk_in_put() {
    let server = RegistryServer::start();
    let repo = "a/b/c";
    let data = random_bytes(300_001);
    let (one, rest) = data.split_at(123_456);
    let (two, last) = rest.split_at(100_000);

    let location = server.start_upload(repo).await;
    let resp = patch_streamed(&server, &location, one).await;
    let location = assert_chunk_accepted(&server, &resp, one.len());
    let resp = patch_streamed(&server, &location, two).await;
    let location = assert_chunk_accepted(&server, &resp, one.len() + two.len());
    assert_status(&server, &location, &format!("0-{}", one.len() + two.len() - 1)).await;

    finish_and_verify(&server, repo, &location, Some(last), &data).await;
}

/// end-5: a chunk that does not start right after the last byte received is 416;
/// the upload is not damaged by it and continues from where it was.
#[tokio::test]
async fn out_of_order_chunk_is_416() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let data = random_bytes(3000);

    // A first chunk must start at 0.
    let location = server.start_upload(repo).await;
    let resp = patch_range(&server, &location, 10, &data[10..20]).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "first chunk not at 0");
    assert_api_version(resp.headers());
    assert_status(&server, &location, "0-0").await;

    let resp = patch_range(&server, &location, 0, &data[..1000]).await;
    let location = assert_chunk_accepted(&server, &resp, 1000);

    // A gap after the last byte.
    let resp = patch_range(&server, &location, 1500, &data[1500..2000]).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "chunk leaving a gap");
    assert_api_version(resp.headers());
    // A chunk overlapping bytes already received.
    let resp = patch_range(&server, &location, 500, &data[500..1500]).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "overlapping chunk");
    assert_api_version(resp.headers());
    assert_status(&server, &location, "0-999").await;

    let resp = patch_range(&server, &location, 1000, &data[1000..]).await;
    let location = assert_chunk_accepted(&server, &resp, 3000);
    finish_and_verify(&server, repo, &location, None, &data).await;
}

/// end-5: sending the same chunk twice is out of order the second time (416), and
/// its bytes are not appended again.
#[tokio::test]
async fn repeated_chunk_is_416() {
    let server = RegistryServer::start();
    let repo = "a/b/c";
    let data = random_bytes(2048);

    let location = server.start_upload(repo).await;
    let resp = patch_range(&server, &location, 0, &data[..1024]).await;
    let location = assert_chunk_accepted(&server, &resp, 1024);
    let resp = patch_range(&server, &location, 0, &data[..1024]).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "repeated chunk");
    assert_api_version(resp.headers());
    assert_status(&server, &location, "0-1023").await;

    let resp = patch_range(&server, &location, 1024, &data[1024..]).await;
    let location = assert_chunk_accepted(&server, &resp, 2048);
    finish_and_verify(&server, repo, &location, None, &data).await;
}

/// end-6 with a digest that does not match the bytes: 400 DIGEST_INVALID, and the
/// blob exists under neither digest afterwards.
#[tokio::test]
async fn wrong_digest_is_digest_invalid_and_stores_nothing() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let data = random_bytes(65_536);
    let wrong = absent_digest();

    let location = server.start_upload(repo).await;
    let resp = patch_range(&server, &location, 0, &data).await;
    let location = assert_chunk_accepted(&server, &resp, data.len());
    let resp = server.client().put(with_query(&location, "digest", &wrong)).send().await.unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_no_blob(&server, repo, &wrong).await;
    assert_no_blob(&server, repo, &sha256_digest(&data)).await;

    // The same with the bytes in the closing PUT itself.
    let location = server.start_upload(repo).await;
    let resp = server
        .client()
        .put(with_query(&location, "digest", &wrong))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_no_blob(&server, repo, &wrong).await;
    assert_no_blob(&server, repo, &sha256_digest(&data)).await;
}

/// end-6 with a `digest` parameter that is not a digest at all: DIGEST_INVALID.
#[tokio::test]
async fn malformed_digest_parameter_is_digest_invalid() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let location = server.start_upload(repo).await;
    let resp =
        server.client().put(with_query(&location, "digest", "sha256:1234")).body(b"abc".to_vec()).send().await.unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

/// An upload id the registry never handed out is 404 BLOB_UPLOAD_UNKNOWN for the
/// status GET, PATCH and PUT; so is an upload that was already completed.
#[tokio::test]
async fn unknown_upload_is_blob_upload_unknown() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let data = random_bytes(100);
    let digest = sha256_digest(&data);
    let unknown = server.url(&format!("/v2/{repo}/blobs/uploads/0b5e0c2a-7d1f-4c39-9a57-6f3e2d1c0b9a"));

    let resp = server.client().get(&unknown).send().await.unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = patch_range(&server, &unknown, 0, &data).await;
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = server.client().put(with_query(&unknown, "digest", &digest)).body(data.clone()).send().await.unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    assert_no_blob(&server, repo, &digest).await;

    // Once closed, an upload is gone.
    let location = server.start_upload(repo).await;
    let resp = server.client().put(with_query(&location, "digest", &digest)).body(data.clone()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = patch_range(&server, &location, 0, &data).await;
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

/// end-11: mounting a blob from a repository that has it links it with 201; mounting
/// from one that does not falls back to a plain upload session (202) and links
/// nothing.
#[tokio::test]
async fn cross_repository_mount() {
    let server = RegistryServer::start();
    let data = random_bytes(5000);
    let digest = server.push_blob("a/b/c", &data).await;

    let mount = |to: &str, from: &str| server.url(&format!("/v2/{to}/blobs/uploads/?mount={digest}&from={from}"));
    let resp =
        server.client().post(mount("library/busybox", "a/b/c")).header(CONTENT_LENGTH, "0").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "mount from a repository holding the blob");
    assert_api_version(resp.headers());
    assert_eq!(header(&resp, "Docker-Content-Digest"), digest);
    let location = server.resolve(header(&resp, LOCATION.as_str()));
    let got = server.client().get(&location).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert!(got.bytes().await.unwrap()[..] == data[..]);

    let resp = server
        .client()
        .post(mount("e2e/elsewhere", "e2e/nothing-here"))
        .header(CONTENT_LENGTH, "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED, "mount from a repository without the blob");
    let _ = server.resolve(header(&resp, LOCATION.as_str()));
    assert_no_blob(&server, "e2e/elsewhere", &digest).await;
}

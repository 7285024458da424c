//! end-3 (`GET`/`HEAD /v2/<name>/manifests/<reference>`) and end-7 (`PUT`): the
//! four manifest kinds stored byte-exact with their media type, reference checks
//! (MANIFEST_BLOB_UNKNOWN), the 4 MiB limit, MANIFEST_INVALID, MANIFEST_UNKNOWN, and
//! the name, tag and digest grammars (NAME_INVALID, TAG_INVALID, DIGEST_INVALID).

use bytes::Bytes;
use futures_util::stream;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{Body, StatusCode};

use crate::common::{
    absent_digest, assert_api_version, assert_error, assert_raw_error, content_length, header, index_of, media,
    raw_request, sha256_digest, Descriptor, RegistryServer,
};

/// The most a manifest body may weigh.
const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// Asserts that GET and HEAD of `repo`/`reference` give back exactly `body`, with
/// `media_type`, its digest and its length.
async fn assert_manifest(server: &RegistryServer, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    let url = server.url(&format!("/v2/{repo}/manifests/{reference}"));
    let digest = sha256_digest(body);

    let resp = server.client().get(&url).header(ACCEPT, media::ACCEPT_ALL_MANIFESTS).send().await.unwrap();
    assert_manifest_headers(&resp, &format!("GET {url}"), media_type, &digest, body.len());
    let got = resp.bytes().await.unwrap();
    assert!(
        got[..] == body[..],
        "GET {url} is not byte-exact:\n{}\nexpected:\n{}",
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(body)
    );

    let resp = server.client().head(&url).header(ACCEPT, media::ACCEPT_ALL_MANIFESTS).send().await.unwrap();
    assert_manifest_headers(&resp, &format!("HEAD {url}"), media_type, &digest, body.len());
}

/// The status and headers that a GET and a HEAD of a stored manifest share.
fn assert_manifest_headers(resp: &reqwest::Response, what: &str, media_type: &str, digest: &str, len: usize) {
    assert_eq!(resp.status(), StatusCode::OK, "{what}");
    assert_api_version(resp.headers());
    assert_eq!(header(resp, CONTENT_TYPE.as_str()), media_type, "Content-Type of {what}");
    assert_eq!(header(resp, "Docker-Content-Digest"), digest, "digest of {what}");
    assert_eq!(content_length(resp.headers()), len as u64, "length of {what}");
}

/// PUTs `body` by tag, checks the 201 and its headers, then reads it back by tag,
/// by digest and through the returned Location.
async fn put_and_check(server: &RegistryServer, repo: &str, tag: &str, media_type: &str, body: &[u8]) -> Descriptor {
    let resp = server.put_manifest(repo, tag, media_type, body.to_vec()).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::CREATED, "PUT {repo}:{tag} ({media_type}): {text}");
    assert_api_version(&headers);
    let digest = sha256_digest(body);
    assert_eq!(headers.get("Docker-Content-Digest").and_then(|v| v.to_str().ok()), Some(digest.as_str()));
    let location = server.resolve(headers.get(LOCATION).expect("Location on a manifest PUT").to_str().unwrap());

    assert_manifest(server, repo, tag, media_type, body).await;
    assert_manifest(server, repo, &digest, media_type, body).await;
    let resp = server.client().get(&location).header(ACCEPT, media::ACCEPT_ALL_MANIFESTS).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "GET of the Location {location}");
    assert!(resp.bytes().await.unwrap()[..] == body[..]);
    Descriptor::of(media_type, body)
}

/// end-7 + end-3: an OCI image manifest, pushed by tag, comes back byte-exact by tag
/// and by digest; an OCI index over it too.
#[tokio::test]
async fn oci_manifest_and_index_round_trip() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let image = server.push_image_blobs(repo, 3, false).await;
    let manifest =
        image.manifest_with_extra(",\n  \"annotations\": {\"org.example.z\": \"last\", \"org.example.a\": \"first\"}");
    let child = put_and_check(&server, repo, "v1", media::OCI_MANIFEST, &manifest).await;

    let index = index_of(&[child], false);
    put_and_check(&server, repo, "multi", media::OCI_INDEX, &index).await;
}

/// end-7 + end-3: a Docker schema2 manifest and a Docker manifest list over it.
#[tokio::test]
async fn docker_manifest_and_list_round_trip() {
    let server = RegistryServer::start();
    let repo = "a/b/c";
    let image = server.push_image_blobs(repo, 2, true).await;
    let child = put_and_check(&server, repo, "v2", media::DOCKER_MANIFEST, &image.manifest()).await;

    let list = index_of(&[child], true);
    put_and_check(&server, repo, "list", media::DOCKER_MANIFEST_LIST, &list).await;
}

/// end-7 by digest: PUT to `manifests/<digest>` stores it untagged; a digest that
/// does not match the body is DIGEST_INVALID.
#[tokio::test]
async fn put_by_digest() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let image = server.push_image_blobs(repo, 1, false).await;
    let body = image.manifest();
    let digest = sha256_digest(&body);
    let got = server.push_manifest(repo, &digest, media::OCI_MANIFEST, &body).await;
    assert_eq!(got, digest);
    assert_manifest(&server, repo, &digest, media::OCI_MANIFEST, &body).await;

    let other = image.manifest_with_extra(",\n  \"annotations\": {\"x\": \"y\"}");
    let resp = server.put_manifest(repo, &digest, media::OCI_MANIFEST, other).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

/// A tag moves to the manifest pushed last; the previous one stays reachable by
/// digest.
#[tokio::test]
async fn retagging_moves_the_tag() {
    let server = RegistryServer::start();
    let repo = "e2e/retag";
    let image = server.push_image_blobs(repo, 1, false).await;
    let first = image.manifest();
    let second = image.manifest_with_extra(",\n  \"annotations\": {\"rev\": \"2\"}");
    server.push_manifest(repo, "latest", media::OCI_MANIFEST, &first).await;
    server.push_manifest(repo, "latest", media::OCI_MANIFEST, &second).await;
    assert_manifest(&server, repo, "latest", media::OCI_MANIFEST, &second).await;
    assert_manifest(&server, repo, &sha256_digest(&first), media::OCI_MANIFEST, &first).await;
}

/// end-3: an unknown tag or digest is 404 MANIFEST_UNKNOWN (HEAD: 404, no body);
/// so is a manifest that exists only in another repository.
#[tokio::test]
async fn missing_manifest_is_manifest_unknown() {
    let server = RegistryServer::start();
    let missing_digest = absent_digest();
    for reference in ["no-such-tag", missing_digest.as_str()] {
        let url = server.url(&format!("/v2/library/busybox/manifests/{reference}"));
        let resp = server.client().get(&url).send().await.unwrap();
        assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
        let resp = server.client().head(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "HEAD {url}");
        assert_api_version(resp.headers());
    }

    let image = server.push_image_blobs("a/b/c", 1, false).await;
    let body = image.manifest();
    let digest = server.push_manifest("a/b/c", "v1", media::OCI_MANIFEST, &body).await;
    for reference in ["v1", digest.as_str()] {
        let resp = server
            .client()
            .get(server.url(&format!("/v2/library/busybox/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    }
}

/// end-7: a manifest whose config or layer is not a blob of the repository (absent,
/// or present only in another repository) is 400 MANIFEST_BLOB_UNKNOWN and is not
/// stored.
#[tokio::test]
async fn manifest_with_missing_blob_is_manifest_blob_unknown() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let image = server.push_image_blobs(repo, 2, false).await;
    let elsewhere = server.push_blob("a/b/c", b"only in a/b/c").await;

    let mut missing_layer = image.clone();
    missing_layer.layers[1].digest = absent_digest();
    let mut missing_config = image.clone();
    missing_config.config.digest = absent_digest();
    let mut foreign_layer = image.clone();
    foreign_layer.layers[0].digest = elsewhere;
    foreign_layer.layers[0].size = "only in a/b/c".len() as u64;

    for (what, broken) in [
        ("missing layer", missing_layer),
        ("missing config", missing_config),
        ("layer of another repository", foreign_layer),
    ] {
        let body = broken.manifest();
        let resp = server.put_manifest(repo, "broken", media::OCI_MANIFEST, body.clone()).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
        let resp = server
            .client()
            .head(server.url(&format!("/v2/{repo}/manifests/{}", sha256_digest(&body))))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{what}: the manifest was stored");
    }
    let resp = server.client().head(server.url(&format!("/v2/{repo}/manifests/broken"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "the tag of a refused manifest exists");
}

/// end-7: an index (or manifest list) naming a child manifest the repository does
/// not hold is 400 MANIFEST_BLOB_UNKNOWN.
#[tokio::test]
async fn index_with_missing_child_is_manifest_blob_unknown() {
    let server = RegistryServer::start();
    let repo = "a/b/c";
    let image = server.push_image_blobs(repo, 1, false).await;
    // A valid child that was never pushed as a manifest.
    let child = Descriptor::of(media::OCI_MANIFEST, &image.manifest());
    let resp = server.put_manifest(repo, "idx", media::OCI_INDEX, index_of(&[child], false)).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;

    let docker = server.push_image_blobs(repo, 1, true).await;
    let child = Descriptor::of(media::DOCKER_MANIFEST, &docker.manifest());
    let resp = server.put_manifest(repo, "list", media::DOCKER_MANIFEST_LIST, index_of(&[child], true)).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
}

/// end-7: a body over 4 MiB is 413, whether its length is announced or streamed;
/// a body of exactly 4 MiB is accepted.
#[tokio::test]
async fn manifest_size_limit_is_4_mib() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let image = server.push_image_blobs(repo, 1, false).await;

    // Pads the manifest with an annotation up to exactly `size` bytes.
    let padded = |size: usize| {
        let empty = image.manifest_with_extra(",\n  \"annotations\": {\"pad\": \"\"}");
        let pad = "x".repeat(size - empty.len());
        let body = image.manifest_with_extra(&format!(",\n  \"annotations\": {{\"pad\": \"{pad}\"}}"));
        assert_eq!(body.len(), size);
        body
    };

    let at_limit = padded(MAX_MANIFEST);
    server.push_manifest(repo, "at-limit", media::OCI_MANIFEST, &at_limit).await;
    assert_manifest(&server, repo, "at-limit", media::OCI_MANIFEST, &at_limit).await;

    let over = padded(MAX_MANIFEST + 1);
    let resp = server.put_manifest(repo, "over", media::OCI_MANIFEST, over.clone()).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "4 MiB + 1 with Content-Length");
    assert_api_version(resp.headers());

    let pieces: Vec<Result<Bytes, std::io::Error>> =
        over.chunks(64 * 1024).map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    let resp = server.put_manifest(repo, "over", media::OCI_MANIFEST, Body::wrap_stream(stream::iter(pieces))).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "4 MiB + 1 streamed");
    assert_api_version(resp.headers());

    let resp = server.client().head(server.url(&format!("/v2/{repo}/manifests/over"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// end-7: a body that is not a manifest is 400 MANIFEST_INVALID.
#[tokio::test]
async fn invalid_manifest_is_manifest_invalid() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    for body in [
        &b"{ this is not json"[..],
        b"",
        b"[1, 2, 3]",
        b"{\"schemaVersion\": 2, \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"config\": 17}",
    ] {
        let resp = server.put_manifest(repo, "bad", media::OCI_MANIFEST, body.to_vec()).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    }
}

/// Names outside the spec's grammar are 400 NAME_INVALID on every endpoint.
/// `..` and `//` are sent over a raw connection: URL libraries would normalise them.
#[tokio::test]
async fn invalid_names_are_name_invalid() {
    let server = RegistryServer::start();
    let digest = absent_digest();
    let names = [
        "Library/Busybox",
        "library/BusyBox",
        "a/../b",
        "..",
        "library/busybox/",
        "/library",
        "a//b",
        "-leading-dash",
        "library/trailing-",
        "a__b___c",
        "UPPER",
    ];
    for name in names {
        for (method, path) in [
            ("GET", format!("/v2/{name}/manifests/latest")),
            ("PUT", format!("/v2/{name}/manifests/latest")),
            ("GET", format!("/v2/{name}/blobs/{digest}")),
            ("POST", format!("/v2/{name}/blobs/uploads/")),
        ] {
            let resp = raw_request(server.host_port(), method, &path).await;
            assert_raw_error(&resp, 400, "NAME_INVALID");
        }
        let resp = raw_request(server.host_port(), "HEAD", &format!("/v2/{name}/blobs/{digest}")).await;
        assert_eq!(resp.status, 400, "HEAD blob of {name:?}");
    }

    // Names that look odd but are valid are not refused.
    for name in ["a", "a/b/c/d/e", "library/busy_box", "x.y-z__w/0"] {
        let resp = server.client().get(server.url(&format!("/v2/{name}/manifests/latest"))).send().await.unwrap();
        assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    }
}

/// Tags outside `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}` are 400 TAG_INVALID to a PUT and
/// unknown (404 MANIFEST_UNKNOWN) to a GET; the longest valid tag (128 characters)
/// works.
#[tokio::test]
async fn invalid_tags_are_tag_invalid() {
    let server = RegistryServer::start();
    let repo = "library/busybox";
    let image = server.push_image_blobs(repo, 1, false).await;
    let body = image.manifest();

    let longest = format!("A{}", "b".repeat(127));
    server.push_manifest(repo, &longest, media::OCI_MANIFEST, &body).await;
    assert_manifest(&server, repo, &longest, media::OCI_MANIFEST, &body).await;

    for tag in [
        "a".repeat(129),
        ".starts-with-dot".to_string(),
        "-starts-with-dash".to_string(),
        "has+plus".to_string(),
        "has%20space".to_string(),
    ] {
        let resp = server.put_manifest(repo, &tag, media::OCI_MANIFEST, body.clone()).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "TAG_INVALID").await;
        let resp = server.client().get(server.url(&format!("/v2/{repo}/manifests/{tag}"))).send().await.unwrap();
        assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    }
}

/// A GET or HEAD of a reference that is neither a tag nor a digest finds nothing:
/// 404 MANIFEST_UNKNOWN, as distribution and zot answer (the conformance suite asks
/// for `.INVALID_MANIFEST_NAME`), in a repository that exists and in one that does
/// not; a PUT to it stays 400 TAG_INVALID and stores nothing.
#[tokio::test]
async fn unnameable_manifest_reference_is_unknown() {
    let server = RegistryServer::start();
    let repo = "e2e/unnameable";
    let image = server.push_image_blobs(repo, 1, false).await;
    server.push_manifest(repo, "latest", media::OCI_MANIFEST, &image.manifest()).await;
    for repo in [repo, "e2e/never-pushed"] {
        let url = server.url(&format!("/v2/{repo}/manifests/.INVALID_MANIFEST_NAME"));
        let resp = server.client().get(&url).send().await.unwrap();
        assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
        let resp = server.client().head(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "HEAD {url}");
        assert_api_version(resp.headers());
    }
    let resp = server.put_manifest(repo, ".INVALID_MANIFEST_NAME", media::OCI_MANIFEST, image.manifest()).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "TAG_INVALID").await;
    let (_, tags) = server.get_json(&format!("/v2/{repo}/tags/list")).await;
    assert_eq!(tags["tags"], serde_json::json!(["latest"]));
}

/// A manifest reference that tries to be a digest but is malformed is 400
/// DIGEST_INVALID to a PUT; a GET finds nothing there (404 MANIFEST_UNKNOWN).
#[tokio::test]
async fn invalid_digest_reference_is_digest_invalid() {
    let server = RegistryServer::start();
    let repo = "a/b/c";
    let image = server.push_image_blobs(repo, 1, false).await;
    for reference in
        ["sha256:abc".to_string(), format!("sha256:{}", "Z".repeat(64)), format!("sha256:{}", "a".repeat(63))]
    {
        let resp = server.put_manifest(repo, &reference, media::OCI_MANIFEST, image.manifest()).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
        let resp = server.client().get(server.url(&format!("/v2/{repo}/manifests/{reference}"))).send().await.unwrap();
        assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    }
}

//! Content management: end-9 (`DELETE /v2/<name>/manifests/<reference>`), end-10
//! (`DELETE /v2/<name>/blobs/<digest>`), `DELETE` of an upload location, each
//! followed by the reads that must no longer find what was deleted; and the host's
//! `--disable-delete`, under which every `DELETE` is 405 UNSUPPORTED and nothing
//! goes.

use reqwest::header::ACCEPT;
use reqwest::{Response, StatusCode};

use crate::common::{
    absent_digest, assert_api_version, assert_error, external_registry, media, random_bytes, string_list, with_query,
    RegistryServer,
};

async fn delete(server: &RegistryServer, path: &str) -> Response {
    server.client().delete(server.url(path)).send().await.unwrap_or_else(|e| panic!("DELETE {path}: {e}"))
}

/// Asserts `DELETE path` is 202 Accepted.
async fn delete_accepted(server: &RegistryServer, path: &str) {
    let resp = delete(server, path).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::ACCEPTED, "DELETE {path}: {text}");
    assert_api_version(&headers);
}

/// GET of a manifest reference: its status (and the error code on a 404).
async fn assert_manifest_gone(server: &RegistryServer, repo: &str, reference: &str) {
    let url = server.url(&format!("/v2/{repo}/manifests/{reference}"));
    let resp = server.client().get(&url).header(ACCEPT, media::ACCEPT_ALL_MANIFESTS).send().await.unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    let resp = server.client().head(&url).header(ACCEPT, media::ACCEPT_ALL_MANIFESTS).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "HEAD {url}");
    assert_api_version(resp.headers());
}

async fn manifest_status(server: &RegistryServer, repo: &str, reference: &str) -> StatusCode {
    server
        .client()
        .get(server.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header(ACCEPT, media::ACCEPT_ALL_MANIFESTS)
        .send()
        .await
        .unwrap()
        .status()
}

async fn blob_status(server: &RegistryServer, repo: &str, digest: &str) -> StatusCode {
    server.client().get(server.url(&format!("/v2/{repo}/blobs/{digest}"))).send().await.unwrap().status()
}

async fn tags(server: &RegistryServer, repo: &str) -> Vec<String> {
    let (_, json) = server.get_json(&format!("/v2/{repo}/tags/list")).await;
    string_list(&json, "tags")
}

/// end-9: DELETE by digest is 202; afterwards GET and HEAD by digest and by each of
/// its former tags are 404 MANIFEST_UNKNOWN, and its tags are gone from the tag
/// list, while another manifest of the repository and its tag stay.
#[tokio::test]
async fn delete_manifest_by_digest() {
    let server = RegistryServer::start();
    let repo = "e2e/deletes/manifest";
    let doomed = server.push_image(repo, &["a", "b", "c"]).await;
    let kept = server.push_image(repo, &["keep"]).await;
    assert_eq!(tags(&server, repo).await, ["a", "b", "c", "keep"]);

    delete_accepted(&server, &format!("/v2/{repo}/manifests/{doomed}")).await;
    assert_manifest_gone(&server, repo, &doomed).await;
    for tag in ["a", "b", "c"] {
        assert_manifest_gone(&server, repo, tag).await;
    }
    assert_eq!(tags(&server, repo).await, ["keep"]);
    assert_eq!(manifest_status(&server, repo, &kept).await, StatusCode::OK);
    assert_eq!(manifest_status(&server, repo, "keep").await, StatusCode::OK);

    // Deleting it again, or any manifest the repository does not have, is 404.
    for reference in [doomed.clone(), absent_digest()] {
        let resp = delete(&server, &format!("/v2/{repo}/manifests/{reference}")).await;
        assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    }
    // A manifest of one repository cannot be deleted through another.
    let resp = delete(&server, &format!("/v2/e2e/deletes/other/manifests/{kept}")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(manifest_status(&server, repo, &kept).await, StatusCode::OK);
}

/// end-9: DELETE by tag is 202 and removes only that tag: the manifest is still
/// served by digest and by its other tags.
#[tokio::test]
async fn delete_by_tag_removes_only_the_tag() {
    let server = RegistryServer::start();
    let repo = "e2e/deletes/tag";
    let digest = server.push_image(repo, &["old", "new"]).await;

    delete_accepted(&server, &format!("/v2/{repo}/manifests/old")).await;
    assert_manifest_gone(&server, repo, "old").await;
    assert_eq!(tags(&server, repo).await, ["new"]);
    assert_eq!(manifest_status(&server, repo, &digest).await, StatusCode::OK);
    assert_eq!(manifest_status(&server, repo, "new").await, StatusCode::OK);

    let resp = delete(&server, &format!("/v2/{repo}/manifests/old")).await;
    assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
}

/// end-10: DELETE of a blob is 202 and unlinks it from that repository only: GET and
/// HEAD there are 404 BLOB_UNKNOWN while another repository that links the same
/// blob still serves it byte for byte. Once no repository links it, it can be
/// pushed again.
#[tokio::test]
async fn delete_blob_unlinks_it_from_one_repository() {
    let server = RegistryServer::start();
    let data = random_bytes(7000);
    let first = "e2e/deletes/blob-a";
    let second = "e2e/deletes/blob-b";
    let digest = server.push_blob(first, &data).await;
    assert_eq!(server.push_blob(second, &data).await, digest);

    delete_accepted(&server, &format!("/v2/{first}/blobs/{digest}")).await;
    let url = server.url(&format!("/v2/{first}/blobs/{digest}"));
    let resp = server.client().get(&url).send().await.unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    let resp = server.client().head(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "HEAD {url}");

    let resp = server.client().get(server.url(&format!("/v2/{second}/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the other repository's link");
    assert!(resp.bytes().await.unwrap()[..] == data[..]);

    // Deleting it again is 404; so is a blob nobody pushed.
    for d in [digest.clone(), absent_digest()] {
        let resp = delete(&server, &format!("/v2/{first}/blobs/{d}")).await;
        assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    }

    // The last link goes too; then the blob is unknown everywhere, and a new push of
    // the same bytes works as if it had never been there.
    delete_accepted(&server, &format!("/v2/{second}/blobs/{digest}")).await;
    assert_eq!(blob_status(&server, second, &digest).await, StatusCode::NOT_FOUND);
    assert_eq!(server.push_blob(first, &data).await, digest);
    let resp = server.client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap()[..] == data[..]);
    assert_eq!(blob_status(&server, second, &digest).await, StatusCode::NOT_FOUND);
}

/// A manifest's blobs are still linked after the manifest is deleted (deleting a
/// manifest is not deleting its blobs), and a blob still used by a manifest of the
/// same repository may be unlinked, leaving the manifest readable.
#[tokio::test]
async fn manifest_and_blob_deletes_are_independent() {
    let server = RegistryServer::start();
    let repo = "e2e/deletes/independent";
    let image = server.push_image_blobs(repo, 1, false).await;
    let body = image.manifest();
    let digest = server.push_manifest(repo, "v1", media::OCI_MANIFEST, &body).await;

    delete_accepted(&server, &format!("/v2/{repo}/manifests/{digest}")).await;
    for blob in [&image.config, &image.layers[0]] {
        assert_eq!(blob_status(&server, repo, &blob.digest).await, StatusCode::OK);
    }
    // The same manifest can be pushed again.
    server.push_manifest(repo, "v1", media::OCI_MANIFEST, &body).await;
    delete_accepted(&server, &format!("/v2/{repo}/blobs/{}", image.layers[0].digest)).await;
    assert_eq!(manifest_status(&server, repo, "v1").await, StatusCode::OK);
}

/// DELETE of an upload location cancels the upload with 204; the session is gone
/// (GET, PATCH and PUT on it are 404 BLOB_UPLOAD_UNKNOWN) and nothing was stored.
#[tokio::test]
async fn delete_upload_cancels_it() {
    let server = RegistryServer::start();
    let repo = "e2e/deletes/upload";
    let data = random_bytes(3000);
    let location = server.start_upload(repo).await;
    let resp = server
        .client()
        .patch(&location)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("0-{}", data.len() - 1))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = server.resolve(resp.headers()["Location"].to_str().unwrap());

    let resp = server.client().delete(&location).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT, "DELETE {location}");
    assert_api_version(resp.headers());

    let resp = server.client().get(&location).send().await.unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = server
        .client()
        .patch(&location)
        .header("Content-Type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let digest = crate::common::sha256_digest(&data);
    let resp = server.client().put(with_query(&location, "digest", &digest)).body(Vec::new()).send().await.unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    assert_eq!(blob_status(&server, repo, &digest).await, StatusCode::NOT_FOUND);

    // Cancelling it twice: the second time the upload is unknown.
    let resp = server.client().delete(&location).send().await.unwrap();
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
}

/// With `--disable-delete`, every DELETE (manifest by digest and by tag, blob,
/// upload) is 405 UNSUPPORTED, and everything is still there afterwards.
#[tokio::test]
async fn disable_delete_refuses_every_delete() {
    assert!(
        !external_registry(),
        "this test starts its own registry with --disable-delete and cannot run against REGISTRY_TEST_URL: \
         leave it out with `--skip deletes::disable_delete_refuses_every_delete`"
    );
    let server = RegistryServer::start_with_args(&["--disable-delete"]);
    let repo = "e2e/deletes/disabled";
    let image = server.push_image_blobs(repo, 1, false).await;
    let digest = server.push_manifest(repo, "v1", media::OCI_MANIFEST, &image.manifest()).await;
    let blob = image.layers[0].digest.clone();
    let location = server.start_upload(repo).await;

    for path in [
        format!("/v2/{repo}/manifests/{digest}"),
        format!("/v2/{repo}/manifests/v1"),
        format!("/v2/{repo}/blobs/{blob}"),
    ] {
        let resp = delete(&server, &path).await;
        assert_error(resp, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;
    }
    let resp = server.client().delete(&location).send().await.unwrap();
    assert_error(resp, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;

    assert_eq!(manifest_status(&server, repo, &digest).await, StatusCode::OK);
    assert_eq!(manifest_status(&server, repo, "v1").await, StatusCode::OK);
    assert_eq!(blob_status(&server, repo, &blob).await, StatusCode::OK);
    let resp = server.client().get(&location).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT, "the upload is still open");
}

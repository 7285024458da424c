//! end-1 (`GET /v2/`) and the rules that hold for every response: the
//! `Docker-Distribution-Api-Version: registry/2.0` header, errors included, and no
//! server error for a client's mistake.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{absent_digest, assert_api_version, raw_request, RegistryServer};

/// end-1: `GET /v2/` answers 200 with the JSON body `{}`.
#[tokio::test]
async fn get_v2_is_200_with_empty_json_object() {
    let server = RegistryServer::start();
    let resp = server.client().get(server.url("/v2/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_api_version(resp.headers());
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).expect("JSON body");
    assert_eq!(body, serde_json::json!({}));
}

/// end-1 also answers `HEAD`, with which some clients probe the registry.
#[tokio::test]
async fn head_v2_is_200() {
    let server = RegistryServer::start();
    let resp = server.client().head(server.url("/v2/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_api_version(resp.headers());
}

/// Every response carries the API version header: successes, 404s of known routes,
/// and requests that match no route at all. None of them is a 5xx.
#[tokio::test]
async fn api_version_header_on_every_response() {
    let server = RegistryServer::start();
    let missing = absent_digest();
    let requests = [
        ("GET", "/v2/".to_string()),
        ("GET", format!("/v2/library/busybox/blobs/{missing}")),
        ("HEAD", format!("/v2/library/busybox/blobs/{missing}")),
        ("GET", "/v2/library/busybox/manifests/latest".to_string()),
        ("GET", "/v2/Invalid/manifests/latest".to_string()),
        ("GET", "/v2/library/busybox/no-such-endpoint".to_string()),
        ("GET", "/not-the-api".to_string()),
        ("DELETE", "/v2/".to_string()),
    ];
    for (method, path) in requests {
        let resp = raw_request(server.host_port(), method, &path).await;
        assert!(
            resp.status < 500,
            "{method} {path} answered {} (a client's mistake is never a server error)",
            resp.status
        );
        assert_eq!(
            resp.header("Docker-Distribution-Api-Version"),
            Some("registry/2.0"),
            "{method} {path} ({}) lacks the API version header",
            resp.status
        );
    }
}

//! `--log-format json` and request ids: every response carries `X-Request-Id` (the
//! client's, when it sent a plain one; a new one otherwise, and never a forged one),
//! and every line a request causes is one JSON object carrying that id: the access
//! line, written once the response is sent, with client, user, method, route,
//! repository, status, bytes in and out and duration; and the component's own lines (here, a
//! failed sign-in).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{basic_auth, random_bytes, require_host_binary, AuthFiles, RegistryServer};

/// Waits for the JSON log line of `target` with `request_id`.
fn json_line(server: &RegistryServer, target: &str, request_id: &str) -> Value {
    let line = server
        .wait_for_line(
            |l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["target"] == target && v["request_id"] == request_id),
            Duration::from_secs(15),
        )
        .unwrap_or_else(|| panic!("no JSON line of {target} for request {request_id}"));
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn json_lines_carry_the_request_id() {
    require_host_binary();
    let auth = AuthFiles::new(&[("alice", "alice-password", 4)], None);
    let mut server = auth.start(&["--log-format", "json"]);
    server.authorize(Some(&basic_auth("alice", "alice-password")));
    let repo = "e2e/logs/app";
    let data = random_bytes(5000);
    let digest = server.push_blob(repo, &data).await;

    let resp = server
        .client()
        .get(server.url(&format!("/v2/{repo}/blobs/{digest}")))
        .header("authorization", basic_auth("alice", "alice-password"))
        .header("x-request-id", "pull-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-request-id"], "pull-1");
    assert!(resp.headers().get("registry-user").is_none(), "the user header is the host's alone");
    assert_eq!(resp.bytes().await.unwrap().len(), data.len());
    let access = json_line(&server, "access", "pull-1");
    assert_eq!(access["level"], "INFO");
    assert!(access["timestamp"].is_string(), "{access}");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["route"], "blob");
    assert_eq!(access["repository"], repo);
    assert_eq!(access["status"], 200);
    assert_eq!(access["bytes_out"], data.len() as u64);
    assert_eq!(access["bytes_in"], 0);
    assert_eq!(access["client"], "127.0.0.1");
    assert_eq!(access["user"], "alice");
    assert!(access["duration_ms"].as_f64().is_some(), "{access}");

    // A forged id is replaced by one of the registry's own.
    let resp = server
        .client()
        .get(server.url("/v2/"))
        .header("authorization", basic_auth("alice", "alice-password"))
        .header("x-request-id", "a\"b")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");

    // The component's own line carries the id of the request that caused it.
    let resp = server
        .client()
        .get(server.url("/v2/"))
        .header("authorization", basic_auth("alice", "wrong"))
        .header("x-request-id", "bad-login-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let line = json_line(&server, "component", "bad-login-1");
    let message = line["message"].as_str().unwrap_or_default();
    assert!(message.contains("failed sign-in for user") && !message.contains("wrong"), "{line}");
    let access = json_line(&server, "access", "bad-login-1");
    assert_eq!(access["status"], 401);
    assert_eq!(access["route"], "base");
    assert_eq!(access["user"], "", "a failed sign-in names nobody on the access line");
}

//! `--instance-reuse N`: kept instances serve requests of different users and
//! repositories one after another, and nothing of one request reaches the next:
//! each answer is the one a fresh instance gives. A reload reaches kept instances
//! (they were made with the old settings, so they go). The metrics show that
//! instances were in fact reused, so these tests cannot pass with reuse off.

use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{basic_auth, bcrypt_hash, replace, require_host_binary, send_signal, AuthFiles, RegistryServer};

const POLICY: &str = r#"
[[rules]]
repositories = ["alice/**"]
users = ["alice"]
actions = ["pull", "push", "delete"]

[[rules]]
repositories = ["bob/**"]
users = ["bob"]
actions = ["pull", "push"]
"#;

/// alice and bob, each with a repository tree of their own.
fn files() -> AuthFiles {
    AuthFiles::new(&[("alice", "alice-pw", 4), ("bob", "bob-pw", 4)], Some(POLICY))
}

/// registry-host with access control, reuse and the metrics on; the metrics URL.
fn start(files: &AuthFiles) -> (RegistryServer, String) {
    let mut flags = files.flags();
    flags.extend(["--instance-reuse", "1000", "--metrics-listen", "127.0.0.1:0"].map(String::from));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = RegistryServer::start_host_with("127.0.0.1:0", &flags, plain_client());
    let metrics = server.metrics_url();
    (server, metrics)
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap()
}

/// The status of `GET path` with `authorization` (none: anonymous), and the body.
async fn get(server: &RegistryServer, path: &str, authorization: Option<&str>) -> (StatusCode, String) {
    let mut request = server.client().get(server.url(path)).header("accept", crate::common::media::OCI_MANIFEST);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let resp = request.send().await.expect("GET");
    (resp.status(), resp.text().await.unwrap_or_default())
}

/// How many instances the server has made (its instantiation histogram's count).
async fn instantiations(metrics: &str) -> u64 {
    let text = reqwest::Client::builder().no_proxy().build().unwrap().get(metrics).send().await.unwrap();
    let text = text.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("registry_component_instantiation_seconds_count "))
        .map(|v| v.trim().parse::<f64>().expect("a count") as u64)
        .unwrap_or_else(|| panic!("no instantiation count in:\n{text}"))
}

#[tokio::test]
async fn kept_instances_answer_each_user_and_repository_as_fresh_ones_do() {
    require_host_binary();
    let files = files();
    let (mut server, metrics) = start(&files);
    let alice = basic_auth("alice", "alice-pw");
    let bob = basic_auth("bob", "bob-pw");
    server.authorize(Some(&alice));
    let alices = server.push_image("alice/app", &["v1"]).await;
    server.authorize(Some(&bob));
    let bobs = server.push_image("bob/app", &["v1", "v2"]).await;
    assert_ne!(alices, bobs);
    server.authorize(None);

    let made_before = instantiations(&metrics).await;
    let mut requests = 0u64;
    for round in 0..10 {
        let by_digest = |repo: &str| format!("/v2/{repo}/manifests/{alices}");
        let checks = [
            ("/v2/alice/app/manifests/v1".to_string(), Some(&alice), StatusCode::OK),
            // Right after alice's pull: bob must not inherit it.
            ("/v2/alice/app/manifests/v1".to_string(), Some(&bob), StatusCode::FORBIDDEN),
            ("/v2/alice/app/manifests/v1".to_string(), None, StatusCode::UNAUTHORIZED),
            ("/v2/bob/app/manifests/v2".to_string(), Some(&bob), StatusCode::OK),
            // alice's manifest is not bob's repository's, whatever ran before.
            (by_digest("bob/app"), Some(&bob), StatusCode::NOT_FOUND),
            (by_digest("alice/app"), Some(&alice), StatusCode::OK),
            ("/v2/bob/app/manifests/v1".to_string(), Some(&alice), StatusCode::FORBIDDEN),
            ("/v2/bob/app/tags/list".to_string(), Some(&bob), StatusCode::OK),
            ("/v2/alice/app/tags/list".to_string(), Some(&alice), StatusCode::OK),
            ("/v2/bob/app/tags/list".to_string(), None, StatusCode::UNAUTHORIZED),
        ];
        for (path, authorization, want) in checks {
            let authorization = authorization.map(String::as_str);
            let (status, body) = get(&server, &path, authorization).await;
            requests += 1;
            assert_eq!(status, want, "round {round}: GET {path} as {authorization:?}: {body}");
            if path.ends_with("/tags/list") && status == StatusCode::OK {
                let tags: serde_json::Value = serde_json::from_str(&body).unwrap();
                let want = if path.starts_with("/v2/bob/") {
                    serde_json::json!(["v1", "v2"])
                } else {
                    serde_json::json!(["v1"])
                };
                assert_eq!(tags["tags"], want, "round {round}: {path}");
            }
        }
        // The catalog lists what the caller may pull, and only that.
        for (authorization, want) in [(&alice, "alice/app"), (&bob, "bob/app")] {
            let (status, body) = get(&server, "/v2/_catalog", Some(authorization)).await;
            requests += 1;
            assert_eq!(status, StatusCode::OK, "{body}");
            let list: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(list["repositories"], serde_json::json!([want]), "round {round}");
        }
    }
    let made = instantiations(&metrics).await - made_before;
    assert!(made * 4 <= requests, "{made} instances made for {requests} sequential requests: reuse is not on");
}

#[tokio::test]
async fn a_reload_reaches_kept_instances() {
    require_host_binary();
    let files = files();
    let (server, metrics) = start(&files);
    let bob = basic_auth("bob", "bob-pw");
    for _ in 0..5 {
        assert_eq!(get(&server, "/v2/", Some(&bob)).await.0, StatusCode::OK);
    }
    let made = instantiations(&metrics).await;
    assert!(made <= 2, "{made} instances for 5 sequential requests");

    // bob leaves: the kept instances knew him, but the reload's settings do not.
    replace(&files.path("htpasswd"), format!("alice:{}\n", bcrypt_hash("alice-pw", 4)).as_bytes());
    send_signal(server.pid(), "HUP");
    server
        .wait_for_line(|l| l.contains("reload: access control:") && l.contains("htpasswd"), Duration::from_secs(15))
        .expect("the reload's line");
    for _ in 0..5 {
        assert_eq!(get(&server, "/v2/", Some(&bob)).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(get(&server, "/v2/", Some(&basic_auth("alice", "alice-pw"))).await.0, StatusCode::OK);
    }
}

//! Access control as clients meet it, in every deployment: the 401 challenge, the
//! token endpoint (GET with Basic or none, POST with the OAuth2 form), tokens and Basic
//! credentials on `/v2/` requests, and the negative matrix: no credentials, wrong
//! password, unknown user, a bcrypt entry of another cost, expired, foreign and
//! tampered tokens, a token for another repository, pull used to push, push used to
//! delete, anonymous pull allowed and refused, the catalog filtered. Secrets never
//! reach the data directory.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{
    assert_error, basic_auth, bearer_challenge, challenge_param, header, media, start_with_access, unique_id,
    AuthFiles, RegistryServer, SERVICE, TOKEN_KEY,
};

const POLICY: &str = r#"
admins = ["root"]

[groups]
writers = ["alice"]

[anonymous]
pull = ["public/**"]

[[rules]]
repositories = ["team/**"]
groups = ["writers"]
actions = ["pull", "push"]

[[rules]]
repositories = ["team/**", "public/**"]
users = ["bob"]
actions = ["pull"]
"#;

/// alice (cost 5), bob (cost 10: another cost must work alike), root (cost 4).
fn files() -> AuthFiles {
    AuthFiles::new(&[("alice", "alice-pw", 5), ("bob", "bob-pw", 10), ("root", "root-pw", 4)], Some(POLICY))
}

fn started() -> Option<(AuthFiles, RegistryServer)> {
    start_with_access(files)
}

/// A token signed with the configured key, as the registry would issue it, but with
/// `now` and `access` of the test's choosing.
fn forged(key: &[u8], sub: &str, scope: &str, issued: u64, ttl: u64) -> String {
    let key = registry_auth::TokenKey::new(key, SERVICE).unwrap();
    let scopes: Vec<_> = registry_auth::Scope::parse(scope).into_iter().collect();
    key.issue(sub, &scopes, issued, ttl, "e2e")
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn status_with(server: &RegistryServer, method: &str, path: &str, auth: Option<&str>) -> StatusCode {
    let mut request = reqwest::Client::new().request(method.parse().unwrap(), server.url(path));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.send().await.unwrap().status()
}

/// Pushes a one-layer image to `repo:tag` as root; the manifest digest.
async fn seed(server: &mut RegistryServer, repo: &str, tag: &str) -> String {
    server.authorize(Some(&basic_auth("root", "root-pw")));
    let digest = server.push_image(repo, &[tag]).await;
    server.authorize(None);
    digest
}

#[tokio::test]
async fn the_challenge_names_realm_service_and_scope() {
    let Some((_files, server)) = started() else { return };
    let resp = reqwest::Client::new().get(server.url("/v2/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = bearer_challenge(header(&resp, "www-authenticate"));
    assert_eq!(challenge_param(&challenge, "realm"), Some(server.url("/token")));
    assert_eq!(challenge_param(&challenge, "service").as_deref(), Some(SERVICE));
    assert_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

    let resp = reqwest::Client::new().post(server.url("/v2/team/app/blobs/uploads/")).send().await.unwrap();
    let challenge = bearer_challenge(header(&resp, "www-authenticate"));
    assert_eq!(challenge_param(&challenge, "scope").as_deref(), Some("repository:team/app:pull,push"));
}

#[tokio::test]
async fn token_flow_push_and_pull() {
    let Some((_files, mut server)) = started() else { return };
    let repo = format!("team/{}", unique_id());
    let token = server.token_for("POST", &format!("/v2/{repo}/blobs/uploads/"), Some(("alice", "alice-pw"))).await;
    server.authorize(Some(&format!("Bearer {token}")));
    let digest = server.push_image(&repo, &["v1"]).await;
    let (_, manifest) = server.get_json(&format!("/v2/{repo}/manifests/v1")).await;
    assert_eq!(manifest["schemaVersion"], 2);
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(server.get_blob(&repo, &layer).await.status(), StatusCode::OK);
    // bob may pull (a token from the same flow) but not push.
    let bob = server.token_for("GET", &format!("/v2/{repo}/manifests/v1"), Some(("bob", "bob-pw"))).await;
    let pulled =
        status_with(&server, "GET", &format!("/v2/{repo}/manifests/{digest}"), Some(&format!("Bearer {bob}"))).await;
    assert_eq!(pulled, StatusCode::OK);
}

#[tokio::test]
async fn no_credentials_wrong_password_and_unknown_user_are_refused() {
    let Some((_files, mut server)) = started() else { return };
    let repo = format!("team/{}", unique_id());
    seed(&mut server, &repo, "v1").await;
    let path = format!("/v2/{repo}/manifests/v1");
    assert_eq!(status_with(&server, "GET", &path, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(&server, "GET", &path, Some(&basic_auth("alice", "wrong"))).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status_with(&server, "GET", &path, Some(&basic_auth("mallory", "alice-pw"))).await,
        StatusCode::UNAUTHORIZED
    );
    for (user, password) in [("alice", "wrong"), ("mallory", "alice-pw")] {
        let resp = reqwest::Client::new()
            .get(server.url("/token"))
            .query(&[("service", SERVICE), ("scope", &format!("repository:{repo}:pull"))])
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    }
    assert_eq!(status_with(&server, "GET", &path, Some(&basic_auth("alice", "alice-pw"))).await, StatusCode::OK);
}

#[tokio::test]
async fn bcrypt_entries_of_another_cost_work_alike() {
    let Some((_files, mut server)) = started() else { return };
    let repo = format!("team/{}", unique_id());
    seed(&mut server, &repo, "v1").await;
    let path = format!("/v2/{repo}/tags/list");
    // alice's entry has cost 5, bob's cost 10.
    for (user, password) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        assert_eq!(
            status_with(&server, "GET", &path, Some(&basic_auth(user, password))).await,
            StatusCode::OK,
            "{user}"
        );
        let token = server.token_with_scope(&format!("repository:{repo}:pull"), Some((user, password))).await;
        assert_eq!(
            status_with(&server, "GET", &path, Some(&format!("Bearer {token}"))).await,
            StatusCode::OK,
            "{user}"
        );
    }
}

#[tokio::test]
async fn expired_foreign_and_tampered_tokens_are_refused() {
    let Some((_files, mut server)) = started() else { return };
    let repo = format!("team/{}", unique_id());
    seed(&mut server, &repo, "v1").await;
    let path = format!("/v2/{repo}/manifests/v1");
    let scope = format!("repository:{repo}:pull");
    let good = forged(TOKEN_KEY.as_bytes(), "alice", &scope, now(), 300);
    assert_eq!(status_with(&server, "GET", &path, Some(&format!("Bearer {good}"))).await, StatusCode::OK);

    let expired = forged(TOKEN_KEY.as_bytes(), "alice", &scope, now() - 3600, 300);
    let foreign = forged(b"another key, thirty-two bytes or longer", "alice", &scope, now(), 300);
    let mut tampered = good.clone().into_bytes();
    let middle = good.find('.').unwrap() + 5;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (what, token) in [("expired", expired), ("foreign", foreign), ("tampered", tampered)] {
        let resp = reqwest::Client::new().get(server.url(&path)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        let challenge = bearer_challenge(header(&resp, "www-authenticate"));
        assert_eq!(challenge_param(&challenge, "error").as_deref(), Some("invalid_token"), "{what}");
    }
}

#[tokio::test]
async fn a_token_for_another_repository_opens_nothing_here() {
    let Some((_files, mut server)) = started() else { return };
    let repo = format!("team/{}", unique_id());
    let other = format!("team/{}", unique_id());
    seed(&mut server, &repo, "v1").await;
    let token = server.token_with_scope(&format!("repository:{other}:pull,push"), Some(("alice", "alice-pw"))).await;
    let status =
        status_with(&server, "GET", &format!("/v2/{repo}/manifests/v1"), Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_pull_token_cannot_push() {
    let Some((_files, server)) = started() else { return };
    let repo = format!("team/{}", unique_id());
    let token = server.token_with_scope(&format!("repository:{repo}:pull"), Some(("alice", "alice-pw"))).await;
    let resp = reqwest::Client::new()
        .post(server.url(&format!("/v2/{repo}/blobs/uploads/")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = bearer_challenge(header(&resp, "www-authenticate"));
    assert_eq!(challenge_param(&challenge, "error").as_deref(), Some("insufficient_scope"));
    // bob asks for push but the policy gives him pull only: his token cannot push.
    let bob = server.token_with_scope(&format!("repository:{repo}:pull,push"), Some(("bob", "bob-pw"))).await;
    let resp = reqwest::Client::new()
        .post(server.url(&format!("/v2/{repo}/blobs/uploads/")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::FORBIDDEN, "DENIED").await;
}

#[tokio::test]
async fn push_without_delete_cannot_delete() {
    let Some((_files, mut server)) = started() else { return };
    let repo = format!("team/{}", unique_id());
    let digest = seed(&mut server, &repo, "v1").await;
    let path = format!("/v2/{repo}/manifests/{digest}");
    let token =
        server.token_with_scope(&format!("repository:{repo}:pull,push,delete"), Some(("alice", "alice-pw"))).await;
    let resp = reqwest::Client::new().delete(server.url(&path)).bearer_auth(&token).send().await.unwrap();
    assert_error(resp, StatusCode::FORBIDDEN, "DENIED").await;
    let resp = reqwest::Client::new()
        .delete(server.url(&path))
        .header("authorization", basic_auth("alice", "alice-pw"))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::FORBIDDEN, "DENIED").await;
    assert_eq!(status_with(&server, "DELETE", &path, Some(&basic_auth("root", "root-pw"))).await, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn anonymous_pull_is_allowed_where_the_policy_says_and_refused_elsewhere() {
    let Some((_files, mut server)) = started() else { return };
    let public = format!("public/{}", unique_id());
    let private = format!("team/{}", unique_id());
    seed(&mut server, &public, "v1").await;
    seed(&mut server, &private, "v1").await;
    let resp = reqwest::Client::new()
        .get(server.url(&format!("/v2/{public}/manifests/v1")))
        .header("accept", media::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // An anonymous token works there too, and grants no push.
    let token = server.token_with_scope(&format!("repository:{public}:pull,push"), None).await;
    assert_eq!(
        status_with(&server, "GET", &format!("/v2/{public}/tags/list"), Some(&format!("Bearer {token}"))).await,
        StatusCode::OK
    );
    assert_eq!(
        status_with(&server, "POST", &format!("/v2/{public}/blobs/uploads/"), Some(&format!("Bearer {token}"))).await,
        StatusCode::UNAUTHORIZED
    );
    // Private: refused, and the same answer as for a repository that does not exist.
    let existing = reqwest::Client::new().get(server.url(&format!("/v2/{private}/tags/list"))).send().await.unwrap();
    let missing =
        reqwest::Client::new().get(server.url(&format!("/v2/team/{}/tags/list", unique_id()))).send().await.unwrap();
    assert_eq!(existing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_catalog_lists_only_what_the_caller_may_pull() {
    let Some((_files, mut server)) = started() else { return };
    let id = unique_id();
    let repos = [format!("public/{id}"), format!("team/{id}"), format!("other/{id}")];
    for repo in &repos {
        seed(&mut server, repo, "v1").await;
    }
    let names = |body: Value| -> Vec<String> {
        body["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .filter(|n| n.ends_with(&id))
            .collect()
    };
    let list = |auth: Option<String>| {
        let server = &server;
        async move {
            let mut request = reqwest::Client::new().get(server.url("/v2/_catalog"));
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            names(resp.json().await.unwrap())
        }
    };
    assert_eq!(list(None).await, [repos[0].clone()]);
    assert_eq!(list(Some(basic_auth("alice", "alice-pw"))).await, [repos[1].clone()]);
    assert_eq!(list(Some(basic_auth("bob", "bob-pw"))).await, [repos[0].clone(), repos[1].clone()]);
    assert_eq!(list(Some(basic_auth("root", "root-pw"))).await.len(), 3);
    let token = server.token_with_scope("registry:catalog:*", Some(("alice", "alice-pw"))).await;
    assert_eq!(list(Some(format!("Bearer {token}"))).await, [repos[1].clone()]);
}

#[tokio::test]
async fn docker_login_form_and_refresh_token() {
    let Some((_files, server)) = started() else { return };
    let repo = format!("team/{}", unique_id());
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "alice-pw"),
        ("service", SERVICE),
        ("client_id", "docker"),
        ("access_type", "offline"),
        ("scope", ""),
    ];
    let resp = reqwest::Client::new().post(server.url("/token")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().expect("a refresh token").to_string();
    let scope = format!("repository:{repo}:pull,push");
    let form = [("grant_type", "refresh_token"), ("refresh_token", &refresh), ("service", SERVICE), ("scope", &scope)];
    let resp = reqwest::Client::new().post(server.url("/token")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let token = resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        status_with(&server, "POST", &format!("/v2/{repo}/blobs/uploads/"), Some(&format!("Bearer {token}"))).await,
        StatusCode::ACCEPTED
    );
    let resp = reqwest::Client::new()
        .post(server.url("/token"))
        .form(&[("grant_type", "password"), ("username", "alice"), ("password", "nope"), ("service", SERVICE)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn basic_credentials_on_every_request_push_and_pull() {
    let Some((_files, mut server)) = started() else { return };
    let repo = format!("team/{}", unique_id());
    server.authorize(Some(&basic_auth("alice", "alice-pw")));
    let digest = server.push_image(&repo, &["v1", "v2"]).await;
    let (_, tags) = server.get_json(&format!("/v2/{repo}/tags/list")).await;
    assert_eq!(tags["tags"], serde_json::json!(["v1", "v2"]));
    let (_, manifest) = server.get_json(&format!("/v2/{repo}/manifests/{digest}")).await;
    assert_eq!(manifest["schemaVersion"], 2);
}

#[tokio::test]
async fn secrets_never_reach_the_data_directory() {
    let Some((_files, mut server)) = started() else { return };
    let repo = format!("team/{}", unique_id());
    server.authorize(Some(&basic_auth("alice", "alice-pw")));
    server.push_image(&repo, &["v1"]).await;
    let token = server.token_with_scope(&format!("repository:{repo}:pull"), Some(("alice", "alice-pw"))).await;
    assert_eq!(
        status_with(&server, "GET", &format!("/v2/{repo}/tags/list"), Some(&format!("Bearer {token}"))).await,
        StatusCode::OK
    );
    let mut found = Vec::new();
    for (name, bytes) in server.stored().expect("a registry of the test's own").files() {
        for secret in ["alice-pw", TOKEN_KEY, token.as_str()] {
            if name.contains(secret) || bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push(format!("{name} holds {secret:?}"));
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
}

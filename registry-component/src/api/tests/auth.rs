//! Access control through the whole request path: challenges, the token
//! endpoint, tokens and Basic credentials against the policy.

use super::{Answer, Registry};
use crate::storage::memory::MemoryBody;
use crate::storage::Storage;
use base64::Engine as _;
use std::time::{Duration, SystemTime};

/// `htpasswd -nbB -C 4 <user> <user>-pw` for alice, bob and root.
const HTPASSWD: &str = "alice:$2y$04$6MC1dw/xwtZW.WY0pd9Qwe2MKLWU/6rQXSwtp50msSwO6rEH4E.Bi
bob:$2y$04$hCNV/1bLsQ1WfvaG5FMtBOLcMNZrap9SllrHrskcE9izpnXc8Roei
root:$2y$04$tR8cvqSg5ooaapNb6ZykwughycE7n77A9FEM3llU5EsYft4hB4pVq
";

const POLICY: &str = r#"
admins = ["root"]
[anonymous]
pull = ["public/**"]
[[rules]]
repositories = ["team/**"]
users = ["alice"]
actions = ["pull", "push"]
[[rules]]
repositories = ["team/**", "public/**"]
users = ["bob"]
actions = ["pull"]
"#;

const KEY: &str = "a token key of at least thirty-two bytes";

fn registry() -> Registry {
    let registry = Registry::with_access(&[
        ("REGISTRY_AUTH_HTPASSWD", HTPASSWD),
        ("REGISTRY_AUTH_POLICY", POLICY),
        ("REGISTRY_AUTH_TOKEN_KEY", KEY),
        ("REGISTRY_AUTH_SERVICE", "test-registry"),
        ("REGISTRY_CLIENT_ADDRESS_HEADER", "x-client"),
        ("REGISTRY_USER_HEADER", "x-user"),
    ]);
    registry.storage().set_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    registry
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

impl Registry {
    fn as_user(&self, method: &str, path: &str, auth: &str, body: &[u8]) -> Answer {
        let len = body.len().to_string();
        self.send(
            method,
            path,
            &[("Authorization", auth), ("Content-Length", &len), ("x-client", "192.0.2.7")],
            MemoryBody::new(body),
        )
    }

    /// A token from the GET endpoint for `scope`, signed in as `user`.
    fn token(&self, user: Option<&str>, scope: &str) -> String {
        let path = format!("/token?service=test-registry&scope={scope}");
        let answer = match user {
            Some(user) => self.as_user("GET", &path, &basic(user, &format!("{user}-pw")), b""),
            None => self.get(&path),
        };
        answer.expect(200, None);
        let json = answer.json();
        assert_eq!(json["token"], json["access_token"]);
        json["token"].as_str().unwrap().to_string()
    }

    fn with_token(&self, method: &str, path: &str, token: &str, body: &[u8]) -> Answer {
        self.as_user(method, path, &format!("Bearer {token}"), body)
    }

    /// Pushes one blob as root; its digest.
    fn seed_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = crate::oci::digest::Digest::of_bytes(data).to_string();
        self.as_user("POST", &format!("/v2/{repo}/blobs/uploads/?digest={digest}"), &basic("root", "root-pw"), data)
            .expect(201, None);
        digest
    }
}

#[test]
fn without_credentials_the_challenge_names_realm_service_and_scope() {
    let registry = registry();
    let answer = registry.send("GET", "/v2/", &[("Host", "reg.example:5080")], MemoryBody::new(Vec::new()));
    answer.expect(401, Some("UNAUTHORIZED"));
    assert_eq!(
        answer.header("WWW-Authenticate"),
        Some(r#"Bearer realm="http://reg.example:5080/token",service="test-registry""#)
    );
    let answer = registry.send("GET", "/v2/team/app/manifests/latest", &[("Host", "h")], MemoryBody::new(Vec::new()));
    answer.expect(401, Some("UNAUTHORIZED"));
    assert_eq!(
        answer.header("WWW-Authenticate"),
        Some(r#"Bearer realm="http://h/token",service="test-registry",scope="repository:team/app:pull""#)
    );
    let push = registry.send("POST", "/v2/team/app/blobs/uploads/", &[], MemoryBody::new(Vec::new()));
    push.expect(401, Some("UNAUTHORIZED"));
    assert!(push.header("WWW-Authenticate").unwrap().contains(r#"scope="repository:team/app:pull,push""#));
}

#[test]
fn an_unknown_and_an_existing_repository_look_the_same_without_access() {
    let registry = registry();
    registry.seed_blob("team/app", b"layer");
    let existing = registry.get("/v2/team/app/tags/list");
    let missing = registry.get("/v2/team/nothing/tags/list");
    existing.expect(401, Some("UNAUTHORIZED"));
    missing.expect(401, Some("UNAUTHORIZED"));
    let bob = basic("bob", "bob-pw");
    // bob may pull team/**, not other/**: denied alike whether it exists or not.
    registry.seed_blob("other/app", b"x");
    let a = registry.as_user("GET", "/v2/other/app/tags/list", &bob, b"");
    let b = registry.as_user("GET", "/v2/other/none/tags/list", &bob, b"");
    a.expect(403, Some("DENIED"));
    b.expect(403, Some("DENIED"));
    assert_eq!(a.body.len(), b.body.len() + "app".len() - "none".len());
}

#[test]
fn the_token_grants_what_was_asked_and_the_policy_allows() {
    let registry = registry();
    let token = registry.token(Some("bob"), "repository:team/app:pull,push");
    let claims =
        registry_auth::TokenKey::new(KEY.as_bytes(), "test-registry").unwrap().verify(&token, 1_800_000_001).unwrap();
    assert_eq!(claims.sub, "bob");
    assert_eq!(claims.access.len(), 1);
    assert_eq!(claims.access[0].actions, ["pull"]);
    // Pull works with it; push is denied (bob may not push, whatever he asks).
    let digest = registry.seed_blob("team/app", b"layer");
    registry.with_token("HEAD", &format!("/v2/team/app/blobs/{digest}"), &token, b"").expect(200, None);
    registry.with_token("POST", "/v2/team/app/blobs/uploads/", &token, b"").expect(403, Some("DENIED"));
    // A token for another repository does not open this one.
    registry.seed_blob("public/x", b"p");
    registry.with_token("GET", "/v2/public/x/tags/list", &token, b"").expect(401, Some("UNAUTHORIZED"));
}

#[test]
fn a_pull_token_cannot_push_even_for_a_user_who_may() {
    let registry = registry();
    let pull = registry.token(Some("alice"), "repository:team/app:pull");
    let answer = registry.with_token("POST", "/v2/team/app/blobs/uploads/", &pull, b"");
    answer.expect(401, Some("UNAUTHORIZED"));
    assert!(answer.header("WWW-Authenticate").unwrap().contains(r#"error="insufficient_scope""#));
    let push = registry.token(Some("alice"), "repository:team/app:pull,push");
    registry.with_token("POST", "/v2/team/app/blobs/uploads/", &push, b"").expect(202, None);
}

#[test]
fn push_without_delete_cannot_delete() {
    let registry = registry();
    let digest = registry.seed_blob("team/app", b"layer");
    let token = registry.token(Some("alice"), "repository:team/app:pull,push,delete");
    registry.with_token("DELETE", &format!("/v2/team/app/blobs/{digest}"), &token, b"").expect(403, Some("DENIED"));
    registry
        .as_user("DELETE", &format!("/v2/team/app/blobs/{digest}"), &basic("alice", "alice-pw"), b"")
        .expect(403, Some("DENIED"));
    registry
        .as_user("DELETE", &format!("/v2/team/app/blobs/{digest}"), &basic("root", "root-pw"), b"")
        .expect(202, None);
}

#[test]
fn expired_foreign_and_tampered_tokens_are_refused_as_invalid() {
    let registry = registry();
    registry.seed_blob("team/app", b"layer");
    let path = "/v2/team/app/tags/list";
    let token = registry.token(Some("alice"), "repository:team/app:pull");
    registry.with_token("GET", path, &token, b"").expect(200, None);

    let other_key = registry_auth::TokenKey::new(b"another key, also thirty-two bytes long", "test-registry").unwrap();
    let scope = registry_auth::Scope::parse("repository:team/app:pull").unwrap();
    let foreign = other_key.issue("alice", &[scope], 1_800_000_000, 300, "x");
    let tampered = format!("{}x", &token[..token.len() - 1]);
    for bad in [foreign.as_str(), tampered.as_str(), "garbage"] {
        let answer = registry.with_token("GET", path, bad, b"");
        answer.expect(401, Some("UNAUTHORIZED"));
        assert!(answer.header("WWW-Authenticate").unwrap().contains(r#"error="invalid_token""#));
    }
    registry.storage().set_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + 301));
    let expired = registry.with_token("GET", path, &token, b"");
    expired.expect(401, Some("UNAUTHORIZED"));
    assert!(expired.header("WWW-Authenticate").unwrap().contains(r#"error="invalid_token""#));
}

#[test]
fn the_runtime_learns_who_signed_in_and_nobody_else_is_named() {
    let r = registry();
    // Basic: admitted, and refused on a repository the user may not push to.
    assert_eq!(r.as_user("GET", "/v2/team/app/tags/list", &basic("bob", "bob-pw"), b"").header("x-user"), Some("bob"));
    let denied = r.as_user("POST", "/v2/team/app/blobs/uploads/", &basic("bob", "bob-pw"), b"");
    assert_eq!((denied.status, denied.header("x-user")), (403, Some("bob")));
    // A token names its subject; the token endpoint, who signed in.
    let token = r.token(Some("alice"), "repository:team/app:pull");
    let bearer = format!("Bearer {token}");
    assert_eq!(r.as_user("GET", "/v2/team/app/tags/list", &bearer, b"").header("x-user"), Some("alice"));
    let issued = r.as_user("GET", "/token?service=test-registry", &basic("alice", "alice-pw"), b"");
    assert_eq!((issued.status, issued.header("x-user")), (200, Some("alice")));
    // Anonymous, a wrong password and an anonymous token name nobody.
    let anonymous = r.send("GET", "/v2/public/app/tags/list", &[], MemoryBody::new(b""));
    assert_eq!((anonymous.status, anonymous.header("x-user")), (404, None));
    assert_eq!(r.as_user("GET", "/v2/team/app/tags/list", &basic("bob", "nope"), b"").header("x-user"), None);
    let anonymous = format!("Bearer {}", r.token(None, "repository:public/app:pull"));
    assert_eq!(r.as_user("GET", "/v2/public/app/tags/list", &anonymous, b"").header("x-user"), None);
}

#[test]
fn basic_credentials_work_directly_and_wrong_ones_do_not() {
    let registry = registry();
    registry.seed_blob("team/app", b"layer");
    let path = "/v2/team/app/tags/list";
    registry.as_user("GET", "/v2/", &basic("alice", "alice-pw"), b"").expect(200, None);
    registry.as_user("GET", path, &basic("alice", "alice-pw"), b"").expect(200, None);
    registry.as_user("GET", path, &basic("alice", "wrong"), b"").expect(401, Some("UNAUTHORIZED"));
    registry.as_user("GET", path, &basic("mallory", "alice-pw"), b"").expect(401, Some("UNAUTHORIZED"));
    registry.as_user("GET", path, "Basic not-base64!", b"").expect(401, Some("UNAUTHORIZED"));
    registry
        .as_user("GET", "/token?scope=repository:team/app:pull", &basic("alice", "wrong"), b"")
        .expect(401, Some("UNAUTHORIZED"));
}

#[test]
fn a_successful_basic_sign_in_is_remembered_without_the_password() {
    let registry = registry();
    registry.as_user("GET", "/v2/", &basic("alice", "alice-pw"), b"").expect(200, None);
    let cached = registry.storage().kv_list_keys("registry/auth/basic/", None, 10).unwrap();
    assert_eq!(cached.len(), 1);
    // The key is a MAC: neither the user nor the password is in it or its value.
    for text in
        [cached[0].clone(), String::from_utf8(registry.storage().kv_get(&cached[0]).unwrap().unwrap().value).unwrap()]
    {
        assert!(!text.contains("alice"), "{text}");
    }
    registry.as_user("GET", "/v2/", &basic("alice", "alice-pw"), b"").expect(200, None);
    // A wrong password does not match the remembered sign-in.
    registry.as_user("GET", "/v2/", &basic("alice", "alice-pwx"), b"").expect(401, Some("UNAUTHORIZED"));
}

#[test]
fn repeated_failures_from_one_client_are_throttled() {
    let registry = registry();
    for _ in 0..crate::auth::sign_in::MAX_FAILURES {
        registry.as_user("GET", "/v2/", &basic("alice", "guess"), b"").expect(401, Some("UNAUTHORIZED"));
    }
    let throttled = registry.as_user("GET", "/v2/", &basic("alice", "alice-pw"), b"");
    throttled.expect(429, Some("TOOMANYREQUESTS"));
    assert!(throttled.header("Retry-After").is_some());
    // Another client address is not affected.
    let other = registry.send(
        "GET",
        "/v2/",
        &[("Authorization", &basic("alice", "alice-pw")), ("x-client", "198.51.100.1")],
        MemoryBody::new(Vec::new()),
    );
    other.expect(200, None);
    registry.storage().set_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + 61));
    registry.as_user("GET", "/v2/", &basic("alice", "alice-pw"), b"").expect(200, None);
}

#[test]
fn anonymous_pull_is_allowed_where_the_policy_says_and_nowhere_else() {
    let registry = registry();
    let digest = registry.seed_blob("public/tools", b"tool");
    registry.head(&format!("/v2/public/tools/blobs/{digest}")).expect(200, None);
    let token = registry.token(None, "repository:public/tools:pull,push");
    let claims =
        registry_auth::TokenKey::new(KEY.as_bytes(), "test-registry").unwrap().verify(&token, 1_800_000_001).unwrap();
    assert_eq!(claims.sub, "");
    assert_eq!(claims.access[0].actions, ["pull"]);
    registry.with_token("HEAD", &format!("/v2/public/tools/blobs/{digest}"), &token, b"").expect(200, None);
    registry.with_token("POST", "/v2/public/tools/blobs/uploads/", &token, b"").expect(401, Some("UNAUTHORIZED"));
    registry
        .send("POST", "/v2/public/tools/blobs/uploads/", &[], MemoryBody::new(Vec::new()))
        .expect(401, Some("UNAUTHORIZED"));
    registry.get("/v2/team/app/tags/list").expect(401, Some("UNAUTHORIZED"));
}

#[test]
fn the_catalog_lists_only_what_the_caller_may_pull() {
    let registry = registry();
    for repo in ["other/a", "public/p", "team/t1", "team/t2"] {
        registry.seed_blob(repo, repo.as_bytes());
        let (_, digest) = (0, registry.seed_blob(repo, b"config"));
        let manifest = super::image_manifest(
            "application/vnd.oci.image.manifest.v1+json",
            &digest.parse().unwrap(),
            &digest.parse().unwrap(),
            "",
        );
        registry
            .send(
                "PUT",
                &format!("/v2/{repo}/manifests/v1"),
                &[
                    ("Authorization", &basic("root", "root-pw")),
                    ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                ],
                MemoryBody::new(manifest),
            )
            .expect(201, None);
    }
    let list = |answer: Answer| answer.expect(200, None).json()["repositories"].clone();
    assert_eq!(list(registry.get("/v2/_catalog")), serde_json::json!(["public/p"]));
    assert_eq!(
        list(registry.as_user("GET", "/v2/_catalog", &basic("alice", "alice-pw"), b"")),
        serde_json::json!(["team/t1", "team/t2"])
    );
    assert_eq!(
        list(registry.as_user("GET", "/v2/_catalog", &basic("bob", "bob-pw"), b"")),
        serde_json::json!(["public/p", "team/t1", "team/t2"])
    );
    assert_eq!(
        list(registry.as_user("GET", "/v2/_catalog", &basic("root", "root-pw"), b"")).as_array().unwrap().len(),
        4
    );
    let page = registry.as_user("GET", "/v2/_catalog?n=1", &basic("alice", "alice-pw"), b"");
    assert_eq!(list(page), serde_json::json!(["team/t1"]));
    let token = registry.token(Some("alice"), "registry:catalog:*");
    assert_eq!(
        list(registry.with_token("GET", "/v2/_catalog", &token, b"")),
        serde_json::json!(["team/t1", "team/t2"])
    );
    let no_catalog = registry.token(Some("alice"), "repository:team/t1:pull");
    registry.with_token("GET", "/v2/_catalog", &no_catalog, b"").expect(401, Some("UNAUTHORIZED"));
}

#[test]
fn a_mount_needs_pull_on_its_source() {
    let registry = registry();
    let digest = registry.seed_blob("other/src", b"secret layer");
    // alice may push to team/app but not read other/src: the mount becomes an upload.
    let alice = basic("alice", "alice-pw");
    let answer =
        registry.as_user("POST", &format!("/v2/team/app/blobs/uploads/?mount={digest}&from=other/src"), &alice, b"");
    answer.expect(202, None);
    // Without `from`, nothing outside the target is looked at either.
    registry.as_user("POST", &format!("/v2/team/app/blobs/uploads/?mount={digest}"), &alice, b"").expect(202, None);
    // root (an admin) may pull everything: a mount without `from` finds it too.
    registry
        .as_user("POST", &format!("/v2/team/root-app/blobs/uploads/?mount={digest}"), &basic("root", "root-pw"), b"")
        .expect(201, None);
    // root may read other/src: mounted.
    registry
        .as_user(
            "POST",
            &format!("/v2/team/app/blobs/uploads/?mount={digest}&from=other/src"),
            &basic("root", "root-pw"),
            b"",
        )
        .expect(201, None);
}

#[test]
fn the_oauth_form_and_refresh_tokens_work_as_docker_login_uses_them() {
    let registry = registry();
    let form = b"grant_type=password&username=alice&password=alice-pw&service=test-registry&client_id=docker&access_type=offline&scope=repository%3Ateam%2Fapp%3Apull%2Cpush";
    let answer = registry.with_body("POST", "/token", &[("Content-Type", "application/x-www-form-urlencoded")], form);
    answer.expect(200, None);
    let json = answer.json();
    assert!(json["expires_in"].as_u64().unwrap() > 0);
    assert!(json["issued_at"].as_str().unwrap().starts_with("2027-01-15T"));
    let refresh = json["refresh_token"].as_str().unwrap().to_string();
    // The refresh token is not an access token.
    registry.with_token("GET", "/v2/", &refresh, b"").expect(401, Some("UNAUTHORIZED"));
    let form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&service=test-registry&scope=repository%3Ateam%2Fapp%3Apush"
    );
    let answer = registry.with_body("POST", "/token", &[], form.as_bytes());
    answer.expect(200, None);
    let token = answer.json()["access_token"].as_str().unwrap().to_string();
    registry.with_token("POST", "/v2/team/app/blobs/uploads/", &token, b"").expect(202, None);
    // Wrong password and bad grants.
    registry.with_body("POST", "/token", &[], b"grant_type=password&username=alice&password=x").expect(401, None);
    registry.with_body("POST", "/token", &[], b"grant_type=refresh_token&refresh_token=nope").expect(401, None);
    registry.with_body("POST", "/token", &[], b"grant_type=client_credentials").expect(400, None);
}

#[test]
fn broken_settings_fail_closed() {
    // Parsed only as far as a request needs: a sign-in needs the users.
    let registry = Registry::with_access(&[("REGISTRY_AUTH_HTPASSWD", "bob:{SHA}abc")]);
    registry.get("/v2/").expect(401, Some("UNAUTHORIZED"));
    let answer = registry.as_user("GET", "/v2/", &basic("bob", "x"), b"");
    answer.expect(500, Some("UNKNOWN"));
    assert!(!String::from_utf8_lossy(&answer.body).contains("SHA"));
    let both = Registry::with_access(&[("REGISTRY_AUTH_POLICY", ""), ("REGISTRY_AUTH_POLICY_FILE", "/x")]);
    both.get("/v2/").expect(500, Some("UNKNOWN"));
}

#[test]
fn a_generated_token_key_is_kept_in_storage_and_shared() {
    let registry = Registry::with_access(&[("REGISTRY_AUTH_HTPASSWD", HTPASSWD)]);
    let token = registry.token(Some("alice"), "repository:a:pull");
    let stored = registry.storage().kv_get("registry/token-key").unwrap().unwrap().value;
    assert_eq!(stored.len(), 32);
    let key = registry_auth::TokenKey::new(&stored, registry_auth::settings::DEFAULT_SERVICE).unwrap();
    let now = registry.storage().now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(key.verify(&token, now).unwrap().sub, "alice");
    // Without a policy file every user may do everything.
    registry.with_token("GET", "/v2/a/tags/list", &token, b"").expect(404, Some("NAME_UNKNOWN"));
}

#[test]
fn the_token_endpoint_is_absent_when_access_control_is_off() {
    Registry::new().get("/token?scope=repository:a:pull").expect(404, None);
}

#[test]
fn garbage_collection_is_for_admins_signed_in_with_basic_credentials() {
    let registry = registry();
    let post = |auth: Option<String>| {
        let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| ("Authorization", a)).into_iter().collect();
        registry.send("POST", "/_registry/gc", &headers, Default::default())
    };
    post(None).expect(401, Some("UNAUTHORIZED"));
    post(Some(basic("alice", "alice-pw"))).expect(403, Some("DENIED"));
    let answer = post(Some(basic("root", "root-pw")));
    answer.expect(200, None);
    assert_eq!(answer.json()["busy"], false);
    registry
        .send("GET", "/_registry/gc", &[("Authorization", &basic("root", "root-pw"))], Default::default())
        .expect(200, None);
}

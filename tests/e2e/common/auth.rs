//! Access control fixtures: an htpasswd file, a policy and a token key in a
//! temporary directory (outside the data directory, as users keep them), the flags
//! that hand them to the registry, and the Docker token flow as clients speak it.

use std::path::PathBuf;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

use super::*;

/// The token key every auth test configures, so that tests can sign tokens of
/// their own (expired, for another repository) the registry must judge.
pub const TOKEN_KEY: &str = "e2e token key: thirty-two bytes or more, never in the data directory";

/// The service name the tests configure.
pub const SERVICE: &str = "e2e-registry";

/// The files of one test's access control.
pub struct AuthFiles {
    dir: TempDir,
}

impl AuthFiles {
    /// `users` as (name, password, bcrypt cost), `policy` as TOML (none: every user
    /// may do everything).
    pub fn new(users: &[(&str, &str, u32)], policy: Option<&str>) -> AuthFiles {
        let dir = tempfile::Builder::new().prefix("registry-e2e-auth.").tempdir().expect("a temporary directory");
        let htpasswd: String =
            users.iter().map(|(user, password, cost)| format!("{user}:{}\n", bcrypt_hash(password, *cost))).collect();
        std::fs::write(dir.path().join("htpasswd"), htpasswd).expect("write htpasswd");
        if let Some(policy) = policy {
            std::fs::write(dir.path().join("policy.toml"), policy).expect("write the policy");
        }
        std::fs::write(dir.path().join("token.key"), TOKEN_KEY).expect("write the token key");
        AuthFiles { dir }
    }

    /// A file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The registry-host flags for these files (mapped to environment variables for
    /// registry.wasm, see `component_env`).
    pub fn flags(&self) -> Vec<String> {
        let mut flags = vec!["--htpasswd".to_string(), self.path("htpasswd").display().to_string()];
        if self.path("policy.toml").exists() {
            flags.extend(["--access".to_string(), self.path("policy.toml").display().to_string()]);
        }
        flags.extend(["--token-key".to_string(), self.path("token.key").display().to_string()]);
        flags.extend(["--auth-service".to_string(), SERVICE.to_string()]);
        flags
    }

    /// Starts this run's deployment with these files and `extra` flags.
    pub fn start(&self, extra: &[&str]) -> RegistryServer {
        let mut flags = self.flags();
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        RegistryServer::start_with_args(&flags)
    }
}

/// This run's deployment with access control from `files()`; `None` against an
/// external registry (`REGISTRY_TEST_URL`), whose users the tests do not know and
/// whose flags they cannot set.
pub fn start_with_access(files: impl FnOnce() -> AuthFiles) -> Option<(AuthFiles, RegistryServer)> {
    if external_registry() {
        eprintln!("access control tests need flags: skipped against REGISTRY_TEST_URL");
        return None;
    }
    let files = files();
    let server = files.start(&[]);
    Some((files, server))
}

/// A bcrypt hash as `htpasswd -B -C cost` writes it (`$2y$`).
pub fn bcrypt_hash(password: &str, cost: u32) -> String {
    bcrypt::hash_with_result(password, cost).expect("bcrypt").format_for_version(bcrypt::Version::TwoY)
}

/// `Basic <base64(user:password)>`.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// The parameters of a `WWW-Authenticate: Bearer k="v",…` challenge.
pub fn bearer_challenge(value: &str) -> Vec<(String, String)> {
    let rest = value.strip_prefix("Bearer ").unwrap_or_else(|| panic!("not a Bearer challenge: {value:?}"));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "quoted value expected in {value:?}");
        let val: String = chars.by_ref().take_while(|c| *c != '"').collect();
        params.push((key.trim().trim_start_matches(',').trim().to_string(), val));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    params
}

/// One parameter of a challenge.
pub fn challenge_param(params: &[(String, String)], key: &str) -> Option<String> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

impl RegistryServer {
    /// Follows the challenge of `method path` to the token endpoint as docker does
    /// (GET with Basic credentials, or none) and returns the token.
    pub async fn token_for(&self, method: &str, path: &str, credentials: Option<(&str, &str)>) -> String {
        let method: reqwest::Method = method.parse().expect("a method");
        let resp = reqwest::Client::new().request(method.clone(), self.url(path)).send().await.expect("request");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path} without credentials");
        let challenge = bearer_challenge(header(&resp, "www-authenticate"));
        let realm = challenge_param(&challenge, "realm").expect("realm");
        let mut query = vec![("service", challenge_param(&challenge, "service").expect("service"))];
        if let Some(scope) = challenge_param(&challenge, "scope") {
            query.push(("scope", scope));
        }
        self.token_from(&realm, &query, credentials).await
    }

    /// A token from the endpoint at `realm` for `query` (service, scopes).
    pub async fn token_from(&self, realm: &str, query: &[(&str, String)], credentials: Option<(&str, &str)>) -> String {
        let mut request = reqwest::Client::new().get(realm).query(query);
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        let resp = request.send().await.expect("GET token");
        assert_eq!(resp.status(), StatusCode::OK, "token request {query:?}");
        let body: Value = resp.json().await.expect("token JSON");
        assert_eq!(body["token"], body["access_token"]);
        assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0), "{body}");
        assert!(body["issued_at"].is_string(), "{body}");
        body["token"].as_str().expect("a token").to_string()
    }

    /// A token for `scope` (e.g. `repository:a:pull,push`) from this registry's endpoint.
    pub async fn token_with_scope(&self, scope: &str, credentials: Option<(&str, &str)>) -> String {
        let query = [("service", SERVICE.to_string()), ("scope", scope.to_string())];
        self.token_from(&self.url("/token"), &query, credentials).await
    }
}

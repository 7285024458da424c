//! `/token`: the token endpoint of Docker's token flow, served by the
//! registry itself.
//!
//! - `GET /token?service=…&scope=…[&scope=…][&offline_token=true]`, with
//!   Basic credentials or none (anonymous): what docker, containerd,
//!   skopeo and oras send first.
//! - `POST /token` with an OAuth2 form: `grant_type=password` (`username`,
//!   `password`) or `grant_type=refresh_token` (`refresh_token`), plus
//!   `service`, `scope` (space-separated) and `access_type=offline` for a
//!   refresh token. `docker login` keeps the refresh token instead of the
//!   password and uses this form afterwards.
//!
//! The token grants, per requested scope, what was asked intersected with
//! what the policy allows; it may grant nothing (the registry then answers
//! 401/403 to what it is used for). The answer has `token` and
//! `access_token` (the same), `expires_in`, `issued_at`, and
//! `refresh_token` where asked for.

use super::challenge::Refusal;
use super::{sign_in, Gate};
use crate::error::RegistryError;
use crate::http::{Request, Response};
use crate::oci::name::RepoName;
use crate::storage::Storage;
use registry_auth::settings::REFRESH_TOKEN_TTL;
use registry_auth::{Policy, Scope, Subject};

/// Largest form body read.
const FORM_LIMIT: usize = 64 << 10;

/// Answers a token request.
pub fn respond<S: Storage>(gate: &Gate, st: &S, req: &mut Request<S::Body>) -> Result<Response<S::Reader>, Refusal> {
    let client = gate.client_address(req);
    if req.method == "POST" {
        let form = req
            .read_body(FORM_LIMIT)?
            .ok_or_else(|| RegistryError::InvalidParameter(Some("the token request form is too large".into())))?;
        let params: Vec<(String, String)> = form_urlencoded::parse(&form).into_owned().collect();
        let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let user = match get("grant_type") {
            Some("password") => {
                let (Some(user), Some(password)) = (get("username"), get("password")) else {
                    return Ok(oauth_error(400, "invalid_request", "username and password are required"));
                };
                sign_in::check(gate, st, client.as_deref(), user, password)?;
                user.to_string()
            }
            Some("refresh_token") => {
                let Some(token) = get("refresh_token") else {
                    return Ok(oauth_error(400, "invalid_request", "refresh_token is required"));
                };
                let users = gate.htpasswd()?;
                let key = gate.token_key(st)?;
                match key.verify_refresh(token, super::unix_now(st), |user| users.hash_of(user).map(String::from)) {
                    Ok(user) => user,
                    Err(_) => return Ok(oauth_error(401, "invalid_grant", "the refresh token is invalid or expired")),
                }
            }
            _ => return Ok(oauth_error(400, "unsupported_grant_type", "grant_type must be password or refresh_token")),
        };
        let scopes = Scope::parse_all(params.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str()));
        let offline = get("access_type") == Some("offline");
        return issue(gate, st, Some(&user), &scopes, offline);
    }

    let query = req.query.clone().unwrap_or_default();
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let scopes = Scope::parse_all(params.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str()));
    let offline = params.iter().any(|(k, v)| k == "offline_token" && v == "true");
    let user = match super::credentials(req) {
        super::Credentials::None => None,
        super::Credentials::Basic { user, password } => {
            sign_in::check(gate, st, client.as_deref(), &user, &password)?;
            Some(user)
        }
        super::Credentials::Bearer(_) | super::Credentials::Malformed => {
            return Err(Refusal::Unauthorized {
                scope: None,
                error: None,
                detail: "the token endpoint takes Basic credentials or none".into(),
            })
        }
    };
    issue(gate, st, user.as_deref(), &scopes, offline)
}

/// What `subject` may have of each requested scope.
fn grant(policy: &Policy, subject: Subject<'_>, asked: &[Scope]) -> Vec<Scope> {
    asked
        .iter()
        .filter_map(|scope| match scope {
            Scope::Repository { name, actions } => {
                // A name no repository can have is granted nothing.
                name.parse::<RepoName>().ok()?;
                let granted = policy.granted(subject, name).intersect(*actions);
                (!granted.is_empty()).then(|| Scope::Repository { name: name.clone(), actions: granted })
            }
            Scope::Catalog => policy.may_pull_somewhere(subject).then_some(Scope::Catalog),
        })
        .collect()
}

fn issue<S: Storage>(
    gate: &Gate,
    st: &S,
    user: Option<&str>,
    asked: &[Scope],
    offline: bool,
) -> Result<Response<S::Reader>, Refusal> {
    let subject = user.map_or(Subject::Anonymous, Subject::User);
    let granted = grant(gate.policy()?, subject, asked);
    let key = gate.token_key(st)?;
    let now = super::unix_now(st);
    let ttl = gate.settings.token_ttl;
    let token = key.issue(user.unwrap_or(""), &granted, now, ttl, &token_id(st));
    let mut body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": ttl,
        "issued_at": humantime::format_rfc3339_seconds(st.now()).to_string(),
    });
    if let (true, Some(user)) = (offline, user) {
        let hash = gate.htpasswd()?.hash_of(user).unwrap_or_default().to_string();
        body["refresh_token"] = key.issue_refresh(user, &hash, now, REFRESH_TOKEN_TTL, &token_id(st)).into();
    }
    let response =
        Response::json(200, body.to_string()).header("Cache-Control", "no-store").header("Pragma", "no-cache");
    Ok(gate.name_user(response, user))
}

fn token_id<S: Storage>(st: &S) -> String {
    st.random_bytes(12).iter().map(|b| format!("{b:02x}")).collect()
}

/// An OAuth2 error (RFC 6749 §5.2), with the registry's error envelope
/// beside it for clients that read that instead.
fn oauth_error<R>(status: u16, error: &str, description: &str) -> Response<R> {
    let code = if status == 401 { "UNAUTHORIZED" } else { "UNSUPPORTED" };
    let body = serde_json::json!({
        "error": error,
        "error_description": description,
        "errors": [{ "code": code, "message": description, "detail": null }],
    });
    Response::json(status, body.to_string()).header("Cache-Control", "no-store")
}

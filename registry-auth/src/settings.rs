//! The access-control settings as the registry component receives them:
//! environment variables, which every wasi runtime can pass.
//!
//! | variable | meaning |
//! |---|---|
//! | `REGISTRY_AUTH_HTPASSWD` / `REGISTRY_AUTH_HTPASSWD_FILE` | the htpasswd text / a path to it |
//! | `REGISTRY_AUTH_POLICY` / `REGISTRY_AUTH_POLICY_FILE` | the policy (TOML) / a path to it |
//! | `REGISTRY_AUTH_TOKEN_KEY` / `REGISTRY_AUTH_TOKEN_KEY_FILE` | the token signing key (≥ 32 bytes) / a path to it |
//! | `REGISTRY_AUTH_SERVICE` | the service name in challenges and tokens (default `wasm-registry`) |
//! | `REGISTRY_AUTH_REALM` | the token endpoint's URL in challenges (default: this server's `/token`) |
//! | `REGISTRY_AUTH_TOKEN_TTL` | access token lifetime in seconds (default 300) |
//! | `REGISTRY_CLIENT_ADDRESS_HEADER` | a request header the runtime sets to the client's address (never one clients can set) |
//! | `REGISTRY_USER_HEADER` | a response header in which the registry names the signed-in user, for the runtime's access log (which must remove it) |
//!
//! Access control is on when an htpasswd or a policy is given. Paths are
//! read inside the component, so they name files of a directory the
//! runtime preopens (read-only, outside the data directory). Parsing is
//! left to the caller ([`Settings::htpasswd`], [`Settings::policy`]):
//! a request that a token already authorizes needs neither.

use crate::htpasswd::Htpasswd;
use crate::policy::Policy;
use crate::token::TokenKey;
use crate::ConfigError;

/// The service name when none is set.
pub const DEFAULT_SERVICE: &str = "wasm-registry";
/// Access token lifetime when none is set: five minutes, as distribution's.
pub const DEFAULT_TOKEN_TTL: u64 = 300;
/// Refresh tokens (what `docker login` keeps) last 30 days.
pub const REFRESH_TOKEN_TTL: u64 = 30 * 24 * 3600;

/// Access-control settings; present only when access control is on.
#[derive(Debug, Clone)]
pub struct Settings {
    htpasswd: Option<String>,
    policy: Option<String>,
    token_key: Option<String>,
    /// The service name.
    pub service: String,
    /// The token endpoint URL, if set.
    pub realm: Option<String>,
    /// Access token lifetime, seconds.
    pub token_ttl: u64,
    /// The header that carries the client's address, if the runtime sets one.
    pub client_address_header: Option<String>,
    /// The response header that names the signed-in user, if the runtime
    /// asked for one (it logs and removes it).
    pub user_header: Option<String>,
}

/// A header name setting: unset or empty is none; anything but a plain
/// lower-case token would be refused when the response is built. Shared
/// by every setting that names a header the registry adds for its runtime.
pub fn header_name(value: Option<String>, setting: &str) -> Result<Option<String>, ConfigError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') => Ok(Some(v)),
        Some(v) => Err(ConfigError(format!("{setting}={v:?}: a header name of lower-case letters, digits and '-'"))),
    }
}

impl Settings {
    /// Reads the settings through `var` (an environment lookup) and
    /// `read_file`; `None` when access control is off.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        read_file: impl Fn(&str) -> std::io::Result<String>,
    ) -> Result<Option<Settings>, ConfigError> {
        let text = |name: &str| -> Result<Option<String>, ConfigError> {
            let file_var = format!("{name}_FILE");
            match (var(name), var(&file_var)) {
                (Some(_), Some(_)) => Err(ConfigError(format!("both {name} and {file_var} are set; set one"))),
                (Some(inline), None) => Ok(Some(inline)),
                (None, Some(path)) => {
                    read_file(&path).map(Some).map_err(|e| ConfigError(format!("{file_var}: reading {path}: {e}")))
                }
                (None, None) => Ok(None),
            }
        };
        let htpasswd = text("REGISTRY_AUTH_HTPASSWD")?;
        let policy = text("REGISTRY_AUTH_POLICY")?;
        let token_key = text("REGISTRY_AUTH_TOKEN_KEY")?;
        if htpasswd.is_none() && policy.is_none() {
            return Ok(None);
        }
        let token_ttl = match var("REGISTRY_AUTH_TOKEN_TTL") {
            None => DEFAULT_TOKEN_TTL,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| (10..=86_400).contains(s))
                .ok_or_else(|| ConfigError(format!("REGISTRY_AUTH_TOKEN_TTL={v:?}: seconds from 10 to 86400")))?,
        };
        Ok(Some(Settings {
            htpasswd,
            policy,
            token_key,
            service: var("REGISTRY_AUTH_SERVICE").filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_SERVICE.into()),
            realm: var("REGISTRY_AUTH_REALM").filter(|s| !s.is_empty()),
            token_ttl,
            client_address_header: var("REGISTRY_CLIENT_ADDRESS_HEADER").filter(|s| !s.is_empty()),
            user_header: header_name(var("REGISTRY_USER_HEADER"), "REGISTRY_USER_HEADER")?,
        }))
    }

    /// The users (none when only a policy is given: anonymous access only).
    pub fn htpasswd(&self) -> Result<Htpasswd, ConfigError> {
        self.htpasswd.as_deref().map_or(Ok(Htpasswd::default()), Htpasswd::parse)
    }

    /// The policy (every user may do everything when none is given).
    pub fn policy(&self) -> Result<Policy, ConfigError> {
        self.policy.as_deref().map_or(Ok(Policy::users_may_do_everything()), Policy::parse)
    }

    /// The configured signing key; `None`: the registry keeps one in storage.
    pub fn token_key(&self) -> Option<Result<TokenKey, ConfigError>> {
        self.token_key.as_deref().map(|k| TokenKey::new(k.trim().as_bytes(), &self.service))
    }

    /// A signing key from stored secret bytes.
    pub fn stored_token_key(&self, secret: &[u8]) -> Result<TokenKey, ConfigError> {
        TokenKey::new(secret, &self.service)
    }

    /// Parses everything, as a host does at start-up to refuse bad files
    /// before serving.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.htpasswd()?;
        self.policy()?;
        if let Some(key) = self.token_key() {
            key?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)], files: &[(&str, &str)]) -> Result<Option<Settings>, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let files: HashMap<String, String> = files.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_vars(
            |name| vars.get(name).cloned(),
            |path| files.get(path).cloned().ok_or_else(|| std::io::Error::other("no such file")),
        )
    }

    #[test]
    fn off_without_users_or_policy() {
        assert!(settings(&[], &[]).unwrap().is_none());
        assert!(settings(&[("REGISTRY_AUTH_TOKEN_KEY", "k")], &[]).unwrap().is_none());
    }

    #[test]
    fn the_user_header_must_be_a_plain_header_name() {
        let with = |v: &str| settings(&[("REGISTRY_AUTH_POLICY", ""), ("REGISTRY_USER_HEADER", v)], &[]);
        assert_eq!(with("registry-user").unwrap().unwrap().user_header.as_deref(), Some("registry-user"));
        assert_eq!(with("").unwrap().unwrap().user_header, None);
        assert!(with("Registry User").unwrap_err().0.contains("REGISTRY_USER_HEADER"));
    }

    #[test]
    fn inline_or_from_a_file() {
        let s = settings(
            &[("REGISTRY_AUTH_POLICY_FILE", "/auth/policy.toml")],
            &[("/auth/policy.toml", "admins = [\"a\"]")],
        )
        .unwrap()
        .unwrap();
        assert!(s.policy().unwrap().is_admin(crate::Subject::User("a")));
        assert!(s.htpasswd().unwrap().is_empty());
        assert_eq!(s.service, DEFAULT_SERVICE);
        assert_eq!(s.token_ttl, DEFAULT_TOKEN_TTL);
        assert!(s.token_key().is_none());
        let missing = settings(&[("REGISTRY_AUTH_HTPASSWD_FILE", "/nope")], &[]).unwrap_err().0;
        assert!(missing.contains("/nope"), "{missing}");
        let both = settings(&[("REGISTRY_AUTH_HTPASSWD", "x"), ("REGISTRY_AUTH_HTPASSWD_FILE", "/x")], &[]);
        assert!(both.unwrap_err().0.contains("both"));
    }

    #[test]
    fn check_finds_every_bad_part() {
        let bad_users = settings(&[("REGISTRY_AUTH_HTPASSWD", "bob:$apr1$x$y")], &[]).unwrap().unwrap();
        assert!(bad_users.check().unwrap_err().0.contains("line 1"));
        let short_key =
            settings(&[("REGISTRY_AUTH_POLICY", ""), ("REGISTRY_AUTH_TOKEN_KEY", "short\n")], &[]).unwrap().unwrap();
        assert!(short_key.check().unwrap_err().0.contains("token key"));
        let ttl = settings(&[("REGISTRY_AUTH_POLICY", ""), ("REGISTRY_AUTH_TOKEN_TTL", "0")], &[]);
        assert!(ttl.unwrap_err().0.contains("REGISTRY_AUTH_TOKEN_TTL"));
    }
}

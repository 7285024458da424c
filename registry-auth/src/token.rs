//! Signed tokens (JWT, HS256): access tokens that carry the granted scopes
//! in Docker's `access` claim, and refresh tokens that `docker login`
//! keeps instead of the password. Verifying one is an HMAC and a small
//! JSON parse: no storage lookup, microseconds.
//!
//! `jsonwebtoken` signs. Verification, which every request with a token
//! pays, is done here: the registry only ever accepts tokens it signed, so
//! the header must be exactly the one it writes (no algorithm is taken
//! from the token), and what is left is an HMAC check and the claims'
//! parse. jsonwebtoken's `decode` took 5.3 µs per token natively against
//! 1 µs for this, and the difference is several times larger in wasm,
//! where it was a quarter of a manifest GET (the benchmark's bearer row).
//! A test checks that both agree.
//!
//! Expiry is checked against a time the caller passes (the registry's
//! clock, which tests set).

use crate::actions::Actions;
use crate::scope::Scope;
use crate::ConfigError;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Shortest accepted key: 256 bits, as HS256 wants.
pub const MIN_KEY_LEN: usize = 32;

/// The first part of every token this registry signs: base64url of
/// `{"typ":"JWT","alg":"HS256"}`, what `jsonwebtoken` writes for HS256.
const HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";

/// What a refresh token's `token_use` claim says.
const REFRESH: &str = "refresh";

/// One entry of the `access` claim, as Docker's token specification has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// Granted actions.
    pub actions: Vec<String>,
}

impl Access {
    /// The claim entry for a granted scope.
    pub fn of(scope: &Scope) -> Access {
        match scope {
            Scope::Repository { name, actions } => Access {
                kind: "repository".into(),
                name: name.clone(),
                actions: actions.names().into_iter().map(String::from).collect(),
            },
            Scope::Catalog => Access { kind: "registry".into(), name: "catalog".into(), actions: vec!["*".into()] },
        }
    }
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the service name.
    pub iss: String,
    /// The user, or "" for an anonymous client.
    pub sub: String,
    /// Audience: the service name.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    pub iat: u64,
    /// A unique id.
    pub jti: String,
    /// Granted scopes (access tokens).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<Access>,
    /// `refresh` on refresh tokens; absent on access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_use: Option<String>,
    /// Refresh tokens: a fingerprint of the user's password hash, so that
    /// changing the password (or removing the user) revokes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwd: Option<String>,
}

impl Claims {
    /// The actions the token grants on repository `name`.
    pub fn actions_on(&self, name: &str) -> Actions {
        self.access
            .iter()
            .filter(|a| a.kind == "repository" && a.name == name)
            .flat_map(|a| a.actions.iter())
            .filter_map(|w| Actions::parse_one(w))
            .fold(Actions::NONE, Actions::union)
    }

    /// Whether the token grants listing the catalog.
    pub fn may_list_catalog(&self) -> bool {
        self.access.iter().any(|a| a.kind == "registry" && a.name == "catalog")
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Malformed, signed with another key, for another service, or of the
    /// wrong kind.
    Invalid,
    /// Past its expiry.
    Expired,
}

/// The signing key, with the service it signs for.
#[derive(Clone)]
pub struct TokenKey {
    secret: Vec<u8>,
    encoding: EncodingKey,
    service: String,
}

/// Never prints the secret.
impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").field("service", &self.service).finish_non_exhaustive()
    }
}

impl TokenKey {
    /// A key from secret bytes (at least [`MIN_KEY_LEN`]).
    pub fn new(secret: &[u8], service: &str) -> Result<TokenKey, ConfigError> {
        if secret.len() < MIN_KEY_LEN {
            return Err(ConfigError(format!(
                "the token key has {} bytes; at least {MIN_KEY_LEN} are needed (e.g. `openssl rand -base64 48`)",
                secret.len()
            )));
        }
        Ok(TokenKey {
            secret: secret.to_vec(),
            encoding: EncodingKey::from_secret(secret),
            service: service.to_string(),
        })
    }

    /// The service tokens are for.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Signs an access token for `sub` granting `scopes`, valid `ttl`
    /// seconds from `now`.
    pub fn issue(&self, sub: &str, scopes: &[Scope], now: u64, ttl: u64, jti: &str) -> String {
        let claims = Claims {
            iss: self.service.clone(),
            sub: sub.to_string(),
            aud: self.service.clone(),
            exp: now + ttl,
            iat: now,
            jti: jti.to_string(),
            access: scopes.iter().map(Access::of).collect(),
            token_use: None,
            pwd: None,
        };
        self.sign(&claims)
    }

    /// Signs a refresh token for `user`, bound to their password hash.
    pub fn issue_refresh(&self, user: &str, password_hash: &str, now: u64, ttl: u64, jti: &str) -> String {
        let claims = Claims {
            iss: self.service.clone(),
            sub: user.to_string(),
            aud: self.service.clone(),
            exp: now + ttl,
            iat: now,
            jti: jti.to_string(),
            access: Vec::new(),
            token_use: Some(REFRESH.into()),
            pwd: Some(self.fingerprint(user, password_hash)),
        };
        self.sign(&claims)
    }

    /// The claims of a valid, unexpired access token.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let claims = self.verify_any(token, now)?;
        if claims.token_use.is_some() {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }

    /// The user of a valid, unexpired refresh token whose password hash is
    /// still `password_hash` (looked up by the caller from the `sub`).
    pub fn verify_refresh(
        &self,
        token: &str,
        now: u64,
        password_hash: impl FnOnce(&str) -> Option<String>,
    ) -> Result<String, TokenError> {
        let claims = self.verify_any(token, now)?;
        if claims.token_use.as_deref() != Some(REFRESH) {
            return Err(TokenError::Invalid);
        }
        let hash = password_hash(&claims.sub).ok_or(TokenError::Invalid)?;
        let expected = self.fingerprint(&claims.sub, &hash);
        let given = claims.pwd.as_deref().unwrap_or("");
        if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes())) {
            return Err(TokenError::Invalid);
        }
        Ok(claims.sub)
    }

    /// HMAC-SHA-256 under this key, for values kept in storage that must
    /// not reveal what they were made from.
    pub fn mac_hex(&self, parts: &[&[u8]]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        for part in parts {
            // Length-prefixed, so that parts cannot run into each other.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn fingerprint(&self, user: &str, password_hash: &str) -> String {
        self.mac_hex(&[b"refresh", user.as_bytes(), password_hash.as_bytes()])[..32].to_string()
    }

    fn sign(&self, claims: &Claims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).expect("HS256 signing of plain claims")
    }

    fn verify_any(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let (header, payload) = signed.split_once('.').ok_or(TokenError::Invalid)?;
        if header != HEADER_B64 {
            return Err(TokenError::Invalid);
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signature = b64.decode(signature).map_err(|_| TokenError::Invalid)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(signed.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&signature).map_err(|_| TokenError::Invalid)?;
        let payload = b64.decode(payload).map_err(|_| TokenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Invalid)?;
        if claims.iss != self.service || claims.aud != self.service {
            return Err(TokenError::Invalid);
        }
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn key() -> TokenKey {
        TokenKey::new(SECRET, "registry.test").unwrap()
    }

    fn push_scope(name: &str) -> Scope {
        Scope::Repository { name: name.into(), actions: Actions::PULL.union(Actions::PUSH) }
    }

    #[test]
    fn an_access_token_carries_its_grant() {
        let token = key().issue("alice", &[push_scope("a/b"), Scope::Catalog], 1000, 300, "id1");
        let claims = key().verify(&token, 1100).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.actions_on("a/b"), Actions::PULL.union(Actions::PUSH));
        assert_eq!(claims.actions_on("a/c"), Actions::NONE);
        assert!(claims.may_list_catalog());
        assert_eq!(claims.access[0].actions, ["pull", "push"]);
    }

    #[test]
    fn refuses_expired_foreign_and_tampered_tokens() {
        let token = key().issue("alice", &[push_scope("a")], 1000, 300, "id1");
        assert_eq!(key().verify(&token, 1300), Err(TokenError::Expired));
        let other = TokenKey::new(b"another key of thirty-two bytes!!", "registry.test").unwrap();
        assert_eq!(other.verify(&token, 1100), Err(TokenError::Invalid));
        let other_service = TokenKey::new(SECRET, "elsewhere").unwrap();
        assert_eq!(other_service.verify(&token, 1100), Err(TokenError::Invalid));
        // Swap the payload for one that grants more, keeping the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let forged =
            key().issue("alice", &[Scope::Repository { name: "a".into(), actions: Actions::ALL }], 1000, 300, "x");
        let forged_payload = forged.split('.').nth(1).unwrap();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(key().verify(&tampered, 1100), Err(TokenError::Invalid));
        assert_eq!(key().verify("not.a.token", 1100), Err(TokenError::Invalid));
        assert_eq!(key().verify("", 1100), Err(TokenError::Invalid));
        // alg=none is refused whatever the payload.
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{forged_payload}.");
        assert_eq!(key().verify(&unsigned, 1100), Err(TokenError::Invalid));
    }

    #[test]
    fn refresh_tokens_are_not_access_tokens_and_die_with_the_password() {
        let refresh = key().issue_refresh("alice", "$2y$hash-one", 1000, 86400, "r1");
        assert_eq!(key().verify(&refresh, 1100), Err(TokenError::Invalid));
        assert_eq!(key().verify_refresh(&refresh, 1100, |_| Some("$2y$hash-one".into())), Ok("alice".into()));
        assert_eq!(key().verify_refresh(&refresh, 1100, |_| Some("$2y$hash-two".into())), Err(TokenError::Invalid));
        assert_eq!(key().verify_refresh(&refresh, 1100, |_| None), Err(TokenError::Invalid));
        let access = key().issue("alice", &[], 1000, 300, "a1");
        assert_eq!(key().verify_refresh(&access, 1100, |_| Some("$2y$hash-one".into())), Err(TokenError::Invalid));
    }

    /// The verifier here and jsonwebtoken's `decode` agree on what is valid.
    #[test]
    fn jsonwebtoken_agrees_with_the_verifier() {
        use jsonwebtoken::{decode, DecodingKey, Validation};
        let token = key().issue("alice", &[push_scope("a/b")], 1000, 300, "id1");
        assert!(token.starts_with(&format!("{HEADER_B64}.")), "{token}");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["registry.test"]);
        validation.set_issuer(&["registry.test"]);
        validation.validate_exp = false;
        let theirs = |t: &str| decode::<Claims>(t, &DecodingKey::from_secret(SECRET), &validation).map(|d| d.claims);
        assert_eq!(theirs(&token).unwrap(), key().verify(&token, 1100).unwrap());
        // Every single-character change of the token is refused by both.
        let bytes = token.as_bytes();
        for i in 0..bytes.len() {
            let mut changed = bytes.to_vec();
            changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            if changed == token {
                continue;
            }
            let ours = key().verify(&changed, 1100).is_ok();
            assert!(!ours, "accepted a token changed at {i}");
            // jsonwebtoken may accept a change in the last character's unused bits.
            if i + 1 < bytes.len() {
                assert!(theirs(&changed).is_err(), "jsonwebtoken accepted a token changed at {i}");
            }
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(TokenKey::new(b"short", "s").unwrap_err().0.contains("at least 32"));
    }
}

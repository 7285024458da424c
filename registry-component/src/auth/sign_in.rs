//! Checking a user's password: bcrypt, with two things around it that
//! make it usable on the open internet.
//!
//! - A cache of recent successes in kv, so that a client sending Basic
//!   credentials on every request (scripts, curl) pays bcrypt once per
//!   [`CACHE_SECONDS`], not per request: bcrypt costs tens of
//!   milliseconds natively and more in wasm. The cache key is an HMAC,
//!   under the token key, of the user, their stored hash and the password,
//!   so it holds neither in clear, and a changed password or a removed
//!   user misses it.
//! - Throttling: after [`MAX_FAILURES`] failed sign-ins within
//!   [`WINDOW_SECONDS`], a client is refused (429, without bcrypt) until
//!   the window ends. A client is its address when the runtime passes one
//!   (`REGISTRY_CLIENT_ADDRESS_HEADER`), else the user name tried.

use super::challenge::Refusal;
use super::Gate;
use crate::error::RegistryError;
use crate::storage::{Storage, StorageExt};
use crate::store::keys;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// How long a successful Basic sign-in spares later ones bcrypt.
pub const CACHE_SECONDS: u64 = 600;
/// Failed sign-ins a client may make per window.
pub const MAX_FAILURES: u32 = 10;
/// The throttling window.
pub const WINDOW_SECONDS: u64 = 60;

#[derive(Serialize, Deserialize)]
struct Failures {
    count: u32,
    since: u64,
}

/// Checks `user`'s `password`; `Ok` when it is theirs.
pub fn check<S: Storage>(gate: &Gate, st: &S, client: Option<&str>, user: &str, password: &str) -> Result<(), Refusal> {
    let now = super::unix_now(st);
    let failures_key = keys::sign_in_failures(&client_hash(client, user));
    if let Some(retry_after) = throttled(st, &failures_key, now)? {
        return Err(Refusal::Throttled(retry_after));
    }
    let users = gate.htpasswd()?;
    let key = gate.token_key(st)?;
    if let Some(hash) = users.hash_of(user) {
        let cache_key =
            keys::basic_sign_in(&key.mac_hex(&[b"basic", user.as_bytes(), hash.as_bytes(), password.as_bytes()]));
        if cached_until(st, &cache_key)?.is_some_and(|until| until > now) {
            return Ok(());
        }
        if users.verify(user, password) {
            st.set(&cache_key, (now + CACHE_SECONDS).to_string().as_bytes())?;
            return Ok(());
        }
    } else {
        // Same cost as a wrong password, so user names cannot be probed.
        users.verify(user, password);
    }
    record_failure(st, &failures_key, now)?;
    eprintln!("registry: failed sign-in for user {user:?} from {}", client.unwrap_or("an unknown address"));
    Err(Refusal::Unauthorized { scope: None, error: None, detail: "incorrect username or password".into() })
}

fn client_hash(client: Option<&str>, user: &str) -> String {
    let id = match client {
        Some(address) => format!("address {address}"),
        None => format!("user {user}"),
    };
    Sha256::digest(id.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn cached_until<S: Storage>(st: &S, key: &str) -> Result<Option<u64>, RegistryError> {
    Ok(st.get(key)?.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
}

/// Seconds to wait, when the client has failed too often lately.
fn throttled<S: Storage>(st: &S, key: &str, now: u64) -> Result<Option<u64>, RegistryError> {
    let Some(bytes) = st.get(key)? else { return Ok(None) };
    let Ok(failures) = serde_json::from_slice::<Failures>(&bytes) else { return Ok(None) };
    let ends = failures.since + WINDOW_SECONDS;
    Ok((failures.count >= MAX_FAILURES && ends > now).then(|| ends - now))
}

/// Counts one failure; concurrent failures each count (`set-if`).
fn record_failure<S: Storage>(st: &S, key: &str, now: u64) -> Result<(), RegistryError> {
    for _ in 0..8 {
        let current = st.kv_get(key).map_err(RegistryError::from)?;
        let (failures, version) = match &current {
            Some(entry) => match serde_json::from_slice::<Failures>(&entry.value) {
                Ok(f) if f.since + WINDOW_SECONDS > now => {
                    (Failures { count: f.count + 1, since: f.since }, Some(entry.version))
                }
                _ => (Failures { count: 1, since: now }, Some(entry.version)),
            },
            None => (Failures { count: 1, since: now }, None),
        };
        let value = serde_json::to_vec(&failures).expect("plain struct");
        match st.kv_set_if(key, &value, version) {
            Ok(_) => return Ok(()),
            Err(crate::storage::Error::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    // Lost every race: others are counting failures of this client.
    Ok(())
}

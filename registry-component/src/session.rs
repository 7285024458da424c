//! Upload session tokens: the last path segment of an upload's `Location`.
//!
//! A token is `<upload-id>-<mac>`, where `mac` is the first 24 hex digits of
//! HMAC-SHA-256 over the repository name and the storage's upload id, keyed
//! by a per-registry secret kept in kv. The token alone proves which
//! repository the upload belongs to, so a session costs no kv write (and no
//! fsync) when it starts or ends; distribution signs its `_state` the same
//! way. Spec: distribution-spec v1.1, "Pushing blobs" (the `<location>`
//! is opaque to clients).

use crate::oci::name::RepoName;
use crate::oci::upload_id::UploadId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Hex digits of the MAC kept in a token (96 bits).
const MAC_HEX_LEN: usize = 24;

/// Bytes of a fresh secret.
pub const SECRET_LEN: usize = 32;

fn mac_hex(secret: &[u8], repo: &RepoName, upload_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    // The newline cannot occur in a name, so (repo, id) pairs never collide.
    mac.update(repo.as_str().as_bytes());
    mac.update(b"\n");
    mac.update(upload_id.as_bytes());
    let tag = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(MAC_HEX_LEN);
    for byte in &tag[..MAC_HEX_LEN / 2] {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The token for the storage upload `upload_id` in `repo`.
pub fn sign(secret: &[u8], repo: &RepoName, upload_id: &str) -> String {
    format!("{upload_id}-{}", mac_hex(secret, repo, upload_id))
}

/// The storage upload id inside `token`, if the token was issued for `repo`.
pub fn verify(secret: &[u8], repo: &RepoName, token: &UploadId) -> Option<String> {
    let (upload_id, mac) = token.as_str().rsplit_once('-')?;
    if upload_id.is_empty() || mac.len() != MAC_HEX_LEN {
        return None;
    }
    let expected = mac_hex(secret, repo, upload_id);
    // Compare without an early exit, so timing reveals nothing of the MAC.
    let diff = expected.bytes().zip(mac.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    (diff == 0).then(|| upload_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    #[test]
    fn round_trip_binds_repository_and_secret() {
        let secret = [7u8; SECRET_LEN];
        let id = "0f4c2a4e-8a3b-4d5e-9f00-112233445566";
        let token: UploadId = sign(&secret, &repo("library/busybox"), id).parse().unwrap();
        assert_eq!(verify(&secret, &repo("library/busybox"), &token).as_deref(), Some(id));
        assert_eq!(verify(&secret, &repo("library/other"), &token), None);
        assert_eq!(verify(&[8u8; SECRET_LEN], &repo("library/busybox"), &token), None);
    }

    #[test]
    fn rejects_forged_and_malformed_tokens() {
        let secret = [1u8; SECRET_LEN];
        let r = repo("a");
        let good = sign(&secret, &r, "abc");
        let mut forged = good.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        for bad in [forged.as_str(), "abc", "abc-", "-0123456789abcdef01234567", "abc-0123"] {
            let token: UploadId = bad.parse().unwrap();
            assert_eq!(verify(&secret, &r, &token), None, "{bad}");
        }
    }
}

//! The `Digest` newtype: a content address `sha256:<64 lowercase hex>`.
//!
//! Spec: OCI distribution-spec v1.1 "Pulling blobs" / image-spec
//! `descriptor.md#digests`. The image spec allows other algorithms (e.g.
//! `sha512`), but the blob store (`wit/blobs.wit`) names blobs only by
//! SHA-256, so anything else could never be found or stored: it is rejected
//! here, at the edge, and maps to `DIGEST_INVALID`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The only algorithm the registry supports, with its separator.
const PREFIX: &str = "sha256:";
/// Length of a hex-encoded SHA-256.
const HEX_LEN: usize = 64;

/// A validated digest: `sha256:` followed by exactly 64 lowercase hex chars.
///
/// Ordering is byte order of the string, the same order the kv store lists
/// keys in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

/// Why a string is not an acceptable digest. Maps to `DIGEST_INVALID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestError {
    reason: &'static str,
}

impl DigestError {
    /// A human-readable reason, suitable for the error `detail`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid digest: {}", self.reason)
    }
}

impl std::error::Error for DigestError {}

impl Digest {
    /// The SHA-256 digest of `bytes`.
    ///
    /// Only for small, in-memory content such as manifest bodies (at most
    /// 4 MiB); blobs are hashed by the host's blob store as they stream in.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        let hash = Sha256::digest(bytes);
        let mut s = String::with_capacity(PREFIX.len() + HEX_LEN);
        s.push_str(PREFIX);
        for byte in hash {
            // Lowercase hex by hand: avoids a `hex` dependency for 4 lines.
            const HEX: &[u8; 16] = b"0123456789abcdef";
            s.push(HEX[usize::from(byte >> 4)] as char);
            s.push(HEX[usize::from(byte & 0x0f)] as char);
        }
        Digest(s)
    }

    /// The whole digest, e.g. `sha256:e3b0…b855`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(DigestError { reason: "missing ':' between algorithm and hex" });
        };
        if algorithm != "sha256" {
            return Err(DigestError { reason: "unsupported algorithm: only sha256 is supported" });
        }
        if hex.len() != HEX_LEN {
            return Err(DigestError { reason: "sha256 hex must be exactly 64 characters" });
        }
        // Uppercase is rejected: the spec's sha256 encoding is lowercase, and
        // one spelling per digest keeps kv keys and comparisons canonical.
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError { reason: "sha256 hex must be lowercase [0-9a-f]" });
        }
        Ok(Digest(s.to_owned()))
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        // Validate on the borrowed form, then keep the caller's allocation.
        s.parse::<Digest>()?;
        Ok(Digest(s))
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_valid_digest() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.as_str(), EMPTY);
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn of_bytes_matches_known_vectors() {
        assert_eq!(Digest::of_bytes(b"").as_str(), EMPTY);
        assert_eq!(
            Digest::of_bytes(b"{}").as_str(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(
            Digest::of_bytes(b"abc").as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn rejects_malformed() {
        let sixty_four = "a".repeat(64);
        for bad in [
            "".to_string(),
            "sha256".to_string(),
            "sha256:".to_string(),
            ":".to_string(),
            sixty_four.clone(),
            format!("sha512:{sixty_four}"),
            format!("SHA256:{sixty_four}"),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}", "a".repeat(65)),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}g", "a".repeat(63)),
            format!("sha256:{sixty_four}:"),
            format!(" sha256:{sixty_four}"),
            format!("sha256:{sixty_four}\n"),
            format!("sha256:{}é", "a".repeat(62)),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn error_reason_is_specific() {
        let err = "sha512:abc".parse::<Digest>().unwrap_err();
        assert!(err.reason().contains("sha256"));
        assert!(err.to_string().starts_with("invalid digest"));
    }

    #[test]
    fn serde_round_trip_validates() {
        let d: Digest = serde_json::from_str(&format!("\"{EMPTY}\"")).unwrap();
        assert_eq!(d.as_str(), EMPTY);
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{EMPTY}\""));
        assert!(serde_json::from_str::<Digest>("\"sha256:nope\"").is_err());
    }

    #[test]
    fn try_from_string() {
        assert!(Digest::try_from(EMPTY.to_string()).is_ok());
        assert!(Digest::try_from("x".to_string()).is_err());
        let s: String = Digest::of_bytes(b"").into();
        assert_eq!(s, EMPTY);
    }
}

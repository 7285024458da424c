//! The `UploadId` newtype: the `<reference>` of `/v2/<name>/blobs/uploads/<reference>`.
//!
//! Spec: OCI distribution-spec v1.1 "Pushing blobs" (end-5, end-6, end-13);
//! the spec only says the location contains a unique session id. Ours is a
//! session token (`crate::session`): the id issued by the blob store
//! (`wit/blobs.wit`: at most 64 of `[0-9a-f-]`), `-`, and a MAC, so we accept
//! `[0-9a-f-]{1,128}`. Anything else cannot name
//! an upload the store issued, hence maps to `BLOB_UPLOAD_UNKNOWN` (404), not
//! to a 400: from the client's point of view that upload simply does not exist.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest accepted upload id.
pub const MAX_UPLOAD_ID_LEN: usize = 128;

/// A syntactically valid upload id. It may still be unknown to the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UploadId(String);

/// Why a string cannot be an upload id. Maps to `BLOB_UPLOAD_UNKNOWN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadIdError;

impl fmt::Display for UploadIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("upload id must be 1 to 128 characters of [0-9a-f-]")
    }
}

impl std::error::Error for UploadIdError {}

impl UploadId {
    /// The id as issued by the blob store and used in `Location`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UploadId {
    type Err = UploadIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = !s.is_empty()
            && s.len() <= MAX_UPLOAD_ID_LEN
            && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'));
        if valid {
            Ok(UploadId(s.to_owned()))
        } else {
            Err(UploadIdError)
        }
    }
}

impl TryFrom<String> for UploadId {
    type Error = UploadIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse::<UploadId>()?;
        Ok(UploadId(s))
    }
}

impl From<UploadId> for String {
    fn from(id: UploadId) -> String {
        id.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_store_ids() {
        for good in ["0", "-", "0123456789abcdef", "3f2c1a9e-4b7d-4c1e-9a55-0d6b1f2e8c77", &"f".repeat(128)] {
            assert_eq!(good.parse::<UploadId>().unwrap().as_str(), good);
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in ["", "A", "g", "abc/def", "..", "abc def", "%2e", "ABCDEF", &"f".repeat(129)] {
            assert!(bad.parse::<UploadId>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn serde_validates() {
        let id: UploadId = serde_json::from_str("\"ab-12\"").unwrap();
        assert_eq!(id.to_string(), "ab-12");
        assert!(serde_json::from_str::<UploadId>("\"xyz\"").is_err());
    }
}

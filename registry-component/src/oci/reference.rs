//! `Tag` and `Reference`: the `<reference>` of `/v2/<name>/manifests/<reference>`.
//!
//! Spec: OCI distribution-spec v1.1 "Pulling manifests": a reference MUST be
//! either a digest or a tag, and a tag MUST match
//! `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`. A tag can never contain `:`, so a
//! reference with a `:` is parsed as a digest and nothing else.
//!
//! v1.1 has no `TAG_INVALID` code (it is a legacy Docker code clients "SHOULD
//! NOT depend on"), so `error.rs` maps `TagError` onto `MANIFEST_INVALID`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::digest::{Digest, DigestError};

/// Longest accepted tag, in bytes (all accepted bytes are ASCII).
pub const MAX_TAG_LEN: usize = 128;

/// A validated tag, e.g. `latest` or `v1.2.3_rc-1`.
///
/// Ordering is byte order, the order the kv store lists tag keys in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

/// Why a string is not a valid tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError {
    reason: &'static str,
}

impl TagError {
    /// A human-readable reason, suitable for the error `detail`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid tag: {}", self.reason)
    }
}

impl std::error::Error for TagError {}

impl Tag {
    /// The tag as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = TagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        let Some((&first, rest)) = bytes.split_first() else {
            return Err(TagError { reason: "empty" });
        };
        if bytes.len() > MAX_TAG_LEN {
            return Err(TagError { reason: "longer than 128 characters" });
        }
        // The first character may not be '.' or '-': that keeps tags from
        // being the kv segments '.' / '..' and from looking like options.
        if !(first.is_ascii_alphanumeric() || first == b'_') {
            return Err(TagError { reason: "must start with [a-zA-Z0-9_]" });
        }
        if !rest.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
            return Err(TagError { reason: "must contain only [a-zA-Z0-9._-]" });
        }
        Ok(Tag(s.to_owned()))
    }
}

impl TryFrom<String> for Tag {
    type Error = TagError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse::<Tag>()?;
        Ok(Tag(s))
    }
}

impl From<Tag> for String {
    fn from(t: Tag) -> String {
        t.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// `/v2/<name>/manifests/<tag>`.
    Tag(Tag),
    /// `/v2/<name>/manifests/<digest>`.
    Digest(Digest),
}

/// Why a path segment is not a valid reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceError {
    /// No `:`, so it had to be a tag, and is not a valid one.
    Tag(TagError),
    /// Contains `:`, so it had to be a digest, and is not a valid one.
    Digest(DigestError),
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceError::Tag(e) => e.fmt(f),
            ReferenceError::Digest(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReferenceError {}

impl Reference {
    /// The reference as it appears in a URL.
    pub fn as_str(&self) -> &str {
        match self {
            Reference::Tag(t) => t.as_str(),
            Reference::Digest(d) => d.as_str(),
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse().map(Reference::Digest).map_err(ReferenceError::Digest)
        } else {
            s.parse().map(Reference::Tag).map_err(ReferenceError::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn accepts_valid_tags() {
        let max = format!("a{}", "b".repeat(127));
        for good in ["latest", "v1.2.3", "_", "_x", "0", "A-Z_a.z", "sha256-abc", "UPPER", "a..b", "a--", max.as_str()]
        {
            assert!(good.parse::<Tag>().is_ok(), "rejected {good:?}");
        }
    }

    #[test]
    fn rejects_invalid_tags() {
        let too_long = format!("a{}", "b".repeat(128));
        for bad in ["", ".", "..", ".a", "-a", "a b", "a/b", "a:b", "a+b", "a%3Ab", "é", "a\n", too_long.as_str()] {
            assert!(bad.parse::<Tag>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn reference_dispatches_on_colon() {
        assert_eq!("latest".parse::<Reference>().unwrap(), Reference::Tag("latest".parse().unwrap()));
        assert_eq!(D.parse::<Reference>().unwrap(), Reference::Digest(D.parse().unwrap()));
        assert!(matches!("sha256:abc".parse::<Reference>(), Err(ReferenceError::Digest(_))));
        assert!(matches!("md5:abc".parse::<Reference>(), Err(ReferenceError::Digest(_))));
        assert!(matches!(".bad".parse::<Reference>(), Err(ReferenceError::Tag(_))));
        assert!(matches!("".parse::<Reference>(), Err(ReferenceError::Tag(_))));
    }

    #[test]
    fn reference_display() {
        let r: Reference = D.parse().unwrap();
        assert_eq!(r.to_string(), D);
        assert_eq!(r.as_str(), D);
        let t: Reference = "v1".parse().unwrap();
        assert_eq!(t.to_string(), "v1");
    }

    #[test]
    fn tag_serde_validates() {
        let t: Tag = serde_json::from_str("\"v1\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"v1\"");
        assert!(serde_json::from_str::<Tag>("\".x\"").is_err());
    }
}

//! The `RepoName` newtype: a repository `<name>` such as `library/ubuntu`.
//!
//! Spec: OCI distribution-spec v1.1 "Pulling manifests": `<name>` MUST match
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
//! The grammar is matched by hand (no regex dependency): split on `/`, then
//! each path component is alternating runs of `[a-z0-9]+` and one separator.
//! The length limit of 255 follows the spec's implementer note and the older
//! "less than 256 characters" rule. Errors map to `NAME_INVALID`.
//!
//! Consequences other modules rely on: a component never starts with `_`, is
//! never empty, `.` or `..`, so names can be used as kv key segments and a
//! `_`-prefixed marker after a name can never be part of a name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest accepted repository name, in bytes (all accepted bytes are ASCII).
pub const MAX_NAME_LEN: usize = 255;

/// A validated repository name.
///
/// Ordering is byte order of the string, which is also the order of the kv
/// keys that end in a name (see `store::keys`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName(String);

/// Why a string is not a valid repository name. Maps to `NAME_INVALID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    reason: &'static str,
}

impl NameError {
    /// A human-readable reason, suitable for the error `detail`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid repository name: {}", self.reason)
    }
}

impl std::error::Error for NameError {}

impl RepoName {
    /// The name as given, e.g. `library/ubuntu`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_alnum(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9')
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: alnum runs joined by one separator.
fn is_valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        let run_start = i;
        while i < bytes.len() && is_alnum(bytes[i]) {
            i += 1;
        }
        if i == run_start {
            // Empty component, leading separator, or separator at the end.
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep_start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &bytes[sep_start..i];
        // Any other byte (uppercase, '/', non-ASCII) lands here and fails.
        let valid_sep = matches!(sep, b"." | b"_" | b"__") || sep.iter().all(|&b| b == b'-');
        if !valid_sep {
            return false;
        }
    }
}

impl FromStr for RepoName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(NameError { reason: "empty" });
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError { reason: "longer than 255 characters" });
        }
        if !s.split('/').all(is_valid_component) {
            return Err(NameError { reason: "each path component must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*" });
        }
        Ok(RepoName(s.to_owned()))
    }
}

impl TryFrom<String> for RepoName {
    type Error = NameError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse::<RepoName>()?;
        Ok(RepoName(s))
    }
}

impl From<RepoName> for String {
    fn from(n: RepoName) -> String {
        n.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        s.parse::<RepoName>().is_ok()
    }

    #[test]
    fn accepts_valid_names() {
        for good in [
            "a",
            "0",
            "library/ubuntu",
            "a/b/c/d/e/f/g/h",
            "foo.bar",
            "foo_bar",
            "foo__bar",
            "foo-bar",
            "foo---bar",
            "a.b_c__d-e--f",
            "v2/blobs/manifests/tags/uploads",
            "x1/2y/3-3/4.4",
        ] {
            assert!(ok(good), "rejected {good:?}");
            assert_eq!(good.parse::<RepoName>().unwrap().as_str(), good);
        }
    }

    #[test]
    fn rejects_invalid_names() {
        for bad in [
            "",
            "/",
            "a/",
            "/a",
            "a//b",
            "A",
            "Library/ubuntu",
            "_a",
            "a/_b",
            "a_",
            "a.",
            ".a",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "a._b",
            "a-.b",
            "a-_b",
            "a b",
            "a:b",
            "a%2fb",
            ".",
            "..",
            "a/./b",
            "a/../b",
            "é",
            "a\nb",
        ] {
            assert!(!ok(bad), "accepted {bad:?}");
        }
    }

    #[test]
    fn enforces_length_limit() {
        let max = format!("{}/{}", "a".repeat(127), "b".repeat(127));
        assert_eq!(max.len(), 255);
        assert!(ok(&max));
        let too_long = format!("{max}c");
        assert!(!ok(&too_long));
        assert_eq!(too_long.parse::<RepoName>().unwrap_err().reason(), "longer than 255 characters");
    }

    #[test]
    fn serde_validates() {
        let n: RepoName = serde_json::from_str("\"a/b\"").unwrap();
        assert_eq!(n.as_str(), "a/b");
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"a/b\"");
        assert!(serde_json::from_str::<RepoName>("\"A\"").is_err());
    }

    #[test]
    fn display_and_error_text() {
        let n: RepoName = "x/y".parse().unwrap();
        assert_eq!(n.to_string(), "x/y");
        let e = "".parse::<RepoName>().unwrap_err();
        assert_eq!(e.to_string(), "invalid repository name: empty");
    }
}

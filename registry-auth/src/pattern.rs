//! Repository name patterns of the policy file: an exact name
//! (`library/busybox`), `*` for any run of characters within one path
//! segment (`library/*` matches `library/busybox`, not `library/a/b`), and
//! `**` for any run including `/`. A pattern ending in `/**` also matches
//! the name before it (`team-a/**` matches `team-a` and everything under
//! it); `**` alone matches every name.

use crate::ConfigError;

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
}

impl Pattern {
    /// Checks `text`: `*` may only appear as `*` or `**`, never three in a row.
    pub fn parse(text: &str) -> Result<Pattern, ConfigError> {
        if text.is_empty() {
            return Err(ConfigError("an empty repository pattern".into()));
        }
        if text.contains("***") {
            return Err(ConfigError(format!("repository pattern {text:?}: `***` means nothing; use `*` or `**`")));
        }
        if text.chars().any(|c| c.is_whitespace()) {
            return Err(ConfigError(format!("repository pattern {text:?} contains white space")));
        }
        Ok(Pattern { text: text.to_string() })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        if let Some(base) = self.text.strip_suffix("/**") {
            if glob(base.as_bytes(), name.as_bytes()) {
                return true;
            }
        }
        glob(self.text.as_bytes(), name.as_bytes())
    }
}

/// Glob matching with `*` (not across `/`) and `**` (across `/`), by
/// backtracking over the pattern's stars; names are short, so the
/// quadratic worst case is small.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some(b'*') => {
            let double = pattern.get(1) == Some(&b'*');
            let rest = if double { &pattern[2..] } else { &pattern[1..] };
            // Try every length the star could cover, shortest first.
            for taken in 0..=name.len() {
                if glob(rest, &name[taken..]) {
                    return true;
                }
                if taken < name.len() && name[taken] == b'/' && !double {
                    return false;
                }
            }
            false
        }
        Some(&c) => name.first() == Some(&c) && glob(&pattern[1..], &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(name)
    }

    #[test]
    fn exact_names() {
        assert!(m("library/busybox", "library/busybox"));
        assert!(!m("library/busybox", "library/busybox2"));
        assert!(!m("library/busybox", "library"));
    }

    #[test]
    fn single_star_stays_in_its_segment() {
        assert!(m("library/*", "library/busybox"));
        assert!(!m("library/*", "library/a/b"));
        assert!(!m("library/*", "library"));
        assert!(m("team-*/app", "team-a/app"));
        assert!(!m("team-*/app", "team-a/x/app"));
        assert!(m("*", "busybox"));
        assert!(!m("*", "a/b"));
    }

    #[test]
    fn double_star_crosses_segments_and_covers_its_base() {
        assert!(m("team-a/**", "team-a/x"));
        assert!(m("team-a/**", "team-a/x/y/z"));
        assert!(m("team-a/**", "team-a"));
        assert!(!m("team-a/**", "team-ab"));
        assert!(!m("team-a/**", "team-b/x"));
        assert!(m("**", "anything/at/all"));
        assert!(m("**/cache", "a/b/cache"));
        assert!(!m("**/cache", "a/b/cached"));
    }

    #[test]
    fn refuses_meaningless_patterns() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("a/***").is_err());
        assert!(Pattern::parse("a b").is_err());
    }
}

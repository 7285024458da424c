//! Which repositories are mirrors of which upstream registry: the
//! `REGISTRY_PROXY` setting (TOML text; `REGISTRY_PROXY_FILE`, a path to
//! it), one `[[upstream]]` table per upstream:
//!
//! ```toml
//! [[upstream]]
//! prefix = "docker.io"                   # local names docker.io/<name> mirror <name> there
//! url = "https://registry-1.docker.io"
//! username = "me"                        # optional: the upstream's credentials
//! password = "…"
//! tag-ttl = 300                          # seconds a tag is served before it is checked again (default 300)
//! push = false                           # allow pushes into the prefix (default false)
//!
//! [[upstream]]
//! prefix = ""                            # the default: names no other prefix matches
//! url = "http://127.0.0.1:5000"
//! ```
//!
//! The longest prefix that matches whole name components wins.

use serde::Deserialize;
use std::time::Duration;

/// How long a tag is served from here before it is checked upstream again,
/// when the settings say nothing.
pub const DEFAULT_TAG_TTL: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    upstream: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Entry {
    prefix: String,
    url: String,
    username: Option<String>,
    password: Option<String>,
    tag_ttl: Option<u64>,
    #[serde(default)]
    push: bool,
}

/// One upstream registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Local names under it (`""`: the default).
    pub prefix: String,
    /// `scheme://host[:port]`, without a trailing slash.
    pub url: String,
    /// User and password for the upstream's token endpoint or Basic auth.
    pub credentials: Option<(String, String)>,
    /// How long a tag is served before it is checked upstream again.
    pub tag_ttl: Duration,
    /// Whether pushes into the prefix are allowed.
    pub push: bool,
}

/// A local repository that mirrors one upstream.
#[derive(Debug, PartialEq, Eq)]
pub struct Mirror<'a> {
    /// Its upstream.
    pub upstream: &'a Upstream,
    /// Its name there.
    pub remote: String,
}

/// Every upstream, longest prefix first.
#[derive(Debug, Default)]
pub struct Mirrors {
    upstreams: Vec<Upstream>,
}

impl Mirrors {
    /// Reads the settings through `var` and `read_file`; `None` when no
    /// repository is a mirror.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        read_file: impl Fn(&str) -> std::io::Result<String>,
    ) -> Result<Option<Mirrors>, String> {
        let text = match (var("REGISTRY_PROXY").filter(|v| !v.is_empty()), var("REGISTRY_PROXY_FILE")) {
            (Some(_), Some(_)) => return Err("both REGISTRY_PROXY and REGISTRY_PROXY_FILE are set; set one".into()),
            (Some(text), None) => text,
            (None, Some(path)) => read_file(&path).map_err(|e| format!("REGISTRY_PROXY_FILE: reading {path}: {e}"))?,
            (None, None) => return Ok(None),
        };
        let mirrors = Mirrors::parse(&text)?;
        Ok((!mirrors.upstreams.is_empty()).then_some(mirrors))
    }

    /// Parses the TOML text.
    pub fn parse(text: &str) -> Result<Mirrors, String> {
        let file: File = toml::from_str(text).map_err(|e| format!("REGISTRY_PROXY: {e}"))?;
        let mut upstreams = Vec::new();
        for entry in file.upstream {
            let prefix = entry.prefix.trim_matches('/').to_string();
            if !prefix.is_empty() && format!("{prefix}/x").parse::<crate::oci::name::RepoName>().is_err() {
                return Err(format!("REGISTRY_PROXY: prefix {:?} is not the start of a repository name", entry.prefix));
            }
            if upstreams.iter().any(|u: &Upstream| u.prefix == prefix) {
                return Err(format!("REGISTRY_PROXY: prefix {prefix:?} is given twice"));
            }
            let url = entry.url.trim_end_matches('/').to_string();
            let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
            if rest.is_none_or(|host| host.is_empty() || host.contains('/')) {
                return Err(format!("REGISTRY_PROXY: url {:?} is not http(s)://host[:port]", entry.url));
            }
            let credentials = match (entry.username, entry.password) {
                (Some(user), Some(password)) => Some((user, password)),
                (None, None) => None,
                _ => {
                    return Err(format!("REGISTRY_PROXY: upstream {url}: give both username and password, or neither"))
                }
            };
            let tag_ttl = entry.tag_ttl.map_or(DEFAULT_TAG_TTL, Duration::from_secs);
            upstreams.push(Upstream { prefix, url, credentials, tag_ttl, push: entry.push });
        }
        upstreams.sort_by_key(|u| std::cmp::Reverse(u.prefix.len()));
        Ok(Mirrors { upstreams })
    }

    /// One line for a log: each prefix and its upstream (never credentials).
    pub fn describe(&self) -> String {
        let each = self.upstreams.iter().map(|u| {
            let prefix = if u.prefix.is_empty() { "every other name".to_string() } else { format!("{}/", u.prefix) };
            let push = if u.push { ", pushes allowed" } else { "" };
            format!("{prefix} -> {} (tags checked every {}s{push})", u.url, u.tag_ttl.as_secs())
        });
        each.collect::<Vec<_>>().join("; ")
    }

    /// The upstream that `repo` mirrors, if any, and its name there.
    pub fn route(&self, repo: &str) -> Option<Mirror<'_>> {
        self.upstreams.iter().find_map(|upstream| {
            let remote = if upstream.prefix.is_empty() {
                repo
            } else {
                repo.strip_prefix(upstream.prefix.as_str())?.strip_prefix('/')?
            };
            // Docker Hub keeps its official images under `library/`, which
            // clients add only when they talk to Docker Hub itself.
            let remote = if upstream.url.ends_with("://registry-1.docker.io") && !remote.contains('/') {
                format!("library/{remote}")
            } else {
                remote.to_string()
            };
            Some(Mirror { upstream, remote })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
[[upstream]]
prefix = "docker.io"
url = "https://registry-1.docker.io/"
tag-ttl = 60

[[upstream]]
prefix = ""
url = "http://127.0.0.1:5000"
username = "u"
password = "p"
push = true
"#;

    #[test]
    fn the_longest_matching_prefix_wins_and_hub_names_get_library() {
        let mirrors = Mirrors::parse(TWO).unwrap();
        let hub = mirrors.route("docker.io/busybox").unwrap();
        assert_eq!(
            (hub.upstream.url.as_str(), hub.remote.as_str()),
            ("https://registry-1.docker.io", "library/busybox")
        );
        assert_eq!(hub.upstream.tag_ttl, Duration::from_secs(60));
        assert_eq!(mirrors.route("docker.io/me/app").unwrap().remote, "me/app");
        // Whole components only: docker.iox is not under docker.io.
        let other = mirrors.route("docker.iox/app").unwrap();
        assert_eq!((other.upstream.prefix.as_str(), other.remote.as_str()), ("", "docker.iox/app"));
        assert_eq!(other.upstream.credentials, Some(("u".into(), "p".into())));
        assert!(other.upstream.push);
    }

    #[test]
    fn without_a_default_other_names_are_local() {
        let mirrors = Mirrors::parse("[[upstream]]\nprefix = \"ghcr.io\"\nurl = \"https://ghcr.io\"\n").unwrap();
        assert!(mirrors.route("team/app").is_none());
        assert_eq!(mirrors.route("ghcr.io/o/app").unwrap().remote, "o/app");
        assert_eq!(mirrors.route("ghcr.io/o/app").unwrap().upstream.tag_ttl, DEFAULT_TAG_TTL);
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        for (text, why) in [
            ("[[upstream]]\nprefix = \"a\"\nurl = \"ftp://x\"\n", "is not http(s)"),
            ("[[upstream]]\nprefix = \"a\"\nurl = \"http://x/path\"\n", "is not http(s)"),
            ("[[upstream]]\nprefix = \"A B\"\nurl = \"http://x\"\n", "is not the start"),
            ("[[upstream]]\nprefix = \"a\"\nurl = \"http://x\"\nusername = \"u\"\n", "both username"),
            ("[[upstream]]\nprefix = \"a\"\nurl = \"http://x\"\ncolour = 1\n", "unknown field"),
            (
                "[[upstream]]\nprefix = \"\"\nurl = \"http://x\"\n[[upstream]]\nprefix = \"/\"\nurl = \"http://y\"\n",
                "twice",
            ),
        ] {
            let err = Mirrors::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn off_unless_set() {
        assert!(Mirrors::from_vars(|_| None, |_| Ok(String::new())).unwrap().is_none());
        let set = |name: &str| (name == "REGISTRY_PROXY").then(|| TWO.to_string());
        assert!(Mirrors::from_vars(set, |_| Ok(String::new())).unwrap().is_some());
    }
}

//! The kv key layout: the only code that turns typed values into kv keys
//! and back.
//!
//! Spec: the layout is ours; the key rules are `wit/kv.wit` (`/`-separated
//! segments, none empty, `.` or `..`; at most 1024 bytes). Every segment
//! built here is a repository name component, a tag, a digest, an upload
//! id or a fixed word, none of which can be empty, `.` or `..`.
//!
//! ```text
//! repositories/
//!   <name>/                               repository name, may contain '/'
//!     _blobs/<digest>                     blob link: <name> may serve this blob
//!     _manifests/<digest>                 manifest link; value: JSON {mediaType, size}
//!     _tags/<tag>                         value: manifest digest
//!     _referrers/<subject>/<referrer>     value: referrer descriptor JSON
//! catalog/<name>                          the repository exists
//! registry/upload-secret                  key of the upload session MACs
//! registry/token-key                      token signing key, unless configured
//! registry/auth/basic/<mac>               a recent Basic sign-in: expiry time
//! registry/auth/failures/<hash>           failed sign-ins of one client: count, since
//! registry/gc/run                         the current or last collection (crate::gc)
//! registry/gc/marks/<run>/live/<digest>   a collection found the blob in use
//! registry/gc/marks/<run>/doomed/<digest> a dry run would remove the blob
//! repositories/<name>/_gc                 a collection is removing manifests here: since
//! repositories/<name>/_mirror/fetching/<digest>  a mirror is fetching the blob upstream: since
//! repositories/<name>/_mirror/checked/<tag>      when a mirror last checked the tag upstream
//! ```
//!
//! Upload sessions have no key: their token carries a MAC instead
//! (`crate::session`). Deletes only unlink; the bytes leave with a collection
//! (`crate::gc`), so pushes write no reverse index.
//!
//! Why the `_` markers: a name is any number of segments, so the segment
//! after it must be something no name component can be. Name components
//! never start with `_` (see `oci::name`), so `repositories/a/_tags/` can
//! never be a prefix of a key of repository `a/b` or `a-b`, and listing one
//! repository's tags never sees another's (distribution does the same).
//!
//! Why `catalog/<name>` ends with the bare name: then key order equals name order (`catalog/a` < `catalog/a-b`
//! < `catalog/a/b`, as `a` < `a-b` < `a/b`), so the catalog pages straight
//! from `list-keys`. A trailing marker (`catalog/a/_repo`) would sort `a-b`
//! before `a`. The price: one key (`catalog/a`) can be a segment-prefix of
//! another (`catalog/a/b`), so a kv backend must not store a key as a plain
//! file at the path of its segments (that path would have to be a file and
//! a directory at once).
//!
//! Listing cursors (`*_after`) take the client's raw `last` string; they are
//! only compared against keys, never stored.

use crate::oci::{Digest, RepoName, Tag};

const REPOSITORIES: &str = "repositories";
const CATALOG: &str = "catalog";
const REGISTRY: &str = "registry";

const BLOBS: &str = "_blobs";
const MANIFESTS: &str = "_manifests";
const TAGS: &str = "_tags";
const REFERRERS: &str = "_referrers";
const MIRROR: &str = "_mirror";

/// `repositories/<name>/<marker>/`.
fn repo_prefix(name: &RepoName, marker: &str) -> String {
    format!("{REPOSITORIES}/{name}/{marker}/")
}

/// The part of `key` after `prefix`, parsed as `T`.
fn tail<T: std::str::FromStr>(key: &str, prefix: &str) -> Option<T> {
    key.strip_prefix(prefix)?.parse().ok()
}

/// `repositories/<name>/_blobs/<digest>`: the repository links this blob.
pub fn blob_link(name: &RepoName, digest: &Digest) -> String {
    format!("{}{digest}", repo_prefix(name, BLOBS))
}

/// Prefix listing every blob link of `name`.
pub fn blob_links_prefix(name: &RepoName) -> String {
    repo_prefix(name, BLOBS)
}

/// The digest of a key from [`blob_links_prefix`]`(name)`.
pub fn digest_from_blob_link(name: &RepoName, key: &str) -> Option<Digest> {
    tail(key, &blob_links_prefix(name))
}

/// `repositories/<name>/_manifests/<digest>`: the repository holds this
/// manifest. Value: JSON with its media type and size.
pub fn manifest_link(name: &RepoName, digest: &Digest) -> String {
    format!("{}{digest}", repo_prefix(name, MANIFESTS))
}

/// Prefix listing every manifest link of `name`.
pub fn manifest_links_prefix(name: &RepoName) -> String {
    repo_prefix(name, MANIFESTS)
}

/// The digest of a key from [`manifest_links_prefix`]`(name)`.
pub fn digest_from_manifest_link(name: &RepoName, key: &str) -> Option<Digest> {
    tail(key, &manifest_links_prefix(name))
}

/// `repositories/<name>/_tags/<tag>`. Value: the manifest digest.
pub fn tag(name: &RepoName, tag: &Tag) -> String {
    format!("{}{tag}", repo_prefix(name, TAGS))
}

/// Prefix listing every tag of `name`, in tag (byte) order.
pub fn tags_prefix(name: &RepoName) -> String {
    repo_prefix(name, TAGS)
}

/// The kv `after` cursor for tags of `name` strictly after `last`.
pub fn tags_after(name: &RepoName, last: &str) -> String {
    format!("{}{last}", tags_prefix(name))
}

/// The tag of a key from [`tags_prefix`]`(name)`.
pub fn tag_from_key(name: &RepoName, key: &str) -> Option<Tag> {
    tail(key, &tags_prefix(name))
}

/// `repositories/<name>/_referrers/<subject>/<referrer>`: manifest
/// `referrer` of `name` has `subject` as its subject. Value: the referrer's
/// descriptor JSON (as served by the referrers API).
pub fn referrer(name: &RepoName, subject: &Digest, referrer: &Digest) -> String {
    format!("{}{referrer}", referrers_prefix(name, subject))
}

/// Prefix listing the referrers of `subject` in `name`.
pub fn referrers_prefix(name: &RepoName, subject: &Digest) -> String {
    format!("{}{subject}/", repo_prefix(name, REFERRERS))
}

/// The referrer digest of a key from [`referrers_prefix`]`(name, subject)`.
pub fn referrer_from_key(name: &RepoName, subject: &Digest, key: &str) -> Option<Digest> {
    tail(key, &referrers_prefix(name, subject))
}

/// `registry/upload-secret`: the key of the MACs in upload session tokens
/// (`crate::session`). Value: random bytes, written once.
pub fn upload_secret() -> String {
    format!("{REGISTRY}/upload-secret")
}

/// `registry/token-key`: the token signing key the registry generated,
/// used when none is configured.
pub fn token_key() -> String {
    format!("{REGISTRY}/token-key")
}

/// `registry/auth/basic/<mac>`: a Basic sign-in that succeeded lately;
/// `mac` (hex) is keyed, so the key reveals neither user nor password.
pub fn basic_sign_in(mac_hex: &str) -> String {
    format!("{REGISTRY}/auth/basic/{mac_hex}")
}

/// `registry/auth/failures/<hash>`: failed sign-ins of one client
/// (`hash`: hex of its address, or of the user name when the address is
/// unknown).
pub fn sign_in_failures(hash_hex: &str) -> String {
    format!("{REGISTRY}/auth/failures/{hash_hex}")
}

/// `registry/gc/run`: the state of the current (or last) collection.
pub fn gc_run() -> String {
    format!("{REGISTRY}/gc/run")
}

/// Prefix of every mark of every collection.
pub fn gc_marks_prefix() -> String {
    format!("{REGISTRY}/gc/marks/")
}

/// `registry/gc/marks/<run>/live/<digest>`: collection `run` found `digest`
/// referenced by a manifest it keeps.
pub fn gc_live(run: &str, digest: &Digest) -> String {
    format!("{}{run}/live/{digest}", gc_marks_prefix())
}

/// `registry/gc/marks/<run>/doomed/<digest>`: dry run `run` would remove
/// the blob `digest`.
pub fn gc_doomed(run: &str, digest: &Digest) -> String {
    format!("{}{run}/doomed/{digest}", gc_marks_prefix())
}

/// `repositories/<name>/_gc`: a collection is removing manifests of `name`
/// (value: since when, seconds since the epoch); a manifest push that
/// sees it waits and checks its link survived (`crate::gc::fence`).
pub fn gc_fence(name: &RepoName) -> String {
    format!("{REPOSITORIES}/{name}/_gc")
}

/// `repositories/<name>/_mirror/fetching/<digest>`: a request of a mirror
/// is fetching the blob from the upstream (value: since, seconds).
pub fn mirror_fetch(name: &RepoName, digest: &Digest) -> String {
    format!("{}fetching/{digest}", repo_prefix(name, MIRROR))
}

/// `repositories/<name>/_mirror/checked/<tag>`: when a mirror last checked
/// the tag upstream (seconds).
pub fn mirror_checked(name: &RepoName, tag: &Tag) -> String {
    format!("{}checked/{tag}", repo_prefix(name, MIRROR))
}

/// `catalog/<name>`: the repository exists.
pub fn catalog(name: &RepoName) -> String {
    format!("{}{name}", catalog_prefix())
}

/// Prefix listing every repository, in name (byte) order.
pub fn catalog_prefix() -> String {
    format!("{CATALOG}/")
}

/// The kv `after` cursor for repositories strictly after `last`.
pub fn catalog_after(last: &str) -> String {
    format!("{}{last}", catalog_prefix())
}

/// The repository of a key from [`catalog_prefix`].
pub fn name_from_catalog_key(key: &str) -> Option<RepoName> {
    tail(key, &catalog_prefix())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    fn t(s: &str) -> Tag {
        s.parse().unwrap()
    }

    /// Every key a repository can own.
    fn keys_of(name: &RepoName) -> Vec<String> {
        vec![
            blob_link(name, &d('a')),
            manifest_link(name, &d('b')),
            tag(name, &t("latest")),
            tag(name, &t("_x")),
            referrer(name, &d('c'), &d('d')),
        ]
    }

    /// Every per-repository listing prefix.
    fn prefixes_of(name: &RepoName) -> Vec<String> {
        vec![blob_links_prefix(name), manifest_links_prefix(name), tags_prefix(name), referrers_prefix(name, &d('c'))]
    }

    const REPOS: [&str; 9] = ["a", "a/b", "a-b", "a.b", "a_b", "ab", "b/a", "a/b/c", "a__b"];

    #[test]
    fn layout() {
        let name = n("lib/ubuntu");
        let dg = d('a');
        let h = dg.hex();
        assert_eq!(blob_link(&name, &dg), format!("repositories/lib/ubuntu/_blobs/sha256:{h}"));
        assert_eq!(manifest_link(&name, &dg), format!("repositories/lib/ubuntu/_manifests/sha256:{h}"));
        assert_eq!(tag(&name, &t("v1.0")), "repositories/lib/ubuntu/_tags/v1.0");
        assert_eq!(
            referrer(&name, &d('c'), &d('d')),
            format!("repositories/lib/ubuntu/_referrers/{}/{}", d('c'), d('d'))
        );
        assert_eq!(catalog(&name), "catalog/lib/ubuntu");
        assert_eq!(upload_secret(), "registry/upload-secret");
    }

    #[test]
    fn keys_satisfy_kv_rules() {
        let long = n(&format!("{}/{}", "a".repeat(127), "b".repeat(127)));
        for name in REPOS.iter().map(|s| n(s)).chain([long]) {
            let mut all = keys_of(&name);
            all.push(catalog(&name));
            for key in all {
                assert!(!key.is_empty() && key.len() <= 1024, "{key}");
                for segment in key.split('/') {
                    assert!(!segment.is_empty() && segment != "." && segment != "..", "{key}");
                }
            }
        }
    }

    #[test]
    fn prefixes_of_one_repository_never_match_another() {
        for own in REPOS {
            for other in REPOS {
                let (own, other) = (n(own), n(other));
                for prefix in prefixes_of(&own) {
                    for key in keys_of(&other) {
                        if own != other {
                            assert!(!key.starts_with(&prefix), "{key} listed under {prefix}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn prefixes_match_own_keys_of_their_kind() {
        let name = n("a/b");
        assert!(blob_link(&name, &d('1')).starts_with(&blob_links_prefix(&name)));
        assert!(manifest_link(&name, &d('1')).starts_with(&manifest_links_prefix(&name)));
        assert!(tag(&name, &t("x")).starts_with(&tags_prefix(&name)));
        assert!(referrer(&name, &d('1'), &d('2')).starts_with(&referrers_prefix(&name, &d('1'))));
        assert!(!referrer(&name, &d('3'), &d('2')).starts_with(&referrers_prefix(&name, &d('1'))));
        assert!(catalog(&name).starts_with(&catalog_prefix()));
    }

    #[test]
    fn keys_parse_back() {
        let name = n("a/b");
        assert_eq!(tag_from_key(&name, &tag(&name, &t("v1"))), Some(t("v1")));
        assert_eq!(digest_from_blob_link(&name, &blob_link(&name, &d('1'))), Some(d('1')));
        assert_eq!(digest_from_manifest_link(&name, &manifest_link(&name, &d('2'))), Some(d('2')));
        assert_eq!(referrer_from_key(&name, &d('1'), &referrer(&name, &d('1'), &d('3'))), Some(d('3')));
        assert_eq!(name_from_catalog_key(&catalog(&name)), Some(name.clone()));
    }

    #[test]
    fn foreign_keys_do_not_parse() {
        let a = n("a");
        let ab = n("a/b");
        assert_eq!(tag_from_key(&a, &tag(&ab, &t("v1"))), None);
        assert_eq!(tag_from_key(&a, &manifest_link(&a, &d('1'))), None);
        assert_eq!(tag_from_key(&a, "repositories/a/_tags/"), None);
        assert_eq!(tag_from_key(&a, "repositories/a/_tags/x/y"), None);
        assert_eq!(digest_from_blob_link(&a, &blob_link(&ab, &d('1'))), None);
        assert_eq!(referrer_from_key(&a, &d('1'), &referrer(&a, &d('2'), &d('3'))), None);
        assert_eq!(name_from_catalog_key("catalog/"), None);
        assert_eq!(name_from_catalog_key("catalog/Bad"), None);
        assert_eq!(name_from_catalog_key("repositories/a"), None);
    }

    #[test]
    fn catalog_key_order_is_name_order() {
        let mut names: Vec<RepoName> = REPOS.iter().map(|s| n(s)).collect();
        let mut keys: Vec<String> = names.iter().map(catalog).collect();
        names.sort();
        keys.sort();
        let from_keys: Vec<RepoName> = keys.iter().map(|k| name_from_catalog_key(k).unwrap()).collect();
        assert_eq!(from_keys, names);
    }

    #[test]
    fn tag_key_order_is_tag_order() {
        let name = n("a");
        let mut tags: Vec<Tag> = ["b", "B", "a.1", "a-1", "a_1", "a", "_", "0"].iter().map(|s| t(s)).collect();
        let mut keys: Vec<String> = tags.iter().map(|x| tag(&name, x)).collect();
        tags.sort();
        keys.sort();
        let from_keys: Vec<Tag> = keys.iter().map(|k| tag_from_key(&name, k).unwrap()).collect();
        assert_eq!(from_keys, tags);
    }

    #[test]
    fn after_cursors() {
        let name = n("a");
        assert_eq!(tags_after(&name, "v1"), "repositories/a/_tags/v1");
        // Keys strictly after the cursor are exactly the tags after `last`.
        assert!(tag(&name, &t("v2")).as_str() > tags_after(&name, "v1").as_str());
        assert!(tag(&name, &t("v1")).as_str() <= tags_after(&name, "v1").as_str());
        assert_eq!(catalog_after("a/b"), "catalog/a/b");
        assert!(catalog(&n("a/b/c")).as_str() > catalog_after("a/b").as_str());
        assert!(catalog(&n("a-b")).as_str() < catalog_after("a/b").as_str());
    }
}

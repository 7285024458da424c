//! kv keys on disk: checking them, mapping them to files, listing them.
//!
//! A key's `/`-separated segments become directories under `kv/`, and its
//! value lives in a file named after the last segment plus `@` (so key `a`
//! and key `a/b` coexist as file `a@` and directory `a/`). Segment bytes
//! outside `[A-Za-z0-9._:-]`, and a leading `.`, are written as `%XX`, so
//! `@` never occurs in an escaped segment and no segment can leave `kv/`.
//! What a value file holds is [`crate::entry`]'s business.

use crate::error::{StorageError, StorageResult};
use crate::names::RelPath;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest file or directory name on the filesystems the backends run on
/// (ext4, xfs, btrfs, tmpfs): a segment whose escaped name (plus `@` for
/// the last) is longer is `invalid`. Any segment of up to 80 bytes fits.
pub const MAX_NAME_LEN: usize = 255;
/// Directory of the kv files, relative to the data root.
pub const KV_DIR: &str = "kv";
/// Directory of `registry.wasm`'s kv write locks (see [`lock_name`]).
pub const LOCK_DIR: &str = "locks";

/// Checks `key` and maps it to its value file (`dir`: `kv` or
/// `kv/<seg>/...`; `name`: the escaped last segment plus `@`).
pub fn key_path(key: &str) -> StorageResult<RelPath> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StorageError::Invalid(format!("key must be 1 to {MAX_KEY_LEN} bytes")));
    }
    let mut dir = KV_DIR.to_string();
    let mut segments = key.split('/').peekable();
    while let Some(seg) = segments.next() {
        let name = segment_name(seg)?;
        if segments.peek().is_none() {
            let name = format!("{name}@");
            if name.len() > MAX_NAME_LEN {
                return Err(too_long(seg));
            }
            return Ok(RelPath { dir, name });
        }
        dir.push('/');
        dir.push_str(&name);
    }
    unreachable!("split yields at least one segment")
}

/// Checks a key segment and returns its escaped name.
fn segment_name(seg: &str) -> StorageResult<String> {
    if seg.is_empty() || seg == "." || seg == ".." {
        return Err(StorageError::Invalid(format!("bad key segment {seg:?}")));
    }
    let name = escape_segment(seg);
    if name.len() > MAX_NAME_LEN {
        return Err(too_long(seg));
    }
    Ok(name)
}

fn too_long(seg: &str) -> StorageError {
    StorageError::Invalid(format!("key segment of {} bytes is too long once escaped", seg.len()))
}

/// A key segment as a file name (see the module docs).
pub fn escape_segment(seg: &str) -> String {
    let mut out = String::with_capacity(seg.len());
    for (i, b) in seg.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':') || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The key segment a file name stands for.
pub fn unescape_segment(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let decoded = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = decoded {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where listing `prefix` starts: the directory that the part of the prefix
/// up to its last `/` names (relative to the root), and that part itself.
pub fn list_start(prefix: &str) -> StorageResult<(String, String)> {
    let dir_key = match prefix.rfind('/') {
        Some(i) => &prefix[..=i],
        None => "",
    };
    let mut dir = KV_DIR.to_string();
    for seg in dir_key.split('/').filter(|s| !s.is_empty()) {
        dir.push('/');
        dir.push_str(&segment_name(seg)?);
    }
    Ok((dir, dir_key.to_string()))
}

/// One name in a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// File or directory name.
    pub name: String,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// What a listing looks for: keys starting with `prefix`, greater than
/// `after`.
pub struct Listing<'a> {
    /// Every key listed starts with it.
    pub prefix: &'a str,
    /// Every key listed is greater than it.
    pub after: Option<&'a str>,
}

impl Listing<'_> {
    fn wants_key(&self, key: &str) -> bool {
        key.starts_with(self.prefix) && self.after.is_none_or(|a| key > a)
    }

    /// Whether keys below directory key `sub_key` (ending in `/`) may be
    /// wanted: they must be able to start with the prefix, and not all be
    /// at or before `after`. Every key below `sub_key` is `sub_key` plus
    /// something; if `after` is greater than `sub_key` without starting
    /// with it, they first differ inside `sub_key`, so all of them sort
    /// before `after`.
    fn wants_dir(&self, sub_key: &str) -> bool {
        let may_match = sub_key.starts_with(self.prefix) || self.prefix.starts_with(sub_key);
        let all_before = self.after.is_some_and(|a| a > sub_key && !a.starts_with(sub_key));
        may_match && !all_before
    }

    /// Collects the wanted keys below directory `dir` (a path relative to
    /// the root, standing for directory key `dir_key`), unsorted.
    /// `list_dir` lists a directory, `None` when it does not exist.
    pub fn walk<E>(
        &self,
        list_dir: &mut impl FnMut(&str) -> Result<Option<Vec<DirEntry>>, E>,
        dir: &str,
        dir_key: &str,
        out: &mut Vec<String>,
    ) -> Result<(), E> {
        let Some(entries) = list_dir(dir)? else { return Ok(()) };
        for entry in entries {
            if entry.name == "." || entry.name == ".." {
                continue;
            }
            if let Some(seg) = entry.name.strip_suffix('@') {
                let key = format!("{dir_key}{}", unescape_segment(seg));
                if self.wants_key(&key) {
                    out.push(key);
                }
            } else if entry.is_dir {
                let sub_key = format!("{dir_key}{}/", unescape_segment(&entry.name));
                if self.wants_dir(&sub_key) {
                    self.walk(list_dir, &format!("{dir}/{}", entry.name), &sub_key, out)?;
                }
            }
        }
        Ok(())
    }
}

/// The first `limit` keys in ascending byte order.
pub fn first_page(mut keys: Vec<String>, limit: u32) -> Vec<String> {
    keys.sort_unstable();
    keys.dedup();
    keys.truncate(limit as usize);
    keys
}

/// Name of the lock file that serialises the writes of `key` (in
/// [`LOCK_DIR`]): 128 bits of the key's SHA-256, so distinct keys practically
/// never share a lock (and if they did, they would only wait for each other).
pub fn lock_name(key: &str) -> String {
    use sha2::{Digest as _, Sha256};
    crate::names::hex(&Sha256::digest(key.as_bytes())[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn paths_match_the_native_layout() {
        assert_eq!(key_path("a").unwrap(), RelPath { dir: "kv".into(), name: "a@".into() });
        assert_eq!(key_path("r/library/busybox/_tags/latest").unwrap().full(), "kv/r/library/busybox/_tags/latest@");
        assert_eq!(key_path("t/.hidden").unwrap().full(), "kv/t/%2Ehidden@");
        assert_eq!(key_path("t/a.b").unwrap().full(), "kv/t/a.b@");
        assert_eq!(key_path("t/a@b").unwrap().full(), "kv/t/a%40b@");
        assert_eq!(key_path("b/sha256:ab").unwrap().full(), "kv/b/sha256:ab@");
        assert_eq!(key_path("t/ü").unwrap().full(), "kv/t/%C3%BC@");
        assert_eq!(key_path("x y/%41").unwrap().full(), "kv/x%20y/%2541@");
    }

    #[test]
    fn rejects_bad_keys() {
        for key in ["", "a//b", "../x", "a/./b", "a/", "/a", ".."] {
            assert!(matches!(key_path(key), Err(StorageError::Invalid(_))), "{key}");
        }
        assert!(key_path(&["a".repeat(200), "b".repeat(200), "c".repeat(254)].join("/")).is_ok());
        assert!(key_path(&"a/".repeat(MAX_KEY_LEN / 2 - 1)).is_err());
        assert!(key_path(&format!("{}a", "a/".repeat(MAX_KEY_LEN / 2 - 1))).is_ok());
        assert!(key_path(&"a/".repeat(MAX_KEY_LEN / 2)).is_err());
        // Names the filesystem could not hold.
        assert!(matches!(key_path(&"a".repeat(255)), Err(StorageError::Invalid(_))));
        assert!(matches!(key_path(&format!("{}/x", "a".repeat(256))), Err(StorageError::Invalid(_))));
        assert!(matches!(key_path(&"ü".repeat(43)), Err(StorageError::Invalid(_))));
        assert!(key_path(&"ü".repeat(42)).is_ok());
        assert!(key_path(&"%".repeat(80)).is_ok());
        assert!(matches!(list_start(&format!("{}/", "a".repeat(256))), Err(StorageError::Invalid(_))));
    }

    #[test]
    fn escaping_round_trips_and_never_yields_at() {
        for seg in ["plain", ".dot", "a.b", "a@b", "%41", "ü", "sp ace", "a/b", "-_:", "@", "%", "%zz"] {
            let escaped = escape_segment(seg);
            assert!(!escaped.contains('@') && !escaped.contains('/') && !escaped.starts_with('.'), "{seg}");
            assert_eq!(unescape_segment(&escaped), seg);
        }
        // Foreign names with broken escapes are taken literally.
        assert_eq!(unescape_segment("%4"), "%4");
        assert_eq!(unescape_segment("%zz1"), "%zz1");
    }

    /// An in-memory directory tree made by storing `keys` the way the
    /// filesystem would.
    fn tree(keys: &[&str]) -> BTreeMap<String, Vec<DirEntry>> {
        let mut dirs: BTreeMap<String, Vec<DirEntry>> = BTreeMap::new();
        for key in keys {
            let path = key_path(key).unwrap();
            let mut dir = String::new();
            for part in path.dir.split('/') {
                let child = if dir.is_empty() { part.to_string() } else { format!("{dir}/{part}") };
                if !dir.is_empty() {
                    let list = dirs.entry(dir.clone()).or_default();
                    if !list.iter().any(|e| e.name == part) {
                        list.push(DirEntry { name: part.to_string(), is_dir: true });
                    }
                }
                dirs.entry(child.clone()).or_default();
                dir = child;
            }
            dirs.get_mut(&path.dir).unwrap().push(DirEntry { name: path.name.clone(), is_dir: false });
        }
        // Lock files and other strays are not keys.
        dirs.get_mut("kv").unwrap().push(DirEntry { name: "stray".into(), is_dir: false });
        dirs
    }

    fn list(
        dirs: &BTreeMap<String, Vec<DirEntry>>,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> (Vec<String>, Vec<String>) {
        let (dir, dir_key) = list_start(prefix).unwrap();
        let mut visited = Vec::new();
        let mut lister = |d: &str| -> Result<Option<Vec<DirEntry>>, ()> {
            visited.push(d.to_string());
            Ok(dirs.get(d).cloned())
        };
        let mut out = Vec::new();
        Listing { prefix, after }.walk(&mut lister, &dir, &dir_key, &mut out).unwrap();
        (first_page(out, limit), visited)
    }

    #[test]
    fn lists_sorted_paged_and_prefix_exact() {
        let dirs = tree(&["r/a/_t/x", "r/a/_t/y", "r/a/b/_t/z", "r/a-b/_t/w", "r/a/_t/w", "r/a", "t/.hidden", "t/a@b"]);
        assert_eq!(list(&dirs, "r/a/_t/", None, 10).0, vec!["r/a/_t/w", "r/a/_t/x", "r/a/_t/y"]);
        assert_eq!(list(&dirs, "r/a/_t/", Some("r/a/_t/w"), 1).0, vec!["r/a/_t/x"]);
        assert_eq!(
            list(&dirs, "r/a", None, 10).0,
            vec!["r/a", "r/a-b/_t/w", "r/a/_t/w", "r/a/_t/x", "r/a/_t/y", "r/a/b/_t/z"]
        );
        assert_eq!(list(&dirs, "t/", None, 10).0, vec!["t/.hidden", "t/a@b"]);
        assert!(list(&dirs, "nothing/", None, 10).0.is_empty());
        assert!(list(&dirs, "r/", None, 0).0.is_empty());
        assert_eq!(list(&dirs, "", None, 100).0.len(), 8);
    }

    #[test]
    fn paging_skips_directories_entirely_before_after() {
        let dirs = tree(&["r/a/_t/x", "r/b/_t/y", "r/c/_t/z"]);
        let (keys, visited) = list(&dirs, "r/", Some("r/b/_t/y"), 10);
        assert_eq!(keys, vec!["r/c/_t/z"]);
        assert!(!visited.iter().any(|d| d.starts_with("kv/r/a")), "{visited:?}");
        assert!(visited.iter().any(|d| d == "kv/r/b/_t"), "{visited:?}");
        // `after` inside a directory still lists the rest of it.
        let (keys, _) = list(&dirs, "r/", Some("r/a/_t/w"), 10);
        assert_eq!(keys, vec!["r/a/_t/x", "r/b/_t/y", "r/c/_t/z"]);
        // '-' < '/' < '0': keys below r/a/ sort after r/a-b/... but before r/a0.
        let dirs = tree(&["r/a/_t/x", "r/a-b/_t/w", "r/a0", "r/b"]);
        assert_eq!(list(&dirs, "r/", Some("r/a-b/_t/w"), 10).0, vec!["r/a/_t/x", "r/a0", "r/b"]);
        let (keys, visited) = list(&dirs, "r/", Some("r/a0"), 10);
        assert_eq!(keys, vec!["r/b"]);
        assert!(!visited.iter().any(|d| d == "kv/r/a" || d == "kv/r/a-b"), "{visited:?}");
    }

    #[test]
    fn list_start_names_the_deepest_whole_directory() {
        assert_eq!(list_start("").unwrap(), ("kv".to_string(), String::new()));
        assert_eq!(list_start("r/a").unwrap(), ("kv/r".to_string(), "r/".to_string()));
        assert_eq!(list_start("r/.x/").unwrap(), ("kv/r/%2Ex".to_string(), "r/.x/".to_string()));
        assert!(list_start("r/../").is_err());
    }

    #[test]
    fn lock_names_are_fixed_hex() {
        let a = lock_name("r/a");
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, lock_name("r/a"));
        assert_ne!(a, lock_name("r/b"));
    }
}

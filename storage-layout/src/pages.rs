//! Pages of `blobs.list` and `blobs.list-uploads`: which names a page
//! holds, in the order the contract gives them, whichever backend walks
//! the directories.

use crate::keys::DirEntry;
use crate::names::{digest_of_hex, is_sha256_hex, valid_upload_id, BLOBS_DIR};

/// A committed blob as `list` reports it (`blobs.blob-info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last committed or touched: whole seconds since the epoch.
    pub touched: u64,
}

/// An upload in progress as `list-uploads` reports it (`blobs.upload-info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    /// The upload's id.
    pub id: String,
    /// Bytes received so far.
    pub size: u64,
    /// When bytes were last appended (or it started): whole seconds since
    /// the epoch.
    pub modified: u64,
}

/// Whole seconds since the epoch of a file time; 0 for a time before it.
pub fn epoch_secs(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What one page of `list` holds: digests strictly after `after` (compared
/// as strings, whatever `after` is), at most `limit` of them.
#[derive(Debug, Clone, Copy)]
pub struct BlobPage<'a> {
    /// Every digest listed is greater than it.
    pub after: Option<&'a str>,
    /// At most this many.
    pub limit: u32,
}

impl BlobPage<'_> {
    /// Whether the blob with digest hex `hex` belongs after `after`.
    pub fn wants(&self, hex: &str) -> bool {
        self.after.is_none_or(|after| digest_of_hex(hex).as_str() > after)
    }

    /// Whether directory `prefix` (the first two hex digits) may hold a
    /// wanted blob: its greatest possible digest comes after `after`.
    fn wants_dir(&self, prefix: &str) -> bool {
        self.wants(&format!("{prefix}{}", "f".repeat(62)))
    }

    /// The digest hexes of the page, ascending: the blobs named under
    /// `blobs/sha256/<xx>/` (`list_dir` lists a directory, `None` when it
    /// does not exist) and the `others` a backend holds elsewhere (any
    /// order, wanted or not). Directories are read in order, only as far
    /// as the page reaches.
    pub fn walk<E>(
        &self,
        list_dir: &mut impl FnMut(&str) -> Result<Option<Vec<DirEntry>>, E>,
        mut others: Vec<String>,
    ) -> Result<Vec<String>, E> {
        let limit = self.limit as usize;
        if limit == 0 {
            return Ok(Vec::new());
        }
        others.retain(|hex| is_sha256_hex(hex) && self.wants(hex));
        let mut prefixes: Vec<String> = list_dir(BLOBS_DIR)?
            .unwrap_or_default()
            .into_iter()
            .map(|entry| entry.name)
            .filter(|name| name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .filter(|prefix| self.wants_dir(prefix))
            .collect();
        prefixes.sort_unstable();
        let mut found = Vec::new();
        for prefix in prefixes {
            let dir = format!("{BLOBS_DIR}/{prefix}");
            let names = list_dir(&dir)?.unwrap_or_default().into_iter().map(|entry| entry.name);
            found.extend(names.filter(|hex| is_sha256_hex(hex) && hex.starts_with(&prefix) && self.wants(hex)));
            // Every blob up to this directory is known now: enough of them
            // fill the page, and the later directories can only follow them.
            let others_so_far = others.iter().filter(|hex| hex[..2] <= *prefix).count();
            if found.len() + others_so_far >= limit {
                break;
            }
        }
        found.append(&mut others);
        found.sort_unstable();
        found.dedup();
        found.truncate(limit);
        Ok(found)
    }
}

/// The ids of one page of `list-uploads`, ascending: of the `names` in the
/// uploads directory, those that are upload ids (not `<id>.hash` or other
/// files), strictly after `after`, at most `limit`.
pub fn upload_page(names: impl IntoIterator<Item = String>, after: Option<&str>, limit: u32) -> Vec<String> {
    let mut ids: Vec<String> =
        names.into_iter().filter(|id| valid_upload_id(id) && after.is_none_or(|after| id.as_str() > after)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(limit as usize);
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A directory tree in memory, counting the directories read.
    struct Tree {
        dirs: BTreeMap<String, Vec<String>>,
        read: Vec<String>,
    }

    impl Tree {
        fn of(hexes: &[String]) -> Tree {
            let mut dirs: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for hex in hexes {
                dirs.entry(format!("{BLOBS_DIR}/{}", &hex[..2])).or_default().push(hex.clone());
                let prefixes = dirs.entry(BLOBS_DIR.to_string()).or_default();
                if !prefixes.contains(&hex[..2].to_string()) {
                    prefixes.push(hex[..2].to_string());
                }
            }
            Tree { dirs, read: Vec::new() }
        }

        fn page(&mut self, after: Option<&str>, limit: u32, others: &[String]) -> Vec<String> {
            let page = BlobPage { after, limit };
            let mut list_dir = |dir: &str| -> Result<Option<Vec<DirEntry>>, ()> {
                self.read.push(dir.to_string());
                let names = self.dirs.get(dir).cloned();
                Ok(names.map(|names| names.into_iter().rev().map(|name| DirEntry { name, is_dir: false }).collect()))
            };
            page.walk(&mut list_dir, others.to_vec()).unwrap()
        }
    }

    fn hex_of(first: &str, n: u8) -> String {
        format!("{first}{}", format!("{n:02x}").repeat(31))
    }

    #[test]
    fn pages_walk_every_blob_once_in_digest_order() {
        let named: Vec<String> = ["00", "00", "3c", "a0", "ff"].iter().zip(1..).map(|(p, n)| hex_of(p, n)).collect();
        let unnamed = vec![hex_of("3c", 9), hex_of("b7", 8), named[4].clone()];
        let mut all: Vec<String> = named.iter().chain(&unnamed).cloned().collect();
        all.sort();
        all.dedup();
        for limit in [1, 2, 3, 100] {
            let mut tree = Tree::of(&named);
            let mut paged = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = tree.page(after.as_deref().map(digest_of_hex).as_deref(), limit, &unnamed);
                assert!(page.len() <= limit as usize);
                let Some(last) = page.last() else { break };
                after = Some(last.clone());
                paged.extend(page);
            }
            assert_eq!(paged, all, "limit {limit}");
        }
    }

    #[test]
    fn a_page_reads_only_the_directories_it_reaches() {
        let named: Vec<String> = ["00", "3c", "a0", "ff"].iter().zip(1..).map(|(p, n)| hex_of(p, n)).collect();
        let mut tree = Tree::of(&named);
        assert_eq!(tree.page(None, 1, &[]), vec![named[0].clone()]);
        assert_eq!(tree.read, vec![BLOBS_DIR.to_string(), format!("{BLOBS_DIR}/00")]);
        let mut tree = Tree::of(&named);
        let after = digest_of_hex(&named[1]);
        assert_eq!(tree.page(Some(&after), 1, &[]), vec![named[2].clone()]);
        assert_eq!(tree.read, vec![BLOBS_DIR.to_string(), format!("{BLOBS_DIR}/3c"), format!("{BLOBS_DIR}/a0")]);
    }

    #[test]
    fn after_is_any_string_and_limit_zero_is_empty() {
        let named = vec![hex_of("10", 1), hex_of("20", 2)];
        let mut tree = Tree::of(&named);
        assert_eq!(tree.page(Some("a"), 10, &[]), named);
        assert_eq!(tree.page(Some("sha256:1"), 10, &[]), named);
        assert_eq!(tree.page(Some("sha256:2"), 10, &[]), vec![named[1].clone()]);
        assert!(tree.page(Some("zzz"), 10, &[]).is_empty());
        assert!(tree.page(None, 0, &named).is_empty());
    }

    #[test]
    fn upload_pages_hold_ids_only() {
        let names = ["b-1", "a-2", "a-2.hash", "c", "UPPER", "a-1"].map(String::from);
        assert_eq!(upload_page(names.clone(), None, 10), ["a-1", "a-2", "b-1", "c"]);
        assert_eq!(upload_page(names.clone(), Some("a-2"), 2), ["b-1", "c"]);
        assert!(upload_page(names, None, 0).is_empty());
    }
}

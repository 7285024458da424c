//! Names on disk: committed blobs by digest, uploads by id, temporary
//! files; and the checks of digests and upload ids.

use crate::error::{StorageError, StorageResult};

/// Longest upload id `resume` accepts (the registry's limit too).
pub const MAX_UPLOAD_ID_LEN: usize = 64;
/// Directory of the committed blobs, relative to the data root.
pub const BLOBS_DIR: &str = "blobs/sha256";
/// Directory of the uploads in progress.
pub const UPLOADS_DIR: &str = "uploads";
/// Temporary files, renamed into place when complete.
pub const TMP_DIR: &str = "tmp";

/// A file's place relative to the data root: its directory and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath {
    /// The directory, `/`-separated.
    pub dir: String,
    /// The file name in it.
    pub name: String,
}

impl RelPath {
    /// `dir/name`.
    pub fn full(&self) -> String {
        format!("{}/{}", self.dir, self.name)
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// What every digest starts with: the one algorithm the contract knows.
pub const DIGEST_PREFIX: &str = "sha256:";

/// Whether `hex` is 64 lowercase hex digits, a SHA-256 as blob names hold it.
pub fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The hex part of `sha256:<64 lowercase hex>`; anything else is `invalid`.
pub fn digest_hex(digest: &str) -> StorageResult<&str> {
    digest
        .strip_prefix(DIGEST_PREFIX)
        .filter(|hex| is_sha256_hex(hex))
        .ok_or_else(|| StorageError::Invalid(format!("not a sha256 digest: {digest:?}")))
}

/// The digest whose hex part is `hex`.
pub fn digest_of_hex(hex: &str) -> String {
    format!("{DIGEST_PREFIX}{hex}")
}

/// Where the committed blob with digest hex `hex` (as [`digest_hex`]
/// returns it) is: `blobs/sha256/<first 2 hex>/<hex>`.
pub fn blob_path(hex: &str) -> RelPath {
    RelPath { dir: format!("{BLOBS_DIR}/{}", &hex[..2]), name: hex.to_string() }
}

/// Every directory a blob may be in (256 of them), for a backend that
/// makes them all up front.
pub fn blob_dirs() -> impl Iterator<Item = String> {
    (0..=255u8).map(|prefix| format!("{BLOBS_DIR}/{prefix:02x}"))
}

/// An upload id from 16 random bytes, laid out like a UUID (v4):
/// `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`, only `[0-9a-f-]`.
pub fn upload_id(random: [u8; 16]) -> String {
    let mut b = random;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Whether `id` could be an id a store issued: `[0-9a-f-]{1,64}`. It
/// never contains `.` or `/`, so `uploads/<id>` and `uploads/<id>.hash`
/// cannot name anything else.
pub fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_UPLOAD_ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'))
}

/// `id` if [`valid_upload_id`], else `invalid` (what `resume` answers).
pub fn check_upload_id(id: &str) -> StorageResult<&str> {
    if valid_upload_id(id) {
        Ok(id)
    } else {
        Err(StorageError::Invalid(format!("not an upload id: {id:?}")))
    }
}

/// Relative path of upload `id`'s bytes.
pub fn upload_path(id: &str) -> String {
    format!("{UPLOADS_DIR}/{id}")
}

/// Relative path of upload `id`'s hash state (written by `registry.wasm`
/// only; see [`crate::hashstate`]).
pub fn upload_hash_path(id: &str) -> String {
    format!("{UPLOADS_DIR}/{id}.hash")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let hex64 = "a".repeat(64);
        assert_eq!(digest_hex(&digest_of_hex(&hex64)).unwrap(), hex64);
        assert!(is_sha256_hex(&hex64) && !is_sha256_hex("ab") && !is_sha256_hex(&"G".repeat(64)));
        for bad in
            ["", "sha256:", "sha512:aa", &format!("sha256:{}", "A".repeat(64)), &format!("sha256:{}", "a".repeat(63))]
        {
            assert!(matches!(digest_hex(bad), Err(StorageError::Invalid(_))), "{bad}");
        }
        assert_eq!(blob_path(&hex64).full(), format!("blobs/sha256/aa/{hex64}"));
        let dirs: Vec<String> = blob_dirs().collect();
        assert_eq!((dirs.len(), dirs[0].as_str(), dirs[255].as_str()), (256, "blobs/sha256/00", "blobs/sha256/ff"));
    }

    #[test]
    fn upload_ids() {
        let id = upload_id([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert!(valid_upload_id(&id));
        assert!(valid_upload_id(&upload_id([0; 16])));
        for bad in ["", "A", "a/b", "..", "a.hash", &"a".repeat(65)] {
            assert!(!valid_upload_id(bad), "{bad}");
            assert!(matches!(check_upload_id(bad), Err(StorageError::Invalid(_))), "{bad}");
        }
        assert_eq!(check_upload_id(&"a".repeat(64)).unwrap().len(), 64);
        assert_eq!(upload_hash_path("ab-1"), "uploads/ab-1.hash");
    }

    #[test]
    fn hex_encodes() {
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
    }
}

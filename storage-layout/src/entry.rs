//! kv values on disk, and the rules of their versions.
//!
//! A value file holds the version (8 bytes, little-endian), then the value.
//! An empty file is version 1 with an empty value: `registry-host` creates a
//! first empty value (a blob's link) as a hard link to a shared empty file,
//! and a key written for the first time has version 1 either way.

use crate::error::{StorageError, StorageResult};

/// Largest value, in bytes.
pub const MAX_VALUE_LEN: usize = 4 * 1024 * 1024;
/// Bytes of the version header at the start of a value file.
pub const VERSION_LEN: usize = 8;

/// `Ok` if `value` is not over [`MAX_VALUE_LEN`], else `invalid`.
pub fn check_value(value: &[u8]) -> StorageResult<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(StorageError::Invalid(format!("value over {MAX_VALUE_LEN} bytes")));
    }
    Ok(())
}

/// The header that precedes a value of version `version` in its file.
pub fn version_header(version: u64) -> [u8; VERSION_LEN] {
    version.to_le_bytes()
}

/// Splits a value file into version and value; `None` if it is too short
/// to hold a version (a corrupt file). An empty file is version 1 with an
/// empty value.
pub fn decode_entry(bytes: &[u8]) -> Option<(u64, &[u8])> {
    if bytes.is_empty() {
        return Some((1, bytes));
    }
    let (version, value) = bytes.split_first_chunk::<VERSION_LEN>()?;
    Some((u64::from_le_bytes(*version), value))
}

/// The version a write gets, given the key's `current` version (`None`:
/// absent) and, for `set-if`, the `expected` one (`Some(None)`: only if
/// absent): one more than the current (1 for an absent key), or `conflict`
/// when `expected` is not the current version. Check and write must be one
/// atomic step, so call this under the key's write lock.
pub fn next_version(current: Option<u64>, expected: Option<Option<u64>>) -> StorageResult<u64> {
    if expected.is_some_and(|expected| expected != current) {
        return Err(StorageError::Conflict);
    }
    Ok(current.unwrap_or(0) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_decode_to_version_and_value() {
        let mut file = version_header(7).to_vec();
        file.extend_from_slice(b"value");
        assert_eq!(decode_entry(&file), Some((7, &b"value"[..])));
        assert_eq!(decode_entry(&version_header(7)), Some((7, &b""[..])));
        assert_eq!(decode_entry(b"short"), None);
        assert_eq!(decode_entry(b""), Some((1, &b""[..])));
    }

    #[test]
    fn versions_grow_and_set_if_checks_them() {
        assert_eq!(next_version(None, None), Ok(1));
        assert_eq!(next_version(Some(4), None), Ok(5));
        assert_eq!(next_version(None, Some(None)), Ok(1));
        assert_eq!(next_version(Some(4), Some(Some(4))), Ok(5));
        assert_eq!(next_version(Some(4), Some(None)), Err(StorageError::Conflict));
        assert_eq!(next_version(Some(4), Some(Some(3))), Err(StorageError::Conflict));
        assert_eq!(next_version(None, Some(Some(1))), Err(StorageError::Conflict));
    }

    #[test]
    fn values_up_to_the_limit() {
        assert!(check_value(&vec![0; MAX_VALUE_LEN]).is_ok());
        assert!(matches!(check_value(&vec![0; MAX_VALUE_LEN + 1]), Err(StorageError::Invalid(_))));
    }
}

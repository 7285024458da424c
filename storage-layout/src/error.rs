//! Why a storage call failed: mirrors `registry:storage/types.error`, so
//! that the rules and both backends share one error type without bindings.

/// A storage failure; each backend converts it to the WIT `error` at its
/// boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The upload (or blob) does not exist.
    #[error("not found")]
    NotFound,
    /// The bytes hash to this digest, not the expected one.
    #[error("content has digest {0}")]
    DigestMismatch(String),
    /// A conditional write lost a race, or an upload is busy.
    #[error("conflict")]
    Conflict,
    /// Malformed argument.
    #[error("invalid: {0}")]
    Invalid(String),
    /// No room left for the write (a full disk, a quota).
    #[error("no space left in the store")]
    Full,
    /// The store could not be reached or did not answer in time.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend failed.
    #[error("{0}")]
    Other(String),
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        if is_out_of_space(&e) {
            return StorageError::Full;
        }
        StorageError::Other(e.to_string())
    }
}

/// Whether an I/O error means the filesystem (or the user's quota) has no
/// room: `ENOSPC` or `EDQUOT`.
pub fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

/// Result of a storage operation.
pub type StorageResult<T> = Result<T, StorageError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_cause() {
        assert_eq!(StorageError::DigestMismatch("sha256:ab".into()).to_string(), "content has digest sha256:ab");
        assert_eq!(StorageError::Invalid("bad key".into()).to_string(), "invalid: bad key");
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        assert_eq!(StorageError::from(io), StorageError::Other("denied".into()));
    }

    #[test]
    fn a_full_filesystem_or_quota_is_full() {
        for kind in [std::io::ErrorKind::StorageFull, std::io::ErrorKind::QuotaExceeded] {
            assert_eq!(StorageError::from(std::io::Error::from(kind)), StorageError::Full);
        }
    }
}

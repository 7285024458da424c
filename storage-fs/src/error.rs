//! Why a storage call failed: mirrors `registry:storage/types.error`, so the
//! plain-Rust modules need no bindings.

use std::fmt;

/// A storage failure; converted to the WIT `error` at the export boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// The upload (or blob) does not exist.
    NotFound,
    /// The bytes hash to this digest, not the expected one.
    DigestMismatch(String),
    /// A conditional write lost a race.
    Conflict,
    /// Malformed argument.
    Invalid(String),
    /// The backend failed.
    Other(String),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::NotFound => write!(f, "not found"),
            StorageError::DigestMismatch(d) => write!(f, "content has digest {d}"),
            StorageError::Conflict => write!(f, "conflict"),
            StorageError::Invalid(m) => write!(f, "invalid: {m}"),
            StorageError::Other(m) => write!(f, "{m}"),
        }
    }
}

/// Result of a storage operation.
pub type StorageResult<T> = Result<T, StorageError>;

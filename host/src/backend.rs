//! Which store serves the contract in this process: the data directory
//! (`storage/`) or an S3 bucket (`s3/`). Every request's `HostState` holds
//! one, and `storage_impl.rs` answers each call from it.

use crate::s3::{S3Store, S3Upload};
use crate::storage::blobs::HostUpload;
use crate::storage::Storage;
use std::sync::Arc;

/// The store, shared by all requests.
#[derive(Clone)]
pub enum Backend {
    Fs(Arc<Storage>),
    S3(Arc<S3Store>),
}

impl Backend {
    /// The data directory's store, which only filesystem work needs.
    pub fn fs(&self) -> Option<&Arc<Storage>> {
        match self {
            Backend::Fs(storage) => Some(storage),
            Backend::S3(_) => None,
        }
    }
}

/// The `upload` resource: the backend's own.
pub enum Upload {
    Fs(HostUpload),
    S3(S3Upload),
}

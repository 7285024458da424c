//! Guest bindings for the `storage-fs` world (`wit/world.wit`): the
//! exported `blobs` and `kv` interfaces. The `wasi:io` types are the
//! `wasip2` crate's, so a stream opened on a file by `wasi:filesystem` is
//! handed to the caller as it is (the bytes never pass through here).

#![allow(missing_docs, clippy::all, reason = "bindgen-generated code")]

wit_bindgen::generate!({
    path: "../wit",
    world: "registry:storage/storage-fs",
    with: {
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
    },
});

impl From<storage_layout::StorageError> for exports::registry::storage::types::Error {
    fn from(e: storage_layout::StorageError) -> Self {
        use storage_layout::StorageError as E;
        match e {
            E::NotFound => Self::NotFound,
            E::DigestMismatch(actual) => Self::DigestMismatch(actual),
            E::Conflict => Self::Conflict,
            E::Invalid(m) => Self::Invalid(m),
            E::Full => Self::Full,
            E::Unavailable(m) => Self::Unavailable(m),
            E::Other(m) => Self::Other(m),
        }
    }
}

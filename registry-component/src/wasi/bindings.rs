//! Guest bindings for the storage contract in `wit/`. The `wasi:io` types
//! are those of the `wasip2` crate, so a blob's stream can be spliced
//! straight into an HTTP body and back.

#![allow(missing_docs, clippy::all, reason = "bindgen-generated code")]

wit_bindgen::generate!({
    path: "../wit",
    world: "registry:storage/storage",
    with: {
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
    },
});

pub use registry::storage::{blobs, kv, types};

//! The OCI Distribution registry as a wasi-http component.
//!
//! Everything but the wasm glue is plain Rust, unit-tested natively: names,
//! digests, routing, manifests, ranges, paging, storage keys, errors, and
//! the handlers themselves (`api`). The handlers reach their host only
//! through the storage seam (`storage::Storage`: the blobs and kv of `wit/`,
//! plus randomness), and speak plain `http` requests and responses.
//! `storage::memory` implements the seam in memory for the tests; `wasi`
//! (wasm32 only) implements it on the component's imports and exports
//! `wasi:http/incoming-handler`.

#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod conditional;
pub mod error;
pub mod gc;
pub mod http;
pub mod oci;
pub mod pagination;
pub mod proxy;
pub mod range;
pub mod router;
pub mod session;
pub mod storage;
pub mod store;

#[cfg(target_arch = "wasm32")]
mod wasi;

//! The registry's storage contract (`wit/`: `registry:storage/blobs` and
//! `registry:storage/kv`) as a component of its own, on `wasi:filesystem`.
//!
//! Plugged into the registry component, it makes one `registry.wasm` that a
//! plain wasi-http runtime serves (`wasmtime serve -S cli --dir DATA::/data`).
//! The data lives under the preopened directory `/data`, in the layout of
//! `registry-host` (so either can serve the same data directory, one at a
//! time):
//!
//! ```text
//! /data/
//!   blobs/sha256/<2 hex>/<64 hex>   committed blobs, immutable
//!   uploads/<id>                    bytes of an upload in progress
//!   uploads/<id>.hash               its hash state (bytes hashed + SHA-256 state)
//!   kv/<seg>/<seg>@                 one file per key: 8-byte LE version + value
//!   locks/<32 hex>                  kv write locks (see `kv.rs`)
//!   tmp/                            temporary files, renamed into place
//! ```
//!
//! Every request may run in a fresh component instance, so nothing lives in
//! memory between calls: an upload's hash state, the versions of keys and
//! the locks are all files. Nor is there a start-up to clear what a crash
//! left: one `upload.start` in 64 sweeps away uploads untouched for 7 days
//! (as `registry-host` does at start-up) and temporary files older than an
//! hour.
//!
//! The modules outside `cfg(target_arch = "wasm32")` are plain Rust (key
//! escaping, hash-state encoding, range arithmetic, names), unit-tested
//! natively; `fs`, `blobs` and `kv` are the wasm side.

#![deny(missing_docs)]

pub mod error;
pub mod hashstate;
pub mod keys;
pub mod names;
pub mod span;

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
mod blobs;
#[cfg(target_arch = "wasm32")]
mod fs;
#[cfg(target_arch = "wasm32")]
mod kv;

/// The component: exports `blobs` (with its `upload` resource) and `kv`.
#[cfg(target_arch = "wasm32")]
struct StorageFs;

#[cfg(target_arch = "wasm32")]
bindings::export!(StorageFs with_types_in bindings);

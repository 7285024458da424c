//! The registry's storage contract (`wit/`: `registry:storage/blobs` and
//! `registry:storage/kv`) as a component of its own, on `wasi:filesystem`.
//!
//! Plugged into the registry component, it makes one `registry.wasm` that a
//! plain wasi-http runtime serves (`wasmtime serve -S cli --dir DATA::/data`).
//! The data lives under the preopened directory `/data`, in the layout that
//! the crate `storage-layout` defines, as `registry-host` does (so either
//! can serve the same data directory, one at a time); that crate holds the
//! contract's rules too (key escaping, value files, digest and upload-id
//! checks, size limits, range arithmetic, the upload hash-state format).
//!
//! Every request may run in a fresh component instance, so nothing lives in
//! memory between calls: an upload's hash state, the versions of keys, a
//! blob's `touched` time and the locks are all files. Nor is there a
//! start-up to clear what a crash left: one `upload.start` in 64 sweeps
//! away temporary files older than an hour (as `registry-host` clears
//! them at start-up).
//!
//! Everything here is the wasm side (`fs`, `blobs`, `collection`, `kv`);
//! natively the crate is empty. The storage contract suite (`storage-contract/`) runs
//! this component in wasmtime (`registry-wasm/tests/storage_fs_contract.rs`).

#![deny(missing_docs)]
#![cfg(target_arch = "wasm32")]

mod bindings;
mod blobs;
mod collection;
mod fs;
mod kv;

/// The component: exports `blobs` (with its `upload` resource) and `kv`.
struct StorageFs;

bindings::export!(StorageFs with_types_in bindings);

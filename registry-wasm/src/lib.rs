//! `registry.wasm`: the registry component with its storage imports
//! (`registry:storage/blobs` and `kv`) plugged by the `storage-fs`
//! component, so that its only imports are WASI and `wasi:http`, which any
//! wasi-http runtime provides (`wasmtime serve -S cli --dir DATA::/data`).
//!
//! The build script makes it (see `build.rs`); this crate only tells where
//! it is, for tests that run it. Its own tests run the storage contract
//! suite (`storage-contract/`) against `storage-fs` as a component in
//! wasmtime (`tests/storage_fs_contract.rs`).

#![deny(missing_docs)]

/// Path of the composed component. A copy is at
/// `<target>/<profile>/registry.wasm` (`target/release/registry.wasm`).
pub const REGISTRY_WASM: &str = concat!(env!("OUT_DIR"), "/registry.wasm");

/// Path of the `storage-fs` component on its own (exports `blobs` and `kv`
/// on `wasi:filesystem`), as plugged into `registry.wasm`.
pub const STORAGE_FS_WASM: &str = concat!(env!("OUT_DIR"), "/storage_fs.wasm");

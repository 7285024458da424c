//! Builds `registry.wasm`: compiles `registry-component` and `storage-fs`
//! for wasm32-wasip2 and composes them (`wac-graph`, the library behind
//! `wac plug`): one instance of storage-fs, whose `blobs` and `kv` exports
//! satisfy the registry's imports of them, and the registry's
//! `wasi:http/incoming-handler` exported. Every other import of either
//! component (WASI) becomes an import of the whole, shared by both.
//!
//! The result is `$OUT_DIR/registry.wasm`, copied to
//! `<target>/<profile>/registry.wasm` for people (the README names
//! `target/release/registry.wasm`).

use std::path::{Path, PathBuf};
use wac_graph::{types::Package, CompositionGraph, EncodeOptions};

include!("../build-support/components.rs");

/// What the registry imports from storage, all satisfied by storage-fs:
/// `blobs`, `kv`, and `types` (no functions, but still an import).
const STORAGE_INTERFACES: [&str; 3] =
    ["registry:storage/types@0.1.0", "registry:storage/blobs@0.1.0", "registry:storage/kv@0.1.0"];
/// What the composition exports.
const HANDLER: &str = "wasi:http/incoming-handler@0.2.12";
/// Interfaces the result may import: what `wasmtime serve -S cli` (and
/// any wasi-http runtime with WASI 0.2) provides.
const ALLOWED_IMPORTS: [&str; 6] =
    ["wasi:cli/", "wasi:clocks/", "wasi:filesystem/", "wasi:http/", "wasi:io/", "wasi:random/"];

type BoxError = Box<dyn std::error::Error>;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().expect("registry-wasm/ sits in the workspace").to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for watched in [
        "registry-component/src",
        "registry-component/Cargo.toml",
        "storage-fs/src",
        "storage-fs/Cargo.toml",
        "storage-layout/src",
        "storage-layout/Cargo.toml",
        "wit",
        "Cargo.lock",
        "build-support",
    ] {
        // Relative to this package: cargo resolves it against the package being
        // built, so a target directory shared by several checkouts (CI's cache)
        // never watches, and embeds, another checkout's sources.
        println!("cargo:rerun-if-changed=../{watched}");
    }

    ensure_wasm_target();
    let target_dir = components_target_dir(&out_dir);
    // One package per cargo run: the registry component is then built
    // exactly as host/build.rs builds it, and compiled once for both.
    let registry = build_component(&root, &target_dir, "registry-component");
    let storage = build_component(&root, &target_dir, "storage-fs");
    // storage-fs alone, for the storage contract suite (tests/).
    copy_if_changed(&storage, &out_dir.join("storage_fs.wasm"));

    let composed = compose(&registry, &storage).unwrap_or_else(|e| panic!("composing registry.wasm: {e}"));
    let out = out_dir.join("registry.wasm");
    write_if_changed(&composed, &out);
    write_if_changed(&composed, &profile_dir(&out_dir).join("registry.wasm"));
}

fn compose(registry: &Path, storage: &Path) -> Result<Vec<u8>, BoxError> {
    let mut graph = CompositionGraph::new();
    let registry = Package::from_file("registry:component", None, registry, graph.types_mut())?;
    let registry = graph.register_package(registry)?;
    let storage = Package::from_file("registry:storage-fs", None, storage, graph.types_mut())?;
    let storage = graph.register_package(storage)?;

    let storage = graph.instantiate(storage);
    let registry = graph.instantiate(registry);
    for interface in STORAGE_INTERFACES {
        let export = graph.alias_instance_export(storage, interface)?;
        graph.set_instantiation_argument(registry, interface, export)?;
    }
    let handler = graph.alias_instance_export(registry, HANDLER)?;
    graph.export(handler, HANDLER)?;

    let bytes = graph.encode(EncodeOptions::default())?;
    check_imports(&bytes)?;
    Ok(bytes)
}

/// Fails the build if the result imports anything a plain wasi-http
/// runtime lacks (say, a storage interface left unplugged).
fn check_imports(bytes: &[u8]) -> Result<(), BoxError> {
    let mut graph = CompositionGraph::new();
    let package = Package::from_bytes("registry:composed", None, bytes.to_vec(), graph.types_mut())?;
    let world = &graph.types()[package.ty()];
    let foreign: Vec<&String> =
        world.imports.keys().filter(|name| !ALLOWED_IMPORTS.iter().any(|p| name.starts_with(p))).collect();
    if !foreign.is_empty() {
        return Err(format!("registry.wasm would import {foreign:?}, which wasi-http runtimes do not provide").into());
    }
    if !world.exports.contains_key(HANDLER) {
        return Err(format!("registry.wasm does not export {HANDLER}").into());
    }
    Ok(())
}

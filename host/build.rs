//! Builds the registry component for wasm32-wasip2 so that a plain
//! `cargo build` of the host embeds the current component: no second step.

use std::path::PathBuf;

include!("../build-support/components.rs");

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().expect("host/ sits in the workspace").to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for watched in ["registry-component/src", "registry-component/Cargo.toml", "wit", "Cargo.lock", "build-support"] {
        // Relative to this package: cargo resolves it against the package being
        // built, so a target directory shared by several checkouts (CI's cache)
        // never watches, and embeds, another checkout's sources.
        println!("cargo:rerun-if-changed=../{watched}");
    }
    println!("cargo:rerun-if-env-changed=REGISTRY_COMPONENT_PROFILE");

    ensure_wasm_target();
    let built = build_component(&root, &components_target_dir(&out_dir), "registry-component");
    copy_if_changed(&built, &out_dir.join("registry_component.wasm"));
}

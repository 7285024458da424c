// Building workspace crates as wasm32-wasip2 components from a build script.
//
// Shared by `host/build.rs` and `registry-wasm/build.rs`, which both
// `include!` this file (so it has no `use` lines: the includer's own
// imports must not clash).
//
// Both build scripts build into one target directory,
// `<target>/<profile>/wasm-components`, with identical commands per crate,
// so the registry component is compiled once for both. It is a separate
// target directory: the outer cargo holds the lock on its own, while the
// inner builds wait for each other's lock on this one.

/// `<target>/<profile>`: the directory of the outer build's artifacts,
/// found from OUT_DIR (`<target>/<profile>/build/<pkg>-<hash>/out`).
#[allow(dead_code)]
fn profile_dir(out_dir: &std::path::Path) -> std::path::PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(std::path::Path::parent)
        .unwrap_or_else(|| panic!("OUT_DIR {} is not under <target>/<profile>/build", out_dir.display()))
        .to_path_buf()
}

/// Where the wasm components are built.
#[allow(dead_code)]
fn components_target_dir(out_dir: &std::path::Path) -> std::path::PathBuf {
    profile_dir(out_dir).join("wasm-components")
}

/// Builds workspace package `package` (a cdylib) for wasm32-wasip2 in
/// release mode and returns the path of its component.
#[allow(dead_code)]
fn build_component(root: &std::path::Path, target_dir: &std::path::Path, package: &str) -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--locked", "-p", package, "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(target_dir);
    // Flags meant for the outer build must not leak into the wasm build; nor
    // must `cargo clippy`'s wrapper, which would lint (and, with `-D warnings`,
    // fail) the inner build and change its fingerprints, so that the next
    // plain build recompiled the components.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("running cargo to build {package}: {e}"));
    if !status.success() {
        panic!(
            "building {package} for wasm32-wasip2 failed (is the target installed? \
             `rustup target add wasm32-wasip2`)"
        );
    }
    target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", package.replace('-', "_")))
}

/// rust-toolchain.toml names the target, but rustup adds it only when it
/// installs the toolchain; on a machine that already had the toolchain,
/// add it here so that the README's one command works on a fresh clone.
#[allow(dead_code)]
fn ensure_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = std::process::Command::new(&rustc).args(["--print", "sysroot"]).output();
    let Ok(sysroot) = sysroot else { return };
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if std::path::Path::new(&sysroot).join("lib/rustlib/wasm32-wasip2").exists() {
        return;
    }
    println!("cargo:warning=installing the wasm32-wasip2 target with rustup");
    let _ = std::process::Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status();
}

/// Writes `bytes` to `to` unless it holds them already (keeps its mtime,
/// so that nothing downstream rebuilds for nothing).
#[allow(dead_code)]
fn write_if_changed(bytes: &[u8], to: &std::path::Path) {
    if std::fs::read(to).ok().as_deref() != Some(bytes) {
        std::fs::write(to, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
    }
}

/// Copies `from` to `to` unless `to` holds the same bytes already.
#[allow(dead_code)]
fn copy_if_changed(from: &std::path::Path, to: &std::path::Path) {
    let new = std::fs::read(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    write_if_changed(&new, to);
}

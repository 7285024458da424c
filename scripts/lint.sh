#!/usr/bin/env bash
# Format and lint checks, the first and quickest stage of scripts/test.sh (and the
# `lint` job of the GitHub workflow): rustfmt over both workspaces (the registry's and
# tests/), and clippy with warnings as errors on every target of both, natively and,
# for the crates that become components, on wasm32-wasip2.
#
#   bash scripts/lint.sh
#
# It needs only the toolchain that rust-toolchain.toml pins (with rustfmt, clippy
# and the wasm32-wasip2 target, which rustup adds on first use).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The crates compiled to wasm32-wasip2 components.
wasm_crates=(-p registry-component -p storage-fs)

step() {
    printf -- '-- %s\n' "$*"
    "$@"
}

# rust-toolchain.toml names the target; add it where rustup did not (yet).
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    step rustup target add wasm32-wasip2
fi

step cargo fmt --all -- --check
step cargo fmt --manifest-path tests/Cargo.toml --all -- --check
step cargo clippy --workspace --all-targets --locked -- -D warnings
step cargo clippy --target wasm32-wasip2 "${wasm_crates[@]}" --all-targets --locked -- -D warnings
step cargo clippy --manifest-path tests/Cargo.toml --all-targets --locked -- -D warnings
echo "fmt and clippy: clean"

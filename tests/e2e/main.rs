//! End-to-end tests of the registry as users run it: `registry-host` (its storage on
//! the filesystem or on S3), or the composed
//! `registry.wasm` under `wasmtime serve` or `jco serve` (`REGISTRY_TEST_DEPLOYMENT`,
//! see `common`), on an ephemeral port with a temporary data directory, driven over
//! HTTP by raw requests, by the `oci-client` crate, by the Docker CLI, by `skopeo` and
//! by the `oras` Python SDK. One module per API area of the OCI Distribution
//! Specification v1.1, `auth_clients` for those clients (and podman) with access
//! control on, `host` for the native binary itself, `s3` for several of them on
//! one S3 store (`host-s3`), and `r2` for the Cloudflare Worker's R2 bucket
//! (`wrangler`); `common` holds the fixtures.
//!
//! Run everything with `bash scripts/test.sh` (it builds both artifacts, installs
//! wasmtime and jco, starts the Docker daemon the Docker test needs, and runs this
//! suite once per deployment); `cargo test --release --manifest-path tests/Cargo.toml`
//! runs this suite alone, against `registry-host` unless told otherwise.

mod common;

mod auth;
mod auth_clients;
mod base;
mod blobs;
mod catalog;
mod deletes;
mod docker_cli;
mod full_disk;
mod gc;
mod host;
mod manifests;
mod mirror;
mod mount;
mod oci_client;
mod oras;
mod r2;
mod ranges;
mod referrers;
mod s3;
mod skopeo;
mod tags;
mod uploads;

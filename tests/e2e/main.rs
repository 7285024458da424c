//! End-to-end tests of `registry-host`: the real binary on an ephemeral port with a
//! temporary data directory, driven over HTTP by raw requests, by the `oci-client`
//! crate and by the Docker CLI. One module per API area of the OCI Distribution
//! Specification v1.1; `common` holds the fixtures.
//!
//! Run everything with `bash scripts/test.sh` (it also starts the Docker daemon the
//! Docker test needs); `cargo test --release -p registry-host --test e2e` runs this
//! suite alone.

mod common;

mod base;
mod blobs;
mod docker_cli;
mod host;
mod manifests;
mod oci_client;
mod uploads;

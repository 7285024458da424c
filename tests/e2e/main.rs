//! End-to-end tests of `registry-host`: the real binary on an ephemeral port with a
//! temporary data directory, driven over HTTP by raw requests, by the `oci-client`
//! crate, by the Docker CLI, by `skopeo` and by the `oras` Python SDK. One module per API area of the OCI Distribution
//! Specification v1.1; `common` holds the fixtures.
//!
//! Run everything with `bash scripts/test.sh` (it also starts the Docker daemon the
//! Docker test needs); `cargo test --release -p registry-host --test e2e` runs this
//! suite alone.

mod common;

mod base;
mod blobs;
mod catalog;
mod deletes;
mod docker_cli;
mod host;
mod manifests;
mod mount;
mod oci_client;
mod oras;
mod ranges;
mod referrers;
mod skopeo;
mod tags;
mod uploads;

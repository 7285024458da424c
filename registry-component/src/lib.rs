//! The OCI Distribution registry as a wasi-http component.
//!
//! Everything that does not touch wasm (names, digests, routing, manifests,
//! ranges, paging, storage keys, errors) is plain Rust, unit-tested natively.
//! The wasm glue (`bindings`, `http`, `storage`) and the handlers (`api`)
//! compile only for wasm32: they talk to `wasi:http` and to the storage
//! contract in `wit/`.

#![deny(missing_docs)]

pub mod error;
pub mod oci;
pub mod pagination;
pub mod range;
pub mod router;
pub mod session;
pub mod store;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod storage;

/// The `wasi:http/incoming-handler` export.
#[cfg(target_arch = "wasm32")]
struct Registry;

#[cfg(target_arch = "wasm32")]
impl wasip2::exports::http::incoming_handler::Guest for Registry {
    fn handle(request: wasip2::http::types::IncomingRequest, response_out: wasip2::http::types::ResponseOutparam) {
        api::handle(request, response_out);
    }
}

#[cfg(target_arch = "wasm32")]
wasip2::http::proxy::export!(Registry);

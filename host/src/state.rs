//! Per-request store data: WASI and wasi-http contexts plus the storage.

use crate::backend::Backend;
use crate::storage::RequestWrites;
use std::future::Future;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// What one request's `Store` holds.
pub struct HostState {
    /// WASI context (environment only: no preopens, no inherited stdio but stderr).
    pub wasi: WasiCtx,
    /// wasi:http context.
    pub http: WasiHttpCtx,
    /// Resources handed to the guest.
    pub table: ResourceTable,
    /// The store, shared by all requests.
    pub storage: Backend,
    /// How response bodies are buffered.
    pub hooks: RegistryHooks,
    /// What this request wrote: durable before its response goes out (the
    /// server shares this with the request's handler).
    pub writes: Arc<RequestWrites>,
}

/// wasi-http settings for a registry: blob downloads are large, so let a few
/// chunks queue between the guest and the connection instead of one, so
/// that reading the next chunk from storage overlaps sending the last.
#[derive(Default)]
pub struct RegistryHooks;

impl WasiHttpHooks for RegistryHooks {
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        4
    }

    /// Through crate::outgoing: the system's roots, and proxies.
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        drop(fut);
        Box::new(async move {
            let outgoing = crate::outgoing::outgoing().map_err(|why| {
                wasmtime_wasi_http::Error::Connect(std::io::Error::other(format!("outgoing HTTP settings: {why}")))
            })?;
            let (response, io) = outgoing.send(request, options).await?;
            Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

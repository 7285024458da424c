//! The HTTP server: bind, accept, one wasm instance per request, graceful
//! shutdown on SIGINT/SIGTERM.

use crate::state::{HostState, RegistryHooks};
use crate::storage::RequestWrites;
use crate::storage::Storage;
use crate::Args;
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use wasmtime::component::ResourceTable;
use wasmtime::Store;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

/// Everything a request needs, built once at start-up.
struct Server {
    pre: ProxyPre<HostState>,
    storage: Arc<Storage>,
    env: Vec<(String, String)>,
}

/// Runs the server until SIGINT or SIGTERM, then drains in-flight requests.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone();
    // May redo the journal: blocking work.
    let storage = tokio::task::spawn_blocking(move || Storage::open(&data_dir))
        .await?
        .with_context(|| format!("data directory {} is not usable", args.data_dir.display()))?;
    let pre = crate::engine::prepare(args.component.as_deref(), &args.data_dir.join("cache"))?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let env = vec![("REGISTRY_DELETE_ENABLED".to_string(), (!args.disable_delete).to_string())];
    let server = Arc::new(Server { pre, storage, env });
    // Tests and scripts parse this line: keep its shape stable.
    eprintln!("registry-host listening on http://{addr}/");

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                // Registry traffic is request/response: don't delay small writes.
                let _ = stream.set_nodelay(true);
                let server = server.clone();
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { server.handle(req).await }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection from {peer}: {e}");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    eprintln!("registry-host shutting down: finishing requests in flight");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {
            tracing::warn!("requests still running after 30 s; exiting anyway");
        }
    }
    // Nothing left for the next start to redo.
    let storage = server.storage.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || storage.close()).await? {
        tracing::error!("closing the journal: {e}");
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

impl Server {
    async fn handle(&self, req: hyper::Request<Incoming>) -> anyhow::Result<hyper::Response<HyperOutgoingBody>> {
        let start = Instant::now();
        let method = req.method().clone();
        let uri = req.uri().clone();
        let result = self.call_guest(req).await;
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                tracing::error!("{method} {uri}: the registry component failed: {e:#}");
                internal_error()
            }
        };
        tracing::info!(
            target: "access",
            "{method} {uri} {} {:.1}ms",
            response.status().as_u16(),
            start.elapsed().as_secs_f64() * 1000.0
        );
        Ok(response)
    }

    async fn call_guest(&self, req: hyper::Request<Incoming>) -> anyhow::Result<hyper::Response<HyperOutgoingBody>> {
        let wasi = WasiCtx::builder().inherit_stderr().envs(&self.env).build();
        let writes = Arc::new(RequestWrites::default());
        let state = HostState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            storage: self.storage.clone(),
            hooks: RegistryHooks,
            writes: writes.clone(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store.data_mut().http().new_incoming_request(Scheme::Http, req).map_err(wt)?;
        let out = store.data_mut().http().new_response_outparam(sender).map_err(wt)?;
        let pre = self.pre.clone();
        // The guest keeps running after it sets the response, to stream the
        // body; so it runs in its own task.
        let storage = self.storage.clone();
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            let result = proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await;
            // Writes made after the response was set still become durable
            // before the request ends.
            let writes = store.data().writes.clone();
            if let Err(e) = writes.settle(&storage).await {
                tracing::error!("making writes durable: {e}");
            }
            result
        });
        match receiver.await {
            Ok(Ok(response)) => {
                // What the request wrote must be durable before the client
                // hears that it succeeded.
                if let Err(e) = writes.settle(&self.storage).await {
                    tracing::error!("making writes durable: {e}");
                    return Ok(internal_error());
                }
                Ok(response)
            }
            Ok(Err(code)) => anyhow::bail!("the component answered with an error: {code:?}"),
            Err(_) => match task.await {
                Ok(Ok(())) => anyhow::bail!("the component did not set a response"),
                Ok(Err(e)) => Err(anyhow::anyhow!("{e:?}")),
                Err(e) => Err(e.into()),
            },
        }
    }
}

fn wt(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

/// The spec's error envelope for failures of the host or the component
/// itself (never for client mistakes, which the component answers).
fn internal_error() -> hyper::Response<HyperOutgoingBody> {
    let body = r#"{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"the registry failed to handle the request"}]}"#;
    let body = Full::new(Bytes::from_static(body.as_bytes())).map_err(|never| match never {}).boxed_unsync();
    hyper::Response::builder()
        .status(500)
        .header("content-type", "application/json")
        .header("docker-distribution-api-version", "registry/2.0")
        .body(body)
        .expect("static response")
}

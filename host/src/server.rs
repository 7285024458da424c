//! The server: bind, accept (plain HTTP/1.1, or TLS with HTTP/2 and
//! HTTP/1.1) within the connection cap, one wasm instance per request (or
//! kept ones, with `--instance-reuse`),
//! graceful shutdown on SIGINT/SIGTERM, reload on SIGHUP.

use crate::backend::Backend;
use crate::instances::Instances;
use crate::limits::activity::{Activity, ResponseBody};
use crate::limits::body_timeout::TimedBody;
use crate::limits::cap::{Cap, Slot};
use crate::limits::deadline_io::{DeadlineIo, Protocol};
use crate::limits::Timeouts;
use crate::reload::{LiveConfig, Sources};
use crate::request_log::{Access, CountedBody, REQUEST_ID_HEADER};
use crate::storage::RequestWrites;
use crate::storage::Storage;
use crate::Args;
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::Watcher;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

/// The request header that carries the client's IP address to the component.
/// The host always sets it, replacing whatever a client sent under that name,
/// so the component may trust it.
pub const CLIENT_ADDRESS_HEADER: &str = "registry-client-address";
/// The response header in which the component names the signed-in user,
/// for the access line; never sent on to the client.
pub const USER_HEADER: &str = "registry-user";
/// The response header in which the component names what a collection
/// stepped through `/_registry/gc` removed when it finished (`<blobs>
/// <bytes>`), for the metrics; never sent on to the client.
pub const GC_RESULT_HEADER: &str = "registry-gc-result";

/// How long a client may take over its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest HTTP/1.1 request head (request line and headers), which
/// hyper buffers whole: bounds what a slow client makes each connection hold
/// (hyper's own bound is its read buffer, ~400 KiB). Ample for a registry,
/// whose largest header is a bearer token of a few KiB; HTTP/2 bounds the
/// header list at 16 KiB by default.
const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// How long the accept loop pauses after a failed accept (out of file
/// descriptors, most likely), so that connections can close meanwhile.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A request as the component gets it: hyper's body with the body timeout.
type Request = hyper::Request<CountedBody<TimedBody<Incoming>>>;

/// Everything a request needs.
struct Server {
    /// Where each request's component instance comes from.
    instances: Arc<Instances>,
    storage: Backend,
    /// The TLS certificate and the component's environment, reloaded on SIGHUP.
    live: Arc<LiveConfig>,
    timeouts: Timeouts,
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

/// Runs the server until SIGINT or SIGTERM, then drains in-flight requests.
pub async fn run(args: Args) -> anyhow::Result<()> {
    // The TLS and access-control files first: a mistake there is the quickest
    // to report.
    let mut fixed_env = vec![
        ("REGISTRY_DELETE_ENABLED".to_string(), (!args.disable_delete).to_string()),
        ("REGISTRY_CLIENT_ADDRESS_HEADER".to_string(), CLIENT_ADDRESS_HEADER.to_string()),
        ("REGISTRY_USER_HEADER".to_string(), USER_HEADER.to_string()),
        ("REGISTRY_GC_RESULT_HEADER".to_string(), GC_RESULT_HEADER.to_string()),
    ];
    fixed_env.extend(args.gc.env());
    if args.proxy.is_some() {
        let outgoing =
            crate::outgoing::outgoing().map_err(|e| anyhow::anyhow!("--proxy: the outgoing HTTP settings: {e}"))?;
        tracing::info!("{}", outgoing.describe());
    }
    let config = match &args.config_file {
        Some(file) => Some(crate::config_watch::WatchedConfig::new(file, args.log_level_from_file, &args.log_level)?),
        None => None,
    };
    let sources =
        Sources { tls: args.tls_files()?, auth: args.auth_files(), proxy: args.proxy.clone(), fixed_env, config };
    let live = Arc::new(LiveConfig::load(sources)?);
    let storage = open_storage(&args).await?;
    let pre = crate::engine::prepare(args.component.as_deref(), &args.data_dir.join("cache"))?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    if let Some(metrics_addr) = args.metrics_listen {
        let metrics = TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {metrics_addr} (--metrics-listen)"))?;
        crate::metrics::enable();
        // Tests and scripts parse this line too.
        eprintln!("registry-host metrics on http://{}/metrics", metrics.local_addr()?);
        tokio::spawn(crate::metrics::serve::run(metrics, storage.clone(), args.data_dir.clone()));
    }
    let addr = listener.local_addr()?;
    log_access_control(&live, addr, args.disable_delete);
    // Installed before the listening line, so that no SIGHUP after it can
    // take the default action (exit).
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing a SIGHUP handler")?;
    tokio::spawn(crate::reload::reload_on_hangup(live.clone(), hangup));
    let mut signals = ShutdownSignals::install()?;
    let tls = live.has_tls();
    let timeouts = args.timeouts();
    let cap = crate::limits::prepare(timeouts, args.max_connections, args.max_connections_per_client);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    // The header timeout is `DeadlineIo`'s: hyper's would count the idle
    // time before a request as well.
    http1.keep_alive(true).max_header_size(MAX_REQUEST_HEAD).header_read_timeout(None);
    let http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    if let Some(every) = args.gc.interval {
        tokio::spawn(crate::gc::every(pre.clone(), storage.clone(), live.clone(), every));
    }
    let instances = Arc::new(Instances::new(pre, args.instance_reuse));
    if instances.reuses() {
        tracing::warn!(
            "instance reuse is on: an instance serves up to {} requests one after another, of any clients (README, \"Instance reuse\")",
            args.instance_reuse
        );
    }
    let server = Arc::new(Server { instances, storage, live, timeouts, http1, http2 });
    // Tests and scripts parse this line: keep its shape stable.
    eprintln!("registry-host listening on {}://{addr}/", if tls { "https" } else { "http" });

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(signals.received());
    loop {
        tokio::select! {
            admitted = accept(&listener, &cap) => {
                let Some((stream, peer, slot)) = admitted else { continue };
                let id = slot.id();
                // The watcher counts the connection now, so that a shutdown
                // waits for it.
                let task = tokio::spawn(server.clone().serve(stream, peer, slot, graceful.watcher()));
                cap.closes_with(id, task.abort_handle());
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
    if let Some(storage) = server.storage.fs().cloned() {
        if let Err(e) = tokio::task::spawn_blocking(move || storage.close()).await? {
            tracing::error!("closing the journal: {e}");
        }
    }
    Ok(())
}

/// The store of `--storage`: the data directory, or an S3 bucket.
pub async fn open_storage(args: &Args) -> anyhow::Result<Backend> {
    if args.storage.storage.is_some() {
        return Ok(Backend::S3(Arc::new(crate::s3::S3Store::open(&args.storage).await?)));
    }
    let data_dir = args.data_dir.clone();
    // May redo the journal: blocking work.
    let storage = tokio::task::spawn_blocking(move || Storage::open(&data_dir))
        .await?
        .with_context(|| format!("data directory {} is not usable", args.data_dir.display()))?;
    Ok(Backend::Fs(storage))
}

/// The next connection within the cap: waits for room as the cap says, and
/// closes those of clients at their own cap.
async fn accept(listener: &TcpListener, cap: &Arc<Cap>) -> Option<(TcpStream, SocketAddr, Slot)> {
    let (stream, peer) = match listener.accept().await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!("accept failed: {e}");
            tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            return None;
        }
    };
    let slot = cap.admit(peer.ip().to_canonical()).await?;
    Some((stream, peer, slot))
}

/// One line on whether anyone is refused, and a warning when passwords would
/// cross the network in clear.
fn log_access_control(live: &LiveConfig, addr: SocketAddr, disable_delete: bool) {
    let auth = live.auth();
    let loopback = addr.ip().to_canonical().is_loopback();
    if !auth.is_on() {
        let may = if disable_delete { "push and overwrite tags" } else { "push, overwrite tags and delete" };
        if loopback {
            tracing::info!("access control off: anyone who can reach {addr} may {may}");
        } else {
            tracing::warn!("access control off: anyone who can reach {addr} may {may}");
        }
        return;
    }
    tracing::info!("access control on: {}", auth.describe());
    if !live.has_tls() && !loopback {
        tracing::warn!(
            "ACCESS CONTROL WITHOUT TLS on {addr}, which is not a loopback address: passwords and tokens cross \
             the network in clear, and Docker refuses plain HTTP to registries not on loopback. \
             Give --tls-cert and --tls-key"
        );
    }
}

/// The handlers of SIGTERM and SIGINT, installed when made: before the
/// listening line, so that a signal sent as soon as the server answers
/// finds them (and does not take the default action, exit).
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<ShutdownSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            term: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
        })
    }

    /// Waits for either.
    async fn received(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

impl Server {
    /// Serves one connection until it ends or times out (or the cap closes
    /// it: then this task is aborted), holding its `slot` till then.
    async fn serve(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, slot: Slot, watcher: Watcher) {
        // Registry traffic is request/response: don't delay small writes.
        let _ = stream.set_nodelay(true);
        let activity = slot.activity();
        let result = if self.live.has_tls() {
            self.serve_tls(stream, peer, activity, watcher).await
        } else {
            let io = DeadlineIo::new(stream, activity.clone(), self.timeouts, Protocol::Http1);
            let conn = self.http1.serve_connection(TokioIo::new(io), self.service(peer, activity));
            watcher.watch(conn).await
        };
        if let Err(e) = result {
            tracing::debug!("connection from {peer}: {e}");
        }
    }

    /// Serves one TLS connection: the handshake with the certificate in force
    /// now (a reload later changes nothing here), then HTTP/2 or HTTP/1.1, as
    /// ALPN agreed.
    async fn serve_tls(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        activity: &Arc<Activity>,
        watcher: Watcher,
    ) -> Result<(), hyper::Error> {
        let Some(tls) = self.live.current().tls.clone() else {
            return Ok(());
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
        let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!("TLS handshake with {peer}: {e}");
                return Ok(());
            }
            Err(_) => {
                tracing::debug!("TLS handshake with {peer}: no handshake in {TLS_HANDSHAKE_TIMEOUT:?}");
                return Ok(());
            }
        };
        let service = self.service(peer, activity);
        if stream.get_ref().1.alpn_protocol() == Some(&b"h2"[..]) {
            let io = DeadlineIo::new(stream, activity.clone(), self.timeouts, Protocol::Http2);
            watcher.watch(self.http2.serve_connection(TokioIo::new(io), service)).await
        } else {
            let io = DeadlineIo::new(stream, activity.clone(), self.timeouts, Protocol::Http1);
            watcher.watch(self.http1.serve_connection(TokioIo::new(io), service)).await
        }
    }

    /// The service for one connection from `peer`: each request counts in
    /// `activity` until both its body and its response are done with.
    fn service(
        self: &Arc<Self>,
        peer: SocketAddr,
        activity: &Arc<Activity>,
    ) -> impl hyper::service::Service<
        hyper::Request<Incoming>,
        Response = hyper::Response<ResponseBody<CountedBody<HyperOutgoingBody>>>,
        Error = anyhow::Error,
        Future: Send + 'static,
    > + Send
           + 'static {
        let server = self.clone();
        let activity = activity.clone();
        let client = peer.ip().to_canonical();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let server = server.clone();
            let [body_in_flight, response_in_flight] = activity.request_started();
            let mut access = Access::of(&req, client);
            let received = access.received.clone();
            let req = req
                .map(|body| CountedBody::request(TimedBody::new(body, server.timeouts.body, body_in_flight), received));
            async move {
                let mut response = server.handle(req, &access).await?;
                access.status = response.status().as_u16();
                access.user =
                    response.headers_mut().remove(USER_HEADER).and_then(|v| v.to_str().ok().map(str::to_string));
                if let Some(result) = response.headers_mut().remove(GC_RESULT_HEADER) {
                    count_collection(&result);
                }
                Ok::<_, anyhow::Error>(
                    response.map(|body| ResponseBody::new(CountedBody::response(body, access), response_in_flight)),
                )
            }
        })
    }

    /// Answers `req`, described by `access` (its status not yet known).
    async fn handle(&self, mut req: Request, access: &Access) -> anyhow::Result<hyper::Response<HyperOutgoingBody>> {
        let Access { id, client, method, uri, route, started, .. } = access;
        set_client_address(req.headers_mut(), *client);
        let result = self.call_guest(req, id).await;
        let mut response = match result {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(request_id = %id, "{method} {uri}: the registry component failed: {e:#}");
                internal_error()
            }
        };
        crate::metrics::request(method, route, response.status().as_u16(), started.elapsed());
        if let Ok(value) = HeaderValue::from_str(id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        Ok(response)
    }

    async fn call_guest(&self, req: Request, id: &str) -> anyhow::Result<hyper::Response<HyperOutgoingBody>> {
        let config = self.live.current();
        let scheme = if config.tls.is_some() { Scheme::Https } else { Scheme::Http };
        call_instance(&self.instances, &self.storage, &config.env, scheme, req, Some(id)).await
    }
}

/// Runs `req` through an instance from `instances` with `env`; the
/// response once the writes it reports are durable. The component's stderr
/// lines carry `request_id` when given.
pub async fn call_instance<B>(
    instances: &Arc<Instances>,
    storage: &Backend,
    env: &Arc<Vec<(String, String)>>,
    scheme: Scheme,
    req: hyper::Request<B>,
    request_id: Option<&str>,
) -> anyhow::Result<hyper::Response<HyperOutgoingBody>>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let writes = Arc::new(RequestWrites::default());
    let mut warm = instances.take(storage, env, request_id, writes.clone()).await?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let req = warm.store.data_mut().http().new_incoming_request(scheme, req).map_err(wt)?;
    let out = warm.store.data_mut().http().new_response_outparam(sender).map_err(wt)?;
    // The guest keeps running after it sets the response, to stream the
    // body; so it runs in its own task.
    let task_storage = storage.clone();
    let instances = instances.clone();
    let task = tokio::spawn(async move {
        let result = warm.proxy.wasi_http_incoming_handler().call_handle(&mut warm.store, req, out).await;
        // Writes made after the response was set still become durable
        // before the request ends.
        let writes = warm.store.data().writes.clone();
        if let Err(e) = settle(&writes, &task_storage).await {
            tracing::error!("making writes durable: {e}");
        }
        // An instance that trapped is never used again.
        if result.is_ok() {
            instances.give_back(warm);
        }
        result
    });
    match receiver.await {
        Ok(Ok(response)) => {
            // What the request wrote must be durable before the client
            // hears that it succeeded.
            if let Err(e) = settle(&writes, storage).await {
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

/// Makes what a request wrote durable: the writes still running in the
/// background, then the filesystem's flushes (an S3 store acknowledged each
/// write already).
async fn settle(writes: &RequestWrites, storage: &Backend) -> anyhow::Result<()> {
    writes.settle_tasks().await?;
    if let Some(fs) = storage.fs() {
        writes.settle(fs).await?;
    }
    Ok(())
}

/// Counts a collection that a client stepped to its end through
/// `/_registry/gc`, from the component's `<blobs> <bytes>`.
fn count_collection(result: &HeaderValue) {
    let counts = result.to_str().ok().and_then(|text| {
        let (blobs, bytes) = text.split_once(' ')?;
        Some((blobs.parse().ok()?, bytes.parse().ok()?))
    });
    match counts {
        Some((blobs, bytes)) => crate::metrics::collected(blobs, bytes),
        None => tracing::warn!("the component named a collection's result as {result:?}: not counted"),
    }
}

/// Puts the client's address in its header, replacing any that the client
/// sent: the component trusts this header, so a client must not choose it.
fn set_client_address(headers: &mut HeaderMap, client: IpAddr) {
    let value = HeaderValue::from_str(&client.to_string()).expect("an IP address is a valid header value");
    // `insert` replaces every value the header had.
    headers.insert(HeaderName::from_static(CLIENT_ADDRESS_HEADER), value);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_replaces_what_a_client_sent() {
        let mut headers = HeaderMap::new();
        headers.append(CLIENT_ADDRESS_HEADER, HeaderValue::from_static("10.0.0.1"));
        headers.append("Registry-Client-Address", HeaderValue::from_static("10.0.0.2"));
        headers.append("other", HeaderValue::from_static("kept"));
        set_client_address(&mut headers, "192.0.2.7".parse().unwrap());
        let values: Vec<_> = headers.get_all(CLIENT_ADDRESS_HEADER).iter().collect();
        assert_eq!(values, [HeaderValue::from_static("192.0.2.7")]);
        assert_eq!(headers["other"], "kept");
    }

    #[test]
    fn the_client_address_is_set_when_none_was_sent() {
        let mut headers = HeaderMap::new();
        set_client_address(&mut headers, "2001:db8::1".parse().unwrap());
        assert_eq!(headers[CLIENT_ADDRESS_HEADER], "2001:db8::1");
    }
}

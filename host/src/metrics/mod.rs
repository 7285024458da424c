//! What an operator scrapes (`--metrics-listen`): Prometheus metrics of the
//! requests, the component's instantiation and garbage collection, and
//! liveness and readiness endpoints (`serve.rs`). Metrics are kept in plain
//! atomics behind `prometheus-client`, so recording costs a few atomic
//! adds per request; nothing is recorded when no address is given.

mod route;
pub mod serve;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::time::Duration;

pub use route::{repository_of, route_of};

/// A request as counted: the route (never the repository, which would
/// make the number of series grow with the registry), the method and the
/// status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

/// A request as timed: its route and method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

/// A storage operation as timed: which store, which call of the contract.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabels {
    backend: &'static str,
    operation: &'static str,
}

/// A failure of the store (not an answer such as `not-found`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageErrorLabels {
    backend: &'static str,
    kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, from 0.5 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Seconds, from 10 µs to about 20 s: most calls of the data directory's
/// store take microseconds.
fn storage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00001, 3.0, 14))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily<RouteLabels>,
    auth_failures: Counter,
    received: Counter,
    sent: Counter,
    uploads: Gauge,
    storage_durations: HistogramFamily<StorageLabels>,
    storage_errors: Family<StorageErrorLabels, Counter>,
    instantiations: Histogram,
    gc_runs: Counter,
    gc_bytes: Counter,
    gc_blobs: Counter,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Starts recording (once, at start-up, when an address is given).
pub fn enable() -> &'static Metrics {
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("registry");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route, method and status", requests.clone());
        let durations: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response's head, by route and method",
            durations.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Requests refused for their credentials or their rights (401 and 403)",
            auth_failures.clone(),
        );
        let received = Counter::default();
        registry.register("http_received_bytes", "Bytes of request bodies received", received.clone());
        let sent = Counter::default();
        registry.register("http_sent_bytes", "Bytes of response bodies sent", sent.clone());
        let uploads = Gauge::default();
        registry.register(
            "uploads_in_progress",
            "Uploads started and neither committed nor aborted, as the store lists them when scraped",
            uploads.clone(),
        );
        let storage_durations: HistogramFamily<StorageLabels> = Family::new_with_constructor(storage_histogram);
        registry.register(
            "storage_operation_duration_seconds",
            "Time of each call of the storage contract, by backend (fs, s3) and operation",
            storage_durations.clone(),
        );
        let storage_errors = Family::<StorageErrorLabels, Counter>::default();
        registry.register(
            "storage_errors",
            "Failures of the store: full, unavailable, or other (answers such as not-found are not counted)",
            storage_errors.clone(),
        );
        let instantiations = latency_histogram();
        registry.register(
            "component_instantiation_seconds",
            "Time to instantiate the registry component for a request",
            instantiations.clone(),
        );
        let gc_runs = Counter::default();
        registry.register("gc_runs", "Garbage collections this process ran to their end", gc_runs.clone());
        let gc_bytes = Counter::default();
        registry.register("gc_reclaimed_bytes", "Bytes of blobs removed by garbage collection", gc_bytes.clone());
        let gc_blobs = Counter::default();
        registry.register("gc_removed_blobs", "Blobs removed by garbage collection", gc_blobs.clone());
        Metrics {
            registry,
            requests,
            durations,
            auth_failures,
            received,
            sent,
            uploads,
            storage_durations,
            storage_errors,
            instantiations,
            gc_runs,
            gc_bytes,
            gc_blobs,
        }
    })
}

/// The metrics, if recording is on.
fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// Records an answered request of `route` (`route_of` its path).
pub fn request(method: &hyper::Method, route: &'static str, status: u16, elapsed: Duration) {
    let Some(m) = get() else { return };
    let method = method_label(method);
    m.requests.get_or_create(&RequestLabels { route, method, status }).inc();
    m.durations.get_or_create(&RouteLabels { route, method }).observe(elapsed.as_secs_f64());
    if status == 401 || status == 403 {
        m.auth_failures.inc();
    }
}

/// Records the body bytes of one request and its response.
pub fn transferred(received: u64, sent: u64) {
    if let Some(m) = get() {
        m.received.inc_by(received);
        m.sent.inc_by(sent);
    }
}

/// The label of a backend.
pub fn backend_name(backend: &crate::backend::Backend) -> &'static str {
    match backend {
        crate::backend::Backend::Fs(_) => "fs",
        crate::backend::Backend::S3(_) => "s3",
    }
}

/// Times one call of the storage contract until dropped.
pub struct StorageOp {
    labels: Option<(StorageLabels, std::time::Instant)>,
}

impl StorageOp {
    pub fn start(operation: &'static str, backend: &crate::backend::Backend) -> StorageOp {
        let labels =
            get().map(|_| (StorageLabels { backend: backend_name(backend), operation }, std::time::Instant::now()));
        StorageOp { labels }
    }
}

impl Drop for StorageOp {
    fn drop(&mut self) {
        if let (Some(m), Some((labels, started))) = (get(), &self.labels) {
            m.storage_durations.get_or_create(labels).observe(started.elapsed().as_secs_f64());
        }
    }
}

/// Records a failure of the store; answers that are part of the contract
/// (not-found, conflict, a digest mismatch, invalid input) are not failures.
pub fn storage_error(backend: &'static str, error: &storage_layout::StorageError) {
    use storage_layout::StorageError as E;
    let kind = match error {
        E::Full => "full",
        E::Unavailable(_) => "unavailable",
        E::Other(_) => "other",
        _ => return,
    };
    if let Some(m) = get() {
        m.storage_errors.get_or_create(&StorageErrorLabels { backend, kind }).inc();
    }
}

/// Sets the uploads in progress, before an exposition.
pub fn set_uploads(count: u64) {
    if let Some(m) = get() {
        m.uploads.set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}

/// The method as a label: the registry's methods by name, any other as
/// `other` (clients choose methods, and labels must stay few).
fn method_label(method: &hyper::Method) -> &'static str {
    match *method {
        hyper::Method::GET => "GET",
        hyper::Method::HEAD => "HEAD",
        hyper::Method::PUT => "PUT",
        hyper::Method::POST => "POST",
        hyper::Method::PATCH => "PATCH",
        hyper::Method::DELETE => "DELETE",
        hyper::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Records one instantiation of the component.
pub fn instantiated(elapsed: Duration) {
    if let Some(m) = get() {
        m.instantiations.observe(elapsed.as_secs_f64());
    }
}

/// Records a garbage collection that ran to its end.
pub fn collected(blobs: u64, bytes: u64) {
    if let Some(m) = get() {
        m.gc_runs.inc();
        m.gc_blobs.inc_by(blobs);
        m.gc_bytes.inc_by(bytes);
    }
}

/// The exposition, in the text format Prometheus scrapes.
pub fn encode() -> String {
    let mut out = String::new();
    if let Some(m) = get() {
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &m.registry);
    }
    out
}

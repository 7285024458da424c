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
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::time::Duration;

pub use route::route_of;

/// A request as counted: the route (never the repository, which would
/// make the number of series grow with the registry), the method and the
/// status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: String,
    status: u16,
}

/// A request as timed: its route and method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, from 0.5 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily<RouteLabels>,
    auth_failures: Counter,
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
        Metrics { registry, requests, durations, auth_failures, instantiations, gc_runs, gc_bytes, gc_blobs }
    })
}

/// The metrics, if recording is on.
fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// Records an answered request.
pub fn request(method: &hyper::Method, path: &str, status: u16, elapsed: Duration) {
    let Some(m) = get() else { return };
    let route = route_of(path);
    let method = method.as_str().to_string();
    m.requests.get_or_create(&RequestLabels { route, method: method.clone(), status }).inc();
    m.durations.get_or_create(&RouteLabels { route, method }).observe(elapsed.as_secs_f64());
    if status == 401 || status == 403 {
        m.auth_failures.inc();
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

//! Garbage collection from the host: the settings the component reads
//! (`REGISTRY_GC_*`), a schedule in the server, and the `gc` subcommand.
//! Both drive the component's `/_registry/gc` endpoint with in-process
//! requests that never touch the network, so they run the one collector
//! that every deployment runs, step by step.

use crate::backend::Backend;
use crate::instances::Instances;
use crate::limits::parse_duration;
use crate::reload::LiveConfig;
use crate::state::HostState;
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// The component's defaults (`registry-component/src/gc/settings.rs`),
/// which the flags' defaults repeat.
const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
const DEFAULT_UPLOAD_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How collections run.
#[derive(clap::Args, Debug, Clone)]
pub struct GcArgs {
    /// Blobs and untagged manifests younger than this are never collected:
    /// the time a client may take between pushing layers and the manifest
    /// that names them.
    #[arg(long = "gc-grace", env = "REGISTRY_GC_GRACE", value_name = "DURATION", default_value = "1h", value_parser = parse_duration, global = true)]
    pub grace: Duration,
    /// Uploads nobody appended to for this long are abandoned and removed.
    #[arg(long = "gc-upload-max-age", env = "REGISTRY_GC_UPLOAD_MAX_AGE", value_name = "DURATION", default_value = "7days", value_parser = parse_duration, global = true)]
    pub upload_max_age: Duration,
    /// Also remove manifests that no tag reaches (and referrers of removed
    /// manifests), as distribution's `garbage-collect --delete-untagged`.
    #[arg(long = "gc-delete-untagged", env = "REGISTRY_GC_DELETE_UNTAGGED", global = true)]
    pub delete_untagged: bool,
    /// Serve `/_registry/gc` without access control (with access control
    /// on, it is served to admins whatever this says).
    #[arg(long = "gc-endpoint", env = "REGISTRY_GC_ENDPOINT")]
    pub endpoint: bool,
    /// Collect this often in the server (`0`: never). On by default because
    /// deletes only unlink: without collections, deleted images would never
    /// give their space back, nor abandoned uploads theirs.
    #[arg(long = "gc-interval", env = "REGISTRY_GC_INTERVAL", value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub interval_flag: Duration,
    /// Set from `interval_flag`: `None` when off.
    #[arg(skip)]
    pub interval: Option<Duration>,
}

impl GcArgs {
    /// Settles derived fields after parsing.
    pub fn settle(&mut self) {
        self.interval = (!self.interval_flag.is_zero()).then_some(self.interval_flag);
    }

    /// The component's environment for these settings: only those that
    /// differ from the component's defaults (the same as the flags'), since
    /// every request's instance receives the whole environment.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if self.grace != DEFAULT_GRACE {
            env.push(("REGISTRY_GC_GRACE".into(), self.grace.as_secs().to_string()));
        }
        if self.upload_max_age != DEFAULT_UPLOAD_MAX_AGE {
            env.push(("REGISTRY_GC_UPLOAD_MAX_AGE".into(), self.upload_max_age.as_secs().to_string()));
        }
        if self.delete_untagged {
            env.push(("REGISTRY_GC_DELETE_UNTAGGED".into(), "true".into()));
        }
        if self.endpoint {
            env.push(("REGISTRY_GC_ENDPOINT".into(), "on".into()));
        }
        env
    }
}

/// The environment of an in-process collection request: the server's,
/// without access control (the request comes from the host itself), with
/// the endpoint on.
fn internal_env(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<_> =
        env.iter().filter(|(k, _)| !k.starts_with("REGISTRY_AUTH_") && k != "REGISTRY_GC_ENDPOINT").cloned().collect();
    env.push(("REGISTRY_GC_ENDPOINT".into(), "on".into()));
    env
}

/// How a collection shares the machine with the requests it runs beside.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Steps back to back: the `gc` subcommand, on a store no server uses.
    Full,
    /// After each step, a pause twice as long as the step took, so that a
    /// scheduled collection leaves requests at least two thirds of the core
    /// it runs on: a run then takes three times as long, which nobody waits
    /// for, while pushes beside it keep their pace.
    Background,
}

impl Pace {
    /// The pause after a step that took `step`.
    pub fn pause(self, step: Duration) -> Duration {
        match self {
            Pace::Full => Duration::ZERO,
            Pace::Background => step * 2,
        }
    }
}

/// Runs steps until the run in progress (or a new one) is done; the
/// component's last answer (`run`, and its one-line `summary`).
pub async fn collect(
    pre: &ProxyPre<HostState>,
    storage: &Backend,
    env: &[(String, String)],
    dry_run: bool,
    pace: Pace,
) -> anyhow::Result<serde_json::Value> {
    let env = Arc::new(internal_env(env));
    // A fresh instance for each step, whatever the server's reuse.
    let instances = Arc::new(Instances::new(pre.clone(), 1));
    let uri = if dry_run { "/_registry/gc?dry-run=true" } else { "/_registry/gc" };
    loop {
        let started = std::time::Instant::now();
        let req = hyper::Request::post(uri)
            .header("host", "registry-host")
            .body(Empty::<Bytes>::new().map_err(|never| -> wasmtime_wasi_http::Error { match never {} }))
            .expect("a valid request");
        let response = crate::server::call_instance(&instances, storage, &env, Scheme::Http, req, None).await?;
        let status = response.status();
        let body = response.into_body().collect().await.context("reading the collection's answer")?.to_bytes();
        anyhow::ensure!(status.is_success(), "the collection failed: {status} {}", String::from_utf8_lossy(&body));
        let answer: serde_json::Value = serde_json::from_slice(&body).context("the collection's answer")?;
        if answer["busy"] == true {
            // Another stepper holds the run (a request to the endpoint).
            tokio::time::sleep(Duration::from_secs(1)).await;
        } else if answer["done"] == true {
            return Ok(answer);
        } else {
            tokio::time::sleep(pace.pause(started.elapsed())).await;
        }
    }
}

/// The server's schedule: a collection every `interval`, the first one
/// interval after start.
pub async fn every(pre: ProxyPre<HostState>, storage: Backend, live: Arc<LiveConfig>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let env = live.current().env.clone();
        match collect(&pre, &storage, &env, false, Pace::Background).await {
            Ok(answer) => {
                let counts = &answer["run"]["counts"];
                crate::metrics::collected(
                    counts["blobsRemoved"].as_u64().unwrap_or(0),
                    counts["bytesRemoved"].as_u64().unwrap_or(0),
                );
                tracing::info!("scheduled {}", summary(&answer))
            }
            Err(e) => tracing::error!("scheduled garbage collection failed: {e:#}"),
        }
    }
}

/// The component's one line of what a run found and removed.
fn summary(answer: &serde_json::Value) -> &str {
    answer["summary"].as_str().unwrap_or("garbage collection: no run")
}

/// `registry-host gc`: one collection of the store, then exit. A data
/// directory must not be in use by a server (its lock says so); an S3
/// store may be, by any number of them.
pub async fn command(args: &crate::Args, dry_run: bool) -> anyhow::Result<()> {
    let storage = crate::server::open_storage(args).await?;
    let pre = crate::engine::prepare(args.component.as_deref(), &args.data_dir.join("cache"))?;
    let run = collect(&pre, &storage, &args.gc.env(), dry_run, Pace::Full).await;
    if let Some(closing) = storage.fs().cloned() {
        tokio::task::spawn_blocking(move || closing.close()).await?.context("closing the journal")?;
    }
    let answer = run?;
    println!("{}", summary(&answer));
    if dry_run {
        if let Some(list) = answer["run"]["wouldRemove"].as_array() {
            for item in list {
                println!("would remove {}", item.as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}

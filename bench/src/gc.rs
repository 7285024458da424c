//! The garbage-collection workloads:
//!
//! - `fill`: a store of N images (a config and four layers each, so 5N
//!   blobs and N manifests) across 100 repositories, then every second
//!   image deleted by digest;
//! - `collect` (ours): one whole collection through `/_registry/gc`, online,
//!   timed from the first step to the last (distribution collects only
//!   offline: bench/run.sh times its `garbage-collect` on its own store of
//!   the same shape);
//! - `during` (ours): image pushes per second from a few connections, first
//!   alone, then while collections of that store run back to back (at least
//!   one whole), paced as registry-host's schedule paces them (a pause after
//!   each step).

use crate::client::{empty, full, Client, Target};
use crate::content::{sha256, Content};
use crate::stats::round;
use crate::workloads::{emit, push_image, push_small, SmallPush, OCI_MANIFEST};
use anyhow::{bail, Context as _};
use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LAYERS: usize = 4;
const REPOSITORIES: usize = 100;

/// What the workloads do.
pub struct Settings {
    pub server: String,
    /// Images in the store.
    pub images: usize,
    /// Connections that fill the store.
    pub parallel: usize,
    /// Seconds of each push-rate measurement (0: none).
    pub push_secs: u64,
    pub fill: bool,
    pub collect: bool,
    /// The pause after each step while pushes run, in step durations.
    pub pace: f64,
}

/// One image of the store: its blobs, its manifest pushed under tag
/// `i<n>`; the manifest's digest.
async fn push_store_image(client: &mut Client, n: usize) -> anyhow::Result<(String, String)> {
    let repo = format!("bench/gc{}", n % REPOSITORIES);
    let mut layers = Vec::new();
    for k in 0..LAYERS {
        let bytes = Content::new(((n * 8 + k) as u64) << 8, 1024).bytes();
        layers.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}"#,
            sha256(&bytes),
            bytes.len()
        ));
        push_small(client, &repo, bytes, SmallPush::TwoRequests).await?;
    }
    let config = Bytes::from(format!(r#"{{"architecture":"amd64","os":"linux","image":{n}}}"#));
    let config_digest = sha256(&config);
    let config_len = config.len();
    push_small(client, &repo, config, SmallPush::TwoRequests).await?;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_len}}},"layers":[{}]}}"#,
        layers.join(",")
    );
    let len = manifest.len().to_string();
    client
        .call(
            Method::PUT,
            &format!("/v2/{repo}/manifests/i{n}"),
            &[("content-type", OCI_MANIFEST), ("content-length", &len)],
            full(Bytes::from(manifest.clone())),
        )
        .await?
        .expect(201, "pushing a manifest")?;
    Ok((repo, sha256(manifest.as_bytes())))
}

/// Fills the store and deletes every second image.
async fn fill(target: &Target, s: &Settings) -> anyhow::Result<()> {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..s.parallel {
        let next = next.clone();
        let images = s.images;
        let mut client = Client::new(target);
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= images {
                    return Ok::<_, anyhow::Error>(());
                }
                let (repo, digest) = push_store_image(&mut client, n).await?;
                if n % 2 == 1 {
                    client
                        .call(Method::DELETE, &format!("/v2/{repo}/manifests/{digest}"), &[], empty())
                        .await?
                        .expect(202, "deleting a manifest")?;
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let extra = json!({ "manifests": s.images, "blobs": s.images * (LAYERS + 1), "deleted": s.images / 2 });
    emit(&s.server, "gc_fill_s", Some(round(start.elapsed().as_secs_f64(), 1)), "s", extra);
    Ok(())
}

/// Steps back to back until the run in progress (or a new one) is done;
/// the run and the number of steps.
async fn collect_once(client: &mut Client) -> anyhow::Result<(Value, u64)> {
    let mut steps = 0;
    loop {
        let answer = client.call(Method::POST, "/_registry/gc", &[], empty()).await?.expect(200, "a step")?;
        let body: Value = serde_json::from_slice(&answer.body).context("the step's answer")?;
        steps += 1;
        if body["busy"] == true {
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else if body["done"] == true {
            return Ok((body["run"].clone(), steps));
        }
    }
}

/// Collections back to back until `stop` is set, pausing `pace` step
/// durations after each step and counting finished runs in `runs`; the
/// steps taken.
async fn collect_until(client: &mut Client, pace: f64, stop: &AtomicBool, runs: &AtomicU64) -> anyhow::Result<u64> {
    let mut steps = 0;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let answer = client.call(Method::POST, "/_registry/gc", &[], empty()).await?.expect(200, "a step")?;
        let body: Value = serde_json::from_slice(&answer.body).context("the step's answer")?;
        steps += 1;
        if body["done"] == true {
            runs.fetch_add(1, Ordering::Relaxed);
        } else if body["busy"] == true {
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            tokio::time::sleep(started.elapsed().mul_f64(pace)).await;
        }
    }
    Ok(steps)
}

/// Image pushes per second from `workers` connections for `secs`, and past
/// them until `runs` (if any) counts a finished collection.
async fn push_rate(
    target: &Target,
    secs: u64,
    workers: u64,
    salt: u64,
    runs: Option<Arc<AtomicU64>>,
) -> anyhow::Result<f64> {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let count = count.clone();
        let mut client = Client::new(target);
        let runs = runs.clone();
        let waiting = move || runs.as_ref().is_some_and(|runs| runs.load(Ordering::Relaxed) == 0);
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline || waiting() {
                push_image(&mut client, &format!("bench/gc-push{w}"), salt ^ (w << 32) ^ i).await?;
                count.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

pub async fn run(target: &Target, s: &Settings) -> anyhow::Result<()> {
    if s.fill {
        fill(target, s).await?;
    }
    if !s.collect {
        return Ok(());
    }
    // The deletes' bytes are older than a grace period of 0 once a second
    // has passed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut client = Client::new(target);
    let start = Instant::now();
    let (run, steps) = collect_once(&mut client).await?;
    let secs = start.elapsed().as_secs_f64();
    let removed = run["counts"]["blobsRemoved"].as_u64().unwrap_or(0);
    if removed == 0 && s.images > 1 {
        bail!("the collection removed nothing: {run}");
    }
    let extra = json!({ "steps": steps, "blobs_removed": removed, "bytes_removed": run["counts"]["bytesRemoved"],
        "manifests": s.images, "blobs": s.images * (LAYERS + 1) });
    emit(&s.server, "gc_collect_s", Some(round(secs, 2)), "s", extra);
    if s.push_secs == 0 {
        return Ok(());
    }

    let workers = 4;
    let alone = push_rate(target, s.push_secs, workers, 0x6c_0000, None).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let collector = {
        let stop = stop.clone();
        let mut client = Client::new(target);
        let pace = s.pace;
        let runs = runs.clone();
        tokio::spawn(async move { collect_until(&mut client, pace, &stop, &runs).await })
    };
    let started = Instant::now();
    let during = push_rate(target, s.push_secs, workers, 0x6d_0000, Some(runs.clone())).await?;
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let steps = collector.await??;
    let extra = json!({ "connections": workers, "collections_done": runs.load(Ordering::Relaxed), "steps": steps,
        "pace": s.pace, "secs": round(secs, 1) });
    emit(&s.server, "gc_pushes_alone_ips", Some(round(alone, 1)), "images/s", json!({ "connections": workers }));
    emit(&s.server, "gc_pushes_during_ips", Some(round(during, 1)), "images/s", extra);
    Ok(())
}

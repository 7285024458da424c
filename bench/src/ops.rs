//! What operating features cost: manifest GET on a second instance of the
//! server with its metrics endpoint and JSON logs on (bench/run.sh starts
//! it), against the instance the other groups ran on, in alternating turns
//! so that both loads meet the same drift of the machine; each row is the
//! median of its turns. The metrics endpoint is scraped afterwards, so a
//! run whose metrics were not really on fails instead of flattering.

use crate::client::{empty, Client, Target};
use crate::workloads::{emit_load, push_image, GetLoad, Servers, OCI_MANIFEST};
use anyhow::{bail, Context as _};
use hyper::Method;
use serde_json::json;

/// The repository the loads read, on both instances.
const REPO: &str = "bench/ops";

pub struct Settings {
    pub server: String,
    /// The instance with metrics and JSON logs on.
    pub pid: u32,
    /// Its metrics endpoint (`http://host:port/path`).
    pub metrics: String,
    /// The default instance, and its PID.
    pub default: Target,
    pub default_pid: u32,
    /// Turns of each load.
    pub turns: usize,
    pub load: GetLoad,
}

pub async fn run(target: &Target, s: &Settings) -> anyhow::Result<()> {
    let server = s.server.as_str();
    // Distinct content per run, as in the other groups.
    let salt = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    push_image(&mut Client::new(target), REPO, salt ^ 7).await.context("pushing the image, operations on")?;
    push_image(&mut Client::new(&s.default), REPO, salt ^ 8).await.context("pushing the image, default")?;
    let path = format!("/v2/{REPO}/manifests/latest");
    let accept = ("accept", OCI_MANIFEST);
    let (default, on) = (Servers::one(&s.default, &s.default_pid), Servers::one(target, &s.pid));
    let (mut plain, mut with_ops) = (Vec::new(), Vec::new());
    for _ in 0..s.turns {
        plain.push(s.load.sample(server, "ops_manifest_get_default", default, &path, &[accept]).await?);
        with_ops.push(s.load.sample(server, "ops_manifest_get_on", on, &path, &[accept]).await?);
    }
    let scraped = scrape(&s.metrics).await?;
    emit_load(server, "ops_manifest_get_default", &plain, json!({}));
    emit_load(server, "ops_manifest_get_on", &with_ops, json!({ "metrics_bytes": scraped }));
    Ok(())
}

/// GETs the metrics endpoint; the size of its Prometheus text.
async fn scrape(url: &str) -> anyhow::Result<usize> {
    let (base, path) = match url.find("://").and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j)) {
        Some(at) => (&url[..at], &url[at..]),
        None => (url, "/metrics"),
    };
    let target = Target::parse(base).await?;
    let answer =
        Client::new(&target).call(Method::GET, path, &[], empty()).await?.expect(200, "scraping the metrics")?;
    if !answer.body.starts_with(b"# ") {
        bail!("the metrics endpoint {url} answered no Prometheus text: are the metrics on?");
    }
    Ok(answer.body.len())
}

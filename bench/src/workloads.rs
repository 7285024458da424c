//! The workloads, run one after the other against one registry. Each prints
//! one JSON line: `{"server","metric","value","unit",...}` (value `null`
//! when the registry does not support the operation).
//!
//! A registry may be several instances sharing one object store (several
//! URLs, as behind a load balancer): keep-alive connections are spread over
//! them, a chunked upload sends each chunk to the next instance, and a pull
//! reads from another instance than the push; CPU time is that of all
//! instances together, peak memory that of the largest.

use crate::ceiling::Store;
use crate::client::{empty, full, with_param, Client, Target};
use crate::content::{digests_of, sha256, Content};
use crate::load::{self, Tool};
use crate::rss::{self, PhaseStats, Sampler};
use crate::stats::{median, round};
use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCTETS: &str = "application/octet-stream";

pub struct Settings {
    pub server: String,
    /// The registry's processes, one per URL.
    pub pids: Vec<u32>,
    /// The object store's process, whose CPU time is reported beside the
    /// registry's (`store_cpu_*` lines).
    pub store_pid: Option<u32>,
    /// Size of the big blob (monolithic, chunked, pull).
    pub big: u64,
    /// Size of the second blob for the RSS comparison.
    pub medium: u64,
    pub chunk: u64,
    pub small: u64,
    pub push_secs: u64,
    /// The GET loads.
    pub load: GetLoad,
    pub parallel: usize,
    pub only: Option<Vec<String>>,
    /// Repetitions of each big phase.
    pub repeat: usize,
    /// A second registry measured in the same small-push runs, slice by
    /// slice with this one (see `small_pushes`).
    pub peer: Option<Peer>,
    /// Slices each small-push measurement is cut into when there is a peer.
    pub slices: usize,
}

/// The other registry of an interleaved measurement.
pub struct Peer {
    pub server: String,
    pub pid: u32,
    pub target: Target,
}

/// Prints one result line on stdout (progress goes to stderr).
pub fn emit(server: &str, metric: &str, value: Option<f64>, unit: &str, extra: Value) {
    let mut line = json!({ "server": server, "metric": metric, "value": value, "unit": unit });
    if let (Value::Object(line), Value::Object(extra)) = (&mut line, extra) {
        line.extend(extra);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

/// Writes dirty pages to disk so that one phase does not pay for the
/// previous one's writeback (untimed).
fn sync_disks() {
    let _ = std::process::Command::new("sync").status();
}

/// The server's peak RSS and CPU time during a phase, and the store's CPU
/// time and writes, as lines `rss_peak_<phase>`, `cpu_<phase>`,
/// `store_cpu_<phase>` and `store_write_<phase>` (each where measured).
fn phase_costs(server: &str, phase: &str, stats: &PhaseStats) {
    let rss_name = match phase.strip_prefix("push_monolithic_") {
        Some(size) => format!("rss_peak_push_{size}"),
        None => format!("rss_peak_{}", phase.replace("push_chunked", "chunked")),
    };
    if let Some(peak) = stats.peak_mib {
        emit(server, &rss_name, Some(round(peak, 1)), "MiB", json!({ "method": stats.method }));
    }
    if let Some(cpu) = stats.cpu_s {
        emit(server, &format!("cpu_{phase}"), Some(round(cpu, 2)), "CPU s", json!({}));
    }
    if let Some(cpu) = stats.store_cpu_s {
        emit(server, &format!("store_cpu_{phase}"), Some(round(cpu, 2)), "CPU s", json!({}));
    }
    if let Some(written) = stats.store_write_mib {
        emit(server, &format!("store_write_{phase}"), Some(round(written, 0)), "MiB", json!({}));
    }
}

/// The repetitions of one big phase: throughput is reported as the median
/// (with every run listed), peak RSS as the maximum, CPU as the median.
#[derive(Default)]
pub struct Phase {
    mbps: Vec<f64>,
    seconds: Vec<f64>,
    peak_mib: Option<f64>,
    method: &'static str,
    cpu_s: Vec<f64>,
    store_cpu_s: Vec<f64>,
    store_write_mib: Vec<f64>,
    /// CPU time of this benchmark process (the client), where recorded.
    client_cpu_s: Vec<f64>,
}

impl Phase {
    pub fn record(&mut self, bytes: u64, elapsed: Duration, stats: PhaseStats) {
        self.mbps.push(mb_per_s(bytes, elapsed));
        self.seconds.push(elapsed.as_secs_f64());
        self.peak_mib = match (self.peak_mib, stats.peak_mib) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.method = stats.method;
        self.cpu_s.extend(stats.cpu_s);
        self.store_cpu_s.extend(stats.store_cpu_s);
        self.store_write_mib.extend(stats.store_write_mib);
    }

    pub fn emit(&self, server: &str, phase: &str, extra: Value) {
        let mut fields = json!({
            "runs_mbps": self.mbps.iter().map(|v| round(*v, 1)).collect::<Vec<_>>(),
            "seconds": median(&self.seconds).map(|v| round(v, 3)),
            "statistic": "median",
        });
        if let (Value::Object(fields), Value::Object(extra)) = (&mut fields, extra) {
            fields.extend(extra);
        }
        emit(server, phase, median(&self.mbps).map(|v| round(v, 1)), "MB/s", fields);
        let stats = PhaseStats {
            peak_mib: self.peak_mib,
            method: self.method,
            cpu_s: median(&self.cpu_s),
            store_cpu_s: median(&self.store_cpu_s),
            store_write_mib: median(&self.store_write_mib),
        };
        phase_costs(server, phase, &stats);
        if let Some(cpu) = median(&self.client_cpu_s) {
            emit(server, &format!("client_cpu_{phase}"), Some(round(cpu, 2)), "CPU s", json!({}));
        }
    }
}

/// CPU seconds the processes `pids` used since `before` (their
/// `cpu_seconds_of` then).
fn cpu_used(pids: &[u32], before: Option<f64>) -> Option<f64> {
    Some(rss::cpu_seconds_of(pids)? - before?)
}

/// `POST /v2/<repo>/blobs/uploads/`: a new session's location.
async fn start_upload(client: &mut Client, repo: &str) -> anyhow::Result<String> {
    let answer = client
        .call(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), &[("content-length", "0")], empty())
        .await?
        .expect(202, "starting an upload")?;
    answer.location()
}

/// Monolithic upload: POST, then PUT ?digest= with the whole body streamed.
async fn push_monolithic(client: &mut Client, repo: &str, content: &Content, digest: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let location = start_upload(client, repo).await?;
    let len = content.size.to_string();
    client
        .call(
            Method::PUT,
            &with_param(&location, "digest", digest),
            &[("content-type", OCTETS), ("content-length", &len)],
            content.body(0, content.size).boxed(),
        )
        .await?
        .expect(201, "completing a monolithic upload")?;
    Ok(start.elapsed())
}

/// Chunked upload: POST, PATCH with Content-Range per chunk, PUT ?digest=;
/// each request on the next of `clients` (instances of one registry), in
/// turn.
async fn push_chunked(
    clients: &mut [Client],
    repo: &str,
    content: &Content,
    digest: &str,
    chunk: u64,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut location = start_upload(&mut clients[0], repo).await?;
    let mut turn = 1;
    let mut offset = 0;
    while offset < content.size {
        let end = (offset + chunk).min(content.size);
        let range = format!("{}-{}", offset, end - 1);
        let len = (end - offset).to_string();
        let client = &mut clients[turn % clients.len()];
        turn += 1;
        let answer = client
            .call(
                Method::PATCH,
                &location,
                &[("content-type", OCTETS), ("content-length", &len), ("content-range", &range)],
                content.body(offset, end).boxed(),
            )
            .await?
            .expect(202, &format!("PATCH {range}"))?;
        location = answer.location()?;
        offset = end;
    }
    clients[turn % clients.len()]
        .call(Method::PUT, &with_param(&location, "digest", digest), &[("content-length", "0")], empty())
        .await?
        .expect(201, "completing a chunked upload")?;
    Ok(start.elapsed())
}

/// GET of a blob, hashing the bytes as they arrive.
async fn pull(client: &mut Client, repo: &str, content: &Content, digest: &str) -> anyhow::Result<Duration> {
    fetch_verified(client, &format!("/v2/{repo}/blobs/{digest}"), content, digest).await
}

/// GET of `path`, hashing the bytes as they arrive: fails unless they are
/// `content`, whose digest is `digest`.
pub async fn fetch_verified(
    client: &mut Client,
    path: &str,
    content: &Content,
    digest: &str,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let resp = client.send(Method::GET, path, &[], empty()).await?;
    if resp.status() != 200 {
        bail!("pull: expected 200, got {}", resp.status());
    }
    let mut body = resp.into_body();
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            received += data.len() as u64;
            hasher.update(&data);
        }
    }
    let elapsed = start.elapsed();
    let got = format!("sha256:{}", hex::encode(hasher.finalize()));
    if received != content.size || got != digest {
        bail!("pull: received {received} bytes with digest {got}, expected {} bytes {digest}", content.size);
    }
    Ok(elapsed)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SmallPush {
    /// POST, then PUT ?digest= with the body.
    TwoRequests,
    /// POST ?digest= with the body.
    Single,
}

/// One small blob pushed; `Ok(false)` when the registry answered a
/// single-request upload with a session (it does not support end-4b).
pub async fn push_small(client: &mut Client, repo: &str, bytes: Bytes, mode: SmallPush) -> anyhow::Result<bool> {
    let digest = sha256(&bytes);
    let len = bytes.len().to_string();
    let headers = [("content-type", OCTETS), ("content-length", len.as_str())];
    match mode {
        SmallPush::TwoRequests => {
            let location = start_upload(client, repo).await?;
            client
                .call(Method::PUT, &with_param(&location, "digest", &digest), &headers, full(bytes))
                .await?
                .expect(201, "small push")?;
            Ok(true)
        }
        SmallPush::Single => {
            let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
            let answer = client.call(Method::POST, &path, &headers, full(bytes)).await?;
            match answer.status.as_u16() {
                201 => Ok(true),
                202 => {
                    // A session instead: cancel it.
                    let location = answer.location()?;
                    let _ = client.call(Method::DELETE, &location, &[], empty()).await;
                    Ok(false)
                }
                _ => answer.expect(201, "single-request push").map(|_| true),
            }
        }
    }
}

/// Where the small pushes go.
#[derive(Clone)]
pub enum SmallPushTo {
    /// Blob uploads to a registry's repository.
    Registry { repo: String, mode: SmallPush },
    /// Object PUTs into the store (its own rate: the ceiling).
    Store(Arc<Store>),
}

/// Pushes distinct small blobs from `workers` connections for `duration`;
/// connection `w` goes to `targets[w % targets.len()]` (the instances of
/// one registry, as a load balancer spreads connections).
pub async fn small_push_rate(
    targets: &[Target],
    to: &SmallPushTo,
    size: u64,
    workers: usize,
    duration: Duration,
    seed: u64,
) -> anyhow::Result<Option<(u64, f64)>> {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for w in 0..workers as u64 {
        let count = count.clone();
        let mut client = Client::new(&targets[w as usize % targets.len()]);
        let to = to.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                let bytes = Content::new(seed ^ (w << 40) ^ i, size).bytes();
                let pushed = match &to {
                    SmallPushTo::Registry { repo, mode } => push_small(&mut client, repo, bytes, *mode).await?,
                    SmallPushTo::Store(store) => store.put_object(&mut client, bytes).await.map(|_| true)?,
                };
                if !pushed {
                    return Ok::<bool, anyhow::Error>(false);
                }
                count.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Ok(true)
        }));
    }
    let mut supported = true;
    for task in tasks {
        supported &= task.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    if !supported {
        return Ok(None);
    }
    Ok(Some((count.load(Ordering::Relaxed), elapsed)))
}

/// One registry's side of a small-push measurement.
struct PushSide<'a> {
    server: &'a str,
    pids: &'a [u32],
    targets: &'a [Target],
    salt: u64,
    pushes: u64,
    secs: f64,
    cpu: Option<f64>,
    store_cpu: Option<f64>,
    unsupported: bool,
}

/// The small-push workloads. With a peer, each measurement is cut into
/// slices that alternate between the two registries (and alternate who
/// goes first), so that both meet the same disk: its flush latency here
/// swings by 5× within seconds with the host's other I/O, and a push is
/// bound by flushes.
async fn small_pushes(targets: &[Target], s: &Settings, salt: u64) -> anyhow::Result<()> {
    let kib = s.small >> 10;
    let side = |server, pids, targets, salt| PushSide {
        server,
        pids,
        targets,
        salt,
        pushes: 0,
        secs: 0.0,
        cpu: Some(0.0),
        store_cpu: Some(0.0),
        unsupported: false,
    };
    let slices = if s.peer.is_some() { s.slices.max(1) } else { 1 };
    let slice = Duration::from_secs_f64(s.push_secs as f64 / slices as f64);
    for (mode, mode_name) in [(SmallPush::TwoRequests, ""), (SmallPush::Single, "single_")] {
        for (workers, workers_name) in [(1, "seq"), (s.parallel, "par")] {
            let metric = format!(
                "push{kib}k_{mode_name}{workers_name}{}",
                if workers > 1 { workers.to_string() } else { String::new() }
            );
            let mut sides = vec![side(s.server.as_str(), &s.pids, targets, salt)];
            if let Some(peer) = &s.peer {
                sides.push(side(
                    peer.server.as_str(),
                    std::slice::from_ref(&peer.pid),
                    std::slice::from_ref(&peer.target),
                    salt ^ 0x9e37_79b9_7f4a_7c15,
                ));
            }
            eprintln!(
                "[{}] {kib} KiB pushes, {mode_name}{workers_name}, {workers} connection(s), {} s in {slices} slice(s)",
                sides.iter().map(|side| side.server).collect::<Vec<_>>().join(" + "),
                s.push_secs
            );
            let to = SmallPushTo::Registry { repo: "bench/small".into(), mode };
            for n in 0..slices {
                let mut order: Vec<usize> = (0..sides.len()).collect();
                if n % 2 == 1 {
                    order.reverse();
                }
                for i in order {
                    let side = &mut sides[i];
                    if side.unsupported {
                        continue;
                    }
                    let seed = side.salt
                        ^ (0x5000 + workers as u64)
                        ^ ((n as u64) << 48)
                        ^ if mode == SmallPush::Single { 0x7000_0000 } else { 0 };
                    let cpu_before = rss::cpu_seconds_of(side.pids);
                    let store_before = s.store_pid.and_then(rss::cpu_seconds);
                    match small_push_rate(side.targets, &to, s.small, workers, slice, seed).await? {
                        Some((pushes, secs)) => {
                            side.pushes += pushes;
                            side.secs += secs;
                            side.cpu = side.cpu.zip(cpu_used(side.pids, cpu_before)).map(|(a, b)| a + b);
                            let store_cpu = s.store_pid.and_then(|pid| cpu_used(&[pid], store_before));
                            side.store_cpu = side.store_cpu.zip(store_cpu).map(|(a, b)| a + b);
                        }
                        None => side.unsupported = true,
                    }
                }
            }
            for side in &sides {
                if side.unsupported {
                    emit(
                        side.server,
                        &metric,
                        None,
                        "pushes/s",
                        json!({ "note": "unsupported: POST ?digest= answered 202 (a session)" }),
                    );
                    continue;
                }
                let extra = json!({ "connections": workers, "slices": slices, "instances": side.targets.len() });
                emit_push_rate(side.server, &metric, (side.pushes, side.secs), side.cpu, side.store_cpu, extra);
            }
        }
    }
    Ok(())
}

/// Prints a small-push rate (`pushes` in `secs`) as `<metric>`, with the
/// server's and the store's CPU time per push (`cpu_per_req_<metric>`,
/// `store_cpu_per_req_<metric>`) where measured.
pub fn emit_push_rate(
    server: &str,
    metric: &str,
    (pushes, secs): (u64, f64),
    cpu: Option<f64>,
    store_cpu: Option<f64>,
    mut extra: Value,
) {
    extra["pushes"] = json!(pushes);
    emit(server, metric, Some(round(pushes as f64 / secs, 1)), "pushes/s", extra);
    for (prefix, cpu) in [("cpu_per_req_", cpu), ("store_cpu_per_req_", store_cpu)] {
        if let (Some(cpu), true) = (cpu, pushes > 0) {
            let per_push = Some(round(cpu * 1e6 / pushes as f64, 0));
            emit(server, &format!("{prefix}{metric}"), per_push, "CPU µs/push", json!({}));
        }
    }
}

/// The image of the GET loads: a 4 KiB layer, a config naming it, and an
/// OCI manifest naming both.
pub struct Image {
    pub layer: Bytes,
    pub layer_digest: String,
    pub config: String,
    pub manifest: String,
}

impl Image {
    pub fn new(seed: u64) -> Image {
        let layer = Content::new(seed, 4096).bytes();
        let layer_digest = sha256(&layer);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
        );
        let config_digest = sha256(config.as_bytes());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"{OCI_LAYER}","digest":"{layer_digest}","size":{}}}]}}"#,
            config.len(),
            layer.len()
        );
        Image { layer, layer_digest, config, manifest }
    }
}

/// Pushes a config and a layer and an OCI manifest naming them, tagged
/// `latest`; returns the layer's digest.
pub async fn push_image(client: &mut Client, repo: &str, seed: u64) -> anyhow::Result<String> {
    let Image { layer, layer_digest, config, manifest } = Image::new(seed);
    push_small(client, repo, layer.clone(), SmallPush::TwoRequests).await?;
    push_small(client, repo, Bytes::from(config), SmallPush::TwoRequests).await?;
    let len = manifest.len().to_string();
    client
        .call(
            Method::PUT,
            &format!("/v2/{repo}/manifests/latest"),
            &[("content-type", OCI_MANIFEST), ("content-length", &len)],
            full(Bytes::from(manifest.clone())),
        )
        .await?
        .expect(201, "pushing the manifest")?;
    let got = client
        .call(Method::GET, &format!("/v2/{repo}/manifests/latest"), &[("accept", OCI_MANIFEST)], empty())
        .await?
        .expect(200, "getting the manifest back")?;
    if got.body != manifest.as_bytes() {
        bail!("the manifest came back changed");
    }
    let blob = client
        .call(Method::GET, &format!("/v2/{repo}/blobs/{layer_digest}"), &[], empty())
        .await?
        .expect(200, "getting the layer back")?;
    if blob.body != layer {
        bail!("the layer came back changed");
    }
    Ok(layer_digest)
}

/// The largest RSS of the processes `pids`, MiB.
fn largest_rss(pids: &[u32]) -> Option<f64> {
    pids.iter().filter_map(|pid| rss::rss_mib(*pid)).max_by(f64::total_cmp)
}

/// `1g` for 1 GiB, else `<n>m`: the size in a metric's name.
pub fn size_label(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 30) {
        format!("{}g", bytes >> 30)
    } else {
        format!("{}m", bytes >> 20)
    }
}

/// `targets` are the instances of one registry (usually one), `s.pids`
/// their processes in the same order.
pub async fn run(targets: &[Target], s: &Settings) -> anyhow::Result<()> {
    let wanted = |name: &str| s.only.as_ref().is_none_or(|only| only.iter().any(|o| o == name));
    let server = s.server.as_str();
    let mut clients: Vec<Client> = targets.iter().map(Client::new).collect();
    for client in &mut clients {
        client.call(Method::GET, "/v2/", &[], empty()).await?.expect(200, "GET /v2/")?;
    }
    // Distinct content per server and run, so nothing is deduplicated
    // against an earlier run's data.
    let salt = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    if let (true, Some(idle)) = (wanted("idle"), largest_rss(&s.pids)) {
        emit(server, "rss_idle_mib", Some(round(idle, 1)), "MiB", json!({}));
    }

    if wanted("big") {
        let reps = s.repeat.max(1);
        eprintln!("[{server}] generating the digests of {} test blobs (untimed)", 3 * reps);
        let blobs: Vec<Content> = (0..reps as u64)
            .flat_map(|r| {
                let seed = salt ^ (r << 8);
                [Content::new(seed ^ 1, s.big), Content::new(seed ^ 2, s.big), Content::new(seed ^ 3, s.medium)]
            })
            .collect();
        let digests = digests_of(&blobs);
        let (blobs, digests) = (blobs.chunks(3).collect::<Vec<_>>(), digests.chunks(3).collect::<Vec<_>>());
        let big_label = size_label(s.big);
        let medium_label = format!("{}m", s.medium >> 20);
        let mut mono = Phase::default();
        let mut chunked = Phase::default();
        let mut pulled = Phase::default();
        let mut medium = Phase::default();
        for r in 0..reps {
            let [mono_blob, chunked_blob, medium_blob] = blobs[r] else { unreachable!("sets of three") };
            let d = digests[r];
            let run = format!("{}/{reps}", r + 1);

            sync_disks();
            eprintln!("[{server}] monolithic push of {} MiB ({run})", s.big >> 20);
            let sampler = Sampler::start(&s.pids, s.store_pid);
            let elapsed = push_monolithic(&mut clients[0], "bench/big", mono_blob, &d[0]).await?;
            mono.record(s.big, elapsed, sampler.stop());

            sync_disks();
            eprintln!("[{server}] chunked push of {} MiB in {} MiB chunks ({run})", s.big >> 20, s.chunk >> 20);
            let sampler = Sampler::start(&s.pids, s.store_pid);
            let elapsed = push_chunked(&mut clients, "bench/big", chunked_blob, &d[1], s.chunk).await?;
            chunked.record(s.big, elapsed, sampler.stop());

            sync_disks();
            eprintln!("[{server}] pull of {} MiB ({run})", s.big >> 20);
            let sampler = Sampler::start(&s.pids, s.store_pid);
            let client_before = rss::cpu_seconds(std::process::id());
            // From the last instance: the first one took the push.
            let last = clients.len() - 1;
            let elapsed = pull(&mut clients[last], "bench/big", mono_blob, &d[0]).await?;
            pulled.record(s.big, elapsed, sampler.stop());
            // The pull's client hashes what it receives: its CPU shows how
            // much of the two cores the server could have had.
            if let Some(cpu) = cpu_used(&[std::process::id()], client_before) {
                pulled.client_cpu_s.push(cpu);
            }

            sync_disks();
            eprintln!("[{server}] monolithic push of {} MiB ({run})", s.medium >> 20);
            let sampler = Sampler::start(&s.pids, s.store_pid);
            let elapsed = push_monolithic(&mut clients[0], "bench/big", medium_blob, &d[2]).await?;
            medium.record(s.medium, elapsed, sampler.stop());
        }
        sync_disks();
        mono.emit(server, &format!("push_monolithic_{big_label}"), json!({}));
        chunked.emit(server, &format!("push_chunked_{big_label}"), json!({ "chunk_mib": s.chunk >> 20 }));
        pulled.emit(server, &format!("pull_{big_label}"), json!({ "verified": true }));
        medium.emit(server, &format!("push_monolithic_{medium_label}"), json!({}));
    }

    if wanted("small") {
        small_pushes(targets, s, salt).await?;
    }

    if wanted("load") {
        let layer = push_image(&mut clients[0], "bench/app", salt ^ 4)
            .await
            .context("setting up the image for the GET load")?;
        let cases = [
            ("manifest_get", "/v2/bench/app/manifests/latest".to_string(), Some(OCI_MANIFEST)),
            ("blob_get_4k", format!("/v2/bench/app/blobs/{layer}"), None),
            ("base_get", "/v2/".to_string(), None),
        ];
        for (name, path, accept) in cases {
            let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept", *a)).collect();
            let on = Servers { targets, pids: &s.pids, store: s.store_pid };
            let sample = s.load.sample(server, name, on, &path, &headers).await?;
            emit_load(server, name, &[sample], json!({}));
        }
    }

    if let (true, Some(now)) = (wanted("end"), largest_rss(&s.pids)) {
        emit(server, "rss_end_mib", Some(round(now, 1)), "MiB", json!({}));
    }
    Ok(())
}

/// One GET load: the tool, its keep-alive connections and its length.
pub struct GetLoad {
    pub tool: Tool,
    pub connections: usize,
    pub secs: u64,
}

/// What a GET load runs against: a registry's instances (URLs and
/// processes in the same order; the connections are spread over them) and
/// the store they share, if any, whose CPU time is measured too.
#[derive(Clone, Copy)]
pub struct Servers<'a> {
    pub targets: &'a [Target],
    pub pids: &'a [u32],
    pub store: Option<u32>,
}

impl<'a> Servers<'a> {
    /// One server process, no store.
    pub fn one(target: &'a Target, pid: &'a u32) -> Servers<'a> {
        Servers { targets: std::slice::from_ref(target), pids: std::slice::from_ref(pid), store: None }
    }
}

impl GetLoad {
    /// Runs the load on `path` of `on` with `headers` on every request;
    /// its rate and the server's (and store's) CPU per request (`emit_load`
    /// prints them).
    pub async fn sample(
        &self,
        server: &str,
        name: &str,
        on: Servers<'_>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<LoadSample> {
        self.sample_method(&Method::GET, server, name, on, path, headers).await
    }

    /// As `sample`, with requests of `method` (HEAD needs the builtin tool).
    pub async fn sample_method(
        &self,
        method: &Method,
        server: &str,
        name: &str,
        on: Servers<'_>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<LoadSample> {
        eprintln!(
            "[{server}] {name}: {method} {}, {} connections over {} instance(s), {} s, {}",
            path.split('?').next().unwrap_or(path),
            self.connections,
            on.targets.len(),
            self.secs,
            self.tool.name()
        );
        let store = on.store.as_slice();
        let (cpu_before, store_before) = (rss::cpu_seconds_of(on.pids), rss::cpu_seconds_of(store));
        let started = Instant::now();
        let result = load::run(self.tool, method, on.targets, path, headers, self.connections, self.secs).await?;
        let requests = result.rps * started.elapsed().as_secs_f64();
        let per_request = |cpu: Option<f64>| cpu.filter(|_| requests > 0.0).map(|cpu| cpu * 1e6 / requests);
        let cpu_us = if on.pids.is_empty() { None } else { per_request(cpu_used(on.pids, cpu_before)) };
        let store_cpu_us = if store.is_empty() { None } else { per_request(cpu_used(store, store_before)) };
        Ok(LoadSample {
            rps: result.rps,
            cpu_us,
            store_cpu_us,
            extra: json!({ "errors": result.errors, "tool": self.tool.name(), "connections": self.connections, "instances": on.targets.len(), "detail": result.detail }),
        })
    }
}

/// One run of a GET load.
pub struct LoadSample {
    pub rps: f64,
    /// The server's CPU per request, µs.
    pub cpu_us: Option<f64>,
    /// The store's CPU per request, µs.
    pub store_cpu_us: Option<f64>,
    /// The tool's details, for the report's JSON.
    pub extra: Value,
}

/// Prints `<name>_rps`, `cpu_per_req_<name>_rps` and
/// `store_cpu_per_req_<name>_rps`: the medians of `samples` (with each
/// run's rate when there are several).
pub fn emit_load(server: &str, name: &str, samples: &[LoadSample], extra: Value) {
    let rates: Vec<f64> = samples.iter().map(|s| s.rps).collect();
    let mut fields = samples.last().map_or(json!({}), |s| s.extra.clone());
    if samples.len() > 1 {
        fields["runs_rps"] = json!(rates.iter().map(|r| round(*r, 1)).collect::<Vec<_>>());
        fields["statistic"] = json!("median");
    }
    if let (Value::Object(fields), Value::Object(extra)) = (&mut fields, extra) {
        fields.extend(extra);
    }
    emit(server, &format!("{name}_rps"), median(&rates).map(|r| round(r, 1)), "req/s", fields);
    let cpu: Vec<f64> = samples.iter().filter_map(|s| s.cpu_us).collect();
    if let Some(cpu) = median(&cpu) {
        emit(server, &format!("cpu_per_req_{name}_rps"), Some(round(cpu, 0)), "CPU µs/req", json!({}));
    }
    let store_cpu: Vec<f64> = samples.iter().filter_map(|s| s.store_cpu_us).collect();
    if let Some(cpu) = median(&store_cpu) {
        emit(server, &format!("store_cpu_per_req_{name}_rps"), Some(round(cpu, 0)), "CPU µs/req", json!({}));
    }
}

/// Polls `GET /v2/` until it answers `status` (200; 401 for a registry
/// with access control); prints the time since `since` (the driver's clock
/// reading just before it spawned the server).
pub async fn wait_ready(
    target: &Target,
    server: &str,
    metric: &str,
    status: u16,
    since_ns: u128,
    timeout: Duration,
) -> anyhow::Result<()> {
    let give_up = Instant::now() + timeout;
    loop {
        let mut client = Client::new(target);
        if let Ok(answer) = client.call(Method::GET, "/v2/", &[], empty()).await {
            if answer.status == status {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
                let ms = now.saturating_sub(since_ns) as f64 / 1e6;
                emit(server, metric, Some(round(ms, 1)), "ms", json!({}));
                return Ok(());
            }
        }
        if Instant::now() > give_up {
            bail!("{} did not answer GET /v2/ within {:?}", target.base, timeout);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

//! Per-request cost: the small requests of a pull (manifest GET and HEAD,
//! blob HEAD, 4 KiB blob GET, GET /v2/, tags list) on several servers in
//! one run: ours, ours with instance reuse, the native ceiling
//! (`native.rs`) and the reference. The loads take turns, every server on
//! a case before the next case, the servers' order rotating from turn to
//! turn, so that all meet the same drift of the machine; each row is the
//! median of its turns. HEAD loads use the builtin loop whatever the tool
//! (wrk hangs on HEAD answers).

use crate::client::{empty, Answer, Client, Target};
use crate::load::Tool;
use crate::workloads::{emit, emit_load, push_image, GetLoad, Image, Servers, OCI_MANIFEST};
use anyhow::{bail, Context as _};
use hyper::Method;
use serde_json::json;

/// The repository the image is pushed to on every registry.
pub const REPO: &str = "bench/per-request";

/// The metric prefix of this group's rows.
pub const PREFIX: &str = "per_request_";

/// One small request of the group.
pub struct Case {
    /// Its metric name, without [`PREFIX`].
    pub name: &'static str,
    pub method: Method,
    pub path: String,
    pub headers: Vec<(&'static str, &'static str)>,
}

/// The requests of the group on the image of `seed` (its layer's digest is
/// in two paths).
pub fn cases(seed: u64) -> Vec<Case> {
    let layer = Image::new(seed).layer_digest;
    let manifest = format!("/v2/{REPO}/manifests/latest");
    let blob = format!("/v2/{REPO}/blobs/{layer}");
    let case = |name, method, path: &str, headers: &[(&'static str, &'static str)]| Case {
        name,
        method,
        path: path.to_string(),
        headers: headers.to_vec(),
    };
    let accept = [("accept", OCI_MANIFEST)];
    vec![
        case("manifest_get", Method::GET, &manifest, &accept),
        case("manifest_head", Method::HEAD, &manifest, &accept),
        case("blob_head", Method::HEAD, &blob, &[]),
        case("blob_get_4k", Method::GET, &blob, &[]),
        case("base_get", Method::GET, "/v2/", &[]),
        case("tags_list", Method::GET, &format!("/v2/{REPO}/tags/list"), &[]),
    ]
}

/// Pushes the image of `seed` to each registry and checks that every case
/// answers 200 there.
pub async fn populate(targets: &[Target], seed: u64) -> anyhow::Result<()> {
    for target in targets {
        let mut client = Client::new(target);
        push_image(&mut client, REPO, seed).await.with_context(|| format!("pushing the image to {}", target.base))?;
        for case in cases(seed) {
            fetch(&mut client, &case)
                .await?
                .expect(200, &format!("{} {} on {}", case.method, case.path, target.base))?;
        }
    }
    Ok(())
}

/// One request of `case`, its answer read whole.
pub async fn fetch(client: &mut Client, case: &Case) -> anyhow::Result<Answer> {
    client.call(case.method.clone(), &case.path, &case.headers, empty()).await
}

/// Headers whose values differ from one answer to the next by design.
const PER_ANSWER: [&str; 2] = ["date", "x-request-id"];

/// Fails unless `a` and `b` answer every case alike: status, body, and
/// headers but for [`PER_ANSWER`] (the ceiling must send what ours sends).
pub async fn compare(a: &Target, b: &Target, seed: u64) -> anyhow::Result<()> {
    let (mut ca, mut cb) = (Client::new(a), Client::new(b));
    for case in cases(seed) {
        let (x, y) = (fetch(&mut ca, &case).await?, fetch(&mut cb, &case).await?);
        let kept = |answer: &Answer| {
            let mut headers: Vec<(String, String)> = answer
                .headers
                .iter()
                .filter(|(name, _)| !PER_ANSWER.contains(&name.as_str()))
                .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect();
            headers.sort();
            headers
        };
        if x.status != y.status || x.body != y.body || kept(&x) != kept(&y) {
            bail!(
                "{} {}: {} answered {} {:?} ({} bytes), {} answered {} {:?} ({} bytes)",
                case.method,
                case.path,
                a.base,
                x.status,
                kept(&x),
                x.body.len(),
                b.base,
                y.status,
                kept(&y),
                y.body.len()
            );
        }
    }
    Ok(())
}

/// One server of the group.
pub struct Server {
    /// Its column: ours, ours-reuse, ceiling, reference.
    pub name: String,
    pub target: Target,
    pub pid: u32,
}

impl Server {
    /// `NAME=URL@PID`.
    pub async fn parse(spec: &str) -> anyhow::Result<Server> {
        let (name, rest) = spec.split_once('=').with_context(|| format!("{spec}: expected NAME=URL@PID"))?;
        let (url, pid) = rest.rsplit_once('@').with_context(|| format!("{spec}: expected NAME=URL@PID"))?;
        Ok(Server {
            name: name.to_string(),
            target: Target::parse(url).await?,
            pid: pid.parse().with_context(|| format!("{spec}: bad PID"))?,
        })
    }
}

pub struct Settings {
    pub seed: u64,
    pub turns: usize,
    pub load: GetLoad,
    /// Servers that could not be run, `NAME=why`: their rows are null with
    /// that note.
    pub absent: Vec<String>,
}

pub async fn run(servers: &[Server], s: &Settings) -> anyhow::Result<()> {
    let cases = cases(s.seed);
    let turns = s.turns.max(1);
    // samples[case][server]
    let mut samples: Vec<Vec<Vec<_>>> = cases.iter().map(|_| servers.iter().map(|_| Vec::new()).collect()).collect();
    let head_load = GetLoad { tool: Tool::Builtin, connections: s.load.connections, secs: s.load.secs };
    for turn in 0..turns {
        for (c, case) in cases.iter().enumerate() {
            let load = if case.method == Method::HEAD { &head_load } else { &s.load };
            for k in 0..servers.len() {
                let i = (k + turn) % servers.len();
                let server = &servers[i];
                let name = format!("{PREFIX}{}", case.name);
                let on = Servers::one(&server.target, &server.pid);
                let sample =
                    load.sample_method(&case.method, &server.name, &name, on, &case.path, &case.headers).await?;
                samples[c][i].push(sample);
            }
        }
    }
    for (c, case) in cases.iter().enumerate() {
        let name = format!("{PREFIX}{}", case.name);
        for (i, server) in servers.iter().enumerate() {
            emit_load(&server.name, &name, &samples[c][i], json!({ "method": case.method.as_str() }));
        }
        for absent in &s.absent {
            let (server, why) = absent.split_once('=').unwrap_or((absent, "not run"));
            for (metric, unit) in [(format!("{name}_rps"), "req/s"), (format!("cpu_per_req_{name}_rps"), "CPU µs/req")]
            {
                emit(server, &metric, None, unit, json!({ "note": why }));
            }
        }
    }
    Ok(())
}

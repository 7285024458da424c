//! Requests per second for one GET (or HEAD) with N concurrent keep-alive
//! connections, every request with the same headers: `wrk` when it is
//! installed, else a load loop of our own (always for HEAD: wrk hangs on
//! HEAD answers, waiting for the body their Content-Length announces). The driver uses the same tool
//! for both registries. Several targets (instances of one registry) share
//! the connections, as a load balancer would spread them: one `wrk` per
//! target, run at once, or the loop's connections in turn.

use crate::client::{empty, Client, Target};
use anyhow::{bail, Context as _};
use hyper::Method;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Wrk,
    Builtin,
}

impl Tool {
    pub fn pick(choice: &str) -> anyhow::Result<Tool> {
        match choice {
            "wrk" => Ok(Tool::Wrk),
            "builtin" => Ok(Tool::Builtin),
            "auto" => Ok(if wrk_installed() { Tool::Wrk } else { Tool::Builtin }),
            other => bail!("unknown load tool {other:?} (auto, wrk, builtin)"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tool::Wrk => "wrk",
            Tool::Builtin => "builtin",
        }
    }
}

fn wrk_installed() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

/// The outcome of one load run.
pub struct Load {
    pub rps: f64,
    /// Requests that failed or answered other than 2xx/3xx.
    pub errors: u64,
    pub detail: String,
}

pub async fn run(
    tool: Tool,
    method: &Method,
    targets: &[Target],
    path: &str,
    headers: &[(&str, &str)],
    connections: usize,
    secs: u64,
) -> anyhow::Result<Load> {
    let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    match tool {
        Tool::Wrk if *method != Method::GET => bail!("wrk only runs GET loads here, not {method}"),
        Tool::Wrk => {
            // Two threads in all, as for one target.
            let threads = (2 / targets.len()).max(1);
            let runs: Vec<_> = targets
                .iter()
                .enumerate()
                .map(|(i, target)| {
                    let url = format!("{}{path}", target.base);
                    let headers = headers.clone();
                    let share = connections / targets.len() + usize::from(i < connections % targets.len());
                    tokio::task::spawn_blocking(move || wrk(&url, &headers, share, threads, secs))
                })
                .collect();
            let mut all = Load { rps: 0.0, errors: 0, detail: String::new() };
            for run in runs {
                let load = run.await??;
                all.rps += load.rps;
                all.errors += load.errors;
                all.detail =
                    if all.detail.is_empty() { load.detail } else { format!("{}; {}", all.detail, load.detail) };
            }
            Ok(all)
        }
        Tool::Builtin => builtin(targets, method, path, headers, connections, secs).await,
    }
}

fn wrk(url: &str, headers: &[(String, String)], connections: usize, threads: usize, secs: u64) -> anyhow::Result<Load> {
    let threads = threads.clamp(1, connections.max(1));
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{threads}")).arg(format!("-c{connections}")).arg(format!("-d{secs}s")).args(["--timeout", "5s"]);
    for (name, value) in headers {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    cmd.arg(url);
    let out = cmd.output().context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text)
}

/// Reads `Requests/sec:`, `Non-2xx or 3xx responses:` and `Socket errors:`
/// from wrk's report.
fn parse_wrk(text: &str) -> anyhow::Result<Load> {
    let field = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(str::trim));
    let rps: f64 = field("Requests/sec:").context("wrk printed no Requests/sec")?.parse()?;
    let mut errors = 0;
    if let Some(n) = field("Non-2xx or 3xx responses:") {
        errors += n.parse::<u64>().unwrap_or(0);
    }
    if let Some(s) = field("Socket errors:") {
        // "connect 0, read 0, write 0, timeout 0"
        errors += s.split(',').filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok()).sum::<u64>();
    }
    let latency = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Latency"))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_default();
    Ok(Load { rps, errors, detail: format!("wrk, mean latency {latency}") })
}

async fn builtin(
    targets: &[Target],
    method: &Method,
    path: &str,
    headers: Vec<(String, String)>,
    connections: usize,
    secs: u64,
) -> anyhow::Result<Load> {
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (ok, bad) = (ok.clone(), bad.clone());
        let mut client = Client::new(&targets[c % targets.len()]);
        let path = path.to_string();
        let headers = headers.clone();
        let method = method.clone();
        tasks.push(tokio::spawn(async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            while Instant::now() < deadline {
                match client.call(method.clone(), &path, &headers, empty()).await {
                    Ok(a) if a.status.is_success() || a.status.is_redirection() => ok.fetch_add(1, Ordering::Relaxed),
                    _ => bad.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (ok, bad) = (ok.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    Ok(Load { rps: ok as f64 / elapsed, errors: bad, detail: "built-in load loop".into() })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_wrk_output() {
        let text = "Running 10s test @ http://127.0.0.1:5080/v2/\n  2 threads and 16 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.37ms  404.03us  10.30ms   83.17%\n    Req/Sec     5.89k   512.10     6.80k    71.50%\n  117183 requests in 10.00s, 22.46MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:  11715.61\nTransfer/sec:      2.25MB\n";
        let load = super::parse_wrk(text).unwrap();
        assert!((load.rps - 11715.61).abs() < 0.01);
        assert_eq!(load.errors, 7);
        assert_eq!(load.detail, "wrk, mean latency 1.37ms");
    }
}

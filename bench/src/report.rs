//! Puts the results of two runs side by side: a markdown table on stdout,
//! and BENCHMARKS.md with the machine's description and the performance targets.

use crate::stats::{median, round};
use anyhow::Context as _;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// One result line.
pub struct Row {
    pub value: Option<f64>,
    pub unit: String,
    pub extra: Value,
}

/// Folds a repeated result line into the one before it: the big-blob
/// phases run one repetition at a time, alternating between the servers,
/// so each repetition prints its own lines. Throughputs pool their runs
/// (median of all), peak RSS takes the maximum, CPU times the median;
/// anything else keeps the last line.
fn merge(metric: &str, old: &mut Row, new: Row, cpu_samples: &mut HashMap<String, Vec<f64>>) {
    if let (Some(a), Some(b)) = (old.extra["runs_mbps"].as_array(), new.extra["runs_mbps"].as_array()) {
        let runs: Vec<Value> = a.iter().chain(b).cloned().collect();
        let values: Vec<f64> = runs.iter().filter_map(Value::as_f64).collect();
        old.value = median(&values).map(|m| round(m, 1));
        old.extra["runs_mbps"] = Value::Array(runs);
    } else if metric.starts_with("rss_peak_") {
        old.value = match (old.value, new.value) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    } else if metric.starts_with("cpu_") || metric.starts_with("client_cpu_") {
        let samples = cpu_samples.entry(metric.to_string()).or_insert_with(|| old.value.into_iter().collect());
        samples.extend(new.value);
        old.value = median(samples).map(|m| round(m, 2));
    } else {
        *old = new;
    }
}

/// Metric name → result, and the names in the order they were printed.
pub fn load(path: &Path) -> anyhow::Result<(HashMap<String, Row>, Vec<String>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    load_lines(text.lines(), path)
}

/// As `load`, for the lines of `path` given.
fn load_lines<'a>(
    lines: impl Iterator<Item = &'a str>,
    path: &Path,
) -> anyhow::Result<(HashMap<String, Row>, Vec<String>)> {
    let mut rows: HashMap<String, Row> = HashMap::new();
    let mut cpu_samples = HashMap::new();
    let mut order = Vec::new();
    for line in lines.filter(|l| l.trim_start().starts_with('{')) {
        let v: Value = serde_json::from_str(line).with_context(|| format!("{}: bad line {line}", path.display()))?;
        let Some(metric) = v["metric"].as_str().map(str::to_string) else {
            continue;
        };
        let row =
            Row { value: v["value"].as_f64(), unit: v["unit"].as_str().unwrap_or("").to_string(), extra: v.clone() };
        match rows.get_mut(&metric) {
            Some(old) => merge(&metric, old, row, &mut cpu_samples),
            None => {
                order.push(metric.clone());
                rows.insert(metric, row);
            }
        }
    }
    Ok((rows, order))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

impl Better {
    /// The table's "better" column.
    pub fn label(self) -> &'static str {
        match self {
            Better::Higher => "higher",
            Better::Lower => "**lower**",
        }
    }
}

/// `1g` → `1 GiB`, `256m` → `256 MiB`.
fn size(label: &str) -> String {
    if let Some(n) = label.strip_suffix('g') {
        format!("{n} GiB")
    } else if let Some(n) = label.strip_suffix('m') {
        format!("{n} MiB")
    } else {
        label.to_string()
    }
}

/// `1g` → 1024, `256m` → 256 (MiB).
fn size_mib(label: &str) -> Option<u64> {
    if let Some(n) = label.strip_suffix('g') {
        n.parse::<u64>().ok().map(|n| n << 10)
    } else {
        label.strip_suffix('m')?.parse().ok()
    }
}

/// A readable name for a metric, and which direction is better.
pub fn describe(metric: &str, extra: &Value) -> (String, Better) {
    use Better::*;
    let conns = extra["connections"].as_u64().unwrap_or(0);
    if let Some(rest) = metric.strip_prefix("store_cpu_per_req_") {
        return (format!("store CPU per request: {}", describe(rest, extra).0), Better::Lower);
    }
    if let Some(rest) = metric.strip_prefix("store_cpu_") {
        return (format!("store CPU time: {}", describe(rest, extra).0), Better::Lower);
    }
    if let Some(rest) = metric.strip_prefix("store_write_") {
        return (format!("store writes to its disk: {}", describe(rest, extra).0), Better::Lower);
    }
    if let Some(rest) = metric.strip_prefix("cpu_per_req_") {
        return (format!("server CPU per request: {}", describe(rest, extra).0), Better::Lower);
    }
    if let Some(rest) = metric.strip_prefix("client_cpu_") {
        return (format!("benchmark client CPU time: {}", describe(rest, extra).0), Better::Lower);
    }
    if let Some(rest) = metric.strip_prefix("cpu_") {
        return (format!("server CPU time: {}", describe(rest, extra).0), Better::Lower);
    }
    if let Some(s) = metric.strip_prefix("push_monolithic_") {
        return (format!("push {} monolithic (POST + PUT ?digest=)", size(s)), Higher);
    }
    if let Some(s) = metric.strip_prefix("push_chunked_") {
        let chunk = extra["chunk_mib"].as_u64().unwrap_or(8);
        return (format!("push {} chunked ({chunk} MiB PATCHes + PUT)", size(s)), Higher);
    }
    if let Some(s) = metric.strip_prefix("pull_") {
        return (format!("pull {} (GET, sha256 verified)", size(s)), Higher);
    }
    if let Some(s) = metric.strip_prefix("rss_peak_push_") {
        return (format!("peak RSS, {} monolithic push", size(s)), Lower);
    }
    if let Some(s) = metric.strip_prefix("rss_peak_chunked_") {
        return (format!("peak RSS, {} chunked push", size(s)), Lower);
    }
    if let Some(s) = metric.strip_prefix("rss_peak_pull_") {
        return (format!("peak RSS, {} pull", size(s)), Lower);
    }
    if let Some(rest) = metric.strip_prefix("push") {
        if let Some((kib, mode)) = rest.split_once("k_") {
            let (how, par) = match mode.strip_prefix("single_") {
                Some(par) => ("single POST ?digest=", par),
                None => ("POST + PUT", mode),
            };
            let who = if par == "seq" {
                "sequential".to_string()
            } else {
                format!("{} connections", par.trim_start_matches("par"))
            };
            return (format!("{kib} KiB blob pushes, {how}, {who}"), Higher);
        }
    }
    if let Some(rest) = metric.strip_prefix("auth_signin_cost").and_then(|r| r.strip_suffix("_ms")) {
        if let [cost, pass, statistic] = rest.split('_').collect::<Vec<_>>()[..] {
            let which = if pass == "first" { "a user's first" } else { "the same user again" };
            let users = extra["samples"].as_u64().unwrap_or(0);
            return (format!("sign-in, bcrypt cost {cost}, {which} ({users} users): {statistic}"), Lower);
        }
    }
    let known: &[(&str, &str, Better)] = &[
        ("auth_manifest_get_open_rps", "manifest GET, access control off", Higher),
        ("auth_manifest_get_bearer_rps", "manifest GET with a bearer token", Higher),
        ("auth_manifest_get_basic_rps", "manifest GET with Basic credentials on every request", Higher),
        ("ops_manifest_get_default_rps", "manifest GET, as started by default (turns with the next row)", Higher),
        ("ops_manifest_get_on_rps", "manifest GET with metrics and JSON logs on", Higher),
        ("manifest_get_rps", "manifest GET", Higher),
        ("blob_get_4k_rps", "4 KiB blob GET", Higher),
        ("base_get_rps", "GET /v2/ (per-request instantiation)", Higher),
        ("gc_fill_s", "garbage collection: filling the store (images of a config and 4 layers, half deleted)", Lower),
        ("gc_collect_s", "garbage collection: one whole collection (ours online; reference offline)", Lower),
        ("gc_pushes_alone_ips", "image pushes without a collection running", Higher),
        ("gc_pushes_during_ips", "image pushes while collections run (paced as the schedule paces them)", Higher),
        ("rss_idle_mib", "RSS idle, after start", Lower),
        ("rss_end_mib", "RSS at the end of the run", Lower),
        ("startup_cold_ms", "start-up to first answer, empty data dir", Lower),
        ("startup_warm_ms", "start-up to first answer, restart", Lower),
    ];
    for (name, label, better) in known {
        if metric == *name {
            let label = if conns > 0 { format!("{label}, {conns} connections") } else { label.to_string() };
            return (label, *better);
        }
    }
    (metric.to_string(), Higher)
}

/// Whether a metric belongs to the access-control group, which has a
/// table of its own.
fn is_access(metric: &str) -> bool {
    metric.starts_with("auth_") || metric.starts_with("cpu_per_req_auth_")
}

/// Groups the access-control table's rows: loads, their CPU, sign-ins.
fn access_category(metric: &str) -> u8 {
    if metric.starts_with("auth_signin_") {
        2
    } else if metric.starts_with("cpu_") {
        1
    } else {
        0
    }
}

/// Groups the table's rows: throughput, small pushes, GET loads, CPU,
/// memory, start-up (a stable sort keeps the run's order inside a group).
pub fn category(metric: &str) -> u8 {
    if metric.starts_with("push_") || metric.starts_with("pull_") {
        0
    } else if metric.starts_with("push") {
        1
    } else if metric.ends_with("_rps") && !metric.contains("cpu_") {
        2
    } else if metric.starts_with("cpu_") || metric.starts_with("store_") {
        3
    } else if metric.starts_with("rss_") {
        4
    } else if metric.starts_with("startup_") {
        5
    } else if metric.starts_with("gc_") {
        7
    } else {
        6
    }
}

pub fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v < 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.1}"),
    }
}

pub fn ratio(ours: Option<f64>, reference: Option<f64>) -> Option<f64> {
    match (ours, reference) {
        (Some(o), Some(r)) if r > 0.0 => Some(o / r),
        _ => None,
    }
}

/// Two decimals; two significant digits below 0.01 (a remembered sign-in
/// against bcrypt), none from 100 up.
pub fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        None => "–".into(),
        Some(r) if r >= 100.0 => format!("{r:.0}×"),
        Some(r) if r > 0.0 && r < 0.01 => format!("{r:.*}×", (1.0 - r.log10().floor()) as usize),
        Some(r) => format!("{r:.2}×"),
    }
}

/// A performance target and whether this run meets it.
struct Verdict {
    target: String,
    evidence: String,
    met: bool,
}

fn verdicts(ours: &HashMap<String, Row>, reference: &HashMap<String, Row>, order: &[String]) -> Vec<Verdict> {
    let mut out = Vec::new();
    let value = |rows: &HashMap<String, Row>, m: &str| rows.get(m).and_then(|r| r.value);
    let ratio_target = |out: &mut Vec<Verdict>, what: &str, min: f64, metrics: Vec<&String>| {
        for m in metrics {
            let (o, r) = (value(ours, m), value(reference, m));
            let x = ratio(o, r);
            let (label, _) = describe(m, &ours[m].extra);
            out.push(Verdict {
                target: format!("{what} ≥ {min}×: {label}"),
                evidence: format!("{} vs {} {} = {}", fmt_value(o), fmt_value(r), ours[m].unit, fmt_ratio(x)),
                met: x.is_some_and(|x| x >= min),
            });
        }
    };
    let with = |prefix: &str| order.iter().filter(|m| m.starts_with(prefix)).collect::<Vec<_>>();
    // The throughput targets are about the big blob: the largest size.
    let size_of = |m: &str| size_mib(m.rsplit('_').next().unwrap_or(""));
    let biggest = order.iter().filter_map(|m| size_of(m)).max().unwrap_or(0);
    let pushes: Vec<&String> = order
        .iter()
        .filter(|m| m.starts_with("push_monolithic_") || m.starts_with("push_chunked_"))
        .filter(|m| size_of(m) == Some(biggest))
        .collect();
    ratio_target(&mut out, "push", 3.0, pushes);
    ratio_target(&mut out, "pull", 1.5, with("pull_"));
    let small: Vec<&String> =
        order.iter().filter(|m| m.starts_with("push") && m.contains("k_") && !m.contains("single")).collect();
    ratio_target(&mut out, "small-blob pushes/s", 5.0, small);
    ratio_target(&mut out, "manifest GET req/s", 8.0, with("manifest_get_rps"));
    // Ours against ours: one workload as a share of another.
    let shares = [
        (
            "auth_manifest_get_bearer_rps",
            "auth_manifest_get_open_rps",
            BEARER_TARGET,
            "req/s",
            format!("ours, manifest GET with a bearer token ≥ {BEARER_TARGET}× access control off"),
        ),
        (
            "ops_manifest_get_on_rps",
            "ops_manifest_get_default_rps",
            OPS_TARGET,
            "req/s",
            format!("ours, manifest GET with metrics and JSON logs on ≥ {OPS_TARGET}× as started by default"),
        ),
        (
            "gc_pushes_during_ips",
            "gc_pushes_alone_ips",
            GC_PUSH_TARGET,
            "images/s",
            format!("ours, image pushes while collections run ≥ {GC_PUSH_TARGET}× without"),
        ),
    ];
    for (part, whole, at_least, unit, target) in shares {
        if let (Some(p), Some(w)) = (value(ours, part), value(ours, whole)) {
            let x = ratio(Some(p), Some(w));
            out.push(Verdict {
                target,
                evidence: format!("{} vs {} {unit} = {}", fmt_value(Some(p)), fmt_value(Some(w)), fmt_ratio(x)),
                met: x.is_some_and(|x| x >= at_least),
            });
        }
    }
    let rss: Vec<&String> = with("rss_peak_push_");
    let mut peaks = Vec::new();
    for m in &rss {
        let o = value(ours, m);
        let (label, _) = describe(m, &ours[*m].extra);
        out.push(Verdict {
            target: format!("peak RSS ≤ 64 MiB: {label}"),
            evidence: format!("{} MiB (reference {} MiB)", fmt_value(o), fmt_value(value(reference, m))),
            met: o.is_some_and(|o| o <= 64.0),
        });
        peaks.extend(o.map(|o| (m.trim_start_matches("rss_peak_push_").to_string(), o)));
    }
    if peaks.len() >= 2 {
        let max = peaks.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let min = peaks.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        let list = peaks.iter().map(|(s, v)| format!("{}: {v:.1} MiB", size(s))).collect::<Vec<_>>().join(", ");
        out.push(Verdict {
            target: "peak RSS flat in blob size (peaks within 16 MiB of each other)".into(),
            evidence: format!("{list}; spread {:.1} MiB", max - min),
            met: max - min <= 16.0,
        });
    }
    out
}

/// Pushes while collections run, as a share of pushes without (the
/// garbage-collection issue's target).
const GC_PUSH_TARGET: f64 = 0.9;

/// The bearer-token manifest GET rate the access-control issue asks for,
/// as a share of the rate without access control.
const BEARER_TARGET: f64 = 0.9;
/// Metrics and JSON logs on may cost at most 5% of manifest GET req/s.
const OPS_TARGET: f64 = 0.95;

/// The markdown table of `order`'s metrics, both servers side by side.
fn table(ours: &HashMap<String, Row>, reference: &HashMap<String, Row>, order: &[String]) -> anyhow::Result<String> {
    let mut table = String::new();
    writeln!(table, "| workload | unit | better | ours | reference | ours / reference |")?;
    writeln!(table, "|---|---|---|---:|---:|---:|")?;
    for m in order {
        let row = ours.get(m).or_else(|| reference.get(m)).expect("listed");
        let (label, better) = describe(m, &row.extra);
        let o = ours.get(m).and_then(|r| r.value);
        let r = reference.get(m).and_then(|r| r.value);
        let label = with_notes(label, m, &[("ours", ours), ("reference", reference)]);
        writeln!(
            table,
            "| {label} | {} | {} | {} | {} | {} |",
            row.unit,
            better.label(),
            fmt_value(o),
            fmt_value(r),
            fmt_ratio(ratio(o, r))
        )?;
    }
    Ok(table)
}

/// `label` with the runs' notes on metric `m` (errors, and what a run
/// measured differently), each after the run's name.
pub fn with_notes(label: String, m: &str, runs: &[(&str, &HashMap<String, Row>)]) -> String {
    let mut notes = Vec::new();
    for (who, rows) in runs {
        if let Some(row) = rows.get(m) {
            if row.extra["errors"].as_u64().is_some_and(|e| e > 0) {
                notes.push(format!("{who}: {} errors", row.extra["errors"]));
            }
            if let Some(note) = row.extra["note"].as_str() {
                notes.push(format!("{who}: {note}"));
            }
        }
    }
    if notes.is_empty() {
        label
    } else {
        format!("{label} ({})", notes.join("; "))
    }
}

/// The text of an optional markdown file (empty without one).
pub fn read_text(path: Option<&Path>) -> anyhow::Result<String> {
    match path {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())),
        None => Ok(String::new()),
    }
}

/// Each server's access-control loads as shares of its load without
/// access control, measured just before them.
fn access_ratios(ours: &HashMap<String, Row>, reference: &HashMap<String, Row>) -> anyhow::Result<String> {
    let share = |rows: &HashMap<String, Row>, m: &str| {
        let value = |m: &str| rows.get(m).and_then(|r| r.value);
        fmt_ratio(ratio(value(m), value("auth_manifest_get_open_rps")))
    };
    let mut out = String::new();
    writeln!(out, "| manifest GET, share of the rate with access control off | ours | reference |")?;
    writeln!(out, "|---|---:|---:|")?;
    for (m, what) in [
        ("auth_manifest_get_bearer_rps", "with a bearer token"),
        ("auth_manifest_get_basic_rps", "with Basic credentials"),
    ] {
        writeln!(out, "| {what} | {} | {} |", share(ours, m), share(reference, m))?;
    }
    Ok(out)
}

pub fn write(
    ours_path: &Path,
    reference_path: &Path,
    per_request: Option<&Path>,
    machine: Option<&Path>,
    out: Option<&Path>,
    notes: Option<&Path>,
) -> anyhow::Result<()> {
    let (ours, mut order) = load(ours_path)?;
    let (reference, ref_order) = load(reference_path)?;
    for m in ref_order {
        if !ours.contains_key(&m) {
            order.push(m);
        }
    }
    let (mut access, mut order): (Vec<String>, Vec<String>) = order.into_iter().partition(|m| is_access(m));
    order.sort_by_key(|m| category(m));
    access.sort_by_key(|m| access_category(m));
    let table = table(&ours, &reference, &order)?;
    let access_section = if access.is_empty() {
        String::new()
    } else {
        format!(
            "## Access control\n\n{ACCESS_METHOD}\n{}\n{}",
            self::table(&ours, &reference, &access)?,
            access_ratios(&ours, &reference)?
        )
    };
    let mut runs = String::new();
    for m in &order {
        let list = |rows: &HashMap<String, Row>| {
            rows.get(m)
                .and_then(|r| r.extra["runs_mbps"].as_array().cloned())
                .map(|a| a.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "))
        };
        if let (Some(o), Some(r)) = (list(&ours), list(&reference)) {
            let (label, _) = describe(m, &ours[m].extra);
            writeln!(runs, "- {label}: ours {o}; reference {r} (MB/s)")?;
        }
    }
    let mut verdicts = verdicts(&ours, &reference, &order);
    let per_request_section = match per_request {
        Some(path) => {
            let (section, targets) = per_request_section(&per_request_runs(path)?)?;
            verdicts.extend(targets);
            section
        }
        None => String::new(),
    };
    let mut targets = String::new();
    writeln!(targets, "| target | this run | met |")?;
    writeln!(targets, "|---|---|---|")?;
    for v in &verdicts {
        writeln!(targets, "| {} | {} | {} |", v.target, v.evidence, if v.met { "yes" } else { "**no**" })?;
    }
    println!("{table}");
    if !access_section.is_empty() {
        println!("{access_section}");
    }
    if !per_request_section.is_empty() {
        println!("{per_request_section}");
    }
    println!("{targets}");
    let met = verdicts.iter().filter(|v| v.met).count();
    println!("{met} of {} targets met", verdicts.len());

    if let Some(out) = out {
        let machine = read_text(machine)?;
        let mut md = String::new();
        writeln!(md, "# Benchmarks\n")?;
        writeln!(
            md,
            "`registry-host` (ours: the registry component in wasmtime, a fresh instance per request) against \
             CNCF distribution 2.8.2 (the reference: Debian's `docker-registry`, filesystem storage), \
             one server under load at a time, in the same run of `bash bench/run.sh`. \
             Ratios are ours / reference; for the rows marked **lower** (memory, start-up) a ratio below 1 is better.\n"
        )?;
        writeln!(md, "{machine}")?;
        writeln!(md, "## Results\n\n{table}")?;
        if !runs.is_empty() {
            writeln!(md, "Every run of the big-blob phases (the table shows the median):\n\n{runs}")?;
        }
        if !access_section.is_empty() {
            writeln!(md, "{access_section}")?;
        }
        if !per_request_section.is_empty() {
            writeln!(md, "{per_request_section}")?;
        }
        writeln!(md, "## Targets\n\n{targets}\n{met} of {} targets met.\n", verdicts.len())?;
        writeln!(md, "{}", METHOD)?;
        writeln!(md, "{}", read_text(notes)?.trim_end())?;
        std::fs::write(out, md).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// The per-request group's columns: server name in its lines, heading.
const PER_REQUEST_SERVERS: [(&str, &str); 4] = [
    ("ours", "ours"),
    ("ours-reuse", "ours, instance reuse"),
    ("ceiling", "native ceiling"),
    ("reference", "reference"),
];

/// Its rows: the case's name in the metrics, its label.
const PER_REQUEST_ROWS: [(&str, &str); 6] = [
    ("manifest_get", "manifest GET"),
    ("manifest_head", "manifest HEAD"),
    ("blob_head", "blob HEAD"),
    ("blob_get_4k", "4 KiB blob GET"),
    ("base_get", "GET /v2/"),
    ("tags_list", "tags list"),
];

/// Manifest GET req/s as a share of the native ceiling's: with a fresh
/// instance per request (the default), and with instance reuse.
const FRESH_TARGET: f64 = 0.6;
const REUSE_TARGET: f64 = 0.85;

/// The per-request group's lines of `path`, server by server.
fn per_request_runs(path: &Path) -> anyhow::Result<HashMap<String, HashMap<String, Row>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut runs = HashMap::new();
    for (server, _) in PER_REQUEST_SERVERS {
        let needle = format!(r#""server":"{server}""#);
        let (rows, _) = load_lines(text.lines().filter(|l| l.contains(&needle)), path)?;
        runs.insert(server.to_string(), rows);
    }
    Ok(runs)
}

/// The "Per-request cost" section (its table and targets) and its targets
/// for the report's list.
fn per_request_section(runs: &HashMap<String, HashMap<String, Row>>) -> anyhow::Result<(String, Vec<Verdict>)> {
    let row = |server: &str, m: &str| runs.get(server).and_then(|rows| rows.get(m));
    let value = |server: &str, m: &str| row(server, m).and_then(|r| r.value);
    let mut table = String::new();
    writeln!(
        table,
        "| request | unit | ours | ours, instance reuse | native ceiling | reference | ours / ceiling | reuse / ceiling |"
    )?;
    writeln!(table, "|---|---|---:|---:|---:|---:|---:|---:|")?;
    for (case, label) in PER_REQUEST_ROWS {
        let rate = format!("{}{case}_rps", crate::per_request::PREFIX);
        let cpu = format!("cpu_per_req_{rate}");
        for (m, unit) in [(&rate, "req/s"), (&cpu, "CPU µs/req")] {
            let mut label = if m == &rate { label.to_string() } else { format!("{label}: server CPU per request") };
            let head = row("ours", &rate).is_some_and(|r| r.extra["method"] == "HEAD");
            if m == &rate && head && row("ours", &rate).is_some_and(|r| r.extra["tool"] == "builtin") {
                label.push_str(" (built-in load loop)");
            }
            let errors: Vec<String> = PER_REQUEST_SERVERS
                .iter()
                .filter_map(|&(server, _)| {
                    let n = row(server, m)?.extra["errors"].as_u64().filter(|n| *n > 0)?;
                    Some(format!("{server}: {n} errors"))
                })
                .collect();
            if !errors.is_empty() {
                label = format!("{label} ({})", errors.join("; "));
            }
            let [o, u, c, r] = PER_REQUEST_SERVERS.map(|(server, _)| value(server, m));
            writeln!(
                table,
                "| {label} | {unit} | {} | {} | {} | {} | {} | {} |",
                fmt_value(o),
                fmt_value(u),
                fmt_value(c),
                fmt_value(r),
                fmt_ratio(ratio(o, c)),
                fmt_ratio(ratio(u, c))
            )?;
        }
    }
    let mut absent = String::new();
    for (server, heading) in PER_REQUEST_SERVERS {
        let rate = format!("{}manifest_get_rps", crate::per_request::PREFIX);
        if let Some(note) = row(server, &rate).filter(|r| r.value.is_none()).and_then(|r| r.extra["note"].as_str()) {
            writeln!(absent, "\n{heading}: n/a ({note}).")?;
        }
    }
    let rate = format!("{}manifest_get_rps", crate::per_request::PREFIX);
    let ceiling = value("ceiling", &rate);
    let mut targets = Vec::new();
    for (server, at_least, what) in
        [("ours", FRESH_TARGET, "a fresh instance per request"), ("ours-reuse", REUSE_TARGET, "instance reuse")]
    {
        let x = ratio(value(server, &rate), ceiling);
        let evidence = match (value(server, &rate), row(server, &rate).and_then(|r| r.extra["note"].as_str())) {
            (None, Some(note)) => format!("n/a ({note})"),
            (v, _) => format!("{} vs {} req/s = {}", fmt_value(v), fmt_value(ceiling), fmt_ratio(x)),
        };
        targets.push(Verdict {
            target: format!("ours with {what}, manifest GET ≥ {at_least}× the native ceiling"),
            evidence,
            met: x.is_some_and(|x| x >= at_least),
        });
    }
    let mut lines = String::new();
    for v in &targets {
        writeln!(lines, "| {} | {} | {} |", v.target, v.evidence, if v.met { "yes" } else { "**no**" })?;
    }
    let section = format!(
        "## Per-request cost\n\n{PER_REQUEST_METHOD}\n{table}{absent}\n| target | this run | met |\n|---|---|---|\n{lines}"
    );
    Ok((section, targets))
}

/// The per-request cost section alone (bench/run.sh with
/// BENCH_ONLY=per-request): printed, and written to `out` after the
/// machine's description if given.
pub fn write_per_request(input: &Path, machine: Option<&Path>, out: Option<&Path>) -> anyhow::Result<()> {
    let (section, _) = per_request_section(&per_request_runs(input)?)?;
    println!("{section}");
    if let Some(out) = out {
        let md = format!("# Benchmarks: per-request cost\n\n{}\n{section}", read_text(machine)?);
        std::fs::write(out, md).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

const PER_REQUEST_METHOD: &str = "The small requests of a pull on four servers in one group: ours (a fresh \
instance per request, the default), a second `registry-host` with `--instance-reuse 1000` on its own data \
directory (an instance serves up to 1000 requests one after another), a native ceiling, and the reference. \
The same image (a 4 KiB layer, a config, an OCI manifest tagged `latest`) is pushed to each registry. \
The native ceiling (`registry-bench native-server`, `bench/src/native.rs`) is hyper on tokio as \
`registry-host` sets them up (multi-threaded runtime, one worker per core; HTTP/1.1 keep-alive, the \
same request-head bound, `TCP_NODELAY`) answering, for each of these requests, the status, headers and \
body ours answered, recorded from ours after the push and checked against ours before the loads; it \
reads each body from its file at request time, as the registry reads its storage, and answers 404 to \
anything else: what the HTTP stack alone costs on this machine. It writes no access line (ours writes \
one per request, at its default log level).\n\n\
- Loads: 16 keep-alive connections, with the GET loads' tool and length (`BENCH_LOAD_TOOL`, \
`BENCH_LOAD_SECS`), in turns: every server \
runs a request's load before the next request's, the servers' order rotating from turn to turn, so \
that all meet the same drift of the machine; each value is the median of the turns. The HEAD rows use \
the benchmark's built-in loop whatever the tool (wrk hangs on HEAD answers, waiting for the body their \
`Content-Length` announces), so compare them across servers, not with the GET rows.\n\
- Server CPU per request: utime + stime of the server's process over the load, divided by the requests \
it answered.\n\
- The manifest GET sends `Accept: application/vnd.oci.image.manifest.v1+json`; the tags list is \
`GET /v2/<name>/tags/list` of a repository with one tag.\n";

const ACCESS_METHOD: &str = "A second instance of each server with access control on, its own port and data \
directory, and the same htpasswd file (`htpasswd -B`): ours with `--htpasswd`, `--access` (every user may \
pull and push `bench/**`) and `--token-key`; distribution with `auth: htpasswd`. The group runs after \
the others, one server under load at a time.\n\n\
- Manifest GET loads, with the tool and connections of the GET loads above: on the instance without \
access control that the groups above ran on, and with a bearer token for `repository:bench/auth:pull` \
from ours' `/token` (distribution's htpasswd auth has no token flow), in turns, three of each, so that \
both meet the same drift of the machine (each row the median of its three); then with one user's Basic \
credentials (bcrypt cost 10) on every request. Ours pays bcrypt at that user's first sign-in and then finds the sign-in it \
remembers for 10 minutes; distribution pays bcrypt on every request.\n\
- Sign-ins, one at a time on a keep-alive connection, from sending the request to the end of the \
answer: for each bcrypt cost, a set of users each sign in once (a user's first), then each once again. \
Ours: `GET /token` with Basic credentials (bcrypt the first time only); distribution: `GET /v2/` with \
Basic credentials, as it has no token endpoint (bcrypt every time). Median and p90 (nearest rank) over \
the users. Before the sign-ins the server is left to finish what the loads queued: distribution keeps \
checking the passwords of requests whose connections the load has already closed.\n";

const METHOD: &str = "## How it is measured\n\n\
- Both servers stay up; the workload groups (big blobs, small pushes, GET loads) run against ours \
and then against the reference, group by group, so that both meet the same background load of this \
shared machine; only one server is under load at a time. The small pushes go further: each of their \
measurements is cut into 1-second slices that alternate between the two servers (and alternate which \
goes first), because they wait for disk flushes, and a flush here takes 0.1 ms one moment and 1 ms a \
few seconds later (a 4 KiB overwrite + `fdatasync` probed every 2 s), with the host's other I/O. \
Before them, and before each big-blob repetition, the run syncs and drops the kernel's caches (as \
root): on this ext4 without a journal, each new inode skips the inodes deleted in the last minutes by \
looking each up in the cached inode table, so file creation gets slower the more was deleted just \
before; and with earlier repetitions' blobs still cached, a later phase paid for reclaiming them.\n\
- Big-blob phases run several times each (median in the table, every run listed below it), one \
repetition at a time, alternating between the servers and which of them goes first, since the \
disk's speed drifts over minutes here; before each repetition the driver writes and deletes as much \
data as the repetition will send, because \
this machine (a microVM) backs guest memory lazily and the first write into never-used page-cache \
pages runs ~10× slower than later ones (measured with dd: 294 MB/s, then 3.8 GB/s): without it, \
whichever server ran first would pay for that.\n\
- MB/s is 10^6 bytes per second, from the first request of an upload (POST) to the answer to its last \
(PUT), or from the GET to the last byte of the blob. Blob content is generated on the fly (xorshift64, \
1 MiB blocks), never held whole in memory; its sha256 is computed before the timed phase. The pull \
hashes the bytes as they arrive and fails on a mismatch. `sync` runs between the big phases (untimed).\n\
- Small pushes: distinct blobs, each a standard two-request upload (POST, then PUT ?digest= with the \
body), on 1 and on 8 keep-alive connections for a fixed time per server; the single-request POST ?digest= upload \
is measured separately where the registry supports it (n/a where it answers with a session).\n\
- GET load: `wrk` (2 threads, 16 keep-alive connections; the built-in loop when wrk is missing), \
after pushing a 4 KiB layer, a config and an OCI manifest tagged `latest`; the manifest GET sends \
`Accept: application/vnd.oci.image.manifest.v1+json`. Errors (non-2xx, socket errors) are shown when nonzero.\n\
- Peak RSS: `/proc/<pid>/status` VmRSS sampled every 20 ms during the phase, and VmHWM after resetting \
it at the phase start (`clear_refs` 5, as root); the larger of the two.\n\
- Start-up: from just before the driver spawns the server to its first 200 on `GET /v2/` (polled every \
2 ms). Cold = empty data directory (ours compiles the component and caches the machine code there); \
warm = the same server restarted on the same data directory.\n\
- Both servers run without `RUST_BACKTRACE`/`RUST_LIB_BACKTRACE`, as deployed (with a developer \
shell's `RUST_BACKTRACE=1`, wasmtime used to capture a backtrace in every store drop).\n\
- Other jobs share this machine: the machine table gives the load average around the run. The \
fsync-bound rows (small pushes) move most with it, by up to 2–4× between runs, because they depend \
on how busy the disk is.\n\
- Server CPU: utime + stime of the server process from `/proc/<pid>/stat` over the phase (median \
for the big phases; per push or per request for the others).\n\
- Both servers log one access line per request to a file (ours at its default `info`; distribution \
with `log.level: warn` and its default access log).\n\
- Client and server share the machine's cores: the numbers are for this 2-core machine, both \
registries paying the same client cost.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetitions_pool_their_runs() {
        let dir = std::env::temp_dir().join(format!("bench-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ours.jsonl");
        let lines = [
            r#"{"server":"ours","metric":"push_monolithic_1g","value":800.0,"unit":"MB/s","runs_mbps":[800.0]}"#,
            r#"{"server":"ours","metric":"rss_peak_push_1g","value":30.0,"unit":"MiB"}"#,
            r#"{"server":"ours","metric":"cpu_push_monolithic_1g","value":1.5,"unit":"CPU s"}"#,
            r#"{"server":"ours","metric":"push_monolithic_1g","value":300.0,"unit":"MB/s","runs_mbps":[300.0]}"#,
            r#"{"server":"ours","metric":"rss_peak_push_1g","value":35.0,"unit":"MiB"}"#,
            r#"{"server":"ours","metric":"cpu_push_monolithic_1g","value":1.1,"unit":"CPU s"}"#,
            r#"{"server":"ours","metric":"push_monolithic_1g","value":900.0,"unit":"MB/s","runs_mbps":[900.0]}"#,
            r#"{"server":"ours","metric":"rss_peak_push_1g","value":31.0,"unit":"MiB"}"#,
            r#"{"server":"ours","metric":"cpu_push_monolithic_1g","value":1.3,"unit":"CPU s"}"#,
            r#"{"server":"ours","metric":"rss_end_mib","value":40.0,"unit":"MiB"}"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let (rows, order) = load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(order.len(), 4);
        let mono = &rows["push_monolithic_1g"];
        assert_eq!(mono.value, Some(800.0));
        assert_eq!(mono.extra["runs_mbps"].as_array().unwrap().len(), 3);
        assert_eq!(rows["rss_peak_push_1g"].value, Some(35.0));
        assert_eq!(rows["cpu_push_monolithic_1g"].value, Some(1.3));
        assert_eq!(rows["rss_end_mib"].value, Some(40.0));
    }

    #[test]
    fn ratios_keep_two_significant_digits_when_small() {
        assert_eq!(fmt_ratio(Some(0.0018)), "0.0018×");
        assert_eq!(fmt_ratio(Some(0.00964)), "0.0096×");
        assert_eq!(fmt_ratio(Some(0.06)), "0.06×");
        assert_eq!(fmt_ratio(Some(14.981)), "14.98×");
        assert_eq!(fmt_ratio(Some(1305.17)), "1305×");
        assert_eq!(fmt_ratio(None), "–");
        assert_eq!(fmt_value(Some(0.214)), "0.21");
    }

    /// The report of these result lines.
    fn report_of(name: &str, ours: &[&str], reference: &[&str]) -> String {
        let dir = std::env::temp_dir().join(format!("bench-report-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (o, r, md) = (dir.join("ours.jsonl"), dir.join("reference.jsonl"), dir.join("BENCHMARKS.md"));
        std::fs::write(&o, ours.join("\n")).unwrap();
        std::fs::write(&r, reference.join("\n")).unwrap();
        write(&o, &r, None, None, Some(&md), None).unwrap();
        let text = std::fs::read_to_string(&md).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        text
    }

    #[test]
    fn access_control_has_its_own_table_and_target() {
        let ours = [
            r#"{"server":"ours","metric":"manifest_get_rps","value":9000.0,"unit":"req/s","connections":16}"#,
            r#"{"server":"ours","metric":"auth_manifest_get_open_rps","value":10000.0,"unit":"req/s","connections":16}"#,
            r#"{"server":"ours","metric":"cpu_per_req_auth_manifest_get_open_rps","value":150.0,"unit":"CPU µs/req"}"#,
            r#"{"server":"ours","metric":"auth_manifest_get_bearer_rps","value":8500.0,"unit":"req/s","connections":16}"#,
            r#"{"server":"ours","metric":"auth_manifest_get_basic_rps","value":8000.0,"unit":"req/s","connections":16}"#,
            r#"{"server":"ours","metric":"auth_signin_cost12_first_p90_ms","value":400.0,"unit":"ms","samples":10}"#,
        ];
        let reference = [
            r#"{"server":"reference","metric":"manifest_get_rps","value":1800.0,"unit":"req/s","connections":16}"#,
            r#"{"server":"reference","metric":"auth_manifest_get_open_rps","value":2000.0,"unit":"req/s"}"#,
            r#"{"server":"reference","metric":"auth_manifest_get_bearer_rps","value":null,"unit":"req/s","note":"no token flow"}"#,
            r#"{"server":"reference","metric":"auth_manifest_get_basic_rps","value":40.0,"unit":"req/s"}"#,
            r#"{"server":"reference","metric":"auth_signin_cost12_first_p90_ms","value":250.0,"unit":"ms","samples":10}"#,
        ];
        let text = report_of("access", &ours, &reference);
        let (results, access) = text.split_once("## Access control").expect("an access-control section");
        assert!(results.contains("| manifest GET, 16 connections |"));
        assert!(!results.contains("bearer"));
        let access = access.split("## Targets").next().unwrap();
        assert!(access.contains(
            "| manifest GET with a bearer token, 16 connections (reference: no token flow) | req/s | higher | 8500 | n/a | – |"
        ));
        assert!(access.contains(
            "| sign-in, bcrypt cost 12, a user's first (10 users): p90 | ms | **lower** | 400 | 250 | 1.60× |"
        ));
        assert!(access.contains("| with a bearer token | 0.85× | – |"));
        assert!(access.contains("| with Basic credentials | 0.80× | 0.02× |"));
        // Loads first, then their CPU, then sign-ins.
        let at = |needle: &str| access.find(needle).unwrap();
        assert!(at("with Basic credentials on every request") < at("server CPU per request"));
        assert!(at("server CPU per request") < at("sign-in, bcrypt"));
        assert!(text.contains(
            "| ours, manifest GET with a bearer token ≥ 0.9× access control off | 8500 vs 10000 req/s = 0.85× | **no** |"
        ));
    }

    #[test]
    fn operations_on_have_their_rows_and_target() {
        let ours = [
            r#"{"server":"ours","metric":"ops_manifest_get_default_rps","value":10000.0,"unit":"req/s","connections":16}"#,
            r#"{"server":"ours","metric":"ops_manifest_get_on_rps","value":9600.0,"unit":"req/s","connections":16}"#,
        ];
        let reference = [
            r#"{"server":"reference","metric":"ops_manifest_get_default_rps","value":2000.0,"unit":"req/s","connections":16}"#,
            r#"{"server":"reference","metric":"ops_manifest_get_on_rps","value":1500.0,"unit":"req/s","connections":16}"#,
        ];
        let text = report_of("ops", &ours, &reference);
        assert!(
            text.contains(
                "| manifest GET with metrics and JSON logs on, 16 connections | req/s | higher | 9600 | 1500 |"
            ),
            "{text}"
        );
        assert!(text.contains(
            "| ours, manifest GET with metrics and JSON logs on ≥ 0.95× as started by default | 9600 vs 10000 req/s = 0.96× | yes |"
        ), "{text}");
    }

    #[test]
    fn per_request_cost_has_its_table_and_targets() {
        let dir = std::env::temp_dir().join(format!("bench-report-per-request-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("per-request.jsonl");
        let line = |server: &str, metric: &str, value: &str, extra: &str| {
            format!(r#"{{"server":"{server}","metric":"{metric}","value":{value},"unit":"u"{extra}}}"#)
        };
        let get = r#","method":"GET","tool":"wrk","errors":0"#;
        let head = r#","method":"HEAD","tool":"builtin","errors":0"#;
        let mut lines = vec![
            line("ours", "per_request_manifest_get_rps", "6500.0", get),
            line("ours", "cpu_per_req_per_request_manifest_get_rps", "110.0", ""),
            line("ours", "per_request_manifest_head_rps", "4800.0", r#","method":"HEAD","tool":"builtin","errors":3"#),
            line("ceiling", "per_request_manifest_get_rps", "10000.0", get),
            line("ceiling", "cpu_per_req_per_request_manifest_get_rps", "40.0", ""),
            line("ceiling", "per_request_manifest_head_rps", "8000.0", head),
            line("reference", "per_request_manifest_get_rps", "2000.0", get),
        ];
        let note = r#","note":"this registry-host has no --instance-reuse""#;
        lines.push(line("ours-reuse", "per_request_manifest_get_rps", "null", note));
        lines.push(line("ours-reuse", "cpu_per_req_per_request_manifest_get_rps", "null", note));
        std::fs::write(&path, lines.join("\n")).unwrap();
        let runs = per_request_runs(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let (text, targets) = per_request_section(&runs).unwrap();
        assert!(text.starts_with("## Per-request cost\n"), "{text}");
        assert!(text.contains("| manifest GET | req/s | 6500 | n/a | 10000 | 2000 | 0.65× | – |"), "{text}");
        assert!(
            text.contains("| manifest GET: server CPU per request | CPU µs/req | 110 | n/a | 40.0 | n/a | 2.75× | – |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| manifest HEAD (built-in load loop) (ours: 3 errors) | req/s | 4800 | n/a | 8000 | n/a | 0.60× | – |"
            ),
            "{text}"
        );
        // Every row, rate and CPU, in the group's order.
        assert_eq!(text.matches("| req/s |").count(), 6, "{text}");
        assert_eq!(text.matches("| CPU µs/req |").count(), 6, "{text}");
        assert!(text.find("| tags list |").unwrap() > text.find("| GET /v2/ |").unwrap());
        assert!(text.contains("ours, instance reuse: n/a (this registry-host has no --instance-reuse)."), "{text}");
        assert!(text.contains(
            "| ours with a fresh instance per request, manifest GET ≥ 0.6× the native ceiling | 6500 vs 10000 req/s = 0.65× | yes |"
        ), "{text}");
        assert!(text.contains(
            "| ours with instance reuse, manifest GET ≥ 0.85× the native ceiling | n/a (this registry-host has no --instance-reuse) | **no** |"
        ), "{text}");
        assert_eq!(targets.iter().filter(|v| v.met).count(), 1);
    }
}

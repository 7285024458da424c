//! The S3 benchmark's report (bench/s3.sh): four runs side by side (one
//! registry-host on the store, two on one bucket and prefix, distribution
//! with its `s3` driver, and the store's own PUT and GET of the same bytes)
//! as a markdown table on stdout and BENCHMARKS-S3.md.

use crate::report::{self, Row};
use anyhow::Context as _;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The result lines of the four runs.
pub struct Runs {
    pub one: PathBuf,
    pub two: PathBuf,
    pub reference: PathBuf,
    pub ceiling: PathBuf,
}

const COLUMNS: [&str; 4] = ["ours ×1", "ours ×2", "distribution s3", "store alone"];
/// The ratio columns: (numerator, denominator) in `COLUMNS`.
const RATIOS: [(usize, usize); 3] = [(1, 0), (0, 2), (0, 3)];

/// The table of `order`'s metrics, the runs side by side.
fn table(runs: &[HashMap<String, Row>], order: &[String]) -> anyhow::Result<String> {
    let mut out = String::new();
    let ratio_names: Vec<String> = RATIOS.iter().map(|(a, b)| format!("{} / {}", COLUMNS[*a], COLUMNS[*b])).collect();
    writeln!(out, "| workload | unit | better | {} | {} |", COLUMNS.join(" | "), ratio_names.join(" | "))?;
    writeln!(out, "|---|---|---|{}", "---:|".repeat(COLUMNS.len() + RATIOS.len()))?;
    for m in order {
        let row = runs.iter().find_map(|run| run.get(m)).expect("listed");
        let (label, better) = report::describe(m, &row.extra);
        // The registry's CPU is that of all its instances together.
        let label = label.replacen("server CPU", "registry CPU", 1);
        let named: Vec<(&str, &HashMap<String, Row>)> = COLUMNS.iter().copied().zip(runs).collect();
        let label = report::with_notes(label, m, &named);
        let value = |i: usize| runs[i].get(m).and_then(|r| r.value);
        let values: Vec<String> = (0..COLUMNS.len()).map(|i| report::fmt_value(value(i))).collect();
        let ratios: Vec<String> =
            RATIOS.iter().map(|(a, b)| report::fmt_ratio(report::ratio(value(*a), value(*b)))).collect();
        let (unit, better) = (&row.unit, better.label());
        writeln!(out, "| {label} | {unit} | {better} | {} | {} |", values.join(" | "), ratios.join(" | "))?;
    }
    Ok(out)
}

pub fn write(runs: &Runs, machine: Option<&Path>, out: Option<&Path>, notes: Option<&Path>) -> anyhow::Result<()> {
    let mut loaded = Vec::new();
    let mut order: Vec<String> = Vec::new();
    for path in [&runs.one, &runs.two, &runs.reference, &runs.ceiling] {
        let (rows, names) = report::load(path)?;
        for name in names {
            if !order.contains(&name) {
                order.push(name);
            }
        }
        loaded.push(rows);
    }
    order.sort_by_key(|m| report::category(m));
    let table = table(&loaded, &order)?;
    let mut runs_list = String::new();
    for m in &order {
        let lists: Vec<String> = COLUMNS
            .iter()
            .zip(&loaded)
            .filter_map(|(name, run)| {
                let runs = run.get(m)?.extra["runs_mbps"].as_array()?.clone();
                (runs.len() > 1)
                    .then(|| format!("{name} {}", runs.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")))
            })
            .collect();
        if !lists.is_empty() {
            let row = loaded.iter().find_map(|run| run.get(m)).expect("listed");
            writeln!(runs_list, "- {}: {} (MB/s)", report::describe(m, &row.extra).0, lists.join("; "))?;
        }
    }
    println!("{table}");
    if let Some(out) = out {
        let machine = report::read_text(machine)?;
        let mut md = String::new();
        writeln!(md, "# Benchmarks on an S3-compatible store\n")?;
        writeln!(md, "{INTRO}")?;
        writeln!(md, "{machine}")?;
        writeln!(md, "## Results\n\n{table}")?;
        if !runs_list.is_empty() {
            writeln!(md, "Every run of the big-blob phases (the table shows the median):\n\n{runs_list}")?;
        }
        writeln!(md, "{METHOD}")?;
        writeln!(md, "{}", report::read_text(notes)?.trim_end())?;
        std::fs::write(out, md).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

const INTRO: &str = "`registry-host --storage s3://…` (ours) on one SeaweedFS, as one instance and as two \
instances serving the same bucket and prefix, next to CNCF distribution 2.8.2 with its `s3` driver on the \
same SeaweedFS, and next to SeaweedFS's own PUT and GET of the same bytes (the ceiling of any registry on \
it), in one run of `bash bench/s3.sh`. One column is under load at a time. Ratios: ours ×2 / ours ×1 \
(what a second instance adds), ours ×1 / distribution, ours ×1 / store alone (the share of the store's \
own rate a registry on it keeps). For the rows marked **lower** (CPU, memory, start-up) a ratio below 1 \
is better; the BENCHMARKS.md run (data directory) is separate.\n";

const METHOD: &str = "## How it is measured\n\n\
- One SeaweedFS (`weed mini`: master, volume server, filer and S3 gateway in one process, on loopback, \
data in the run's temporary directory; it does not fsync) serves one bucket to every column, each under \
its own prefix. Every port it opens is picked free (its gRPC ports are the HTTP ports + 10000, and its \
admin server is moved off 23646/33646, where another SeaweedFS on the machine may listen).\n\
- ours ×1: one `registry-host --storage s3://BUCKET/bench-one --s3-path-style`. ours ×2: two \
`registry-host` processes on `s3://BUCKET/bench-two`, the load spread as a load balancer would: each GET \
load splits its connections between them (one `wrk` per instance, one thread and half the connections \
each: the same two threads and 16 connections as for one instance); the small pushes put connection *w* \
on instance *w* mod 2, so the sequential rows run on one instance; a chunked upload sends its POST, each \
PATCH and the final PUT to the instances in turn; the monolithic pushes go to the first and the pull \
reads from the second. Registry CPU is both processes' together, peak RSS the larger of the two.\n\
- distribution s3: Debian's `docker-registry` 2.8.2 with `storage: s3` (v4auth, the endpoint as \
`regionendpoint`, `chunksize` 10 MiB, its default) and `redirect: disable: true`, so that pulls pass \
through it as they pass through ours; started without `AWS_CA_BUNDLE`, which its AWS SDK cannot use.\n\
- store alone: `registry-bench s3-ceiling`, the same bytes straight to the store, each request presigned \
by `rusty-s3` as registry-host signs its own (unsigned payload): one PUT of the big blob (monolithic \
row), a multipart upload of it in 8 MiB parts, registry-host's part size (chunked row), one GET of the \
PUT object hashed as it arrives (pull row); 4 KiB object PUTs (small-push rows: one request each, where \
a registry push is two requests and several store calls); GET loads, with the same tool and connections, \
on an object holding the registry GET load's manifest and on one holding its 4 KiB layer.\n\
- Store CPU: the SeaweedFS process's CPU time over each phase, per push or request for the rates: what \
each operation costs the store, in every column. Store writes: what it wrote to its disk over a big \
phase (`/proc/<pid>/io` `write_bytes`, counted as pages are dirtied, so data deleted before it reached \
the disk counts too), its vacuums' compaction included.\n\
- The groups run column by column: the big blobs (each column in turn, which column goes first rotating \
between repetitions; the page cache is dropped and pre-written before each, and the store vacuumed after \
each, untimed), then the small pushes, then the GET loads. While the big blobs go in, the driver asks the \
store to vacuum every 10 s (volumes with 30 % garbage or more), for every column alike: SeaweedFS \
reclaims deleted objects only by vacuuming (on its own every 14 minutes), and ours' rewritten upload \
tails filled its volumes within one 1 GiB push without it. MB/s, small pushes, GET loads, peak RSS and \
the big blobs' content are measured as in BENCHMARKS.md.\n\
- The benchmark client, the registries and the store share this machine's cores: a registry's rates here \
include the store's work on the same cores, and the machine table gives the load average around the run.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_runs_side_by_side() {
        let dir = std::env::temp_dir().join(format!("bench-s3-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = [
            ("one", r#"{"server":"ours-1","metric":"manifest_get_rps","value":2000.0,"unit":"req/s","connections":16}"#),
            ("two", r#"{"server":"ours-2","metric":"manifest_get_rps","value":3000.0,"unit":"req/s","connections":16}"#),
            ("reference", r#"{"server":"reference","metric":"manifest_get_rps","value":500.0,"unit":"req/s"}"#),
            (
                "ceiling",
                "{\"server\":\"store\",\"metric\":\"manifest_get_rps\",\"value\":8000.0,\"unit\":\"req/s\",\"note\":\"one GET\"}\n\
                 {\"server\":\"store\",\"metric\":\"store_cpu_per_req_manifest_get_rps\",\"value\":90.0,\"unit\":\"CPU µs/req\"}",
            ),
        ];
        let paths: Vec<PathBuf> = files
            .iter()
            .map(|(name, text)| {
                let path = dir.join(format!("{name}.jsonl"));
                std::fs::write(&path, text).unwrap();
                path
            })
            .collect();
        let runs = Runs {
            one: paths[0].clone(),
            two: paths[1].clone(),
            reference: paths[2].clone(),
            ceiling: paths[3].clone(),
        };
        let md = dir.join("BENCHMARKS-S3.md");
        write(&runs, None, Some(&md), None).unwrap();
        let text = std::fs::read_to_string(&md).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(text.contains(
            "| manifest GET, 16 connections (store alone: one GET) | req/s | higher | 2000 | 3000 | 500 | 8000 | 1.50× | 4.00× | 0.25× |"
        ));
        assert!(text.contains(
            "| store CPU per request: manifest GET | CPU µs/req | **lower** | n/a | n/a | n/a | 90.0 | – | – | – |"
        ));
        // Rates before CPU.
        assert!(text.find("| manifest GET").unwrap() < text.find("| store CPU").unwrap());
    }
}

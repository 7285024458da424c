//! `registry-bench`: the workloads of bench/run.sh against one registry,
//! and the report that puts two runs side by side.
//!
//! - `run`: every workload against one registry, one JSON line per result;
//! - `access`: the access-control workloads against a registry with access
//!   control on (and the same server without it);
//! - `wait`: polls `GET /v2/` until it answers, prints the start-up time;
//! - `free-port`: prints a free loopback TCP port;
//! - `report`: two runs' JSON lines → the table and BENCHMARKS.md;
//! - `per-request-setup`, `native-server`, `per-request`,
//!   `report-per-request`: the per-request cost group (the image pushed to
//!   each registry and ours' answers recorded; the native ceiling serving
//!   them; the loads in turns; its section alone);
//! - `s3-ceiling`: the object store's own PUT and GET of the same bytes
//!   (bench/s3.sh);
//! - `report-s3`: the S3 benchmark's runs → its table and BENCHMARKS-S3.md.

mod access;
mod ceiling;
mod client;
mod content;
mod gc;
mod load;
mod native;
mod ops;
mod per_request;
mod report;
mod rss;
mod s3_report;
mod stats;
mod workloads;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Benchmark of an OCI registry (see bench/run.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the workloads against one registry; JSON lines on stdout.
    Run {
        /// Base URL of the registry, e.g. http://127.0.0.1:5080. Given more
        /// than once: instances of one registry sharing a store, as behind
        /// a load balancer (connections spread over them, each chunk of a
        /// chunked upload to the next, pulls from the last).
        #[arg(long, required = true)]
        url: Vec<String>,
        /// PID of the server process, for its memory use: one per --url, in
        /// the same order.
        #[arg(long, required = true)]
        pid: Vec<u32>,
        /// PID of the object store the registry uses, for its CPU time.
        #[arg(long)]
        store_pid: Option<u32>,
        /// Name of this registry in the results (e.g. ours, reference).
        #[arg(long)]
        server: String,
        /// Size of the big blob in MiB (monolithic, chunked, pull).
        #[arg(long, default_value_t = 1024)]
        big_mib: u64,
        /// Size of the second blob in MiB, for the memory comparison.
        #[arg(long, default_value_t = 256)]
        medium_mib: u64,
        /// PATCH chunk size in MiB.
        #[arg(long, default_value_t = 8)]
        chunk_mib: u64,
        /// Size of the small blobs in KiB.
        #[arg(long, default_value_t = 4)]
        small_kib: u64,
        /// Seconds per small-push measurement.
        #[arg(long, default_value_t = 5)]
        push_secs: u64,
        #[command(flatten)]
        load: LoadArgs,
        /// Concurrent connections for the parallel small pushes.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
        /// Repetitions of each big-blob phase (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Only these groups (comma-separated): idle (RSS at the start),
        /// big, small, load, end (RSS at the end). Default: all, in that order.
        #[arg(long, value_delimiter = ',')]
        only: Option<Vec<String>>,
        /// A second registry for the small pushes, measured slice by slice
        /// alternating with this one: its URL (with --peer-pid, --peer-server).
        #[arg(long, requires_all = ["peer_pid", "peer_server"])]
        peer_url: Option<String>,
        #[arg(long)]
        peer_pid: Option<u32>,
        #[arg(long)]
        peer_server: Option<String>,
        /// Slices per small-push measurement when there is a peer.
        #[arg(long, default_value_t = 10)]
        slices: usize,
    },
    /// The access-control workloads (manifest GET loads with a bearer
    /// token, with Basic credentials, and without access control; sign-in
    /// latency per bcrypt cost); JSON lines on stdout.
    Access {
        /// Base URL of the registry with access control on.
        #[arg(long)]
        url: String,
        /// PID of that server process.
        #[arg(long)]
        pid: u32,
        /// Name of this registry in the results (e.g. ours, reference).
        #[arg(long)]
        server: String,
        /// How a sign-in is measured: GET /token (the token flow) or GET /v2/, with Basic credentials.
        #[arg(long, value_enum)]
        sign_in: access::SignIn,
        /// The token service's name.
        #[arg(long, default_value = "wasm-registry")]
        service: String,
        /// Base URL of the same server without access control.
        #[arg(long)]
        open_url: String,
        /// PID of that server process.
        #[arg(long)]
        open_pid: u32,
        /// The users' password (all have the same).
        #[arg(long, env = "BENCH_AUTH_PASSWORD", hide_env_values = true)]
        password: String,
        /// The user of the loads (bcrypt cost 10).
        #[arg(long, default_value = "load")]
        load_user: String,
        /// bcrypt costs of the sign-in users (users cost<C>-1 … cost<C>-<users>).
        #[arg(long, value_delimiter = ',', default_value = "10,12")]
        costs: Vec<u32>,
        /// Users per bcrypt cost.
        #[arg(long, default_value_t = 10)]
        users: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// What operating features cost: manifest GET loads on an instance with
    /// metrics and JSON logs on and on the default instance, in turns;
    /// JSON lines on stdout.
    Ops {
        /// Base URL of the instance with metrics and JSON logs on.
        #[arg(long)]
        url: String,
        /// PID of that server process.
        #[arg(long)]
        pid: u32,
        /// Its metrics endpoint, scraped after the loads (e.g. http://127.0.0.1:9090/metrics).
        #[arg(long)]
        metrics_url: String,
        /// Name of this registry in the results (e.g. ours, reference).
        #[arg(long)]
        server: String,
        /// Base URL of the default instance.
        #[arg(long)]
        default_url: String,
        /// PID of that server process.
        #[arg(long)]
        default_pid: u32,
        /// Turns of each load.
        #[arg(long, default_value_t = 3)]
        turns: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// The garbage-collection workloads: fill a store (N images of a config
    /// and four layers, every second one deleted), collect it through
    /// /_registry/gc, and push images alone and while collections run.
    Gc {
        #[arg(long)]
        url: String,
        #[arg(long)]
        server: String,
        /// Images in the store.
        #[arg(long, default_value_t = 10_000)]
        images: usize,
        /// Connections that fill the store.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
        /// Seconds per push-rate measurement (0: none).
        #[arg(long, default_value_t = 10)]
        push_secs: u64,
        /// Fill the store.
        #[arg(long)]
        fill: bool,
        /// Collect it (and measure pushes during collections).
        #[arg(long)]
        collect: bool,
        /// While pushes run, pause after each step this many times as long
        /// as the step took (registry-host's schedule pauses twice as long).
        #[arg(long, default_value_t = 2.0)]
        pace: f64,
    },
    /// Wait until the registry answers GET /v2/; print the start-up time.
    Wait {
        #[arg(long)]
        url: String,
        #[arg(long)]
        server: String,
        /// Metric name for the result line.
        #[arg(long, default_value = "startup_ms")]
        metric: String,
        /// The status that means it is up (401 with access control on).
        #[arg(long, default_value_t = 200)]
        status: u16,
        /// The clock (ns since the epoch, `date +%s%N`) when the server was started.
        #[arg(long)]
        since_ns: u128,
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// The object store's own PUT and GET of the bytes the registry
    /// workloads move (the ceiling of a registry on it); JSON lines on
    /// stdout. Credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    S3Ceiling {
        /// The store's endpoint, e.g. http://127.0.0.1:8333 (path-style
        /// addressing).
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        bucket: String,
        /// Prefix of the objects written.
        #[arg(long, default_value = "bench-ceiling")]
        prefix: String,
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// Name of this column in the results.
        #[arg(long, default_value = "store")]
        server: String,
        /// PID of the store, for its CPU time.
        #[arg(long)]
        store_pid: Option<u32>,
        /// Size of the big object in MiB.
        #[arg(long, default_value_t = 1024)]
        big_mib: u64,
        /// Part size of the multipart upload in MiB (registry-host's).
        #[arg(long, default_value_t = 8)]
        part_mib: u64,
        /// Size of the small objects in KiB.
        #[arg(long, default_value_t = 4)]
        small_kib: u64,
        #[arg(long, default_value_t = 5)]
        push_secs: u64,
        #[arg(long, default_value_t = 8)]
        parallel: usize,
        #[command(flatten)]
        load: LoadArgs,
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Only these groups (comma-separated): big, small, load.
        #[arg(long, value_delimiter = ',')]
        only: Option<Vec<String>>,
    },
    /// The S3 benchmark's table (one column per run) and BENCHMARKS-S3.md.
    ReportS3 {
        /// One registry-host on the store.
        #[arg(long)]
        one: PathBuf,
        /// Two registry-host instances on one bucket and prefix.
        #[arg(long)]
        two: PathBuf,
        /// distribution with its s3 driver.
        #[arg(long)]
        reference: PathBuf,
        /// The store's own PUT and GET.
        #[arg(long)]
        ceiling: PathBuf,
        #[command(flatten)]
        files: ReportFiles,
    },
    /// The per-request group's set-up: pushes the image of `--seed` to
    /// every registry, then records ours' answers to the group's requests
    /// for the native ceiling.
    PerRequestSetup {
        /// Base URL of a registry to push to, once per registry.
        #[arg(long, required = true)]
        url: Vec<String>,
        /// The registry whose answers are recorded (ours).
        #[arg(long)]
        capture_from: String,
        /// Where the answers go.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        seed: u64,
    },
    /// The native ceiling: serves the answers recorded in `--dir` with
    /// hyper, set up as registry-host sets it up; 404 for anything else.
    NativeServer {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
    /// The per-request group's loads on several servers in turns; JSON
    /// lines (each with its server's name) on stdout.
    PerRequest {
        /// NAME=URL@PID, once per server (ours, ours-reuse, ceiling, reference).
        #[arg(long = "server", required = true)]
        servers: Vec<String>,
        /// NAME=WHY for a server that could not be run: null rows with that note.
        #[arg(long)]
        absent: Vec<String>,
        /// Two servers (NAME,NAME) that must answer every request alike,
        /// checked before the loads (ours and the ceiling that replays it).
        #[arg(long, value_delimiter = ',')]
        compare: Vec<String>,
        /// The image's seed, as given to per-request-setup.
        #[arg(long)]
        seed: u64,
        /// Turns of each load on each server (the median is reported).
        #[arg(long, default_value_t = 3)]
        turns: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// The per-request cost section alone, from `per-request`'s lines.
    ReportPerRequest {
        #[arg(long)]
        input: PathBuf,
        /// Markdown describing the machine and the run, put before it.
        #[arg(long)]
        machine: Option<PathBuf>,
        /// Where to write it as markdown (it is printed too).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a free TCP port on 127.0.0.1.
    FreePort {
        /// Only a port P for which P + this is free too (SeaweedFS listens
        /// for gRPC on each of its HTTP ports + 10000).
        #[arg(long)]
        and_plus: Option<u16>,
    },
    /// Combine two runs into a table; write BENCHMARKS.md.
    Report {
        #[arg(long)]
        ours: PathBuf,
        #[arg(long)]
        reference: PathBuf,
        /// The per-request group's lines (all its servers), for its section.
        #[arg(long)]
        per_request: Option<PathBuf>,
        #[command(flatten)]
        files: ReportFiles,
    },
}

/// A report's other files.
#[derive(clap::Args)]
struct ReportFiles {
    /// Markdown describing the machine and the run, included as it is.
    #[arg(long)]
    machine: Option<PathBuf>,
    /// Where to write the markdown report.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Markdown appended to the report (the hand-written analysis).
    #[arg(long)]
    notes: Option<PathBuf>,
}

/// The GET loads' flags.
#[derive(clap::Args)]
struct LoadArgs {
    /// Seconds per GET load measurement.
    #[arg(long, default_value_t = 10)]
    load_secs: u64,
    /// Concurrent keep-alive connections for the GET loads.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Load generator: auto (wrk if installed), wrk, builtin.
    #[arg(long, default_value = "auto")]
    load_tool: String,
}

impl LoadArgs {
    fn get_load(&self) -> anyhow::Result<workloads::GetLoad> {
        Ok(workloads::GetLoad {
            tool: load::Tool::pick(&self.load_tool)?,
            connections: self.connections,
            secs: self.load_secs,
        })
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registry-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Run {
            url,
            pid,
            store_pid,
            server,
            big_mib,
            medium_mib,
            chunk_mib,
            small_kib,
            push_secs,
            load,
            parallel,
            repeat,
            only,
            peer_url,
            peer_pid,
            peer_server,
            slices,
        } => runtime.block_on(async {
            anyhow::ensure!(url.len() == pid.len(), "give one --pid per --url");
            let mut targets = Vec::new();
            for url in &url {
                targets.push(client::Target::parse(url).await?);
            }
            let peer = match (peer_url, peer_pid, peer_server) {
                (Some(url), Some(pid), Some(server)) => {
                    Some(workloads::Peer { server, pid, target: client::Target::parse(&url).await? })
                }
                _ => None,
            };
            let settings = workloads::Settings {
                server,
                pids: pid,
                store_pid,
                big: big_mib << 20,
                medium: medium_mib << 20,
                chunk: chunk_mib << 20,
                small: small_kib << 10,
                push_secs,
                load: load.get_load()?,
                parallel,
                only,
                repeat,
                peer,
                slices,
            };
            workloads::run(&targets, &settings).await
        }),
        Command::Access {
            url,
            pid,
            server,
            sign_in,
            service,
            open_url,
            open_pid,
            password,
            load_user,
            costs,
            users,
            load,
        } => runtime.block_on(async {
            let target = client::Target::parse(&url).await?;
            let settings = access::Settings {
                server,
                pid,
                sign_in,
                service,
                open: client::Target::parse(&open_url).await?,
                open_pid,
                password,
                load_user,
                costs,
                users,
                load: load.get_load()?,
            };
            access::run(&target, &settings).await
        }),
        Command::Ops { url, pid, metrics_url, server, default_url, default_pid, turns, load } => {
            runtime.block_on(async {
                let target = client::Target::parse(&url).await?;
                let settings = ops::Settings {
                    server,
                    pid,
                    metrics: metrics_url,
                    default: client::Target::parse(&default_url).await?,
                    default_pid,
                    turns,
                    load: load.get_load()?,
                };
                ops::run(&target, &settings).await
            })
        }
        Command::Gc { url, server, images, parallel, push_secs, fill, collect, pace } => runtime.block_on(async {
            let target = client::Target::parse(&url).await?;
            gc::run(&target, &gc::Settings { server, images, parallel, push_secs, fill, collect, pace }).await
        }),
        Command::Wait { url, server, metric, status, since_ns, timeout_secs } => runtime.block_on(async {
            let target = client::Target::parse(&url).await?;
            workloads::wait_ready(&target, &server, &metric, status, since_ns, Duration::from_secs(timeout_secs)).await
        }),
        Command::S3Ceiling {
            endpoint,
            bucket,
            prefix,
            region,
            server,
            store_pid,
            big_mib,
            part_mib,
            small_kib,
            push_secs,
            parallel,
            load,
            repeat,
            only,
        } => runtime.block_on(async {
            let store = ceiling::Store::new(&endpoint, &bucket, &prefix, &region).await?;
            let settings = ceiling::Settings {
                server,
                store_pid,
                big: big_mib << 20,
                part: part_mib << 20,
                small: small_kib << 10,
                push_secs,
                parallel,
                load: load.get_load()?,
                repeat,
                only,
            };
            ceiling::run(&store, &settings).await
        }),
        Command::ReportS3 { one, two, reference, ceiling, files } => {
            let runs = s3_report::Runs { one, two, reference, ceiling };
            s3_report::write(&runs, files.machine.as_deref(), files.out.as_deref(), files.notes.as_deref())
        }
        Command::PerRequestSetup { url, capture_from, dir, seed } => runtime.block_on(async {
            let mut targets = Vec::new();
            for url in &url {
                targets.push(client::Target::parse(url).await?);
            }
            per_request::populate(&targets, seed).await?;
            native::capture(&client::Target::parse(&capture_from).await?, seed, &dir).await
        }),
        Command::NativeServer { dir, listen } => runtime.block_on(native::serve(&dir, listen)),
        Command::PerRequest { servers, absent, compare, seed, turns, load } => runtime.block_on(async {
            let mut parsed = Vec::new();
            for spec in &servers {
                parsed.push(per_request::Server::parse(spec).await?);
            }
            if !compare.is_empty() {
                let find = |name: &str| parsed.iter().find(|s| s.name == name).map(|s| &s.target);
                let (Some(x), Some(y)) = (compare.first().and_then(|a| find(a)), compare.get(1).and_then(|b| find(b)))
                else {
                    anyhow::bail!("--compare {}: give two of the --server names", compare.join(","));
                };
                per_request::compare(x, y, seed).await.context("the ceiling does not answer as ours does")?;
            }
            per_request::run(&parsed, &per_request::Settings { seed, turns, load: load.get_load()?, absent }).await
        }),
        Command::ReportPerRequest { input, machine, out } => {
            report::write_per_request(&input, machine.as_deref(), out.as_deref())
        }
        Command::FreePort { and_plus } => {
            for _ in 0..1000 {
                let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
                let port = listener.local_addr()?.port();
                let free = match and_plus.map(|plus| port.checked_add(plus)) {
                    None => true,
                    Some(None) => false,
                    Some(Some(other)) => std::net::TcpListener::bind(("127.0.0.1", other)).is_ok(),
                };
                if free {
                    println!("{port}");
                    return Ok(());
                }
            }
            anyhow::bail!("no free port found")
        }
        Command::Report { ours, reference, per_request, files } => report::write(
            &ours,
            &reference,
            per_request.as_deref(),
            files.machine.as_deref(),
            files.out.as_deref(),
            files.notes.as_deref(),
        ),
    }
}

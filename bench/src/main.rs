//! `registry-bench`: the workloads of bench/run.sh against one registry,
//! and the report that puts two runs side by side.
//!
//! - `run`: every workload against one registry, one JSON line per result;
//! - `access`: the access-control workloads against a registry with access
//!   control on (and the same server without it);
//! - `wait`: polls `GET /v2/` until it answers, prints the start-up time;
//! - `free-port`: prints a free loopback TCP port;
//! - `report`: two runs' JSON lines → the table and BENCHMARKS.md.

mod access;
mod client;
mod content;
mod gc;
mod load;
mod report;
mod rss;
mod stats;
mod workloads;

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
        /// Base URL of the registry, e.g. http://127.0.0.1:5080
        #[arg(long)]
        url: String,
        /// PID of the server process, for its memory use.
        #[arg(long)]
        pid: u32,
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
        /// Seconds per GET load measurement.
        #[arg(long, default_value_t = 10)]
        load_secs: u64,
        /// Concurrent keep-alive connections for the GET load.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Concurrent connections for the parallel small pushes.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
        /// Load generator: auto (wrk if installed), wrk, builtin.
        #[arg(long, default_value = "auto")]
        load_tool: String,
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
        /// Seconds per GET load measurement.
        #[arg(long, default_value_t = 10)]
        load_secs: u64,
        /// Concurrent keep-alive connections for the GET loads.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Load generator: auto (wrk if installed), wrk, builtin.
        #[arg(long, default_value = "auto")]
        load_tool: String,
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
    /// Print a free TCP port on 127.0.0.1.
    FreePort,
    /// Combine two runs into a table; write BENCHMARKS.md.
    Report {
        #[arg(long)]
        ours: PathBuf,
        #[arg(long)]
        reference: PathBuf,
        /// Markdown describing the machine and the run, included as it is.
        #[arg(long)]
        machine: Option<PathBuf>,
        /// Where to write the markdown report.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Markdown appended to the report (the profile analysis).
        #[arg(long)]
        notes: Option<PathBuf>,
    },
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
            server,
            big_mib,
            medium_mib,
            chunk_mib,
            small_kib,
            push_secs,
            load_secs,
            connections,
            parallel,
            load_tool,
            repeat,
            only,
            peer_url,
            peer_pid,
            peer_server,
            slices,
        } => runtime.block_on(async {
            let target = client::Target::parse(&url).await?;
            let peer = match (peer_url, peer_pid, peer_server) {
                (Some(url), Some(pid), Some(server)) => {
                    Some(workloads::Peer { server, pid, target: client::Target::parse(&url).await? })
                }
                _ => None,
            };
            let settings = workloads::Settings {
                server,
                pid,
                big: big_mib << 20,
                medium: medium_mib << 20,
                chunk: chunk_mib << 20,
                small: small_kib << 10,
                push_secs,
                load_secs,
                connections,
                parallel,
                tool: load::Tool::pick(&load_tool)?,
                only,
                repeat,
                peer,
                slices,
            };
            workloads::run(&target, &settings).await
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
            load_secs,
            connections,
            load_tool,
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
                load: workloads::GetLoad { tool: load::Tool::pick(&load_tool)?, connections, secs: load_secs },
            };
            access::run(&target, &settings).await
        }),
        Command::Gc { url, server, images, parallel, push_secs, fill, collect, pace } => runtime.block_on(async {
            let target = client::Target::parse(&url).await?;
            gc::run(&target, &gc::Settings { server, images, parallel, push_secs, fill, collect, pace }).await
        }),
        Command::Wait { url, server, metric, status, since_ns, timeout_secs } => runtime.block_on(async {
            let target = client::Target::parse(&url).await?;
            workloads::wait_ready(&target, &server, &metric, status, since_ns, Duration::from_secs(timeout_secs)).await
        }),
        Command::FreePort => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            println!("{}", listener.local_addr()?.port());
            Ok(())
        }
        Command::Report { ours, reference, machine, out, notes } => {
            report::write(&ours, &reference, machine.as_deref(), out.as_deref(), notes.as_deref())
        }
    }
}

//! `registry-host`: serves the registry component over HTTP or HTTPS with its
//! storage contract implemented on the local filesystem or an S3 bucket.

mod access;
mod backend;
mod bindings;
mod config;
mod config_watch;
mod engine;
mod gc;
mod instances;
mod limits;
mod log_level;
mod metrics;
mod outgoing;
mod reload;
mod request_log;
mod s3;
mod server;
mod state;
mod storage;
mod storage_impl;
mod tls;

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// An OCI container registry running as a WebAssembly component.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Args {
    /// A TOML file whose keys are these flags' long names (see
    /// registry.example.toml); flags and REGISTRY_* variables override it.
    #[arg(long, env = "REGISTRY_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Print the settings in force (and where each came from), then exit.
    #[arg(long)]
    pub print_config: bool,

    /// Address to listen on.
    #[arg(long, env = "REGISTRY_LISTEN", default_value = "0.0.0.0:5080")]
    pub listen: SocketAddr,

    /// Directory holding blobs, metadata and uploads (created if missing);
    /// with --storage s3://…, only the compiled component's cache.
    #[arg(long, env = "REGISTRY_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,

    /// Run this registry component (.wasm) instead of the one built in.
    #[arg(long, env = "REGISTRY_COMPONENT", global = true)]
    pub component: Option<PathBuf>,

    /// Pull-through mirrors: a TOML file mapping repository name prefixes to
    /// upstream registries (README, "Pull-through mirrors"). Reread on SIGHUP.
    #[arg(long, env = "REGISTRY_PROXY_FILE", value_name = "FILE")]
    pub proxy: Option<PathBuf>,

    /// Refuse DELETE requests (405 UNSUPPORTED).
    #[arg(long, env = "REGISTRY_DISABLE_DELETE")]
    pub disable_delete: bool,

    /// TLS certificate chain (PEM, leaf first): serve HTTPS, HTTP/2 and
    /// HTTP/1.1. Needs --tls-key. Reread on SIGHUP.
    #[arg(long, env = "REGISTRY_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The TLS certificate's private key (PEM). Needs --tls-cert. Reread on SIGHUP.
    #[arg(long, env = "REGISTRY_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Users and their password hashes (htpasswd). Reread on SIGHUP.
    #[arg(long, env = "REGISTRY_HTPASSWD", value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,

    /// The access policy: who may do what. Reread on SIGHUP.
    #[arg(long, env = "REGISTRY_ACCESS", value_name = "FILE")]
    pub access: Option<PathBuf>,

    /// The key that signs and checks bearer tokens. Reread on SIGHUP.
    #[arg(long, env = "REGISTRY_TOKEN_KEY", value_name = "FILE")]
    pub token_key: Option<PathBuf>,

    /// The token service's name (the `service` of token requests).
    #[arg(long, env = "REGISTRY_AUTH_SERVICE", value_name = "NAME")]
    pub auth_service: Option<String>,

    /// Where clients ask for tokens (the `realm` of the challenge).
    #[arg(long, env = "REGISTRY_AUTH_REALM", value_name = "URL")]
    pub auth_realm: Option<String>,

    /// Longest time from the first byte of a request to the end of its
    /// headers (seconds, or 30s, 2m, 500ms; 0: none).
    #[arg(long, env = "REGISTRY_HEADER_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = limits::parse_duration)]
    pub header_timeout: Duration,

    /// Longest wait for more of a request body: between bytes, not in total
    /// (0: none).
    #[arg(long, env = "REGISTRY_BODY_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = limits::parse_duration)]
    pub body_timeout: Duration,

    /// Longest time a connection stays open without a request in flight
    /// (0: none).
    #[arg(long, env = "REGISTRY_IDLE_TIMEOUT", value_name = "DURATION", default_value = "75s", value_parser = limits::parse_duration)]
    pub idle_timeout: Duration,

    /// Longest wait for a client to take more of a response (0: none).
    #[arg(long, env = "REGISTRY_SEND_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = limits::parse_duration)]
    pub send_timeout: Duration,

    /// Most connections open at once (0: no cap). At the cap, the connection
    /// that has waited longest without a request in flight is closed to make
    /// room; with every connection busy, new ones wait.
    #[arg(long, env = "REGISTRY_MAX_CONNECTIONS", value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,

    /// Most connections open at once from one client address; more are
    /// closed at once (0: no cap).
    #[arg(long, env = "REGISTRY_MAX_CONNECTIONS_PER_CLIENT", value_name = "N", default_value_t = 0)]
    pub max_connections_per_client: usize,

    /// How log lines are written: `text` for people, `json` for one JSON
    /// object per line (time, level, target, fields; the access lines carry
    /// request id, client, method, route, repository, status, bytes in and
    /// out, duration).
    #[arg(long, env = "REGISTRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// What to log: a level (`info`, `warn`, `debug`) or a tracing filter
    /// (`info,access=off`). Taken from the config file, SIGHUP rereads it.
    #[arg(long, env = "REGISTRY_LOG", value_name = "FILTER", default_value = "info")]
    pub log_level: String,

    /// The config file (`--config`), which SIGHUP rereads.
    #[arg(skip)]
    pub config_file: Option<PathBuf>,
    /// Whether the log level is the config file's (no flag or REGISTRY_LOG
    /// gives one).
    #[arg(skip)]
    pub log_level_from_file: bool,

    /// Requests one component instance serves, one after another (0 or 1:
    /// a fresh instance per request, the default). Reuse saves the
    /// instantiation per request but gives up the isolation of a fresh
    /// instance: see README, "Instance reuse".
    #[arg(long, env = "REGISTRY_INSTANCE_REUSE", value_name = "N", default_value_t = 0)]
    pub instance_reuse: usize,

    /// Address for the operator's endpoints: Prometheus metrics at
    /// /metrics, /health/live and /health/ready (off when not given).
    #[arg(long, env = "REGISTRY_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    #[command(flatten)]
    pub storage: s3::StorageArgs,
    #[command(flatten)]
    pub gc: gc::GcArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How log lines are written (`--log-format`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do instead of serving.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Collects garbage in the store once and exits: removes blobs nothing
    /// uses (older than --gc-grace) and abandoned uploads. Refuses while a
    /// server uses the data directory (an S3 store may be in use); a running
    /// server collects on its own schedule (--gc-interval).
    Gc {
        /// List what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

impl Args {
    /// The TLS files: both or neither.
    pub fn tls_files(&self) -> anyhow::Result<Option<tls::TlsFiles>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(tls::TlsFiles { cert: cert.clone(), key: key.clone() })),
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!(
                "--tls-cert (REGISTRY_TLS_CERT) needs --tls-key (REGISTRY_TLS_KEY): give both for HTTPS, or neither"
            ),
            (None, Some(_)) => anyhow::bail!(
                "--tls-key (REGISTRY_TLS_KEY) needs --tls-cert (REGISTRY_TLS_CERT): give both for HTTPS, or neither"
            ),
        }
    }

    /// The timeout flags.
    pub fn timeouts(&self) -> limits::Timeouts {
        limits::Timeouts::from_flags(self.header_timeout, self.body_timeout, self.idle_timeout, self.send_timeout)
    }

    /// The access-control flags.
    pub fn auth_files(&self) -> access::AuthFiles {
        access::AuthFiles {
            htpasswd: self.htpasswd.clone(),
            policy: self.access.clone(),
            token_key: self.token_key.clone(),
            service: self.auth_service.clone(),
            realm: self.auth_realm.clone(),
        }
    }
}

fn main() -> std::process::ExitCode {
    // wasmtime builds an error value in every store drop; with library
    // backtraces on (a developer's RUST_BACKTRACE=1) each one captures a
    // backtrace, which costs ~5% of a small request. Panics keep theirs.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let mut args = match config::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("registry-host: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(e) = log_level::init(args.log_format, &args.log_level) {
        eprintln!("registry-host: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    args.gc.settle();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = match args.command {
        Some(Command::Gc { dry_run }) => runtime.block_on(gc::command(&args, dry_run)),
        None => runtime.block_on(server::run(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registry-host: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

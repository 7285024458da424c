//! `registry-host`: serves the registry component over HTTP with its storage
//! contract implemented on the local filesystem.

mod bindings;
mod engine;
mod server;
mod state;
mod storage;
mod storage_impl;

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// An OCI container registry running as a WebAssembly component.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "REGISTRY_LISTEN", default_value = "0.0.0.0:5080")]
    pub listen: SocketAddr,

    /// Directory holding blobs, metadata and uploads (created if missing).
    #[arg(long, env = "REGISTRY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Run this registry component (.wasm) instead of the one built in.
    #[arg(long, env = "REGISTRY_COMPONENT")]
    pub component: Option<PathBuf>,

    /// Refuse DELETE requests (405 UNSUPPORTED).
    #[arg(long, env = "REGISTRY_DISABLE_DELETE")]
    pub disable_delete: bool,
}

fn main() -> std::process::ExitCode {
    // wasmtime builds an error value in every store drop; with library
    // backtraces on (a developer's RUST_BACKTRACE=1) each one captures a
    // backtrace, which costs ~5% of a small request. Panics keep theirs.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REGISTRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(server::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registry-host: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! The wasmtime engine and the pre-instantiated registry component.

use crate::state::HostState;
use anyhow::Context;
use sha2::{Digest, Sha256};
use std::path::Path;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// The registry component built by `build.rs` for wasm32-wasip2.
static BUILTIN_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/registry_component.wasm"));

/// Builds the engine: pooling allocator (instances are created per request,
/// so slots are reused rather than mapped afresh), keeping a few MiB of each
/// slot resident to skip page faults on reuse.
fn engine() -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(1000)
        .total_memories(1000)
        .total_tables(1000)
        .max_memory_size(256 << 20)
        .linear_memory_keep_resident(4 << 20)
        .table_keep_resident(1 << 20)
        // Reset only the pages a request actually dirtied (Linux ≥ 6.7)
        // instead of memset-ing the whole resident prefix on every drop.
        .pagemap_scan(Enabled::Auto)
        // Every slot ever used keeps its resident memory: cap the warm ones
        // so that a burst of concurrent requests does not pin RSS.
        .max_unused_warm_slots(16);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // For `perf`: names the component's functions in /tmp/perf-<pid>.map.
    if std::env::var_os("REGISTRY_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))
}

/// Compiles the component, or loads the machine code a previous start cached
/// in `<data>/cache` (keyed by the wasm's SHA-256), so that restarts do not
/// pay for compilation again. A cache file from another wasmtime build or
/// engine configuration fails to deserialize and is replaced.
fn load_component(engine: &Engine, wasm: &[u8], cache_dir: &Path) -> anyhow::Result<Component> {
    let key = hex::encode(Sha256::digest(wasm));
    let cached = cache_dir.join(format!("registry-{}.cwasm", &key[..32]));
    if cached.exists() {
        // SAFETY: only `Component::serialize` writes this file, into the
        // registry's own data directory; deserialize checks that it matches
        // this wasmtime version and engine configuration.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => return Ok(component),
            Err(e) => tracing::warn!("ignoring cached component {}: {e:#}", cached.display()),
        }
    }
    let component = Component::new(engine, wasm).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    if let Ok(bytes) = component.serialize() {
        let _ = std::fs::create_dir_all(cache_dir);
        let tmp = cache_dir.join(format!(".{}.tmp", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &cached);
        }
    }
    Ok(component)
}

/// Compiles and links the component once; each request instantiates `pre`.
pub fn prepare(component_path: Option<&Path>, cache_dir: &Path) -> anyhow::Result<ProxyPre<HostState>> {
    let engine = engine()?;
    let wasm = match component_path {
        Some(path) => std::fs::read(path).with_context(|| format!("reading component {}", path.display()))?,
        None => BUILTIN_COMPONENT.to_vec(),
    };
    let component = load_component(&engine, &wasm, cache_dir)?;
    let mut linker = Linker::<HostState>::new(&engine);
    let link = |r: wasmtime::Result<()>| r.map_err(|e| anyhow::anyhow!("{e:#}"));
    link(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
    link(wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))?;
    link(crate::bindings::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))?;
    link(crate::bindings::blobs::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))?;
    link(crate::bindings::kv::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s))?;
    let pre = linker.instantiate_pre(&component).map_err(|e| anyhow::anyhow!("linking the component: {e:#}"))?;
    ProxyPre::new(pre).map_err(|e| anyhow::anyhow!("the component is not a wasi:http proxy: {e:#}"))
}

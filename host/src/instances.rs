//! Component instances for requests: a fresh one per request (the default,
//! and the isolation the registry promises), or, with `--instance-reuse N`,
//! instances kept between requests, each serving up to N one after another.
//!
//! A kept instance is only ever reused with the settings (the component's
//! environment) it was made with: wasi-libc reads the environment once, so
//! after a SIGHUP changes them, older instances are dropped instead. An
//! instance whose call failed (a trap, or no response) is dropped too. What
//! is per request in the store (the request's writes, the wasi-http context,
//! the request id of its stderr lines) is replaced before each call; the
//! component itself keeps nothing between calls (no statics), which the
//! end-to-end tests of reuse check across repositories and users.

use crate::state::{HostState, RegistryHooks};
use crate::storage::RequestWrites;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime::Store;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::WasiHttpCtx;

/// Most instances kept idle at once: enough for the connections a busy
/// server keeps in flight on a few cores, few enough that their memories
/// (each keeps what its largest request grew it to) stay small.
const MAX_IDLE: usize = 32;

/// Where a request's instance comes from.
pub struct Instances {
    pre: ProxyPre<HostState>,
    /// Requests one instance serves at most; 1 is a fresh one per request.
    reuse: usize,
    idle: Mutex<Vec<Warm>>,
}

/// A store and its instance, between two requests.
pub struct Warm {
    pub store: Store<HostState>,
    pub proxy: Proxy,
    /// The environment the instance was made with.
    env: Arc<Vec<(String, String)>>,
    /// The request id its stderr lines carry, set per request.
    stderr_id: Option<crate::request_log::StderrId>,
    served: usize,
}

impl Instances {
    /// `reuse` is `--instance-reuse` (0 and 1 both mean no reuse).
    pub fn new(pre: ProxyPre<HostState>, reuse: usize) -> Self {
        Self { pre, reuse: reuse.max(1), idle: Mutex::new(Vec::new()) }
    }

    /// Whether instances are kept between requests.
    pub fn reuses(&self) -> bool {
        self.reuse > 1
    }

    /// An instance ready for a request with `env`, its per-request state
    /// fresh: a kept one made with the same `env`, or a new one.
    pub async fn take(
        &self,
        storage: &crate::backend::Backend,
        env: &Arc<Vec<(String, String)>>,
        request_id: Option<&str>,
        writes: Arc<RequestWrites>,
    ) -> anyhow::Result<Warm> {
        if let Some(mut warm) = self.kept(env) {
            let state = warm.store.data_mut();
            state.writes = writes;
            state.http = WasiHttpCtx::new();
            state.hooks = RegistryHooks;
            if let (Some(cell), Some(id)) = (&warm.stderr_id, request_id) {
                cell.set(id);
            }
            return Ok(warm);
        }
        let mut wasi = WasiCtx::builder();
        let stderr_id = match request_id {
            Some(id) => {
                let (stderr, cell) = crate::request_log::GuestStderr::new(id);
                wasi.stderr(stderr);
                Some(cell)
            }
            None => {
                wasi.inherit_stderr();
                None
            }
        };
        let wasi = wasi.envs(env).build();
        let state = HostState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            storage: storage.clone(),
            hooks: RegistryHooks,
            writes,
        };
        let mut store = Store::new(self.pre.engine(), state);
        let instantiating = Instant::now();
        let proxy = self.pre.instantiate_async(&mut store).await.map_err(|e| anyhow::anyhow!("{e:#}"))?;
        crate::metrics::instantiated(instantiating.elapsed());
        Ok(Warm { store, proxy, env: env.clone(), stderr_id, served: 0 })
    }

    /// Keeps `warm` for a later request once it served one without failing,
    /// unless it served its share. (One made with settings a reload has
    /// changed since goes at the next `take`.)
    pub fn give_back(&self, mut warm: Warm) {
        warm.served += 1;
        if warm.served >= self.reuse {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(warm);
        }
    }

    /// A kept instance made with `env`; those made with other settings go.
    fn kept(&self, env: &Arc<Vec<(String, String)>>) -> Option<Warm> {
        if !self.reuses() {
            return None;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.retain(|warm| same(&warm.env, env));
        idle.pop()
    }
}

/// Whether two environments are the same: a reload of the TLS files alone
/// makes a new one with the same variables.
fn same(a: &Arc<Vec<(String, String)>>, b: &Arc<Vec<(String, String)>>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

//! Shared fixtures of the end-to-end suite: a real registry process on an ephemeral
//! port with a throw-away data directory, an HTTP client for it, and small helpers
//! (digests, content generation, pushes, error-body checks) that the per-area modules
//! build on.
//!
//! The server is always a separate process, never an in-process router: what is tested
//! is exactly what users run. `REGISTRY_TEST_DEPLOYMENT` picks which (see
//! [`Deployment`]):
//!
//! - `host` (the default): the `registry-host` binary, found at `$REGISTRY_HOST_BIN`
//!   (the test script sets it), else in the main workspace's
//!   `$CARGO_TARGET_DIR/release/` or `target/release/`;
//! - `wasmtime`: `wasmtime serve -S cli --dir DATA::/data registry.wasm`, with the
//!   wasmtime CLI at `$WASMTIME_BIN` (else `wasmtime` on the `PATH`);
//! - `jco`: `jco serve --jco-import registry-wasm/jco-preopen.mjs registry.wasm` on
//!   Node.js, with jco at `$JCO_BIN` (else `jco` on the `PATH`).
//!
//! `registry.wasm` is `$REGISTRY_WASM`, else `<target>/release/registry.wasm` as above.
//!
//! Setting `REGISTRY_TEST_URL` (for instance `http://127.0.0.1:5000`) points the
//! HTTP-level tests at an already running registry instead, which is how the suite
//! itself can be checked against a reference implementation. Tests always use fresh
//! random content and their own repository names, so they do not depend on an empty
//! registry.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// The main workspace's build directory: `$CARGO_TARGET_DIR`, else `target/`.
fn workspace_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

/// The root of the main workspace (the parent of `tests/`).
fn repo_root() -> PathBuf {
    tests_dir().join("..")
}

/// The `tests/` crate's directory. `cargo test` names it when it runs the
/// tests; that is preferred over the path compiled in, because a build cache
/// shared between checkouts may hold a binary built in another checkout.
pub fn tests_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Path of the `registry-host` binary under test.
pub fn registry_host_bin() -> PathBuf {
    let path = std::env::var_os("REGISTRY_HOST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_target_dir().join("release/registry-host"));
    assert!(
        path.exists(),
        "no registry-host at {}: build it with `cargo build --release -p registry-host` \
         (or run scripts/test.sh), or set REGISTRY_HOST_BIN",
        path.display()
    );
    path
}

/// Path of the composed `registry.wasm` under test (deployments `wasmtime`, `jco`).
pub fn registry_wasm() -> PathBuf {
    let path = std::env::var_os("REGISTRY_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_target_dir().join("release/registry.wasm"));
    assert!(
        path.exists(),
        "no registry.wasm at {}: build it with `cargo build --release -p registry-wasm` \
         (or run scripts/test.sh), or set REGISTRY_WASM",
        path.display()
    );
    path
}

/// `$var` if set, else `default` (looked up on the `PATH` when spawned).
fn tool(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
}

/// Which runtime serves the registry under test: `REGISTRY_TEST_DEPLOYMENT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployment {
    /// `registry-host`: our native host (wasmtime embedded, storage on the filesystem).
    Host,
    /// `wasmtime serve` running the composed `registry.wasm` (storage-fs on
    /// wasi:filesystem).
    Wasmtime,
    /// `jco serve` running the composed `registry.wasm` on Node.js with the preview2
    /// shims.
    Jco,
}

impl Deployment {
    /// The deployment this run tests: `REGISTRY_TEST_DEPLOYMENT` (`host`, `wasmtime`
    /// or `jco`), `host` when unset. Any other value fails the test.
    pub fn current() -> Self {
        match std::env::var("REGISTRY_TEST_DEPLOYMENT").as_deref() {
            Err(std::env::VarError::NotPresent) | Ok("") | Ok("host") => Self::Host,
            Ok("wasmtime") => Self::Wasmtime,
            Ok("jco") => Self::Jco,
            other => {
                panic!("REGISTRY_TEST_DEPLOYMENT={other:?}: expected `host`, `wasmtime` or `jco`")
            }
        }
    }

    /// The name `REGISTRY_TEST_DEPLOYMENT` spells it with.
    pub fn name(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Wasmtime => "wasmtime",
            Self::Jco => "jco",
        }
    }

    /// The prefix of the server's forwarded output lines.
    fn log_prefix(self) -> &'static str {
        match self {
            Self::Host => "[registry-host]",
            Self::Wasmtime => "[wasmtime]",
            Self::Jco => "[jco]",
        }
    }

    /// How long the server may take to report that it listens: wasmtime compiles
    /// registry.wasm on a cold cache, jco transpiles it to JavaScript at every start.
    fn startup_timeout(self) -> Duration {
        match self {
            Self::Host => Duration::from_secs(60),
            Self::Wasmtime | Self::Jco => Duration::from_secs(120),
        }
    }
}

/// Whether a test about the `registry-host` binary itself (signals, flags, startup
/// errors) applies to this run. When it does not (another deployment, or an external
/// registry), prints why, so that the test's "ok" is not mistaken for a pass; the
/// test script leaves such tests out by name (`--skip host::`) instead.
pub fn host_binary_under_test(test: &str) -> bool {
    if external_registry() {
        eprintln!("{test}: NOT APPLICABLE against REGISTRY_TEST_URL: it tests the registry-host binary");
        return false;
    }
    let deployment = Deployment::current();
    if deployment != Deployment::Host {
        eprintln!(
            "{test}: NOT APPLICABLE to REGISTRY_TEST_DEPLOYMENT={}: it tests the registry-host \
             binary (scripts/test.sh passes `--skip host::` for the other deployments)",
            deployment.name()
        );
        return false;
    }
    true
}

/// Header every response of the registry carries, errors included.
pub const API_VERSION_HEADER: &str = "Docker-Distribution-Api-Version";

/// Media types used by the tests.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

    /// What a client that understands every manifest kind sends as `Accept`.
    pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
        application/vnd.oci.image.index.v1+json, \
        application/vnd.docker.distribution.manifest.v2+json, \
        application/vnd.docker.distribution.manifest.list.v2+json";
}

/// A running registry under test. Dropping it kills the server process and its
/// children (jco runs the server in a child `node`), see [`kill_tree`].
pub struct RegistryServer {
    /// `None` when the suite runs against an external registry (`REGISTRY_TEST_URL`).
    child: Option<Child>,
    /// Forward the server's stderr and stdout to the test's stderr until the process
    /// ends.
    forwarders: Vec<JoinHandle<()>>,
    /// `http://IP:PORT`, without a trailing slash.
    base_url: String,
    /// `IP:PORT`, the registry host as image references spell it.
    host_port: String,
    client: reqwest::Client,
    /// The server's data directory, inside `_scratch`.
    data_dir: Option<PathBuf>,
    /// Keeps the data directory (and jco's transpiled code) alive as long as the
    /// server; removed on drop.
    _scratch: Option<TempDir>,
}

impl RegistryServer {
    /// Starts the registry of this run's [`Deployment`] on `127.0.0.1` (an ephemeral
    /// port) with a fresh temporary data directory and waits for it to listen.
    ///
    /// Blocks the calling thread while the server starts, which is harmless here: no
    /// other request of the test is in flight yet.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts `registry-host` (whatever the deployment) on `data_dir`, which the
    /// caller keeps: for tests that restart it on the same data.
    pub fn start_host_on(data_dir: &Path) -> Self {
        Self::spawned(spawn_host(data_dir, &[]), data_dir.to_path_buf(), None)
    }

    /// A server spawned and listening at `addr`.
    fn spawned(
        (child, forwarders, addr): (Child, Vec<JoinHandle<()>>, String),
        data_dir: PathBuf,
        scratch: Option<TempDir>,
    ) -> Self {
        Self {
            child: Some(child),
            forwarders,
            base_url: format!("http://{addr}"),
            host_port: addr,
            client: http_client(),
            data_dir: Some(data_dir),
            _scratch: scratch,
        }
    }

    /// Like [`RegistryServer::start`], with `extra` `registry-host` flags (such as
    /// `--disable-delete`) after the listen address and data directory. For the
    /// deployments of registry.wasm the flags become what the component reads
    /// (`--disable-delete`: `REGISTRY_DELETE_ENABLED=false`); a flag without such an
    /// equivalent fails the test. Against an external registry (`REGISTRY_TEST_URL`)
    /// the flags cannot apply: tests that need them check [`external_registry`]
    /// first.
    pub fn start_with_args(extra: &[&str]) -> Self {
        let deployment = Deployment::current();
        if let Ok(url) = std::env::var("REGISTRY_TEST_URL") {
            let base_url = url.trim_end_matches('/').to_string();
            let host_port =
                base_url.split_once("://").map(|(_, rest)| rest.to_string()).unwrap_or_else(|| base_url.clone());
            return Self {
                child: None,
                forwarders: Vec::new(),
                base_url,
                host_port,
                client: http_client(),
                data_dir: None,
                _scratch: None,
            };
        }

        let scratch = tempfile::Builder::new().prefix("registry-e2e.").tempdir().expect("create a temporary directory");
        let data_dir = scratch.path().join("data");
        std::fs::create_dir(&data_dir).expect("create the data directory");

        let spawned = match deployment {
            Deployment::Host => spawn_host(&data_dir, extra),
            Deployment::Wasmtime => {
                let mut command = Command::new(tool("WASMTIME_BIN", "wasmtime"));
                command
                    .arg("serve")
                    // wasi:cli (environment, stdio, exit) next to wasi:http.
                    .args(["-S", "cli"])
                    .arg("--dir")
                    .arg(format!("{}::/data", data_dir.display()))
                    .args(["--addr", "127.0.0.1:0"]);
                for (name, value) in component_env(deployment, extra) {
                    command.arg("--env").arg(format!("{name}={value}"));
                }
                command.arg(registry_wasm());
                spawn_and_wait_for_listening(deployment, command).unwrap_or_else(|failure| failure.panic(deployment))
            }
            Deployment::Jco => start_jco(scratch.path(), &data_dir, extra),
        };
        Self::spawned(spawned, data_dir, Some(scratch))
    }

    /// `http://IP:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `IP:PORT`, for image references such as `127.0.0.1:PORT/e2e/busybox:v1`.
    pub fn host_port(&self) -> &str {
        &self.host_port
    }

    /// The server's URL for `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    /// A `Location` header value made absolute: the spec allows relative ones.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            self.url(location)
        } else {
            panic!("Location {location:?} is neither absolute nor rooted at /");
        }
    }

    /// The server's data directory; `None` against an external registry.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// An HTTP client that never goes through a proxy.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `signal` (a name such as `TERM`) to the server and waits up to `timeout`
    /// for it to exit. Returns its exit status, or `None` if it is still running.
    pub fn signal_and_wait(&mut self, signal: &str, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("a spawned server");
        send_signal(child.id(), signal);
        let status = wait_with_timeout(child, timeout);
        if status.is_some() {
            self.child = None;
            for forwarder in self.forwarders.drain(..) {
                let _ = forwarder.join();
            }
        }
        status
    }

    /// `GET /v2/<repo>/blobs/<digest>`, whatever the answer.
    pub async fn get_blob(&self, repo: &str, digest: &str) -> Response {
        self.client.get(self.url(&format!("/v2/{repo}/blobs/{digest}"))).send().await.expect("GET blob")
    }

    /// Starts an upload session in `repo` and returns its absolute upload URL.
    pub async fn start_upload(&self, repo: &str) -> String {
        let resp = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .header(CONTENT_LENGTH, "0")
            .send()
            .await
            .expect("POST upload");
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "POST /v2/{repo}/blobs/uploads/");
        self.resolve(header(&resp, LOCATION.as_str()))
    }

    /// Pushes `data` as a blob of `repo` (POST, then PUT `?digest=` with the body)
    /// and returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256_digest(data);
        let location = self.start_upload(repo).await;
        let resp = self
            .client
            .put(with_query(&location, "digest", &digest))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("PUT upload");
        assert_eq!(resp.status(), StatusCode::CREATED, "PUT blob {digest} into {repo}");
        digest
    }

    /// Pushes manifest `body` with `media_type` to `repo` under `reference` (a tag or a
    /// digest), asserts 201, and returns the digest the registry reported.
    pub async fn push_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> String {
        let resp = self.put_manifest(repo, reference, media_type, body.to_vec()).await;
        let status = resp.status();
        let digest = resp.headers().get("Docker-Content-Digest").map(|v| v.to_str().unwrap().to_string());
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::CREATED, "PUT manifest {repo}:{reference}: {text}");
        let digest = digest.expect("Docker-Content-Digest on a manifest PUT");
        assert_eq!(digest, sha256_digest(body));
        digest
    }

    /// `PUT /v2/<repo>/manifests/<reference>` without any assertion.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.client
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header(CONTENT_TYPE, media_type)
            .body(body)
            .send()
            .await
            .expect("PUT manifest")
    }

    /// Pushes a config blob and `layer_count` random layers to `repo` and returns an
    /// image whose manifest (OCI or Docker flavour) refers to them.
    pub async fn push_image_blobs(&self, repo: &str, layer_count: usize, docker: bool) -> TestImage {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"created":"{}"}}"#,
            unique_id()
        )
        .into_bytes();
        let config = Descriptor {
            media_type: if docker { media::DOCKER_CONFIG } else { media::OCI_CONFIG }.into(),
            digest: self.push_blob(repo, &config).await,
            size: config.len() as u64,
        };
        let mut layers = Vec::new();
        for i in 0..layer_count {
            let data = random_bytes(1000 + i * 4096);
            layers.push(Descriptor {
                media_type: if docker { media::DOCKER_LAYER } else { media::OCI_LAYER }.into(),
                digest: self.push_blob(repo, &data).await,
                size: data.len() as u64,
            });
        }
        TestImage { config, layers, docker }
    }

    /// Pushes a small OCI image (a config and one layer) to `repo` and tags it with
    /// each of `tags` (one manifest PUT per tag; none when `tags` is empty, then the
    /// manifest is pushed by digest). Returns the manifest's digest.
    pub async fn push_image(&self, repo: &str, tags: &[&str]) -> String {
        let image = self.push_image_blobs(repo, 1, false).await;
        let body = image.manifest();
        if tags.is_empty() {
            let digest = sha256_digest(&body);
            return self.push_manifest(repo, &digest, media::OCI_MANIFEST, &body).await;
        }
        let mut digest = String::new();
        for tag in tags {
            digest = self.push_manifest(repo, tag, media::OCI_MANIFEST, &body).await;
        }
        digest
    }

    /// `GET path` (which starts with `/`), asserting 200; returns the headers and
    /// the body parsed as JSON.
    pub async fn get_json(&self, path: &str) -> (HeaderMap, Value) {
        let resp = self.client.get(self.url(path)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("read the body");
        assert_eq!(status, StatusCode::OK, "GET {path}: {}", String::from_utf8_lossy(&body));
        assert_api_version(&headers);
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("GET {path}: body is not JSON ({e}): {}", String::from_utf8_lossy(&body)));
        (headers, json)
    }

    /// Kills the server now (as `Drop` would) and waits for its output to drain.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(&mut child);
        }
        for forwarder in self.forwarders.drain(..) {
            let _ = forwarder.join();
        }
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The environment of registry.wasm for `extra` registry-host flags: the component
/// reads `REGISTRY_DELETE_ENABLED` (`false` answers DELETE with 405, as
/// `--disable-delete` does). Always set, so that nothing leaks in from the test's own
/// environment (jco hands the component the whole environment of `node`).
fn component_env(deployment: Deployment, extra: &[&str]) -> Vec<(&'static str, String)> {
    let mut delete_enabled = true;
    for flag in extra {
        match *flag {
            "--disable-delete" => delete_enabled = false,
            other => panic!(
                "registry-host flag {other:?} has no equivalent for registry.wasm \
                 (REGISTRY_TEST_DEPLOYMENT={})",
                deployment.name()
            ),
        }
    }
    vec![("REGISTRY_DELETE_ENABLED", delete_enabled.to_string())]
}

/// Starts `jco serve` on a free port of 127.0.0.1, transpiling into `scratch/jco`
/// (inside the test's temporary directory, so nothing is left behind) and
/// preopening `data_dir` as `/data` with registry-wasm/jco-preopen.mjs.
///
/// jco prints the port it was given, not the one it bound (`--port 0` prints 0), so
/// the port is chosen here: one the kernel just handed out and that is free again.
/// Another process may take it before jco binds it; jco then exits with
/// `EADDRINUSE`, and another port is tried.
fn start_jco(scratch: &Path, data_dir: &Path, extra: &[&str]) -> (Child, Vec<JoinHandle<()>>, String) {
    const ATTEMPTS: usize = 5;
    let deployment = Deployment::Jco;
    let env = component_env(deployment, extra);
    let preopen = repo_root().join("registry-wasm/jco-preopen.mjs");
    let wasm = registry_wasm();
    for attempt in 1..=ATTEMPTS {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("find a free port")
            .port();
        let mut command = Command::new(tool("JCO_BIN", "jco"));
        command
            .arg("serve")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--jco-dir")
            .arg(scratch.join("jco"))
            .arg("--jco-import")
            .arg(&preopen)
            .arg(&wasm)
            .env("REGISTRY_DATA_DIR", data_dir);
        for (name, value) in &env {
            command.env(name, value);
        }
        match spawn_and_wait_for_listening(deployment, command) {
            Ok(started) => return started,
            Err(failure) if attempt < ATTEMPTS && failure.output.iter().any(|l| l.contains("EADDRINUSE")) => {
                eprintln!("[jco] port {port} was taken before jco bound it: trying another");
            }
            Err(failure) => failure.panic(deployment),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// A server that did not come up: what happened, and everything it printed.
pub struct StartFailure {
    what: String,
    output: Vec<String>,
}

impl StartFailure {
    fn panic(self, deployment: Deployment) -> ! {
        panic!(
            "{} (REGISTRY_TEST_DEPLOYMENT={}); its output:\n{}",
            self.what,
            deployment.name(),
            self.output.join("\n")
        )
    }
}

/// The `IP:PORT` in `line` if it is the line with which `deployment` reports that it
/// accepts connections:
///
/// - registry-host: `registry-host listening on http://127.0.0.1:PORT/`
/// - wasmtime serve: `Serving HTTP on http://127.0.0.1:PORT/`
/// - jco serve: `Server listening @ 127.0.0.1:PORT...`
fn listening_addr(deployment: Deployment, line: &str) -> Option<String> {
    let line = line.trim();
    let addr = match deployment {
        Deployment::Host => line.strip_prefix("registry-host listening on http://")?.trim_end_matches('/'),
        Deployment::Wasmtime => line.strip_prefix("Serving HTTP on http://")?.trim_end_matches('/'),
        Deployment::Jco => line.strip_prefix("Server listening @ ")?.trim_end_matches('.'),
    };
    assert!(addr.parse::<std::net::SocketAddr>().is_ok(), "cannot parse the address in {line:?}");
    Some(addr.to_string())
}

/// Spawns `registry-host` on `data_dir` with `extra` flags and waits for it to listen.
fn spawn_host(data_dir: &Path, extra: &[&str]) -> (Child, Vec<JoinHandle<()>>, String) {
    let mut command = Command::new(registry_host_bin());
    command.arg("--listen").arg("127.0.0.1:0").arg("--data-dir").arg(data_dir).args(extra);
    spawn_and_wait_for_listening(Deployment::Host, command).unwrap_or_else(|failure| failure.panic(Deployment::Host))
}

/// Spawns `command` (a server of `deployment`) with its output piped and waits for
/// its listening line. Returns the child, the threads that keep forwarding its output
/// (each line prefixed `[registry-host]`, `[wasmtime]` or `[jco]`), and the bound
/// `IP:PORT`.
///
/// Fails with everything the process printed if it exits first or stays silent for
/// the deployment's startup timeout (the process is then killed).
pub fn spawn_and_wait_for_listening(
    deployment: Deployment,
    mut command: Command,
) -> Result<(Child, Vec<JoinHandle<()>>, String), StartFailure> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let program = command.get_program().to_owned();
    let mut child = command.spawn().unwrap_or_else(|e| {
        panic!("spawn {} (REGISTRY_TEST_DEPLOYMENT={}): {e}", program.to_string_lossy(), deployment.name())
    });
    let (tx, rx) = mpsc::channel::<String>();
    // Plain threads rather than tasks: they must outlive nothing but the process, and
    // std threads inherit the test's output capture, so the forwarded lines show up
    // in the report of the test that started this server when it fails.
    let forwarders = vec![
        forward_lines(deployment, child.stderr.take().expect("piped stderr"), tx.clone()),
        forward_lines(deployment, child.stdout.take().expect("piped stdout"), tx),
    ];

    let timeout = deployment.startup_timeout();
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = listening_addr(deployment, &line) {
                    return Ok((child, forwarders, addr));
                }
                seen.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Both pipes closed: the process (and, for jco, its child) is gone.
                let status = child.wait().ok();
                kill_tree(&mut child);
                for forwarder in forwarders {
                    let _ = forwarder.join();
                }
                return Err(StartFailure {
                    what: format!("{} exited ({status:?}) before listening", program.to_string_lossy()),
                    output: seen,
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                kill_tree(&mut child);
                for forwarder in forwarders {
                    let _ = forwarder.join();
                }
                return Err(StartFailure {
                    what: format!("{} printed no listening line within {timeout:?}", program.to_string_lossy()),
                    output: seen,
                });
            }
        }
    }
}

/// Forwards each line of `pipe` to the test's stderr, prefixed for `deployment`, and
/// sends it to `tx` as long as someone listens.
fn forward_lines(deployment: Deployment, pipe: impl Read + Send + 'static, tx: mpsc::Sender<String>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            eprintln!("{} {line}", deployment.log_prefix());
            if let Some(sender) = &tx {
                if sender.send(line).is_err() {
                    tx = None;
                }
            }
        }
    })
}

/// Kills `child` and every process below it (SIGKILL), then reaps it. `jco serve`
/// runs the server in a child `node` that would outlive jco (and keep the output
/// pipes open) if only jco were killed. The children are found in
/// `/proc/PID/task/TID/children` and killed first, before they can be reparented.
/// They share the test's process group, so an interrupted test run (Ctrl-C) still
/// stops them all.
pub fn kill_tree(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let mut pids = Vec::new();
        descendants(child.id(), &mut pids);
        // Deepest first; a process that has already gone is no error.
        for pid in pids.iter().rev() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Appends the descendants of `pid` to `out`, parents before their children.
fn descendants(pid: u32, out: &mut Vec<u32>) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            out.push(child);
            descendants(child, out);
        }
    }
}

/// Sends a signal by name through `kill(1)` (the suite needs no libc binding).
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Polls `child` until it exits or `timeout` passes.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes ring the process-wide rustls crypto provider. reqwest is built with rustls
/// but without a default provider (see host/Cargo.toml): plain HTTP never uses it,
/// yet building a client needs one. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        // Generous, so that a hung request fails the test instead of hanging the run.
        .timeout(Duration::from_secs(300))
        .build()
        .expect("build the HTTP client")
}

/// A content descriptor as manifests spell it.
#[derive(Clone, Debug)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    /// The descriptor of `body` with `media_type`.
    pub fn of(media_type: &str, body: &[u8]) -> Self {
        Self { media_type: media_type.into(), digest: sha256_digest(body), size: body.len() as u64 }
    }

    fn json(&self) -> String {
        format!(r#"{{"mediaType": "{}", "digest": "{}", "size": {}}}"#, self.media_type, self.digest, self.size)
    }
}

/// Blobs pushed for an image, from which manifests are written.
#[derive(Clone, Debug)]
pub struct TestImage {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    pub docker: bool,
}

impl TestImage {
    /// The manifest's media type.
    pub fn media_type(&self) -> &'static str {
        if self.docker {
            media::DOCKER_MANIFEST
        } else {
            media::OCI_MANIFEST
        }
    }

    /// A manifest for this image, written by hand with deliberately unusual
    /// formatting (key order, indentation, spaces) so that byte-exact storage shows.
    pub fn manifest(&self) -> Vec<u8> {
        self.manifest_with_extra("")
    }

    /// Like [`TestImage::manifest`], with `extra` (such as `, "annotations": {...}`)
    /// inserted before the closing brace.
    pub fn manifest_with_extra(&self, extra: &str) -> Vec<u8> {
        let layers: Vec<String> = self.layers.iter().map(|l| format!("\n    {}", l.json())).collect();
        format!(
            "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{}\",\n  \"config\":   {},\n  \"layers\": [{}\n  ]{}\n}}\n",
            self.media_type(),
            self.config.json(),
            layers.join(","),
            extra
        )
        .into_bytes()
    }
}

/// An OCI index (or, with `docker`, a Docker manifest list) over `children`.
pub fn index_of(children: &[Descriptor], docker: bool) -> Vec<u8> {
    let media_type = if docker { media::DOCKER_MANIFEST_LIST } else { media::OCI_INDEX };
    let entries: Vec<String> = children
        .iter()
        .map(|c| {
            format!(
                r#"{{"mediaType":"{}","size":{},"digest":"{}","platform":{{"architecture":"amd64","os":"linux"}}}}"#,
                c.media_type, c.size, c.digest
            )
        })
        .collect();
    format!(r#"{{"schemaVersion":2,"mediaType":"{media_type}","manifests":[{}]}}"#, entries.join(",")).into_bytes()
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A digest of random content, which no registry holds.
pub fn absent_digest() -> String {
    sha256_digest(&random_bytes(64))
}

/// A string unique to this call within the run and, with high probability, across
/// runs (so that tests against an external registry never meet old content).
pub fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{}-{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A xorshift64* generator: cheap, dependency-free pseudo-random content.
pub struct XorShift(u64);

impl XorShift {
    /// A generator seeded from `seed` (never the all-zero state).
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    /// A generator with a fresh seed.
    pub fn fresh() -> Self {
        let mut h = Sha256::new();
        h.update(unique_id().as_bytes());
        let seed = u64::from_le_bytes(h.finalize()[..8].try_into().unwrap());
        Self::new(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `len` fresh random bytes.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    XorShift::fresh().fill(&mut buf);
    buf
}

/// `total` bytes from `seed`, as a stream of `chunk`-sized pieces: a request body
/// that is never held in memory at once (sent with chunked transfer encoding).
pub fn seeded_stream(
    seed: u64,
    total: u64,
    chunk: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    stream::unfold((XorShift::new(seed), total), move |(mut rng, left)| async move {
        if left == 0 {
            return None;
        }
        let n = (chunk as u64).min(left) as usize;
        let mut buf = vec![0; n];
        rng.fill(&mut buf);
        Some((Ok(Bytes::from(buf)), (rng, left - n as u64)))
    })
}

/// The SHA-256 digest of what [`seeded_stream`] yields, computed without the server.
pub fn seeded_digest(seed: u64, total: u64, chunk: usize) -> String {
    let mut rng = XorShift::new(seed);
    let mut hasher = Sha256::new();
    let mut left = total;
    let mut buf = vec![0; chunk];
    while left > 0 {
        let n = (chunk as u64).min(left) as usize;
        rng.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Whether the suite runs against an external registry (`REGISTRY_TEST_URL`), whose
/// flags and contents the tests do not control.
pub fn external_registry() -> bool {
    std::env::var_os("REGISTRY_TEST_URL").is_some()
}

/// The target of a `Link` header for the next page, which must have exactly the
/// RFC 5988 form the spec shows: `<URL>; rel="next"`. `None` without a `Link`.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("Link")?.to_str().expect("ASCII Link header");
    let target = value
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix(">; rel=\"next\""))
        .unwrap_or_else(|| panic!("Link {value:?} is not `<URL>; rel=\"next\"`"));
    Some(target.to_string())
}

/// The value of query parameter `key` in `url` (percent-decoded), if present.
pub fn query_param(url: &str, key: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| percent_decode(v))
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+`).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 after percent-decoding")
}

/// The strings of the array `json[key]`; a missing or `null` key is an empty list.
pub fn string_list(json: &Value, key: &str) -> Vec<String> {
    match &json[key] {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_else(|| panic!("non-string in {key}: {json}")).to_string())
            .collect(),
        other => panic!("{key} is not an array: {other}"),
    }
}

/// `url` with `key=value` appended to its query (`value` must be URL-safe, as digests
/// are).
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// The value of header `name`, which must be present and ASCII.
pub fn header<'a>(resp: &'a Response, name: &str) -> &'a str {
    header_in(resp.headers(), name)
}

/// The value of header `name` in `headers`, which must be present and ASCII.
pub fn header_in<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}; headers: {headers:?}"))
        .to_str()
        .unwrap_or_else(|_| panic!("header {name} is not ASCII"))
}

/// Asserts `Docker-Distribution-Api-Version: registry/2.0`.
pub fn assert_api_version(headers: &HeaderMap) {
    assert_eq!(
        headers.get(API_VERSION_HEADER).and_then(|v| v.to_str().ok()),
        Some("registry/2.0"),
        "{API_VERSION_HEADER} header; headers: {headers:?}"
    );
}

/// The `Content-Length` header as a number.
pub fn content_length(headers: &HeaderMap) -> u64 {
    header_in(headers, CONTENT_LENGTH.as_str()).parse().expect("numeric Content-Length")
}

/// Asserts that `resp` is an OCI error: `status`, the API version header, and a JSON
/// body `{"errors":[{"code","message","detail"}, ...]}` whose first error has `code`.
/// Returns the parsed body.
pub async fn assert_error(resp: Response, status: StatusCode, code: &str) -> Value {
    let got = resp.status();
    let headers = resp.headers().clone();
    let url = resp.url().clone();
    let body = resp.bytes().await.expect("read error body");
    assert_eq!(got, status, "status for {url}; body: {}", String::from_utf8_lossy(&body));
    assert_api_version(&headers);
    assert_error_body(&body, code)
}

/// Asserts the JSON error envelope in `body` and that its first error has `code`.
pub fn assert_error_body(body: &[u8], code: &str) -> Value {
    let text = String::from_utf8_lossy(body);
    let json: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    let errors = json["errors"].as_array().unwrap_or_else(|| panic!("no \"errors\" array in {text}"));
    assert!(!errors.is_empty(), "empty \"errors\" array in {text}");
    for error in errors {
        let c = error["code"].as_str().unwrap_or_else(|| panic!("error without a code: {text}"));
        assert!(
            !c.is_empty() && c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'),
            "code {c:?} is not uppercase letters and underscores"
        );
        assert!(error["message"].is_string(), "error without a message: {text}");
        assert!(error.get("detail").is_some(), "error without a detail: {text}");
    }
    assert_eq!(errors[0]["code"], code, "error code in {text}");
    json
}

/// A response read over a raw TCP connection, for requests that an URL library
/// would normalise away (`..` segments, for instance).
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` (the path exactly as given) with an empty body over a fresh
/// connection and reads the whole response.
pub async fn raw_request(host_port: &str, method: &str, path: &str) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(host_port).await.expect("connect");
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .expect("response within 60 s")
        .expect("read response");
    parse_raw_response(&raw, method == "HEAD")
}

fn parse_raw_response(raw: &[u8], head: bool) -> RawResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head_text = std::str::from_utf8(&raw[..split]).expect("ASCII response head");
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked"));
    let body = if head {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    RawResponse { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            break;
        };
        let size_text = std::str::from_utf8(&data[..eol]).unwrap_or("0");
        let size_text = size_text.split(';').next().unwrap_or("0").trim();
        let size = usize::from_str_radix(size_text, 16).unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// Asserts a raw response is an OCI error with `status` and first error `code`.
pub fn assert_raw_error(resp: &RawResponse, status: u16, code: &str) {
    assert_eq!(resp.status, status, "status; body: {}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.header(API_VERSION_HEADER), Some("registry/2.0"), "{API_VERSION_HEADER}");
    assert_error_body(&resp.body, code);
}

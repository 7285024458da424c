//! [`RegistryServer`]: a real registry process on an ephemeral port with a throw-away
//! data directory, its HTTP client, and the pushes and fetches most tests start from.

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

use super::*;

/// A running registry under test. Dropping it kills the server process and its
/// children (jco runs the server in a child `node`), see [`kill_tree`].
pub struct RegistryServer {
    /// `None` when the suite runs against an external registry (`REGISTRY_TEST_URL`).
    child: Option<Child>,
    /// Forward the server's stderr and stdout to the test's stderr until the process
    /// ends.
    forwarders: Vec<JoinHandle<()>>,
    /// The server's output lines since it listens; `None` against an external registry.
    lines: Option<mpsc::Receiver<String>>,
    /// What the server printed before its listening line.
    startup_lines: Vec<String>,
    /// `http://IP:PORT` (`https://` for registry-host with TLS), without a trailing
    /// slash.
    base_url: String,
    /// `IP:PORT`, the registry host as image references spell it.
    host_port: String,
    client: reqwest::Client,
    /// Where the server keeps its data: a data directory (inside `_scratch`, or the
    /// caller's), or a prefix of a bucket; `None` against an external registry.
    stored: Option<StoredData>,
    /// Keeps the data directory (and jco's transpiled code) alive as long as the
    /// server; removed on drop.
    _scratch: Option<TempDir>,
    /// The access-control files of a run with `REGISTRY_TEST_AUTH` set.
    _auth: Option<AuthFiles>,
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
        Self::start_host_on_with(data_dir, &[])
    }

    /// Like [`Self::start_host_on`], with `extra` flags.
    pub fn start_host_on_with(data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawned(spawn_host(data_dir, extra), StoredData::of(Deployment::current(), data_dir), None)
    }

    /// Starts `registry-host` with its storage at `place` (an S3 bucket's prefix,
    /// which other servers may share), a fresh temporary directory for its
    /// compiled-code cache, and `extra` flags.
    pub fn start_on_s3(place: &S3Place, extra: &[&str]) -> Self {
        let scratch = tempfile::Builder::new().prefix("registry-e2e.").tempdir().expect("create a temporary directory");
        let cache_dir = scratch.path().join("data");
        let started = spawn_registry_host("127.0.0.1:0", &cache_dir, Some(place), extra);
        Self::spawned(started, Some(StoredData::S3(place.clone())), Some(scratch))
    }

    /// Starts `registry-host` (whatever the deployment) with `--listen listen`, a
    /// fresh temporary data directory and `extra` flags, talking to it with `client`:
    /// for the tests of the binary's own flags (TLS, for one).
    pub fn start_host_with(listen: &str, extra: &[&str], client: reqwest::Client) -> Self {
        Self::start_host_with_env(listen, extra, &[], client)
    }

    /// As [`Self::start_host_with`], with `env` added to registry-host's
    /// environment (a variable with an empty value is removed from it).
    pub fn start_host_with_env(listen: &str, extra: &[&str], env: &[(&str, &str)], client: reqwest::Client) -> Self {
        let scratch = tempfile::Builder::new().prefix("registry-e2e.").tempdir().expect("create a temporary directory");
        let data_dir = scratch.path().join("data");
        let stored = StoredData::of(Deployment::current(), &data_dir);
        let mut server = Self::spawned(spawn_host_on_with_env(listen, &data_dir, extra, env), stored, Some(scratch));
        server.client = client;
        server
    }

    /// A server spawned and listening.
    fn spawned(started: Started, stored: Option<StoredData>, scratch: Option<TempDir>) -> Self {
        let Started { child, forwarders, url: base_url, before, lines } = started;
        let host_port = base_url.split_once("://").expect("a URL").1.to_string();
        Self {
            child: Some(child),
            forwarders,
            lines: Some(lines),
            startup_lines: before,
            base_url,
            host_port,
            client: http_client(),
            stored,
            _scratch: scratch,
            _auth: None,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a spawned server").id()
    }

    /// Like [`RegistryServer::start`], with `extra` `registry-host` flags (such as
    /// `--disable-delete`) after the listen address and data directory. For the
    /// deployments of registry.wasm the flags become what the component reads
    /// (`--disable-delete`: `REGISTRY_DELETE_ENABLED=false`); a flag without such an
    /// equivalent fails the test. Against an external registry (`REGISTRY_TEST_URL`)
    /// the flags cannot apply: tests that need them check [`external_registry`]
    /// first.
    ///
    /// With `REGISTRY_TEST_AUTH` set (and no `--htpasswd` among `extra`), the server
    /// runs with access control on, one user who may do everything, and
    /// [`Self::client`] sends that user's Basic credentials with every request: how the
    /// test command runs the push and pull tests a second time, signed in.
    pub fn start_with_args(extra: &[&str]) -> Self {
        let auth = (std::env::var_os("REGISTRY_TEST_AUTH").is_some() && !extra.contains(&"--htpasswd"))
            .then(|| AuthFiles::new(&[(AUTH_USER.0, AUTH_USER.1, 4)], None));
        let Some(auth) = auth else { return Self::start_unchanged(extra) };
        let mut flags = auth.flags();
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut server = Self::start_unchanged(&flags);
        server.authorize(Some(&basic_auth(AUTH_USER.0, AUTH_USER.1)));
        server._auth = Some(auth);
        server
    }

    fn start_unchanged(extra: &[&str]) -> Self {
        let deployment = Deployment::current();
        if let Ok(url) = std::env::var("REGISTRY_TEST_URL") {
            let base_url = url.trim_end_matches('/').to_string();
            let host_port =
                base_url.split_once("://").map(|(_, rest)| rest.to_string()).unwrap_or_else(|| base_url.clone());
            return Self {
                child: None,
                forwarders: Vec::new(),
                lines: None,
                startup_lines: Vec::new(),
                base_url,
                host_port,
                client: http_client(),
                stored: None,
                _scratch: None,
                _auth: None,
            };
        }

        let scratch = tempfile::Builder::new().prefix("registry-e2e.").tempdir().expect("create a temporary directory");
        let data_dir = scratch.path().join("data");
        std::fs::create_dir(&data_dir).expect("create the data directory");
        let spawned = spawn_deployment(deployment, scratch.path(), &data_dir, extra);
        Self::spawned(spawned, StoredData::of(deployment, &data_dir), Some(scratch))
    }

    /// Starts the registry of this run's [`Deployment`] on `data_dir`, which the
    /// caller keeps (a small filesystem of the test's own, say).
    pub fn start_on(data_dir: &Path) -> Self {
        let scratch = tempfile::Builder::new().prefix("registry-e2e.").tempdir().expect("create a temporary directory");
        let deployment = Deployment::current();
        let spawned = spawn_deployment(deployment, scratch.path(), data_dir, &[]);
        Self::spawned(spawned, StoredData::of(deployment, data_dir), Some(scratch))
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

    /// The server's data directory; `None` where it keeps its data elsewhere (in
    /// S3, in an external registry).
    pub fn data_dir(&self) -> Option<&Path> {
        match &self.stored {
            Some(StoredData::Dir(dir)) => Some(dir),
            _ => None,
        }
    }

    /// Where the server keeps its data, to look into from outside; `None` against
    /// an external registry.
    pub fn stored(&self) -> Option<&StoredData> {
        self.stored.as_ref()
    }

    /// An HTTP client that never goes through a proxy.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// From now on, [`Self::client`] (and every helper that uses it) sends
    /// `Authorization: <value>` with each request; `None` sends none.
    pub fn authorize(&mut self, value: Option<&str>) {
        self.client = match value {
            None => http_client(),
            Some(value) => {
                let mut headers = HeaderMap::new();
                headers.insert(reqwest::header::AUTHORIZATION, value.parse().expect("a header value"));
                http_client_builder().default_headers(headers).build().expect("build the HTTP client")
            }
        };
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

    /// What the server printed before it listened (empty against an external
    /// registry).
    pub fn startup_lines(&self) -> &[String] {
        &self.startup_lines
    }

    /// The URL of `/metrics` that registry-host printed at start-up
    /// (`--metrics-listen`).
    pub fn metrics_url(&self) -> String {
        self.startup_lines
            .iter()
            .find_map(|l| l.strip_prefix("registry-host metrics on "))
            .expect("the metrics line")
            .trim()
            .to_string()
    }

    /// Waits up to `timeout` for the server to print a line that `wanted` accepts,
    /// skipping the others; returns it, or `None` if none came.
    pub fn wait_for_line(&self, wanted: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let lines = self.lines.as_ref().expect("a spawned server");
        let deadline = Instant::now() + timeout;
        loop {
            let line = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()?;
            if wanted(&line) {
                return Some(line);
            }
        }
    }

    /// `GET /v2/<repo>/blobs/<digest>`, whatever the answer.
    pub async fn get_blob(&self, repo: &str, digest: &str) -> Response {
        self.client.get(self.url(&format!("/v2/{repo}/blobs/{digest}"))).send().await.expect("GET blob")
    }

    /// `GET /v2/<repo>/manifests/<reference>` accepting an OCI manifest, whatever the
    /// answer.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Response {
        self.client
            .get(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("Accept", media::OCI_MANIFEST)
            .send()
            .await
            .expect("GET manifest")
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

/// The user of `REGISTRY_TEST_AUTH` runs (name, password).
pub const AUTH_USER: (&str, &str) = ("e2e-admin", "e2e-admin-pw");

/// Makes ring the process-wide rustls crypto provider. reqwest is built with rustls
/// but without a default provider (see host/Cargo.toml): plain HTTP never uses it,
/// yet building a client needs one. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("build the HTTP client")
}

fn http_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        // Generous, so that a hung request fails the test instead of hanging the run.
        .timeout(Duration::from_secs(300))
        // Idle connections are dropped before a server closes them: Node's HTTP
        // server (jco) closes them after 5 s, and one it closes just as a request
        // goes out on it resets that request, which for a POST cannot be retried.
        .pool_idle_timeout(Duration::from_secs(3))
}

/// Spawns the registry of `deployment` on `data_dir` (`scratch` holds what jco
/// transpiles, and scripts/serve.sh's temporary files) and waits for it to listen.
fn spawn_deployment(deployment: Deployment, scratch: &Path, data_dir: &Path, extra: &[&str]) -> Started {
    match deployment {
        Deployment::Host | Deployment::HostS3 => spawn_host(data_dir, extra),
        _ => start_component(deployment, scratch, data_dir, extra),
    }
}

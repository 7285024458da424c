//! The processes under test: which deployment serves the registry
//! (`REGISTRY_TEST_DEPLOYMENT`), where its binaries are, and how a server is spawned,
//! waited for, signalled and killed with its children.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;

/// The main workspace's build directory: `$CARGO_TARGET_DIR`, else `target/`.
pub fn workspace_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

/// The root of the main workspace (the parent of `tests/`).
pub fn repo_root() -> PathBuf {
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

/// Which runtime serves the registry under test: `REGISTRY_TEST_DEPLOYMENT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployment {
    /// `registry-host`: our native host (wasmtime embedded, storage on the filesystem).
    Host,
    /// `registry-host` with its storage on S3: a prefix of its own in the bucket of
    /// a SeaweedFS that the test process shares (see [`S3Place`]).
    HostS3,
    /// `wasmtime serve` running the composed `registry.wasm` (storage-fs on
    /// wasi:filesystem).
    Wasmtime,
    /// `jco serve` running the composed `registry.wasm` on Node.js with the preview2
    /// shims.
    Jco,
    /// Cloudflare's `workerd` running the Worker of `edge/cloudflare/`: the bare
    /// registry component, transpiled by jco, on a Durable Object's SQLite storage.
    /// Started with `scripts/serve.sh workerd --no-build`.
    Workerd,
    /// `wrangler dev` running the same Worker with its `wrangler.jsonc`: blob bytes
    /// in the R2 bucket `REGISTRY_BLOBS` (simulated by miniflare), the rest in the
    /// Durable Object's SQLite. Started with `scripts/serve.sh wrangler --no-build`.
    Wrangler,
    /// wasmCloud's `wash dev` running the composed `registry.wasm` (storage-fs on the
    /// data directory, mounted as `/data`). Started with `scripts/serve.sh wash
    /// --no-build`.
    Wash,
    /// `deno serve` running the same registry (`edge/deno/`) on a SQLite file of
    /// the data directory. Started with `scripts/serve.sh deno --no-build`.
    Deno,
}

impl Deployment {
    /// The deployment this run tests: `REGISTRY_TEST_DEPLOYMENT` (`host`, `host-s3`,
    /// `wasmtime`, `jco`, `wash`, `workerd`, `wrangler` or `deno`), `host` when unset. Any other value fails the test.
    pub fn current() -> Self {
        match std::env::var("REGISTRY_TEST_DEPLOYMENT").as_deref() {
            Err(std::env::VarError::NotPresent) | Ok("") | Ok("host") => Self::Host,
            Ok("host-s3") => Self::HostS3,
            Ok("wasmtime") => Self::Wasmtime,
            Ok("jco") => Self::Jco,
            Ok("wash") => Self::Wash,
            Ok("workerd") => Self::Workerd,
            Ok("wrangler") => Self::Wrangler,
            Ok("deno") => Self::Deno,
            other => panic!(
                "REGISTRY_TEST_DEPLOYMENT={other:?}: expected `host`, `host-s3`, `wasmtime`, `jco`, `wash`, `workerd`, `wrangler` or `deno`"
            ),
        }
    }

    /// Whether the server is the `registry-host` binary (`host`, `host-s3`).
    pub fn is_registry_host(self) -> bool {
        matches!(self, Self::Host | Self::HostS3)
    }

    /// The name `REGISTRY_TEST_DEPLOYMENT` spells it with.
    pub fn name(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::HostS3 => "host-s3",
            Self::Wasmtime => "wasmtime",
            Self::Jco => "jco",
            Self::Wash => "wash",
            Self::Workerd => "workerd",
            Self::Wrangler => "wrangler",
            Self::Deno => "deno",
        }
    }

    /// The runtime scripts/serve.sh serves it with.
    fn runtime(self) -> &'static str {
        match self {
            Self::Host | Self::HostS3 => "host",
            other => other.name(),
        }
    }

    /// The prefix of the server's forwarded output lines.
    fn log_prefix(self) -> &'static str {
        match self {
            Self::Host | Self::HostS3 => "[registry-host]",
            Self::Wasmtime => "[wasmtime]",
            Self::Jco => "[jco]",
            Self::Wash => "[wash]",
            Self::Workerd => "[workerd]",
            Self::Wrangler => "[wrangler]",
            Self::Deno => "[deno]",
        }
    }

    /// How long the server may take to report that it listens: wasmtime compiles
    /// registry.wasm on a cold cache, jco transpiles it to JavaScript at every start.
    fn startup_timeout(self) -> Duration {
        match self {
            Self::Host | Self::HostS3 => Duration::from_secs(60),
            Self::Wasmtime | Self::Jco | Self::Wash | Self::Workerd | Self::Wrangler | Self::Deno => {
                Duration::from_secs(120)
            }
        }
    }
}

/// Fails the test unless it runs against the `registry-host` binary: a test about
/// the binary itself (signals, flags, startup errors, crashes) cannot run under
/// another deployment or against an external registry, and must not pass there
/// unseen. Leave such tests out by name instead (`--skip host::`, as
/// scripts/test.sh does), so that the harness counts them as filtered out.
pub fn require_host_binary() {
    assert!(
        !external_registry(),
        "this test is about the registry-host binary and cannot run against REGISTRY_TEST_URL: \
         leave it out with `--skip host::`"
    );
    let deployment = Deployment::current();
    assert!(
        deployment.is_registry_host(),
        "this test is about the registry-host binary and cannot run under REGISTRY_TEST_DEPLOYMENT={}: \
         leave it out with `--skip host::` (scripts/test.sh does)",
        deployment.name()
    );
}

/// What registry.wasm is given for `extra` registry-host flags: environment variables
/// for scripts/serve.sh, which hands them to the registry as each runtime can.
///
/// - `--disable-delete`: `REGISTRY_DELETE_ENABLED=false` (DELETE answers 405).
///   `REGISTRY_DELETE_ENABLED` is always set, so that nothing leaks in from the
///   test's own environment (jco hands the component the whole environment of
///   `node`).
/// - `--htpasswd F`, `--access F`, `--token-key F`: `REGISTRY_AUTH_HTPASSWD_FILE`,
///   `_POLICY_FILE`, `_TOKEN_KEY_FILE` naming F, as a user gives serve.sh files:
///   under wasmtime it preopens F's directory, elsewhere it passes F's text.
/// - `--auth-service S`: `REGISTRY_AUTH_SERVICE`.
/// - `--proxy F`: `REGISTRY_PROXY_FILE`, as the access-control files.
/// - `--gc-endpoint`, `--gc-delete-untagged`, `--gc-grace D`: `REGISTRY_GC_*`.
pub(super) fn component_env(deployment: Deployment, extra: &[&str]) -> Vec<(String, String)> {
    let mut delete_enabled = true;
    let mut env = Vec::new();
    let mut flags = extra.iter();
    while let Some(flag) = flags.next() {
        let file_var = match *flag {
            "--disable-delete" => {
                delete_enabled = false;
                continue;
            }
            "--htpasswd" => "REGISTRY_AUTH_HTPASSWD_FILE",
            "--access" => "REGISTRY_AUTH_POLICY_FILE",
            "--token-key" => "REGISTRY_AUTH_TOKEN_KEY_FILE",
            "--proxy" => "REGISTRY_PROXY_FILE",
            "--gc-endpoint" => {
                env.push(("REGISTRY_GC_ENDPOINT".into(), "on".into()));
                continue;
            }
            "--gc-delete-untagged" => {
                env.push(("REGISTRY_GC_DELETE_UNTAGGED".into(), "true".into()));
                continue;
            }
            "--gc-grace" => {
                let value = flags.next().expect("--gc-grace takes a value");
                env.push(("REGISTRY_GC_GRACE".into(), value.to_string()));
                continue;
            }
            "--auth-service" => {
                let value = flags.next().expect("--auth-service takes a value");
                env.push(("REGISTRY_AUTH_SERVICE".into(), value.to_string()));
                continue;
            }
            other => panic!(
                "registry-host flag {other:?} has no equivalent for registry.wasm \
                 (REGISTRY_TEST_DEPLOYMENT={})",
                deployment.name()
            ),
        };
        let path = Path::new(flags.next().unwrap_or_else(|| panic!("{flag} takes a file")));
        let path = std::fs::canonicalize(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        env.push((file_var.to_string(), path.to_string_lossy().into_owned()));
    }
    env.push(("REGISTRY_DELETE_ENABLED".into(), delete_enabled.to_string()));
    env
}

/// How a server is started: `bash scripts/serve.sh RUNTIME --no-build` (after
/// scripts/test.sh built what it serves), as users start it.
pub(super) struct Serve<'a> {
    pub deployment: Deployment,
    /// `HOST:PORT` for `--addr`; serve.sh picks a free port for port 0.
    pub listen: &'a str,
    pub data_dir: &'a Path,
    /// TMPDIR of serve.sh and the runtime (jco's transpiled code, wash's project,
    /// wrangler's own files): a directory the test removes, because a killed
    /// server cannot clean up after itself. `None` leaves TMPDIR as it is.
    pub scratch: Option<&'a Path>,
    /// Added to its environment; an empty value removes the variable.
    pub env: Vec<(String, String)>,
    /// registry-host's flags, after `--`.
    pub host_flags: Vec<String>,
}

impl Serve<'_> {
    fn command(&self) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(repo_root().join("scripts/serve.sh"))
            .args([self.deployment.runtime(), "--no-build", "--addr", self.listen, "--data"])
            .arg(self.data_dir)
            .env("CARGO_TARGET_DIR", workspace_target_dir());
        match self.deployment {
            Deployment::Host | Deployment::HostS3 => command.env("REGISTRY_HOST_BIN", registry_host_bin()),
            Deployment::Wasmtime | Deployment::Jco | Deployment::Wash => command.env("REGISTRY_WASM", registry_wasm()),
            Deployment::Workerd | Deployment::Wrangler | Deployment::Deno => &mut command,
        };
        if let Some(scratch) = self.scratch {
            command.env("TMPDIR", scratch);
        }
        for (name, value) in &self.env {
            if value.is_empty() {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
        if !self.host_flags.is_empty() {
            command.arg("--").args(&self.host_flags);
        }
        command
    }

    /// Starts the server and waits for serve.sh's `serving on` line. serve.sh picks
    /// a port that the kernel just handed out and is free again; if another process
    /// takes it first, the runtime fails to listen and another port is tried, up to
    /// five times.
    pub fn start(&self) -> Started {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            match spawn_and_wait_for_listening(self.deployment, self.command()) {
                Ok(started) => return started,
                Err(failure) if attempt < ATTEMPTS && failure.output.iter().any(|l| l.contains("in use")) => {
                    eprintln!("{} its port was taken before it bound it: trying another", self.deployment.log_prefix());
                }
                Err(failure) => failure.panic(self.deployment),
            }
        }
        unreachable!("the last attempt returns or panics")
    }
}

/// Starts the registry of a deployment other than registry-host with `extra`
/// registry-host flags made its settings ([`component_env`]), on a free port of
/// 127.0.0.1, its data in `data_dir`.
pub(super) fn start_component(deployment: Deployment, scratch: &Path, data_dir: &Path, extra: &[&str]) -> Started {
    Serve {
        deployment,
        listen: "127.0.0.1:0",
        data_dir,
        scratch: Some(scratch),
        env: component_env(deployment, extra),
        host_flags: Vec::new(),
    }
    .start()
}

/// A server that did not come up: what happened, and everything it printed.
pub struct StartFailure {
    what: String,
    output: Vec<String>,
}

impl StartFailure {
    pub(super) fn panic(self, deployment: Deployment) -> ! {
        panic!(
            "{} (REGISTRY_TEST_DEPLOYMENT={}); its output:\n{}",
            self.what,
            deployment.name(),
            self.output.join("\n")
        )
    }
}

/// The base URL (`http://IP:PORT`, or `https://IP:PORT` for a registry-host serving
/// TLS) in `line` if it is scripts/serve.sh's `serving on URL/`: the registry
/// answers `GET /v2/` there.
pub(super) fn listening_url(line: &str) -> Option<String> {
    let line = line.trim();
    let (scheme, addr) = line.strip_prefix("serving on ")?.trim_end_matches('/').split_once("://")?;
    assert!(matches!(scheme, "http" | "https"), "unknown scheme in {line:?}");
    assert!(addr.parse::<std::net::SocketAddr>().is_ok(), "cannot parse the address in {line:?}");
    Some(format!("{scheme}://{addr}"))
}

/// Spawns `registry-host` on `data_dir` with `extra` flags and waits for it to listen
/// on a free port of 127.0.0.1.
pub(super) fn spawn_host(data_dir: &Path, extra: &[&str]) -> Started {
    spawn_host_on("127.0.0.1:0", data_dir, extra)
}

/// Spawns `registry-host --listen listen` on `data_dir` with `extra` flags and waits
/// for it to listen. Under `host-s3` its storage is the S3 place of `data_dir`
/// ([`S3Place::for_data_dir`]), and `data_dir` holds only its compiled-code cache.
pub(super) fn spawn_host_on(listen: &str, data_dir: &Path, extra: &[&str]) -> Started {
    spawn_host_on_with_env(listen, data_dir, extra, &[])
}

/// As [`spawn_host_on`], with `env` added to (or, when empty, removed from) the
/// process's environment.
pub(super) fn spawn_host_on_with_env(listen: &str, data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Started {
    let place = (Deployment::current() == Deployment::HostS3).then(|| S3Place::for_data_dir(data_dir));
    spawn_registry_host_with_env(listen, data_dir, place.as_ref(), extra, env)
}

/// Spawns `registry-host --listen listen --data-dir data_dir`, with its storage at
/// `place` if given (else in `data_dir`), and `extra` flags; waits for it to listen.
pub(super) fn spawn_registry_host(listen: &str, data_dir: &Path, place: Option<&S3Place>, extra: &[&str]) -> Started {
    spawn_registry_host_with_env(listen, data_dir, place, extra, &[])
}

fn spawn_registry_host_with_env(
    listen: &str,
    data_dir: &Path,
    place: Option<&S3Place>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Started {
    let mut serve = Serve {
        deployment: if place.is_some() { Deployment::HostS3 } else { Deployment::Host },
        listen,
        data_dir,
        scratch: None,
        env: env.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
        host_flags: Vec::new(),
    };
    if let Some(place) = place {
        serve.env.extend(place.env());
        serve.host_flags.extend(place.flags());
    }
    serve.host_flags.extend(extra.iter().map(|s| s.to_string()));
    serve.start()
}

/// A server process that listens.
pub struct Started {
    pub child: Child,
    /// The threads that keep forwarding its output to the test's stderr, each line
    /// prefixed `[registry-host]`, `[wasmtime]` or `[jco]`.
    pub forwarders: Vec<JoinHandle<()>>,
    /// Its base URL (`http://IP:PORT`, see [`listening_url`]).
    pub url: String,
    /// What it printed before its listening line.
    pub before: Vec<String>,
    /// Every line it prints after its listening line (stderr and stdout).
    pub lines: mpsc::Receiver<String>,
}

/// Spawns `command` (a server of `deployment`) with its output piped and waits for
/// its listening line.
///
/// Fails with everything the process printed if it exits first or stays silent for
/// the deployment's startup timeout (the process is then killed).
pub fn spawn_and_wait_for_listening(deployment: Deployment, mut command: Command) -> Result<Started, StartFailure> {
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
                if let Some(url) = listening_url(&line) {
                    return Ok(Started { child, forwarders, url, before: seen, lines: rx });
                }
                seen.push(line);
            }
            Err(reason) => {
                let what = match reason {
                    // Both pipes closed: the process (and, for jco, its child) is gone.
                    mpsc::RecvTimeoutError::Disconnected => {
                        format!("{} exited ({:?}) before listening", program.to_string_lossy(), child.wait().ok())
                    }
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("{} printed no listening line within {timeout:?}", program.to_string_lossy())
                    }
                };
                kill_tree(&mut child);
                for forwarder in forwarders {
                    let _ = forwarder.join();
                }
                return Err(StartFailure { what, output: seen });
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

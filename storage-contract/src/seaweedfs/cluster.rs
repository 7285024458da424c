//! A small SeaweedFS cluster on loopback, one process per server: a master
//! (replication `001`: every volume on two servers of one rack), three
//! volume servers, one filer and two S3 gateways on it. For the tests of
//! several registries on one store where a volume server dies under them.
//!
//! One filer only: two filers with stores of their own list eventually
//! consistently. Each server runs in a process group of its own, bound to
//! the test process (`PR_SET_PDEATHSIG`), and is killed (SIGKILL) on drop;
//! its data, log and local sockets are in the cluster's directory, removed
//! on drop (or, left by a killed test process, by the next one to start
//! SeaweedFS). Standalone servers make no sockets in `/tmp` of their own
//! once `-localSocket` is given, and run no admin server.

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{free_port_pairs, kill_group, spawn_bound_to_this_process};
use super::{
    remove_leftovers_once, weed_binary, LaunchFailure, S3Client, ACCESS_KEY, DIR_PREFIX, PORT_ATTEMPTS, READY_TIMEOUT,
    REGION, SECRET_KEY,
};

/// How many volume servers the cluster has.
pub const VOLUME_SERVERS: usize = 3;
/// How many S3 gateways (all on the one filer).
pub const GATEWAYS: usize = 2;
/// One more copy on another server of the same rack.
const REPLICATION: &str = "001";
/// Small volumes (the default is 30 GiB), so that writes spread over several.
const VOLUME_SIZE_LIMIT_MB: u32 = 128;
/// Volumes per volume server. The master grows six at a time (two copies
/// each) whenever the writable ones fill, and once a server is gone the
/// other two must hold every new one: 16 each were full after ~300 MiB of
/// pushes. Volumes are sparse files, so room costs nothing until written.
const VOLUMES_PER_SERVER: u32 = 64;
/// How many lines of each server's log [`SeaweedCluster::logs`] shows.
const LOG_LINES: usize = 40;

/// What a server of the cluster is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Master,
    Volume(usize),
    Filer,
    Gateway(usize),
}

impl Role {
    /// Every server, in the order they start.
    fn all() -> Vec<Role> {
        let mut roles = vec![Role::Master];
        roles.extend((0..VOLUME_SERVERS).map(Role::Volume));
        roles.push(Role::Filer);
        roles.extend((0..GATEWAYS).map(Role::Gateway));
        roles
    }

    /// Its name: of its data directory, its log and its socket.
    fn name(self) -> String {
        match self {
            Role::Master => "master".into(),
            Role::Volume(i) => format!("volume-{i}"),
            Role::Filer => "filer".into(),
            Role::Gateway(i) => format!("s3-{i}"),
        }
    }
}

/// One server: its HTTP port (gRPC is 10000 above) and its process.
struct Server {
    role: Role,
    port: u16,
    /// `None` before its start and once killed.
    child: Option<Child>,
}

/// A running SeaweedFS cluster of a test's own, with a bucket.
pub struct SeaweedCluster {
    weed: PathBuf,
    /// The servers' data, logs and sockets; removed on drop.
    dir: tempfile::TempDir,
    bucket: String,
    /// In [`Role::all`]'s order.
    servers: Vec<Server>,
}

impl SeaweedCluster {
    /// Starts a cluster in order (master, volume servers, filer, gateways) on
    /// free ports and a new directory, creates its bucket, and returns once
    /// both gateways store objects. Panics, with the servers' logs, if it
    /// does not come up.
    pub fn start() -> SeaweedCluster {
        remove_leftovers_once();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}.", std::process::id()))
            .tempdir()
            .expect("creating a directory for the SeaweedFS cluster");
        let mut cluster = SeaweedCluster { weed: weed_binary(), dir, bucket: "registry".into(), servers: Vec::new() };
        for attempt in 1..=PORT_ATTEMPTS {
            match cluster.launch() {
                Ok(()) => return cluster,
                Err(LaunchFailure::PortTaken(_)) if attempt < PORT_ATTEMPTS => cluster.kill_all_and_wipe(),
                Err(LaunchFailure::PortTaken(logs)) => {
                    panic!("the SeaweedFS cluster found a port taken {PORT_ATTEMPTS} times; its logs:\n{logs}")
                }
                Err(LaunchFailure::Other(why)) => panic!("{why}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The bucket that exists from the start.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The S3 endpoint of gateway `i` (`0..GATEWAYS`), `http://127.0.0.1:PORT`
    /// (path-style addressing).
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.server(Role::Gateway(i)).port)
    }

    /// A client on [`Self::bucket`] through gateway `i`, whose requests give up
    /// after `timeout`.
    pub fn client(&self, i: usize, timeout: Duration) -> S3Client {
        S3Client::new(&self.endpoint(i), &self.bucket, REGION, ACCESS_KEY, SECRET_KEY, timeout)
    }

    /// The process id of volume server `i` (`0..VOLUME_SERVERS`) while it runs.
    pub fn volume_server_pid(&self, i: usize) -> Option<u32> {
        self.server(Role::Volume(i)).child.as_ref().map(Child::id)
    }

    /// Every server's process id while it runs.
    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().filter_map(|s| s.child.as_ref().map(Child::id)).collect()
    }

    /// Kills volume server `i` (SIGKILL, its process group) and waits until it
    /// is gone: what it holds is then only on the replicas. Panics if it does
    /// not run.
    pub fn kill_volume_server(&mut self, i: usize) {
        let server = self.servers.iter_mut().find(|s| s.role == Role::Volume(i)).expect("a volume server");
        let mut child = server.child.take().unwrap_or_else(|| panic!("volume server {i} does not run"));
        kill_group(&mut child);
    }

    /// Its directory: each server's data, log and local socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of every server's log, each headed by its name.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        for server in &self.servers {
            let name = server.role.name();
            let log = std::fs::read(self.log_path(server.role)).unwrap_or_default();
            let log = String::from_utf8_lossy(&log);
            let lines: Vec<&str> = log.lines().collect();
            logs.push_str(&format!("--- {name} (port {}):\n", server.port));
            logs.push_str(&lines[lines.len().saturating_sub(LOG_LINES)..].join("\n"));
            logs.push('\n');
        }
        logs
    }

    fn server(&self, role: Role) -> &Server {
        self.servers.iter().find(|s| s.role == role).expect("every role has a server")
    }

    fn port(&self, role: Role) -> u16 {
        self.server(role).port
    }

    fn log_path(&self, role: Role) -> PathBuf {
        self.dir.path().join(format!("{}.log", role.name()))
    }

    /// Picks ports, starts every server in order, each once the one before
    /// listens, and waits until the cluster stores objects.
    fn launch(&mut self) -> Result<(), LaunchFailure> {
        let roles = Role::all();
        let ports = free_port_pairs(roles.len());
        self.servers = roles.into_iter().zip(ports).map(|(role, port)| Server { role, port, child: None }).collect();
        let started = Instant::now();
        for i in 0..self.servers.len() {
            let role = self.servers[i].role;
            let child = spawn_bound_to_this_process(self.command(role))
                .unwrap_or_else(|e| panic!("spawning {}: {e}", self.weed.display()));
            self.servers[i].child = Some(child);
            self.wait_until(started, &format!("{} listens", role.name()), |cluster| {
                TcpStream::connect(("127.0.0.1", cluster.port(role))).map(drop).map_err(|e| e.to_string())
            })?;
            if role == Role::Volume(VOLUME_SERVERS - 1) {
                // Else the first writes could grow every volume on the first two.
                self.wait_until(started, "the master knows every volume server", Self::master_knows_volumes)?;
            }
        }
        self.wait_until(started, "the bucket is created", |cluster| {
            cluster.client(0, Duration::from_secs(5)).create_bucket().map_err(|e| e.to_string())
        })?;
        for gateway in 0..GATEWAYS {
            self.wait_until(started, &format!("gateway {gateway} stores an object"), |cluster| {
                let client = cluster.client(gateway, Duration::from_secs(5));
                let probe = format!(".seaweedfs-cluster-ready-{gateway}");
                client.put(&probe, b"ready").and_then(|()| client.delete(&probe)).map_err(|e| e.to_string())
            })?;
        }
        Ok(())
    }

    /// The command that starts `role`'s server.
    fn command(&self, role: Role) -> Command {
        let dir = self.dir.path();
        let data = dir.join(role.name());
        std::fs::create_dir_all(&data).expect("creating a SeaweedFS server's directory");
        let log = File::options().create(true).append(true).open(self.log_path(role)).expect("a server's log");
        let master = format!("127.0.0.1:{}", self.port(Role::Master));
        let mut command = Command::new(&self.weed);
        match role {
            Role::Master => command.arg("master").arg(format!("-mdir={}", data.display())).args([
                format!("-defaultReplication={REPLICATION}"),
                format!("-volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}"),
                "-telemetry=false".into(),
            ]),
            Role::Volume(_) => command
                .arg("volume")
                .arg(format!("-dir={}", data.display()))
                .arg(format!("-max={VOLUMES_PER_SERVER}"))
                .arg(format!("-master={master}")),
            Role::Filer => command
                .arg("filer")
                .arg(format!("-defaultStoreDir={}", data.display()))
                .arg(format!("-localSocket={}", dir.join("filer.sock").display()))
                .arg(format!("-master={master}")),
            Role::Gateway(i) => command
                .arg("s3")
                .arg(format!("-filer=127.0.0.1:{}", self.port(Role::Filer)))
                .arg(format!("-localSocket={}", dir.join(format!("s3-{i}.sock")).display()))
                .args(["-port.iceberg=0", "-port.lance=0"])
                // Its one identity, as `weed s3` takes it without a config.
                .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        };
        command
            // Loopback only: without -ip it binds and advertises another address.
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-port={}", self.port(role)))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log);
        command
    }

    /// Whether the master's topology lists every volume server.
    fn master_knows_volumes(&self) -> Result<(), String> {
        let url = format!("http://127.0.0.1:{}/dir/status", self.port(Role::Master));
        let agent: ureq::Agent =
            ureq::Agent::config_builder().proxy(None).timeout_global(Some(Duration::from_secs(5))).build().into();
        let status = agent
            .get(&url)
            .call()
            .map_err(|e| e.to_string())?
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let missing: Vec<usize> = (0..VOLUME_SERVERS)
            .filter(|&i| !status.contains(&format!("\"Url\":\"127.0.0.1:{}\"", self.port(Role::Volume(i)))))
            .collect();
        match missing.is_empty() {
            true => Ok(()),
            false => Err(format!("volume servers {missing:?} missing from {status}")),
        }
    }

    /// Polls `ready` until it holds, while every server started so far runs;
    /// fails on the first server that exits (a port taken, or else), or
    /// once [`READY_TIMEOUT`] has passed since `started`.
    fn wait_until(
        &mut self,
        started: Instant,
        what: &str,
        ready: impl Fn(&Self) -> Result<(), String>,
    ) -> Result<(), LaunchFailure> {
        loop {
            if let Some((name, status)) = self.an_exited_server() {
                let logs = self.logs();
                return Err(if logs.contains("is not available") || logs.contains("address already in use") {
                    LaunchFailure::PortTaken(logs)
                } else {
                    LaunchFailure::Other(format!(
                        "SeaweedFS {name} exited ({status}) before the cluster was ready; the logs:\n{logs}"
                    ))
                });
            }
            let last_error = match ready(self) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if started.elapsed() > READY_TIMEOUT {
                return Err(LaunchFailure::Other(format!(
                    "the SeaweedFS cluster: not \"{what}\" within {READY_TIMEOUT:?} (last: {last_error}); the logs:\n{}",
                    self.logs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A server that was started and has exited: its name and status.
    fn an_exited_server(&mut self) -> Option<(String, std::process::ExitStatus)> {
        self.servers.iter_mut().find_map(|server| {
            let status = server.child.as_mut()?.try_wait().expect("waiting for weed")?;
            server.child = None;
            Some((server.role.name(), status))
        })
    }

    /// Kills every server, last started first.
    fn kill_all(&mut self) {
        for server in self.servers.iter_mut().rev() {
            if let Some(mut child) = server.child.take() {
                kill_group(&mut child);
            }
        }
    }

    /// Kills every server and empties the directory, for a fresh launch.
    fn kill_all_and_wipe(&mut self) {
        self.kill_all();
        wipe(self.dir.path());
    }
}

impl Drop for SeaweedCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Removes everything inside `dir`.
fn wipe(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
    }
}

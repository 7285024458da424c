//! The `registry-host` process itself: graceful shutdown on SIGTERM and SIGINT, and
//! a clear one-line error (no panic, non-zero exit) when the port is taken or the
//! data directory cannot be used, and a client cannot choose the address the
//! component sees; `tls`: HTTPS, reloads on SIGHUP, and the checks of the TLS and
//! access-control flags; `limits`: the timeouts and the connection caps; `gc`: the
//! `gc` subcommand and a collection cut by SIGKILL; `metrics`: the operator's
//! address (`--metrics-listen`); `logs`: JSON lines and request ids; `reuse`:
//! `--instance-reuse`, across users and repositories; `docker_image`:
//! the container image, built, run and pushed into with Docker.
//!
//! These tests are about the native binary, so they run only when
//! `REGISTRY_TEST_DEPLOYMENT` is `host` (the default) or `host-s3` (the same binary,
//! its storage on S3): under `wasmtime` or `jco` the process is someone else's CLI.
//! There each test fails if it is run at all; scripts/test.sh leaves the module out
//! (`--skip host::`) for those runs, so that they are counted as skipped, never as
//! passes. Under `host-s3` it leaves out the tests about the data directory itself
//! (`unusable_data_dir_is_a_clear_error`, `gc::the_host_subcommand_…`); the restarts
//! find their data again in the same bucket prefix.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{
    basic_auth, random_bytes, registry_host_bin, require_host_binary, wait_with_timeout, AuthFiles, RegistryServer,
};

mod docker_cli;
mod docker_image;
mod gc;
mod limits;
mod logs;
mod metrics;
mod mirrors;
mod outgoing;
mod reuse;
mod tls;

/// How long a server may take to stop after a signal.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `registry-host args...` expecting it to fail at startup; returns its stderr.
fn expect_startup_failure(args: &[&str]) -> String {
    expect_startup_failure_with_env(args, &[])
}

/// Runs `registry-host args...` with `env` added to its environment, expecting it to
/// fail at startup; returns its stderr.
fn expect_startup_failure_with_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = Command::new(registry_host_bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn registry-host");
    let status = wait_with_timeout(&mut child, Duration::from_secs(60));
    if status.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("collect output");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let status = status.unwrap_or_else(|| panic!("`registry-host {args:?}` kept running; stderr:\n{stderr}"));
    assert!(!status.success(), "`registry-host {args:?}` succeeded; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "`registry-host {args:?}` panicked instead of reporting an error:\n{stderr}");
    assert!(!stderr.contains("registry-host listening on"), "`registry-host {args:?}` claimed to listen:\n{stderr}");
    stderr
}

async fn stops_gracefully_on(signal: &str) {
    let mut server = RegistryServer::start();
    let resp = server.client().get(server.url("/v2/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let status = server
        .signal_and_wait(signal, SHUTDOWN_TIMEOUT)
        .unwrap_or_else(|| panic!("registry-host still runs {SHUTDOWN_TIMEOUT:?} after SIG{signal}"));
    assert!(status.success(), "exit status after SIG{signal}: {status}");
}

/// What a killed server had acknowledged is there after a restart: small
/// blobs (made durable by the journal), a large one, a tagged manifest, and a
/// delete. A clean stop and another start change nothing.
#[tokio::test]
async fn acknowledged_writes_survive_sigkill_and_restart() {
    require_host_binary();
    let scratch = tempfile::Builder::new().prefix("registry-e2e-restart.").tempdir().unwrap();
    let data = scratch.path().join("data");
    let repo = "e2e/restart";
    let small = random_bytes(4096);
    let large = random_bytes(300 * 1024);
    let gone = random_bytes(2048);

    let mut server = RegistryServer::start_host_on(&data);
    let small_digest = server.push_blob(repo, &small).await;
    let large_digest = server.push_blob(repo, &large).await;
    let gone_digest = server.push_blob(repo, &gone).await;
    let manifest = server.push_image(repo, &["v1"]).await;
    let resp = server.client().delete(server.url(&format!("/v2/{repo}/blobs/{gone_digest}"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED, "DELETE blob");
    server.signal_and_wait("KILL", SHUTDOWN_TIMEOUT).expect("registry-host killed");

    for round in ["after SIGKILL", "after a clean stop"] {
        let mut server = RegistryServer::start_host_on(&data);
        for (digest, bytes) in [(&small_digest, &small), (&large_digest, &large)] {
            let resp = server.get_blob(repo, digest).await;
            assert_eq!(resp.status(), StatusCode::OK, "blob {digest} {round}");
            assert_eq!(&resp.bytes().await.unwrap()[..], &bytes[..], "blob {digest} {round}");
        }
        let resp = server.get_blob(repo, &gone_digest).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "deleted blob {round}");
        let (headers, _) = server.get_json(&format!("/v2/{repo}/manifests/v1")).await;
        assert_eq!(headers["docker-content-digest"].to_str().unwrap(), manifest, "tag v1 {round}");
        let status = server.signal_and_wait("TERM", SHUTDOWN_TIMEOUT).expect("registry-host stops on SIGTERM");
        assert!(status.success(), "exit status {round}: {status}");
    }
}

/// SIGTERM stops the server with a successful exit status.
#[tokio::test]
async fn sigterm_stops_gracefully() {
    require_host_binary();
    stops_gracefully_on("TERM").await;
}

/// SIGINT (Ctrl-C) stops the server with a successful exit status.
#[tokio::test]
async fn sigint_stops_gracefully() {
    require_host_binary();
    stops_gracefully_on("INT").await;
}

/// A second server on a port that is already taken exits with an error naming the
/// address.
#[tokio::test]
async fn taken_port_is_a_clear_error() {
    require_host_binary();
    let server = RegistryServer::start();
    let data = tempfile::tempdir().unwrap();
    let stderr = expect_startup_failure(&["--listen", server.host_port(), "--data-dir", data.path().to_str().unwrap()]);
    assert!(
        stderr.contains(server.host_port()),
        "the error does not name the address {}:\n{stderr}",
        server.host_port()
    );
}

/// A data directory that cannot be created (its parent is a regular file) is an
/// error at startup, naming the directory.
#[tokio::test]
async fn unusable_data_dir_is_a_clear_error() {
    require_host_binary();
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let data_dir = file.join("data");
    let stderr = expect_startup_failure(&["--listen", "127.0.0.1:0", "--data-dir", data_dir.to_str().unwrap()]);
    assert!(
        stderr.contains(data_dir.to_str().unwrap()),
        "the error does not name the data directory {}:\n{stderr}",
        data_dir.display()
    );
}

/// `--config FILE`: a key of the file sets its flag (here `disable-delete`: DELETE is
/// refused), a flag on the command line wins over the file, and a key that names no
/// flag stops the start-up with the file's name, the key and its line.
#[tokio::test]
async fn a_config_file_sets_flags_and_refuses_unknown_keys() {
    require_host_binary();
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("registry.toml");
    std::fs::write(&config, "# settings\ndisable-delete = true\nlisten = \"127.0.0.1:1\"\n").unwrap();
    // The harness passes `--listen 127.0.0.1:0`, which wins over the file's port 1.
    let server = RegistryServer::start_with_args(&["--config", config.to_str().unwrap()]);
    let digest = server.push_blob("e2e/config", b"kept").await;
    let resp = server.client().delete(server.url(&format!("/v2/e2e/config/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "disable-delete from the file");

    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n\nno-such-flag = 3\n").unwrap();
    let stderr = expect_startup_failure(&["--config", config.to_str().unwrap()]);
    assert!(
        stderr.contains(&format!("{}:3: unknown key `no-such-flag`", config.display())),
        "the error does not name the file, line and key:\n{stderr}"
    );
}

/// `log-level` in the config file changes on SIGHUP: at `warn` the access lines
/// stop, back at `info` they come again, and each change is logged; a key that
/// takes a restart is named in a warning and changes nothing.
#[tokio::test]
async fn sighup_rereads_the_log_level_of_the_config_file() {
    require_host_binary();
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("registry.toml");
    std::fs::write(&config, "log-level = \"info\"\n").unwrap();
    let server = RegistryServer::start_with_args(&["--config", config.to_str().unwrap()]);
    let access_line = |tag: &str| {
        let tag = tag.to_string();
        move |l: &str| l.contains("/v2/_catalog") && l.contains(&tag)
    };
    let get = |tag: &str| server.client().get(server.url(&format!("/v2/_catalog?n=1&last={tag}"))).send();
    get("before").await.unwrap();
    assert!(server.wait_for_line(access_line("before"), Duration::from_secs(10)).is_some(), "no access line at info");

    std::fs::write(&config, "log-level = \"warn\"\nmax-connections = 7\n").unwrap();
    crate::common::send_signal(server.pid(), "HUP");
    // The keys that take a restart are named first, then the new level.
    assert!(
        server
            .wait_for_line(
                |l| l.contains("`max-connections` changed in") && l.contains("takes effect at the next restart"),
                Duration::from_secs(10)
            )
            .is_some(),
        "no warning about a key that takes a restart"
    );
    assert!(
        server.wait_for_line(|l| l.contains("reload: log level info -> warn"), Duration::from_secs(10)).is_some(),
        "no line about the new level"
    );
    get("quiet").await.unwrap();
    assert!(server.wait_for_line(access_line("quiet"), Duration::from_secs(2)).is_none(), "an access line at warn");

    std::fs::write(&config, "log-level = \"info\"\n").unwrap();
    crate::common::send_signal(server.pid(), "HUP");
    assert!(server.wait_for_line(|l| l.contains("reload: log level warn -> info"), Duration::from_secs(10)).is_some());
    get("after").await.unwrap();
    assert!(
        server.wait_for_line(access_line("after"), Duration::from_secs(10)).is_some(),
        "no access line back at info"
    );
}

/// The component learns the client's address from the host's
/// `registry-client-address` header, never from a client: a client that sends that
/// header itself is still seen (in the component's log of failed sign-ins) at its
/// real address, and changing the header on every try does not escape the throttling
/// of failed sign-ins.
#[tokio::test]
async fn a_client_cannot_choose_its_address() {
    require_host_binary();
    let auth = AuthFiles::new(&[("alice", "alice-password", 4)], None);
    let server = auth.start(&[]);
    let mut statuses = Vec::new();
    for i in 1..=11 {
        let resp = server
            .client()
            .get(server.url("/v2/"))
            .header("authorization", basic_auth("alice", "wrong"))
            .header("registry-client-address", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status());
        if i == 1 {
            let line = server
                .wait_for_line(|l| l.contains("failed sign-in for user"), Duration::from_secs(15))
                .expect("the component's log of a failed sign-in");
            assert!(line.contains("from 127.0.0.1") && !line.contains("203.0.113"), "{line}");
        }
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS, "statuses of 11 failed sign-ins: {statuses:?}");
}

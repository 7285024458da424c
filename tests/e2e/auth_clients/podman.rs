//! podman signed in: `podman login` (password on stdin), push and pull of the
//! three-layer image of the `docker_cli` test (built by podman itself), `podman
//! logout`; before login, with a wrong password, as a reader and after logout, the
//! registry refuses. podman needs no daemon; this test gives it storage (vfs), an
//! auth file and configuration of its own in a temporary directory, so that nothing
//! of the machine's podman setup is used or changed. podman comes from Debian's
//! `podman` package, which `scripts/test.sh` installs.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::{refused, started, status_as, ALICE, BOB};
use crate::common::unique_id;
use crate::docker_cli::build_context;

/// How long one podman command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new(scratch: &Path) -> Self {
        match std::process::Command::new("podman").arg("--version").output() {
            Ok(out) if out.status.success() => {}
            _ => panic!(
                "podman is not installed: install Debian's `podman` package \
                 (apt-get install podman; scripts/test.sh does, as root)"
            ),
        }
        let dir = scratch.join("podman");
        for sub in ["root", "run", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("registries.conf"), "").unwrap();
        std::fs::write(dir.join("containers.conf"), "").unwrap();
        std::fs::write(dir.join("auth.json"), r#"{"auths":{}}"#).unwrap();
        Self { dir }
    }

    /// Runs `podman <storage flags> args...` with `stdin`; its output, whatever its
    /// status.
    async fn run_unchecked(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut command = tokio::process::Command::new("podman");
        command
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(args)
            .env("CONTAINERS_REGISTRIES_CONF", self.dir.join("registries.conf"))
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("REGISTRY_AUTH_FILE", self.dir.join("auth.json"))
            .env("TMPDIR", self.dir.join("tmp"))
            // The registry is on loopback: never through a proxy.
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let run = async {
            let mut child = command.spawn()?;
            if let Some(input) = stdin {
                let mut pipe = child.stdin.take().expect("piped stdin");
                pipe.write_all(input.as_bytes()).await?;
                drop(pipe);
            }
            child.wait_with_output().await
        };
        tokio::time::timeout(COMMAND_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| panic!("`podman {}` took over {COMMAND_TIMEOUT:?}", args.join(" ")))
            .unwrap_or_else(|e| panic!("cannot run `podman {}`: {e}", args.join(" ")))
    }

    /// Runs podman and fails the test, with both output streams, unless it succeeds;
    /// its standard output, trimmed.
    async fn run(&self, args: &[&str]) -> String {
        let output = self.run_unchecked(args, None).await;
        assert!(
            output.status.success(),
            "`podman {}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// `podman login --tls-verify=false -u USER --password-stdin REGISTRY`.
    async fn login(&self, registry: &str, (user, password): (&str, &str)) -> Output {
        let args = ["login", "--tls-verify=false", "-u", user, "--password-stdin", registry];
        self.run_unchecked(&args, Some(&format!("{password}\n"))).await
    }

    /// What the auth file keeps for `registry`, if anything.
    fn stored(&self, registry: &str) -> Option<Value> {
        let auth: Value = serde_json::from_slice(&std::fs::read(self.dir.join("auth.json")).unwrap()).unwrap();
        auth["auths"].get(registry).cloned()
    }
}

/// Fails the test unless `output` (of `what`) failed and says the registry refused it.
fn assert_refused(what: &str, output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{what} succeeded; stderr:\n{stderr}");
    assert!(refused(&stderr), "{what} failed, but not as refused:\n{stderr}");
}

#[tokio::test]
async fn podman_login_push_pull_logout() {
    let Some((_files, server)) = started() else { return };
    let scratch = tempfile::Builder::new().prefix("registry-e2e-podman.").tempdir().unwrap();
    let podman = Podman::new(scratch.path());
    let registry = server.host_port();
    let image = format!("{registry}/team/podman:v1");
    let base = format!("localhost/e2e-base:{}", unique_id());
    let (tarball, context, _, _) = build_context(scratch.path(), &base);
    podman.run(&["import", tarball.to_str().unwrap(), &base]).await;
    podman.run(&["build", "-t", &image, context.to_str().unwrap()]).await;
    let id = podman.run(&["image", "inspect", "--format", "{{.Id}}", &image]).await;
    let layers = podman.run(&["image", "inspect", "--format", "{{len .RootFS.Layers}}", &image]).await;
    assert_eq!(layers, "3", "the test image should have three layers");
    let push = ["push", "--tls-verify=false", image.as_str()];

    // Signed out, or with a wrong password: refused.
    assert_refused("a push before login", &podman.run_unchecked(&push, None).await);
    assert_refused("podman login with a wrong password", &podman.login(registry, ("alice", "wrong")).await);
    assert_eq!(podman.stored(registry), None, "a failed login left credentials");

    let out = podman.login(registry, ALICE).await;
    assert!(out.status.success(), "podman login: {}", String::from_utf8_lossy(&out.stderr));
    assert!(podman.stored(registry).is_some(), "no credentials kept after podman login");
    podman.run(&push).await;
    assert_eq!(status_as(&server, Some(BOB), "/v2/team/podman/manifests/v1").await, StatusCode::OK);

    // Deleted locally (the base too), pulled back: the same image.
    podman.run(&["rmi", &image, &base]).await;
    podman.run(&["pull", "--tls-verify=false", &image]).await;
    assert_eq!(podman.run(&["image", "inspect", "--format", "{{.Id}}", &image]).await, id, "image ID after the pull");

    // bob may not push; after logout, nobody may pull.
    let out = podman.login(registry, BOB).await;
    assert!(out.status.success(), "podman login as bob: {}", String::from_utf8_lossy(&out.stderr));
    let second = format!("{registry}/team/podman:v2");
    podman.run(&["tag", &image, &second]).await;
    assert_refused("bob's push", &podman.run_unchecked(&["push", "--tls-verify=false", &second], None).await);
    assert_eq!(status_as(&server, Some(ALICE), "/v2/team/podman/manifests/v2").await, StatusCode::NOT_FOUND);
    podman.run(&["logout", registry]).await;
    assert_eq!(podman.stored(registry), None, "credentials left after podman logout");
    podman.run(&["rmi", &image, &second]).await;
    assert_refused("a pull after logout", &podman.run_unchecked(&["pull", "--tls-verify=false", &image], None).await);
}

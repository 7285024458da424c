//! The Docker CLI against the registry: build a three-layer image offline, push it,
//! delete it locally, pull it back and compare image IDs, then run it.
//!
//! Needs a Docker daemon of its own, which `scripts/test.sh` starts (with no network,
//! vfs storage) and names in `DOCKER_HOST`. Without `DOCKER_HOST` this test fails
//! rather than passing unseen; with `REGISTRY_TEST_NO_DOCKER=1` the script leaves it
//! out by name (`--skip docker_cli::`) and counts it as skipped. Docker treats
//! registries on 127.0.0.0/8 as insecure-allowed, so plain HTTP works without daemon
//! configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use crate::common::{header, media, random_bytes, unique_id, RegistryServer};

/// Where Debian's `busybox-static` puts its statically linked binary.
const DEFAULT_BUSYBOX: &str = "/bin/busybox";

/// How long one docker command may take before the test gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `docker args...` and returns its output, failing the test (with both output
/// streams) if it does not succeed.
async fn docker(args: &[&str]) -> Output {
    assert_docker_succeeded(args, docker_unchecked(args).await)
}

/// Runs `docker args...` and returns its output, whatever its status.
async fn docker_unchecked(args: &[&str]) -> Output {
    run_docker(None, args, None).await
}

/// Runs `docker args...`, whatever its status: with `DOCKER_CONFIG=config` when given
/// (so that a test's logins stay its own), and `stdin` on its standard input.
pub(crate) async fn run_docker(config: Option<&Path>, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new("docker");
    command
        .args(args)
        // The legacy builder works offline; BuildKit may want to fetch its frontend.
        .env("DOCKER_BUILDKIT", "0")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(config) = config {
        command.env("DOCKER_CONFIG", config);
    }
    let run = async {
        let mut child = command.spawn()?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            pipe.write_all(input).await?;
            // Closed here: `--password-stdin` reads to the end.
            drop(pipe);
        }
        child.wait_with_output().await
    };
    tokio::time::timeout(COMMAND_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("`docker {}` took over {COMMAND_TIMEOUT:?}", args.join(" ")))
        .unwrap_or_else(|e| panic!("cannot run `docker {}`: {e}", args.join(" ")))
}

/// `output` of `docker args...`, failing the test (with both output streams) unless
/// it succeeded.
pub(crate) fn assert_docker_succeeded(args: &[&str], output: Output) -> Output {
    assert!(
        output.status.success(),
        "`docker {}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Removes the test's local images whatever happens, so that a failed run leaves the
/// shared daemon clean for the next.
pub(crate) struct LocalImages(pub(crate) Vec<String>);

impl Drop for LocalImages {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", image]).output();
        }
    }
}

/// Fails the test when no Docker daemon was given to it. Where Docker cannot run,
/// leave the test out by name (`--skip docker_cli::`, which scripts/test.sh passes
/// with `REGISTRY_TEST_NO_DOCKER=1`), so that it is counted as skipped, not passed.
pub(crate) fn require_docker() {
    assert!(
        std::env::var_os("DOCKER_HOST").is_some(),
        "DOCKER_HOST is not set. The Docker CLI test needs the private dockerd that \
         scripts/test.sh starts: run `bash scripts/test.sh` (as root, or with passwordless \
         sudo), or set REGISTRY_TEST_NO_DOCKER=1 there to leave this test out on purpose."
    );
}

/// A root filesystem tarball holding only a static busybox.
pub(crate) fn base_tarball(dir: &Path) -> PathBuf {
    let busybox = std::env::var("REGISTRY_TEST_BUSYBOX").unwrap_or_else(|_| DEFAULT_BUSYBOX.into());
    assert!(
        Path::new(&busybox).is_file(),
        "{busybox} not found: install Debian's busybox-static (scripts/test.sh does, as root)"
    );
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(&busybox, rootfs.join("bin/busybox")).unwrap();
    let tarball = dir.join("base.tar");
    let status =
        Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tarball).arg(".").status().expect("run tar");
    assert!(status.success(), "tar of the base rootfs failed");
    tarball
}

/// A three-layer image built offline: busybox, then two files of fresh random content.
pub(crate) struct BuiltImage {
    /// The local image ID (its config's digest).
    pub(crate) id: String,
    /// The content of `/a.txt` (layer 2).
    pub(crate) a: String,
    /// The content of `/b.bin` (layer 3).
    pub(crate) b: Vec<u8>,
}

/// The build context of [`BuiltImage`] in `dir`: `base.tar` (layer 1: busybox, to
/// import, so nothing is pulled from the internet), and `context/` with a Dockerfile
/// `FROM base` that copies in two files of fresh random content (layers 2 and 3).
/// Returns the tarball, the context, `a.txt` and `b.bin`.
pub(crate) fn build_context(dir: &Path, base: &str) -> (PathBuf, PathBuf, String, Vec<u8>) {
    let tarball = base_tarball(dir);
    let context = dir.join("context");
    std::fs::create_dir_all(&context).unwrap();
    let a = hex::encode(random_bytes(32));
    let b = random_bytes(200_000);
    std::fs::write(context.join("a.txt"), &a).unwrap();
    std::fs::write(context.join("b.bin"), &b).unwrap();
    std::fs::write(context.join("Dockerfile"), format!("FROM {base}\nCOPY a.txt /a.txt\nCOPY b.bin /b.bin\n")).unwrap();
    (tarball, context, a, b)
}

/// Builds a [`BuiltImage`] tagged `image` in `work`; its local images (it and its
/// base) go into `cleanup`.
pub(crate) async fn build_image(work: &Path, image: &str, cleanup: &mut LocalImages) -> BuiltImage {
    let base = format!("e2e-base:{}", unique_id());
    cleanup.0.extend([image.to_string(), base.clone()]);
    let (tarball, context, a, b) = build_context(work, &base);
    docker(&["import", tarball.to_str().unwrap(), &base]).await;
    docker(&["build", "-t", image, context.to_str().unwrap()]).await;
    // The base is needed no more: a pull of `image` must then fetch every layer.
    docker(&["rmi", &base]).await;

    let id = stdout(&docker(&["image", "inspect", "-f", "{{.Id}}", image]).await);
    let layer_count = stdout(&docker(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", image]).await);
    assert_eq!(layer_count, "3", "the test image should have three layers");
    BuiltImage { id, a, b }
}

/// Removes `image` locally and checks that it is gone, so that a pull must fetch
/// every layer.
pub(crate) async fn remove_local(image: &str) {
    docker(&["rmi", image]).await;
    let gone = docker_unchecked(&["image", "inspect", image]).await;
    assert!(!gone.status.success(), "{image} still exists locally after rmi");
}

/// The local image `image` has the ID of `built`, runs, and holds the files of
/// layers 2 and 3.
pub(crate) async fn assert_pulled(image: &str, built: &BuiltImage) {
    let pulled_id = stdout(&docker(&["image", "inspect", "-f", "{{.Id}}", image]).await);
    assert_eq!(pulled_id, built.id, "image ID after the round trip");
    let cat = docker(&["run", "--rm", "--network", "none", image, "/bin/busybox", "cat", "/a.txt"]).await;
    assert_eq!(stdout(&cat), built.a);
    let sum = docker(&["run", "--rm", "--network", "none", image, "/bin/busybox", "sha256sum", "/b.bin"]).await;
    let expected = crate::common::sha256_digest(&built.b);
    assert_eq!(stdout(&sum).split_whitespace().next(), expected.strip_prefix("sha256:"), "content of /b.bin");
}

/// Docker push of a three-layer image, local delete, pull, same image ID, and the
/// pulled image runs and holds the files of every layer.
#[tokio::test]
async fn docker_push_pull_multi_layer_round_trip() {
    require_docker();
    let server = RegistryServer::start();
    let work = tempfile::Builder::new().prefix("registry-e2e-docker.").tempdir().unwrap();
    let image = format!("{}/e2e/busybox:multi", server.host_port());
    let mut cleanup = LocalImages(Vec::new());
    let built = build_image(work.path(), &image, &mut cleanup).await;

    docker(&["push", &image]).await;

    // The registry now serves a Docker schema2 manifest for the tag.
    let resp = server
        .client()
        .head(server.url("/v2/e2e/busybox/manifests/multi"))
        .header(ACCEPT, media::ACCEPT_ALL_MANIFESTS)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let manifest_digest = header(&resp, "Docker-Content-Digest").to_string();

    remove_local(&image).await;
    docker(&["pull", &image]).await;
    let repo_digests = stdout(&docker(&["image", "inspect", "-f", "{{json .RepoDigests}}", &image]).await);
    assert!(
        repo_digests.contains(&format!("{}/e2e/busybox@{manifest_digest}", server.host_port())),
        "RepoDigests {repo_digests} lacks the registry's digest {manifest_digest}"
    );
    // The pulled image runs, and holds the files of layers 2 and 3.
    assert_pulled(&image, &built).await;
}

//! The container image (`Dockerfile`, `scripts/image.sh`): built with the private
//! dockerd of scripts/test.sh from nothing but this build (no base image pulled),
//! run as a non-root user with a volume for its data, and used as Docker users use a
//! registry: the image pushes itself into the registry it runs, is removed locally,
//! and pulls back with the same image ID. Its data survives a new container on the
//! same volume.

use std::time::{Duration, Instant};

use crate::common::{install_crypto_provider, registry_host_bin, repo_root, require_host_binary, workspace_target_dir};
use crate::docker_cli::{require_docker, run_docker, stdout};

/// Runs `docker args...`, failing the test with its output unless it succeeds.
async fn docker(args: &[&str]) -> String {
    let output = crate::docker_cli::assert_docker_succeeded(args, run_docker(None, args, None).await);
    stdout(&output)
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Removes the test's container, volume and image tags, whatever happened.
struct Cleanup {
    container: String,
    volume: String,
    tags: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = std::process::Command::new("docker").args(args).output();
        };
        quiet(&["rm", "-f", &self.container]);
        quiet(&["volume", "rm", "-f", &self.volume]);
        for tag in &self.tags {
            quiet(&["rmi", "-f", tag]);
        }
    }
}

/// Starts the image on the host's network, on `port`, with `volume` as /data; waits
/// for GET /v2/.
async fn run_registry(image: &str, container: &str, volume: &str, port: u16) {
    let listen = format!("127.0.0.1:{port}");
    install_crypto_provider();
    docker(&[
        "run",
        "-d",
        "--name",
        container,
        "--network",
        "host",
        "-v",
        &format!("{volume}:/data"),
        image,
        "--listen",
        &listen,
    ])
    .await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(resp) = client.get(format!("http://{listen}/v2/")).send().await {
            assert_eq!(resp.status(), reqwest::StatusCode::OK);
            return;
        }
        if Instant::now() > deadline {
            let logs = run_docker(None, &["logs", container], None).await;
            panic!(
                "the registry in the container did not answer in 60 s:\n{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_image_runs_as_a_registry_that_docker_pushes_into() {
    require_host_binary();
    require_docker();
    let id = crate::common::unique_id();
    let image = format!("registry-host-e2e:{id}");
    let port = free_port();
    let pushed = format!("127.0.0.1:{port}/e2e/registry-host:{id}");
    let mut cleanup = Cleanup {
        container: format!("registry-e2e-{id}"),
        volume: format!("registry-e2e-data-{id}"),
        tags: vec![image.clone(), pushed.clone()],
    };

    let built = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/image.sh"))
        .args([&image, "--no-build"])
        .env("REGISTRY_HOST_BIN", registry_host_bin())
        .env("CARGO_TARGET_DIR", workspace_target_dir())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("run scripts/image.sh");
    assert!(
        built.status.success(),
        "scripts/image.sh failed:\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    assert_eq!(docker(&["image", "inspect", "-f", "{{.Config.User}}", &image]).await.trim(), "10001:10001");

    run_registry(&image, &cleanup.container, &cleanup.volume, port).await;
    let image_id = docker(&["image", "inspect", "-f", "{{.Id}}", &image]).await;
    docker(&["tag", &image, &pushed]).await;
    docker(&["push", &pushed]).await;
    docker(&["rmi", &pushed]).await;

    // A new container on the same volume still has the pushed image.
    docker(&["rm", "-f", &cleanup.container]).await;
    cleanup.container = format!("registry-e2e-{id}-again");
    run_registry(&image, &cleanup.container, &cleanup.volume, port).await;
    docker(&["pull", &pushed]).await;
    assert_eq!(docker(&["image", "inspect", "-f", "{{.Id}}", &pushed]).await, image_id, "the pulled image differs");
}

//! registry-host's own garbage collection: the `gc` subcommand on a stopped
//! server's data directory (refused while a server holds it), and a run cut
//! by SIGKILL that the steps after a restart finish.

use std::time::Duration;

use crate::common::{
    media, random_bytes, registry_host_bin, require_host_binary, Descriptor, RegistryServer, TestImage,
};
use crate::gc::{wait_for_files, Remote};

/// registry-host only: `registry-host gc` collects a stopped server's data
/// directory, and refuses while a server holds it.
#[tokio::test]
async fn the_host_subcommand_collects_a_stopped_servers_directory() {
    require_host_binary();
    let mut server = RegistryServer::start_with_args(&["--gc-interval", "0"]);
    let data_dir = server.data_dir().expect("a local data directory").to_path_buf();
    let stored = server.stored().expect("a registry of the test's own").clone();
    let orphan = random_bytes(50_000);
    let digest = server.push_blob("gc/cli", &orphan).await;
    wait_for_files(&stored, &[digest.as_str()]).await;
    let host = registry_host_bin();
    let gc = |extra: &[&str]| {
        std::process::Command::new(&host)
            .args(["gc", "--data-dir"])
            .arg(&data_dir)
            .args(["--gc-grace", "0"])
            .args(extra)
            .output()
            .expect("run registry-host gc")
    };
    let busy = gc(&[]);
    assert!(!busy.status.success(), "refused while the server runs");
    assert!(String::from_utf8_lossy(&busy.stderr).contains("lock"), "{}", String::from_utf8_lossy(&busy.stderr));
    server.signal_and_wait("TERM", Duration::from_secs(30)).expect("the server stops");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let dry = gc(&["--dry-run"]);
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{out} {}", String::from_utf8_lossy(&dry.stderr));
    assert!(out.contains(&format!("would remove {digest}")), "{out}");
    assert!(stored.has_blob(&digest));

    let run = gc(&[]);
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{out} {}", String::from_utf8_lossy(&run.stderr));
    assert!(out.contains("removed 0 untagged manifests, 1 blobs (50000 bytes)"), "{out}");
    assert!(!stored.has_blob(&digest));
}

/// registry-host only: SIGKILL while a step runs, then a restart: the store is
/// consistent, and the next steps finish the run and remove what it should.
#[tokio::test]
async fn a_run_cut_by_sigkill_finishes_after_a_restart() {
    require_host_binary();
    let flags = ["--gc-endpoint", "--gc-grace", "0", "--gc-interval", "0"];
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let mut server = RegistryServer::start_host_on_with(&data_dir, &flags);
    let remote = Remote::of(&server);
    let mut kept = Vec::new();
    let mut gone = Vec::new();
    for i in 0..40 {
        let repo = format!("kill/r{i}");
        let layer = remote.blob(&repo, &random_bytes(20_000 + i)).await;
        let config = remote.blob(&repo, format!("{{\"i\":{i}}}").as_bytes()).await;
        let image = TestImage {
            config: Descriptor { media_type: media::OCI_CONFIG.into(), ..config },
            layers: vec![layer],
            docker: false,
        };
        let digest = remote.manifest(&repo, "v1", &image.manifest()).await;
        if i % 2 == 0 {
            remote.delete_manifest(&repo, &digest).await;
            gone.push(image.layers[0].digest.clone());
        } else {
            kept.push((repo, digest, image));
        }
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A step in flight when the process dies.
    let step = tokio::spawn({
        let remote = remote.clone();
        async move { remote.client.post(remote.url("/_registry/gc")).send().await }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    server.signal_and_wait("KILL", Duration::from_secs(10)).expect("the server dies");
    let _ = step.await;

    let server = RegistryServer::start_host_on_with(&data_dir, &flags);
    let stored = server.stored().expect("a registry of the test's own").clone();
    let remote = Remote::of(&server);
    for (repo, digest, image) in &kept {
        remote.pull(repo, digest, image).await.unwrap_or_else(|e| panic!("after the restart: {e}"));
    }
    // A lease the killed step held expires; the steps after it finish the run.
    let run = tokio::time::timeout(Duration::from_secs(120), remote.collect()).await.expect("the run finishes");
    assert_eq!(run["phase"], "done", "{run}");
    // Small blobs whose journal records the restart redid count as touched
    // at the restart (later than their commit: kept longer, never shorter),
    // so a run that started after it removes them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let run = remote.collect().await;
    assert_eq!(run["phase"], "done", "{run}");
    for (repo, digest, image) in &kept {
        remote.pull(repo, digest, image).await.unwrap_or_else(|e| panic!("after the run: {e}"));
    }
    for digest in &gone {
        assert!(!stored.has_blob(digest), "{digest} was collected");
    }
}

//! Docker's `registry-mirrors`: the private dockerd that scripts/test.sh starts
//! has `--registry-mirror http://$REGISTRY_TEST_DOCKER_MIRROR`, and this test
//! serves a registry there whose default upstream is a registry on loopback. A
//! `docker pull` of a Docker Hub name (`busybox:<tag>`, that is
//! `docker.io/library/busybox`) then comes through the mirror from that upstream,
//! with no internet (without the mirror, the daemon would try Docker Hub and fail).

use std::time::Duration;

use crate::common::{unique_id, RegistryServer};
use crate::docker_cli::{
    assert_docker_succeeded, assert_pulled, build_image, remove_local, require_docker, run_docker, LocalImages,
};

async fn docker(args: &[&str]) {
    assert_docker_succeeded(args, run_docker(None, args, None).await);
}

#[tokio::test]
async fn docker_pulls_hub_names_through_a_registry_mirror() {
    require_docker();
    let mirror_addr = std::env::var("REGISTRY_TEST_DOCKER_MIRROR").expect(
        "REGISTRY_TEST_DOCKER_MIRROR is not set: scripts/test.sh starts dockerd with that mirror address \
         and names it there",
    );
    let work = tempfile::Builder::new().prefix("registry-e2e-docker-mirror.").tempdir().unwrap();
    let upstream = RegistryServer::start_host_with("127.0.0.1:0", &[], crate::common::http_client());
    let tag = format!("mirror-{}", unique_id());
    let pushed = format!("{}/library/busybox:{tag}", upstream.host_port());
    let mut cleanup = LocalImages(Vec::new());
    let built = build_image(work.path(), &pushed, &mut cleanup).await;
    docker(&["push", &pushed]).await;
    remove_local(&pushed).await;

    let config = work.path().join("mirrors.toml");
    std::fs::write(&config, format!("[[upstream]]\nprefix = \"\"\nurl = \"{}\"\n", upstream.base_url())).unwrap();
    let mirror = RegistryServer::start_host_with(
        &mirror_addr,
        &["--proxy", config.to_str().unwrap()],
        crate::common::http_client(),
    );
    let hub_name = format!("busybox:{tag}");
    cleanup.0.push(hub_name.clone());
    docker(&["pull", &hub_name]).await;
    assert_pulled(&hub_name, &built).await;
    assert!(
        mirror
            .wait_for_line(
                |l| l.contains("/v2/library/busybox/manifests/") && l.contains(" 200"),
                Duration::from_secs(5)
            )
            .is_some(),
        "the pull did not come through the mirror"
    );
}

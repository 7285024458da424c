//! `--proxy` on SIGHUP: registry-host rereads the mirror settings; a name prefix
//! added by the reload is mirrored from then on, and a file that does not parse
//! keeps the settings in force.

use std::time::Duration;

use reqwest::StatusCode;

use crate::common::{replace, require_host_binary, send_signal, RegistryServer};
use crate::mirror::{upstream, USER};

/// One upstream for names under `prefix`, with the upstream's credentials.
fn settings(prefix: &str, url: &str) -> String {
    format!(
        "[[upstream]]\nprefix = \"{prefix}\"\nurl = \"{url}\"\nusername = \"{}\"\npassword = \"{}\"\n",
        USER.0, USER.1
    )
}

#[tokio::test]
async fn sighup_rereads_the_mirror_settings() {
    require_host_binary();
    let scratch = tempfile::Builder::new().prefix("registry-e2e-mirrors.").tempdir().unwrap();
    let (_files, upstream) = upstream();
    // `e2e/<name>` here mirrors `<name>` there, once the reload maps `e2e`.
    upstream.push_image("reload/app", &["v1"]).await;
    let file = scratch.path().join("mirrors.toml");
    std::fs::write(&file, settings("elsewhere", upstream.base_url())).unwrap();
    let mirror = RegistryServer::start_host_with(
        "127.0.0.1:0",
        &["--proxy", file.to_str().unwrap()],
        crate::common::http_client(),
    );
    let status = |reference: &'static str| {
        let request = mirror.client().get(mirror.url(&format!("/v2/e2e/reload/app/manifests/{reference}")));
        async move { request.header("accept", crate::common::media::OCI_MANIFEST).send().await.unwrap().status() }
    };
    assert_eq!(status("v1").await, StatusCode::NOT_FOUND, "e2e/ is not mirrored yet");

    let reload = |wanted: &'static str| {
        send_signal(mirror.pid(), "HUP");
        mirror
            .wait_for_line(|l| l.contains(wanted), Duration::from_secs(15))
            .unwrap_or_else(|| panic!("no line containing {wanted:?} after SIGHUP"))
    };
    replace(&file, settings("e2e", upstream.base_url()).as_bytes());
    let line = reload("reload: mirrors:");
    assert!(line.ends_with(" changed"), "{line}");
    assert_eq!(status("v1").await, StatusCode::OK, "e2e/ is mirrored after the reload");

    replace(&file, b"[[upstream]]\nprefix = \"e2e\"\n");
    let line = reload("keeping the previous mirror settings");
    assert!(line.contains("ERROR") && line.contains(file.to_str().unwrap()), "{line}");
    assert_eq!(status("v1").await, StatusCode::OK, "the settings in force after a refused reload");
}

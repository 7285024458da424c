//! skopeo with credentials on the command line (`--creds`, `--dest-creds`,
//! `--src-creds`): the multi-arch OCI layout of the `skopeo` test copied in as
//! alice, read and copied out as bob, copied registry to registry with both, and
//! pulled anonymously from `public/**`; no credentials, a wrong password, an unknown
//! user and bob's push are refused, and leave nothing behind.

use std::process::Output;

use reqwest::StatusCode;

use super::{creds, refused, started, status_as, ALICE, BOB};
use crate::common::{sha256_digest, string_list};
use crate::skopeo::{build_layout, read_blobs, Skopeo};

/// Fails the test unless `output` (of `what`) failed and says the registry refused it.
fn assert_refused(what: &str, output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{what} succeeded; stderr:\n{stderr}");
    assert!(refused(&stderr), "{what} failed, but not as refused:\n{stderr}");
}

#[tokio::test]
async fn copy_in_and_out_with_credentials() {
    let Some((_files, server)) = started() else { return };
    let scratch = tempfile::Builder::new().prefix("registry-e2e-skopeo.").tempdir().unwrap();
    let skopeo = Skopeo::new(scratch.path());
    let layout = build_layout(&scratch.path().join("layout"), "v1");
    let image = format!("docker://{}/team/skopeo", server.host_port());
    let v1 = format!("{image}:v1");
    let source = format!("oci:{}:v1", layout.dir.display());
    let copy_in = ["copy", "--all", "--preserve-digests", "--dest-tls-verify=false"];
    let (alice, bob) = (creds(ALICE), creds(BOB));

    // Refused: no credentials, a wrong password, an unknown user, a reader.
    for (who, flags) in [
        ("anonymous", vec![]),
        ("a wrong password", vec!["--dest-creds", "alice:wrong"]),
        ("an unknown user", vec!["--dest-creds", "mallory:alice-pw"]),
        ("bob, who may only pull", vec!["--dest-creds", bob.as_str()]),
    ] {
        let args: Vec<&str> = copy_in.iter().copied().chain(flags).chain([source.as_str(), v1.as_str()]).collect();
        assert_refused(&format!("a copy in by {who}"), &skopeo.run_unchecked(&args).await);
    }
    let index_path = format!("/v2/team/skopeo/manifests/{}", layout.index_digest());
    assert_eq!(status_as(&server, Some(ALICE), &index_path).await, StatusCode::NOT_FOUND);
    assert_eq!(status_as(&server, Some(ALICE), "/v2/team/skopeo/manifests/v1").await, StatusCode::NOT_FOUND);

    // alice copies it in; bob reads it back exactly.
    let args: Vec<&str> = copy_in.iter().copied().chain(["--dest-creds", &alice, &source, &v1]).collect();
    skopeo.run(&args).await;
    let raw = skopeo.run(&["inspect", "--raw", "--tls-verify=false", "--creds", &bob, &v1]).await;
    assert!(raw == layout.index, "the index as bob reads it:\n{}", String::from_utf8_lossy(&raw));
    for platform in &layout.platforms {
        let by_digest = format!("{image}@{}", sha256_digest(&platform.manifest));
        let raw = skopeo.run(&["inspect", "--raw", "--tls-verify=false", "--creds", &bob, &by_digest]).await;
        assert!(raw == platform.manifest, "{} manifest by digest", platform.arch);
    }
    let tags = skopeo.run_json(&["list-tags", "--tls-verify=false", "--creds", &bob, &image]).await;
    assert_eq!(string_list(&tags, "Tags"), ["v1"], "{tags}");

    // Reading with a wrong password, or none, is refused (team/** is not public).
    for (who, flags) in [("a wrong password", vec!["--creds", "bob:wrong"]), ("anonymous", vec![])] {
        let args: Vec<&str> =
            ["inspect", "--raw", "--tls-verify=false"].into_iter().chain(flags).chain([v1.as_str()]).collect();
        assert_refused(&format!("an inspect by {who}"), &skopeo.run_unchecked(&args).await);
    }

    // Out into a second layout as bob: the same blobs, byte for byte.
    let back = scratch.path().join("back");
    let target = format!("oci:{}:v1", back.display());
    let args = ["copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--src-creds", &bob, &v1, &target];
    skopeo.run(&args).await;
    let copied = read_blobs(&back);
    assert_eq!(copied.keys().collect::<Vec<_>>(), layout.blobs.keys().collect::<Vec<_>>(), "the copied-out blobs");
    for (digest, body) in &layout.blobs {
        assert!(copied[digest] == *body, "{digest} differs after the round trip");
    }

    // Registry to registry, reading as bob and writing as alice, into public/**,
    // which anyone may then read.
    let public = format!("docker://{}/public/skopeo:v1", server.host_port());
    skopeo
        .run(&[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &bob,
            "--dest-creds",
            &alice,
            &v1,
            &public,
        ])
        .await;
    let raw = skopeo.run(&["inspect", "--raw", "--tls-verify=false", &public]).await;
    assert!(raw == layout.index, "the public index, read anonymously");
}

//! The oras Python SDK signed in (`oras_client.py --mode credentials`): alice
//! pushes with Basic credentials, bob pulls through the token flow, anyone pulls
//! `public/**` with an anonymous token; an anonymous pull of `team/**`, an anonymous
//! push, bob's push and a wrong password are refused. See the script for why its
//! `token` backend is never used to push.

use reqwest::StatusCode;

use super::{creds, refused, started, status_as, ALICE, BOB};
use crate::oras::run_oras_client;

#[tokio::test]
async fn oras_sdk_with_credentials() {
    let Some((_files, server)) = started() else { return };
    let (writer, reader) = (creds(ALICE), creds(BOB));
    let args = [
        "--mode",
        "credentials",
        "--repo",
        "team/oras",
        "--public-repo",
        "public/oras",
        "--writer",
        &writer,
        "--reader",
        &reader,
    ];
    let result = run_oras_client(&server, &args).await;

    // What the signed-in clients did is there, and came back intact.
    for (repo, key) in [("team/oras", "team"), ("public/oras", "public")] {
        let digest = result[key]["digest"].as_str().unwrap_or_else(|| panic!("no {key} digest: {result}"));
        let path = format!("/v2/{repo}/manifests/{digest}");
        assert_eq!(status_as(&server, Some(BOB), &path).await, StatusCode::OK, "{path}");
        assert_eq!(result[key]["pulled_equal"], true, "{key}: {result}");
    }
    assert_eq!(result["team"]["tags"], serde_json::json!(["v1"]), "{result}");

    // Each refusal came from the registry, and left nothing behind.
    for what in ["anonymous_pull", "anonymous_push", "reader_push", "wrong_password_push"] {
        let error = result["refused"][what].as_str().unwrap_or_else(|| panic!("{what} succeeded: {result}"));
        assert!(refused(error), "{what} failed, but not as refused: {error}");
    }
    for path in ["/v2/public/oras/manifests/v2", "/v2/team/oras/manifests/v2", "/v2/team/oras/manifests/v3"] {
        assert_eq!(status_as(&server, Some(ALICE), path).await, StatusCode::NOT_FOUND, "{path}");
    }
}

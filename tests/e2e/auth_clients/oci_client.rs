//! The `oci-client` crate with credentials: `RegistryAuth::Basic` pushes (chunked and
//! monolithic) and pulls through the token flow; `RegistryAuth::Anonymous` pulls
//! from `public/**`, where the policy lets anyone pull, and nothing else; anonymous
//! and read-only pushes are refused.

use oci_client::errors::OciDistributionError;
use oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use reqwest::StatusCode;

use super::{refused, started, status_as, ALICE, BOB};
use crate::common::RegistryServer;
use crate::oci_client::{client, image, push_and_pull_as};

fn basic((user, password): (&str, &str)) -> RegistryAuth {
    RegistryAuth::Basic(user.to_string(), password.to_string())
}

fn reference(server: &RegistryServer, repo_tag: &str) -> Reference {
    format!("{}/{repo_tag}", server.host_port()).parse().expect("image reference")
}

/// Fails the test unless `result` (of `what`) is an error that says the registry
/// refused it.
fn assert_refused<T>(what: &str, result: Result<T, OciDistributionError>) {
    match result {
        Ok(_) => panic!("{what} succeeded"),
        Err(e) => assert!(refused(&format!("{e} {e:?}")), "{what} failed, but not as refused: {e} ({e:?})"),
    }
}

#[tokio::test]
async fn basic_credentials_push_and_pull() {
    let Some((_files, server)) = started() else { return };
    push_and_pull_as(&server, "team/oci-client/chunked", false, &basic(ALICE)).await;
    push_and_pull_as(&server, "public/oci-client", true, &basic(ALICE)).await;

    // bob may pull what alice pushed, but not push; a wrong password gets nothing.
    let bobs_client = client(false);
    let team = reference(&server, "team/oci-client/chunked:v1");
    let pulled = bobs_client.pull(&team, &basic(BOB), vec![IMAGE_LAYER_MEDIA_TYPE]).await.expect("bob's pull");
    assert_eq!(pulled.layers.len(), 3);
    let (layers, config) = image();
    let bobs = reference(&server, "team/oci-client/bob:v1");
    assert_refused("bob's push", bobs_client.push(&bobs, &layers, config, &basic(BOB), None).await);
    assert_eq!(status_as(&server, Some(ALICE), "/v2/team/oci-client/bob/manifests/v1").await, StatusCode::NOT_FOUND);
    let wrong = client(false).pull(&team, &basic(("alice", "wrong")), vec![IMAGE_LAYER_MEDIA_TYPE]).await.map(|_| ());
    assert_refused("a pull with a wrong password", wrong);
}

#[tokio::test]
async fn anonymous_pulls_public_repositories_only() {
    let Some((_files, server)) = started() else { return };
    let (layers, config) = image();
    let signed_in = client(false);
    for repo_tag in ["public/oci-client:v1", "team/oci-client:v1"] {
        signed_in.push(&reference(&server, repo_tag), &layers, config.clone(), &basic(ALICE), None).await.unwrap();
    }

    let anonymous = client(false);
    let public = reference(&server, "public/oci-client:v1");
    let pulled = anonymous
        .pull(&public, &RegistryAuth::Anonymous, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await
        .expect("an anonymous pull from public/");
    assert!(pulled.config.data == config.data, "the config pulled anonymously");
    assert_eq!(pulled.layers.len(), layers.len());

    let team = reference(&server, "team/oci-client:v1");
    let result = client(false).pull(&team, &RegistryAuth::Anonymous, vec![IMAGE_LAYER_MEDIA_TYPE]).await;
    assert_refused("an anonymous pull from team/", result.map(|_| ()));
    let again = reference(&server, "public/oci-client:v2");
    let result = client(false).push(&again, &layers, config, &RegistryAuth::Anonymous, None).await;
    assert_refused("an anonymous push to public/", result);
    assert_eq!(status_as(&server, Some(ALICE), "/v2/public/oci-client/manifests/v2").await, StatusCode::NOT_FOUND);
}

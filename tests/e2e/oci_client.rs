//! A real client library against the registry: the `oci-client` crate pushes a
//! multi-layer image over plain HTTP with anonymous auth and pulls it back, once
//! with its chunked upload and once with monolithic uploads.

use std::collections::BTreeMap;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciManifest, IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::common::{install_crypto_provider, random_bytes, sha256_digest, unique_id, RegistryServer};

/// An `oci-client` for the plain-HTTP registry under test.
pub(crate) fn client(monolithic: bool) -> Client {
    install_crypto_provider();
    Client::new(ClientConfig { protocol: ClientProtocol::Http, use_monolithic_push: monolithic, ..Default::default() })
}

/// Three random layers (one larger than oci-client's 4 MiB chunk, so that it goes
/// up in two PATCHes) and a config.
pub(crate) fn image() -> (Vec<ImageLayer>, Config) {
    let layers = vec![
        ImageLayer::oci_v1(random_bytes(5 * 1024 * 1024 + 17), None),
        ImageLayer::oci_v1(random_bytes(300_000), None),
        ImageLayer::oci_v1(random_bytes(1), None),
    ];
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[]}},"comment":"{}"}}"#,
        unique_id()
    );
    (layers, Config::oci_v1(config.into_bytes(), None))
}

/// Pushes an image to `repo:v1`, pulls it back by tag and by digest, and compares
/// layers, config and manifest digests; anonymously.
async fn push_and_pull(server: &RegistryServer, repo: &str, monolithic: bool) {
    push_and_pull_as(server, repo, monolithic, &RegistryAuth::Anonymous).await;
}

/// [`push_and_pull`] with `auth`.
pub(crate) async fn push_and_pull_as(server: &RegistryServer, repo: &str, monolithic: bool, auth: &RegistryAuth) {
    let client = client(monolithic);
    let reference: Reference = format!("{}/{repo}:v1", server.host_port()).parse().expect("image reference");
    let (layers, config) = image();

    client.push(&reference, &layers, config.clone(), auth, None).await.expect("oci-client push");

    for layer in &layers {
        assert!(
            client.blob_exists(&reference, &layer.sha256_digest()).await.unwrap(),
            "layer {} missing after the push",
            layer.sha256_digest()
        );
    }

    let pulled = client.pull(&reference, auth, vec![IMAGE_LAYER_MEDIA_TYPE]).await.expect("oci-client pull");
    assert!(pulled.config.data == config.data, "the pulled config differs");
    // oci-client downloads layers concurrently and collects them in completion
    // order, so compare by digest.
    let expected: BTreeMap<String, &[u8]> = layers.iter().map(|l| (l.sha256_digest(), &l.data[..])).collect();
    let got: BTreeMap<String, &[u8]> = pulled.layers.iter().map(|l| (l.sha256_digest(), &l.data[..])).collect();
    assert_eq!(got.len(), layers.len(), "layer count");
    for (digest, data) in &expected {
        let pulled_data = got.get(digest).unwrap_or_else(|| panic!("layer {digest} not pulled"));
        assert!(pulled_data == data, "layer {digest} differs");
    }
    let manifest = pulled.manifest.expect("pulled manifest");
    let manifest_layers: Vec<&str> = manifest.layers.iter().map(|d| d.digest.as_str()).collect();
    let pushed_layers: Vec<String> = layers.iter().map(|l| l.sha256_digest()).collect();
    assert_eq!(manifest_layers, pushed_layers, "layer order in the manifest");
    let image_digest = pulled.digest.expect("digest of the pulled manifest");

    // The manifest on its own: parsed, raw, and its digest by HEAD.
    let (parsed, digest) = client.pull_manifest(&reference, auth).await.expect("pull_manifest");
    assert_eq!(digest, image_digest);
    match parsed {
        OciManifest::Image(m) => assert_eq!(m.config.digest, sha256_digest(&config.data)),
        OciManifest::ImageIndex(_) => panic!("pushed an image manifest, pulled an index"),
    }
    let (raw, digest) =
        client.pull_manifest_raw(&reference, auth, &[OCI_IMAGE_MEDIA_TYPE]).await.expect("pull_manifest_raw");
    assert_eq!(digest, image_digest);
    assert_eq!(sha256_digest(&raw), image_digest, "digest of the raw manifest bytes");
    let head_digest = client.fetch_manifest_digest(&reference, auth).await.expect("fetch_manifest_digest");
    assert_eq!(head_digest, image_digest);

    // Pulling by digest gives the same image.
    let by_digest: Reference =
        format!("{}/{repo}@{image_digest}", server.host_port()).parse().expect("digest reference");
    let again = client.pull(&by_digest, auth, vec![IMAGE_LAYER_MEDIA_TYPE]).await.expect("pull by digest");
    assert_eq!(again.layers.len(), layers.len());
    assert!(again.config.data == config.data);
}

/// oci-client's default push: chunked uploads (PATCH with Content-Range).
#[tokio::test]
async fn oci_client_push_pull_chunked() {
    let server = RegistryServer::start();
    push_and_pull(&server, "e2e/oci-client", false).await;
}

/// oci-client with `use_monolithic_push`: POST, then one PUT per blob.
#[tokio::test]
async fn oci_client_push_pull_monolithic() {
    let server = RegistryServer::start();
    push_and_pull(&server, "a/b/c", true).await;
}

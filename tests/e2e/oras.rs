//! The oras Python SDK (PyPI: `oras`) against the registry: push an artifact with a
//! custom artifact type, attach a signature to it as a referrer, attach a second
//! referrer, pull the artifact back (all in `oras_client.py`, beside this file),
//! then discover the referrers through the referrers API with and without the
//! `artifactType` filter. The SDK has no referrers call, so discovery is raw HTTP
//! from here.
//!
//! `scripts/test.sh` installs the SDK when `python3` lacks it; without it this test
//! fails, saying how to install it.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{media, RegistryServer};

const SBOM: &str = "application/vnd.example.sbom.v1";
const SIGNATURE: &str = "application/vnd.example.signature.v1";
const ATTESTATION: &str = "application/vnd.example.attestation.v1";

/// How long the Python script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// The Python interpreter: `$REGISTRY_TEST_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("REGISTRY_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fails the test, saying how to get it, unless `python` can import `oras`.
fn require_oras_sdk(python: &str) {
    let out = std::process::Command::new(python).args(["-c", "import oras.provider"]).output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the oras Python SDK is missing: `{python} -m pip install oras` \
             (scripts/test.sh installs it); {python} says:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("cannot run {python} ({e}): install Python 3 and `pip install oras`"),
    }
}

/// GET the referrers of `subject` in `repo` (with `query`): asserts 200 and an OCI
/// index; returns the `OCI-Filters-Applied` header and the descriptors.
async fn referrers(server: &RegistryServer, repo: &str, subject: &str, query: &str) -> (Option<String>, Vec<Value>) {
    let resp = server
        .client()
        .get(server.url(&format!("/v2/{repo}/referrers/{subject}{query}")))
        .header(ACCEPT, media::OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "referrers{query}");
    assert_eq!(resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some(media::OCI_INDEX));
    let filters = resp.headers().get("OCI-Filters-Applied").map(|v| v.to_str().unwrap().to_string());
    let index: Value = resp.json().await.unwrap();
    assert_eq!(index["mediaType"], media::OCI_INDEX, "{index}");
    (filters, index["manifests"].as_array().cloned().unwrap_or_default())
}

fn digests(list: &[Value]) -> BTreeSet<String> {
    list.iter().map(|d| d["digest"].as_str().unwrap().to_string()).collect()
}

/// Runs `oras_client.py --registry HOST:PORT --workdir TMP args...` against
/// `server`, failing the test (with its output) unless it succeeds; returns the JSON
/// object it prints.
pub(crate) async fn run_oras_client(server: &RegistryServer, args: &[&str]) -> Value {
    let python = python();
    require_oras_sdk(&python);
    let work = tempfile::Builder::new().prefix("registry-e2e-oras.").tempdir().unwrap();
    let script = crate::common::tests_dir().join("e2e/oras_client.py");

    let mut command = tokio::process::Command::new(&python);
    command
        .arg(&script)
        .arg("--registry")
        .arg(server.host_port())
        .arg("--workdir")
        .arg(work.path())
        .args(args)
        // The registry is on loopback: never through a proxy.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .kill_on_drop(true);
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("oras_client.py took over {SCRIPT_TIMEOUT:?}"))
        .expect("run oras_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "oras_client.py {} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        args.join(" "),
        out.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("oras_client.py printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// The round trip; see the module documentation.
#[tokio::test]
async fn oras_sdk_artifact_with_referrers() {
    let server = RegistryServer::start();
    let repo = "e2e/oras/artifact";
    let result = run_oras_client(&server, &["--repo", repo]).await;

    let sbom = result["sbom"]["digest"].as_str().unwrap().to_string();
    let signature = result["signature"]["digest"].as_str().unwrap().to_string();
    let attestation = result["attestation"]["digest"].as_str().unwrap().to_string();

    // What the SDK saw: OCI-Subject on both referrer pushes, the pulled file intact,
    // and the three tags.
    assert_eq!(result["signature"]["oci_subject"], sbom.as_str(), "{result}");
    assert_eq!(result["attestation"]["oci_subject"], sbom.as_str(), "{result}");
    assert_eq!(result["pulled"], serde_json::json!(["sbom.spdx.json"]), "{result}");
    assert_eq!(result["pulled_equal"], true, "the pulled SBOM differs: {result}");
    let mut tags: Vec<String> = serde_json::from_value(result["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["attestation", "sbom", "signature"], "{result}");

    // The SBOM's artifact type is its config media type.
    let resp = server
        .client()
        .get(server.url(&format!("/v2/{repo}/manifests/{sbom}")))
        .header(ACCEPT, media::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let manifest: Value = resp.json().await.unwrap();
    assert_eq!(manifest["config"]["mediaType"], SBOM, "{manifest}");

    // Discovery without a filter: both referrers, with their artifact types.
    let (filters, list) = referrers(&server, repo, &sbom, "").await;
    assert_eq!(filters, None);
    assert_eq!(digests(&list), BTreeSet::from([signature.clone(), attestation.clone()]), "{list:?}");
    for entry in &list {
        let expected = if entry["digest"] == signature.as_str() { SIGNATURE } else { ATTESTATION };
        assert_eq!(entry["artifactType"], expected, "{entry}");
        assert_eq!(entry["mediaType"], media::OCI_MANIFEST, "{entry}");
    }
    let signed = list.iter().find(|e| e["digest"] == signature.as_str()).unwrap();
    assert_eq!(signed["annotations"]["org.example.signer"], "e2e", "{signed}");

    // With the filter: only the signature; the other type: only the attestation.
    for (artifact_type, expected) in [(SIGNATURE, &signature), (ATTESTATION, &attestation)] {
        let (filters, list) = referrers(&server, repo, &sbom, &format!("?artifactType={artifact_type}")).await;
        assert_eq!(filters.as_deref(), Some("artifactType"));
        assert_eq!(digests(&list), BTreeSet::from([expected.clone()]), "{artifact_type}");
    }
    // Nothing refers to the signature.
    let (_, list) = referrers(&server, repo, &signature, "").await;
    assert!(list.is_empty(), "{list:?}");
}

//! Collections over the in-memory store, driven through the HTTP endpoint
//! and the step function, with pushes interleaved between steps by hand.

use super::run::{Phase, LEASE_SECS};
use super::{step, Budget, GcSettings};
use crate::api::tests::{image_manifest, index_manifest, Registry};
use crate::oci::digest::Digest;
use crate::oci::manifest::{OCI_INDEX, OCI_MANIFEST};
use crate::storage::{Storage, Upload};
use std::time::{Duration, UNIX_EPOCH};

const REPO: &str = "lib/app";
const HOUR: u64 = 3600;

fn settings(grace: u64) -> GcSettings {
    GcSettings { grace: Duration::from_secs(grace), endpoint: true, ..GcSettings::default() }
}

fn registry(grace: u64) -> Registry {
    let registry = Registry::new().with_gc(settings(grace));
    registry.storage().set_time(UNIX_EPOCH + Duration::from_secs(1_000_000));
    registry
}

fn advance(registry: &Registry, secs: u64) {
    let now = registry.storage().now();
    registry.storage().set_time(now + Duration::from_secs(secs));
}

/// POSTs steps until the run is done; the final state.
fn collect(registry: &Registry, query: &str) -> serde_json::Value {
    for _ in 0..1000 {
        let answer = registry.send("POST", &format!("/_registry/gc{query}"), &[], Default::default());
        answer.expect(200, None);
        let body = answer.json();
        if body["done"] == true {
            return body["run"].clone();
        }
    }
    panic!("the collection did not finish");
}

/// Bytes of every stored blob.
fn blob_bytes(registry: &Registry) -> u64 {
    registry.storage().blob_list(None, u32::MAX).unwrap().iter().map(|b| b.size).sum()
}

fn stored(registry: &Registry, digest: &Digest) -> bool {
    registry.storage().blob_digests().contains(&digest.to_string())
}

fn push_image(registry: &Registry, tag: &str, config: &[u8], layer: &[u8]) -> (Digest, Digest, Digest) {
    let config = registry.push_blob(REPO, config);
    let layer = registry.push_blob(REPO, layer);
    let body = image_manifest(OCI_MANIFEST, &config, &layer, "");
    registry.push_manifest(REPO, tag, OCI_MANIFEST, &body).expect(201, None);
    (Digest::of_bytes(&body), config, layer)
}

#[test]
fn a_deleted_image_gives_back_exactly_its_own_bytes() {
    let registry = registry(HOUR);
    let (kept, _, shared) = push_image(&registry, "kept", b"config one", b"shared layer");
    let (gone, gone_config, _) = push_image(&registry, "gone", b"config two", b"shared layer");
    registry.delete(&format!("/v2/{REPO}/manifests/{gone}")).expect(202, None);
    let gone_manifest = registry.storage().blob_bytes(gone.as_str(), 1 << 20).unwrap().unwrap();
    let before = blob_bytes(&registry);
    assert!(stored(&registry, &gone), "a delete only unlinks");

    // Within the grace period nothing goes.
    collect(&registry, "");
    assert_eq!(blob_bytes(&registry), before);

    advance(&registry, HOUR + 1);
    let run = collect(&registry, "");
    assert_eq!(run["counts"]["blobsRemoved"], 2, "{run}");
    let freed = (gone_manifest.len() + b"config two".len()) as u64;
    assert_eq!(run["counts"]["bytesRemoved"], freed);
    assert_eq!(before - blob_bytes(&registry), freed, "the bytes left the store");
    assert!(!stored(&registry, &gone) && !stored(&registry, &gone_config));
    assert_eq!(run["counts"]["linksRemoved"], 1, "the config's link went with it: {run}");
    registry.get(&format!("/v2/{REPO}/blobs/{gone_config}")).expect(404, Some("BLOB_UNKNOWN"));
    registry.get(&format!("/v2/{REPO}/manifests/kept")).expect(200, None);
    registry.get(&format!("/v2/{REPO}/blobs/{shared}")).expect(200, None);
    assert_eq!(registry.get(&format!("/v2/{REPO}/manifests/{kept}")).status, 200);
    // The marks are gone; the state stays as the report.
    assert!(registry.storage().kv_list_keys("registry/gc/marks/", None, 10).unwrap().is_empty());
    registry.get("/_registry/gc").expect(200, None);
    assert_eq!(registry.get("/_registry/gc").json()["run"]["phase"], "done");
}

#[test]
fn a_dry_run_removes_nothing_and_lists_what_it_would() {
    let registry = registry(0);
    let orphan = registry.push_blob(REPO, b"nobody uses me");
    push_image(&registry, "v1", b"c", b"l");
    advance(&registry, 1);
    let before = registry.storage().blob_digests();
    let run = collect(&registry, "?dry-run=true");
    assert_eq!(run["dryRun"], true);
    assert_eq!(run["counts"]["blobsRemoved"], 1);
    assert_eq!(run["counts"]["linksRemoved"], 1);
    assert_eq!(run["wouldRemove"], serde_json::json!([orphan.to_string()]));
    assert_eq!(registry.storage().blob_digests(), before);
    registry.get(&format!("/v2/{REPO}/blobs/{orphan}")).expect(200, None);
}

#[test]
fn blobs_pushed_within_the_grace_period_stay() {
    let registry = registry(HOUR);
    let young = registry.push_blob(REPO, b"layer of an image still being pushed");
    advance(&registry, HOUR - 1);
    collect(&registry, "");
    assert!(stored(&registry, &young));
    advance(&registry, 2);
    collect(&registry, "");
    assert!(!stored(&registry, &young));
}

#[test]
fn indexes_keep_their_children_and_referrers_their_subjects_stay_linked() {
    let registry = registry(0);
    let (child, config, layer) = push_image(&registry, "child", b"c", b"l");
    registry.delete(&format!("/v2/{REPO}/manifests/child")).expect(202, None);
    let index = index_manifest(OCI_INDEX, OCI_MANIFEST, &[&child]);
    registry.push_manifest(REPO, "multi", OCI_INDEX, &index).expect(201, None);
    advance(&registry, 1);
    collect(&registry, "");
    for digest in [&child, &config, &layer] {
        assert!(stored(&registry, digest), "{digest}");
    }
    registry.get(&format!("/v2/{REPO}/manifests/{child}")).expect(200, None);
}

/// With delete-untagged: an untagged image goes with its blobs; tagged
/// images, index children, referrers of kept subjects and recent pushes
/// stay; a referrer of a removed subject goes too.
#[test]
fn delete_untagged_removes_what_no_tag_reaches() {
    let registry = Registry::new().with_gc(GcSettings { delete_untagged: true, ..settings(HOUR) });
    registry.storage().set_time(UNIX_EPOCH + Duration::from_secs(1_000_000));
    let (tagged, _, _) = push_image(&registry, "v1", b"c1", b"l1");
    let (untagged, untagged_config, untagged_layer) = push_image(&registry, "v2", b"c2", b"l2");
    registry.delete(&format!("/v2/{REPO}/manifests/v2")).expect(202, None);
    let (child, _, _) = push_image(&registry, "child", b"c3", b"l3");
    registry.delete(&format!("/v2/{REPO}/manifests/child")).expect(202, None);
    let index = index_manifest(OCI_INDEX, OCI_MANIFEST, &[&child]);
    registry.push_manifest(REPO, "multi", OCI_INDEX, &index).expect(201, None);
    let empty = registry.push_blob(REPO, b"{}");
    let subject_of =
        |digest: &Digest| format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":1}}"#);
    let signature_of_tagged = image_manifest(OCI_MANIFEST, &empty, &empty, &subject_of(&tagged));
    registry
        .push_manifest(REPO, &Digest::of_bytes(&signature_of_tagged).to_string(), OCI_MANIFEST, &signature_of_tagged)
        .expect(201, None);
    let signature_of_untagged = image_manifest(OCI_MANIFEST, &empty, &empty, &subject_of(&untagged));
    let orphan_signature = Digest::of_bytes(&signature_of_untagged);
    registry.push_manifest(REPO, orphan_signature.as_str(), OCI_MANIFEST, &signature_of_untagged).expect(201, None);

    advance(&registry, HOUR + 1);
    let (recent, _, _) = push_image(&registry, "recent", b"c4", b"l4");
    registry.delete(&format!("/v2/{REPO}/manifests/recent")).expect(202, None);
    let run = collect(&registry, "");
    assert_eq!(run["counts"]["manifestsRemoved"], 2, "{run}");
    for gone in [&untagged, &orphan_signature] {
        registry.get(&format!("/v2/{REPO}/manifests/{gone}")).expect(404, Some("MANIFEST_UNKNOWN"));
    }
    for digest in [&untagged, &untagged_config, &untagged_layer] {
        assert!(!stored(&registry, digest), "{digest}");
    }
    let signature = Digest::of_bytes(&signature_of_tagged);
    for kept in [&tagged, &child, &signature, &recent] {
        registry.get(&format!("/v2/{REPO}/manifests/{kept}")).expect(200, None);
    }
    let referrers = registry.get(&format!("/v2/{REPO}/referrers/{untagged}")).json();
    assert_eq!(referrers["manifests"], serde_json::json!([]));
}

#[test]
fn a_push_during_a_run_keeps_what_it_names() {
    let registry = registry(0);
    // An old blob nothing references, and one a mount and a re-push revive.
    let (_, config, layer) = push_image(&registry, "old", b"c", b"l");
    registry.delete(&format!("/v2/{REPO}/manifests/old")).expect(202, None);
    let mounted = registry.push_blob("other/repo", b"mount me");
    let repushed = registry.push_blob(REPO, b"push me again");
    advance(&registry, 10);

    // The mark finishes before the pushes: nothing is marked.
    let st = registry.storage();
    let mut run = step(st, &settings(0), Some(false), Budget::new(Duration::from_secs(10), 1)).unwrap().run.unwrap();
    while run.phase == Phase::Mark {
        run = step(st, &settings(0), None, Budget::new(Duration::from_secs(10), 1)).unwrap().run.unwrap();
    }
    let body = image_manifest(OCI_MANIFEST, &config, &layer, "");
    registry.push_manifest(REPO, "again", OCI_MANIFEST, &body).expect(201, None);
    registry
        .send("POST", &format!("/v2/{REPO}/blobs/uploads/?mount={mounted}&from=other/repo"), &[], Default::default())
        .expect(201, None);
    registry.push_blob(REPO, b"push me again");

    let run = collect(&registry, "");
    assert_eq!(run["counts"]["blobsRemoved"], 0, "{run}");
    for digest in [&config, &layer, &mounted, &repushed] {
        assert!(stored(&registry, digest), "{digest}");
        registry.get(&format!("/v2/{REPO}/blobs/{digest}")).expect(200, None);
    }
    registry.get(&format!("/v2/{REPO}/manifests/again")).expect(200, None);
}

#[test]
fn abandoned_uploads_expire_after_the_maximum_age() {
    let registry = Registry::new().with_gc(GcSettings { upload_max_age: Duration::from_secs(100), ..settings(0) });
    registry.storage().set_time(UNIX_EPOCH + Duration::from_secs(1_000_000));
    let st = registry.storage();
    let old = st.start_upload().unwrap();
    old.write(b"12345").unwrap();
    advance(&registry, 60);
    let recent = st.start_upload().unwrap();
    advance(&registry, 60);
    let run = collect(&registry, "");
    assert_eq!(run["counts"]["uploadsRemoved"], 1);
    assert_eq!(run["counts"]["uploadBytesRemoved"], 5);
    assert_eq!(st.open_uploads(), 1);
    assert_eq!(old.size(), Err(crate::storage::Error::NotFound));
    assert_eq!(recent.size(), Ok(0));
}

#[test]
fn small_steps_reach_the_same_end_and_a_second_stepper_is_told_busy() {
    let registry = registry(0);
    for i in 0..30 {
        let repo = format!("repo{i}");
        let config = registry.push_blob(&repo, format!("c{i}").as_bytes());
        let layer = registry.push_blob(&repo, format!("l{i}").as_bytes());
        let body = image_manifest(OCI_MANIFEST, &config, &layer, "");
        registry.push_manifest(&repo, "v1", OCI_MANIFEST, &body).expect(201, None);
        if i % 3 == 0 {
            registry.delete(&format!("/v2/{repo}/manifests/{}", Digest::of_bytes(&body))).expect(202, None);
        }
    }
    advance(&registry, 1);
    let st = registry.storage();
    let mut outcome = step(st, &settings(0), Some(false), Budget::new(Duration::from_secs(10), 1)).unwrap();
    let mut steps = 1;
    while outcome.run.as_ref().unwrap().phase != Phase::Done {
        outcome = step(st, &settings(0), None, Budget::new(Duration::from_secs(10), 3)).unwrap();
        steps += 1;
    }
    assert!(steps > 10, "{steps} steps");
    let run = outcome.run.unwrap();
    // Ten manifests deleted: each leaves its manifest bytes, config and layer.
    assert_eq!(run.counts.blobs_removed, 30);
    assert_eq!(run.steps, steps);

    // A stepper holding the lease makes the next one busy until it expires.
    let mut held = run.clone();
    held.phase = Phase::Mark;
    held.lease = Some(super::run::Lease { holder: "other".into(), until: 1_000_001 + LEASE_SECS });
    st.kv_set(&crate::store::keys::gc_run(), &serde_json::to_vec(&held).unwrap()).unwrap();
    assert!(step(st, &settings(0), Some(false), Budget::default()).unwrap().busy);
    advance(&registry, LEASE_SECS + 1);
    assert!(!step(st, &settings(0), Some(false), Budget::default()).unwrap().busy);
}

#[test]
fn the_endpoint_is_off_unless_enabled() {
    let open = Registry::new();
    open.send("POST", "/_registry/gc", &[], Default::default()).expect(404, Some("NAME_UNKNOWN"));
    registry(0).get("/_registry/gc").expect(200, None);
    registry(0).send("POST", "/_registry/gc?dry-run=maybe", &[], Default::default()).expect(400, Some("UNSUPPORTED"));
    registry(0).send("DELETE", "/_registry/gc", &[], Default::default()).expect(405, Some("UNSUPPORTED"));
}

#[test]
fn the_step_that_finishes_a_run_names_what_it_removed_in_the_result_header() {
    let registry =
        Registry::new().with_gc(GcSettings { result_header: Some("registry-gc-result".into()), ..settings(0) });
    registry.storage().set_time(UNIX_EPOCH + Duration::from_secs(1_000_000));
    let orphan = registry.push_blob(REPO, b"nobody uses me");
    advance(&registry, 1);
    let mut named = Vec::new();
    for _ in 0..1000 {
        let answer = registry.send("POST", "/_registry/gc", &[], Default::default());
        answer.expect(200, None);
        named.extend(answer.header("registry-gc-result").map(str::to_string));
        if answer.json()["done"] == true {
            break;
        }
    }
    assert_eq!(named, [format!("1 {}", b"nobody uses me".len())], "once, on the finishing step");
    assert!(!stored(&registry, &orphan));
    // A dry run, and a GET of the last run, name nothing.
    let dry = registry.send("POST", "/_registry/gc?dry-run=true", &[], Default::default());
    assert_eq!(dry.header("registry-gc-result"), None);
    assert_eq!(registry.get("/_registry/gc").header("registry-gc-result"), None);
    assert!(GcSettings::from_vars(|v| (v == super::settings::RESULT_HEADER).then(|| "Bad Name".into())).is_err());
}

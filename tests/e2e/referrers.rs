//! end-12a/12b: `GET /v2/<name>/referrers/<digest>[?artifactType=]`, and the
//! `subject` side of a manifest PUT (`OCI-Subject`).
//!
//! The answer is always a 200 OCI image index (never a 404, even for a subject or a
//! repository nobody pushed) listing one descriptor per manifest of the repository
//! whose `subject` is the digest: media type, digest, size, `artifactType` (the
//! manifest's, else an image manifest's config media type, else none) and the
//! manifest's annotations. `?artifactType=` filters and says so with
//! `OCI-Filters-Applied: artifactType`. Deleting a referrer drops it from the list;
//! a long list is paged with `Link`.

use std::collections::BTreeSet;

use futures_util::{stream, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{
    absent_digest, assert_api_version, assert_error, header, media, next_link, query_param, random_bytes,
    sha256_digest, unique_id, Descriptor, RegistryServer,
};

const SIGNATURE: &str = "application/vnd.example.signature.v1";
/// With a `+`, which a query string must carry as `%2B` or may carry raw.
const SBOM: &str = "application/vnd.example.sbom.v1+json";
const BUNDLE: &str = "application/vnd.example.bundle.v1";
const EMPTY_MEDIA: &str = "application/vnd.oci.empty.v1+json";

/// The empty JSON blob `{}` that artifacts use as their config.
async fn push_empty_config(server: &RegistryServer, repo: &str) -> Descriptor {
    server.push_blob(repo, b"{}").await;
    Descriptor::of(EMPTY_MEDIA, b"{}")
}

fn descriptor_json(d: &Descriptor) -> Value {
    json!({ "mediaType": d.media_type, "digest": d.digest, "size": d.size })
}

/// An OCI image manifest with the given `artifactType` (if any), config, layers,
/// subject and annotations (if any).
fn artifact_manifest(
    artifact_type: Option<&str>,
    config: &Descriptor,
    layers: &[Descriptor],
    subject: &Descriptor,
    annotations: Option<Value>,
) -> Vec<u8> {
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": descriptor_json(config),
        "layers": layers.iter().map(descriptor_json).collect::<Vec<_>>(),
        "subject": descriptor_json(subject),
    });
    if let Some(artifact_type) = artifact_type {
        manifest["artifactType"] = artifact_type.into();
    }
    if let Some(annotations) = annotations {
        manifest["annotations"] = annotations;
    }
    serde_json::to_vec_pretty(&manifest).unwrap()
}

/// Pushes a one-layer image to `repo` under `tag` and returns its descriptor.
async fn push_subject(server: &RegistryServer, repo: &str, tag: &str) -> Descriptor {
    let image = server.push_image_blobs(repo, 1, false).await;
    let body = image.manifest();
    server.push_manifest(repo, tag, media::OCI_MANIFEST, &body).await;
    Descriptor::of(media::OCI_MANIFEST, &body)
}

/// PUTs `body` by digest, asserts 201 with `OCI-Subject: <subject>`, and returns
/// the manifest's descriptor.
async fn push_referrer(
    server: &RegistryServer,
    repo: &str,
    media_type: &str,
    body: &[u8],
    subject: &str,
) -> Descriptor {
    let digest = sha256_digest(body);
    let resp = server.put_manifest(repo, &digest, media_type, body.to_vec()).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::CREATED, "PUT referrer {digest}: {text}");
    assert_api_version(&headers);
    assert_eq!(
        headers.get("OCI-Subject").and_then(|v| v.to_str().ok()),
        Some(subject),
        "OCI-Subject of a manifest with a subject; headers: {headers:?}"
    );
    assert_eq!(headers.get("Docker-Content-Digest").and_then(|v| v.to_str().ok()), Some(digest.as_str()));
    Descriptor::of(media_type, body)
}

/// `GET /v2/<repo>/referrers/<subject><query>`: asserts 200, the index media type
/// as Content-Type and in the body, and schemaVersion 2; returns the headers and the
/// `manifests` array.
async fn referrers(
    server: &RegistryServer,
    repo: &str,
    subject: &str,
    query: &str,
) -> (reqwest::header::HeaderMap, Vec<Value>) {
    let path = format!("/v2/{repo}/referrers/{subject}{query}");
    let resp = server.client().get(server.url(&path)).header(ACCEPT, media::OCI_INDEX).send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap();
    assert_eq!(status, StatusCode::OK, "GET {path}: {}", String::from_utf8_lossy(&body));
    assert_api_version(&headers);
    assert_eq!(
        headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some(media::OCI_INDEX),
        "Content-Type of GET {path}"
    );
    let index: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e})"));
    assert_eq!(index["schemaVersion"], 2, "{index}");
    assert_eq!(index["mediaType"], media::OCI_INDEX, "{index}");
    let manifests =
        index["manifests"].as_array().unwrap_or_else(|| panic!("GET {path}: no manifests array in {index}")).clone();
    (headers, manifests)
}

fn filters_applied(headers: &reqwest::header::HeaderMap) -> Option<&str> {
    headers.get("OCI-Filters-Applied").map(|v| v.to_str().unwrap())
}

/// The entry for `digest` in a referrers list (which must hold it exactly once).
fn entry<'a>(list: &'a [Value], digest: &str) -> &'a Value {
    let found: Vec<&Value> = list.iter().filter(|d| d["digest"] == digest).collect();
    assert_eq!(found.len(), 1, "{digest} once in {list:?}");
    found[0]
}

fn digests(list: &[Value]) -> BTreeSet<String> {
    list.iter().map(|d| d["digest"].as_str().expect("a digest").to_string()).collect()
}

fn set(items: &[&Descriptor]) -> BTreeSet<String> {
    items.iter().map(|d| d.digest.clone()).collect()
}

/// A subject with no referrers, in a repository that exists or in one that does
/// not, is 200 with an empty index (never 404); a filter is still reported.
#[tokio::test]
async fn unknown_subject_is_an_empty_index() {
    let server = RegistryServer::start();
    let repo = "e2e/referrers/empty";
    let subject = push_subject(&server, repo, "v1").await;

    for (repo, digest) in
        [(repo, absent_digest()), (repo, subject.digest.clone()), ("e2e/referrers/no-such-repository", absent_digest())]
    {
        let (headers, list) = referrers(&server, repo, &digest, "").await;
        assert!(list.is_empty(), "{repo}@{digest}: {list:?}");
        assert_eq!(next_link(&headers), None);
        let (headers, list) = referrers(&server, repo, &digest, &format!("?artifactType={SIGNATURE}")).await;
        assert!(list.is_empty(), "{repo}@{digest} filtered: {list:?}");
        assert_eq!(filters_applied(&headers), Some("artifactType"));
    }

    // A malformed digest is a bad request, not an empty list.
    let resp = server.client().get(server.url(&format!("/v2/{repo}/referrers/sha256:1234"))).send().await.unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

/// A manifest whose subject does not exist (yet) is accepted with 201 and
/// `OCI-Subject`, is listed as a referrer at once, stays listed once the subject is
/// pushed, and is served byte for byte.
#[tokio::test]
async fn referrer_is_accepted_before_its_subject_exists() {
    let server = RegistryServer::start();
    let repo = "e2e/referrers/early";
    // The subject's blobs are pushed, its manifest not yet.
    let image = server.push_image_blobs(repo, 1, false).await;
    let subject_body = image.manifest();
    let subject = Descriptor::of(media::OCI_MANIFEST, &subject_body);
    let resp =
        server.client().head(server.url(&format!("/v2/{repo}/manifests/{}", subject.digest))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "the subject is not pushed yet");

    let config = push_empty_config(&server, repo).await;
    let signature = random_bytes(300);
    let layer = Descriptor {
        media_type: "application/vnd.example.signature.layer.v1".into(),
        digest: server.push_blob(repo, &signature).await,
        size: signature.len() as u64,
    };
    let body = artifact_manifest(Some(SIGNATURE), &config, &[layer], &subject, None);
    let referrer = push_referrer(&server, repo, media::OCI_MANIFEST, &body, &subject.digest).await;

    let (_, list) = referrers(&server, repo, &subject.digest, "").await;
    assert_eq!(digests(&list), set(&[&referrer]));
    assert_eq!(entry(&list, &referrer.digest)["artifactType"], SIGNATURE);

    server.push_manifest(repo, "v1", media::OCI_MANIFEST, &subject_body).await;
    let (_, list) = referrers(&server, repo, &subject.digest, "").await;
    assert_eq!(digests(&list), set(&[&referrer]), "after the subject was pushed");

    let resp = server
        .client()
        .get(server.url(&format!("/v2/{repo}/manifests/{}", referrer.digest)))
        .header(ACCEPT, media::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, CONTENT_TYPE.as_str()), media::OCI_MANIFEST);
    assert!(resp.bytes().await.unwrap()[..] == body[..], "the referrer byte for byte");
}

/// The referrers of one subject, pushed in various forms, and the descriptors the
/// list gives for them.
struct Family {
    repo: String,
    subject: Descriptor,
    /// `artifactType: SIGNATURE`, with annotations.
    signature: Descriptor,
    signature_annotations: Value,
    /// No `artifactType`: the config media type (SBOM) stands in.
    sbom: Descriptor,
    /// An index with `artifactType: BUNDLE`.
    bundle: Descriptor,
    /// An index without `artifactType`: listed without one.
    plain_index: Descriptor,
}

async fn push_family(server: &RegistryServer, repo: &str) -> Family {
    let subject = push_subject(server, repo, "v1").await;
    let empty = push_empty_config(server, repo).await;

    let sig_bytes = random_bytes(200);
    let sig_layer = Descriptor {
        media_type: "application/vnd.example.signature.layer.v1".into(),
        digest: server.push_blob(repo, &sig_bytes).await,
        size: sig_bytes.len() as u64,
    };
    let signature_annotations = json!({
        "org.opencontainers.image.created": "2024-01-02T03:04:05Z",
        "org.example.signed-by": format!("e2e-{}", unique_id()),
    });
    let body = artifact_manifest(Some(SIGNATURE), &empty, &[sig_layer], &subject, Some(signature_annotations.clone()));
    let signature = push_referrer(server, repo, media::OCI_MANIFEST, &body, &subject.digest).await;

    let sbom_config = format!(r#"{{"sbom":"{}"}}"#, unique_id()).into_bytes();
    let sbom_config = Descriptor {
        media_type: SBOM.into(),
        digest: server.push_blob(repo, &sbom_config).await,
        size: sbom_config.len() as u64,
    };
    let sbom_bytes = random_bytes(500);
    let sbom_layer = Descriptor {
        media_type: "application/spdx+json".into(),
        digest: server.push_blob(repo, &sbom_bytes).await,
        size: sbom_bytes.len() as u64,
    };
    let body = artifact_manifest(None, &sbom_config, &[sbom_layer], &subject, None);
    let sbom = push_referrer(server, repo, media::OCI_MANIFEST, &body, &subject.digest).await;

    let index = |artifact_type: Option<&str>| {
        let mut index = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": [{
                "mediaType": signature.media_type,
                "digest": signature.digest,
                "size": signature.size,
            }],
            "subject": descriptor_json(&subject),
            "annotations": { "org.example.kind": artifact_type.unwrap_or("none") },
        });
        if let Some(t) = artifact_type {
            index["artifactType"] = t.into();
        }
        serde_json::to_vec(&index).unwrap()
    };
    let bundle = push_referrer(server, repo, media::OCI_INDEX, &index(Some(BUNDLE)), &subject.digest).await;
    let plain_index = push_referrer(server, repo, media::OCI_INDEX, &index(None), &subject.digest).await;

    Family { repo: repo.to_string(), subject, signature, signature_annotations, sbom, bundle, plain_index }
}

/// Each referrer is listed once with its media type, digest and size; its
/// `artifactType` is the manifest's, else the config media type of an image
/// manifest, else absent (an index without one); its annotations are copied. Other
/// manifests of the repository, referrers of another subject and referrers in
/// another repository are not listed.
#[tokio::test]
async fn referrers_list_their_descriptors() {
    let server = RegistryServer::start();
    let f = push_family(&server, "e2e/referrers/list").await;

    // Noise: a referrer of another subject, the same subject referred to from another
    // repository, and a plain image.
    let other_subject = push_subject(&server, &f.repo, "other").await;
    let empty = push_empty_config(&server, &f.repo).await;
    let body = artifact_manifest(Some(SIGNATURE), &empty, &[], &other_subject, None);
    let elsewhere = push_referrer(&server, &f.repo, media::OCI_MANIFEST, &body, &other_subject.digest).await;
    let empty = push_empty_config(&server, "e2e/referrers/another-repo").await;
    let body = artifact_manifest(Some(SIGNATURE), &empty, &[], &f.subject, None);
    push_referrer(&server, "e2e/referrers/another-repo", media::OCI_MANIFEST, &body, &f.subject.digest).await;
    push_subject(&server, &f.repo, "unrelated").await;

    let (headers, list) = referrers(&server, &f.repo, &f.subject.digest, "").await;
    assert_eq!(filters_applied(&headers), None, "no filter was asked for");
    assert_eq!(next_link(&headers), None, "a short list fits one page");
    assert_eq!(digests(&list), set(&[&f.signature, &f.sbom, &f.bundle, &f.plain_index]));

    let check = |d: &Descriptor, artifact_type: Option<&str>| {
        let e = entry(&list, &d.digest);
        assert_eq!(e["mediaType"], d.media_type.as_str(), "{e}");
        assert_eq!(e["size"], d.size, "{e}");
        match artifact_type {
            Some(t) => assert_eq!(e["artifactType"], t, "{e}"),
            None => assert!(
                e.get("artifactType").is_none_or(|v| v.is_null()),
                "an index without artifactType is listed without one: {e}"
            ),
        }
        e.clone()
    };
    let e = check(&f.signature, Some(SIGNATURE));
    assert_eq!(e["annotations"], f.signature_annotations, "annotations copied");
    check(&f.sbom, Some(SBOM));
    let e = check(&f.bundle, Some(BUNDLE));
    assert_eq!(e["annotations"], json!({ "org.example.kind": BUNDLE }));
    check(&f.plain_index, None);

    let (_, list) = referrers(&server, &f.repo, &other_subject.digest, "").await;
    assert_eq!(digests(&list), set(&[&elsewhere]));
}

/// `?artifactType=` keeps only the matching referrers and answers with
/// `OCI-Filters-Applied: artifactType`; a `+` may come encoded or raw; a type that
/// nothing has gives an empty index.
#[tokio::test]
async fn artifact_type_filter() {
    let server = RegistryServer::start();
    let f = push_family(&server, "e2e/referrers/filter").await;

    let cases: [(String, BTreeSet<String>); 5] = [
        (format!("?artifactType={SIGNATURE}"), set(&[&f.signature])),
        (format!("?artifactType={BUNDLE}"), set(&[&f.bundle])),
        (format!("?artifactType={}", SBOM.replace('+', "%2B")), set(&[&f.sbom])),
        (format!("?artifactType={SBOM}"), set(&[&f.sbom])),
        ("?artifactType=application/vnd.example.nothing".into(), BTreeSet::new()),
    ];
    for (query, expected) in cases {
        let (headers, list) = referrers(&server, &f.repo, &f.subject.digest, &query).await;
        assert_eq!(filters_applied(&headers), Some("artifactType"), "{query}");
        assert_eq!(digests(&list), expected, "{query}");
    }
    // The filtered descriptor is the same as the unfiltered one.
    let (_, all) = referrers(&server, &f.repo, &f.subject.digest, "").await;
    let (_, only) = referrers(&server, &f.repo, &f.subject.digest, &format!("?artifactType={SIGNATURE}")).await;
    assert_eq!(&only[0], entry(&all, &f.signature.digest));
}

/// Deleting a referrer by digest drops it from the list (the others stay); pushing
/// it again brings it back. Deleting only a tag of a referrer changes nothing.
#[tokio::test]
async fn deleting_a_referrer_removes_it_from_the_list() {
    let server = RegistryServer::start();
    let f = push_family(&server, "e2e/referrers/delete").await;

    let resp = server
        .client()
        .delete(server.url(&format!("/v2/{}/manifests/{}", f.repo, f.signature.digest)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let (_, list) = referrers(&server, &f.repo, &f.subject.digest, "").await;
    assert_eq!(digests(&list), set(&[&f.sbom, &f.bundle, &f.plain_index]));
    let (_, list) = referrers(&server, &f.repo, &f.subject.digest, &format!("?artifactType={SIGNATURE}")).await;
    assert!(list.is_empty(), "{list:?}");

    // A tagged referrer: removing the tag keeps it a referrer.
    let sbom_body = server
        .client()
        .get(server.url(&format!("/v2/{}/manifests/{}", f.repo, f.sbom.digest)))
        .header(ACCEPT, media::OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    server.push_manifest(&f.repo, "sbom", media::OCI_MANIFEST, &sbom_body).await;
    let resp = server.client().delete(server.url(&format!("/v2/{}/manifests/sbom", f.repo))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let (_, list) = referrers(&server, &f.repo, &f.subject.digest, "").await;
    assert_eq!(digests(&list), set(&[&f.sbom, &f.bundle, &f.plain_index]));

    // Deleting the index referrers as well empties the list but for the SBOM.
    for d in [&f.bundle, &f.plain_index] {
        let resp =
            server.client().delete(server.url(&format!("/v2/{}/manifests/{}", f.repo, d.digest))).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    let (_, list) = referrers(&server, &f.repo, &f.subject.digest, "").await;
    assert_eq!(digests(&list), set(&[&f.sbom]));
}

/// More referrers than one response holds: the list is paged with a `Link` to the
/// next page, and following the links yields each referrer exactly once.
#[tokio::test]
async fn long_referrer_list_is_paged_with_link() {
    const COUNT: usize = 1_050;
    let server = RegistryServer::start();
    let repo = "e2e/referrers/long";
    let subject = push_subject(&server, repo, "v1").await;
    let empty = push_empty_config(&server, repo).await;

    let bodies: Vec<Vec<u8>> = (0..COUNT)
        .map(|i| {
            artifact_manifest(
                Some(SIGNATURE),
                &empty,
                &[],
                &subject,
                Some(json!({ "org.example.number": i.to_string() })),
            )
        })
        .collect();
    let expected: BTreeSet<String> = bodies.iter().map(|b| sha256_digest(b)).collect();
    let server_ref = &server;
    let subject_digest = subject.digest.as_str();
    stream::iter(bodies)
        .map(|body| async move {
            push_referrer(server_ref, repo, media::OCI_MANIFEST, &body, subject_digest).await;
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;

    let mut query = String::new();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (headers, list) = referrers(&server, repo, &subject.digest, &query).await;
        pages += 1;
        assert!(pages <= COUNT, "the Link chain does not end");
        seen.extend(digests(&list));
        let Some(link) = next_link(&headers) else {
            break;
        };
        assert!(!list.is_empty(), "a page with a Link is not empty");
        let prefix = format!("/v2/{repo}/referrers/{}", subject.digest);
        let rest = link.strip_prefix(&prefix).unwrap_or_else(|| panic!("Link {link:?} is not under {prefix}"));
        assert!(rest.starts_with('?'), "Link {link:?} has no query");
        query = rest.to_string();
    }
    assert!(pages >= 2, "{COUNT} referrers fit in one response");
    assert_eq!(seen.len(), COUNT, "referrers seen across pages (duplicates?)");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);

    // A filtered long list keeps its filter across pages.
    let (headers, list) = referrers(&server, repo, &subject.digest, &format!("?artifactType={SIGNATURE}")).await;
    assert_eq!(filters_applied(&headers), Some("artifactType"));
    if let Some(link) = next_link(&headers) {
        assert_eq!(query_param(&link, "artifactType").as_deref(), Some(SIGNATURE), "{link}");
        assert!(!list.is_empty());
    }
}

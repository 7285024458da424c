//! end-3, end-7, end-9: fetching, pushing and deleting manifests.
//!
//! Manifests are stored byte-exact as blobs; the repository's link records
//! the media type they were pushed with.

use super::{links, Ctx};
use crate::conditional;
use crate::error::RegistryError;
use crate::gc;
use crate::http::{Body, Request, Response};
use crate::oci::digest::Digest;
use crate::oci::manifest;
use crate::oci::name::RepoName;
use crate::oci::reference::{Reference, Tag};
use crate::storage::{Storage, StorageExt};
use crate::store::keys;
use links::ManifestLink;

fn unknown(repo: &RepoName, reference: &Reference) -> RegistryError {
    RegistryError::ManifestUnknown(Some(format!("manifest {reference} is unknown to repository {repo}")))
}

/// end-3: `GET`/`HEAD /v2/<name>/manifests/<reference>`.
pub fn get<S: Storage>(
    st: &S,
    repo: &RepoName,
    reference: &Reference,
    req: &Request<S::Body>,
) -> Result<Response<S::Reader>, RegistryError> {
    let (digest, link) = links::resolve(st, repo, reference)?.ok_or_else(|| unknown(repo, reference))?;
    // A tag's ETag is the digest it resolves to now: a cache revalidates it
    // without the body while the tag has not moved.
    if req.header("if-none-match").is_some_and(|tags| conditional::none_match(tags, digest.as_str())) {
        return Ok(Response::new(304)
            .header("Docker-Content-Digest", digest.as_str())
            .header("ETag", format!("\"{digest}\"")));
    }
    let response = Response::new(200)
        .header("Content-Type", link.media_type.clone())
        .header("Docker-Content-Digest", digest.as_str())
        .header("ETag", format!("\"{digest}\""));
    if req.method == "HEAD" {
        return Ok(response.body(Body::Length(link.size)));
    }
    let stream = st
        .blob_stream(&digest, 0, None)?
        .ok_or_else(|| RegistryError::internal(format!("manifest {digest} is linked but not stored")))?;
    Ok(response.body(Body::Stream { stream, len: link.size }))
}

/// end-7: `PUT /v2/<name>/manifests/<reference>[?tag=..]`.
pub fn put<S: Storage>(
    st: &S,
    repo: &RepoName,
    reference: &Reference,
    extra_tags: &[Tag],
    req: &mut Request<S::Body>,
) -> Result<Response<S::Reader>, RegistryError> {
    let body = req.read_body(manifest::MAX_MANIFEST_SIZE)?.ok_or_else(|| {
        RegistryError::ManifestTooLarge(Some(format!("manifests are limited to {} bytes", manifest::MAX_MANIFEST_SIZE)))
    })?;
    let parsed = manifest::parse(req.header("content-type"), &body)?;
    let digest = Digest::of_bytes(&body);
    if let Reference::Digest(expected) = reference {
        if *expected != digest {
            return Err(RegistryError::DigestInvalid(Some(format!("the body's digest is {digest}, not {expected}"))));
        }
    }
    // Every check touches what it finds, so that a garbage collection
    // running meanwhile keeps it (`crate::gc`).
    for blob in &parsed.blobs {
        if !links::blob_in_use(st, repo, blob)? {
            return Err(RegistryError::ManifestBlobUnknown(Some(format!(
                "blob {blob} is unknown to repository {repo}"
            ))));
        }
    }
    for child in &parsed.manifests {
        if !st.blob_touch(child.as_str())? || links::manifest(st, repo, child)?.is_none() {
            return Err(RegistryError::ManifestBlobUnknown(Some(format!(
                "manifest {child} is unknown to repository {repo}"
            ))));
        }
    }
    let mut tags: Vec<&Tag> = extra_tags.iter().collect();
    if let Reference::Tag(tag) = reference {
        tags.insert(0, tag);
    }
    let subject = store(st, repo, &digest, &body, &parsed, &tags)?;
    let mut response = Response::new(201)
        .header("Location", format!("/v2/{repo}/manifests/{digest}"))
        .header("Docker-Content-Digest", digest.as_str());
    if let Some(subject) = &subject {
        response = response.header("OCI-Subject", subject.as_str());
    }
    for tag in extra_tags {
        response = response.header("OCI-Tag", tag.as_str());
    }
    Ok(response)
}

/// Stores `body`, parsed as `parsed`, as the manifest `digest` of `repo`
/// with `tags`: the bytes, the link, the referrer entry, the tags. What a
/// push does once its checks pass, and what a mirror does with a manifest
/// from its upstream. The manifest's subject, if any.
pub(crate) fn store<S: Storage>(
    st: &S,
    repo: &RepoName,
    digest: &Digest,
    body: &[u8],
    parsed: &manifest::ParsedManifest,
    tags: &[&Tag],
) -> Result<Option<Digest>, RegistryError> {
    if !st.blob_touch(digest.as_str())? {
        st.blob_put(digest, body)?;
    }
    let subject = parsed.subject.as_ref().map(|s| s.digest.clone());
    let link = ManifestLink {
        media_type: parsed.media_type.clone(),
        size: body.len() as u64,
        subject: subject.as_ref().map(|d| d.to_string()),
        pushed: Some(gc::seconds(st.now())),
    };
    let referrer = subject.as_ref().map(|subject| {
        let descriptor = referrer_descriptor(parsed, digest, body.len() as u64);
        (keys::referrer(repo, subject, digest), descriptor.to_string())
    });
    if let Some((key, descriptor)) = &referrer {
        st.set(key, descriptor.as_bytes())?;
    }
    links::link_manifest(st, repo, digest, &link)?;
    for tag in tags {
        st.set(&keys::tag(repo, tag), digest.as_str().as_bytes())?;
    }
    if gc::fence::wait(st, repo)? && links::manifest(st, repo, digest)?.is_none() {
        // A collection removed the link as an untagged manifest while this
        // push wrote it: put back what the push wrote.
        if let Some((key, descriptor)) = &referrer {
            st.set(key, descriptor.as_bytes())?;
        }
        links::link_manifest(st, repo, digest, &link)?;
    }
    Ok(subject)
}

/// The descriptor the referrers API lists for a manifest with a subject.
fn referrer_descriptor(parsed: &manifest::ParsedManifest, digest: &Digest, size: u64) -> serde_json::Value {
    let mut descriptor = serde_json::json!({
        "mediaType": parsed.media_type,
        "digest": digest.as_str(),
        "size": size,
    });
    if let Some(artifact_type) = parsed.referrer_artifact_type() {
        descriptor["artifactType"] = artifact_type.into();
    }
    if let Some(annotations) = &parsed.annotations {
        descriptor["annotations"] = serde_json::json!(annotations);
    }
    descriptor
}

/// end-9: `DELETE /v2/<name>/manifests/<reference>`: a tag removes only
/// the tag; a digest removes the manifest, its tags and its referrer entry.
/// The bytes leave with the next garbage collection.
pub fn delete<S: Storage>(
    ctx: &Ctx<S>,
    repo: &RepoName,
    reference: &Reference,
) -> Result<Response<S::Reader>, RegistryError> {
    ctx.check_delete()?;
    let st = &ctx.storage;
    let digest = match reference {
        Reference::Tag(tag) => {
            if !st.delete(&keys::tag(repo, tag))? {
                return Err(unknown(repo, reference));
            }
            return Ok(Response::new(202));
        }
        Reference::Digest(digest) => digest,
    };
    let link = links::manifest(st, repo, digest)?.ok_or_else(|| unknown(repo, reference))?;
    // Tags first: a crash part-way must not leave a tag on a missing manifest.
    let prefix = keys::tags_prefix(repo);
    let mut after = None;
    loop {
        let page = st.list(&prefix, after.as_deref(), 1000)?;
        for key in &page {
            if st.get(key)?.as_deref() == Some(digest.as_str().as_bytes()) {
                st.delete(key)?;
            }
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = Some(last.clone()),
            _ => break,
        }
    }
    if let Some(subject) = link.subject.as_deref().and_then(|s| s.parse::<Digest>().ok()) {
        st.delete(&keys::referrer(repo, &subject, digest))?;
    }
    st.delete(&keys::manifest_link(repo, digest))?;
    Ok(Response::new(202))
}

//! A mirror's manifests. By digest: served from here once fetched, for
//! ever (until deleted or collected). By tag: served from here for the
//! upstream's tag time-to-live, then checked upstream with a HEAD (the
//! digest alone, no body) and fetched again only if the tag moved. While
//! the upstream is down, a tag known here is served as it was, with a
//! `Warning: 110` header saying it may be stale. Everything fetched is
//! checked against its digest before it is kept.

use super::upstream::{Fetch, Fetched, Session, UpstreamError};
use super::{from_upstream, Mirror};
use crate::api::links;
use crate::error::RegistryError;
use crate::http::{Request, Response};
use crate::oci::digest::Digest;
use crate::oci::manifest::{self, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::oci::name::RepoName;
use crate::oci::reference::{Reference, Tag};
use crate::storage::{Storage, StorageExt};
use crate::store::keys;
use std::io::Read;

/// What a mirror accepts from its upstream, in the order it prefers.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// The warning on a tag served while its upstream is down (RFC 7234's
/// "Response is Stale", which Docker and curl show).
const STALE: &str = "110 - \"Response is Stale: the upstream registry does not answer\"";

/// `GET`/`HEAD` of a manifest of `repo`, a mirror.
pub fn get<S: Storage>(
    st: &S,
    fetch: &dyn Fetch,
    mirror: &Mirror<'_>,
    repo: &RepoName,
    reference: &Reference,
    req: &Request<S::Body>,
) -> Result<Response<S::Reader>, RegistryError> {
    let session = Session::new(fetch, mirror.upstream, &mirror.remote);
    let local = links::resolve(st, repo, reference)?;
    let tag = match reference {
        // By digest: it never changes.
        Reference::Digest(_) if local.is_some() => return crate::api::manifests::get(st, repo, reference, req),
        Reference::Digest(digest) => {
            let fetched = session
                .send("GET", &format!("manifests/{digest}"), Some(ACCEPT))
                .map_err(|e| from_upstream(e, RegistryError::ManifestUnknown))?;
            keep(st, repo, Some(digest), None, fetched, session.upstream_url())?;
            return crate::api::manifests::get(st, repo, reference, req);
        }
        Reference::Tag(tag) => tag,
    };
    let checked_key = keys::mirror_checked(repo, tag);
    let now = crate::gc::seconds(st.now());
    if local.is_some() {
        let checked = st.get(&checked_key)?.and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok());
        if checked.is_some_and(|at| now.saturating_sub(at) < mirror.upstream.tag_ttl.as_secs()) {
            return crate::api::manifests::get(st, repo, reference, req);
        }
    }
    let what = format!("manifests/{tag}");
    let upstream_digest = match session.send("HEAD", &what, Some(ACCEPT)) {
        Ok(answer) => answer.header("docker-content-digest").and_then(|d| d.parse::<Digest>().ok()),
        Err(UpstreamError::Down(why)) if local.is_some() => {
            eprintln!("registry: mirror: serving {repo}:{tag} as cached: {why}");
            return Ok(crate::api::manifests::get(st, repo, reference, req)?.header("Warning", STALE));
        }
        Err(e) => return Err(from_upstream(e, RegistryError::ManifestUnknown)),
    };
    let unchanged = matches!((&local, &upstream_digest), (Some((here, _)), Some(there)) if here == there);
    if !unchanged {
        let fetched = match session.send("GET", &what, Some(ACCEPT)) {
            Ok(fetched) => fetched,
            Err(UpstreamError::Down(why)) if local.is_some() => {
                eprintln!("registry: mirror: serving {repo}:{tag} as cached: {why}");
                return Ok(crate::api::manifests::get(st, repo, reference, req)?.header("Warning", STALE));
            }
            Err(e) => return Err(from_upstream(e, RegistryError::ManifestUnknown)),
        };
        keep(st, repo, upstream_digest.as_ref(), Some(tag), fetched, session.upstream_url())?;
    }
    st.set(&checked_key, now.to_string().as_bytes())?;
    crate::api::manifests::get(st, repo, reference, req)
}

/// Stores a manifest from the upstream if it is one and hashes to what the
/// upstream said (`expected`: the digest asked for, or the one the upstream
/// named), tagging it `tag`.
fn keep<S: Storage>(
    st: &S,
    repo: &RepoName,
    expected: Option<&Digest>,
    tag: Option<&Tag>,
    fetched: Fetched,
    upstream: &str,
) -> Result<Digest, RegistryError> {
    let content_type = fetched.header("content-type").map(str::to_string);
    let named = fetched.header("docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
    let mut body = Vec::new();
    fetched
        .body
        .take(manifest::MAX_MANIFEST_SIZE as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| RegistryError::UpstreamFailed(format!("{upstream}: reading a manifest of {repo}: {e}")))?;
    if body.len() > manifest::MAX_MANIFEST_SIZE {
        return Err(RegistryError::UpstreamFailed(format!(
            "{upstream}: a manifest of {repo} is larger than {} bytes",
            manifest::MAX_MANIFEST_SIZE
        )));
    }
    let digest = Digest::of_bytes(&body);
    if let Some(want) = expected.or(named.as_ref()).filter(|want| **want != digest) {
        eprintln!("registry: mirror: {upstream} sent {digest} for {repo} manifest {want}: not stored");
        return Err(RegistryError::UpstreamFailed(format!(
            "{upstream} sent a manifest of {repo} whose digest is {digest}, not {want}"
        )));
    }
    // Only the four manifest types: it is served under the type it parses as.
    let content_type =
        content_type.filter(|t| [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].contains(&t.as_str()));
    let parsed = manifest::parse(content_type.as_deref(), &body).map_err(|e| {
        RegistryError::UpstreamFailed(format!("{upstream} sent an unusable manifest for {repo}: {}", e.detail()))
    })?;
    let tags: Vec<&Tag> = tag.into_iter().collect();
    crate::api::manifests::store(st, repo, &digest, &body, &parsed, &tags)?;
    Ok(digest)
}

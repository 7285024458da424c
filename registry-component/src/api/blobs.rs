//! end-2 and end-10: fetching and deleting blobs.

use super::{links, Ctx};
use crate::conditional;
use crate::error::RegistryError;
use crate::http::{Body, Request, Response};
use crate::oci::digest::Digest;
use crate::oci::name::RepoName;
use crate::range;
use crate::storage::{Storage, StorageExt};
use crate::store::keys;

/// end-2: `GET`/`HEAD /v2/<name>/blobs/<digest>`, with optional `Range`.
pub fn get<S: Storage>(
    st: &S,
    repo: &RepoName,
    digest: &Digest,
    req: &Request<S::Body>,
) -> Result<Response<S::Reader>, RegistryError> {
    let size = links::blob_size(st, repo, digest)?
        .ok_or_else(|| RegistryError::BlobUnknown(Some(format!("blob {digest} is unknown to repository {repo}"))))?;
    let head = req.method == "HEAD";
    // Before the range, as RFC 9110 orders the preconditions.
    if req.header("if-none-match").is_some_and(|tags| conditional::none_match(tags, digest.as_str())) {
        return Ok(Response::new(304)
            .header("Docker-Content-Digest", digest.as_str())
            .header("ETag", format!("\"{digest}\""))
            .header("Cache-Control", "max-age=31536000"));
    }
    let requested = match req.header("range") {
        Some(value) => match range::parse_range(value, size) {
            Ok(requested) => requested,
            Err(unsatisfiable) => {
                let err = RegistryError::from(unsatisfiable);
                return Ok(Response::error(&err).header("Content-Range", range::unsatisfied_content_range(size)));
            }
        },
        None => None,
    };
    let (status, offset, len) = match requested {
        Some(r) => (206, r.offset, r.length),
        None => (200, 0, size),
    };
    let mut response = Response::new(status)
        .header("Content-Type", "application/octet-stream")
        .header("Docker-Content-Digest", digest.as_str())
        .header("Accept-Ranges", "bytes")
        .header("ETag", format!("\"{digest}\""))
        .header("Cache-Control", "max-age=31536000");
    if let Some(r) = requested {
        response = response.header("Content-Range", r.content_range(size));
    }
    if head {
        return Ok(response.body(Body::Length(len)));
    }
    // A store that serves blobs itself takes the bytes off the registry:
    // the client follows the redirect (with its Range, if any) and checks
    // the digest as always.
    if let Some(url) = st.blob_redirect(digest.as_str())? {
        return Ok(Response::new(307).header("Location", url).header("Docker-Content-Digest", digest.as_str()));
    }
    let stream = st
        .blob_stream(digest, offset, Some(len))?
        .ok_or_else(|| RegistryError::BlobUnknown(Some(format!("blob {digest} is missing from storage"))))?;
    Ok(response.body(Body::Stream { stream, len }))
}

/// end-10: `DELETE /v2/<name>/blobs/<digest>`: unlinks the blob from the
/// repository; the bytes leave with the next garbage collection if nothing
/// else uses them.
pub fn delete<S: Storage>(
    ctx: &Ctx<S>,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Response<S::Reader>, RegistryError> {
    ctx.check_delete()?;
    let st = &ctx.storage;
    if !st.delete(&keys::blob_link(repo, digest))? {
        return Err(RegistryError::BlobUnknown(Some(format!("blob {digest} is unknown to repository {repo}"))));
    }
    Ok(Response::new(202).header("Docker-Content-Digest", digest.as_str()))
}

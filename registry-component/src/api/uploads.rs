//! end-4a/4b, end-5, end-6, end-11, end-13: blob upload sessions.
//!
//! A session is a kv record `(repository, upload id)` plus an upload in the
//! blob store; the `Location` URL carries only the id. Request bodies are
//! spliced into the store's append stream, never copied through the
//! component.

use super::{links, Ctx};
use crate::error::RegistryError;
use crate::http::{Request, Response};
use crate::oci::digest::Digest;
use crate::oci::name::RepoName;
use crate::oci::upload_id::UploadId;
use crate::range;
use crate::storage::{self, Upload};
use crate::store::keys;

fn upload_location(repo: &RepoName, id: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Response {
    Response::new(201)
        .header("Location", format!("/v2/{repo}/blobs/{digest}"))
        .header("Docker-Content-Digest", digest.as_str())
}

/// 202/204-style answer describing a session's progress.
fn progress(status: u16, repo: &RepoName, id: &str, size: u64) -> Response {
    Response::new(status)
        .header("Location", upload_location(repo, id))
        .header("Docker-Upload-UUID", id)
        .header("Range", range::upload_range(size))
}

/// end-4a/4b, end-11: `POST /v2/<name>/blobs/uploads/`: a mount, a
/// single-request upload (`?digest=`), or a new session.
pub fn start(
    repo: &RepoName,
    digest: Option<Digest>,
    mount: Option<Digest>,
    from: Option<RepoName>,
    req: &Request,
) -> Result<Response, RegistryError> {
    if let Some(mount) = mount {
        // end-11: link without copying when the source has it; otherwise
        // fall through to an ordinary session, as the spec allows.
        let available = match &from {
            Some(from) => links::blob_size(from, &mount)?.is_some(),
            None => storage::blob_size(&mount)?.is_some(),
        };
        if available {
            links::link_blob(repo, &mount)?;
            return Ok(blob_created(repo, &mount));
        }
    }
    let upload = Upload::start()?;
    if let Some(digest) = digest {
        // end-4b: the whole blob in this one request.
        if let Err(e) = append_body(&upload, req) {
            let _ = upload.abort();
            return Err(e);
        }
        return commit(repo, &upload, &digest);
    }
    let id = upload.id();
    storage::set(&keys::upload(repo, &parse_id(&id)?), b"")?;
    Ok(progress(202, repo, &id, 0))
}

/// end-13: `GET <location>`: how much of the upload has arrived.
pub fn status(repo: &RepoName, id: &UploadId) -> Result<Response, RegistryError> {
    let upload = session(repo, id)?;
    let size = upload.size()?;
    Ok(progress(204, repo, id.as_str(), size))
}

/// end-5: `PATCH <location>`: appends a chunk. With `Content-Range` the
/// chunk must start exactly where the upload ends (else 416).
pub fn patch(repo: &RepoName, id: &UploadId, req: &Request) -> Result<Response, RegistryError> {
    let upload = session(repo, id)?;
    if let Some(refusal) = chunk_out_of_order(repo, id, &upload, req)? {
        return Ok(refusal);
    }
    append_body(&upload, req)?;
    let size = upload.size()?;
    Ok(progress(202, repo, id.as_str(), size))
}

/// end-6: `PUT <location>?digest=`: appends an optional last chunk and
/// completes the upload if the content has that digest.
pub fn put(repo: &RepoName, id: &UploadId, digest: &Digest, req: &Request) -> Result<Response, RegistryError> {
    let upload = session(repo, id)?;
    if let Some(refusal) = chunk_out_of_order(repo, id, &upload, req)? {
        return Ok(refusal);
    }
    append_body(&upload, req)?;
    let result = commit(repo, &upload, digest);
    // The store ends the upload on success and on a digest mismatch alike.
    storage::delete(&keys::upload(repo, id))?;
    result
}

/// `DELETE <location>`: cancels the upload. Like every DELETE, refused
/// when deletion is turned off (`--disable-delete`).
pub fn delete(ctx: &Ctx, repo: &RepoName, id: &UploadId) -> Result<Response, RegistryError> {
    ctx.check_delete()?;
    let upload = session(repo, id)?;
    upload.abort()?;
    storage::delete(&keys::upload(repo, id))?;
    Ok(Response::new(204))
}

fn parse_id(id: &str) -> Result<UploadId, RegistryError> {
    id.parse().map_err(|_| RegistryError::internal(format!("storage issued an odd upload id {id:?}")))
}

/// The upload behind a session of `repo`, or BLOB_UPLOAD_UNKNOWN.
fn session(repo: &RepoName, id: &UploadId) -> Result<Upload, RegistryError> {
    let unknown = || RegistryError::BlobUploadUnknown(Some(format!("upload {id} is unknown to repository {repo}")));
    if !storage::exists(&keys::upload(repo, id))? {
        return Err(unknown());
    }
    match Upload::resume(id.as_str()) {
        Ok(upload) => Ok(upload),
        Err(crate::bindings::types::Error::NotFound) => Err(unknown()),
        Err(e) => Err(e.into()),
    }
}

/// With `Content-Range`, a chunk must start where the upload ends: a 416
/// (with the current `Range`, so the client can resume) otherwise.
fn chunk_out_of_order(repo: &RepoName, id: &UploadId, upload: &Upload, req: &Request) -> Result<Option<Response>, RegistryError> {
    let Some(value) = req.header("content-range") else { return Ok(None) };
    let (start, end) = range::parse_content_range(value)?;
    let size = upload.size()?;
    if start != size {
        let err = RegistryError::RangeNotSatisfiable(Some(format!(
            "the upload has {size} bytes; a chunk starting at {start} does not follow"
        )));
        return Ok(Some(
            Response::error(&err)
                .header("Location", upload_location(repo, id.as_str()))
                .header("Docker-Upload-UUID", id.as_str())
                .header("Range", range::upload_range(size)),
        ));
    }
    if let Some(len) = req.content_length() {
        if len != end - start + 1 {
            return Err(RegistryError::SizeInvalid(Some(format!(
                "Content-Range {start}-{end} does not match Content-Length {len}"
            ))));
        }
    }
    Ok(None)
}

fn append_body(upload: &Upload, req: &Request) -> Result<u64, RegistryError> {
    let out = upload.append()?;
    let body = req.body()?;
    body.splice_into(&out)
}

fn commit(repo: &RepoName, upload: &Upload, digest: &Digest) -> Result<Response, RegistryError> {
    upload.commit(digest.as_str())?;
    links::link_blob(repo, digest)?;
    Ok(blob_created(repo, digest))
}

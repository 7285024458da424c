//! end-4a/4b, end-5, end-6, end-11, end-13: blob upload sessions.
//!
//! A session is an upload in the blob store; the `Location` URL carries a
//! token naming it, signed for the repository (`crate::session`), so that
//! starting and ending a session writes nothing to kv. Request bodies are
//! spliced into the store's append stream, never copied through the
//! component.

use super::{links, Ctx};
use crate::error::RegistryError;
use crate::http::{Request, Response};
use crate::oci::digest::Digest;
use crate::oci::name::RepoName;
use crate::oci::upload_id::UploadId;
use crate::range;
use crate::session;
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
    let token = session::sign(&upload_secret()?, repo, &upload.id());
    Ok(progress(202, repo, &token, 0))
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
    // The store ends the upload on success and on a digest mismatch alike.
    commit(repo, &upload, digest)
}

/// `DELETE <location>`: cancels the upload. Like every DELETE, refused
/// when deletion is turned off (`--disable-delete`).
pub fn delete(ctx: &Ctx, repo: &RepoName, id: &UploadId) -> Result<Response, RegistryError> {
    ctx.check_delete()?;
    let upload = session(repo, id)?;
    upload.abort()?;
    Ok(Response::new(204))
}

/// The key of the session MACs, created on first use.
fn upload_secret() -> Result<Vec<u8>, RegistryError> {
    let key = keys::upload_secret();
    if let Some(secret) = storage::get(&key)? {
        return Ok(secret);
    }
    let fresh = wasip2::random::random::get_random_bytes(session::SECRET_LEN as u64);
    // Two first uploads may race: whichever secret landed first is the one.
    storage::set_if_absent(&key, &fresh)?;
    storage::get(&key)?.ok_or_else(|| RegistryError::internal("the upload secret vanished"))
}

/// The upload behind a session token of `repo`, or BLOB_UPLOAD_UNKNOWN.
fn session(repo: &RepoName, token: &UploadId) -> Result<Upload, RegistryError> {
    let unknown = || RegistryError::BlobUploadUnknown(Some(format!("upload {token} is unknown to repository {repo}")));
    let id = session::verify(&upload_secret()?, repo, token).ok_or_else(unknown)?;
    match Upload::resume(&id) {
        Ok(upload) => Ok(upload),
        Err(crate::bindings::types::Error::NotFound | crate::bindings::types::Error::Invalid(_)) => Err(unknown()),
        Err(e) => Err(e.into()),
    }
}

/// With `Content-Range`, a chunk must start where the upload ends: a 416
/// (with the current `Range`, so the client can resume) otherwise.
fn chunk_out_of_order(
    repo: &RepoName,
    id: &UploadId,
    upload: &Upload,
    req: &Request,
) -> Result<Option<Response>, RegistryError> {
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

//! end-4a/4b, end-5, end-6, end-11, end-13: blob upload sessions.
//!
//! A session is an upload in the blob store; the `Location` URL carries a
//! token naming it, signed for the repository (`crate::session`), so that
//! starting and ending a session writes nothing to kv. Request bodies are
//! spliced into the store's append stream, never copied through the
//! component (the storage seam's `Upload::append`).

use super::{links, Ctx};
use crate::error::RegistryError;
use crate::http::{Request, RequestBody as _, Response};
use crate::oci::digest::Digest;
use crate::oci::name::RepoName;
use crate::oci::upload_id::UploadId;
use crate::range;
use crate::session;
use crate::storage::{AppendError, Error, Storage, StorageExt, Upload};
use crate::store::keys;

fn upload_location(repo: &RepoName, id: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

fn blob_created<R>(repo: &RepoName, digest: &Digest) -> Response<R> {
    Response::new(201)
        .header("Location", format!("/v2/{repo}/blobs/{digest}"))
        .header("Docker-Content-Digest", digest.as_str())
}

/// 202/204-style answer describing a session's progress.
fn progress<R>(status: u16, repo: &RepoName, id: &str, size: u64) -> Response<R> {
    Response::new(status)
        .header("Location", upload_location(repo, id))
        .header("Docker-Upload-UUID", id)
        .header("Range", range::upload_range(size))
}

/// end-4a/4b, end-11: `POST /v2/<name>/blobs/uploads/`: a mount, a
/// single-request upload (`?digest=`), or a new session.
pub fn start<S: Storage>(
    st: &S,
    repo: &RepoName,
    digest: Option<Digest>,
    mount: Option<Digest>,
    from: Option<RepoName>,
    req: &mut Request<S::Body>,
) -> Result<Response<S::Reader>, RegistryError> {
    if let Some(mount) = mount {
        // end-11: link without copying when the source has it; otherwise
        // fall through to an ordinary session, as the spec allows.
        let available = match &from {
            Some(from) => links::blob_size(st, from, &mount)?.is_some(),
            None => st.blob_size(&mount)?.is_some(),
        };
        // Touched before it is linked, so that a collection keeps it.
        if available && st.blob_touch(mount.as_str())? {
            links::link_blob(st, repo, &mount)?;
            return Ok(blob_created(repo, &mount));
        }
    }
    let upload = st.start_upload()?;
    if let Some(digest) = digest {
        // end-4b: the whole blob in this one request.
        if let Err(e) = append_body(&upload, req) {
            let _ = upload.abort();
            return Err(e);
        }
        return commit(st, repo, &upload, &digest);
    }
    let token = session::sign(&upload_secret(st)?, repo, &upload.id());
    Ok(progress(202, repo, &token, 0))
}

/// end-13: `GET <location>`: how much of the upload has arrived.
pub fn status<S: Storage>(st: &S, repo: &RepoName, id: &UploadId) -> Result<Response<S::Reader>, RegistryError> {
    let upload = session(st, repo, id)?;
    let size = upload.size()?;
    Ok(progress(204, repo, id.as_str(), size))
}

/// end-5: `PATCH <location>`: appends a chunk. With `Content-Range` the
/// chunk must start exactly where the upload ends (else 416).
pub fn patch<S: Storage>(
    st: &S,
    repo: &RepoName,
    id: &UploadId,
    req: &mut Request<S::Body>,
) -> Result<Response<S::Reader>, RegistryError> {
    let upload = session(st, repo, id)?;
    if let Some(refusal) = chunk_out_of_order(repo, id, &upload, req)? {
        return Ok(refusal);
    }
    append_body(&upload, req)?;
    let size = upload.size()?;
    Ok(progress(202, repo, id.as_str(), size))
}

/// end-6: `PUT <location>?digest=`: appends an optional last chunk and
/// completes the upload if the content has that digest.
pub fn put<S: Storage>(
    st: &S,
    repo: &RepoName,
    id: &UploadId,
    digest: &Digest,
    req: &mut Request<S::Body>,
) -> Result<Response<S::Reader>, RegistryError> {
    let upload = session(st, repo, id)?;
    if let Some(refusal) = chunk_out_of_order(repo, id, &upload, req)? {
        return Ok(refusal);
    }
    append_body(&upload, req)?;
    // The store ends the upload on success and on a digest mismatch alike.
    commit(st, repo, &upload, digest)
}

/// `DELETE <location>`: cancels the upload. Like every DELETE, refused
/// when deletion is turned off (`--disable-delete`).
pub fn delete<S: Storage>(ctx: &Ctx<S>, repo: &RepoName, id: &UploadId) -> Result<Response<S::Reader>, RegistryError> {
    ctx.check_delete()?;
    let upload = session(&ctx.storage, repo, id)?;
    upload.abort()?;
    Ok(Response::new(204))
}

/// The key of the session MACs, created on first use.
fn upload_secret<S: Storage>(st: &S) -> Result<Vec<u8>, RegistryError> {
    crate::store::secret(st, &keys::upload_secret(), session::SECRET_LEN)
}

/// The upload behind a session token of `repo`, or BLOB_UPLOAD_UNKNOWN.
fn session<S: Storage>(st: &S, repo: &RepoName, token: &UploadId) -> Result<S::Upload, RegistryError> {
    let unknown = || RegistryError::BlobUploadUnknown(Some(format!("upload {token} is unknown to repository {repo}")));
    let id = session::verify(&upload_secret(st)?, repo, token).ok_or_else(unknown)?;
    match st.resume_upload(&id) {
        Ok(upload) => Ok(upload),
        Err(Error::NotFound | Error::Invalid(_)) => Err(unknown()),
        Err(e) => Err(e.into()),
    }
}

/// With `Content-Range`, a chunk must start where the upload ends: a 416
/// (with the current `Range`, so the client can resume) otherwise.
fn chunk_out_of_order<U: Upload, R>(
    repo: &RepoName,
    id: &UploadId,
    upload: &U,
    req: &Request<U::Body>,
) -> Result<Option<Response<R>>, RegistryError> {
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

fn append_body<U: Upload>(upload: &U, req: &mut Request<U::Body>) -> Result<u64, RegistryError> {
    let mut body = req.take_body()?;
    match upload.append(&mut body) {
        Ok(n) => Ok(n),
        Err(e @ AppendError::Storage(_)) => {
            // The store gave up with the client still sending: read on (as
            // far as any unread body is read) so that the client gets this
            // answer instead of a connection closed under its upload.
            body.discard(crate::http::DISCARD_LIMIT);
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

fn commit<S: Storage>(
    st: &S,
    repo: &RepoName,
    upload: &S::Upload,
    digest: &Digest,
) -> Result<Response<S::Reader>, RegistryError> {
    upload.commit(digest.as_str())?;
    links::link_blob(st, repo, digest)?;
    Ok(blob_created(repo, digest))
}

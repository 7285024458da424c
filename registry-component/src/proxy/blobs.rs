//! A mirror's blobs. One that is not here yet is fetched from the upstream
//! and streamed to the client while it is stored; it is kept only if it
//! hashes to its digest, and the client gets its last chunk only then, so
//! that a wrong or short upstream answer is never stored and never looks
//! complete. Requests for a blob being fetched wait for that fetch instead
//! of starting another (a kv marker, refreshed while the bytes flow).

use super::upstream::{Fetch, Session};
use super::{from_upstream, Mirror};
use crate::api::links;
use crate::error::RegistryError;
use crate::http::{Body, Request, Response};
use crate::oci::digest::Digest;
use crate::oci::name::RepoName;
use crate::storage::{Storage, StorageExt, Upload};
use crate::store::keys;
use std::io::Read;
use std::time::Duration;

/// Chunks read from the upstream.
const CHUNK: usize = 256 << 10;
/// The fetch marker is refreshed after this many bytes.
const REFRESH_EVERY: u64 = 8 << 20;
/// A marker older than this belongs to a fetch that died.
const STALE_SECS: u64 = 60;
/// How often a waiting request looks again.
const POLL: Duration = Duration::from_millis(200);
/// The longest a request waits for another's fetch.
const MAX_WAIT: Duration = Duration::from_secs(900);

/// `GET`/`HEAD` of a blob that `repo`, a mirror, does not link yet.
pub fn get<S: Storage + Clone + 'static>(
    st: &S,
    fetch: &dyn Fetch,
    mirror: &Mirror<'_>,
    repo: &RepoName,
    digest: &Digest,
    req: &Request<S::Body>,
) -> Result<Response<S::Reader>, RegistryError>
where
    S::Upload: 'static,
{
    let session = Session::new(fetch, mirror.upstream, &mirror.remote);
    let what = format!("blobs/{digest}");
    // Stored for another repository, or only asked about: the upstream
    // must confirm that this repository has it (bytes stored for a private
    // repository must not leak through a mirror's name).
    if req.method == "HEAD" || st.blob_size(digest)?.is_some() {
        let answer = session.send("HEAD", &what, None).map_err(|e| from_upstream(e, RegistryError::BlobUnknown))?;
        if st.blob_size(digest)?.is_some() {
            links::link_blob(st, repo, digest)?;
            return crate::api::blobs::get(st, repo, digest, req);
        }
        let len = answer.content_length().ok_or_else(|| {
            RegistryError::UpstreamFailed(format!("{}: HEAD {what}: no length", session.upstream_url()))
        })?;
        return Ok(blob_headers(Response::new(200), digest).body(Body::Length(len)));
    }
    let marker = keys::mirror_fetch(repo, digest);
    let mut waited = Duration::ZERO;
    loop {
        if claim(st, &marker)? {
            break;
        }
        // Another request is fetching it: serve what it stores.
        st.pause(POLL);
        waited += POLL;
        if links::blob_size(st, repo, digest)?.is_some() {
            return crate::api::blobs::get(st, repo, digest, req);
        }
        if waited >= MAX_WAIT {
            return Err(RegistryError::UpstreamFailed(format!(
                "waited {}s for another request's fetch of {digest} from {}",
                MAX_WAIT.as_secs(),
                session.upstream_url()
            )));
        }
    }
    let answer = match session.send("GET", &what, None) {
        Ok(answer) => answer,
        Err(e) => {
            st.delete(&marker)?;
            return Err(from_upstream(e, RegistryError::BlobUnknown));
        }
    };
    let len = answer.content_length();
    let upload = match st.start_upload() {
        Ok(upload) => upload,
        Err(e) => {
            st.delete(&marker)?;
            return Err(e.into());
        }
    };
    let tee = Tee { st: st.clone(), repo: repo.clone(), digest: digest.clone(), marker, upload, len };
    let Some(len) = len else {
        // No length to announce: store it whole first, then serve it.
        if !tee.run(answer.body, &mut |_| true) {
            return Err(RegistryError::UpstreamFailed(format!(
                "{}: GET {what}: the answer was cut short or did not match its digest",
                session.upstream_url()
            )));
        }
        return crate::api::blobs::get(st, repo, digest, req);
    };
    let body = answer.body;
    let produce = Box::new(move |sink: &mut dyn FnMut(&[u8]) -> bool| tee.run(body, sink));
    Ok(blob_headers(Response::new(200), digest).body(Body::Produced { len, produce }))
}

fn blob_headers<R>(response: Response<R>, digest: &Digest) -> Response<R> {
    response
        .header("Content-Type", "application/octet-stream")
        .header("Docker-Content-Digest", digest.as_str())
        .header("ETag", format!("\"{digest}\""))
}

/// Takes the fetch marker: true if this request is now the one fetching.
/// A marker left by a fetch that died is taken over.
fn claim<S: Storage>(st: &S, marker: &str) -> Result<bool, RegistryError> {
    let now = crate::gc::seconds(st.now()).to_string();
    match st.kv_get(marker)? {
        None => Ok(st.set_if_absent(marker, now.as_bytes())?),
        Some(entry) => {
            let since = std::str::from_utf8(&entry.value).ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            if crate::gc::seconds(st.now()).saturating_sub(since) < STALE_SECS {
                return Ok(false);
            }
            match st.kv_set_if(marker, now.as_bytes(), Some(entry.version)) {
                Ok(_) => Ok(true),
                Err(crate::storage::Error::Conflict) => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// The bytes from the upstream, into the store and on to the client.
struct Tee<S: Storage> {
    st: S,
    repo: RepoName,
    digest: Digest,
    marker: String,
    upload: S::Upload,
    /// The upstream's Content-Length, if it gave one.
    len: Option<u64>,
}

impl<S: Storage> Tee<S> {
    /// Moves the whole body; whether the client got all of it, verified.
    /// A client that goes away does not stop the fetch: the blob is kept
    /// for the next pull.
    fn run(self, mut body: Box<dyn Read>, sink: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        let mut client = true;
        let mut moved = 0u64;
        let mut refreshed = 0u64;
        let mut buf = vec![0u8; CHUNK];
        // Held back one chunk: the last goes out only once the digest checks.
        let mut held: Vec<u8> = Vec::new();
        let read_whole = loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break self.len.is_none_or(|len| moved == len),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("registry: mirror: reading {} from the upstream: {e}", self.digest);
                    break false;
                }
            };
            moved += n as u64;
            if self.len.is_some_and(|len| moved > len) || self.upload.write(&buf[..n]).is_err() {
                break false;
            }
            if client && !held.is_empty() {
                client = sink(&held);
            }
            held.clear();
            held.extend_from_slice(&buf[..n]);
            if moved - refreshed >= REFRESH_EVERY {
                refreshed = moved;
                let _ = self.st.set(&self.marker, crate::gc::seconds(self.st.now()).to_string().as_bytes());
            }
        };
        let stored = read_whole && self.commit();
        if !read_whole {
            let _ = self.upload.abort();
            eprintln!(
                "registry: mirror: the upstream's answer for {} was cut short after {moved} bytes: not stored",
                self.digest
            );
        }
        let _ = self.st.delete(&self.marker);
        stored && client && (held.is_empty() || sink(&held))
    }

    /// Keeps the bytes if they hash to the digest, and links them.
    fn commit(&self) -> bool {
        match self.upload.commit(self.digest.as_str()) {
            Ok(_) => links::link_blob(&self.st, &self.repo, &self.digest).is_ok(),
            Err(crate::storage::Error::DigestMismatch(actual)) => {
                eprintln!("registry: mirror: the upstream sent {actual} for {}: not stored", self.digest);
                false
            }
            Err(e) => {
                eprintln!("registry: mirror: storing {}: {e:?}", self.digest);
                false
            }
        }
    }
}

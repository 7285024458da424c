//! Uploads on the object store, resumable on any instance: everything an
//! upload is lives in the store, so that its next chunk, or its commit, may
//! arrive at any registry-host serving the bucket.
//!
//! - `uploads/<id>`: its state (JSON): bytes received, the SHA-256 state of
//!   all of them, the store's multipart upload with the ETag of each part,
//!   and the object that holds the tail (the bytes after the last part).
//! - `upload-data/<id>/…`: the tail objects and, at commit, the assembled
//!   bytes (`data`), the target of the multipart upload.
//! - `upload-leases/<id>`: exists while an append stream is open: created
//!   only if absent, so that one append stream at a time writes the upload.
//!
//! Parts are [`PART_SIZE`] bytes (the store's minimum is 5 MiB but for the
//! last): an append sends every whole part as it fills, in the background,
//! and keeps the rest as the new tail. A commit adds the tail as the last
//! part by a copy within the store, completes the multipart upload, and
//! copies the result to the blob's name: the bytes never pass through the
//! host again. An upload smaller than a part is only a tail, copied to the
//! blob's name.

use super::objects::Precondition;
use super::S3Store;
use crate::storage::RequestWrites;
use bytes::{Bytes, BytesMut};
use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use storage_layout::hashstate::UploadHash;
use storage_layout::names::{check_upload_id, digest_hex, digest_of_hex, upload_id};
use storage_layout::pages::UploadInfo;
use storage_layout::{StorageError, StorageResult};
use tokio::task::JoinHandle;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Bytes of each part of a multipart upload but the last.
pub const PART_SIZE: usize = 8 << 20;
/// An append stream whose instance died holds its upload this long.
const LEASE_TTL: Duration = Duration::from_secs(10 * 60);

/// An upload as the store keeps it between requests.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct State {
    /// Bytes received.
    size: u64,
    /// `UploadHash::encode` of all of them, hex.
    hash: String,
    /// The store's multipart upload, once a part was sent.
    multipart: Option<String>,
    /// ETags of the parts sent, part `n` at `n - 1`.
    parts: Vec<String>,
    /// The object holding the bytes after the last part, if any.
    tail: Option<String>,
}

impl State {
    fn new() -> State {
        State { size: 0, hash: hex::encode(UploadHash::new().encode()), multipart: None, parts: Vec::new(), tail: None }
    }

    fn hash(&self) -> StorageResult<UploadHash> {
        hex::decode(&self.hash)
            .ok()
            .and_then(|bytes| UploadHash::decode(&bytes))
            .ok_or_else(|| StorageError::Other("an upload's hash state is unreadable".into()))
    }

    fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a state always serializes"))
    }
}

/// The `upload` resource of the S3 backend: only its id, since everything
/// else lives in the store.
#[derive(Clone, Debug)]
pub struct S3Upload {
    pub id: String,
}

/// A store failure of an append stream (as opposed to the other end of a
/// splice into it): what `append-failure` recognizes.
#[derive(Debug, thiserror::Error)]
#[error("writing the upload failed: {0}")]
pub struct S3AppendError(pub StorageError);

impl S3Store {
    fn state_object(&self, id: &str) -> String {
        format!("{}uploads/{id}", self.root)
    }

    fn data_prefix(&self, id: &str) -> String {
        format!("{}upload-data/{id}/", self.root)
    }

    fn lease_object(&self, id: &str) -> String {
        format!("{}upload-leases/{id}", self.root)
    }

    async fn load(&self, id: &str) -> StorageResult<(State, String)> {
        let Some((bytes, meta)) = self.client.get(&self.state_object(id)).await? else {
            return Err(StorageError::NotFound);
        };
        let state = serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::Other(format!("upload {id}: unreadable state: {e}")))?;
        Ok((state, meta.etag))
    }

    pub async fn upload_start(&self) -> StorageResult<S3Upload> {
        let id = upload_id(*uuid::Uuid::new_v4().as_bytes());
        self.client.put(&self.state_object(&id), State::new().encode(), &Precondition::Absent).await?;
        Ok(S3Upload { id })
    }

    pub async fn upload_resume(&self, id: &str) -> StorageResult<S3Upload> {
        check_upload_id(id)?;
        match self.client.head(&self.state_object(id)).await? {
            Some(_) => Ok(S3Upload { id: id.to_string() }),
            None => Err(StorageError::NotFound),
        }
    }

    pub async fn upload_size(&self, upload: &S3Upload) -> StorageResult<u64> {
        self.settled(&upload.id).await;
        Ok(self.load(&upload.id).await?.0.size)
    }

    /// The lock that a dropped append stream's final write holds on upload
    /// `id`.
    fn gate(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        // Those nobody holds or waits for are done.
        gates.retain(|_, gate| Arc::strong_count(gate) > 1);
        gates.entry(id.to_string()).or_default().clone()
    }

    /// Returns once the final write of a stream this process dropped on
    /// upload `id` is done.
    async fn settled(&self, id: &str) {
        let gate = self.gates.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        if let Some(gate) = gate {
            drop(gate.lock().await);
        }
    }

    /// Takes the upload's lease: `conflict` while another append stream
    /// holds it.
    async fn take_lease(&self, id: &str) -> StorageResult<()> {
        let lease = self.lease_object(id);
        for _ in 0..2 {
            // A nonce for a body: each lease has an ETag of its own.
            let body = Bytes::from(uuid::Uuid::new_v4().simple().to_string());
            match self.client.put(&lease, body, &Precondition::Absent).await {
                Err(StorageError::Conflict) => {}
                other => return other.map(drop),
            }
            match self.client.head(&lease).await? {
                // Left by an instance that died with the stream open.
                Some(meta) if super::now_secs() > meta.modified + LEASE_TTL.as_secs() => {
                    self.client.delete(&lease, &Precondition::Is(meta.etag)).await?;
                }
                Some(_) => return Err(StorageError::Conflict),
                None => {}
            }
        }
        Err(StorageError::Conflict)
    }

    pub async fn upload_append(
        self: &Arc<Self>,
        upload: &S3Upload,
        writes: Arc<RequestWrites>,
    ) -> StorageResult<S3Writer> {
        let id = &upload.id;
        self.settled(id).await;
        self.take_lease(id).await?;
        let opened = async {
            // Read once the lease is ours: what the last stream left.
            let (state, etag) = self.load(id).await?;
            let mut buffer = BytesMut::new();
            if let Some(tail) = &state.tail {
                let (bytes, _) = self
                    .client
                    .get(tail)
                    .await?
                    .ok_or_else(|| StorageError::Other(format!("upload {id}: its tail object is missing")))?;
                buffer.extend_from_slice(&bytes);
            }
            let hash = state.hash()?;
            Ok::<_, StorageError>(S3Writer {
                store: self.clone(),
                id: id.clone(),
                state,
                etag,
                hash,
                buffer,
                part: None,
                error: None,
                writes,
            })
        }
        .await;
        if opened.is_err() {
            let _ = self.client.delete(&self.lease_object(id), &Precondition::None).await;
        }
        opened
    }

    pub async fn upload_commit(&self, upload: &S3Upload, expected: &str) -> StorageResult<u64> {
        let hex = digest_hex(expected)?;
        let id = &upload.id;
        self.settled(id).await;
        let (state, _) = self.load(id).await?;
        let actual = state.hash()?.hex_digest();
        if actual != hex {
            self.upload_abort(upload).await?;
            return Err(StorageError::DigestMismatch(digest_of_hex(&actual)));
        }
        // Stored already: one copy is enough.
        if !self.blob_touch(expected).await? {
            let source = self.assemble(id, &state).await?;
            self.blob_commit_from(hex, &source, state.size).await?;
        }
        self.remove_upload(id, &state).await?;
        Ok(state.size)
    }

    /// The object holding all of the upload's bytes.
    async fn assemble(&self, id: &str, state: &State) -> StorageResult<String> {
        let data = format!("{}data", self.data_prefix(id));
        let Some(multipart) = &state.multipart else {
            return match &state.tail {
                Some(tail) => Ok(tail.clone()),
                None => {
                    // No bytes at all.
                    self.client.put(&data, Bytes::new(), &Precondition::None).await?;
                    Ok(data)
                }
            };
        };
        let mut parts = state.parts.clone();
        if let Some(tail) = &state.tail {
            let number = part_number(parts.len() + 1)?;
            parts.push(self.client.copy_part(&data, multipart, number, tail, None).await?);
        }
        self.client.complete(&data, multipart, &parts).await?;
        Ok(data)
    }

    /// Removes what the upload left in the store: its state first, so that
    /// it is gone at once, then its multipart upload and objects.
    async fn remove_upload(&self, id: &str, state: &State) -> StorageResult<()> {
        self.client.delete(&self.state_object(id), &Precondition::None).await?;
        if let Some(multipart) = &state.multipart {
            let data = format!("{}data", self.data_prefix(id));
            let what = format!("AbortMultipartUpload {data}");
            let action = self.client.bucket.abort_multipart_upload(self.client.credentials(), &data, multipart);
            // Completed already (after a commit): nothing to abort.
            let _ = self.client.send(action, &[], Bytes::new(), &what).await?;
        }
        for object in self.client.list(&self.data_prefix(id), None, 1000).await? {
            self.client.delete(&object.key, &Precondition::None).await?;
        }
        self.client.delete(&self.lease_object(id), &Precondition::None).await?;
        Ok(())
    }

    pub async fn upload_abort(&self, upload: &S3Upload) -> StorageResult<()> {
        self.settled(&upload.id).await;
        match self.load(&upload.id).await {
            Ok((state, _)) => self.remove_upload(&upload.id, &state).await,
            Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn upload_list(&self, after: Option<&str>, limit: u32) -> StorageResult<Vec<UploadInfo>> {
        let base = format!("{}uploads/", self.root);
        let start = after.map(|id| format!("{base}{id}"));
        let mut out = Vec::new();
        for object in self.client.list(&base, start.as_deref(), limit as usize).await? {
            let id = object.key[base.len()..].to_string();
            // Committed or aborted since it was listed: not in progress.
            match self.load(&id).await {
                Ok((state, _)) => out.push(UploadInfo { id, size: state.size, modified: object.modified }),
                Err(StorageError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

fn part_number(number: usize) -> StorageResult<u16> {
    u16::try_from(number).ok().filter(|n| *n <= 10_000).ok_or_else(|| {
        StorageError::Invalid(format!("an upload of more than 10000 parts of {PART_SIZE} bytes is too large"))
    })
}

/// A part being sent: its multipart upload (created for the first part)
/// and its ETag.
type PartTask = JoinHandle<StorageResult<(String, String)>>;

/// The `output-stream` that `upload.append` returns. Bytes are hashed as
/// they come and gathered into parts, each sent in the background while
/// the next fills (one at a time, so memory stays at about two parts).
///
/// The upload's state is written once, when the stream is dropped: what is
/// not in a part becomes the new tail, the state names it, the lease goes.
/// A flush does not write it: wasmtime's `blocking-splice` flushes after
/// every piece it moves, and a state written per piece rewrote the tail
/// each time (14 GiB written to the store for a 1 GiB push). The write runs
/// in the background and the request waits for it before it answers
/// (`RequestWrites::defer`); later calls on the upload in this process wait
/// for it too (`S3Store::settled`).
pub struct S3Writer {
    store: Arc<S3Store>,
    id: String,
    state: State,
    /// The ETag of the state as loaded: a state written by anyone else
    /// meanwhile makes the final write fail rather than lose their write.
    etag: String,
    hash: UploadHash,
    /// Bytes not in a part yet: the old tail, then what came.
    buffer: BytesMut,
    part: Option<PartTask>,
    error: Option<StorageError>,
    /// The request's writes, which its response waits for.
    writes: Arc<RequestWrites>,
}

impl S3Writer {
    fn failed(&self) -> StreamResult<()> {
        match &self.error {
            Some(e) => Err(StreamError::LastOperationFailed(wasmtime::Error::new(S3AppendError(e.clone())))),
            None => Ok(()),
        }
    }

    fn record_part(&mut self, result: Result<StorageResult<(String, String)>, tokio::task::JoinError>) {
        match result {
            Ok(Ok((multipart, etag))) => {
                self.state.multipart = Some(multipart);
                self.state.parts.push(etag);
            }
            Ok(Err(e)) => self.error = Some(e),
            Err(e) => self.error = Some(StorageError::Other(format!("sending a part: {e}"))),
        }
    }

    /// Takes the result of a part that is done, without waiting.
    fn collect(&mut self) {
        if self.part.as_ref().is_some_and(JoinHandle::is_finished) {
            let part = self.part.take().expect("checked above");
            let result = futures_util::FutureExt::now_or_never(part).expect("a finished task is ready");
            self.record_part(result);
        }
    }

    /// Sends the next whole part if none is being sent.
    fn send_part(&mut self) {
        if self.part.is_some() || self.buffer.len() < PART_SIZE || self.error.is_some() {
            return;
        }
        let number = match part_number(self.state.parts.len() + 1) {
            Ok(number) => number,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        let bytes = self.buffer.split_to(PART_SIZE).freeze();
        let (store, id, multipart) = (self.store.clone(), self.id.clone(), self.state.multipart.clone());
        self.part = Some(self.store.runtime.spawn(async move { store.send_part(&id, multipart, number, bytes).await }));
    }
}

impl S3Store {
    /// Sends part `number` of upload `id`, starting its multipart upload
    /// if there is none yet.
    async fn send_part(
        &self,
        id: &str,
        multipart: Option<String>,
        number: u16,
        bytes: Bytes,
    ) -> StorageResult<(String, String)> {
        let data = format!("{}data", self.data_prefix(id));
        let multipart = match multipart {
            Some(multipart) => multipart,
            None => self.client.create_multipart(&data).await?,
        };
        let what = format!("UploadPart {data} part {number}");
        let action = self.client.bucket.upload_part(self.client.credentials(), &data, number, &multipart);
        let answer = self.client.send(action, &[], bytes, &what).await?;
        if answer.status != StatusCode::OK {
            return Err(answer.fail(&what).await);
        }
        let etag = answer.etag()?;
        // The lease lives while parts go out.
        let body = Bytes::from(uuid::Uuid::new_v4().simple().to_string());
        self.client.put(&self.lease_object(id), body, &Precondition::None).await?;
        Ok((multipart, etag))
    }

    /// The end of an append stream: the last part sent, the rest as the
    /// new tail, the state written (only over the one the stream began
    /// from), the old tail removed, the lease given back.
    async fn finish_append(&self, id: &str, mut state: State, etag: String, rest: Bytes) -> StorageResult<()> {
        let old_tail = state.tail.take();
        if !rest.is_empty() {
            let tail = format!("{}tail-{}", self.data_prefix(id), uuid::Uuid::new_v4().simple());
            self.client.put(&tail, rest, &Precondition::None).await?;
            state.tail = Some(tail);
        }
        match self.client.put(&self.state_object(id), state.encode(), &Precondition::Is(etag)).await {
            Ok(_) => {}
            // Aborted or committed meanwhile, or taken over after our lease
            // ran out: what this stream wrote is not the upload's.
            Err(StorageError::Conflict) => return Err(StorageError::NotFound),
            Err(e) => return Err(e),
        };
        if let Some(old) = old_tail.filter(|old| Some(old) != state.tail.as_ref()) {
            self.client.delete(&old, &Precondition::None).await?;
        }
        self.client.delete(&self.lease_object(id), &Precondition::None).await?;
        Ok(())
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        let store = self.store.clone();
        let id = self.id.clone();
        if self.error.is_some() {
            // The upload is gone (`append-failure` removes it): give the
            // lease back, nothing else.
            if let Some(part) = self.part.take() {
                part.abort();
            }
            self.store.runtime.spawn(async move {
                let _ = store.client.delete(&store.lease_object(&id), &Precondition::None).await;
            });
            return;
        }
        let part = self.part.take();
        let mut state = std::mem::replace(&mut self.state, State::new());
        state.hash = hex::encode(self.hash.encode());
        let rest = self.buffer.split().freeze();
        let etag = std::mem::take(&mut self.etag);
        // Later calls on this upload in this process wait for the write.
        let gate = self.store.gate(&id);
        let guard = gate.try_lock_owned().ok();
        let task = self.store.runtime.spawn(async move {
            let _guard = guard;
            let written = async {
                if let Some(part) = part {
                    let (multipart, part_etag) =
                        part.await.map_err(|e| StorageError::Other(format!("sending a part: {e}")))??;
                    state.multipart = Some(multipart);
                    state.parts.push(part_etag);
                }
                store.finish_append(&id, state, etag, rest).await
            }
            .await;
            if written.is_err() {
                let _ = store.client.delete(&store.lease_object(&id), &Precondition::None).await;
            }
            written
        });
        self.writes.defer(task);
    }
}

#[async_trait::async_trait]
impl Pollable for S3Writer {
    async fn ready(&mut self) {
        if self.buffer.len() < PART_SIZE {
            return;
        }
        if let Some(part) = self.part.as_mut() {
            let result = part.await;
            self.part = None;
            self.record_part(result);
            self.send_part();
        }
    }
}

impl OutputStream for S3Writer {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.collect();
        self.failed()?;
        self.hash.update(&bytes);
        self.state.size += bytes.len() as u64;
        self.buffer.extend_from_slice(&bytes);
        self.send_part();
        Ok(())
    }

    /// Reports a failure so far; the state is written when the stream is
    /// dropped (see [`S3Writer`]).
    fn flush(&mut self) -> StreamResult<()> {
        self.collect();
        self.failed()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.collect();
        self.send_part();
        self.failed()?;
        // At most a part waiting while another is sent.
        Ok(if self.part.is_some() { PART_SIZE.saturating_sub(self.buffer.len()) } else { PART_SIZE })
    }
}

//! `blobs` on the object store: the bytes of a committed blob in
//! `blobs/sha256/<hex>`, and beside them `marks/<hex>`, a tiny object whose
//! store-side modification time is when the blob was last touched.
//!
//! The mark is what makes `touch`, `commit` and `delete-if-older` of one
//! digest safe across instances, with conditional writes only:
//! - `touch` and `commit` end by rewriting the mark as `live`, conditional
//!   on the mark they saw before they looked at (or copied) the bytes;
//! - `delete-if-older` first rewrites the mark as `deleting`, conditional on
//!   the mark it judged old, then looks at the bytes' time again, and only
//!   then removes the bytes and its mark.
//!
//! Of a remover and a toucher or committer, exactly one conditional write
//! wins. A committer that loses waits until the removal is over and copies
//! the bytes again; a toucher that loses answers "no such blob". A remover
//! that died midway leaves a `deleting` mark, which stops holding commits
//! back after [`DELETING_LEASE`].

use super::objects::{Listed, Meta, Precondition};
use super::S3Store;
use bytes::Bytes;
use hyper::StatusCode;
use std::time::{Duration, Instant};
use storage_layout::names::{digest_hex, digest_of_hex};
use storage_layout::pages::BlobInfo;
use storage_layout::{StorageError, StorageResult};
use wasmtime_wasi::p2::DynInputStream;

/// A mark's body starts with its state, then a nonce: every write of a
/// mark makes a new ETag (an ETag is a hash of the body), so that a
/// precondition on the mark one read fails after any write since, even one
/// of the same state.
const LIVE: &str = "live";
const DELETING: &str = "deleting";

fn mark_body(state: &str) -> Bytes {
    Bytes::from(format!("{state} {}", uuid::Uuid::new_v4().simple()))
}
/// How long a removal may hold a blob's mark as `deleting`. A remover gives
/// up (and removes nothing) if half of it passed before it got to the
/// bytes.
pub const DELETING_LEASE: Duration = Duration::from_secs(60);
/// How often a commit that met a removal in progress looks again.
const DELETING_POLL: Duration = Duration::from_millis(100);
/// Attempts of a touch or commit that keeps losing its mark to others.
const MARK_ATTEMPTS: usize = 50;

/// A blob's mark as read.
enum Mark {
    Absent,
    Live(Meta),
    /// Being removed since `Meta::modified`; `fresh` while the lease runs.
    Deleting {
        meta: Meta,
        fresh: bool,
    },
}

impl Mark {
    /// The precondition that a rewrite of this mark needs.
    fn replaced(&self) -> Precondition {
        match self {
            Mark::Absent => Precondition::Absent,
            Mark::Live(meta) | Mark::Deleting { meta, .. } => Precondition::Is(meta.etag.clone()),
        }
    }
}

impl S3Store {
    pub(super) fn blob_object(&self, hex: &str) -> String {
        format!("{}blobs/sha256/{hex}", self.root)
    }

    fn mark_object(&self, hex: &str) -> String {
        format!("{}marks/{hex}", self.root)
    }

    async fn mark(&self, hex: &str) -> StorageResult<Mark> {
        Ok(match self.client.get(&self.mark_object(hex)).await? {
            None => Mark::Absent,
            Some((body, meta)) if body.starts_with(DELETING.as_bytes()) => {
                // The store's clock against ours: a lease of a minute is far
                // above the skew of synchronized clocks.
                let fresh = super::now_secs() < meta.modified + DELETING_LEASE.as_secs();
                Mark::Deleting { meta, fresh }
            }
            Some((_, meta)) => Mark::Live(meta),
        })
    }

    pub async fn blob_stat(&self, digest: &str) -> StorageResult<Option<u64>> {
        let hex = digest_hex(digest)?;
        Ok(self.client.head(&self.blob_object(hex)).await?.map(|meta| meta.size))
    }

    pub async fn blob_read(
        &self,
        digest: &str,
        offset: u64,
        length: Option<u64>,
    ) -> StorageResult<Option<DynInputStream>> {
        let hex = digest_hex(digest)?;
        let object = self.blob_object(hex);
        if offset == 0 && length.is_none() {
            let answer = self.client.get_range(&object, None).await?;
            return match answer.status {
                StatusCode::OK => Ok(Some(super::reader::stream(answer.body))),
                StatusCode::NOT_FOUND => Ok(None),
                _ => Err(answer.fail(&format!("GET {object}")).await),
            };
        }
        // A range: checked against the size first, so that the store is
        // only ever asked for bytes it has (stores differ in what they do
        // with a range past the end or beyond what a header can say).
        let Some(meta) = self.client.head(&object).await? else { return Ok(None) };
        if offset > meta.size {
            return Err(past_the_end(offset, meta.size));
        }
        let end = length.map_or(meta.size, |len| offset.saturating_add(len).min(meta.size));
        if end == offset {
            return Ok(Some(super::reader::empty()));
        }
        let answer = self.client.get_range(&object, Some(format!("bytes={offset}-{}", end - 1))).await?;
        match answer.status {
            StatusCode::PARTIAL_CONTENT => Ok(Some(super::reader::stream(answer.body))),
            StatusCode::OK if offset == 0 && end == meta.size => Ok(Some(super::reader::stream(answer.body))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(answer.fail(&format!("GET {object} bytes {offset}-{}", end - 1)).await),
        }
    }

    /// With `--s3-redirect`, a presigned GET of the blob's object, for the
    /// client to fetch itself; `None` otherwise.
    pub fn blob_redirect(&self, digest: &str) -> StorageResult<Option<String>> {
        let hex = digest_hex(digest)?;
        Ok(self.redirect.map(|valid| self.client.presigned_get(&self.blob_object(hex), valid)))
    }

    pub async fn blob_delete(&self, digest: &str) -> StorageResult<bool> {
        let hex = digest_hex(digest)?;
        let object = self.blob_object(hex);
        let existed = self.client.head(&object).await?.is_some();
        self.client.delete(&object, &Precondition::None).await?;
        self.client.delete(&self.mark_object(hex), &Precondition::None).await?;
        Ok(existed)
    }

    pub async fn blob_list(&self, after: Option<&str>, limit: u32) -> StorageResult<Vec<BlobInfo>> {
        // Digests are `sha256:<hex>`: what sorts before all of them starts
        // the listing, what sorts after all of them ends it.
        let after_hex = match after {
            None => None,
            Some(after) if after.starts_with("sha256:") => Some(&after["sha256:".len()..]),
            Some(after) if after < "sha256:" => None,
            Some(_) => return Ok(Vec::new()),
        };
        let base = format!("{}blobs/sha256/", self.root);
        let start = after_hex.map(|hex| format!("{base}{hex}"));
        let blobs = self.client.list(&base, start.as_deref(), limit as usize).await?;
        let Some(last) = blobs.last() else { return Ok(Vec::new()) };
        let last_hex = last.key[base.len()..].to_string();
        let marks = self.marks_up_to(after_hex, &last_hex).await?;
        let mut marks = marks.into_iter().peekable();
        let mut out = Vec::with_capacity(blobs.len());
        for blob in blobs {
            let hex = &blob.key[base.len()..];
            let mut touched = blob.modified;
            while let Some((mark_hex, modified)) = marks.peek() {
                if mark_hex.as_str() > hex {
                    break;
                }
                if mark_hex == hex {
                    touched = touched.max(*modified);
                }
                marks.next();
            }
            out.push(BlobInfo { digest: digest_of_hex(hex), size: blob.size, touched });
        }
        Ok(out)
    }

    /// The marks after `after` up to `last` (hex), with their times.
    async fn marks_up_to(&self, after: Option<&str>, last: &str) -> StorageResult<Vec<(String, u64)>> {
        let base = format!("{}marks/", self.root);
        let mut start = after.map(|hex| format!("{base}{hex}"));
        let mut out = Vec::new();
        loop {
            let page: Vec<Listed> = self.client.list(&base, start.as_deref(), 1000).await?;
            let full = page.len() == 1000;
            for mark in &page {
                let hex = &mark.key[base.len()..];
                if hex > last {
                    return Ok(out);
                }
                out.push((hex.to_string(), mark.modified));
            }
            match page.last() {
                Some(mark) if full => start = Some(mark.key.clone()),
                _ => return Ok(out),
            }
        }
    }

    pub async fn blob_touch(&self, digest: &str) -> StorageResult<bool> {
        let hex = digest_hex(digest)?;
        for _ in 0..MARK_ATTEMPTS {
            let mark = self.mark(hex).await?;
            if matches!(mark, Mark::Deleting { fresh: true, .. }) {
                // Being removed: as good as gone.
                return Ok(false);
            }
            if self.client.head(&self.blob_object(hex)).await?.is_none() {
                return Ok(false);
            }
            match self.client.put(&self.mark_object(hex), mark_body(LIVE), &mark.replaced()).await {
                Ok(_) => return Ok(true),
                Err(StorageError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StorageError::Other(format!("touch {digest}: its mark kept changing")))
    }

    /// Makes the bytes of object `source` the blob `hex` (a copy within the
    /// store), touched now, whatever removal of the same digest runs
    /// meanwhile: when this returns, the blob is there.
    pub(super) async fn blob_commit_from(&self, hex: &str, source: &str, size: u64) -> StorageResult<()> {
        let object = self.blob_object(hex);
        let started = Instant::now();
        for _ in 0..MARK_ATTEMPTS {
            let mark = self.mark(hex).await?;
            if let Mark::Deleting { fresh: true, .. } = mark {
                if started.elapsed() < DELETING_LEASE {
                    tokio::time::sleep(DELETING_POLL).await;
                    continue;
                }
            }
            self.client.copy(source, &object, size).await?;
            match self.client.put(&self.mark_object(hex), mark_body(LIVE), &mark.replaced()).await {
                Ok(_) => return Ok(()),
                Err(StorageError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StorageError::Other(format!("commit of sha256:{hex}: its mark kept changing")))
    }

    pub async fn blob_delete_if_older(&self, digest: &str, before: u64) -> StorageResult<bool> {
        let hex = digest_hex(digest)?;
        let (object, mark_object) = (self.blob_object(hex), self.mark_object(hex));
        let mark = self.mark(hex).await?;
        let Some(blob) = self.client.head(&object).await? else { return Ok(false) };
        let touched = match &mark {
            Mark::Deleting { fresh: true, .. } => return Ok(false),
            Mark::Live(meta) => blob.modified.max(meta.modified),
            Mark::Absent | Mark::Deleting { .. } => blob.modified,
        };
        if touched >= before {
            return Ok(false);
        }
        let started = Instant::now();
        let ours = match self.client.put(&mark_object, mark_body(DELETING), &mark.replaced()).await {
            Ok(etag) => Precondition::Is(etag),
            // Touched or committed meanwhile.
            Err(StorageError::Conflict) => return Ok(false),
            Err(e) => return Err(e),
        };
        // A commit copies the bytes before it writes the mark: one that
        // copied before our mark shows in the bytes' time.
        let still_old = self.client.head(&object).await?.is_some_and(|blob| blob.modified < before);
        if !still_old || started.elapsed() > DELETING_LEASE / 2 {
            self.client.delete(&mark_object, &ours).await?;
            return Ok(false);
        }
        self.client.delete(&object, &Precondition::None).await?;
        self.client.delete(&mark_object, &ours).await?;
        Ok(true)
    }
}

fn past_the_end(offset: u64, size: u64) -> StorageError {
    StorageError::Invalid(format!("offset {offset} is past the end of the blob ({size} bytes)"))
}

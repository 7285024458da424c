//! The object operations the backend is built from, with the store's
//! answers turned into the contract's terms: absent is `None`, a failed
//! precondition is `conflict`.
//!
//! Stores differ in how they refuse a conditional write: AWS answers 412
//! (and 404 for `If-Match` on an absent key), SeaweedFS 412, others 409.
//! All of them mean "someone else wrote first" here.

use super::client::{xml_field, Answer, S3Client, COPY_TIMEOUT};
use bytes::Bytes;
use hyper::StatusCode;
use rusty_s3::actions::{CreateMultipartUpload, ListObjectsV2};
use storage_layout::{StorageError, StorageResult};

/// What a write requires of the object it replaces.
#[derive(Debug, Clone)]
pub enum Precondition {
    /// Nothing: last writer wins.
    None,
    /// That there is no such object (`If-None-Match: *`).
    Absent,
    /// That the object is this version (`If-Match: <etag>`).
    Is(String),
}

impl Precondition {
    fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Precondition::None => Vec::new(),
            Precondition::Absent => vec![("if-none-match", "*".into())],
            Precondition::Is(etag) => vec![("if-match", etag.clone())],
        }
    }
}

/// An object's metadata.
#[derive(Debug, Clone)]
pub struct Meta {
    pub size: u64,
    pub etag: String,
    /// Seconds since the epoch, by the store's clock.
    pub modified: u64,
}

/// One object of a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// Seconds since the epoch, by the store's clock.
    pub modified: u64,
}

/// The largest object one copy request may copy.
const COPY_MAX: u64 = 5 << 30;
/// The parts of a larger copy.
const COPY_PART: u64 = 1 << 30;

fn refused(status: StatusCode) -> bool {
    matches!(status, StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT)
}

impl S3Client {
    /// The object `key`: its bytes and metadata, or `None`.
    pub async fn get(&self, key: &str) -> StorageResult<Option<(Bytes, Meta)>> {
        let what = format!("GET {key}");
        let action = self.bucket.get_object(self.credentials(), key);
        let answer = self.send(action, &[], Bytes::new(), &what).await?;
        match answer.status {
            StatusCode::OK => {
                let meta = Meta { size: 0, etag: answer.etag()?, modified: answer.last_modified()? };
                let bytes = answer.bytes(&what).await?;
                Ok(Some((bytes.clone(), Meta { size: bytes.len() as u64, ..meta })))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(answer.fail(&what).await),
        }
    }

    /// A byte range of object `key` as a streaming answer (200 or 206), or
    /// the store's refusal: 404 (absent) and 416 (past the end) are the
    /// caller's to read.
    pub async fn get_range(&self, key: &str, range: Option<String>) -> StorageResult<Answer> {
        let action = self.bucket.get_object(self.credentials(), key);
        let headers: Vec<(&'static str, String)> = range.into_iter().map(|r| ("range", r)).collect();
        self.send(action, &headers, Bytes::new(), &format!("GET {key}")).await
    }

    /// The metadata of object `key`, or `None`.
    pub async fn head(&self, key: &str) -> StorageResult<Option<Meta>> {
        let what = format!("HEAD {key}");
        let action = self.bucket.head_object(self.credentials(), key);
        let answer = self.send(action, &[], Bytes::new(), &what).await?;
        match answer.status {
            StatusCode::OK => Ok(Some(Meta {
                size: answer.content_length()?,
                etag: answer.etag()?,
                modified: answer.last_modified()?,
            })),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(answer.fail(&what).await),
        }
    }

    /// Writes object `key` if `pre` holds (else `conflict`); its new ETag.
    pub async fn put(&self, key: &str, body: Bytes, pre: &Precondition) -> StorageResult<String> {
        let what = format!("PUT {key}");
        let action = self.bucket.put_object(self.credentials(), key);
        let answer = self.send(action, &pre.headers(), body, &what).await?;
        match answer.status {
            StatusCode::OK | StatusCode::CREATED => answer.etag(),
            StatusCode::NOT_FOUND if matches!(pre, Precondition::Is(_)) => Err(StorageError::Conflict),
            status if refused(status) => Err(StorageError::Conflict),
            _ => Err(answer.fail(&what).await),
        }
    }

    /// Removes object `key` if `pre` holds; whether a removal was made
    /// (`false` when the precondition failed). A store answers the same for
    /// an absent object, so without a precondition `true` says nothing.
    pub async fn delete(&self, key: &str, pre: &Precondition) -> StorageResult<bool> {
        let what = format!("DELETE {key}");
        let action = self.bucket.delete_object(self.credentials(), key);
        let answer = self.send(action, &pre.headers(), Bytes::new(), &what).await?;
        match answer.status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            status if refused(status) => Ok(false),
            _ => Err(answer.fail(&what).await),
        }
    }

    /// Copies object `from`, of `size` bytes, to `to`, within the store:
    /// in one request up to the 5 GiB a copy may be, else in parts.
    pub async fn copy(&self, from: &str, to: &str, size: u64) -> StorageResult<()> {
        if size <= COPY_MAX {
            return self.copy_whole(from, to).await;
        }
        let multipart = self.create_multipart(to).await?;
        let mut parts = Vec::new();
        for (n, start) in (0..size).step_by(COPY_PART as usize).enumerate() {
            let end = (start + COPY_PART).min(size) - 1;
            let number = u16::try_from(n + 1).map_err(|_| StorageError::Invalid(format!("{size} bytes: too large")))?;
            parts.push(self.copy_part(to, &multipart, number, from, Some((start, end))).await?);
        }
        self.complete(to, &multipart, &parts).await
    }

    async fn copy_whole(&self, from: &str, to: &str) -> StorageResult<()> {
        let what = format!("COPY {from} to {to}");
        let action = self.bucket.put_object(self.credentials(), to);
        let source = vec![("x-amz-copy-source", self.copy_source(from))];
        let answer = self.send_within(COPY_TIMEOUT, action, &source, Bytes::new(), &what).await?;
        completed(answer, &what).await.map(drop)
    }

    /// Starts a multipart upload to object `key`; its id.
    pub async fn create_multipart(&self, key: &str) -> StorageResult<String> {
        let what = format!("CreateMultipartUpload {key}");
        let action = self.bucket.create_multipart_upload(self.credentials(), key);
        let answer = self.send(action, &[], Bytes::new(), &what).await?;
        if answer.status != StatusCode::OK {
            return Err(answer.fail(&what).await);
        }
        let body = answer.bytes(&what).await?;
        Ok(CreateMultipartUpload::parse_response(&String::from_utf8_lossy(&body))
            .map_err(|e| StorageError::Other(format!("{what}: unreadable answer: {e}")))?
            .upload_id()
            .to_string())
    }

    /// Sends object `source` (or the inclusive byte range `range` of it) as
    /// part `number` of `multipart` to object `key`, by a copy within the
    /// store; the part's ETag.
    pub async fn copy_part(
        &self,
        key: &str,
        multipart: &str,
        number: u16,
        source: &str,
        range: Option<(u64, u64)>,
    ) -> StorageResult<String> {
        let what = format!("UploadPartCopy {key} part {number}");
        let action = self.bucket.upload_part(self.credentials(), key, number, multipart);
        let mut headers = vec![("x-amz-copy-source", self.copy_source(source))];
        if let Some((start, end)) = range {
            headers.push(("x-amz-copy-source-range", format!("bytes={start}-{end}")));
        }
        let answer = self.send_within(COPY_TIMEOUT, action, &headers, Bytes::new(), &what).await?;
        let body = completed(answer, &what).await?;
        xml_field(&body, "ETag")
            .map(|etag| etag.replace("&quot;", "\""))
            .ok_or_else(|| StorageError::Other(format!("{what}: no ETag in the answer")))
    }

    /// Completes `multipart` of object `key` from `parts` (their ETags, in
    /// order).
    pub async fn complete(&self, key: &str, multipart: &str, parts: &[String]) -> StorageResult<()> {
        let what = format!("CompleteMultipartUpload {key}");
        let action =
            self.bucket.complete_multipart_upload(self.credentials(), key, multipart, parts.iter().map(String::as_str));
        let body = action.clone().body();
        let answer = self.send_within(COPY_TIMEOUT, action, &[], Bytes::from(body), &what).await?;
        completed(answer, &what).await.map(drop)
    }

    /// `x-amz-copy-source` for object `key` of this bucket: its URL path,
    /// percent-encoded as the object's URL is.
    pub fn copy_source(&self, key: &str) -> String {
        let url = self.bucket.object_url(key);
        let path = url.path();
        // Path-style URLs start with the bucket already; virtual-host ones
        // do not.
        let bucket_prefix = format!("/{}/", self.bucket.name());
        if path.starts_with(&bucket_prefix) {
            path.to_string()
        } else {
            format!("/{}{}", self.bucket.name(), path)
        }
    }

    /// Objects whose keys start with `prefix`, after `start_after` if
    /// given, in byte order, at most `limit` of them.
    pub async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> StorageResult<Vec<Listed>> {
        let what = format!("LIST {prefix}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        while out.len() < limit {
            let mut action: ListObjectsV2<'_> = self.bucket.list_objects_v2(self.credentials());
            action.with_prefix(prefix.to_string());
            if let Some(after) = start_after {
                action.with_start_after(after.to_string());
            }
            if let Some(token) = &token {
                action.with_continuation_token(token.clone());
            }
            action.with_max_keys((limit - out.len()).min(1000));
            let answer = self.send(action, &[], Bytes::new(), &what).await?;
            if answer.status != StatusCode::OK {
                return Err(answer.fail(&what).await);
            }
            let body = answer.bytes(&what).await?;
            let page = ListObjectsV2::parse_response(&String::from_utf8_lossy(&body))
                .map_err(|e| StorageError::Other(format!("{what}: unreadable listing: {e}")))?;
            for object in page.contents {
                let modified = object.last_modified.as_deref().and_then(parse_iso_time).unwrap_or(0);
                out.push(Listed { key: object.key, size: object.size.unwrap_or(0), modified });
            }
            match page.next_continuation_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}

/// The body of the answer to a copy or a completion, which the store sends
/// only when it is done: it can fail after its 200 went out, with the error
/// in the body.
async fn completed(answer: Answer, what: &str) -> StorageResult<String> {
    if answer.status != StatusCode::OK {
        return Err(answer.fail(what).await);
    }
    let body = String::from_utf8_lossy(&answer.bytes(what).await?).into_owned();
    match xml_field(&body, "Code") {
        Some(code) => Err(StorageError::Other(format!("{what}: the store answered {code}"))),
        None => Ok(body),
    }
}

/// Seconds since the epoch of a listing's `2026-12-06T08:49:28.000Z`.
fn parse_iso_time(text: &str) -> Option<u64> {
    let time = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()?;
    time.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_times_read_with_or_without_fractions() {
        assert_eq!(parse_iso_time("2026-12-06T08:49:28.000Z"), Some(1_796_546_968));
        assert_eq!(parse_iso_time("2026-12-06T08:49:28Z"), Some(1_796_546_968));
        assert_eq!(parse_iso_time("yesterday"), None);
    }
}

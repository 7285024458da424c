//! A small blocking S3 client for tests: what a test needs to look into a
//! bucket from outside the code under test (put, get, delete, list). Each
//! request is a URL presigned by `rusty-s3` (so no header needs signing),
//! sent with `ureq`.

use std::io;
use std::time::Duration;

use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

/// How long a presigned URL stays valid: one request, sent at once.
const URL_VALIDITY: Duration = Duration::from_secs(300);

/// A signed client on one bucket, with path-style URLs.
#[derive(Clone, Debug)]
pub struct S3Client {
    agent: ureq::Agent,
    bucket: Bucket,
    credentials: Credentials,
}

/// An object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its whole key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

impl S3Client {
    /// A client on `bucket` at `endpoint` (`http://HOST:PORT`) that signs with
    /// `access_key` and `secret_key` for `region`; `timeout` bounds each request,
    /// from connecting to the end of its answer.
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
        timeout: Duration,
    ) -> Self {
        let endpoint = endpoint.parse().unwrap_or_else(|e| panic!("S3 endpoint {endpoint:?}: {e}"));
        let bucket = Bucket::new(endpoint, UrlStyle::Path, bucket.to_string(), region.to_string())
            .unwrap_or_else(|e| panic!("S3 bucket {bucket:?}: {e:?}"));
        let agent = ureq::Agent::config_builder()
            // Loopback in tests: never through a proxy of the environment.
            .proxy(None)
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        S3Client { agent, bucket, credentials: Credentials::new(access_key, secret_key) }
    }

    /// Creates the bucket; one that exists already (and is ours) is no error.
    pub fn create_bucket(&self) -> io::Result<()> {
        let url = self.bucket.create_bucket(&self.credentials).sign(URL_VALIDITY);
        let mut resp = self.agent.put(url.as_str()).send_empty().map_err(io::Error::other)?;
        if resp.status() == 409 {
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            if body.contains("BucketAlreadyOwnedByYou") {
                return Ok(());
            }
            return Err(io::Error::other(format!("creating the bucket: 409: {body}")));
        }
        expect_success("PUT bucket", "", &mut resp)
    }

    /// Stores `bytes` at `key`.
    pub fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let url = self.bucket.put_object(Some(&self.credentials), key).sign(URL_VALIDITY);
        let mut resp = self.agent.put(url.as_str()).send(bytes).map_err(io::Error::other)?;
        expect_success("PUT", key, &mut resp)
    }

    /// The object at `key`, `None` if there is none.
    pub fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let url = self.bucket.get_object(Some(&self.credentials), key).sign(URL_VALIDITY);
        let mut resp = self.agent.get(url.as_str()).call().map_err(io::Error::other)?;
        if resp.status() == 404 {
            return Ok(None);
        }
        expect_success("GET", key, &mut resp)?;
        resp.body_mut().with_config().limit(u64::MAX).read_to_vec().map(Some).map_err(io::Error::other)
    }

    /// Removes the object at `key`, if any.
    pub fn delete(&self, key: &str) -> io::Result<()> {
        let url = self.bucket.delete_object(Some(&self.credentials), key).sign(URL_VALIDITY);
        let mut resp = self.agent.delete(url.as_str()).call().map_err(io::Error::other)?;
        expect_success("DELETE", key, &mut resp)
    }

    /// Every object whose key starts with `prefix`, in key order (all pages).
    pub fn list(&self, prefix: &str) -> io::Result<Vec<ObjectInfo>> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(prefix);
            if let Some(token) = &token {
                action.with_continuation_token(token.as_str());
            }
            let url = action.sign(URL_VALIDITY);
            let mut resp = self.agent.get(url.as_str()).call().map_err(io::Error::other)?;
            expect_success("LIST", prefix, &mut resp)?;
            let text = resp.body_mut().with_config().limit(u64::MAX).read_to_string().map_err(io::Error::other)?;
            let page = ListObjectsV2::parse_response(&text)
                .map_err(|e| io::Error::other(format!("a listing of {prefix:?}: {e}: {text}")))?;
            objects.extend(page.contents.into_iter().map(|c| ObjectInfo { key: c.key, size: c.size.unwrap_or(0) }));
            match page.next_continuation_token {
                Some(next) => token = Some(next),
                None => return Ok(objects),
            }
        }
    }
}

/// `Ok` for a 2xx answer, else an error with the store's answer in it.
fn expect_success(what: &str, key: &str, resp: &mut ureq::http::Response<ureq::Body>) -> io::Result<()> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Err(io::Error::other(format!("{what} {key:?}: {status}: {body}")))
}

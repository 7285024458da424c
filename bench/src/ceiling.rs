//! The object store's own rates for the bytes the registry workloads move:
//! the ceiling of a registry on that store. One PUT of the big blob, the
//! same bytes as a multipart upload in the parts registry-host sends, a GET
//! of it (hashed as it arrives, as a pull is); small-object PUTs per second;
//! GET loads on an object holding the manifest of the registry's GET load,
//! and on one holding its 4 KiB layer. Every request is presigned by
//! `rusty-s3` (SigV4 in the query string, unsigned payload), as
//! registry-host signs its own, and sent over the benchmark's HTTP client;
//! the result lines carry the registry workloads' metric names, so that the
//! report puts them in the same rows.

use crate::client::{empty, full, path_of, Client, ReqBody, Target};
use crate::content::{digests_of, Content};
use crate::rss::{self, Sampler};
use crate::workloads::{
    emit_load, emit_push_rate, fetch_verified, size_label, small_push_rate, GetLoad, Image, Phase, Servers, SmallPushTo,
};
use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use rusty_s3::actions::{CompleteMultipartUpload, CreateMultipartUpload};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a presigned URL stays valid: a GET load reuses its URL for the
/// whole load.
const SIGNED_FOR: Duration = Duration::from_secs(3600);

/// A bucket of the store (path-style addressing), the credentials that sign
/// for it, and the prefix of the objects written here.
#[derive(Clone)]
pub struct Store {
    bucket: Bucket,
    credentials: Option<Credentials>,
    prefix: String,
    /// The endpoint, for the benchmark's client.
    pub target: Target,
}

impl Store {
    /// The bucket `name` at `endpoint`, credentials from `AWS_ACCESS_KEY_ID`
    /// and `AWS_SECRET_ACCESS_KEY`.
    pub async fn new(endpoint: &str, name: &str, prefix: &str, region: &str) -> anyhow::Result<Store> {
        let url: url::Url = endpoint.parse().with_context(|| format!("--endpoint {endpoint:?}"))?;
        let bucket = Bucket::new(url, UrlStyle::Path, name.to_string(), region.to_string())
            .with_context(|| format!("bucket {name:?} at {endpoint}"))?;
        let prefix = prefix.trim_matches('/');
        Ok(Store {
            bucket,
            credentials: Credentials::from_env(),
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
            target: Target::parse(endpoint).await?,
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The path and query of `action`, presigned.
    fn signed<'a>(action: &impl S3Action<'a>) -> String {
        path_of(action.sign(SIGNED_FOR).as_str())
    }

    /// PUTs `len` bytes of `body` as object `key`; its ETag.
    async fn put(&self, client: &mut Client, key: &str, body: ReqBody, len: u64) -> anyhow::Result<String> {
        let path = Store::signed(&self.bucket.put_object(self.credentials.as_ref(), key));
        let answer =
            client.call(Method::PUT, &path, &[("content-length", &len.to_string())], body).await?.expect(200, "PUT")?;
        Ok(answer.header("etag").context("the store sent no ETag")?.to_string())
    }

    /// PUTs small `bytes` as an object named by their digest.
    pub async fn put_object(&self, client: &mut Client, bytes: Bytes) -> anyhow::Result<()> {
        let key = self.key(&format!("small/{}", crate::content::sha256(&bytes).trim_start_matches("sha256:")));
        let len = bytes.len() as u64;
        self.put(client, &key, full(bytes), len).await.map(drop)
    }

    /// `content` as object `key` by a multipart upload of `part`-byte parts.
    async fn put_multipart(&self, client: &mut Client, key: &str, content: &Content, part: u64) -> anyhow::Result<()> {
        let creds = self.credentials.as_ref();
        let path = Store::signed(&self.bucket.create_multipart_upload(creds, key));
        let answer = client.call(Method::POST, &path, &[("content-length", "0")], empty()).await?;
        let answer = answer.expect(200, "CreateMultipartUpload")?;
        let created = CreateMultipartUpload::parse_response(&String::from_utf8_lossy(&answer.body))?;
        let id = created.upload_id();
        let mut etags = Vec::new();
        let mut offset = 0;
        while offset < content.size {
            let end = (offset + part).min(content.size);
            let number = u16::try_from(etags.len() + 1).context("more than 65535 parts")?;
            let path = Store::signed(&self.bucket.upload_part(creds, key, number, id));
            let len = (end - offset).to_string();
            let body = content.body(offset, end).boxed();
            let answer = client.call(Method::PUT, &path, &[("content-length", &len)], body).await?;
            let answer = answer.expect(200, "UploadPart")?;
            etags.push(answer.header("etag").context("the store sent no part ETag")?.to_string());
            offset = end;
        }
        let complete = self.bucket.complete_multipart_upload(creds, key, id, etags.iter().map(String::as_str));
        let path = Store::signed(&complete);
        let body = CompleteMultipartUpload::body(complete);
        let len = body.len().to_string();
        let answer = client.call(Method::POST, &path, &[("content-length", &len)], full(Bytes::from(body))).await?;
        let answer = answer.expect(200, "CompleteMultipartUpload")?;
        // A store may answer 200 and still fail, with an error in the body.
        if !String::from_utf8_lossy(&answer.body).contains("CompleteMultipartUploadResult") {
            bail!("CompleteMultipartUpload: {}", String::from_utf8_lossy(&answer.body));
        }
        Ok(())
    }

    /// The path and query of a presigned GET of object `key`.
    fn get_path(&self, key: &str) -> String {
        Store::signed(&self.bucket.get_object(self.credentials.as_ref(), key))
    }

    async fn delete(&self, client: &mut Client, key: &str) -> anyhow::Result<()> {
        let path = Store::signed(&self.bucket.delete_object(self.credentials.as_ref(), key));
        client.call(Method::DELETE, &path, &[], empty()).await?.expect(204, "DELETE").map(drop)
    }
}

pub struct Settings {
    /// Name of this column in the results.
    pub server: String,
    /// The store's process, for its CPU time.
    pub store_pid: Option<u32>,
    pub big: u64,
    /// Part size of the multipart upload (registry-host's).
    pub part: u64,
    pub small: u64,
    pub push_secs: u64,
    pub parallel: usize,
    pub load: GetLoad,
    pub repeat: usize,
    /// Only these groups: big, small, load.
    pub only: Option<Vec<String>>,
}

pub async fn run(store: &Store, s: &Settings) -> anyhow::Result<()> {
    let wanted = |name: &str| s.only.as_ref().is_none_or(|only| only.iter().any(|o| o == name));
    let server = s.server.as_str();
    let mut client = Client::new(&store.target);
    let salt = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    let store_pids = s.store_pid.as_slice();

    if wanted("big") {
        let reps = s.repeat.max(1);
        let mut put = Phase::default();
        let mut multipart = Phase::default();
        let mut get = Phase::default();
        for r in 0..reps {
            let run = format!("{}/{reps}", r + 1);
            let seed = salt ^ ((r as u64) << 8);
            let blobs = [Content::new(seed ^ 1, s.big), Content::new(seed ^ 2, s.big)];
            eprintln!("[{server}] generating the digests of 2 test objects (untimed)");
            let digests = digests_of(&blobs);
            let (one, parts) = (store.key(&format!("big/{r}-put")), store.key(&format!("big/{r}-multipart")));

            eprintln!("[{server}] PUT of {} MiB ({run})", s.big >> 20);
            let sampler = Sampler::start(&[], s.store_pid);
            let start = Instant::now();
            store.put(&mut client, &one, blobs[0].body(0, s.big).boxed(), s.big).await?;
            put.record(s.big, start.elapsed(), sampler.stop());

            eprintln!("[{server}] multipart upload of {} MiB in {} MiB parts ({run})", s.big >> 20, s.part >> 20);
            let sampler = Sampler::start(&[], s.store_pid);
            let start = Instant::now();
            store.put_multipart(&mut client, &parts, &blobs[1], s.part).await?;
            multipart.record(s.big, start.elapsed(), sampler.stop());

            eprintln!("[{server}] GET of {} MiB ({run})", s.big >> 20);
            let sampler = Sampler::start(&[], s.store_pid);
            let elapsed = fetch_verified(&mut client, &store.get_path(&one), &blobs[0], &digests[0]).await?;
            get.record(s.big, elapsed, sampler.stop());

            // Untimed: the objects are no longer needed.
            store.delete(&mut client, &one).await?;
            store.delete(&mut client, &parts).await?;
        }
        let label = size_label(s.big);
        put.emit(server, &format!("push_monolithic_{label}"), json!({ "note": "one PUT" }));
        let note = format!("multipart upload, {} MiB parts", s.part >> 20);
        multipart.emit(server, &format!("push_chunked_{label}"), json!({ "chunk_mib": s.part >> 20, "note": note }));
        get.emit(server, &format!("pull_{label}"), json!({ "verified": true, "note": "one GET" }));
    }

    if wanted("small") {
        let kib = s.small >> 10;
        let to = SmallPushTo::Store(Arc::new(store.clone()));
        for (workers, name) in [(1, "seq".to_string()), (s.parallel, format!("par{}", s.parallel))] {
            eprintln!("[{server}] {kib} KiB PUTs, {workers} connection(s), {} s", s.push_secs);
            let before = rss::cpu_seconds_of(store_pids);
            let duration = Duration::from_secs(s.push_secs);
            let seed = salt ^ 0x5000 ^ workers as u64;
            let rate = small_push_rate(std::slice::from_ref(&store.target), &to, s.small, workers, duration, seed);
            let (pushes, secs) = rate.await?.context("a PUT is always supported")?;
            let cpu = rss::cpu_seconds_of(store_pids).zip(before).map(|(after, before)| after - before);
            let extra = json!({ "connections": workers, "note": "one PUT each" });
            emit_push_rate(server, &format!("push{kib}k_{name}"), (pushes, secs), None, cpu, extra);
        }
    }

    if wanted("load") {
        let image = Image::new(salt ^ 4);
        let cases = [
            ("manifest_get", "load/manifest", Bytes::from(image.manifest)),
            ("blob_get_4k", "load/layer", image.layer),
        ];
        for (name, key, bytes) in cases {
            let key = store.key(key);
            let len = bytes.len() as u64;
            store.put(&mut client, &key, full(bytes), len).await?;
            let on = Servers { targets: std::slice::from_ref(&store.target), pids: &[], store: s.store_pid };
            let sample = s.load.sample(server, name, on, &store.get_path(&key), &[]).await?;
            emit_load(server, name, &[sample], json!({ "note": format!("one GET of a {len}-byte object") }));
        }
    }
    Ok(())
}

//! The storage contract (`wit/`) on an S3-compatible object store, natively
//! in the host, so that any number of `registry-host` processes, on one
//! machine or many, serve one bucket at once (`--storage s3://BUCKET/PREFIX`).
//!
//! Everything lives in the store, under the prefix: `kv/` (`kv.rs`),
//! `blobs/` and `marks/` (`blobs.rs`), `uploads/`, `upload-data/` and
//! `upload-leases/` (`uploads.rs`). No instance keeps anything another
//! could contradict: no journal, no read cache, no lock on a local
//! directory; what an instance remembers (ETags of kv versions) is only
//! ever used as the precondition of a conditional write, which the store
//! checks. A write is durable when the store acknowledges it.
//!
//! Whatever fails to answer in time becomes `unavailable` (the registry
//! answers 503); the next request tries the store again.

mod blobs;
mod client;
mod kv;
mod objects;
mod reader;
mod uploads;

use anyhow::Context as _;
use client::S3Client;
use std::time::Duration;

pub use uploads::{S3AppendError, S3Upload};

/// Longest object name S3 accepts, in bytes.
const MAX_OBJECT_KEY: usize = 1024;

/// How long a redirect's URL works: long enough for a slow client to
/// start a big layer (a started GET continues past it), as distribution's
/// default of 20 minutes.
const REDIRECT_VALID: Duration = Duration::from_secs(20 * 60);

/// The flags of the storage.
#[derive(clap::Args, Debug, Clone)]
pub struct StorageArgs {
    /// Where blobs and metadata live: the data directory when not given, or
    /// `s3://BUCKET[/PREFIX]`, an S3-compatible object store that several
    /// registry-host processes may serve at once. Credentials come from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
    #[arg(long, env = "REGISTRY_STORAGE", value_name = "URL", global = true)]
    pub storage: Option<String>,
    /// The store's endpoint (default: AWS_ENDPOINT_URL, else AWS S3 of the
    /// region).
    #[arg(long = "s3-endpoint", env = "AWS_ENDPOINT_URL_S3", value_name = "URL", global = true)]
    pub s3_endpoint: Option<String>,
    /// The store's region (default: AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long = "s3-region", env = "AWS_REGION", value_name = "REGION", global = true)]
    pub s3_region: Option<String>,
    /// Address the bucket in the path (`https://host/bucket/key`) instead
    /// of the host name: most stores other than AWS need it.
    #[arg(long = "s3-path-style", env = "REGISTRY_S3_PATH_STYLE", global = true)]
    pub s3_path_style: bool,
    /// Answer blob GETs with a redirect to a presigned URL of the store,
    /// valid for 20 minutes, so that pulled bytes go from the store to the
    /// client without passing through the registry. Clients must be able
    /// to reach the store's endpoint.
    #[arg(long = "s3-redirect", env = "REGISTRY_S3_REDIRECT", global = true)]
    pub s3_redirect: bool,
}

/// The bucket and prefix of `--storage s3://BUCKET[/PREFIX]`.
fn parse_location(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url.strip_prefix("s3://").with_context(|| {
        format!("--storage {url:?}: expected s3://BUCKET[/PREFIX] (or nothing, for the data directory)")
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    anyhow::ensure!(!bucket.is_empty(), "--storage {url:?}: no bucket named");
    let prefix = prefix.trim_matches('/');
    Ok((bucket.to_string(), if prefix.is_empty() { String::new() } else { format!("{prefix}/") }))
}

/// One bucket (and prefix) as the storage of this process.
pub struct S3Store {
    client: S3Client,
    /// Every object name starts with it: empty or ending in `/`.
    root: String,
    versions: kv::Versions,
    /// Where background work goes (parts being sent, the state written
    /// when a stream is dropped, perhaps outside any task).
    runtime: tokio::runtime::Handle,
    /// Per upload, held while a dropped stream's final write runs.
    gates: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// How long a redirect's presigned URL stays valid, with `--s3-redirect`.
    redirect: Option<Duration>,
}

impl S3Store {
    /// The store of `--storage`, once it answered: a bucket that is missing
    /// or refuses these credentials stops the start-up with a message.
    pub async fn open(args: &StorageArgs) -> anyhow::Result<S3Store> {
        let url = args.storage.as_deref().context("no --storage given")?;
        let (bucket_name, root) = parse_location(url)?;
        let region = args
            .s3_region
            .clone()
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = match args.s3_endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok()) {
            Some(endpoint) if !endpoint.is_empty() => endpoint,
            _ => format!("https://s3.{region}.amazonaws.com"),
        };
        let endpoint: url::Url = endpoint.parse().with_context(|| format!("--s3-endpoint {endpoint:?}"))?;
        let style = if args.s3_path_style { rusty_s3::UrlStyle::Path } else { rusty_s3::UrlStyle::VirtualHost };
        let bucket = rusty_s3::Bucket::new(endpoint.clone(), style, bucket_name.clone(), region)
            .with_context(|| format!("bucket {bucket_name:?} at {endpoint} (try --s3-path-style)"))?;
        let credentials = rusty_s3::Credentials::from_env();
        if credentials.is_none() {
            tracing::warn!("no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: requests to the store go unsigned");
        }
        let mut store = S3Store::connect(bucket, root, credentials).await?;
        tracing::info!("storage: bucket {bucket_name} at {endpoint}, prefix {:?}", store.root);
        if args.s3_redirect {
            store.redirect = Some(REDIRECT_VALID);
            tracing::info!("blob GETs are redirected to the store (presigned for {REDIRECT_VALID:?})");
        }
        Ok(store)
    }

    /// The store of `bucket` under `root` (empty, or ending in `/`), once
    /// it answered.
    pub async fn connect(
        bucket: rusty_s3::Bucket,
        root: String,
        credentials: Option<rusty_s3::Credentials>,
    ) -> anyhow::Result<S3Store> {
        let name = format!("bucket {} at {}", bucket.name(), bucket.base_url());
        let store = S3Store {
            client: S3Client::new(bucket, credentials),
            root,
            versions: kv::Versions::default(),
            runtime: tokio::runtime::Handle::current(),
            gates: Default::default(),
            redirect: None,
        };
        store.check().await.with_context(|| format!("the store: {name}"))?;
        Ok(store)
    }

    /// The longest kv key this store takes: its object names hold the
    /// prefix and `kv/` too, and each `.` takes two bytes, each `/` three
    /// (one in 16 is allowed for; a key with more of them may be refused
    /// shorter).
    pub fn max_key_len(&self) -> usize {
        let room = MAX_OBJECT_KEY - self.root.len() - "kv/".len();
        room - room / 16
    }

    /// Whether the store answers now: one listing of the prefix (the
    /// readiness check of `--metrics-listen`).
    pub async fn answers(&self) -> storage_layout::StorageResult<()> {
        self.client.list(&self.root, None, 1).await.map(drop)
    }

    /// A listing of the prefix, which needs the bucket and the right to
    /// read it.
    async fn check(&self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        loop {
            match self.answers().await {
                Ok(()) => return Ok(()),
                // A store started with the registry may need a moment.
                Err(storage_layout::StorageError::Unavailable(_)) if started.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(anyhow::anyhow!("{e}")),
            }
        }
    }
}

/// Now, in seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod contract;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_a_bucket_and_a_prefix() {
        assert_eq!(parse_location("s3://b").unwrap(), ("b".into(), "".into()));
        assert_eq!(parse_location("s3://b/").unwrap(), ("b".into(), "".into()));
        assert_eq!(parse_location("s3://b/reg/one/").unwrap(), ("b".into(), "reg/one/".into()));
        assert!(parse_location("b/reg").is_err());
        assert!(parse_location("s3:///reg").is_err());
    }
}

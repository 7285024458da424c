//! Where the registry under test keeps its data, and what the tests read of it
//! from outside: a data directory, or (`host-s3`) a prefix of a bucket of
//! SeaweedFS, started by the test process itself (`storage_contract::seaweedfs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use storage_contract::seaweedfs::{
    unique_prefix, S3Client, SeaweedCluster, SeaweedFs, ACCESS_KEY, GATEWAYS, REGION, SECRET_KEY,
};

use super::{bytes_under, Deployment};

/// A prefix of a bucket where `registry-host` keeps its data
/// (`--storage s3://BUCKET/PREFIX`).
#[derive(Clone, Debug)]
pub struct S3Place {
    endpoint: String,
    bucket: String,
    /// Without a trailing `/`.
    prefix: String,
}

impl S3Place {
    /// A prefix no other server of this test process uses, on `store`.
    pub fn new_on(store: &SeaweedFs) -> Self {
        let prefix = unique_prefix("e2e").trim_end_matches('/').to_string();
        S3Place { endpoint: store.endpoint(), bucket: store.bucket().to_string(), prefix }
    }

    /// A prefix no other server of this test process uses, on `cluster`: one place
    /// per gateway, the same bucket and prefix through each.
    pub fn new_on_cluster(cluster: &SeaweedCluster) -> Vec<Self> {
        let prefix = unique_prefix("e2e").trim_end_matches('/').to_string();
        let place =
            |i| S3Place { endpoint: cluster.endpoint(i), bucket: cluster.bucket().to_string(), prefix: prefix.clone() };
        (0..GATEWAYS).map(place).collect()
    }

    /// The place of the `host-s3` deployment's registry whose (cache) data directory
    /// is `data_dir`, on the SeaweedFS the test process shares: a new prefix for a
    /// new directory, and the same again for the same directory, so that a test that
    /// restarts the registry on its data directory finds its data again.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        static PLACES: Mutex<Option<HashMap<PathBuf, S3Place>>> = Mutex::new(None);
        let mut places = PLACES.lock().unwrap_or_else(|e| e.into_inner());
        let places = places.get_or_insert_with(HashMap::new);
        places.entry(data_dir.to_path_buf()).or_insert_with(|| S3Place::new_on(SeaweedFs::shared())).clone()
    }

    /// The `registry-host` flags that make this place its storage.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--storage".into(),
            format!("s3://{}/{}", self.bucket, self.prefix),
            "--s3-endpoint".into(),
            self.endpoint.clone(),
            "--s3-path-style".into(),
        ]
    }

    /// The credentials for `registry-host`'s environment; an empty value removes
    /// the variable (a session token of the test's own environment would not belong
    /// to them).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", REGION),
            ("AWS_SESSION_TOKEN", ""),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
    }

    /// The key of `path` under the prefix (`blobs/`, `kv/`, as the data directory's
    /// top level).
    fn key(&self, path: &str) -> String {
        format!("{}/{path}", self.prefix)
    }

    fn client(&self) -> S3Client {
        S3Client::new(&self.endpoint, &self.bucket, REGION, ACCESS_KEY, SECRET_KEY, Duration::from_secs(60))
    }
}

/// The data of a registry under test, as the tests look into it.
#[derive(Clone, Debug)]
pub enum StoredData {
    /// A data directory.
    Dir(PathBuf),
    /// A prefix of a bucket.
    S3(S3Place),
    /// A directory of database files (workerd's Durable Object, Deno's SQLite
    /// file; under wrangler, miniflare's files of the Durable Object and of the
    /// R2 bucket): their bytes can be read, not which blob is where.
    Database(PathBuf),
}

impl StoredData {
    /// Where a server of `deployment` on `data_dir` keeps its data, where
    /// a test can read it.
    pub fn of(deployment: Deployment, data_dir: &Path) -> Option<Self> {
        match deployment {
            Deployment::HostS3 => Some(StoredData::S3(S3Place::for_data_dir(data_dir))),
            Deployment::Host | Deployment::Wasmtime | Deployment::Jco | Deployment::Wash => {
                Some(StoredData::Dir(data_dir.to_path_buf()))
            }
            Deployment::Workerd | Deployment::Wrangler | Deployment::Deno => {
                Some(StoredData::Database(data_dir.to_path_buf()))
            }
        }
    }

    /// Whether blobs and their bytes can be looked up one by one
    /// ([`StoredData::has_blob`], [`StoredData::bytes_under`]): not in a database.
    pub fn has_layout(&self) -> bool {
        !matches!(self, StoredData::Database(_))
    }

    /// Whether the blob `digest` is stored (committed).
    pub fn has_blob(&self, digest: &str) -> bool {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        match self {
            // storage-layout's blob_path.
            StoredData::Dir(dir) => dir.join(format!("blobs/sha256/{}/{hex}", &hex[..2])).exists(),
            // host/src/s3/blobs.rs's blob_object.
            StoredData::S3(place) => {
                let key = place.key(&format!("blobs/sha256/{hex}"));
                place.client().list(&key).expect("listing the bucket").iter().any(|o| o.key == key)
            }
            StoredData::Database(_) => panic!("a database's blobs cannot be looked up from outside (has_layout)"),
        }
    }

    /// Bytes stored under `path`, a directory of the data directory's layout
    /// (`blobs`, `uploads`).
    pub fn bytes_under(&self, path: &str) -> u64 {
        match self {
            StoredData::Dir(dir) => bytes_under(&dir.join(path)),
            StoredData::S3(place) => {
                let objects = place.client().list(&place.key(&format!("{path}/"))).expect("listing the bucket");
                objects.iter().map(|o| o.size).sum()
            }
            StoredData::Database(_) => panic!("a database's blobs cannot be looked up from outside (has_layout)"),
        }
    }

    /// Bytes stored in all.
    pub fn total_bytes(&self) -> u64 {
        match self {
            StoredData::Dir(dir) | StoredData::Database(dir) => bytes_under(dir),
            StoredData::S3(place) => {
                place.client().list(&place.key("")).expect("listing the bucket").iter().map(|o| o.size).sum()
            }
        }
    }

    /// Every stored file (object): its path or key, and its contents.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        match self {
            StoredData::Dir(dir) | StoredData::Database(dir) => {
                let mut files = Vec::new();
                let mut stack = vec![dir.clone()];
                while let Some(dir) = stack.pop() {
                    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                        let path = entry.path();
                        if path.is_dir() {
                            stack.push(path);
                        } else {
                            let bytes = std::fs::read(&path).unwrap_or_default();
                            files.push((path.display().to_string(), bytes));
                        }
                    }
                }
                files
            }
            StoredData::S3(place) => {
                let client = place.client();
                let objects = client.list(&place.key("")).expect("listing the bucket");
                let read = |key: String| {
                    let bytes = client.get(&key).expect("reading an object").unwrap_or_default();
                    (key, bytes)
                };
                objects.into_iter().map(|o| read(o.key)).collect()
            }
        }
    }
}

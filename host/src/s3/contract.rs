//! The storage contract suite (`storage-contract/`) against the S3 store
//! on a real SeaweedFS, started once for this test process; each store of
//! the suite is a prefix of its own in the bucket. The clients are the
//! filesystem suite's: one request's `HostState` each, through the same
//! host traits the registry component calls. The `full_disk_*` cases are
//! left out: no test can fill an object store.

use super::S3Store;
use crate::backend::Backend;
use crate::storage::contract::HostClient;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use storage_contract::seaweedfs::SeaweedFs;
use storage_contract::ContractStore;
use tokio::runtime::Runtime;

/// A prefix of the shared bucket, with the runtime its requests run on.
struct S3TestStore {
    store: Arc<S3Store>,
    runtime: Runtime,
}

/// The store under `prefix` of the test process's SeaweedFS.
pub(crate) async fn test_store(prefix: &str) -> S3Store {
    let seaweed = SeaweedFs::shared();
    let endpoint = seaweed.endpoint().parse().expect("SeaweedFS's endpoint is a URL");
    let bucket = rusty_s3::Bucket::new(endpoint, rusty_s3::UrlStyle::Path, seaweed.bucket().to_string(), "us-east-1")
        .expect("a bucket");
    let credentials = rusty_s3::Credentials::new(seaweed.access_key(), seaweed.secret_key());
    S3Store::connect(bucket, format!("{prefix}/"), Some(credentials)).await.expect("SeaweedFS answers")
}

impl ContractStore for S3TestStore {
    type Client = HostClient;

    fn fresh() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!("contract-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let store = Arc::new(runtime.block_on(test_store(&prefix)));
        S3TestStore { store, runtime }
    }

    fn nearly_full(_room: u64) -> Self {
        unreachable!("the S3 store runs without the full_disk cases")
    }

    fn free_space(&self) {}

    fn client(&self) -> HostClient {
        HostClient::new(Backend::S3(self.store.clone()), self.runtime.handle().clone())
    }

    fn max_key_len(&self) -> usize {
        self.store.max_key_len()
    }
}

storage_contract::contract_tests!(S3TestStore, without_full_disk);

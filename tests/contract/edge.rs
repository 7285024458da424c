//! The storage contract suite (`storage-contract/`) against the storage of
//! the edge deployments (`edge/cloudflare/src/storage/`: SQLite in a Durable
//! Object under workerd; the same with blob bytes in an R2 bucket under
//! `wrangler dev`; and the same code on a SQLite file through node:sqlite
//! under Deno, `edge/deno/`). `REGISTRY_CONTRACT_RUNTIME` says which:
//! `workerd`, `wrangler` or `deno`.
//!
//! The storage is JavaScript, so the suite reaches it over HTTP: the registry,
//! started with `REGISTRY_STORAGE_CONTRACT=on` (never in production), answers
//! `POST /_storage-contract/<store>/<call>?args=<JSON>` by making that one call
//! on the objects the registry component calls (see
//! `edge/cloudflare/src/contract-route.js`). Each store is a database of its
//! own (a Durable Object, or a file, of a fresh name: a fresh, empty
//! database; under wrangler they share the one R2 bucket, where every object
//! has a key of its own); a client stands for a request. Uploads and read
//! streams stay open in the runtime as handles.
//!
//! One runtime serves the whole test process, started with
//! `scripts/serve.sh RUNTIME --no-build` (scripts/test.sh builds it first) on
//! a temporary data directory, and stopped when the process ends.
//!
//! The `full_disk_*` cases are left out (`--skip full_disk`, in
//! scripts/test.sh): a Durable Object cannot be filled up in a test (its
//! limit is the platform's, 10 GB on Cloudflare), and the local SQLite files
//! on a small filesystem would test SQLite, not the platform's limit.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use storage_contract::{BlobInfo, ContractClient, ContractStore, Entry, StorageError, StorageResult, UploadInfo};

/// The runtime of `REGISTRY_CONTRACT_RUNTIME`: `workerd`, `wrangler` or `deno`.
fn runtime() -> &'static str {
    match std::env::var("REGISTRY_CONTRACT_RUNTIME").as_deref() {
        Ok("workerd") => "workerd",
        Ok("wrangler") => "wrangler",
        Ok("deno") => "deno",
        other => panic!(
            "REGISTRY_CONTRACT_RUNTIME={other:?}: expected `workerd`, `wrangler` or `deno` (scripts/test.sh sets it)"
        ),
    }
}

/// The runtime serving every store of this process.
struct Served {
    url: String,
    /// The wrapper's stdin: when this process ends it closes, and the wrapper
    /// stops serve.sh (and the runtime with it).
    _lifeline: Mutex<ChildStdin>,
    _child: Child,
    _data: tempfile::TempDir,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let tests_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let serve = tests_dir.join("../scripts/serve.sh");
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or(tests_dir.join("../target"));
        let data = tempfile::Builder::new().prefix("registry-contract.").tempdir().expect("a temporary directory");
        let mut child = Command::new("bash")
            .arg("-c")
            // serve.sh in the background, stopped (SIGTERM) once stdin closes;
            // then the data directory goes (a static's TempDir is never dropped).
            .arg(r#"bash "$0" "$2" --no-build --addr 127.0.0.1:0 --data "$1" & pid=$!; cat >/dev/null; kill -TERM $pid; wait $pid; rm -rf "$1""#)
            .arg(&serve)
            .arg(data.path())
            .arg(runtime())
            .env("CARGO_TARGET_DIR", target)
            .env("REGISTRY_STORAGE_CONTRACT", "on")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run scripts/serve.sh {}: {e}", runtime()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut url = None;
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.expect("serve.sh's output");
            eprintln!("[{}] {line}", runtime());
            if let Some(rest) = line.strip_prefix("serving on ") {
                url = Some(rest.trim_end_matches('/').to_string());
                break;
            }
        }
        let url = url.unwrap_or_else(|| {
            panic!("scripts/serve.sh {0} stopped before serving (build it: scripts/serve.sh {0} --build-only)", runtime())
        });
        std::thread::spawn(move || lines.for_each(|line| eprintln!("[{}] {}", runtime(), line.unwrap_or_default())));
        let lifeline = Mutex::new(child.stdin.take().expect("piped stdin"));
        Served { url, _lifeline: lifeline, _child: child, _data: data }
    })
}

/// One store: a database of its own.
struct EdgeStore {
    name: String,
}

impl ContractStore for EdgeStore {
    type Client = EdgeClient;

    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        EdgeStore { name: format!("s{}-{now}-{n}", std::process::id()) }
    }

    fn client(&self) -> EdgeClient {
        let base = format!("{}/_storage-contract/{}", served().url, self.name);
        // reqwest is built with rustls but no default provider: plain HTTP never
        // uses it, yet building a client needs one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("an HTTP client");
        EdgeClient { base, http }
    }

    fn nearly_full(_room: u64) -> Self {
        panic!("an edge store cannot be filled up in a test: leave the full_disk cases out (--skip full_disk)")
    }

    fn free_space(&self) {}
}

/// One request's view of a store.
struct EdgeClient {
    base: String,
    http: reqwest::blocking::Client,
}

/// A contract error as the route answers it (`{"tag", "val"}`).
fn error_of(err: &Value) -> StorageError {
    let val = err["val"].as_str().unwrap_or_default().to_string();
    match err["tag"].as_str().expect("an error tag") {
        "not-found" => StorageError::NotFound,
        "digest-mismatch" => StorageError::DigestMismatch(val),
        "conflict" => StorageError::Conflict,
        "invalid" => StorageError::Invalid(val),
        "full" => StorageError::Full,
        "unavailable" => StorageError::Unavailable(val),
        "other" => StorageError::Other(val),
        tag => panic!("unknown error tag {tag:?}"),
    }
}

fn u64_of(value: &Value) -> u64 {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a u64 as a string: {value}"))
}

impl EdgeClient {
    /// Makes `call` with `args` (and `body`); the answer's result JSON and body.
    fn call_raw(&self, call: &str, args: Value, body: &[u8]) -> (StorageResult<Value>, Vec<u8>) {
        let response = self
            .http
            .post(format!("{}/{call}", self.base))
            .query(&[("args", args.to_string())])
            .body(body.to_vec())
            .send()
            .unwrap_or_else(|e| panic!("{call}: {e}"));
        let status = response.status();
        let header = response.headers().get("contract-result").map(|v| v.to_str().expect("ASCII").to_string());
        let bytes = response.bytes().unwrap_or_else(|e| panic!("{call}: {e}")).to_vec();
        assert!(status.is_success(), "{call}: {status}: {}", String::from_utf8_lossy(&bytes));
        let (result, bytes): (Value, Vec<u8>) = match header {
            Some(header) => (serde_json::from_str(&header).expect("JSON"), bytes),
            None => (serde_json::from_slice(&bytes).expect("JSON"), Vec::new()),
        };
        match result.get("err") {
            Some(err) => (Err(error_of(err)), bytes),
            None => (Ok(result["ok"].clone()), bytes),
        }
    }

    fn call(&self, call: &str, args: Value) -> StorageResult<Value> {
        self.call_raw(call, args, &[]).0
    }
}

impl ContractClient for EdgeClient {
    type Upload = u64;
    type Reader = u64;

    fn stat(&mut self, digest: &str) -> StorageResult<Option<u64>> {
        Ok(self.call("stat", json!({ "digest": digest }))?.as_str().map(|s| s.parse().expect("a size")))
    }

    fn read(&mut self, digest: &str, offset: u64, length: Option<u64>) -> StorageResult<Option<u64>> {
        let args = json!({ "digest": digest, "offset": offset.to_string(), "length": length.map(|l| l.to_string()) });
        Ok(self.call("read", args)?.as_u64())
    }

    fn read_to_end(&mut self, reader: u64) -> StorageResult<Vec<u8>> {
        let (result, bytes) = self.call_raw("read-to-end", json!({ "handle": reader }), &[]);
        result.map(|_| bytes)
    }

    fn delete_blob(&mut self, digest: &str) -> StorageResult<bool> {
        Ok(self.call("delete-blob", json!({ "digest": digest }))?.as_bool().expect("a bool"))
    }

    fn list(&mut self, after: Option<&str>, limit: u32) -> StorageResult<Vec<BlobInfo>> {
        let page = self.call("list", json!({ "after": after, "limit": limit }))?;
        Ok(page
            .as_array()
            .expect("a list")
            .iter()
            .map(|b| BlobInfo {
                digest: b["digest"].as_str().expect("a digest").to_string(),
                size: u64_of(&b["size"]),
                touched: u64_of(&b["touched"]),
            })
            .collect())
    }

    fn touch(&mut self, digest: &str) -> StorageResult<bool> {
        Ok(self.call("touch", json!({ "digest": digest }))?.as_bool().expect("a bool"))
    }

    fn delete_if_older(&mut self, digest: &str, before: u64) -> StorageResult<bool> {
        let args = json!({ "digest": digest, "before": before.to_string() });
        Ok(self.call("delete-if-older", args)?.as_bool().expect("a bool"))
    }

    fn list_uploads(&mut self, after: Option<&str>, limit: u32) -> StorageResult<Vec<UploadInfo>> {
        let page = self.call("list-uploads", json!({ "after": after, "limit": limit }))?;
        Ok(page
            .as_array()
            .expect("a list")
            .iter()
            .map(|u| UploadInfo {
                id: u["id"].as_str().expect("an id").to_string(),
                size: u64_of(&u["size"]),
                modified: u64_of(&u["modified"]),
            })
            .collect())
    }

    fn start(&mut self) -> StorageResult<u64> {
        Ok(self.call("start", json!({}))?.as_u64().expect("a handle"))
    }

    fn resume(&mut self, id: &str) -> StorageResult<u64> {
        Ok(self.call("resume", json!({ "id": id }))?.as_u64().expect("a handle"))
    }

    fn id(&mut self, upload: &u64) -> String {
        let id = self.call("id", json!({ "upload": upload })).expect("upload.id");
        id.as_str().expect("an id").to_string()
    }

    fn size(&mut self, upload: &u64) -> StorageResult<u64> {
        Ok(u64_of(&self.call("size", json!({ "upload": upload }))?))
    }

    fn append(&mut self, upload: &u64, bytes: &[u8]) -> StorageResult<()> {
        self.call_raw("append", json!({ "upload": upload }), bytes).0.map(|_| ())
    }

    fn commit(&mut self, upload: &u64, expected_digest: &str) -> StorageResult<u64> {
        Ok(u64_of(&self.call("commit", json!({ "upload": upload, "digest": expected_digest }))?))
    }

    fn abort(&mut self, upload: &u64) -> StorageResult<()> {
        self.call("abort", json!({ "upload": upload })).map(|_| ())
    }

    fn get(&mut self, key: &str) -> StorageResult<Option<Entry>> {
        let (result, value) = self.call_raw("get", json!({ "key": key }), &[]);
        let found = result?;
        Ok((!found.is_null()).then(|| Entry { value, version: u64_of(&found["version"]) }))
    }

    fn set(&mut self, key: &str, value: &[u8]) -> StorageResult<u64> {
        Ok(u64_of(&self.call_raw("set", json!({ "key": key }), value).0?))
    }

    fn set_if(&mut self, key: &str, value: &[u8], expected: Option<u64>) -> StorageResult<u64> {
        let args = json!({ "key": key, "expected": expected.map(|v| v.to_string()) });
        Ok(u64_of(&self.call_raw("set-if", args, value).0?))
    }

    fn delete(&mut self, key: &str) -> StorageResult<bool> {
        Ok(self.call("delete", json!({ "key": key }))?.as_bool().expect("a bool"))
    }

    fn list_keys(&mut self, prefix: &str, after: Option<&str>, limit: u32) -> StorageResult<Vec<String>> {
        let keys = self.call("list-keys", json!({ "prefix": prefix, "after": after, "limit": limit }))?;
        Ok(keys.as_array().expect("a list").iter().map(|k| k.as_str().expect("a key").to_string()).collect())
    }
}

storage_contract::contract_tests!(EdgeStore);

//! `--metrics-listen`: the operator's address. After real traffic (pushes, pulls,
//! an unknown manifest, a refused sign-in), `/metrics` counts each request by route
//! (never by repository), method and status, times them, and times the component's
//! instantiations, counts the bytes in and out, times the storage calls and counts
//! the uploads in progress; the Prometheus client library's own parser (PyPI
//! `prometheus-client`, found through `PROMETHEUS_CLIENT_PYTHONPATH`, which
//! scripts/test.sh sets) accepts the exposition. `/health/live` and `/health/ready`
//! answer 200.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::StatusCode;

use crate::common::{require_host_binary, RegistryServer};

/// The exposition parsed by prometheus_client's OpenMetrics parser: each sample as
/// `name{label="value",...}` (labels sorted) → value. Fails the test if the parser
/// refuses it.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let path = std::env::var("PROMETHEUS_CLIENT_PYTHONPATH").expect(
        "PROMETHEUS_CLIENT_PYTHONPATH: a directory holding PyPI's prometheus-client (scripts/test.sh installs it)",
    );
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .env("PYTHONPATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (sample, value) = line.rsplit_once(' ').unwrap();
            (sample.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_the_traffic_and_health_answers() {
    require_host_binary();
    let server = RegistryServer::start_with_args(&["--metrics-listen", "127.0.0.1:0"]);
    let metrics_url = server.metrics_url();
    let base = metrics_url.trim_end_matches("/metrics").to_string();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let repo = "e2e/metrics/app";
    server.push_image(repo, &["v1"]).await;
    for _ in 0..3 {
        let resp = server.get_manifest(repo, "v1").await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(server.get_manifest(repo, "absent").await.status(), StatusCode::NOT_FOUND);

    let text = http.get(&metrics_url).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains(repo), "a repository name in the metrics:\n{text}");
    let samples = parse_exposition(&text);
    let count = |labels: &str| samples.get(&format!("registry_http_requests_total{{{labels}}}")).copied();
    assert!(count(r#"method="GET",route="manifest",status="200""#) >= Some(3.0), "{samples:#?}");
    assert_eq!(count(r#"method="GET",route="manifest",status="404""#), Some(1.0), "{samples:#?}");
    assert!(count(r#"method="PUT",route="manifest",status="201""#) >= Some(1.0), "{samples:#?}");
    assert!(
        samples.keys().any(|k| k.starts_with("registry_http_requests_total{") && k.contains(r#"route="upload""#)),
        "{samples:#?}"
    );
    let timed = samples.get(r#"registry_http_request_duration_seconds_count{method="GET",route="manifest"}"#).copied();
    assert!(timed >= Some(4.0), "{samples:#?}");
    let instantiations = samples.get("registry_component_instantiation_seconds_count{}").copied().unwrap_or(0.0);
    assert!(instantiations >= 5.0, "{samples:#?}");

    assert!(samples["registry_http_received_bytes_total{}"] > 0.0, "{samples:#?}");
    assert!(samples["registry_http_sent_bytes_total{}"] > 0.0, "{samples:#?}");
    let backend = if server.data_dir().is_some() { "fs" } else { "s3" };
    let stats = samples.get(&format!(
        r#"registry_storage_operation_duration_seconds_count{{backend="{backend}",operation="kv.get"}}"#
    ));
    assert!(stats.copied() >= Some(1.0), "{samples:#?}");

    // More traffic moves the counter, and an upload left open is in progress.
    server.start_upload(repo).await;
    server.get_manifest(repo, "v1").await;
    let again = parse_exposition(&http.get(&metrics_url).send().await.unwrap().text().await.unwrap());
    let key = r#"registry_http_requests_total{method="GET",route="manifest",status="200"}"#;
    assert_eq!(again[key], samples[key] + 1.0);
    assert!(again["registry_uploads_in_progress{}"] >= 1.0, "{again:#?}");

    for path in ["/health/live", "/health/ready"] {
        let resp = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
    assert_eq!(http.get(format!("{base}/nothing")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}

/// A collection that a client steps to its end through `/_registry/gc` counts in
/// the GC metrics, as a scheduled one does; the component's result header stays
/// between it and the host.
#[tokio::test]
async fn a_collection_stepped_through_the_endpoint_counts() {
    require_host_binary();
    let server =
        RegistryServer::start_with_args(&["--metrics-listen", "127.0.0.1:0", "--gc-endpoint", "--gc-grace", "0"]);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let orphan = b"a blob no manifest refers to";
    server.push_blob("e2e/metrics/gc", orphan).await;
    // Times are in whole seconds: the blob must be older than the run's cutoff.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut steps = 0;
    loop {
        let resp = server.client().post(server.url("/_registry/gc")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get("registry-gc-result").is_none(), "the host removes the component's header");
        let body: serde_json::Value = resp.json().await.unwrap();
        steps += 1;
        if body["done"] == true {
            assert_eq!(body["run"]["counts"]["blobsRemoved"], 1, "{body}");
            break;
        }
        assert!(steps < 1000, "the collection did not finish");
    }
    let text = http.get(server.metrics_url()).send().await.unwrap().text().await.unwrap();
    let samples = parse_exposition(&text);
    assert_eq!(samples.get("registry_gc_runs_total{}").copied(), Some(1.0), "{samples:#?}");
    assert_eq!(samples.get("registry_gc_removed_blobs_total{}").copied(), Some(1.0));
    assert_eq!(samples.get("registry_gc_reclaimed_bytes_total{}").copied(), Some(orphan.len() as f64));
}

//! end-2 with `Range` (RFC 9110 §14): `bytes=a-b`, `bytes=a-` and the suffix form
//! `bytes=-n` answer 206 with `Content-Range: bytes a-b/size`, the exact bytes and
//! their length; a range that starts past the end is 416 with
//! `Content-Range: bytes */size`. Blob responses advertise `Accept-Ranges: bytes`.

use reqwest::header::{CONTENT_LENGTH, RANGE};
use reqwest::StatusCode;

use crate::common::{assert_api_version, content_length, header, random_bytes, RegistryServer};

/// GETs `repo`'s blob `digest` with `Range: range`; asserts 206, `Content-Range`
/// and `Content-Length` for bytes `first..=last` of `data`, and the bytes.
async fn assert_partial(
    server: &RegistryServer,
    repo: &str,
    digest: &str,
    data: &[u8],
    range: &str,
    first: usize,
    last: usize,
) {
    let url = server.url(&format!("/v2/{repo}/blobs/{digest}"));
    let resp = server.client().get(&url).header(RANGE, range).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "Range: {range}");
    assert_api_version(resp.headers());
    assert_eq!(
        header(&resp, "Content-Range"),
        format!("bytes {first}-{last}/{}", data.len()),
        "Content-Range for Range: {range}"
    );
    assert_eq!(content_length(resp.headers()), (last - first + 1) as u64, "Content-Length for Range: {range}");
    assert_eq!(header(&resp, "Accept-Ranges"), "bytes");
    let body = resp.bytes().await.unwrap();
    assert!(
        body[..] == data[first..=last],
        "Range: {range}: {} bytes that are not bytes {first}-{last} of the blob",
        body.len()
    );
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n`, a single byte, the whole blob as a range,
/// and an end past the blob's (clamped to the last byte).
#[tokio::test]
async fn satisfiable_ranges_are_206() {
    let server = RegistryServer::start();
    let repo = "e2e/ranges/ok";
    let data = random_bytes(10_000);
    let digest = server.push_blob(repo, &data).await;
    let last = data.len() - 1;

    let cases: [(&str, usize, usize); 8] = [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=5000-", 5000, last),
        ("bytes=-100", data.len() - 100, last),
        ("bytes=42-42", 42, 42),
        ("bytes=0-", 0, last),
        ("bytes=9000-20000", 9000, last),
        ("bytes=-20000", 0, last),
    ];
    for (range, first, end) in cases {
        assert_partial(&server, repo, &digest, &data, range, first, end).await;
    }
    // The last byte alone, both ways.
    let last_range = format!("bytes={last}-{last}");
    assert_partial(&server, repo, &digest, &data, &last_range, last, last).await;
    assert_partial(&server, repo, &digest, &data, "bytes=-1", last, last).await;
}

/// A range deep inside a larger blob (several MiB): the server seeks, it does not
/// serve from the start.
#[tokio::test]
async fn range_inside_a_big_blob() {
    let server = RegistryServer::start();
    let repo = "e2e/ranges/big";
    let data = random_bytes(6 * 1024 * 1024 + 123);
    let digest = server.push_blob(repo, &data).await;
    let first = 5 * 1024 * 1024 + 7;
    let last = first + 65_536;
    let range = format!("bytes={first}-{last}");
    assert_partial(&server, repo, &digest, &data, &range, first, last).await;
}

/// A range that starts at or past the end (or an empty suffix) is 416 with
/// `Content-Range: bytes */<size>`.
#[tokio::test]
async fn unsatisfiable_range_is_416() {
    let server = RegistryServer::start();
    let repo = "e2e/ranges/bad";
    let data = random_bytes(1000);
    let digest = server.push_blob(repo, &data).await;
    let url = server.url(&format!("/v2/{repo}/blobs/{digest}"));
    for range in ["bytes=1000-", "bytes=1000-2000", "bytes=5000-6000", "bytes=-0"] {
        let resp = server.client().get(&url).header(RANGE, range).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "Range: {range}");
        assert_api_version(resp.headers());
        assert_eq!(header(&resp, "Content-Range"), "bytes */1000", "Content-Range of the 416 for Range: {range}");
    }
}

/// Without `Range` the blob is whole (200) and `Accept-Ranges: bytes` says ranges
/// may be asked for; a HEAD says so too.
#[tokio::test]
async fn whole_blob_advertises_accept_ranges() {
    let server = RegistryServer::start();
    let repo = "e2e/ranges/whole";
    let data = random_bytes(2048);
    let digest = server.push_blob(repo, &data).await;
    let url = server.url(&format!("/v2/{repo}/blobs/{digest}"));

    let resp = server.client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "Accept-Ranges"), "bytes");
    assert!(resp.headers().get("Content-Range").is_none());
    assert_eq!(header(&resp, CONTENT_LENGTH.as_str()), "2048");
    assert!(resp.bytes().await.unwrap()[..] == data[..]);

    let resp = server.client().head(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "Accept-Ranges"), "bytes");
}

//! `registry-host`'s timeouts and connection caps, over raw sockets with short
//! settings: a slow request head, an idle keep-alive connection, a stalled body
//! and a client that does not read its response are cut after their timeouts
//! (and not long before), while a slow but steady upload or download completes;
//! at the connection cap a flood of idle connections neither locks out a client
//! that sends requests nor grows the server's memory; a client at its own cap has
//! its extra connection closed.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{random_bytes, require_host_binary, sha256_digest, with_query, RegistryServer};

/// Room for a loaded machine: how much later than its timeout a connection may be
/// cut.
const LATE: Duration = Duration::from_secs(5);

/// How much earlier than its timeout, by the client's clock, a connection may be
/// cut: the server's clock starts after the client's.
const EARLY: Duration = Duration::from_millis(100);

/// A connection to `server`.
async fn connect(server: &RegistryServer) -> TcpStream {
    TcpStream::connect(server.host_port()).await.expect("connect to the registry")
}

/// Reads until the server closes `stream`; returns how long that took, from
/// `since`, and what came. Fails the test if the connection is still open
/// `timeout + LATE` after `since`.
async fn wait_until_closed(stream: &mut TcpStream, since: Instant, timeout: Duration) -> (Duration, Vec<u8>) {
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let limit = (since + timeout + LATE).into();
    loop {
        match tokio::time::timeout_at(limit, stream.read(&mut buf)).await {
            Err(_) => panic!("the connection is still open {:?} after {timeout:?}", LATE),
            Ok(Ok(0)) | Ok(Err(_)) => return (since.elapsed(), received),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Asserts that the server closes `stream` `timeout` after `since` (no earlier,
/// and at most [`LATE`] later); returns what came before.
async fn assert_closed_after(stream: &mut TcpStream, since: Instant, timeout: Duration, what: &str) -> Vec<u8> {
    let (after, received) = wait_until_closed(stream, since, timeout).await;
    assert!(after + EARLY >= timeout, "{what}: closed after {after:?}, before the timeout of {timeout:?}");
    received
}

/// Asserts that the server closes `stream`, unanswered, `timeout` after `since`.
async fn assert_cut_after(stream: &mut TcpStream, since: Instant, timeout: Duration, what: &str) {
    let received = assert_closed_after(stream, since, timeout, what).await;
    assert!(received.is_empty(), "{what}: answered with {:?}", String::from_utf8_lossy(&received));
}

/// `GET /v2/`, a whole request.
const GET_BASE: &[u8] = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n";

/// The same, without the blank line that ends its head.
const HALF_A_HEAD: &[u8] = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n";

/// A response read from a connection that stays open: status, headers (names in
/// lower case), body (by its `Content-Length`).
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Reads a response head from `stream`: status and headers (names in lower case).
async fn read_head(stream: &mut TcpStream) -> (u16, Vec<(String, String)>) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut byte))
            .await
            .expect("a response within 60 s")
            .expect("read a response");
        assert_eq!(n, 1, "the connection closed in a response head: {:?}", String::from_utf8_lossy(&raw));
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).expect("ASCII response head");
    let mut lines = head.trim_end().split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

/// The `Content-Length` among `headers` (0 without one).
fn length_of(headers: &[(String, String)]) -> usize {
    headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().expect("a number"))
}

/// Reads one response from `stream`, leaving the connection open.
async fn read_response(stream: &mut TcpStream) -> Response {
    let (status, headers) = read_head(stream).await;
    let mut body = vec![0u8; length_of(&headers)];
    stream.read_exact(&mut body).await.expect("read the response body");
    Response { status, headers, body }
}

/// The path and query of an absolute upload URL.
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    &rest[rest.find('/').expect("a path")..]
}

/// Sends the head of `method target` with a body of `length` bytes.
async fn send_head_with_body(stream: &mut TcpStream, method: &str, target: &str, length: usize) {
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: registry\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("send a request head");
}

/// A head that never ends is cut after the header timeout, counted from its first
/// byte: not from the connection's opening (that is the idle timeout, longer here).
#[tokio::test]
async fn a_slow_request_head_is_cut_after_the_header_timeout() {
    require_host_binary();
    let header = Duration::from_secs(2);
    let server = RegistryServer::start_with_args(&["--header-timeout", "2s", "--idle-timeout", "3s"]);
    let mut stream = connect(&server).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(HALF_A_HEAD).await.unwrap();
    assert_cut_after(&mut stream, Instant::now(), header, "half a head").await;
}

/// A keep-alive connection is served while requests come within the idle timeout,
/// and closed once none has come for that long.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    require_host_binary();
    let idle = Duration::from_secs(3);
    let server = RegistryServer::start_with_args(&["--idle-timeout", "3", "--header-timeout", "30s"]);
    let mut stream = connect(&server).await;
    for pause in [idle / 2, idle / 2, idle / 2, Duration::ZERO] {
        stream.write_all(GET_BASE).await.unwrap();
        assert_eq!(read_response(&mut stream).await.status, 200);
        tokio::time::sleep(pause).await;
    }
    assert_cut_after(&mut stream, Instant::now(), idle, "an idle connection").await;
}

/// An upload whose body stops arriving is given up after the body timeout: the
/// connection is closed (after an error answer, if any) and no blob is committed.
#[tokio::test]
async fn a_stalled_body_is_cut_after_the_body_timeout_and_commits_nothing() {
    require_host_binary();
    let body = Duration::from_secs(2);
    let server = RegistryServer::start_with_args(&["--body-timeout", "2s", "--idle-timeout", "60s"]);
    let repo = "e2e/limits-stalled";
    let data = random_bytes(1024 * 1024);
    let digest = sha256_digest(&data);
    let location = server.start_upload(repo).await;
    let mut stream = connect(&server).await;
    send_head_with_body(&mut stream, "PUT", &with_query(path_of(&location), "digest", &digest), data.len()).await;
    stream.write_all(&data[..10 * 1024]).await.unwrap();
    let stalled = Instant::now();
    let answer = assert_closed_after(&mut stream, stalled, body, "a stalled body").await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.starts_with("HTTP/1.1 2"), "a stalled upload succeeded: {answer}");
    let resp = server.client().head(server.url(&format!("/v2/{repo}/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "the stalled blob was committed");
}

/// An upload that is slow but steady, with pauses shorter than the body timeout and
/// a total much longer, completes with the right digest.
#[tokio::test]
async fn a_slow_but_steady_upload_completes() {
    require_host_binary();
    let server = RegistryServer::start_with_args(&["--body-timeout", "1s", "--header-timeout", "1s"]);
    let repo = "e2e/limits-steady";
    let data = random_bytes(2 * 1024 * 1024);
    let digest = sha256_digest(&data);
    let location = server.start_upload(repo).await;
    let mut stream = connect(&server).await;
    let started = Instant::now();
    send_head_with_body(&mut stream, "PUT", &with_query(path_of(&location), "digest", &digest), data.len()).await;
    for piece in data.chunks(data.len() / 50) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.write_all(piece).await.expect("the server takes every piece");
    }
    let resp = read_response(&mut stream).await;
    assert!(started.elapsed() > Duration::from_secs(9), "the upload was not slow: {:?}", started.elapsed());
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.header("docker-content-digest"), Some(digest.as_str()));
    let blob = server.get_blob(repo, &digest).await;
    assert_eq!(blob.status(), StatusCode::OK);
    assert_eq!(sha256_digest(&blob.bytes().await.unwrap()), digest);
}

/// A client that asks for a large blob and reads none of it is cut after the send
/// timeout; one that reads it slowly but steadily, in more time than the send
/// timeout, gets all of it.
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_after_the_send_timeout() {
    require_host_binary();
    let send = Duration::from_secs(2);
    let server = RegistryServer::start_with_args(&["--send-timeout", "2s", "--idle-timeout", "60s"]);
    let repo = "e2e/limits-send";
    let data = random_bytes(32 * 1024 * 1024);
    let digest = server.push_blob(repo, &data).await;
    let request = format!("GET /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n");

    let mut stalled = connect(&server).await;
    stalled.write_all(request.as_bytes()).await.unwrap();
    // Far longer than the send timeout, and no byte read: loopback's socket
    // buffers hold a few MiB, not 32.
    tokio::time::sleep(send * 3).await;
    let (_, received) = wait_until_closed(&mut stalled, Instant::now(), Duration::ZERO).await;
    assert!(
        received.len() < data.len(),
        "a client that read nothing got the whole blob: the send timeout did not cut it"
    );

    let mut steady = connect(&server).await;
    steady.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (status, headers) = read_head(&mut steady).await;
    assert_eq!((status, length_of(&headers)), (200, data.len()));
    // 1 MiB every 100 ms.
    let mut body = vec![0u8; data.len()];
    for step in body.chunks_mut(1024 * 1024) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        steady.read_exact(step).await.unwrap_or_else(|e| panic!("cut after {:?}: {e}", started.elapsed()));
    }
    assert!(started.elapsed() > send, "the download was not slow: {:?}", started.elapsed());
    assert!(body == data, "the blob came back changed");
}

/// Resident memory of process `pid` in KiB: the peak (`VmHWM`) and now (`VmRSS`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {status}"));
        line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("a size in kB")
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The most the server's peak resident memory may grow while a flood of
/// connections hits its cap and a client pushes and pulls a small blob.
const FLOOD_GROWTH_KIB: u64 = 32 * 1024;

/// With the connection cap at 32, 300 connections that each send half a request
/// head (and would keep it for the 60 s header timeout) do not keep a client that
/// sends whole requests from being served: the cap closes those that have waited
/// longest. The server's memory stays bounded.
#[tokio::test]
async fn a_flood_of_idle_connections_does_not_lock_out_a_client() {
    require_host_binary();
    let server = RegistryServer::start_with_args(&["--max-connections", "32", "--header-timeout", "60s"]);
    let resp = server.client().get(server.url("/v2/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, before) = memory_kib(server.pid());

    let mut flood = Vec::new();
    for _ in 0..300 {
        let mut stream = connect(&server).await;
        stream.write_all(HALF_A_HEAD).await.unwrap();
        flood.push(stream);
    }
    let started = Instant::now();
    let resp = server.client().get(server.url("/v2/")).send().await.expect("GET /v2/ during the flood");
    assert_eq!(resp.status(), StatusCode::OK);
    let data = random_bytes(256 * 1024);
    let digest = server.push_blob("e2e/limits-flood", &data).await;
    let blob = server.get_blob("e2e/limits-flood", &digest).await;
    assert_eq!(blob.status(), StatusCode::OK);
    assert_eq!(blob.bytes().await.unwrap().len(), data.len());
    assert!(started.elapsed() < Duration::from_secs(30), "served only after {:?}", started.elapsed());

    // The cap closed all but the 32 newest (or fewer) of the flood.
    let mut open = 0;
    for stream in &mut flood {
        let mut byte = [0u8; 1];
        if tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await.is_err() {
            open += 1;
        }
    }
    assert!(open <= 32, "{open} flood connections still open, above the cap of 32");
    let (peak, now) = memory_kib(server.pid());
    eprintln!("registry-host memory: {before} KiB before the flood, peak {peak} KiB, {now} KiB after");
    assert!(
        peak < before + FLOOD_GROWTH_KIB,
        "peak resident memory {peak} KiB, more than {FLOOD_GROWTH_KIB} KiB above the {before} KiB before the flood"
    );
}

/// With `--max-connections-per-client 4`, a client's fifth connection is closed at
/// once, its four others are still served, and once one closes another is accepted.
#[tokio::test]
async fn a_client_at_its_cap_has_its_extra_connection_closed() {
    require_host_binary();
    let server = RegistryServer::start_with_args(&["--max-connections-per-client", "4"]);
    let mut four = Vec::new();
    for _ in 0..4 {
        four.push(connect(&server).await);
    }
    let mut fifth = connect(&server).await;
    let _ = fifth.write_all(GET_BASE).await;
    let (_, received) = wait_until_closed(&mut fifth, Instant::now(), Duration::ZERO).await;
    assert!(received.is_empty(), "the fifth connection was answered: {:?}", String::from_utf8_lossy(&received));
    for stream in &mut four {
        stream.write_all(GET_BASE).await.unwrap();
        assert_eq!(read_response(stream).await.status, 200);
    }
    drop(four.pop());
    // The server notices the close when it next reads that connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut another = connect(&server).await;
        let _ = another.write_all(GET_BASE).await;
        let mut first = [0u8; 12];
        if tokio::time::timeout(Duration::from_secs(5), another.read_exact(&mut first)).await.is_ok_and(|r| r.is_ok()) {
            assert_eq!(&first, b"HTTP/1.1 200");
            break;
        }
        assert!(Instant::now() < deadline, "no new connection accepted after one of the four closed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

//! Reading the registry's answers: headers, `Link` paging, OCI error bodies, and raw
//! requests over TCP for paths that an URL library would normalise away.

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_LENGTH};
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// Header every response of the registry carries, errors included.
pub const API_VERSION_HEADER: &str = "Docker-Distribution-Api-Version";

/// Whether the suite runs against an external registry (`REGISTRY_TEST_URL`), whose
/// flags and contents the tests do not control.
pub fn external_registry() -> bool {
    std::env::var_os("REGISTRY_TEST_URL").is_some()
}

/// The target of a `Link` header for the next page, which must have exactly the
/// RFC 5988 form the spec shows: `<URL>; rel="next"`. `None` without a `Link`.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("Link")?.to_str().expect("ASCII Link header");
    let target = value
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix(">; rel=\"next\""))
        .unwrap_or_else(|| panic!("Link {value:?} is not `<URL>; rel=\"next\"`"));
    Some(target.to_string())
}

/// The value of query parameter `key` in `url` (percent-decoded), if present.
pub fn query_param(url: &str, key: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| percent_decode(v))
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+`).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 after percent-decoding")
}

/// The strings of the array `json[key]`; a missing or `null` key is an empty list.
pub fn string_list(json: &Value, key: &str) -> Vec<String> {
    match &json[key] {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_else(|| panic!("non-string in {key}: {json}")).to_string())
            .collect(),
        other => panic!("{key} is not an array: {other}"),
    }
}

/// `url` with `key=value` appended to its query (`value` must be URL-safe, as digests
/// are).
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// The value of header `name`, which must be present and ASCII.
pub fn header<'a>(resp: &'a Response, name: &str) -> &'a str {
    header_in(resp.headers(), name)
}

/// The value of header `name` in `headers`, which must be present and ASCII.
pub fn header_in<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}; headers: {headers:?}"))
        .to_str()
        .unwrap_or_else(|_| panic!("header {name} is not ASCII"))
}

/// Asserts `Docker-Distribution-Api-Version: registry/2.0`.
pub fn assert_api_version(headers: &HeaderMap) {
    assert_eq!(
        headers.get(API_VERSION_HEADER).and_then(|v| v.to_str().ok()),
        Some("registry/2.0"),
        "{API_VERSION_HEADER} header; headers: {headers:?}"
    );
}

/// The `Content-Length` header as a number.
pub fn content_length(headers: &HeaderMap) -> u64 {
    header_in(headers, CONTENT_LENGTH.as_str()).parse().expect("numeric Content-Length")
}

/// Asserts that `resp` is an OCI error: `status`, the API version header, and a JSON
/// body `{"errors":[{"code","message","detail"}, ...]}` whose first error has `code`.
/// Returns the parsed body.
pub async fn assert_error(resp: Response, status: StatusCode, code: &str) -> Value {
    let got = resp.status();
    let headers = resp.headers().clone();
    let url = resp.url().clone();
    let body = resp.bytes().await.expect("read error body");
    assert_eq!(got, status, "status for {url}; body: {}", String::from_utf8_lossy(&body));
    assert_api_version(&headers);
    assert_error_body(&body, code)
}

/// Asserts the JSON error envelope in `body` and that its first error has `code`.
pub fn assert_error_body(body: &[u8], code: &str) -> Value {
    let text = String::from_utf8_lossy(body);
    let json: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    let errors = json["errors"].as_array().unwrap_or_else(|| panic!("no \"errors\" array in {text}"));
    assert!(!errors.is_empty(), "empty \"errors\" array in {text}");
    for error in errors {
        let c = error["code"].as_str().unwrap_or_else(|| panic!("error without a code: {text}"));
        assert!(
            !c.is_empty() && c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'),
            "code {c:?} is not uppercase letters and underscores"
        );
        assert!(error["message"].is_string(), "error without a message: {text}");
        assert!(error.get("detail").is_some(), "error without a detail: {text}");
    }
    assert_eq!(errors[0]["code"], code, "error code in {text}");
    json
}

/// A response read over a raw TCP connection, for requests that an URL library
/// would normalise away (`..` segments, for instance).
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` (the path exactly as given) with an empty body over a fresh
/// connection and reads the whole response.
pub async fn raw_request(host_port: &str, method: &str, path: &str) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(host_port).await.expect("connect");
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .expect("response within 60 s")
        .expect("read response");
    parse_raw_response(&raw, method == "HEAD")
}

fn parse_raw_response(raw: &[u8], head: bool) -> RawResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head_text = std::str::from_utf8(&raw[..split]).expect("ASCII response head");
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked"));
    let body = if head {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    RawResponse { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = std::str::from_utf8(&data[..eol]).unwrap_or("0");
        let size_text = size_text.split(';').next().unwrap_or("0").trim();
        let size = usize::from_str_radix(size_text, 16).unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// Asserts a raw response is an OCI error with `status` and first error `code`.
pub fn assert_raw_error(resp: &RawResponse, status: u16, code: &str) {
    assert_eq!(resp.status, status, "status; body: {}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.header(API_VERSION_HEADER), Some("registry/2.0"), "{API_VERSION_HEADER}");
    assert_error_body(&resp.body, code);
}

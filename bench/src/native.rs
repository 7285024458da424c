//! The native ceiling of the small requests: what the HTTP stack alone
//! costs on this machine. `capture` records ours' answers to the
//! per-request group's requests (status, headers, body) in a directory;
//! `serve` answers them from there with hyper, on the runtime and with the
//! HTTP/1.1 settings registry-host uses, reading each body from its file at
//! request time as the registry reads its storage. Anything else is 404.
//!
//! The directory: `answers.json`, a list of `{method, path, status,
//! headers: [[name, value]...], body}`, `body` naming a file beside it.

use crate::client::{Client, Target};
use crate::per_request::{cases, fetch};
use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const INDEX: &str = "answers.json";

/// registry-host's bound on a request head (`MAX_REQUEST_HEAD`).
const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// Headers the server makes itself: hyper writes its own `date`.
const NOT_REPLAYED: [&str; 1] = ["date"];

/// Fetches each request of the group (image of `seed`) from `target` and
/// writes the answers into `dir`.
pub async fn capture(target: &Target, seed: u64, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut client = Client::new(target);
    let mut index = Vec::new();
    for (i, case) in cases(seed).iter().enumerate() {
        let answer = fetch(&mut client, case).await?;
        let body = format!("{i}.body");
        std::fs::write(dir.join(&body), &answer.body).with_context(|| format!("writing {body}"))?;
        let mut headers = Vec::new();
        for (name, value) in &answer.headers {
            let value = value.to_str().with_context(|| format!("{} {}: header {name}", case.method, case.path))?;
            headers.push(json!([name.as_str(), value]));
        }
        eprintln!("captured {} {}: {}, {} bytes", case.method, case.path, answer.status, answer.body.len());
        index.push(json!({
            "method": case.method.as_str(),
            "path": case.path,
            "status": answer.status.as_u16(),
            "headers": headers,
            "body": body,
        }));
    }
    let text = serde_json::to_string_pretty(&index)?;
    std::fs::write(dir.join(INDEX), text).with_context(|| format!("writing {INDEX}"))
}

/// One recorded answer; its body stays in its file.
struct Recorded {
    status: StatusCode,
    headers: HeaderMap,
    body: PathBuf,
}

type Answers = HashMap<(Method, String), Recorded>;

fn read_answers(dir: &Path) -> anyhow::Result<Answers> {
    let path = dir.join(INDEX);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let index: Vec<Value> = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut answers = HashMap::new();
    for entry in index {
        let field = |name: &str| entry[name].as_str().with_context(|| format!("{INDEX}: an entry without {name}"));
        let method = Method::from_bytes(field("method")?.as_bytes())?;
        let status = StatusCode::from_u16(entry["status"].as_u64().context("an entry without status")? as u16)?;
        let mut headers = HeaderMap::new();
        for pair in entry["headers"].as_array().context("an entry without headers")? {
            let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) else {
                anyhow::bail!("{INDEX}: a header is not [name, value]");
            };
            if !NOT_REPLAYED.contains(&name) {
                headers.append(HeaderName::from_bytes(name.as_bytes())?, HeaderValue::from_str(value)?);
            }
        }
        let recorded = Recorded { status, headers, body: dir.join(field("body")?) };
        answers.insert((method, field("path")?.to_string()), recorded);
    }
    Ok(answers)
}

/// The answer to `req`: the recorded one with its body read now, else 404.
fn answer(answers: &Answers, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let key = (req.method().clone(), req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string());
    let Some(recorded) = answers.get(&key) else {
        return not_found();
    };
    // Inline, as registry-host reads a small file of its storage.
    let Ok(body) = std::fs::read(&recorded.body) else {
        return not_found();
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = recorded.status;
    *response.headers_mut() = recorded.headers.clone();
    response
}

fn not_found() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// Serves the answers of `dir` on `listen` until killed.
pub async fn serve(dir: &Path, listen: SocketAddr) -> anyhow::Result<()> {
    let answers = Arc::new(read_answers(dir)?);
    let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    // registry-host's HTTP/1.1 settings.
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.keep_alive(true).max_header_size(MAX_REQUEST_HEAD).header_read_timeout(None);
    let http1 = Arc::new(http1);
    eprintln!(
        "registry-bench native server on http://{}/ ({} recorded answers)",
        listener.local_addr()?,
        answers.len()
    );
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (answers, http1) = (answers.clone(), http1.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = answer(&answers, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = http1.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

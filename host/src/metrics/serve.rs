//! The operator's address (`--metrics-listen`): `GET /metrics` (Prometheus
//! text format), `GET /health/live` (the process answers) and
//! `GET /health/ready` (the storage answers too: 503 when it does not,
//! within a few seconds), apart from the registry's own address so that
//! it can stay private.

use crate::backend::Backend;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long readiness waits for the storage.
const READY_WITHIN: Duration = Duration::from_secs(5);

/// Serves the operator's endpoints on `listener` for the life of the process.
pub async fn run(listener: TcpListener, storage: Backend, data_dir: PathBuf) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let storage = storage.clone();
        let data_dir = data_dir.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let storage = storage.clone();
                let data_dir = data_dir.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&req, &storage, &data_dir).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(req: &Request<Incoming>, storage: &Backend, data_dir: &std::path::Path) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            match tokio::time::timeout(READY_WITHIN, uploads_in_progress(storage)).await {
                Ok(Ok(count)) => super::set_uploads(count),
                Ok(Err(e)) => tracing::warn!("metrics: counting the uploads in progress: {e}"),
                Err(_) => tracing::warn!("metrics: counting the uploads in progress took over {READY_WITHIN:?}"),
            }
            let mut response = text(StatusCode::OK, super::encode());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            response
        }
        "/health/live" => text(StatusCode::OK, "ok\n".into()),
        "/health/ready" => match tokio::time::timeout(READY_WITHIN, ready(storage, data_dir)).await {
            Ok(Ok(())) => text(StatusCode::OK, "ok\n".into()),
            Ok(Err(why)) => text(StatusCode::SERVICE_UNAVAILABLE, format!("storage: {why}\n")),
            Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, format!("storage: no answer in {READY_WITHIN:?}\n")),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Most uploads counted per scrape: the listing stops there.
const UPLOADS_COUNTED: u64 = 100_000;

/// The uploads the store lists as in progress (at most `UPLOADS_COUNTED`).
async fn uploads_in_progress(storage: &Backend) -> storage_layout::StorageResult<u64> {
    const PAGE: u32 = 1000;
    let mut count = 0;
    let mut after: Option<String> = None;
    while count < UPLOADS_COUNTED {
        let page: Vec<String> = match storage {
            Backend::Fs(fs) => {
                let fs = fs.clone();
                let from = after.clone();
                tokio::task::spawn_blocking(move || fs.blobs.list_uploads(from.as_deref(), PAGE))
                    .await
                    .map_err(|e| storage_layout::StorageError::Other(e.to_string()))??
                    .into_iter()
                    .map(|u| u.id)
                    .collect()
            }
            Backend::S3(s3) => s3.upload_list(after.as_deref(), PAGE).await?.into_iter().map(|u| u.id).collect(),
        };
        count += page.len() as u64;
        if page.len() < PAGE as usize {
            break;
        }
        after = page.last().cloned();
    }
    Ok(count)
}

/// Whether the storage answers: the data directory's metadata can be read,
/// or the bucket can be listed.
async fn ready(storage: &Backend, data_dir: &std::path::Path) -> Result<(), String> {
    match storage {
        Backend::Fs(_) => {
            let kv = data_dir.join("kv");
            tokio::task::spawn_blocking(move || std::fs::read_dir(&kv).map(drop))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("the data directory: {e}"))
        }
        Backend::S3(s3) => s3.answers().await.map_err(|e| e.to_string()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

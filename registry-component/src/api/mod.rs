//! The OCI Distribution API handlers, one module per URL area, and the
//! dispatcher that runs the router's answer.

mod base;
mod blobs;
mod catalog;
mod links;
mod manifests;
mod referrers;
mod tags;
mod uploads;

use crate::error::RegistryError;
use crate::http::{Request, Response};
use crate::router::Route;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

/// What every handler may consult besides the request.
pub struct Ctx {
    /// DELETE requests are allowed (the host's `--disable-delete` clears it).
    pub delete_enabled: bool,
}

impl Ctx {
    fn from_env() -> Ctx {
        let delete_enabled = std::env::var("REGISTRY_DELETE_ENABLED").map_or(true, |v| v != "false");
        Ctx { delete_enabled }
    }

    /// Refuses the request when deletion is turned off.
    fn check_delete(&self) -> Result<(), RegistryError> {
        if self.delete_enabled {
            Ok(())
        } else {
            Err(RegistryError::Unsupported(Some("deletion is disabled on this registry".into())))
        }
    }
}

/// Handles one HTTP request from start to finish.
pub fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let req = Request::from_wasi(request);
    let head = req.method == "HEAD";
    let ctx = Ctx::from_env();
    let response = Route::parse(&req.method, &req.path, req.query.as_deref())
        .and_then(|route| dispatch(&ctx, route, &req))
        .unwrap_or_else(|err| Response::error(&err));
    // A body the handler did not read would make the server close the
    // connection under a client still sending it, losing this answer.
    req.discard_body();
    response.send(out, head);
}

fn dispatch(ctx: &Ctx, route: Route, req: &Request) -> Result<Response, RegistryError> {
    match route {
        Route::Base => base::get(),
        Route::Catalog { n, last } => catalog::list(n, last),
        Route::TagsList { name, n, last } => tags::list(&name, n, last),
        Route::ManifestGet { name, reference } => manifests::get(&name, &reference, req),
        Route::ManifestPut { name, reference, tags } => manifests::put(&name, &reference, &tags, req),
        Route::ManifestDelete { name, reference } => manifests::delete(ctx, &name, &reference),
        Route::BlobGet { name, digest } => blobs::get(&name, &digest, req),
        Route::BlobDelete { name, digest } => blobs::delete(ctx, &name, &digest),
        Route::UploadStart { name, digest, mount, from } => uploads::start(&name, digest, mount, from, req),
        Route::UploadStatus { name, id } => uploads::status(&name, &id),
        Route::UploadPatch { name, id } => uploads::patch(&name, &id, req),
        Route::UploadPut { name, id, digest } => uploads::put(&name, &id, &digest, req),
        Route::UploadDelete { name, id } => uploads::delete(ctx, &name, &id),
        Route::Referrers { name, digest, artifact_type, last } => {
            referrers::list(&name, &digest, artifact_type.as_deref(), last.as_deref())
        }
    }
}

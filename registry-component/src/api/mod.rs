//! The OCI Distribution API handlers, one module per URL area, and the
//! dispatcher that runs the router's answer. Generic over the storage seam
//! (`crate::storage::Storage`), so they run natively under `cargo test`
//! (`tests/`) as well as in the component.

mod base;
pub(crate) mod blobs;
mod catalog;
pub(crate) mod links;
pub(crate) mod manifests;
mod referrers;
mod tags;
mod uploads;

#[cfg(test)]
pub(crate) mod tests;

use crate::auth::{self, Access};
use crate::error::RegistryError;
use crate::gc::{self, GcSettings};
use crate::http::{Request, Response};
use crate::oci::name::RepoName;
use crate::proxy::{self, Fetch, LazyMirrors, Mirror};
use crate::router::Route;
use crate::storage::Storage;

/// What every handler may consult besides the request.
pub struct Ctx<S> {
    /// Where the registry's state lives.
    pub storage: S,
    /// DELETE requests are allowed (the host's `--disable-delete` clears it).
    pub delete_enabled: bool,
    /// Who may do what (`Access::Open` unless access control is configured).
    pub access: Access,
    /// How garbage collections run, or why the settings are unusable:
    /// read only by the requests that need them.
    pub gc: LazyGc,
    /// Which repositories mirror an upstream registry, read on first use.
    pub mirrors: LazyMirrors,
    /// How a mirror reaches its upstream.
    pub upstream: Box<dyn Fetch>,
}

/// No mirrors.
pub fn no_mirrors() -> LazyMirrors {
    std::cell::LazyCell::new(Box::new(|| Ok(None)))
}

/// Garbage-collection settings, read on first use.
pub type LazyGc = std::cell::LazyCell<Result<GcSettings, String>, Box<dyn FnOnce() -> Result<GcSettings, String>>>;

/// Settings known in advance (tests).
pub fn fixed_gc(settings: Result<GcSettings, String>) -> LazyGc {
    std::cell::LazyCell::new(Box::new(move || settings))
}

impl<S> Ctx<S> {
    /// The upstream `repo` mirrors, if it is a mirror.
    fn mirror(&self, repo: &RepoName) -> Result<Option<Mirror<'_>>, RegistryError> {
        match &*self.mirrors {
            Ok(Some(mirrors)) => Ok(mirrors.route(repo.as_str())),
            Ok(None) => Ok(None),
            Err(reason) => {
                eprintln!("registry: the mirror settings are unusable: {reason}");
                Err(RegistryError::internal("the mirror settings are unusable; see the registry's log"))
            }
        }
    }

    /// Refuses a push into a mirror that does not take pushes.
    fn check_push(&self, repo: &RepoName) -> Result<(), RegistryError> {
        match self.mirror(repo)? {
            Some(mirror) if !mirror.upstream.push => Err(RegistryError::Unsupported(Some(format!(
                "{repo} is a mirror of {} (as {}): pushes into it are refused",
                mirror.upstream.url, mirror.remote
            )))),
            _ => Ok(()),
        }
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

/// Answers one request, errors included.
pub fn respond<S: Storage + Clone + 'static>(ctx: &Ctx<S>, req: &mut Request<S::Body>) -> Response<S::Reader>
where
    S::Upload: 'static,
{
    let response = match Route::parse(&req.method, &req.path, req.query.as_deref()) {
        Err(err) => Response::error(&err),
        Ok(route) => match &ctx.access {
            Access::Open if route == Route::Token => {
                Response::error(&RegistryError::NotFound(Some("access control is off: no tokens are needed".into())))
            }
            Access::Open if matches!(route, Route::Gc { .. }) && !(*ctx.gc).as_ref().is_ok_and(|g| g.endpoint) => {
                Response::error(&RegistryError::NotFound(Some(
                    "garbage collection over HTTP is off: set REGISTRY_GC_ENDPOINT=on or turn on access control".into(),
                )))
            }
            Access::Open => answer(ctx, route, req, &|_| true),
            Access::Controlled(gate) if route == Route::Token => gate.token(&ctx.storage, req),
            Access::Controlled(gate) => match gate.admit(&ctx.storage, route, req) {
                Ok(auth::Admitted { route, catalog_user, user }) => gate.name_user(
                    answer(ctx, route, req, &|name| gate.may_list(catalog_user.as_deref(), name)),
                    user.as_deref(),
                ),
                Err(refusal) => refusal,
            },
            Access::Misconfigured(reason) => Response::error(&auth::misconfigured(reason)),
        },
    };
    // A body the handler did not read would make the server close the
    // connection under a client still sending it, losing this answer.
    req.discard_body();
    response
}

fn answer<S: Storage + Clone + 'static>(
    ctx: &Ctx<S>,
    route: Route,
    req: &mut Request<S::Body>,
    visible: &dyn Fn(&str) -> bool,
) -> Response<S::Reader>
where
    S::Upload: 'static,
{
    dispatch(ctx, route, req, visible).unwrap_or_else(|err| Response::error(&err))
}

fn dispatch<S: Storage + Clone + 'static>(
    ctx: &Ctx<S>,
    route: Route,
    req: &mut Request<S::Body>,
    visible: &dyn Fn(&str) -> bool,
) -> Result<Response<S::Reader>, RegistryError>
where
    S::Upload: 'static,
{
    let st = &ctx.storage;
    match route {
        Route::Base => base::get(),
        Route::Token => Err(RegistryError::internal("the token endpoint is answered before dispatch")),
        Route::Gc { step, dry_run } => {
            let settings = (*ctx.gc).as_ref().map_err(|reason| {
                eprintln!("registry: garbage collection is misconfigured: {reason}");
                RegistryError::internal("garbage collection is misconfigured; see the registry's log")
            })?;
            gc::endpoint::respond(st, settings, step, dry_run)
        }
        Route::Catalog { n, last } => catalog::list(st, n, last, visible),
        Route::TagsList { name, n, last } => tags::list(st, &name, n, last),
        Route::ManifestGet { name, reference } => match ctx.mirror(&name)? {
            Some(mirror) => proxy::manifests::get(st, &*ctx.upstream, &mirror, &name, &reference, req),
            None => manifests::get(st, &name, &reference, req),
        },
        Route::ManifestPut { name, reference, tags } => {
            ctx.check_push(&name)?;
            manifests::put(st, &name, &reference, &tags, req)
        }
        Route::ManifestDelete { name, reference } => manifests::delete(ctx, &name, &reference),
        Route::BlobGet { name, digest } => match ctx.mirror(&name)? {
            Some(mirror) if links::blob_size(st, &name, &digest)?.is_none() => {
                proxy::blobs::get(st, &*ctx.upstream, &mirror, &name, &digest, req)
            }
            _ => blobs::get(st, &name, &digest, req),
        },
        Route::BlobDelete { name, digest } => blobs::delete(ctx, &name, &digest),
        Route::UploadStart { name, digest, mount, from } => {
            ctx.check_push(&name)?;
            uploads::start(st, &name, digest, mount, from, req)
        }
        Route::UploadStatus { name, id } => uploads::status(st, &name, &id),
        Route::UploadPatch { name, id } => uploads::patch(st, &name, &id, req),
        Route::UploadPut { name, id, digest } => uploads::put(st, &name, &id, &digest, req),
        Route::UploadDelete { name, id } => uploads::delete(ctx, &name, &id),
        Route::Referrers { name, digest, artifact_type, last } => {
            referrers::list(st, &name, &digest, artifact_type.as_deref(), last.as_deref())
        }
    }
}

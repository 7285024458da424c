//! Pull-through mirrors: repositories (by name prefix) whose content comes
//! from an upstream registry the first time it is asked for, and from
//! here afterwards (`settings` for the configuration). Blobs and manifests
//! by digest are kept for ever (until deleted or collected); tags are
//! checked upstream again after a while. Pushes into a mirror are refused
//! unless its settings allow them.

pub mod blobs;
pub mod manifests;
pub mod settings;
pub mod upstream;

pub use settings::{Mirror, Mirrors};
pub use upstream::{Fetch, Fetched};

use crate::error::RegistryError;
use upstream::UpstreamError;

/// Mirror settings, read on first use.
pub type LazyMirrors =
    std::cell::LazyCell<Result<Option<Mirrors>, String>, Box<dyn FnOnce() -> Result<Option<Mirrors>, String>>>;

/// The error a client sees for an upstream failure: `unknown` (e.g.
/// `BlobUnknown`) when the upstream does not have it.
pub fn from_upstream(e: UpstreamError, unknown: fn(Option<String>) -> RegistryError) -> RegistryError {
    match e {
        UpstreamError::Missing(detail) => unknown(Some(format!("not here, and not upstream: {detail}"))),
        UpstreamError::Down(detail) | UpstreamError::Refused(detail) => RegistryError::UpstreamFailed(detail),
    }
}

/// A fetcher for a registry without upstreams, and for tests that need none.
pub struct NoUpstream;

impl Fetch for NoUpstream {
    fn fetch(&self, _method: &str, url: &str, _headers: &[(&str, &str)]) -> Result<Fetched, String> {
        Err(format!("no outgoing HTTP here to reach {url}"))
    }
}

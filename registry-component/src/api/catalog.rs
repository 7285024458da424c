//! `GET /v2/_catalog[?n=&last=]`: the repositories, as distribution lists them.

use super::tags::list_after;
use crate::error::RegistryError;
use crate::http::Response;
use crate::pagination;
use crate::storage::Storage;
use crate::store::keys;

/// Lists repository names in byte order, paged with `Link`.
pub fn list<S: Storage>(st: &S, n: Option<usize>, last: Option<String>) -> Result<Response<S::Reader>, RegistryError> {
    let after = last.as_deref().map(keys::catalog_after);
    let names = list_after(st, &keys::catalog_prefix(), after.as_deref(), n)?;
    let page = pagination::paginate(names, n, last.as_deref(), "/v2/_catalog");
    let body = serde_json::json!({ "repositories": page.items });
    let mut response = Response::json(200, body.to_string());
    if let Some(link) = page.link {
        response = response.header("Link", link);
    }
    Ok(response)
}

//! `GET /v2/_catalog[?n=&last=]`: the repositories, as distribution lists them.

use super::tags::list_after;
use crate::error::RegistryError;
use crate::http::Response;
use crate::pagination;
use crate::storage::Storage;
use crate::store::keys;

/// Key batches read, at most, to fill one page of names the caller may see.
const MAX_BATCHES: usize = 16;

/// Lists the repository names `visible` lets through, in byte order, paged
/// with `Link`. Names the caller may not pull are skipped, reading further
/// batches to fill the page; when even that many batches do not fill it,
/// the page is cut short and `Link` continues after the last name read.
pub fn list<S: Storage>(
    st: &S,
    n: Option<usize>,
    last: Option<String>,
    visible: impl Fn(&str) -> bool,
) -> Result<Response<S::Reader>, RegistryError> {
    let prefix = keys::catalog_prefix();
    let mut after = last.as_deref().map(keys::catalog_after);
    let want = pagination::fetch_limit(n);
    let mut names = Vec::new();
    let mut cut_at = None;
    for batch in 0.. {
        let read = list_after(st, &prefix, after.as_deref(), n)?;
        let exhausted = read.len() < want;
        let last_read = read.last().cloned();
        names.extend(read.into_iter().filter(|name| visible(name)));
        if exhausted || names.len() >= want {
            break;
        }
        let Some(last_read) = last_read else { break };
        if batch + 1 == MAX_BATCHES {
            cut_at = Some(last_read);
            break;
        }
        after = Some(keys::catalog_after(&last_read));
    }
    let page = pagination::paginate(names, n, last.as_deref(), "/v2/_catalog");
    let link = match (page.link, cut_at) {
        (Some(link), _) => Some(link),
        (None, Some(cut)) => Some(pagination::next_link("/v2/_catalog", pagination::page_size(n), &cut)),
        (None, None) => None,
    };
    let body = serde_json::json!({ "repositories": page.items });
    let mut response = Response::json(200, body.to_string());
    if let Some(link) = link {
        response = response.header("Link", link);
    }
    Ok(response)
}

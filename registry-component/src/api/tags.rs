//! end-8a/8b: `GET /v2/<name>/tags/list[?n=&last=]`.

use super::links;
use crate::error::RegistryError;
use crate::http::Response;
use crate::oci::name::RepoName;
use crate::pagination;
use crate::storage::{Storage, StorageExt};
use crate::store::keys;

/// end-8a/8b: the repository's tags in byte order, paged with `Link`.
pub fn list<S: Storage>(
    st: &S,
    repo: &RepoName,
    n: Option<usize>,
    last: Option<String>,
) -> Result<Response<S::Reader>, RegistryError> {
    if !links::repository_exists(st, repo)? {
        return Err(RegistryError::NameUnknown(Some(format!("repository {repo} is unknown"))));
    }
    let prefix = keys::tags_prefix(repo);
    let after = last.as_deref().map(|last| keys::tags_after(repo, last));
    let names = list_after(st, &prefix, after.as_deref(), n)?;
    let page = pagination::paginate(names, n, last.as_deref(), &format!("/v2/{repo}/tags/list"));
    let body = serde_json::json!({ "name": repo.as_str(), "tags": page.items });
    let mut response = Response::json(200, body.to_string());
    if let Some(link) = page.link {
        response = response.header("Link", link);
    }
    Ok(response)
}

/// The names (keys without `prefix`) after the key `after`, enough for one
/// page of `n` and the check for a next one.
pub fn list_after<S: Storage>(
    st: &S,
    prefix: &str,
    after: Option<&str>,
    n: Option<usize>,
) -> Result<Vec<String>, RegistryError> {
    if pagination::page_size(n) == 0 {
        return Ok(Vec::new());
    }
    let limit = pagination::fetch_limit(n) as u32;
    let keys = st.list(prefix, after, limit)?;
    Ok(keys.into_iter().filter_map(|k| k.strip_prefix(prefix).map(str::to_string)).collect())
}

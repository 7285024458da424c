//! end-12a/12b: `GET /v2/<name>/referrers/<digest>[?artifactType=]`.
//!
//! Manifest PUT keeps an index of descriptors per subject, so listing is a
//! prefix scan of that subject's entries, never a scan of all manifests.

use crate::error::RegistryError;
use crate::http::Response;
use crate::oci::digest::Digest;
use crate::oci::name::RepoName;
use crate::pagination;
use crate::storage;
use crate::store::keys;

/// end-12a/12b: an OCI image index of the manifests whose subject is
/// `digest` (empty, not 404, when there are none).
pub fn list(repo: &RepoName, subject: &Digest, artifact_type: Option<&str>) -> Result<Response, RegistryError> {
    let prefix = keys::referrers_prefix(repo, subject);
    let mut manifests = Vec::new();
    let mut after: Option<String> = None;
    let mut more = false;
    loop {
        let page = storage::list(&prefix, after.as_deref(), pagination::MAX_PAGE_SIZE as u32)?;
        for key in &page {
            let Some(bytes) = storage::get(key)? else { continue };
            let Ok(descriptor) = serde_json::from_slice::<serde_json::Value>(&bytes) else { continue };
            let matches = artifact_type
                .is_none_or(|wanted| descriptor.get("artifactType").and_then(|v| v.as_str()) == Some(wanted));
            if matches {
                manifests.push(descriptor);
            }
        }
        match page.last() {
            Some(last) if page.len() == pagination::MAX_PAGE_SIZE => {
                if manifests.len() >= pagination::MAX_PAGE_SIZE {
                    more = true;
                    break;
                }
                after = Some(last.clone());
            }
            _ => break,
        }
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let mut response = Response::json(200, index.to_string())
        .header("Content-Type", "application/vnd.oci.image.index.v1+json");
    response.headers.retain(|(k, v)| !(k == "Content-Type" && v == "application/json"));
    if artifact_type.is_some() {
        response = response.header("OCI-Filters-Applied", "artifactType");
    }
    // Very long lists are cut at one page; TODO(#3): Link pagination by
    // referrer digest.
    let _ = more;
    Ok(response)
}

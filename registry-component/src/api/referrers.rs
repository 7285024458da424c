//! end-12a/12b: `GET /v2/<name>/referrers/<digest>[?artifactType=]`.
//!
//! Manifest PUT keeps an index of descriptors per subject, so listing is a
//! prefix scan of that subject's entries, never a scan of all manifests.
//! Entries come in referrer-digest order; a list longer than one page ends
//! with a `Link` to the next page, whose `last` is a referrer digest.

use crate::error::RegistryError;
use crate::http::Body;
use crate::http::Response;
use crate::oci::digest::Digest;
use crate::oci::name::RepoName;
use crate::pagination::{self, MAX_PAGE_SIZE};
use crate::storage::{Storage, StorageExt};
use crate::store::keys;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// end-12a/12b: an OCI image index of the manifests whose subject is
/// `subject` (empty, not 404, when there are none).
pub fn list<S: Storage>(
    st: &S,
    repo: &RepoName,
    subject: &Digest,
    artifact_type: Option<&str>,
    last: Option<&str>,
) -> Result<Response<S::Reader>, RegistryError> {
    let prefix = keys::referrers_prefix(repo, subject);
    let mut after = match last {
        Some(last) => Some(last.parse::<Digest>().map(|d| keys::referrer(repo, subject, &d))?),
        None => None,
    };
    let mut manifests = Vec::new();
    let mut next = None;
    'pages: loop {
        let page = st.list(&prefix, after.as_deref(), MAX_PAGE_SIZE as u32)?;
        for key in &page {
            if manifests.len() == MAX_PAGE_SIZE {
                next = after.as_deref().and_then(|k| keys::referrer_from_key(repo, subject, k));
                break 'pages;
            }
            after = Some(key.clone());
            let Some(bytes) = st.get(key)? else { continue };
            let Ok(descriptor) = serde_json::from_slice::<serde_json::Value>(&bytes) else { continue };
            let wanted = artifact_type
                .is_none_or(|wanted| descriptor.get("artifactType").and_then(|v| v.as_str()) == Some(wanted));
            if wanted {
                manifests.push(descriptor);
            }
        }
        if page.len() < MAX_PAGE_SIZE {
            break;
        }
    }
    let index = serde_json::json!({ "schemaVersion": 2, "mediaType": INDEX, "manifests": manifests });
    let mut response =
        Response::new(200).header("Content-Type", INDEX).body(Body::Bytes(index.to_string().into_bytes()));
    let mut path = format!("/v2/{repo}/referrers/{subject}");
    if let Some(artifact_type) = artifact_type {
        response = response.header("OCI-Filters-Applied", "artifactType");
        path = format!("{path}?artifactType={}", pagination::percent_encode(artifact_type));
    }
    if let Some(next) = next {
        response = response.header("Link", pagination::next_link(&path, MAX_PAGE_SIZE, next.as_str()));
    }
    Ok(response)
}

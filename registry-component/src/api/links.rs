//! Which repository may see which blob and manifest. Bytes are stored once
//! for the whole registry; a repository sees them only through its links.
//! Linking also keeps the catalog current. Bytes are deleted only when no
//! repository links them any more, which `release` finds by walking the
//! catalog: deletes are rare, pushes are not, so pushes write no reverse
//! index (each kv write is an fsync).

use crate::error::RegistryError;
use crate::oci::digest::Digest;
use crate::oci::name::RepoName;
use crate::oci::reference::Reference;
use crate::storage::{Storage, StorageExt};
use crate::store::keys;
use serde::{Deserialize, Serialize};

/// What a repository records about one of its manifests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestLink {
    /// The media type it was pushed with (sent back as Content-Type).
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The manifest it refers to, if any (kept to clean up referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// The size of `digest` if the blob is linked into `repo` and stored.
pub fn blob_size<S: Storage>(st: &S, repo: &RepoName, digest: &Digest) -> Result<Option<u64>, RegistryError> {
    if !st.exists(&keys::blob_link(repo, digest))? {
        return Ok(None);
    }
    st.blob_size(digest)
}

/// Makes a stored blob visible in `repo` (a no-op when it already is).
pub fn link_blob<S: Storage>(st: &S, repo: &RepoName, digest: &Digest) -> Result<(), RegistryError> {
    st.set_if_absent(&keys::blob_link(repo, digest), b"")?;
    ensure_repository(st, repo)
}

/// The manifest `digest` of `repo`, if linked.
pub fn manifest<S: Storage>(st: &S, repo: &RepoName, digest: &Digest) -> Result<Option<ManifestLink>, RegistryError> {
    let Some(bytes) = st.get(&keys::manifest_link(repo, digest))? else { return Ok(None) };
    let link = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::internal(format!("corrupt manifest link for {digest}: {e}")))?;
    Ok(Some(link))
}

/// Makes a stored manifest visible in `repo`.
pub fn link_manifest<S: Storage>(
    st: &S,
    repo: &RepoName,
    digest: &Digest,
    link: &ManifestLink,
) -> Result<(), RegistryError> {
    let value = serde_json::to_vec(link).map_err(|e| RegistryError::internal(e.to_string()))?;
    st.set(&keys::manifest_link(repo, digest), &value)?;
    ensure_repository(st, repo)
}

/// Resolves a tag or digest to a linked manifest.
pub fn resolve<S: Storage>(
    st: &S,
    repo: &RepoName,
    reference: &Reference,
) -> Result<Option<(Digest, ManifestLink)>, RegistryError> {
    let digest = match reference {
        Reference::Digest(digest) => digest.clone(),
        Reference::Tag(tag) => match st.get(&keys::tag(repo, tag))? {
            Some(bytes) => String::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse::<Digest>().ok())
                .ok_or_else(|| RegistryError::internal(format!("corrupt tag {tag}")))?,
            None => return Ok(None),
        },
    };
    Ok(manifest(st, repo, &digest)?.map(|link| (digest, link)))
}

/// Records that `repo` exists (for the catalog).
pub fn ensure_repository<S: Storage>(st: &S, repo: &RepoName) -> Result<(), RegistryError> {
    st.set_if_absent(&keys::catalog(repo), b"")?;
    Ok(())
}

/// Whether `repo` has ever been pushed to.
pub fn repository_exists<S: Storage>(st: &S, repo: &RepoName) -> Result<bool, RegistryError> {
    st.exists(&keys::catalog(repo))
}

/// After a link of `digest` in `repo` was removed: deletes the bytes when
/// no repository links them as a blob or a manifest any more.
pub fn release<S: Storage>(st: &S, digest: &Digest) -> Result<(), RegistryError> {
    let prefix = keys::catalog_prefix();
    let mut after: Option<String> = None;
    loop {
        let page = st.list(&prefix, after.as_deref(), 1000)?;
        for key in &page {
            let Some(repo) = keys::name_from_catalog_key(key) else { continue };
            if st.exists(&keys::blob_link(&repo, digest))? || st.exists(&keys::manifest_link(&repo, digest))? {
                return Ok(());
            }
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = Some(last.clone()),
            _ => break,
        }
    }
    st.blob_remove(digest)?;
    Ok(())
}

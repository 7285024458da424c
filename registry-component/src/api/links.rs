//! Which repository may see which blob and manifest. Bytes are stored once
//! for the whole registry; a repository sees them only through its links.
//! Linking also keeps the catalog current. Deletes remove links only: the
//! bytes leave with a garbage collection (`crate::gc`), which is what may
//! decide that nothing uses them any more without racing a push.

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
    /// When it was last pushed, seconds since the epoch: a collection that
    /// removes untagged manifests spares those younger than its grace
    /// period. Links written before it existed have none (old).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<u64>,
}

/// The size of `digest` if the blob is linked into `repo` and stored.
pub fn blob_size<S: Storage>(st: &S, repo: &RepoName, digest: &Digest) -> Result<Option<u64>, RegistryError> {
    if !st.exists(&keys::blob_link(repo, digest))? {
        return Ok(None);
    }
    st.blob_size(digest)
}

/// Whether `digest` is linked into `repo` and stored, touching the bytes
/// first (`wit/blobs.wit`'s `touch`) so that a collection running now
/// keeps them: for a push that is about to rely on the blob.
pub fn blob_in_use<S: Storage>(st: &S, repo: &RepoName, digest: &Digest) -> Result<bool, RegistryError> {
    // Touch, then look for the link: a collection removes a link only
    // after the bytes are gone, then looks at the bytes again.
    Ok(st.blob_touch(digest.as_str())? && st.exists(&keys::blob_link(repo, digest))?)
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

//! The fence between a collection that removes untagged manifests of a
//! repository and a push to that repository.
//!
//! The collection writes the fence, then re-reads each link it means to
//! remove and removes it only if its version is the one it judged. A push
//! writes its link and tags, then reads the fence. Whichever order the two
//! run in, either the collection sees the push's new version and keeps the
//! link, or the push sees the fence, waits for the collection's step on
//! the repository to end, and puts back its link if it was removed.

use crate::error::RegistryError;
use crate::oci::name::RepoName;
use crate::storage::{Storage, StorageExt};
use crate::store::keys;
use std::time::Duration;

/// A fence older than this was left by a collection that stopped (a crash,
/// a platform's CPU limit): pushes no longer wait for it.
pub const STALE_AFTER_SECS: u64 = 60;

/// How long a push waits for a fence, in all, and between looks.
const WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

/// Raises the fence on `repo`.
pub fn raise<S: Storage>(st: &S, repo: &RepoName) -> Result<(), RegistryError> {
    let now = super::seconds(st.now());
    st.set(&keys::gc_fence(repo), now.to_string().as_bytes())
}

/// Lowers it.
pub fn lower<S: Storage>(st: &S, repo: &RepoName) -> Result<(), RegistryError> {
    st.delete(&keys::gc_fence(repo))?;
    Ok(())
}

/// For a push that has written its link and tags: whether a collection was
/// removing manifests of `repo` meanwhile, in which case it has waited
/// until that step ended (or the fence went stale) and the caller must
/// check its link survived.
pub fn wait<S: Storage>(st: &S, repo: &RepoName) -> Result<bool, RegistryError> {
    let mut seen = false;
    for _ in 0..(WAIT.as_millis() / POLL.as_millis()) {
        let Some(since) = st.get(&keys::gc_fence(repo))? else { return Ok(seen) };
        let since = String::from_utf8_lossy(&since).parse::<u64>().unwrap_or(0);
        seen = true;
        if super::seconds(st.now()).saturating_sub(since) > STALE_AFTER_SECS {
            break;
        }
        st.pause(POLL);
    }
    Ok(seen)
}

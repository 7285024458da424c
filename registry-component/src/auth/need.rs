//! What each route needs from the caller.

use crate::oci::name::RepoName;
use crate::router::Route;
use registry_auth::{Actions, Scope};

/// The access a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// `GET /v2/`: any signed-in client (how clients check credentials).
    SignedIn,
    /// `GET /v2/_catalog`: lists what the caller may pull.
    Catalog,
    /// `/_registry/gc`: an admin of the policy, signed in with Basic
    /// credentials (tokens carry repository scopes, not this).
    Admin,
    /// Actions on one repository.
    Repository {
        /// The repository.
        name: RepoName,
        /// What must be granted on it.
        actions: Actions,
    },
}

impl Need {
    /// The need of `route`. A mount's source is checked separately
    /// (`super::admit`): without pull there, the mount becomes an upload.
    pub fn of(route: &Route) -> Need {
        use Route::*;
        let repo = |name: &RepoName, actions| Need::Repository { name: name.clone(), actions };
        match route {
            Base | Token => Need::SignedIn,
            Catalog { .. } => Need::Catalog,
            Gc { .. } => Need::Admin,
            TagsList { name, .. } | ManifestGet { name, .. } | BlobGet { name, .. } | Referrers { name, .. } => {
                repo(name, Actions::PULL)
            }
            ManifestPut { name, .. }
            | UploadStart { name, .. }
            | UploadStatus { name, .. }
            | UploadPatch { name, .. }
            | UploadPut { name, .. }
            | UploadDelete { name, .. } => repo(name, Actions::PUSH),
            ManifestDelete { name, .. } | BlobDelete { name, .. } => repo(name, Actions::DELETE),
        }
    }

    /// The scope a challenge asks the client to get a token for. Pushes
    /// ask for `pull,push`, as Docker's clients do, so that one token
    /// serves the blob checks of the same push.
    pub fn scope(&self) -> Option<Scope> {
        match self {
            Need::SignedIn | Need::Admin => None,
            Need::Catalog => Some(Scope::Catalog),
            Need::Repository { name, actions } => {
                let actions = if actions.contains(Actions::PUSH) { actions.union(Actions::PULL) } else { *actions };
                Some(Scope::Repository { name: name.to_string(), actions })
            }
        }
    }
}

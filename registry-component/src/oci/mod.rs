//! OCI value types, parsed at the edge so that code past the router never
//! handles a raw `&str`.
//!
//! Spec: OCI distribution-spec v1.1 (names, references, digests) and OCI
//! image-spec v1.1 (manifests, indexes, descriptors).

pub mod digest;
pub mod manifest;
pub mod name;
pub mod reference;
pub mod upload_id;

pub use digest::Digest;
pub use manifest::{ManifestKind, ParsedManifest};
pub use name::RepoName;
pub use reference::{Reference, Tag};
pub use upload_id::UploadId;

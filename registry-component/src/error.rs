//! `RegistryError`: every failure a handler can answer with, and the only
//! place that maps failures to an OCI error code, HTTP status and JSON body.
//!
//! Spec: OCI distribution-spec v1.1 "Error Codes" (code-1 … code-14): the
//! body is `{"errors":[{"code","message","detail"}]}` and `code` MUST be one
//! of the fourteen spec codes. Situations the spec has no code for are their
//! own variants here (so handlers say what happened) but are reported under
//! the closest spec code; only `Internal` and the storage's `StorageFull`
//! and `StorageUnavailable` use `UNKNOWN`,
//! the code clients are told to assume for anything they do not know
//! (distribution does the same).

use std::fmt;

use crate::oci::digest::DigestError;
use crate::oci::manifest::ManifestError;
use crate::oci::name::NameError;
use crate::oci::reference::{ReferenceError, TagError};
use crate::oci::upload_id::UploadIdError;
use crate::range::{ContentRangeError, RangeNotSatisfiable};

/// A failed request. Each variant carries an optional human-readable detail
/// that goes into the JSON `detail` field (`null` when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// code-1 `BLOB_UNKNOWN`, 404: the blob is not in this repository.
    BlobUnknown(Option<String>),
    /// code-2 `BLOB_UPLOAD_INVALID`, 400: a malformed upload request
    /// (e.g. an unreadable `Content-Range`).
    BlobUploadInvalid(Option<String>),
    /// code-3 `BLOB_UPLOAD_UNKNOWN`, 404: no such upload session.
    BlobUploadUnknown(Option<String>),
    /// code-4 `DIGEST_INVALID`, 400: a malformed digest, or content that
    /// does not hash to the given digest.
    DigestInvalid(Option<String>),
    /// code-5 `MANIFEST_BLOB_UNKNOWN`, 400 (as distribution): a pushed
    /// manifest references a blob or manifest the repository lacks.
    ManifestBlobUnknown(Option<String>),
    /// code-6 `MANIFEST_INVALID`, 400: a manifest that cannot be accepted.
    ManifestInvalid(Option<String>),
    /// code-7 `MANIFEST_UNKNOWN`, 404: no manifest under that reference.
    ManifestUnknown(Option<String>),
    /// code-8 `NAME_INVALID`, 400: a malformed repository name.
    NameInvalid(Option<String>),
    /// code-9 `NAME_UNKNOWN`, 404: no such repository.
    NameUnknown(Option<String>),
    /// code-10 `SIZE_INVALID`, 400: `Content-Length` or a range length does
    /// not match the bytes received.
    SizeInvalid(Option<String>),
    /// code-11 `UNAUTHORIZED`, 401.
    Unauthorized(Option<String>),
    /// code-12 `DENIED`, 403.
    Denied(Option<String>),
    /// code-13 `UNSUPPORTED`, 405: an operation this registry has disabled,
    /// such as deletion (the spec allows 400 or 405 there; 405 says "this
    /// method, here, is off" most precisely).
    Unsupported(Option<String>),
    /// code-14 `TOOMANYREQUESTS`, 429.
    TooManyRequests(Option<String>),

    /// 400 `TAG_INVALID`: a tag outside the spec's grammar. Spec v1.1 lists
    /// no code for it; distribution's `TAG_INVALID` is what Docker clients
    /// know, so a malformed tag anywhere (PUT, GET, `?tag=`) gets it.
    TagInvalid(Option<String>),
    /// 416, reported as `BLOB_UPLOAD_INVALID`: a chunk out of order (PATCH,
    /// spec-mandated 416) or a blob `Range` past the end. For a blob GET the
    /// handler adds `Content-Range: bytes */<size>`.
    RangeNotSatisfiable(Option<String>),
    /// 413 (the spec's status for an oversized manifest), reported as
    /// `MANIFEST_INVALID`: the manifest body exceeds the size limit. Not
    /// `SIZE_INVALID`, whose meaning is "length did not match content"; zot
    /// also answers 413 with `MANIFEST_INVALID`.
    ManifestTooLarge(Option<String>),
    /// 400, reported as `UNSUPPORTED`, whose spec description covers "an
    /// invalid set of parameters": a malformed query parameter such as a
    /// non-numeric `n`.
    InvalidParameter(Option<String>),
    /// 405, reported as `UNSUPPORTED`: a known path with a method it does
    /// not take. `allow` is the value for the `Allow` header.
    MethodNotAllowed {
        /// Methods the path accepts, e.g. `"GET, HEAD"`.
        allow: &'static str,
    },
    /// 404, reported as `NAME_UNKNOWN` (no spec code names "no such
    /// endpoint"; clients treat a 404 on an unknown path as "not here").
    NotFound(Option<String>),
    /// 507 Insufficient Storage, reported as `UNKNOWN`: the store has no
    /// room for the write. A 5xx, because the client did nothing wrong and
    /// should retry later (a 4xx tells docker and containerd not to), and
    /// the message names the cause.
    StorageFull,
    /// 503 Service Unavailable, reported as `UNKNOWN`: the store could not
    /// be reached or did not answer in time (a remote object store down).
    /// The string, what failed, becomes the detail. Clients retry a 5xx.
    StorageUnavailable(String),
    /// 502 Bad Gateway, reported as `UNKNOWN`: a mirror's upstream registry
    /// could not be reached, failed, or sent something unusable. The string,
    /// what failed, becomes the detail. Clients retry a 5xx.
    UpstreamFailed(String),
    /// 500, reported as `UNKNOWN`: a storage or internal failure. The string
    /// becomes the detail.
    Internal(String),
}

impl RegistryError {
    /// An `Internal` (500) error with `detail`.
    pub fn internal(detail: impl Into<String>) -> Self {
        RegistryError::Internal(detail.into())
    }

    /// (status, code, spec message) of this error: the single mapping table.
    fn descriptor(&self) -> (u16, &'static str, &'static str) {
        use RegistryError::*;
        match self {
            BlobUnknown(_) => (404, "BLOB_UNKNOWN", "blob unknown to registry"),
            BlobUploadInvalid(_) => (400, "BLOB_UPLOAD_INVALID", "blob upload invalid"),
            BlobUploadUnknown(_) => (404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"),
            DigestInvalid(_) => (400, "DIGEST_INVALID", "provided digest did not match uploaded content"),
            ManifestBlobUnknown(_) => {
                (400, "MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry")
            }
            ManifestInvalid(_) => (400, "MANIFEST_INVALID", "manifest invalid"),
            ManifestUnknown(_) => (404, "MANIFEST_UNKNOWN", "manifest unknown to registry"),
            NameInvalid(_) => (400, "NAME_INVALID", "invalid repository name"),
            NameUnknown(_) => (404, "NAME_UNKNOWN", "repository name not known to registry"),
            SizeInvalid(_) => (400, "SIZE_INVALID", "provided length did not match content length"),
            Unauthorized(_) => (401, "UNAUTHORIZED", "authentication required"),
            Denied(_) => (403, "DENIED", "requested access to the resource is denied"),
            Unsupported(_) => (405, "UNSUPPORTED", "the operation is unsupported"),
            TooManyRequests(_) => (429, "TOOMANYREQUESTS", "too many requests"),
            TagInvalid(_) => (400, "TAG_INVALID", "manifest tag did not match URI"),
            RangeNotSatisfiable(_) => (416, "BLOB_UPLOAD_INVALID", "blob upload invalid"),
            ManifestTooLarge(_) => (413, "MANIFEST_INVALID", "manifest invalid"),
            InvalidParameter(_) => (400, "UNSUPPORTED", "the operation is unsupported"),
            MethodNotAllowed { .. } => (405, "UNSUPPORTED", "the operation is unsupported"),
            NotFound(_) => (404, "NAME_UNKNOWN", "repository name not known to registry"),
            StorageFull => (507, "UNKNOWN", "insufficient storage: the registry has no space left"),
            StorageUnavailable(_) => (503, "UNKNOWN", "service unavailable: the registry's storage does not answer"),
            UpstreamFailed(_) => (502, "UNKNOWN", "bad gateway: the upstream registry of this mirror failed"),
            Internal(_) => (500, "UNKNOWN", "unknown error"),
        }
    }

    /// The HTTP status code of the response.
    pub fn status(&self) -> u16 {
        self.descriptor().0
    }

    /// The OCI error code, e.g. `"BLOB_UNKNOWN"`.
    pub fn code(&self) -> &'static str {
        self.descriptor().1
    }

    /// The spec's message for [`Self::code`].
    pub fn message(&self) -> &'static str {
        self.descriptor().2
    }

    /// The detail, if any.
    pub fn detail(&self) -> Option<&str> {
        use RegistryError::*;
        match self {
            BlobUnknown(d)
            | BlobUploadInvalid(d)
            | BlobUploadUnknown(d)
            | DigestInvalid(d)
            | ManifestBlobUnknown(d)
            | ManifestInvalid(d)
            | ManifestUnknown(d)
            | NameInvalid(d)
            | NameUnknown(d)
            | SizeInvalid(d)
            | Unauthorized(d)
            | Denied(d)
            | Unsupported(d)
            | TooManyRequests(d)
            | TagInvalid(d)
            | RangeNotSatisfiable(d)
            | ManifestTooLarge(d)
            | InvalidParameter(d)
            | NotFound(d) => d.as_deref(),
            MethodNotAllowed { allow } => Some(allow),
            StorageFull => Some("nothing of this request was kept; retry once space is freed"),
            StorageUnavailable(d) | UpstreamFailed(d) | Internal(d) => Some(d),
        }
    }

    /// The `Allow` header value a 405 response must carry (RFC 9110 §15.5.6).
    pub fn allow(&self) -> Option<&'static str> {
        match self {
            RegistryError::MethodNotAllowed { allow } => Some(allow),
            _ => None,
        }
    }

    /// The response body: `{"errors":[{"code":…,"message":…,"detail":…}]}`,
    /// with `detail` a string or `null`. Send it as `application/json`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "errors": [{
                "code": self.code(),
                "message": self.message(),
                "detail": self.detail(),
            }]
        })
        .to_string()
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status(), self.code(), self.message())?;
        if let Some(detail) = self.detail() {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RegistryError {}

impl From<DigestError> for RegistryError {
    fn from(e: DigestError) -> Self {
        RegistryError::DigestInvalid(Some(e.to_string()))
    }
}

impl From<NameError> for RegistryError {
    fn from(e: NameError) -> Self {
        RegistryError::NameInvalid(Some(e.to_string()))
    }
}

impl From<TagError> for RegistryError {
    fn from(e: TagError) -> Self {
        RegistryError::TagInvalid(Some(e.to_string()))
    }
}

impl From<ReferenceError> for RegistryError {
    fn from(e: ReferenceError) -> Self {
        match e {
            ReferenceError::Tag(e) => e.into(),
            ReferenceError::Digest(e) => e.into(),
        }
    }
}

impl From<UploadIdError> for RegistryError {
    fn from(e: UploadIdError) -> Self {
        RegistryError::BlobUploadUnknown(Some(e.to_string()))
    }
}

impl From<ManifestError> for RegistryError {
    fn from(e: ManifestError) -> Self {
        RegistryError::ManifestInvalid(Some(e.detail().to_owned()))
    }
}

impl From<ContentRangeError> for RegistryError {
    fn from(e: ContentRangeError) -> Self {
        RegistryError::BlobUploadInvalid(Some(e.to_string()))
    }
}

impl From<RangeNotSatisfiable> for RegistryError {
    fn from(e: RangeNotSatisfiable) -> Self {
        RegistryError::RangeNotSatisfiable(Some(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each variant, for table checks.
    fn all() -> Vec<RegistryError> {
        use RegistryError::*;
        vec![
            BlobUnknown(None),
            BlobUploadInvalid(None),
            BlobUploadUnknown(None),
            DigestInvalid(None),
            ManifestBlobUnknown(None),
            ManifestInvalid(None),
            ManifestUnknown(None),
            NameInvalid(None),
            NameUnknown(None),
            SizeInvalid(None),
            Unauthorized(None),
            Denied(None),
            Unsupported(None),
            TooManyRequests(None),
            RangeNotSatisfiable(None),
            ManifestTooLarge(None),
            InvalidParameter(None),
            MethodNotAllowed { allow: "GET" },
            NotFound(None),
            UpstreamFailed("down".into()),
            Internal("boom".into()),
        ]
    }

    #[test]
    fn statuses_and_codes() {
        let table: Vec<(u16, &str)> = all().iter().map(|e| (e.status(), e.code())).collect();
        assert_eq!(
            table,
            vec![
                (404, "BLOB_UNKNOWN"),
                (400, "BLOB_UPLOAD_INVALID"),
                (404, "BLOB_UPLOAD_UNKNOWN"),
                (400, "DIGEST_INVALID"),
                (400, "MANIFEST_BLOB_UNKNOWN"),
                (400, "MANIFEST_INVALID"),
                (404, "MANIFEST_UNKNOWN"),
                (400, "NAME_INVALID"),
                (404, "NAME_UNKNOWN"),
                (400, "SIZE_INVALID"),
                (401, "UNAUTHORIZED"),
                (403, "DENIED"),
                (405, "UNSUPPORTED"),
                (429, "TOOMANYREQUESTS"),
                (416, "BLOB_UPLOAD_INVALID"),
                (413, "MANIFEST_INVALID"),
                (400, "UNSUPPORTED"),
                (405, "UNSUPPORTED"),
                (404, "NAME_UNKNOWN"),
                (502, "UNKNOWN"),
                (500, "UNKNOWN"),
            ]
        );
    }

    #[test]
    fn codes_are_spec_codes_or_unknown() {
        const SPEC: [&str; 14] = [
            "BLOB_UNKNOWN",
            "BLOB_UPLOAD_INVALID",
            "BLOB_UPLOAD_UNKNOWN",
            "DIGEST_INVALID",
            "MANIFEST_BLOB_UNKNOWN",
            "MANIFEST_INVALID",
            "MANIFEST_UNKNOWN",
            "NAME_INVALID",
            "NAME_UNKNOWN",
            "SIZE_INVALID",
            "UNAUTHORIZED",
            "DENIED",
            "UNSUPPORTED",
            "TOOMANYREQUESTS",
        ];
        for e in all() {
            assert!(SPEC.contains(&e.code()) || e.code() == "UNKNOWN", "{e:?}");
            assert!(!e.message().is_empty());
        }
    }

    #[test]
    fn json_envelope_with_and_without_detail() {
        let v: serde_json::Value = serde_json::from_str(&RegistryError::BlobUnknown(None).to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"errors":[{
                "code":"BLOB_UNKNOWN",
                "message":"blob unknown to registry",
                "detail":null}]})
        );
        let e = RegistryError::NameInvalid(Some("quote \" and \\ and \n".into()));
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["errors"][0]["detail"], "quote \" and \\ and \n");
        assert_eq!(v["errors"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn internal_and_method_not_allowed_details() {
        let e = RegistryError::internal("kv: disk full");
        assert_eq!(e, RegistryError::Internal("kv: disk full".into()));
        assert_eq!(e.detail(), Some("kv: disk full"));
        assert_eq!(e.allow(), None);
        let e = RegistryError::MethodNotAllowed { allow: "GET, HEAD" };
        assert_eq!(e.allow(), Some("GET, HEAD"));
        assert_eq!(e.detail(), Some("GET, HEAD"));
    }

    #[test]
    fn display_mentions_code_and_detail() {
        let e = RegistryError::ManifestUnknown(Some("latest".into()));
        assert_eq!(e.to_string(), "404 MANIFEST_UNKNOWN: manifest unknown to registry (latest)");
        assert_eq!(RegistryError::Denied(None).to_string(), "403 DENIED: requested access to the resource is denied");
    }

    #[test]
    fn conversions_from_parse_errors() {
        use crate::oci::{Digest, Reference, RepoName, Tag, UploadId};
        let e: RegistryError = "x".parse::<Digest>().unwrap_err().into();
        assert_eq!(e.code(), "DIGEST_INVALID");
        assert!(e.detail().unwrap().contains("invalid digest"));
        let e: RegistryError = "X".parse::<RepoName>().unwrap_err().into();
        assert_eq!(e.code(), "NAME_INVALID");
        let e: RegistryError = ".x".parse::<Tag>().unwrap_err().into();
        assert_eq!((e.status(), e.code()), (400, "TAG_INVALID"));
        let e: RegistryError = ".x".parse::<Reference>().unwrap_err().into();
        assert_eq!(e.code(), "TAG_INVALID");
        let e: RegistryError = "a:b".parse::<Reference>().unwrap_err().into();
        assert_eq!(e.code(), "DIGEST_INVALID");
        let e: RegistryError = "XYZ".parse::<UploadId>().unwrap_err().into();
        assert_eq!((e.status(), e.code()), (404, "BLOB_UPLOAD_UNKNOWN"));
        let e: RegistryError = crate::oci::manifest::parse(None, b"[]").unwrap_err().into();
        assert_eq!(e.code(), "MANIFEST_INVALID");
        assert_eq!(e.detail(), Some("body must be a JSON object"));
        let e: RegistryError = crate::range::parse_content_range("x").unwrap_err().into();
        assert_eq!((e.status(), e.code()), (400, "BLOB_UPLOAD_INVALID"));
        let e: RegistryError = crate::range::parse_range("bytes=9-", 1).unwrap_err().into();
        assert_eq!((e.status(), e.code()), (416, "BLOB_UPLOAD_INVALID"));
    }

    #[test]
    fn question_mark_works_in_handlers() {
        fn handler(s: &str) -> Result<String, RegistryError> {
            let name: crate::oci::RepoName = s.parse()?;
            Ok(name.to_string())
        }
        assert_eq!(handler("ok").unwrap(), "ok");
        assert_eq!(handler("NO").unwrap_err().status(), 400);
    }
}

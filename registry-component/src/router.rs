//! Routing: a pure function from (method, path, query) to a typed [`Route`].
//!
//! Spec: OCI distribution-spec v1.1 "Endpoints" (end-1 … end-13), plus
//! distribution's `GET /v2/_catalog`.
//!
//! `<name>` may itself contain `/` (and components such as `blobs` or
//! `manifests`), so the path is matched from the right: the last one to
//! three segments pick the endpoint, everything before them is the name.
//! `/v2/a/blobs/uploads/` is thus an upload of `a`, while
//! `/v2/a/manifests/blobs/uploads/` is an upload of `a/manifests`.
//!
//! Order of checks: unknown path → `NotFound` (404); known path, other
//! method → `MethodNotAllowed` (405); then the parts are parsed, each error
//! mapped to its spec code, except that a `GET`/`HEAD` of a manifest whose
//! reference is neither a tag nor a digest is 404 `MANIFEST_UNKNOWN`
//! (nothing can exist under it; a `PUT` to it is 400). Path segments are used as sent (not
//! percent-decoded: no valid name, tag or upload id contains `%`), except
//! that `%3A` in a digest or manifest reference is read as `:`, because some
//! clients encode it.
//!
//! Unknown query parameters are ignored (containerd, for one, adds `ns=`).

use crate::error::RegistryError;
use crate::oci::{Digest, Reference, RepoName, Tag, UploadId};

/// A recognised request. `GET` and `HEAD` share a variant (the handler
/// answers `HEAD` with the `GET` headers and no body), so the handler must
/// look at the request method only for that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// end-1: `GET`/`HEAD /v2/` (also `/v2`).
    Base,
    /// `GET`/`POST /token`: the token endpoint of Docker's token flow
    /// (`crate::auth::token_endpoint`), when access control is on.
    Token,
    /// `GET`/`POST /_registry/gc[?dry-run=true]`: the garbage collection's
    /// state, or one step of it (`crate::gc`). Not part of the OCI API.
    Gc {
        /// `POST`: take a step (starting a run if none is in progress).
        step: bool,
        /// A run started by this request removes nothing.
        dry_run: bool,
    },
    /// `GET /v2/_catalog?n=&last=` (distribution extension).
    Catalog {
        /// Requested page size.
        n: Option<usize>,
        /// Return names strictly after this one.
        last: Option<String>,
    },
    /// end-8a/8b: `GET /v2/<name>/tags/list?n=&last=`.
    TagsList {
        /// Repository.
        name: RepoName,
        /// Requested page size.
        n: Option<usize>,
        /// Return tags strictly after this one.
        last: Option<String>,
    },
    /// end-3: `GET`/`HEAD /v2/<name>/manifests/<reference>`.
    ManifestGet {
        /// Repository.
        name: RepoName,
        /// Tag or digest.
        reference: Reference,
    },
    /// end-7: `PUT /v2/<name>/manifests/<reference>?tag=…&tag=…`.
    ManifestPut {
        /// Repository.
        name: RepoName,
        /// Tag or digest to push under.
        reference: Reference,
        /// Extra tags from repeated `tag=` parameters, in order.
        tags: Vec<Tag>,
    },
    /// end-9: `DELETE /v2/<name>/manifests/<reference>`.
    ManifestDelete {
        /// Repository.
        name: RepoName,
        /// Tag (untag) or digest (delete manifest).
        reference: Reference,
    },
    /// end-2: `GET`/`HEAD /v2/<name>/blobs/<digest>`.
    BlobGet {
        /// Repository.
        name: RepoName,
        /// Blob digest.
        digest: Digest,
    },
    /// end-10: `DELETE /v2/<name>/blobs/<digest>`.
    BlobDelete {
        /// Repository.
        name: RepoName,
        /// Blob digest.
        digest: Digest,
    },
    /// end-4a/4b/11: `POST /v2/<name>/blobs/uploads/` (slash optional).
    UploadStart {
        /// Repository.
        name: RepoName,
        /// end-4b: monolithic upload of the request body with this digest.
        digest: Option<Digest>,
        /// end-11: blob to mount.
        mount: Option<Digest>,
        /// end-11: repository to mount from (may be absent: the registry
        /// MAY then look for the blob itself).
        from: Option<RepoName>,
    },
    /// end-13: `GET /v2/<name>/blobs/uploads/<id>`: upload status.
    UploadStatus {
        /// Repository.
        name: RepoName,
        /// Upload session.
        id: UploadId,
    },
    /// end-5: `PATCH /v2/<name>/blobs/uploads/<id>`: append a chunk.
    UploadPatch {
        /// Repository.
        name: RepoName,
        /// Upload session.
        id: UploadId,
    },
    /// end-6: `PUT /v2/<name>/blobs/uploads/<id>?digest=`: finish.
    UploadPut {
        /// Repository.
        name: RepoName,
        /// Upload session.
        id: UploadId,
        /// Digest of the whole blob (REQUIRED).
        digest: Digest,
    },
    /// `DELETE /v2/<name>/blobs/uploads/<id>`: cancel the upload.
    UploadDelete {
        /// Repository.
        name: RepoName,
        /// Upload session.
        id: UploadId,
    },
    /// end-12a/12b: `GET /v2/<name>/referrers/<digest>?artifactType=`.
    Referrers {
        /// Repository.
        name: RepoName,
        /// Subject digest.
        digest: Digest,
        /// Filter on this artifact type, if requested.
        artifact_type: Option<String>,
        /// Continue after this referrer digest (the `Link` of a previous page).
        last: Option<String>,
    },
}

impl Route {
    /// The repository the route acts on, if any.
    pub fn name(&self) -> Option<&RepoName> {
        use Route::*;
        match self {
            Base | Token | Gc { .. } | Catalog { .. } => None,
            TagsList { name, .. }
            | ManifestGet { name, .. }
            | ManifestPut { name, .. }
            | ManifestDelete { name, .. }
            | BlobGet { name, .. }
            | BlobDelete { name, .. }
            | UploadStart { name, .. }
            | UploadStatus { name, .. }
            | UploadPatch { name, .. }
            | UploadPut { name, .. }
            | UploadDelete { name, .. }
            | Referrers { name, .. } => Some(name),
        }
    }

    /// Parses a request line. `path` excludes the query; `query` is the raw
    /// text after `?`, if any.
    pub fn parse(method: &str, path: &str, query: Option<&str>) -> Result<Route, RegistryError> {
        let query = Query::parse(query.unwrap_or(""));
        if path == "/token" {
            allow(method, &["GET", "POST"], "GET, POST")?;
            return Ok(Route::Token);
        }
        if path == "/_registry/gc" {
            allow(method, &["GET", "POST"], "GET, POST")?;
            let dry_run = match query.get("dry-run") {
                None | Some("false") => false,
                Some("true") | Some("") => true,
                Some(other) => {
                    return Err(RegistryError::InvalidParameter(Some(format!(
                        "dry-run must be true or false, got {other:?}"
                    ))))
                }
            };
            return Ok(Route::Gc { step: method == "POST", dry_run });
        }
        if path == "/v2" || path == "/v2/" {
            allow(method, &["GET", "HEAD"], "GET, HEAD")?;
            return Ok(Route::Base);
        }
        let not_found = || RegistryError::NotFound(Some(format!("no endpoint at {path}")));
        let rest = path.strip_prefix("/v2/").ok_or_else(not_found)?;
        if rest == "_catalog" {
            allow(method, &["GET"], "GET")?;
            return Ok(Route::Catalog { n: parse_n(&query)?, last: non_empty(query.get("last")) });
        }

        let segments: Vec<&str> = rest.split('/').collect();
        match segments.as_slice() {
            [name @ .., "tags", "list"] if !name.is_empty() => {
                allow(method, &["GET"], "GET")?;
                Ok(Route::TagsList { name: repo(name)?, n: parse_n(&query)?, last: non_empty(query.get("last")) })
            }
            [name @ .., "blobs", "uploads"] | [name @ .., "blobs", "uploads", ""] if !name.is_empty() => {
                allow(method, &["POST"], "POST")?;
                let name = repo(name)?;
                Ok(Route::UploadStart {
                    name,
                    digest: query.get("digest").map(digest).transpose()?,
                    mount: query.get("mount").map(digest).transpose()?,
                    from: query.get("from").map(str::parse::<RepoName>).transpose()?,
                })
            }
            [name @ .., "blobs", "uploads", id] if !name.is_empty() => {
                allow(method, &["GET", "PATCH", "PUT", "DELETE"], "GET, PATCH, PUT, DELETE")?;
                let name = repo(name)?;
                let id: UploadId = id.parse()?;
                Ok(match method {
                    "GET" => Route::UploadStatus { name, id },
                    "PATCH" => Route::UploadPatch { name, id },
                    "PUT" => {
                        let digest = query.get("digest").ok_or_else(|| {
                            RegistryError::DigestInvalid(Some("the digest query parameter is required".into()))
                        })?;
                        Route::UploadPut { name, id, digest: self::digest(digest)? }
                    }
                    _ => Route::UploadDelete { name, id },
                })
            }
            [name @ .., "manifests", reference] if !name.is_empty() && !reference.is_empty() => {
                allow(method, &["GET", "HEAD", "PUT", "DELETE"], "GET, HEAD, PUT, DELETE")?;
                let name = repo(name)?;
                let reference = decode_colon(reference).parse::<Reference>();
                if let ("GET" | "HEAD", Err(e)) = (method, &reference) {
                    // Nothing can be stored under it, so nothing is found
                    // (as distribution and zot answer); only a PUT is told
                    // what is wrong with it.
                    return Err(RegistryError::ManifestUnknown(Some(format!("no manifest can be named so: {e}"))));
                }
                let reference = reference?;
                Ok(match method {
                    "GET" | "HEAD" => Route::ManifestGet { name, reference },
                    "PUT" => Route::ManifestPut {
                        name,
                        reference,
                        tags: query.get_all("tag").into_iter().map(str::parse).collect::<Result<_, _>>()?,
                    },
                    _ => Route::ManifestDelete { name, reference },
                })
            }
            [name @ .., "blobs", digest] if !name.is_empty() && !digest.is_empty() => {
                allow(method, &["GET", "HEAD", "DELETE"], "GET, HEAD, DELETE")?;
                let name = repo(name)?;
                let digest = self::digest(digest)?;
                Ok(match method {
                    "GET" | "HEAD" => Route::BlobGet { name, digest },
                    _ => Route::BlobDelete { name, digest },
                })
            }
            [name @ .., "referrers", digest] if !name.is_empty() && !digest.is_empty() => {
                allow(method, &["GET"], "GET")?;
                Ok(Route::Referrers {
                    name: repo(name)?,
                    digest: self::digest(digest)?,
                    artifact_type: non_empty(query.get("artifactType")),
                    last: non_empty(query.get("last")),
                })
            }
            _ => Err(not_found()),
        }
    }
}

/// `MethodNotAllowed` unless `method` is one of `methods`.
fn allow(method: &str, methods: &[&str], header: &'static str) -> Result<(), RegistryError> {
    if methods.contains(&method) {
        Ok(())
    } else {
        Err(RegistryError::MethodNotAllowed { allow: header })
    }
}

fn repo(segments: &[&str]) -> Result<RepoName, RegistryError> {
    Ok(segments.join("/").parse()?)
}

/// Reads `%3A` / `%3a` as `:`; nothing else is decoded.
fn decode_colon(segment: &str) -> String {
    segment.replace("%3A", ":").replace("%3a", ":")
}

fn digest(value: &str) -> Result<Digest, RegistryError> {
    Ok(decode_colon(value).parse()?)
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value.filter(|v| !v.is_empty()).map(str::to_owned)
}

/// `n`: absent or empty means "not given"; otherwise decimal digits only
/// (Rust's `usize` parser would also take `+5`). Values too large for
/// `usize` saturate; pagination caps them anyway.
fn parse_n(query: &Query) -> Result<Option<usize>, RegistryError> {
    match query.get("n") {
        None | Some("") => Ok(None),
        Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n.parse().unwrap_or(usize::MAX))),
        Some(n) => Err(RegistryError::InvalidParameter(Some(format!("n must be a non-negative integer, got {n:?}")))),
    }
}

/// A parsed query string: percent-decoded `key=value` pairs, in order,
/// repeated keys kept.
///
/// `+` is kept as `+`, not read as a space: that convention belongs to HTML
/// forms, not to RFC 3986 URLs, and media types in `artifactType` contain
/// `+` (`application/vnd.x+json`) that clients may not encode. No parameter
/// the registry reads can contain a space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses the text after `?`. Never fails: empty pairs are skipped, a
    /// key without `=` has the value `""`, a malformed `%` escape is kept
    /// literally, and invalid UTF-8 after decoding becomes U+FFFD.
    pub fn parse(raw: &str) -> Query {
        let pairs = raw
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key), percent_decode(value))
            })
            .collect();
        Query { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in request order.
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes; see [`Query::parse`] for the lenient cases.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const D_ENC: &str = "sha256%3Ae3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn route(method: &str, path: &str) -> Result<Route, RegistryError> {
        Route::parse(method, path, None)
    }

    fn name(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    fn dg() -> Digest {
        D.parse().unwrap()
    }

    fn status(r: Result<Route, RegistryError>) -> (u16, &'static str) {
        let e = r.unwrap_err();
        (e.status(), e.code())
    }

    #[test]
    fn base() {
        assert_eq!(route("GET", "/v2/"), Ok(Route::Base));
        assert_eq!(route("GET", "/v2"), Ok(Route::Base));
        assert_eq!(route("HEAD", "/v2/"), Ok(Route::Base));
        assert_eq!(route("POST", "/v2/"), Err(RegistryError::MethodNotAllowed { allow: "GET, HEAD" }));
    }

    #[test]
    fn unknown_paths() {
        for path in [
            "",
            "/",
            "/v1/",
            "/v2x",
            "/v22/",
            "v2/",
            "/v2/_catalog/",
            "/v2/a",
            "/v2/a/",
            "/v2/a/tags",
            "/v2/a/tags/list/",
            "/v2/a/unknown/x",
            "/v2/tags/list",
            "/v2/manifests/latest",
            "/v2/blobs/uploads/",
            "/v2/blobs/uploads/abc",
            "/v2/a/manifests/",
            "/v2/a/blobs/",
            "/v2/a/referrers/",
        ] {
            assert_eq!(status(route("GET", path)), (404, "NAME_UNKNOWN"), "{path:?}");
        }
    }

    #[test]
    fn catalog() {
        assert_eq!(
            Route::parse("GET", "/v2/_catalog", Some("n=10&last=a%2Fb")),
            Ok(Route::Catalog { n: Some(10), last: Some("a/b".into()) })
        );
        assert_eq!(route("GET", "/v2/_catalog"), Ok(Route::Catalog { n: None, last: None }));
        assert_eq!(status(route("HEAD", "/v2/_catalog")), (405, "UNSUPPORTED"));
    }

    #[test]
    fn tags_list_with_nested_name() {
        assert_eq!(
            Route::parse("GET", "/v2/a/b/c/tags/list", Some("n=2&last=v1")),
            Ok(Route::TagsList { name: name("a/b/c"), n: Some(2), last: Some("v1".into()) })
        );
        // A repository called `tags`.
        assert_eq!(route("GET", "/v2/tags/tags/list"), Ok(Route::TagsList { name: name("tags"), n: None, last: None }));
        assert_eq!(status(route("DELETE", "/v2/a/tags/list")), (405, "UNSUPPORTED"));
    }

    #[test]
    fn n_parameter() {
        let n = |q: &str| Route::parse("GET", "/v2/a/tags/list", Some(q));
        assert!(matches!(n("n=0"), Ok(Route::TagsList { n: Some(0), .. })));
        assert!(matches!(n("n="), Ok(Route::TagsList { n: None, .. })));
        assert!(matches!(n("last="), Ok(Route::TagsList { last: None, .. })));
        assert!(matches!(n("n=99999999999999999999999999"), Ok(Route::TagsList { n: Some(usize::MAX), .. })));
        // The first of repeated keys wins.
        assert!(matches!(n("n=3&n=x"), Ok(Route::TagsList { n: Some(3), .. })));
        for bad in ["n=-1", "n=+1", "n=abc", "n=1.5", "n=%201", "n=0x10"] {
            assert_eq!(status(n(bad)), (400, "UNSUPPORTED"), "{bad}");
        }
    }

    #[test]
    fn manifests() {
        let tag = Reference::Tag("latest".parse().unwrap());
        assert_eq!(
            route("GET", "/v2/library/ubuntu/manifests/latest"),
            Ok(Route::ManifestGet { name: name("library/ubuntu"), reference: tag.clone() })
        );
        assert_eq!(
            route("HEAD", "/v2/a/manifests/latest"),
            Ok(Route::ManifestGet { name: name("a"), reference: tag.clone() })
        );
        assert_eq!(
            route("DELETE", &format!("/v2/a/manifests/{D}")),
            Ok(Route::ManifestDelete { name: name("a"), reference: Reference::Digest(dg()) })
        );
        assert_eq!(
            route("PUT", "/v2/a/manifests/latest"),
            Ok(Route::ManifestPut { name: name("a"), reference: tag, tags: vec![] })
        );
        assert_eq!(status(route("POST", "/v2/a/manifests/latest")), (405, "UNSUPPORTED"));
        assert_eq!(route("PATCH", "/v2/a/manifests/x").unwrap_err().allow(), Some("GET, HEAD, PUT, DELETE"));
    }

    #[test]
    fn manifest_reference_with_encoded_colon() {
        for path in [format!("/v2/a/manifests/{D_ENC}"), format!("/v2/a/manifests/{}", D_ENC.replace("%3A", "%3a"))] {
            assert_eq!(
                route("GET", &path),
                Ok(Route::ManifestGet { name: name("a"), reference: Reference::Digest(dg()) })
            );
        }
    }

    #[test]
    fn manifest_reference_errors() {
        assert_eq!(status(route("PUT", "/v2/a/manifests/sha256:abc")), (400, "DIGEST_INVALID"));
        assert_eq!(status(route("DELETE", "/v2/a/manifests/a%2Fb")), (400, "TAG_INVALID"));
        assert_eq!(status(route("PUT", "/v2/a/manifests/.bad")), (400, "TAG_INVALID"));
        let long = "x".repeat(129);
        assert_eq!(status(route("PUT", &format!("/v2/a/manifests/{long}"))), (400, "TAG_INVALID"));
    }

    #[test]
    fn unnameable_manifests_are_unknown_to_get_and_head() {
        for reference in [".INVALID_MANIFEST_NAME", "-bad", "a%2Fb", "sha256:abc", &"x".repeat(129)] {
            for method in ["GET", "HEAD"] {
                let e = route(method, &format!("/v2/a/manifests/{reference}")).unwrap_err();
                assert_eq!((e.status(), e.code()), (404, "MANIFEST_UNKNOWN"), "{method} {reference}");
                assert!(e.detail().unwrap().starts_with("no manifest can be named so: invalid"), "{e}");
            }
        }
        // The name is still checked first.
        assert_eq!(status(route("GET", "/v2/Bad/manifests/.bad")), (400, "NAME_INVALID"));
    }

    #[test]
    fn put_manifest_tags() {
        let r = Route::parse("PUT", &format!("/v2/a/manifests/{D}"), Some("tag=v1&tag=latest&other=x&tag=v1"));
        let Ok(Route::ManifestPut { tags, .. }) = r else { panic!("{r:?}") };
        let tags: Vec<&str> = tags.iter().map(Tag::as_str).collect();
        assert_eq!(tags, ["v1", "latest", "v1"]);
        assert_eq!(status(Route::parse("PUT", "/v2/a/manifests/x", Some("tag=ok&tag=.bad"))), (400, "TAG_INVALID"));
        assert_eq!(status(Route::parse("PUT", "/v2/a/manifests/x", Some("tag="))), (400, "TAG_INVALID"));
    }

    #[test]
    fn blobs() {
        assert_eq!(route("GET", &format!("/v2/a/b/blobs/{D}")), Ok(Route::BlobGet { name: name("a/b"), digest: dg() }));
        assert_eq!(
            route("HEAD", &format!("/v2/a/blobs/{D_ENC}")),
            Ok(Route::BlobGet { name: name("a"), digest: dg() })
        );
        assert_eq!(
            route("DELETE", &format!("/v2/a/blobs/{D}")),
            Ok(Route::BlobDelete { name: name("a"), digest: dg() })
        );
        assert_eq!(status(route("GET", "/v2/a/blobs/sha256:zz")), (400, "DIGEST_INVALID"));
        assert_eq!(status(route("PUT", &format!("/v2/a/blobs/{D}"))), (405, "UNSUPPORTED"));
        // `uploads` as the last segment is the upload endpoint, not a digest.
        assert_eq!(status(route("GET", "/v2/a/blobs/uploads")), (405, "UNSUPPORTED"));
    }

    #[test]
    fn start_upload() {
        for path in ["/v2/a/blobs/uploads/", "/v2/a/blobs/uploads"] {
            assert_eq!(
                route("POST", path),
                Ok(Route::UploadStart { name: name("a"), digest: None, mount: None, from: None })
            );
        }
        assert_eq!(
            Route::parse("POST", "/v2/x/y/blobs/uploads/", Some(&format!("mount={D_ENC}&from=other%2Frepo"))),
            Ok(Route::UploadStart {
                name: name("x/y"),
                digest: None,
                mount: Some(dg()),
                from: Some(name("other/repo"))
            })
        );
        assert_eq!(
            Route::parse("POST", "/v2/a/blobs/uploads/", Some(&format!("digest={D}"))),
            Ok(Route::UploadStart { name: name("a"), digest: Some(dg()), mount: None, from: None })
        );
        // Mount without `from` is valid (conformance tests send it).
        assert!(matches!(
            Route::parse("POST", "/v2/a/blobs/uploads/", Some(&format!("mount={D}"))),
            Ok(Route::UploadStart { mount: Some(_), from: None, .. })
        ));
        let bad = |q: &str| status(Route::parse("POST", "/v2/a/blobs/uploads/", Some(q)));
        assert_eq!(bad("digest=sha256:x"), (400, "DIGEST_INVALID"));
        assert_eq!(bad("mount=x"), (400, "DIGEST_INVALID"));
        assert_eq!(bad(&format!("mount={D}&from=Bad")), (400, "NAME_INVALID"));
        assert_eq!(status(route("GET", "/v2/a/blobs/uploads/")), (405, "UNSUPPORTED"));
    }

    #[test]
    fn upload_sessions() {
        let id: UploadId = "3f2c-1a".parse().unwrap();
        let path = "/v2/a/b/blobs/uploads/3f2c-1a";
        assert_eq!(route("GET", path), Ok(Route::UploadStatus { name: name("a/b"), id: id.clone() }));
        assert_eq!(route("PATCH", path), Ok(Route::UploadPatch { name: name("a/b"), id: id.clone() }));
        assert_eq!(route("DELETE", path), Ok(Route::UploadDelete { name: name("a/b"), id: id.clone() }));
        assert_eq!(
            Route::parse("PUT", path, Some(&format!("digest={D_ENC}"))),
            Ok(Route::UploadPut { name: name("a/b"), id, digest: dg() })
        );
        assert_eq!(status(route("PUT", path)), (400, "DIGEST_INVALID"));
        assert_eq!(status(Route::parse("PUT", path, Some("digest=nope"))), (400, "DIGEST_INVALID"));
        assert_eq!(status(route("POST", path)), (405, "UNSUPPORTED"));
        assert_eq!(status(route("GET", "/v2/a/blobs/uploads/NOT-HEX")), (404, "BLOB_UPLOAD_UNKNOWN"));
    }

    #[test]
    fn referrers() {
        assert_eq!(
            Route::parse("GET", &format!("/v2/a/referrers/{D}"), Some("artifactType=application%2Fvnd.example%2Bjson")),
            Ok(Route::Referrers {
                name: name("a"),
                digest: dg(),
                artifact_type: Some("application/vnd.example+json".into()),
                last: None,
            })
        );
        // An unencoded `+` stays a `+`.
        assert!(matches!(
            Route::parse("GET", &format!("/v2/a/referrers/{D}"), Some("artifactType=a/b+json")),
            Ok(Route::Referrers { artifact_type: Some(t), .. }) if t == "a/b+json"
        ));
        assert!(matches!(
            Route::parse("GET", &format!("/v2/a/referrers/{D}"), Some("artifactType=")),
            Ok(Route::Referrers { artifact_type: None, .. })
        ));
        assert_eq!(status(route("GET", "/v2/a/referrers/sha256:x")), (400, "DIGEST_INVALID"));
        assert_eq!(status(route("DELETE", &format!("/v2/a/referrers/{D}"))), (405, "UNSUPPORTED"));
    }

    #[test]
    fn names_are_validated_after_method() {
        assert_eq!(status(route("GET", "/v2/Bad/manifests/latest")), (400, "NAME_INVALID"));
        assert_eq!(status(route("GET", "/v2/a//b/tags/list")), (400, "NAME_INVALID"));
        assert_eq!(status(route("GET", "/v2//manifests/latest")), (400, "NAME_INVALID"));
        assert_eq!(status(route("POST", "/v2/Bad/manifests/latest")), (405, "UNSUPPORTED"));
        let long = format!("/v2/{}/tags/list", "a".repeat(256));
        assert_eq!(status(route("GET", &long)), (400, "NAME_INVALID"));
    }

    #[test]
    fn suffix_matching_with_keyword_components() {
        // Names made of endpoint keywords.
        assert_eq!(
            route("POST", "/v2/a/manifests/blobs/uploads/"),
            Ok(Route::UploadStart { name: name("a/manifests"), digest: None, mount: None, from: None })
        );
        assert_eq!(
            route("GET", "/v2/blobs/uploads/manifests/latest"),
            Ok(Route::ManifestGet {
                name: name("blobs/uploads"),
                reference: Reference::Tag("latest".parse().unwrap())
            })
        );
        assert_eq!(
            route("GET", &format!("/v2/referrers/blobs/{D}")),
            Ok(Route::BlobGet { name: name("referrers"), digest: dg() })
        );
        assert_eq!(
            route("GET", "/v2/a/blobs/uploads/tags/list"),
            Ok(Route::TagsList { name: name("a/blobs/uploads"), n: None, last: None })
        );
        assert_eq!(
            route("GET", "/v2/x/blobs/uploads/0a"),
            Ok(Route::UploadStatus { name: name("x"), id: "0a".parse().unwrap() })
        );
    }

    #[test]
    fn route_name() {
        assert_eq!(route("GET", "/v2/").unwrap().name(), None);
        assert_eq!(route("GET", "/v2/a/b/tags/list").unwrap().name(), Some(&name("a/b")));
    }

    #[test]
    fn query_parsing() {
        let q = Query::parse("a=1&b=two%20words&a=3&&flag&c=%zz&d=%E2%82%AC&e=%ff&f=x=y&g=%4");
        assert_eq!(q.get("a"), Some("1"));
        assert_eq!(q.get_all("a"), vec!["1", "3"]);
        assert_eq!(q.get("b"), Some("two words"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("c"), Some("%zz"));
        assert_eq!(q.get("d"), Some("€"));
        assert_eq!(q.get("e"), Some("\u{fffd}"));
        assert_eq!(q.get("f"), Some("x=y"));
        assert_eq!(q.get("g"), Some("%4"));
        assert_eq!(q.get("missing"), None);
        assert!(q.get_all("missing").is_empty());
        assert_eq!(Query::parse(""), Query::default());
        let q = Query::parse("k%3D=v&a+b=c+d");
        assert_eq!(q.get("k="), Some("v"));
        assert_eq!(q.get("a+b"), Some("c+d"));
    }
}

//! Reading a pushed manifest: which media type it is, what it references.
//!
//! Spec: OCI distribution-spec v1.1 "Pushing Manifests" (end-7) and
//! "Listing Referrers" (end-12); OCI image-spec v1.1 `manifest.md`,
//! `image-index.md`, `descriptor.md`; Docker Image Manifest V2 Schema 2.
//!
//! The registry MUST store the exact bytes it was given, so nothing here
//! re-serialises: [`parse`] only extracts what the handler needs to check
//! references, answer the referrers API and set `Content-Type` on pulls.
//!
//! Why our own small serde structs and not `oci-spec`'s `ImageManifest` /
//! `ImageIndex`: `oci-spec` 0.10 unconditionally depends on `regex`,
//! `derive_builder`, `getset`, `strum` and `const_format` (even with only the
//! `image` feature), which is a lot of code in a wasm component for reading
//! five fields; its `Digest` accepts algorithms the blob store cannot hold,
//! so we would re-validate every digest anyway; and its serde errors carry no
//! path (`layers[3].digest`) for the error detail. The structs below read only
//! the fields we use and ignore the rest, so real-world documents with extra
//! fields (Docker `platform.features`, vendor fields) are accepted.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::digest::Digest;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest V2, schema 2 media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (the Docker equivalent of an index) media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Largest manifest body the registry accepts, in bytes.
///
/// The spec says registries SHOULD support at least 4 MB and SHOULD answer
/// 413 above their limit; 4 MiB is also distribution's limit. The handler
/// must stop reading at this size and return `RegistryError::ManifestTooLarge`;
/// [`parse`] does not check it.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// Media type prefix of OCI layers that registries need not distribute.
const OCI_NONDISTRIBUTABLE_PREFIX: &str = "application/vnd.oci.image.layer.nondistributable.";
/// Docker's "foreign" (non-distributable) layer media type.
const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The three fields of a descriptor the registry keeps: enough to answer
/// `HEAD`/`GET` and to build referrers responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
}

/// Whether a manifest is an image manifest or an index of manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// OCI image manifest or Docker schema 2 manifest: `config` + `layers`.
    Image,
    /// OCI image index or Docker manifest list: `manifests`.
    Index,
}

/// What the registry needs to know about a pushed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    /// The resolved media type: one of the four supported constants.
    /// Serve it as `Content-Type` when the manifest is pulled.
    pub media_type: String,
    /// Image manifest or index.
    pub kind: ManifestKind,
    /// The `subject` descriptor, if any. It need NOT exist (spec: a registry
    /// MUST accept a subject that references a missing manifest).
    pub subject: Option<Descriptor>,
    /// The top-level `artifactType`, if present.
    pub artifact_type: Option<String>,
    /// `config.mediaType` of an image manifest; `None` for an index.
    pub config_media_type: Option<String>,
    /// The top-level `annotations`, if present.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Blobs that must exist in the repository: the config and every
    /// distributable layer, without duplicates, in document order.
    pub blobs: Vec<Digest>,
    /// Child manifests of an index that must exist in the repository,
    /// without duplicates, in document order. Empty for image manifests.
    pub manifests: Vec<Digest>,
}

impl ParsedManifest {
    /// The `artifactType` of this manifest's descriptor in a referrers
    /// response (end-12a): the manifest's `artifactType` if set and
    /// non-empty; else, for an image manifest, its config media type; else
    /// none (the field is then omitted).
    pub fn referrer_artifact_type(&self) -> Option<&str> {
        match self.artifact_type.as_deref() {
            Some(t) if !t.is_empty() => Some(t),
            _ => match self.kind {
                ManifestKind::Image => self.config_media_type.as_deref(),
                ManifestKind::Index => None,
            },
        }
    }
}

/// Why a manifest was rejected. Maps to `MANIFEST_INVALID`, with
/// [`ManifestError::detail`] as the error detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    detail: String,
}

impl ManifestError {
    fn new(detail: impl Into<String>) -> Self {
        ManifestError { detail: detail.into() }
    }

    /// What is wrong, for the error `detail`.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "manifest invalid: {}", self.detail)
    }
}

impl std::error::Error for ManifestError {}

/// The subset of an image manifest / index that we read. Every field is
/// optional here so that a missing one yields our own precise message.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    // Signed so that a negative size gets a clear message, not a serde one.
    size: Option<i64>,
    urls: Option<Vec<String>>,
}

impl RawDescriptor {
    /// Validates the REQUIRED descriptor fields; `at` names the descriptor
    /// in error messages (e.g. `layers[2]`).
    fn check(&self, at: &str) -> Result<Descriptor, ManifestError> {
        let media_type =
            self.media_type.clone().ok_or_else(|| ManifestError::new(format!("{at}.mediaType is missing")))?;
        let digest = self
            .digest
            .as_deref()
            .ok_or_else(|| ManifestError::new(format!("{at}.digest is missing")))?
            .parse::<Digest>()
            .map_err(|e| ManifestError::new(format!("{at}.digest: {}", e.reason())))?;
        let size = self.size.ok_or_else(|| ManifestError::new(format!("{at}.size is missing")))?;
        let size = u64::try_from(size).map_err(|_| ManifestError::new(format!("{at}.size must not be negative")))?;
        Ok(Descriptor { media_type, digest, size })
    }

    /// Layers a registry need not hold: non-distributable media types and
    /// layers fetched from `urls` instead of the registry.
    fn is_foreign(&self) -> bool {
        let foreign_type = self
            .media_type
            .as_deref()
            .is_some_and(|t| t.starts_with(OCI_NONDISTRIBUTABLE_PREFIX) || t == DOCKER_FOREIGN_LAYER);
        let has_urls = self.urls.as_ref().is_some_and(|u| !u.is_empty());
        foreign_type || has_urls
    }
}

/// `Content-Type` without parameters or surrounding whitespace, lowercased
/// (media types are case-insensitive; the spec says to ignore parameters).
fn normalize_content_type(value: &str) -> String {
    let essence = value.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}

fn kind_of(media_type: &str) -> Option<ManifestKind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(ManifestKind::Image),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(ManifestKind::Index),
        _ => None,
    }
}

/// Appends `digest` unless already present (a config may also be a layer,
/// e.g. the empty descriptor `{}` used by artifacts).
fn push_unique(list: &mut Vec<Digest>, digest: Digest) {
    if !list.contains(&digest) {
        list.push(digest);
    }
}

/// Parses a pushed manifest.
///
/// `content_type` is the request's `Content-Type` header, if any. The media
/// type is the body's `mediaType` if present, else the `Content-Type`; both
/// present and different is an error; with neither, a body with `manifests`
/// is taken as an OCI index and one with `config` as an OCI image manifest.
///
/// The caller must still check that [`ParsedManifest::blobs`] and
/// [`ParsedManifest::manifests`] exist (`MANIFEST_BLOB_UNKNOWN`) and, for a
/// push by digest, that `Digest::of_bytes(body)` equals the reference.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<ParsedManifest, ManifestError> {
    // serde would also read a struct from a JSON array (by position); the
    // spec wants an object, and an object is exactly a value starting '{'.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ManifestError::new("body must be a JSON object"));
    }
    let raw: RawManifest =
        serde_json::from_slice(body).map_err(|e| ManifestError::new(format!("malformed JSON: {e}")))?;

    match raw.schema_version {
        Some(2) => {}
        Some(v) => return Err(ManifestError::new(format!("schemaVersion must be 2, got {v}"))),
        None => return Err(ManifestError::new("schemaVersion is missing")),
    }

    let header = content_type.map(normalize_content_type).filter(|t| !t.is_empty());
    let media_type = match (raw.media_type.as_deref(), header) {
        (Some(body_type), Some(header_type)) if body_type != header_type => {
            return Err(ManifestError::new(format!(
                "mediaType {body_type:?} does not match Content-Type {header_type:?}"
            )))
        }
        (Some(body_type), _) => body_type.to_owned(),
        (None, Some(header_type)) => header_type,
        (None, None) => match (raw.manifests.is_some(), raw.config.is_some()) {
            (true, false) => OCI_INDEX.to_owned(),
            (false, true) => OCI_MANIFEST.to_owned(),
            _ => return Err(ManifestError::new("no mediaType or Content-Type, and the type cannot be inferred")),
        },
    };
    let kind =
        kind_of(&media_type).ok_or_else(|| ManifestError::new(format!("unsupported media type {media_type:?}")))?;

    let subject = raw.subject.as_ref().map(|s| s.check("subject")).transpose()?;

    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    let mut config_media_type = None;
    match kind {
        ManifestKind::Image => {
            let config = raw.config.as_ref().ok_or_else(|| ManifestError::new("config is missing"))?.check("config")?;
            // Layers may be empty (artifacts), but the field is REQUIRED.
            let layers = raw.layers.as_ref().ok_or_else(|| ManifestError::new("layers is missing"))?;
            push_unique(&mut blobs, config.digest);
            config_media_type = Some(config.media_type);
            for (i, layer) in layers.iter().enumerate() {
                let checked = layer.check(&format!("layers[{i}]"))?;
                if !layer.is_foreign() {
                    push_unique(&mut blobs, checked.digest);
                }
            }
        }
        ManifestKind::Index => {
            let children = raw.manifests.as_ref().ok_or_else(|| ManifestError::new("manifests is missing"))?;
            for (i, child) in children.iter().enumerate() {
                let checked = child.check(&format!("manifests[{i}]"))?;
                push_unique(&mut manifests, checked.digest);
            }
        }
    }

    Ok(ParsedManifest {
        media_type,
        kind,
        subject,
        artifact_type: raw.artifact_type,
        config_media_type,
        annotations: raw.annotations,
        blobs,
        manifests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn dg(c: char) -> Digest {
        d(c).parse().unwrap()
    }

    fn oci_image() -> String {
        format!(
            r#"{{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "{}", "size": 7023}},
  "layers": [
    {{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "{}", "size": 32654}},
    {{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "{}", "size": 16724,
      "annotations": {{"x": "y"}}}}
  ],
  "annotations": {{"com.example.key1": "value1"}}
}}"#,
            d('a'),
            d('b'),
            d('c')
        )
    }

    #[test]
    fn oci_image_manifest() {
        let m = parse(Some(OCI_MANIFEST), oci_image().as_bytes()).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.blobs, vec![dg('a'), dg('b'), dg('c')]);
        assert!(m.manifests.is_empty());
        assert_eq!(m.config_media_type.as_deref(), Some("application/vnd.oci.image.config.v1+json"));
        assert_eq!(m.annotations.unwrap()["com.example.key1"], "value1");
        assert_eq!(m.subject, None);
        assert_eq!(m.artifact_type, None);
    }

    #[test]
    fn content_type_may_be_absent_or_carry_parameters() {
        let body = oci_image();
        assert!(parse(None, body.as_bytes()).is_ok());
        let with_params = format!("  {}; charset=utf-8", OCI_MANIFEST.to_uppercase());
        assert!(parse(Some(&with_params), body.as_bytes()).is_ok());
        assert!(parse(Some(""), body.as_bytes()).is_ok());
    }

    #[test]
    fn oci_index_with_platforms() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":7143,
                "platform":{{"architecture":"ppc64le","os":"linux"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":7682,
                "platform":{{"architecture":"amd64","os":"linux","os.features":["x"]}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":7143}}]}}"#,
            d('1'),
            d('2'),
            d('1')
        );
        let m = parse(Some(OCI_INDEX), body.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.manifests, vec![dg('1'), dg('2')]);
        assert!(m.blobs.is_empty());
        assert_eq!(m.config_media_type, None);
        assert_eq!(m.referrer_artifact_type(), None);
    }

    #[test]
    fn empty_index_is_valid() {
        let body = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        let m = parse(None, body.as_bytes()).unwrap();
        assert!(m.manifests.is_empty());
    }

    #[test]
    fn docker_schema2_manifest_with_foreign_layer() {
        let body = format!(
            r#"{{
   "schemaVersion": 2,
   "mediaType": "{DOCKER_MANIFEST}",
   "config": {{"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": "{}"}},
   "layers": [
      {{"mediaType": "{DOCKER_FOREIGN_LAYER}", "size": 1, "digest": "{}",
        "urls": ["https://example.com/layer"]}},
      {{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654, "digest": "{}"}}
   ]
}}"#,
            d('a'),
            d('f'),
            d('b')
        );
        let m = parse(Some(DOCKER_MANIFEST), body.as_bytes()).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.blobs, vec![dg('a'), dg('b')]);
        assert_eq!(m.referrer_artifact_type(), Some("application/vnd.docker.container.image.v1+json"));
    }

    #[test]
    fn docker_manifest_list_without_body_media_type() {
        // mediaType is in practice always present in lists, but the
        // Content-Type alone must suffice too.
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{DOCKER_MANIFEST}","size":7143,
              "digest":"{}","platform":{{"architecture":"arm","os":"linux","variant":"v7",
              "features":["sse4"]}}}}]}}"#,
            d('e')
        );
        let m = parse(Some(DOCKER_MANIFEST_LIST), body.as_bytes()).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST_LIST);
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.manifests, vec![dg('e')]);
    }

    #[test]
    fn artifact_with_subject_and_empty_config() {
        let empty = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
              "artifactType":"application/vnd.example.sbom.v1",
              "config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2,"data":"e30="}},
              "layers":[{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}}],
              "subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1234}},
              "annotations":{{"org.opencontainers.image.created":"2022-01-01T14:42:55Z"}}}}"#,
            d('5')
        );
        let m = parse(Some(OCI_MANIFEST), body.as_bytes()).unwrap();
        // Config and layer are the same blob: listed once.
        assert_eq!(m.blobs, vec![empty.parse::<Digest>().unwrap()]);
        assert_eq!(m.subject, Some(Descriptor { media_type: OCI_MANIFEST.into(), digest: dg('5'), size: 1234 }));
        assert_eq!(m.referrer_artifact_type(), Some("application/vnd.example.sbom.v1"));
        assert!(m.annotations.is_some());
    }

    #[test]
    fn empty_artifact_type_falls_back_to_config() {
        let body = format!(
            r#"{{"schemaVersion":2,"artifactType":"","config":{{"mediaType":"application/x-cfg",
              "digest":"{}","size":0}},"layers":[]}}"#,
            d('a')
        );
        let m = parse(None, body.as_bytes()).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.referrer_artifact_type(), Some("application/x-cfg"));
    }

    #[test]
    fn index_with_subject_and_artifact_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","artifactType":"application/x-set",
              "manifests":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1}}}}"#,
            d('9')
        );
        let m = parse(None, body.as_bytes()).unwrap();
        assert_eq!(m.subject.as_ref().unwrap().digest, dg('9'));
        assert_eq!(m.referrer_artifact_type(), Some("application/x-set"));
    }

    #[test]
    fn nondistributable_and_url_layers_are_not_required() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{}","size":1}},"layers":[
              {{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"{}","size":1}},
              {{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":1,"urls":["https://x"]}},
              {{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":1,"urls":[]}}]}}"#,
            d('a'),
            d('b'),
            d('c'),
            d('d')
        );
        let m = parse(Some(OCI_MANIFEST), body.as_bytes()).unwrap();
        assert_eq!(m.blobs, vec![dg('a'), dg('d')]);
    }

    #[test]
    fn infers_type_when_neither_is_given() {
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(parse(None, index).unwrap().media_type, OCI_INDEX);
        let both = format!(
            r#"{{"schemaVersion":2,"manifests":[],"config":{{"mediaType":"c","digest":"{}","size":1}},"layers":[]}}"#,
            d('a')
        );
        assert!(parse(None, both.as_bytes()).is_err());
        assert!(parse(None, br#"{"schemaVersion":2}"#).is_err());
    }

    #[test]
    fn media_type_mismatch_is_rejected() {
        let err = parse(Some(OCI_INDEX), oci_image().as_bytes()).unwrap_err();
        assert!(err.detail().contains("does not match"), "{err}");
        let err = parse(Some(DOCKER_MANIFEST), oci_image().as_bytes()).unwrap_err();
        assert!(err.detail().contains("does not match"));
        // Even a generic Content-Type conflicts with an explicit mediaType.
        assert!(parse(Some("application/json"), oci_image().as_bytes()).is_err());
    }

    #[test]
    fn unsupported_media_types_are_rejected() {
        let schema1 = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws","config":{}}"#;
        assert!(parse(None, schema1).unwrap_err().detail().contains("unsupported"));
        let body = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(parse(Some("application/json"), body).is_err());
        assert!(parse(Some("text/plain"), body).is_err());
        let empty_type = br#"{"schemaVersion":2,"mediaType":"","manifests":[]}"#;
        assert!(parse(None, empty_type).is_err());
    }

    #[test]
    fn shape_must_match_media_type() {
        // An index media type with an image manifest's fields.
        let body =
            format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{}","size":1}},"layers":[]}}"#, d('a'));
        assert_eq!(parse(Some(OCI_INDEX), body.as_bytes()).unwrap_err().detail(), "manifests is missing");
        let no_layers = format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{}","size":1}}}}"#, d('a'));
        assert_eq!(parse(Some(OCI_MANIFEST), no_layers.as_bytes()).unwrap_err().detail(), "layers is missing");
        let no_config = br#"{"schemaVersion":2,"layers":[]}"#;
        assert_eq!(parse(Some(OCI_MANIFEST), no_config).unwrap_err().detail(), "config is missing");
        let null_layers = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{}","size":1}},"layers":null}}"#,
            d('a')
        );
        assert!(parse(Some(OCI_MANIFEST), null_layers.as_bytes()).is_err());
    }

    #[test]
    fn schema_version_must_be_2() {
        for body in [
            &br#"{"schemaVersion":1,"manifests":[]}"#[..],
            br#"{"schemaVersion":3,"manifests":[]}"#,
            br#"{"schemaVersion":-2,"manifests":[]}"#,
            br#"{"schemaVersion":"2","manifests":[]}"#,
            br#"{"schemaVersion":2.5,"manifests":[]}"#,
            br#"{"manifests":[]}"#,
        ] {
            assert!(parse(Some(OCI_INDEX), body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn body_must_be_a_json_object() {
        for body in [
            &b""[..],
            b"   ",
            b"null",
            b"[2]",
            b"\"x\"",
            b"{",
            b"{} trailing",
            b"\xff\xfe",
            b"{\"schemaVersion\":2,\"manifests\":[]",
        ] {
            assert!(parse(Some(OCI_INDEX), body).is_err(), "{body:?}");
        }
        assert!(parse(Some(OCI_INDEX), b" \n{\"schemaVersion\":2,\"manifests\":[]} \n").is_ok());
    }

    #[test]
    fn duplicate_known_fields_are_rejected() {
        // Two `layers` would let different readers see different layers.
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{}","size":1}},"layers":[],"layers":[]}}"#,
            d('a')
        );
        assert!(parse(Some(OCI_MANIFEST), body.as_bytes()).is_err());
    }

    #[test]
    fn descriptors_are_validated() {
        let b = d('b');
        let cases = [
            (r#"{"mediaType":"t","digest":"sha256:abc","size":1}"#.to_string(), "layers[0].digest"),
            (r#"{"mediaType":"t","digest":"sha512:abc","size":1}"#.to_string(), "layers[0].digest"),
            (r#"{"mediaType":"t","size":1}"#.to_string(), "layers[0].digest is missing"),
            (format!(r#"{{"mediaType":"t","digest":"{b}","size":-1}}"#), "layers[0].size must not be negative"),
            (format!(r#"{{"mediaType":"t","digest":"{b}"}}"#), "layers[0].size is missing"),
            (format!(r#"{{"digest":"{b}","size":1}}"#), "layers[0].mediaType is missing"),
        ];
        for (layer, expected) in cases {
            let body = format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{}","size":1}},"layers":[{layer}]}}"#,
                d('a')
            );
            let err = parse(Some(OCI_MANIFEST), body.as_bytes()).unwrap_err();
            assert!(err.detail().starts_with(expected), "{layer}: {err}");
        }
        // A fractional size or a size beyond i64 is a JSON type error.
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{}","size":1.5}},"layers":[]}}"#,
            d('a')
        );
        assert!(parse(Some(OCI_MANIFEST), body.as_bytes()).is_err());
        // Subject and index children are validated too.
        let body = r#"{"schemaVersion":2,"manifests":[{"mediaType":"t","digest":"x","size":1}]}"#;
        assert!(parse(None, body.as_bytes()).unwrap_err().detail().starts_with("manifests[0].digest"));
        let body = r#"{"schemaVersion":2,"manifests":[],"subject":{"mediaType":"t","digest":"x","size":1}}"#;
        assert!(parse(None, body.as_bytes()).unwrap_err().detail().starts_with("subject.digest"));
    }

    #[test]
    fn annotations_must_be_strings() {
        let body = br#"{"schemaVersion":2,"manifests":[],"annotations":{"a":1}}"#;
        assert!(parse(None, body).is_err());
    }

    #[test]
    fn descriptor_serializes_camel_case() {
        let desc = Descriptor { media_type: OCI_MANIFEST.into(), digest: dg('a'), size: 3 };
        let json = serde_json::to_string(&desc).unwrap();
        assert_eq!(json, format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":3}}"#, d('a')));
        assert_eq!(serde_json::from_str::<Descriptor>(&json).unwrap(), desc);
    }
}

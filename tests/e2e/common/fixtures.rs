//! Test content: media types, descriptors, images and indexes, digests, and random
//! or seeded bytes that are never held in memory at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use sha2::{Digest as _, Sha256};

/// Media types used by the tests.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

    /// What a client that understands every manifest kind sends as `Accept`.
    pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
        application/vnd.oci.image.index.v1+json, \
        application/vnd.docker.distribution.manifest.v2+json, \
        application/vnd.docker.distribution.manifest.list.v2+json";
}

/// A content descriptor as manifests spell it.
#[derive(Clone, Debug)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    /// The descriptor of `body` with `media_type`.
    pub fn of(media_type: &str, body: &[u8]) -> Self {
        Self { media_type: media_type.into(), digest: sha256_digest(body), size: body.len() as u64 }
    }

    fn json(&self) -> String {
        format!(r#"{{"mediaType": "{}", "digest": "{}", "size": {}}}"#, self.media_type, self.digest, self.size)
    }
}

/// Blobs pushed for an image, from which manifests are written.
#[derive(Clone, Debug)]
pub struct TestImage {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    pub docker: bool,
}

impl TestImage {
    /// The manifest's media type.
    pub fn media_type(&self) -> &'static str {
        if self.docker {
            media::DOCKER_MANIFEST
        } else {
            media::OCI_MANIFEST
        }
    }

    /// A manifest for this image, written by hand with deliberately unusual
    /// formatting (key order, indentation, spaces) so that byte-exact storage shows.
    pub fn manifest(&self) -> Vec<u8> {
        self.manifest_with_extra("")
    }

    /// Like [`TestImage::manifest`], with `extra` (such as `, "annotations": {...}`)
    /// inserted before the closing brace.
    pub fn manifest_with_extra(&self, extra: &str) -> Vec<u8> {
        let layers: Vec<String> = self.layers.iter().map(|l| format!("\n    {}", l.json())).collect();
        format!(
            "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{}\",\n  \"config\":   {},\n  \"layers\": [{}\n  ]{}\n}}\n",
            self.media_type(),
            self.config.json(),
            layers.join(","),
            extra
        )
        .into_bytes()
    }
}

/// An OCI index (or, with `docker`, a Docker manifest list) over `children`.
pub fn index_of(children: &[Descriptor], docker: bool) -> Vec<u8> {
    let media_type = if docker { media::DOCKER_MANIFEST_LIST } else { media::OCI_INDEX };
    let entries: Vec<String> = children
        .iter()
        .map(|c| {
            format!(
                r#"{{"mediaType":"{}","size":{},"digest":"{}","platform":{{"architecture":"amd64","os":"linux"}}}}"#,
                c.media_type, c.size, c.digest
            )
        })
        .collect();
    format!(r#"{{"schemaVersion":2,"mediaType":"{media_type}","manifests":[{}]}}"#, entries.join(",")).into_bytes()
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A digest of random content, which no registry holds.
pub fn absent_digest() -> String {
    sha256_digest(&random_bytes(64))
}

/// A string unique to this call within the run and, with high probability, across
/// runs (so that tests against an external registry never meet old content).
pub fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{}-{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A xorshift64* generator: cheap, dependency-free pseudo-random content.
pub struct XorShift(u64);

impl XorShift {
    /// A generator seeded from `seed` (never the all-zero state).
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    /// A generator with a fresh seed.
    pub fn fresh() -> Self {
        let mut h = Sha256::new();
        h.update(unique_id().as_bytes());
        let seed = u64::from_le_bytes(h.finalize()[..8].try_into().unwrap());
        Self::new(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `len` fresh random bytes.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    XorShift::fresh().fill(&mut buf);
    buf
}

/// `total` bytes from `seed`, as a stream of `chunk`-sized pieces: a request body
/// that is never held in memory at once (sent with chunked transfer encoding).
pub fn seeded_stream(
    seed: u64,
    total: u64,
    chunk: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    stream::unfold((XorShift::new(seed), total), move |(mut rng, left)| async move {
        if left == 0 {
            return None;
        }
        let n = (chunk as u64).min(left) as usize;
        let mut buf = vec![0; n];
        rng.fill(&mut buf);
        Some((Ok(Bytes::from(buf)), (rng, left - n as u64)))
    })
}

/// The SHA-256 digest of what [`seeded_stream`] yields, computed without the server.
pub fn seeded_digest(seed: u64, total: u64, chunk: usize) -> String {
    let mut rng = XorShift::new(seed);
    let mut hasher = Sha256::new();
    let mut left = total;
    let mut buf = vec![0; chunk];
    while left > 0 {
        let n = (chunk as u64).min(left) as usize;
        rng.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Bytes in the files under `dir`, recursively.
pub fn bytes_under(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

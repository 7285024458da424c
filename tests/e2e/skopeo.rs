//! `skopeo` against the registry: a multi-arch image (an OCI index over a
//! linux/amd64 and a linux/arm64 manifest, each with a config and two small
//! gzip-compressed tar layers, one of them shared) is built as an OCI image layout
//! directory on disk, copied into the registry with `skopeo copy --all
//! --preserve-digests`, inspected (`--raw`: the very bytes of the index; one
//! platform: its digest, architecture and layers), listed (`list-tags`), copied back
//! into a second layout (the same blobs, byte for byte) and deleted by digest
//! (`skopeo delete`: then the manifest and its tags are gone).
//!
//! The tar and gzip writers are minimal and our own: ustar headers, and DEFLATE
//! "stored" blocks (valid gzip that any reader accepts, without a compression
//! library). skopeo comes from Debian's `skopeo` package, which `scripts/test.sh`
//! installs; without it this test fails, naming the package.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{assert_error, media, sha256_digest, string_list, unique_id, RegistryServer};

/// How long one skopeo command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

// ----------------------------------------------------------------------------------
// tar and gzip

/// Writes `value` as zero-padded octal filling `field` but for a final NUL.
fn octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(text.as_bytes());
}

/// A ustar archive of regular files (`name`, `content`), mode 0644, owner 0:0,
/// mtime 0: the same bytes on every run for the same files.
fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content) in files {
        assert!(name.len() < 100, "tar name too long: {name}");
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut header[100..108], 0o644); // mode
        octal(&mut header[108..116], 0); // uid
        octal(&mut header[116..124], 0); // gid
        octal(&mut header[124..136], content.len() as u64); // size
        octal(&mut header[136..148], 0); // mtime
        header[148..156].copy_from_slice(b"        "); // checksum, as spaces while summing
        header[156] = b'0'; // regular file
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        let sum: u64 = header.iter().map(|&b| u64::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(content);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    // End of archive: two zero blocks.
    out.resize(out.len() + 1024, 0);
    out
}

/// CRC-32 (IEEE, as gzip wants it), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// `data` as a gzip member (RFC 1952) of DEFLATE stored blocks (RFC 1951 §3.2.4):
/// uncompressed, but a gzip stream all the same.
fn gzip(data: &[u8]) -> Vec<u8> {
    // Magic, CM=deflate, no flags, mtime 0, no extra flags, OS unknown.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let blocks: Vec<&[u8]> = if data.is_empty() { vec![&[]] } else { data.chunks(usize::from(u16::MAX)).collect() };
    for (i, block) in blocks.iter().enumerate() {
        let last = i + 1 == blocks.len();
        out.push(u8::from(last)); // BFINAL, BTYPE=00 (stored), then byte-aligned
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

// ----------------------------------------------------------------------------------
// The OCI image layout

/// One platform's image in the layout.
pub(crate) struct Platform {
    pub(crate) arch: &'static str,
    pub(crate) manifest: Vec<u8>,
    pub(crate) layers: Vec<String>,
}

/// A multi-arch image written as an OCI image layout.
pub(crate) struct Layout {
    pub(crate) dir: PathBuf,
    /// Every blob of the layout (manifests included), by digest.
    pub(crate) blobs: BTreeMap<String, Vec<u8>>,
    pub(crate) index: Vec<u8>,
    pub(crate) platforms: Vec<Platform>,
}

impl Layout {
    pub(crate) fn index_digest(&self) -> String {
        sha256_digest(&self.index)
    }
}

fn descriptor(media_type: &str, body: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256_digest(body), "size": body.len() })
}

/// Writes the layout into `dir`, tagged `tag`: `oci-layout`, `index.json` and
/// `blobs/sha256/<hex>` for every blob.
pub(crate) fn build_layout(dir: &Path, tag: &str) -> Layout {
    let run = unique_id();
    let mut blobs = BTreeMap::new();
    let mut add = |body: Vec<u8>| -> Vec<u8> {
        blobs.insert(sha256_digest(&body), body.clone());
        body
    };
    let shared = tar(&[("etc/motd", format!("shared base layer {run}\n").as_bytes())]);
    let mut platforms = Vec::new();
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let own =
            tar(&[("hello.txt", format!("hello from {arch} ({run})\n").as_bytes()), ("bin/arch", arch.as_bytes())]);
        let tars = [shared.clone(), own];
        let layers: Vec<Vec<u8>> = tars.iter().map(|t| add(gzip(t))).collect();
        let config = add(serde_json::to_vec(&json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": arch,
            "os": "linux",
            "config": { "Cmd": ["/bin/sh"] },
            "rootfs": {
                "type": "layers",
                "diff_ids": tars.iter().map(|t| sha256_digest(t)).collect::<Vec<_>>(),
            },
        }))
        .unwrap());
        let manifest = add(serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": descriptor(media::OCI_CONFIG, &config),
            "layers": layers.iter().map(|l| descriptor(GZIP_LAYER, l)).collect::<Vec<_>>(),
        }))
        .unwrap());
        let mut entry = descriptor(media::OCI_MANIFEST, &manifest);
        entry["platform"] = json!({ "architecture": arch, "os": "linux" });
        entries.push(entry);
        platforms.push(Platform { arch, layers: layers.iter().map(|l| sha256_digest(l)).collect(), manifest });
    }
    let index = add(serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": entries,
    }))
    .unwrap());

    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut top = descriptor(media::OCI_INDEX, &index);
    top["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({ "schemaVersion": 2, "manifests": [top] })).unwrap(),
    )
    .unwrap();
    for (digest, body) in &blobs {
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::write(dir.join("blobs/sha256").join(hex), body).unwrap();
    }
    Layout { dir: dir.to_path_buf(), blobs, index, platforms }
}

/// The blobs of a layout directory as written on disk, by digest.
pub(crate) fn read_blobs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            (format!("sha256:{name}"), std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

// ----------------------------------------------------------------------------------
// Running skopeo

/// skopeo with a configuration of its own: an accept-anything trust policy and an
/// empty registries.conf, so that no host configuration (mirrors, signatures,
/// credentials) changes what is tested.
pub(crate) struct Skopeo {
    policy: PathBuf,
    registries_conf: PathBuf,
    auth_file: PathBuf,
    tmp: PathBuf,
}

impl Skopeo {
    pub(crate) fn new(scratch: &Path) -> Self {
        let version = std::process::Command::new("skopeo").arg("--version").output();
        match version {
            Ok(out) if out.status.success() => {}
            _ => panic!(
                "skopeo is not installed: install Debian's `skopeo` package \
                 (apt-get install skopeo; scripts/test.sh does, as root)"
            ),
        }
        let policy = scratch.join("policy.json");
        std::fs::write(&policy, br#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
        let registries_conf = scratch.join("registries.conf");
        std::fs::write(&registries_conf, b"").unwrap();
        let auth_file = scratch.join("auth.json");
        std::fs::write(&auth_file, br#"{"auths":{}}"#).unwrap();
        let tmp = scratch.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        Self { policy, registries_conf, auth_file, tmp }
    }

    /// Runs `skopeo <global flags> args...`; returns its output, whatever its status.
    pub(crate) async fn run_unchecked(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new("skopeo");
        command
            .arg("--policy")
            .arg(&self.policy)
            .arg("--tmpdir")
            .arg(&self.tmp)
            .args(args)
            .env("CONTAINERS_REGISTRIES_CONF", &self.registries_conf)
            .env("REGISTRY_AUTH_FILE", &self.auth_file)
            // The registry is on loopback: never through a proxy.
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .kill_on_drop(true);
        tokio::time::timeout(COMMAND_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("`skopeo {}` took over {COMMAND_TIMEOUT:?}", args.join(" ")))
            .unwrap_or_else(|e| panic!("cannot run `skopeo {}`: {e}", args.join(" ")))
    }

    /// Runs skopeo and fails the test, with both output streams, unless it succeeds.
    pub(crate) async fn run(&self, args: &[&str]) -> Vec<u8> {
        let output = self.run_unchecked(args).await;
        assert!(
            output.status.success(),
            "`skopeo {}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    pub(crate) async fn run_json(&self, args: &[&str]) -> Value {
        let out = self.run(args).await;
        serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!("`skopeo {}` printed no JSON ({e}):\n{}", args.join(" "), String::from_utf8_lossy(&out))
        })
    }
}

// ----------------------------------------------------------------------------------

/// The whole round trip; see the module documentation.
#[tokio::test]
async fn skopeo_multi_arch_round_trip() {
    let scratch = tempfile::Builder::new().prefix("registry-e2e-skopeo.").tempdir().unwrap();
    let skopeo = Skopeo::new(scratch.path());
    let layout = build_layout(&scratch.path().join("layout"), "v1");
    let server = RegistryServer::start();
    let repo = "e2e/skopeo/multiarch";
    let image = format!("docker://{}/{repo}", server.host_port());
    let v1 = format!("{image}:v1");
    let source = format!("oci:{}:v1", layout.dir.display());

    // Into the registry: every platform, and not a byte changed.
    skopeo.run(&["copy", "--all", "--preserve-digests", "--dest-tls-verify=false", &source, &v1]).await;
    for (digest, body) in &layout.blobs {
        let is_manifest =
            layout.index_digest() == *digest || layout.platforms.iter().any(|p| sha256_digest(&p.manifest) == *digest);
        let path = if is_manifest { "manifests" } else { "blobs" };
        let resp = server
            .client()
            .get(server.url(&format!("/v2/{repo}/{path}/{digest}")))
            .header(ACCEPT, media::ACCEPT_ALL_MANIFESTS)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}/{digest} after the copy");
        assert!(resp.bytes().await.unwrap()[..] == body[..], "{path}/{digest} byte for byte");
    }

    // inspect --raw: the index exactly as it was in the layout.
    let raw = skopeo.run(&["inspect", "--raw", "--tls-verify=false", &v1]).await;
    assert!(
        raw == layout.index,
        "skopeo inspect --raw:\n{}\nexpected:\n{}",
        String::from_utf8_lossy(&raw),
        String::from_utf8_lossy(&layout.index)
    );

    // inspect of each platform: its architecture, OS and layers; then its manifest
    // by digest.
    for platform in &layout.platforms {
        let info = skopeo
            .run_json(&[
                "--override-os",
                "linux",
                "--override-arch",
                platform.arch,
                "inspect",
                "--tls-verify=false",
                &v1,
            ])
            .await;
        // skopeo reports the digest of what the reference names: the index.
        assert_eq!(info["Digest"], layout.index_digest(), "{info}");
        assert_eq!(info["Architecture"], platform.arch, "{info}");
        assert_eq!(info["Os"], "linux", "{info}");
        assert_eq!(string_list(&info, "Layers"), platform.layers, "{info}");
        let by_digest = format!("{image}@{}", sha256_digest(&platform.manifest));
        let raw = skopeo.run(&["inspect", "--raw", "--tls-verify=false", &by_digest]).await;
        assert!(raw == platform.manifest, "{} manifest by digest", platform.arch);
    }

    // A second tag, copied registry to registry (its blobs are there already).
    let latest = format!("{image}:latest");
    skopeo
        .run(&[
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &v1,
            &latest,
        ])
        .await;
    let tags = skopeo.run_json(&["list-tags", "--tls-verify=false", &image]).await;
    let mut listed = string_list(&tags, "Tags");
    listed.sort();
    assert_eq!(listed, ["latest", "v1"], "{tags}");

    // Back out into a second layout: the same blobs, byte for byte.
    let back = scratch.path().join("back");
    let target = format!("oci:{}:v1", back.display());
    skopeo.run(&["copy", "--all", "--preserve-digests", "--src-tls-verify=false", &v1, &target]).await;
    let copied = read_blobs(&back);
    assert_eq!(
        copied.keys().collect::<Vec<_>>(),
        layout.blobs.keys().collect::<Vec<_>>(),
        "the blobs of the copied-back layout"
    );
    for (digest, body) in &layout.blobs {
        assert!(copied[digest] == *body, "{digest} differs after the round trip");
    }
    let back_index: Value = serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(back_index["manifests"][0]["digest"], layout.index_digest(), "{back_index}");

    // skopeo delete by digest: the index and both of its tags are gone.
    let index_ref = format!("{image}@{}", layout.index_digest());
    skopeo.run(&["delete", "--tls-verify=false", &index_ref]).await;
    for reference in [layout.index_digest(), "v1".to_string(), "latest".to_string()] {
        let resp = server
            .client()
            .get(server.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header(ACCEPT, media::ACCEPT_ALL_MANIFESTS)
            .send()
            .await
            .unwrap();
        assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    }
    let out = skopeo.run_unchecked(&["inspect", "--raw", "--tls-verify=false", &v1]).await;
    assert!(!out.status.success(), "skopeo inspect of a deleted image succeeded");
    let tags = skopeo.run_json(&["list-tags", "--tls-verify=false", &image]).await;
    assert!(string_list(&tags, "Tags").is_empty(), "tags after the delete: {tags}");
}

/// The tar and gzip writers produce what the system's `tar` and `gzip` read back.
#[test]
fn tar_and_gzip_writers_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let archive = tar(&[("a.txt", b"alpha\n"), ("sub/b.bin", &big)]);
    assert_eq!(archive.len() % 512, 0);
    let gz = dir.path().join("x.tar.gz");
    std::fs::write(&gz, gzip(&archive)).unwrap();
    let out =
        std::process::Command::new("tar").arg("-xzf").arg(&gz).arg("-C").arg(dir.path()).output().expect("run tar");
    assert!(out.status.success(), "tar -xzf: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"alpha\n");
    assert_eq!(std::fs::read(dir.path().join("sub/b.bin")).unwrap(), big);
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

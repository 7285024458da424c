//! TLS: the certificate chain and private key (PEM files) turned into a
//! rustls server configuration that offers HTTP/2 and HTTP/1.1 by ALPN.

use anyhow::Context;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the certificate chain and its private key are read from.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate and key as loaded: the server configuration, and the bytes
/// of both files, to tell a reload that changed them from one that did not.
pub struct LoadedTls {
    pub config: Arc<ServerConfig>,
    files: (Vec<u8>, Vec<u8>),
}

impl LoadedTls {
    /// Whether `other` was loaded from different file contents.
    pub fn differs_from(&self, other: &LoadedTls) -> bool {
        self.files != other.files
    }
}

/// Reads and checks both files. Errors name the file at fault.
pub fn load(files: &TlsFiles) -> anyhow::Result<LoadedTls> {
    let cert_pem = std::fs::read(&files.cert)
        .with_context(|| format!("TLS certificate {}: cannot read it", files.cert.display()))?;
    let key_pem =
        std::fs::read(&files.key).with_context(|| format!("TLS key {}: cannot read it", files.key.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("TLS certificate {}: not valid PEM: {}", files.cert.display(), pem_problem(&e)))?;
    anyhow::ensure!(!chain.is_empty(), "TLS certificate {}: no CERTIFICATE block in it", files.cert.display());
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        anyhow::anyhow!("TLS key {}: no usable private key in it: {}", files.key.display(), pem_problem(&e))
    })?;
    // The process-wide default provider is left alone: say which one to use.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS: no protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!("TLS certificate {} and key {}: not a usable pair", files.cert.display(), files.key.display())
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(LoadedTls { config: Arc::new(config), files: (cert_pem, key_pem) })
}

/// A PEM error in words (its own `Display` prints markers as byte arrays).
fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => {
            format!("no \"-----END {}-----\" line", String::from_utf8_lossy(end_marker))
        }
        pem::Error::IllegalSectionStart { line } => format!("malformed line {:?}", String::from_utf8_lossy(line)),
        pem::Error::NoItemsFound => "no PEM block of that kind".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("registry-host-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_pem_block_without_its_end_is_named() {
        let dir = temp_dir("unended");
        let cert = write(&dir, "cert.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n");
        let key = write(&dir, "key.pem", b"");
        let err = format!("{:#}", load(&TlsFiles { cert, key }).err().expect("half a PEM block, no TLS"));
        assert!(err.contains("cert.pem") && err.contains("no \"-----END CERTIFICATE-----\" line"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = temp_dir("missing");
        let files = TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
        let err = format!("{:#}", load(&files).err().expect("no files, no TLS"));
        assert!(err.contains("cert.pem"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_without_pem_blocks_is_named() {
        let dir = temp_dir("garbage");
        let cert = write(&dir, "cert.pem", b"not a certificate\n");
        let key = write(&dir, "key.pem", b"not a key\n");
        let err = format!("{:#}", load(&TlsFiles { cert, key }).err().expect("garbage, no TLS"));
        assert!(err.contains("cert.pem") && err.contains("no CERTIFICATE"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

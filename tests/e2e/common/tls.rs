//! TLS fixtures for `registry-host --tls-cert --tls-key`: a certificate authority
//! made for one test (rcgen), server certificates it signs, the files the flags
//! name, and HTTPS clients that trust the test's CAs alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use tempfile::TempDir;

use super::*;

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self { issuer: Issuer::new(params, key), pem }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn issue(&self) -> ServerCert {
        self.issue_for(&["127.0.0.1", "localhost"])
    }

    /// A server certificate for `names` (IP addresses or DNS names).
    pub fn issue_for(&self, names: &[&str]) -> ServerCert {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, "registry-host test");
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ServerCert { cert_pem: cert.pem(), der: cert.der().to_vec(), key_pem: key.serialize_pem() }
    }
}

/// A server certificate and its key.
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate as a TLS handshake carries it.
    pub der: Vec<u8>,
}

/// The files that `--tls-cert` and `--tls-key` name, in a temporary directory.
pub struct TlsFiles {
    _dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn new(cert: &ServerCert) -> Self {
        let dir = tempfile::Builder::new().prefix("registry-e2e-tls.").tempdir().unwrap();
        let files = Self { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem"), _dir: dir };
        files.write(cert);
        files
    }

    /// Replaces both files (as a certificate renewal does).
    pub fn write(&self, cert: &ServerCert) {
        replace(&self.cert, cert.cert_pem.as_bytes());
        replace(&self.key, cert.key_pem.as_bytes());
    }

    /// `--tls-cert CERT --tls-key KEY`.
    pub fn flags(&self) -> Vec<&str> {
        vec!["--tls-cert", self.cert.to_str().unwrap(), "--tls-key", self.key.to_str().unwrap()]
    }
}

/// Writes `path` whole, by a rename: a reload never reads half a file.
pub fn replace(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An HTTPS client that trusts `cas` and nothing else, and reports the server's
/// certificate (`TlsInfo`); HTTP/2 when the server offers it, unless `http1_only`.
pub fn https_client(cas: &[&TestCa], http1_only: bool) -> reqwest::Client {
    install_crypto_provider();
    let roots = cas.iter().map(|ca| reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap());
    let mut builder =
        reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).tls_certs_only(roots).tls_info(true);
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

//! A throw-away PKI for TLS tests, made at test time with `rcgen`: a test
//! CA and leaf certificates it signs (or self-signed ones), written as PEM
//! files for the gateway's config, and the rustls configurations a test
//! client (trusting the CA) or a test TLS server (an agent) uses.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::Arc;

/// A certificate and its key, as PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

/// A test CA and a directory to write files into.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Valid from `from` to `to` days from today (negative: in the past).
fn set_validity(params: &mut CertificateParams, from: i64, to: i64) {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let day = |offset: i64| {
        let date = today + chrono::Duration::days(offset);
        rcgen::date_time_ymd(date.year(), date.month() as u8, date.day() as u8)
    };
    params.not_before = day(from);
    params.not_after = day(to);
}

fn leaf_params(names: &[&str], common_name: &str) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    set_validity(&mut params, -1, 30);
    params
}

impl TestPki {
    pub fn new(ca_name: &str) -> TestPki {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, ca_name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, -1, 365);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestPki {
            dir: tempfile::tempdir().unwrap(),
            ca,
        }
    }

    /// A leaf for `names` (host names and IP addresses, each a subject
    /// alternative name) signed by the CA, with `common_name` to tell
    /// certificates apart.
    pub fn leaf(&self, names: &[&str], common_name: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params(names, common_name)
            .signed_by(&key, &self.ca)
            .unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A leaf signed by nobody but itself.
    pub fn self_signed(names: &[&str], common_name: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params(names, common_name).self_signed(&key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// Writes `text` to `name` in the directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes the leaf as `<stem>.pem` (the chain: leaf, then the CA) and
    /// `<stem>-key.pem`.
    pub fn write_leaf(&self, stem: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
        let chain = format!("{}{}", leaf.cert_pem, self.ca_pem());
        (
            self.write(&format!("{stem}.pem"), &chain),
            self.write(&format!("{stem}-key.pem"), &leaf.key_pem),
        )
    }

    /// The CA certificate as a file (for `sip.tls_ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.write("ca.pem", &self.ca_pem())
    }

    /// A client configuration that trusts this CA only.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A server configuration presenting `leaf` (with the CA after it).
    pub fn server_config(&self, leaf: &Leaf) -> Arc<rustls::ServerConfig> {
        let chain = vec![leaf.der.clone(), self.ca.der().clone()];
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        )
    }

    /// [`TestPki::server_config`] that requires a client certificate
    /// signed by this CA (a mutual TLS trunk).
    pub fn mutual_server_config(&self, leaf: &Leaf) -> Arc<rustls::ServerConfig> {
        let chain = vec![leaf.der.clone(), self.ca.der().clone()];
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
                .unwrap(),
        )
    }
}

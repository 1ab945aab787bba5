//! SIP over TLS (RFC 3261 §26, RFC 5630): the gateway's certificate and
//! the trust it places in others, as rustls configurations.
//!
//! - The *server* side (our `sip.tls` listeners) presents the chain in
//!   `sip.tls_cert_file` with the key in `sip.tls_key_file` (PEM).
//! - The *client* side (TLS connections we open: bridged transfers, and
//!   in-dialog requests whose connection is gone) checks the peer's
//!   certificate against the CAs in `sip.tls_ca_file`, or the system's CA
//!   bundle when that is empty, and the name we dialled (a host name, or
//!   an IP literal that must be in the certificate's subject alternative
//!   names). When it has a certificate of its own it offers it to servers
//!   that ask for one (mutual TLS trunks).
//!
//! [`TlsContext::reload`] reads the files again (on SIGHUP): new
//! connections get the new configurations, open ones keep theirs, and a
//! file that does not load leaves everything as it was. Every problem is a
//! [`TlsError`] that names the file and says what to do. The handshakes
//! themselves, and their time limit, are in `transport`.

use super::x509::{self, CertificateDates};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Where the TLS files are (`[sip]`); an empty path is "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Our certificate, then its intermediates (PEM).
    pub cert_file: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CAs that sign the certificates of servers we connect to (PEM);
    /// empty: the system's CA bundle.
    pub ca_file: PathBuf,
}

impl TlsSettings {
    fn has_identity(&self) -> bool {
        !self.cert_file.as_os_str().is_empty()
    }
}

/// Where system CA bundles live (Debian/Ubuntu, RHEL/Fedora, SUSE,
/// Alpine/BSD); `SSL_CERT_FILE` comes first when set.
const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A certificate about to expire is warned about this long before.
const EXPIRY_WARNING_SECS: i64 = 14 * 86_400;

/// Why TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {source}", .path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {}: not valid PEM: {detail}", .path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "{what} {}: no certificate in it (expected PEM blocks \"-----BEGIN CERTIFICATE-----\")",
        .path.display()
    )]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error(
        "TLS key file {}: no private key in it (expected a PEM block \"-----BEGIN PRIVATE KEY-----\", \
         \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\"; an encrypted key must be decrypted first)",
        .path.display()
    )]
    NoKey { path: PathBuf },
    #[error("TLS key file {}: the key cannot be used: {detail}", .path.display())]
    BadKey { path: PathBuf, detail: String },
    #[error(
        "TLS key file {} does not hold the private key of the certificate in {}",
        .key.display(), .cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS certificate file {}: the first certificate is not a readable X.509 certificate", .path.display())]
    Unreadable { path: PathBuf },
    #[error(
        "TLS certificate file {}: the certificate expired on {expired}; peers refuse it: renew it",
        .path.display()
    )]
    Expired { path: PathBuf, expired: String },
    #[error(
        "TLS certificate file {}: the certificate is not valid before {starts} (is the clock right?)",
        .path.display()
    )]
    NotYetValid { path: PathBuf, starts: String },
    #[error("{what}: {detail}")]
    Rejected { what: &'static str, detail: String },
}

/// The configurations new connections use, and what they were made of.
#[derive(Debug, Clone)]
struct Loaded {
    server: Option<Arc<ServerConfig>>,
    client: Arc<ClientConfig>,
    certificate: Option<CertificateDates>,
    /// Where the client side's trusted CAs came from, for the log.
    roots: String,
}

/// The TLS configurations of a running gateway (shared by the listeners
/// and the connections we open), reloadable.
#[derive(Debug)]
pub struct TlsContext {
    settings: TlsSettings,
    loaded: RwLock<Loaded>,
}

impl TlsContext {
    /// Loads the files of `settings`, or says what is wrong with them.
    pub fn load(settings: TlsSettings) -> Result<TlsContext, TlsError> {
        let loaded = Loaded::read(&settings, unix_now())?;
        log_loaded(&loaded, "loaded");
        Ok(TlsContext {
            settings,
            loaded: RwLock::new(loaded),
        })
    }

    /// Reads the files again. On success new connections use what they
    /// hold now; on any problem nothing changes and the problem is
    /// returned. Either way connections already open keep theirs.
    pub fn reload(&self) -> Result<String, TlsError> {
        let loaded = Loaded::read(&self.settings, unix_now())?;
        log_loaded(&loaded, "reloaded");
        let summary = describe(&loaded);
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        Ok(summary)
    }

    /// What is loaded, in one line: the certificate's expiry and where
    /// the trusted CAs come from.
    pub fn summary(&self) -> String {
        describe(&self.current())
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        // Nothing panics while the lock is held for writing (one store).
        self.loaded.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The server configuration for a connection accepted now; `None`
    /// without a certificate.
    pub fn server_config(&self) -> Option<Arc<ServerConfig>> {
        self.current().server.clone()
    }

    /// The client configuration for a connection opened now.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current().client.clone()
    }
}

impl Loaded {
    fn read(settings: &TlsSettings, now: i64) -> Result<Loaded, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let identity = if settings.has_identity() {
            Some(Identity::read(settings, &provider, now)?)
        } else {
            None
        };
        let (roots, from) = trusted_roots(&settings.ca_file)?;
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| rejected("TLS versions", e))?
            .with_root_certificates(roots);
        let client = match &identity {
            Some(identity) => client
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(|e| rejected("TLS client certificate", e))?,
            None => client.with_no_client_auth(),
        };
        let server = match &identity {
            Some(identity) => Some(Arc::new(
                ServerConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| rejected("TLS versions", e))?
                    .with_no_client_auth()
                    .with_single_cert(identity.chain.clone(), identity.key.clone_key())
                    .map_err(|e| rejected("TLS certificate", e))?,
            )),
            None => None,
        };
        Ok(Loaded {
            server,
            client: Arc::new(client),
            certificate: identity.map(|identity| identity.dates),
            roots: from,
        })
    }
}

fn rejected(what: &'static str, error: rustls::Error) -> TlsError {
    TlsError::Rejected {
        what,
        detail: error.to_string(),
    }
}

/// Our certificate chain and key, checked.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    dates: CertificateDates,
}

impl Identity {
    fn read(
        settings: &TlsSettings,
        provider: &CryptoProvider,
        now: i64,
    ) -> Result<Identity, TlsError> {
        let cert_path = &settings.cert_file;
        let chain = read_certificates("TLS certificate file", cert_path)?;
        let key = read_key(&settings.key_file)?;
        let signing = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| TlsError::BadKey {
                path: settings.key_file.clone(),
                detail: e.to_string(),
            })?;
        let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing);
        if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
            certified.keys_match()
        {
            return Err(TlsError::KeyMismatch {
                cert: cert_path.clone(),
                key: settings.key_file.clone(),
            });
        }
        let dates = x509::summarise(&chain[0]).ok_or_else(|| TlsError::Unreadable {
            path: cert_path.clone(),
        })?;
        if now > dates.not_after {
            return Err(TlsError::Expired {
                path: cert_path.clone(),
                expired: dates.expires(),
            });
        }
        if now < dates.not_before {
            return Err(TlsError::NotYetValid {
                path: cert_path.clone(),
                starts: dates.starts(),
            });
        }
        Ok(Identity { chain, key, dates })
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file; at least one.
fn read_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(what, path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// The first private key in a PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file("TLS key file", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        other => TlsError::Pem {
            what: "TLS key file",
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    })
}

/// The CAs servers we connect to are checked against, and where they
/// came from: `ca_file`, else the system bundle (none found: no server
/// is trusted, which the log says).
fn trusted_roots(ca_file: &Path) -> Result<(RootCertStore, String), TlsError> {
    let mut roots = RootCertStore::empty();
    if !ca_file.as_os_str().is_empty() {
        let certificates = read_certificates("TLS CA file", ca_file)?;
        let (_, ignored) = roots.add_parsable_certificates(certificates);
        if roots.is_empty() {
            return Err(TlsError::NoCertificate {
                what: "TLS CA file",
                path: ca_file.to_path_buf(),
            });
        }
        let note = if ignored > 0 {
            format!(" ({ignored} unusable ones skipped)")
        } else {
            String::new()
        };
        let from = format!("{} CAs from {}{note}", roots.len(), ca_file.display());
        return Ok((roots, from));
    }
    let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let bundle = from_env
        .into_iter()
        .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
        .find(|path| path.is_file());
    let Some(bundle) = bundle else {
        return Ok((
            roots,
            "no CAs (no system CA bundle found; set sip.tls_ca_file)".to_string(),
        ));
    };
    let certificates = read_certificates("system CA bundle", &bundle)?;
    roots.add_parsable_certificates(certificates);
    let from = format!("{} CAs from {}", roots.len(), bundle.display());
    Ok((roots, from))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn describe(loaded: &Loaded) -> String {
    match &loaded.certificate {
        Some(dates) => format!(
            "TLS certificate valid until {}{}; servers checked against {}",
            dates.expires(),
            if dates.self_issued {
                " (self-signed)"
            } else {
                ""
            },
            loaded.roots
        ),
        None => format!(
            "no TLS certificate; servers checked against {}",
            loaded.roots
        ),
    }
}

fn log_loaded(loaded: &Loaded, verb: &str) {
    tracing::info!("TLS {verb}: {}", describe(loaded));
    if let Some(dates) = &loaded.certificate {
        crate::metrics::sip_tls_certificate_expiry(dates.not_after);
        if dates.self_issued {
            tracing::info!("the TLS certificate is self-signed: peers must be given it to trust (or use a CA's)");
        }
        let left = dates.not_after - unix_now();
        if left < EXPIRY_WARNING_SECS {
            tracing::warn!(
                expires = %dates.expires(),
                days_left = left / 86_400,
                "the TLS certificate expires soon: renew it and send SIGHUP"
            );
        }
    }
}

/// The name a connection to `host` checks the server's certificate
/// against (a DNS name, sent as SNI, or an IP address, which must be in
/// the certificate's subject alternative names).
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).ok()
}

/// What went wrong in a handshake, in words an operator can act on.
pub fn describe_handshake_error(error: &std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
    else {
        return error.to_string();
    };
    match tls {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the peer's certificate is not signed by a trusted CA (self-signed, or a private CA: \
             put it or its CA in sip.tls_ca_file)"
                .to_string()
        }
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "the peer's certificate does not name the host we called (for an IP address the \
             certificate needs it as an IP subject alternative name)"
            .to_string(),
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the peer's certificate has expired".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        }

        fn settings(&self, cert: &str, key: &str) -> TlsSettings {
            TlsSettings {
                cert_file: self.dir.path().join(cert),
                key_file: self.dir.path().join(key),
                ca_file: PathBuf::new(),
            }
        }
    }

    fn self_signed(days_from: i64, days_to: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["sip.example.com".into()]).unwrap();
        set_validity(&mut params, days_from, days_to);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Valid from `from` to `to` days from today (negative: in the past).
    fn set_validity(params: &mut rcgen::CertificateParams, from: i64, to: i64) {
        use chrono::Datelike;
        let today = chrono::Utc::now().date_naive();
        let day = |offset: i64| {
            let date = today + chrono::Duration::days(offset);
            rcgen::date_time_ymd(date.year(), date.month() as u8, date.day() as u8)
        };
        params.not_before = day(from);
        params.not_after = day(to);
    }

    fn error_of(settings: &TlsSettings) -> String {
        Loaded::read(settings, unix_now()).unwrap_err().to_string()
    }

    #[test]
    fn a_good_certificate_and_key_load_for_both_sides() {
        let files = Files::new();
        let (cert, key) = self_signed(-1, 90);
        files.write("cert.pem", &cert);
        files.write("key.pem", &key);
        let loaded = Loaded::read(&files.settings("cert.pem", "key.pem"), unix_now()).unwrap();
        assert!(loaded.server.is_some());
        let dates = loaded.certificate.unwrap();
        assert!(dates.self_issued);
        assert!(describe(&loaded).contains("(self-signed)"));
    }

    #[test]
    fn missing_files_are_named() {
        let files = Files::new();
        let (cert, _) = self_signed(-1, 90);
        files.write("cert.pem", &cert);
        let message = error_of(&files.settings("nothing.pem", "key.pem"));
        assert!(
            message.starts_with("cannot read TLS certificate file "),
            "{message}"
        );
        assert!(message.contains("nothing.pem"), "{message}");
        let message = error_of(&files.settings("cert.pem", "absent-key.pem"));
        assert!(
            message.starts_with("cannot read TLS key file "),
            "{message}"
        );
        assert!(message.contains("absent-key.pem"), "{message}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let files = Files::new();
        let (cert, _) = self_signed(-1, 90);
        let (_, other_key) = self_signed(-1, 90);
        files.write("cert.pem", &cert);
        files.write("key.pem", &other_key);
        let message = error_of(&files.settings("cert.pem", "key.pem"));
        assert!(
            message.contains("does not hold the private key of the certificate in"),
            "{message}"
        );
    }

    #[test]
    fn files_without_what_they_should_hold_say_so() {
        let files = Files::new();
        let (cert, key) = self_signed(-1, 90);
        files.write("cert.pem", &cert);
        files.write("key.pem", &key);
        files.write("empty.pem", "just some text\n");
        let message = error_of(&files.settings("key.pem", "key.pem"));
        assert!(message.contains("no certificate in it"), "{message}");
        let message = error_of(&files.settings("cert.pem", "cert.pem"));
        assert!(message.contains("no private key in it"), "{message}");
        let message = error_of(&files.settings("empty.pem", "key.pem"));
        assert!(message.contains("no certificate in it"), "{message}");
        files.write(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        );
        let message = error_of(&files.settings("broken.pem", "key.pem"));
        assert!(message.contains("not valid PEM"), "{message}");
    }

    #[test]
    fn expired_and_future_certificates_are_refused_with_their_dates() {
        let files = Files::new();
        let (cert, key) = self_signed(-90, -1);
        files.write("old.pem", &cert);
        files.write("old-key.pem", &key);
        let message = error_of(&files.settings("old.pem", "old-key.pem"));
        assert!(message.contains("the certificate expired on "), "{message}");
        assert!(message.contains("renew it"), "{message}");
        let (cert, key) = self_signed(2, 90);
        files.write("new.pem", &cert);
        files.write("new-key.pem", &key);
        let message = error_of(&files.settings("new.pem", "new-key.pem"));
        assert!(message.contains("is not valid before "), "{message}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let files = Files::new();
        let (_, key) = self_signed(-1, 90);
        let ca = files.write("ca.pem", &key);
        let settings = TlsSettings {
            ca_file: ca,
            ..TlsSettings::default()
        };
        let message = error_of(&settings);
        assert!(message.starts_with("TLS CA file "), "{message}");
        assert!(message.contains("no certificate in it"), "{message}");
    }

    #[test]
    fn without_a_certificate_only_the_client_side_exists() {
        let files = Files::new();
        let (cert, _) = self_signed(-1, 90);
        let ca = files.write("ca.pem", &cert);
        let loaded = Loaded::read(
            &TlsSettings {
                ca_file: ca,
                ..TlsSettings::default()
            },
            unix_now(),
        )
        .unwrap();
        assert!(loaded.server.is_none());
        assert!(loaded.roots.starts_with("1 CAs from "), "{}", loaded.roots);
    }

    #[test]
    fn a_reload_that_fails_keeps_what_was_loaded() {
        let files = Files::new();
        let (cert, key) = self_signed(-1, 90);
        let cert_path = files.write("cert.pem", &cert);
        files.write("key.pem", &key);
        let context = TlsContext::load(files.settings("cert.pem", "key.pem")).unwrap();
        let before = context.server_config().unwrap();
        std::fs::write(&cert_path, "garbage").unwrap();
        assert!(context.reload().is_err());
        assert!(Arc::ptr_eq(&before, &context.server_config().unwrap()));
        let (cert, key) = self_signed(-1, 30);
        std::fs::write(&cert_path, cert).unwrap();
        files.write("key.pem", &key);
        assert!(context.reload().is_ok());
        assert!(!Arc::ptr_eq(&before, &context.server_config().unwrap()));
    }

    #[test]
    fn server_names_for_hosts_and_ip_literals() {
        assert!(matches!(
            server_name("sip.example.com"),
            Some(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("192.0.2.7"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("[2001:db8::7]"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(server_name("not a name!").is_none());
    }
}

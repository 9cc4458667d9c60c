//! TLS for broker connections (rustls with the ring provider, TLS 1.2 and 1.3 only): trust
//! roots, client certificates, handshake, and errors that say which certificate was wrong and
//! why.
//!
//! Security properties this module keeps:
//! - the broker's chain is always verified against the configured (or system) CAs; turning off
//!   hostname verification skips only the name check, and adds a warning;
//! - key passwords and key material never appear in errors, warnings or `Debug` output, and
//!   decrypted keys live in buffers that are wiped on drop (ring keeps its own copy of the
//!   parsed key, which it does not wipe);
//! - nothing falls back to a weaker setting: every failure is an error.

mod classify;
mod errors;
pub(crate) mod files;
mod keys;
mod summary;
mod verify;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ProtocolVersion};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub use classify::classify_io_error;
pub use errors::TlsError;
pub use summary::CertificateSummary;

/// The certificates of a PEM file (`ssl_certificate_location`, `ssl_ca_location`), decoded:
/// for audit events and posture checks, which name a client by its certificate's subject
/// and look at expiry dates without connecting.
pub fn read_certificates(
    key: &'static str,
    path: &std::path::Path,
) -> Result<Vec<CertificateSummary>, TlsError> {
    let (certs, _) = files::load_certificates(key, path, "")?;
    Ok(certs.into_iter().map(|c| c.summary).collect())
}

use crate::config::{BrokerAddress, TlsOptions};
use classify::{FailureContext, classify_after_handshake, classify_handshake};
use errors::describe_trust;
use files::{CERTIFICATE_LOCATION, KEY_LOCATION, RootsFor, load_certificates, load_roots};
use verify::{BrokerVerifier, HandshakeProbe, RecordingResolver};

/// How soon before expiry a client certificate earns a warning.
const CLIENT_CERT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// Makes TLS connections to brokers. Loading files and building the rustls configuration
/// happens once, in [`TlsConnector::new`]; the connector is then cheap to clone and share.
#[derive(Clone)]
pub struct TlsConnector {
    inner: Arc<Inner>,
}

struct Inner {
    /// The configuration shared by all connections; each connection swaps in verifier and
    /// resolver wrappers that record what its handshake saw.
    config: Arc<ClientConfig>,
    webpki: Arc<WebPkiServerVerifier>,
    client_key: Option<Arc<CertifiedKey>>,
    /// "file (subject ...)", for rejected-certificate messages.
    client_cert_description: Option<String>,
    /// Describes the trust roots, for unknown-issuer messages.
    trust: String,
    verify_hostname: bool,
    warnings: Vec<String>,
}

/// What was negotiated on a TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSessionInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol_version: String,
    /// IANA name of the cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The broker's certificate, if it could be decoded.
    pub peer_certificate: Option<CertificateSummary>,
    /// Whether the broker asked for a client certificate during the handshake. (Always false
    /// on a resumed session, where the broker does not ask again.)
    pub client_certificate_requested: bool,
}

impl TlsConnector {
    /// Loads CA / client cert / key files and builds the rustls config. Fails with a
    /// [`TlsError`] naming the file and problem.
    pub fn new(options: &TlsOptions) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut warnings = Vec::new();

        let ca = options.ca_location.as_deref();
        let (roots, ca_subjects) = load_roots(ca, RootsFor::BROKERS, &mut warnings)?;
        let trust = describe_trust(ca, &ca_subjects);
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(format!("cannot build the certificate verifier: {e}")))?;
        if !options.verify_hostname {
            warnings.push(format!(
                "hostname verification is disabled (ssl_endpoint_identification_algorithm is none): \
                 broker certificates are still checked against {trust}, but not against the broker's \
                 host name, so anyone with a certificate from a trusted CA can impersonate the broker. \
                 Enable it unless every certificate that CA issues belongs to this cluster"
            ));
        }

        let (client_key, client_cert_description) = load_client_identity(options, &mut warnings)?;

        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(BrokerVerifier::new(
                webpki.clone(),
                options.verify_hostname,
                Arc::default(),
            )))
            .with_client_cert_resolver(Arc::new(RecordingResolver::new(
                client_key.clone(),
                Arc::default(),
            )));

        Ok(Self {
            inner: Arc::new(Inner {
                config: Arc::new(config),
                webpki,
                client_key,
                client_cert_description,
                trust,
                verify_hostname: options.verify_hostname,
                warnings,
            }),
        })
    }

    /// TLS handshake over an established TCP stream to `broker` (SNI = broker.host; IP
    /// addresses work too, and are then checked against the certificate's IP SANs).
    pub async fn connect(
        &self,
        broker: &BrokerAddress,
        tcp: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, TlsSessionInfo), TlsError> {
        let server_name =
            ServerName::try_from(broker.host.clone()).map_err(|_| TlsError::InvalidServerName {
                broker: broker.clone(),
            })?;
        let probe = Arc::new(HandshakeProbe::default());
        let mut config = ClientConfig::clone(&self.inner.config);
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(BrokerVerifier::new(
                self.inner.webpki.clone(),
                self.inner.verify_hostname,
                probe.clone(),
            )));
        config.client_auth_cert_resolver = Arc::new(RecordingResolver::new(
            self.inner.client_key.clone(),
            probe.clone(),
        ));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        match connector.connect(server_name, tcp).await {
            Ok(stream) => {
                let info = session_info(stream.get_ref().1, &probe);
                Ok((stream, info))
            }
            Err(err) => Err(classify_handshake(
                FailureContext {
                    broker,
                    trust: &self.inner.trust,
                    client_cert: self.inner.client_cert_description.as_deref(),
                    have_client_cert: self.inner.client_key.is_some(),
                    cert_requested: Some(probe.cert_requested()),
                    presented: probe.peer_summary().map(Box::new),
                },
                err,
            )),
        }
    }

    /// Warnings the operator must see (hostname verification disabled, key password given for
    /// an unencrypted key, client certificate about to expire, ...).
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// Whether a client certificate (mTLS) is configured.
    pub fn has_client_certificate(&self) -> bool {
        self.inner.client_key.is_some()
    }

    /// [`classify_io_error`] with this connector's knowledge of the client certificate, so a
    /// rejection message names the certificate file.
    pub fn classify_io_error(
        &self,
        broker: &BrokerAddress,
        err: &std::io::Error,
    ) -> Option<TlsError> {
        classify_after_handshake(
            broker,
            err,
            self.has_client_certificate(),
            self.inner.client_cert_description.as_deref(),
        )
    }
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("trust", &self.inner.trust)
            .field("client_certificate", &self.inner.client_cert_description)
            .field("verify_hostname", &self.inner.verify_hostname)
            .field("warnings", &self.inner.warnings.len())
            .finish()
    }
}

type ClientIdentity = (Option<Arc<CertifiedKey>>, Option<String>);

fn load_client_identity(
    options: &TlsOptions,
    warnings: &mut Vec<String>,
) -> Result<ClientIdentity, TlsError> {
    let (cert_path, key_path): (&Path, &Path) = match (
        options.certificate_location.as_deref(),
        options.key_location.as_deref(),
    ) {
        (None, None) => {
            if options.key_password.is_some() {
                warnings.push(
                    "ssl_key_password is set but ssl_key_location is not, so it is not used"
                        .to_owned(),
                );
            }
            return Ok((None, None));
        }
        (Some(_), None) => {
            return Err(TlsError::IncompleteClientAuth {
                set: CERTIFICATE_LOCATION,
                missing: KEY_LOCATION,
            });
        }
        (None, Some(_)) => {
            return Err(TlsError::IncompleteClientAuth {
                set: KEY_LOCATION,
                missing: CERTIFICATE_LOCATION,
            });
        }
        (Some(c), Some(k)) => (c, k),
    };
    let (certs, _) = load_certificates(
        CERTIFICATE_LOCATION,
        cert_path,
        "Set ssl_certificate_location to the PEM file of this client's certificate, followed by \
         any intermediate CA certificates",
    )?;
    let key = keys::load_private_key(key_path, options.key_password.as_ref(), warnings)?;
    let certified = keys::certified_key(cert_path, &certs, key_path, key)?;
    // `load_certificates` never returns an empty list; the error keeps that a non-panic.
    let leaf = match certs.first() {
        Some(c) => &c.summary,
        None => {
            return Err(TlsError::Config(format!(
                "no certificate in {}",
                cert_path.display()
            )));
        }
    };
    if leaf.is_expired() {
        warnings.push(format!(
            "the client certificate in {} (`{}`) expired on {}; brokers will reject it. Renew it",
            cert_path.display(),
            leaf.subject,
            summary::format_time(leaf.not_after)
        ));
    } else if leaf.expires_within(CLIENT_CERT_EXPIRY_WARNING) {
        warnings.push(format!(
            "the client certificate in {} (`{}`) expires on {}. Renew it before then",
            cert_path.display(),
            leaf.subject,
            summary::format_time(leaf.not_after)
        ));
    }
    if leaf.not_before > time::OffsetDateTime::now_utc() {
        warnings.push(format!(
            "the client certificate in {} (`{}`) is not valid until {}; brokers will reject it \
             until then (or this machine's clock is wrong)",
            cert_path.display(),
            leaf.subject,
            summary::format_time(leaf.not_before)
        ));
    }
    let description = format!(
        "{}, subject `{}`",
        PathBuf::from(cert_path).display(),
        leaf.subject
    );
    Ok((Some(Arc::new(certified)), Some(description)))
}

fn session_info(conn: &rustls::ClientConnection, probe: &HandshakeProbe) -> TlsSessionInfo {
    let protocol_version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_owned(),
    };
    let cipher_suite = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let suite = s.suite();
            suite
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{suite:?}"))
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let peer_certificate = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| CertificateSummary::from_der(c).ok());
    TlsSessionInfo {
        protocol_version,
        cipher_suite,
        peer_certificate,
        client_certificate_requested: probe.cert_requested(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_without_key_is_a_config_error() {
        let options = TlsOptions {
            ca_location: None,
            certificate_location: Some("/nonexistent/cert.pem".into()),
            ..TlsOptions::default()
        };
        // Roots come first; use a CA file so the test does not depend on the system store.
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
        let options = TlsOptions {
            ca_location: Some(ca),
            ..options
        };
        let e = TlsConnector::new(&options).unwrap_err();
        assert!(
            matches!(
                e,
                TlsError::IncompleteClientAuth {
                    missing: "ssl_key_location",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn system_trust_store_loads_or_says_to_set_ca_location() {
        match TlsConnector::new(&TlsOptions::default()) {
            Ok(c) => assert!(c.inner.trust.contains("system trust store")),
            Err(e) => {
                assert!(matches!(e, TlsError::NoSystemRoots { .. }), "{e:?}");
                assert!(e.to_string().contains("Set ssl_ca_location"), "{e}");
            }
        }
    }

    #[test]
    fn missing_ca_file_names_the_key_and_path() {
        let options = TlsOptions {
            ca_location: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let e = TlsConnector::new(&options).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("ssl_ca_location"), "{text}");
        assert!(text.contains("/nonexistent/ca.pem"), "{text}");
        assert!(text.contains("does not exist"), "{text}");
    }
}

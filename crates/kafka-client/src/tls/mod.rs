//! TLS for broker connections (rustls): trust roots, client certificates, handshake, and
//! errors that say which certificate was wrong and why.
//!
//! PROVISIONAL: interface only, replaced by the real implementation.

use crate::config::{BrokerAddress, TlsOptions};

/// A TLS failure, naming the certificate or file at fault and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Placeholder until the TLS module lands.
    #[error("TLS failure: {0}")]
    Other(String),
}

/// Builds TLS sessions to brokers.
#[derive(Debug, Clone)]
pub struct TlsConnector {}

/// What a handshake negotiated.
#[derive(Debug, Clone)]
pub struct TlsSessionInfo {
    /// e.g. TLSv1.3
    pub protocol_version: String,
    /// IANA cipher suite name.
    pub cipher_suite: String,
    /// The broker's certificate.
    pub peer_certificate: Option<CertificateSummary>,
}

/// The broker certificate's identity and validity.
#[derive(Debug, Clone)]
pub struct CertificateSummary {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Start of validity.
    pub not_before: time::OffsetDateTime,
    /// End of validity.
    pub not_after: time::OffsetDateTime,
    /// SANs.
    pub subject_alt_names: Vec<String>,
    /// Serial.
    pub serial: String,
}

impl TlsConnector {
    /// Loads files and builds the config.
    pub fn new(_options: &TlsOptions) -> Result<Self, TlsError> {
        Err(TlsError::Other("TLS is not available yet".into()))
    }

    /// Handshake.
    pub async fn connect(
        &self,
        _broker: &BrokerAddress,
        _tcp: tokio::net::TcpStream,
    ) -> Result<
        (
            tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
            TlsSessionInfo,
        ),
        TlsError,
    > {
        Err(TlsError::Other("TLS is not available yet".into()))
    }

    /// Warnings.
    pub fn warnings(&self) -> &[String] {
        &[]
    }
}

/// Classifies post-handshake TLS failures.
pub fn classify_io_error(
    _broker: &BrokerAddress,
    _err: &std::io::Error,
    _have_client_cert: bool,
) -> Option<TlsError> {
    None
}

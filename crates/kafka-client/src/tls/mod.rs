//! TLS for broker connections (rustls): trust roots, client certificates, handshake, and
//! errors that say which certificate was wrong and why.

/// A TLS failure, naming the certificate or file at fault and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Placeholder until the TLS module lands.
    #[error("TLS failure: {0}")]
    Other(String),
}

//! Connection settings of the client: where the brokers are, how to secure the connection,
//! and the limits that keep a slow or hostile peer from hanging or exhausting us.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use crate::address::{BrokerAddress, BrokerAddressError};
use crate::sasl::SaslMechanism;
use crate::secret::Secret;

/// Kafka's `security.protocol`: whether the connection uses TLS and whether it authenticates
/// with SASL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// No TLS, no SASL.
    Plaintext,
    /// TLS, optionally with a client certificate (mTLS).
    Ssl,
    /// SASL over a plain TCP connection.
    SaslPlaintext,
    /// SASL inside TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol, in the spelling used in configuration.
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Whether the connection is wrapped in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether the connection authenticates with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// The name as written in configuration (`SASL_SSL`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecurityProtocol {
    type Err = String;

    /// Exact names only (case-insensitive): an unknown value must never fall back to
    /// PLAINTEXT.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown security protocol `{s}`; use one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                )
            })
    }
}

/// TLS settings, used when the protocol is `SSL` or `SASL_SSL`.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// PEM file with one or more CA certificates. `None` uses the system trust store.
    pub ca_location: Option<PathBuf>,
    /// PEM client certificate chain for mTLS.
    pub certificate_location: Option<PathBuf>,
    /// PEM private key for the client certificate (PKCS#8, PKCS#1 RSA, SEC1 EC, or encrypted
    /// PKCS#8).
    pub key_location: Option<PathBuf>,
    /// Passphrase of an encrypted PKCS#8 key.
    pub key_password: Option<Secret>,
    /// Check that the broker's certificate names the host we connected to. Turning this off
    /// lets anyone with a certificate from the same CA impersonate the broker.
    pub verify_hostname: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            ca_location: None,
            certificate_location: None,
            key_location: None,
            key_password: None,
            verify_hostname: true,
        }
    }
}

/// Security of the connection: TLS and SASL as chosen by [`SecurityProtocol`].
#[derive(Debug, Clone)]
pub struct Security {
    /// Which layers are used.
    pub protocol: SecurityProtocol,
    /// TLS settings; ignored unless `protocol.uses_tls()`.
    pub tls: TlsOptions,
    /// The SASL mechanism with its credentials; required when `protocol.uses_sasl()`.
    pub sasl: Option<Arc<dyn SaslMechanism>>,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            protocol: SecurityProtocol::Plaintext,
            tls: TlsOptions::default(),
            sasl: None,
        }
    }
}

/// Everything the client needs to reach and talk to a cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Brokers to ask for the cluster's metadata; tried in order.
    pub bootstrap_servers: Vec<BrokerAddress>,
    /// Sent as `client.id` in every request header (shows up in broker logs and quotas).
    pub client_id: String,
    /// TLS and SASL.
    pub security: Security,
    /// Limit on TCP connect plus TLS handshake plus SASL authentication for one connection.
    pub connect_timeout: Duration,
    /// Limit on waiting for any one response. Fetch requests add their own `max_wait` to it.
    pub request_timeout: Duration,
    /// Largest response frame accepted; a larger length prefix closes the connection.
    pub max_response_bytes: usize,
    /// Requests sent on one connection before waiting for responses.
    pub max_in_flight_per_connection: usize,
    /// First delay before retrying a retriable failure; doubles up to `retry_backoff_max`,
    /// with jitter.
    pub retry_backoff: Duration,
    /// Upper bound of the retry delay.
    pub retry_backoff_max: Duration,
    /// How many times a retriable failure is retried before it is returned.
    pub max_retries: u32,
}

impl ClientConfig {
    /// Default request timeout, as in the Java client.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default connect (+TLS+SASL) timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default response size bound: Kafka's `socket.request.max.bytes`.
    pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;

    /// A configuration with defaults for everything but the bootstrap servers.
    pub fn new(bootstrap_servers: Vec<BrokerAddress>) -> Self {
        Self {
            bootstrap_servers,
            client_id: "kafka-backup".to_owned(),
            security: Security::default(),
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            max_response_bytes: Self::DEFAULT_MAX_RESPONSE_BYTES,
            max_in_flight_per_connection: 5,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(5),
            max_retries: 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_addresses() {
        assert_eq!(
            "localhost:9092".parse::<BrokerAddress>().unwrap(),
            BrokerAddress::new("localhost", 9092)
        );
        assert_eq!(
            "SASL_SSL://kafka-0.svc:9093"
                .parse::<BrokerAddress>()
                .unwrap(),
            BrokerAddress::new("kafka-0.svc", 9093)
        );
        let v6 = "[::1]:9092".parse::<BrokerAddress>().unwrap();
        assert_eq!(v6, BrokerAddress::new("::1", 9092));
        assert_eq!(v6.to_string(), "[::1]:9092");
        for bad in [
            "localhost",
            ":9092",
            "host:0",
            "host:99999",
            "host:abc",
            "a b:1",
        ] {
            let e = bad.parse::<BrokerAddress>().unwrap_err();
            assert!(e.to_string().contains("host:port"), "{e}");
        }
    }

    #[test]
    fn security_protocol_is_strict() {
        assert_eq!(
            "sasl_ssl".parse::<SecurityProtocol>().unwrap(),
            SecurityProtocol::SaslSsl
        );
        let e = "TLS".parse::<SecurityProtocol>().unwrap_err();
        assert!(e.contains("unknown security protocol `TLS`"), "{e}");
    }
}

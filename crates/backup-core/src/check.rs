//! `check`: connect to a cluster exactly as a backup or restore would, and report what was
//! negotiated with every broker (TLS, SASL, API versions) so an operator can fix problems
//! before the first real run.

use std::time::Duration;

use kafka_client::versions::{SUPPORTED_APIS, api_name};
use kafka_client::{ClientConfig, ConnectionInfo, KafkaClient};
use serde::Serialize;

/// Certificates expiring sooner than this are flagged.
pub const CERT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// What `check` found for one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// `source` or `target`.
    pub role: String,
    /// True when every broker connected and authenticated.
    pub ok: bool,
    /// The cluster id, if the cluster reports one.
    pub cluster_id: Option<String>,
    /// The controller's node id, if known.
    pub controller_id: Option<i32>,
    /// The configured bootstrap servers.
    pub bootstrap_servers: Vec<String>,
    /// The configured security protocol.
    pub security_protocol: String,
    /// One entry per broker in the cluster metadata.
    pub brokers: Vec<BrokerCheck>,
    /// Topics the principal can see (Metadata only lists topics it may describe).
    pub topics_visible: usize,
    /// How many of those are internal topics.
    pub internal_topics_visible: usize,
    /// Things to fix or be aware of (expiring certificates, weak settings).
    pub warnings: Vec<String>,
}

/// One broker's connection.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerCheck {
    /// Node id.
    pub id: i32,
    /// Advertised address.
    pub address: String,
    /// Whether a connection with the configured security could be set up.
    pub ok: bool,
    /// Why not, if it could not.
    pub error: Option<String>,
    /// TLS details when TLS is used.
    pub tls: Option<TlsCheck>,
    /// SASL details when SASL is used.
    pub sasl: Option<SaslCheck>,
    /// The version chosen for every API this tool uses.
    pub api_versions: Vec<ApiVersionCheck>,
}

/// What a TLS handshake negotiated.
#[derive(Debug, Clone, Serialize)]
pub struct TlsCheck {
    /// e.g. `TLSv1.3`.
    pub protocol_version: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The broker's certificate.
    pub certificate: Option<CertificateCheck>,
}

/// The broker certificate's identity and validity.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateCheck {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Subject alternative names.
    pub subject_alt_names: Vec<String>,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Whole days until expiry (negative once expired).
    pub days_left: i64,
}

/// What SASL authenticated.
#[derive(Debug, Clone, Serialize)]
pub struct SaslCheck {
    /// Mechanism.
    pub mechanism: String,
    /// User name.
    pub user: Option<String>,
    /// Session lifetime announced by the broker (KIP-368), 0 for none.
    pub session_lifetime_ms: i64,
}

/// Negotiation of one API.
#[derive(Debug, Clone, Serialize)]
pub struct ApiVersionCheck {
    /// API name.
    pub api: String,
    /// API key.
    pub key: i16,
    /// Version chosen, `None` when the broker cannot serve this tool's needs.
    pub chosen: Option<i16>,
    /// Versions the broker offers.
    pub broker_range: Option<(i16, i16)>,
    /// Versions this tool supports.
    pub our_range: (i16, i16),
}

/// Connects to the cluster described by `config` and to every broker it lists. Fails only
/// when the cluster cannot be reached at all; individual broker failures are in the report.
pub async fn check_cluster(role: &str, config: ClientConfig) -> kafka_client::Result<CheckReport> {
    let bootstrap_servers = config
        .bootstrap_servers
        .iter()
        .map(|b| b.to_string())
        .collect();
    let security_protocol = config.security.protocol.to_string();
    let client = KafkaClient::connect(config).await?;
    let metadata = client.metadata();
    let mut warnings: Vec<String> = client.warnings().to_vec();

    let mut brokers = Vec::new();
    for broker in metadata.brokers.values() {
        let check = match client.broker_connection(broker.id).await {
            Ok(conn) => broker_check(broker.id, conn.info(), &mut warnings),
            Err(e) => BrokerCheck {
                id: broker.id,
                address: broker.address.to_string(),
                ok: false,
                error: Some(e.to_string()),
                tls: None,
                sasl: None,
                api_versions: Vec::new(),
            },
        };
        brokers.push(check);
    }
    let ok = !brokers.is_empty() && brokers.iter().all(|b| b.ok);
    Ok(CheckReport {
        role: role.to_owned(),
        ok,
        cluster_id: metadata.cluster_id.clone(),
        controller_id: metadata.controller_id,
        bootstrap_servers,
        security_protocol,
        topics_visible: metadata.topics.len(),
        internal_topics_visible: metadata.topics.values().filter(|t| t.is_internal).count(),
        brokers,
        warnings,
    })
}

fn broker_check(id: i32, info: &ConnectionInfo, warnings: &mut Vec<String>) -> BrokerCheck {
    let address = info.broker.to_string();
    let tls = info.tls.as_ref().map(|t| {
        let certificate = t.peer_certificate.as_ref().map(|c| {
            let now = time::OffsetDateTime::now_utc();
            let days_left = (c.not_after - now).whole_days();
            if c.expires_within(CERT_EXPIRY_WARNING) {
                warnings.push(format!(
                    "the certificate of broker {id} ({address}) expires in {days_left} days ({}); renew it before it \
                     does, or connections will fail",
                    c.not_after
                ));
            }
            CertificateCheck {
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                subject_alt_names: c.subject_alt_names.clone(),
                not_after: c
                    .not_after
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| c.not_after.to_string()),
                days_left,
            }
        });
        TlsCheck {
            protocol_version: t.protocol_version.clone(),
            cipher_suite: t.cipher_suite.clone(),
            certificate,
        }
    });
    let sasl = info.sasl.as_ref().map(|s| SaslCheck {
        mechanism: s.mechanism.clone(),
        user: s.principal.clone(),
        session_lifetime_ms: s.session_lifetime_ms,
    });
    let negotiated = info.api_versions.negotiated();
    let api_versions: Vec<ApiVersionCheck> = SUPPORTED_APIS
        .iter()
        .zip(negotiated)
        .map(|(ours, n)| ApiVersionCheck {
            api: api_name(n.key),
            key: n.key,
            chosen: n.chosen,
            broker_range: n.broker,
            our_range: (ours.min, ours.max),
        })
        .collect();
    let missing: Vec<&str> = api_versions
        .iter()
        .filter(|a| a.chosen.is_none())
        .map(|a| a.api.as_str())
        .collect();
    let (ok, error) = if missing.is_empty() {
        (true, None)
    } else {
        (
            false,
            Some(format!(
                "this broker lacks API versions this tool needs: {}; upgrade the broker",
                missing.join(", ")
            )),
        )
    };
    BrokerCheck {
        id,
        address,
        ok,
        error,
        tls,
        sasl,
        api_versions,
    }
}

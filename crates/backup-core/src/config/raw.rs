//! The configuration file as written: serde structs that mirror the YAML keys, with no
//! cross-field checks. `validate` turns them into the model the rest of the program uses.
//!
//! Every struct denies unknown keys, because a misspelt security key that is silently ignored
//! is how TLS or SASL gets turned off by accident. Every string goes through
//! [`ConfigString`]/[`ConfigSecret`] so that `${VAR}` works in all of them.

use kafka_client::SecurityProtocol;
use serde::Deserialize;

use super::Mode;
use super::backup::{RawBackup, RawTopics};
use std::collections::BTreeMap;

use super::env::{ConfigBool, ConfigSecret, ConfigString, ConfigU64};
use super::vocabulary::{Keyword, KeywordSet, RawServers, find_name};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub mode: Keyword<Mode>,
    pub backup_id: ConfigString,
    pub source: Option<RawCluster>,
    pub target: Option<RawCluster>,
    pub backup: Option<RawBackup>,
    pub storage: Option<super::storage::RawStorage>,
    pub restore: Option<super::restore::RawRestore>,
    pub audit: Option<super::audit::RawAudit>,
}

/// `source:` or `target:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub bootstrap_servers: RawServers,
    pub client_id: Option<ConfigString>,
    pub connect_timeout_ms: Option<ConfigU64>,
    pub request_timeout_ms: Option<ConfigU64>,
    pub max_response_bytes: Option<ConfigU64>,
    pub retry_backoff_ms: Option<ConfigU64>,
    pub retry_backoff_max_ms: Option<ConfigU64>,
    pub security: Option<RawSecurity>,
    pub topics: Option<RawTopics>,
}

/// `security:`, with OSO kafka-backup's key names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecurity {
    pub security_protocol: Option<Keyword<SecurityProtocol>>,
    pub sasl_mechanism: Option<Keyword<RawMechanism>>,
    pub sasl_username: Option<ConfigString>,
    pub sasl_password: Option<ConfigSecret>,
    pub ssl_ca_location: Option<ConfigString>,
    pub ssl_certificate_location: Option<ConfigString>,
    pub ssl_key_location: Option<ConfigString>,
    pub ssl_key_password: Option<ConfigSecret>,
    pub ssl_endpoint_identification_algorithm: Option<Keyword<EndpointIdentification>>,
    pub sasl_kerberos_service_name: Option<ConfigString>,
    pub sasl_keytab_path: Option<ConfigString>,
    pub sasl_krb5_config_path: Option<ConfigString>,
    pub sasl_kerberos_principal: Option<ConfigString>,
    pub sasl_oauthbearer_token_endpoint_url: Option<ConfigString>,
    pub sasl_oauthbearer_client_id: Option<ConfigString>,
    pub sasl_oauthbearer_client_secret: Option<ConfigSecret>,
    pub sasl_oauthbearer_scope: Option<ConfigString>,
    pub sasl_oauthbearer_extensions: Option<BTreeMap<String, ConfigString>>,
    pub sasl_oauthbearer_token_file: Option<ConfigString>,
    pub sasl_oauthbearer_ca_location: Option<ConfigString>,
    pub sasl_oauthbearer_allow_http: Option<ConfigBool>,
    pub sasl_options: Option<BTreeMap<String, ConfigSecret>>,
}

impl KeywordSet for Mode {
    const NAMES: &'static [&'static str] = &["backup", "restore"];

    fn from_name(name: &str) -> Option<Self> {
        find_name(
            name,
            &[("backup", Mode::Backup), ("restore", Mode::Restore)],
        )
    }
}

impl KeywordSet for SecurityProtocol {
    const NAMES: &'static [&'static str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

    fn from_name(name: &str) -> Option<Self> {
        // Exact names only: an unknown protocol must be an error, never a fallback.
        name.parse().ok()
    }
}

/// `sasl_mechanism` as written, including the mechanisms this build cannot do yet, so that
/// those fail with an explanation rather than as an unknown value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    Gssapi,
    OAuthBearer,
    /// A mechanism a downstream crate registered (`kafka_client::sasl::register_mechanism`).
    Plugin(&'static str),
}

impl KeywordSet for RawMechanism {
    const NAMES: &'static [&'static str] = &[
        "PLAIN",
        "SCRAM-SHA-256",
        "SCRAM-SHA-512",
        "GSSAPI",
        "OAUTHBEARER",
    ];

    fn from_name(name: &str) -> Option<Self> {
        find_name(
            name,
            &[
                ("PLAIN", Self::Plain),
                ("SCRAM-SHA-256", Self::ScramSha256),
                ("SCRAM-SHA256", Self::ScramSha256),
                ("SCRAM-SHA-512", Self::ScramSha512),
                ("SCRAM-SHA512", Self::ScramSha512),
                ("GSSAPI", Self::Gssapi),
                ("OAUTHBEARER", Self::OAuthBearer),
            ],
        )
        .or_else(|| {
            kafka_client::sasl::registered_mechanism(name).map(|(name, _)| Self::Plugin(name))
        })
    }
}

/// `ssl_endpoint_identification_algorithm`. Kafka reads an empty value as "off"; here only
/// the explicit `none` turns hostname verification off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndpointIdentification {
    Https,
    None,
}

impl KeywordSet for EndpointIdentification {
    const NAMES: &'static [&'static str] = &["https", "none"];

    fn from_name(name: &str) -> Option<Self> {
        find_name(name, &[("https", Self::Https), ("none", Self::None)])
    }
}

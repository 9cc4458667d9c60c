//! The validated configuration: every value checked, every default applied, and the
//! combinations that would weaken security rejected. Holding one of these means the file
//! was consistent; what is left to fail is the network.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kafka_client::{BrokerAddress, ClientConfig, Secret, Security, SecurityProtocol, TlsOptions};

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Copy topics from the `source` cluster to storage.
    Backup,
    /// Write a backup from storage to the `target` cluster.
    Restore,
}

impl Mode {
    /// The name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Restore => "restore",
        }
    }

    /// The key of the cluster section this mode reads: `source` or `target`.
    pub fn cluster_key(self) -> &'static str {
        match self {
            Self::Backup => "source",
            Self::Restore => "target",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configuration file that parsed and passed every check.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// Backup or restore.
    pub mode: Mode,
    /// Name of the backup: `[A-Za-z0-9._-]`, 1 to 128 characters, no leading dot, so it is
    /// safe as a storage path component.
    pub backup_id: String,
    /// The cluster of this run: `source` in backup mode, `target` in restore mode.
    pub cluster: KafkaClusterConfig,
    /// Topics and settings of a backup; present exactly in `mode: backup`.
    pub backup: Option<super::BackupPlan>,
    /// Settings of a restore; present exactly in `mode: restore`.
    pub restore: Option<super::RestoreSettings>,
    /// `storage:`. Optional so that `check` works without it; backup and restore get it
    /// through [`LoadedConfig::require_storage`].
    pub storage: Option<crate::storage::StorageConfig>,
    /// Timeouts and retries of storage requests (`storage.connect_timeout_ms`,
    /// `request_timeout_ms`, `max_retries`, `retry_timeout_ms`); the defaults without them.
    pub storage_options: crate::storage::StorageOptions,
    /// `audit:`: where this command's audit events go besides the command line's sinks.
    pub audit: super::AuditSettings,
    /// Lines of the file that hold a secret written literally instead of as `${VAR}` (for the
    /// posture check: a file with secrets in it must be guarded like the secrets).
    pub literal_secret_lines: Vec<u32>,
    /// The private key files the configuration names (signing key, local encryption keys,
    /// age identities), with the key that names each: the posture check looks at who may
    /// read them.
    pub private_files: Vec<(String, std::path::PathBuf)>,
    /// Settings that are allowed but weaken security (hostname verification off, passwords in
    /// clear text, a private key readable by others). The CLI logs each one at warn level;
    /// none contains a secret.
    pub warnings: Vec<String>,
}

impl LoadedConfig {
    /// The `source` cluster, in backup mode.
    pub fn source(&self) -> Option<&KafkaClusterConfig> {
        (self.mode == Mode::Backup).then_some(&self.cluster)
    }

    /// The `target` cluster, in restore mode.
    pub fn target(&self) -> Option<&KafkaClusterConfig> {
        (self.mode == Mode::Restore).then_some(&self.cluster)
    }
}

/// One line for the startup log: what runs against which brokers, and how it is secured.
/// Never shows a password.
impl fmt::Display for LoadedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cluster = &self.cluster;
        let servers: Vec<String> = cluster
            .bootstrap_servers
            .iter()
            .map(ToString::to_string)
            .collect();
        write!(
            f,
            "{} `{}`: {} {} over {}",
            self.mode,
            self.backup_id,
            self.mode.cluster_key(),
            servers.join(","),
            cluster.security.protocol
        )?;
        if let Some(sasl) = &cluster.security.sasl {
            write!(f, " ({} as {})", sasl.mechanism, sasl.username)?;
        }
        if cluster.security.protocol.uses_tls() && !cluster.security.tls.verify_hostname {
            f.write_str(" [hostname verification OFF]")?;
        }
        Ok(())
    }
}

/// How to reach and authenticate to one Kafka cluster.
#[derive(Debug, Clone)]
pub struct KafkaClusterConfig {
    /// Brokers to bootstrap from, in the order given.
    pub bootstrap_servers: Vec<BrokerAddress>,
    /// `client.id` sent to the brokers.
    pub client_id: String,
    /// TCP connect + TLS handshake + SASL for one connection.
    pub connect_timeout: Duration,
    /// Wait for any one response.
    pub request_timeout: Duration,
    /// Largest response frame accepted.
    pub max_response_bytes: usize,
    /// First retry delay.
    pub retry_backoff: Duration,
    /// Largest retry delay.
    pub retry_backoff_max: Duration,
    /// TLS and SASL.
    pub security: SecurityConfig,
}

/// The connection's security, checked for consistency: TLS settings only when the protocol
/// uses TLS, SASL settings exactly when it uses SASL.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub protocol: SecurityProtocol,
    /// TLS settings; all defaults (system trust store, hostname verification on) unless the
    /// protocol uses TLS.
    pub tls: TlsOptions,
    /// Present exactly when the protocol uses SASL.
    pub sasl: Option<SaslSettings>,
}

/// SASL mechanisms this build can authenticate with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanismName {
    /// `PLAIN`: the password is sent as is, so only safe inside TLS.
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `OAUTHBEARER`: OAuth 2.0 bearer tokens.
    OAuthBearer,
    /// `GSSAPI`: Kerberos V5, in binaries built with the `gssapi` feature.
    Gssapi,
    /// A mechanism a downstream crate registered, by its registered name.
    Plugin(&'static str),
}

impl SaslMechanismName {
    /// The canonical name, as sent in SaslHandshake and accepted by
    /// `kafka_client::sasl::mechanism_from_config`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer => "OAUTHBEARER",
            Self::Gssapi => "GSSAPI",
            Self::Plugin(name) => name,
        }
    }
}

impl fmt::Display for SaslMechanismName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated SASL mechanism with its credentials. [`KafkaClusterConfig::client_config`]
/// turns it into the client's mechanism object.
#[derive(Debug, Clone)]
pub struct SaslSettings {
    /// Which mechanism.
    pub mechanism: SaslMechanismName,
    /// Who authenticates, for reports: the SASL user, the OAuth client id, or the token file.
    pub username: String,
    /// What proves it.
    pub credentials: SaslCredentials,
}

/// The proof of identity a mechanism presents.
#[derive(Debug, Clone)]
pub enum SaslCredentials {
    /// PLAIN and SCRAM: the user's password (non-empty; prints as `***`).
    Password(Secret),
    /// OAUTHBEARER: where the tokens come from (the client secret prints as `***`).
    OAuth(kafka_client::sasl::OAuthBearerConfig),
    /// GSSAPI: a keytab and the brokers' service name.
    Kerberos(KerberosSettings),
    /// A registered mechanism's settings (`sasl_options` values print as `***`).
    Plugin(kafka_client::sasl::PluginSettings),
}

/// GSSAPI's settings, checked: the keytab (and krb5.conf, when given) could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosSettings {
    /// `sasl_kerberos_service_name`: the brokers' principals are `SERVICE/HOST`.
    pub service_name: String,
    /// `sasl_keytab_path`.
    pub keytab_path: std::path::PathBuf,
    /// `sasl_kerberos_principal`; `None` logs in as the keytab's first principal.
    pub principal: Option<String>,
    /// `sasl_krb5_config_path`; `None` uses `KRB5_CONFIG` or /etc/krb5.conf.
    pub krb5_config_path: Option<std::path::PathBuf>,
}

impl SaslSettings {
    /// The password, for the mechanisms that use one.
    pub fn password(&self) -> Option<&Secret> {
        match &self.credentials {
            SaslCredentials::Password(p) => Some(p),
            SaslCredentials::Plugin(p) => p.password.as_ref(),
            SaslCredentials::OAuth(_) | SaslCredentials::Kerberos(_) => None,
        }
    }

    /// Builds the client's mechanism object.
    pub fn mechanism(
        &self,
    ) -> Result<Arc<dyn kafka_client::sasl::SaslMechanism>, kafka_client::sasl::SaslError> {
        match &self.credentials {
            SaslCredentials::Password(password) => kafka_client::sasl::mechanism_from_config(
                self.mechanism.as_str(),
                &self.username,
                password.clone(),
            ),
            SaslCredentials::OAuth(config) => Ok(Arc::new(kafka_client::sasl::OAuthBearer::new(
                config.clone(),
            )?)),
            SaslCredentials::Kerberos(settings) => kerberos_mechanism(settings),
            SaslCredentials::Plugin(settings) => {
                let (_, factory) = kafka_client::sasl::registered_mechanism(settings.mechanism)
                    .ok_or_else(|| {
                        kafka_client::sasl::SaslError::Setup(format!(
                            "SASL mechanism {} is not registered in this binary",
                            settings.mechanism
                        ))
                    })?;
                factory.build(settings)
            }
        }
    }
}

impl KafkaClusterConfig {
    /// The client configuration for this cluster, and the SASL settings to turn into
    /// `security.sasl`.
    ///
    /// The returned [`ClientConfig`] has `security.sasl` set to `None` even when the protocol
    /// uses SASL: the caller must build the mechanism from the returned [`SaslSettings`] and
    /// store it there before connecting. The second value is `Some` exactly when
    /// `security.protocol.uses_sasl()`, so a client config is never handed out with SASL
    /// silently missing. Settings the file does not have (in-flight requests, retry count)
    /// keep [`ClientConfig::new`]'s defaults.
    pub fn to_client_config(&self) -> (ClientConfig, Option<SaslSettings>) {
        let mut client = ClientConfig::new(self.bootstrap_servers.clone());
        client.client_id = self.client_id.clone();
        client.connect_timeout = self.connect_timeout;
        client.request_timeout = self.request_timeout;
        client.max_response_bytes = self.max_response_bytes;
        client.retry_backoff = self.retry_backoff;
        client.retry_backoff_max = self.retry_backoff_max;
        client.security = Security {
            protocol: self.security.protocol,
            tls: self.security.tls.clone(),
            sasl: None,
        };
        (client, self.security.sasl.clone())
    }

    /// The complete client configuration, with the SASL mechanism built from the validated
    /// credentials. This is what commands connect with.
    pub fn client_config(&self) -> Result<ClientConfig, kafka_client::sasl::SaslError> {
        let (mut client, sasl) = self.to_client_config();
        if let Some(sasl) = sasl {
            client.security.sasl = Some(sasl.mechanism()?);
        }
        Ok(client)
    }
}

/// Logs in from the keytab: one KDC round trip at start-up, during which the runtime's other
/// tasks move to other threads (see kafka-client's GSSAPI module).
#[cfg(feature = "gssapi")]
fn kerberos_mechanism(
    settings: &KerberosSettings,
) -> Result<Arc<dyn kafka_client::sasl::SaslMechanism>, kafka_client::sasl::SaslError> {
    let config = kafka_client::sasl::GssapiConfig {
        service_name: settings.service_name.clone(),
        keytab_path: settings.keytab_path.clone(),
        principal: settings.principal.clone(),
        krb5_config_path: settings.krb5_config_path.clone(),
    };
    Ok(Arc::new(kafka_client::sasl::Gssapi::new(config)?))
}

/// The configuration layer refuses GSSAPI in a binary without the feature; this is the same
/// refusal for settings made some other way.
#[cfg(not(feature = "gssapi"))]
fn kerberos_mechanism(
    _settings: &KerberosSettings,
) -> Result<Arc<dyn kafka_client::sasl::SaslMechanism>, kafka_client::sasl::SaslError> {
    kafka_client::sasl::mechanism_from_config("GSSAPI", "", kafka_client::Secret::new(""))
}

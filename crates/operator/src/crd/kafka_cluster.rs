//! The Kafka cluster a backup reads from or a restore writes to, and its credentials.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::refs::{ConfigMapKeyRef, SecretKeyRef};

/// How to reach and authenticate to a Kafka cluster.
///
/// SASL credentials come from exactly one of `saslSecret` (PLAIN, SCRAM), `kerberos` (GSSAPI)
/// or `oauth` (OAUTHBEARER); TLS material from `caSecret` and `tlsSecret`, which are mounted as
/// they are, so a Strimzi cluster CA Secret and KafkaUser Secret keep rotating in place.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaClusterSpec {
    /// Bootstrap brokers as host:port, e.g. `my-cluster-kafka-bootstrap:9093`.
    #[schemars(length(min = 1))]
    pub bootstrap_servers: Vec<String>,
    /// Transport and authentication: PLAINTEXT (the default), SSL, SASL_PLAINTEXT or SASL_SSL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_protocol: Option<SecurityProtocol>,
    /// A Secret with TLS material: the CA (`caKey`) and/or the client certificate and key
    /// (`certKey`, `keyKey`) for mutual TLS, e.g. a Strimzi KafkaUser Secret with `user.crt`
    /// and `user.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<TlsSecretRef>,
    /// A Secret holding only the CA certificate that signed the brokers' certificates, e.g.
    /// Strimzi's `<cluster>-cluster-ca-cert` with key `ca.crt`. Takes precedence over
    /// `tlsSecret.caKey`. Without any CA the system trust store of the image is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<CaSecretRef>,
    /// SASL PLAIN or SCRAM credentials from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_secret: Option<SaslSecretRef>,
    /// SASL GSSAPI (Kerberos) with a keytab from a Secret. Needs an image built with the
    /// `gssapi` feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kerberos: Option<KerberosSpec>,
    /// SASL OAUTHBEARER: OAuth 2.0 client credentials, or a token file kept current by
    /// someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSpec>,
}

/// The Kafka security protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    /// TLS, optionally with a client certificate.
    #[serde(rename = "SSL")]
    Ssl,
    /// SASL authentication without TLS: credentials or data cross the network in clear.
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    /// SASL authentication over TLS.
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// The spelling of kafka-backup's `security_protocol` configuration key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether the protocol uses TLS (so `caSecret` and `tlsSecret` apply).
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether the protocol authenticates with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// TLS material in one Secret. Give `caKey`, or `certKey` with `keyKey`, or all three.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSecretRef {
    /// Name of the Secret (same namespace as this resource).
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key holding the CA certificate(s), PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub ca_key: Option<String>,
    /// Key holding the client certificate chain, PEM (e.g. Strimzi's `user.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub cert_key: Option<String>,
    /// Key holding the client private key: PKCS#8, PKCS#1 RSA, SEC1 EC or encrypted PKCS#8
    /// (e.g. Strimzi's `user.key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub key_key: Option<String>,
    /// Key holding the password of an encrypted private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub key_password_key: Option<String>,
}

/// A Secret holding the CA certificate of the brokers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaSecretRef {
    /// Name of the Secret, e.g. Strimzi's `<cluster>-cluster-ca-cert`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key holding the CA certificate(s), PEM, e.g. `ca.crt`.
    #[schemars(length(min = 1))]
    pub ca_key: String,
}

/// SASL PLAIN or SCRAM credentials from a Secret.
///
/// The user name comes from the Secret (`usernameKey`) or is given as it is (`username`, for
/// Strimzi's SCRAM KafkaUser Secrets, which hold only `password`): exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SaslSecretRef {
    /// Name of the Secret (same namespace as this resource).
    #[schemars(length(min = 1))]
    pub name: String,
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SCRAM-SHA256 and SCRAM-SHA512
    /// are accepted too). GSSAPI and OAUTHBEARER are configured with `kerberos` and `oauth`.
    pub mechanism: SaslMechanism,
    /// Key holding the user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub username_key: Option<String>,
    /// The user name itself, when the Secret does not hold it (Strimzi's KafkaUser name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub username: Option<String>,
    /// Key holding the password (Strimzi: `password`).
    #[schemars(length(min = 1))]
    pub password_key: String,
}

/// A SASL mechanism whose credentials are a user name and a password.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// PLAIN: the password is sent as it is; use it with SASL_SSL only.
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM-SHA-256.
    #[serde(rename = "SCRAM-SHA-256", alias = "SCRAM-SHA256")]
    ScramSha256,
    /// SCRAM-SHA-512.
    #[serde(rename = "SCRAM-SHA-512", alias = "SCRAM-SHA512")]
    ScramSha512,
}

// The peer tool's newer docs spell SCRAM without the second dash and the API server must
// accept both spellings; schemars leaves serde aliases out of the enum, so the schema is
// written by hand.
impl JsonSchema for SaslMechanism {
    fn schema_name() -> Cow<'static, str> {
        "SaslMechanism".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // One `const` per value, as schemars derives enums, so kube's rewriter turns it into
        // an `enum` and an optional field stays `nullable` rather than listing null.
        json_schema!({
            "oneOf": [
                { "type": "string", "const": "PLAIN" },
                { "type": "string", "const": "SCRAM-SHA-256" },
                { "type": "string", "const": "SCRAM-SHA-512" },
                { "type": "string", "const": "SCRAM-SHA256" },
                { "type": "string", "const": "SCRAM-SHA512" },
            ]
        })
    }
}

impl SaslMechanism {
    /// The spelling of kafka-backup's `sasl_mechanism` configuration key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL GSSAPI (Kerberos) with a keytab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KerberosSpec {
    /// The keytab holding the client principal's key, mounted read-only.
    pub keytab_secret: SecretKeyRef,
    /// Service name of the brokers' principals (`kafka` for `kafka/HOST@REALM`).
    #[schemars(length(min = 1))]
    pub service_name: String,
    /// Client principal; default the keytab's first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub principal: Option<String>,
    /// A ConfigMap key holding krb5.conf; default the image's /etc/krb5.conf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub krb5_config_map: Option<ConfigMapKeyRef>,
}

/// SASL OAUTHBEARER. Give either `tokenEndpointUrl` with `clientId` and `clientSecretSecret`,
/// or `tokenSecret` (a token someone else keeps current; re-read when it changes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuthSpec {
    /// The identity provider's token endpoint (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub token_endpoint_url: Option<String>,
    /// OAuth client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub client_id: Option<String>,
    /// The OAuth client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_secret: Option<SecretKeyRef>,
    /// Requested scope(s), space separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// SASL extensions (RFC 7628), e.g. `logicalCluster`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, String>,
    /// CA certificate(s) of the token endpoint; default the system trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_ca_secret: Option<SecretKeyRef>,
    /// A Secret key holding a token that someone else renews; mounted as a file, so updates
    /// of the Secret reach the running Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<SecretKeyRef>,
}

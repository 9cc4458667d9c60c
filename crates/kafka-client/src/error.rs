//! The client's error type, classified by what the caller can do about each failure.

use std::fmt;
use std::io;
use std::time::Duration;

use kafka_protocol::ResponseError;

use crate::sasl::SaslError;
use crate::tls::TlsError;

/// Result alias for client operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is, which decides what a caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The configuration is wrong; fix it and run again.
    Config,
    /// TLS setup or handshake failed (certificates, keys, versions).
    Tls,
    /// SASL authentication failed (credentials, mechanism).
    Authentication,
    /// The broker refused an operation to this principal (ACLs).
    Authorization,
    /// The network failed or a peer did not answer in time; usually worth retrying.
    Network,
    /// The peer broke the protocol (garbage, wrong correlation id, oversized frame).
    Protocol,
    /// The broker lacks an API version this tool needs.
    Unsupported,
    /// The broker answered with an error code.
    Broker,
}

/// A failure of the Kafka client. Every message names the broker or resource involved and,
/// where there is one, the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration cannot work.
    #[error("invalid Kafka client configuration: {0}")]
    Config(String),

    /// TLS could not be set up or the handshake failed.
    #[error(transparent)]
    Tls(#[from] TlsError),

    /// The TCP connection could not be made.
    #[error(
        "cannot connect to broker {broker}: {source}. Check the host and port in bootstrap_servers (or the \
         broker's advertised listener), that the broker is running, and that this host can reach it \
         (DNS, firewall, security groups)"
    )]
    Connect {
        /// The address dialled.
        broker: String,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },

    /// A connect or request did not complete in time.
    #[error("timed out after {} ms waiting for {what} from {broker}. {hint}", after.as_millis())]
    Timeout {
        /// The broker.
        broker: String,
        /// What was awaited (e.g. "the TCP connection", "the ApiVersions response").
        what: String,
        /// How long we waited.
        after: Duration,
        /// What to check.
        hint: &'static str,
    },

    /// The connection closed while a request was outstanding.
    #[error("the connection to {broker} closed {context}")]
    Disconnected {
        /// The broker.
        broker: String,
        /// What was happening, and the likely cause.
        context: String,
    },

    /// The peer sent bytes that are not a valid response; the connection was closed.
    #[error(
        "{broker} sent an invalid response ({detail}); the connection was closed. If this port is not a \
         Kafka listener, or it expects a different security_protocol (TLS vs plaintext), fix bootstrap_servers \
         or security_protocol"
    )]
    Protocol {
        /// The broker.
        broker: String,
        /// What was wrong.
        detail: String,
    },

    /// The broker rejected our SASL credentials, or the exchange failed.
    #[error(
        "SASL {mechanism} authentication as `{user}` failed on {broker}: {reason}. {}",
        authentication_hint(.mechanism)
    )]
    Authentication {
        /// The broker.
        broker: String,
        /// The mechanism used.
        mechanism: String,
        /// The user (never the password).
        user: String,
        /// The broker's message or the mechanism's failure.
        reason: String,
    },

    /// The mechanism failed on the client side (e.g. the server signature did not verify).
    #[error("SASL {mechanism} exchange with {broker} failed: {source}")]
    Sasl {
        /// The broker.
        broker: String,
        /// The mechanism used.
        mechanism: String,
        /// The mechanism's failure.
        #[source]
        source: SaslError,
    },

    /// The mechanism could not get its credentials ready before connecting (an OAuth token
    /// endpoint refused, a token file is missing).
    #[error("SASL {mechanism}: {source}")]
    SaslCredentials {
        /// The mechanism used.
        mechanism: String,
        /// What went wrong, with the setting to fix.
        #[source]
        source: SaslError,
    },

    /// The listener does not offer the configured mechanism.
    #[error(
        "{broker} does not enable SASL mechanism {mechanism} on this listener; it offers {}. Set sasl_mechanism \
         to one of those, or enable {mechanism} on the broker",
        if enabled.is_empty() { "none".to_owned() } else { enabled.join(", ") }
    )]
    SaslMechanismNotEnabled {
        /// The broker.
        broker: String,
        /// The mechanism asked for.
        mechanism: String,
        /// What the broker offers.
        enabled: Vec<String>,
    },

    /// The broker is too old for an API this tool needs.
    #[error(
        "{broker} does not support {api} at version {min} or newer (it offers {offered}); this tool needs a \
         broker at Kafka 2.1 or later for this operation. Upgrade the broker"
    )]
    UnsupportedVersion {
        /// The broker.
        broker: String,
        /// The API's name.
        api: &'static str,
        /// The lowest version this client can speak.
        min: i16,
        /// What the broker offers, e.g. "versions 0..2" or "nothing".
        offered: String,
    },

    /// The broker answered with an error code.
    #[error("{}", BrokerErrorDisplay(self))]
    Broker {
        /// The broker, or "cluster" when it was not one broker's answer.
        broker: String,
        /// The API that failed.
        api: &'static str,
        /// The resource (topic, topic-partition, group) the error is about, if any.
        resource: Option<String>,
        /// The error code.
        code: ResponseError,
        /// The broker's error message, if it sent one.
        message: Option<String>,
    },
}

struct BrokerErrorDisplay<'a>(&'a Error);

impl fmt::Display for BrokerErrorDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Error::Broker {
            broker,
            api,
            resource,
            code,
            message,
        } = self.0
        else {
            return Ok(());
        };
        write!(f, "{api} failed on {broker}")?;
        if let Some(r) = resource {
            write!(f, " for {r}")?;
        }
        write!(f, ": {} (error code {})", error_name(*code), code.code())?;
        if let Some(m) = message.as_deref().filter(|m| !m.is_empty()) {
            write!(f, ": {m}")?;
        }
        if let Some(hint) = hint_for(*code) {
            write!(f, ". {hint}")?;
        }
        Ok(())
    }
}

/// Kafka's canonical name for an error code, e.g. `NOT_LEADER_OR_FOLLOWER`.
pub fn error_name(code: ResponseError) -> String {
    if let ResponseError::Unknown(c) = code {
        return format!("UNKNOWN_ERROR_{c}");
    }
    let camel = format!("{code}");
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

fn hint_for(code: ResponseError) -> Option<&'static str> {
    use ResponseError as E;
    Some(match code {
        E::TopicAuthorizationFailed => {
            "The principal lacks a topic ACL: grant it, e.g. `kafka-acls --add --allow-principal User:<user> \
             --operation Describe --operation Read --topic <topic>` (Write and Create for restore)"
        }
        E::GroupAuthorizationFailed => {
            "The principal lacks a group ACL: grant it, e.g. `kafka-acls --add --allow-principal User:<user> \
             --operation Describe --operation Read --group <group>`"
        }
        E::ClusterAuthorizationFailed => {
            "The principal lacks a cluster ACL: grant it, e.g. `kafka-acls --add --allow-principal User:<user> \
             --operation Describe --cluster` (IdempotentWrite for restore on brokers before Kafka 2.8)"
        }
        E::TransactionalIdAuthorizationFailed => {
            "The principal lacks a transactional-id ACL (Write, Describe)"
        }
        E::UnknownTopicOrPartition => "Check the topic name; it may not exist on this cluster",
        E::PolicyViolation => "A broker-side create-topic policy refused the request",
        E::TopicAlreadyExists => {
            "Use a different target name or allow writing into the existing topic"
        }
        E::UnsupportedVersion => "The broker rejected the API version; upgrade the broker",
        _ => return None,
    })
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) => ErrorKind::Config,
            Error::Tls(TlsError::HandshakeIo { .. }) => ErrorKind::Network,
            Error::Tls(e) if e.is_local() => ErrorKind::Config,
            Error::Tls(_) => ErrorKind::Tls,
            Error::Connect { .. } | Error::Timeout { .. } | Error::Disconnected { .. } => {
                ErrorKind::Network
            }
            Error::Protocol { .. } => ErrorKind::Protocol,
            Error::Authentication { .. }
            | Error::Sasl { .. }
            | Error::SaslCredentials { .. }
            | Error::SaslMechanismNotEnabled { .. } => ErrorKind::Authentication,
            Error::UnsupportedVersion { .. } => ErrorKind::Unsupported,
            Error::Broker { code, .. } => {
                if is_authorization(*code) {
                    ErrorKind::Authorization
                } else {
                    ErrorKind::Broker
                }
            }
        }
    }

    /// Whether trying again (after a backoff, possibly on a new connection or after a metadata
    /// refresh) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::Disconnected { .. } => true,
            // The network failed mid-handshake: nothing about certificates is wrong.
            Error::Tls(TlsError::HandshakeIo { .. }) => true,
            Error::Broker { code, .. } => code.is_retriable() || needs_metadata_refresh(*code),
            _ => false,
        }
    }

    /// The broker error code, if this is a broker's error answer.
    pub fn code(&self) -> Option<ResponseError> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Whether an error code means our view of leaders is stale and metadata must be refreshed.
pub fn needs_metadata_refresh(code: ResponseError) -> bool {
    use ResponseError as E;
    matches!(
        code,
        E::NotLeaderOrFollower
            | E::UnknownTopicOrPartition
            | E::LeaderNotAvailable
            | E::FencedLeaderEpoch
            | E::UnknownLeaderEpoch
            | E::ReplicaNotAvailable
            | E::NotCoordinator
            | E::CoordinatorNotAvailable
            | E::UnknownTopicId
            | E::InconsistentTopicId
            | E::OffsetNotAvailable
            | E::KafkaStorageError
            | E::BrokerNotAvailable
    )
}

/// Whether an error code is an authorization (ACL) refusal.
pub fn is_authorization(code: ResponseError) -> bool {
    use ResponseError as E;
    matches!(
        code,
        E::TopicAuthorizationFailed
            | E::GroupAuthorizationFailed
            | E::ClusterAuthorizationFailed
            | E::TransactionalIdAuthorizationFailed
            | E::DelegationTokenAuthorizationFailed
    )
}

/// What to check when a broker rejects the credentials: a password mechanism's user, for
/// Kerberos the broker's key and the host name in its service principal, for OAuth the
/// token's audience, issuer and scope, and for a plugin its own options.
fn authentication_hint(mechanism: &str) -> String {
    match mechanism.to_ascii_uppercase().as_str() {
        "GSSAPI" => "Check that the broker's keytab holds the current key of its service principal \
                     (sasl_kerberos_service_name/HOST, with HOST as in bootstrap_servers and the \
                     advertised listeners), that the client principal may use the cluster, and that \
                     sasl_mechanism matches the listener"
            .to_owned(),
        "OAUTHBEARER" => "Check that the identity provider issues tokens the brokers accept: the \
                          audience, issuer and signing keys the brokers expect \
                          (sasl.oauthbearer.expected.audience, expected.issuer, jwks.endpoint.url), \
                          the scope they require (sasl_oauthbearer_scope), and that sasl_mechanism \
                          matches the listener"
            .to_owned(),
        "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" => format!(
            "Check sasl_username and sasl_password, that this user exists on the cluster with \
             {mechanism} credentials, and that sasl_mechanism matches the listener"
        ),
        _ => format!(
            "Check the credentials in sasl_options for {mechanism}, that this identity may use the \
             cluster, and that sasl_mechanism matches the listener"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_error_names() {
        assert_eq!(
            error_name(ResponseError::NotLeaderOrFollower),
            "NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(error_name(ResponseError::Unknown(999)), "UNKNOWN_ERROR_999");
    }

    #[test]
    fn authorization_errors_carry_the_acl_hint() {
        let e = Error::Broker {
            broker: "b1:9092".into(),
            api: "Fetch",
            resource: Some("topic orders".into()),
            code: ResponseError::TopicAuthorizationFailed,
            message: None,
        };
        assert_eq!(e.kind(), ErrorKind::Authorization);
        assert!(!e.is_retriable());
        let text = e.to_string();
        assert!(text.contains("TOPIC_AUTHORIZATION_FAILED"), "{text}");
        assert!(text.contains("kafka-acls"), "{text}");
        assert!(text.contains("topic orders"), "{text}");
    }

    #[test]
    fn leader_changes_are_retriable() {
        let e = Error::Broker {
            broker: "b1:9092".into(),
            api: "Fetch",
            resource: None,
            code: ResponseError::FencedLeaderEpoch,
            message: None,
        };
        assert!(e.is_retriable());
    }
}

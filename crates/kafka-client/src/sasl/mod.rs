//! SASL mechanisms behind a small trait, so that the connection code drives any mechanism
//! (PLAIN, SCRAM, OAUTHBEARER, and mechanisms from other crates) through the same SaslHandshake /
//! SaslAuthenticate loop without knowing its details.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::address::BrokerAddress;
use crate::secret::Secret;

#[cfg(feature = "gssapi")]
pub mod gssapi;
pub mod oauth;
pub mod plain;
pub mod registry;
pub mod scram;

#[cfg(test)]
mod tests;

#[cfg(feature = "gssapi")]
pub use gssapi::{Gssapi, GssapiConfig};
pub use oauth::{ClientCredentials, OAuthBearer, OAuthBearerConfig, TokenSource};
pub use plain::Plain;
pub use registry::{
    PluginSettings, SaslMechanismFactory, register_mechanism, registered_mechanism,
    registered_mechanisms,
};
pub use scram::{Scram, ScramAlgorithm};

/// A configured SASL mechanism with its credentials. One value serves every connection; each
/// connection runs its own [`SaslExchange`].
///
/// The contract, for implementations outside this crate:
/// - The client sends SaslHandshake with [`name`](Self::name); a broker that does not enable
///   it gets a clear error listing what it does enable, so the mechanism never sees that case.
/// - [`start`](Self::start) is called once per authentication of one connection, with the
///   broker that connection goes to: the initial one, and each KIP-368 re-authentication.
///   Per-broker credentials (a Kerberos service principal `service/host`, a signature over
///   the host) are made here. It runs on the connection's task, so it must not block for
///   long: fetch tokens in the background and hand out the current one.
/// - The exchange's messages travel in SaslAuthenticate requests. A broker rejection
///   (error code) is reported by the client with the broker's message; a rejection the
///   mechanism reads inside a server message (SCRAM's `e=`, OAUTHBEARER's error JSON) is
///   returned as [`SaslError::ServerRejected`] with an explanation for the operator.
/// - When the broker announces a session lifetime, the client re-authenticates the
///   connection before it ends, between requests, by calling `start` again, unless
///   [`reauthenticates`](Self::reauthenticates) says the mechanism cannot; then the
///   connection is drained and replaced instead.
pub trait SaslMechanism: Send + Sync + fmt::Debug {
    /// The mechanism name sent in SaslHandshake, e.g. `SCRAM-SHA-512`.
    fn name(&self) -> &str;

    /// The identity this mechanism authenticates as, for reports (never a secret).
    fn principal(&self) -> Option<&str>;

    /// Starts one authentication exchange with `broker` (as advertised in metadata, or as
    /// given in bootstrap_servers).
    fn start(&self, broker: &BrokerAddress) -> Result<Box<dyn SaslExchange>, SaslError>;

    /// Whether a connection may be re-authenticated in place (KIP-368). When false, a
    /// connection whose session nears its lifetime is drained and a new one opened.
    fn reauthenticates(&self) -> bool {
        true
    }

    /// Gets ready for an authentication: obtains what the exchanges need (an OAuth token)
    /// and starts keeping it current. Called before the client's first connection (a
    /// failure there is a credentials or configuration problem, reported before any broker
    /// is contacted), before each new connection authenticates, and before each
    /// re-authentication, so it must be cheap when there is nothing to do.
    fn prepare(&self) -> BoxFuture<'_, Result<(), SaslError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// One authentication exchange: the client's side of a challenge/response conversation.
pub trait SaslExchange: Send {
    /// Called first with `None`, then with each message the broker sent back. Returns the next
    /// message to send, or [`SaslStep::Done`] once the exchange is complete (for SCRAM, only
    /// after the server's signature has been verified).
    fn step(&mut self, server_message: Option<&[u8]>) -> Result<SaslStep, SaslError>;
}

/// What the client does next in an exchange.
///
/// `Debug` prints only the length of a response: a PLAIN response carries the password in
/// clear, and a SCRAM proof allows an offline guess at it, so neither may reach a log.
#[derive(Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send these bytes in a SaslAuthenticate request.
    Respond(Vec<u8>),
    /// Authentication finished on the client's side.
    Done,
}

impl fmt::Debug for SaslStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Respond(bytes) => write!(f, "Respond(<{} bytes>)", bytes.len()),
            Self::Done => f.write_str("Done"),
        }
    }
}

/// A failure inside a mechanism (not a broker's rejection, which the connection reports).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The broker's final SCRAM message did not carry the signature that only a server which
    /// knows the password can compute.
    #[error(
        "the broker's SCRAM server signature did not verify: the server could not prove that it knows the password; \
         this points at a man-in-the-middle or a misconfigured broker, so the connection was dropped"
    )]
    ServerSignatureMismatch,
    /// The broker rejected the exchange inside a mechanism message: an error in the SCRAM
    /// exchange (`e=...`), or a Kerberos reply that shows the broker refused or could not
    /// prove its identity.
    #[error("the broker rejected the SASL exchange: {0}")]
    ServerRejected(String),
    /// A broker message did not follow the mechanism's grammar.
    #[error("the broker sent a malformed SASL message: {0}")]
    MalformedServerMessage(String),
    /// The mechanism could not be set up (bad credentials format, missing support).
    #[error("{0}")]
    Setup(String),
    /// The credentials the exchange needs could not be obtained (an OAuth token endpoint
    /// refused, a token file is missing).
    #[error("{0}")]
    Credentials(String),
    /// The exchange was driven out of order: stepped after it finished or failed, or without
    /// the broker message it needs. This is a bug in the caller, not something a broker did.
    #[error("SASL exchange driven out of order: {0}")]
    OutOfSequence(&'static str),
}

/// The mechanism names [`mechanism_from_config`] accepts, spelled as Kafka spells them.
pub const SUPPORTED_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Builds the mechanism named in configuration (`sasl_mechanism`), with its credentials.
///
/// Accepts `PLAIN`, `SCRAM-SHA-256` and `SCRAM-SHA-512` in any case, and `SCRAM-SHA256` /
/// `SCRAM-SHA512`, which other Kafka tools accept.
/// OAUTHBEARER (which has no password: see [`OAuthBearer`]) and unknown names are a
/// [`SaslError::Setup`] that says what to use instead, never a silent fallback to another
/// mechanism. `GSSAPI` needs a keytab rather than a password: it is built with
/// `Gssapi::new` (cargo feature `gssapi`), and here it is an error that says so (or,
/// without the feature, which build flag adds it).
pub fn mechanism_from_config(
    name: &str,
    username: &str,
    password: Secret,
) -> Result<Arc<dyn SaslMechanism>, SaslError> {
    let canonical = name.trim().to_ascii_uppercase();
    match canonical.as_str() {
        "PLAIN" => Ok(Arc::new(Plain::new(username, password)?)),
        "SCRAM-SHA-256" | "SCRAM-SHA256" => Ok(Arc::new(Scram::sha256(username, password)?)),
        "SCRAM-SHA-512" | "SCRAM-SHA512" => Ok(Arc::new(Scram::sha512(username, password)?)),
        "GSSAPI" => Err(SaslError::Setup(gssapi_not_by_name().to_owned())),
        "OAUTHBEARER" => Err(SaslError::Setup(
            "SASL mechanism OAUTHBEARER takes no user name and password: it presents OAuth \
             tokens, configured with sasl_oauthbearer_token_endpoint_url, \
             sasl_oauthbearer_client_id and sasl_oauthbearer_client_secret (or \
             sasl_oauthbearer_token_file); build it with OAuthBearer::new"
                .to_owned(),
        )),
        _ => Err(SaslError::Setup(format!(
            "unknown SASL mechanism `{}`; use one of {}",
            shorten(name.trim(), 64),
            SUPPORTED_MECHANISMS.join(", ")
        ))),
    }
}

/// Why `GSSAPI` cannot be built from a username and password: it needs a keytab, and in
/// builds without Kerberos it is not there at all.
fn gssapi_not_by_name() -> &'static str {
    if cfg!(feature = "gssapi") {
        "SASL mechanism GSSAPI (Kerberos) logs in with a keytab, not sasl_username and \
         sasl_password: set sasl_kerberos_service_name and sasl_keytab_path (and optionally \
         sasl_kerberos_principal and sasl_krb5_config_path)"
    } else {
        "SASL mechanism GSSAPI (Kerberos) is not built into this binary: build kafka-backup \
         with `cargo build --release --features gssapi` (needs the MIT Kerberos headers and \
         libclang, Debian/Ubuntu packages libkrb5-dev and libclang-dev), or give this user \
         SCRAM-SHA-512 credentials on the cluster and set sasl_mechanism to SCRAM-SHA-512"
    }
}

/// Rejects credentials that cannot work, at configuration time rather than on the first
/// connection. An empty value is almost always an unset environment variable.
fn check_credentials(mechanism: &str, username: &str, password: &Secret) -> Result<(), SaslError> {
    if username.is_empty() {
        return Err(SaslError::Setup(format!(
            "the SASL username for {mechanism} is empty; set sasl_username"
        )));
    }
    if username.contains('\0') {
        return Err(SaslError::Setup(format!(
            "the SASL username for {mechanism} contains a NUL character, which SASL cannot carry"
        )));
    }
    if password.is_empty() {
        return Err(SaslError::Setup(format!(
            "the SASL password for {mechanism} is empty; set sasl_password (is its environment \
             variable set?)"
        )));
    }
    Ok(())
}

/// Makes untrusted text (a broker's error value, a mistyped name) safe to put in a message:
/// control characters would let a peer forge log lines, and length is bounded.
pub(crate) fn shorten(text: &str, max_chars: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max_chars)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(max_chars).is_some() {
        out.push_str("...");
    }
    out
}

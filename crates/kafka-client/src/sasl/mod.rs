//! SASL mechanisms behind a small trait, so that the connection code drives any mechanism
//! (PLAIN, SCRAM, and later GSSAPI or OAUTHBEARER) through the same SaslHandshake /
//! SaslAuthenticate loop without knowing its details.

use std::fmt;

/// A configured SASL mechanism with its credentials. One value serves every connection; each
/// connection runs its own [`SaslExchange`].
pub trait SaslMechanism: Send + Sync + fmt::Debug {
    /// The mechanism name sent in SaslHandshake, e.g. `SCRAM-SHA-512`.
    fn name(&self) -> &str;

    /// The identity this mechanism authenticates as, for reports (never a secret).
    fn principal(&self) -> Option<&str>;

    /// Starts one authentication exchange.
    fn start(&self) -> Result<Box<dyn SaslExchange>, SaslError>;
}

/// One authentication exchange: the client's side of a challenge/response conversation.
pub trait SaslExchange: Send {
    /// Called first with `None`, then with each message the broker sent back. Returns the next
    /// message to send, or [`SaslStep::Done`] once the exchange is complete (for SCRAM, only
    /// after the server's signature has been verified).
    fn step(&mut self, server_message: Option<&[u8]>) -> Result<SaslStep, SaslError>;
}

/// What the client does next in an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send these bytes in a SaslAuthenticate request.
    Respond(Vec<u8>),
    /// Authentication finished on the client's side.
    Done,
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
    /// The broker sent an error in the SCRAM exchange (`e=...`).
    #[error("the broker rejected the SCRAM exchange: {0}")]
    ServerRejected(String),
    /// A broker message did not follow the mechanism's grammar.
    #[error("the broker sent a malformed SASL message: {0}")]
    MalformedServerMessage(String),
    /// The mechanism could not be set up (bad credentials format, missing support).
    #[error("{0}")]
    Setup(String),
}

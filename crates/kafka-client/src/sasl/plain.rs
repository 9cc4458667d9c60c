//! SASL PLAIN (RFC 4616): the client sends `authzid NUL authcid NUL passwd` once.
//!
//! Implemented directly rather than through rsasl. rsasl's PLAIN client would need a
//! `SASLConfig`, a callback and a session to produce three fields joined by NUL, and it reports
//! `Finished` after its first step and must not be stepped again, so handling the broker's
//! reply would be ours anyway. Writing the message here also lets us size its buffer exactly,
//! so no reallocation leaves a stray copy of the password on the heap.
//!
//! PLAIN sends the password in clear: use it only over `SASL_SSL`.

use std::fmt;
use std::sync::Arc;

use super::{SaslError, SaslExchange, SaslMechanism, SaslStep, check_credentials};
use crate::address::BrokerAddress;
use crate::secret::Secret;

const NAME: &str = "PLAIN";

/// The PLAIN mechanism with its credentials. The authorization identity is left empty, so the
/// broker authorizes as the authenticated user, as Kafka's own clients do.
///
/// Like Kafka's clients and brokers, the username and password are sent as their UTF-8 bytes
/// without SASLprep, so a password works the same here as in the Java client.
pub struct Plain {
    username: String,
    // Shared with each exchange so that starting one copies nothing; `Secret` wipes the value
    // when the last holder drops it.
    password: Arc<Secret>,
}

impl Plain {
    /// A PLAIN mechanism for `username` and `password`.
    ///
    /// Fails if either is empty or contains NUL: NUL is PLAIN's field separator, so a NUL in
    /// the username would let the password field be shifted (RFC 4616 forbids it in both).
    pub fn new(username: impl Into<String>, password: Secret) -> Result<Self, SaslError> {
        let username = username.into();
        check_credentials(NAME, &username, &password)?;
        if password.expose().contains('\0') {
            return Err(SaslError::Setup(
                "the SASL password contains a NUL character, which PLAIN cannot carry".to_owned(),
            ));
        }
        Ok(Self {
            username,
            password: Arc::new(password),
        })
    }
}

impl fmt::Debug for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plain")
            .field("username", &self.username)
            .field("password", &*self.password)
            .finish()
    }
}

impl SaslMechanism for Plain {
    fn name(&self) -> &str {
        NAME
    }

    fn principal(&self) -> Option<&str> {
        Some(&self.username)
    }

    fn start(&self, _broker: &BrokerAddress) -> Result<Box<dyn SaslExchange>, SaslError> {
        Ok(Box::new(self.exchange()))
    }
}

impl Plain {
    pub(crate) fn exchange(&self) -> PlainExchange {
        PlainExchange {
            username: self.username.clone(),
            password: Arc::clone(&self.password),
            phase: Phase::Start,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    AwaitReply,
    Done,
    Failed,
}

/// One PLAIN exchange: the credentials message, then the broker's empty reply.
pub(crate) struct PlainExchange {
    username: String,
    password: Arc<Secret>,
    phase: Phase,
}

impl fmt::Debug for PlainExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainExchange")
            .field("username", &self.username)
            .field("password", &*self.password)
            .field("phase", &self.phase)
            .finish()
    }
}

impl PlainExchange {
    fn message(&self) -> Vec<u8> {
        let password = self.password.expose().as_bytes();
        let mut message = Vec::with_capacity(2 + self.username.len() + password.len());
        // Empty authzid, then authcid, then passwd.
        message.push(0);
        message.extend_from_slice(self.username.as_bytes());
        message.push(0);
        message.extend_from_slice(password);
        message
    }
}

impl SaslExchange for PlainExchange {
    fn step(&mut self, server_message: Option<&[u8]>) -> Result<SaslStep, SaslError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Failed);
        match (phase, server_message) {
            (Phase::Start, None) => {
                self.phase = Phase::AwaitReply;
                Ok(SaslStep::Respond(self.message()))
            }
            (Phase::Start, Some(_)) => Err(SaslError::OutOfSequence(
                "PLAIN is client-first, but the exchange was started with a broker message",
            )),
            (Phase::AwaitReply, None) => Err(SaslError::OutOfSequence(
                "PLAIN was stepped without the broker's reply to the credentials",
            )),
            (Phase::AwaitReply, Some([])) => {
                self.phase = Phase::Done;
                Ok(SaslStep::Done)
            }
            // RFC 4616 has no server data and Kafka's PLAIN server always answers with none,
            // so anything else means the peer is not the broker we think; fail closed.
            (Phase::AwaitReply, Some(reply)) => Err(SaslError::MalformedServerMessage(format!(
                "PLAIN expects an empty reply after the credentials, but the broker sent {} bytes",
                reply.len()
            ))),
            (Phase::Done, _) => Err(SaslError::OutOfSequence(
                "the PLAIN exchange was stepped after it had finished",
            )),
            (Phase::Failed, _) => Err(SaslError::OutOfSequence(
                "the PLAIN exchange was stepped after it had failed",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::tests::test_broker;

    const PASSWORD: &str = "pass";

    fn plain() -> Plain {
        Plain::new("user", Secret::new(PASSWORD)).unwrap()
    }

    #[test]
    fn sends_exact_rfc4616_message_then_done_on_empty_reply() {
        let mechanism = plain();
        assert_eq!(mechanism.name(), "PLAIN");
        assert_eq!(mechanism.principal(), Some("user"));
        let mut exchange = mechanism.start(&test_broker()).unwrap();
        assert_eq!(
            exchange.step(None).unwrap(),
            SaslStep::Respond(b"\0user\0pass".to_vec())
        );
        assert_eq!(exchange.step(Some(b"")).unwrap(), SaslStep::Done);
        assert!(matches!(
            exchange.step(Some(b"")),
            Err(SaslError::OutOfSequence(_))
        ));
    }

    #[test]
    fn non_empty_reply_fails_closed() {
        let mut exchange = plain().start(&test_broker()).unwrap();
        exchange.step(None).unwrap();
        let err = exchange.step(Some(b"unexpected")).unwrap_err();
        assert_eq!(
            err,
            SaslError::MalformedServerMessage(
                "PLAIN expects an empty reply after the credentials, but the broker sent 10 bytes"
                    .to_owned()
            )
        );
        // A failed exchange stays failed: it cannot be coaxed into `Done` afterwards.
        assert!(matches!(
            exchange.step(Some(b"")),
            Err(SaslError::OutOfSequence(_))
        ));
    }

    #[test]
    fn misuse_is_reported_not_panicked() {
        let mut exchange = plain().start(&test_broker()).unwrap();
        assert!(matches!(
            exchange.step(Some(b"x")),
            Err(SaslError::OutOfSequence(_))
        ));

        let mut exchange = plain().start(&test_broker()).unwrap();
        exchange.step(None).unwrap();
        assert!(matches!(
            exchange.step(None),
            Err(SaslError::OutOfSequence(_))
        ));
    }

    #[test]
    fn each_start_is_independent() {
        let mechanism = plain();
        let mut a = mechanism.start(&test_broker()).unwrap();
        let mut b = mechanism.start(&test_broker()).unwrap();
        assert_eq!(a.step(None).unwrap(), b.step(None).unwrap());
        assert_eq!(a.step(Some(b"")).unwrap(), SaslStep::Done);
        // Finishing one exchange does not advance the other.
        assert_eq!(b.step(Some(b"")).unwrap(), SaslStep::Done);
    }

    #[test]
    fn utf8_credentials_are_sent_verbatim() {
        let mechanism = Plain::new("us\u{e9}r", Secret::new("p\u{e4}ss w")).unwrap();
        let mut exchange = mechanism.start(&test_broker()).unwrap();
        assert_eq!(
            exchange.step(None).unwrap(),
            SaslStep::Respond("\0us\u{e9}r\0p\u{e4}ss w".as_bytes().to_vec())
        );
    }

    #[test]
    fn rejects_credentials_that_cannot_be_framed() {
        for (user, pass) in [
            ("", "pass"),
            ("user", ""),
            ("us\0er", "pass"),
            ("user", "pa\0ss"),
        ] {
            let err = Plain::new(user, Secret::new(pass)).unwrap_err();
            assert!(matches!(err, SaslError::Setup(_)), "{user:?}: {err:?}");
            assert!(!err.to_string().contains("pa\0ss"), "{err}");
        }
    }
}

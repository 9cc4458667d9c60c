//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks them: client-first,
//! server-first, client-final, server-final, with no channel binding (`n,,`).
//!
//! The cryptography and the state machine are rsasl's SCRAM client. This module adds what a
//! client facing a hostile network needs on top of it:
//!
//! - Every broker message is checked against the SCRAM grammar before rsasl sees it. rsasl
//!   2.3.1's parsers index attributes as `&attr[0..2]` without a length check, so a broker
//!   message such as `r=...,s` or an empty server-final would panic inside rsasl; its state
//!   machine also panics if stepped again after an error. Neither can happen through this
//!   module: a message is rejected before rsasl sees it, and a failed exchange is never stepped
//!   again. As a last line of defence the rsasl call runs under `catch_unwind`.
//! - The PBKDF2 iteration count must lie in Kafka's range (4096 to 16384). Without a ceiling a
//!   broker (or anyone in front of it) could make the client spin for hours on one
//!   handshake; without a floor it could ask for a proof that is cheap to brute-force offline.
//! - rsasl's errors are mapped to [`SaslError`] by the phase the exchange is in, because rsasl
//!   does not export the type or kind of its mechanism errors.
//!
//! `Done` is returned only when rsasl has finished the exchange, and rsasl finishes a SCRAM
//! client only after the server-final `v=` matched the server signature it computed.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::slice;
use std::sync::Arc;

use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::{SCRAM_SHA256, SCRAM_SHA512};
use rsasl::prelude::{Mechanism, Registry, SASLClient, SASLConfig, Session, SessionError, State};
use rsasl::property::{AuthId, Password};

use super::{SaslError, SaslExchange, SaslMechanism, SaslStep, check_credentials, shorten};
use crate::address::BrokerAddress;
use crate::secret::Secret;

/// The lowest PBKDF2 iteration count accepted from a broker: Kafka's minimum for SCRAM
/// credentials, which its own client enforces too.
pub const MIN_ITERATIONS: u32 = 4096;

/// The highest PBKDF2 iteration count accepted from a broker: Kafka's maximum for SCRAM
/// credentials, so no Kafka broker asks for more.
pub const MAX_ITERATIONS: u32 = 16384;

/// Real server-first and server-final messages are under 200 bytes; the bound keeps a hostile
/// broker from making us parse or hash megabytes.
const MAX_SERVER_MESSAGE_LEN: usize = 4096;

/// Which hash a SCRAM mechanism uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramAlgorithm {
    /// SCRAM-SHA-256 (RFC 7677).
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramAlgorithm {
    /// The mechanism name as Kafka spells it in SaslHandshake, e.g. `SCRAM-SHA-256`.
    pub fn mechanism_name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub(crate) fn rsasl_mechanism(self) -> &'static Mechanism {
        match self {
            Self::Sha256 => &SCRAM_SHA256,
            Self::Sha512 => &SCRAM_SHA512,
        }
    }
}

impl fmt::Display for ScramAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mechanism_name())
    }
}

/// A SCRAM mechanism with its credentials, shared by every connection; each
/// [`start`](SaslMechanism::start) begins an exchange with a fresh random client nonce.
///
/// The username is escaped as RFC 5802 requires (`=` becomes `=3D`, `,` becomes `=2C`), as
/// Kafka's clients do. Neither username nor password is SASLprep'd, matching Kafka, whose
/// broker stores credentials derived from the raw UTF-8 password.
pub struct Scram {
    algorithm: ScramAlgorithm,
    username: String,
    config: Arc<SASLConfig>,
}

impl Scram {
    /// A SCRAM-SHA-256 mechanism for `username` and `password`.
    pub fn sha256(username: impl Into<String>, password: Secret) -> Result<Self, SaslError> {
        Self::new(ScramAlgorithm::Sha256, username, password)
    }

    /// A SCRAM-SHA-512 mechanism for `username` and `password`.
    pub fn sha512(username: impl Into<String>, password: Secret) -> Result<Self, SaslError> {
        Self::new(ScramAlgorithm::Sha512, username, password)
    }

    /// A SCRAM mechanism using `algorithm`. Fails if the username or password is empty or the
    /// username contains NUL, which SCRAM cannot carry.
    pub fn new(
        algorithm: ScramAlgorithm,
        username: impl Into<String>,
        password: Secret,
    ) -> Result<Self, SaslError> {
        let username = username.into();
        check_credentials(algorithm.mechanism_name(), &username, &password)?;
        // `SASLConfig::with_credentials` would copy the password into a plain `String` inside
        // the config, kept (and never wiped) for as long as the config lives. Our callback
        // instead lends rsasl the bytes of the zeroizing `Secret` only while it derives the
        // salted password. rsasl still keeps that derivation's ClientKey and ServerKey
        // (password-equivalent for this salt) in its own buffers until the exchange is
        // dropped, and does not wipe them; that is outside our control.
        let callback = Credentials {
            authid: username.clone(),
            password: Arc::new(password),
        };
        let config = SASLConfig::builder()
            .with_registry(Registry::with_mechanisms(slice::from_ref(
                algorithm.rsasl_mechanism(),
            )))
            .with_callback(callback)
            .map_err(|e| {
                SaslError::Setup(format!("could not set up {algorithm} with rsasl: {e}"))
            })?;
        Ok(Self {
            algorithm,
            username,
            config,
        })
    }

    /// The hash this mechanism uses.
    pub fn algorithm(&self) -> ScramAlgorithm {
        self.algorithm
    }
}

impl fmt::Debug for Scram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scram")
            .field("mechanism", &self.algorithm.mechanism_name())
            .field("username", &self.username)
            .field("password", &crate::secret::MASK)
            .finish()
    }
}

impl SaslMechanism for Scram {
    fn name(&self) -> &str {
        self.algorithm.mechanism_name()
    }

    fn principal(&self) -> Option<&str> {
        Some(&self.username)
    }

    fn start(&self, _broker: &BrokerAddress) -> Result<Box<dyn SaslExchange>, SaslError> {
        Ok(Box::new(self.exchange()?))
    }
}

impl Scram {
    pub(crate) fn exchange(&self) -> Result<ScramExchange, SaslError> {
        let mechname = self.algorithm.rsasl_mechanism().mechanism;
        let session = SASLClient::new(Arc::clone(&self.config))
            .start_suggested(&[mechname])
            .map_err(|e| {
                SaslError::Setup(format!(
                    "could not start a {} exchange with rsasl: {e}",
                    self.algorithm
                ))
            })?;
        Ok(ScramExchange {
            algorithm: self.algorithm,
            session,
            phase: Phase::Start,
        })
    }
}

/// Answers rsasl's requests for the credentials. Not `Debug`: nothing should format it.
struct Credentials {
    authid: String,
    password: Arc<Secret>,
}

impl SessionCallback for Credentials {
    fn callback(
        &self,
        _session_data: &SessionData,
        _context: &Context,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        // `satisfy` returns an opaque `Err` once it has answered, which must be propagated.
        // No authzid is offered, so the GS2 header stays `n,,` as Kafka expects.
        request
            .satisfy::<AuthId>(self.authid.as_str())?
            .satisfy::<Password>(self.password.expose().as_bytes())?;
        Ok(())
    }
}

enum Phase {
    Start,
    AwaitServerFirst { client_nonce: Vec<u8> },
    AwaitServerFinal,
    Done,
    Failed,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::AwaitServerFirst { .. } => "awaiting server-first",
            Self::AwaitServerFinal => "awaiting server-final",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// One SCRAM exchange, driving an rsasl client session.
pub(crate) struct ScramExchange {
    algorithm: ScramAlgorithm,
    session: Session,
    phase: Phase,
}

impl fmt::Debug for ScramExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramExchange")
            .field("mechanism", &self.algorithm.mechanism_name())
            .field("phase", &self.phase.name())
            .finish_non_exhaustive()
    }
}

/// Why a call into rsasl failed.
enum RsaslFailure {
    Session(SessionError),
    Panicked,
}

impl ScramExchange {
    /// Steps the rsasl session. A panic inside rsasl becomes an error, so that a parser bug
    /// there cannot take the process down.
    fn rsasl_step(&mut self, input: Option<&[u8]>) -> Result<(State, Vec<u8>), RsaslFailure> {
        let mut out = Vec::new();
        let session = &mut self.session;
        match panic::catch_unwind(AssertUnwindSafe(|| session.step(input, &mut out))) {
            Ok(Ok(state)) => Ok((state, out)),
            Ok(Err(e)) => Err(RsaslFailure::Session(e)),
            Err(_) => Err(RsaslFailure::Panicked),
        }
    }

    fn client_first(&mut self) -> Result<(SaslStep, Phase), SaslError> {
        let (state, message) = self.rsasl_step(None).map_err(|failure| match failure {
            RsaslFailure::Session(e) => SaslError::Setup(format!(
                "could not build the {} client-first message: {e}",
                self.algorithm
            )),
            RsaslFailure::Panicked => SaslError::Setup(format!(
                "rsasl panicked building the {} client-first message",
                self.algorithm
            )),
        })?;
        if state != State::Running {
            return Err(internal("rsasl finished after the client-first message"));
        }
        let client_nonce = client_first_nonce(&message).ok_or_else(|| {
            internal("rsasl built a client-first message that is not `n,,n=...,r=...`")
        })?;
        Ok((
            SaslStep::Respond(message),
            Phase::AwaitServerFirst { client_nonce },
        ))
    }

    fn client_final(
        &mut self,
        server_first: &[u8],
        client_nonce: &[u8],
    ) -> Result<(SaslStep, Phase), SaslError> {
        check_server_first(server_first, client_nonce)?;
        let (state, message) = self
            .rsasl_step(Some(server_first))
            .map_err(|failure| map_failure(failure, "server-first-message", None))?;
        if state != State::Running {
            return Err(internal("rsasl finished after the server-first message"));
        }
        Ok((SaslStep::Respond(message), Phase::AwaitServerFinal))
    }

    fn finish(&mut self, server_final: &[u8]) -> Result<(SaslStep, Phase), SaslError> {
        let rejection = check_server_final(server_final)?;
        let (state, _) = self.rsasl_step(Some(server_final)).map_err(|failure| {
            map_failure(failure, "server-final-message", rejection.as_deref())
        })?;
        match (state, rejection) {
            (State::Finished(_), None) => Ok((SaslStep::Done, Phase::Done)),
            // rsasl turns `e=` into an error; should it ever not, the broker still refused.
            (_, Some(rejection)) => Err(SaslError::ServerRejected(rejection)),
            (State::Running, None) => Err(internal(
                "rsasl wants more messages after the server-final message",
            )),
        }
    }
}

impl SaslExchange for ScramExchange {
    fn step(&mut self, server_message: Option<&[u8]>) -> Result<SaslStep, SaslError> {
        // Until a step succeeds the exchange counts as failed, so an error on any path leaves
        // rsasl's session (which panics if stepped after an error) untouched from then on.
        let phase = std::mem::replace(&mut self.phase, Phase::Failed);
        let (step, next) = match (phase, server_message) {
            (Phase::Start, None) => self.client_first()?,
            (Phase::Start, Some(_)) => {
                return Err(SaslError::OutOfSequence(
                    "SCRAM is client-first, but the exchange was started with a broker message",
                ));
            }
            (Phase::AwaitServerFirst { client_nonce }, Some(message)) => {
                self.client_final(message, &client_nonce)?
            }
            (Phase::AwaitServerFinal, Some(message)) => self.finish(message)?,
            (Phase::AwaitServerFirst { .. } | Phase::AwaitServerFinal, None) => {
                return Err(SaslError::OutOfSequence(
                    "SCRAM was stepped without the broker's message",
                ));
            }
            (Phase::Done, _) => {
                return Err(SaslError::OutOfSequence(
                    "the SCRAM exchange was stepped after it had finished",
                ));
            }
            (Phase::Failed, _) => {
                return Err(SaslError::OutOfSequence(
                    "the SCRAM exchange was stepped after it had failed",
                ));
            }
        };
        self.phase = next;
        Ok(step)
    }
}

fn internal(what: &str) -> SaslError {
    SaslError::Setup(format!("internal error in the SCRAM client: {what}"))
}

/// Maps a failed rsasl step on a broker message to our errors. rsasl's mechanism errors are
/// opaque (their type and kind are private), so the distinction comes from what we know: a
/// signature mismatch has its own `SessionError` variant, an `e=` server-final was recognised
/// by [`check_server_final`], and any other mechanism error means rsasl found the message bad.
fn map_failure(failure: RsaslFailure, message: &str, rejection: Option<&str>) -> SaslError {
    match failure {
        RsaslFailure::Session(SessionError::MutualAuthenticationFailed) => {
            SaslError::ServerSignatureMismatch
        }
        RsaslFailure::Session(SessionError::MechanismError(e)) => match rejection {
            Some(value) => SaslError::ServerRejected(value.to_owned()),
            None => SaslError::MalformedServerMessage(format!("{message} was refused: {e}")),
        },
        RsaslFailure::Session(e) => internal(&format!("rsasl failed on the {message}: {e}")),
        RsaslFailure::Panicked => SaslError::MalformedServerMessage(format!(
            "{message} made the SCRAM parser panic; the exchange was abandoned"
        )),
    }
}

/// The client nonce of our own client-first message, which must be `n,,n=<name>,r=<nonce>`:
/// Kafka accepts no channel-binding flag but `n` and we never send an authzid.
fn client_first_nonce(message: &[u8]) -> Option<Vec<u8>> {
    let bare = message.strip_prefix(b"n,,")?;
    let mut attributes = bare.split(|&b| b == b',');
    attributes.next()?.strip_prefix(b"n=")?;
    let nonce = attributes.next()?.strip_prefix(b"r=")?;
    (!nonce.is_empty() && attributes.next().is_none()).then(|| nonce.to_vec())
}

fn malformed(message: &str, problem: impl fmt::Display) -> SaslError {
    SaslError::MalformedServerMessage(format!("the SCRAM {message} {problem}"))
}

fn check_size(message: &[u8], name: &str) -> Result<(), SaslError> {
    if message.is_empty() {
        return Err(malformed(name, "is empty"));
    }
    if message.len() > MAX_SERVER_MESSAGE_LEN {
        return Err(malformed(
            name,
            format_args!(
                "is {} bytes long; no SCRAM server needs more than {MAX_SERVER_MESSAGE_LEN}",
                message.len()
            ),
        ));
    }
    Ok(())
}

/// `printable` of RFC 5802: the characters of a nonce.
fn is_printable(b: u8) -> bool {
    matches!(b, 0x21..=0x2B | 0x2D..=0x7E)
}

/// Padded standard base64, as RFC 5802 requires for salts and signatures.
fn is_base64(value: &[u8]) -> bool {
    if value.is_empty() || !value.len().is_multiple_of(4) {
        return false;
    }
    let body_len = value.len() - value.iter().rev().take_while(|&&b| b == b'=').count();
    value.len() - body_len <= 2
        && value[..body_len]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Extensions after the mandatory attributes are allowed but must still be attributes.
fn check_extensions<'a>(rest: impl Iterator<Item = &'a [u8]>, name: &str) -> Result<(), SaslError> {
    for extension in rest {
        match extension {
            [key, b'=', ..] if key.is_ascii_alphabetic() => {}
            _ => return Err(malformed(name, "has an attribute that is not `x=value`")),
        }
    }
    Ok(())
}

/// Checks a server-first-message (`r=<nonce>,s=<salt>,i=<count>[,ext]`) so that only a
/// well-formed one with sane parameters reaches rsasl.
fn check_server_first(message: &[u8], client_nonce: &[u8]) -> Result<(), SaslError> {
    const NAME: &str = "server-first-message";
    check_size(message, NAME)?;
    if !message.iter().all(|&b| (0x20..=0x7E).contains(&b)) {
        return Err(malformed(
            NAME,
            "contains bytes that are not printable ASCII",
        ));
    }
    let mut attributes = message.split(|&b| b == b',');
    let first = attributes.next().unwrap_or_default();
    if first.starts_with(b"m=") {
        return Err(malformed(
            NAME,
            "demands an extension (m=) this client does not support",
        ));
    }
    let nonce = first
        .strip_prefix(b"r=")
        .ok_or_else(|| malformed(NAME, "does not start with the nonce (r=)"))?;
    let salt = attributes
        .next()
        .and_then(|a| a.strip_prefix(b"s="))
        .ok_or_else(|| malformed(NAME, "has no salt (s=) after the nonce"))?;
    let iterations = attributes
        .next()
        .and_then(|a| a.strip_prefix(b"i="))
        .ok_or_else(|| malformed(NAME, "has no iteration count (i=) after the salt"))?;
    check_extensions(attributes, NAME)?;

    if !nonce.iter().all(|&b| is_printable(b)) {
        return Err(malformed(NAME, "has a nonce with characters SCRAM forbids"));
    }
    // The nonce must extend ours: this is what ties the broker's answer to this exchange.
    match nonce.strip_prefix(client_nonce) {
        Some(server_part) if !server_part.is_empty() => {}
        Some(_) => return Err(malformed(NAME, "has a nonce without a server part")),
        None => {
            return Err(malformed(
                NAME,
                "has a nonce that does not start with the client's nonce",
            ));
        }
    }
    if !is_base64(salt) {
        return Err(malformed(NAME, "has a salt that is not base64"));
    }
    let count = std::str::from_utf8(iterations)
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| malformed(NAME, "has an iteration count that is not a number"))?;
    if !(u64::from(MIN_ITERATIONS)..=u64::from(MAX_ITERATIONS)).contains(&count) {
        return Err(malformed(
            NAME,
            format_args!(
                "asks for {count} PBKDF2 iterations; Kafka uses {MIN_ITERATIONS} to \
                 {MAX_ITERATIONS}, and fewer would make the password cheap to guess from the proof"
            ),
        ));
    }
    Ok(())
}

/// Checks a server-final-message (`v=<signature>` or `e=<error>`, then optional extensions).
/// Returns the broker's error value, made safe to print, if it is an `e=`.
fn check_server_final(message: &[u8]) -> Result<Option<String>, SaslError> {
    const NAME: &str = "server-final-message";
    check_size(message, NAME)?;
    let mut attributes = message.split(|&b| b == b',');
    let first = attributes.next().unwrap_or_default();
    if let Some(error) = first.strip_prefix(b"e=") {
        // RFC 5802 lets the error value be any UTF-8; we only need to print it safely.
        let value = String::from_utf8_lossy(error);
        let value = if value.is_empty() {
            "(no reason given)".to_owned()
        } else {
            shorten(&value, 100)
        };
        return Ok(Some(value));
    }
    if !message.iter().all(|&b| (0x20..=0x7E).contains(&b)) {
        return Err(malformed(
            NAME,
            "contains bytes that are not printable ASCII",
        ));
    }
    let signature = first
        .strip_prefix(b"v=")
        .ok_or_else(|| malformed(NAME, "carries neither a signature (v=) nor an error (e=)"))?;
    if !is_base64(signature) {
        return Err(malformed(NAME, "has a signature that is not base64"));
    }
    check_extensions(attributes, NAME)?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::tests::{
        Broker, PASSWORD, respond, run_until_server_final, server_step, test_broker, text,
    };
    use rand::Rng;

    fn algorithms() -> [ScramAlgorithm; 2] {
        [ScramAlgorithm::Sha256, ScramAlgorithm::Sha512]
    }

    #[test]
    fn correct_password_completes_after_verifying_the_server() {
        for algorithm in algorithms() {
            let client = Scram::new(algorithm, "alice", Secret::new(PASSWORD)).unwrap();
            assert_eq!(client.name(), algorithm.mechanism_name());
            let broker = Broker::new(algorithm, "alice", PASSWORD);
            let mut t = run_until_server_final(&client, &broker);

            assert!(text(&t.server_final).starts_with("v="), "{algorithm}");
            assert_eq!(
                t.client.step(Some(&t.server_final)).unwrap(),
                SaslStep::Done
            );
            assert_eq!(
                t.client.step(Some(&t.server_final)),
                Err(SaslError::OutOfSequence(
                    "the SCRAM exchange was stepped after it had finished"
                ))
            );
        }
    }

    #[test]
    fn messages_have_the_shape_kafka_expects() {
        let client = Scram::sha512("alice", Secret::new(PASSWORD)).unwrap();
        let broker = Broker::new(ScramAlgorithm::Sha512, "alice", PASSWORD);
        let t = run_until_server_final(&client, &broker);

        let client_first = text(&t.client_first);
        let nonce = client_first
            .strip_prefix("n,,n=alice,r=")
            .unwrap_or_else(|| panic!("{client_first}"));
        assert!(nonce.len() >= 16, "{nonce}");
        assert!(nonce.bytes().all(is_printable), "{nonce}");

        let server_nonce = text(&t.server_first)
            .strip_prefix("r=")
            .and_then(|r| r.split(',').next())
            .unwrap();
        assert!(server_nonce.starts_with(nonce));
        // `biws` is base64 of the GS2 header `n,,`.
        let expected_prefix = format!("c=biws,r={server_nonce},p=");
        assert!(
            text(&t.client_final).starts_with(&expected_prefix),
            "{}",
            text(&t.client_final)
        );
    }

    #[test]
    fn wrong_password_is_rejected_by_the_server() {
        for algorithm in algorithms() {
            let client = Scram::new(algorithm, "alice", Secret::new("not the password")).unwrap();
            let broker = Broker::new(algorithm, "alice", PASSWORD);
            let mut t = run_until_server_final(&client, &broker);
            assert_eq!(text(&t.server_final), "e=invalid-proof");
            assert_eq!(
                t.client.step(Some(&t.server_final)),
                Err(SaslError::ServerRejected("invalid-proof".to_owned()))
            );
        }
    }

    #[test]
    fn unknown_user_is_rejected_by_the_server() {
        // rsasl's server answers an unknown user with a random salt and 16384 iterations (the
        // top of the accepted range), then `e=unknown-user`.
        let client = Scram::sha256("mallory", Secret::new(PASSWORD)).unwrap();
        let broker = Broker::new(ScramAlgorithm::Sha256, "alice", PASSWORD);
        let mut t = run_until_server_final(&client, &broker);
        assert!(text(&t.server_first).ends_with(",i=16384"));
        assert_eq!(
            t.client.step(Some(&t.server_final)),
            Err(SaslError::ServerRejected("unknown-user".to_owned()))
        );
    }

    #[test]
    fn forged_server_signature_is_refused() {
        for algorithm in algorithms() {
            let client = Scram::new(algorithm, "alice", Secret::new(PASSWORD)).unwrap();
            let broker = Broker::new(algorithm, "alice", PASSWORD);
            let mut t = run_until_server_final(&client, &broker);
            let mut forged = t.server_final.clone();
            // Swapping the first base64 character keeps the message well-formed but changes
            // the first byte of the signature.
            forged[2] = if forged[2] == b'A' { b'B' } else { b'A' };
            assert_eq!(
                t.client.step(Some(&forged)),
                Err(SaslError::ServerSignatureMismatch),
                "{algorithm}"
            );
            // The genuine message cannot rescue an exchange that already failed.
            assert!(matches!(
                t.client.step(Some(&t.server_final)),
                Err(SaslError::OutOfSequence(_))
            ));
        }
    }

    #[test]
    fn server_final_replayed_from_another_exchange_is_refused() {
        let client = Scram::sha256("alice", Secret::new(PASSWORD)).unwrap();
        let broker = Broker::new(ScramAlgorithm::Sha256, "alice", PASSWORD);
        let earlier = run_until_server_final(&client, &broker);
        let mut later = run_until_server_final(&client, &broker);
        assert_ne!(earlier.server_final, later.server_final);
        assert_eq!(
            later.client.step(Some(&earlier.server_final)),
            Err(SaslError::ServerSignatureMismatch)
        );
    }

    #[test]
    fn signature_of_wrong_length_is_a_mismatch() {
        let client = Scram::sha512("alice", Secret::new(PASSWORD)).unwrap();
        let broker = Broker::new(ScramAlgorithm::Sha512, "alice", PASSWORD);
        let mut t = run_until_server_final(&client, &broker);
        // A valid SHA-256-sized signature where SHA-512 is expected.
        let short = format!("v={}", "A".repeat(44 - 1) + "=");
        assert_eq!(
            t.client.step(Some(short.as_bytes())),
            Err(SaslError::ServerSignatureMismatch)
        );
    }

    #[test]
    fn malformed_server_final_is_refused_without_panic() {
        let client = Scram::sha256("alice", Secret::new(PASSWORD)).unwrap();
        let broker = Broker::new(ScramAlgorithm::Sha256, "alice", PASSWORD);
        let server_first = run_until_server_final(&client, &broker).server_first;
        let bad: Vec<Vec<u8>> = vec![
            // `""`, `v` and `e` panic inside rsasl 2.3.1's parser if they reach it.
            b"".to_vec(),
            b"v".to_vec(),
            b"e".to_vec(),
            b"v=".to_vec(),
            b"x=abcd".to_vec(),
            b"v=not base64!".to_vec(),
            b"v=abc".to_vec(),
            b"v=AAAA,".to_vec(),
            b"v=AAAA,=".to_vec(),
            b"v=A===".to_vec(),
            b"\xff\xfe".to_vec(),
            vec![b'v'; MAX_SERVER_MESSAGE_LEN + 1],
            // A server-first where the server-final belongs.
            server_first,
        ];
        for message in bad {
            // Each message gets an exchange whose server-first was genuine.
            let mut exchange = client.start(&test_broker()).unwrap();
            let mut server = broker.session();
            let first = respond(exchange.step(None));
            let server_first = server_step(&mut server, &first);
            respond(exchange.step(Some(&server_first)));
            let result = exchange.step(Some(&message));
            assert!(
                matches!(result, Err(SaslError::MalformedServerMessage(_))),
                "{:?}: {result:?}",
                String::from_utf8_lossy(&message)
            );
        }
    }

    /// A fresh exchange that has sent its client-first, and its client nonce.
    fn started(client: &Scram) -> (Box<dyn SaslExchange>, String) {
        let mut exchange = client.start(&test_broker()).unwrap();
        let first = respond(exchange.step(None));
        let nonce = text(&first).rsplit_once(",r=").unwrap().1.to_owned();
        (exchange, nonce)
    }

    /// Server-first messages that must all be refused, for an exchange whose client nonce is `n`.
    fn bad_server_firsts(n: &str) -> Vec<Vec<u8>> {
        vec![
            Vec::new(),
            b",".to_vec(),
            b"r".to_vec(),
            format!("r={n}srv").into_bytes(),
            // These three panic inside rsasl 2.3.1's parser if they reach it (an attribute
            // shorter than two bytes after the first).
            format!("r={n}srv,s").into_bytes(),
            format!("r={n}srv,s=c2FsdA==,i").into_bytes(),
            format!("r={n}srv,,i=4096").into_bytes(),
            format!("r={n}srv,i=4096,s=c2FsdA==").into_bytes(),
            format!("m=ext,r={n}srv,s=c2FsdA==,i=4096").into_bytes(),
            // Nonce problems.
            format!("r={n},s=c2FsdA==,i=4096").into_bytes(),
            b"r=someone-elses-nonce,s=c2FsdA==,i=4096".to_vec(),
            format!("r=x{n}srv,s=c2FsdA==,i=4096").into_bytes(),
            format!("r={n}s rv,s=c2FsdA==,i=4096").into_bytes(),
            format!("r={n}{},s=c2FsdA==,i=4096", "x".repeat(10_000)).into_bytes(),
            format!("r={n}{},s=c2FsdA==,i=4096", "x".repeat(1 << 20)).into_bytes(),
            // Salt problems.
            format!("r={n}srv,s=,i=4096").into_bytes(),
            format!("r={n}srv,s=not*base64,i=4096").into_bytes(),
            format!("r={n}srv,s=abc,i=4096").into_bytes(),
            // Iteration counts: not numbers, or outside Kafka's range.
            format!("r={n}srv,s=c2FsdA==,i=").into_bytes(),
            format!("r={n}srv,s=c2FsdA==,i=+4096").into_bytes(),
            format!("r={n}srv,s=c2FsdA==,i=-1").into_bytes(),
            format!("r={n}srv,s=c2FsdA==,i=0").into_bytes(),
            format!("r={n}srv,s=c2FsdA==,i=1").into_bytes(),
            format!("r={n}srv,s=c2FsdA==,i=4095").into_bytes(),
            format!("r={n}srv,s=c2FsdA==,i=16385").into_bytes(),
            format!("r={n}srv,s=c2FsdA==,i=4294967295").into_bytes(),
            format!("r={n}srv,s=c2FsdA==,i=99999999999999999999").into_bytes(),
            format!("r={n}srv,s=c2FsdA==,i=4096,bad").into_bytes(),
            format!("r={n}srv,s=c2FsdA==,i=4096\n").into_bytes(),
            {
                let mut m = format!("r={n}srv,s=c2FsdA==,i=4096").into_bytes();
                m[2] = 0xff;
                m
            },
        ]
    }

    #[test]
    fn malformed_server_first_is_refused_without_panic() {
        let client = Scram::sha256("alice", Secret::new(PASSWORD)).unwrap();
        for i in 0..bad_server_firsts("nonce").len() {
            let (mut exchange, nonce) = started(&client);
            let message = bad_server_firsts(&nonce).swap_remove(i);
            let result = exchange.step(Some(&message));
            assert!(
                matches!(result, Err(SaslError::MalformedServerMessage(_))),
                "{:?}: {result:?}",
                String::from_utf8_lossy(&message[..message.len().min(80)])
            );
            assert!(matches!(
                exchange.step(Some(&message)),
                Err(SaslError::OutOfSequence(_))
            ));
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let client = Scram::sha256("alice", Secret::new(PASSWORD)).unwrap();
        let mut rng = rand::rng();
        for _ in 0..500 {
            let (mut exchange, nonce) = started(&client);
            let len = rng.random_range(0..200);
            let mut message: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            // Half the time keep a valid-looking start so the parser gets further.
            if rng.random_bool(0.5) {
                let mut prefix = format!("r={nonce}").into_bytes();
                prefix.extend_from_slice(&message);
                message = prefix;
            }
            let result = exchange.step(Some(&message));
            assert!(
                matches!(result, Err(SaslError::MalformedServerMessage(_))),
                "{message:?}: {result:?}"
            );
        }
    }

    #[test]
    fn each_start_uses_a_fresh_nonce() {
        let client = Scram::sha512("alice", Secret::new(PASSWORD)).unwrap();
        let (_, first) = started(&client);
        let (_, second) = started(&client);
        assert_ne!(first, second);
    }

    #[test]
    fn username_is_escaped_per_rfc5802() {
        let client = Scram::sha256("a=b,c", Secret::new(PASSWORD)).unwrap();
        assert_eq!(client.principal(), Some("a=b,c"));
        let mut exchange = client.start(&test_broker()).unwrap();
        let first = respond(exchange.step(None));
        assert!(
            text(&first).starts_with("n,,n=a=3Db=2Cc,r="),
            "{}",
            text(&first)
        );

        // The escaped name is what both sides put into the signed AuthMessage.
        let broker = Broker::new(ScramAlgorithm::Sha256, "a=3Db=2Cc", PASSWORD);
        let mut t = run_until_server_final(&client, &broker);
        assert_eq!(
            t.client.step(Some(&t.server_final)).unwrap(),
            SaslStep::Done
        );
    }

    #[test]
    fn misuse_is_reported_not_panicked() {
        let client = Scram::sha256("alice", Secret::new(PASSWORD)).unwrap();
        let mut exchange = client.start(&test_broker()).unwrap();
        assert!(matches!(
            exchange.step(Some(b"r=x,s=eA==,i=4096")),
            Err(SaslError::OutOfSequence(_))
        ));

        let (mut exchange, _) = started(&client);
        assert!(matches!(
            exchange.step(None),
            Err(SaslError::OutOfSequence(_))
        ));
        assert!(matches!(
            exchange.step(Some(b"anything")),
            Err(SaslError::OutOfSequence(_))
        ));
    }

    #[test]
    fn rejects_unusable_credentials() {
        for (user, pass) in [("", "pw"), ("user", ""), ("us\0er", "pw")] {
            let err = Scram::sha256(user, Secret::new(pass)).unwrap_err();
            assert!(matches!(err, SaslError::Setup(_)), "{err:?}");
        }
    }

    #[test]
    fn mechanism_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Scram>();
        assert_send_sync::<crate::sasl::Plain>();

        let client = Arc::new(Scram::sha256("alice", Secret::new(PASSWORD)).unwrap());
        let broker = Arc::new(Broker::new(ScramAlgorithm::Sha256, "alice", PASSWORD));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let client = Arc::clone(&client);
                let broker = Arc::clone(&broker);
                std::thread::spawn(move || {
                    let mut t = run_until_server_final(&client, &broker);
                    t.client.step(Some(&t.server_final))
                })
            })
            .collect();
        for handle in handles {
            assert_eq!(handle.join().unwrap(), Ok(SaslStep::Done));
        }
    }

    #[test]
    fn base64_check_matches_rfc4648_padding() {
        assert!(is_base64(b"AAAA"));
        assert!(is_base64(b"AAA="));
        assert!(is_base64(b"AA=="));
        assert!(!is_base64(b"A==="));
        assert!(!is_base64(b""));
        assert!(!is_base64(b"AAA"));
        assert!(!is_base64(b"A=AA"));
        assert!(!is_base64(b"AA-_"));
    }
}

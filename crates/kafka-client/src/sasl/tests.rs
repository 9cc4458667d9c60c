//! Shared test support (a SCRAM broker built from rsasl's server side) and tests that span
//! mechanisms: configuration by name, and that no secret is ever formatted.

use std::slice;
use std::sync::Arc;

use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::mechanisms::scram::tools;
use rsasl::prelude::{Registry, SASLConfig, SASLServer, Session, SessionError};
use rsasl::property::AuthId;
use rsasl::validate::NoValidation;

use super::scram::MIN_ITERATIONS;
use crate::address::BrokerAddress;

/// The broker an exchange is started for in tests; PLAIN and SCRAM do not depend on it.
pub(crate) fn test_broker() -> BrokerAddress {
    BrokerAddress::new("broker.test", 9092)
}
use super::*;

pub(crate) const PASSWORD: &str = "correct horse battery staple";
const SALT: &[u8] = b"kafka-backup test salt";

/// A SCRAM server built from rsasl's server side, holding one user's stored credentials as
/// a broker does (salt, iterations, StoredKey, ServerKey; never the password).
pub(crate) struct Broker {
    algorithm: ScramAlgorithm,
    config: Arc<SASLConfig>,
}

struct StoredCredentials {
    /// The username as it appears in the client-first message (escaped): rsasl's server
    /// does not unescape it.
    authid: String,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl SessionCallback for StoredCredentials {
    fn callback(
        &self,
        _session_data: &SessionData,
        context: &Context,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        if context.get_ref::<AuthId>() == Some(self.authid.as_str()) {
            request.satisfy::<ScramStoredPassword>(&ScramStoredPassword::new(
                self.iterations,
                SALT,
                &self.stored_key,
                &self.server_key,
            ))?;
        }
        Ok(())
    }
}

macro_rules! stored_keys {
    ($digest:ty, $password:expr, $iterations:expr) => {{
        use sha2::digest::Digest;
        let mut salted = sha2::digest::generic_array::GenericArray::default();
        tools::hash_password::<$digest>($password, $iterations, SALT, &mut salted);
        let (client_key, server_key) = tools::derive_keys::<$digest>(salted.as_slice());
        (<$digest>::digest(client_key).to_vec(), server_key.to_vec())
    }};
}

impl Broker {
    pub(crate) fn new(algorithm: ScramAlgorithm, authid: &str, password: &str) -> Self {
        let iterations = MIN_ITERATIONS;
        let (stored_key, server_key) = match algorithm {
            ScramAlgorithm::Sha256 => {
                stored_keys!(sha2::Sha256, password.as_bytes(), iterations)
            }
            ScramAlgorithm::Sha512 => {
                stored_keys!(sha2::Sha512, password.as_bytes(), iterations)
            }
        };
        let config = SASLConfig::builder()
            .with_registry(Registry::with_mechanisms(slice::from_ref(
                algorithm.rsasl_mechanism(),
            )))
            .with_callback(StoredCredentials {
                authid: authid.to_owned(),
                iterations,
                stored_key,
                server_key,
            })
            .unwrap();
        Self { algorithm, config }
    }

    pub(crate) fn session(&self) -> Session<NoValidation> {
        SASLServer::<NoValidation>::new(Arc::clone(&self.config))
            .start_suggested(self.algorithm.rsasl_mechanism().mechanism)
            .unwrap()
    }
}

pub(crate) fn server_step(server: &mut Session<NoValidation>, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    server.step(Some(input), &mut out).unwrap();
    out
}

pub(crate) fn respond(step: Result<SaslStep, SaslError>) -> Vec<u8> {
    match step {
        Ok(SaslStep::Respond(bytes)) => bytes,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// The four messages of one exchange, plus the client exchange waiting for server-final.
pub(crate) struct Transcript {
    pub(crate) client: Box<dyn SaslExchange>,
    pub(crate) client_first: Vec<u8>,
    pub(crate) server_first: Vec<u8>,
    pub(crate) client_final: Vec<u8>,
    pub(crate) server_final: Vec<u8>,
}

pub(crate) fn run_until_server_final(client: &Scram, broker: &Broker) -> Transcript {
    let mut exchange = client.start(&test_broker()).unwrap();
    let mut server = broker.session();
    let client_first = respond(exchange.step(None));
    let server_first = server_step(&mut server, &client_first);
    let client_final = respond(exchange.step(Some(&server_first)));
    let server_final = server_step(&mut server, &client_final);
    Transcript {
        client: exchange,
        client_first,
        server_first,
        client_final,
        server_final,
    }
}

pub(crate) fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn config_accepts_every_spelling_and_returns_the_canonical_name() {
    let cases = [
        ("PLAIN", "PLAIN"),
        ("plain", "PLAIN"),
        (" Plain\n", "PLAIN"),
        ("SCRAM-SHA-256", "SCRAM-SHA-256"),
        ("scram-sha-256", "SCRAM-SHA-256"),
        ("SCRAM-SHA256", "SCRAM-SHA-256"),
        ("Scram-Sha256", "SCRAM-SHA-256"),
        ("SCRAM-SHA-512", "SCRAM-SHA-512"),
        ("scram-sha-512", "SCRAM-SHA-512"),
        ("SCRAM-SHA512", "SCRAM-SHA-512"),
        ("scram-sha512", "SCRAM-SHA-512"),
    ];
    for (spelling, canonical) in cases {
        let mechanism = mechanism_from_config(spelling, "alice", Secret::new("pw")).unwrap();
        assert_eq!(mechanism.name(), canonical, "{spelling:?}");
        assert_eq!(mechanism.principal(), Some("alice"));
        // The object is the real mechanism, not just a name: check its first message.
        let first = respond(mechanism.start(&test_broker()).unwrap().step(None));
        if canonical == "PLAIN" {
            assert_eq!(first, b"\0alice\0pw");
        } else {
            assert!(
                text(&first).starts_with("n,,n=alice,r="),
                "{}",
                text(&first)
            );
        }
    }
}

#[test]
fn config_explains_that_oauthbearer_has_no_password() {
    for name in ["OAUTHBEARER", "OAuthBearer"] {
        let err = mechanism_from_config(name, "alice", Secret::new("pw")).unwrap_err();
        assert!(
            err.to_string()
                .contains("takes no user name and password: it presents OAuth tokens"),
            "{err}"
        );
    }
}

#[test]
fn config_explains_how_gssapi_is_configured_or_built() {
    for name in ["GSSAPI", "gssapi"] {
        let err = mechanism_from_config(name, "alice", Secret::new("pw")).unwrap_err();
        let SaslError::Setup(message) = &err else {
            panic!("{name}: {err:?}");
        };
        assert!(message.contains("GSSAPI"), "{name}: {message}");
        // With the feature the keytab keys are named; without it, the build flag is.
        let needles: &[&str] = if cfg!(feature = "gssapi") {
            &["keytab", "sasl_keytab_path", "sasl_kerberos_service_name"]
        } else {
            &[
                "not built into this binary",
                "cargo build --release --features gssapi",
                "libkrb5-dev",
                "SCRAM-SHA-512",
            ]
        };
        for needle in needles {
            assert!(message.contains(needle), "{name}: {message}");
        }
    }
}

#[test]
fn config_rejects_unknown_names_listing_the_supported_ones() {
    for name in [
        "",
        "SCRAM-SHA-1",
        "SCRAM-SHA-256-PLUS",
        "DIGEST-MD5",
        "PLAINTEXT",
        "SASL_SSL",
    ] {
        let err = mechanism_from_config(name, "alice", Secret::new("pw")).unwrap_err();
        let SaslError::Setup(message) = &err else {
            panic!("{name}: {err:?}");
        };
        assert!(
            message.contains(&format!("unknown SASL mechanism `{name}`")),
            "{message}"
        );
        assert!(
            message.contains("PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
            "{message}"
        );
    }
    // A name from configuration cannot inject lines into a log.
    let err = mechanism_from_config("X\nINFO forged", "alice", Secret::new("pw")).unwrap_err();
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn config_rejects_empty_credentials() {
    for name in SUPPORTED_MECHANISMS {
        for (user, pass) in [("", "pw"), ("alice", "")] {
            let err = mechanism_from_config(name, user, Secret::new(pass)).unwrap_err();
            assert!(matches!(err, SaslError::Setup(_)), "{name}: {err:?}");
        }
    }
}

#[test]
fn sasl_step_debug_shows_only_the_length() {
    assert_eq!(
        format!("{:?}", SaslStep::Respond(b"\0u\0secret".to_vec())),
        "Respond(<9 bytes>)"
    );
    assert_eq!(format!("{:?}", SaslStep::Done), "Done");
}

/// The password used where a leak would be visible; distinct from every other test string.
const LEAKY: &str = "Leaky-P4ssw0rd-7f3a9c";

/// Fails if `formatted` shows the password in any form we know `Debug` can produce: as text,
/// as a run of at least 8 of its characters, or as the numbers a `Vec<u8>` prints.
fn assert_no_leak(what: &str, formatted: &str) {
    let chars: Vec<char> = LEAKY.chars().collect();
    for window in chars.windows(8) {
        let piece: String = window.iter().collect();
        assert!(
            !formatted.contains(&piece),
            "{what} shows part of the password: {formatted}"
        );
    }
    let numbers = format!("{:?}", &LEAKY.as_bytes()[..8]);
    let numbers = numbers.trim_start_matches('[').trim_end_matches(']');
    assert!(
        !formatted.contains(numbers),
        "{what} shows the password's bytes: {formatted}"
    );
}

fn assert_debug_no_leak(what: &str, value: &impl std::fmt::Debug) {
    assert_no_leak(what, &format!("{value:?}"));
    assert_no_leak(what, &format!("{value:#?}"));
}

fn assert_error_no_leak(what: &str, err: &SaslError) {
    assert_debug_no_leak(what, err);
    assert_no_leak(what, &err.to_string());
}

fn variant(err: &SaslError) -> &'static str {
    // Exhaustive on purpose: a new variant must be added to the leak test below.
    match err {
        SaslError::ServerSignatureMismatch => "ServerSignatureMismatch",
        SaslError::ServerRejected(_) => "ServerRejected",
        SaslError::MalformedServerMessage(_) => "MalformedServerMessage",
        SaslError::Setup(_) => "Setup",
        SaslError::OutOfSequence(_) => "OutOfSequence",
        SaslError::Credentials(_) => "Credentials",
    }
}

#[test]
fn no_mechanism_step_or_error_ever_formats_the_password() {
    let mut seen = std::collections::BTreeSet::new();
    let mut check_err = |what: &str, err: SaslError| {
        assert_error_no_leak(what, &err);
        seen.insert(variant(&err));
    };

    // Mechanisms, directly and as configured, and inside the client configuration.
    let plain = Plain::new("alice", Secret::new(LEAKY)).unwrap();
    let sha256 = Scram::sha256("alice", Secret::new(LEAKY)).unwrap();
    let sha512 = Scram::sha512("alice", Secret::new(LEAKY)).unwrap();
    assert_debug_no_leak("Plain", &plain);
    assert_debug_no_leak("Scram", &sha256);
    assert_debug_no_leak("Scram", &sha512);
    for name in SUPPORTED_MECHANISMS {
        let mechanism = mechanism_from_config(name, "alice", Secret::new(LEAKY)).unwrap();
        assert_debug_no_leak(name, &mechanism);
        let security = crate::config::Security {
            sasl: Some(Arc::clone(&mechanism)),
            ..Default::default()
        };
        assert_debug_no_leak("Security", &security);
    }

    // A PLAIN exchange in every phase, and what it returns.
    let mut exchange = plain.exchange();
    assert_debug_no_leak("PlainExchange", &exchange);
    let step = exchange.step(None);
    assert!(matches!(&step, Ok(SaslStep::Respond(m)) if m.ends_with(LEAKY.as_bytes())));
    assert_debug_no_leak("PLAIN credentials step", &step);
    assert_debug_no_leak("PlainExchange", &exchange);
    assert_debug_no_leak("PLAIN done", &exchange.step(Some(b"")));
    assert_debug_no_leak("PlainExchange", &exchange);
    check_err("PLAIN", exchange.step(None).unwrap_err());
    let mut exchange = plain.exchange();
    exchange.step(None).unwrap();
    check_err("PLAIN", exchange.step(Some(b"?")).unwrap_err());

    // SCRAM exchanges in every phase: success, rejection, forgery, garbage.
    for (client, algorithm) in [
        (&sha256, ScramAlgorithm::Sha256),
        (&sha512, ScramAlgorithm::Sha512),
    ] {
        let broker = Broker::new(algorithm, "alice", LEAKY);
        let mut server = broker.session();
        let mut exchange = client.exchange().unwrap();
        assert_debug_no_leak("ScramExchange", &exchange);
        let first = exchange.step(None);
        assert_debug_no_leak("client-first", &first);
        let server_first = server_step(&mut server, &respond(first));
        assert_debug_no_leak("ScramExchange", &exchange);
        let client_final = exchange.step(Some(&server_first));
        assert_debug_no_leak("client-final", &client_final);
        let server_final = server_step(&mut server, &respond(client_final));
        assert_debug_no_leak("ScramExchange", &exchange);
        let mut forged = server_final.clone();
        forged[2] = if forged[2] == b'A' { b'B' } else { b'A' };
        check_err("forged", exchange.step(Some(&forged)).unwrap_err());
        assert_debug_no_leak("ScramExchange", &exchange);
        check_err(
            "after failure",
            exchange.step(Some(&server_final)).unwrap_err(),
        );

        let mut t = run_until_server_final(client, &broker);
        assert_debug_no_leak("done", &t.client.step(Some(&t.server_final)));

        let wrong = Scram::new(algorithm, "alice", Secret::new(LEAKY.to_owned() + "x")).unwrap();
        let mut t = run_until_server_final(&wrong, &Broker::new(algorithm, "alice", "other"));
        check_err(
            "rejected",
            t.client.step(Some(&t.server_final)).unwrap_err(),
        );

        let mut exchange = client.exchange().unwrap();
        exchange.step(None).unwrap();
        check_err("garbage", exchange.step(Some(b"r=,s=,i=")).unwrap_err());
    }

    // Setup failures, including ones caused by the password itself.
    check_err(
        "setup",
        Plain::new("alice", Secret::new(LEAKY.to_owned() + "\0")).unwrap_err(),
    );
    check_err("setup", Scram::sha256("", Secret::new(LEAKY)).unwrap_err());
    check_err(
        "setup",
        mechanism_from_config("GSSAPI", "alice", Secret::new(LEAKY)).unwrap_err(),
    );
    check_err(
        "setup",
        mechanism_from_config("nope", "alice", Secret::new(LEAKY)).unwrap_err(),
    );

    // OAUTHBEARER with the secret as client secret: its Debug, and a token request that
    // cannot connect.
    let oauth = crate::sasl::OAuthBearer::new(crate::sasl::OAuthBearerConfig {
        source: crate::sasl::TokenSource::ClientCredentials(crate::sasl::ClientCredentials {
            token_endpoint_url: "http://127.0.0.1:1/token".into(),
            client_id: "alice".into(),
            client_secret: Secret::new(LEAKY),
            scope: Some("kafka".into()),
            ca_location: None,
            allow_http: true,
            timeout: std::time::Duration::from_secs(5),
        }),
        extensions: vec![],
    })
    .unwrap();
    assert_debug_no_leak("OAuthBearer", &oauth);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    check_err(
        "credentials",
        runtime.block_on(oauth.prepare()).unwrap_err(),
    );

    let all = [
        "Credentials",
        "MalformedServerMessage",
        "OutOfSequence",
        "ServerRejected",
        "ServerSignatureMismatch",
        "Setup",
    ];
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), all);
}

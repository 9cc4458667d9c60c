//! SASL GSSAPI against a real MIT KDC (scripts/kdc.py) and a real acceptor
//! (scripts/gssapi_acceptor.py, the PyPI `gssapi` package over MIT krb5), driving the
//! exchange's steps as the connection's SaslAuthenticate loop does.
#![cfg(feature = "gssapi")]

mod gssapi_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gssapi_support::{Acceptor, Failure, authenticate, authenticate_with};
use kafka_client::sasl::{Gssapi, GssapiConfig, SaslError, SaslMechanism};

fn setup_error(result: Result<Gssapi, SaslError>) -> String {
    match result {
        Ok(mechanism) => panic!("expected a setup error, got {mechanism:?}"),
        Err(SaslError::Setup(message)) => message,
        Err(other) => panic!("expected a setup error, got {other:?}"),
    }
}

#[test]
fn authenticates_with_mutual_auth_as_the_keytabs_principal() {
    let realm = realm_or_skip!();
    let mechanism = Gssapi::new(realm.config()).expect("login from the keytab");
    let client = realm.get("client_principal");
    assert_eq!(mechanism.name(), "GSSAPI");
    assert_eq!(mechanism.principal(), Some(client.as_str()));
    assert!(
        mechanism.reauthenticates(),
        "Kerberos sessions are renewed in place"
    );

    let mut acceptor = Acceptor::start(realm);
    let principal = authenticate(&mechanism, "localhost", &mut acceptor).expect("authenticated");
    assert_eq!(principal, client);

    // Again on a new connection: the service ticket now comes from the memory cache.
    let mut acceptor = Acceptor::start(realm);
    assert_eq!(
        authenticate(&mechanism, "localhost", &mut acceptor).expect("second exchange"),
        client
    );
}

#[test]
fn an_explicit_principal_is_used() {
    let realm = realm_or_skip!();
    let client = realm.get("client_principal");
    for principal in [client.clone(), "client".to_owned()] {
        let mechanism = Gssapi::new(GssapiConfig {
            principal: Some(principal.clone()),
            ..realm.config()
        })
        .unwrap_or_else(|e| panic!("{principal}: {e}"));
        assert_eq!(mechanism.principal(), Some(client.as_str()));
        let mut acceptor = Acceptor::start(realm);
        assert_eq!(
            authenticate(&mechanism, "localhost", &mut acceptor).expect("authenticated"),
            client
        );
    }
}

#[test]
fn a_broker_that_cannot_prove_its_identity_is_refused() {
    let realm = realm_or_skip!();
    let mechanism = Gssapi::new(realm.config()).expect("login");
    let mut acceptor = Acceptor::start(realm);
    // Round 0 is the broker's AP-REP, the proof of mutual authentication: one flipped byte
    // near its end (inside the encrypted part) must make the client stop.
    let err = authenticate_with(
        &mechanism,
        "localhost",
        &mut acceptor,
        |round, mut reply| {
            if round == 0 {
                let last = reply.len() - 4;
                reply[last] ^= 0x01;
            }
            reply
        },
    )
    .expect_err("a tampered AP-REP");
    eprintln!("tampered AP-REP: {err:?}");
    let Failure::Client(err) = err else {
        panic!("the client should refuse: {err:?}")
    };
    let text = err.to_string();
    assert!(matches!(err, SaslError::ServerRejected(_)), "{err:?}");
    assert!(text.contains("kafka/localhost"), "{text}");
}

#[test]
fn a_host_that_matches_no_service_principal_names_the_fix() {
    let realm = realm_or_skip!();
    let mechanism = Gssapi::new(realm.config()).expect("login");
    let mut acceptor = Acceptor::start(realm);
    let err = authenticate(&mechanism, "broker1.example.test", &mut acceptor)
        .expect_err("no principal kafka/broker1.example.test");
    eprintln!("unknown service: {err:?}");
    let Failure::Client(SaslError::Setup(text)) = err else {
        panic!("{err:?}")
    };
    for needle in [
        "kafka/broker1.example.test",
        "bootstrap_servers",
        "advertised listeners",
        "kafka/HOST",
        "no reverse DNS",
        "not found in Kerberos database",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn a_keytab_without_the_principal_is_an_error() {
    let realm = realm_or_skip!();
    let keytab = realm.path("other_keytab");
    let text = setup_error(Gssapi::new(GssapiConfig {
        keytab_path: keytab.clone(),
        principal: Some(realm.get("client_principal")),
        ..realm.config()
    }));
    eprintln!("keytab without the principal: {text}");
    for needle in [
        keytab.to_str().unwrap(),
        "has no key for client@EXAMPLE.TEST",
        "klist -k",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn an_unreadable_keytab_is_an_error() {
    let realm = realm_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.keytab");
    let text = setup_error(Gssapi::new(GssapiConfig {
        keytab_path: missing.clone(),
        ..realm.config()
    }));
    eprintln!("missing keytab: {text}");
    assert!(text.contains("cannot read keytab"), "{text}");
    assert!(text.contains(missing.to_str().unwrap()), "{text}");
    assert!(text.contains("No such file"), "{text}");

    let empty = dir.path().join("empty.keytab");
    std::fs::write(&empty, b"").unwrap();
    let text = setup_error(Gssapi::new(GssapiConfig {
        keytab_path: empty,
        ..realm.config()
    }));
    assert!(text.contains("is empty"), "{text}");

    let garbage = dir.path().join("garbage.keytab");
    std::fs::write(&garbage, b"not a keytab at all").unwrap();
    let text = setup_error(Gssapi::new(GssapiConfig {
        keytab_path: garbage,
        ..realm.config()
    }));
    assert!(text.contains("is not a Kerberos keytab"), "{text}");
}

#[test]
fn an_unreachable_kdc_is_an_error() {
    let realm = realm_or_skip!();
    // DOWN.TEST's KDC is a port nothing listens on (kdc.py); the keytab is genuine.
    let started = Instant::now();
    let text = setup_error(Gssapi::new(GssapiConfig {
        keytab_path: realm.path("down_keytab"),
        ..realm.config()
    }));
    eprintln!("KDC down ({:?}): {text}", started.elapsed());
    for needle in ["no KDC answered", "DOWN.TEST", "krb5.conf"] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_stale_default_ccache_is_not_used() {
    let realm = realm_or_skip!();
    // The realm's krb5.conf makes the stale cache the default: it holds another principal's
    // valid TGT (kdc.py put it there with kinit).
    let stale = realm.path("stale_ccache");
    let before = std::fs::read(&stale).unwrap();
    let klist = std::process::Command::new("klist")
        .env("KRB5_CONFIG", realm.path("krb5_config"))
        .env_remove("KRB5CCNAME")
        .output()
        .expect("klist");
    let listing = String::from_utf8_lossy(&klist.stdout);
    assert!(
        listing.contains(&realm.get("other_principal")),
        "the default cache should hold other's ticket: {listing}"
    );

    let mechanism = Gssapi::new(realm.config()).expect("login");
    assert_eq!(
        mechanism.principal(),
        Some(realm.get("client_principal").as_str())
    );
    let mut acceptor = Acceptor::start(realm);
    assert_eq!(
        authenticate(&mechanism, "localhost", &mut acceptor).unwrap(),
        realm.get("client_principal")
    );
    // Nothing was written to the default cache either.
    assert_eq!(std::fs::read(&stale).unwrap(), before);
}

#[test]
fn one_krb5_conf_per_process() {
    let realm = realm_or_skip!();
    let same = Gssapi::new(realm.config());
    assert!(same.is_ok(), "{same:?}");
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("krb5.conf");
    std::fs::write(&other, "[libdefaults]\n").unwrap();
    let text = setup_error(Gssapi::new(GssapiConfig {
        krb5_config_path: Some(other),
        ..realm.config()
    }));
    assert!(text.contains("one krb5.conf per process"), "{text}");
}

#[test]
fn configuration_errors_name_the_key() {
    let realm = realm_or_skip!();
    for (service, needle) in [
        ("", "sasl_kerberos_service_name is empty"),
        ("kafka/localhost", "only the first part"),
    ] {
        let text = setup_error(Gssapi::new(GssapiConfig {
            service_name: service.to_owned(),
            ..realm.config()
        }));
        assert!(text.contains(needle), "{service}: {text}");
    }
    let text = setup_error(Gssapi::new(GssapiConfig {
        keytab_path: PathBuf::new(),
        ..realm.config()
    }));
    assert!(text.contains("sasl_keytab_path is empty"), "{text}");
}

#[test]
fn debug_shows_names_not_keys() {
    let realm = realm_or_skip!();
    let mechanism = Gssapi::new(realm.config()).expect("login");
    let debug = format!("{mechanism:?}");
    assert!(debug.contains("client@EXAMPLE.TEST"), "{debug}");
    assert!(debug.contains("client.keytab"), "{debug}");
    assert!(!debug.contains("MEMORY:"), "{debug}");
}

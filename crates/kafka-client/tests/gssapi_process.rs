//! GSSAPI tests that change process-wide state, so they get a test binary (a process and a
//! realm) of their own and run as one test, in order: KRB5CCNAME is set for the process, and
//! the realm's KDC is stopped half-way.
#![cfg(feature = "gssapi")]

mod gssapi_support;

use gssapi_support::{Acceptor, Failure, authenticate};
use kafka_client::sasl::{Gssapi, SaslError, SaslMechanism};

#[test]
fn ignores_krb5ccname_and_reports_a_kdc_that_went_away() {
    let realm = realm_or_skip!();
    let stale = realm.path("stale_ccache");
    // SAFETY: the only test in this binary, and no Kerberos call has run yet on any thread
    // (the realm fixture only started processes and recorded the krb5.conf path).
    unsafe {
        std::env::set_var("KRB5CCNAME", format!("FILE:{}", stale.display()));
    }
    let before = std::fs::read(&stale).unwrap();

    // KRB5CCNAME names a cache with another principal's valid TGT; the mechanism logs in
    // from its keytab into its own memory cache and authenticates as the keytab's principal.
    let mechanism = Gssapi::new(realm.config()).expect("login");
    let client = realm.get("client_principal");
    assert_eq!(mechanism.principal(), Some(client.as_str()));
    let mut acceptor = Acceptor::start(realm);
    assert_eq!(
        authenticate(&mechanism, "localhost", &mut acceptor).expect("authenticated"),
        client
    );
    assert_eq!(
        std::fs::read(&stale).unwrap(),
        before,
        "KRB5CCNAME's cache was written"
    );

    // The KDC goes away. A broker whose service ticket is cached still works; one that needs
    // a new service ticket fails with an error that says the KDC is unreachable.
    let pid = realm.info["pid"].as_u64().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .arg(&pid)
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut acceptor = Acceptor::start(realm);
    assert_eq!(
        authenticate(&mechanism, "localhost", &mut acceptor).expect("cached service ticket"),
        client
    );
    let mut acceptor = Acceptor::start(realm);
    let err = authenticate(&mechanism, "broker2.example.test", &mut acceptor)
        .expect_err("no KDC for a new service ticket");
    eprintln!("KDC gone: {err:?}");
    let Failure::Client(SaslError::Setup(text)) = err else {
        panic!("{err:?}")
    };
    assert!(text.contains("no KDC answered"), "{text}");
    assert!(text.contains("EXAMPLE.TEST"), "{text}");
}

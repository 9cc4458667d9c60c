//! GSSAPI (Kerberos) end to end, in a binary built with `--features gssapi`: a real MIT KDC
//! issues the tickets and a SASL proxy accepts them with the real MIT library (RFC 4752, as
//! Kafka does), in front of the broker. Test data is written and read with librdkafka over
//! PLAIN on the same listener (the PyPI wheel has no GSSAPI).
#![cfg(feature = "gssapi")]

mod common;

use std::path::Path;

use common::*;

/// A `security:` block for GSSAPI with `keytab`, plus `extra` lines.
fn kerberos_security(keytab: &str, extra: &str) -> String {
    format!(
        "  security:\n    security_protocol: SASL_PLAINTEXT\n    sasl_mechanism: GSSAPI\n    \
         sasl_kerberos_service_name: {}\n    sasl_keytab_path: {keytab}\n    \
         sasl_krb5_config_path: {}\n{extra}",
        get("/kerberos/service_name"),
        get("/kerberos/krb5_conf"),
    )
}

fn backup_yaml(broker: &str, security: &str, topic: &str, store: &Path) -> String {
    format!(
        "mode: backup\nbackup_id: krb\nsource:\n  bootstrap_servers: [\"{broker}\"]\n{security}  topics:\n    \
         include: [\"{topic}\"]\nstorage:\n  backend: filesystem\n  path: {}\n",
        store.display()
    )
}

fn authentications(principal: &str) -> u64 {
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(get("/sasl_proxy/gssapi_stats")).unwrap()).unwrap();
    stats["by_principal"][principal]["authentications"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_backup_and_a_restore_over_kerberos_give_back_every_record() {
    let broker = get("/brokers/gssapi");
    assert!(
        broker.starts_with("localhost:"),
        "the service principal is kafka/localhost"
    );
    let topic = unique_topic("krb");
    let client = librdkafka_plain();
    let produced = fidelity_with(&client, &["produce", &broker, &topic, "2"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let principal = get("/kerberos/client_principal");
    let security = kerberos_security(&get("/kerberos/client_keytab"), "");
    let before = authentications(&principal);

    let backup = backup_yaml(&broker, &security, &topic, &store);
    let out = run(dir.path(), "backup", &backup, &[], &["--format", "json"]);
    out.assert_code(EXIT_OK);
    assert_same_records(&read_back(&store, "krb", &topic), &committed(&produced));
    assert!(
        authentications(&principal) > before,
        "the proxy saw {principal} log in with Kerberos"
    );

    let restored = format!("{topic}-r");
    let restore = format!(
        "mode: restore\nbackup_id: krb\ntarget:\n  bootstrap_servers: [\"{broker}\"]\n{security}storage:\n  \
         backend: filesystem\n  path: {}\nrestore:\n  topic_mapping:\n    {topic}: {restored}\n",
        store.display()
    );
    let out = run(dir.path(), "restore", &restore, &[], &["--format", "json"]);
    out.assert_code(EXIT_OK);
    let mut expected = committed(&produced);
    for r in &mut expected {
        r.offset = 0;
    }
    expected.sort();
    let mut got = committed(&fidelity_with(&client, &["consume", &broker, &restored]));
    for r in &mut got {
        r.offset = 0;
    }
    got.sort();
    assert_same_records(&got, &expected);
}

#[test]
fn kerberos_failures_name_what_to_fix() {
    let broker = get("/brokers/gssapi");
    let port = broker.rsplit(':').next().unwrap().to_owned();
    let topic = unique_topic("krbfail");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let client_keytab = get("/kerberos/client_keytab");
    let attempt = |broker: &str, security: &str| {
        run(
            dir.path(),
            "backup",
            &backup_yaml(broker, security, &topic, &store),
            &[],
            &[],
        )
    };

    // An address the service principal does not name: no reverse DNS rescues it.
    let out = attempt(
        &format!("127.0.0.1:{port}"),
        &kerberos_security(&client_keytab, ""),
    );
    out.assert_code(EXIT_KAFKA);
    out.assert_contains("kafka/127.0.0.1");
    out.assert_contains("bootstrap_servers");

    // A keytab without the principal asked for.
    let out = attempt(
        &broker,
        &kerberos_security(
            &get("/kerberos/other_keytab"),
            &format!(
                "    sasl_kerberos_principal: {}\n",
                get("/kerberos/client_principal")
            ),
        ),
    );
    out.assert_code(EXIT_CONFIG);
    out.assert_contains("has no key for");
    out.assert_contains(&get("/kerberos/client_principal"));

    // A KDC nobody answers at (this process's krb5.conf names a closed port).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let conf = std::fs::read_to_string(get("/kerberos/krb5_conf"))
        .unwrap()
        .replace(&get("/kerberos/kdc"), &format!("127.0.0.1:{dead_port}"));
    let dead = dir.path().join("krb5-dead.conf");
    std::fs::write(&dead, conf).unwrap();
    let out = attempt(
        &broker,
        &kerberos_security(&client_keytab, "")
            .replace(&get("/kerberos/krb5_conf"), dead.to_str().unwrap()),
    );
    out.assert_code(EXIT_CONFIG);
    out.assert_contains("KDC");

    // A keytab that is not there: the configuration names the key.
    let out = attempt(
        &broker,
        &kerberos_security("/nonexistent/client.keytab", ""),
    );
    out.assert_code(EXIT_CONFIG);
    out.assert_contains("sasl_keytab_path");
    out.assert_contains("does not exist");
}

/// A keytab other users can read is a password anyone on the host can use: a warning when
/// loading, a HIGH finding of `check --security`.
#[test]
fn a_keytab_readable_by_others_is_a_finding() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let keytab = dir.path().join("client.keytab");
    std::fs::copy(get("/kerberos/client_keytab"), &keytab).unwrap();
    std::fs::set_permissions(&keytab, std::fs::Permissions::from_mode(0o644)).unwrap();
    let yaml = backup_yaml(
        &get("/brokers/gssapi"),
        &kerberos_security(keytab.to_str().unwrap(), ""),
        "any",
        &dir.path().join("store"),
    );
    let config = dir.path().join("krb.yaml");
    std::fs::write(&config, yaml).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run_binary(
        &[
            std::ffi::OsStr::new("check"),
            std::ffi::OsStr::new("--security"),
            std::ffi::OsStr::new("--config"),
            config.as_os_str(),
        ],
        &[],
    );
    out.assert_contains("KB-FILE-001");
    out.assert_contains("sasl_keytab_path");
    out.assert_contains("readable by");
}

/// The proxy's counts for `principal`: connections authenticated, sessions renewed, and
/// connections closed for going on after their session ended.
fn counts(principal: &str) -> (u64, u64, u64) {
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(get("/sasl_proxy/gssapi_stats")).unwrap()).unwrap();
    let p = &stats["by_principal"][principal];
    let n = |k: &str| p[k].as_u64().unwrap_or(0);
    (
        n("authentications"),
        n("reauthentications"),
        n("expired_closes"),
    )
}

/// The proxy ends Kerberos sessions after a few seconds (KIP-368): a continuous backup renews
/// them in place with new service tickets, on the connections it has, and loses nothing.
#[test]
fn kerberos_sessions_are_renewed_in_place() {
    let broker = get("/brokers/gssapi");
    let lifetime = env()
        .pointer("/sasl_proxy/gssapi_session_lifetime_ms")
        .and_then(serde_json::Value::as_u64)
        .expect("the gssapi proxy limits sessions");
    let topic = unique_topic("krbreauth");
    let client = librdkafka_plain();
    fidelity_with(&client, &["bulk", &broker, &topic, "100", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut yaml = backup_yaml(
        &broker,
        &kerberos_security(&get("/kerberos/client_keytab"), ""),
        &topic,
        &store,
    );
    yaml.push_str(
        "backup:\n  continuous: true\n  metadata_max_age_ms: 1000\n  segment_max_interval_ms: 1000\n  \
         consumer_group_snapshot: false\n",
    );
    let child = spawn_backup(dir.path(), &yaml);
    wait_until(
        "the first records",
        std::time::Duration::from_secs(30),
        || read_back(&store, "krb", &topic).len() == 100,
    );
    let principal = get("/kerberos/client_principal");
    let early = counts(&principal);
    // Three session lifetimes, with records produced in the middle.
    std::thread::sleep(std::time::Duration::from_millis(lifetime * 3 / 2));
    fidelity_with(&client, &["bulk", &broker, &topic, "100", "2"]);
    wait_until(
        "the later records",
        std::time::Duration::from_secs(30),
        || read_back(&store, "krb", &topic).len() == 200,
    );
    std::thread::sleep(std::time::Duration::from_millis(lifetime * 3 / 2));
    let late = counts(&principal);
    sigterm(&child);
    let out = finish(child, std::time::Duration::from_secs(30));
    out.assert_code(EXIT_OK);
    assert_eq!(read_back(&store, "krb", &topic).len(), 200);
    assert_eq!(
        late.0, early.0,
        "no new connection: sessions renewed in place"
    );
    assert!(
        late.1 - early.1 >= 2,
        "several renewals over three lifetimes, saw {}",
        late.1 - early.1
    );
    assert_eq!(late.2, early.2, "no connection went on past its session");
}

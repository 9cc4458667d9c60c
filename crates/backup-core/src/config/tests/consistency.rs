//! Consistency checks (rule 4) and warnings (rule 5).

use super::*;
use crate::config::security::check_file_for_tests;

fn sasl_ssl(extra: &str) -> String {
    with_security(&format!(
        "    security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-512\n    sasl_username: svc\n    sasl_password: pw\n{extra}"
    ))
}

// ---- SASL ------------------------------------------------------------------------------

#[test]
fn sasl_keys_need_a_sasl_protocol() {
    let e = err(
        &with_security("    security_protocol: SSL\n    sasl_mechanism: SCRAM-SHA-512\n"),
        &[],
    );
    assert!(matches!(e, ConfigError::Invalid { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "`source.security.sasl_mechanism` (line 7): sasl_mechanism is set but security_protocol \
             is SSL, so SASL is off and these credentials would not be used; use SASL_SSL",
        ],
    );
    let e = err(&with_security("    sasl_username: svc\n"), &[]);
    assert_message(
        &e,
        &[
            "sasl_username is set but security_protocol is not set, so it is PLAINTEXT",
            "use SASL_SSL (or SASL_PLAINTEXT if the listener has no TLS)",
        ],
    );
    let e = err(
        &with_security("    security_protocol: PLAINTEXT\n    sasl_password: pw\n"),
        &[],
    );
    assert_message(
        &e,
        &[
            "`source.security.sasl_password` (line 7): sasl_password is set but security_protocol is PLAINTEXT",
        ],
    );
}

#[test]
fn sasl_protocol_needs_a_mechanism() {
    let e = err(&with_security("    security_protocol: SASL_SSL\n"), &[]);
    assert_message(
        &e,
        &[
            "`source.security.security_protocol` (line 6): security_protocol is SASL_SSL but \
             sasl_mechanism is not set; add sasl_mechanism: SCRAM-SHA-512",
        ],
    );
}

#[test]
#[cfg(not(feature = "gssapi"))]
fn gssapi_without_the_feature_names_the_build_flag() {
    let e = err(
        &with_security(
            "    security_protocol: SASL_SSL\n    sasl_mechanism: GSSAPI\n    sasl_kerberos_service_name: kafka\n",
        ),
        &[],
    );
    assert_message(
        &e,
        &[
            "`source.security.sasl_mechanism` (line 7): GSSAPI (Kerberos) is not built into this \
             binary of kafka-backup; build one with `cargo build --release --features gssapi`",
            "or meanwhile authenticate with SCRAM-SHA-512 or SCRAM-SHA-256",
            "or with a client certificate",
        ],
    );
}

#[test]
#[cfg(feature = "gssapi")]
fn gssapi_needs_a_service_name_and_a_keytab_and_nothing_it_would_ignore() {
    let certs = CertDir::new();
    let keytab = certs.file("client.keytab");
    let gssapi = |extra: &str| {
        with_security(&format!(
            "    security_protocol: SASL_SSL\n    sasl_mechanism: GSSAPI\n{extra}"
        ))
    };
    let loaded = ok(
        &gssapi(&format!(
            "    sasl_kerberos_service_name: kafka\n    sasl_keytab_path: {}\n    sasl_kerberos_principal: backup@EXAMPLE.TEST\n",
            keytab.display()
        )),
        &[],
    );
    let sasl = loaded.cluster.security.sasl.unwrap();
    assert_eq!(sasl.mechanism, crate::config::SaslMechanismName::Gssapi);
    assert_eq!(sasl.username, "backup@EXAMPLE.TEST");
    let crate::config::SaslCredentials::Kerberos(k) = &sasl.credentials else {
        panic!("{sasl:?}")
    };
    assert_eq!(k.service_name, "kafka");
    assert_eq!(k.keytab_path, keytab);
    assert_message(
        &err(
            &gssapi(&format!("    sasl_keytab_path: {}\n", keytab.display())),
            &[],
        ),
        &[
            "`source.security.sasl_kerberos_service_name` (line 7): is not set (or empty) but GSSAPI needs it",
        ],
    );
    assert_message(
        &err(&gssapi("    sasl_kerberos_service_name: kafka\n"), &[]),
        &["`source.security.sasl_keytab_path` (line 7): is not set but GSSAPI needs it"],
    );
    assert_message(
        &err(
            &gssapi(&format!(
                "    sasl_kerberos_service_name: kafka\n    sasl_keytab_path: {}\n    sasl_password: pw\n",
                keytab.display()
            )),
            &[],
        ),
        &["`source.security.sasl_password` (line 10): is not used with sasl_mechanism GSSAPI"],
    );
}

#[test]
fn gssapi_files_are_checked_before_the_not_built_in_error() {
    let e = err(
        &with_security(
            "    security_protocol: SASL_SSL\n    sasl_mechanism: GSSAPI\n    sasl_keytab_path: /nonexistent/client.keytab\n",
        ),
        &[],
    );
    assert_message(
        &e,
        &[
            "`source.security.sasl_keytab_path` (line 8): names /nonexistent/client.keytab, which does not exist",
        ],
    );
}

#[test]
fn credentials_must_be_complete() {
    let e = err(
        &with_security(
            "    security_protocol: SASL_SSL\n    sasl_mechanism: PLAIN\n    sasl_password: pw\n",
        ),
        &[],
    );
    assert_message(
        &e,
        &[
            "`source.security.sasl_username` (line 7): sasl_mechanism is PLAIN but sasl_username is not set",
        ],
    );
    let e = err(
        &with_security(
            "    security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-256\n    sasl_username: svc\n",
        ),
        &[],
    );
    assert_message(
        &e,
        &[
            "sasl_mechanism is SCRAM-SHA-256 but sasl_password is not set; add sasl_password: \
             ${KAFKA_PASSWORD} and export that variable",
        ],
    );
    let e = err(
        &with_security(
            "    security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-256\n    sasl_username: svc\n    sasl_password: ${PW}\n",
        ),
        &[("PW", "")],
    );
    assert_message(
        &e,
        &[
            "`source.security.sasl_password` (line 9): is empty (an environment variable that is set \
             but empty does this); set it to the password of `svc`",
        ],
    );
    let e = err(
        &with_security(
            "    security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-256\n    sasl_username: \"\"\n    sasl_password: pw\n",
        ),
        &[],
    );
    assert_message(
        &e,
        &[
            "`source.security.sasl_username` (line 8): is empty, but sasl_mechanism SCRAM-SHA-256 needs a user name",
        ],
    );
}

// ---- TLS -------------------------------------------------------------------------------

#[test]
fn ssl_keys_need_a_tls_protocol() {
    let e = err(
        &with_security(
            "    security_protocol: SASL_PLAINTEXT\n    sasl_mechanism: PLAIN\n    sasl_username: u\n    sasl_password: p\n    ssl_ca_location: /certs/ca.crt\n",
        ),
        &[],
    );
    assert_message(
        &e,
        &[
            "`source.security.ssl_ca_location` (line 10): ssl_ca_location is set but \
             security_protocol is SASL_PLAINTEXT, so TLS is off: did you mean SASL_SSL?",
        ],
    );
    let e = err(
        &with_security("    ssl_endpoint_identification_algorithm: none\n"),
        &[],
    );
    assert_message(
        &e,
        &[
            "ssl_endpoint_identification_algorithm is set but security_protocol is not set, so it is \
             PLAINTEXT, so TLS is off: did you mean SSL",
        ],
    );
}

#[test]
fn certificate_and_key_go_together() {
    let certs = CertDir::new();
    let d = certs.dir_str();
    let e = err(
        &with_security(&format!(
            "    security_protocol: SSL\n    ssl_certificate_location: {d}/client.crt\n"
        )),
        &[],
    );
    assert_message(
        &e,
        &[
            "`source.security.ssl_certificate_location` (line 7): is set without ssl_key_location; a client certificate needs its private key",
        ],
    );
    let e = err(
        &with_security(&format!(
            "    security_protocol: SSL\n    ssl_key_location: {d}/client.key\n"
        )),
        &[],
    );
    assert_message(
        &e,
        &["`source.security.ssl_key_location` (line 7): is set without ssl_certificate_location"],
    );
    let e = err(
        &with_security("    security_protocol: SSL\n    ssl_key_password: pw\n"),
        &[],
    );
    assert_message(
        &e,
        &[
            "`source.security.ssl_key_password` (line 7): is set without ssl_key_location; it only decrypts that key",
        ],
    );
}

#[test]
fn named_files_must_exist_and_be_files() {
    let certs = CertDir::new();
    let e = err(
        &with_security("    security_protocol: SSL\n    ssl_ca_location: /nonexistent/ca.crt\n"),
        &[],
    );
    assert_message(
        &e,
        &[
            "`source.security.ssl_ca_location` (line 7): names /nonexistent/ca.crt, which does not \
             exist; check the path",
        ],
    );
    let e = err(
        &with_security(&format!(
            "    security_protocol: SSL\n    ssl_ca_location: {}\n",
            certs.dir_str()
        )),
        &[],
    );
    assert_message(
        &e,
        &["which is a directory; give the path of the file itself"],
    );
    let e = err(
        &with_security("    security_protocol: SSL\n    ssl_ca_location: \"\"\n"),
        &[],
    );
    assert_message(
        &e,
        &["`source.security.ssl_ca_location` (line 7): is empty"],
    );
    let e = check_file_for_tests(
        "source.security.sasl_keytab_path",
        "relative/missing.keytab",
    )
    .unwrap_err();
    assert_message(
        &e,
        &[
            "`source.security.sasl_keytab_path` (line 1): names relative/missing.keytab, which does \
             not exist; check the path (a relative path is taken from the working directory",
        ],
    );
    assert_eq!(
        check_file_for_tests("k", certs.file("ca.crt").to_str().unwrap()).unwrap(),
        certs.file("ca.crt")
    );
}

#[test]
fn unreadable_files_are_errors() {
    // Root reads everything, so this can only be checked as another user.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let certs = CertDir::new();
        let file = certs.file("ca.crt");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::File::open(&file).is_ok() {
            return;
        }
        let e = check_file_for_tests("source.security.ssl_ca_location", file.to_str().unwrap())
            .unwrap_err();
        assert_message(&e, &["which cannot be read (this user may not read it)"]);
    }
}

// ---- brokers, limits, mode, id ---------------------------------------------------------

#[test]
fn bootstrap_servers_are_checked() {
    let base = "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: ";
    let e = err(&format!("{base}[]\n"), &[]);
    assert_message(
        &e,
        &["`source.bootstrap_servers`: is empty; list at least one broker as host:port"],
    );
    let e = err(&format!("{base}\"\"\n"), &[]);
    assert_message(&e, &["`source.bootstrap_servers` (line 4): is empty"]);
    let e = err(&format!("{base}[\"k:1\", \"kafka-1\"]\n"), &[]);
    assert_message(
        &e,
        &[
            "`source.bootstrap_servers[1]` (line 4): `kafka-1` is not a broker address: missing port; \
             write it as host:port",
        ],
    );
    let e = err(&format!("{base}\"a:1,b:99999\"\n"), &[]);
    assert_message(&e, &["`b:99999` is not a broker address"]);
    let config = ok(&format!("{base}\"a:1, SASL_SSL://b:2,\"\n"), &[]);
    assert_eq!(config.cluster.bootstrap_servers.len(), 2);
    assert_eq!(config.cluster.bootstrap_servers[1].to_string(), "b:2");
}

#[test]
fn timeouts_and_sizes_are_bounded() {
    let base = "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:1\"]\n";
    let e = err(&format!("{base}  connect_timeout_ms: 0\n"), &[]);
    assert_message(
        &e,
        &[
            "`source.connect_timeout_ms` (line 5): is 0, which would give up at once; use 1 to 3600000 ms (the default is 10000)",
        ],
    );
    let e = err(&format!("{base}  request_timeout_ms: 3600001\n"), &[]);
    assert_message(
        &e,
        &["`source.request_timeout_ms` (line 5): is 3600001 ms, more than one hour"],
    );
    let e = err(&format!("{base}  max_response_bytes: 1000\n"), &[]);
    assert_message(
        &e,
        &[
            "`source.max_response_bytes` (line 5): is 1000 bytes, less than 1 MiB",
            "use 1048576 (1 MiB) to 2147483648 (2 GiB)",
        ],
    );
    let e = err(&format!("{base}  max_response_bytes: 2147483649\n"), &[]);
    assert_message(
        &e,
        &["more than 2 GiB, so one response could exhaust memory"],
    );
    let e = err(&format!("{base}  retry_backoff_ms: 10000\n"), &[]);
    assert_message(
        &e,
        &[
            "`source.retry_backoff_ms` (line 5): is 10000 ms, more than retry_backoff_max_ms (5000 ms, the default)",
        ],
    );
    let config = ok(
        &format!("{base}  max_response_bytes: 2147483648\n  connect_timeout_ms: 3600000\n"),
        &[],
    );
    assert_eq!(config.cluster.max_response_bytes, 2 * 1024 * 1024 * 1024);
}

#[test]
fn mode_decides_which_cluster_section_is_required() {
    let e = err("mode: backup\nbackup_id: b\n", &[]);
    assert_message(
        &e,
        &["`source` (line 1): mode is backup but there is no `source` section; add `source:`"],
    );
    let e = err(
        "mode: restore\nbackup_id: b\nsource:\n  bootstrap_servers: k:1\n",
        &[],
    );
    assert_message(
        &e,
        &[
            "`source`: mode is restore, which uses `target`, but the file also has a `source` section",
        ],
    );
    let e = err(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: k:1\ntarget:\n  bootstrap_servers: k:2\n",
        &[],
    );
    assert_message(
        &e,
        &[
            "`target`: mode is backup, which uses `source`, but the file also has a `target` section; remove `target`, or set mode: restore",
        ],
    );
}

#[test]
fn backup_id_is_a_safe_name() {
    let run = |id: &str| {
        load_text(
            &format!("mode: backup\nbackup_id: \"{id}\"\nsource:\n  bootstrap_servers: k:1\n"),
            &[],
        )
    };
    assert!(run("prod.orders_2024-01").is_ok());
    assert!(run(&"a".repeat(128)).is_ok());
    assert_message(&run("").unwrap_err(), &["`backup_id` (line 2): is empty"]);
    assert_message(
        &run(&"a".repeat(129)).unwrap_err(),
        &["is 129 characters long; use at most 128"],
    );
    assert_message(
        &run("../etc").unwrap_err(),
        &["contains `/`, which is not allowed; use only A-Z, a-z, 0-9"],
    );
    assert_message(&run(".hidden").unwrap_err(), &["starts with `.`"]);
}

// ---- warnings (rule 5) -----------------------------------------------------------------

#[test]
fn disabled_hostname_verification_warns_loudly() {
    let config = ok(
        &with_security(
            "    security_protocol: SSL\n    ssl_endpoint_identification_algorithm: NONE\n",
        ),
        &[],
    );
    assert!(!config.cluster.security.tls.verify_hostname);
    assert_eq!(config.warnings.len(), 1);
    let w = &config.warnings[0];
    assert!(
        w.contains("source.security: HOSTNAME VERIFICATION IS OFF"),
        "{w}"
    );
    assert!(w.contains("can impersonate these brokers"), "{w}");
    assert!(config.to_string().ends_with("[hostname verification OFF]"));
}

#[test]
fn clear_text_sasl_warns() {
    let plain = ok(
        &with_security(
            "    security_protocol: SASL_PLAINTEXT\n    sasl_mechanism: PLAIN\n    sasl_username: svc\n    sasl_password: pw\n",
        ),
        &[],
    );
    assert_eq!(plain.warnings.len(), 1);
    assert!(
        plain.warnings[0].contains(
            "sasl_mechanism PLAIN over SASL_PLAINTEXT sends the password of `svc` across the network in clear text"
        ),
        "{:?}",
        plain.warnings
    );
    let scram = ok(
        &with_security(
            "    security_protocol: SASL_PLAINTEXT\n    sasl_mechanism: SCRAM-SHA-512\n    sasl_username: svc\n    sasl_password: pw\n",
        ),
        &[],
    );
    assert!(
        scram.warnings[0].contains(
            "SASL_PLAINTEXT with SCRAM-SHA-512 keeps the password off the wire, but every record"
        ),
        "{:?}",
        scram.warnings
    );
    assert!(ok(&sasl_ssl(""), &[]).warnings.is_empty());
}

#[cfg(unix)]
#[test]
fn shared_private_key_warns_with_chmod() {
    use std::os::unix::fs::PermissionsExt;
    let certs = CertDir::new();
    let d = certs.dir_str();
    let text = with_security(&format!(
        "    security_protocol: SSL\n    ssl_certificate_location: {d}/client.crt\n    ssl_key_location: {d}/client.key\n"
    ));
    assert!(ok(&text, &[]).warnings.is_empty(), "0600 is fine");
    let key = certs.file("client.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = ok(&text, &[]);
    assert_eq!(config.warnings.len(), 1);
    let expected = format!(
        "source.security.ssl_key_location: the private key {} is readable by its group and all \
         other users (mode 644); whoever can read it can impersonate this client: run chmod 600 {}",
        key.display(),
        key.display()
    );
    assert_eq!(config.warnings[0], expected);
    assert!(certs.path().exists());
}

//! Parsing: the full example, unknown and duplicate keys and values (rule 2), types and
//! missing keys (rule 3), syntax and size limits (rule 6).

use std::time::Duration;

use kafka_client::{BrokerAddress, SecurityProtocol};

use super::*;
use crate::config::{MAX_CONFIG_BYTES, Mode, SaslMechanismName};

/// The example from the documentation, with the certificate directory taken from `${CERTS}`.
const FULL_EXAMPLE: &str = r#"mode: backup                # backup | restore (required)
backup_id: "prod-orders"    # required
source:
  bootstrap_servers: ["kafka-0:9093", "kafka-1:9093"]
  client_id: kafka-backup
  connect_timeout_ms: 10000
  request_timeout_ms: 30000
  max_response_bytes: 104857600
  retry_backoff_ms: 100
  retry_backoff_max_ms: 5000
  security:
    security_protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    sasl_username: backup-svc
    sasl_password: ${KAFKA_PASSWORD}
    ssl_ca_location: ${CERTS}/ca.crt
    ssl_certificate_location: ${CERTS}/client.crt
    ssl_key_location: ${CERTS}/client.key
    ssl_key_password: ${SSL_KEY_PASSWORD}
    ssl_endpoint_identification_algorithm: https
    sasl_kerberos_service_name: kafka
    sasl_keytab_path: /etc/kafka-backup/client.keytab
    sasl_krb5_config_path: /etc/krb5.conf
"#;

#[test]
fn full_example_round_trip() {
    let certs = CertDir::new();
    let config = ok(
        FULL_EXAMPLE,
        &[
            ("KAFKA_PASSWORD", "kafka-pw-123"),
            ("SSL_KEY_PASSWORD", "key-pw-456"),
            ("CERTS", certs.dir_str()),
        ],
    );
    assert_eq!(config.mode, Mode::Backup);
    assert_eq!(config.backup_id, "prod-orders");
    assert!(config.source().is_some() && config.target().is_none());
    let cluster = &config.cluster;
    assert_eq!(
        cluster.bootstrap_servers,
        vec![
            BrokerAddress::new("kafka-0", 9093),
            BrokerAddress::new("kafka-1", 9093)
        ]
    );

    let (client, sasl) = cluster.to_client_config();
    assert_eq!(client.bootstrap_servers, cluster.bootstrap_servers);
    assert_eq!(client.client_id, "kafka-backup");
    assert_eq!(client.connect_timeout, Duration::from_millis(10_000));
    assert_eq!(client.request_timeout, Duration::from_millis(30_000));
    assert_eq!(client.max_response_bytes, 104_857_600);
    assert_eq!(client.retry_backoff, Duration::from_millis(100));
    assert_eq!(client.retry_backoff_max, Duration::from_millis(5_000));
    assert_eq!(client.security.protocol, SecurityProtocol::SaslSsl);
    assert!(
        client.security.sasl.is_none(),
        "the caller builds the mechanism"
    );
    let tls = &client.security.tls;
    assert_eq!(tls.ca_location.as_deref(), Some(&*certs.file("ca.crt")));
    assert_eq!(
        tls.certificate_location.as_deref(),
        Some(&*certs.file("client.crt"))
    );
    assert_eq!(
        tls.key_location.as_deref(),
        Some(&*certs.file("client.key"))
    );
    assert_eq!(
        tls.key_password.as_ref().map(|s| s.expose()),
        Some("key-pw-456")
    );
    assert!(tls.verify_hostname);

    let sasl = sasl.expect("SASL_SSL yields SASL settings");
    assert_eq!(sasl.mechanism, SaslMechanismName::ScramSha512);
    assert_eq!(sasl.mechanism.as_str(), "SCRAM-SHA-512");
    assert_eq!(sasl.username, "backup-svc");
    assert_eq!(sasl.password().unwrap().expose(), "kafka-pw-123");

    // The Kerberos keys are accepted (OSO's format has them) and reported as unused.
    assert_eq!(config.warnings.len(), 3, "{:?}", config.warnings);
    assert!(config.warnings[0].contains(
        "source.security.sasl_kerberos_service_name is ignored: sasl_mechanism is SCRAM-SHA-512"
    ));
    assert_eq!(
        config.to_string(),
        "backup `prod-orders`: source kafka-0:9093,kafka-1:9093 over SASL_SSL (SCRAM-SHA-512 as backup-svc)"
    );
}

#[test]
fn minimal_config_gets_plaintext_and_defaults() {
    let config = ok(
        "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: kafka:9092\n",
        &[],
    );
    assert_eq!(config.mode, Mode::Restore);
    assert!(config.target().is_some() && config.source().is_none());
    let (client, sasl) = config.cluster.to_client_config();
    assert!(sasl.is_none());
    assert_eq!(client.security.protocol, SecurityProtocol::Plaintext);
    assert_eq!(client.client_id, "kafka-backup");
    assert_eq!(client.connect_timeout, Duration::from_secs(10));
    assert_eq!(client.request_timeout, Duration::from_secs(30));
    assert_eq!(client.max_response_bytes, 100 * 1024 * 1024);
    assert!(config.warnings.is_empty());
}

#[test]
fn keywords_ignore_case_and_accept_mechanism_aliases() {
    let config = ok(
        &with_security(
            "    security_protocol: sasl_plaintext\n    sasl_mechanism: scram-sha256\n    sasl_username: u\n    sasl_password: pw\n",
        )
        .replace("mode: backup", "mode: BACKUP"),
        &[],
    );
    let sasl = config.cluster.security.sasl.unwrap();
    assert_eq!(sasl.mechanism, SaslMechanismName::ScramSha256);
    assert_eq!(
        config.cluster.security.protocol,
        SecurityProtocol::SaslPlaintext
    );
}

// ---- rule 2: unknown keys, values, duplicates ------------------------------------------

#[test]
fn unknown_key_names_path_line_and_suggestion() {
    let e = err(
        &with_security(
            "    security_protocol: SASL_SSL\n    sasl_mechanism: PLAIN\n    sasl_username: u\n    sasl_pasword: x\n",
        ),
        &[],
    );
    assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "test.yaml: unknown key `source.security.sasl_pasword` (line 9); did you mean `sasl_password`?",
            "the keys allowed in `source.security` are: security_protocol, sasl_mechanism",
        ],
    );
    let e = err(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_server: [\"k:1\"]\n",
        &[],
    );
    assert_message(
        &e,
        &["unknown key `source.bootstrap_server` (line 4); did you mean `bootstrap_servers`?"],
    );
}

#[test]
fn unknown_key_without_a_close_match_lists_the_keys() {
    let e = err(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:1\"]\n  zzz: 1\n",
        &[],
    );
    assert_message(
        &e,
        &[
            "unknown key `source.zzz` (line 5); remove it or fix its spelling; the keys allowed in \
             `source` are: bootstrap_servers, client_id",
        ],
    );
}

#[test]
fn misindented_keys_say_where_they_belong() {
    let e = err(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: k:1\n  security:\n  security_protocol: SASL_SSL\n",
        &[],
    );
    assert_message(
        &e,
        &[
            "unknown key `source.security_protocol` (line 6); `security_protocol` belongs under `security:`: check its indentation",
        ],
    );
    let e = err("mode: backup\nbackup_id: b\nbootstrap_servers: k:1\n", &[]);
    assert_message(
        &e,
        &[
            "unknown key `bootstrap_servers` (line 3); `bootstrap_servers` belongs under `source:` (backup) or `target:` (restore)",
        ],
    );
}

#[test]
fn osos_later_sections_are_named_as_not_yet_supported() {
    let e = err(
        "mode: backup\nbackup_id: b\nmetrics:\n  enabled: true\nsource:\n  bootstrap_servers: [\"k:1\"]\n",
        &[],
    );
    assert_message(
        &e,
        &[
            "unknown key `metrics` (line 3); `metrics` is part of OSO kafka-backup's format but this \
             version does not support it yet",
            "the keys allowed at the top level are: mode, backup_id, source, target, backup, storage",
        ],
    );
}

#[test]
fn unknown_values_suggest_the_closest() {
    let e = err(&with_security("    security_protocol: SASL_SLL\n"), &[]);
    assert!(matches!(e, ConfigError::UnknownValue { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "unknown value `SASL_SLL` for `source.security.security_protocol` (line 6); did you mean \
             `SASL_SSL`? use one of: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        ],
    );
    let e = err(
        &with_security("    security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-521\n"),
        &[],
    );
    assert_message(
        &e,
        &[
            "unknown value `SCRAM-SHA-521` for `source.security.sasl_mechanism` (line 7); did you mean `SCRAM-SHA-512`?",
        ],
    );
    let e = err("mode: bakup\nbackup_id: b\n", &[]);
    assert_message(
        &e,
        &[
            "unknown value `bakup` for `mode` (line 1); did you mean `backup`? use one of: backup, restore",
        ],
    );
    // A value from a variable is checked the same way: never a fallback to PLAINTEXT.
    let e = err(
        &with_security("    security_protocol: ${PROTO}\n"),
        &[("PROTO", "TLS")],
    );
    assert_message(
        &e,
        &[
            "unknown value `TLS` for `source.security.security_protocol` (line 6); use one of: PLAINTEXT",
        ],
    );
}

#[test]
fn empty_endpoint_algorithm_does_not_turn_verification_off() {
    let e = err(
        &with_security(
            "    security_protocol: SSL\n    ssl_endpoint_identification_algorithm: \"\"\n",
        ),
        &[],
    );
    assert_message(
        &e,
        &[
            "unknown value `` for `source.security.ssl_endpoint_identification_algorithm` (line 7); use one of: https, none",
        ],
    );
}

#[test]
fn duplicate_keys_are_errors() {
    let e = err(
        &with_security(
            "    security_protocol: SASL_SSL\n    sasl_password: a\n    sasl_password: b\n",
        ),
        &[],
    );
    assert!(matches!(e, ConfigError::DuplicateKey { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "key `source.security.sasl_password` is given more than once (line 8); keep exactly one of them",
        ],
    );
    let e = err("mode: backup\nmode: restore\nbackup_id: b\n", &[]);
    assert_message(&e, &["key `mode` is given more than once (line 2)"]);
}

// ---- rule 3: types and missing keys ----------------------------------------------------

#[test]
fn missing_required_keys_name_the_path() {
    let e = err("backup_id: b\n", &[]);
    assert!(matches!(e, ConfigError::MissingKey { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "missing required key `mode` (in the mapping at line 1); add it: expected `backup` or `restore`",
        ],
    );
    let e = err("mode: backup\n", &[]);
    assert_message(
        &e,
        &["missing required key `backup_id`", "e.g. prod-orders"],
    );
    let e = err("mode: backup\nbackup_id: b\nsource:\n  client_id: x\n", &[]);
    assert_message(
        &e,
        &[
            "missing required key `source.bootstrap_servers`",
            "expected a list of host:port broker addresses",
        ],
    );
}

#[test]
fn wrong_types_name_the_path_and_the_expectation() {
    let base = "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:1\"]\n";
    let e = err(&format!("{base}  connect_timeout_ms: soon\n"), &[]);
    assert!(matches!(e, ConfigError::WrongType { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "wrong type for `source.connect_timeout_ms` (line 5)",
            "expected a whole number of milliseconds",
        ],
    );
    let e = err(&format!("{base}  request_timeout_ms: -5\n"), &[]);
    assert_message(
        &e,
        &[
            "`source.request_timeout_ms` (line 5)",
            "expected a whole number of milliseconds",
        ],
    );
    let e = err(&format!("{base}  security: [SSL]\n"), &[]);
    assert_message(
        &e,
        &[
            "wrong type for `source.security` (line 5)",
            "expected a mapping with `security_protocol`",
        ],
    );
    let e = err(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: {a: 1}\n",
        &[],
    );
    assert_message(
        &e,
        &[
            "wrong type for `source.bootstrap_servers` (line 4)",
            "expected a list of host:port",
        ],
    );
    let e = err("mode: backup\nbackup_id: [a, b]\n", &[]);
    assert_message(&e, &["wrong type for `backup_id` (line 2)"]);
    let e = err("- mode: backup\n", &[]);
    assert_message(
        &e,
        &[
            "wrong type for `(top level)` (line 1)",
            "expected a mapping with `mode`",
        ],
    );
}

#[test]
fn numbers_may_be_quoted_or_substituted() {
    let base = "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:1\"]\n";
    let config = ok(
        &format!("{base}  request_timeout_ms: \"45000\"\n  max_response_bytes: ${{MAX}}\n"),
        &[("MAX", "2097152")],
    );
    assert_eq!(config.cluster.request_timeout, Duration::from_secs(45));
    assert_eq!(config.cluster.max_response_bytes, 2_097_152);
    let e = err(
        &format!("{base}  max_response_bytes: ${{MAX}}\n"),
        &[("MAX", "lots")],
    );
    assert_message(
        &e,
        &[
            "wrong type for `source.max_response_bytes` (line 5)",
            "expected a whole number of bytes",
        ],
    );
}

// ---- syntax and limits (rule 6) --------------------------------------------------------

#[test]
fn syntax_errors_give_the_line() {
    let e = err("mode: backup\nbackup_id: \"unterminated\nsource: x\n", &[]);
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
    assert_message(
        &e,
        &["test.yaml: the configuration is not valid YAML (line"],
    );
    let e = err(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: k:1\n---\nmode: restore\n",
        &[],
    );
    assert_message(
        &e,
        &["the file holds more than one YAML document (a second `---`)"],
    );
    let e = err("", &[]);
    assert_message(
        &e,
        &["the file is empty; write a mapping with `mode`, `backup_id`"],
    );
}

#[test]
fn oversized_text_is_rejected_before_parsing() {
    let text = format!("# {}\nmode: backup\n", "x".repeat(MAX_CONFIG_BYTES));
    let e = err(&text, &[]);
    assert!(matches!(e, ConfigError::Limit { .. }), "{e:?}");
    assert_message(&e, &["more than the 1048576-byte limit"]);
}

#[test]
fn parser_budget_stays_on() {
    // The schema rejects most bombs at their first wrong node; what fits the schema (many
    // aliases to a string) is stopped by the budget.
    let mut text =
        String::from("mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [&h \"k:1\"");
    for _ in 0..1_001 {
        text.push_str(", *h");
    }
    text.push_str("]\n");
    let e = err(&text, &[]);
    assert!(matches!(e, ConfigError::Limit { .. }), "{e:?}");
    assert_message(
        &e,
        &["test.yaml: the YAML is larger or more deeply nested than a configuration can be"],
    );
}

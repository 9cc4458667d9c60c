//! `${VAR}` substitution (rule 1): inside parsed values of every scalar style, never as text,
//! with unset variables as errors that name the key.

use std::time::Duration;

use super::*;
use crate::config::Mode;

#[test]
fn substitution_works_in_every_scalar_style() {
    let text = with_security(
        "    security_protocol: \"${PROTO}\"\n    sasl_mechanism: '${MECH}'\n    sasl_username: |-\n      ${USER_NAME}\n    sasl_password: >-\n      pre-${PW}\n",
    )
    .replace("client_id", "unused")
    .replace(
        "  security:",
        "  client_id: \"id-${USER_NAME}\"\n  connect_timeout_ms: ${TIMEOUT}\n  security:",
    );
    let config = ok(
        &text,
        &[
            ("PROTO", "SASL_PLAINTEXT"),
            ("MECH", "SCRAM-SHA-512"),
            ("USER_NAME", "svc"),
            ("PW", "s3cret"),
            ("TIMEOUT", "2500"),
        ],
    );
    let sasl = config.cluster.security.sasl.as_ref().unwrap();
    assert_eq!(sasl.username, "svc");
    assert_eq!(sasl.password().unwrap().expose(), "pre-s3cret");
    assert_eq!(config.cluster.client_id, "id-svc");
    assert_eq!(config.cluster.connect_timeout, Duration::from_millis(2500));
}

#[test]
fn a_variable_value_cannot_inject_yaml() {
    let text = with_security(
        "    security_protocol: SASL_SSL\n    sasl_mechanism: PLAIN\n    sasl_username: ${USER_NAME}\n    sasl_password: ${EVIL}\n",
    );
    let evil = "x\nmode: restore\ntarget: {bootstrap_servers: [\"evil:1\"]}\n  a: b";
    let config = ok(&text, &[("EVIL", evil), ("USER_NAME", "u: v")]);
    assert_eq!(config.mode, Mode::Backup);
    let sasl = config.cluster.security.sasl.unwrap();
    assert_eq!(sasl.password().unwrap().expose(), evil);
    assert_eq!(sasl.username, "u: v");
    // Nor is a value expanded a second time.
    let config = ok(&text, &[("EVIL", "${OTHER}"), ("USER_NAME", "u")]);
    assert_eq!(
        config
            .cluster
            .security
            .sasl
            .unwrap()
            .password()
            .unwrap()
            .expose(),
        "${OTHER}"
    );
}

#[test]
fn double_dollar_escapes_a_literal_reference() {
    let config = ok(
        &with_security(
            "    security_protocol: SASL_SSL\n    sasl_mechanism: PLAIN\n    sasl_username: u\n    sasl_password: \"a$${NOT_A_VAR}b$c\"\n",
        ),
        &[],
    );
    assert_eq!(
        config
            .cluster
            .security
            .sasl
            .unwrap()
            .password()
            .unwrap()
            .expose(),
        "a${NOT_A_VAR}b$c"
    );
}

#[test]
fn unset_variable_is_an_error_naming_variable_and_key() {
    let text = with_security(
        "    security_protocol: SASL_SSL\n    sasl_mechanism: PLAIN\n    sasl_username: u\n    sasl_password: ${KAFKA_PASSWORD}\n",
    );
    let e = err(&text, &[]);
    assert!(matches!(e, ConfigError::UnsetVariable { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "test.yaml: environment variable KAFKA_PASSWORD is not set (referenced by \
             source.security.sasl_password at line 9); export it, or write $${ for a literal ${",
        ],
    );
}

#[test]
fn unset_variable_in_lists_and_strings_names_the_entry() {
    let e = err(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:1\", \"${BROKER}\"]\n",
        &[],
    );
    assert_message(
        &e,
        &[
            "environment variable BROKER is not set (referenced by source.bootstrap_servers[1] at line 4)",
        ],
    );
    let e = err(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: ${BROKERS}\n",
        &[],
    );
    assert_message(
        &e,
        &[
            "environment variable BROKERS is not set (referenced by source.bootstrap_servers at line 4)",
        ],
    );
    let e = err("mode: ${MODE}\nbackup_id: b\n", &[]);
    assert_message(
        &e,
        &["environment variable MODE is not set (referenced by mode at line 1)"],
    );
}

#[test]
fn names_hidden_in_yaml_escapes_are_looked_up_too() {
    let config = ok(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:1\"]\n  client_id: \"\\x24{ID}\"\n",
        &[("ID", "from-env")],
    );
    assert_eq!(config.cluster.client_id, "from-env");
}

#[test]
fn set_but_empty_variable_substitutes_empty() {
    let config = ok(
        "mode: backup\nbackup_id: b${SUFFIX}\nsource:\n  bootstrap_servers: [\"k:1\"]\n",
        &[("SUFFIX", "")],
    );
    assert_eq!(config.backup_id, "b");
}

#[test]
fn malformed_references_are_errors() {
    let base = "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:1\"]\n  client_id: ";
    let e = err(&format!("{base}\"x-${{ID\"\n"), &[]);
    assert!(matches!(e, ConfigError::BadReference { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "`source.client_id` (line 5): a `${` is not closed by `}`",
            "or $${ for a literal ${",
        ],
    );
    let e = err(&format!("{base}\"${{1ID}}\"\n"), &[]);
    assert_message(
        &e,
        &["`${1ID}` is not a valid variable reference; write ${NAME} with a NAME of letters"],
    );
    let e = err(&format!("{base}\"${{ID:-default}}\"\n"), &[]);
    assert_message(&e, &["`${ID:-default}` is not a valid variable reference"]);
}

/// `${file:/path}` reads a mounted secret (Kubernetes secret volume, Vault agent): its content
/// with one trailing newline removed, as a secret; a missing file is an error naming the file
/// and the key; a file others may read is a warning; a relative path is refused.
#[test]
fn secrets_are_read_from_mounted_files() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "fr0m-a-f1le\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o400)).unwrap();
    let user = dir.path().join("user");
    std::fs::write(&user, "svc\r\n").unwrap();
    std::fs::set_permissions(&user, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = |pw: &str| {
        with_security(&format!(
            "    security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-512\n    \
             sasl_username: ${{file:{}}}\n    sasl_password: \"${{file:{pw}}}\"\n",
            user.display()
        ))
    };
    let config = ok(&text(&password.display().to_string()), &[]);
    let sasl = config.cluster.security.sasl.as_ref().unwrap();
    assert_eq!(sasl.password().unwrap().expose(), "fr0m-a-f1le");
    assert_eq!(sasl.username, "svc");
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains(&user.display().to_string()) && w.contains("every user")),
        "{:?}",
        config.warnings
    );
    assert!(
        !config
            .warnings
            .iter()
            .any(|w| w.contains(&password.display().to_string())),
        "{:?}",
        config.warnings
    );
    assert!(config.literal_secret_lines.is_empty());
    assert!(!format!("{config:?}").contains("fr0m-a-f1le"));

    let missing = dir.path().join("absent");
    let e = err(&text(&missing.display().to_string()), &[]);
    assert_message(
        &e,
        &[
            &missing.display().to_string(),
            "source.security.sasl_password",
            "does not exist",
        ],
    );
    // Under the operator's mount point (here below a test root), a missing file is a
    // Secret without that key, and the message says so.
    let mounted = dir
        .path()
        .join("var/run/kafka-backup/secrets/kafka-credentials/pasword");
    let e = err(&text(&mounted.display().to_string()), &[]);
    assert_message(
        &e,
        &[
            "Secret `kafka-credentials` has no key `pasword`",
            "source.security.sasl_password",
        ],
    );
    let e = err(&text("relative/path"), &[]);
    assert_message(&e, &["needs an absolute path"]);
    // A directory is not a secret.
    let e = err(&text(&dir.path().display().to_string()), &[]);
    assert_message(&e, &["not a regular file"]);
}

//! `config::load` against real files: the path a user gives on the command line.

use std::io::Write;

use backup_core::config::{self, ConfigError, MAX_CONFIG_BYTES, Mode};

const SECRET: &str = "Integration-Secret-Pw-2718";

#[test]
fn loads_a_file_with_certificates_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["ca.crt", "client.crt", "client.key"] {
        std::fs::write(dir.path().join(name), "-----BEGIN TEST-----\n").unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("client.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let path = dir.path().join("kafka-backup.yaml");
    std::fs::write(
        &path,
        format!(
            "mode: backup\nbackup_id: prod-orders\nsource:\n  bootstrap_servers: kafka-0:9093,kafka-1:9093\n  \
             security:\n    security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-512\n    \
             sasl_username: backup-svc\n    sasl_password: ${{KAFKA_PASSWORD}}\n    \
             ssl_ca_location: {d}/ca.crt\n    ssl_certificate_location: {d}/client.crt\n    \
             ssl_key_location: {d}/client.key\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let env = |name: &str| (name == "KAFKA_PASSWORD").then(|| SECRET.to_owned());
    let loaded = config::load_with_env(&path, &env).unwrap();
    assert_eq!(loaded.mode, Mode::Backup);
    assert_eq!(loaded.cluster.bootstrap_servers.len(), 2);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let (client, sasl) = loaded.cluster.to_client_config();
    assert_eq!(
        client.security.tls.ca_location,
        Some(dir.path().join("ca.crt"))
    );
    assert_eq!(sasl.unwrap().password().unwrap().expose(), SECRET);
    assert!(!format!("{loaded:?}").contains(SECRET));

    // The same file without the variable: an error that names the file and the key.
    let e = config::load_with_env(&path, &|_| None).unwrap_err();
    let message = e.to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("environment variable KAFKA_PASSWORD is not set (referenced by source.security.sasl_password at line 9)"),
        "{message}"
    );
}

#[test]
fn load_reads_the_process_environment_by_default() {
    // No variables in the file, so the process environment is not involved either way.
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(
        b"mode: restore\nbackup_id: b\ntarget:\n  bootstrap_servers: [\"localhost:9092\"]\n",
    )
    .unwrap();
    let loaded = config::load(file.path()).unwrap();
    assert_eq!(loaded.mode, Mode::Restore);
    assert!(loaded.target().is_some());
}

#[test]
fn files_over_one_mebibyte_are_rejected_before_parsing() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"mode: backup\n").unwrap();
    file.write_all(&vec![b'#'; MAX_CONFIG_BYTES]).unwrap();
    let e = config::load(file.path()).unwrap_err();
    assert!(matches!(e, ConfigError::Limit { .. }), "{e:?}");
    assert!(
        e.to_string().contains(
            "more than the 1048576-byte limit; check that this is the configuration file"
        ),
        "{e}"
    );
}

#[test]
fn unreadable_and_non_utf8_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let e = config::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "cannot read the configuration file {}: ",
            missing.display()
        )),
        "{e}"
    );
    assert!(e.to_string().contains("check the path"), "{e}");

    let latin1 = dir.path().join("latin1.yaml");
    std::fs::write(&latin1, b"mode: backup\nbackup_id: caf\xe9\n").unwrap();
    let e = config::load(&latin1).unwrap_err();
    assert!(
        e.to_string()
            .contains("the file is not UTF-8 text (invalid byte at offset 27); save it as UTF-8"),
        "{e}"
    );
}

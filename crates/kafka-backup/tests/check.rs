//! `kafka-backup check` against the real brokers of `scripts/test-env.sh`: every security mode
//! connects and is reported correctly, and every way of getting it wrong ends in a clear error
//! with the right exit code and without leaking a secret.

mod common;

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use common::{EXIT_CONFIG, EXIT_KAFKA, EXIT_OK, Run, run_binary};
use serde_json::Value;
use test_support::get;

/// Runs `kafka-backup check` on `yaml`, with extra environment variables and arguments.
fn check(yaml: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backup.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut all = vec![
        OsStr::new("check"),
        OsStr::new("--config"),
        path.as_os_str(),
    ];
    all.extend(args.iter().map(OsStr::new));
    run_binary(&all, env)
}

/// A backup configuration for broker `name` with the given `security:` lines.
fn config(name: &str, security: &str) -> String {
    let mut yaml = format!(
        "mode: backup\nbackup_id: check-test\nsource:\n  bootstrap_servers: [\"{}\"]\n  connect_timeout_ms: 5000\n",
        get(&format!("/brokers/{name}"))
    );
    if !security.is_empty() {
        yaml.push_str("  security:\n");
        for line in security.lines() {
            yaml.push_str("    ");
            yaml.push_str(line.trim());
            yaml.push('\n');
        }
    }
    yaml
}

fn tls(key: &str) -> String {
    get(&format!("/tls/{key}"))
}

fn scram(which: &str) -> (String, String) {
    (
        get(&format!("/scram/{which}/username")),
        get(&format!("/scram/{which}/password")),
    )
}

fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, code, "exit code; output:\n{}", run.all());
}

fn assert_contains(run: &Run, needle: &str) {
    assert!(
        run.all().contains(needle),
        "expected `{needle}` in the output:\n{}",
        run.all()
    );
}

fn the_broker(report: &Value) -> &Value {
    let brokers = report["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "{report}");
    &brokers[0]
}

#[test]
fn plaintext() {
    let run = check(&config("plaintext", ""), &[], &[]);
    assert_code(&run, EXIT_OK);
    assert_contains(&run, "Security     PLAINTEXT");
    assert_contains(&run, "Result       OK");
    let report = check(&config("plaintext", ""), &[], &["--format", "json"]).json();
    assert_eq!(report["ok"], true);
    assert!(report["cluster_id"].as_str().is_some_and(|c| !c.is_empty()));
    let broker = the_broker(&report);
    assert!(broker["tls"].is_null() && broker["sasl"].is_null());
    let fetch = broker["api_versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["api"] == "Fetch")
        .unwrap();
    assert!(fetch["chosen"].as_i64().unwrap() >= 4, "{fetch}");
}

#[test]
fn sasl_plaintext_scram_sha256_and_sha512_in_both_spellings() {
    for (which, spellings) in [
        ("sha256", ["SCRAM-SHA-256", "SCRAM-SHA256"]),
        ("sha512", ["SCRAM-SHA-512", "SCRAM-SHA512"]),
    ] {
        let (user, password) = scram(which);
        for spelling in spellings {
            let yaml = config(
                "sasl_plaintext",
                &format!(
                    "security_protocol: SASL_PLAINTEXT\nsasl_mechanism: {spelling}\n\
                     sasl_username: {user}\nsasl_password: ${{KB_PASSWORD}}"
                ),
            );
            let run = check(&yaml, &[("KB_PASSWORD", &password)], &["--format", "json"]);
            assert_code(&run, EXIT_OK);
            let report = run.json();
            let sasl = &the_broker(&report)["sasl"];
            let canonical = if which == "sha256" {
                "SCRAM-SHA-256"
            } else {
                "SCRAM-SHA-512"
            };
            assert_eq!(sasl["mechanism"], canonical, "{spelling}");
            assert_eq!(sasl["user"], user.as_str());
            assert!(!run.all().contains(&password), "password leaked");
        }
    }
}

/// A password mounted as a file (`${file:/path}`, as Kubernetes secret volumes and Vault
/// agents provide it) authenticates with SCRAM; its trailing newline is not part of it; a
/// wrong one fails without the file's content in the output; a missing one names the file.
#[test]
fn a_sasl_password_from_a_mounted_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let (user, password) = scram("sha512");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    let yaml = config(
        "sasl_plaintext",
        &format!(
            "security_protocol: SASL_PLAINTEXT\nsasl_mechanism: SCRAM-SHA-512\n\
             sasl_username: {user}\nsasl_password: ${{file:{}}}",
            file.display()
        ),
    );
    std::fs::write(&file, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    let run = check(&yaml, &[], &["--format", "json"]);
    assert_code(&run, EXIT_OK);
    assert_eq!(the_broker(&run.json())["sasl"]["user"], user.as_str());
    assert!(!run.all().contains(&password), "password leaked");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&file, "not-the-password-at-all\n").unwrap();
    let run = check(&yaml, &[], &[]);
    assert_ne!(run.code, EXIT_OK);
    assert!(
        !run.all().contains("not-the-password-at-all"),
        "{}",
        run.all()
    );

    std::fs::remove_file(&file).unwrap();
    let run = check(&yaml, &[], &[]);
    assert_code(&run, EXIT_CONFIG);
    assert_contains(&run, &format!("the secret file {}", file.display()));
    assert_contains(&run, "does not exist");
}

#[test]
fn ssl_reports_version_cipher_and_certificate() {
    let yaml = config(
        "ssl",
        &format!("security_protocol: SSL\nssl_ca_location: {}", tls("ca")),
    );
    let run = check(&yaml, &[], &[]);
    assert_code(&run, EXIT_OK);
    assert_contains(&run, "TLS          TLSv1.3, TLS13_");
    let report = check(&yaml, &[], &["--format", "json"]).json();
    let t = &the_broker(&report)["tls"];
    assert_eq!(t["protocol_version"], "TLSv1.3");
    let cert = &t["certificate"];
    assert!(
        cert["subject_alt_names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "DNS:localhost"),
        "{cert}"
    );
    assert!(cert["days_left"].as_i64().unwrap() > 30, "{cert}");
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "{report}"
    );
}

#[test]
fn mtls_with_every_key_format() {
    let password = tls("client_key_password");
    let cases = [
        ("client_cert", "client_key", None),
        ("client_cert", "client_key_rsa", None),
        (
            "client_cert",
            "client_key_encrypted",
            Some(password.as_str()),
        ),
        ("client_ec_cert", "client_ec_key", None),
    ];
    for (cert, key, key_password) in cases {
        let mut security = format!(
            "security_protocol: SSL\nssl_ca_location: {}\nssl_certificate_location: {}\nssl_key_location: {}",
            tls("ca"),
            tls(cert),
            tls(key)
        );
        if key_password.is_some() {
            security.push_str("\nssl_key_password: ${KB_KEY_PASSWORD}");
        }
        let run = check(
            &config("mtls", &security),
            &[("KB_KEY_PASSWORD", &password)],
            &[],
        );
        assert_code(&run, EXIT_OK);
        assert_contains(&run, "Result       OK");
        assert!(!run.all().contains(&password), "key password leaked");
    }
}

#[test]
fn sasl_ssl_reports_tls_and_sasl() {
    let (user, password) = scram("sha512");
    let yaml = config(
        "sasl_ssl",
        &format!(
            "security_protocol: SASL_SSL\nsasl_mechanism: SCRAM-SHA-512\nsasl_username: {user}\n\
             sasl_password: ${{KB_PASSWORD}}\nssl_ca_location: {}",
            tls("ca")
        ),
    );
    let run = check(&yaml, &[("KB_PASSWORD", &password)], &["--format", "json"]);
    assert_code(&run, EXIT_OK);
    let broker = &run.json()["brokers"][0];
    assert_eq!(broker["tls"]["protocol_version"], "TLSv1.3");
    assert_eq!(broker["sasl"]["mechanism"], "SCRAM-SHA-512");
    assert_eq!(broker["sasl"]["user"], user.as_str());
}

#[test]
fn a_certificate_expiring_within_30_days_is_warned_about() {
    let yaml = config(
        "ssl_expiring",
        &format!("security_protocol: SSL\nssl_ca_location: {}", tls("ca")),
    );
    let run = check(&yaml, &[], &["--format", "json"]);
    assert_code(&run, EXIT_OK);
    let report = run.json();
    let days = report["brokers"][0]["tls"]["certificate"]["days_left"]
        .as_i64()
        .unwrap();
    assert!((0..30).contains(&days), "{report}");
    let warnings = report["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .contains(&format!("expires in {days} days"))),
        "{report}"
    );
    assert_contains(&run, "WARN");
}

#[test]
fn wrong_scram_password_and_unknown_user_are_authentication_errors() {
    let (user, password) = scram("sha256");
    let wrong = format!("{password}-but-wrong");
    for (name, secret) in [
        (user.as_str(), wrong.as_str()),
        ("no-such-user", password.as_str()),
    ] {
        let yaml = config(
            "sasl_plaintext",
            &format!(
                "security_protocol: SASL_PLAINTEXT\nsasl_mechanism: SCRAM-SHA-256\nsasl_username: {name}\n\
                 sasl_password: ${{KB_PASSWORD}}"
            ),
        );
        let run = check(&yaml, &[("KB_PASSWORD", secret)], &["--log-level", "trace"]);
        assert_code(&run, EXIT_KAFKA);
        assert_contains(
            &run,
            &format!("SASL SCRAM-SHA-256 authentication as `{name}` failed"),
        );
        assert_contains(&run, "sasl_password");
        assert!(
            !run.all().contains(secret),
            "password leaked:\n{}",
            run.all()
        );
    }
}

#[test]
fn a_mechanism_the_listener_does_not_offer_is_named_with_the_alternatives() {
    // The test broker offers SCRAM only, so PLAIN's exchange meets the broker's refusal here.
    let (user, password) = scram("sha256");
    let yaml = config(
        "sasl_plaintext",
        &format!(
            "security_protocol: SASL_PLAINTEXT\nsasl_mechanism: PLAIN\nsasl_username: {user}\n\
             sasl_password: ${{KB_PASSWORD}}"
        ),
    );
    let run = check(&yaml, &[("KB_PASSWORD", &password)], &[]);
    assert_code(&run, EXIT_KAFKA);
    assert_contains(&run, "SASL PLAIN authentication as");
    let out = run.all();
    // Kafka answers with the mechanisms it offers; the test broker hangs up instead. Either
    // way the message must say that PLAIN is not enabled on this listener.
    assert!(
        (out.contains("does not enable SASL mechanism PLAIN")
            && out.contains("SCRAM-SHA-256")
            && out.contains("SCRAM-SHA-512"))
            || out.contains("does not enable PLAIN on this listener"),
        "{out}"
    );
    assert!(!out.contains(&password));
}

#[test]
fn wrong_ca_is_an_unknown_issuer_error() {
    let yaml = config(
        "ssl",
        &format!(
            "security_protocol: SSL\nssl_ca_location: {}",
            tls("wrong_ca")
        ),
    );
    let run = check(&yaml, &[], &[]);
    assert_code(&run, EXIT_KAFKA);
    assert_contains(&run, "ssl_ca_location");
    assert_contains(&run, "is not issued by a CA in the CA file");
    assert_contains(&run, "unrelated CA");
}

#[test]
fn hostname_mismatch_is_named_and_can_be_overridden_with_a_warning() {
    let security = format!("security_protocol: SSL\nssl_ca_location: {}", tls("ca"));
    let run = check(&config("ssl_wrong_host", &security), &[], &[]);
    assert_code(&run, EXIT_KAFKA);
    assert_contains(&run, "wrong.example");
    assert_contains(&run, "localhost");
    assert_contains(&run, "ssl_endpoint_identification_algorithm");

    // Without hostname verification the handshake succeeds; the broker behind that port
    // advertises the normal listener, so the check as a whole still works.
    let run = check(
        &config(
            "ssl_wrong_host",
            &format!("{security}\nssl_endpoint_identification_algorithm: none"),
        ),
        &[],
        &[],
    );
    assert_code(&run, EXIT_OK);
    assert_contains(&run, "impersonate");
}

#[test]
fn an_expired_server_certificate_is_reported_as_expired() {
    let yaml = config(
        "ssl_expired",
        &format!("security_protocol: SSL\nssl_ca_location: {}", tls("ca")),
    );
    let run = check(&yaml, &[], &[]);
    assert_code(&run, EXIT_KAFKA);
    assert_contains(&run, "expired");
}

#[test]
fn mtls_without_a_client_certificate_says_the_listener_requires_one() {
    let yaml = config(
        "mtls",
        &format!("security_protocol: SSL\nssl_ca_location: {}", tls("ca")),
    );
    let run = check(&yaml, &[], &[]);
    assert_code(&run, EXIT_KAFKA);
    assert_contains(&run, "ssl_certificate_location");
    assert_contains(&run, "ssl_key_location");
}

#[test]
fn a_wrong_key_password_is_a_configuration_error_that_keeps_the_password_secret() {
    let wrong = "definitely-not-the-key-password";
    let yaml = config(
        "mtls",
        &format!(
            "security_protocol: SSL\nssl_ca_location: {}\nssl_certificate_location: {}\n\
             ssl_key_location: {}\nssl_key_password: ${{KB_KEY_PASSWORD}}",
            tls("ca"),
            tls("client_cert"),
            tls("client_key_encrypted")
        ),
    );
    let run = check(
        &yaml,
        &[("KB_KEY_PASSWORD", wrong)],
        &["--log-level", "trace", "--log-format", "json"],
    );
    assert_code(&run, EXIT_CONFIG);
    assert_contains(&run, "ssl_key_password");
    assert!(!run.all().contains(wrong), "key password leaked");
}

#[test]
fn an_unreachable_broker_fails_fast_with_the_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let yaml = format!(
        "mode: backup\nbackup_id: x\nsource:\n  bootstrap_servers: [\"{addr}\"]\n  connect_timeout_ms: 2000\n"
    );
    let run = check(&yaml, &[], &[]);
    assert_code(&run, EXIT_KAFKA);
    assert_contains(&run, &addr.to_string());
    assert_contains(&run, "bootstrap_servers");
}

#[test]
fn a_broker_that_never_answers_times_out_within_the_configured_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and hold connections without answering.
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(4) {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let yaml = format!(
        "mode: backup\nbackup_id: x\nsource:\n  bootstrap_servers: [\"{addr}\"]\n  connect_timeout_ms: 1000\n"
    );
    let start = Instant::now();
    let run = check(&yaml, &[], &[]);
    let took = start.elapsed();
    assert_code(&run, EXIT_KAFKA);
    assert_contains(&run, "timed out after 1000 ms");
    assert_contains(&run, "ApiVersions");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    drop(holder);
}

#[test]
fn configuration_errors_exit_3_with_the_key_and_the_fix() {
    let base = config("plaintext", "");
    let cases: [(String, &[&str]); 4] = [
        (
            base.replace("bootstrap_servers", "bootstrap_server"),
            &["bootstrap_server", "did you mean `bootstrap_servers`"],
        ),
        (
            format!("{base}  security:\n    security_protocol: TLS\n"),
            &["TLS", "SSL"],
        ),
        (
            format!(
                "{base}  security:\n    security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-512\n    \
                 sasl_username: u\n    sasl_password: ${{KB_UNSET_VARIABLE_FOR_TEST}}\n"
            ),
            &[
                "KB_UNSET_VARIABLE_FOR_TEST",
                "source.security.sasl_password",
            ],
        ),
        (
            format!(
                "{base}  security:\n    security_protocol: SSL\n    sasl_mechanism: SCRAM-SHA-512\n"
            ),
            &["sasl_mechanism", "SASL_SSL"],
        ),
    ];
    for (yaml, needles) in cases {
        let run = check(&yaml, &[], &[]);
        assert_code(&run, EXIT_CONFIG);
        for n in needles {
            assert_contains(&run, n);
        }
    }
}

#[test]
fn secrets_never_reach_logs_or_reports_even_at_trace_level() {
    let (user, password) = scram("sha512");
    let yaml = config(
        "sasl_ssl",
        &format!(
            "security_protocol: SASL_SSL\nsasl_mechanism: SCRAM-SHA-512\nsasl_username: {user}\n\
             sasl_password: ${{KB_PASSWORD}}\nssl_ca_location: {}",
            tls("ca")
        ),
    );
    for format in ["text", "json"] {
        let run = check(
            &yaml,
            &[("KB_PASSWORD", &password)],
            &[
                "--log-level",
                "trace",
                "--log-format",
                format,
                "--format",
                format,
            ],
        );
        assert_code(&run, EXIT_OK);
        assert!(
            !run.all().contains(&password),
            "the password appeared in the {format} output"
        );
    }
}

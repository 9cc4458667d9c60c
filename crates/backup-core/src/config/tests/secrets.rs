//! Secrets never reach `Debug`, `Display`, warnings or errors, whether they were written in
//! the file or substituted from the environment.

use super::*;

const ENV_PASSWORD: &str = "Env-Sasl-Pass-31337";
const ENV_KEY_PASSWORD: &str = "Env-Key-Phrase-4242";
const LITERAL_PASSWORD: &str = "Literal-Sasl-Pass-777";
const LITERAL_KEY_PASSWORD: &str = "Literal-Key-Phrase-888";
const ALL_SECRETS: [&str; 4] = [
    ENV_PASSWORD,
    ENV_KEY_PASSWORD,
    LITERAL_PASSWORD,
    LITERAL_KEY_PASSWORD,
];

fn vars(certs: &CertDir) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_PASSWORD", ENV_PASSWORD.to_owned()),
        ("SSL_KEY_PASSWORD", ENV_KEY_PASSWORD.to_owned()),
        ("CERTS", certs.dir_str().to_owned()),
    ]
}

#[track_caller]
fn assert_no_secret(text: &str) {
    for secret in ALL_SECRETS {
        assert!(
            !text.contains(secret),
            "secret {secret:?} leaked in: {text}"
        );
    }
}

/// A valid SASL_SSL + mTLS config; `password` and `key_password` are YAML value text.
fn config(password: &str, key_password: &str, extra: &str) -> String {
    format!(
        "mode: backup\nbackup_id: prod\nsource:\n  bootstrap_servers: [\"kafka-0:9093\"]\n  security:\n    \
         security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-512\n    sasl_username: svc\n    \
         sasl_password: {password}\n    ssl_ca_location: ${{CERTS}}/ca.crt\n    \
         ssl_certificate_location: ${{CERTS}}/client.crt\n    ssl_key_location: ${{CERTS}}/client.key\n    \
         ssl_key_password: {key_password}\n    ssl_endpoint_identification_algorithm: none\n{extra}"
    )
}

#[test]
fn loaded_config_never_shows_secrets() {
    let certs = CertDir::new();
    let vars = vars(&certs);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (password, key_password) in [
        ("${KAFKA_PASSWORD}", "${SSL_KEY_PASSWORD}"),
        (LITERAL_PASSWORD, LITERAL_KEY_PASSWORD),
    ] {
        let loaded = ok(&config(password, key_password, ""), &vars);
        assert_eq!(loaded.warnings.len(), 1, "hostname verification off");
        assert_no_secret(&format!("{loaded:?}"));
        assert_no_secret(&format!("{loaded:#?}"));
        assert_no_secret(&format!("{loaded}"));
        for warning in &loaded.warnings {
            assert_no_secret(warning);
        }
        let (client, sasl) = loaded.cluster.to_client_config();
        assert_no_secret(&format!("{client:?} {sasl:?}"));
        assert!(format!("{sasl:?}").contains("Password(***)"));
        // The values are there for the code that uses them.
        let sasl = sasl.unwrap();
        assert!([ENV_PASSWORD, LITERAL_PASSWORD].contains(&sasl.password().unwrap().expose()));
    }
}

#[test]
fn no_error_shows_a_secret() {
    let certs = CertDir::new();
    let vars = vars(&certs);
    let env_pw = "${KAFKA_PASSWORD}";
    let env_kp = "${SSL_KEY_PASSWORD}";
    let lit_pw = LITERAL_PASSWORD;
    let lit_kp = LITERAL_KEY_PASSWORD;
    let cases: Vec<String> = vec![
        // unknown key after the secrets
        config(env_pw, env_kp, "    sasl_pasword: x\n"),
        config(lit_pw, lit_kp, "    sasl_pasword: x\n"),
        // a misspelt secret key: the key is named, its value is not
        config(
            env_pw,
            env_kp,
            "    ssl_key_pasword: Literal-Key-Phrase-888\n",
        ),
        // duplicate secret keys
        config(lit_pw, lit_kp, "    sasl_password: Env-Sasl-Pass-31337\n"),
        // wrong types holding the secret
        config("[Literal-Sasl-Pass-777]", lit_kp, ""),
        config("{Literal-Sasl-Pass-777: 1}", lit_kp, ""),
        config(lit_pw, "!!binary Literal-Key-Phrase-888", ""),
        // malformed references inside a secret
        config("\"Literal-Sasl-Pass-777${\"", lit_kp, ""),
        config("\"${Literal-Sasl-Pass-777}\"", lit_kp, ""),
        // YAML syntax errors on the secret's line
        config("\"Literal-Sasl-Pass-777", lit_kp, ""),
        config("Literal-Sasl-Pass-777: x", lit_kp, ""),
        config("'Literal-Sasl-Pass-777' trailing", lit_kp, ""),
        // unset variable after the secrets
        config(env_pw, env_kp, "    sasl_kerberos_service_name: ${UNSET}\n"),
        // validation errors after the secrets were read
        config(env_pw, env_kp, "").replace("mode: backup", "mode: restore"),
        config(lit_pw, lit_kp, "").replace("client.key", "missing.key"),
        config(env_pw, env_kp, "").replace("SASL_SSL", "SSL"),
        config(lit_pw, lit_kp, "").replace("sasl_username: svc", "sasl_username: \"\""),
        config(env_pw, env_kp, "").replace("kafka-0:9093", "kafka-0"),
        // a secret that ended up where a keyword goes: scrubbed, before or after the secret
        config(env_pw, env_kp, "    sasl_mechanism: ${KAFKA_PASSWORD}\n"),
        config(env_pw, env_kp, "").replace("SCRAM-SHA-512", "${KAFKA_PASSWORD}"),
        config(lit_pw, lit_kp, "").replace("SCRAM-SHA-512", "Literal-Sasl-Pass-777"),
        config(lit_pw, lit_kp, "").replace("SCRAM-SHA-512", "Literal-Key-Phrase-888"),
        config(
            lit_pw,
            lit_kp,
            "    security_protocol: Literal-Sasl-Pass-777\n",
        ),
        config(lit_pw, lit_kp, "").replace(
            "backup_id: prod",
            "backup_id: prod\nunknown: Literal-Sasl-Pass-777",
        ),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (i, text) in cases.iter().enumerate() {
        let e = match load_text(text, &vars) {
            Ok(_) => panic!("case {i} loaded:\n{text}"),
            Err(e) => e,
        };
        let shown = format!("{e}");
        let debugged = format!("{e:?}");
        assert_no_secret(&shown);
        assert_no_secret(&debugged);
        assert!(!shown.is_empty(), "case {i}");
    }
}

#[test]
fn short_secrets_are_not_scrubbed_from_ordinary_words() {
    // A 2-character password must not turn every "pw" in a message into ***.
    let e = err(
        &with_security(
            "    security_protocol: SASL_SSL\n    sasl_mechanism: PLAIN\n    sasl_username: u\n    sasl_password: ss\n    bogus: 1\n",
        ),
        &[],
    );
    assert_message(
        &e,
        &["unknown key `source.security.bogus`", "security_protocol"],
    );
}

//! OAUTHBEARER settings: one token source with only its own keys, https unless allowed
//! otherwise, RFC 7628 extensions, and the client secret kept out of every output.

use super::*;
use crate::config::{SaslCredentials, SaslMechanismName};
use kafka_client::sasl::TokenSource;

const CLIENT_SECRET: &str = "Oauth-Client-Secret-5150";

fn oauth(extra: &str) -> String {
    with_security(&format!(
        "    security_protocol: SASL_PLAINTEXT\n    sasl_mechanism: OAUTHBEARER\n{extra}"
    ))
}

fn endpoint(extra: &str) -> String {
    oauth(&format!(
        "    sasl_oauthbearer_token_endpoint_url: https://idp.example.com/oauth2/token\n    \
         sasl_oauthbearer_client_id: kb-backup\n    sasl_oauthbearer_client_secret: ${{OAUTH_SECRET}}\n{extra}"
    ))
}

const VARS: &[(&str, &str)] = &[("OAUTH_SECRET", CLIENT_SECRET)];

#[test]
fn client_credentials_load_with_the_secret_hidden() {
    let loaded = ok(
        &endpoint(
            "    sasl_oauthbearer_scope: kafka\n    sasl_oauthbearer_extensions:\n      logicalCluster: lkc-1\n",
        ),
        VARS,
    );
    let sasl = loaded.cluster.security.sasl.as_ref().unwrap();
    assert_eq!(sasl.mechanism, SaslMechanismName::OAuthBearer);
    assert_eq!(sasl.username, "kb-backup");
    let SaslCredentials::OAuth(config) = &sasl.credentials else {
        panic!("{sasl:?}")
    };
    let TokenSource::ClientCredentials(c) = &config.source else {
        panic!("{config:?}")
    };
    assert_eq!(c.client_secret.expose(), CLIENT_SECRET);
    assert_eq!(c.scope.as_deref(), Some("kafka"));
    assert_eq!(
        config.extensions,
        [("logicalCluster".to_owned(), "lkc-1".to_owned())]
    );
    assert!(sasl.password().is_none());
    let shown = format!("{loaded:?} {loaded} {:?}", loaded.warnings);
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
    // SASL_PLAINTEXT: the token would cross the network in clear.
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("OAUTHBEARER over SASL_PLAINTEXT sends the bearer token")),
        "{:?}",
        loaded.warnings
    );
    assert!(sasl.mechanism().is_ok());
}

#[test]
fn exactly_one_token_source() {
    assert_message(
        &err(&oauth(""), &[]),
        &["`source.security.sasl_mechanism` (line 7): is OAUTHBEARER but no token source is set"],
    );
    let certs = CertDir::new();
    let token = certs.file("client.keytab");
    assert_message(
        &err(
            &endpoint(&format!(
                "    sasl_oauthbearer_token_file: {}\n",
                token.display()
            )),
            VARS,
        ),
        &[
            "sasl_oauthbearer_token_file` (line 11): is set together with sasl_oauthbearer_token_endpoint_url",
        ],
    );
}

#[test]
fn the_token_endpoint_needs_https_a_client_id_and_a_secret() {
    let http = oauth(
        "    sasl_oauthbearer_token_endpoint_url: http://localhost:8080/token\n    \
         sasl_oauthbearer_client_id: kb\n    sasl_oauthbearer_client_secret: ${OAUTH_SECRET}\n",
    );
    let e = err(&http, VARS);
    assert_message(
        &e,
        &[
            "sasl_oauthbearer_token_endpoint_url` (line 8)",
            "uses http, which would send the client secret and the token in clear",
            "sasl_oauthbearer_allow_http: true",
        ],
    );
    assert!(!e.to_string().contains(CLIENT_SECRET));
    let allowed = ok(
        &format!("{http}    sasl_oauthbearer_allow_http: true\n"),
        VARS,
    );
    assert!(
        allowed
            .warnings
            .iter()
            .any(|w| w.contains("sasl_oauthbearer_allow_http is true")),
        "{:?}",
        allowed.warnings
    );
    // Only on this machine: a remote http endpoint is refused even when allowed.
    let remote = format!("{http}    sasl_oauthbearer_allow_http: true\n")
        .replace("http://localhost:8080", "http://idp.example.com");
    assert_message(&err(&remote, VARS), &["uses http to another machine"]);
    assert_message(
        &err(
            &oauth(
                "    sasl_oauthbearer_token_endpoint_url: https://idp/token\n    sasl_oauthbearer_client_id: kb\n",
            ),
            &[],
        ),
        &["`source.security.sasl_oauthbearer_client_secret` (line 8): is not set (or empty)"],
    );
    assert_message(
        &err(
            &oauth("    sasl_oauthbearer_token_endpoint_url: https://idp/token\n"),
            &[],
        ),
        &["`source.security.sasl_oauthbearer_client_id` (line 8): is not set (or empty)"],
    );
}

#[test]
fn keys_that_the_mechanism_would_ignore_are_errors() {
    assert_message(
        &err(&endpoint("    sasl_username: svc\n"), VARS),
        &["`source.security.sasl_username` (line 11): is not used with sasl_mechanism OAUTHBEARER"],
    );
    assert_message(
        &err(
            &with_security(
                "    security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-512\n    sasl_username: svc\n    \
                 sasl_password: pw\n    sasl_oauthbearer_scope: kafka\n",
            ),
            &[],
        ),
        &[
            "`source.security.sasl_oauthbearer_scope` (line 10): is only used with sasl_mechanism OAUTHBEARER, but sasl_mechanism is SCRAM-SHA-512",
        ],
    );
    assert_message(
        &err(&with_security("    sasl_oauthbearer_client_id: kb\n"), &[]),
        &["sasl_oauthbearer_client_id is set but security_protocol is not set, so it is PLAINTEXT"],
    );
    let certs = CertDir::new();
    let token = certs.file("client.keytab");
    assert_message(
        &err(
            &oauth(&format!(
                "    sasl_oauthbearer_token_file: {}\n    sasl_oauthbearer_scope: kafka\n",
                token.display()
            )),
            &[],
        ),
        &[
            "`source.security.sasl_oauthbearer_scope` (line 9): is only used with sasl_oauthbearer_token_endpoint_url",
        ],
    );
}

#[test]
fn a_token_file_is_absolute_and_readable() {
    let certs = CertDir::new();
    let token = certs.file("client.keytab");
    let loaded = ok(
        &oauth(&format!(
            "    sasl_oauthbearer_token_file: {}\n",
            token.display()
        )),
        &[],
    );
    let sasl = loaded.cluster.security.sasl.unwrap();
    assert_eq!(sasl.username, format!("the token in {}", token.display()));
    assert_message(
        &err(&oauth("    sasl_oauthbearer_token_file: run/token\n"), &[]),
        &[
            "`source.security.sasl_oauthbearer_token_file` (line 8): is `run/token`, a relative path",
        ],
    );
    assert_message(
        &err(
            &oauth("    sasl_oauthbearer_token_file: /nonexistent/token\n"),
            &[],
        ),
        &["names /nonexistent/token, which does not exist"],
    );
}

#[test]
fn extensions_follow_rfc_7628() {
    for (key, value, expected) in [
        ("auth", "x", "may not set `auth`"),
        ("bad_key", "x", "keys are ASCII letters only"),
        (
            "traceId",
            "\"a\\u0001b\"",
            "holds a character an extension value cannot carry",
        ),
    ] {
        let e = err(
            &endpoint(&format!(
                "    sasl_oauthbearer_extensions:\n      {key}: {value}\n"
            )),
            VARS,
        );
        assert_message(
            &e,
            &[
                "`source.security.sasl_oauthbearer_extensions` (line 12)",
                expected,
            ],
        );
    }
}

#[test]
fn kerberos_keys_are_errors_with_oauthbearer() {
    assert_message(
        &err(&endpoint("    sasl_kerberos_service_name: kafka\n"), VARS),
        &[
            "`source.security.sasl_kerberos_service_name` (line 11): is only used with sasl_mechanism GSSAPI, but sasl_mechanism is OAUTHBEARER",
        ],
    );
}

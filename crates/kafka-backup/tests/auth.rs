//! Authentication beyond a static password, end to end against real servers: OAUTHBEARER
//! with tokens from a real OpenID provider (npm oidc-provider), checked by a SASL proxy that
//! validates them as Kafka's OIDC validator does, and KIP-368 re-authentication against a
//! proxy that ends every SASL session after 3 seconds and closes a connection that goes on
//! without renewing it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// librdkafka settings for the OAUTHBEARER broker: the same provider, over its http endpoint.
fn librdkafka_oauth() -> serde_json::Value {
    serde_json::json!({
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.client.id": get("/oidc/client_id"),
        "sasl.oauthbearer.client.secret": get("/oidc/client_secret"),
        "sasl.oauthbearer.token.endpoint.url": get("/oidc/token_url_http"),
        "sasl.oauthbearer.scope": get("/oidc/scope"),
    })
}

/// A `security:` block for the OAUTHBEARER broker; the client secret comes from
/// `KB_OAUTH_SECRET`.
fn oauth_security(client_id: &str, extra: &str) -> String {
    format!(
        "  security:\n    security_protocol: SASL_PLAINTEXT\n    sasl_mechanism: OAUTHBEARER\n    \
         sasl_oauthbearer_token_endpoint_url: {}\n    sasl_oauthbearer_client_id: {client_id}\n    \
         sasl_oauthbearer_client_secret: ${{KB_OAUTH_SECRET}}\n    sasl_oauthbearer_ca_location: {}\n{extra}",
        get("/oidc/token_url"),
        get("/oidc/ca"),
    )
}

fn backup_yaml(broker: &str, security: &str, topic: &str, store: &Path, backup: &str) -> String {
    format!(
        "mode: backup\nbackup_id: auth\nsource:\n  bootstrap_servers: [\"{broker}\"]\n{security}  topics:\n    \
         include: [\"{topic}\"]\nstorage:\n  backend: filesystem\n  path: {}\n{backup}",
        store.display()
    )
}

fn stats(which: &str) -> serde_json::Value {
    let path = get(&format!("/sasl_proxy/{which}_stats"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The proxy's counts for one principal: connections authenticated, sessions renewed, and
/// connections closed for going on after their session ended.
fn principal_counts(which: &str, principal: &str) -> Counts {
    let s = stats(which);
    let p = &s["by_principal"][principal];
    let n = |k: &str| p[k].as_u64().unwrap_or(0);
    (
        n("authentications"),
        n("reauthentications"),
        n("expired_closes"),
    )
}

/// What a read_committed confluent-kafka consumer with `client` settings sees in `topic`,
/// offsets left out.
fn consumed_with(client: &serde_json::Value, broker: &str, topic: &str) -> Vec<Rec> {
    let mut records = committed(&fidelity_with(client, &["consume", broker, topic]));
    for r in &mut records {
        r.offset = 0;
    }
    records.sort();
    records
}

#[test]
fn a_backup_and_a_restore_over_oauthbearer_give_back_every_record() {
    let broker = get("/brokers/oauth");
    let topic = unique_topic("oauth");
    let client = librdkafka_oauth();
    let produced = fidelity_with(&client, &["produce", &broker, &topic, "2"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let secret = get("/oidc/client_secret");
    let env = [("KB_OAUTH_SECRET", secret.as_str())];
    // A trace id of this test's own: the proxy serves other tests at the same time.
    let trace = topic.replace(['-', '_'], "");
    let security = oauth_security(
        &get("/oidc/client_id"),
        &format!(
            "    sasl_oauthbearer_scope: {}\n    sasl_oauthbearer_extensions:\n      traceId: {trace}\n",
            get("/oidc/scope")
        ),
    );

    let yaml = backup_yaml(&broker, &security, &topic, &store, "");
    let trace_args = ["--log-level", "trace", "--format", "json"];
    let before = principal_counts("oauth", &get("/oidc/client_id")).0;
    let backed = run(dir.path(), "backup", &yaml, &env, &trace_args);
    backed.assert_code(EXIT_OK);
    assert!(
        !backed.all().contains(&secret),
        "client secret in the output"
    );
    assert_same_records(&read_back(&store, "auth", &topic), &committed(&produced));
    let s = stats("oauth");
    assert!(
        s["extensions_seen"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["traceId"] == trace.as_str()),
        "the extension reached the broker: {s}"
    );
    assert!(
        principal_counts("oauth", &get("/oidc/client_id")).0 > before,
        "the backup logged in as the client"
    );

    // Restore into a new topic on the same broker, over OAUTHBEARER too.
    let restored = format!("{topic}-r");
    let restore = format!(
        "mode: restore\nbackup_id: auth\ntarget:\n  bootstrap_servers: [\"{broker}\"]\n{}storage:\n  \
         backend: filesystem\n  path: {}\nrestore:\n  topic_mapping:\n    {topic}: {restored}\n",
        oauth_security(
            &get("/oidc/client_id"),
            &format!("    sasl_oauthbearer_scope: {}\n", get("/oidc/scope"))
        ),
        store.display()
    );
    let out = run(dir.path(), "restore", &restore, &env, &trace_args);
    out.assert_code(EXIT_OK);
    assert!(!out.all().contains(&secret), "client secret in the output");
    // What librdkafka reads back from the restored topic is every committed record produced.
    let mut expected = committed(&produced);
    for r in &mut expected {
        r.offset = 0;
    }
    expected.sort();
    assert_same_records(&consumed_with(&client, &broker, &restored), &expected);
}

#[test]
fn oauth_failures_name_what_to_fix_and_never_the_secret() {
    let broker = get("/brokers/oauth");
    let topic = unique_topic("oauthfail");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let scope = format!("    sasl_oauthbearer_scope: {}\n", get("/oidc/scope"));
    let attempt = |client_id: &str, secret: &str, extra: &str| {
        let yaml = backup_yaml(
            &broker,
            &oauth_security(client_id, extra),
            &topic,
            &store,
            "",
        );
        let out = run(
            dir.path(),
            "backup",
            &yaml,
            &[("KB_OAUTH_SECRET", secret)],
            &[],
        );
        assert!(
            !out.all().contains(secret),
            "the secret reached the output: {}",
            out.all()
        );
        out
    };
    let client_id = get("/oidc/client_id");
    let good = get("/oidc/client_secret");

    // A wrong client secret: the provider refuses it.
    let out = attempt(&client_id, "not-the-secret-7f3a", &scope);
    out.assert_code(EXIT_KAFKA);
    out.assert_contains("invalid_client");
    out.assert_contains("check sasl_oauthbearer_client_id and sasl_oauthbearer_client_secret");

    // A token for another audience: the broker refuses it, and the message shows the audience.
    let out = attempt(
        &get("/oidc/wrong_audience_client_id"),
        &get("/oidc/wrong_audience_client_secret"),
        &scope,
    );
    out.assert_code(EXIT_KAFKA);
    out.assert_contains("invalid_token");
    out.assert_contains(&format!("audience {}", get("/oidc/wrong_audience")));
    let s = stats("oauth");
    assert_eq!(s["last_failure"]["reason"], "token_audience", "{s}");

    // No scope asked for: the token lacks the one the broker requires.
    let out = attempt(&client_id, &good, "");
    out.assert_code(EXIT_KAFKA);
    out.assert_contains("insufficient_scope, needs `kafka`");
    out.assert_contains("sasl_oauthbearer_scope");

    // The endpoint's certificate without its CA: not trusted, and the key to set is named.
    let yaml = backup_yaml(
        &broker,
        &oauth_security(&client_id, &scope).replace(
            &format!("    sasl_oauthbearer_ca_location: {}\n", get("/oidc/ca")),
            "",
        ),
        &topic,
        &store,
        "",
    );
    let out = run(
        dir.path(),
        "backup",
        &yaml,
        &[("KB_OAUTH_SECRET", &good)],
        &[],
    );
    out.assert_code(EXIT_KAFKA);
    out.assert_contains("was not trusted: set sasl_oauthbearer_ca_location");

    // Plain http is refused before anything is sent, unless explicitly allowed.
    let http = oauth_security(&client_id, &scope)
        .replace(&get("/oidc/token_url"), &get("/oidc/token_url_http"));
    let yaml = backup_yaml(&broker, &http, &topic, &store, "");
    let out = run(
        dir.path(),
        "backup",
        &yaml,
        &[("KB_OAUTH_SECRET", &good)],
        &[],
    );
    out.assert_code(EXIT_CONFIG);
    out.assert_contains("uses http, which would send the client secret and the token in clear");

    // Nothing listening at the endpoint.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let unreachable = oauth_security(&client_id, &scope).replace(
        &get("/oidc/token_url"),
        &format!("https://127.0.0.1:{port}/token"),
    );
    let yaml = backup_yaml(&broker, &unreachable, &topic, &store, "");
    let out = run(
        dir.path(),
        "backup",
        &yaml,
        &[("KB_OAUTH_SECRET", &good)],
        &[],
    );
    out.assert_code(EXIT_KAFKA);
    out.assert_contains("could not connect: check sasl_oauthbearer_token_endpoint_url");
}

/// The proxy's counts for one principal (connections, renewals, expired closes).
type Counts = (u64, u64, u64);

/// What a continuous backup over a SASL proxy saw.
struct ContinuousRun {
    /// The proxy's counts once the first records were stored.
    early: Counts,
    /// The proxy's counts at the end.
    late: Counts,
    /// Records stored, and records produced.
    stored: usize,
    produced: usize,
}

/// Runs a continuous backup of a new topic for `seconds` after its first records are
/// stored, producing 100 records with `client` at the start and again midway, and reports
/// what was stored and the proxy's counts for `principal`.
fn continuous_backup_over(
    which: &str,
    broker: &str,
    security: &str,
    env: &[(&str, &str)],
    client: &serde_json::Value,
    principal: &str,
    seconds: u64,
) -> ContinuousRun {
    const BATCH: &str = "100";
    let topic = unique_topic(&format!("reauth-{which}"));
    fidelity_with(client, &["bulk", broker, &topic, BATCH, "2"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = backup_yaml(
        broker,
        security,
        &topic,
        &store,
        "backup:\n  continuous: true\n  metadata_max_age_ms: 1000\n  segment_max_interval_ms: 1000\n  \
         consumer_group_snapshot: false\n",
    );
    let config = dir.path().join("continuous.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let mut command = std::process::Command::new(binary());
    command
        .args([
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "backup",
            "--format",
            "json",
            "--config",
        ])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command.spawn().unwrap();
    wait_until("the first records", Duration::from_secs(30), || {
        read_back(&store, "auth", &topic).len() == 100
    });
    let early = principal_counts(which, principal);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds / 2));
    fidelity_with(client, &["bulk", broker, &topic, BATCH, "2"]);
    wait_until("the later records", Duration::from_secs(30), || {
        read_back(&store, "auth", &topic).len() == 200
    });
    let left = Duration::from_secs(seconds).saturating_sub(started.elapsed());
    std::thread::sleep(left);
    let late = principal_counts(which, principal);
    sigterm(&child);
    let out = finish(child, Duration::from_secs(30));
    out.assert_code(EXIT_OK);
    assert_eq!(out.json()["outcome"], "complete", "{}", out.all());
    for secret in env.iter().map(|(_, v)| *v) {
        assert!(!out.all().contains(secret), "a secret reached the output");
    }
    ContinuousRun {
        early,
        late,
        stored: read_back(&store, "auth", &topic).len(),
        produced: 200,
    }
}

/// Between the proxy's counts `early` and `late` (it counts over its whole life, so only what
/// changed matters): no new connection, at least `renewals` sessions renewed, and no
/// connection that went on past its session.
fn assert_renewed_in_place(early: Counts, late: Counts, renewals: u64) {
    assert_eq!(
        late.0, early.0,
        "no new connection after the first ones: sessions are renewed in place"
    );
    let renewed = late.1 - early.1;
    assert!(
        renewed >= renewals,
        "expected {renewals}+ renewals, saw {renewed}"
    );
    assert_eq!(late.2, early.2, "no connection went on past its session");
}

#[test]
fn scram_sessions_of_three_seconds_are_renewed_on_the_same_connections() {
    let broker = get("/brokers/sasl_reauth");
    let user = get("/scram/sha512/username");
    let password = get("/scram/sha512/password");
    let security = format!(
        "  security:\n    security_protocol: SASL_PLAINTEXT\n    sasl_mechanism: SCRAM-SHA-512\n    \
         sasl_username: {user}\n    sasl_password: ${{KB_PASSWORD}}\n"
    );
    let ContinuousRun {
        early,
        late,
        stored,
        produced,
    } = continuous_backup_over(
        "reauth",
        &broker,
        &security,
        &[("KB_PASSWORD", &password)],
        &librdkafka_plain(),
        &user,
        12,
    );
    assert_eq!(stored, produced, "every record, across many session ends");
    assert_renewed_in_place(early, late, 3);
}

#[test]
fn short_lived_oauth_tokens_are_renewed_and_presented_again_on_the_same_connections() {
    let broker = get("/brokers/oauth");
    let client_id = get("/oidc/short_client_id");
    let secret = get("/oidc/short_client_secret");
    let security = oauth_security(
        &client_id,
        &format!("    sasl_oauthbearer_scope: {}\n", get("/oidc/scope")),
    );
    let lifetime = env()
        .pointer("/oidc/short_token_lifetime_s")
        .and_then(serde_json::Value::as_u64)
        .unwrap();
    let ContinuousRun {
        early,
        late,
        stored,
        produced,
    } = continuous_backup_over(
        "oauth",
        &broker,
        &security,
        &[("KB_OAUTH_SECRET", &secret)],
        &librdkafka_oauth(),
        &client_id,
        2 * lifetime + 4,
    );
    assert_eq!(stored, produced);
    assert_renewed_in_place(early, late, 2);
}

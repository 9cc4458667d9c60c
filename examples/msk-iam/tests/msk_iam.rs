//! The plugin in a real run: kafka-backup-msk-iam backs up and restores through a proxy that
//! checks each AWS_MSK_IAM signature with its own SigV4 code, as MSK would, for the host of
//! each connection. Test data is written and read with librdkafka over PLAIN on the same
//! listener.

use std::path::Path;
use std::process::Command;

use test_support::{get, unique_topic};

const FIDELITY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../crates/kafka-backup/tests/fixtures/fidelity.py"
);

fn librdkafka_plain() -> String {
    serde_json::json!({
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": get("/plain/username"),
        "sasl.password": get("/plain/password"),
    })
    .to_string()
}

fn fidelity(args: &[&str]) -> serde_json::Value {
    let out = Command::new(get("/venv_python"))
        .arg(FIDELITY)
        .args(args)
        .env("KB_FIDELITY_CLIENT", librdkafka_plain())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fidelity.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What a consumer reads from `topic`: (partition, key, value, headers, timestamp), sorted.
fn records(broker: &str, topic: &str) -> Vec<String> {
    let mut out: Vec<String> = fidelity(&["consume", broker, topic])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {} {} {} {}", r["p"], r["k"], r["v"], r["h"], r["ts"]))
        .collect();
    out.sort();
    out
}

struct Outcome {
    code: i32,
    output: String,
}

fn run(dir: &Path, command: &str, yaml: &str, env: &[(&str, &str)]) -> Outcome {
    let config = dir.join(format!("{}.yaml", command.replace(' ', "-")));
    std::fs::write(&config, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kafka-backup-msk-iam"))
        .args(command.split(' '))
        .arg("--config")
        .arg(&config)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn security(key: &str, token: bool) -> String {
    let mut s = format!(
        "  security:\n    security_protocol: SASL_PLAINTEXT\n    sasl_mechanism: AWS_MSK_IAM\n    \
         sasl_options:\n      region: {}\n      access_key_id: {key}\n      \
         secret_access_key: ${{AWS_SECRET_ACCESS_KEY}}\n",
        get("/msk_iam/region")
    );
    if token {
        s.push_str("      session_token: ${AWS_SESSION_TOKEN}\n");
    }
    s
}

fn stats_logins(principal: &str) -> u64 {
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(get("/sasl_proxy/msk_iam_stats")).unwrap()).unwrap();
    stats["by_principal"][principal]["authentications"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_backup_and_a_restore_authenticate_with_aws_msk_iam() {
    let broker = get("/brokers/msk_iam");
    let topic = unique_topic("msk");
    fidelity(&["bulk", &broker, &topic, "300", "3"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let secret = get("/msk_iam/secret_access_key");
    let env = [("AWS_SECRET_ACCESS_KEY", secret.as_str())];
    let security = security(&get("/msk_iam/access_key_id"), false);
    let before = stats_logins(&get("/msk_iam/principal"));

    let backup = format!(
        "mode: backup\nbackup_id: msk\nsource:\n  bootstrap_servers: [\"{broker}\"]\n{security}  topics:\n    \
         include: [\"{topic}\"]\nstorage:\n  backend: filesystem\n  path: {}\n",
        store.display()
    );
    let out = run(dir.path(), "backup", &backup, &env);
    assert_eq!(out.code, 0, "{}", out.output);
    assert!(
        !out.output.contains(&secret),
        "the secret key reached the output"
    );
    assert!(stats_logins(&get("/msk_iam/principal")) > before);

    let restored = format!("{topic}-r");
    let restore = format!(
        "mode: restore\nbackup_id: msk\ntarget:\n  bootstrap_servers: [\"{broker}\"]\n{security}storage:\n  \
         backend: filesystem\n  path: {}\nrestore:\n  topic_mapping:\n    {topic}: {restored}\n",
        store.display()
    );
    let out = run(dir.path(), "restore", &restore, &env);
    assert_eq!(out.code, 0, "{}", out.output);
    let want = records(&broker, &topic);
    assert_eq!(want.len(), 300);
    assert_eq!(records(&broker, &restored), want);
}

#[test]
fn session_credentials_work_and_a_wrong_secret_is_refused_by_the_broker() {
    let broker = get("/brokers/msk_iam");
    let dir = tempfile::tempdir().unwrap();
    let check = |security: &str, env: &[(&str, &str)]| {
        let yaml = format!(
            "mode: backup\nbackup_id: msk\nsource:\n  bootstrap_servers: [\"{broker}\"]\n{security}storage:\n  \
             backend: filesystem\n  path: {}\n",
            dir.path().join("store").display()
        );
        run(dir.path(), "check", &yaml, env)
    };
    let token = get("/msk_iam/session_token");
    let secret = get("/msk_iam/session_secret_access_key");
    let out = check(
        &security(&get("/msk_iam/session_access_key_id"), true),
        &[
            ("AWS_SECRET_ACCESS_KEY", &secret),
            ("AWS_SESSION_TOKEN", &token),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.output);
    assert!(!out.output.contains(&token) && !out.output.contains(&secret));

    let wrong = "wJalrXUtnFEMI-not-the-secret";
    let out = check(
        &security(&get("/msk_iam/access_key_id"), false),
        &[("AWS_SECRET_ACCESS_KEY", wrong)],
    );
    assert_eq!(out.code, 4, "{}", out.output);
    assert!(out.output.contains("signature mismatch"), "{}", out.output);
    assert!(!out.output.contains(wrong));
}

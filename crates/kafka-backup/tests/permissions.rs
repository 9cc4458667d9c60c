//! `kafka-backup check --permissions` against the IAM-enforcing moto, with identities that
//! have exactly a role's rights, fewer, and more: each over-privilege and each missing right
//! is named, and the probe never touches a backup's objects.

mod common;

use common::protection::*;
use common::*;
use serde_json::Value;

fn probe(dir: &std::path::Path, yaml: &str, user: &str, role: &str) -> (Run, Value) {
    let run = run_as_s3_user(
        dir,
        "check",
        yaml,
        user,
        &[
            "--permissions",
            "--only",
            "storage",
            "--role",
            role,
            "--format",
            "json",
        ],
    );
    let report = run.json();
    (run, report)
}

/// `(action, found, ok)` of each check.
fn outcomes(report: &Value) -> Vec<(String, String, bool)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_owned(),
                c["found"].as_str().unwrap().to_owned(),
                c["ok"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn o(action: &str, found: &str, ok: bool) -> (String, String, bool) {
    (action.to_owned(), found.to_owned(), ok)
}

#[test]
fn each_role_is_held_to_exactly_its_rights() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let topic = unique_topic("perm");
    fidelity(&["bulk", &plaintext_broker(), &topic, "10", "1"]);
    let storage = s3_iam_storage(&format!("perm/{topic}"));
    let backup = backup_yaml("perm", &[&topic], &storage, "");
    let restore = restore_yaml("perm", &storage, "");
    // A backup to read, written by the backup identity.
    run_as_s3_user(dir, "backup", &backup, "writer", &[]).assert_code(EXIT_OK);

    let (run, report) = probe(dir, &backup, "writer", "backup");
    run.assert_code(EXIT_OK);
    assert_eq!(
        outcomes(&report),
        [
            o("list", "allowed", true),
            o("create", "allowed", true),
            o("read", "denied", true),
            o("delete", "denied", true),
        ]
    );
    assert!(
        report["canary_left"]
            .as_str()
            .unwrap()
            .contains("_kb-permission-probe/")
    );

    let (run, report) = probe(dir, &restore, "reader", "restore");
    run.assert_code(EXIT_OK);
    assert_eq!(
        outcomes(&report),
        [
            o("list", "allowed", true),
            o("create", "denied", true),
            o("read", "allowed", true),
        ]
    );

    // Over-privileged for the backup role: it could read and delete what it wrote.
    let (run, report) = probe(dir, &backup, "overpriv", "backup");
    run.assert_code(EXIT_FINDINGS);
    assert_eq!(
        outcomes(&report),
        [
            o("list", "allowed", true),
            o("create", "allowed", true),
            o("read", "allowed", false),
            o("delete", "allowed", false),
        ]
    );
    assert!(report["canary_left"].is_null(), "the canary was deleted");
    let text = run_as_s3_user(
        dir,
        "check",
        &backup,
        "overpriv",
        &["--permissions", "--only", "storage"],
    );
    text.assert_code(EXIT_FINDINGS);
    text.assert_contains("OVER-PRIVILEGED, the backup role must not have s3:GetObject");
    text.assert_contains("must not have s3:DeleteObject");
    let secret = get("/s3_iam/users/overpriv/secret_access_key");
    assert!(
        !text.all().contains(&secret),
        "the secret key reached the output"
    );

    // Over-privileged for restore (it can write), and a restore identity without read.
    let (run, report) = probe(dir, &restore, "overpriv", "restore");
    run.assert_code(EXIT_FINDINGS);
    assert_eq!(outcomes(&report)[1], o("create", "allowed", false));
    let (run, report) = probe(dir, &restore, "writer", "restore");
    run.assert_code(EXIT_FINDINGS);
    let read = &outcomes(&report)[2];
    assert_eq!(read.0, "read");
    assert!(!read.2, "{report}");
    let text = run_as_s3_user(
        dir,
        "check",
        &restore,
        "writer",
        &["--permissions", "--only", "storage", "--role", "restore"],
    );
    text.assert_contains("MISSING");

    // The identity that is over-privileged for backup and restore is what the admin role
    // (prune, quarantine) needs; a writer-only identity is missing read and delete for it.
    let (run, report) = probe(dir, &backup, "overpriv", "admin");
    run.assert_code(EXIT_OK);
    assert_eq!(
        outcomes(&report),
        [
            o("list", "allowed", true),
            o("create", "allowed", true),
            o("read", "allowed", true),
            o("delete", "allowed", true),
        ]
    );
    let (run, report) = probe(dir, &backup, "writer", "admin");
    run.assert_code(EXIT_FINDINGS);
    let missing: Vec<String> = outcomes(&report)
        .into_iter()
        .filter(|(_, _, ok)| !ok)
        .map(|(action, _, _)| action)
        .collect();
    assert_eq!(missing, ["read", "delete"], "{report}");

    // No rights at all: listing is missing.
    let (run, report) = probe(dir, &backup, "nobody", "backup");
    run.assert_code(EXIT_FINDINGS);
    assert_eq!(outcomes(&report)[0], o("list", "denied", false));

    // The backup is untouched: it still restores-validates with the reader.
    let (run, _) = (run_as_s3_user(dir, "validate", &restore, "reader", &[]), ());
    run.assert_code(EXIT_OK);
}

/// The KMS settings of the IAM moto, with the user's keys from the variables `run_as_s3_user`
/// sets.
fn iam_kms() -> String {
    format!(
        "key_provider: aws-kms\nkms_key_id: \"{}\"\nregion: {}\nendpoint: {}\nallow_http: true\n\
         access_key_id: ${{KB_ACCESS_KEY}}\nsecret_access_key: ${{KB_SECRET_KEY}}\n",
        get("/s3_iam/kms_key_arn"),
        get("/s3_iam/region"),
        get("/s3_iam/endpoint"),
    )
}

/// With an aws-kms key the probe also generates a throwaway data key and tries to decrypt
/// it: the backup identity may only generate, the restore identity may only decrypt.
#[test]
fn kms_rights_are_probed_for_each_role() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let storage = s3_iam_storage(&format!("perm-kms/{}", unique_topic("k")));
    let backup = backup_yaml(
        "perm-kms",
        &["t"],
        &storage,
        &format!("encryption:\n{}", indent(&iam_kms(), 2)),
    );
    let restore = restore_yaml(
        "perm-kms",
        &storage,
        &format!("encryption:\n{}", indent(&iam_kms(), 2)),
    );
    let kms = |report: &Value| -> Vec<(String, String, bool)> {
        outcomes(report)
            .into_iter()
            .filter(|(a, _, _)| a.starts_with("kms"))
            .collect()
    };

    let (run, report) = probe(dir, &backup, "backup_kms", "backup");
    run.assert_code(EXIT_OK);
    // Before any encrypted run, a reading role has no data key to try Decrypt on.
    let (_, report_before) = probe(dir, &restore, "restore_kms", "restore");
    assert_eq!(kms(&report_before)[1].1, "unknown", "{report_before}");
    assert_eq!(
        kms(&report),
        [
            o("kms generate", "allowed", true),
            o("kms decrypt", "denied", true)
        ]
    );

    // An encrypted backup by the backup identity gives the restore identity a real one.
    let topic = unique_topic("perm-kms");
    fidelity(&["bulk", &plaintext_broker(), &topic, "10", "1"]);
    let real_backup = backup.replace("include: [\"t\"]", &format!("include: [\"{topic}\"]"));
    run_as_s3_user(dir, "backup", &real_backup, "backup_kms", &[]).assert_code(EXIT_OK);
    let (run, report) = probe(dir, &restore, "restore_kms", "restore");
    run.assert_code(EXIT_OK);
    assert_eq!(
        kms(&report),
        [
            o("kms generate", "denied", true),
            o("kms decrypt", "allowed", true)
        ],
        "{}",
        run.all()
    );

    // The restore identity used for a backup: it cannot generate, and could decrypt.
    let (run, report) = probe(dir, &backup, "restore_kms", "backup");
    run.assert_code(EXIT_FINDINGS);
    assert_eq!(
        kms(&report),
        [
            o("kms generate", "denied", false),
            o("kms decrypt", "allowed", false)
        ]
    );
}

/// The Kafka principal, against the test broker, which enforces no ACLs: the backup role's
/// describe and read are proven, and its ability to create topics and write idempotently is
/// over-privilege (so it would be on any cluster without an authorizer); the restore role's
/// create and idempotent write are proven. A principal whose login fails is "not determined",
/// never "fine". The create probe asks with validate_only (the test broker ignores that flag,
/// so it creates an empty `_kb-permission-probe-*` topic here; Kafka creates nothing).
#[test]
fn the_kafka_principal_is_held_to_its_role() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let topic = unique_topic("kperm");
    fidelity(&["bulk", &plaintext_broker(), &topic, "5", "1"]);
    let storage = moto_storage(&format!("kperm/{topic}"));
    let backup = backup_yaml("kperm", &[&topic], &storage, "");
    let restore = restore_yaml("kperm", &storage, "");
    let kafka = |yaml: &str, role: &str| {
        let run = run(
            dir,
            "check",
            yaml,
            &[],
            &[
                "--permissions",
                "--only",
                "kafka",
                "--role",
                role,
                "--format",
                "json",
            ],
        );
        let report = run.json();
        (run, report)
    };

    let (run, report) = kafka(&backup, "backup");
    run.assert_code(EXIT_FINDINGS);
    assert_eq!(
        outcomes(&report),
        [
            o("kafka describe", "allowed", true),
            o("kafka read", "allowed", true),
            o("kafka create", "allowed", false),
            o("kafka idempotent write", "allowed", false),
            o("kafka group commit", "allowed", false),
        ],
        "{report:#}"
    );
    let text = run_binary_text(dir, &backup);
    assert!(
        text.contains(
            "OVER-PRIVILEGED, the backup role must not have Create on the cluster or the topics"
        ),
        "{text}"
    );

    let (run, report) = kafka(&restore, "restore");
    run.assert_code(EXIT_OK);
    assert_eq!(
        outcomes(&report),
        [
            o("kafka create", "allowed", true),
            o("kafka idempotent write", "allowed", true),
            o("kafka group commit", "allowed", true),
        ],
        "{report:#}"
    );

    // A principal that cannot log in: not determined, and a finding.
    let sasl = backup.replace(
        &format!("bootstrap_servers: [\"{}\"]", plaintext_broker()),
        &format!(
            "bootstrap_servers: [\"{}\"]\n  security:\n    security_protocol: SASL_PLAINTEXT\n    \
             sasl_mechanism: SCRAM-SHA-256\n    sasl_username: {}\n    sasl_password: wrong-password",
            get("/brokers/sasl_plaintext"),
            get("/scram/sha256/username"),
        ),
    );
    let (run, report) = kafka(&sasl, "backup");
    run.assert_code(EXIT_FINDINGS);
    assert_eq!(report["checks"][0]["action"], "kafka connect", "{report:#}");
    assert_eq!(report["checks"][0]["found"], "unknown");
    assert!(
        !run.all().contains("wrong-password"),
        "the password reached the output"
    );
}

/// `check --permissions --only kafka` as text.
fn run_binary_text(dir: &std::path::Path, yaml: &str) -> String {
    run(
        dir,
        "check",
        yaml,
        &[],
        &["--permissions", "--only", "kafka", "--role", "backup"],
    )
    .all()
}

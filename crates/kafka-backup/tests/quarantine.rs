//! `kafka-backup quarantine`: a quarantined backup is refused by restore until a release signed
//! with a trusted key, whatever an intruder who can write to the storage plants; list and
//! describe show the mark; the audit trail records both and any override.

mod common;

use common::protection::*;
use common::*;

#[test]
fn a_quarantined_backup_is_refused_until_a_trusted_release() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let topic = unique_topic("quar");
    fidelity(&["bulk", &plaintext_broker(), &topic, "200", "2"]);
    let store = dir.join("store");
    let log = dir.join("audit.jsonl");
    let audited = ["--audit-file", log.to_str().unwrap()];
    let signing = generate_key(dir, "signing", "signing.key");
    let forger = generate_key(dir, "signing", "forger.key");
    let signed = |key: &GeneratedKey| {
        backup_yaml(
            "quar",
            &[&topic],
            &fs_storage(&store),
            &format!("signing_key: {}\n", key.private.display()),
        )
    };
    let admin = signed(&signing);
    run(dir, "backup", &admin, &[], &[]).assert_code(EXIT_OK);
    let restore_into = |target: &str| {
        restore_yaml(
            "quar",
            &fs_storage(&store),
            &format!(
                "topic_mapping:\n  {topic}: {target}\nrestore_id: {target}\nverify_key: {}\n",
                signing.public.as_ref().unwrap().display()
            ),
        )
    };
    let quarantine = |yaml: &str, args: &[&str]| {
        let mut all = audited.to_vec();
        all.extend_from_slice(args);
        run(dir, "quarantine", yaml, &[], &all)
    };

    quarantine(&admin, &["--reason", "suspected tampering, ticket SEC-42"]).assert_code(EXIT_OK);

    let refused_topic = format!("{topic}-refused");
    let r = run(dir, "restore", &restore_into(&refused_topic), &[], &audited);
    r.assert_code(EXIT_INTEGRITY);
    r.assert_contains("is QUARANTINED since");
    r.assert_contains("suspected tampering, ticket SEC-42");
    r.assert_contains("--allow-quarantined");
    assert!(!topic_exists(&plaintext_broker(), &refused_topic));

    let listed = run(dir, "list", &restore_into("x"), &[], &[]);
    listed.assert_code(EXIT_OK);
    listed.assert_contains("QUARANTINED since");
    let described = run(
        dir,
        "describe",
        &restore_into("x"),
        &[],
        &["--format", "json"],
    );
    described.assert_code(EXIT_OK);
    assert_eq!(described.json()["quarantine"]["quarantined"], true);

    // A release without a signing key is refused by the command itself.
    let unsigned = backup_yaml("quar", &[&topic], &fs_storage(&store), "");
    let r = quarantine(&unsigned, &["--release", "--reason", "let me in"]);
    r.assert_code(EXIT_CONFIG);
    r.assert_contains("a release must be signed");

    // An intruder who can write to the store plants an unsigned release, and one signed with
    // a key of their own: restores do not count either.
    let body = serde_json::to_vec_pretty(&serde_json::json!({
        "format": 1, "action": "release", "backup_id": "quar",
        "reason": "all clear", "at": "2030-01-01T00:00:00.000Z", "by": "intruder"
    }))
    .unwrap();
    let planted = store
        .join("quar/quarantine")
        .join(format!("000002-release-{}.json", sha256sum(&body)));
    std::fs::write(&planted, &body).unwrap();
    quarantine(&signed(&forger), &["--release", "--reason", "forged"]).assert_code(EXIT_OK);
    let r = run(dir, "restore", &restore_into(&refused_topic), &[], &[]);
    r.assert_code(EXIT_INTEGRITY);
    let described = run(dir, "describe", &restore_into("x"), &[], &[]);
    described.assert_contains("NOT COUNTED (unsigned release)");
    assert!(!topic_exists(&plaintext_broker(), &refused_topic));

    // The override restores, and says so in the trail.
    let forensic = format!("{topic}-forensic");
    let mut args = audited.to_vec();
    args.push("--allow-quarantined");
    run(dir, "restore", &restore_into(&forensic), &[], &args).assert_code(EXIT_OK);

    // The admin's signed release lifts it.
    quarantine(&admin, &["--release", "--reason", "examined: sound"]).assert_code(EXIT_OK);
    let released = format!("{topic}-released");
    run(dir, "restore", &restore_into(&released), &[], &audited).assert_code(EXIT_OK);
    assert_same_records(&consumed(&released), &consumed(&topic));

    let trail = audit_events(&log);
    let ends: Vec<(&str, i64, Option<&str>)> = trail
        .iter()
        .filter(|e| e["phase"] == "end")
        .map(|e| {
            (
                e["command"].as_str().unwrap(),
                e["exit_code"].as_i64().unwrap(),
                e["detail"].as_str(),
            )
        })
        .collect();
    assert_eq!(ends[0].0, "quarantine");
    assert!(ends[0].2.unwrap().contains("SEC-42"), "{ends:?}");
    assert_eq!(
        (ends[1].0, ends[1].1),
        ("restore", i64::from(EXIT_INTEGRITY))
    );
    assert!(
        ends.iter().any(|(c, code, d)| *c == "restore"
            && *code == 0
            && d.is_some_and(|d| d.contains("restored a quarantined backup"))),
        "{ends:?}"
    );
    assert!(
        ends.iter()
            .any(|(c, code, _)| *c == "quarantine --release" && *code == 0),
        "{ends:?}"
    );
}

/// With `restore.release_verify_key`, only the admin's key lifts a quarantine: a release signed
/// by the backup hosts' own signing key (which restores trust for objects) does not count.
#[test]
fn a_separate_admin_key_is_the_only_one_that_releases() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let topic = unique_topic("quar-admin");
    fidelity(&["bulk", &plaintext_broker(), &topic, "20", "1"]);
    let store = dir.join("store");
    let signing = generate_key(dir, "signing", "backup.key");
    let admin = generate_key(dir, "signing", "admin.key");
    let with_key = |key: &GeneratedKey| {
        backup_yaml(
            "quar-admin",
            &[&topic],
            &fs_storage(&store),
            &format!("signing_key: {}\n", key.private.display()),
        )
    };
    let backup = with_key(&signing);
    run(dir, "backup", &backup, &[], &[]).assert_code(EXIT_OK);
    let restore = |target: &str| {
        restore_yaml(
            "quar-admin",
            &fs_storage(&store),
            &format!(
                "topic_mapping:\n  {topic}: {target}\nrestore_id: {target}\nverify_key: {}\n\
                 release_verify_key: {}\n",
                signing.public.as_ref().unwrap().display(),
                admin.public.as_ref().unwrap().display()
            ),
        )
    };
    run(dir, "quarantine", &backup, &[], &["--reason", "incident 7"]).assert_code(EXIT_OK);
    // The backup host signs a release: not the admin, so it does not count.
    run(
        dir,
        "quarantine",
        &backup,
        &[],
        &["--release", "--reason", "self-release"],
    )
    .assert_code(EXIT_OK);
    let target = format!("{topic}-a");
    run(dir, "restore", &restore(&target), &[], &[]).assert_code(EXIT_INTEGRITY);
    assert!(!topic_exists(&plaintext_broker(), &target));
    // The admin's release does.
    run(
        dir,
        "quarantine",
        &with_key(&admin),
        &[],
        &["--release", "--reason", "cleared"],
    )
    .assert_code(EXIT_OK);
    run(dir, "restore", &restore(&target), &[], &[]).assert_code(EXIT_OK);
    assert_same_records(&consumed(&target), &consumed(&topic));
}

//! `kafka-backup drill`: a restore into scratch topics and groups, proven record by record
//! (against data produced by confluent-kafka: null and empty keys and values, headers,
//! transactions) and group position by group position, with RTO and RPO figures, an audit
//! event, evidence, and a cleanup that removes only what the drill created.
//!
//! The drill restores into a broker of the test's own: nisshi deletes every topic of a broker
//! when asked to delete one, so a cleanup on a shared broker would remove other tests' topics.

mod common;

use common::protection::*;
use common::*;
use serde_json::Value;

/// Whether `group` has committed offsets on `broker`.
fn group_exists(broker: &str, group: &str) -> bool {
    let out = python(
        "import sys\nfrom confluent_kafka.admin import AdminClient\n\
         a = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
         gs = a.list_consumer_groups().result(timeout=10).valid\n\
         print(any(g.group_id == sys.argv[2] for g in gs))\n",
        &[broker, group],
    );
    out.trim() == "True"
}

/// What a read_committed consumer sees in `topic` of `broker`, without offsets.
fn records_on(broker: &str, topic: &str) -> Vec<Rec> {
    without_offsets(committed(&fidelity(&["consume", broker, topic])))
}

#[test]
fn a_drill_proves_every_record_and_group_position_and_cleans_up_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let topic = unique_topic("drill");
    let produced = fidelity(&["produce", &plaintext_broker(), &topic]);
    let group = format!("{topic}-app");
    commit_group(
        &topic,
        &group,
        &[
            (0, offset_of(&produced, 0, "tail")),
            (1, offset_of(&produced, 1, "committed-2")),
        ],
        "app-position",
    );
    let own = test_support::OwnBroker::start();
    let target = own.address();
    let store = dir.join("store");
    let signing = generate_key(dir, "signing", "signing.key");
    let backup = backup_yaml(
        "drl",
        &[&topic],
        &fs_storage(&store),
        &format!("signing_key: {}\n", signing.private.display()),
    );
    run(dir, "backup", &backup, &[], &[]).assert_code(EXIT_OK);
    let log = dir.join("audit.jsonl");
    // The drill host signs its audit events (the evidence report checks the trail with the
    // backup's verify key).
    let reader = format!(
        "{}audit:\n  signing_key: {}\n",
        restore_yaml(
            "drl",
            &fs_storage(&store),
            &format!(
                "consumer_groups:\n  include: [\"{group}\"]\nverify_key: {}\n",
                signing.public.as_ref().unwrap().display()
            ),
        )
        .replace(&plaintext_broker(), &target),
        signing.private.display()
    );

    let prefix = format!("{topic}-d1-");
    let d = run(
        dir,
        "drill",
        &reader,
        &[],
        &[
            "--prefix",
            &prefix,
            "--format",
            "json",
            "--audit-file",
            log.to_str().unwrap(),
        ],
    );
    eprintln!("{}", d.all());
    d.assert_code(EXIT_OK);
    let report: Value = d.json()["drill"].clone();
    assert_eq!(report["proven"], true);
    let partitions = report["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3, "{report:#}");
    let want = without_offsets(committed(&produced));
    let total: u64 = partitions
        .iter()
        .map(|p| p["target_records"].as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, want.len());
    for p in partitions {
        assert_eq!(p["backup_sha256"], p["target_sha256"]);
        assert_eq!(p["backup_records"], p["target_records"]);
    }
    // Both committed positions are proven, on the scratch group, and the source group is
    // untouched by the drill.
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{report:#}");
    assert!(groups.iter().all(|g| g["proven"] == true), "{report:#}");
    assert!(
        groups
            .iter()
            .all(|g| g["drill_group"] == format!("{prefix}{group}"))
    );
    assert!(report["restore_secs"].as_f64().unwrap() > 0.0);
    assert!(report["rpo_secs"].as_f64().unwrap() >= 0.0);
    assert!(report["newest_record"].is_string());
    let scratch = format!("{prefix}{topic}");
    assert_same_records(&records_on(&target, &scratch), &want);
    assert!(group_exists(&target, &format!("{prefix}{group}")));

    // The audit trail carries the verdict and the figures, and the evidence report shows the
    // newest drill.
    let trail = audit_events(&log);
    let end = trail
        .iter()
        .find(|e| e["phase"] == "end" && e["command"] == "drill")
        .unwrap();
    let detail = end["detail"].as_str().unwrap();
    assert!(detail.starts_with("drill PROVEN: 3 partitions"), "{detail}");
    assert!(
        detail.contains("(RTO)") && detail.contains("RPO"),
        "{detail}"
    );
    let evidence = dir.join("evidence");
    let reported = run(
        dir,
        "report",
        &reader,
        &[],
        &[
            "--evidence",
            "--audit-log",
            log.to_str().unwrap(),
            "--out",
            evidence.to_str().unwrap(),
        ],
    );
    eprintln!(
        "{}",
        std::fs::read_to_string(evidence.with_extension("json")).unwrap_or_default()
    );
    reported.assert_code(EXIT_OK);
    let markdown = std::fs::read_to_string(evidence.with_extension("md")).unwrap();
    assert!(markdown.contains("drill PROVEN"), "{markdown}");

    // The same prefix again continues the same restore (its progress says it is done): proven
    // again, and nothing is written twice.
    let again = run(
        dir,
        "drill",
        &reader,
        &[],
        &["--prefix", &prefix, "--format", "json"],
    );
    again.assert_code(EXIT_OK);
    assert_eq!(again.json()["drill"]["proven"], true);
    assert_same_records(&records_on(&target, &scratch), &want);

    // A second drill with --cleanup removes its own topics and groups, and only those.
    let prefix2 = format!("{topic}-d2-");
    let d = run(
        dir,
        "drill",
        &reader,
        &[],
        &["--prefix", &prefix2, "--cleanup", "--format", "json"],
    );
    d.assert_code(EXIT_OK);
    let cleanup = &d.json()["cleanup"];
    assert_eq!(cleanup["failed"], serde_json::json!([]), "{cleanup:#}");
    assert!(!topic_exists(&target, &format!("{prefix2}{topic}")));
    assert!(!group_exists(&target, &format!("{prefix2}{group}")));
    // The first drill's group stays (its topics went with the second's: nisshi's
    // DeleteTopics deletes every topic of the broker), and the source cluster is another.
    assert!(group_exists(&target, &format!("{prefix}{group}")));
    assert!(topic_exists(&plaintext_broker(), &topic));

    // A prefix that cannot start a topic name is a usage error.
    run(dir, "drill", &reader, &[], &["--prefix", "bad prefix"]).assert_code(EXIT_USAGE);
}

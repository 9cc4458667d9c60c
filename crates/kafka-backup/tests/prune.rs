//! `kafka-backup prune`: retention removes what no kept run needs and nothing else, is a dry
//! run unless told, leaves a signed backup that validates and restores exactly, cannot be
//! imitated by someone who can only write to the bucket, respects object lock, and is in the
//! audit trail.

mod common;

use std::path::Path;

use common::protection::*;
use common::*;
use serde_json::Value;

/// Every file under `root`, relative, sorted.
fn files(root: &Path) -> Vec<String> {
    store_files(root).into_iter().map(|(k, _)| k).collect()
}

/// The kinds of problems `validate --format json` reported.
fn problem_kinds(report: &Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn run_plan<'a>(plan: &'a Value, run_id: &str) -> &'a Value {
    plan["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id)
        .unwrap_or_else(|| panic!("no run {run_id} in {plan:#}"))
}

/// The run ids of the backup, oldest first, from `describe`.
fn run_ids(dir: &Path, yaml: &str) -> Vec<String> {
    let d = run(dir, "describe", yaml, &[], &["--format", "json"]);
    d.assert_code(EXIT_OK);
    d.json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn prune_removes_only_what_no_kept_run_needs_and_the_backup_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let kept = unique_topic("prune-kept");
    let dropped = unique_topic("prune-dropped");
    fidelity(&["bulk", &plaintext_broker(), &kept, "300", "2"]);
    fidelity(&["bulk", &plaintext_broker(), &dropped, "200", "1"]);
    let store = dir.join("store");
    let log = dir.join("audit.jsonl");
    let audited = ["--audit-file", log.to_str().unwrap()];
    let signing = generate_key(dir, "signing", "signing.key");
    let with_topics = |topics: &[&str]| {
        backup_yaml(
            "pr",
            topics,
            &fs_storage(&store),
            &format!("signing_key: {}\n", signing.private.display()),
        )
    };
    let both = with_topics(&[&kept, &dropped]);
    let only_kept = with_topics(&[&kept]);
    let reader = restore_yaml(
        "pr",
        &fs_storage(&store),
        &format!(
            "topics:\n  include: [\"{kept}\"]\ntopic_mapping:\n  {kept}: {kept}-restored\nrestore_id: prune\n\
             verify_key: {}\n",
            signing.public.as_ref().unwrap().display()
        ),
    );

    // Run 1 holds both topics; run 2 finds nothing new; run 3 follows one topic only, with
    // new records.
    run(dir, "backup", &both, &[], &[]).assert_code(EXIT_OK);
    run(dir, "backup", &both, &[], &[]).assert_code(EXIT_OK);
    produce_more(&kept, 2, 50, "later");
    run(dir, "backup", &only_kept, &[], &[]).assert_code(EXIT_OK);
    let runs = run_ids(dir, &reader);
    assert_eq!(runs.len(), 3, "{runs:?}");
    let before = files(&store);
    let dropped_files = |names: &[String]| {
        names
            .iter()
            .filter(|k| k.contains(&format!("/topics/{dropped}/")))
            .count()
    };
    assert!(dropped_files(&before) > 0);

    // A policy is required; a dry run is the default and removes nothing.
    run(dir, "prune", &only_kept, &[], &[]).assert_code(EXIT_USAGE);
    let dry = run(
        dir,
        "prune",
        &only_kept,
        &[],
        &["--keep-last", "1", "--format", "json"],
    );
    dry.assert_code(EXIT_OK);
    let plan = dry.json();
    eprintln!("{plan:#}");
    assert_eq!(plan["executed"], false);
    assert_eq!(files(&store), before, "a dry run changed the store");
    // Run 3 is kept; run 2 (no data) goes whole; run 1 loses the dropped topic's segments and
    // keeps those of the followed topic, which run 3 still needs.
    assert!(run_plan(&plan, &runs[2])["kept_by"].is_string());
    assert_eq!(run_plan(&plan, &runs[1])["whole"], true);
    let run1 = run_plan(&plan, &runs[0]);
    assert_eq!(run1["whole"], false);
    let removed: Vec<&str> = run1["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert!(!removed.is_empty());
    assert!(
        removed
            .iter()
            .all(|k| k.contains(&format!("/topics/{dropped}/"))),
        "{removed:?}"
    );
    assert_eq!(run1["held"][0][1]["why"], "needed");
    assert_eq!(run1["held"][0][1]["run_id"], runs[2].as_str());
    let text = run(dir, "prune", &only_kept, &[], &["--keep-last", "1"]);
    text.assert_code(EXIT_OK);
    text.assert_contains("dry run");
    text.assert_contains(&format!("run {} still needs {kept}-", runs[2]));

    // Refused, with nothing removed: a signed backup read without a verify key (the prune
    // record would be signed, but the manifests it plans from would not be checked), and a
    // quarantined backup.
    let unverified = format!(
        "{}audit:\n  signing_key: {}\n",
        backup_yaml("pr", &[&kept], &fs_storage(&store), ""),
        signing.private.display()
    );
    let refused = run(
        dir,
        "prune",
        &unverified,
        &[],
        &["--keep-last", "1", "--execute"],
    );
    refused.assert_code(EXIT_CONFIG);
    refused.assert_contains("has no verify key");
    run(
        dir,
        "quarantine",
        &only_kept,
        &[],
        &["--reason", "under review"],
    )
    .assert_code(EXIT_OK);
    let refused = run(
        dir,
        "prune",
        &only_kept,
        &[],
        &["--keep-last", "1", "--execute"],
    );
    refused.assert_code(EXIT_INTEGRITY);
    refused.assert_contains("is QUARANTINED");
    run(
        dir,
        "quarantine",
        &only_kept,
        &[],
        &["--release", "--reason", "reviewed"],
    )
    .assert_code(EXIT_OK);
    assert_eq!(
        files(&store).len(),
        before.len() + 2,
        "only the two markers were added"
    );

    // Executed with the admin's (here: the backup's) signing key.
    let mut args = audited.to_vec();
    args.extend(["--keep-last", "1", "--execute"]);
    let done = run(dir, "prune", &only_kept, &[], &args);
    done.assert_code(EXIT_OK);
    done.assert_contains("Removed");
    let after = files(&store);
    assert_eq!(dropped_files(&after), 0, "{after:?}");
    assert!(!after.iter().any(|k| k.contains(&runs[1])), "{after:?}");
    assert!(after.iter().any(|k| k.contains(&runs[0])), "{after:?}");
    assert!(
        after.iter().any(|k| k.starts_with("pr/pruned/")),
        "{after:?}"
    );

    // The signed backup still validates, and restores every record of the followed topic,
    // those of run 1 included.
    let v = run(dir, "validate", &reader, &[], &["--format", "json"]);
    eprintln!("{}", v.stdout);
    v.assert_code(EXIT_OK);
    assert_eq!(problem_kinds(&v.json()), Vec::<String>::new());
    run(dir, "restore", &reader, &[], &[]).assert_code(EXIT_OK);
    assert_same_records(&consumed(&format!("{kept}-restored")), &consumed(&kept));
    let described = run(dir, "describe", &reader, &[], &[]);
    described.assert_contains("Pruned ");
    described.assert_contains("under --keep-last 1: 1 runs whole");
    // Nothing more to remove: a second prune is a no-op.
    let again = run(
        dir,
        "prune",
        &only_kept,
        &[],
        &["--keep-last", "1", "--execute", "--format", "json"],
    );
    again.assert_code(EXIT_OK);
    assert_eq!(again.json()["remove_objects"], 0);

    // The audit trail says what was removed.
    let trail = audit_events(&log);
    let end = trail
        .iter()
        .find(|e| e["phase"] == "end" && e["command"] == "prune --execute")
        .expect("a prune --execute end event");
    let detail = end["detail"].as_str().unwrap();
    assert!(detail.contains("pruned under --keep-last 1"), "{detail}");
    assert!(
        detail.contains(&runs[1]) && detail.contains(&runs[0]),
        "{detail}"
    );
    assert!(detail.contains("prune record pr/pruned/"), "{detail}");

    // An intruder who can write and delete deletes run 4 (the newest but one) and plants an
    // unsigned prune record with the right digests that claims retention did it: validate
    // still reports the broken chain, and the record as unauthenticated.
    produce_more(&kept, 2, 10, "fourth");
    run(dir, "backup", &only_kept, &[], &[]).assert_code(EXIT_OK);
    produce_more(&kept, 2, 10, "fifth");
    run(dir, "backup", &only_kept, &[], &[]).assert_code(EXIT_OK);
    let runs = run_ids(dir, &reader);
    let victim = &runs[runs.len() - 2];
    let victim_parts: Vec<String> = files(&store)
        .into_iter()
        .filter(|k| k.starts_with(&format!("pr/runs/{victim}/")))
        .collect();
    assert!(!victim_parts.is_empty());
    let mut parts = Vec::new();
    for k in &victim_parts {
        let bytes = std::fs::read(store.join(k)).unwrap();
        parts.push(serde_json::json!({"key": k, "sha256": sha256sum(&bytes)}));
        std::fs::remove_file(store.join(k)).unwrap();
    }
    let body = serde_json::to_vec_pretty(&serde_json::json!({
        "format": 1, "backup_id": "pr", "at": "2026-12-04T00:00:00.000Z", "by": "intruder",
        "policy": "--keep-last 1",
        "runs": [{"run_id": victim, "started_at": "2026-12-04T00:00:00Z", "whole": true,
                  "parts": parts, "objects": victim_parts, "bytes": 0}]
    }))
    .unwrap();
    std::fs::write(
        store.join(format!("pr/pruned/000009-pruned-{}.json", sha256sum(&body))),
        &body,
    )
    .unwrap();
    let v = run(dir, "validate", &reader, &[], &["--format", "json"]);
    eprintln!("{}", v.stdout);
    v.assert_code(EXIT_INTEGRITY);
    let kinds = problem_kinds(&v.json());
    assert!(kinds.contains(&"chain-broken".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"unauthenticated".to_owned()), "{kinds:?}");
}

#[test]
fn prune_respects_object_lock_and_removes_on_a_versioned_bucket_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let kept = unique_topic("prune-lock-kept");
    let dropped = unique_topic("prune-lock-dropped");
    fidelity(&["bulk", &plaintext_broker(), &kept, "100", "1"]);
    fidelity(&["bulk", &plaintext_broker(), &dropped, "100", "1"]);

    // A versioned bucket without Object Lock, of this test's own.
    let versioned = new_moto_bucket("kb-vers", "versioned");
    for (prefix, retain) in [
        (unique_topic("locked"), Some(1)),
        (unique_topic("free"), None),
    ] {
        let storage = match retain {
            Some(_) => moto_lock_storage(&prefix, retain),
            None => moto_bucket_storage(&versioned, &prefix),
        };
        let both = backup_yaml("pl", &[&kept, &dropped], &storage, "");
        let only_kept = backup_yaml("pl", &[&kept], &storage, "");
        run(dir, "backup", &both, &[], &[]).assert_code(EXIT_OK);
        run(dir, "backup", &only_kept, &[], &[]).assert_code(EXIT_OK);
        let bucket = match retain {
            Some(_) => get("/s3/lock_bucket"),
            None => versioned.clone(),
        };
        let before = s3_versions(&bucket, &prefix);
        if retain.is_some() {
            // The same bucket pruned with a configuration that does not name the lock: the
            // bucket has Object Lock and no default retention, so how long its objects are
            // locked cannot be told, and --execute is refused (a dry run only warns).
            let blind = backup_yaml("pl", &[&kept], &moto_lock_storage(&prefix, None), "");
            let refused = run(
                dir,
                "prune",
                &blind,
                &[],
                &["--keep-last", "1", "--execute"],
            );
            refused.assert_code(EXIT_CONFIG);
            refused.assert_contains("prune cannot tell how long the backup's objects are locked");
            run(dir, "prune", &blind, &[], &["--keep-last", "1"]).assert_code(EXIT_OK);
            assert_eq!(s3_versions(&bucket, &prefix), before);
        }
        let done = run(
            dir,
            "prune",
            &only_kept,
            &[],
            &["--keep-last", "1", "--execute", "--format", "json"],
        );
        done.assert_code(EXIT_OK);
        let report = done.json();
        eprintln!("{report:#}");
        let first = &report["runs"][0];
        match retain {
            Some(_) => {
                // Every object of the dropped topic is under a one-day lock: held, reported,
                // and not even hidden behind a delete marker.
                assert_eq!(report["remove_objects"], 0);
                assert!(first["held_count"].as_u64().unwrap() > 0);
                let locked: Vec<&Value> = first["held"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|h| h[1]["why"] == "locked")
                    .collect();
                assert!(!locked.is_empty(), "{first:#}");
                assert!(
                    locked.iter().all(|h| h[1]["until"].is_string()),
                    "{first:#}"
                );
                // s3_versions fails on any delete marker.
                assert_eq!(s3_versions(&bucket, &prefix), before);
                let text = run(dir, "prune", &only_kept, &[], &["--keep-last", "1"]);
                text.assert_contains("object lock holds it until about");
            }
            None => {
                // Without a lock the dropped topic's segments go (behind delete markers on
                // this versioned bucket), and the backup no longer shows the topic.
                assert!(report["result"]["removed"].as_u64().unwrap() > 0);
                let listed = run(dir, "describe", &only_kept, &[], &["--format", "json"]);
                listed.assert_code(EXIT_OK);
                let description = listed.json();
                let topics: Vec<&str> = description["topics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["name"].as_str().unwrap())
                    .collect();
                assert!(!topics.contains(&dropped.as_str()), "{}", listed.stdout);
                assert!(topics.contains(&kept.as_str()), "{}", listed.stdout);
            }
        }
    }
}

/// What the source's retention deleted before a kept run ran is not part of that run's view,
/// so it goes. The test broker cannot advance a log start (no DeleteRecords, no retention), so
/// the second run's manifest is edited to say what a broker with retention would have told it:
/// the log started at the first offset of that run.
#[test]
fn data_the_cluster_had_already_deleted_when_the_oldest_kept_run_ran_goes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let topic = unique_topic("prune-logstart");
    fidelity(&["bulk", &plaintext_broker(), &topic, "200", "1"]);
    let store = dir.join("store");
    let yaml = backup_yaml("pls", &[&topic], &fs_storage(&store), "");
    run(dir, "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    produce_more(&topic, 1, 40, "later");
    run(dir, "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    let runs = run_ids(dir, &yaml);
    assert_eq!(runs.len(), 2);

    // Without the log start (as older versions wrote), run 2 views the partition from 0 and
    // run 1 is needed.
    let manifest = files(&store)
        .into_iter()
        .find(|k| k.starts_with(&format!("pls/runs/{}/", runs[1])))
        .unwrap();
    let path = store.join(&manifest);
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(doc["end_offsets"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!(doc["end_offsets"][0]["log_start_offset"], 0, "{doc:#}");
    let run2_start = doc["end_offsets"][0]["end_offset"].as_i64().unwrap() - 40;
    doc["end_offsets"][0]
        .as_object_mut()
        .unwrap()
        .remove("log_start_offset");
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let plan = run(
        dir,
        "prune",
        &yaml,
        &[],
        &["--keep-last", "1", "--format", "json"],
    );
    plan.assert_code(EXIT_OK);
    assert_eq!(plan.json()["remove_objects"], 0, "{}", plan.stdout);

    // With the log start a broker with retention would have reported, run 1 goes whole.
    doc["end_offsets"][0]["log_start_offset"] = run2_start.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let done = run(
        dir,
        "prune",
        &yaml,
        &[],
        &["--keep-last", "1", "--execute", "--format", "json"],
    );
    done.assert_code(EXIT_OK);
    let report = done.json();
    assert_eq!(report["runs"][0]["whole"], true, "{report:#}");
    let left = files(&store);
    assert!(!left.iter().any(|k| k.contains(&runs[0])), "{left:?}");

    // What stays validates and restores the records from run 2's view on.
    let reader = restore_yaml(
        "pls",
        &fs_storage(&store),
        &format!("topic_mapping:\n  {topic}: {topic}-restored\nrestore_id: pls\n"),
    );
    let v = run(dir, "validate", &reader, &[], &["--format", "json"]);
    eprintln!("{}", v.stdout);
    v.assert_code(EXIT_OK);
    run(dir, "restore", &reader, &[], &[]).assert_code(EXIT_OK);
    let restored = consumed(&format!("{topic}-restored"));
    let source = consumed(&topic);
    assert_eq!(restored.len(), 40);
    assert_same_records(
        &without_offsets(restored),
        &without_offsets(source[source.len() - 40..].to_vec()),
    );
}

/// A bucket whose *default* retention locks every object: the backup must name the lock (S3
/// takes such writes only with the integrity header the lock brings), and a prune whose
/// configuration does not name it reads the bucket's default retention and holds the objects,
/// instead of hiding locked objects behind delete markers.
#[test]
fn prune_reads_a_bucket_default_retention_the_configuration_does_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let kept = unique_topic("prune-dflt-kept");
    let dropped = unique_topic("prune-dflt-dropped");
    fidelity(&["bulk", &plaintext_broker(), &kept, "50", "1"]);
    fidelity(&["bulk", &plaintext_broker(), &dropped, "50", "1"]);
    let bucket = new_moto_bucket("kb-dflt", "default-retention");
    let storage = moto_bucket_storage(&bucket, "");
    // S3 takes writes into such a bucket only with an integrity header, which the backup
    // sends with storage.object_lock; without it the message says what to set.
    let unlocked = backup_yaml("pd", &[&kept, &dropped], &storage, "");
    let refused = run(dir, "backup", &unlocked, &[], &[]);
    refused.assert_code(EXIT_STORAGE);
    refused.assert_contains("applies a default S3 Object Lock retention");
    refused.assert_contains("Set storage.object_lock");
    let locked = format!("{storage}  object_lock:\n    mode: GOVERNANCE\n    retain_days: 1\n");
    run(
        dir,
        "backup",
        &backup_yaml("pd", &[&kept, &dropped], &locked, ""),
        &[],
        &[],
    )
    .assert_code(EXIT_OK);
    run(
        dir,
        "backup",
        &backup_yaml("pd", &[&kept], &locked, ""),
        &[],
        &[],
    )
    .assert_code(EXIT_OK);
    // The admin's configuration does not name the lock: prune reads the bucket's default.
    let only_kept = backup_yaml("pd", &[&kept], &storage, "");
    let before = s3_versions(&bucket, "");
    let done = run(
        dir,
        "prune",
        &only_kept,
        &[],
        &["--keep-last", "1", "--execute", "--format", "json"],
    );
    done.assert_code(EXIT_OK);
    let report = done.json();
    eprintln!("{report:#}");
    assert_eq!(report["remove_objects"], 0);
    let held = report["runs"][0]["held"].as_array().unwrap();
    assert!(held.iter().any(|h| h[1]["why"] == "locked"), "{report:#}");
    // s3_versions fails on any delete marker.
    assert_eq!(s3_versions(&bucket, ""), before);
}

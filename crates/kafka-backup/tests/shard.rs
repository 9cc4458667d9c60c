//! Sharded backups against the real broker: three shard processes back up one signed backup at
//! once, one is killed with -9 and run again, and the restore, read back with confluent-kafka,
//! holds every record; validate sees one whole chain per shard; a shard deleted whole is
//! caught; and a process that does not know its shard refuses to start.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::protection::*;
use common::*;
use serde_json::Value;

/// Starts `kafka-backup backup` as shard `index` (through JOB_COMPLETION_INDEX, as a
/// Kubernetes Indexed Job would), with its own audit file and summary file (`.json` beside
/// the audit file).
fn spawn_shard(config: &Path, index: u32, audit: &Path) -> Child {
    Command::new(binary())
        .args([
            "--log-format",
            "json",
            "--log-level",
            "warn",
            "--audit-file",
        ])
        .arg(audit)
        .arg("--summary-file")
        .arg(audit.with_extension("json"))
        .args(["backup", "--format", "json", "--config"])
        .arg(config)
        .env("JOB_COMPLETION_INDEX", index.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every manifest part in a filesystem store, by run id.
fn manifest_parts(store: &Path, backup_id: &str) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let Ok(runs) = std::fs::read_dir(store.join(backup_id).join("runs")) else {
        return out;
    };
    for run in runs.flatten() {
        let id = run.file_name().to_string_lossy().into_owned();
        for part in std::fs::read_dir(run.path()).unwrap().flatten() {
            out.entry(id.clone()).or_default().push(part.path());
        }
    }
    out
}

fn lane_of(run_id: &str) -> Option<String> {
    backup_format::Shard::of_run(run_id).map(|s| s.to_string())
}

#[test]
fn three_shards_at_once_one_killed_and_rerun_restore_every_record() {
    let rich = unique_topic("shard-rich");
    let bulk = unique_topic("shard-bulk");
    // confluent-kafka writes both: null and empty keys and values, headers, transactions
    // (committed and aborted), every codec (rich, 3 partitions); plain records over 6.
    let produced = fidelity(&["produce", &plaintext_broker(), &rich]);
    fidelity(&["bulk", &plaintext_broker(), &bulk, "6000", "6"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let signing = generate_key(dir.path(), "signing", "shards");
    let storage = fs_storage(&store);
    let signing_line = format!("signing_key: {}\n", signing.private.display());
    let continuous = dir.path().join("continuous.yaml");
    std::fs::write(
        &continuous,
        backup_yaml(
            "sharded",
            &[&rich, &bulk],
            &storage,
            &format!(
                "shards: 3\ncontinuous: true\nsegment_max_interval_ms: 1000\n\
                 metadata_max_age_ms: 1000\n{signing_line}"
            ),
        ),
    )
    .unwrap();

    // Three processes at once, each its shard; shard 1 is killed once its first manifest
    // part is stored.
    let audits: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("audit-{i}.jsonl")))
        .collect();
    let mut children: Vec<Child> = (0..3)
        .map(|i| spawn_shard(&continuous, i, &audits[i as usize]))
        .collect();
    wait_until(
        "every shard to store a manifest part",
        Duration::from_secs(60),
        || {
            let lanes: BTreeSet<Option<String>> = manifest_parts(&store, "sharded")
                .keys()
                .map(|r| lane_of(r))
                .collect();
            (0..3).all(|i| lanes.contains(&Some(format!("{i}/3"))))
        },
    );
    let killed = children.remove(1);
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &killed.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let killed = finish(killed, Duration::from_secs(10));
    assert_ne!(killed.code, 0, "shard 1 was killed");
    // Records that arrive after the kill: the rerun must pick up shard 1's share.
    let more = produce_more(&bulk, 6, 50, "late");
    assert_eq!(more.as_array().unwrap().len(), 300);
    for child in &children {
        sigterm(child);
    }
    for child in children {
        let run = finish(child, Duration::from_secs(60));
        run.assert_code(EXIT_OK);
        let report = run.json();
        let shard = report["shard"].as_str().unwrap().to_owned();
        assert!(shard == "0/3" || shard == "2/3", "{report}");
        assert!(
            report["run_id"]
                .as_str()
                .unwrap()
                .ends_with(&format!(".shard-{}-of-3", &shard[..1])),
            "{report}"
        );
    }

    // The three shards again as snapshots, at once: shard 1 resumes where it was killed,
    // the others from where they stopped; every partition reaches the end.
    let snapshot = dir.path().join("snapshot.yaml");
    std::fs::write(
        &snapshot,
        backup_yaml(
            "sharded",
            &[&rich, &bulk],
            &storage,
            &format!("shards: 3\n{signing_line}"),
        ),
    )
    .unwrap();
    let second: Vec<Child> = (0..3)
        .map(|i| {
            spawn_shard(
                &snapshot,
                i,
                &dir.path().join(format!("audit-second-{i}.jsonl")),
            )
        })
        .collect();
    let mut partitions_backed_up = 0;
    for (i, child) in second.into_iter().enumerate() {
        let run = finish(child, Duration::from_secs(120));
        run.assert_code(EXIT_OK);
        let report = run.json();
        partitions_backed_up += report["partitions"].as_u64().unwrap();
        // The summary a Kubernetes operator reads from the pod's termination message.
        let summary_path = dir.path().join(format!("audit-second-{i}.json"));
        let summary: Value =
            serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
        assert_eq!(summary["command"], "backup", "{summary}");
        assert_eq!(summary["exit_code"], 0, "{summary}");
        assert_eq!(summary["outcome"], "complete", "{summary}");
        assert_eq!(summary["shard"], format!("{i}/3").as_str(), "{summary}");
        assert_eq!(summary["run_id"], report["run_id"], "{summary}");
        assert_eq!(summary["records"], report["records"], "{summary}");
        assert_eq!(summary["bytes"], report["bytes_written"], "{summary}");
        assert!(summary["error"].is_null(), "{summary}");
    }
    assert_eq!(
        partitions_backed_up, 9,
        "3 + 6 partitions, each in one shard"
    );

    // Each run stored only its own shard's partitions.
    for (run_id, parts) in manifest_parts(&store, "sharded") {
        let shard = backup_format::Shard::of_run(&run_id).expect("every run is a shard's");
        for part in parts {
            let manifest: Value = serde_json::from_slice(&std::fs::read(&part).unwrap()).unwrap();
            for s in manifest["segments"].as_array().unwrap() {
                let (topic, p) = (
                    s["topic"].as_str().unwrap(),
                    s["partition"].as_i64().unwrap(),
                );
                assert!(
                    shard.owns(topic, p as i32),
                    "{run_id} stored {topic}-{p}, which shard {shard} does not own"
                );
            }
        }
    }

    // validate: signatures checked, one whole chain per shard (the killed run is followed by
    // its rerun, so it is not reported unfinished), no shard missing.
    let verify = verify_line(&signing);
    let reading = restore_yaml(
        "sharded",
        &storage,
        &format!("topic_mapping:\n  {rich}: {rich}-r\n  {bulk}: {bulk}-r\n{verify}"),
    );
    let validated = run(dir.path(), "validate", &reading, &[], &["--format", "json"]);
    validated.assert_code(EXIT_OK);
    let problems: Vec<String> = validated.json()["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(problems.is_empty(), "{}", validated.all());

    // describe lists the union: six runs, two per shard, the killed one unfinished.
    let described = run(dir.path(), "describe", &reading, &[], &["--format", "json"]);
    described.assert_code(EXIT_OK);
    let runs = described.json()["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 6, "{runs:?}");
    let mut per_shard: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for r in &runs {
        per_shard
            .entry(r["shard"].as_str().unwrap().to_owned())
            .or_default()
            .push(r["finished"].as_bool().unwrap());
    }
    assert_eq!(per_shard["0/3"], [true, true]);
    assert_eq!(
        per_shard["1/3"],
        [false, true],
        "the killed run, then its rerun"
    );
    assert_eq!(per_shard["2/3"], [true, true]);

    // The restore of the union, read back with confluent-kafka.
    let restored = run(dir.path(), "restore", &reading, &[], &["--format", "json"]);
    restored.assert_code(EXIT_OK);
    let want_rich = without_offsets(committed(&produced));
    assert_same_records(&consumed_without_offsets(&format!("{rich}-r")), &want_rich);
    let want_bulk = consumed_without_offsets(&bulk);
    assert_eq!(want_bulk.len(), 6300);
    assert_same_records(&consumed_without_offsets(&format!("{bulk}-r")), &want_bulk);

    // Each shard's audit trail names its own run.
    for (i, audit) in audits.iter().enumerate().filter(|(i, _)| *i != 1) {
        let events = audit_events(audit);
        let end = events.last().unwrap();
        assert!(
            end["run_id"]
                .as_str()
                .is_some_and(|r| r.ends_with(&format!(".shard-{i}-of-3"))),
            "{end}"
        );
        assert!(
            end["detail"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("shard {i}/3")),
            "{end}"
        );
    }

    // An intruder deletes shard 2's runs whole: its chain vanishes with it, but the shard's
    // absence is found, and restore refuses rather than restore empty partitions.
    for (run_id, parts) in manifest_parts(&store, "sharded") {
        if run_id.ends_with(".shard-2-of-3") {
            for part in parts {
                std::fs::remove_file(part).unwrap();
            }
        }
    }
    let validated = run(dir.path(), "validate", &reading, &[], &["--format", "json"]);
    validated.assert_code(EXIT_INTEGRITY);
    validated.assert_contains("missing-shard");
    validated.assert_contains("shard 2/3 of this sharded backup has no run");
    let refused = run(
        dir.path(),
        "restore",
        &restore_yaml(
            "sharded",
            &storage,
            &format!("topic_mapping:\n  {rich}: {rich}-r2\n  {bulk}: {bulk}-r2\n{verify}"),
        ),
        &[],
        &[],
    );
    refused.assert_code(EXIT_INTEGRITY);
    refused.assert_contains("--shard 2/3");
}

#[test]
fn a_process_that_does_not_know_its_shard_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml("shards", &["anything"], &store, "shards: 3");
    let path = dir.path().join("backup.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let cli = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec![
            std::ffi::OsStr::new("backup"),
            std::ffi::OsStr::new("--config"),
            path.as_os_str(),
        ];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        run_binary(&all, env)
    };

    let summary = dir.path().join("summary.json");
    let unknown = cli(&["--summary-file", summary.to_str().unwrap()], &[]);
    unknown.assert_code(EXIT_CONFIG);
    unknown.assert_contains("backup.shards is 3, but this process was not told which shard");
    unknown.assert_contains("JOB_COMPLETION_INDEX");
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(summary["outcome"], "failed", "{summary}");
    assert_eq!(summary["exit_code"], EXIT_CONFIG, "{summary}");
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .contains("JOB_COMPLETION_INDEX"),
        "{summary}"
    );

    let out_of_range = cli(&[], &[("JOB_COMPLETION_INDEX", "3")]);
    out_of_range.assert_code(EXIT_CONFIG);
    out_of_range.assert_contains("shard index 3 is out of range for 3 shards");

    let other_count = cli(&["--shard", "1/4"], &[]);
    other_count.assert_code(EXIT_CONFIG);
    other_count.assert_contains("--shard 1/4 names 4 shards, but backup.shards is 3");

    let malformed = cli(&["--shard", "1-3"], &[]);
    malformed.assert_code(EXIT_USAGE);
    malformed.assert_contains("write INDEX/COUNT");
    assert!(!store.exists(), "nothing was written");
}

/// Retention counts the newest runs per shard: under `--keep-last 1` each shard keeps its own
/// newest run (one run of all six would leave two shards' newest data to the "newer than any
/// kept run" rule alone), and a shard's run needs only its own partitions.
#[test]
fn prune_keeps_the_newest_runs_of_every_shard() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let topic = unique_topic("shard-prune");
    fidelity(&["bulk", &plaintext_broker(), &topic, "600", "6"]);
    let store = dir.join("store");
    let signing = generate_key(dir, "signing", "prune-shards");
    let yaml = backup_yaml(
        "sp",
        &[&topic],
        &fs_storage(&store),
        &format!("shards: 3\nsigning_key: {}\n", signing.private.display()),
    );
    let round = || {
        for i in 0..3 {
            run(dir, "backup", &yaml, &[], &["--shard", &format!("{i}/3")]).assert_code(EXIT_OK);
        }
    };
    // Round 1 copies everything, round 2 finds nothing new, round 3 copies new records.
    round();
    round();
    produce_more(&topic, 6, 20, "later");
    round();
    let reader = restore_yaml(
        "sp",
        &fs_storage(&store),
        &format!(
            "topic_mapping:\n  {topic}: {topic}-restored\n{}",
            verify_line(&signing)
        ),
    );
    let described = run(dir, "describe", &reader, &[], &["--format", "json"]);
    described.assert_code(EXIT_OK);
    let runs: Vec<String> = described.json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(runs.len(), 9, "{runs:?}");

    let plan = run(
        dir,
        "prune",
        &yaml,
        &[],
        &["--keep-last", "1", "--format", "json"],
    );
    plan.assert_code(EXIT_OK);
    let plan = plan.json();
    let by_run: BTreeMap<String, &Value> = plan["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["run_id"].as_str().unwrap().to_owned(), r))
        .collect();
    // Runs sort by id, which starts with the time: per shard, the third is the newest.
    let mut per_lane: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for r in &runs {
        per_lane.entry(lane_of(r).unwrap()).or_default().push(r);
    }
    assert_eq!(per_lane.len(), 3);
    for (lane, lane_runs) in &per_lane {
        assert_eq!(lane_runs.len(), 3, "{lane}");
        let newest = by_run[lane_runs[2].as_str()];
        assert!(newest["kept_by"].is_string(), "{lane}: {newest:#}");
        let empty = by_run[lane_runs[1].as_str()];
        assert_eq!(
            empty["whole"], true,
            "{lane}: the run that found nothing goes: {empty:#}"
        );
        let first = by_run[lane_runs[0].as_str()];
        assert_eq!(first["whole"], false, "{lane}: still needed: {first:#}");
        assert!(first["remove"].as_array().unwrap().is_empty(), "{first:#}");
    }

    run(dir, "prune", &yaml, &[], &["--keep-last", "1", "--execute"]).assert_code(EXIT_OK);
    // What stays is whole: each shard's chain is excused where retention removed a run,
    // and every shard still has runs.
    let validated = run(dir, "validate", &reader, &[], &["--format", "json"]);
    validated.assert_code(EXIT_OK);
    assert!(
        validated.json()["problems"].as_array().unwrap().is_empty(),
        "{}",
        validated.stdout
    );
    run(dir, "restore", &reader, &[], &[]).assert_code(EXIT_OK);
    assert_same_records(
        &consumed_without_offsets(&format!("{topic}-restored")),
        &consumed_without_offsets(&topic),
    );
}

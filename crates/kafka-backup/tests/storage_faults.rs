//! Backups and restores through a flaky network: the binary talks to moto through
//! `scripts/fault-proxy.py`, which answers 503 before or after forwarding a request, or resets
//! the connection halfway through a body or after a write was stored. A snapshot backup, a
//! continuous backup stopped with SIGTERM, and a restore must each succeed, the restored topics
//! must match the source as confluent-kafka reads them, and the proxy's counts must show that
//! the faults happened.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const RECORDS: usize = 3_000;
/// One segment per partition and run: many partitions make many writes.
const PARTITIONS: usize = 12;

/// The `storage:` section for the plain moto, reached at `endpoint`, under `prefix`.
fn s3_storage(endpoint: &str, prefix: &str) -> String {
    s3_storage_tuned(endpoint, prefix, "")
}

/// [`s3_storage`] with more `storage:` lines (timeouts, retries).
fn s3_storage_tuned(endpoint: &str, prefix: &str, tuning: &str) -> String {
    format!(
        "storage:\n  backend: s3\n  bucket: {}\n  region: {}\n  endpoint: {endpoint}\n  \
         force_path_style: true\n  allow_http: true\n  prefix: {prefix}\n  access_key: {}\n  \
         secret_key: {}\n{tuning}",
        get("/s3/bucket"),
        get("/s3/region"),
        get("/s3/access_key_id"),
        get("/s3/secret_access_key"),
    )
}

fn backup_yaml(endpoint: &str, prefix: &str, backup_id: &str, topic: &str, extra: &str) -> String {
    format!(
        "mode: backup\nbackup_id: {backup_id}\nsource:\n  bootstrap_servers: [\"{}\"]\n  topics:\n    \
         include: [\"{topic}\"]\n{}backup:\n  segment_max_bytes: 1048576\n  \
         consumer_group_snapshot: false\n{extra}",
        plaintext_broker(),
        s3_storage(endpoint, prefix),
    )
}

/// Restores `backup_id` into `target` through `endpoint` and checks the run.
fn restore(dir: &Path, endpoint: &str, prefix: &str, backup_id: &str, topic: &str, target: &str) {
    let yaml = format!(
        "mode: restore\nbackup_id: {backup_id}\ntarget:\n  bootstrap_servers: [\"{}\"]\n{}\
         restore:\n  topic_mapping:\n    {topic}: {target}\n  restore_id: {target}\n  \
         progress_file: {}\n",
        plaintext_broker(),
        s3_storage(endpoint, prefix),
        dir.join(format!("{target}.progress.json")).display(),
    );
    let run = run(dir, "restore", &yaml, &[], &["--format", "json"]);
    run.assert_code(EXIT_OK);
    assert_eq!(
        run.json()["records_written"],
        RECORDS as u64,
        "{}",
        run.all()
    );
}

/// A snapshot, a continuous run and restores of both, all through a proxy in `mode`.
fn backups_and_restores_survive(mode: &str, get_faults: bool) {
    let topic = unique_topic(&format!("sf-{mode}"));
    let broker = plaintext_broker();
    fidelity(&[
        "bulk",
        &broker,
        &topic,
        &RECORDS.to_string(),
        &PARTITIONS.to_string(),
    ]);
    let source = consumed(&topic);
    assert_eq!(source.len(), RECORDS);
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("faults/{topic}");

    // Writes through the proxy.
    let proxy = FaultProxy::start(mode, 3, Duration::from_secs(5));
    let endpoint = proxy.endpoint();
    let snapshot = run(
        dir.path(),
        "backup",
        &backup_yaml(&endpoint, &prefix, "snap", &topic, ""),
        &[],
        &["--format", "json"],
    );
    snapshot.assert_code(EXIT_OK);
    assert_eq!(snapshot.json()["outcome"], "complete", "{}", snapshot.all());

    let puts_before = proxy.requests("PUT");
    let mut child = spawn_backup(
        dir.path(),
        &backup_yaml(
            &endpoint,
            &prefix,
            "cont",
            &topic,
            "  continuous: true\n  segment_max_interval_ms: 1000\n",
        ),
    );
    // Every partition's segment, the descriptor and a manifest part.
    wait_until(
        "the continuous run's writes",
        Duration::from_secs(60),
        || {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            proxy.requests("PUT") >= puts_before + PARTITIONS as u64 + 2
        },
    );
    if child.try_wait().unwrap().is_some() {
        panic!(
            "{mode}: the continuous run stopped by itself:\n{}",
            finish(child, Duration::from_secs(1)).all()
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    sigterm(&child);
    let continuous = finish(child, Duration::from_secs(60));
    continuous.assert_code(EXIT_OK);
    assert_eq!(
        continuous.json()["outcome"],
        "complete",
        "{}",
        continuous.all()
    );
    let put_faults = proxy.faults("PUT");
    eprintln!("{mode}: backups: {}", proxy.stats());
    assert!(put_faults >= 4, "{mode}: too few faults: {}", proxy.stats());
    drop(proxy);

    // Reads through a fresh proxy, so its counts are the restores' own.
    let proxy = FaultProxy::start(mode, 3, Duration::from_secs(5));
    let endpoint = proxy.endpoint();
    for backup_id in ["snap", "cont"] {
        let target = format!("{topic}-{backup_id}");
        restore(dir.path(), &endpoint, &prefix, backup_id, &topic, &target);
        assert_same_records(&consumed(&target), &source);
    }
    eprintln!("{mode}: restores: {}", proxy.stats());
    if get_faults {
        assert!(
            proxy.faults("GET") >= 4,
            "{mode}: too few faults: {}",
            proxy.stats()
        );
    }
}

#[test]
fn a_503_before_forwarding() {
    backups_and_restores_survive("error-before", true);
}

/// The write reached moto, its answer did not: the retry finds its own object.
#[test]
fn a_503_after_the_write_was_stored() {
    backups_and_restores_survive("error-after", false);
}

#[test]
fn connections_reset_halfway_through_a_body() {
    backups_and_restores_survive("reset", true);
}

/// The write reached moto, then the connection was reset instead of answered.
#[test]
fn connections_reset_after_the_write_was_stored() {
    backups_and_restores_survive("reset-after", false);
}

/// A restore reads each segment from storage once: through a proxy that only counts, the
/// bytes moto sends for GETs are the segments' size plus the small documents (descriptor and
/// manifests), and the report's count of bytes read agrees.
#[test]
fn a_restore_downloads_each_segment_once() {
    let topic = unique_topic("sf-once");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "20000", "4"]);
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("once/{topic}");
    let direct = get("/s3/endpoint");
    // Small segments, so that partitions have several.
    run(
        dir.path(),
        "backup",
        &backup_yaml(&direct, &prefix, "once", &topic, "  compression: none\n"),
        &[],
        &[],
    )
    .assert_code(EXIT_OK);
    let proxy = FaultProxy::start("none", 1, Duration::from_secs(0));
    let target = format!("{topic}-once");
    let yaml = format!(
        "mode: restore\nbackup_id: once\ntarget:\n  bootstrap_servers: [\"{broker}\"]\n{}\
         restore:\n  topic_mapping:\n    {topic}: {target}\n  restore_id: {target}\n  \
         progress_file: {}\n",
        s3_storage(&proxy.endpoint(), &prefix),
        dir.path().join("once.progress.json").display(),
    );
    let out = run(dir.path(), "restore", &yaml, &[], &["--format", "json"]);
    out.assert_code(EXIT_OK);
    let report = out.json();
    let segments: u64 = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["stored_bytes"].as_u64().unwrap())
        .sum();
    let read = report["stored_bytes_read"].as_u64().unwrap();
    let downloaded = proxy.response_bytes("GET");
    eprintln!(
        "segments {segments} B, read {read} B, downloaded {downloaded} B: {}",
        proxy.stats()
    );
    assert!(
        segments > 2 * 1024 * 1024,
        "a backup worth measuring: {segments} B"
    );
    assert_eq!(read, segments, "the report counts each segment once");
    // The rest is the descriptor and the manifests: small beside the segments.
    assert!(
        downloaded >= segments && downloaded < segments + segments / 20,
        "moto sent {downloaded} B for {segments} B of segments"
    );
}

/// Answers slower than `storage.request_timeout_ms`: the request is abandoned and retried
/// (a PUT whose first attempt was stored finds its own object), and a snapshot backup and its
/// restore both complete, exact.
#[test]
fn answers_slower_than_the_request_timeout() {
    let topic = unique_topic("sf-slow");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "1200", "4"]);
    let source = consumed(&topic);
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("slow/{topic}");
    let proxy = FaultProxy::start("slow", 3, Duration::from_secs(3));
    let tuning = "  request_timeout_ms: 1000\n  retry_timeout_ms: 30000\n";
    let storage = s3_storage_tuned(&proxy.endpoint(), &prefix, tuning);
    let backup = format!(
        "mode: backup\nbackup_id: slow\nsource:\n  bootstrap_servers: [\"{broker}\"]\n  topics:\n    \
         include: [\"{topic}\"]\n{storage}backup:\n  consumer_group_snapshot: false\n"
    );
    let out = run(dir.path(), "backup", &backup, &[], &["--format", "json"]);
    out.assert_code(EXIT_OK);
    assert_eq!(out.json()["outcome"], "complete", "{}", out.all());
    let target = format!("{topic}-slow");
    let restore = format!(
        "mode: restore\nbackup_id: slow\ntarget:\n  bootstrap_servers: [\"{broker}\"]\n{storage}\
         restore:\n  topic_mapping:\n    {topic}: {target}\n  restore_id: {target}\n  \
         progress_file: {}\n",
        dir.path().join("slow.progress.json").display(),
    );
    run(dir.path(), "restore", &restore, &[], &[]).assert_code(EXIT_OK);
    assert_same_records(&consumed(&target), &source);
    eprintln!("slow: {}", proxy.stats());
    assert!(
        proxy.faults("PUT") >= 1 && proxy.faults("GET") >= 1,
        "slow answers on both paths: {}",
        proxy.stats()
    );
}

//! `source.topics` and `backup:`.

use std::time::Duration;

use super::{assert_message, err, ok};
use crate::config::{BackupSettings, Compression, TopicSelection};

fn backup_config(extra: &str) -> String {
    format!(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:9092\"]\n  topics:\n    include: [\"orders\", \"pay*\"]\n    exclude: [\"pay-tmp\"]\n{extra}"
    )
}

#[test]
fn defaults_are_a_zstd_snapshot_of_every_topic() {
    let c = ok(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:9092\"]\n",
        &[],
    );
    let plan = c.backup.expect("backup mode has a plan");
    assert_eq!(plan.topics, TopicSelection::default());
    assert_eq!(plan.settings, BackupSettings::default());
    assert_eq!(plan.settings.compression, Compression::Zstd);
    assert!(!plan.settings.continuous);
}

#[test]
fn every_key_is_read() {
    let c = ok(
        &backup_config(
            "backup:\n  compression: LZ4\n  segment_max_bytes: 2097152\n  segment_max_interval_ms: ${INTERVAL}\n  \
             continuous: \"${CONT}\"\n  max_concurrent_partitions: 4\n  fetch_max_bytes: 8388608\n  \
             connections_per_broker: 5\n  consumer_group_snapshot: false\n",
        ),
        &[("INTERVAL", "60000"), ("CONT", "true")],
    );
    let plan = c.backup.unwrap();
    assert_eq!(plan.topics.include, ["orders", "pay*"]);
    assert_eq!(plan.topics.exclude, ["pay-tmp"]);
    assert!(plan.topics.includes("payments", false));
    assert!(!plan.topics.includes("pay-tmp", false));
    let s = plan.settings;
    assert_eq!(s.compression, Compression::Lz4);
    assert_eq!(s.segment_max_bytes, 2 * 1024 * 1024);
    assert_eq!(s.segment_max_interval, Duration::from_secs(60));
    assert!(s.continuous);
    assert_eq!(s.max_concurrent_partitions, 4);
    assert_eq!(s.fetch_max_bytes, 8 * 1024 * 1024);
    assert_eq!(s.connections_per_broker, 5);
    assert!(!s.consumer_group_snapshot);
}

#[test]
fn unknown_compression_and_keys_are_named() {
    let e = err(&backup_config("backup:\n  compression: gzip\n"), &[]);
    assert_message(&e, &["gzip", "zstd", "lz4", "none"]);
    let e = err(&backup_config("backup:\n  segment_max_byte: 10\n"), &[]);
    assert_message(
        &e,
        &[
            "backup.segment_max_byte",
            "did you mean `segment_max_bytes`",
        ],
    );
}

#[test]
fn out_of_range_values_give_the_range() {
    let e = err(&backup_config("backup:\n  segment_max_bytes: 100\n"), &[]);
    assert_message(
        &e,
        &[
            "backup.segment_max_bytes",
            "100 bytes",
            "1048576 to 1073741824",
        ],
    );
    let e = err(&backup_config("backup:\n  compression_level: 40\n"), &[]);
    assert_message(&e, &["backup.compression_level", "1 (fastest) to 19"]);
    let e = err(
        &backup_config("backup:\n  connections_per_broker: 0\n"),
        &[],
    );
    assert_message(&e, &["backup.connections_per_broker", "1 to 16"]);
    let e = err(
        &backup_config("backup:\n  compression: none\n  compression_level: 3\n"),
        &[],
    );
    assert_message(&e, &["applies to zstd only", "compression is none"]);
}

#[test]
fn snapshot_and_continuous_cannot_both_be_asked_for() {
    let e = err(
        &backup_config("backup:\n  continuous: true\n  stop_at_current_offsets: true\n"),
        &[],
    );
    assert_message(
        &e,
        &[
            "stop_at_current_offsets",
            "continuous",
            "remove one of them",
        ],
    );
    let e = err(
        &backup_config("backup:\n  stop_at_current_offsets: false\n"),
        &[],
    );
    assert_message(&e, &["set continuous: true"]);
    let c = ok(
        &backup_config("backup:\n  stop_at_current_offsets: true\n"),
        &[],
    );
    assert!(!c.backup.unwrap().settings.continuous);
}

#[test]
fn include_offset_headers_is_accepted_with_an_explanation() {
    let c = ok(
        &backup_config("backup:\n  include_offset_headers: true\n"),
        &[],
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("include_offset_headers") && w.contains("original offset")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn bad_patterns_and_empty_includes_are_errors() {
    let e = err(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:9092\"]\n  topics:\n    include: [\"orders/*\"]\n",
        &[],
    );
    assert_message(&e, &["source.topics.include[0]", "`orders/*` contains `/`"]);
    let e = err(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:9092\"]\n  topics:\n    include: []\n",
        &[],
    );
    assert_message(&e, &["source.topics.include", "nothing would be selected"]);
}

#[test]
fn restore_files_reject_backup_only_sections() {
    let e = err(
        "mode: restore\nbackup_id: b\ntarget:\n  bootstrap_servers: [\"k:9092\"]\nbackup:\n  compression: zstd\n",
        &[],
    );
    assert_message(&e, &["applies to mode: backup"]);
    let e = err(
        "mode: restore\nbackup_id: b\ntarget:\n  bootstrap_servers: [\"k:9092\"]\n  topics:\n    include: [\"x\"]\n",
        &[],
    );
    assert_message(&e, &["target.topics", "not used when restoring"]);
    let c = ok(
        "mode: restore\nbackup_id: b\ntarget:\n  bootstrap_servers: [\"k:9092\"]\n",
        &[],
    );
    assert!(c.backup.is_none());
}

fn restore_config(extra: &str) -> String {
    format!("mode: restore\nbackup_id: prod\ntarget:\n  bootstrap_servers: [\"k:9092\"]\n{extra}")
}

#[test]
fn restore_defaults_and_every_key() {
    let c = ok(&restore_config(""), &[]);
    let r = c.restore.expect("restore mode has settings");
    assert!(r.create_topics && !r.append && !r.dry_run);
    assert!(r.consumer_groups.includes("any-group"));
    assert_eq!(r.restore_id, "prod");
    assert_eq!(r.progress, crate::config::ProgressStore::Target);

    let c = ok(
        &restore_config(
            "restore:\n  topics:\n    include: [\"orders*\"]\n  topic_mapping:\n    orders: orders-restored\n  \
             time_window_start: 2026-01-01T00:00:00Z\n  time_window_end: 1767312000000\n  create_topics: false\n  \
             replication_factor: 3\n  repartitioning:\n    partitions: 12\n  dry_run: true\n  append: true\n  \
             consumer_groups:\n    include: [\"app-*\"]\n    exclude: [\"app-test\"]\n  max_in_flight: 3\n  \
             max_bytes_per_second: 10485760\n  restore_id: dr-drill-1\n  progress_file: /var/lib/kb/progress.json\n",
        ),
        &[],
    );
    let r = c.restore.unwrap();
    assert_eq!(r.topic_mapping["orders"], "orders-restored");
    assert_eq!(r.time_window_start, Some(1_767_225_600_000));
    assert_eq!(r.time_window_end, Some(1_767_312_000_000));
    assert_eq!(r.replication_factor, Some(3));
    assert_eq!(r.repartition_to, Some(12));
    assert!(r.dry_run && r.append && !r.create_topics);
    assert!(r.consumer_groups.includes("app-1") && !r.consumer_groups.includes("app-test"));
    assert!(!r.consumer_groups.includes("other"));
    assert_eq!(r.max_in_flight, 3);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("max_in_flight: 3 is accepted for compatibility and ignored")),
        "{:?}",
        c.warnings
    );
    assert_eq!(r.max_bytes_per_second, Some(10 * 1024 * 1024));
    assert_eq!(r.restore_id, "dr-drill-1");
    assert_eq!(
        r.progress,
        crate::config::ProgressStore::File("/var/lib/kb/progress.json".into())
    );
}

#[test]
fn restore_mistakes_are_named() {
    let e = err(
        &restore_config("restore:\n  time_window_start: last tuesday\n"),
        &[],
    );
    assert_message(&e, &["restore.time_window_start", "RFC 3339"]);
    let e = err(
        &restore_config("restore:\n  time_window_start: 2000\n  time_window_end: 1000\n"),
        &[],
    );
    assert_message(&e, &["time_window_end", "not after time_window_start"]);
    let e = err(
        &restore_config("restore:\n  topic_mapping:\n    a: x\n    b: x\n"),
        &[],
    );
    assert_message(&e, &["both `a` and `b` map to `x`"]);
    let e = err(
        &restore_config("restore:\n  topic_mapping:\n    a: \"bad/name\"\n"),
        &[],
    );
    assert_message(
        &e,
        &["restore.topic_mapping.a", "not a valid Kafka topic name"],
    );
    let e = err(&restore_config("restore:\n  dry_runn: true\n"), &[]);
    assert_message(&e, &["restore.dry_runn", "did you mean `dry_run`"]);
    let e = err(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:1\"]\nrestore:\n  dry_run: true\n",
        &[],
    );
    assert_message(&e, &["applies to mode: restore"]);
}

#[test]
fn a_sharded_backup_takes_its_shard_from_the_flag_or_the_indexed_job() {
    use backup_format::Shard;
    let plan = || {
        ok(&backup_config("backup:\n  shards: 3\n"), &[])
            .backup
            .unwrap()
    };
    assert_eq!(plan().settings.shards, 3);
    let s = |i, n| Shard::new(i, n).unwrap();

    assert_eq!(
        plan().resolve_shard(Some(s(1, 3)), Some("2")),
        Ok(Some(s(1, 3)))
    );
    assert_eq!(plan().resolve_shard(None, Some("2")), Ok(Some(s(2, 3))));
    let mut p = plan();
    p.resolve_shard(None, Some(" 0\n")).unwrap();
    assert_eq!(p.shard, Some(s(0, 3)));

    let e = plan().resolve_shard(None, None).unwrap_err();
    assert!(
        e.contains("--shard INDEX/3") && e.contains("JOB_COMPLETION_INDEX"),
        "{e}"
    );
    let e = plan().resolve_shard(None, Some("x")).unwrap_err();
    assert!(e.contains("\"x\"") && e.contains("from 0 to 2"), "{e}");
    let e = plan().resolve_shard(None, Some("3")).unwrap_err();
    assert!(e.contains("out of range"), "{e}");
    let e = plan().resolve_shard(Some(s(0, 4)), None).unwrap_err();
    assert!(e.contains("backup.shards is 3"), "{e}");

    // Unsharded configuration: the flag alone decides, and JOB_COMPLETION_INDEX is not
    // needed (an Indexed Job of one pod sets it too).
    let mut one = ok(&backup_config(""), &[]).backup.unwrap();
    assert_eq!(one.resolve_shard(None, Some("0")), Ok(None));
    assert_eq!(one.resolve_shard(Some(s(2, 5)), None), Ok(Some(s(2, 5))));
    assert_eq!(
        one.resolve_shard(Some(s(0, 1)), None),
        Ok(None),
        "1 of 1 is unsharded"
    );

    let e = err(&backup_config("backup:\n  shards: 0\n"), &[]);
    assert_message(&e, &["backup.shards", "1"]);
    let e = err(&backup_config("backup:\n  shards: 5000\n"), &[]);
    assert_message(&e, &["backup.shards", "1024"]);
}

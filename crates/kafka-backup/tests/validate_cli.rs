//! `kafka-backup validate`, `list` and `describe` on real backups: made by the CLI from data
//! produced with confluent-kafka on the test broker, then damaged on disk (a flipped bit, a
//! truncation, a deletion, a segment of another backup in its place) or read from moto S3
//! with a read-only identity.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// The backup failed an integrity check.
const EXIT_INTEGRITY: i32 = 7;

/// Copies a directory tree (the filesystem store) to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A storage-only configuration: `mode: backup` (as an operator would reuse the backup
/// job's file) or `mode: restore`, whose cluster is never contacted.
fn store_yaml(backup_id: &str, store: &Path) -> String {
    format!(
        "mode: backup\nbackup_id: {backup_id}\nsource:\n  bootstrap_servers: [\"127.0.0.1:1\"]\n\
         storage:\n  backend: filesystem\n  path: {}\n",
        store.display()
    )
}

fn restore_yaml(backup_id: &str, store: &Path) -> String {
    store_yaml(backup_id, store)
        .replace("mode: backup", "mode: restore")
        .replace("source:", "target:")
}

/// Runs `kafka-backup validate` on `backup_id` in a filesystem store.
fn validate(dir: &Path, store: &Path, backup_id: &str, args: &[&str]) -> Run {
    run(dir, "validate", &store_yaml(backup_id, store), &[], args)
}

/// The problems of a JSON validation report on object `key`.
fn problems_on<'a>(report: &'a Value, key: &str) -> Vec<&'a Value> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["object"] == key)
        .collect()
}

/// Backs up `count` bulk records of a new topic in 2 partitions into `store` as `backup_id`;
/// returns the topic.
fn bulk_backup(dir: &Path, store: &Path, backup_id: &str, count: u32) -> String {
    let topic = unique_topic(backup_id);
    fidelity(&["bulk", &plaintext_broker(), &topic, &count.to_string(), "2"]);
    let yaml = fs_backup_yaml(backup_id, &[&topic], store, "");
    run(dir, "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    topic
}

/// A fresh copy of `store` in `dir/name`, checked to validate cleanly before it is damaged,
/// so that whatever validate finds afterwards comes from the damage alone.
fn fresh_copy(dir: &Path, store: &Path, backup_id: &str, name: &str) -> PathBuf {
    let copy = dir.join(name);
    copy_tree(store, &copy);
    validate(dir, &copy, backup_id, &[]).assert_code(EXIT_OK);
    copy
}

/// The object key (relative to the store) of the first segment of `partition`, and its path
/// in `store`.
fn first_segment(store: &Path, backup_id: &str, topic: &str, partition: i32) -> (String, PathBuf) {
    let all = segments(store, backup_id, topic);
    let (_, path) = &all[&partition][0];
    let key = path
        .strip_prefix(store)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    (key, path.clone())
}

/// Runs validate on `store` as text and as JSON; both must exit 7 and name `key`, and the JSON
/// report must hold an error of one of `kinds` on `key`. Returns the JSON report.
#[track_caller]
fn assert_damage_found(
    dir: &Path,
    store: &Path,
    backup_id: &str,
    key: &str,
    kinds: &[&str],
) -> Value {
    let text = validate(dir, store, backup_id, &[]);
    text.assert_code(EXIT_INTEGRITY);
    text.assert_contains("Result       FAILED (");
    let lines: Vec<&str> = text
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("error ") && l.contains(key))
        .collect();
    assert!(
        lines.iter().any(|l| kinds.iter().any(|k| l.contains(k))),
        "an error line of kind {kinds:?} names {key}:\n{}",
        text.all()
    );

    let json = validate(dir, store, backup_id, &["--format", "json"]);
    json.assert_code(EXIT_INTEGRITY);
    let report = json.json();
    assert_eq!(report["ok"], false);
    assert!(report["errors"].as_u64().unwrap() >= 1);
    assert!(
        problems_on(&report, key)
            .iter()
            .any(|p| p["severity"] == "error" && kinds.contains(&p["kind"].as_str().unwrap())),
        "an error of kind {kinds:?} on {key}: {:#}",
        report["problems"]
    );
    report
}

#[test]
fn an_intact_backup_validates_lists_and_describes() {
    let topic = unique_topic("valok");
    let produced = fidelity(&["produce", &plaintext_broker(), &topic, "2"]);
    let produced = produced.as_array().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml("valok", &[&topic], &store, "");
    run(dir.path(), "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    let config = store_yaml("valok", &store);

    let shallow = validate(dir.path(), &store, "valok", &[]);
    shallow.assert_code(EXIT_OK);
    shallow.assert_contains("Result       OK (0 errors, 0 warnings)");
    shallow.assert_contains("Topics       1 (2 partitions)");

    let deep = validate(dir.path(), &store, "valok", &["--deep", "--format", "json"]);
    deep.assert_code(EXIT_OK);
    let report = deep.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["deep"], true);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["topics"], 1);
    assert_eq!(report["partitions"], 2);
    assert!(report["segments"].as_u64().unwrap() >= 2);
    // Batch headers count every record stored: the produced ones (aborted included) and one
    // per transaction marker; deep decoding reads each of them.
    let records = report["records"].as_u64().unwrap();
    let markers = report["control_batches"].as_u64().unwrap();
    assert_eq!(markers, 4, "a commit and an abort marker in each partition");
    assert_eq!(records, produced.len() as u64 + markers);
    assert_eq!(report["records_decoded"], records);
    assert_eq!(report["transactions_committed"], 2);
    assert_eq!(report["transactions_aborted"], 2);
    assert_eq!(report["open_transactions"], 0);
    assert_eq!(report["problems"], serde_json::json!([]));

    // Selecting the topic by pattern validates the same; a pattern matching nothing is refused
    // rather than reported as a clean backup.
    let selected = validate(
        dir.path(),
        &store,
        "valok",
        &["--topic", "valok-*", "--format", "json"],
    );
    selected.assert_code(EXIT_OK);
    assert_eq!(selected.json()["records"], records);
    let none = validate(dir.path(), &store, "valok", &["--topic", "no-such-*"]);
    none.assert_code(EXIT_CONFIG);
    none.assert_contains("no topic of backup `valok` matches --topic no-such-*");

    let list = run(dir.path(), "list", &config, &[], &[]);
    list.assert_code(EXIT_OK);
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with("valok "))
        .unwrap_or_else(|| panic!("no row for the backup:\n{}", list.all()));
    assert!(row.contains("kb-test-plaintext"), "{row}");
    let list = run(dir.path(), "list", &config, &[], &["--format", "json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["backup_id"], "valok");
    assert_eq!(list[0]["runs"], 1);
    assert_eq!(list[0]["segments"], report["segments"]);
    assert_eq!(list[0]["stored_bytes"], report["bytes_read"]);

    // describe takes a restore configuration just as well.
    let described = run(
        dir.path(),
        "describe",
        &restore_yaml("valok", &store),
        &[],
        &["--format", "json"],
    );
    described.assert_code(EXIT_OK);
    let d = described.json();
    assert_eq!(d["backup_id"], "valok");
    assert_eq!(d["totals"]["records"], records);
    assert_eq!(d["runs"][0]["status"], "complete");
    assert_eq!(d["topics"].as_array().unwrap().len(), 1);
    assert_eq!(d["topics"][0]["name"], topic.as_str());
    let lineage = &d["topics"][0]["lineages"][0];
    assert_eq!(lineage["partition_count"], 2);
    let partitions = lineage["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2);
    for p in partitions {
        let n = p["partition"].as_i64().unwrap();
        let mine: Vec<&Value> = produced.iter().filter(|r| r["p"] == n).collect();
        let last = mine.iter().map(|r| r["o"].as_i64().unwrap()).max().unwrap();
        assert_eq!(p["first_offset"], 0);
        assert_eq!(
            p["last_offset"], last,
            "partition {n} ends with the tail record"
        );
        assert_eq!(
            p["records"],
            mine.len() as u64 + 2,
            "partition {n}: records and 2 markers"
        );
    }
    assert_eq!(d["problems"], serde_json::json!([]));
    let text = run(dir.path(), "describe", &config, &[], &[]);
    text.assert_code(EXIT_OK);
    text.assert_contains(&format!("  {topic}\n"));
    text.assert_contains("PARTITION  OFFSETS");

    // A backup id the store does not hold: named, with what the store does hold.
    let missing = validate(dir.path(), &store, "nope", &[]);
    missing.assert_code(EXIT_STORAGE);
    missing.assert_contains("there is no backup `nope`");
    missing.assert_contains("this location holds: valok");
}

#[test]
fn a_flipped_bit_is_found_and_its_object_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let topic = bulk_backup(dir.path(), &store, "flip", 2000);
    let copy = fresh_copy(dir.path(), &store, "flip", "flipped");
    let (key, path) = first_segment(&copy, "flip", &topic, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    let report = assert_damage_found(dir.path(), &copy, "flip", &key, &["hash-mismatch"]);
    // Only the damaged object is in error; the other partition is intact.
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems.iter().all(|p| p["object"] == key.as_str()),
        "{problems:#?}"
    );
    assert!(problems.iter().all(|p| p["partition"] == 1));
    // The original is untouched.
    validate(dir.path(), &store, "flip", &[]).assert_code(EXIT_OK);
}

#[test]
fn a_truncated_segment_is_found_and_its_object_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let topic = bulk_backup(dir.path(), &store, "trunc", 2000);
    let copy = fresh_copy(dir.path(), &store, "trunc", "truncated");
    let (key, path) = first_segment(&copy, "trunc", &topic, 0);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 100)
        .unwrap();

    let report = assert_damage_found(
        dir.path(),
        &copy,
        "trunc",
        &key,
        &["size-mismatch", "truncated"],
    );
    let kinds: Vec<&str> = problems_on(&report, &key)
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"hash-mismatch"), "{kinds:?}");
}

#[test]
fn a_deleted_segment_is_found_and_its_object_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let topic = bulk_backup(dir.path(), &store, "del", 2000);
    let copy = fresh_copy(dir.path(), &store, "del", "deleted");
    let (key, path) = first_segment(&copy, "del", &topic, 1);
    std::fs::remove_file(&path).unwrap();

    let report = assert_damage_found(dir.path(), &copy, "del", &key, &["missing-segment"]);
    let missing: Vec<&Value> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "missing-segment")
        .collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["partition"], 1);
    assert_eq!(missing[0]["offset"], 0);
    // One segment fewer was read than the intact copy holds.
    let intact = validate(dir.path(), &store, "del", &["--format", "json"]);
    assert_eq!(
        report["segments"].as_u64().unwrap() + 1,
        intact.json()["segments"].as_u64().unwrap()
    );
}

#[test]
fn a_segment_of_another_backup_in_its_place_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let topic = bulk_backup(dir.path(), &store, "mine", 2000);
    let other_topic = bulk_backup(dir.path(), &store, "other", 2000);
    let copy = fresh_copy(dir.path(), &store, "mine", "swapped");
    let (key, path) = first_segment(&copy, "mine", &topic, 0);
    let (_, foreign) = first_segment(&copy, "other", &other_topic, 0);
    std::fs::copy(&foreign, &path).unwrap();
    // The other backup in the same store is not affected.
    validate(dir.path(), &copy, "other", &[]).assert_code(EXIT_OK);

    let report = assert_damage_found(
        dir.path(),
        &copy,
        "mine",
        &key,
        &["identity-mismatch", "hash-mismatch"],
    );
    // The segment is whole and well-formed, so its header is what gives it away.
    let identity = problems_on(&report, &key)
        .into_iter()
        .find(|p| p["kind"] == "identity-mismatch")
        .unwrap_or_else(|| panic!("an identity mismatch on {key}: {:#}", report["problems"]));
    assert!(
        identity["message"].as_str().unwrap().contains("other"),
        "names where the segment comes from: {identity}"
    );
}

fn s3_yaml(backup_id: &str, topic: &str, prefix: &str) -> String {
    format!(
        "mode: backup\nbackup_id: {backup_id}\nsource:\n  bootstrap_servers: [\"{}\"]\n  topics:\n    include: [\"{topic}\"]\n{}",
        plaintext_broker(),
        s3_iam_storage(prefix)
    )
}

#[test]
fn a_read_only_s3_identity_validates_and_describes() {
    let topic = unique_topic("vals3");
    fidelity(&["bulk", &plaintext_broker(), &topic, "500", "2"]);
    let prefix = unique_topic("val");
    let dir = tempfile::tempdir().unwrap();
    let yaml = s3_yaml("vals3", &topic, &prefix);
    run_as_s3_user(dir.path(), "backup", &yaml, "writer", &[]).assert_code(EXIT_OK);

    let report = run_as_s3_user(
        dir.path(),
        "validate",
        &yaml,
        "reader",
        &["--deep", "--format", "json"],
    );
    report.assert_code(EXIT_OK);
    let report = report.json();
    assert_eq!(report["ok"], true);
    assert_eq!(
        report["location"],
        format!("s3://{}/{prefix}/vals3", get("/s3_iam/bucket"))
    );
    assert_eq!(report["records"], 500);
    assert_eq!(report["records_decoded"], 500);
    assert_eq!(report["partitions"], 2);
    assert_eq!(report["problems"], serde_json::json!([]));

    let described = run_as_s3_user(
        dir.path(),
        "describe",
        &yaml,
        "reader",
        &["--format", "json"],
    );
    described.assert_code(EXIT_OK);
    assert_eq!(described.json()["totals"]["records"], 500);
    let list = run_as_s3_user(dir.path(), "list", &yaml, "reader", &[]);
    list.assert_code(EXIT_OK);
    assert!(
        list.stdout.lines().any(|l| l.starts_with("vals3 ")),
        "{}",
        list.all()
    );

    // The writer may list but not read: a storage failure that names the missing permission.
    let denied = run_as_s3_user(dir.path(), "validate", &yaml, "writer", &[]);
    denied.assert_code(EXIT_STORAGE);
    denied.assert_contains("s3:GetObject");
}

/// Runs `kafka-backup <args>` from a shell whose umask lets everyone read and write what it
/// creates: the tool's own files must come out private all the same.
fn run_with_open_umask(args: &[&str]) -> Run {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(binary())
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every file and directory under `root` with a mode open to group or others.
fn shared_entries(root: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut open = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                open.push(format!("{} {mode:03o}", path.display()));
            }
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    open
}

/// A store directory someone opened to everyone is warned about; everything the backup writes
/// into it, and the restore's progress file, is private whatever the umask; the log carries no
/// colour codes when stderr is not a terminal.
#[test]
fn a_filesystem_store_is_written_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
    let topic = unique_topic("private");
    fidelity(&["bulk", &plaintext_broker(), &topic, "200", "2"]);
    let config = dir.path().join("backup.yaml");
    std::fs::write(&config, fs_backup_yaml("private", &[&topic], &store, "")).unwrap();
    let run = run_with_open_umask(&["backup", "--config", config.to_str().unwrap()]);
    run.assert_code(EXIT_OK);
    run.assert_contains("is open to other users (mode 755)");
    run.assert_contains(&format!("chmod 700 {}", store.display()));
    assert!(
        !run.stderr.contains('\u{1b}'),
        "colour codes in a pipe:\n{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("over PLAINTEXT").count(),
        1,
        "{}",
        run.stderr
    );
    let open = shared_entries(&store);
    assert!(open.is_empty(), "written open to others: {open:#?}");

    let progress = dir.path().join("progress.json");
    let restore = format!(
        "{}restore:\n  topic_mapping:\n    {topic}: {topic}-private\n  progress_file: {}\n",
        restore_yaml("private", &store).replace("127.0.0.1:1", &plaintext_broker()),
        progress.display()
    );
    let config = dir.path().join("restore.yaml");
    std::fs::write(&config, restore).unwrap();
    run_with_open_umask(&["restore", "--config", config.to_str().unwrap()]).assert_code(EXIT_OK);
    let mode = std::fs::metadata(&progress).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "progress file mode");
}

/// A directory of the store replaced by a symbolic link (to a copy of itself, so nothing else
/// would be wrong) is refused by validate and restore, naming the link.
#[test]
fn a_symbolic_link_inside_the_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let topic = bulk_backup(dir.path(), &store, "linked", 100);
    let (_, segment) = first_segment(&store, "linked", &topic, 0);
    let partition_dir = segment.parent().unwrap().to_path_buf();
    let elsewhere = dir.path().join("elsewhere");
    copy_tree(&partition_dir, &elsewhere);
    std::fs::remove_dir_all(&partition_dir).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &partition_dir).unwrap();

    let checked = validate(dir.path(), &store, "linked", &[]);
    assert_ne!(checked.code, EXIT_OK, "{}", checked.all());
    checked.assert_contains("is a symbolic link inside the storage directory");
    checked.assert_contains(&partition_dir.display().to_string());

    let restore = restore_yaml("linked", &store).replace("127.0.0.1:1", &plaintext_broker());
    let restored = run(dir.path(), "restore", &restore, &[], &[]);
    assert_ne!(restored.code, EXIT_OK, "{}", restored.all());
    restored.assert_contains("is a symbolic link inside the storage directory");
}

/// A consumer group whose id carries terminal control sequences (Kafka allows any string) is
/// backed up as it is, and shown escaped by describe and offsets show: it cannot clear the
/// screen or recolour what the operator reads.
#[test]
fn names_from_a_broker_cannot_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let topic = unique_topic("ansi");
    fidelity(&["bulk", &plaintext_broker(), &topic, "20", "1"]);
    let group = format!("{topic}-\u{1b}[2J\u{1b}[31mevil\rgroup");
    test_support::python(
        "import sys\nfrom confluent_kafka import Consumer, TopicPartition\n\
         c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': sys.argv[3], \
         'enable.auto.commit': False})\n\
         c.commit(offsets=[TopicPartition(sys.argv[2], 0, 5)], asynchronous=False)\n\
         c.close()\n",
        &[&plaintext_broker(), &topic, &group],
    );
    let yaml = fs_backup_yaml("ansi", &[&topic], &store, "");
    run(dir.path(), "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    let described = validate_describe(dir.path(), &store);
    assert!(
        !described.stdout.contains('\u{1b}') && !described.stdout.contains('\r'),
        "raw control characters reached the terminal:\n{}",
        described.stdout.escape_debug()
    );
    described.assert_contains("\\u{1b}[2J\\u{1b}[31mevil\\rgroup");
}

fn validate_describe(dir: &Path, store: &Path) -> Run {
    run(dir, "describe", &store_yaml("ansi", store), &[], &[])
}

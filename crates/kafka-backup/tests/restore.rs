//! `kafka-backup restore` and `offsets show` against the real broker: data written with
//! confluent-kafka is backed up, restored under a new name, and read back with confluent-kafka;
//! consumer groups resume at the same record; time windows, kill -9, corruption, read-only
//! storage identities and non-empty targets.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::protection::first_records_of_group;
use common::*;
use serde_json::Value;

const EXIT_INTEGRITY: i32 = 7;

/// A restore configuration for the PLAINTEXT broker from a filesystem store; `restore` is the
/// body of the `restore:` section, one key per line.
fn fs_restore_yaml(backup_id: &str, store: &Path, restore: &str) -> String {
    let mut yaml = format!(
        "mode: restore\nbackup_id: {backup_id}\ntarget:\n  bootstrap_servers: [\"{}\"]\nstorage:\n  backend: filesystem\n  path: {}\n",
        plaintext_broker(),
        store.display()
    );
    push_section(&mut yaml, "restore", restore);
    yaml
}

fn push_section(yaml: &mut String, name: &str, body: &str) {
    if body.is_empty() {
        return;
    }
    yaml.push_str(name);
    yaml.push_str(":\n");
    for line in body.lines() {
        yaml.push_str("  ");
        yaml.push_str(line);
        yaml.push('\n');
    }
}

/// Backs `topic` up into `store` as `backup_id` and checks the run completed.
fn back_up(dir: &Path, backup_id: &str, topics: &[&str], store: &Path) {
    let yaml = fs_backup_yaml(backup_id, topics, store, "segment_max_bytes: 1048576");
    run(dir, "backup", &yaml, &[], &["--format", "json"]).assert_code(EXIT_OK);
}

/// Runs a restore that must succeed; returns its JSON report.
fn restored_ok(dir: &Path, yaml: &str) -> Value {
    let run = run(dir, "restore", yaml, &[], &["--format", "json"]);
    run.assert_code(EXIT_OK);
    run.json()
}

/// What a read_committed confluent-kafka consumer sees in `topic`, without offsets (a restore
/// gives back the records, in order per partition; their offsets in the target differ
/// wherever the source had transaction markers or aborted records).
fn consumed_without_offsets(topic: &str) -> Vec<Rec> {
    let consumed = fidelity(&["consume", &plaintext_broker(), topic]);
    let mut records = committed(&consumed);
    for r in &mut records {
        r.offset = 0;
    }
    records
}

fn without_offsets(mut records: Vec<Rec>) -> Vec<Rec> {
    for r in &mut records {
        r.offset = 0;
    }
    records
}

fn commit_group(topic: &str, group: &str, offsets: &[(i32, i64)]) {
    let list: Vec<String> = offsets
        .iter()
        .map(|(p, o)| format!("TopicPartition(sys.argv[2], {p}, {o})"))
        .collect();
    python(
        &format!(
            "import sys\nfrom confluent_kafka import Consumer, TopicPartition\n\
             c = Consumer({{'bootstrap.servers': sys.argv[1], 'group.id': sys.argv[3], 'enable.auto.commit': False}})\n\
             c.commit(offsets=[{}], asynchronous=False)\n\
             c.close()\n",
            list.join(", ")
        ),
        &[&plaintext_broker(), topic, group],
    );
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_restore_gives_back_every_committed_record_and_moves_consumer_groups() {
    let topic = unique_topic("rfid");
    let restored = format!("{topic}-restored");
    let produced = fidelity(&["produce", &plaintext_broker(), &topic]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    // A group positioned on partition 0's "tail" record (after both transactions, so its
    // offset differs in the target, where markers and aborted records are not written) and
    // on partition 1's third committed-transaction record.
    let at = |p: i64, key: &str| -> i64 {
        produced
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["p"] == p && r["k"] == hex(key).as_str())
            .unwrap_or_else(|| panic!("{key} in partition {p}"))["o"]
            .as_i64()
            .unwrap()
    };
    let group = format!("{topic}-app");
    commit_group(
        &topic,
        &group,
        &[(0, at(0, "tail")), (1, at(1, "committed-2"))],
    );
    back_up(dir.path(), "rfid", &[&topic], &store);

    let yaml = fs_restore_yaml(
        "rfid",
        &store,
        &format!(
            "topic_mapping:\n  {topic}: {restored}\nconsumer_groups:\n  include: [\"{group}\"]"
        ),
    );
    let report = restored_ok(dir.path(), &yaml);
    assert_eq!(report["topics"][0]["topic"], restored.as_str());
    assert_eq!(report["topics"][0]["action"], "created");
    assert_eq!(report["topics"][0]["partitions"], 3);
    assert_eq!(report["aborted_records_skipped"], 10);
    assert_eq!(
        report["batches_reencoded"], 0,
        "stored batches are sent as they are"
    );

    // Every committed record, in order per partition, exactly as librdkafka produced it:
    // null vs empty keys and values, headers with duplicates and nulls, binary data, the
    // record over 1 MiB, timestamps 40 days apart in one batch, every codec.
    let want = without_offsets(committed(&produced));
    let got = consumed_without_offsets(&restored);
    assert_same_records(&got, &want);
    assert!(
        got.iter()
            .all(|r| r.key.as_deref() != Some(&hex("aborted-0")))
    );

    // The group resumes at the same records.
    let outcome = report["consumer_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group_id"] == group.as_str())
        .expect("the group is reported");
    assert_eq!(outcome["status"], "committed", "{outcome}");
    let first = first_records_of_group(&restored, &group, &[0, 1]);
    assert_eq!(first["0"]["key"], hex("tail"), "{first}");
    assert_eq!(first["1"]["key"], hex("committed-2"), "{first}");
    assert!(
        first["0"]["offset"].as_i64().unwrap() < at(0, "tail"),
        "markers and aborted records are not in the target, so the offset moved: {first}"
    );

    // Run again with the same configuration: nothing more is written.
    let again = common::run(dir.path(), "restore", &yaml, &[], &["--format", "json"]);
    again.assert_code(EXIT_OK);
    assert_eq!(again.json()["records_written"], 0);
    assert_same_records(&consumed_without_offsets(&restored), &want);

    // offsets show prints the same translation.
    let shown = common::run(
        dir.path(),
        "offsets show",
        &yaml,
        &[],
        &["--format", "json"],
    );
    shown.assert_code(EXIT_OK);
    let shown = shown.json();
    let g = shown["consumer_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group_id"] == group.as_str())
        .unwrap();
    let p0 = g["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["partition"] == 0)
        .unwrap();
    assert_eq!(p0["source_offset"], at(0, "tail"));
    assert_eq!(p0["target_offset"], first["0"]["offset"]);
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let topic = unique_topic("rdry");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "300", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    back_up(dir.path(), "rdry", &[&topic], &store);
    let restored = format!("{topic}-new");
    let yaml = fs_restore_yaml(
        "rdry",
        &store,
        &format!("topic_mapping:\n  {topic}: {restored}"),
    );
    let plan = run(dir.path(), "restore", &yaml, &[], &["--dry-run"]);
    plan.assert_code(EXIT_OK);
    plan.assert_contains("dry run");
    plan.assert_contains(&format!("{topic} -> {restored} (create, 2 partitions)"));
    plan.assert_contains("300 in the restore");
    let json = run(
        dir.path(),
        "restore",
        &yaml,
        &[],
        &["--dry-run", "--format", "json"],
    )
    .json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["records_written"], 0);
    let planned: u64 = json["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["records"].as_u64().unwrap())
        .sum();
    assert_eq!(planned, 300);
    // The target topic was not created.
    assert!(!topic_exists(&broker, &restored));
}

#[test]
fn only_records_inside_the_time_window_are_restored() {
    let topic = unique_topic("rpitr");
    let broker = plaintext_broker();
    // 100 records one second apart in batches of 10 (linger), so the window's edges fall
    // inside batches.
    let base: i64 = 1_750_000_000_000;
    python(
        "import sys\nfrom confluent_kafka import Producer\nfrom confluent_kafka.admin import AdminClient, NewTopic\n\
         a = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
         for f in a.create_topics([NewTopic(sys.argv[2], 1, 1)]).values(): f.result()\n\
         p = Producer({'bootstrap.servers': sys.argv[1], 'linger.ms': 1000, 'batch.num.messages': 10, 'compression.type': 'zstd'})\n\
         for i in range(100):\n\
         \x20   p.produce(sys.argv[2], key=str(i).encode(), value=b'v', partition=0, timestamp=int(sys.argv[3]) + i * 1000)\n\
         p.flush()\n",
        &[&broker, &topic, &base.to_string()],
    );
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    back_up(dir.path(), "rpitr", &[&topic], &store);
    let restored = format!("{topic}-window");
    let start = base + 25_000;
    let end = base + 62_000;
    let yaml = fs_restore_yaml(
        "rpitr",
        &store,
        &format!(
            "topic_mapping:\n  {topic}: {restored}\ntime_window_start: {start}\ntime_window_end: {end}"
        ),
    );
    let report = restored_ok(dir.path(), &yaml);
    assert_eq!(report["records_written"], 37);
    assert_eq!(report["window_records_skipped"], 63);
    let got = consumed_without_offsets(&restored);
    let keys: Vec<String> = got.iter().map(|r| r.key.clone().unwrap()).collect();
    let want: Vec<String> = (25..62).map(|i: i32| hex(&i.to_string())).collect();
    assert_eq!(keys, want);
    assert!(
        got.iter()
            .all(|r| r.timestamp >= start && r.timestamp < end)
    );
}

#[test]
fn repartitioning_places_keyed_records_as_the_java_partitioner_does() {
    let topic = unique_topic("rrepart");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "500", "3"]);
    // A record without a key stays with its source partition modulo the new count.
    python(
        "import sys\nfrom confluent_kafka import Producer\n\
         p = Producer({'bootstrap.servers': sys.argv[1]})\n\
         p.produce(sys.argv[2], value=b'no key', partition=2)\n\
         p.flush()\n",
        &[&broker, &topic],
    );
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    back_up(dir.path(), "rrepart", &[&topic], &store);
    let restored = format!("{topic}-x5");
    let yaml = fs_restore_yaml(
        "rrepart",
        &store,
        &format!("topic_mapping:\n  {topic}: {restored}\nrepartitioning:\n  partitions: 5"),
    );
    let report = restored_ok(dir.path(), &yaml);
    assert_eq!(report["topics"][0]["partitions"], 5);
    assert_eq!(report["topics"][0]["source_partitions"], 3);
    assert_eq!(report["records_written"], 501);

    // The reference: librdkafka's murmur2 partitioner (the Java client's default) on the same
    // keys and five partitions.
    let reference = python(
        "import sys, json\nfrom confluent_kafka import Producer\n\
         placed = {}\n\
         def report(err, msg):\n\
         \x20   placed[msg.key().decode()] = msg.partition()\n\
         from confluent_kafka.admin import AdminClient, NewTopic\n\
         a = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
         for f in a.create_topics([NewTopic(sys.argv[2], 5, 1)]).values(): f.result()\n\
         p = Producer({'bootstrap.servers': sys.argv[1], 'partitioner': 'murmur2'})\n\
         for i in range(500):\n\
         \x20   p.produce(sys.argv[2], key=str(i).encode(), value=b'r', on_delivery=report)\n\
         p.flush()\n\
         print(json.dumps(placed))\n",
        &[&broker, &format!("{topic}-ref")],
    );
    let reference: Value = serde_json::from_str(reference.trim()).unwrap();
    let got = consumed_without_offsets(&restored);
    assert_eq!(got.len(), 501);
    for r in &got {
        match &r.key {
            Some(k) => {
                let key = String::from_utf8(
                    (0..k.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&k[i..i + 2], 16).unwrap())
                        .collect(),
                )
                .unwrap();
                assert_eq!(
                    i64::from(r.partition),
                    reference[&key].as_i64().unwrap(),
                    "key {key}"
                );
            }
            None => assert_eq!(r.partition, 2, "2 % 5"),
        }
    }
    // Per key, order is kept: keys of one source partition ascend in each target partition.
    for p in 0..5 {
        let keys: Vec<i64> = got
            .iter()
            .filter(|r| r.partition == p && r.key.is_some())
            .map(|r| {
                let k = r.key.as_ref().unwrap();
                let s: String = (0..k.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&k[i..i + 2], 16).unwrap() as char)
                    .collect();
                s.parse().unwrap()
            })
            .collect();
        for source in 0..3 {
            let of_source: Vec<i64> = keys.iter().copied().filter(|k| k % 3 == source).collect();
            assert!(of_source.windows(2).all(|w| w[0] < w[1]), "{of_source:?}");
        }
    }
}

#[test]
fn a_restore_killed_mid_run_and_run_again_writes_every_record_once() {
    let topic = unique_topic("rkill");
    let broker = plaintext_broker();
    let count = 40_000;
    fidelity(&["bulk", &broker, &topic, &count.to_string(), "3"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    back_up(dir.path(), "rkill", &[&topic], &store);
    let restored = format!("{topic}-again");
    // Slowed down so that the kill lands mid-run (about 9 MB at 2 MB/s).
    let yaml = fs_restore_yaml(
        "rkill",
        &store,
        &format!("topic_mapping:\n  {topic}: {restored}\nmax_bytes_per_second: 2000000"),
    );
    let config = dir.path().join("kill.yaml");
    std::fs::write(&config, &yaml).unwrap();
    for delay in [2500, 1500] {
        let mut child = Command::new(binary())
            .args(["restore", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let partial = python(
        "import sys\nfrom confluent_kafka import Consumer, TopicPartition\n\
         c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': 'x'})\n\
         print(sum(c.get_watermark_offsets(TopicPartition(sys.argv[2], p), timeout=10)[1] for p in range(3)))\n",
        &[&broker, &restored],
    );
    let partial: u64 = partial.trim().parse().unwrap();
    assert!(
        partial > 0 && partial < count,
        "the kills must land mid-run ({partial} of {count} written)"
    );

    let started = Instant::now();
    let finish = run(
        dir.path(),
        "restore",
        &yaml.replace("max_bytes_per_second: 2000000", ""),
        &[],
        &["--format", "json"],
    );
    finish.assert_code(EXIT_OK);
    let report = finish.json();
    let already: u64 = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["already_restored"].as_u64().unwrap())
        .sum();
    assert_eq!(already, partial, "the re-run skips exactly what is there");
    assert_eq!(report["records_written"].as_u64().unwrap(), count - partial);
    let got = consumed_without_offsets(&restored);
    let mut keys: Vec<&str> = got.iter().map(|r| r.key.as_deref().unwrap()).collect();
    keys.sort();
    let before = keys.len();
    keys.dedup();
    assert_eq!(before, keys.len(), "no record twice");
    assert_eq!(
        keys.len() as u64,
        count,
        "every record ({:?})",
        started.elapsed()
    );
}

#[test]
fn a_corrupt_backup_is_refused_and_force_restores_the_rest() {
    let topic = unique_topic("rcorrupt");
    let broker = plaintext_broker();
    // Two backup runs, so that each partition has two segments.
    let produce = |from: i32| {
        python(
            "import sys, os\nfrom confluent_kafka import Producer\nfrom confluent_kafka.admin import AdminClient, NewTopic\n\
             a = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
             if sys.argv[3] == '0':\n\
             \x20   for f in a.create_topics([NewTopic(sys.argv[2], 2, 1)]).values(): f.result()\n\
             p = Producer({'bootstrap.servers': sys.argv[1], 'linger.ms': 20})\n\
             for i in range(int(sys.argv[3]), int(sys.argv[3]) + 1000):\n\
             \x20   p.produce(sys.argv[2], key=str(i).encode(), value=os.urandom(1024), partition=i % 2)\n\
             \x20   p.poll(0)\n\
             p.flush()\n",
            &[&broker, &topic, &from.to_string()],
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml("rc", &[&topic], &store, "");
    produce(0);
    run(dir.path(), "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    produce(1000);
    run(dir.path(), "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    let segs = segments(&store, "rc", &topic);
    assert_eq!(segs[&0].len(), 2, "two segments");
    let victim = &segs[&0][0].1;
    let victim_key = victim
        .strip_prefix(&store)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let restored = format!("{topic}-r");
    let restore_from = |store: &Path| {
        fs_restore_yaml(
            "rc",
            store,
            &format!("topic_mapping:\n  {topic}: {restored}"),
        )
    };

    // Truncated, missing, and replaced by a segment of another backup: each on a copy of the
    // store, and each refused, naming the object.
    let other = dir.path().join("other");
    let other_yaml = fs_backup_yaml("other", &[&topic], &other, "");
    run(dir.path(), "backup", &other_yaml, &[], &[]).assert_code(EXIT_OK);
    let foreign = segments(&other, "other", &topic)[&0][0].1.clone();
    for damage in ["truncated", "missing", "foreign"] {
        let copy = dir.path().join(damage);
        copy_store(&store, &copy);
        let path = copy.join(&victim_key);
        match damage {
            "truncated" => {
                let b = std::fs::read(&path).unwrap();
                std::fs::write(&path, &b[..b.len() / 3]).unwrap();
            }
            "missing" => std::fs::remove_file(&path).unwrap(),
            _ => {
                std::fs::copy(&foreign, &path).unwrap();
            }
        }
        let refused = run(dir.path(), "restore", &restore_from(&copy), &[], &[]);
        refused.assert_code(EXIT_INTEGRITY);
        refused.assert_contains(&victim_key);
    }

    // A flipped bit, in the store itself.
    let mut bytes = std::fs::read(victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(victim, &bytes).unwrap();

    let yaml = restore_from(&store);
    let refused = run(dir.path(), "restore", &yaml, &[], &[]);
    refused.assert_code(EXIT_INTEGRITY);
    refused.assert_contains(&victim_key);
    refused.assert_contains("--force");
    // Each segment is checked whole before any of its batches is produced: the bad one is
    // the first of partition 0, so partition 0 holds nothing, whatever partition 1 got.
    if topic_exists(&broker, &restored) {
        let partial = consumed_without_offsets(&restored);
        assert!(
            partial.iter().all(|r| r.partition == 1),
            "a record of the bad segment's partition reached Kafka"
        );
    }

    let forced = run(
        dir.path(),
        "restore",
        &yaml,
        &[],
        &["--force", "--format", "json"],
    );
    forced.assert_code(EXIT_OK);
    let report = forced.json();
    assert!(
        report["problems_ignored"].to_string().contains(&victim_key),
        "{report}"
    );
    let lost = segs[&0][0].0.last_offset - segs[&0][0].0.start_offset + 1;
    let got = consumed_without_offsets(&restored);
    assert_eq!(lost, 500);
    assert_eq!(
        got.len() as i64,
        2000 - lost,
        "everything but the bad segment"
    );
}

#[test]
fn a_non_empty_target_partition_is_refused_unless_appending() {
    let topic = unique_topic("rfull");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "100", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    back_up(dir.path(), "rfull", &[&topic], &store);
    // The target already holds 100 records (the source topic itself).
    let yaml = fs_restore_yaml("rfull", &store, "");
    let refused = run(dir.path(), "restore", &yaml, &[], &[]);
    refused.assert_code(EXIT_CONFIG);
    refused.assert_contains("already holds 100 records");
    refused.assert_contains("restore.append: true");
    let appended = run(
        dir.path(),
        "restore",
        &fs_restore_yaml(
            "rfull",
            &store,
            "append: true\nconsumer_groups:\n  enabled: false",
        ),
        &[],
        &["--format", "json"],
    );
    appended.assert_code(EXIT_OK);
    let report = appended.json();
    assert_eq!(report["partitions"][0]["target_start"], 100);
    assert_eq!(report["partitions"][0]["target_end"], 200);
    let got = consumed_without_offsets(&topic);
    assert_eq!(got.len(), 200);
    assert_eq!(got[..100], got[100..], "the same records again, in order");
}

/// Copies a filesystem store, to damage the copy.
fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_store(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn s3_yaml(mode_and_cluster: &str, backup_id: &str, prefix: &str, rest: &str) -> String {
    format!(
        "{mode_and_cluster}backup_id: {backup_id}\n{}{rest}",
        s3_iam_storage(prefix)
    )
}

#[test]
fn an_s3_identity_that_may_only_read_and_list_restores() {
    let topic = unique_topic("rs3");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "400", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("restore-{topic}");
    let backup = s3_yaml(
        &format!(
            "mode: backup\nsource:\n  bootstrap_servers: [\"{broker}\"]\n  topics:\n    include: [\"{topic}\"]\n"
        ),
        "rs3",
        &prefix,
        "",
    );
    run_as_s3_user(dir.path(), "backup", &backup, "writer", &[]).assert_code(EXIT_OK);

    // Progress in a local file: the reader may not write to the bucket, and this restore
    // does not use a progress group in the target either.
    let restored = format!("{topic}-from-s3");
    let progress = dir.path().join("progress.json");
    let restore = s3_yaml(
        &format!("mode: restore\ntarget:\n  bootstrap_servers: [\"{broker}\"]\n"),
        "rs3",
        &prefix,
        &format!(
            "restore:\n  topic_mapping:\n    {topic}: {restored}\n  restore_id: {topic}-drill\n  progress_file: {}\n",
            progress.display()
        ),
    );
    // The writer identity cannot read the backup: a clear storage error.
    let denied = run_as_s3_user(dir.path(), "restore", &restore, "writer", &[]);
    denied.assert_code(EXIT_STORAGE);
    denied.assert_contains("s3:GetObject");

    let run = run_as_s3_user(
        dir.path(),
        "restore",
        &restore,
        "reader",
        &["--format", "json"],
    );
    run.assert_code(EXIT_OK);
    assert_eq!(run.json()["records_written"], 400);
    assert_eq!(consumed_without_offsets(&restored).len(), 400);
    let file: Value = serde_json::from_slice(&std::fs::read(&progress).unwrap()).unwrap();
    assert_eq!(file["restore_id"], format!("{topic}-drill").as_str());
    assert_eq!(file["partitions"].as_array().unwrap().len(), 2);
    let groups = python(
        "import sys\nfrom confluent_kafka.admin import AdminClient\n\
         r = AdminClient({'bootstrap.servers': sys.argv[1]}).list_consumer_groups().result()\n\
         print([g.group_id for g in r.valid if sys.argv[2] in g.group_id])\n",
        &[&broker, &topic],
    );
    assert!(
        !groups.contains("kafka-backup.restore"),
        "no progress group: {groups}"
    );
}

#[test]
fn a_group_with_active_members_in_the_target_is_reported_not_moved() {
    let topic = unique_topic("ractive");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "100", "1"]);
    let group = format!("{topic}-live");
    commit_group(&topic, &group, &[(0, 40)]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    back_up(dir.path(), "ractive", &[&topic], &store);
    let restored = format!("{topic}-copy");
    // The target topic exists (empty) and a member of the group is consuming it.
    python(
        "import sys\nfrom confluent_kafka.admin import AdminClient, NewTopic\n\
         a = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
         for f in a.create_topics([NewTopic(sys.argv[2], 1, 1)]).values(): f.result()\n",
        &[&broker, &restored],
    );
    let mut member = Command::new(get("/venv_python"))
        .arg("-c")
        .arg(
            "import sys, time\nfrom confluent_kafka import Consumer\n\
             c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': sys.argv[3], 'session.timeout.ms': 30000})\n\
             c.subscribe([sys.argv[2]])\n\
             end = time.time() + 60\n\
             while time.time() < end:\n\
             \x20   c.poll(0.5)\n\
             \x20   if c.assignment(): print('joined', flush=True)\n",
        )
        .args([&broker, &restored, &group])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(member.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "joined");

    let yaml = fs_restore_yaml(
        "ractive",
        &store,
        &format!("topic_mapping:\n  {topic}: {restored}"),
    );
    let run = run(dir.path(), "restore", &yaml, &[], &["--format", "json"]);
    member.kill().unwrap();
    member.wait().unwrap();
    run.assert_code(EXIT_OK);
    let report = run.json();
    let outcome = report["consumer_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group_id"] == group.as_str())
        .expect("the group is reported");
    assert!(
        outcome["status"]
            .as_str()
            .unwrap()
            .starts_with("skipped: the group has 1 active member"),
        "{outcome}"
    );
    assert_eq!(outcome["offsets"][0]["target_offset"], 40);
}

#[test]
fn no_secret_reaches_the_output_of_backup_restore_or_validate_at_trace_level() {
    let topic = unique_topic("rsecret");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "200", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("secret-{topic}");
    let trace = ["--log-level", "trace", "--format", "json"];
    let writer_secret = get("/s3_iam/users/writer/secret_access_key");
    let reader_secret = get("/s3_iam/users/reader/secret_access_key");
    let password = get("/scram/sha512/password");

    let backup = s3_yaml(
        &format!(
            "mode: backup\nsource:\n  bootstrap_servers: [\"{broker}\"]\n  topics:\n    include: [\"{topic}\"]\n"
        ),
        "rsecret",
        &prefix,
        "",
    );
    let run = run_as_s3_user(dir.path(), "backup", &backup, "writer", &trace);
    run.assert_code(EXIT_OK);
    assert!(!run.all().contains(&writer_secret), "backup output");

    // Into the SASL_SSL broker (SCRAM-SHA-512), from S3 with the reader's secret key.
    let restore = s3_yaml(
        &format!(
            "mode: restore\ntarget:\n  bootstrap_servers: [\"{}\"]\n  security:\n    security_protocol: SASL_SSL\n    \
             sasl_mechanism: SCRAM-SHA-512\n    sasl_username: {}\n    sasl_password: ${{KB_PASSWORD}}\n    \
             ssl_ca_location: {}\n",
            get("/brokers/sasl_ssl"),
            get("/scram/sha512/username"),
            get("/tls/ca")
        ),
        "rsecret",
        &prefix,
        "",
    );
    let env = [
        ("KB_ACCESS_KEY", get("/s3_iam/users/reader/access_key_id")),
        ("KB_SECRET_KEY", reader_secret.clone()),
        ("KB_PASSWORD", password.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for command in ["restore", "offsets show", "validate"] {
        let run = common::run(dir.path(), command, &restore, &env, &trace);
        run.assert_code(EXIT_OK);
        let all = run.all();
        assert!(
            !all.contains(&reader_secret),
            "{command}: storage secret in the output"
        );
        assert!(
            !all.contains(&password),
            "{command}: SASL password in the output"
        );
        if command == "restore" {
            assert_eq!(run.json()["records_written"], 200);
        }
    }
}

#[test]
fn a_progress_file_that_is_not_this_restores_is_refused_before_anything_is_written() {
    let topic = unique_topic("rprog");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "20", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    back_up(dir.path(), "rprog", &[&topic], &store);
    let restored = format!("{topic}-p");
    let progress = dir.path().join("progress.json");
    let yaml = fs_restore_yaml(
        "rprog",
        &store,
        &format!(
            "topic_mapping:\n  {topic}: {restored}\nrestore_id: mine\nprogress_file: {}",
            progress.display()
        ),
    );
    // The target topic must exist for the progress store to be read.
    python(
        "import sys\nfrom confluent_kafka.admin import AdminClient, NewTopic\n\
         a = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
         for f in a.create_topics([NewTopic(sys.argv[2], 1, 1)]).values(): f.result()\n",
        &[&broker, &restored],
    );
    let cases = [
        ("not json at all".to_owned(), "it is not a progress file"),
        (
            r#"{"format": 1, "restore_id": "someone-else", "partitions": []}"#.to_owned(),
            "it belongs to restore `someone-else`",
        ),
    ];
    for (content, why) in cases {
        std::fs::write(&progress, content).unwrap();
        let refused = run(dir.path(), "restore", &yaml, &[], &[]);
        refused.assert_code(EXIT_CONFIG);
        refused.assert_contains(why);
        refused.assert_contains("Point restore.progress_file at this restore's own file");
    }
    assert!(
        consumed_without_offsets(&restored).is_empty(),
        "nothing written"
    );
}

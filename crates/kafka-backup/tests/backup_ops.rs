//! How backups run in operation: continuous mode following new records and topics and
//! stopping cleanly on SIGTERM, snapshots while producers keep writing, write-only S3
//! credentials, storage failures, and a broker restart in the middle of a run.
// The write-only identity's tests try whole-object reads on purpose.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use backup_core::storage::{Storage, StorageError};
use common::*;

const PRODUCE: &str = "import sys\nfrom confluent_kafka import Producer\n\
p = Producer({'bootstrap.servers': sys.argv[1]})\n\
[p.produce(sys.argv[2], key=b'k%d' % i, value=b'v' * 100, partition=i % int(sys.argv[4])) for i in range(int(sys.argv[3]))]\n\
p.flush()\n";

fn produce(broker: &str, topic: &str, count: usize, partitions: usize) {
    common::python(
        PRODUCE,
        &[broker, topic, &count.to_string(), &partitions.to_string()],
    );
}

fn manifest_parts(store: &Path, backup_id: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let Ok(runs) = std::fs::read_dir(store.join(backup_id).join("runs")) else {
        return out;
    };
    for run in runs.flatten() {
        for part in std::fs::read_dir(run.path()).unwrap().flatten() {
            out.push(serde_json::from_slice(&std::fs::read(part.path()).unwrap()).unwrap());
        }
    }
    out.sort_by_key(|m| m["part"].as_u64());
    out
}

#[test]
fn continuous_mode_follows_new_records_and_topics_and_stops_cleanly_on_sigterm() {
    let prefix = unique_topic("cont");
    let first = format!("{prefix}-a");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &first, "100", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml(
        "cont",
        &[&format!("{prefix}-*")],
        &store,
        "continuous: true\nmetadata_max_age_ms: 1000\nsegment_max_interval_ms: 1000\nconsumer_group_snapshot: false",
    );
    let child = spawn_backup(dir.path(), &yaml);
    wait_until("the first topic's records", Duration::from_secs(30), || {
        read_back(&store, "cont", &first).len() == 100
    });

    // New records on the first topic, and a new topic matching the pattern.
    produce(&broker, &first, 50, 2);
    let second = format!("{prefix}-b");
    fidelity(&["bulk", &broker, &second, "30", "1"]);
    wait_until(
        "the new records and the new topic",
        Duration::from_secs(30),
        || {
            read_back(&store, "cont", &first).len() == 150
                && read_back(&store, "cont", &second).len() == 30
        },
    );
    assert!(
        manifest_parts(&store, "cont")
            .iter()
            .all(|m| m["status"] == "running"),
        "parts written while the run goes on say so"
    );

    sigterm(&child);
    let run = finish(child, Duration::from_secs(20));
    run.assert_code(EXIT_OK);
    let report = run.json();
    assert_eq!(report["outcome"], "complete");
    assert_eq!(report["mode"], "continuous");
    let parts = manifest_parts(&store, "cont");
    let last = parts.last().unwrap();
    assert_eq!(last["final_part"], true);
    assert_eq!(last["status"], "complete");
    assert!(last["finished_at"].is_string());
    // Every stored segment is listed by exactly one part.
    let listed: usize = parts
        .iter()
        .map(|m| m["segments"].as_array().unwrap().len())
        .sum();
    let stored: usize = [&first, &second]
        .iter()
        .map(|t| {
            segments(&store, "cont", t)
                .values()
                .map(Vec::len)
                .sum::<usize>()
        })
        .sum();
    assert_eq!(listed, stored);
}

#[test]
fn a_snapshot_stops_at_the_offsets_it_found_while_producers_keep_writing() {
    let topic = unique_topic("live");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "1000", "1"]);
    // A producer that keeps writing for the whole test.
    let mut producer = Command::new(get("/venv_python"))
        .arg("-c")
        .arg(
            "import sys, time\nfrom confluent_kafka import Producer\n\
             p = Producer({'bootstrap.servers': sys.argv[1], 'linger.ms': 5})\n\
             end = time.time() + 15\ni = 0\n\
             while time.time() < end:\n    p.produce(sys.argv[2], key=b'live', value=b'x' * 200, partition=0)\n    i += 1\n    p.poll(0)\n    time.sleep(0.001)\np.flush()\n",
        )
        .args([&broker, &topic])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml("live", &[&topic], &store, "");
    let started = Instant::now();
    let run = run(dir.path(), "backup", &yaml, &[], &["--format", "json"]);
    let took = started.elapsed();
    let still_writing = producer.try_wait().unwrap().is_none();
    let _ = producer.kill();
    let _ = producer.wait();
    run.assert_code(EXIT_OK);
    assert!(
        still_writing,
        "the producer was still writing when the snapshot ended"
    );
    assert!(
        took < Duration::from_secs(10),
        "a snapshot ends even though data keeps coming ({took:?})"
    );
    let stored = read_back(&store, "live", &topic);
    assert!(
        stored.len() >= 1000,
        "everything present at start is stored ({})",
        stored.len()
    );
    assert_eq!(stored.len() as u64, run.json()["records"].as_u64().unwrap());
}

fn s3_iam_yaml(backup_id: &str, topic: &str, prefix: &str, user: &str) -> String {
    format!(
        "mode: backup\nbackup_id: {backup_id}\nsource:\n  bootstrap_servers: [\"{}\"]\n  topics:\n    include: [\"{topic}\"]\n\
         storage:\n  backend: s3\n  bucket: {}\n  region: {}\n  endpoint: {}\n  force_path_style: true\n  allow_http: true\n  \
         prefix: {prefix}\n  access_key: ${{KB_ACCESS_KEY}}\n  secret_key: ${{KB_SECRET_KEY}}\n",
        plaintext_broker(),
        get("/s3_iam/bucket"),
        get("/s3_iam/region"),
        get("/s3_iam/endpoint"),
    )
    .replace("KB_USER", user)
}

fn iam_env(user: &str) -> [(String, String); 2] {
    [
        (
            "KB_ACCESS_KEY".into(),
            get(&format!("/s3_iam/users/{user}/access_key_id")),
        ),
        (
            "KB_SECRET_KEY".into(),
            get(&format!("/s3_iam/users/{user}/secret_access_key")),
        ),
    ]
}

fn run_as(dir: &Path, yaml: &str, user: &str, args: &[&str]) -> Run {
    let env = iam_env(user);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run(dir, "backup", yaml, &env, args)
}

fn s3_storage(prefix: &str, user: &str) -> Storage {
    let yaml = format!(
        "mode: backup\nbackup_id: x\nsource:\n  bootstrap_servers: [\"k:1\"]\nstorage:\n  backend: s3\n  bucket: {}\n  \
         region: {}\n  endpoint: {}\n  force_path_style: true\n  allow_http: true\n  prefix: {prefix}\n  \
         access_key: {}\n  secret_key: {}\n",
        get("/s3_iam/bucket"),
        get("/s3_iam/region"),
        get("/s3_iam/endpoint"),
        get(&format!("/s3_iam/users/{user}/access_key_id")),
        get(&format!("/s3_iam/users/{user}/secret_access_key")),
    );
    let config = backup_core::config::parse(&yaml, "test", &|_| None).unwrap();
    Storage::open(config.storage.as_ref().unwrap()).unwrap()
}

#[test]
fn a_write_only_s3_identity_backs_up_and_resumes() {
    let topic = unique_topic("s3w");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "500", "2"]);
    let prefix = unique_topic("wo");
    let dir = tempfile::tempdir().unwrap();
    let yaml = s3_iam_yaml("s3w", &topic, &prefix, "writer");
    let first = run_as(dir.path(), &yaml, "writer", &["--format", "json"]);
    first.assert_code(EXIT_OK);
    produce(&broker, &topic, 100, 2);
    let second = run_as(dir.path(), &yaml, "writer", &["--format", "json"]);
    second.assert_code(EXIT_OK);
    assert_eq!(
        second.json()["records"],
        100,
        "the second run resumed from a LIST alone"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // The writer cannot read what it wrote...
        let writer = s3_storage(&prefix, "writer");
        let objects = writer.list("s3w/").await.unwrap();
        assert!(objects.len() >= 4, "{} objects", objects.len());
        match writer.get(&objects[0].key).await {
            Err(StorageError::PermissionDenied { .. }) => {}
            other => panic!("the writer must not read objects: {other:?}"),
        }
        // ...but a reader can, and every record is there exactly once.
        let reader = s3_storage(&prefix, "reader");
        let mut records = 0u64;
        let mut ranges: Vec<(i32, i64, i64)> = Vec::new();
        for o in objects {
            if let Some(key) = backup_format::naming::parse_segment_key(&o.key) {
                let bytes = reader.get(&o.key).await.unwrap();
                assert_eq!(backup_format::segment::object_sha256(&bytes), key.sha256);
                let seg = backup_format::read_all(bytes).unwrap();
                records += seg.trailer.records;
                ranges.push((key.partition, key.start_offset, key.last_offset));
            }
        }
        assert_eq!(records, 600);
        ranges.sort();
        for w in ranges.windows(2) {
            if w[0].0 == w[1].0 {
                assert_eq!(w[1].1, w[0].2 + 1, "segments tile: {ranges:?}");
            }
        }
    });
    // The same identity cannot delete (the tool never tries): checked with an independent
    // client.
    let [(_, key_id), (_, secret)] = iam_env("writer");
    let out = common::python(
        "import sys, boto3\nfrom botocore.exceptions import ClientError\n\
         s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name=sys.argv[2], aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4])\n\
         key = s3.list_objects_v2(Bucket=sys.argv[5], Prefix=sys.argv[6])['Contents'][0]['Key']\n\
         try:\n    s3.delete_object(Bucket=sys.argv[5], Key=key)\n    print('deleted')\nexcept ClientError as e:\n    print(e.response['Error']['Code'])\n",
        &[
            &get("/s3_iam/endpoint"),
            &get("/s3_iam/region"),
            &key_id,
            &secret,
            &get("/s3_iam/bucket"),
            &prefix,
        ],
    );
    assert_eq!(out.trim(), "AccessDenied");
}

#[test]
fn storage_failures_are_named_and_exit_5() {
    let topic = unique_topic("s3err");
    fidelity(&["bulk", &plaintext_broker(), &topic, "10", "1"]);
    let dir = tempfile::tempdir().unwrap();

    // An identity without ListBucket.
    let yaml = s3_iam_yaml("s3err", &topic, "err", "nobody");
    let run1 = run_as(dir.path(), &yaml, "nobody", &[]);
    run1.assert_code(EXIT_STORAGE);
    run1.assert_contains("s3:ListBucket");

    // A wrong secret.
    let env = [
        ("KB_ACCESS_KEY", get("/s3_iam/users/writer/access_key_id")),
        ("KB_SECRET_KEY", "not-the-secret".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run2 = run(dir.path(), "backup", &yaml, &env, &[]);
    run2.assert_code(EXIT_STORAGE);
    assert!(
        !run2.all().contains("not-the-secret"),
        "the secret must not be echoed"
    );

    // A bucket that does not exist.
    let missing = yaml.replace(
        &format!("bucket: {}", get("/s3_iam/bucket")),
        "bucket: no-such-bucket-kb",
    );
    let run3 = run_as(dir.path(), &missing, "writer", &[]);
    run3.assert_code(EXIT_STORAGE);
    run3.assert_contains("no-such-bucket-kb");

    // An endpoint nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = yaml.replace(&get("/s3_iam/endpoint"), &format!("http://{closed}"));
    let started = Instant::now();
    let run4 = run_as(dir.path(), &unreachable, "writer", &[]);
    run4.assert_code(EXIT_STORAGE);
    run4.assert_contains(&closed.to_string());
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_broker_restart_in_the_middle_of_a_backup_loses_and_duplicates_nothing() {
    let mut own = OwnBroker::start();
    let broker = own.address();
    let topic = unique_topic("restart");
    let count = 150_000;
    fidelity(&["bulk", &broker, &topic, &count.to_string(), "3"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml_on(
        &broker,
        "restart",
        &[&topic],
        &store,
        "compression: none\nsegment_max_bytes: 1048576\nfetch_max_bytes: 1048576",
    );
    let child = spawn_backup(dir.path(), &yaml);
    wait_until("the first segments", Duration::from_secs(60), || {
        segments(&store, "restart", &topic)
            .values()
            .map(Vec::len)
            .sum::<usize>()
            >= 2
    });
    own.kill();
    std::thread::sleep(Duration::from_millis(1500));
    own.spawn();
    let run = finish(child, Duration::from_secs(120));
    run.assert_code(EXIT_OK);
    let stored = read_back(&store, "restart", &topic);
    assert_eq!(stored.len(), count, "every record once across the restart");
    assert!(
        run.stderr.contains("retrying") || run.stderr.contains("fetch failed"),
        "the broker outage was noticed and retried:\n{}",
        run.stderr
    );
}

//! `kafka-backup backup` against the real broker: data written with confluent-kafka is read
//! back from storage with the format crate, record for record; runs resume exactly where the
//! previous one ended, even after kill -9; retention gaps, re-created topics, topic metadata
//! and consumer-group offsets are captured.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn manifests(store: &std::path::Path, backup_id: &str) -> Vec<Value> {
    let dir = store.join(backup_id).join("runs");
    let mut out = Vec::new();
    for run in std::fs::read_dir(&dir).unwrap().flatten() {
        for part in std::fs::read_dir(run.path()).unwrap().flatten() {
            out.push(serde_json::from_slice(&std::fs::read(part.path()).unwrap()).unwrap());
        }
    }
    out
}

#[test]
fn every_record_is_stored_exactly_as_produced() {
    let topic = unique_topic("fidelity");
    let produced = fidelity(&["produce", &plaintext_broker(), &topic]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml("fid", &[&topic], &store, "segment_max_bytes: 1048576");
    let run = run(dir.path(), "backup", &yaml, &[], &["--format", "json"]);
    run.assert_code(EXIT_OK);
    let report = run.json();
    assert_eq!(report["outcome"], "complete");
    assert_eq!(report["partitions"], 3);

    // Every committed record, with null vs empty keys and values, header order, duplicate
    // header keys, null header values, binary data, a record over 1 MiB and timestamps 40
    // days apart, exactly as librdkafka reported producing it; aborted ones absent.
    let expected = committed(&produced);
    let stored = read_back(&store, "fid", &topic);
    assert_same_records(&stored, &expected);
    assert!(stored.iter().any(|r| r.key.is_none()));
    assert!(stored.iter().any(|r| r.key.as_deref() == Some("")));
    assert!(stored.iter().any(|r| r.value.is_none()));
    assert!(stored.iter().any(|r| r.value.as_deref() == Some("")));
    assert!(
        stored
            .iter()
            .any(|r| r.value.as_ref().is_some_and(|v| v.len() > 2 * 1024 * 1024))
    );

    // The manifest lists every segment with its hash, and the topic's shape.
    let manifests = manifests(&store, "fid");
    assert_eq!(manifests.len(), 1);
    let m = &manifests[0];
    assert_eq!(m["final_part"], true);
    assert_eq!(m["status"], "complete");
    let listed: Vec<&str> = m["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    let on_disk: usize = segments(&store, "fid", &topic).values().map(Vec::len).sum();
    assert_eq!(listed.len(), on_disk);
    let t = &m["topics"][0];
    assert_eq!(t["name"], topic.as_str());
    assert_eq!(t["partitions"], 3);
    assert_eq!(t["replication_factor"], 1);
}

#[test]
fn stored_batches_are_the_bytes_the_broker_sends() {
    let topic = unique_topic("bytes");
    fidelity(&["bulk", &plaintext_broker(), &topic, "2000", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml("bytes", &[&topic], &store, "compression: zstd");
    run(dir.path(), "backup", &yaml, &[], &[]).assert_code(EXIT_OK);

    let mut stored = Vec::new();
    for (_, path) in &segments(&store, "bytes", &topic)[&0] {
        let seg =
            backup_format::read_all(bytes::Bytes::from(std::fs::read(path).unwrap())).unwrap();
        stored.extend(seg.batches);
    }
    let describe = |b: &[bytes::Bytes]| -> Vec<(i64, i64, usize)> {
        b.iter()
            .map(|x| {
                let h = kafka_client::batch::BatchHeader::parse(x).unwrap();
                (h.base_offset, h.last_offset(), x.len())
            })
            .collect()
    };
    for b in &stored {
        kafka_client::batch::verify(b).expect("stored batch keeps the broker's valid CRC");
    }
    // Fetch the same range directly and compare. The test broker cuts its answers into
    // batches of its own making, differently from one fetch to the next under load (seen: the
    // first 1,500-odd records as one batch and the rest one by one, the cut moving): look for a
    // fetch with the backup's layout, and compare byte for byte; failing that, record by
    // record.
    let mut fetched = fetch_range(&topic, 2000);
    for _ in 0..20 {
        if describe(&fetched) == describe(&stored) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        fetched = fetch_range(&topic, 2000);
    }
    if describe(&fetched) != describe(&stored) {
        eprintln!(
            "the broker never answered with the backup's batch layout ({} stored batches, {} \
             fetched): comparing records",
            stored.len(),
            fetched.len()
        );
        let records =
            |b: &[bytes::Bytes]| -> Vec<(i64, Option<bytes::Bytes>, Option<bytes::Bytes>)> {
                b.iter()
                    .flat_map(|x| {
                        kafka_records::decode_batch(x, &kafka_records::DecodeLimits::default())
                            .unwrap()
                            .records
                    })
                    .map(|r| (r.offset, r.key, r.value))
                    .collect()
            };
        assert_eq!(records(&stored), records(&fetched));
        return;
    }
    // The test broker re-encodes batches when they are fetched and stamps maxTimestamp with the
    // fetch time, so those 8 bytes, and the CRC over them, differ between two fetches. Every
    // other byte (producer id, epoch, sequence, attributes, every record) must be identical.
    let masked = |b: &bytes::Bytes| {
        let mut v = b.to_vec();
        v[17..21].fill(0); // CRC32C
        v[35..43].fill(0); // maxTimestamp
        v
    };
    for (i, (a, b)) in stored.iter().zip(&fetched).enumerate() {
        assert!(
            masked(a) == masked(b),
            "batch {i} differs beyond maxTimestamp"
        );
    }
}

#[test]
fn a_second_run_resumes_exactly_where_the_first_ended() {
    let topic = unique_topic("resume");
    fidelity(&["bulk", &plaintext_broker(), &topic, "3000", "3"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml("resume", &[&topic], &store, "");
    run(dir.path(), "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    let first = read_back(&store, "resume", &topic).len();
    assert_eq!(first, 3000);

    // More data, then a second run: it adds exactly the new records.
    common::python(
        "import sys\nfrom confluent_kafka import Producer\np = Producer({'bootstrap.servers': sys.argv[1]})\n\
         [p.produce(sys.argv[2], key=b'late-%d' % i, value=b'v', partition=i % 3) for i in range(900)]\np.flush()\n",
        &[&plaintext_broker(), &topic],
    );
    let second = run(dir.path(), "backup", &yaml, &[], &["--format", "json"]);
    second.assert_code(EXIT_OK);
    assert_eq!(second.json()["records"], 900);
    let all = read_back(&store, "resume", &topic);
    assert_eq!(
        all.len(),
        3900,
        "every record once: read_back asserts the segments tile"
    );
    // A third run with nothing new stores nothing.
    let third = run(dir.path(), "backup", &yaml, &[], &["--format", "json"]);
    third.assert_code(EXIT_OK);
    assert_eq!(third.json()["segments"], 0);
    assert_eq!(manifests(&store, "resume").len(), 3);
}

#[test]
fn kill_9_mid_run_then_resume_loses_nothing_and_duplicates_nothing() {
    let topic = unique_topic("kill9");
    let count = 120_000;
    fidelity(&["bulk", &plaintext_broker(), &topic, &count.to_string(), "3"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml(
        "kill9",
        &[&topic],
        &store,
        "compression: none\nsegment_max_bytes: 1048576\nfetch_max_bytes: 1048576",
    );
    let config = dir.path().join("kill9.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let mut child = Command::new(binary())
        .args(["--log-level", "warn", "backup", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: usize = segments(&store, "kill9", &topic)
            .values()
            .map(Vec::len)
            .sum();
        if n >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "no segments appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial: usize = segments(&store, "kill9", &topic)
        .values()
        .map(Vec::len)
        .sum();
    let partial_records = read_back(&store, "kill9", &topic).len();
    assert!(
        partial_records < count,
        "killed before the end ({partial} segments)"
    );

    let resumed = run(dir.path(), "backup", &yaml, &[], &["--format", "json"]);
    resumed.assert_code(EXIT_OK);
    let all = read_back(&store, "kill9", &topic);
    assert_eq!(all.len(), count, "no record missing, none twice");
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for r in &all {
        per_partition.entry(r.partition).or_default().push(r.offset);
    }
    for (p, offsets) in per_partition {
        assert!(
            offsets.windows(2).all(|w| w[1] == w[0] + 1),
            "partition {p} contiguous"
        );
        assert_eq!(offsets[0], 0);
    }
    assert_eq!(
        resumed.json()["records"].as_u64().unwrap() as usize + partial_records,
        count
    );
}

#[test]
fn a_log_that_no_longer_reaches_what_was_backed_up_fails_that_partition_only() {
    // After an unclean leader election a partition's log can end below offsets already backed
    // up; reading on would mix different records under the same offsets. Simulate what the
    // next run sees by planting a segment name that claims offsets up to 999 on partition 0.
    let topic = unique_topic("truncated");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "40", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml("trunc", &[&topic], &store, "");
    run(dir.path(), "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    let (key, path) = segments(&store, "trunc", &topic)[&0][0].clone();
    let planted = backup_format::SegmentKey {
        start_offset: key.last_offset + 1,
        last_offset: 999,
        ..key
    };
    std::fs::copy(&path, store.join(planted.to_key().unwrap())).unwrap();
    common::python(
        "import sys\nfrom confluent_kafka import Producer\np = Producer({'bootstrap.servers': sys.argv[1]})\n\
         [p.produce(sys.argv[2], key=b'k', value=b'v', partition=i % 2) for i in range(10)]\np.flush()\n",
        &[&broker, &topic],
    );
    let second = run(dir.path(), "backup", &yaml, &[], &["--format", "json"]);
    second.assert_code(EXIT_PARTIAL);
    let report = second.json();
    assert_eq!(report["outcome"], "partial");
    let failed = report["failed_partitions"].as_object().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let why = failed[&format!("{topic}-0")].as_str().unwrap();
    assert!(
        why.contains("truncated") && why.contains("new backup_id"),
        "{why}"
    );
    // The healthy partition was still backed up.
    assert_eq!(report["records"], 5);
}

#[test]
fn a_recreated_topic_starts_a_new_lineage() {
    // Deleting a topic disturbs the test broker's metadata for every other topic (a nisshi
    // bug), so this test has a broker of its own.
    let own = OwnBroker::start();
    let broker = own.address();
    let topic = unique_topic("lineage");
    fidelity(&["bulk", &broker, &topic, "50", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml_on(&broker, "lineage", &[&topic], &store, "");
    run(dir.path(), "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    common::python(
        "import sys, time\nfrom confluent_kafka.admin import AdminClient\n\
         a = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
         [f.result() for f in a.delete_topics([sys.argv[2]]).values()]\ntime.sleep(1)\n",
        &[&broker, &topic],
    );
    fidelity(&["bulk", &broker, &topic, "20", "1"]);
    run(dir.path(), "backup", &yaml, &[], &[]).assert_code(EXIT_OK);

    let lineages: Vec<_> = std::fs::read_dir(store.join("lineage/topics").join(&topic))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        lineages.len(),
        2,
        "one directory per topic id: {lineages:?}"
    );
    let segs = segments(&store, "lineage", &topic);
    let mut ranges: Vec<(String, i64, i64)> = segs[&0]
        .iter()
        .map(|(k, _)| (k.topic_id.clone(), k.start_offset, k.last_offset))
        .collect();
    ranges.sort_by_key(|r| r.2);
    // The new topic's records start again at offset 0 in their own lineage.
    assert!(ranges.iter().any(|r| r.1 == 0 && r.2 == 19), "{ranges:?}");
    assert!(ranges.iter().any(|r| r.1 == 0 && r.2 == 49), "{ranges:?}");
}

#[test]
fn consumer_group_offsets_are_captured_with_the_time() {
    let topic = unique_topic("groups");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "60", "2"]);
    let group = format!("{topic}-app");
    common::python(
        "import sys\nfrom confluent_kafka import Consumer, TopicPartition\n\
         c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': sys.argv[3], 'enable.auto.commit': False})\n\
         c.commit(offsets=[TopicPartition(sys.argv[2], 0, 17), TopicPartition(sys.argv[2], 1, 23)], asynchronous=False)\n\
         c.close()\n",
        &[&broker, &topic, &group],
    );
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml("groups", &[&topic], &store, "");
    let run = run(dir.path(), "backup", &yaml, &[], &["--format", "json"]);
    run.assert_code(EXIT_OK);
    assert!(run.json()["consumer_groups"].as_u64().unwrap() >= 1);
    let m = &manifests(&store, "groups")[0];
    let snapshot = &m["consumer_groups"];
    assert!(snapshot["captured_at"].as_str().unwrap().starts_with("20"));
    let g = snapshot["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group_id"] == group.as_str())
        .expect("the group is captured");
    let mut offsets: Vec<(i64, i64)> = g["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"].as_i64().unwrap(),
                o["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    offsets.sort();
    assert_eq!(offsets, [(0, 17), (1, 23)]);
}

#[test]
fn no_matching_topic_is_a_configuration_error_listing_the_topics() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml("none", &["no-such-topic-*"], &store, "");
    let run = run(dir.path(), "backup", &yaml, &[], &[]);
    run.assert_code(EXIT_CONFIG);
    run.assert_contains("no topic matches source.topics");
    run.assert_contains("no-such-topic-*");
    run.assert_contains("the cluster has");
}

#[test]
fn segments_are_cut_at_their_size_even_inside_one_large_fetch_answer() {
    let topic = unique_topic("segsize");
    let broker = plaintext_broker();
    // 3 MB of incompressible values in one partition: the broker answers one Fetch with all of
    // it, whatever fetch_max_bytes asks for.
    python(
        "import sys, os\nfrom confluent_kafka import Producer\nfrom confluent_kafka.admin import AdminClient, NewTopic\n\
         a = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
         for f in a.create_topics([NewTopic(sys.argv[2], 1, 1)]).values(): f.result()\n\
         p = Producer({'bootstrap.servers': sys.argv[1], 'linger.ms': 20, 'batch.size': 65536})\n\
         for i in range(3000):\n\
         \x20   p.produce(sys.argv[2], key=str(i).encode(), value=os.urandom(1024), partition=0)\n\
         \x20   p.poll(0)\n\
         p.flush()\n",
        &[&broker, &topic],
    );
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml(
        "segsize",
        &[&topic],
        &store,
        "compression: none\nsegment_max_bytes: 1048576\nfetch_max_bytes: 1048576",
    );
    run(dir.path(), "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    let segs = &segments(&store, "segsize", &topic)[&0];
    assert!(
        segs.len() >= 3,
        "3 MB in 1 MiB segments: {} segments",
        segs.len()
    );
    for (key, path) in segs {
        let size = std::fs::metadata(path).unwrap().len();
        // At most one batch (64 KiB here) past the limit.
        assert!(
            size < 1_048_576 + 200_000,
            "segment {}..{} is {size} bytes",
            key.start_offset,
            key.last_offset
        );
    }
    assert_eq!(read_back(&store, "segsize", &topic).len(), 3000);
}

/// The record batches of partition 0 of `topic` up to offset `end`, fetched directly.
fn fetch_range(topic: &str, end: i64) -> Vec<bytes::Bytes> {
    let topic = topic.to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = kafka_client::KafkaClient::connect(kafka_client::ClientConfig::new(vec![
            plaintext_broker().parse().unwrap(),
        ]))
        .await
        .unwrap();
        client
            .fetch_metadata(Some(std::slice::from_ref(&topic)))
            .await
            .unwrap();
        let tp = kafka_client::TopicPartition::new(&topic, 0);
        let leader = client.leader_for(&tp).unwrap();
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < end {
            let r = client
                .fetch(
                    leader,
                    &[kafka_client::FetchPartition {
                        tp: tp.clone(),
                        offset,
                        max_bytes: 1 << 20,
                    }],
                    &kafka_client::FetchOptions::default(),
                )
                .await
                .unwrap();
            let (batches, _) =
                kafka_client::batch::split_batches(&r.partitions[0].records).unwrap();
            for b in batches {
                let h = kafka_client::batch::BatchHeader::parse(&b).unwrap();
                if h.last_offset() >= offset {
                    offset = h.last_offset() + 1;
                    out.push(b);
                }
            }
        }
        out
    })
}

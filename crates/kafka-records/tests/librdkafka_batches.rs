//! Cross-check with a client nobody here wrote, through a real broker.
//!
//! 1. confluent-kafka (librdkafka 2.x) produces, with each `compression.type`, records with
//!    null and empty keys and values, duplicate and null-valued headers, binary data,
//!    timestamps days apart (and earlier than the batch's first), large values, one committed
//!    and one aborted transaction interleaved with plain records. We fetch the raw batches
//!    with our client, decode them with our decoder and compare every field with what
//!    librdkafka reported producing and what its consumer reads; the marker-based transaction
//!    filter must drop exactly the aborted records.
//! 2. The committed records are re-encoded with `encode_batch` in every codec, produced with
//!    our idempotent producer, and read back by librdkafka's consumer, which must see exactly
//!    the same records: the broker and librdkafka accept our encoder and compressors.
//!
//! The broker (nisshi) stores records one by one and re-encodes them, uncompressed, on Fetch,
//! so fetched batches are nisshi's bytes. librdkafka's own batches (its compression, its
//! layout) are therefore taken off the wire by a capture proxy (`capture/mod.rs`) between the
//! Python producer and the broker, and decoded too. nisshi also sends no aborted-transaction
//! lists, so truth source (a) is covered by unit tests (`control_txn.rs`) and this test uses
//! the markers in the log (b).

mod capture;

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_client::{
    ClientConfig, FetchOptions, FetchPartition, IsolationLevel, KafkaClient, OffsetSpec,
    TopicPartition,
};
use kafka_records::batch::{BATCH_HEADER_LEN, BatchHeader, split_batches};
use kafka_records::compression::XERIAL_MAGIC;
use kafka_records::txn::{BatchSummary, Decision, MarkerIndex};
use kafka_records::{
    Compression, DecodeLimits, DecodedBatch, EncodeOptions, Record, decode_batch, encode_batch,
};
use serde_json::Value;

const PRODUCE: &str = r#"
import json, random, sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, prefix = sys.argv[1], sys.argv[2]
codecs = ["none", "gzip", "snappy", "lz4", "zstd"]
admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic(f"{prefix}-{c}", 1, 1) for c in codecs]).values():
    f.result()
BASE, DAY = 1_600_000_000_000, 86_400_000
rnd = random.Random(42)
messages = [
    dict(key=None, value=b"null key", headers=None, ts=BASE),
    # Earlier than the batch's first record: a negative timestamp delta.
    dict(key=b"", value=b"empty key", headers=[], ts=BASE - 5 * DAY),
    dict(key=b"null value", value=None, headers=[("a", b"1")], ts=BASE + 30 * DAY),
    dict(key=b"empty value", value=b"", headers=[("e", b"")], ts=BASE + 1),
    dict(key=None, value=None, headers=[("n", None)], ts=BASE + 2),
    dict(key=b"dups", value=b"d", ts=BASE + 3, headers=[
        ("h", b"1"), ("x", None), ("h", b""), ("h", b"3"), ("ключ", bytes([0, 255, 128]))]),
    dict(key=bytes(range(256)), value=bytes(range(256))[::-1], ts=BASE + 4,
         headers=[("bin", bytes(range(256)))]),
    dict(key=b"big-random", value=rnd.randbytes(150_000), headers=None, ts=BASE + 5),
    dict(key=b"big-text", value=b"abc" * 100_000, headers=None, ts=BASE + 6),
]
hx = lambda b: None if b is None else b.hex()
out = []
def reporter(txn, headers):
    def report(err, msg):
        if err: raise SystemExit(str(err))
        out.append({"codec": msg.topic().rsplit("-", 1)[1], "o": msg.offset(), "txn": txn,
                    "k": hx(msg.key()), "v": hx(msg.value()), "ts": msg.timestamp()[1],
                    "h": [[k, hx(v)] for k, v in (headers or [])]})
    return report
for codec in codecs:
    topic = f"{prefix}-{codec}"
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 200, "compression.type": codec})
    for m in messages:
        p.produce(topic, key=m["key"], value=m["value"], headers=m["headers"],
                  timestamp=m["ts"], partition=0, on_delivery=reporter("none", m["headers"]))
    p.flush()
    t = Producer({"bootstrap.servers": bootstrap, "transactional.id": topic + "-tx",
                  "compression.type": codec, "linger.ms": 50})
    t.init_transactions()
    for outcome in ("committed", "aborted"):
        t.begin_transaction()
        for i in range(3):
            h = [("txn", outcome.encode()), ("txn", None)]
            t.produce(topic, key=f"{outcome}-{i}".encode(), value=b"t" * (i + 1), headers=h,
                      timestamp=BASE + 100 + i, partition=0, on_delivery=reporter(outcome, h))
        t.flush()
        # A plain record in the middle of the open transaction.
        p.produce(topic, key=f"between-{outcome}".encode(), value=b"p", timestamp=BASE + 200,
                  partition=0, on_delivery=reporter("none", None))
        p.flush()
        if outcome == "committed":
            t.commit_transaction()
        else:
            t.abort_transaction()
    p.produce(topic, key=b"last", value=b"last", timestamp=BASE + 300, partition=0,
              on_delivery=reporter("none", None))
    p.flush()
print(json.dumps(out))
"#;

/// Reads every record of `topic` with librdkafka's consumer and prints what it reports.
const CONSUME: &str = r#"
import json, sys
from confluent_kafka import Consumer, TopicPartition
bootstrap, topic, partitions, count, isolation = sys.argv[1:6]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": topic + "-check",
              "enable.auto.commit": False, "isolation.level": isolation})
c.assign([TopicPartition(topic, p, 0) for p in range(int(partitions))])
hx = lambda b: None if b is None else b.hex()
out = []
while len(out) < int(count):
    m = c.poll(15)
    if m is None: break
    if m.error(): raise SystemExit(str(m.error()))
    out.append({"p": m.partition(), "o": m.offset(), "k": hx(m.key()), "v": hx(m.value()),
                "h": [[k, hx(v)] for k, v in (m.headers() or [])],
                "ts_type": m.timestamp()[0], "ts": m.timestamp()[1]})
m = c.poll(2)
if m is not None and not m.error(): out.append({"unexpected": m.offset()})
c.close()
print(json.dumps(out))
"#;

/// A record as both sides can report it: key, value, headers (hex, `None` for null) and
/// timestamp.
type Seen = (
    Option<String>,
    Option<String>,
    Vec<(String, Option<String>)>,
    i64,
);

fn hex(b: &Option<Bytes>) -> Option<String> {
    b.as_ref()
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
}

fn seen_by_us(r: &Record) -> Seen {
    (
        hex(&r.key),
        hex(&r.value),
        r.headers
            .iter()
            .map(|h| {
                (
                    String::from_utf8(h.key.to_vec()).expect("librdkafka header keys are UTF-8"),
                    hex(&h.value),
                )
            })
            .collect(),
        r.timestamp,
    )
}

fn seen_by_python(v: &Value) -> Seen {
    let opt = |v: &Value| v.as_str().map(str::to_owned);
    (
        opt(&v["k"]),
        opt(&v["v"]),
        v["h"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h[0].as_str().unwrap().to_owned(), opt(&h[1])))
            .collect(),
        v["ts"].as_i64().unwrap(),
    )
}

fn consume(topic: &str, partitions: usize, count: usize, isolation: &str) -> Vec<Value> {
    let out = test_support::python(
        CONSUME,
        &[
            &test_support::plaintext_broker(),
            topic,
            &partitions.to_string(),
            &count.to_string(),
            isolation,
        ],
    );
    let seen: Vec<Value> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(seen.len(), count, "{topic}: librdkafka read {seen:?}");
    seen
}

/// Every batch of a partition, in order, as the broker stores it.
async fn fetch_all(client: &KafkaClient, tp: &TopicPartition) -> Vec<Bytes> {
    let end = client
        .list_offsets(
            std::slice::from_ref(tp),
            OffsetSpec::Latest,
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap()[tp]
        .offset;
    let leader = client.leader_for(tp).unwrap();
    let (mut offset, mut out) = (0, Vec::new());
    while offset < end {
        let result = client
            .fetch(
                leader,
                &[FetchPartition {
                    tp: tp.clone(),
                    offset,
                    max_bytes: 64 * 1024,
                }],
                &FetchOptions {
                    isolation: IsolationLevel::ReadUncommitted,
                    ..FetchOptions::default()
                },
            )
            .await
            .unwrap();
        let part = &result.partitions[0];
        assert_eq!(part.error, None, "fetch {tp} at {offset}");
        let (batches, _) = split_batches(&part.records).unwrap();
        assert!(!batches.is_empty(), "no progress at {offset}");
        for b in batches {
            let h = BatchHeader::parse(&b).unwrap();
            if h.last_offset() >= offset {
                offset = h.last_offset() + 1;
                out.push(b);
            }
        }
    }
    out
}

fn codec_named(name: &str) -> Compression {
    Compression::ALL
        .into_iter()
        .find(|c| c.name() == name)
        .unwrap()
}

/// Decodes the batches librdkafka sent for `codec`'s topic, as captured on the wire, and
/// compares them with what it reported producing (order across its two producers aside).
fn check_librdkafka_bytes(codec: Compression, sent: &[Bytes], produced: &[&Value]) {
    let limits = DecodeLimits::default();
    let mut unique: Vec<&Bytes> = Vec::new();
    for b in sent {
        // A retried request carries the same batch again.
        if !unique.contains(&b) {
            unique.push(b);
        }
    }
    let decoded: Vec<DecodedBatch> = unique
        .iter()
        .map(|b| decode_batch(b, &limits).unwrap())
        .collect();
    // librdkafka really used the codec for the batches that matter.
    assert!(
        decoded
            .iter()
            .any(|d| d.compression == codec && d.records.len() >= 9),
        "{codec}: {:?}",
        decoded
            .iter()
            .map(|d| (d.compression, d.records.len()))
            .collect::<Vec<_>>()
    );
    if codec == Compression::Snappy {
        for (b, d) in unique.iter().zip(&decoded) {
            if d.compression == Compression::Snappy {
                // Finding: librdkafka writes one raw snappy block, no snappy-java framing.
                assert!(!b[BATCH_HEADER_LEN..].starts_with(&XERIAL_MAGIC));
            }
        }
    }
    // librdkafka's batch keeps timestamps 35 days apart, one before its base timestamp.
    assert!(decoded.iter().any(|d| {
        let min = d.records.iter().map(|r| r.timestamp).min().unwrap_or(0);
        let max = d.records.iter().map(|r| r.timestamp).max().unwrap_or(0);
        min < d.header.base_timestamp && max - min >= 35 * 86_400_000
    }));
    for d in &decoded {
        let transactional = d.records.iter().any(|r| {
            r.key
                .as_deref()
                .is_some_and(|k| k.starts_with(b"committed") || k.starts_with(b"aborted"))
        });
        assert_eq!(d.is_transactional(), transactional, "{codec}");
        assert_eq!(d.header.producer_id >= 0, transactional, "{codec}");
    }
    let mut ours: Vec<Seen> = decoded
        .iter()
        .flat_map(|d| &d.records)
        .map(seen_by_us)
        .collect();
    let mut theirs: Vec<Seen> = produced.iter().map(|v| seen_by_python(v)).collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "{codec}");
}

/// Checks one librdkafka-written topic; returns its committed records in offset order.
async fn check_topic(client: &KafkaClient, topic: &str, produced: &[&Value]) -> Vec<Record> {
    let tp = TopicPartition::new(topic, 0);
    let raw = fetch_all(client, &tp).await;
    let limits = DecodeLimits::default();
    let decoded: Vec<DecodedBatch> = raw
        .iter()
        .map(|b| decode_batch(b, &limits).unwrap())
        .collect();

    // Every record librdkafka reported producing, field by field, and nothing else.
    let ours: BTreeMap<i64, &Record> = decoded
        .iter()
        .filter(|d| !d.is_control())
        .flat_map(|d| &d.records)
        .map(|r| (r.offset, r))
        .collect();
    let theirs: BTreeMap<i64, Seen> = produced
        .iter()
        .map(|v| (v["o"].as_i64().unwrap(), seen_by_python(v)))
        .collect();
    assert_eq!(ours.len(), theirs.len(), "{topic}");
    for (offset, want) in &theirs {
        assert_eq!(&seen_by_us(ours[offset]), want, "{topic} offset {offset}");
    }
    // And what librdkafka's consumer reads (read_uncommitted: aborted records too).
    for v in consume(topic, 1, theirs.len(), "read_uncommitted") {
        let offset = v["o"].as_i64().unwrap();
        assert_eq!(v["ts_type"], 1, "CreateTime");
        assert_eq!(
            seen_by_us(ours[&offset]),
            seen_by_python(&v),
            "{topic} {offset}"
        );
    }

    // Transactions from the markers in the log: two passes.
    let summaries: Vec<BatchSummary> = raw
        .iter()
        .map(|b| BatchSummary::read(b, &limits).unwrap())
        .collect();
    let mut index = MarkerIndex::new();
    for s in &summaries {
        index.observe(s).unwrap();
    }
    assert_eq!(index.marker_count(), 2, "{topic}: one commit, one abort");
    assert!(index.open_transactions().is_empty());
    let mut filter = index.into_filter();
    let mut by_decision: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut committed = Vec::new();
    for (s, d) in summaries.iter().zip(&decoded) {
        let decision = filter.decide(&s.header).unwrap();
        let label = match decision {
            Decision::Keep => "kept",
            Decision::Aborted => "aborted",
            Decision::Control => "control",
            Decision::Undecided => "undecided",
        };
        let offsets = by_decision.entry(label).or_default();
        if decision == Decision::Control {
            offsets.push(s.header.base_offset);
        } else {
            offsets.extend(d.records.iter().map(|r| r.offset));
        }
        if decision == Decision::Keep {
            committed.extend(d.records.iter().cloned());
        }
    }
    let offsets_where = |f: &dyn Fn(&str) -> bool| -> Vec<i64> {
        let mut o: Vec<i64> = produced
            .iter()
            .filter(|v| f(v["txn"].as_str().unwrap()))
            .map(|v| v["o"].as_i64().unwrap())
            .collect();
        o.sort();
        o
    };
    assert_eq!(
        by_decision["kept"],
        offsets_where(&|t| t != "aborted"),
        "{topic}"
    );
    assert_eq!(
        by_decision["aborted"],
        offsets_where(&|t| t == "aborted"),
        "{topic}"
    );
    assert_eq!(by_decision["control"].len(), 2, "{topic}");
    assert!(!by_decision.contains_key("undecided"), "{topic}");
    committed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_batches_decode_exactly_and_ours_read_back_in_librdkafka() {
    let prefix = test_support::unique_topic("records");
    let broker = test_support::plaintext_broker();
    let proxy = capture::CaptureProxy::start(broker.clone()).await;
    let through_proxy = proxy.addr.to_string();
    let script_prefix = prefix.clone();
    let out = tokio::task::spawn_blocking(move || {
        test_support::python(PRODUCE, &[&through_proxy, &script_prefix])
    })
    .await
    .unwrap();
    let produced: Vec<Value> = serde_json::from_str(out.trim()).unwrap();
    let captured = proxy.produced();
    let client = KafkaClient::connect(ClientConfig::new(vec![broker.parse().unwrap()]))
        .await
        .unwrap();

    let mut committed: Vec<(Compression, Vec<Record>)> = Vec::new();
    for codec in Compression::ALL {
        let topic = format!("{prefix}-{}", codec.name());
        client
            .fetch_metadata(Some(std::slice::from_ref(&topic)))
            .await
            .unwrap();
        let mine: Vec<&Value> = produced
            .iter()
            .filter(|v| codec_named(v["codec"].as_str().unwrap()) == codec)
            .collect();
        assert_eq!(mine.len(), 9 + 6 + 3, "{codec}");
        let sent: Vec<Bytes> = captured
            .iter()
            .filter(|p| p.topic == topic)
            .flat_map(|p| split_batches(&p.records).unwrap().0)
            .collect();
        check_librdkafka_bytes(codec, &sent, &mine);
        committed.push((codec, check_topic(&client, &topic, &mine).await));
    }

    // Re-encode the committed records in every codec, produce them with our idempotent
    // producer (partition i gets codec i), read them back with librdkafka.
    let target = format!("{prefix}-reencoded");
    test_support::python(
        "import sys\nfrom confluent_kafka.admin import AdminClient, NewTopic\n\
         a = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
         [f.result() for f in a.create_topics([NewTopic(sys.argv[2], 5, 1)]).values()]\n",
        &[&broker, &target],
    );
    client
        .fetch_metadata(Some(std::slice::from_ref(&target)))
        .await
        .unwrap();
    let producer = client.idempotent_producer().await.unwrap();
    let mut expected: BTreeMap<(i32, i64), Seen> = BTreeMap::new();
    for (partition, (codec, records)) in committed.iter().enumerate() {
        let tp = TopicPartition::new(&target, partition as i32);
        // Brokers require consecutive offset deltas in produced batches.
        let renumbered: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, r)| Record {
                offset: i as i64,
                ..r.clone()
            })
            .collect();
        let (first, second) = renumbered.split_at(renumbered.len() / 2);
        for chunk in [first, second] {
            let batch = encode_batch(
                chunk,
                &EncodeOptions {
                    compression: *codec,
                    ..EncodeOptions::default()
                },
            )
            .unwrap();
            let ack = producer.send_batch(&tp, batch).await.unwrap();
            assert!(!ack.duplicate);
            for (i, r) in chunk.iter().enumerate() {
                expected.insert(
                    (partition as i32, ack.base_offset + i as i64),
                    seen_by_us(r),
                );
            }
        }
    }
    let read: BTreeMap<(i32, i64), Seen> = consume(&target, 5, expected.len(), "read_committed")
        .iter()
        .map(|v| {
            (
                (v["p"].as_i64().unwrap() as i32, v["o"].as_i64().unwrap()),
                seen_by_python(v),
            )
        })
        .collect();
    assert_eq!(read, expected);

    // What the broker serves back from our batches (re-encoded by nisshi, which merges
    // batches and drops compression) decodes to the same records.
    for (partition, (codec, records)) in committed.iter().enumerate() {
        let tp = TopicPartition::new(&target, partition as i32);
        let back: Vec<Seen> = fetch_all(&client, &tp)
            .await
            .iter()
            .map(|b| decode_batch(b, &DecodeLimits::default()).unwrap())
            .flat_map(|d| d.records)
            .map(|r| seen_by_us(&r))
            .collect();
        let want: Vec<Seen> = records.iter().map(seen_by_us).collect();
        assert_eq!(back, want, "{codec}");
    }
}

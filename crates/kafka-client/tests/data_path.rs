//! ListOffsets, Fetch and the idempotent producer against the real broker, with data written
//! and read back by confluent-kafka (librdkafka), a client nobody here wrote.

mod common;

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use kafka_client::batch::{BatchHeader, split_batches, stamp_for_producer};
use kafka_client::{
    FetchOptions, FetchPartition, IsolationLevel, KafkaClient, OffsetSpec, TopicPartition,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::Value;

const PRODUCE: &str = r#"
import json, sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, topic = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
    f.result()
out = []
def report(err, msg):
    if err: raise SystemExit(str(err))
    out.append({"p": msg.partition(), "o": msg.offset(), "k": msg.key().decode(),
                "v": msg.value().decode(), "ts": msg.timestamp()[1], "txn": "none"})
p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "compression.type": "zstd"})
base = 1_600_000_000_000
for i in range(60):
    p.produce(topic, key=f"k{i}", value=f"value-{i}" * (1 + i % 5), partition=i % 3,
              timestamp=base + i * 1000, on_delivery=report)
p.flush()
t = Producer({"bootstrap.servers": bootstrap, "transactional.id": topic + "-tx"})
t.init_transactions()
for outcome in ("committed", "aborted"):
    t.begin_transaction()
    for i in range(5):
        def rep(err, msg, outcome=outcome):
            if err: raise SystemExit(str(err))
            out.append({"p": msg.partition(), "o": msg.offset(), "k": msg.key().decode(),
                        "v": msg.value().decode(), "ts": msg.timestamp()[1], "txn": outcome})
        t.produce(topic, key=f"{outcome}{i}", value="t", partition=0, on_delivery=rep)
    t.flush()
    if outcome == "committed":
        t.commit_transaction()
    else:
        t.abort_transaction()
# Close with a plain record so the partition's end is a committed, non-transactional batch.
p.produce(topic, key="last", value="last", partition=0, timestamp=base + 999_000, on_delivery=report)
p.flush()
print(json.dumps(out))
"#;

fn produced(topic: &str) -> Vec<Value> {
    let out = common::python(PRODUCE, &[&common::plaintext_broker(), topic]);
    serde_json::from_str(out.trim()).unwrap()
}

/// Reads a partition from `from` to `to` with read_committed and returns (offset, key, value,
/// timestamp) of the records a read_committed consumer must see.
///
/// Aborted transactions are resolved from the control markers in the log: a transactional
/// batch is aborted when the next marker of its producer is an ABORT. This is what the broker's
/// aborted-transaction list encodes too, but it does not depend on the broker sending that list
/// (nisshi, the test broker, does not).
async fn read_committed(
    client: &KafkaClient,
    tp: &TopicPartition,
    from: i64,
    to: i64,
    max_bytes: i32,
) -> Vec<(i64, String, String, i64)> {
    let leader = client.leader_for(tp).unwrap();
    let mut offset = from;
    let mut batches: Vec<(BatchHeader, Bytes)> = Vec::new();
    while offset < to {
        let result = client
            .fetch(
                leader,
                &[FetchPartition {
                    tp: tp.clone(),
                    offset,
                    max_bytes,
                }],
                &FetchOptions {
                    max_bytes,
                    ..FetchOptions::default()
                },
            )
            .await
            .unwrap();
        let part = &result.partitions[0];
        assert_eq!(part.error, None, "fetch error for {tp}");
        let (fetched, _) = split_batches(&part.records).unwrap();
        assert!(!fetched.is_empty(), "no progress at offset {offset}");
        for batch in fetched {
            let header = kafka_client::batch::verify(&batch).unwrap();
            if header.last_offset() >= offset {
                offset = header.last_offset() + 1;
                batches.push((header, batch));
            }
        }
    }
    // (producer id, marker offset) -> committed?
    let mut markers: BTreeMap<(i64, i64), bool> = BTreeMap::new();
    for (h, b) in batches.iter().filter(|(h, _)| h.is_control()) {
        let set = RecordBatchDecoder::decode(&mut b.clone()).unwrap();
        let key = set.records[0].key.clone().unwrap();
        markers.insert((h.producer_id, h.base_offset), key[..] == [0, 0, 0, 1]);
    }
    let mut records = Vec::new();
    for (h, b) in &batches {
        if h.is_control() {
            continue;
        }
        if h.is_transactional() {
            let committed = markers
                .range((h.producer_id, h.base_offset)..(h.producer_id, i64::MAX))
                .next()
                .map(|(_, c)| *c);
            if committed != Some(true) {
                continue;
            }
        }
        let set = RecordBatchDecoder::decode(&mut b.clone()).unwrap();
        for r in set.records.into_iter().filter(|r| r.offset >= from) {
            records.push((
                r.offset,
                String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                r.timestamp,
            ));
        }
    }
    records
}

#[tokio::test]
async fn offsets_and_read_committed_fetch_match_what_librdkafka_produced() {
    let topic = common::unique_topic("data-path");
    let produced = produced(&topic);
    let client = KafkaClient::connect(common::plaintext_config())
        .await
        .unwrap();
    client
        .fetch_metadata(Some(std::slice::from_ref(&topic)))
        .await
        .unwrap();
    let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();

    let earliest = client
        .list_offsets(&tps, OffsetSpec::Earliest, IsolationLevel::ReadCommitted)
        .await
        .unwrap();
    let latest = client
        .list_offsets(&tps, OffsetSpec::Latest, IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    for tp in &tps {
        assert_eq!(earliest[tp].offset, 0, "{tp}");
        let max_offset = produced
            .iter()
            .filter(|r| r["p"] == tp.partition)
            .map(|r| r["o"].as_i64().unwrap())
            .max()
            .unwrap();
        // Transaction markers take offsets too, so the end is past the last data record.
        assert!(latest[tp].offset > max_offset, "{tp}: {:?}", latest[tp]);
    }

    for tp in &tps {
        // A small max_bytes forces many round trips and partial trailing batches.
        let got = read_committed(&client, tp, 0, latest[tp].offset, 300).await;
        let expected: Vec<(i64, String, String, i64)> = produced
            .iter()
            .filter(|r| r["p"] == tp.partition && r["txn"] != "aborted")
            .map(|r| {
                (
                    r["o"].as_i64().unwrap(),
                    r["k"].as_str().unwrap().to_owned(),
                    r["v"].as_str().unwrap().to_owned(),
                    r["ts"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, expected, "{tp}");
    }
    // The aborted records are in the log but were filtered out above.
    let aborted: Vec<_> = produced.iter().filter(|r| r["txn"] == "aborted").collect();
    assert_eq!(aborted.len(), 5);

    // Timestamp lookup: the first record at or after the 10th second on partition 1.
    let base = 1_600_000_000_000i64;
    let by_time = client
        .list_offsets(
            &tps[1..2],
            OffsetSpec::Timestamp(base + 10_000),
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
    let want = produced
        .iter()
        .filter(|r| r["p"] == 1 && r["ts"].as_i64().unwrap() >= base + 10_000)
        .map(|r| (r["o"].as_i64().unwrap(), r["ts"].as_i64().unwrap()))
        .min()
        .unwrap();
    assert_eq!((by_time[&tps[1]].offset, by_time[&tps[1]].timestamp), want);
}

fn encode(keys: &[&str]) -> BytesMut {
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch only while offset - sequence is constant.
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from(format!("v-{k}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::Lz4,
        },
    )
    .unwrap();
    buf
}

const CONSUME_ALL: &str = r#"
import json, sys
from confluent_kafka import Consumer, TopicPartition
bootstrap, topic, partition, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = Consumer({"bootstrap.servers": bootstrap, "group.id": topic + "-check", "enable.auto.commit": False})
c.assign([TopicPartition(topic, partition, 0)])
out = []
while len(out) < count:
    m = c.poll(10)
    if m is None: break
    if m.error(): raise SystemExit(str(m.error()))
    out.append([m.offset(), m.key().decode()])
# Make sure nothing else follows.
m = c.poll(1)
if m is not None and not m.error(): out.append([m.offset(), m.key().decode()])
print(json.dumps(out))
"#;

#[tokio::test]
async fn idempotent_producer_writes_each_batch_once_even_when_resent() {
    let topic = common::unique_topic("idempotent");
    common::python(
        "import sys\nfrom confluent_kafka.admin import AdminClient, NewTopic\n\
         a = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
         [f.result() for f in a.create_topics([NewTopic(sys.argv[2], 2, 1)]).values()]\n",
        &[&common::plaintext_broker(), &topic],
    );
    let client = KafkaClient::connect(common::plaintext_config())
        .await
        .unwrap();
    client
        .fetch_metadata(Some(std::slice::from_ref(&topic)))
        .await
        .unwrap();
    let tp = TopicPartition::new(&topic, 1);
    let producer = client.idempotent_producer().await.unwrap();
    assert!(producer.producer_id() >= 0);

    let a = producer
        .send_batch(&tp, encode(&["a0", "a1", "a2"]))
        .await
        .unwrap();
    let b = producer
        .send_batch(&tp, encode(&["b0", "b1"]))
        .await
        .unwrap();
    assert_eq!((a.base_offset, b.base_offset), (0, 3));
    assert!(!a.duplicate && !b.duplicate);

    // Simulate a retry after a lost answer: the same stamped batch (same sequence) twice.
    let mut batch = encode(&["c0"]);
    stamp_for_producer(
        &mut batch,
        producer.producer_id(),
        producer.producer_epoch(),
        5,
    )
    .unwrap();
    let header = BatchHeader::parse(&batch).unwrap();
    assert_eq!(header.base_sequence, 5);
    let batch = batch.freeze();
    let conn = client
        .broker_connection(client.leader_for(&tp).unwrap())
        .await
        .unwrap();
    let mut answers = BTreeMap::new();
    for attempt in 0..2 {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(1)
                            .with_records(Some(batch.clone())),
                    ]),
            ]);
        let response = conn.send(&request).await.unwrap();
        let p = &response.responses[0].partition_responses[0];
        answers.insert(attempt, (p.error_code, p.base_offset));
    }
    assert_eq!(answers[&0], (0, 5));
    // Kafka answers a duplicate either with DUPLICATE_SEQUENCE_NUMBER or with the original
    // offset; both mean "already written".
    assert!(
        answers[&1] == (46, answers[&1].1) || answers[&1] == (0, 5),
        "second send of the same sequence: {:?}",
        answers[&1]
    );

    let seen: Vec<(i64, String)> = serde_json::from_str(
        common::python(
            CONSUME_ALL,
            &[&common::plaintext_broker(), &topic, "1", "6"],
        )
        .trim(),
    )
    .unwrap();
    let keys: Vec<&str> = seen.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(keys, ["a0", "a1", "a2", "b0", "b1", "c0"]);
}

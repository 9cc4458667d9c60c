//! Fetch: record batches of many partitions from one broker in one request, returned as the
//! raw bytes the broker sent, with the aborted-transaction list needed to filter them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition as WirePartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::client::KafkaClient;
use crate::error::{Error, Result};
use crate::metadata::TopicPartition;
use crate::offsets::IsolationLevel;

/// Fetch v13 replaced topic names with topic ids.
const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 13;

/// One partition to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartition {
    /// The partition.
    pub tp: TopicPartition,
    /// The offset to read from.
    pub offset: i64,
    /// Most bytes to return for this partition (the broker still returns at least one whole
    /// batch, so progress is never blocked by a large batch).
    pub max_bytes: i32,
}

/// Request-wide fetch settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// How long the broker may wait for `min_bytes` to accumulate.
    pub max_wait: Duration,
    /// Bytes the broker waits for before answering early.
    pub min_bytes: i32,
    /// Most bytes in the whole response.
    pub max_bytes: i32,
    /// Whether to stop at the last stable offset and list aborted transactions.
    pub isolation: IsolationLevel,
    /// Which of the broker's connections carries the fetch (see
    /// [`KafkaClient::lane_connection`]): fetches on different lanes are served in parallel.
    pub lane: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            isolation: IsolationLevel::ReadCommitted,
            lane: 0,
        }
    }
}

/// A transaction that was aborted, as listed by a read_committed fetch: records of
/// `producer_id` from `first_offset` up to its abort marker must be left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AbortedTransaction {
    /// The transactional producer.
    pub producer_id: i64,
    /// The first offset of the aborted transaction in this partition.
    pub first_offset: i64,
}

/// One partition's part of a fetch answer.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    /// The partition.
    pub tp: TopicPartition,
    /// A partition error: OFFSET_OUT_OF_RANGE, NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, ...
    /// The caller decides (skip to the log start, refresh metadata, ...).
    pub error: Option<ResponseError>,
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// The last stable offset (end of committed data), -1 if unknown.
    pub last_stable_offset: i64,
    /// The log start offset, -1 if unknown.
    pub log_start_offset: i64,
    /// Aborted transactions overlapping the returned records (read_committed only).
    pub aborted_transactions: Vec<AbortedTransaction>,
    /// The record batches exactly as the broker sent them. The last batch may be cut short by
    /// the size limit; callers must ignore a trailing partial batch.
    pub records: Bytes,
}

/// A fetch answer from one broker.
#[derive(Debug, Clone)]
pub struct FetchResult {
    /// Per-partition data, in no particular order.
    pub partitions: Vec<FetchedPartition>,
    /// How long the broker asks us to hold off because of quotas.
    pub throttle: Duration,
}

impl KafkaClient {
    /// Fetches `partitions`, which must all be led by broker `broker`, in one request.
    /// Transport failures are errors; partition errors are reported per partition.
    pub async fn fetch(
        &self,
        broker: i32,
        partitions: &[FetchPartition],
        options: &FetchOptions,
    ) -> Result<FetchResult> {
        let conn = self.lane_connection(broker, options.lane).await?;
        let negotiated = conn.version::<FetchRequest>()?;
        let metadata = self.metadata();

        // Topic ids are only usable when the broker reported one for every topic we ask for.
        let mut ids: HashMap<&str, Uuid> = HashMap::new();
        for p in partitions {
            let id = metadata
                .topics
                .get(&p.tp.topic)
                .map(|t| t.topic_id)
                .unwrap_or_default();
            ids.insert(p.tp.topic.as_str(), id);
        }
        let use_ids =
            negotiated >= FIRST_VERSION_WITH_TOPIC_IDS && ids.values().all(|id| !id.is_nil());
        let version = if use_ids {
            negotiated
        } else {
            negotiated.min(FIRST_VERSION_WITH_TOPIC_IDS - 1)
        };

        let mut topics: BTreeMap<&str, Vec<WirePartition>> = BTreeMap::new();
        for p in partitions {
            let mut wire = WirePartition::default()
                .with_partition(p.tp.partition)
                .with_fetch_offset(p.offset)
                .with_partition_max_bytes(p.max_bytes);
            if version >= 9 {
                // Lets the broker fence us when our leader view is stale (FENCED_LEADER_EPOCH).
                let epoch = metadata
                    .partition(&p.tp)
                    .map(|m| m.leader_epoch)
                    .unwrap_or(-1);
                wire = wire.with_current_leader_epoch(epoch);
            }
            topics.entry(p.tp.topic.as_str()).or_default().push(wire);
        }
        let topics = topics
            .into_iter()
            .map(|(name, parts)| {
                let t = FetchTopic::default().with_partitions(parts);
                if use_ids {
                    t.with_topic_id(ids[name])
                } else {
                    t.with_topic(TopicName(StrBytes::from_string(name.to_owned())))
                }
            })
            .collect();
        let max_wait_ms = i32::try_from(options.max_wait.as_millis()).unwrap_or(i32::MAX);
        let request = FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(options.min_bytes)
            .with_max_bytes(options.max_bytes)
            .with_isolation_level(options.isolation.wire())
            .with_topics(topics);
        let response = conn.send_at(&request, version, options.max_wait).await?;

        if let Some(code) = ResponseError::try_from_code(response.error_code) {
            return Err(Error::Broker {
                broker: conn.label().to_owned(),
                api: "Fetch",
                resource: None,
                code,
                message: None,
            });
        }
        let names_by_id: HashMap<Uuid, &str> = ids.iter().map(|(n, id)| (*id, *n)).collect();
        let mut out = Vec::with_capacity(partitions.len());
        for topic in response.responses {
            let name = if use_ids {
                match names_by_id.get(&topic.topic_id) {
                    Some(n) => (*n).to_owned(),
                    None => {
                        return Err(Error::Protocol {
                            broker: conn.label().to_owned(),
                            detail: format!(
                                "the Fetch answer names topic id {}, which we did not ask for",
                                topic.topic_id
                            ),
                        });
                    }
                }
            } else {
                topic.topic.0.to_string()
            };
            for p in topic.partitions {
                let aborted = p
                    .aborted_transactions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| AbortedTransaction {
                        producer_id: a.producer_id.0,
                        first_offset: a.first_offset,
                    })
                    .collect();
                out.push(FetchedPartition {
                    tp: TopicPartition::new(name.clone(), p.partition_index),
                    error: ResponseError::try_from_code(p.error_code),
                    high_watermark: p.high_watermark,
                    last_stable_offset: p.last_stable_offset,
                    log_start_offset: p.log_start_offset,
                    aborted_transactions: aborted,
                    records: p.records.unwrap_or_default(),
                });
            }
        }
        Ok(FetchResult {
            partitions: out,
            throttle: Duration::from_millis(u64::try_from(response.throttle_time_ms).unwrap_or(0)),
        })
    }
}

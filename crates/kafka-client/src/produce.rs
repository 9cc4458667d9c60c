//! An idempotent producer: record batches sent with acks=all under a producer id from
//! InitProducerId, with per-partition sequence numbers, so that a retry after a lost
//! response can never write a batch twice.
//!
//! Batches bound for one broker share Produce requests: a task per broker takes whatever
//! batches are waiting (one per partition, as each partition has one batch in flight) into
//! one request, with a few requests in flight. A broker answers one request per connection at
//! a time, so one request per batch made a restore of thousands of small partitions wait a
//! round trip for each.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, mpsc, oneshot};

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::KafkaClient;
use crate::error::{Error, Result, needs_metadata_refresh};
use crate::metadata::TopicPartition;
use kafka_records::batch::stamp_for_producer;

/// What the broker answered for a produced batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceAck {
    /// Offset given to the first record of the batch; -1 when the broker recognised the batch
    /// as a duplicate of one already written and did not report where.
    pub base_offset: i64,
    /// The broker's append time when the topic uses LogAppendTime, else `None`.
    pub log_append_time: Option<i64>,
    /// True when the broker said the batch had already been written (an earlier attempt
    /// whose answer was lost); the data is in the log exactly once.
    pub duplicate: bool,
}

#[derive(Default)]
struct PartitionState {
    next_sequence: i32,
}

/// A producer with an id and epoch from the cluster. Batches to one partition are sent one at
/// a time, in call order; different partitions proceed in parallel.
pub struct IdempotentProducer {
    client: KafkaClient,
    producer_id: i64,
    producer_epoch: i16,
    partitions: Mutex<HashMap<TopicPartition, Arc<tokio::sync::Mutex<PartitionState>>>>,
    /// Per broker, the queue of the task that combines batches into requests.
    combiners: Mutex<HashMap<i32, mpsc::UnboundedSender<Outgoing>>>,
}

/// Requests in flight per broker from one producer (a connection allows 5).
const REQUESTS_IN_FLIGHT: usize = 4;
/// Batch bytes combined into one request, at most (a larger batch goes alone).
const REQUEST_MAX_BYTES: usize = 16 * 1024 * 1024;

/// A stamped batch waiting for a combined request.
struct Outgoing {
    tp: TopicPartition,
    batch: Bytes,
    reply: oneshot::Sender<Option<Result<ProduceAck>>>,
}

impl std::fmt::Debug for IdempotentProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotentProducer")
            .field("producer_id", &self.producer_id)
            .field("producer_epoch", &self.producer_epoch)
            .finish_non_exhaustive()
    }
}

impl KafkaClient {
    /// Obtains a producer id (InitProducerId without a transactional id) and returns a
    /// producer that uses it.
    pub async fn idempotent_producer(&self) -> Result<IdempotentProducer> {
        let response = self
            .retry("InitProducerId", |_| async {
                let conn = self.any_connection().await?;
                let request = InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(i32::MAX);
                let response = conn.send(&request).await?;
                match ResponseError::try_from_code(response.error_code) {
                    None => Ok(response),
                    Some(code) => Err(Error::Broker {
                        broker: conn.label().to_owned(),
                        api: "InitProducerId",
                        resource: None,
                        code,
                        message: None,
                    }),
                }
            })
            .await?;
        Ok(IdempotentProducer {
            client: self.clone(),
            producer_id: response.producer_id.0,
            producer_epoch: response.producer_epoch,
            partitions: Mutex::new(HashMap::new()),
            combiners: Mutex::new(HashMap::new()),
        })
    }
}

impl IdempotentProducer {
    /// The producer id assigned by the cluster.
    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }

    /// The producer epoch assigned by the cluster.
    pub fn producer_epoch(&self) -> i16 {
        self.producer_epoch
    }

    /// Sends one record batch (magic v2, complete) to `tp` with acks=all and waits for the
    /// answer. The batch's producer id, epoch, base sequence and CRC are rewritten; records,
    /// timestamps, keys, values and headers are sent as they are. Retriable failures are
    /// retried with the same sequence number, so the broker drops a batch that an earlier,
    /// unanswered attempt already wrote.
    pub async fn send_batch(&self, tp: &TopicPartition, mut batch: BytesMut) -> Result<ProduceAck> {
        let state = {
            let mut map = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(tp.clone()).or_default().clone()
        };
        let mut state = state.lock().await;
        let sequence = state.next_sequence;
        let records =
            stamp_for_producer(&mut batch, self.producer_id, self.producer_epoch, sequence)
                .map_err(|e| Error::Config(format!("cannot produce to {tp}: {e}")))?;
        let batch = batch.freeze();

        let ack = self
            .client
            .retry("Produce", |_| self.send_once(tp, batch.clone()))
            .await?;
        // Sequences wrap at i32::MAX, as in the Java producer.
        state.next_sequence =
            ((i64::from(sequence) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32;
        Ok(ack)
    }

    /// One attempt: through the broker's combined requests, or, when a combined request
    /// failed as a whole (a broken connection, say), alone, so the error is this batch's own.
    async fn send_once(&self, tp: &TopicPartition, batch: Bytes) -> Result<ProduceAck> {
        let leader = self.client.leader_for(tp)?;
        let queue = {
            let mut map = self.combiners.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(leader)
                .or_insert_with(|| spawn_combiner(self.client.clone(), leader))
                .clone()
        };
        let (reply, answer) = oneshot::channel();
        let outgoing = Outgoing {
            tp: tp.clone(),
            batch: batch.clone(),
            reply,
        };
        if queue.send(outgoing).is_ok()
            && let Ok(Some(result)) = answer.await
        {
            return result;
        }
        self.send_alone(tp, batch).await
    }

    async fn send_alone(&self, tp: &TopicPartition, batch: Bytes) -> Result<ProduceAck> {
        let leader = self.client.leader_for(tp)?;
        let conn = self.client.broker_connection(leader).await?;
        let request = produce_request(&self.client, [(tp, batch)]);
        let response = conn.send(&request).await?;
        partition_result(conn.label(), tp, &response)
    }
}

/// A Produce request (acks=all) carrying one batch per partition.
fn produce_request<'a>(
    client: &KafkaClient,
    batches: impl IntoIterator<Item = (&'a TopicPartition, Bytes)>,
) -> ProduceRequest {
    let timeout_ms = i32::try_from(client.config().request_timeout.as_millis()).unwrap_or(i32::MAX);
    let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    for (tp, batch) in batches {
        topics.entry(tp.topic.as_str()).or_default().push(
            PartitionProduceData::default()
                .with_index(tp.partition)
                .with_records(Some(batch)),
        );
    }
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partition_data(partitions)
                })
                .collect(),
        )
}

/// Starts the task that sends the batches queued for `broker` in combined requests.
fn spawn_combiner(client: KafkaClient, broker: i32) -> mpsc::UnboundedSender<Outgoing> {
    let (queue, mut waiting) = mpsc::unbounded_channel::<Outgoing>();
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT));
        loop {
            // A slot first: while every request is in flight, batches gather in the queue
            // and go out together.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let Some(first) = waiting.recv().await else {
                return;
            };
            let mut bytes = first.batch.len();
            let mut group = vec![first];
            while bytes < REQUEST_MAX_BYTES {
                match waiting.try_recv() {
                    Ok(next) => {
                        bytes += next.batch.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            let client = client.clone();
            tokio::spawn(async move {
                let _slot = slot;
                send_group(&client, broker, group).await;
            });
        }
    });
    queue
}

/// Sends one combined request and hands each batch its own answer; `None` to all when the
/// request failed as a whole.
async fn send_group(client: &KafkaClient, broker: i32, group: Vec<Outgoing>) {
    let sent = async {
        let conn = client.broker_connection(broker).await?;
        let request = produce_request(client, group.iter().map(|o| (&o.tp, o.batch.clone())));
        let response = conn.send(&request).await?;
        Ok::<_, Error>((conn, response))
    }
    .await;
    match sent {
        Ok((conn, response)) => {
            for o in group {
                let _ = o
                    .reply
                    .send(Some(partition_result(conn.label(), &o.tp, &response)));
            }
        }
        Err(error) => {
            tracing::debug!(broker, %error, "a combined Produce request failed; its batches are sent alone");
            for o in group {
                let _ = o.reply.send(None);
            }
        }
    }
}

/// This partition's answer in a Produce response.
fn partition_result(
    broker: &str,
    tp: &TopicPartition,
    response: &kafka_protocol::messages::ProduceResponse,
) -> Result<ProduceAck> {
    let partition = response
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == tp.topic)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == tp.partition)
        .ok_or_else(|| Error::Protocol {
            broker: broker.to_owned(),
            detail: format!("the Produce answer left out partition {tp}"),
        })?;
    let log_append_time =
        (partition.log_append_time_ms >= 0).then_some(partition.log_append_time_ms);
    match ResponseError::try_from_code(partition.error_code) {
        None => Ok(ProduceAck {
            base_offset: partition.base_offset,
            log_append_time,
            duplicate: false,
        }),
        Some(ResponseError::DuplicateSequenceNumber) => Ok(ProduceAck {
            base_offset: partition.base_offset,
            log_append_time,
            duplicate: true,
        }),
        Some(code) => {
            let mut message = partition.error_message.as_ref().map(|m| m.to_string());
            for e in &partition.record_errors {
                let m = e
                    .batch_index_error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let note = format!("record {} of the batch: {m}", e.batch_index);
                message = Some(match message {
                    Some(prev) if !prev.is_empty() => format!("{prev}; {note}"),
                    _ => note,
                });
            }
            let error = Error::Broker {
                broker: broker.to_owned(),
                api: "Produce",
                resource: Some(format!("partition {tp}")),
                code,
                message,
            };
            if needs_metadata_refresh(code) {
                tracing::debug!(%tp, %error, "leader moved; will refresh metadata");
            }
            Err(error)
        }
    }
}

//! ListOffsets: a partition's earliest offset, end offset, or the first offset at or after a
//! timestamp, asked of each partition's leader.

use std::collections::BTreeMap;

use futures::future::join_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::KafkaClient;
use crate::error::{Error, Result, needs_metadata_refresh};
use crate::metadata::TopicPartition;

/// Which offset to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The end offset (high watermark, or last stable offset under read_committed).
    Latest,
    /// The first offset whose timestamp is at or after this many milliseconds since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ts) => ts,
        }
    }
}

/// Whether reads see records of open and aborted transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Every record up to the high watermark.
    #[default]
    ReadUncommitted,
    /// Only up to the last stable offset; aborted transactions are listed so they can be
    /// skipped.
    ReadCommitted,
}

impl IsolationLevel {
    pub(crate) fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// The answer for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset; -1 when a timestamp lookup found no record at or after the timestamp.
    pub offset: i64,
    /// The found record's timestamp for timestamp lookups, else -1.
    pub timestamp: i64,
    /// The leader epoch of that offset, when the broker reports it.
    pub leader_epoch: Option<i32>,
}

impl KafkaClient {
    /// Looks up `spec` for every partition, asking all leaders concurrently. Partitions whose
    /// leader moved are re-routed after a metadata refresh; other errors fail the call and
    /// name the partition.
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
        isolation: IsolationLevel,
    ) -> Result<BTreeMap<TopicPartition, ListedOffset>> {
        let mut done = BTreeMap::new();
        let mut todo: Vec<TopicPartition> = partitions.to_vec();
        let mut attempt = 0u32;
        loop {
            let by_leader = match self.group_by_leader(&todo) {
                Ok(g) => g,
                Err(e) if e.is_retriable() && attempt < self.config().max_retries => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                    self.refresh_metadata().await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let calls = by_leader
                .into_iter()
                .map(|(leader, tps)| self.list_offsets_on(leader, tps, spec, isolation));
            let mut retry = Vec::new();
            let mut last_error = None;
            for result in join_all(calls).await {
                match result {
                    Ok((answers, again)) => {
                        done.extend(answers);
                        retry.extend(again.into_iter().map(|(tp, e)| {
                            last_error = Some(e);
                            tp
                        }));
                    }
                    Err((tps, e)) if e.is_retriable() => {
                        retry.extend(tps);
                        last_error = Some(e);
                    }
                    Err((_, e)) => return Err(e),
                }
            }
            if retry.is_empty() {
                return Ok(done);
            }
            if attempt >= self.config().max_retries {
                return Err(last_error
                    .unwrap_or_else(|| Error::Config("ListOffsets retries exhausted".to_owned())));
            }
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
            self.refresh_metadata().await?;
            todo = retry;
        }
    }

    /// One ListOffsets request to one broker. Returns the answers and the partitions to retry
    /// elsewhere; a failure of the whole request returns its partitions with the error.
    #[allow(clippy::type_complexity)]
    async fn list_offsets_on(
        &self,
        broker: i32,
        partitions: Vec<TopicPartition>,
        spec: OffsetSpec,
        isolation: IsolationLevel,
    ) -> std::result::Result<
        (
            Vec<(TopicPartition, ListedOffset)>,
            Vec<(TopicPartition, Error)>,
        ),
        (Vec<TopicPartition>, Error),
    > {
        let conn = match self.broker_connection(broker).await {
            Ok(c) => c,
            Err(e) => return Err((partitions, e)),
        };
        let version = match conn.version::<ListOffsetsRequest>() {
            Ok(v) => v,
            Err(e) => return Err((partitions, e)),
        };
        let metadata = self.metadata();
        let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for tp in &partitions {
            let mut p = ListOffsetsPartition::default()
                .with_partition_index(tp.partition)
                .with_timestamp(spec.wire());
            if version >= 4 {
                // Lets the broker fence us if our view of the leader is stale.
                let epoch = metadata.partition(tp).map(|p| p.leader_epoch).unwrap_or(-1);
                p = p.with_current_leader_epoch(epoch);
            }
            by_topic.entry(tp.topic.as_str()).or_default().push(p);
        }
        let mut request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_owned())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        if version >= 2 {
            request = request.with_isolation_level(isolation.wire());
        }
        if version >= 10 {
            request = request.with_timeout_ms(self.config().request_timeout.as_millis() as i32);
        }
        let response = match conn
            .send_at(&request, version, std::time::Duration::ZERO)
            .await
        {
            Ok(r) => r,
            Err(e) => return Err((partitions, e)),
        };

        let mut answers = Vec::new();
        let mut again = Vec::new();
        for topic in response.topics {
            for p in topic.partitions {
                let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
                match ResponseError::try_from_code(p.error_code) {
                    None => answers.push((
                        tp,
                        ListedOffset {
                            offset: p.offset,
                            timestamp: p.timestamp,
                            leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                        },
                    )),
                    Some(code) => {
                        let error = Error::Broker {
                            broker: conn.label().to_owned(),
                            api: "ListOffsets",
                            resource: Some(format!("partition {tp}")),
                            code,
                            message: None,
                        };
                        if needs_metadata_refresh(code) || code.is_retriable() {
                            again.push((tp, error));
                        } else {
                            return Err((partitions, error));
                        }
                    }
                }
            }
        }
        // A partition missing from the answer is as good as a failure for it.
        for tp in &partitions {
            if !answers.iter().any(|(a, _)| a == tp) && !again.iter().any(|(a, _)| a == tp) {
                again.push((
                    tp.clone(),
                    Error::Protocol {
                        broker: conn.label().to_owned(),
                        detail: format!("the ListOffsets answer left out partition {tp}"),
                    },
                ));
            }
        }
        Ok((answers, again))
    }
}

//! The cluster as the last Metadata response described it: brokers, topics, partition leaders.

use std::collections::BTreeMap;
use std::fmt;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::MetadataResponse;
use uuid::Uuid;

use crate::config::BrokerAddress;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds a topic-partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A broker as advertised in metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    /// Node id.
    pub id: i32,
    /// Advertised address.
    pub address: BrokerAddress,
    /// Rack, if configured.
    pub rack: Option<String>,
}

/// One partition's replicas and leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition index.
    pub partition: i32,
    /// Leader node id, `None` while there is no leader.
    pub leader: Option<i32>,
    /// Leader epoch, -1 when the broker does not report it.
    pub leader_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
    /// A partition-level error (e.g. LEADER_NOT_AVAILABLE).
    pub error: Option<ResponseError>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Topic id (nil on brokers before Kafka 2.8). A topic deleted and re-created under the
    /// same name gets a new id.
    pub topic_id: Uuid,
    /// Whether Kafka marks it internal (`__consumer_offsets`, `__transaction_state`).
    pub is_internal: bool,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionMetadata>,
    /// A topic-level error (e.g. UNKNOWN_TOPIC_OR_PARTITION, TOPIC_AUTHORIZATION_FAILED).
    pub error: Option<ResponseError>,
}

/// The cluster's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// Cluster id (KIP-78), if the broker reports one.
    pub cluster_id: Option<String>,
    /// Controller node id, if known.
    pub controller_id: Option<i32>,
    /// Brokers by node id.
    pub brokers: BTreeMap<i32, BrokerMetadata>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMetadata>,
}

impl ClusterMetadata {
    /// Converts a Metadata response.
    pub fn from_response(response: &MetadataResponse) -> Self {
        let brokers = response
            .brokers
            .iter()
            .filter_map(|b| {
                let port = u16::try_from(b.port).ok()?;
                Some((
                    b.node_id.0,
                    BrokerMetadata {
                        id: b.node_id.0,
                        address: BrokerAddress::new(b.host.to_string(), port),
                        rack: b.rack.as_ref().map(|r| r.to_string()),
                    },
                ))
            })
            .collect();
        let topics = response
            .topics
            .iter()
            .filter_map(|t| {
                let name = t.name.as_ref()?.to_string();
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        (
                            p.partition_index,
                            PartitionMetadata {
                                partition: p.partition_index,
                                leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                                leader_epoch: p.leader_epoch,
                                replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
                                isr: p.isr_nodes.iter().map(|n| n.0).collect(),
                                error: ResponseError::try_from_code(p.error_code),
                            },
                        )
                    })
                    .collect();
                Some((
                    name.clone(),
                    TopicMetadata {
                        name,
                        topic_id: t.topic_id,
                        is_internal: t.is_internal,
                        partitions,
                        error: ResponseError::try_from_code(t.error_code),
                    },
                ))
            })
            .collect();
        Self {
            cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()),
            controller_id: (response.controller_id.0 >= 0).then_some(response.controller_id.0),
            brokers,
            topics,
        }
    }

    /// Replaces the given topics (and the broker list) with those of a newer, partial answer.
    pub fn merge(&mut self, newer: ClusterMetadata) {
        self.cluster_id = newer.cluster_id.or(self.cluster_id.take());
        self.controller_id = newer.controller_id.or(self.controller_id);
        if !newer.brokers.is_empty() {
            self.brokers = newer.brokers;
        }
        for (name, topic) in newer.topics {
            self.topics.insert(name, topic);
        }
    }

    /// A partition's metadata.
    pub fn partition(&self, tp: &TopicPartition) -> Option<&PartitionMetadata> {
        self.topics.get(&tp.topic)?.partitions.get(&tp.partition)
    }

    /// The topic name for a topic id.
    pub fn topic_name(&self, id: &Uuid) -> Option<&str> {
        self.topics
            .values()
            .find(|t| &t.topic_id == id)
            .map(|t| t.name.as_str())
    }
}

//! Consumer groups: finding a group's coordinator, listing and describing groups, and reading
//! and writing committed offsets.
//!
//! Offsets are committed outside any group generation (generation -1, no member id), the way
//! `kafka-consumer-groups --reset-offsets --execute` does it. Kafka accepts such a commit only
//! while the group has no members, which is exactly what a restore needs: it must never race
//! live consumers.
//!
//! No coordinator is cached: every operation looks the coordinator up (one small request), so a
//! moved coordinator (NOT_COORDINATOR) is handled by simply retrying.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    DescribeGroupsRequest, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::KafkaClient;
use crate::error::{Error, Result};
use crate::metadata::TopicPartition;

/// `key_type` of FindCoordinator for a consumer group (1 would be a transactional id).
const KEY_TYPE_GROUP: i8 = 0;

/// How many coordinator look-ups `describe_groups` runs at once.
const LOOKUP_CONCURRENCY: usize = 8;

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// `consumer` for consumer groups; `connect` and others for other group protocols; empty for
    /// groups that only store offsets.
    pub protocol_type: String,
    /// The group's state (`Empty`, `Stable`, ...), when the broker reports it (ListGroups v4+).
    pub state: Option<String>,
    /// The node id of the broker that listed it (its coordinator).
    pub coordinator: i32,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The member id the coordinator assigned.
    pub member_id: String,
    /// The static member id (`group.instance.id`), if set and the broker reports it
    /// (DescribeGroups v4+).
    pub group_instance_id: Option<String>,
    /// The member's `client.id`.
    pub client_id: String,
    /// The member's host as the broker saw it.
    pub client_host: String,
}

/// A group as DescribeGroups reports it.
///
/// Failures concern one group, not the call: when `error` is set (e.g.
/// GROUP_AUTHORIZATION_FAILED, INVALID_GROUP_ID) the other fields are empty. A group that does
/// not exist is not an error in Kafka: it is reported with state `Dead` (brokers before 4.0) and
/// no members.
#[derive(Debug)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// The group's state: `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Dead`.
    pub state: String,
    /// `consumer` for consumer groups.
    pub protocol_type: String,
    /// The partition assignor in use (e.g. `range`), empty when the group has no members.
    pub protocol: String,
    /// The current members.
    pub members: Vec<GroupMember>,
    /// The coordinator's node id, when it was found.
    pub coordinator: Option<i32>,
    /// Why this group could not be described.
    pub error: Option<Error>,
}

impl GroupDescription {
    fn failed(group_id: &str, coordinator: Option<i32>, error: Error) -> Self {
        Self {
            group_id: group_id.to_owned(),
            state: String::new(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
            coordinator,
            error: Some(error),
        }
    }

    fn from_response(g: &DescribedGroup, coordinator: i32) -> Self {
        Self {
            group_id: g.group_id.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                })
                .collect(),
            coordinator: Some(coordinator),
            error: None,
        }
    }
}

/// A committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The offset of the next record the group will consume.
    pub offset: i64,
    /// The leader epoch of the record before `offset`, when known (OffsetFetch v5+ reads it,
    /// OffsetCommit v6+ writes it).
    pub leader_epoch: Option<i32>,
    /// The consumer's metadata string; `None` when empty (Kafka stores "no metadata" as `""`).
    pub metadata: Option<String>,
}

impl CommittedOffset {
    /// An offset without leader epoch or metadata.
    pub fn new(offset: i64) -> Self {
        Self {
            offset,
            leader_epoch: None,
            metadata: None,
        }
    }
}

/// An OffsetFetch request for `group`; `topics` maps names to partitions, `None` asks for all.
fn offset_fetch_request(
    group: &str,
    version: i16,
    topics: Option<BTreeMap<String, Vec<i32>>>,
) -> OffsetFetchRequest {
    let request = OffsetFetchRequest::default()
        .with_group_id(str_bytes(group).into())
        .with_topics(topics.map(|ts| {
            ts.into_iter()
                .map(|(name, partitions)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName::from(StrBytes::from_string(name)))
                        .with_partition_indexes(partitions)
                })
                .collect()
        }));
    // Only v7 has the flag; it makes the broker wait for open transactions' offset commits
    // (answering UNSTABLE_OFFSET_COMMIT meanwhile) instead of hiding them.
    if version >= 7 {
        request.with_require_stable(true)
    } else {
        request
    }
}

/// Converts a broker error code into an error, or `None` for success.
pub(crate) fn broker_error(
    broker: &str,
    api: &'static str,
    resource: Option<String>,
    code: i16,
    message: Option<&StrBytes>,
) -> Option<Error> {
    ResponseError::try_from_code(code).map(|code| Error::Broker {
        broker: broker.to_owned(),
        api,
        resource,
        code,
        message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
    })
}

fn group_resource(group: &str) -> Option<String> {
    Some(format!("group {group}"))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Whether a group-level error means "ask again, maybe elsewhere": the coordinator moved, is
/// starting, or is loading the group.
fn is_coordinator_error(code: ResponseError) -> bool {
    matches!(
        code,
        ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress
    )
}

/// The codes with which a coordinator refuses a commit outside a generation because the group
/// has members (classic and KIP-848 group coordinators).
fn means_active_members(code: ResponseError) -> bool {
    matches!(
        code,
        ResponseError::UnknownMemberId
            | ResponseError::IllegalGeneration
            | ResponseError::RebalanceInProgress
            | ResponseError::StaleMemberEpoch
    )
}

impl KafkaClient {
    /// The node id of the coordinator of consumer group `group`. Retries while the coordinator
    /// is not available or still loading.
    pub async fn find_coordinator(&self, group: &str) -> Result<i32> {
        self.retry("FindCoordinator", |_| self.find_coordinator_once(group))
            .await
    }

    /// One FindCoordinator round trip. Used inside other operations' retry loops so that
    /// retries do not nest.
    async fn find_coordinator_once(&self, group: &str) -> Result<i32> {
        let conn = self.any_connection().await?;
        let version = conn.version::<FindCoordinatorRequest>()?;
        let response = conn
            .send_at(
                &find_coordinator_request(group, version),
                version,
                Duration::ZERO,
            )
            .await?;
        coordinator_from(&response, version, group, conn.label())
    }

    /// Every group of the cluster, sorted by id. Groups live on their coordinators, so every
    /// broker is asked. Fails rather than return a partial list when a broker cannot answer:
    /// a backup that silently misses groups is worse than one that stops.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        // An empty topic list asks for brokers only: cheap, and catches brokers added since the
        // last refresh.
        let metadata = self.fetch_metadata(Some(&[])).await?;
        let ids: Vec<i32> = metadata.brokers.keys().copied().collect();
        let answers =
            futures::future::join_all(ids.iter().map(|&id| self.list_groups_on(id))).await;
        let mut merged: BTreeMap<String, GroupListing> = BTreeMap::new();
        for answer in answers {
            for g in answer? {
                // While a coordinator moves, two brokers may both list a group; the first wins.
                merged.entry(g.group_id.clone()).or_insert(g);
            }
        }
        Ok(merged.into_values().collect())
    }

    async fn list_groups_on(&self, id: i32) -> Result<Vec<GroupListing>> {
        self.retry("ListGroups", |_| async move {
            let conn = self.broker_connection(id).await?;
            let version = conn.version::<ListGroupsRequest>()?;
            // No states filter: an empty filter means every state.
            let response = conn
                .send_at(&ListGroupsRequest::default(), version, Duration::ZERO)
                .await?;
            if let Some(e) =
                broker_error(conn.label(), "ListGroups", None, response.error_code, None)
            {
                return Err(e);
            }
            Ok(response
                .groups
                .iter()
                .map(|g| GroupListing {
                    group_id: g.group_id.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    state: (version >= 4).then(|| g.group_state.to_string()),
                    coordinator: id,
                })
                .collect())
        })
        .await
    }

    /// Describes `groups`, each asked of its coordinator, in the order given (duplicates
    /// removed). Failures that concern one group are returned in that group's
    /// [`GroupDescription::error`]; the call itself fails only when brokers cannot be reached.
    pub async fn describe_groups(&self, groups: &[String]) -> Result<Vec<GroupDescription>> {
        let mut seen = BTreeSet::new();
        let unique: Vec<&str> = groups
            .iter()
            .map(String::as_str)
            .filter(|g| seen.insert(*g))
            .collect();

        let lookups: Vec<(&str, Result<i32>)> = futures::stream::iter(unique.iter().copied())
            .map(|g| async move { (g, self.find_coordinator(g).await) })
            .buffered(LOOKUP_CONCURRENCY)
            .collect()
            .await;

        let mut done: BTreeMap<&str, GroupDescription> = BTreeMap::new();
        let mut by_coordinator: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
        for (g, lookup) in lookups {
            match lookup {
                Ok(id) => by_coordinator.entry(id).or_default().push(g),
                // The broker answered about this group (e.g. not authorized): the group's result.
                Err(e @ Error::Broker { .. }) => {
                    done.insert(g, GroupDescription::failed(g, None, e));
                }
                Err(e) => return Err(e),
            }
        }

        // The common case: one request per coordinator for all its groups.
        let batches = futures::future::join_all(
            by_coordinator
                .iter()
                .map(|(&id, gs)| self.describe_batch(id, gs)),
        )
        .await;
        let mut moved = Vec::new();
        for batch in batches {
            for (g, outcome) in batch? {
                match outcome {
                    Some(d) => {
                        done.insert(g, d);
                    }
                    None => moved.push(g),
                }
            }
        }
        // Groups whose coordinator moved or was loading: one at a time, each with its own
        // look-up and retries. Rare, so simplicity beats batching here.
        for g in moved {
            let d = self.describe_one(g).await?;
            done.insert(g, d);
        }

        Ok(unique.iter().filter_map(|g| done.remove(g)).collect())
    }

    /// Describes `groups` on coordinator `id`. A group maps to `None` when the broker says it is
    /// not (or not yet) its coordinator, so the caller must look again.
    async fn describe_batch<'a>(
        &self,
        id: i32,
        groups: &[&'a str],
    ) -> Result<Vec<(&'a str, Option<GroupDescription>)>> {
        let (conn, described) = self
            .retry("DescribeGroups", |_| async move {
                let conn = self.broker_connection(id).await?;
                let request = DescribeGroupsRequest::default()
                    .with_groups(groups.iter().map(|g| GroupId::from(str_bytes(g))).collect());
                let response = conn.send(&request).await?;
                Ok((conn, response.groups))
            })
            .await?;
        let by_id: BTreeMap<&str, &DescribedGroup> =
            described.iter().map(|d| (d.group_id.as_str(), d)).collect();
        Ok(groups
            .iter()
            .map(|&g| {
                let outcome = match by_id.get(g) {
                    None => None,
                    Some(d) => match broker_error(
                        conn.label(),
                        "DescribeGroups",
                        group_resource(g),
                        d.error_code,
                        d.error_message.as_ref(),
                    ) {
                        Some(e) if e.code().is_some_and(is_coordinator_error) => None,
                        Some(e) => Some(GroupDescription::failed(g, Some(id), e)),
                        None => Some(GroupDescription::from_response(d, id)),
                    },
                };
                (g, outcome)
            })
            .collect())
    }

    async fn describe_one(&self, group: &str) -> Result<GroupDescription> {
        let outcome = self
            .retry("DescribeGroups", |_| async move {
                let id = self.find_coordinator_once(group).await?;
                let conn = self.broker_connection(id).await?;
                let request =
                    DescribeGroupsRequest::default().with_groups(vec![str_bytes(group).into()]);
                let response = conn.send(&request).await?;
                let d = response
                    .groups
                    .iter()
                    .find(|d| d.group_id.as_str() == group)
                    .ok_or_else(|| Error::Protocol {
                        broker: conn.label().to_owned(),
                        detail: format!(
                            "the DescribeGroups answer does not mention group {group}, which was asked about"
                        ),
                    })?;
                match broker_error(
                    conn.label(),
                    "DescribeGroups",
                    group_resource(group),
                    d.error_code,
                    d.error_message.as_ref(),
                ) {
                    None => Ok(GroupDescription::from_response(d, id)),
                    // Retried by `retry`: coordinator errors are retriable.
                    Some(e) if e.is_retriable() => Err(e),
                    Some(e) => Ok(GroupDescription::failed(group, Some(id), e)),
                }
            })
            .await;
        match outcome {
            Ok(d) => Ok(d),
            Err(e @ Error::Broker { .. }) => Ok(GroupDescription::failed(group, None, e)),
            Err(e) => Err(e),
        }
    }

    /// The offsets group `group` has committed, for `topics` (every topic when `None`).
    /// Partitions without a committed offset are left out.
    ///
    /// On brokers with OffsetFetch v7 (Kafka 2.5+) this waits for pending transactional offset
    /// commits to complete (`require_stable`), so a backup never records an offset that is about
    /// to change. When `topics` is given, partitions are taken from cluster metadata; topics the
    /// cluster does not know are skipped, since their partitions cannot be listed.
    pub async fn fetch_committed_offsets(
        &self,
        group: &str,
        topics: Option<&[String]>,
    ) -> Result<BTreeMap<TopicPartition, CommittedOffset>> {
        // Naming the partitions (rather than asking for all) makes the broker report topics we
        // may not read as errors instead of silently leaving them out.
        let wanted = match topics {
            Some(topics) => Some(self.partitions_of(topics).await?),
            None => None,
        };
        if wanted.as_ref().is_some_and(BTreeMap::is_empty) {
            return Ok(BTreeMap::new());
        }
        let wanted = &wanted;
        self.retry("OffsetFetch", |_| async move {
            let id = self.find_coordinator_once(group).await?;
            let conn = self.broker_connection(id).await?;
            let version = conn.version::<OffsetFetchRequest>()?;
            let request_topics = match wanted {
                Some(w) => Some(w.clone()),
                // "All topics" (null) exists from v2; v1 must name every partition.
                None if version < 2 => Some(self.all_partitions().await?),
                None => None,
            };
            let asked_all = request_topics.is_none();
            let request = offset_fetch_request(group, version, request_topics);
            let (conn, response) = match conn.send_at(&request, version, Duration::ZERO).await {
                // Some Kafka-compatible brokers (seen with nisshi) answer "all topics" with a
                // body that does not parse. Naming every partition of the cluster instead gives
                // the same offsets (Kafka drops the offsets of deleted topics), only in a larger
                // request, so it is used only as a fallback. The failed connection was closed.
                Err(Error::Protocol { broker, detail }) if asked_all => {
                    tracing::warn!(
                        %broker, group, %detail,
                        "the broker's answer to OffsetFetch for all topics is malformed; asking for every partition by name instead"
                    );
                    let request =
                        offset_fetch_request(group, version, Some(self.all_partitions().await?));
                    let conn = self.broker_connection(id).await?;
                    let response = conn.send_at(&request, version, Duration::ZERO).await?;
                    (conn, response)
                }
                other => (conn, other?),
            };
            committed_offsets_from(&response, version, group, wanted.as_ref(), conn.label())
        })
        .await
    }

    /// The partitions of `topics` from fresh metadata. Unknown topics are skipped; other
    /// topic errors (such as missing Describe permission) fail.
    async fn partitions_of(&self, topics: &[String]) -> Result<BTreeMap<String, Vec<i32>>> {
        let metadata = self.fetch_metadata(Some(topics)).await?;
        let mut out = BTreeMap::new();
        for name in topics {
            let Some(t) = metadata.topics.get(name) else {
                continue;
            };
            match t.error {
                None => {}
                Some(ResponseError::UnknownTopicOrPartition) => continue,
                Some(code) => {
                    return Err(Error::Broker {
                        broker: "cluster".into(),
                        api: "Metadata",
                        resource: Some(format!("topic {name}")),
                        code,
                        message: None,
                    });
                }
            }
            out.insert(name.clone(), t.partitions.keys().copied().collect());
        }
        Ok(out)
    }

    /// Every partition of every non-internal topic, for OffsetFetch v1 which cannot ask for
    /// "all".
    async fn all_partitions(&self) -> Result<BTreeMap<String, Vec<i32>>> {
        let metadata = Box::pin(self.refresh_metadata()).await?;
        Ok(metadata
            .topics
            .values()
            .filter(|t| !t.is_internal && t.error.is_none())
            .map(|t| (t.name.clone(), t.partitions.keys().copied().collect()))
            .collect())
    }

    /// Commits `offsets` for group `group` outside any generation, as
    /// `kafka-consumer-groups --reset-offsets --execute` does. The group must have no active
    /// members: Kafka refuses such a commit while consumers are in the group, and this returns
    /// an error saying so. Leader epochs are sent on OffsetCommit v6+ (Kafka 2.1+) and dropped
    /// on older brokers.
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, CommittedOffset>,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let request = offset_commit_request(group, offsets)?;
        let request = &request;
        self.retry("OffsetCommit", |_| async move {
            let id = self.find_coordinator_once(group).await?;
            let conn = self.broker_connection(id).await?;
            let version = conn.version::<OffsetCommitRequest>()?;
            let response = conn.send_at(request, version, Duration::ZERO).await?;
            commit_outcome(&response, group, conn.label())
        })
        .await
    }
}

/// A FindCoordinator request for consumer group `group`.
fn find_coordinator_request(group: &str, version: i16) -> FindCoordinatorRequest {
    let request = FindCoordinatorRequest::default().with_key_type(KEY_TYPE_GROUP);
    // v4 (KIP-699) batches keys; before it there is exactly one key.
    if version >= 4 {
        request.with_coordinator_keys(vec![str_bytes(group)])
    } else {
        request.with_key(str_bytes(group))
    }
}

/// The coordinator's node id from a FindCoordinator answer about `group`.
fn coordinator_from(
    response: &FindCoordinatorResponse,
    version: i16,
    group: &str,
    broker: &str,
) -> Result<i32> {
    let (code, message, node_id) = if version >= 4 {
        let c = response
            .coordinators
            .iter()
            .find(|c| c.key.as_str() == group)
            .ok_or_else(|| Error::Protocol {
                broker: broker.to_owned(),
                detail: format!(
                    "the FindCoordinator answer does not mention group {group}, which was asked about"
                ),
            })?;
        (c.error_code, c.error_message.as_ref(), c.node_id.0)
    } else {
        (
            response.error_code,
            response.error_message.as_ref(),
            response.node_id.0,
        )
    };
    if let Some(e) = broker_error(
        broker,
        "FindCoordinator",
        group_resource(group),
        code,
        message,
    ) {
        return Err(e);
    }
    if node_id < 0 {
        return Err(Error::Broker {
            broker: broker.to_owned(),
            api: "FindCoordinator",
            resource: group_resource(group),
            code: ResponseError::CoordinatorNotAvailable,
            message: Some("the broker named no coordinator".into()),
        });
    }
    Ok(node_id)
}

/// The committed offsets in an OffsetFetch answer, limited to `wanted` when given. Partitions
/// without an offset (-1) are left out; any error code fails (UNSTABLE_OFFSET_COMMIT, while a
/// transaction is open, is retriable and so retried by the caller).
fn committed_offsets_from(
    response: &OffsetFetchResponse,
    version: i16,
    group: &str,
    wanted: Option<&BTreeMap<String, Vec<i32>>>,
    broker: &str,
) -> Result<BTreeMap<TopicPartition, CommittedOffset>> {
    // The group-level error code exists from v2; v1 repeats group errors per partition.
    if version >= 2
        && let Some(e) = broker_error(
            broker,
            "OffsetFetch",
            group_resource(group),
            response.error_code,
            None,
        )
    {
        return Err(e);
    }
    let mut out = BTreeMap::new();
    for t in &response.topics {
        let topic = t.name.as_str();
        let partitions = match wanted {
            Some(w) => match w.get(topic) {
                Some(ps) => Some(ps),
                None => continue,
            },
            None => None,
        };
        for p in &t.partitions {
            if partitions.is_some_and(|ps| !ps.contains(&p.partition_index)) {
                continue;
            }
            let tp = TopicPartition::new(topic, p.partition_index);
            if let Some(e) = broker_error(
                broker,
                "OffsetFetch",
                Some(format!("group {group}, partition {tp}")),
                p.error_code,
                None,
            ) {
                return Err(e);
            }
            if p.committed_offset < 0 {
                continue;
            }
            out.insert(
                tp,
                CommittedOffset {
                    offset: p.committed_offset,
                    // Decoded as -1 before v5, which has no such field.
                    leader_epoch: (p.committed_leader_epoch >= 0)
                        .then_some(p.committed_leader_epoch),
                    metadata: p
                        .metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .filter(|m| !m.is_empty()),
                },
            );
        }
    }
    Ok(out)
}

/// A commit of `offsets` for `group` outside any generation. The same request is valid at
/// every version: the fields that differ keep their defaults (retention -1, no instance id) or
/// are simply not encoded (leader epoch before v6).
fn offset_commit_request(
    group: &str,
    offsets: &BTreeMap<TopicPartition, CommittedOffset>,
) -> Result<OffsetCommitRequest> {
    if let Some((tp, o)) = offsets.iter().find(|(_, o)| o.offset < 0) {
        return Err(Error::Config(format!(
            "cannot commit offset {} for partition {tp} of group {group}: offsets are never negative",
            o.offset
        )));
    }
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, o) in offsets {
        by_topic.entry(&tp.topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(o.offset)
                .with_committed_leader_epoch(o.leader_epoch.unwrap_or(-1))
                // The Java consumer sends "" for no metadata; some brokers reject null.
                .with_committed_metadata(Some(str_bytes(o.metadata.as_deref().unwrap_or("")))),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            OffsetCommitRequestTopic::default()
                .with_name(TopicName::from(str_bytes(name)))
                .with_partitions(partitions)
        })
        .collect();
    Ok(OffsetCommitRequest::default()
        .with_group_id(str_bytes(group).into())
        // A "simple" commit: no generation, no member.
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_topics(topics))
}

/// The outcome of a commit from the per-partition error codes of its answer.
fn commit_outcome(response: &OffsetCommitResponse, group: &str, broker: &str) -> Result<()> {
    let failures: Vec<(TopicPartition, ResponseError)> = response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().filter_map(|p| {
                ResponseError::try_from_code(p.error_code).map(|code| {
                    (
                        TopicPartition::new(t.name.as_str(), p.partition_index),
                        code,
                    )
                })
            })
        })
        .collect();
    let Some((tp, code)) = failures
        .iter()
        // Retriable failures first: the commit is idempotent, so all of it is sent again.
        .find(|(_, c)| c.is_retriable())
        .or_else(|| failures.iter().find(|(_, c)| means_active_members(*c)))
        .or(failures.first())
        .cloned()
    else {
        return Ok(());
    };
    if means_active_members(code) {
        return Err(Error::Broker {
            broker: broker.to_owned(),
            api: "OffsetCommit",
            resource: group_resource(group),
            code,
            message: Some(format!(
                "group {group} has active members, and Kafka accepts offsets from outside the \
                 group only while it is empty. Stop every consumer of the group and try again \
                 once `kafka-consumer-groups --describe --group {group} --members` shows none \
                 (a consumer that was killed rather than closed stays a member until its session \
                 times out)"
            )),
        });
    }
    let others = failures.len() - 1;
    Err(Error::Broker {
        broker: broker.to_owned(),
        api: "OffsetCommit",
        resource: Some(format!("group {group}, partition {tp}")),
        code,
        message: (others > 0)
            .then(|| format!("{others} other partition(s) of this commit failed too")),
    })
}

#[cfg(test)]
mod tests;

//! The Kafka side of the least-privilege probe: what the configured principal may do on the
//! cluster, compared with its role, without harming data.
//!
//! - **describe** and **read** (backup: needed): Metadata for the selected topics, then a
//!   one-byte Fetch from the log start of the first partition of one of them.
//! - **create** (backup: forbidden; restore: needed): CreateTopics with `validate_only` for a
//!   topic named `_kb-permission-probe-<uuid>`: Kafka checks authorization before it
//!   validates, and creates nothing.
//! - **idempotent write** (backup: forbidden; restore: needed): InitProducerId without a
//!   transactional id, which needs IdempotentWrite on the cluster (or Write on a topic, as
//!   Kafka 3.0+ also accepts); it writes nothing.
//! - **group commit** (backup: forbidden; restore: needed): an OffsetCommit of offset 0 of the
//!   probe topic for a probe group `_kb-permission-probe-<uuid>`, deleted again when created.
//!
//! What it proves: an allowed request proves the right. A refusal (TOPIC_AUTHORIZATION_FAILED,
//! CLUSTER_AUTHORIZATION_FAILED, ...) proves only that this request was refused: ACLs on other
//! topics or prefixes are not tried. Brokers without an authorizer allow everything, and the
//! probe says so (a backup principal that may create topics is over-privileged there too).

use kafka_client::fetch::{FetchOptions, FetchPartition};
use kafka_client::{Error, IsolationLevel, KafkaClient, NewTopic, OffsetSpec, TopicPartition};
use kafka_protocol::ResponseError;

use super::{Check, Expect, Found, Role, judge};
use crate::config::TopicSelection;

/// Topic name prefix of the probe's CreateTopics request (never created on a broker that
/// honours `validate_only`).
pub const PROBE_TOPIC_PREFIX: &str = "_kb-permission-probe-";

fn is_denial(code: ResponseError) -> bool {
    matches!(
        code,
        ResponseError::TopicAuthorizationFailed
            | ResponseError::ClusterAuthorizationFailed
            | ResponseError::GroupAuthorizationFailed
            | ResponseError::TransactionalIdAuthorizationFailed
    )
}

/// Errors a broker gives only after it authorized a CreateTopics request.
fn is_validation(code: ResponseError) -> bool {
    matches!(
        code,
        ResponseError::TopicAlreadyExists
            | ResponseError::InvalidReplicationFactor
            | ResponseError::InvalidPartitions
            | ResponseError::InvalidReplicaAssignment
            | ResponseError::PolicyViolation
            | ResponseError::InvalidTopicException
            | ResponseError::InvalidConfig
    )
}

/// A request's outcome as the probe sees it: refused for authorization, allowed, or not
/// determined (another failure).
fn outcome(result: Result<(), Error>) -> (Found, String) {
    match result {
        Ok(()) => (Found::Allowed, "allowed".to_owned()),
        Err(e) => match e.code() {
            Some(code) if is_denial(code) => (Found::Denied, format!("denied ({code:?})")),
            _ => (Found::Unknown, e.to_string()),
        },
    }
}

/// Probes `client`'s principal for `role`; `topics` are the configuration's selection (the
/// backup's topics to read).
pub async fn probe(
    client: &KafkaClient,
    role: Role,
    topics: Option<&TopicSelection>,
) -> Vec<Check> {
    let (read_expect, create_expect, write_expect) = match role {
        Role::Backup => (Expect::Needed, Expect::Forbidden, Expect::Forbidden),
        Role::Restore => (Expect::Forbidden, Expect::Needed, Expect::Needed),
        Role::Validate | Role::Admin => (Expect::Forbidden, Expect::Forbidden, Expect::Forbidden),
    };
    let mut checks = Vec::new();
    if role == Role::Backup {
        let (describe, read) = describe_and_read(client, topics).await;
        checks.push(judge(
            role,
            "kafka describe",
            "Describe on the topics".into(),
            Expect::Needed,
            describe,
        ));
        checks.push(judge(
            role,
            "kafka read",
            "Read on the topics".into(),
            read_expect,
            read,
        ));
    }
    let name = format!("{PROBE_TOPIC_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let created = match client
        .create_topics(&[NewTopic::new(name.clone(), 1, 1)], true)
        .await
    {
        Ok(results) => match results.into_iter().next().and_then(|r| r.error) {
            // Any answer other than a refusal means authorization passed.
            Some(e) if e.code().is_some_and(is_denial) => outcome(Err(e)),
            // Validation that runs only after authorization passed.
            Some(e) if e.code().is_some_and(is_validation) => {
                (Found::Allowed, format!("allowed (then: {e})"))
            }
            Some(e) => (Found::Unknown, e.to_string()),
            None => (Found::Allowed, "allowed".to_owned()),
        },
        Err(e) => outcome(Err(e)),
    };
    checks.push(judge(
        role,
        "kafka create",
        "Create on the cluster or the topics".into(),
        create_expect,
        created,
    ));
    let idempotent = outcome(client.idempotent_producer().await.map(|_| ()));
    checks.push(judge(
        role,
        "kafka idempotent write",
        "IdempotentWrite on the cluster".into(),
        write_expect,
        idempotent,
    ));
    checks.push(judge(
        role,
        "kafka group commit",
        "Read on the consumer groups".into(),
        write_expect,
        group_commit(client, &name).await,
    ));
    checks
}

/// Commits offset 0 of the probe topic for a probe group: refused with
/// GROUP_AUTHORIZATION_FAILED when the principal may not commit groups. Kafka checks the
/// group before the topic, so an unknown probe topic still proves the group right. A probe
/// group that was created is deleted again.
async fn group_commit(client: &KafkaClient, probe_topic: &str) -> (Found, String) {
    let group = format!("{PROBE_TOPIC_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let offsets = std::collections::BTreeMap::from([(
        TopicPartition::new(probe_topic, 0),
        kafka_client::CommittedOffset::new(0),
    )]);
    let found = match client.commit_offsets(&group, &offsets).await {
        Ok(()) => (Found::Allowed, "allowed".to_owned()),
        Err(e) => match e.code() {
            Some(ResponseError::GroupAuthorizationFailed) => (
                Found::Denied,
                "denied (GroupAuthorizationFailed)".to_owned(),
            ),
            Some(ResponseError::UnknownTopicOrPartition) => (
                Found::Allowed,
                "allowed (the probe topic does not exist, after the group was authorized)"
                    .to_owned(),
            ),
            Some(ResponseError::TopicAuthorizationFailed) => (
                Found::Unknown,
                "the group was authorized, but Read on the probe topic was refused (committing \
                 a group's offsets also needs Read on each target topic)"
                    .to_owned(),
            ),
            _ => outcome(Err(e)),
        },
    };
    if found.0 == Found::Allowed {
        let _ = client.delete_groups(std::slice::from_ref(&group)).await;
    }
    found
}

/// Describe: Metadata of the selected topics (all topics, filtered). Read: a one-byte Fetch
/// from the log start of one selected topic's first partition.
async fn describe_and_read(
    client: &KafkaClient,
    topics: Option<&TopicSelection>,
) -> ((Found, String), (Found, String)) {
    let unknown = |why: String| ((Found::Unknown, why.clone()), (Found::Unknown, why));
    let metadata = match client.fetch_metadata(None).await {
        Ok(m) => m,
        Err(e) => {
            let o = outcome(Err(e));
            return (o.clone(), o);
        }
    };
    let selected: Vec<_> = metadata
        .topics
        .values()
        .filter(|t| topics.is_none_or(|s| s.includes(&t.name, t.is_internal)))
        .collect();
    if let Some(t) = selected.iter().find(|t| t.error.is_some_and(is_denial)) {
        let code = t.error.map(|c| format!("{c:?}")).unwrap_or_default();
        return (
            (
                Found::Denied,
                format!("denied on topic {} ({code})", t.name),
            ),
            (
                Found::Unknown,
                "not tried: the topic cannot be described".into(),
            ),
        );
    }
    let Some(topic) = selected.iter().find(|t| !t.partitions.is_empty()) else {
        return unknown(
            "no selected topic is visible: none exists yet, or the principal may not Describe \
             any (a broker leaves unauthorized topics out of its answer)"
                .into(),
        );
    };
    let describe = (Found::Allowed, format!("allowed (topic {})", topic.name));
    let Some((&partition, meta)) = topic.partitions.iter().next() else {
        return unknown("the topic has no partitions".into());
    };
    let tp = TopicPartition::new(&topic.name, partition);
    let Some(leader) = meta.leader else {
        return (describe, (Found::Unknown, format!("{tp} has no leader")));
    };
    let start = match client
        .list_offsets(
            std::slice::from_ref(&tp),
            OffsetSpec::Earliest,
            IsolationLevel::ReadUncommitted,
        )
        .await
    {
        Ok(offsets) => offsets.get(&tp).map_or(0, |o| o.offset.max(0)),
        Err(e) => return (describe, outcome(Err(e))),
    };
    let request = [FetchPartition {
        tp: tp.clone(),
        offset: start,
        max_bytes: 1,
    }];
    let options = FetchOptions {
        max_wait: std::time::Duration::from_millis(10),
        ..FetchOptions::default()
    };
    let read = match client.fetch(leader, &request, &options).await {
        Ok(result) => match result
            .partitions
            .iter()
            .find(|p| p.tp == tp)
            .and_then(|p| p.error)
        {
            Some(code) if is_denial(code) => (Found::Denied, format!("denied on {tp} ({code:?})")),
            Some(code) => (Found::Unknown, format!("{tp}: {code:?}")),
            None => (Found::Allowed, format!("allowed ({tp})")),
        },
        Err(e) => outcome(Err(e)),
    };
    (describe, read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_codes_are_denials_and_nothing_else_is() {
        let refused = |code| Error::Broker {
            broker: "b:9092".into(),
            api: "CreateTopics",
            resource: None,
            code,
            message: None,
        };
        for code in [
            ResponseError::TopicAuthorizationFailed,
            ResponseError::ClusterAuthorizationFailed,
            ResponseError::GroupAuthorizationFailed,
        ] {
            assert_eq!(outcome(Err(refused(code))).0, Found::Denied, "{code:?}");
        }
        for code in [
            ResponseError::UnknownTopicOrPartition,
            ResponseError::PolicyViolation,
            ResponseError::SaslAuthenticationFailed,
        ] {
            assert_eq!(outcome(Err(refused(code))).0, Found::Unknown, "{code:?}");
        }
        assert_eq!(outcome(Ok(())).0, Found::Allowed);
    }
}

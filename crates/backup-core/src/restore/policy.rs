//! What a backup's manifests may make a restore do to the target cluster. A manifest is data
//! from storage: even signed, it should not be able to set arbitrary topic configuration,
//! create absurd topics, or commit offsets for groups it has no business with. The limits
//! are shown in the dry run and named in every refusal.

use std::collections::BTreeMap;

/// Topic configurations a restore re-applies when it creates a topic: retention, cleanup and
/// compaction, segment rolling, message size and timestamp settings. Everything else
/// (replication throttles, placement, tiered storage, unclean leader election, vendor keys)
/// is left to the target cluster's defaults and reported.
pub const RESTORED_TOPIC_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.downconversion.enable",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
];

/// Largest partition count a restore creates a topic with unless configured otherwise.
pub const DEFAULT_MAX_PARTITIONS: i32 = 1_000;

/// Longest configuration value re-applied (Kafka's values are short; a long one is not a
/// configuration a topic had).
const MAX_CONFIG_VALUE_LEN: usize = 1_024;

/// Longest consumer-group id a restore commits offsets for.
const MAX_GROUP_ID_LEN: usize = 255;

/// Prefix of the consumer groups restores keep their own progress in.
pub const RESTORE_PROGRESS_GROUP_PREFIX: &str = "kafka-backup.restore.";

/// The configurations of `topic` that a created topic gets, and one warning per left-out or
/// worrying one.
pub fn restored_configs(
    topic: &str,
    configs: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut kept = BTreeMap::new();
    let mut left_out = Vec::new();
    for (name, value) in configs {
        if !RESTORED_TOPIC_CONFIGS.contains(&name.as_str())
            || value.len() > MAX_CONFIG_VALUE_LEN
            || value.chars().any(char::is_control)
        {
            left_out.push(name.as_str());
            continue;
        }
        if name == "retention.ms"
            && let Ok(ms) = value.parse::<i64>()
            && (0..3_600_000).contains(&ms)
        {
            warnings.push(format!(
                "topic {topic}: the backup's retention.ms is {ms} (under an hour): the broker will \
                 delete restored records older than that soon after they are written; set \
                 restore.topic_mapping to a topic you create yourself if that is not wanted"
            ));
        }
        kept.insert(name.clone(), value.clone());
    }
    if !left_out.is_empty() {
        warnings.push(format!(
            "topic {topic}: configuration {} from the backup is not re-applied (only retention, \
             cleanup, compaction, segment, message size and timestamp settings are); the target \
             cluster's defaults apply",
            left_out.join(", ")
        ));
    }
    kept
}

/// Why a topic of `partitions` partitions is not created, if it is not.
pub fn partition_problem(topic: &str, partitions: i32, max: i32) -> Option<String> {
    (partitions > max).then(|| {
        format!(
            "topic {topic}: the backup says it had {partitions} partitions, more than \
             restore.max_partitions ({max}); if that is right, raise restore.max_partitions"
        )
    })
}

/// Why offsets are not committed for `group`, if they are not: restores' own progress groups
/// are never written from a backup, and ids no client would use are refused.
pub fn group_problem(group: &str) -> Option<String> {
    if group.starts_with(RESTORE_PROGRESS_GROUP_PREFIX) {
        return Some(format!(
            "it is a restore's own progress group ({RESTORE_PROGRESS_GROUP_PREFIX}*), which is never \
             written from a backup"
        ));
    }
    if group.is_empty() || group.len() > MAX_GROUP_ID_LEN || group.chars().any(char::is_control) {
        return Some(format!(
            "the group id is empty, longer than {MAX_GROUP_ID_LEN} bytes, or has control \
             characters: not an id a consumer would use"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_configs_are_restored_and_short_retention_is_flagged() {
        let configs = BTreeMap::from([
            ("retention.ms".to_owned(), "1".to_owned()),
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            (
                "leader.replication.throttled.replicas".to_owned(),
                "*".to_owned(),
            ),
            (
                "unclean.leader.election.enable".to_owned(),
                "true".to_owned(),
            ),
            ("segment.ms".to_owned(), "x".repeat(2000)),
        ]);
        let mut warnings = Vec::new();
        let kept = restored_configs("orders", &configs, &mut warnings);
        assert_eq!(
            kept.keys().collect::<Vec<_>>(),
            ["cleanup.policy", "retention.ms"]
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("retention.ms is 1"));
        assert!(warnings[1].contains("unclean.leader.election.enable"));
        assert!(warnings[1].contains("segment.ms"));
    }

    #[test]
    fn partition_counts_and_group_ids_are_bounded() {
        assert!(partition_problem("t", 1_000_000, DEFAULT_MAX_PARTITIONS).is_some());
        assert!(partition_problem("t", 12, DEFAULT_MAX_PARTITIONS).is_none());
        assert!(group_problem("kafka-backup.restore.r1").is_some());
        assert!(group_problem("").is_some());
        assert!(group_problem("a\nb").is_some());
        assert!(group_problem(&"g".repeat(300)).is_some());
        assert!(group_problem("billing-service").is_none());
    }
}

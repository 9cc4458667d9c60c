//! Before fetching: which topics and partitions this run copies, where each one resumes (found
//! by listing storage, the only read a write-only identity may do), and where a snapshot stops.

use std::collections::{BTreeMap, BTreeSet};

use backup_format::naming::{self, GapKey, SegmentKey};
use backup_format::shard::Shard;
use kafka_client::{
    ClusterMetadata, IsolationLevel, KafkaClient, OffsetSpec, TopicPartition, non_default,
};

use super::{BackupError, RunProtection};
use crate::config::TopicSelection;
use crate::storage::Storage;

/// One partition's part of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionPlan {
    /// The partition.
    pub tp: TopicPartition,
    /// The topic's id: the lineage this partition's segments belong to.
    pub topic_id: String,
    /// Where this run starts reading.
    pub start: i64,
    /// The partition's log start offset on the source when the run began.
    pub log_start: i64,
    /// Where a snapshot stops (exclusive): the last stable offset when the run began.
    /// `None` in continuous mode.
    pub target_end: Option<i64>,
    /// Offsets deleted by retention between the previous run's end and this run's start.
    pub gap: Option<(i64, i64)>,
    /// Whether earlier runs wrote segments for this partition (of this lineage).
    pub resumed: bool,
    /// Why this partition cannot be backed up, found while planning.
    pub problem: Option<String>,
}

/// One topic's metadata as captured at the start of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicInfo {
    pub name: String,
    pub topic_id: String,
    pub is_internal: bool,
    pub partitions: u32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// The selected topics, in name order, with a clear error when nothing matches.
pub(crate) fn select_topics(
    metadata: &ClusterMetadata,
    selection: &TopicSelection,
) -> Result<Vec<String>, BackupError> {
    let chosen: Vec<String> = metadata
        .topics
        .values()
        .filter(|t| t.error.is_none() && selection.includes(&t.name, t.is_internal))
        .map(|t| t.name.clone())
        .collect();
    if chosen.is_empty() {
        let available: Vec<String> = metadata.topics.keys().cloned().collect();
        return Err(BackupError::NoTopicsMatched {
            include: selection.include.clone(),
            exclude: selection.exclude.clone(),
            available,
        });
    }
    Ok(chosen)
}

/// A topic's lineage: its id as a hyphenated lower-case UUID. Brokers before Kafka 2.8 have
/// no topic ids; their topics get the all-zero id, and re-creation cannot be detected.
pub(crate) fn lineage_of(id: &uuid::Uuid) -> String {
    id.hyphenated().to_string()
}

/// Captures partition counts, replication factors and topic-level configuration overrides.
pub(crate) async fn describe_topics(
    client: &KafkaClient,
    topics: &[String],
) -> Result<Vec<TopicInfo>, BackupError> {
    let metadata = client.metadata();
    let configs = match client.describe_topic_configs(topics).await {
        Ok(c) => c,
        Err(e) if e.kind() == kafka_client::ErrorKind::Authorization => {
            tracing::warn!(
                "cannot read topic configurations ({e}); the backup continues without them, so a \
                 restore will create topics with the target cluster's defaults"
            );
            BTreeMap::new()
        }
        Err(e) => return Err(e.into()),
    };
    Ok(topics
        .iter()
        .filter_map(|name| {
            let t = metadata.topics.get(name)?;
            let replication_factor = t
                .partitions
                .values()
                .map(|p| p.replicas.len())
                .max()
                .unwrap_or(0);
            let overrides = configs
                .get(name)
                .map(|entries| {
                    non_default(entries)
                        .into_iter()
                        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                        .collect()
                })
                .unwrap_or_default();
            Some(TopicInfo {
                name: name.clone(),
                topic_id: lineage_of(&t.topic_id),
                is_internal: t.is_internal,
                partitions: t.partitions.len() as u32,
                replication_factor: i16::try_from(replication_factor).unwrap_or(i16::MAX),
                configs: overrides,
            })
        })
        .collect())
}

/// What storage already holds for one partition of one lineage.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct StoredProgress {
    /// The end (exclusive) of the furthest segment or gap.
    pub end: Option<i64>,
    /// Segments already stored (for the manifest's record of earlier, unlisted work).
    pub segments: Vec<SegmentKey>,
}

/// Lists what earlier runs stored under each selected topic: segments and gap records per
/// partition of the current lineage, and the other lineages found (topics deleted and
/// re-created under the same name).
///
/// In a signed backup only objects whose names this backup's signing key signed count: an
/// object planted by someone else with write access (a segment "past the end" of a
/// partition, say) must not make the run skip real data. The others are left out with a
/// warning; `validate` reports them.
pub(crate) async fn stored_progress(
    storage: &Storage,
    backup_id: &str,
    topics: &[TopicInfo],
    protection: &RunProtection,
) -> Result<BTreeMap<TopicPartition, StoredProgress>, BackupError> {
    let own = protection
        .signing_key
        .as_ref()
        .map(|k| backup_format::signing::VerifyingKeys::new(vec![k.verifying_key().clone()]));
    let mut out: BTreeMap<TopicPartition, StoredProgress> = BTreeMap::new();
    let mut ignored: Vec<String> = Vec::new();
    for topic in topics {
        naming::validate_topic(&topic.name)?;
        let prefix = format!("{}{}/", naming::topics_prefix(backup_id)?, topic.name);
        let mut other_lineages = BTreeSet::new();
        for object in storage.list(&prefix).await? {
            let seg = naming::parse_segment_key(&object.key);
            let gap = naming::parse_gap_key(&object.key);
            if let Some(own) = &own {
                let signed = seg.as_ref().is_some_and(|s| s.verify(own).is_some())
                    || gap.as_ref().is_some_and(|g| g.verify(own).is_some());
                if (seg.is_some() || gap.is_some()) && !signed {
                    ignored.push(object.key);
                    continue;
                }
            }
            if let Some(seg) = seg {
                if seg.topic_id != topic.topic_id {
                    other_lineages.insert(seg.topic_id.clone());
                    continue;
                }
                let entry = out
                    .entry(TopicPartition::new(&topic.name, seg.partition))
                    .or_default();
                entry.end = Some(entry.end.unwrap_or(0).max(seg.last_offset + 1));
                entry.segments.push(seg);
            } else if let Some(GapKey {
                topic_id,
                partition,
                to,
                ..
            }) = gap
            {
                if topic_id != topic.topic_id {
                    other_lineages.insert(topic_id);
                    continue;
                }
                let entry = out
                    .entry(TopicPartition::new(&topic.name, partition))
                    .or_default();
                entry.end = Some(entry.end.unwrap_or(0).max(to));
            }
        }
        if !other_lineages.is_empty() {
            tracing::info!(
                topic = %topic.name,
                current = %topic.topic_id,
                earlier = ?other_lineages,
                "this topic was deleted and re-created since an earlier backup: the earlier \
                 lineages stay as they are and this run backs up the current one separately"
            );
        }
    }
    if !ignored.is_empty() {
        tracing::warn!(
            count = ignored.len(),
            first = %ignored[0],
            "objects whose names this backup's signing key did not sign were left out when \
             deciding where to resume (written before signing was enabled, with another key, or \
             planted by someone with write access to the bucket); run `kafka-backup validate`"
        );
    }
    Ok(out)
}

/// Decides each partition's start and, for a snapshot, its end: for the partitions `shard`
/// owns, or all of them.
pub(crate) async fn plan_partitions(
    client: &KafkaClient,
    topics: &[TopicInfo],
    stored: &BTreeMap<TopicPartition, StoredProgress>,
    snapshot: bool,
    shard: Option<Shard>,
) -> Result<Vec<PartitionPlan>, BackupError> {
    let tps: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| (0..t.partitions as i32).map(|p| TopicPartition::new(&t.name, p)))
        .filter(|tp| shard.is_none_or(|s| s.owns(&tp.topic, tp.partition)))
        .collect();
    if tps.is_empty() {
        return Ok(Vec::new());
    }
    let earliest = client
        .list_offsets(&tps, OffsetSpec::Earliest, IsolationLevel::ReadCommitted)
        .await?;
    // Under read_committed, Latest is the last stable offset: a snapshot never waits for a
    // transaction that is still open.
    let latest = if snapshot {
        Some(
            client
                .list_offsets(&tps, OffsetSpec::Latest, IsolationLevel::ReadCommitted)
                .await?,
        )
    } else {
        None
    };
    // The high watermark, whatever the mode: a log that ends below what earlier runs stored
    // was truncated.
    let high = client
        .list_offsets(&tps, OffsetSpec::Latest, IsolationLevel::ReadUncommitted)
        .await?;
    let ids: BTreeMap<&str, &str> = topics
        .iter()
        .map(|t| (t.name.as_str(), t.topic_id.as_str()))
        .collect();
    let mut plans = Vec::with_capacity(tps.len());
    for tp in tps {
        let log_start = earliest.get(&tp).map(|o| o.offset).unwrap_or(0).max(0);
        let previous = stored.get(&tp).and_then(|s| s.end);
        let (start, gap) = resume_point(previous, log_start);
        if let Some((from, to)) = gap {
            tracing::warn!(
                partition = %tp,
                from,
                to,
                "retention deleted offsets before they were backed up; the gap is recorded and \
                 the backup continues from the log start. Run backups more often than the \
                 topic's retention.ms, or use continuous mode"
            );
        }
        let target_end = latest
            .as_ref()
            .map(|l| l.get(&tp).map(|o| o.offset).unwrap_or(start));
        let log_end = high.get(&tp).map(|o| o.offset).unwrap_or(0);
        let problem = previous.filter(|&end| end > log_end).map(|end| {
            format!(
                "its log ends at offset {log_end}, below offset {end} that earlier runs already backed \
                 up: the partition was truncated (an unclean leader election, or the topic was \
                 re-created on a broker without topic ids). Offsets from {log_end} on may now hold \
                 different records; back it up under a new backup_id"
            )
        });
        plans.push(PartitionPlan {
            topic_id: ids
                .get(tp.topic.as_str())
                .copied()
                .unwrap_or_default()
                .to_owned(),
            tp,
            start,
            log_start,
            target_end,
            gap,
            resumed: previous.is_some(),
            problem,
        });
    }
    Ok(plans)
}

/// Where a partition resumes: after what earlier runs stored, unless retention has deleted
/// offsets since, in which case from the log start, with the deleted range as a gap. A first
/// backup starts at the log start and records no gap: nothing was lost that it ever had.
pub(crate) fn resume_point(previous_end: Option<i64>, log_start: i64) -> (i64, Option<(i64, i64)>) {
    match previous_end {
        Some(end) if end < log_start => (log_start, Some((end, log_start))),
        Some(end) => (end, None),
        None => (log_start, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_after_stored_data_and_records_retention_gaps() {
        assert_eq!(resume_point(None, 0), (0, None));
        assert_eq!(resume_point(None, 500), (500, None), "first run: no gap");
        assert_eq!(resume_point(Some(120), 100), (120, None));
        assert_eq!(resume_point(Some(120), 120), (120, None));
        assert_eq!(resume_point(Some(100), 150), (150, Some((100, 150))));
    }
}

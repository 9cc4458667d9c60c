//! Moving consumer groups: each committed source offset in the backup's group snapshot is
//! translated to the target offset of the same record and committed for the group in the
//! target cluster. Groups with active members in the target are reported, never overwritten.

use std::collections::BTreeMap;

use backup_format::manifest::GroupSnapshot;
use kafka_client::{CommittedOffset, KafkaClient, TopicPartition};
use serde::Serialize;

use super::RestoreError;
use super::offsets::OffsetMaps;
use crate::config::GroupSelection;

/// One translated position.
#[derive(Debug, Clone, Serialize)]
pub struct TranslatedOffset {
    /// Source topic.
    pub source_topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset in the source cluster.
    pub source_offset: i64,
    /// Target topic.
    pub target_topic: String,
    /// Target partition.
    pub target_partition: i32,
    /// Offset of the same record (or the next restored one) in the target.
    pub target_offset: i64,
}

/// What happened to one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupOutcome {
    /// Group id.
    pub group_id: String,
    /// `committed`, `would commit`, `skipped: ...`.
    pub status: String,
    /// The translated offsets.
    pub offsets: Vec<TranslatedOffset>,
}

/// Translates every selected group of `snapshot` through `maps`. `targets` maps source topic
/// names to target names; partitions of topics that were not restored are left out. Groups
/// that a backup may not set (see [`super::policy::group_problem`]) come back skipped, with
/// the reason.
pub fn translate(
    snapshot: &GroupSnapshot,
    selection: &GroupSelection,
    maps: &OffsetMaps,
    targets: &BTreeMap<String, String>,
) -> Vec<GroupOutcome> {
    let refused = snapshot
        .groups
        .iter()
        .filter(|g| selection.includes(&g.group_id))
        .filter_map(|g| {
            let why = super::policy::group_problem(&g.group_id)?;
            Some(GroupOutcome {
                group_id: g
                    .group_id
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(255)
                    .collect(),
                status: format!("skipped: {why}"),
                offsets: Vec::new(),
            })
        });
    let translated = snapshot
        .groups
        .iter()
        .filter(|g| {
            selection.includes(&g.group_id) && super::policy::group_problem(&g.group_id).is_none()
        })
        .map(|g| GroupOutcome {
            group_id: g.group_id.clone(),
            status: String::new(),
            offsets: g
                .offsets
                .iter()
                .filter_map(|o| {
                    let source = TopicPartition::new(&o.topic, o.partition);
                    targets.get(&o.topic)?;
                    let (target, map) = maps.for_source(&source)?;
                    Some(TranslatedOffset {
                        source_topic: o.topic.clone(),
                        partition: o.partition,
                        source_offset: o.offset,
                        target_topic: target.topic.clone(),
                        target_partition: target.partition,
                        target_offset: map.translate(o.offset),
                    })
                })
                .collect(),
        })
        .filter(|g| !g.offsets.is_empty());
    translated.chain(refused).collect()
}

/// Commits translated offsets, group by group, leaving groups with active members alone.
pub(crate) async fn commit(
    client: &KafkaClient,
    mut groups: Vec<GroupOutcome>,
    dry_run: bool,
) -> Result<Vec<GroupOutcome>, RestoreError> {
    let ids: Vec<String> = groups
        .iter()
        .filter(|g| g.status.is_empty())
        .map(|g| g.group_id.clone())
        .collect();
    let described = if ids.is_empty() {
        Vec::new()
    } else {
        client.describe_groups(&ids).await?
    };
    for g in groups.iter_mut().filter(|g| g.status.is_empty()) {
        let members = described
            .iter()
            .find(|d| d.group_id == g.group_id)
            .map(|d| d.members.len())
            .unwrap_or(0);
        if members > 0 {
            g.status = format!(
                "skipped: the group has {members} active member(s) in the target; stop its consumers and \
                 run the restore again (it only moves the groups)"
            );
            continue;
        }
        if dry_run {
            g.status = "would commit".to_owned();
            continue;
        }
        let offsets: BTreeMap<TopicPartition, CommittedOffset> = g
            .offsets
            .iter()
            .map(|o| {
                (
                    TopicPartition::new(&o.target_topic, o.target_partition),
                    CommittedOffset::new(o.target_offset),
                )
            })
            .collect();
        match client.commit_offsets(&g.group_id, &offsets).await {
            Ok(()) => g.status = "committed".to_owned(),
            Err(e)
                if e.kind() == kafka_client::ErrorKind::Broker
                    || e.kind() == kafka_client::ErrorKind::Authorization =>
            {
                // Active members joined between the check and the commit, or no ACL: report it.
                g.status = format!("skipped: {e}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(groups)
}

//! The target side before anything is produced: topics checked or created, and each target
//! partition's starting offset fixed in the progress store, so that a restore interrupted at
//! any point continues exactly where it stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kafka_client::{
    CommittedOffset, IsolationLevel, KafkaClient, NewTopic, OffsetSpec, TopicPartition,
};
use serde::{Deserialize, Serialize};

use super::RestoreError;
use crate::config::ProgressStore;

/// One topic to restore: where it comes from and where it goes.
#[derive(Debug, Clone)]
pub(crate) struct TopicPlan {
    pub source: String,
    pub target: String,
    /// Partitions in the backup.
    pub source_partitions: i32,
    /// Partitions the target topic must have.
    pub target_partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// What preparing the target did or, in a dry run, would do.
#[derive(Debug, Clone, Serialize)]
pub struct TopicAction {
    /// Target topic.
    pub topic: String,
    /// `exists`, `create` or `created`.
    pub action: String,
    /// Partitions of the target topic.
    pub partitions: i32,
    /// Partitions of the backed-up topic (differs when repartitioning).
    pub source_partitions: i32,
    /// Replication factor (for created topics).
    pub replication_factor: Option<i16>,
    /// Configuration overrides applied (for created topics).
    pub configs: BTreeMap<String, String>,
}

/// Checks that target topics exist with the right partition count, creating missing ones when
/// allowed (not in a dry run).
pub(crate) async fn prepare_topics(
    client: &KafkaClient,
    topics: &[TopicPlan],
    create: bool,
    dry_run: bool,
) -> Result<Vec<TopicAction>, RestoreError> {
    let names: Vec<String> = topics.iter().map(|t| t.target.clone()).collect();
    let metadata = client.fetch_metadata(Some(&names)).await?;
    let mut actions = Vec::new();
    let mut to_create = Vec::new();
    for t in topics {
        match metadata.topics.get(&t.target).filter(|m| m.error.is_none()) {
            Some(existing) => {
                let have = existing.partitions.len() as i32;
                if have != t.target_partitions {
                    return Err(RestoreError::Target(format!(
                        "target topic {} has {have} partitions but the restore needs {}: restore into a topic \
                         with {} partitions (restore.topic_mapping), or set restore.repartitioning.partitions: {have} \
                         to place records by key",
                        t.target, t.target_partitions, t.target_partitions
                    )));
                }
                actions.push(TopicAction {
                    topic: t.target.clone(),
                    action: "exists".into(),
                    partitions: have,
                    source_partitions: t.source_partitions,
                    replication_factor: None,
                    configs: BTreeMap::new(),
                });
            }
            None if !create => {
                return Err(RestoreError::Target(format!(
                    "target topic {} does not exist and restore.create_topics is false: create it with {} \
                     partitions, or set restore.create_topics: true",
                    t.target, t.target_partitions
                )));
            }
            None => {
                actions.push(TopicAction {
                    topic: t.target.clone(),
                    action: if dry_run {
                        "create".into()
                    } else {
                        "created".into()
                    },
                    partitions: t.target_partitions,
                    source_partitions: t.source_partitions,
                    replication_factor: Some(t.replication_factor),
                    configs: t.configs.clone(),
                });
                let mut new = NewTopic::new(&t.target, t.target_partitions, t.replication_factor);
                for (k, v) in &t.configs {
                    new = new.with_config(k, v);
                }
                to_create.push(new);
            }
        }
    }
    if !to_create.is_empty() && !dry_run {
        for result in client.create_topics(&to_create, false).await? {
            if let Some(e) = result.error {
                return Err(RestoreError::Target(format!(
                    "cannot create target topic {}: {e}",
                    result.name
                )));
            }
        }
        client.fetch_metadata(Some(&names)).await?;
    }
    Ok(actions)
}

/// Where one target partition's restore began, and what it restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StartRecord {
    pub target_topic: String,
    pub target_partition: i32,
    /// The target offset where this restore's first record went.
    pub start: i64,
    pub backup_id: String,
    pub source: String,
    pub lineage: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProgressFile {
    format: u32,
    restore_id: String,
    partitions: Vec<StartRecord>,
}

/// The consumer group that holds a restore's progress in the target cluster.
pub(crate) fn progress_group(restore_id: &str) -> String {
    format!("kafka-backup.restore.{restore_id}")
}

/// Reads the starting offsets earlier runs of this restore recorded.
pub(crate) async fn load_progress(
    client: &KafkaClient,
    store: &ProgressStore,
    restore_id: &str,
    targets: &[String],
) -> Result<BTreeMap<TopicPartition, StartRecord>, RestoreError> {
    match store {
        ProgressStore::Target => {
            let group = progress_group(restore_id);
            let committed = client
                .fetch_committed_offsets(&group, Some(targets))
                .await?;
            Ok(committed
                .into_iter()
                .map(|(tp, c)| {
                    // Brokers that do not keep commit metadata leave only the offset.
                    let record = c
                        .metadata
                        .as_deref()
                        .and_then(|m| serde_json::from_str::<StartRecord>(m).ok())
                        .unwrap_or_else(|| StartRecord {
                            target_topic: tp.topic.clone(),
                            target_partition: tp.partition,
                            start: c.offset,
                            backup_id: String::new(),
                            source: String::new(),
                            lineage: String::new(),
                        });
                    (
                        tp,
                        StartRecord {
                            start: c.offset,
                            ..record
                        },
                    )
                })
                .collect())
        }
        ProgressStore::File(path) => {
            // A progress file holds a few hundred bytes per partition; anything far larger is
            // not one, and is not read into memory.
            if let Ok(meta) = std::fs::metadata(path)
                && meta.len() > 16 << 20
            {
                return Err(progress_file_error(
                    path,
                    &format!(
                        "it is {} bytes, far larger than a progress file",
                        meta.len()
                    ),
                ));
            }
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
                Err(e) => return Err(progress_file_error(path, &e.to_string())),
            };
            let file: ProgressFile = serde_json::from_str(&text).map_err(|e| {
                progress_file_error(path, &format!("it is not a progress file ({e})"))
            })?;
            if file.restore_id != restore_id {
                return Err(progress_file_error(
                    path,
                    &format!(
                        "it belongs to restore `{}`, not `{restore_id}`",
                        file.restore_id
                    ),
                ));
            }
            let wanted: BTreeSet<&str> = targets.iter().map(String::as_str).collect();
            Ok(file
                .partitions
                .into_iter()
                .filter(|r| wanted.contains(r.target_topic.as_str()))
                .map(|r| (TopicPartition::new(&r.target_topic, r.target_partition), r))
                .collect())
        }
    }
}

fn progress_file_error(path: &Path, why: &str) -> RestoreError {
    RestoreError::Target(format!(
        "cannot use the progress file {}: {why}. Point restore.progress_file at this restore's own file, \
         or remove the key to keep progress in the target cluster",
        path.display()
    ))
}

/// Records starting offsets before anything is produced.
pub(crate) async fn save_progress(
    client: &KafkaClient,
    store: &ProgressStore,
    restore_id: &str,
    records: &BTreeMap<TopicPartition, StartRecord>,
) -> Result<(), RestoreError> {
    match store {
        ProgressStore::Target => {
            let offsets: BTreeMap<TopicPartition, CommittedOffset> = records
                .iter()
                .map(|(tp, r)| {
                    let metadata = serde_json::to_string(r).ok();
                    (
                        tp.clone(),
                        CommittedOffset {
                            offset: r.start,
                            leader_epoch: None,
                            metadata,
                        },
                    )
                })
                .collect();
            client
                .commit_offsets(&progress_group(restore_id), &offsets)
                .await
                .map_err(|e| {
                    RestoreError::Target(format!(
                        "cannot record the restore's progress in consumer group {}: {e}. Grant the \
                         principal Read on that group, or set restore.progress_file to keep progress \
                         in a local file",
                        progress_group(restore_id)
                    ))
                })
        }
        ProgressStore::File(path) => {
            let file = ProgressFile {
                format: 1,
                restore_id: restore_id.to_owned(),
                partitions: records.values().cloned().collect(),
            };
            let text = serde_json::to_string_pretty(&file)
                .map_err(|e| RestoreError::Internal(format!("cannot encode progress: {e}")))?;
            // Written aside and renamed, so a crash never leaves half a file.
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text)
                .and_then(|_| std::fs::rename(&tmp, path))
                .map_err(|e| progress_file_error(path, &e.to_string()))
        }
    }
}

/// The high watermark of each target partition.
pub(crate) async fn end_offsets(
    client: &KafkaClient,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, i64>, RestoreError> {
    Ok(client
        .list_offsets(
            partitions,
            OffsetSpec::Latest,
            IsolationLevel::ReadUncommitted,
        )
        .await?
        .into_iter()
        .map(|(tp, o)| (tp, o.offset))
        .collect())
}

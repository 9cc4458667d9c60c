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
        ProgressStore::File(path) => read_progress(path, restore_id, targets),
    }
}

/// The starting offsets a progress file holds for `targets`.
fn read_progress(
    path: &Path,
    restore_id: &str,
    targets: &[String],
) -> Result<BTreeMap<TopicPartition, StartRecord>, RestoreError> {
    let text = match read_progress_file(path) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(BTreeMap::new()),
        Err(why) => return Err(progress_file_error(path, &why)),
    };
    let file: ProgressFile = serde_json::from_str(&text)
        .map_err(|e| progress_file_error(path, &format!("it is not a progress file ({e})")))?;
    if file.format != PROGRESS_FORMAT {
        return Err(progress_file_error(
            path,
            &format!(
                "it is in progress-file format {}, and this version reads format \
                     {PROGRESS_FORMAT} only",
                file.format
            ),
        ));
    }
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

/// The version of the progress file's layout.
const PROGRESS_FORMAT: u32 = 1;

/// A progress file holds a few hundred bytes per partition; anything far larger is not one.
const MAX_PROGRESS_FILE: u64 = 16 << 20;

/// The progress file's text, `None` when there is none yet. Read through a bound, not after a
/// size check, so a file that grows in between cannot make it read more.
fn read_progress_file(path: &Path) -> Result<Option<String>, String> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut bytes = Vec::new();
    file.take(MAX_PROGRESS_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_PROGRESS_FILE {
        return Err(format!(
            "it is larger than {MAX_PROGRESS_FILE} bytes, far larger than a progress file"
        ));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| "it is not a progress file (not UTF-8 text)".to_owned())
}

/// Writes `bytes` to `path` through a new file beside it, readable by its owner only
/// (whatever the umask) and renamed over `path` once complete: a crash never leaves half a
/// file, and no other user can read the offsets or swap the file while it is written.
fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
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
                format: PROGRESS_FORMAT,
                restore_id: restore_id.to_owned(),
                partitions: records.values().cloned().collect(),
            };
            let text = serde_json::to_string_pretty(&file)
                .map_err(|e| RestoreError::Internal(format!("cannot encode progress: {e}")))?;
            write_private_atomically(path, text.as_bytes())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_progress_file_is_private_whatever_the_umask_and_leaves_no_temporary() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.json");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private_atomically(&path, b"{\"new\": 1}").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"new\": 1}");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left behind");
    }

    #[test]
    fn a_progress_file_is_read_through_a_bound_and_its_format_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.json");
        let targets = ["t".to_owned()];
        assert!(read_progress(&path, "r", &targets).unwrap().is_empty());

        let big = std::fs::File::create(&path).unwrap();
        big.set_len(MAX_PROGRESS_FILE + 1).unwrap();
        let e = read_progress(&path, "r", &targets).unwrap_err().to_string();
        assert!(e.contains("far larger than a progress file"), "{e}");

        std::fs::write(
            &path,
            r#"{"format": 2, "restore_id": "r", "partitions": []}"#,
        )
        .unwrap();
        let e = read_progress(&path, "r", &targets).unwrap_err().to_string();
        assert!(e.contains("format 2") && e.contains("format 1 only"), "{e}");

        std::fs::write(
            &path,
            r#"{"format": 1, "restore_id": "other", "partitions": []}"#,
        )
        .unwrap();
        let e = read_progress(&path, "r", &targets).unwrap_err().to_string();
        assert!(e.contains("belongs to restore `other`"), "{e}");

        std::fs::write(
            &path,
            r#"{"format": 1, "restore_id": "r", "partitions": []}"#,
        )
        .unwrap();
        assert!(read_progress(&path, "r", &targets).unwrap().is_empty());
    }
}

//! Restore drills: prove that a backup restores, rather than assume it.
//!
//! [`run_drill`] restores the backup a restore configuration names into scratch topics (every
//! target name prefixed) and scratch consumer groups (the same prefix), then proves the result
//! record by record: each partition read back from the target must hold exactly the records
//! the backup holds (count and digest, see [`digest`]), and each consumer group moved must
//! resume at the same record in the target as in the source. It measures the time to restore
//! (RTO, as observed) and the age of the newest backed-up data (RPO, as observed). [`cleanup`]
//! deletes what the drill created.

pub mod digest;

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use kafka_client::{KafkaClient, TopicPartition};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;

use crate::catalog::{Catalog, CatalogError};
use crate::config::LoadedConfig;
use crate::restore::{RestoreError, RestoreOptions, RestoreReport, run_restore};
use crate::storage::{Storage, StorageError};

/// Why a drill could not be carried out (a drill that ran and found differences is a
/// [`DrillReport`] with `proven: false`, not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrillError {
    /// The configuration cannot be drilled as it is.
    #[error("{0}")]
    Config(String),
    /// The restore itself failed.
    #[error(transparent)]
    Restore(Box<RestoreError>),
    /// Reading the backup failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Storage failed while reading the backup for the comparison.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The backup's data could not be read for the comparison.
    #[error("reading the backup for the comparison: {0}")]
    Backup(String),
    /// The target could not be read back.
    #[error("reading the restored data back from the target: {0}")]
    Target(String),
    /// The target cluster failed.
    #[error(transparent)]
    Kafka(#[from] kafka_client::Error),
}

impl From<RestoreError> for DrillError {
    fn from(e: RestoreError) -> Self {
        Self::Restore(Box::new(e))
    }
}

/// What a drill does besides the restore configuration.
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// Prefix of every scratch topic and group (and of the restore id).
    pub prefix: String,
    /// The restore's own options (keys from the command line, expected runs, ...).
    pub restore: RestoreOptions,
}

/// One partition, proven or not.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionProof {
    /// Source partition (`topic-partition`).
    pub source: String,
    /// Scratch target partition.
    pub target: String,
    /// Records in the backup (as a read_committed consumer sees them).
    pub backup_records: u64,
    /// Records read back from the target.
    pub target_records: u64,
    /// SHA-256 over the backup's record digests, hex.
    pub backup_sha256: String,
    /// SHA-256 over the target's record digests, hex.
    pub target_sha256: String,
    /// Both sides are equal.
    pub proven: bool,
    /// Where they first differ, when they do.
    pub first_difference: Option<String>,
}

/// One consumer group's position on one partition, proven or not.
#[derive(Debug, Clone, Serialize)]
pub struct GroupProof {
    /// The group in the backup.
    pub group_id: String,
    /// The scratch group the drill committed.
    pub drill_group: String,
    /// Source partition.
    pub source: String,
    /// Its committed offset in the source.
    pub source_offset: i64,
    /// The translated offset committed in the target.
    pub target_offset: i64,
    /// The offset the target actually holds for the scratch group.
    pub committed_offset: Option<i64>,
    /// How many backed-up records lie before the source offset.
    pub backup_position: u64,
    /// How many restored records lie before the target offset.
    pub target_position: u64,
    /// The group resumes at the same record.
    pub proven: bool,
}

/// What a drill found.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// The backup.
    pub backup_id: String,
    /// The scratch prefix.
    pub prefix: String,
    /// When the drill started, RFC 3339.
    pub started_at: String,
    /// Time to restore, seconds (RTO as observed).
    pub restore_secs: f64,
    /// Time to read everything back and compare, seconds.
    pub verify_secs: f64,
    /// Newest backed-up record timestamp, RFC 3339 (producers set timestamps: one in the
    /// future makes its age negative).
    pub newest_record: Option<String>,
    /// Its age at the start of the drill, seconds.
    pub newest_record_age_secs: Option<f64>,
    /// When the newest run finished, RFC 3339: the backup holds the source up to then.
    pub last_run_finished: Option<String>,
    /// Its age at the start of the drill, seconds (RPO as observed: what a loss of the
    /// cluster now would lose, had the backup been the only copy).
    pub rpo_secs: Option<f64>,
    /// Partitions compared.
    pub partitions: Vec<PartitionProof>,
    /// Group positions compared.
    pub groups: Vec<GroupProof>,
    /// Records restored.
    pub records: u64,
    /// Every partition and group proven.
    pub proven: bool,
    /// Scratch topics this drill created (the only ones `--cleanup` deletes).
    pub topics: Vec<String>,
    /// Target topics that existed before this drill (an earlier drill's with the same
    /// prefix): compared, never deleted.
    pub existing_topics: Vec<String>,
    /// Scratch groups committed, and the restore's progress group.
    pub consumer_groups: Vec<String>,
    /// Groups under the prefix that existed before the drill: never deleted.
    pub preexisting_groups: Vec<String>,
    /// Selected groups the restore did not move, with why: each fails the proof.
    pub groups_not_moved: Vec<String>,
    /// The restore's warnings.
    pub warnings: Vec<String>,
}

fn hex(b: &[u8]) -> String {
    crate::keys::hex(b)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn split_tp(s: &str) -> Option<TopicPartition> {
    let (topic, p) = s.rsplit_once('-')?;
    Some(TopicPartition::new(topic, p.parse().ok()?))
}

/// The restore configuration turned into the drill's: every selected topic restored under
/// `prefix` into newly created topics, from a fresh restore id.
fn drill_config(
    config: &LoadedConfig,
    catalog: &Catalog,
    prefix: &str,
) -> Result<LoadedConfig, DrillError> {
    let mut config = config.clone();
    let settings = config.restore.as_mut().ok_or_else(|| {
        DrillError::Config(
            "drill needs a restore configuration (mode: restore): its target is where the \
             scratch topics are created"
                .into(),
        )
    })?;
    if settings.time_window_start.is_some() || settings.time_window_end.is_some() {
        return Err(DrillError::Config(
            "a drill proves a whole restore; this configuration restores a time window \
             (restore.time_window_start/end): drill with a configuration without one"
                .into(),
        ));
    }
    if settings.repartition_to.is_some() {
        return Err(DrillError::Config(
            "a drill compares partitions one to one; this configuration repartitions \
             (restore.repartition_to): drill with a configuration without it"
                .into(),
        ));
    }
    let mut mapping = BTreeMap::new();
    for name in catalog.topics.keys() {
        if settings.topics.includes(name, false) {
            let target = settings.topic_mapping.get(name).unwrap_or(name);
            mapping.insert(name.clone(), format!("{prefix}{target}"));
        }
    }
    if mapping.is_empty() {
        return Err(DrillError::Config(
            "restore.topics selects no topic of this backup: nothing to drill".into(),
        ));
    }
    settings.topic_mapping = mapping;
    settings.create_topics = true;
    settings.append = false;
    settings.dry_run = false;
    settings.restore_id = format!("{prefix}{}", settings.restore_id);
    settings.progress = crate::config::ProgressStore::Target;
    Ok(config)
}

/// Restores into scratch topics and groups named `options.prefix…` and proves the result.
pub async fn run_drill(
    config: &LoadedConfig,
    storage: Storage,
    options: DrillOptions,
) -> Result<DrillReport, DrillError> {
    let started_at = OffsetDateTime::from(SystemTime::now());
    let read = config.read_keys(&options.restore.verify_keys, &options.restore.expected_runs);
    let mut catalog = Catalog::load(&storage, &config.backup_id, &read.trust).await?;
    if options.restore.accept_unauthenticated {
        catalog.admit_unauthenticated();
    }
    let drill = drill_config(config, &catalog, &options.prefix)?;
    let restore_id = drill.restore.as_ref().map(|r| r.restore_id.clone());

    let client = KafkaClient::connect(
        drill
            .cluster
            .client_config()
            .map_err(|e| DrillError::Config(e.to_string()))?,
    )
    .await?;
    // Groups under the prefix before the drill are not the drill's: cleanup leaves them.
    let preexisting_groups: Vec<String> = client
        .list_groups()
        .await?
        .into_iter()
        .map(|g| g.group_id)
        .filter(|g| g.starts_with(&options.prefix))
        .collect();

    let (_stop, stop_rx) = watch::channel(false);
    let mut restore_options = options.restore.clone();
    restore_options.group_prefix = Some(options.prefix.clone());
    restore_options.dry_run = false;
    let clock = Instant::now();
    let report: RestoreReport =
        run_restore(&drill, storage.clone(), restore_options, stop_rx).await?;
    let restore_secs = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    client.refresh_metadata().await?;
    let keys = read.data.as_deref();
    let mut sides: BTreeMap<String, (digest::Side, digest::Side)> = BTreeMap::new();
    let mut partitions = Vec::new();
    for p in &report.partitions {
        let (Some(src), Some(dst)) = (split_tp(&p.source), split_tp(&p.target)) else {
            continue;
        };
        let segments = catalog
            .topics
            .get(&src.topic)
            .and_then(|t| t.latest_lineage())
            .and_then(|l| l.partitions.get(&src.partition))
            .map(|pc| pc.segments.clone())
            .unwrap_or_default();
        let backup = digest::backup_side(&storage, &segments, keys).await?;
        let target = digest::target_side(&client, &dst, p.target_start, p.target_end).await?;
        let first_difference = digest::first_difference(&backup, &target);
        partitions.push(PartitionProof {
            source: p.source.clone(),
            target: p.target.clone(),
            backup_records: backup.records.len() as u64,
            target_records: target.records.len() as u64,
            backup_sha256: hex(&backup.digest()),
            target_sha256: hex(&target.digest()),
            proven: first_difference.is_none(),
            first_difference,
        });
        sides.insert(p.source.clone(), (backup, target));
    }

    let mut groups = Vec::new();
    let mut consumer_groups = Vec::new();
    // A selected group the restore did not move is a failed proof, not one left out.
    let groups_not_moved: Vec<String> = report
        .consumer_groups
        .iter()
        .filter(|g| g.status != "committed")
        .map(|g| format!("{}: {}", g.group_id, g.status))
        .collect();
    for g in report
        .consumer_groups
        .iter()
        .filter(|g| g.status == "committed")
    {
        consumer_groups.push(g.group_id.clone());
        let source_id = g
            .group_id
            .strip_prefix(&options.prefix)
            .unwrap_or(&g.group_id)
            .to_owned();
        let committed = client
            .fetch_committed_offsets(&g.group_id, None)
            .await
            .unwrap_or_default();
        for o in &g.offsets {
            let source = format!("{}-{}", o.source_topic, o.partition);
            let Some((backup, target)) = sides.get(&source) else {
                continue;
            };
            let committed_offset = committed
                .get(&TopicPartition::new(&o.target_topic, o.target_partition))
                .map(|c| c.offset);
            let backup_position = backup.position_of(o.source_offset) as u64;
            let target_position = target.position_of(o.target_offset) as u64;
            groups.push(GroupProof {
                group_id: source_id.clone(),
                drill_group: g.group_id.clone(),
                source,
                source_offset: o.source_offset,
                target_offset: o.target_offset,
                committed_offset,
                backup_position,
                target_position,
                proven: backup_position == target_position
                    && committed_offset == Some(o.target_offset),
            });
        }
    }
    if let Some(id) = &restore_id {
        consumer_groups.push(crate::restore::progress_group_of(id));
    }
    let verify_secs = clock.elapsed().as_secs_f64();

    let newest = sides.values().filter_map(|(b, _)| b.newest_timestamp).max();
    let newest_record = newest
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok());
    let last_run_finished = catalog
        .manifests
        .iter()
        .filter_map(|m| m.manifest.finished_at.as_deref())
        .filter_map(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .max();
    // Nothing compared proves nothing.
    let proven = !partitions.is_empty()
        && partitions.iter().all(|p| p.proven)
        && groups.iter().all(|g| g.proven)
        && groups_not_moved.is_empty();
    Ok(DrillReport {
        backup_id: config.backup_id.clone(),
        prefix: options.prefix,
        started_at: rfc3339(started_at),
        restore_secs,
        verify_secs,
        newest_record: newest_record.map(rfc3339),
        newest_record_age_secs: newest_record.map(|t| (started_at - t).as_seconds_f64()),
        last_run_finished: last_run_finished.map(rfc3339),
        rpo_secs: last_run_finished.map(|t| (started_at - t).as_seconds_f64()),
        records: report.partitions.iter().map(|p| p.records).sum(),
        proven,
        topics: report
            .topics
            .iter()
            .filter(|t| t.action == "created")
            .map(|t| t.topic.clone())
            .collect(),
        existing_topics: report
            .topics
            .iter()
            .filter(|t| t.action != "created")
            .map(|t| t.topic.clone())
            .collect(),
        consumer_groups,
        preexisting_groups,
        groups_not_moved,
        partitions,
        groups,
        warnings: report.warnings,
    })
}

/// What [`cleanup`] could not delete, with why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cleanup {
    /// Topics deleted.
    pub topics_deleted: Vec<String>,
    /// Groups deleted.
    pub groups_deleted: Vec<String>,
    /// What stayed, and why.
    pub failed: Vec<String>,
}

/// Deletes the scratch topics and groups of `report`: only names under the drill's prefix.
pub async fn cleanup(config: &LoadedConfig, report: &DrillReport) -> Result<Cleanup, DrillError> {
    let client = KafkaClient::connect(
        config
            .cluster
            .client_config()
            .map_err(|e| DrillError::Config(e.to_string()))?,
    )
    .await?;
    let mut out = Cleanup::default();
    let ours = |name: &&String| {
        name.starts_with(&report.prefix) || name.contains(&format!(".{}", report.prefix))
    };
    let topics: Vec<String> = report.topics.iter().filter(ours).cloned().collect();
    for (t, e) in client.delete_topics(&topics).await? {
        match e {
            None => out.topics_deleted.push(t),
            Some(e) => out.failed.push(format!("topic {t}: {e}")),
        }
    }
    let groups: Vec<String> = report
        .consumer_groups
        .iter()
        .filter(ours)
        .cloned()
        .collect();
    for (g, e) in client.delete_groups(&groups).await? {
        match e {
            None => out.groups_deleted.push(g),
            Some(e) => out.failed.push(format!("group {g}: {e}")),
        }
    }
    Ok(out)
}

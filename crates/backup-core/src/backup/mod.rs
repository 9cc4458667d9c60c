//! `backup`: copy the selected topics of a cluster to storage, losslessly and resumably, with
//! storage credentials that may only write and list.
//!
//! A run plans (topics, resume points from a LIST, snapshot end offsets), then fetches with
//! read_committed, writes record batches exactly as fetched into segments, stores each
//! segment once under a name that carries its range and hash, records retention gaps as they
//! are found, and writes its own manifest (in parts, in continuous mode) with the topics'
//! metadata and a snapshot of consumer-group offsets.

mod clock;
mod engine;
mod groups;
mod partition;
mod plan;
pub mod progress;
mod sink;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backup_format::crypto::RunKey;
use backup_format::manifest::{
    BackupDescriptor, GroupSnapshot, MANIFEST_FORMAT, ManifestLink, PartitionEnd, RunManifest,
    RunMode, RunStatus, RunSummary, SourceCluster, TopicSnapshot,
};
use backup_format::naming::{self, NameError};
use backup_format::segment::{Compression as SegmentCompression, WriterOptions};
use backup_format::shard::Shard;
use backup_format::signing::SigningKey;
use bytes::Bytes;
use kafka_client::{KafkaClient, TopicPartition};
use serde::Serialize;
use tokio::sync::watch;

use crate::config::{BackupPlan, Compression, LoadedConfig};
use crate::storage::{Storage, StorageError};
use clock::now_rfc3339;
use engine::{Engine, LoopExit};
use partition::{BufferPool, PartitionState, RunIdentity, Status};
use plan::TopicInfo;
pub use progress::ProgressMode;

/// Why a backup could not run or finish, classified by what the operator can do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The configuration cannot work (fix it and run again).
    #[error("{0}")]
    Config(String),
    /// No topic of the cluster matches the selection.
    #[error(
        "no topic matches source.topics (include {include:?}, exclude {exclude:?}); the cluster has {}. \
         Fix the patterns (internal topics such as __consumer_offsets need a pattern that starts with `__`)",
        if available.is_empty() { "no topics this principal can see".to_owned() } else { available.join(", ") }
    )]
    NoTopicsMatched {
        /// Include patterns.
        include: Vec<String>,
        /// Exclude patterns.
        exclude: Vec<String>,
        /// The topics the cluster has.
        available: Vec<String>,
    },
    /// Kafka failed (connection, authentication, authorization, protocol).
    #[error(transparent)]
    Kafka(#[from] kafka_client::Error),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A record batch or segment could not be written in the backup format.
    #[error("cannot write a segment: {0}")]
    Format(#[from] backup_format::FormatError),
    /// A name that cannot be part of an object key.
    #[error("{0}")]
    Name(#[from] NameError),
    /// The run's data key could not be made (key provider unreachable, access denied, ...).
    #[error("cannot encrypt this backup run: {0}")]
    Keys(crate::keys::KeyError),
    /// A bug: something that should not happen.
    #[error("internal error: {0}; please report it")]
    Internal(String),
}

/// How a run protects what it writes: the run's data key (client-side encryption) and the
/// signing key (signed names, chained manifests, signed descriptor). Both optional.
#[derive(Debug, Clone, Default)]
pub struct RunProtection {
    /// Encrypts segments, gap records and manifests' sensitive fields.
    pub run_key: Option<Arc<RunKey>>,
    /// Signs object names and the descriptor.
    pub signing_key: Option<SigningKey>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Everything planned was stored (snapshot), or a continuous run was stopped cleanly.
    Complete,
    /// A snapshot was stopped before it reached its end offsets; run it again to resume.
    Interrupted,
    /// Some partitions failed; the others were stored.
    Partial,
}

/// Per-topic figures of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TopicReport {
    /// Partitions of the topic in this run.
    pub partitions: usize,
    /// Records stored.
    pub records: u64,
    /// Record batch bytes stored (before segment compression).
    pub bytes: u64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// The backup.
    pub backup_id: String,
    /// This run.
    pub run_id: String,
    /// The shard this run backed up (`INDEX/COUNT`), when the backup is sharded.
    pub shard: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// `snapshot` or `continuous`.
    pub mode: &'static str,
    /// Topics backed up.
    pub topics: usize,
    /// Partitions backed up.
    pub partitions: usize,
    /// Segments stored.
    pub segments: usize,
    /// Records stored.
    pub records: u64,
    /// Record batch bytes read from Kafka.
    pub bytes_read: u64,
    /// Bytes written to storage.
    pub bytes_written: u64,
    /// bytes_read / bytes_written.
    pub compression_ratio: f64,
    /// Wall time.
    pub duration_secs: f64,
    /// bytes_read per second, in MB/s.
    pub throughput_mb_s: f64,
    /// Gaps found (offsets lost to retention before they could be copied).
    pub gaps: usize,
    /// Consumer groups captured.
    pub consumer_groups: usize,
    /// Partitions that failed, with the reason.
    pub failed_partitions: BTreeMap<String, String>,
    /// Per-topic figures.
    pub per_topic: BTreeMap<String, TopicReport>,
    /// Warnings raised during the run.
    pub warnings: Vec<String>,
    /// The manifest objects written.
    pub manifests: Vec<String>,
    /// Client-side encryption of this run: provider and key ids (never key material), or
    /// `None` when the run stored its data in the clear.
    pub encryption: Option<EncryptionReport>,
    /// Key id of the key that signed this run's objects, when signed.
    pub signing_key_id: Option<String>,
    /// The cluster id the source brokers reported (`None` for brokers that report none).
    pub source_cluster_id: Option<String>,
}

/// How a run's objects were encrypted.
#[derive(Debug, Clone, Serialize)]
pub struct EncryptionReport {
    /// Algorithm of the objects.
    pub algorithm: &'static str,
    /// Key provider that wrapped the run's data key.
    pub provider: String,
    /// Keys that can unwrap it.
    pub key_ids: Vec<String>,
}

/// Runs a backup as configured. `shutdown` turning true asks the run to stop: it finishes the
/// fetches in flight, stores every open segment and writes its manifest.
pub async fn run_backup(
    config: &LoadedConfig,
    storage: Storage,
    progress: ProgressMode,
    mut shutdown: watch::Receiver<bool>,
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    let started_at = now_rfc3339();
    let plan: &BackupPlan = config.backup.as_ref().ok_or_else(|| {
        BackupError::Config(
            "this configuration is not a backup configuration (mode: backup)".into(),
        )
    })?;
    let settings = &plan.settings;
    let client_config = config
        .cluster
        .client_config()
        .map_err(|e| BackupError::Config(e.to_string()))?;
    let bootstrap_servers: Vec<String> = client_config
        .bootstrap_servers
        .iter()
        .map(|b| b.to_string())
        .collect();
    let client = KafkaClient::connect(client_config).await?;
    for w in client.warnings() {
        tracing::warn!("{w}");
    }
    storage.verify_reachable().await?;

    let backup_id = config.backup_id.clone();
    // The part this run chains to, found before the run id is drawn so that the id sorts
    // after that run's (readers require a run to chain to an earlier one).
    let (newest_run, mut previous) =
        match chain_predecessor(&storage, &backup_id, plan.signing_key.as_ref(), plan.shard).await?
        {
            Some((run, link)) => (Some(run), Some(link)),
            None => (None, None),
        };
    let run_id = naming::run_id_after(
        time::OffsetDateTime::now_utc(),
        newest_run.as_deref(),
        plan.shard,
    );
    let protection = protection(config, &backup_id, &run_id).await?;
    let cluster_id = client.metadata().cluster_id.clone();
    write_descriptor(&storage, &backup_id, cluster_id.clone(), &protection).await?;

    let topic_names = select_with_retry(&client, &plan.topics).await?;
    let mut topics = plan::describe_topics(&client, &topic_names).await?;
    let stored = plan::stored_progress(&storage, &backup_id, &topics, &protection).await?;
    let plans =
        plan::plan_partitions(&client, &topics, &stored, !settings.continuous, plan.shard).await?;
    tracing::info!(
        backup_id = %backup_id,
        run_id = %run_id,
        shard = %plan.shard.map_or_else(|| "none".to_owned(), |s| s.to_string()),
        topics = topics.len(),
        partitions = plans.len(),
        resumed = plans.iter().filter(|p| p.resumed).count(),
        mode = if settings.continuous { "continuous" } else { "snapshot" },
        "backup starting"
    );

    let buffers = BufferPool::default();
    let run = RunIdentity {
        backup_id: backup_id.clone(),
        run_id: run_id.clone(),
        cluster_id: cluster_id.clone(),
        writer: writer_options(settings, &protection),
        buffers: buffers.clone(),
    };
    let initial_max_bytes = partition_max_bytes(settings.fetch_max_bytes, plans.len());
    let mut engine = Engine {
        client: &client,
        settings,
        run,
        partitions: BTreeMap::new(),
        sink: sink::SegmentSink::new(
            storage.clone(),
            &backup_id,
            &run_id,
            buffers,
            protection.clone(),
        ),
        progress: progress::Progress::new(progress, !settings.continuous),
        warnings: Vec::new(),
    };
    for p in plans {
        if let Some((from, to)) = p.gap {
            engine
                .sink
                .record_gap(gap_record(&p.tp, &p.topic_id, from, to))
                .await?;
        }
        engine
            .partitions
            .insert(p.tp.clone(), PartitionState::new(p, initial_max_bytes));
    }

    let mut manifests = Vec::new();
    let mut retired: Vec<PartitionState> = Vec::new();
    let mut part = 0u32;
    let mut last_part_at = Instant::now();
    let mut groups_captured = 0usize;
    let exit = loop {
        let checkpoint_at = settings
            .continuous
            .then(|| Instant::now() + settings.metadata_max_age);
        let exit = engine.run(&mut shutdown, checkpoint_at).await?;
        if exit != LoopExit::Checkpoint {
            break exit;
        }
        discover(
            &mut engine,
            &plan.topics,
            plan.shard,
            &storage,
            &mut topics,
            &mut retired,
            &protection,
        )
        .await?;
        let due = last_part_at.elapsed() >= settings.segment_max_interval;
        if due && (!engine.sink.stored.is_empty() || !engine.sink.gaps.is_empty()) {
            let groups = snapshot_groups(&client, &topics, settings.consumer_group_snapshot).await;
            groups_captured = groups.as_ref().map_or(groups_captured, |g| g.groups.len());
            let status = RunStatus::Running;
            let link = write_part(
                &mut engine,
                &storage,
                &topics,
                groups,
                PartInfo {
                    part,
                    final_part: false,
                    status,
                    previous: previous.take(),
                    end_offsets: Vec::new(),
                },
                &started_at,
                &bootstrap_servers,
                cluster_id.clone(),
                settings.continuous,
                started,
                &protection,
            )
            .await?;
            manifests.push(link.key.clone());
            previous = Some(link);
            part += 1;
            last_part_at = Instant::now();
        }
    };

    let failed: BTreeMap<String, String> = engine
        .partitions
        .iter()
        .filter_map(|(tp, p)| match &p.status {
            Status::Failed(why) => Some((tp.to_string(), why.clone())),
            _ => None,
        })
        .collect();
    let outcome = if !failed.is_empty() {
        Outcome::Partial
    } else if exit == LoopExit::Interrupted && !settings.continuous {
        let unfinished = engine
            .partitions
            .values()
            .any(|p| p.status == Status::Active);
        if unfinished {
            Outcome::Interrupted
        } else {
            Outcome::Complete
        }
    } else {
        Outcome::Complete
    };
    if outcome == Outcome::Complete {
        crate::metrics::metrics().succeeded();
    }
    let groups = snapshot_groups(&client, &topics, settings.consumer_group_snapshot).await;
    groups_captured = groups.as_ref().map_or(groups_captured, |g| g.groups.len());
    let status = match outcome {
        Outcome::Complete => RunStatus::Complete,
        Outcome::Interrupted => RunStatus::Interrupted,
        Outcome::Partial => RunStatus::Partial,
    };
    let end_offsets = engine
        .partitions
        .values()
        .chain(retired.iter())
        .map(|p| PartitionEnd {
            topic: p.tp().topic.clone(),
            topic_id: p.plan.topic_id.clone(),
            partition: p.tp().partition,
            end_offset: p.written_to,
            log_start_offset: Some(p.plan.log_start),
        })
        .collect();
    let link = write_part(
        &mut engine,
        &storage,
        &topics,
        groups,
        PartInfo {
            part,
            final_part: true,
            status,
            previous: previous.take(),
            end_offsets,
        },
        &started_at,
        &bootstrap_servers,
        cluster_id.clone(),
        settings.continuous,
        started,
        &protection,
    )
    .await?;
    manifests.push(link.key);

    let mut report = build_report(
        &engine,
        &retired,
        &backup_id,
        &run_id,
        outcome,
        settings.continuous,
        started.elapsed(),
        manifests,
        failed,
    );
    report.consumer_groups = groups_captured;
    report.source_cluster_id = cluster_id;
    report.warnings.extend(engine.warnings.iter().cloned());
    report.encryption = protection.run_key.as_ref().map(|k| EncryptionReport {
        algorithm: backup_format::crypto::ALGORITHM,
        provider: k.wrapped.provider.to_string(),
        key_ids: k.wrapped.key_ids.clone(),
    });
    report.signing_key_id = protection
        .signing_key
        .as_ref()
        .map(|k| k.verifying_key().key_id());
    Ok(report)
}

/// The run's data key (drawn and wrapped by the configured provider: one KMS
/// GenerateDataKey, or an `age` encryption to the recipients) and the signing key.
async fn protection(
    config: &LoadedConfig,
    backup_id: &str,
    run_id: &str,
) -> Result<RunProtection, BackupError> {
    let Some(plan) = config.backup.as_ref() else {
        return Ok(RunProtection::default());
    };
    let run_key = match &plan.encryption {
        Some(settings) => {
            let wrapper = crate::keys::KeyWrapper::new(settings);
            let ctx = crate::keys::KeyContext::new(backup_id, run_id);
            let (data_key, wrapped) = wrapper.new_run_key(&ctx).await.map_err(BackupError::Keys)?;
            tracing::info!(
                provider = %wrapped.provider,
                key_ids = ?wrapped.key_ids,
                "client-side encryption: a new data key for this run"
            );
            Some(Arc::new(RunKey { data_key, wrapped }))
        }
        None => None,
    };
    Ok(RunProtection {
        run_key,
        signing_key: plan.signing_key.clone(),
    })
}

/// The newest manifest part of this run's lane (its shard's runs, or the unsharded runs)
/// whose name this run's own key signed, with its run id: the link the run's first part
/// chains to. Each shard chains in its own lane, so shards running at once do not fork. Found by LIST (the name carries the content's digest), so
/// the write-only backup role needs no read; names not signed by our key are never linked to
/// (someone who may write to the bucket cannot insert themselves into the chain).
async fn chain_predecessor(
    storage: &Storage,
    backup_id: &str,
    signing_key: Option<&SigningKey>,
    lane: Option<Shard>,
) -> Result<Option<(String, ManifestLink)>, BackupError> {
    let Some(signing) = signing_key else {
        return Ok(None);
    };
    let own = backup_format::signing::VerifyingKeys::new(vec![signing.verifying_key().clone()]);
    let mut newest: Option<(naming::ManifestKey, String)> = None;
    let mut ignored = 0usize;
    for object in storage.list(&naming::runs_prefix(backup_id)?).await? {
        let Some(key) = naming::parse_manifest_key(&object.key) else {
            continue;
        };
        if key.backup_id != backup_id || Shard::of_run(&key.run_id) != lane {
            continue;
        }
        if key.verify(&own).is_none() {
            ignored += 1;
            continue;
        }
        let later = newest
            .as_ref()
            .is_none_or(|(n, _)| (&key.run_id, key.part) > (&n.run_id, n.part));
        if later {
            newest = Some((key, object.key));
        }
    }
    if ignored > 0 {
        tracing::warn!(
            ignored,
            "manifest parts not signed by this backup's signing key were found and left out of the \
             chain (written before signing was enabled, by another signing key, or by someone else \
             with write access to the bucket); `kafka-backup validate` reports them"
        );
    }
    Ok(newest.map(|(k, key)| {
        let link = ManifestLink {
            key,
            sha256: k
                .seal
                .expect("a verified manifest name carries a seal")
                .sha256,
        };
        (k.run_id, link)
    }))
}

fn writer_options(
    settings: &crate::config::BackupSettings,
    protection: &RunProtection,
) -> WriterOptions {
    WriterOptions {
        compression: match settings.compression {
            Compression::None => SegmentCompression::None,
            Compression::Zstd => SegmentCompression::Zstd,
            Compression::Lz4 => SegmentCompression::Lz4,
        },
        level: settings.compression_level,
        // A first reservation avoids most copies while the object grows, but reserving whole
        // segments (64 MiB by default) raised peak memory by half in measurements, and with
        // many partitions the memory budget closes segments long before that size anyway.
        expected_segment_bytes: usize::try_from(settings.segment_max_bytes)
            .unwrap_or(0)
            .min(8 * 1024 * 1024),
        encryption: protection.run_key.clone(),
        ..WriterOptions::default()
    }
}

/// Per-partition fetch size: the request's budget shared by its partitions, at least 1 MiB
/// (Kafka's default) so large batches still fit, at most 16 MiB.
fn partition_max_bytes(fetch_max_bytes: u32, partitions: usize) -> i32 {
    let share = fetch_max_bytes as usize / partitions.max(1);
    share.clamp(1024 * 1024, 16 * 1024 * 1024) as i32
}

fn gap_record(
    tp: &TopicPartition,
    topic_id: &str,
    from: i64,
    to: i64,
) -> backup_format::manifest::Gap {
    backup_format::manifest::Gap {
        topic: tp.topic.clone(),
        topic_id: topic_id.to_owned(),
        partition: tp.partition,
        from,
        to,
        reason: "retention deleted these offsets between backup runs".to_owned(),
        detected_at: now_rfc3339(),
    }
}

/// Selects topics; before reporting that nothing matches, asks for fresh metadata a few times:
/// one answer can miss topics while the cluster is changing (topics being created or deleted).
async fn select_with_retry(
    client: &KafkaClient,
    selection: &crate::config::TopicSelection,
) -> Result<Vec<String>, BackupError> {
    let mut attempt = 0;
    loop {
        match plan::select_topics(&client.metadata(), selection) {
            Err(BackupError::NoTopicsMatched { .. }) if attempt < 3 => {
                tokio::time::sleep(client.backoff(attempt) + Duration::from_millis(200)).await;
                client.refresh_metadata().await?;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Writes the backup's descriptor on its first run (signed when the backup is); later runs
/// find it there.
async fn write_descriptor(
    storage: &Storage,
    backup_id: &str,
    cluster_id: Option<String>,
    protection: &RunProtection,
) -> Result<(), BackupError> {
    let descriptor = BackupDescriptor {
        format: MANIFEST_FORMAT,
        backup_id: backup_id.to_owned(),
        created_at: now_rfc3339(),
        source_cluster_id: cluster_id,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let body = match &protection.signing_key {
        Some(key) => descriptor.to_signed_json(key),
        None => descriptor.to_json(),
    }
    .map_err(|e| BackupError::Internal(format!("cannot encode the backup descriptor: {e}")))?;
    match storage
        .put_new(
            &naming::backup_descriptor_key(backup_id)?,
            Bytes::from(body),
        )
        .await
    {
        // Each run writes its own creation time, so an earlier run's descriptor differs and is
        // kept: it describes the backup as well.
        Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn snapshot_groups(
    client: &KafkaClient,
    topics: &[TopicInfo],
    enabled: bool,
) -> Option<GroupSnapshot> {
    if !enabled {
        return None;
    }
    let names: BTreeSet<String> = topics.iter().map(|t| t.name.clone()).collect();
    match groups::capture(client, &names).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(
                "consumer-group offsets were not captured: {e}. The data is backed up; a restore will \
                 not be able to move consumer groups. Grant the principal Describe on the groups, or \
                 set backup.consumer_group_snapshot: false"
            );
            None
        }
    }
}

/// Continuous mode: adds partitions of topics that appeared, grew, or were re-created.
async fn discover(
    engine: &mut Engine<'_>,
    selection: &crate::config::TopicSelection,
    shard: Option<Shard>,
    storage: &Storage,
    topics: &mut Vec<TopicInfo>,
    retired: &mut Vec<PartitionState>,
    protection: &RunProtection,
) -> Result<(), BackupError> {
    let client = engine.client;
    if let Err(e) = client.refresh_metadata().await {
        tracing::warn!(error = %e, "metadata refresh failed; will try again");
        return Ok(());
    }
    let metadata = client.metadata();
    let names = match plan::select_topics(&metadata, selection) {
        Ok(n) => n,
        Err(_) => return Ok(()),
    };
    let mut changed = Vec::new();
    for name in names {
        let Some(t) = metadata.topics.get(&name) else {
            continue;
        };
        let lineage = plan::lineage_of(&t.topic_id);
        let known = topics.iter().find(|k| k.name == name);
        let grew = known
            .is_some_and(|k| k.topic_id == lineage && (t.partitions.len() as u32) > k.partitions);
        if known.is_none_or(|k| k.topic_id != lineage) || grew {
            changed.push(name);
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    let infos = plan::describe_topics(client, &changed).await?;
    let stored = plan::stored_progress(storage, &engine.run.backup_id, &infos, protection).await?;
    let plans = plan::plan_partitions(client, &infos, &stored, false, shard).await?;
    let max_bytes = partition_max_bytes(
        engine.settings.fetch_max_bytes,
        engine.partitions.len() + plans.len(),
    );
    for p in plans {
        let exists = engine
            .partitions
            .get(&p.tp)
            .is_some_and(|s| s.plan.topic_id == p.topic_id);
        if exists {
            continue;
        }
        tracing::info!(partition = %p.tp, lineage = %p.topic_id, start = p.start, "new partition to back up");
        if let Some((from, to)) = p.gap {
            engine
                .sink
                .record_gap(gap_record(&p.tp, &p.topic_id, from, to))
                .await?;
        }
        if let Some(old) = engine
            .partitions
            .insert(p.tp.clone(), PartitionState::new(p, max_bytes))
        {
            retired.push(old);
        }
    }
    for info in infos {
        topics.retain(|t| t.name != info.name || t.topic_id != info.topic_id);
        topics.push(info);
    }
    Ok(())
}

/// Where a manifest part stands in its run and in the backup's chain.
struct PartInfo {
    part: u32,
    final_part: bool,
    status: RunStatus,
    previous: Option<ManifestLink>,
    end_offsets: Vec<PartitionEnd>,
}

/// Writes one manifest part (sealed and signed as the run is) and returns the link the next
/// part chains to.
#[allow(clippy::too_many_arguments)]
async fn write_part(
    engine: &mut Engine<'_>,
    storage: &Storage,
    topics: &[TopicInfo],
    consumer_groups: Option<GroupSnapshot>,
    info: PartInfo,
    started_at: &str,
    bootstrap_servers: &[String],
    cluster_id: Option<String>,
    continuous: bool,
    started: Instant,
    protection: &RunProtection,
) -> Result<ManifestLink, BackupError> {
    let PartInfo {
        part,
        final_part,
        status,
        previous,
        end_offsets,
    } = info;
    let segments = std::mem::take(&mut engine.sink.stored);
    let gaps = std::mem::take(&mut engine.sink.gaps);
    let summary = RunSummary {
        topics: topics.len() as u64,
        partitions: engine.partitions.len() as u64,
        segments: segments.len() as u64,
        batches: segments.iter().map(|s| s.batches).sum(),
        records: segments.iter().map(|s| s.records).sum(),
        raw_bytes: segments.iter().map(|s| s.raw_bytes).sum(),
        stored_bytes: segments.iter().map(|s| s.stored_bytes).sum(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let mut manifest = RunManifest {
        format: MANIFEST_FORMAT,
        backup_id: engine.run.backup_id.clone(),
        run_id: engine.run.run_id.clone(),
        part,
        final_part,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        mode: if continuous {
            RunMode::Continuous
        } else {
            RunMode::Snapshot
        },
        status,
        started_at: started_at.to_owned(),
        written_at: now_rfc3339(),
        finished_at: final_part.then(now_rfc3339),
        source: SourceCluster {
            cluster_id,
            bootstrap_servers: bootstrap_servers.to_vec(),
        },
        topics: topics
            .iter()
            .map(|t| TopicSnapshot {
                name: t.name.clone(),
                topic_id: t.topic_id.clone(),
                is_internal: t.is_internal,
                partitions: t.partitions,
                replication_factor: t.replication_factor,
                configs: t.configs.clone(),
            })
            .collect(),
        segments,
        gaps,
        consumer_groups,
        summary,
        previous,
        end_offsets,
        signing_key_id: protection
            .signing_key
            .as_ref()
            .map(|k| k.verifying_key().key_id()),
        encryption: None,
        sealed: None,
    };
    if let Some(key) = &protection.run_key {
        manifest
            .seal(key)
            .map_err(|e| BackupError::Internal(format!("cannot encrypt the manifest: {e}")))?;
    }
    let body = manifest
        .to_json()
        .map_err(|e| BackupError::Internal(format!("cannot encode the manifest: {e}")))?;
    let sha256 = backup_format::segment::object_sha256(&body);
    let key = match &protection.signing_key {
        Some(signing) => manifest.manifest_key().sign(&body, signing)?.to_key()?,
        None => manifest.key()?,
    };
    storage.put_new(&key, Bytes::from(body)).await?;
    tracing::info!(key, final_part, "manifest written");
    Ok(ManifestLink { key, sha256 })
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    engine: &Engine<'_>,
    retired: &[PartitionState],
    backup_id: &str,
    run_id: &str,
    outcome: Outcome,
    continuous: bool,
    duration: Duration,
    manifests: Vec<String>,
    failed_partitions: BTreeMap<String, String>,
) -> BackupReport {
    let mut per_topic: BTreeMap<String, TopicReport> = BTreeMap::new();
    for p in engine.partitions.values().chain(retired.iter()) {
        let t = per_topic.entry(p.tp().topic.clone()).or_default();
        t.partitions += 1;
        t.records += p.records;
        t.bytes += p.raw_bytes;
    }
    let bytes_read: u64 = per_topic.values().map(|t| t.bytes).sum();
    let bytes_written = engine.sink.written_bytes;
    let secs = duration.as_secs_f64().max(1e-6);
    BackupReport {
        backup_id: backup_id.to_owned(),
        run_id: run_id.to_owned(),
        shard: Shard::of_run(run_id).map(|s| s.to_string()),
        outcome,
        mode: if continuous { "continuous" } else { "snapshot" },
        topics: per_topic.len(),
        partitions: per_topic.values().map(|t| t.partitions).sum(),
        segments: engine.sink.segments_written,
        records: per_topic.values().map(|t| t.records).sum(),
        bytes_read,
        bytes_written,
        compression_ratio: if bytes_written > 0 {
            bytes_read as f64 / bytes_written as f64
        } else {
            0.0
        },
        duration_secs: secs,
        throughput_mb_s: bytes_read as f64 / secs / 1e6,
        gaps: engine.sink.gaps_recorded,
        consumer_groups: 0,
        failed_partitions,
        per_topic,
        warnings: Vec::new(),
        manifests,
        encryption: None,
        signing_key_id: None,
        source_cluster_id: None,
    }
}

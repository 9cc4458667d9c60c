//! `restore`: put a backup into a target cluster so that producers' data and consumers'
//! positions are as they were.
//!
//! Nothing is produced before the plan is complete (every segment listed, continuity,
//! authenticity, figures and transaction markers, from the manifests) and the target is
//! ready: topics exist with the right partition count, and each target partition's starting
//! offset is recorded in the progress store. Each segment is then read once, checked whole
//! (its SHA-256 against its signed name, its header and trailer against its place) before any
//! of its batches is produced, and its records go out in offset order per partition, as the
//! stored batches wherever possible; aborted transactions and transaction markers are left
//! out. A segment that fails its check stops the restore (or, forced, is left out). A restore interrupted
//! at any point and run again with the same configuration skips what the target already holds
//! (the target's end offset minus the recorded start), so every record lands exactly once.

mod groups;
pub mod offsets;
pub mod policy;
mod produce;
mod repartition;
mod scan;
mod target;
mod units;

pub(crate) use target::progress_group as progress_group_of;
pub(crate) use units::limits as decode_limits;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use kafka_client::{KafkaClient, TopicPartition};
use serde::Serialize;
use tokio::sync::{Semaphore, watch};

use crate::catalog::{Catalog, CatalogError};
use crate::config::{LoadedConfig, RestoreSettings};
use crate::decrypt::{DataKeys, ReadKeys};
use crate::storage::{Storage, StorageError};
pub use groups::{GroupOutcome, TranslatedOffset};
pub use offsets::{OffsetMaps, OffsetRun, PartitionMap};
use produce::{
    Counters, OnBadSegment, PartitionJob, PartitionOutcome, RateLimit, SEGMENT_MEMORY_KIB,
    restore_partition,
};
use repartition::{RepartitionJob, SourcePart, TargetSlot, restore_repartitioned};
pub use target::TopicAction;
use target::{StartRecord, TopicPlan};
pub use units::{murmur2, partition_for_key};

/// Partitions planned at once before a restore (reading the segments whose manifest entries
/// do not list their transaction markers).
const SCAN_CONCURRENCY: usize = 4;

/// Why a restore could not run or finish, by what the operator can do.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// The target cluster is not in a state the restore may write to (fix it or the config).
    #[error("{0}")]
    Target(String),
    /// The backup failed its integrity check; nothing was produced.
    #[error(
        "the backup failed its integrity check, so nothing was restored ({} problem{}):\n  {}\nRun \
         `kafka-backup validate` for a full report; restore anyway with --force only if you accept losing \
         or altering the data of these objects{}",
        problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.join("\n  "),
        if problems.iter().any(|p| p.contains("--accept-unauthenticated")) {
            " (--force leaves unauthenticated segments out; --accept-unauthenticated restores them)"
        } else { "" }
    )]
    Integrity {
        /// One line per problem, naming the object.
        problems: Vec<String>,
    },
    /// Objects could not be decrypted with the configured keys; nothing was produced.
    #[error(
        "the backup cannot be decrypted with the configured keys, so nothing was restored:\n  {}\n\
         Configure a key that can decrypt it (restore.encryption); `kafka-backup describe` shows \
         the keys each run needs",
        summarize_key_failures(failures).join("\n  ")
    )]
    Keys {
        /// Each object that could not be decrypted, and why.
        failures: Vec<(String, crate::decrypt::KeyFailure)>,
    },
    /// A segment failed its check while restoring: none of its batches were produced.
    #[error(
        "a segment failed its check while restoring, so the restore stopped before producing any \
         of its batches:\n  {problem}\nWhat was restored before it stays in the target, and running \
         the restore again continues from there. Run `kafka-backup validate` for a full report; \
         restore anyway with --force only if you accept losing the records of this segment"
    )]
    Rejected {
        /// What is wrong, naming the segment.
        problem: String,
    },
    /// A segment turned out corrupt while restoring.
    #[error("corrupt backup data: {0}")]
    Corrupt(String),
    /// Reading the backup's catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Kafka failed.
    #[error(transparent)]
    Kafka(#[from] kafka_client::Error),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A bug.
    #[error("internal error: {0}; please report it")]
    Internal(String),
}

/// One line per distinct reason: the first object, how many more, the reason.
fn summarize_key_failures(failures: &[(String, crate::decrypt::KeyFailure)]) -> Vec<String> {
    let mut by_reason: Vec<(&str, &str, usize)> = Vec::new();
    for (object, why) in failures {
        match by_reason.iter_mut().find(|(m, _, _)| *m == why.message) {
            Some(entry) => entry.2 += 1,
            None => by_reason.push((&why.message, object, 0)),
        }
    }
    by_reason
        .into_iter()
        .map(|(message, object, more)| match more {
            0 => format!("{object}: {message}"),
            n => format!("{object} (and {n} more objects): {message}"),
        })
        .collect()
}

impl RestoreError {
    /// For [`RestoreError::Keys`]: the kind of the most pressing failure (a key service that
    /// refuses or cannot be reached before a key to configure), for the exit code.
    pub fn key_failure_kind(&self) -> Option<crate::keys::KeyErrorKind> {
        use crate::keys::KeyErrorKind as K;
        let RestoreError::Keys { failures } = self else {
            return None;
        };
        let rank = |k: &K| match k {
            K::AccessDenied | K::Unreachable => 0,
            K::Configuration | K::NoMatchingKey => 1,
            K::InvalidWrappedKey => 2,
            K::Internal => 3,
        };
        failures.iter().map(|(_, f)| f.kind).min_by_key(rank)
    }
}

/// Options from the command line.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restore even if the integrity check finds problems.
    pub force: bool,
    /// Plan only (also set by `restore.dry_run`).
    pub dry_run: bool,
    /// Log progress every few seconds.
    pub log_progress: bool,
    /// Restore segments that are not authenticated (no configured key signed their name and
    /// no authentic manifest lists them; without verify keys: no manifest lists them).
    pub accept_unauthenticated: bool,
    /// Runs that must be in the backup (`--expect-run`), against the deletion of the newest
    /// runs.
    pub expected_runs: Vec<String>,
    /// Extra verify keys (`--verify-key`), added to `restore.verify_key`.
    pub verify_keys: Vec<backup_format::signing::VerifyingKey>,
    /// Commit consumer groups under this prefix instead of their own ids (a drill into a
    /// scratch target leaves the real groups untouched).
    pub group_prefix: Option<String>,
}

/// One partition in the report.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionReport {
    /// Source partition (`topic-partition`).
    pub source: String,
    /// Target partition.
    pub target: String,
    /// Where this restore started writing in the target.
    pub target_start: i64,
    /// Where the restored data ends in the target.
    pub target_end: i64,
    /// Records of this partition in the restore.
    pub records: u64,
    /// Of which earlier runs had already written.
    pub already_restored: u64,
    /// Of which this run wrote.
    pub written: u64,
    /// Stored bytes of its segments (0 for a repartitioned topic, whose bytes are in
    /// [`RestoreReport::stored_bytes_read`] only).
    pub stored_bytes: u64,
}

/// What a restore did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The backup.
    pub backup_id: String,
    /// The restore's identity (names its progress).
    pub restore_id: String,
    /// True when nothing was written.
    pub dry_run: bool,
    /// True when a signal stopped it; run it again to continue.
    pub interrupted: bool,
    /// Target topics: checked, created, or to create.
    pub topics: Vec<TopicAction>,
    /// Source -> target topic names.
    pub topic_mapping: BTreeMap<String, String>,
    /// Per target partition.
    pub partitions: Vec<PartitionReport>,
    /// Bytes of segments read from storage by the restore: each segment is read once, when
    /// it is produced, plus once more before producing for segments whose manifest entry
    /// does not list their transaction markers (older backups, runs killed before their
    /// manifest).
    pub stored_bytes_read: u64,
    /// Records written by this run.
    pub records_written: u64,
    /// Record batch bytes written by this run.
    pub bytes_written: u64,
    /// Batches written by this run.
    pub batches_written: u64,
    /// Of which rebuilt (time-window boundaries, compaction holes, LogAppendTime).
    pub batches_reencoded: u64,
    /// Records left out because their transaction aborted.
    pub aborted_records_skipped: u64,
    /// Records left out because their transaction was still open when the backup ended.
    pub open_transaction_records_skipped: u64,
    /// Records left out by the time window (or deleted before their segment began).
    pub window_records_skipped: u64,
    /// Earliest and latest record timestamps in the restored range (from batch headers).
    pub time_range: Option<(i64, i64)>,
    /// Consumer groups moved, or not, and why.
    pub consumer_groups: Vec<GroupOutcome>,
    /// Integrity problems ignored with --force.
    pub problems_ignored: Vec<String>,
    /// How far the backup was authenticated.
    pub authentication: crate::catalog::Authentication,
    /// Encrypted segments restored (decrypted on the way).
    pub encrypted: bool,
    /// Things to know.
    pub warnings: Vec<String>,
    /// Wall time.
    pub duration_secs: f64,
    /// bytes_written per second, MB/s.
    pub throughput_mb_s: f64,
}

/// A unit of restore work: one partition as it was, or a whole repartitioned topic.
enum Job {
    Partition(PartitionJob),
    Topic(RepartitionJob),
}

/// What every job shares.
#[derive(Clone, Copy)]
pub(crate) struct JobContext<'a> {
    pub storage: &'a Storage,
    pub producer: Option<&'a kafka_client::IdempotentProducer>,
    pub counters: &'a Counters,
    pub limit: Option<&'a Arc<RateLimit>>,
    pub shutdown: &'a watch::Receiver<bool>,
    pub memory: &'a Semaphore,
    pub keys: Option<&'a dyn DataKeys>,
    /// Refuse segments in the clear (see `prepare`).
    pub require_encrypted: bool,
    pub on_bad_segment: OnBadSegment,
    /// Segments left out, and why (with `OnBadSegment::Skip`).
    pub problems: &'a std::sync::Mutex<Vec<String>>,
}

impl Job {
    async fn run(self, cx: &JobContext<'_>) -> Result<Vec<PartitionOutcome>, RestoreError> {
        match self {
            Job::Partition(job) => restore_partition(cx, job).await.map(|o| vec![o]),
            Job::Topic(job) => restore_repartitioned(cx, job).await,
        }
    }
}

/// Everything `prepare` works out before producing.
struct Prepared {
    client: KafkaClient,
    actions: Vec<TopicAction>,
    /// Each with the stored bytes it reads.
    jobs: Vec<(Job, u64)>,
    targets: BTreeMap<String, String>,
    /// Source topics restored into another partition count, with that count.
    repartitioned: BTreeMap<String, i32>,
    problems_ignored: Vec<String>,
    warnings: Vec<String>,
    time_range: Option<(i64, i64)>,
    catalog: Catalog,
    settings: RestoreSettings,
    read: ReadKeys,
    encrypted: bool,
    /// Refuse segments in the clear: see `prepare`.
    require_encrypted: bool,
    /// Segment bytes the plan read (segments whose entries list no markers).
    planned_bytes_read: u64,
}

/// Restores as configured. `shutdown` turning true stops between batches; the next run
/// continues.
pub async fn run_restore(
    config: &LoadedConfig,
    storage: Storage,
    options: RestoreOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<RestoreReport, RestoreError> {
    let started = Instant::now();
    let settings = config.restore.as_ref().ok_or_else(|| {
        RestoreError::Config(
            "this configuration is not a restore configuration (mode: restore)".into(),
        )
    })?;
    let dry_run = options.dry_run || settings.dry_run;
    let mut p = prepare(config, &storage, settings, &options, dry_run).await?;
    let jobs = std::mem::take(&mut p.jobs);
    let counters = Arc::new(Counters::default());
    let producer = if dry_run {
        None
    } else {
        Some(p.client.idempotent_producer().await?)
    };
    let limit = settings
        .max_bytes_per_second
        .map(|rate| Arc::new(RateLimit::new(rate)));
    let reporter = options
        .log_progress
        .then(|| spawn_progress(counters.clone()));

    let memory = Semaphore::new(SEGMENT_MEMORY_KIB);
    let mut partitions = Vec::new();
    let mut maps = OffsetMaps::default();
    let mut interrupted = false;
    let left_out = std::sync::Mutex::new(Vec::new());
    {
        let cx = JobContext {
            storage: &storage,
            producer: producer.as_ref(),
            counters: &counters,
            limit: limit.as_ref(),
            shutdown: &shutdown,
            memory: &memory,
            keys: p.read.data.as_deref(),
            require_encrypted: p.require_encrypted,
            // A dry run reports every problem, as the restore would meet them.
            on_bad_segment: if options.force || dry_run {
                OnBadSegment::Skip
            } else {
                OnBadSegment::Stop
            },
            problems: &left_out,
        };
        let cx = &cx;
        let mut results = stream::iter(jobs)
            .map(|(job, stored_bytes)| async move { job.run(cx).await.map(|o| (o, stored_bytes)) })
            .buffer_unordered(settings.max_concurrent_partitions);
        while let Some(result) = results.next().await {
            let (outcomes, stored_bytes) = result?;
            let single = outcomes.len() == 1;
            for outcome in outcomes {
                interrupted |= outcome.interrupted;
                partitions.push(PartitionReport {
                    source: outcome
                        .source
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| format!("{} (repartitioned)", outcome.target.topic)),
                    target: outcome.target.to_string(),
                    target_start: outcome.target_start,
                    target_end: outcome.target_end,
                    records: outcome.records,
                    already_restored: outcome.already,
                    written: outcome.produced,
                    stored_bytes: if single { stored_bytes } else { 0 },
                });
                if let (Some(source), Some(map)) = (outcome.source, outcome.map) {
                    maps.partitions.insert(outcome.target, (source, map));
                }
            }
        }
    }
    if let Some(r) = reporter {
        r.abort();
    }
    partitions.sort_by(|a, b| a.target.cmp(&b.target));
    let left_out = left_out.into_inner().unwrap_or_else(|p| p.into_inner());
    if !left_out.is_empty() && !options.force {
        // A dry run: nothing was produced.
        return Err(RestoreError::Integrity { problems: left_out });
    }
    p.problems_ignored.extend(left_out);

    let mut warnings = std::mem::take(&mut p.warnings);
    let undecided = counters.undecided_records.load(Ordering::Relaxed);
    if undecided > 0 {
        warnings.push(format!(
            "{undecided} record(s) of transactions still open when the backup ended are left out, as \
             a read_committed consumer would not have seen them"
        ));
    }
    let consumer_groups = if interrupted {
        Vec::new()
    } else {
        restore_groups(
            &p,
            &maps,
            dry_run,
            options.group_prefix.as_deref(),
            &mut warnings,
        )
        .await?
    };
    let bytes = counters.bytes.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    crate::metrics::metrics().run_duration(secs);
    // A dry run restores nothing, so it is not a success to alert on.
    if !interrupted && !dry_run {
        crate::metrics::metrics().succeeded();
    }
    Ok(RestoreReport {
        backup_id: config.backup_id.clone(),
        restore_id: settings.restore_id.clone(),
        dry_run,
        interrupted,
        topics: p.actions,
        topic_mapping: p.targets,
        partitions,
        stored_bytes_read: p.planned_bytes_read
            + counters.stored_bytes_read.load(Ordering::Relaxed),
        records_written: counters.records.load(Ordering::Relaxed),
        bytes_written: bytes,
        batches_written: counters.batches.load(Ordering::Relaxed),
        batches_reencoded: counters.reencoded.load(Ordering::Relaxed),
        aborted_records_skipped: counters.aborted_records.load(Ordering::Relaxed),
        open_transaction_records_skipped: counters.undecided_records.load(Ordering::Relaxed),
        window_records_skipped: counters.skipped_records.load(Ordering::Relaxed),
        time_range: p.time_range,
        consumer_groups,
        problems_ignored: p.problems_ignored,
        authentication: p.catalog.authentication.clone(),
        encrypted: p.encrypted,
        warnings,
        duration_secs: secs,
        throughput_mb_s: bytes as f64 / secs / 1e6,
    })
}

/// The verify keys and decryption keys of a restore: the configuration's, and the command
/// line's.
fn read_keys(config: &LoadedConfig, options: &RestoreOptions) -> ReadKeys {
    config.read_keys(&options.verify_keys, &options.expected_runs)
}

async fn prepare(
    config: &LoadedConfig,
    storage: &Storage,
    settings: &RestoreSettings,
    options: &RestoreOptions,
    dry_run: bool,
) -> Result<Prepared, RestoreError> {
    let force = options.force;
    let accept_unauthenticated = options.accept_unauthenticated || settings.accept_unauthenticated;
    let backup_id = &config.backup_id;
    let read = read_keys(config, options);
    let mut catalog = Catalog::load(storage, backup_id, &read.trust).await?;
    let mut warnings = Vec::new();
    let mut integrity = Vec::new();
    // Segments that are not authenticated never enter a restore unless accepted.
    let unauthenticated: std::collections::BTreeSet<String> = catalog
        .unauthenticated
        .iter()
        .map(|s| s.key.clone())
        .collect();
    if accept_unauthenticated && !unauthenticated.is_empty() {
        warnings.push(format!(
            "{} unauthenticated segment(s) are restored as told (--accept-unauthenticated): nothing \
             shows who wrote them",
            unauthenticated.len()
        ));
        catalog.admit_unauthenticated();
    }
    for p in &catalog.problems {
        let about_unauthenticated_segment = p
            .object
            .as_ref()
            .is_some_and(|o| unauthenticated.contains(o));
        if about_unauthenticated_segment {
            if !accept_unauthenticated
                && p.topic
                    .as_deref()
                    .is_some_and(|t| settings.topics.includes(t, false))
            {
                integrity.push(p.to_string());
            }
        } else if p.is_error() {
            integrity.push(p.to_string());
        }
    }
    let mut key_failures = match &read.data {
        Some(keys) => catalog.unseal(keys.as_ref()).await,
        None => catalog
            .sealed_manifests()
            .map(|m| {
                (
                    format!("manifest {}", m.key),
                    crate::decrypt::KeyFailure {
                        message: match &m.manifest.encryption {
                            Some(e) => format!(
                                "it is encrypted ({} key {}) and no decryption key is configured: \
                                 set restore.encryption",
                                e.key.provider,
                                e.key.key_ids.join(", ")
                            ),
                            None => "its topic configurations and consumer groups are encrypted \
                                     and no decryption key is configured: set restore.encryption"
                                .to_owned(),
                        },
                        kind: crate::keys::KeyErrorKind::NoMatchingKey,
                    },
                )
            })
            .collect(),
    };
    let encrypted = catalog
        .manifests
        .iter()
        .any(|m| m.manifest.encryption.is_some() || m.manifest.sealed.is_some());
    let mut plans = Vec::new();
    let mut parts = Vec::new();
    for (name, topic) in &catalog.topics {
        if !settings.topics.includes(name, false) {
            continue;
        }
        let Some(lineage) = topic.latest_lineage() else {
            continue;
        };
        if topic.lineages.len() > 1 {
            warnings.push(format!(
                "topic {name} was deleted and re-created while it was backed up ({} lineages); restoring \
                 the latest (topic id {})",
                topic.lineages.len(),
                lineage.topic_id
            ));
        }
        let highest = lineage.partitions.keys().max().copied().unwrap_or(-1);
        let source_partitions = lineage
            .snapshot
            .as_ref()
            .map(|s| s.partitions as i32)
            .unwrap_or(highest + 1)
            .max(highest + 1);
        let target = settings
            .topic_mapping
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.clone());
        let target_partitions = settings.repartition_to.unwrap_or(source_partitions);
        if let Some(problem) =
            policy::partition_problem(name, target_partitions, settings.max_partitions)
        {
            integrity.push(problem);
        }
        plans.push(TopicPlan {
            source: name.clone(),
            target,
            source_partitions,
            target_partitions,
            replication_factor: settings
                .replication_factor
                .or(lineage.snapshot.as_ref().map(|s| s.replication_factor))
                .filter(|rf| *rf > 0)
                .unwrap_or(-1),
            configs: lineage
                .snapshot
                .as_ref()
                .map(|s| policy::restored_configs(name, &s.configs, &mut warnings))
                .unwrap_or_default(),
        });
        for (p, part) in &lineage.partitions {
            parts.push((
                TopicPartition::new(name, *p),
                lineage.topic_id.clone(),
                part.clone(),
            ));
        }
    }
    if plans.is_empty() && !integrity.is_empty() && !force {
        // Nothing authentic to restore, and the reason is in the problems (a backup whose
        // segments are all unauthenticated, say): say that rather than "no topic matches".
        return Err(RestoreError::Integrity {
            problems: integrity,
        });
    }
    if plans.is_empty() {
        let available: Vec<&str> = catalog.topics.keys().map(String::as_str).collect();
        return Err(RestoreError::Config(format!(
            "no topic of backup {backup_id} matches restore.topics (include {:?}, exclude {:?}); the backup holds {}",
            settings.topics.include,
            settings.topics.exclude,
            if available.is_empty() {
                "no topics".to_owned()
            } else {
                available.join(", ")
            }
        )));
    }
    // The plan reads only segments whose entries do not list their markers.
    let keys = read.data.as_deref();
    // Without signatures, an encrypted segment authenticates itself (only a key holder could
    // have made it, for the local and KMS providers); one in the clear could be a downgrade
    // planted in its place, so a restore that decrypts refuses it unless told otherwise.
    let require_encrypted = keys.is_some() && !read.trust.verifies() && !accept_unauthenticated;
    let scans = stream::iter(parts)
        .map(|(tp, lineage, part)| async move {
            scan::scan_partition(storage, tp, &lineage, &part, keys, require_encrypted).await
        })
        .buffer_unordered(SCAN_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut scanned = Vec::new();
    let mut problems = Vec::new();
    for s in scans {
        let mut s = s?;
        problems.extend(s.problems.iter().cloned());
        key_failures.append(&mut s.key_failures);
        scanned.push(s);
    }
    // A missing or wrong key is not damage in the backup: say so, and never force past it.
    if !key_failures.is_empty() {
        return Err(RestoreError::Keys {
            failures: key_failures,
        });
    }
    problems.extend(integrity);
    if !problems.is_empty() && !force {
        return Err(RestoreError::Integrity { problems });
    }
    let problems_ignored = problems;
    let planned_bytes_read = scanned.iter().map(|s| s.stored_bytes).sum();

    let client = KafkaClient::connect(
        config
            .cluster
            .client_config()
            .map_err(|e| RestoreError::Config(e.to_string()))?,
    )
    .await?;
    for w in client.warnings() {
        warnings.push(w.clone());
    }
    let actions = target::prepare_topics(&client, &plans, settings.create_topics, dry_run).await?;
    let targets: BTreeMap<String, String> = plans
        .iter()
        .map(|t| (t.source.clone(), t.target.clone()))
        .collect();

    // Fix where each target partition's restore starts, before producing anything.
    let repartitioned: BTreeMap<String, i32> = plans
        .iter()
        .filter(|t| t.target_partitions != t.source_partitions)
        .map(|t| (t.source.clone(), t.target_partitions))
        .collect();
    for t in plans
        .iter()
        .filter(|t| repartitioned.contains_key(&t.source))
    {
        warnings.push(format!(
            "{} is restored into {} partitions instead of {}: keyed records are placed by Kafka's murmur2 \
             partitioner, records without a key by their source partition modulo {}; order is kept per key \
             (per source partition), and consumer-group offsets of this topic are not moved",
            t.source, t.target_partitions, t.source_partitions, t.target_partitions
        ));
    }
    // Every target partition, with what it is restored from.
    let mut slots: Vec<(TopicPartition, String, String)> = Vec::new();
    for s in &scanned {
        if !repartitioned.contains_key(&s.source.topic) {
            let target = TopicPartition::new(&targets[&s.source.topic], s.source.partition);
            slots.push((target, s.source.to_string(), s.lineage.clone()));
        }
    }
    for t in plans
        .iter()
        .filter(|t| repartitioned.contains_key(&t.source))
    {
        let lineage = scanned
            .iter()
            .find(|s| s.source.topic == t.source)
            .map(|s| s.lineage.clone())
            .unwrap_or_default();
        for p in 0..t.target_partitions {
            slots.push((
                TopicPartition::new(&t.target, p),
                format!("{} repartitioned to {}", t.source, t.target_partitions),
                lineage.clone(),
            ));
        }
    }
    let to_create: Vec<&str> = actions
        .iter()
        .filter(|a| a.action == "create")
        .map(|a| a.topic.as_str())
        .collect();
    let existing_tps: Vec<TopicPartition> = slots
        .iter()
        .map(|(tp, _, _)| tp)
        .filter(|tp| !to_create.contains(&tp.topic.as_str()))
        .cloned()
        .collect();
    let ends = target::end_offsets(&client, &existing_tps).await?;
    let target_names: Vec<String> = plans.iter().map(|t| t.target.clone()).collect();
    let mut progress = if existing_tps.is_empty() {
        BTreeMap::new()
    } else {
        target::load_progress(
            &client,
            &settings.progress,
            &settings.restore_id,
            &target_names,
        )
        .await?
    };
    let mut new_starts = false;
    let mut starts: BTreeMap<TopicPartition, (i64, u64)> = BTreeMap::new();
    for (target, source, lineage) in slots {
        let end = ends.get(&target).copied().unwrap_or(0);
        let start = match progress.get(&target) {
            Some(record) => {
                if !record.backup_id.is_empty()
                    && (record.backup_id != *backup_id || record.source != source)
                {
                    return Err(RestoreError::Target(format!(
                        "target partition {target} was restored by restore `{}` from {} of backup {}, not from \
                         {source} of {backup_id}: use another restore_id, or another target topic",
                        settings.restore_id, record.source, record.backup_id
                    )));
                }
                if end < record.start {
                    return Err(RestoreError::Target(format!(
                        "target partition {target} ends at offset {end}, before offset {} where this restore \
                         started writing: the topic was deleted or truncated since. Use another restore_id",
                        record.start
                    )));
                }
                (record.start, (end - record.start) as u64)
            }
            None => {
                if end > 0 && !settings.append {
                    return Err(RestoreError::Target(format!(
                        "target partition {target} already holds {end} records; a restore refuses to write after \
                         them unless told to: set restore.append: true, or restore into a new topic with \
                         restore.topic_mapping"
                    )));
                }
                progress.insert(
                    target.clone(),
                    StartRecord {
                        target_topic: target.topic.clone(),
                        target_partition: target.partition,
                        start: end,
                        backup_id: backup_id.clone(),
                        source,
                        lineage,
                    },
                );
                new_starts = true;
                (end, 0)
            }
        };
        starts.insert(target, start);
    }

    let mut jobs = Vec::new();
    let mut time_range: Option<(i64, i64)> = None;
    let mut by_topic: BTreeMap<String, (Vec<SourcePart>, u64)> = BTreeMap::new();
    for s in scanned {
        if let (Some(lo), Some(hi)) = (s.min_timestamp, s.max_timestamp) {
            time_range = Some(match time_range {
                Some((a, b)) => (a.min(lo), b.max(hi)),
                None => (lo, hi),
            });
        }
        if repartitioned.contains_key(&s.source.topic) {
            let entry = by_topic.entry(s.source.topic.clone()).or_default();
            entry.1 += s.segments.iter().map(|seg| seg.size).sum::<u64>();
            entry.0.push(SourcePart {
                source: s.source,
                segments: s.segments,
                index: s.index,
            });
            continue;
        }
        let target = TopicPartition::new(&targets[&s.source.topic], s.source.partition);
        let (start, already) = starts[&target];
        let segment_bytes = s.segments.iter().map(|seg| seg.size).sum::<u64>();
        jobs.push((
            Job::Partition(PartitionJob {
                source: s.source,
                target,
                segments: s.segments,
                index: s.index,
                window_start: settings.time_window_start,
                window_end: settings.time_window_end,
                target_start: start,
                already,
            }),
            segment_bytes,
        ));
    }
    for (topic, (mut sources, stored_bytes)) in by_topic {
        sources.sort_by_key(|s| s.source.partition);
        let n = repartitioned[&topic];
        let target_topic = &targets[&topic];
        let slots = (0..n)
            .map(|p| {
                let target = TopicPartition::new(target_topic, p);
                let (start, already) = starts[&target];
                TargetSlot {
                    target,
                    start,
                    already,
                }
            })
            .collect();
        jobs.push((
            Job::Topic(RepartitionJob {
                sources,
                targets: slots,
                window_start: settings.time_window_start,
                window_end: settings.time_window_end,
                batch_max_bytes: settings.batch_max_bytes,
            }),
            stored_bytes,
        ));
    }
    if new_starts && !dry_run {
        target::save_progress(&client, &settings.progress, &settings.restore_id, &progress).await?;
    }
    Ok(Prepared {
        client,
        actions,
        jobs,
        targets,
        repartitioned,
        problems_ignored,
        warnings,
        time_range,
        catalog,
        settings: settings.clone(),
        read,
        encrypted,
        require_encrypted,
        planned_bytes_read,
    })
}

async fn restore_groups(
    p: &Prepared,
    maps: &OffsetMaps,
    dry_run: bool,
    group_prefix: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Vec<GroupOutcome>, RestoreError> {
    let (settings, repartitioned) = (&p.settings, &p.repartitioned);
    if !settings.consumer_groups.enabled {
        return Ok(Vec::new());
    }
    let Some((run, snapshot)) = p.catalog.latest_group_snapshot() else {
        warnings.push("the backup holds no consumer-group snapshot: no group was moved".into());
        return Ok(Vec::new());
    };
    tracing::info!(run, captured_at = %snapshot.captured_at, "translating consumer-group offsets");
    for g in snapshot
        .groups
        .iter()
        .filter(|g| settings.consumer_groups.includes(&g.group_id))
    {
        let mut topics: Vec<&str> = g
            .offsets
            .iter()
            .filter(|o| repartitioned.contains_key(&o.topic))
            .map(|o| o.topic.as_str())
            .collect();
        topics.dedup();
        if !topics.is_empty() {
            warnings.push(format!(
                "group {}: its offsets on {} were not moved, because the topic was repartitioned and a \
                 source offset names no single target position; its consumers start there per their \
                 auto.offset.reset",
                g.group_id,
                topics.join(", ")
            ));
        }
    }
    let mut translated = groups::translate(snapshot, &settings.consumer_groups, maps, &p.targets);
    if let Some(prefix) = group_prefix {
        for g in &mut translated {
            g.group_id = format!("{prefix}{}", g.group_id);
        }
    }
    groups::commit(&p.client, translated, dry_run).await
}

/// The offset maps and translated group offsets of a restore, computed without producing:
/// what `kafka-backup offsets show` prints. Reads the backup and the progress store; writes
/// nothing.
pub async fn show_offsets(
    config: &LoadedConfig,
    storage: Storage,
) -> Result<(OffsetMaps, Vec<GroupOutcome>, BTreeMap<String, String>), RestoreError> {
    let settings = config.restore.as_ref().ok_or_else(|| {
        RestoreError::Config("offsets show needs a restore configuration (mode: restore)".into())
    })?;
    let options = RestoreOptions {
        force: true,
        dry_run: true,
        ..RestoreOptions::default()
    };
    let p = prepare(config, &storage, settings, &options, true).await?;
    let counters = Counters::default();
    let (_tx, rx) = watch::channel(false);
    let memory = Semaphore::new(SEGMENT_MEMORY_KIB);
    let mut maps = OffsetMaps::default();
    let left_out = std::sync::Mutex::new(Vec::new());
    let cx = JobContext {
        storage: &storage,
        producer: None,
        counters: &counters,
        limit: None,
        shutdown: &rx,
        memory: &memory,
        keys: p.read.data.as_deref(),
        require_encrypted: p.require_encrypted,
        on_bad_segment: OnBadSegment::Skip,
        problems: &left_out,
    };
    // Repartitioned topics have no offset map to show.
    for (job, _) in p.jobs {
        if let Job::Partition(job) = job {
            let outcome = restore_partition(&cx, job).await?;
            if let (Some(source), Some(map)) = (outcome.source, outcome.map) {
                maps.partitions.insert(outcome.target, (source, map));
            }
        }
    }
    let groups = match p.catalog.latest_group_snapshot() {
        Some((_, snapshot)) => {
            groups::translate(snapshot, &settings.consumer_groups, &maps, &p.targets)
        }
        None => Vec::new(),
    };
    Ok((maps, groups, p.targets))
}

fn spawn_progress(counters: Arc<Counters>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let bytes = counters.bytes.load(Ordering::Relaxed);
            tracing::info!(
                records = counters.records.load(Ordering::Relaxed),
                bytes,
                mb_per_s = format!(
                    "{:.1}",
                    bytes as f64 / started.elapsed().as_secs_f64() / 1e6
                ),
                "restore progress"
            );
        }
    })
}

//! `validate`: is a backup complete and intact? Needs storage read access only (LIST, GET),
//! never Kafka, so it can run under a role that has no Kafka credentials at all.
//!
//! What is checked (each finding a [`Problem`] with topic, partition, offset and object):
//!
//! - everything [`Catalog::load`] checks: manifests parse and agree with their keys, every
//!   segment a manifest names exists, each partition's segments tile its offsets except where
//!   gap records explain a hole, no two segments overlap;
//! - every segment, read whole: its SHA-256 against its name (and so its manifest entry),
//!   its structure with the segment reader (magic, version, chunk CRC32C, batch CRC32C,
//!   offsets, trailer, truncation), its header against its key (a segment of another backup
//!   copied in its place names another backup, partition or range), its trailer against its
//!   manifest entry;
//! - every gap record parses and agrees with its key;
//! - with `deep`, every record of every batch is decoded (kafka-records, default bounded
//!   limits) and the transaction markers are checked per partition (see `txn`).
//!
//! Authentication ([`Trust`]): with verify keys, every object whose name no configured key
//! signed (and, for a segment, that no authentic manifest lists) is an error and is not read;
//! the chain of manifest parts and the end offsets of each run's final part are checked.
//! Without keys nothing is authenticated, which the report says; segments no manifest lists
//! are then warnings (a run stopped before its manifest, or someone else wrote them: nothing
//! can tell), and are verified against the SHA-256 in their name like the others.
//!
//! Encryption: an encrypted segment is decrypted with the configured keys
//! ([`ValidateOptions::keys`]) and checked in full; without a key only its hash, name and
//! clear header are checked, and the report counts it as not decrypted.
//!
//! Other warnings: a missing descriptor, a gap listed by a manifest whose own record is
//! missing, objects this tool does not write, gap records over stored data, chain forks and
//! unfinished runs. Everything else is an error.
//!
//! Memory: segments are checked a few at a time ([`SEGMENT_CHECKS`]), each held whole while
//! it is checked plus one decompressed chunk; the catalog holds a few hundred bytes per
//! segment.

mod segment;
mod txn;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backup_format::manifest::GapRecord;
use futures::StreamExt;
use serde::Serialize;

pub use segment::{SegmentCheck, check_segment_bytes, verify_segment};

use crate::backup::ProgressMode;
use crate::catalog::{
    Authentication, Catalog, CatalogError, Problem, ProblemKind, SegmentRef, Trust, sort_problems,
};
use crate::config::TopicSelection;
use crate::decrypt::DataKeys;
use crate::storage::{Storage, StorageError};

/// Segments read and checked at once.
pub const SEGMENT_CHECKS: usize = 4;
/// Gap records read at once.
const GAP_READS: usize = 8;

/// What to validate, and how.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Decode every record and check transaction markers.
    pub deep: bool,
    /// Only these topics (`None`: all). Backup-wide problems are always reported.
    pub topics: Option<TopicSelection>,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// What is authenticated, and how.
    pub trust: Trust,
    /// Unwraps data keys to check encrypted segments in full; `None`: by hash only.
    pub keys: Option<Arc<dyn DataKeys>>,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self {
            deep: false,
            topics: None,
            progress: ProgressMode::Off,
            trust: Trust::default(),
            keys: None,
        }
    }
}

/// What validation found.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    /// The backup.
    pub backup_id: String,
    /// Where it is stored.
    pub location: String,
    /// Whether records were decoded.
    pub deep: bool,
    /// No errors (warnings allowed).
    pub ok: bool,
    /// Problems of severity error.
    pub errors: usize,
    /// Problems of severity warning.
    pub warnings: usize,
    /// Manifest parts that parsed.
    pub manifests: usize,
    /// Runs they belong to.
    pub runs: usize,
    /// Topics checked.
    pub topics: usize,
    /// Partitions checked (per lineage).
    pub partitions: usize,
    /// Segments read and checked.
    pub segments: u64,
    /// Of those, segments no manifest lists.
    pub orphan_segments: u64,
    /// Of those, encrypted segments.
    pub encrypted_segments: u64,
    /// Of those, encrypted segments checked by hash only (no key could decrypt them).
    pub not_decrypted_segments: u64,
    /// How far the backup was authenticated.
    pub authentication: Authentication,
    /// Gap records read.
    pub gap_records: u64,
    /// Bytes read from storage for segments.
    pub bytes_read: u64,
    /// Record batches read.
    pub batches: u64,
    /// Records per the batch headers, control records included.
    pub records: u64,
    /// Deep: records decoded (equal to `records` when every batch decoded).
    pub records_decoded: Option<u64>,
    /// Control batches (transaction markers).
    pub control_batches: u64,
    /// Deep: COMMIT markers.
    pub transactions_committed: Option<u64>,
    /// Deep: ABORT markers.
    pub transactions_aborted: Option<u64>,
    /// Deep: transactions with data but no marker in the backed-up range.
    pub open_transactions: Option<u64>,
    /// Wall time.
    pub duration_secs: f64,
    /// Findings, backup-wide first, then by topic, partition and offset.
    pub problems: Vec<Problem>,
}

/// Validates a backup; see the module documentation. `Err` only when storage fails (or the
/// backup does not exist): what is wrong with the backup is in the report.
pub async fn validate(
    storage: &Storage,
    backup_id: &str,
    options: ValidateOptions,
) -> Result<ValidationReport, CatalogError> {
    let started = Instant::now();
    let catalog = Catalog::load(storage, backup_id, &options.trust).await?;
    let selected = |topic: &str| {
        options.topics.as_ref().is_none_or(|s| {
            let internal = catalog.topics.get(topic).is_some_and(|t| {
                t.lineages
                    .values()
                    .any(|l| l.snapshot.as_ref().is_some_and(|s| s.is_internal))
            });
            s.includes(topic, internal)
        })
    };
    let mut problems: Vec<Problem> = catalog
        .problems
        .iter()
        .filter(|p| p.topic.as_deref().is_none_or(selected))
        .cloned()
        .collect();
    let topics: Vec<_> = catalog
        .topics
        .values()
        .filter(|t| selected(&t.name))
        .collect();
    let mut report = ValidationReport {
        backup_id: backup_id.to_owned(),
        location: catalog.location.clone(),
        deep: options.deep,
        ok: false,
        errors: 0,
        warnings: 0,
        manifests: catalog.manifests.len(),
        runs: count_runs(&catalog),
        topics: topics.len(),
        partitions: topics
            .iter()
            .flat_map(|t| t.lineages.values())
            .map(|l| l.partitions.len())
            .sum(),
        segments: 0,
        orphan_segments: 0,
        encrypted_segments: 0,
        not_decrypted_segments: 0,
        authentication: catalog.authentication.clone(),
        gap_records: 0,
        bytes_read: 0,
        batches: 0,
        records: 0,
        records_decoded: options.deep.then_some(0),
        control_batches: 0,
        transactions_committed: options.deep.then_some(0),
        transactions_aborted: options.deep.then_some(0),
        open_transactions: options.deep.then_some(0),
        duration_secs: 0.0,
        problems: Vec::new(),
    };

    // Gap records: small documents, checked against their keys.
    let gaps: Vec<_> = topics
        .iter()
        .flat_map(|t| t.lineages.values())
        .flat_map(|l| l.partitions.values())
        .flat_map(|p| p.gaps.iter())
        .collect();
    let mut reads = futures::stream::iter(gaps.into_iter().map(|g| async move {
        let key = g.to_key();
        let bytes = match &key {
            Ok(k) => storage
                .get_bounded(k, crate::catalog::read_limits::SMALL_DOCUMENT)
                .await
                .map(Some),
            Err(_) => Ok(None),
        };
        (g, key, bytes)
    }))
    .buffer_unordered(GAP_READS);
    while let Some((gap, key, bytes)) = reads.next().await {
        let (Ok(key), Some(bytes)) = (key, bytes.or_else(not_found_as_none)?) else {
            // A gap only a manifest lists: already reported as missing.
            continue;
        };
        report.gap_records += 1;
        let problem = match GapRecord::from_json(&bytes) {
            // The name carries the range (and, signed, the digest): the content must agree.
            Ok(r) if r.backup_id == backup_id && r.gap.gap_key(backup_id) == gap.range_key() => {
                continue;
            }
            Ok(_) => "its content names another backup or range than its key".to_owned(),
            Err(e) => e.to_string(),
        };
        problems.push(
            Problem::new(ProblemKind::CorruptGapRecord, problem)
                .at(&gap.topic, gap.partition)
                .offset(gap.from)
                .object(&key),
        );
    }

    // Segments, in offset order per partition (`buffered` keeps the order), a few at a time.
    // Without verify keys, segments no manifest lists are checked too (their hash binds their
    // content to their name); with keys, what is not authentic is not read at all.
    let mut segments: Vec<&SegmentRef> = topics
        .iter()
        .flat_map(|t| t.lineages.values())
        .flat_map(|l| l.partitions.values())
        .flat_map(|p| p.segments.iter())
        .collect();
    if !options.trust.verifies() {
        segments.extend(
            catalog
                .unauthenticated
                .iter()
                .filter(|s| selected(&s.parsed.topic)),
        );
        segments.sort_by(|a, b| {
            (
                &a.parsed.topic,
                &a.parsed.topic_id,
                a.parsed.partition,
                a.parsed.start_offset,
            )
                .cmp(&(
                    &b.parsed.topic,
                    &b.parsed.topic_id,
                    b.parsed.partition,
                    b.parsed.start_offset,
                ))
        });
    }
    let total = segments.len();
    let mut progress = Progress::new(options.progress, total);
    let deep = options.deep;
    let keys = options.keys.as_deref();
    let mut checks = futures::stream::iter(
        segments
            .into_iter()
            .map(|s| async move { (s, segment::fetch_and_check(storage, s, deep, keys).await) }),
    )
    .buffered(SEGMENT_CHECKS);
    let mut txn: Option<((String, String, i32), txn::TxnCheck)> = None;
    while let Some((s, check)) = checks.next().await {
        let check = check?;
        report.segments += 1;
        report.orphan_segments += u64::from(s.entry.is_none() && s.signed_by.is_none());
        report.encrypted_segments += u64::from(check.encrypted);
        if keys.is_some() && !options.trust.verifies() && check.readable && !check.encrypted {
            problems.push(
                Problem::new(
                    ProblemKind::InTheClear,
                    "this segment is stored in the clear, and nothing authenticates this backup \
                     (no verify key): it was written before encryption was enabled, or put in \
                     place of an encrypted segment by someone with write access; restore refuses \
                     it unless --accept-unauthenticated is given",
                )
                .at(&s.parsed.topic, s.parsed.partition)
                .offset(s.parsed.start_offset)
                .object(&s.key),
            );
        }
        report.not_decrypted_segments += u64::from(check.not_decrypted);
        report.bytes_read += check.bytes;
        report.batches += check.batches;
        report.records += check.records;
        report.control_batches += check.control_batches;
        if let Some(n) = report.records_decoded.as_mut() {
            *n += check.records_decoded;
        }
        if deep {
            let here = (
                s.parsed.topic.clone(),
                s.parsed.topic_id.clone(),
                s.parsed.partition,
            );
            if txn.as_ref().is_none_or(|(at, _)| *at != here) {
                if let Some((_, done)) = txn.take() {
                    finish_txn(&mut report, &done);
                }
                txn = Some((here, txn::TxnCheck::default()));
            }
            if let Some((_, t)) = txn.as_mut()
                && check.readable
            {
                problems.extend(t.segment(s, &check));
            }
        }
        problems.extend(check.problems);
        progress.update(report.segments, report.bytes_read, false);
    }
    if let Some((_, done)) = txn.take() {
        finish_txn(&mut report, &done);
    }
    progress.update(report.segments, report.bytes_read, true);
    if deep && report.not_decrypted_segments > 0 {
        problems.push(Problem::new(
            ProblemKind::Undecryptable,
            format!(
                "{} encrypted segments could not be decrypted, so their records were not \
                 decoded: configure a key that can decrypt them (restore.encryption)",
                report.not_decrypted_segments
            ),
        ));
    }

    sort_problems(&mut problems);
    report.errors = problems.iter().filter(|p| p.is_error()).count();
    report.warnings = problems.len() - report.errors;
    report.ok = report.errors == 0;
    report.problems = problems;
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

fn not_found_as_none<T>(e: StorageError) -> Result<Option<T>, StorageError> {
    match e {
        StorageError::NotFound { .. } => Ok(None),
        e => Err(e),
    }
}

fn finish_txn(report: &mut ValidationReport, t: &txn::TxnCheck) {
    let add = |field: &mut Option<u64>, n: u64| {
        if let Some(v) = field.as_mut() {
            *v += n;
        }
    };
    add(&mut report.transactions_committed, t.committed);
    add(&mut report.transactions_aborted, t.aborted);
    add(&mut report.open_transactions, t.open_transactions());
}

fn count_runs(catalog: &Catalog) -> usize {
    let mut runs: Vec<&str> = catalog
        .manifests
        .iter()
        .map(|m| m.manifest.run_id.as_str())
        .collect();
    runs.dedup();
    runs.len()
}

/// Progress of a validation: a line redrawn on a terminal, or a log line every 10 s.
struct Progress {
    mode: ProgressMode,
    total: usize,
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    fn new(mode: ProgressMode, total: usize) -> Self {
        Self {
            mode,
            total,
            started: Instant::now(),
            last: None,
        }
    }

    fn update(&mut self, done: u64, bytes: u64, last: bool) {
        let every = match self.mode {
            ProgressMode::Off => return,
            ProgressMode::Terminal => Duration::from_millis(500),
            ProgressMode::Log => Duration::from_secs(10),
        };
        let now = Instant::now();
        if !last && self.last.is_some_and(|t| now - t < every) {
            return;
        }
        self.last = Some(now);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let mb = bytes as f64 / 1e6;
        match self.mode {
            ProgressMode::Terminal => {
                eprint!(
                    "\rvalidated {done}/{} segments, {mb:.1} MB ({:.1} MB/s){}",
                    self.total,
                    mb / secs,
                    if last { "\n" } else { "" }
                );
            }
            _ => tracing::info!(
                segments_done = done,
                segments_total = self.total,
                megabytes = mb,
                "validating"
            ),
        }
    }
}

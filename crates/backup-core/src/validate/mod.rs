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
//! Severity: segments no manifest lists (written by a run that was stopped before its
//! manifest) are warnings, not errors. The backup engine adopts them when it resumes and a
//! restore uses them; their content is verified here exactly like any other segment's,
//! against the SHA-256 in their name, and only the manifest's duplicate of their trailer
//! totals is missing. Likewise warnings: a missing descriptor, a gap listed by a manifest
//! whose own record is missing, objects this tool does not write, gap records over stored
//! data. Everything else is an error.
//!
//! Memory: segments are checked a few at a time ([`SEGMENT_CHECKS`]), each held whole while
//! it is checked plus one decompressed chunk; the catalog holds a few hundred bytes per
//! segment.

mod segment;
mod txn;

use std::time::{Duration, Instant};

use backup_format::manifest::GapRecord;
use futures::StreamExt;
use serde::Serialize;

pub use segment::{SegmentCheck, check_segment_bytes, verify_segment};

use crate::backup::ProgressMode;
use crate::catalog::{Catalog, CatalogError, Problem, ProblemKind, SegmentRef, sort_problems};
use crate::config::TopicSelection;
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
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self {
            deep: false,
            topics: None,
            progress: ProgressMode::Off,
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
    let catalog = Catalog::load(storage, backup_id).await?;
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
            Ok(k) => storage.get(k).await.map(Some),
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
            Ok(r) if r.backup_id == backup_id && r.gap.key(backup_id).ok() == Some(key.clone()) => {
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
    let segments: Vec<&SegmentRef> = topics
        .iter()
        .flat_map(|t| t.lineages.values())
        .flat_map(|l| l.partitions.values())
        .flat_map(|p| p.segments.iter())
        .collect();
    let total = segments.len();
    let mut progress = Progress::new(options.progress, total);
    let deep = options.deep;
    let mut checks = futures::stream::iter(
        segments
            .into_iter()
            .map(|s| async move { (s, segment::fetch_and_check(storage, s, deep).await) }),
    )
    .buffered(SEGMENT_CHECKS);
    let mut txn: Option<((String, String, i32), txn::TxnCheck)> = None;
    while let Some((s, check)) = checks.next().await {
        let check = check?;
        report.segments += 1;
        report.orphan_segments += u64::from(s.entry.is_none());
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

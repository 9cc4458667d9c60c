//! Restoring one partition: its committed batches in offset order, sent as stored where
//! possible, skipping what an earlier, interrupted run already wrote, checking that every
//! batch lands at the offset the map expects, and recording where each record went.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backup_format::segment::{object_sha256, peek_header};
use backup_format::{ReaderLimits, SegmentReader};
use kafka_client::TopicPartition;
use kafka_records::batch::BatchHeader;
use kafka_records::txn::{BatchSummary, Decision, MarkerFilter, MarkerIndex};
use tokio::sync::{Mutex, SemaphorePermit};

use super::offsets::PartitionMap;
use super::scan::check_place;
use super::units::{Rules, unit_for};
use super::{JobContext, RestoreError};
use crate::catalog::SegmentRef;
use crate::decrypt::segment_data_key;
use crate::storage::StorageError;

/// Counters shared by every partition of a restore, for progress and the report.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub batches: AtomicU64,
    pub reencoded: AtomicU64,
    pub aborted_records: AtomicU64,
    pub undecided_records: AtomicU64,
    pub skipped_records: AtomicU64,
    /// Segment bytes read from storage by the produce pass.
    pub stored_bytes_read: AtomicU64,
}

/// A byte-rate limit shared by every partition.
pub(crate) struct RateLimit {
    per_second: u64,
    state: Mutex<(Instant, f64)>,
}

impl RateLimit {
    pub(crate) fn new(per_second: u64) -> Self {
        Self {
            per_second,
            state: Mutex::new((Instant::now(), per_second as f64)),
        }
    }

    /// Waits until `bytes` may be sent (a token bucket holding one second's worth).
    pub(crate) async fn acquire(&self, bytes: usize) {
        let mut state = self.state.lock().await;
        let rate = self.per_second as f64;
        let now = Instant::now();
        let (last, tokens) = *state;
        let mut tokens = (tokens + now.duration_since(last).as_secs_f64() * rate).min(rate);
        tokens -= bytes as f64;
        if tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-tokens / rate)).await;
        }
        *state = (Instant::now(), tokens.max(0.0));
    }
}

/// Segment bytes (KiB) held at once by every partition of a restore together; a segment
/// larger than the whole budget takes all of it.
pub(crate) const SEGMENT_MEMORY_KIB: usize = 64 * 1024;

/// What the produce pass does with a segment that fails its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnBadSegment {
    /// Stop the restore (nothing of the segment was produced).
    Stop,
    /// Leave the segment out and say so (`--force`, and dry runs, which report every
    /// problem).
    Skip,
}

/// A segment read and checked whole, ready to produce; or why it may not be.
pub(crate) enum Staged<'m> {
    Ready(SemaphorePermit<'m>, Box<SegmentReader>),
    Rejected(String),
}

/// Reads a segment for producing, within the memory budget, and checks it before any of its
/// batches can be produced: its SHA-256 against its (signed) name, whether it must be
/// encrypted, its key, and that its header and trailer describe the partition and range its
/// name says. Each segment is read from storage once per restore: this is the read.
pub(crate) async fn stage_segment<'m>(
    cx: &JobContext<'m>,
    seg: &SegmentRef,
) -> Result<Staged<'m>, RestoreError> {
    let kib = usize::try_from(seg.size / 1024 + 1)
        .unwrap_or(SEGMENT_MEMORY_KIB)
        .min(SEGMENT_MEMORY_KIB);
    let permit = cx
        .memory
        .acquire_many(kib as u32)
        .await
        .map_err(|_| RestoreError::Internal("the segment memory budget was closed".into()))?;
    let rejected = |why: String| Ok(Staged::Rejected(format!("segment {}: {why}", seg.key)));
    // Exactly the size listed (and planned): an object that grew since is refused unread.
    let bytes = match cx.storage.get_bounded(&seg.key, seg.size).await {
        Ok(bytes) => bytes,
        Err(StorageError::NotFound { .. }) => return rejected("it is missing".into()),
        Err(e @ StorageError::TooLarge { .. }) => return rejected(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    cx.counters
        .stored_bytes_read
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    if object_sha256(&bytes) != seg.parsed.sha256 {
        return rejected(
            "it does not match the SHA-256 in its name (changed or replaced after it was written)"
                .into(),
        );
    }
    let header = match peek_header(&bytes) {
        Ok(header) => header,
        Err(e) => return rejected(e.to_string()),
    };
    if cx.require_encrypted && header.encryption.is_none() {
        return rejected(
            "it is stored in the clear, but this restore decrypts (restore.encryption) and \
             nothing authenticates the backup (no restore.verify_key): it was written before \
             encryption was enabled, or replaced in the clear by someone with write access; \
             restore it with --accept-unauthenticated only if you trust everyone who can write \
             to the bucket"
                .into(),
        );
    }
    let key = match segment_data_key(cx.keys, &header).await {
        Ok(key) => key,
        Err(why) => {
            return Err(RestoreError::Keys {
                failures: vec![(format!("segment {}", seg.key), why)],
            });
        }
    };
    if let Err(why) = check_place(&bytes, &seg.parsed, key.as_ref()) {
        return rejected(why);
    }
    let reader = match &key {
        Some(key) => SegmentReader::with_key(bytes, ReaderLimits::default(), key),
        None => SegmentReader::new(bytes, ReaderLimits::default()),
    };
    // Encrypted: every chunk's AEAD tag is checked now, so a chunk forged where nothing
    // signs the name (and so its SHA-256) stops the restore before the segment's first batch.
    let checked = reader.and_then(|mut reader| reader.authenticate_chunks().map(|()| reader));
    match checked {
        Ok(reader) => Ok(Staged::Ready(permit, Box::new(reader))),
        Err(e) => rejected(e.to_string()),
    }
}

/// A segment that failed its check: the restore stops, or (forced, or a dry run) leaves it
/// out and records why.
pub(crate) fn reject_segment(cx: &JobContext<'_>, problem: String) -> Result<(), RestoreError> {
    match cx.on_bad_segment {
        OnBadSegment::Stop => Err(RestoreError::Rejected { problem }),
        OnBadSegment::Skip => {
            tracing::warn!("{problem}: left out");
            cx.problems
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(problem);
            Ok(())
        }
    }
}

/// Whether a batch is restored: committed data is; aborted transactions, transactions still
/// open when the backup ended, and markers are not (and are counted).
pub(crate) fn keep_batch(
    filter: &mut MarkerFilter,
    header: &BatchHeader,
    batch: &bytes::Bytes,
    counters: &Counters,
) -> Result<bool, kafka_records::RecordError> {
    let count = u64::from(header.record_count.max(0) as u32);
    let decision = if header.is_control() {
        // Its marker must be one the plan knew of (see MarkerFilter::decide_summary).
        filter.decide_summary(&BatchSummary::read(batch, &super::units::limits())?)?
    } else {
        filter.decide(header)?
    };
    Ok(match decision {
        Decision::Keep => true,
        Decision::Aborted => {
            counters.aborted_records.fetch_add(count, Ordering::Relaxed);
            false
        }
        Decision::Control => false,
        Decision::Undecided => {
            counters
                .undecided_records
                .fetch_add(count, Ordering::Relaxed);
            false
        }
    })
}

/// One partition to restore.
pub(crate) struct PartitionJob {
    pub source: TopicPartition,
    pub target: TopicPartition,
    pub segments: Vec<SegmentRef>,
    pub index: MarkerIndex,
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
    /// Target offset where this restore's first record went (or goes).
    pub target_start: i64,
    /// Records of this restore already in the target (an earlier run wrote them).
    pub already: u64,
}

/// How one target partition's restore ended.
pub(crate) struct PartitionOutcome {
    pub target: TopicPartition,
    /// The one source partition (`None` when the topic was repartitioned).
    pub source: Option<TopicPartition>,
    pub target_start: i64,
    pub target_end: i64,
    /// Records of this restore in the target partition, written by this run or earlier ones.
    pub records: u64,
    /// Of which this run wrote.
    pub produced: u64,
    /// Of which earlier runs wrote (found in the target at start).
    pub already: u64,
    pub interrupted: bool,
    /// Source -> target offsets (`None` when repartitioned).
    pub map: Option<PartitionMap>,
}

impl PartitionOutcome {
    fn of(
        target: TopicPartition,
        source: TopicPartition,
        map: PartitionMap,
        (produced, already): (u64, u64),
        interrupted: bool,
    ) -> Self {
        Self {
            already,
            target,
            source: Some(source),
            target_start: map.target_start,
            target_end: map.target_end(),
            records: map.records(),
            produced,
            interrupted,
            map: Some(map),
        }
    }
}

/// Restores (or, without a producer, simulates restoring) one partition.
pub(crate) async fn restore_partition(
    cx: &JobContext<'_>,
    job: PartitionJob,
) -> Result<PartitionOutcome, RestoreError> {
    let JobContext {
        producer,
        counters,
        limit,
        shutdown,
        ..
    } = *cx;
    let mut filter = job.index.into_filter();
    let mut map = PartitionMap::new(job.target_start);
    let mut skip = job.already;
    let mut produced = 0u64;
    for seg in &job.segments {
        if producer.is_some() && *shutdown.borrow() {
            return Ok(PartitionOutcome::of(
                job.target,
                job.source,
                map,
                (produced, job.already),
                true,
            ));
        }
        let (_permit, mut reader) = match stage_segment(cx, seg).await? {
            Staged::Ready(permit, reader) => (permit, reader),
            Staged::Rejected(problem) => {
                reject_segment(cx, format!("{}: {problem}", job.source))?;
                continue;
            }
        };
        let rules = Rules {
            coverage_start: reader.header().start_offset,
            window_start: job.window_start,
            window_end: job.window_end,
        };
        while let Some((header, batch)) = reader
            .next_batch()
            .map_err(|e| RestoreError::Corrupt(format!("segment {}: {e}", seg.key)))?
        {
            let count = u64::from(header.record_count.max(0) as u32);
            if !keep_batch(&mut filter, &header, &batch, counters)
                .map_err(|e| RestoreError::Corrupt(format!("segment {}: {e}", seg.key)))?
            {
                continue;
            }
            let Some(unit) = unit_for(&batch, &header, &rules)? else {
                counters.skipped_records.fetch_add(count, Ordering::Relaxed);
                continue;
            };
            counters.skipped_records.fetch_add(
                count.saturating_sub(u64::from(unit.records)),
                Ordering::Relaxed,
            );
            let records = u64::from(unit.records);
            if skip > 0 {
                if skip < records {
                    return Err(RestoreError::Target(format!(
                        "target partition {} holds {} records of this restore, which ends inside a batch: \
                         something else wrote to it, or it was restored with other settings. Restore into a \
                         new topic, or use another restore_id",
                        job.target,
                        job.already - skip + (map.target_end() - map.target_start) as u64
                    )));
                }
                skip -= records;
                map.push(unit.source, unit.records);
                continue;
            }
            if let Some(producer) = producer {
                if let Some(limit) = limit {
                    limit.acquire(unit.bytes.len()).await;
                }
                let size = unit.bytes.len() as u64;
                let reencoded = unit.reencoded;
                let ack = producer.send_batch(&job.target, unit.bytes).await?;
                let expected = map.target_end();
                if !ack.duplicate && ack.base_offset != expected {
                    return Err(RestoreError::Target(format!(
                        "a batch for {} landed at offset {} instead of {expected}: another producer is \
                         writing to the target partition. Stop it and run the restore again; it continues \
                         where it stopped",
                        job.target, ack.base_offset
                    )));
                }
                counters.bytes.fetch_add(size, Ordering::Relaxed);
                counters.batches.fetch_add(1, Ordering::Relaxed);
                counters.records.fetch_add(records, Ordering::Relaxed);
                crate::metrics::metrics().restore_written(records, size);
                if reencoded {
                    counters.reencoded.fetch_add(1, Ordering::Relaxed);
                }
                produced += records;
            }
            map.push(unit.source, unit.records);
        }
    }
    if skip > 0 {
        return Err(RestoreError::Target(format!(
            "target partition {} holds {skip} more records than this restore writes: something else wrote \
             to it. Restore into a new topic, or use another restore_id",
            job.target
        )));
    }
    Ok(PartitionOutcome::of(
        job.target,
        job.source,
        map,
        (produced, job.already),
        false,
    ))
}

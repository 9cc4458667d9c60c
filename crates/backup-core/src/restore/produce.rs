//! Restoring one partition: its committed batches in offset order, sent as stored where
//! possible, skipping what an earlier, interrupted run already wrote, checking that every
//! batch lands at the offset the map expects, and recording where each record went.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backup_format::segment::object_sha256;
use backup_format::segment::peek_header;
use backup_format::{ReaderLimits, SegmentReader};
use kafka_client::TopicPartition;
use kafka_records::batch::BatchHeader;
use kafka_records::txn::{Decision, MarkerFilter, MarkerIndex};
use tokio::sync::{Mutex, Semaphore, SemaphorePermit};

use super::offsets::PartitionMap;
use super::units::{Rules, unit_for};
use super::{JobContext, RestoreError};
use crate::catalog::SegmentRef;
use crate::decrypt::{DataKeys, segment_data_key};
use crate::storage::Storage;

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

/// Reads a segment for producing, within the memory budget, and checks it again against
/// the SHA-256 in its name: the object could have changed since the integrity pass.
pub(crate) async fn load_segment<'m>(
    storage: &Storage,
    memory: &'m Semaphore,
    seg: &SegmentRef,
) -> Result<(SemaphorePermit<'m>, bytes::Bytes), RestoreError> {
    let kib = usize::try_from(seg.size / 1024 + 1)
        .unwrap_or(SEGMENT_MEMORY_KIB)
        .min(SEGMENT_MEMORY_KIB);
    let permit = memory
        .acquire_many(kib as u32)
        .await
        .map_err(|_| RestoreError::Internal("the segment memory budget was closed".into()))?;
    // Exactly the size the integrity pass saw: an object that grew since is refused unread.
    let bytes = storage.get_bounded(&seg.key, seg.size).await?;
    if object_sha256(&bytes) != seg.parsed.sha256 {
        return Err(RestoreError::Corrupt(format!(
            "segment {} changed since it was verified (its SHA-256 no longer matches its name)",
            seg.key
        )));
    }
    Ok((permit, bytes))
}

/// A reader over a loaded segment, decrypting it when it is encrypted.
pub(crate) async fn open_segment(
    seg: &SegmentRef,
    bytes: bytes::Bytes,
    keys: Option<&dyn DataKeys>,
) -> Result<SegmentReader, RestoreError> {
    let corrupt = |e: String| RestoreError::Corrupt(format!("segment {}: {e}", seg.key));
    let header = peek_header(&bytes).map_err(|e| corrupt(e.to_string()))?;
    match segment_data_key(keys, &header)
        .await
        .map_err(|e| corrupt(e.message))?
    {
        Some(key) => SegmentReader::with_key(bytes, ReaderLimits::default(), &key),
        None => SegmentReader::new(bytes, ReaderLimits::default()),
    }
    .map_err(|e| corrupt(e.to_string()))
}

/// Whether a batch is restored: committed data is; aborted transactions, transactions still
/// open when the backup ended, and markers are not (and are counted).
pub(crate) fn keep_batch(
    filter: &mut MarkerFilter,
    header: &BatchHeader,
    counters: &Counters,
) -> Result<bool, kafka_records::RecordError> {
    let count = u64::from(header.record_count.max(0) as u32);
    Ok(match filter.decide(header)? {
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
        storage,
        producer,
        counters,
        limit,
        shutdown,
        memory,
        keys,
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
        let (_permit, bytes) = load_segment(storage, memory, seg).await?;
        let mut reader = open_segment(seg, bytes, keys).await?;
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
            if !keep_batch(&mut filter, &header, counters)
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

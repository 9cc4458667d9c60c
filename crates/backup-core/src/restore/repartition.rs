//! Restoring a topic into a different number of partitions: every kept record is decoded and
//! placed as Kafka's default partitioner places a keyed record (murmur2 of the key, modulo the
//! partition count); a record without a key stays with its source partition modulo the count.
//!
//! Source partitions are read one after the other, each in offset order, so the sequence of
//! records each target partition receives is the same on every run. A re-run skips, per target
//! partition, as many records of that sequence as the target already holds: the same
//! exactly-once rule as a plain restore, at record rather than batch granularity, because the
//! batches are built here.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use kafka_client::{IdempotentProducer, TopicPartition};
use kafka_records::txn::MarkerIndex;
use kafka_records::{Compression, Record};

use super::produce::{
    Counters, PartitionOutcome, RateLimit, Staged, keep_batch, reject_segment, stage_segment,
};
use super::units::{encode, limits, partition_for_key};
use super::{JobContext, RestoreError};
use crate::catalog::SegmentRef;

/// Record bytes waiting for all target partitions together, at most.
const PENDING_BUDGET: usize = 32 << 20;

/// One source partition of a repartitioned topic.
pub(crate) struct SourcePart {
    pub source: TopicPartition,
    pub segments: Vec<SegmentRef>,
    pub index: MarkerIndex,
}

/// One target partition: where this restore started writing it and how much is there.
#[derive(Debug, Clone)]
pub(crate) struct TargetSlot {
    pub target: TopicPartition,
    pub start: i64,
    pub already: u64,
}

/// A whole topic restored into `targets.len()` partitions.
pub(crate) struct RepartitionJob {
    /// Source partitions, in partition order.
    pub sources: Vec<SourcePart>,
    /// Target partitions 0..n, in order.
    pub targets: Vec<TargetSlot>,
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
    pub batch_max_bytes: usize,
}

/// Records waiting to be sent to one target partition.
struct Pending {
    records: Vec<Record>,
    bytes: usize,
    compression: Compression,
}

struct Target {
    slot: TargetSlot,
    /// Records of this restore that belong here, sent or not.
    records: u64,
    /// Records still to skip (earlier runs wrote them).
    skip: u64,
    /// The offset the next sent batch must land at.
    next: i64,
    produced: u64,
    pending: Pending,
}

/// Restores (or, without a producer, counts) a repartitioned topic.
pub(crate) async fn restore_repartitioned(
    cx: &JobContext<'_>,
    job: RepartitionJob,
) -> Result<Vec<PartitionOutcome>, RestoreError> {
    let JobContext {
        producer,
        counters,
        limit,
        shutdown,
        ..
    } = *cx;
    let n = job.targets.len() as i32;
    let mut targets: Vec<Target> = job
        .targets
        .into_iter()
        .map(|slot| Target {
            records: 0,
            skip: slot.already,
            next: slot.start + slot.already as i64,
            produced: 0,
            pending: Pending {
                records: Vec::new(),
                bytes: 0,
                compression: Compression::None,
            },
            slot,
        })
        .collect();
    let in_window =
        |ts: i64| job.window_start.is_none_or(|s| ts >= s) && job.window_end.is_none_or(|e| ts < e);
    let mut interrupted = false;
    let mut pending_total = 0usize;
    'sources: for part in job.sources {
        let mut filter = part.index.into_filter();
        for seg in &part.segments {
            if producer.is_some() && *shutdown.borrow() {
                interrupted = true;
                break 'sources;
            }
            let (_permit, mut reader) = match stage_segment(cx, seg).await? {
                Staged::Ready(permit, reader) => (permit, reader),
                Staged::Rejected(problem) => {
                    reject_segment(cx, format!("{}: {problem}", part.source))?;
                    continue;
                }
            };
            let corrupt = |e: &dyn std::fmt::Display| {
                RestoreError::Corrupt(format!("segment {}: {e}", seg.key))
            };
            let coverage_start = reader.header().start_offset;
            while let Some((header, batch)) = reader.next_batch().map_err(|e| corrupt(&e))? {
                if !keep_batch(&mut filter, &header, &batch, counters).map_err(|e| corrupt(&e))? {
                    continue;
                }
                let decoded = kafka_records::decode_batch(&batch, &limits()).map_err(|e| {
                    RestoreError::Corrupt(format!(
                        "segment {}: batch at offset {}: {e}",
                        seg.key, header.base_offset
                    ))
                })?;
                for record in decoded.records {
                    if record.offset < coverage_start || !in_window(record.timestamp) {
                        counters.skipped_records.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let p = match &record.key {
                        Some(key) => partition_for_key(key, n),
                        None => part.source.partition % n,
                    };
                    let t = &mut targets[p as usize];
                    t.records += 1;
                    if t.skip > 0 {
                        t.skip -= 1;
                        continue;
                    }
                    if t.pending.records.is_empty() {
                        t.pending.compression = decoded.compression;
                    }
                    let size = record_size(&record);
                    t.pending.bytes += size;
                    t.pending.records.push(record);
                    pending_total += size;
                    if t.pending.bytes >= job.batch_max_bytes {
                        pending_total -= t.pending.bytes;
                        flush(producer, t, counters, limit).await?;
                    }
                    // Many target partitions each filling towards batch_max_bytes could hold
                    // far more than a restore should: past the budget, everything goes out.
                    if pending_total >= PENDING_BUDGET {
                        for t in &mut targets {
                            flush(producer, t, counters, limit).await?;
                        }
                        pending_total = 0;
                    }
                }
            }
        }
    }
    if !interrupted {
        for t in &mut targets {
            flush(producer, t, counters, limit).await?;
        }
    }
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        if t.skip > 0 && !interrupted {
            return Err(RestoreError::Target(format!(
                "target partition {} holds {} more records than this restore writes: something else wrote \
                 to it. Restore into a new topic, or use another restore_id",
                t.slot.target, t.skip
            )));
        }
        out.push(PartitionOutcome {
            target: t.slot.target.clone(),
            source: None,
            target_start: t.slot.start,
            target_end: t.slot.start + t.records as i64,
            records: t.records,
            produced: t.produced,
            already: t.slot.already,
            interrupted,
            map: None,
        });
    }
    Ok(out)
}

/// Sends what is pending for one target partition as one batch (without a producer: drops it).
async fn flush(
    producer: Option<&IdempotentProducer>,
    t: &mut Target,
    counters: &Counters,
    limit: Option<&Arc<RateLimit>>,
) -> Result<(), RestoreError> {
    if t.pending.records.is_empty() {
        return Ok(());
    }
    let records = std::mem::take(&mut t.pending.records);
    t.pending.bytes = 0;
    let count = records.len() as u64;
    let Some(producer) = producer else {
        return Ok(());
    };
    let bytes = encode(records, t.pending.compression)?;
    if let Some(limit) = limit {
        limit.acquire(bytes.len()).await;
    }
    let size = bytes.len() as u64;
    let ack = producer.send_batch(&t.slot.target, bytes).await?;
    if !ack.duplicate && ack.base_offset != t.next {
        return Err(RestoreError::Target(format!(
            "a batch for {} landed at offset {} instead of {}: another producer is writing to the target \
             partition. Stop it and run the restore again; it continues where it stopped",
            t.slot.target, ack.base_offset, t.next
        )));
    }
    t.next += count as i64;
    t.produced += count;
    counters.bytes.fetch_add(size, Ordering::Relaxed);
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters.records.fetch_add(count, Ordering::Relaxed);
    counters.reencoded.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Roughly what a record adds to a batch, to cut batches near `batch_max_bytes`.
fn record_size(r: &Record) -> usize {
    let headers: usize = r
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()) + 2)
        .sum();
    20 + r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()) + headers
}

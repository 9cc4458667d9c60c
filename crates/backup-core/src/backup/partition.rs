//! One partition during a run: its read position, its open segment, and what happened to it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use backup_format::segment::{
    AbortedTransaction, Compression as SegmentCompression, HEADER_FORMAT, SegmentHeader,
    SegmentWriter, WriterOptions,
};
use bytes::Bytes;
use kafka_client::TopicPartition;
use kafka_records::batch::BatchHeader;

use super::BackupError;
use super::plan::PartitionPlan;

/// Where a partition stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// Still being read.
    Active,
    /// Finished (snapshot end reached, or the topic went away).
    Done,
    /// Given up on, with the reason; the run ends as partial.
    Failed(String),
}

/// A segment being filled.
pub(crate) struct OpenSegment {
    pub writer: SegmentWriter,
    pub opened_at: Instant,
}

/// Segment buffers returned by finished uploads, reused by new segments: writing into
/// memory that was already touched is about twice as fast as faulting in fresh pages.
#[derive(Debug, Clone, Default)]
pub(crate) struct BufferPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl BufferPool {
    /// Buffers kept: one is enough to stay on warm memory, and each idle one costs as much
    /// memory as a segment.
    const KEEP: usize = 1;

    pub(crate) fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    pub(crate) fn give(&self, buffer: Vec<u8>) {
        let mut pool = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < Self::KEEP {
            pool.push(buffer);
        }
    }
}

/// Identity shared by every segment of a run.
#[derive(Debug, Clone)]
pub(crate) struct RunIdentity {
    pub backup_id: String,
    pub run_id: String,
    pub cluster_id: Option<String>,
    pub writer: WriterOptions,
    pub buffers: BufferPool,
}

/// A partition's state during the run.
pub(crate) struct PartitionState {
    pub plan: PartitionPlan,
    /// Next offset to fetch.
    pub position: i64,
    /// Where the data written to segments ends: the next segment starts here.
    pub written_to: i64,
    pub status: Status,
    pub segment: Option<OpenSegment>,
    /// Most bytes to ask for in one fetch; raised when a batch does not fit.
    pub max_bytes: i32,
    /// Fetches in a row that returned nothing although the plan says data remains.
    pub empty_fetches: u32,
    /// Not before this instant (after a retriable partition error).
    pub retry_at: Option<Instant>,
    pub attempts: u32,
    pub records: u64,
    pub batches: u64,
    pub raw_bytes: u64,
    /// The partition's high watermark in the last fetch answer, for the lag metric.
    pub high_watermark: Option<i64>,
}

impl PartitionState {
    pub(crate) fn new(plan: PartitionPlan, max_bytes: i32) -> Self {
        let status = match (&plan.problem, plan.target_end) {
            (Some(problem), _) => Status::Failed(problem.clone()),
            (None, Some(end)) if plan.start >= end => Status::Done,
            _ => Status::Active,
        };
        Self {
            position: plan.start,
            written_to: plan.start,
            plan,
            status,
            segment: None,
            max_bytes,
            empty_fetches: 0,
            retry_at: None,
            attempts: 0,
            records: 0,
            batches: 0,
            raw_bytes: 0,
            high_watermark: None,
        }
    }

    pub(crate) fn tp(&self) -> &TopicPartition {
        &self.plan.tp
    }

    /// Whether a snapshot has everything it planned to copy.
    pub(crate) fn reached_target(&self) -> bool {
        self.plan.target_end.is_some_and(|end| self.position >= end)
    }

    /// Offsets left to copy in a snapshot (for progress and ETA).
    pub(crate) fn remaining(&self) -> u64 {
        match self.plan.target_end {
            Some(end) if self.status == Status::Active => (end - self.position).max(0) as u64,
            _ => 0,
        }
    }

    /// Takes the complete batches of one fetch answer that lie at or after the read position
    /// and moves the position past them. Cheap (batch headers only), so the next fetch can be
    /// sent before the batches are written.
    pub(crate) fn advance(&mut self, batches: Vec<Bytes>) -> Result<Vec<Bytes>, BackupError> {
        let mut taken = Vec::with_capacity(batches.len());
        for batch in batches {
            let header = BatchHeader::parse(&batch).map_err(|e| {
                BackupError::Kafka(kafka_client::Error::Protocol {
                    broker: "the partition leader".into(),
                    detail: format!("partition {}: {e}", self.plan.tp),
                })
            })?;
            // A fetch may start with a batch that ends before our position (the broker returns
            // whole batches); those records are already in an earlier segment.
            if header.last_offset() < self.position {
                continue;
            }
            self.position = header.last_offset() + 1;
            self.records += u64::from(header.record_count.max(0) as u32);
            self.batches += 1;
            self.raw_bytes += batch.len() as u64;
            taken.push(batch);
        }
        Ok(taken)
    }

    /// Writes batches taken by [`PartitionState::advance`] into the open segment (opening one
    /// that starts where the previous one ended), with the aborted transactions the fetch
    /// reported.
    pub(crate) fn write(
        &mut self,
        run: &RunIdentity,
        batches: &[Bytes],
        aborted: &[(i64, i64)],
    ) -> Result<(), BackupError> {
        if batches.is_empty() {
            return Ok(());
        }
        let segment = match &mut self.segment {
            Some(s) => s,
            None => {
                let header = SegmentHeader {
                    format: HEADER_FORMAT,
                    backup_id: run.backup_id.clone(),
                    run_id: run.run_id.clone(),
                    cluster_id: run.cluster_id.clone(),
                    topic: self.plan.tp.topic.clone(),
                    topic_id: self.plan.topic_id.clone(),
                    partition: self.plan.tp.partition,
                    start_offset: self.written_to,
                    // Both set by the writer from its options.
                    compression: SegmentCompression::None,
                    compression_level: None,
                    created_at: super::clock::now_rfc3339(),
                    encryption: None,
                    aborted_transactions: Vec::new(),
                };
                self.segment.insert(OpenSegment {
                    writer: SegmentWriter::with_buffer(
                        header,
                        run.writer.clone(),
                        run.buffers.take(),
                    )?,
                    opened_at: Instant::now(),
                })
            }
        };
        for batch in batches {
            segment.writer.push_batch(batch)?;
        }
        if let Some(end) = segment.writer.last_offset() {
            self.written_to = end + 1;
        }
        if !aborted.is_empty() {
            segment.writer.add_aborted_transactions(aborted.iter().map(
                |&(first_offset, producer_id)| AbortedTransaction {
                    first_offset,
                    producer_id,
                },
            ))?;
        }
        Ok(())
    }

    /// Moves both the read and the write position, e.g. past a gap. The open segment must
    /// have been closed first.
    pub(crate) fn jump_to(&mut self, offset: i64) {
        debug_assert!(self.segment.is_none());
        self.position = offset;
        self.written_to = offset;
    }

    /// Bytes held by the open segment.
    pub(crate) fn buffered(&self) -> u64 {
        self.segment
            .as_ref()
            .map(|s| s.writer.stored_bytes())
            .unwrap_or(0)
    }
}

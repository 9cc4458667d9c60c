//! Closing segments and uploading them: each finished segment is written once, with a
//! create-only put, under a name that carries its range and hash. Uploads run concurrently but
//! bounded, and the bytes they hold count against the run's memory budget.

use std::sync::Arc;

use backup_format::manifest::{Gap, GapRecord, MANIFEST_FORMAT, SegmentEntry};
use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::partition::{BufferPool, OpenSegment, PartitionState};
use super::{BackupError, RunProtection};
use crate::storage::Storage;

/// Uploads in flight at once; more rarely helps a single bucket and costs memory.
const MAX_CONCURRENT_UPLOADS: usize = 4;

/// Collects finished segments and uploads them.
pub(crate) struct SegmentSink {
    storage: Storage,
    backup_id: String,
    run_id: String,
    buffers: BufferPool,
    protection: RunProtection,
    uploads: JoinSet<Result<SegmentEntry, BackupError>>,
    slots: Arc<Semaphore>,
    /// Bytes of segments handed to uploads that have not finished.
    pub pending_bytes: u64,
    /// Segments stored so far in this run, not yet listed in a manifest part.
    pub stored: Vec<SegmentEntry>,
    /// Gaps recorded so far in this run, not yet listed in a manifest part.
    pub gaps: Vec<Gap>,
    /// Segments stored in this run.
    pub segments_written: usize,
    /// Bytes stored in this run.
    pub written_bytes: u64,
    /// Gaps recorded in this run.
    pub gaps_recorded: usize,
}

impl SegmentSink {
    pub(crate) fn new(
        storage: Storage,
        backup_id: &str,
        run_id: &str,
        buffers: BufferPool,
        protection: RunProtection,
    ) -> Self {
        Self {
            storage,
            backup_id: backup_id.to_owned(),
            run_id: run_id.to_owned(),
            buffers,
            protection,
            uploads: JoinSet::new(),
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT_UPLOADS)),
            pending_bytes: 0,
            stored: Vec::new(),
            gaps: Vec::new(),
            segments_written: 0,
            written_bytes: 0,
            gaps_recorded: 0,
        }
    }

    /// Closes the partition's open segment, if any, and starts its upload. Waits for an upload
    /// slot, which is what slows fetching down when storage is slower than Kafka.
    pub(crate) async fn close(
        &mut self,
        partition: &mut PartitionState,
    ) -> Result<(), BackupError> {
        let Some(OpenSegment { writer, .. }) = partition.segment.take() else {
            return Ok(());
        };
        let finished = writer.finish()?;
        let key = match &self.protection.signing_key {
            Some(signing) => finished.segment_key().sign(signing)?.to_key()?,
            None => finished.key(),
        };
        let entry = SegmentEntry::from_finished(&finished, key.clone());
        let size = finished.bytes.len() as u64;
        while self.slots.available_permits() == 0 {
            self.reap_one().await?;
        }
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BackupError::Internal("upload slots closed".into()))?;
        let storage = self.storage.clone();
        let buffers = self.buffers.clone();
        self.pending_bytes += size;
        self.uploads.spawn(async move {
            let _permit = permit;
            let outcome = storage.put_new(&key, finished.bytes.clone()).await?;
            tracing::debug!(key, size, ?outcome, "segment stored");
            if let Some(buffer) = finished.into_buffer() {
                buffers.give(buffer);
            }
            Ok(entry)
        });
        Ok(())
    }

    /// Records a gap: offsets deleted by retention before they could be copied. The record is
    /// its own object, written at once, so it survives even if this run is killed.
    pub(crate) async fn record_gap(&mut self, gap: Gap) -> Result<(), BackupError> {
        let mut record = GapRecord {
            format: MANIFEST_FORMAT,
            backup_id: self.backup_id.clone(),
            run_id: self.run_id.clone(),
            gap: gap.clone(),
            encryption: None,
            sealed: None,
        };
        if let Some(key) = &self.protection.run_key {
            record
                .seal(key)
                .map_err(|e| BackupError::Internal(format!("cannot encrypt a gap record: {e}")))?;
        }
        let body = record
            .to_json()
            .map_err(|e| BackupError::Internal(format!("cannot encode a gap record: {e}")))?;
        let key = match &self.protection.signing_key {
            Some(signing) => gap
                .gap_key(&self.backup_id)
                .sign(&body, signing)?
                .to_key()?,
            None => gap.key(&self.backup_id)?,
        };
        match self.storage.put_new(&key, Bytes::from(body)).await {
            // An earlier, interrupted run may have recorded the same gap (with its own run id,
            // so other bytes under the same name).
            Ok(_) | Err(crate::storage::StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.gaps.push(gap);
        self.gaps_recorded += 1;
        Ok(())
    }

    /// Waits for one upload to finish and records it.
    pub(crate) async fn reap_one(&mut self) -> Result<(), BackupError> {
        if let Some(joined) = self.uploads.join_next().await {
            self.finished(joined)?;
        }
        Ok(())
    }

    /// Records uploads that have already finished, without waiting.
    pub(crate) async fn reap_ready(&mut self) -> Result<(), BackupError> {
        while let Some(joined) = self.uploads.try_join_next() {
            self.finished(joined)?;
        }
        Ok(())
    }

    fn finished(
        &mut self,
        joined: Result<Result<SegmentEntry, BackupError>, tokio::task::JoinError>,
    ) -> Result<(), BackupError> {
        let entry =
            joined.map_err(|e| BackupError::Internal(format!("upload task failed: {e}")))??;
        self.pending_bytes = self.pending_bytes.saturating_sub(entry.stored_bytes);
        self.segments_written += 1;
        self.written_bytes += entry.stored_bytes;
        self.stored.push(entry);
        Ok(())
    }

    /// Waits for every upload.
    pub(crate) async fn drain(&mut self) -> Result<(), BackupError> {
        while !self.uploads.is_empty() {
            self.reap_one().await?;
        }
        Ok(())
    }
}

//! The batch rules and running totals shared by the writer and the reader, so the two can
//! never disagree about what a valid segment is or what its trailer must say.

use std::collections::HashSet;

use kafka_records::BatchHeader;
use kafka_records::batch::ATTR_LOG_APPEND_TIME;

use super::SegmentTrailer;
use crate::FormatError;

/// Running totals over the batches of one segment.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) batches: u64,
    records: u64,
    pub(crate) raw_bytes: u64,
    first_batch_offset: Option<i64>,
    pub(crate) last_offset: Option<i64>,
    min_timestamp: Option<i64>,
    max_timestamp: Option<i64>,
    control: u64,
    transactional: u64,
    producers: HashSet<i64>,
    /// COMMIT and ABORT markers, in offset order.
    markers: Vec<super::TxnMarker>,
    /// A control batch did not decode, so `markers` may miss one.
    markers_incomplete: bool,
}

impl Tally {
    /// Checks a (CRC-verified) batch header against the rules: sane values, strictly after
    /// the previous batch, and the first batch reaching `start_offset`. Returns the batch's
    /// last offset. Uses checked arithmetic: these are untrusted values, and
    /// `BatchHeader::last_offset` would overflow on hostile ones.
    pub(crate) fn check(&self, h: &BatchHeader, start_offset: i64) -> Result<i64, FormatError> {
        let bad = |reason| FormatError::InvalidBatchHeader {
            base_offset: h.base_offset,
            reason,
        };
        if h.base_offset < 0 {
            return Err(bad("negative base offset"));
        }
        if h.last_offset_delta < 0 {
            return Err(bad("negative lastOffsetDelta"));
        }
        if h.record_count < 0 {
            return Err(bad("negative record count"));
        }
        let last = h
            .base_offset
            .checked_add(i64::from(h.last_offset_delta))
            .filter(|&l| l < i64::MAX)
            .ok_or_else(|| bad("last offset out of range"))?;
        match self.last_offset {
            Some(prev) if h.base_offset <= prev => Err(FormatError::OffsetOrder {
                base_offset: h.base_offset,
                bound: prev,
                reason: "does not start after the previous batch's last offset",
            }),
            None if last < start_offset => Err(FormatError::OffsetOrder {
                base_offset: h.base_offset,
                bound: start_offset,
                reason: "ends before the segment's start offset",
            }),
            _ => Ok(last),
        }
    }

    /// Adds a batch that passed [`Tally::check`].
    pub(crate) fn add(&mut self, h: &BatchHeader, last: i64, len: usize) {
        self.batches += 1;
        // check() rejected negative counts.
        self.records += u64::try_from(h.record_count).unwrap_or(0);
        self.raw_bytes += len as u64;
        self.first_batch_offset.get_or_insert(h.base_offset);
        self.last_offset = Some(last);
        // LogAppendTime batches: every record's timestamp is the batch maxTimestamp.
        let first_ts = if h.attributes & ATTR_LOG_APPEND_TIME != 0 {
            h.max_timestamp
        } else {
            h.base_timestamp
        };
        if first_ts >= 0 {
            self.min_timestamp = Some(self.min_timestamp.map_or(first_ts, |m| m.min(first_ts)));
        }
        if h.max_timestamp >= 0 {
            self.max_timestamp = Some(
                self.max_timestamp
                    .map_or(h.max_timestamp, |m| m.max(h.max_timestamp)),
            );
        }
        if h.is_control() {
            self.control += 1;
        }
        if h.is_transactional() {
            self.transactional += 1;
        }
        if h.producer_id >= 0 {
            self.producers.insert(h.producer_id);
        }
    }

    /// Adds the marker of a control batch just added (see `writer::control_marker`).
    pub(crate) fn add_marker(&mut self, marker: Result<Option<super::TxnMarker>, ()>) {
        match marker {
            Ok(Some(m)) => self.markers.push(m),
            Ok(None) => {}
            Err(()) => self.markers_incomplete = true,
        }
    }

    /// The markers, when every control batch decoded.
    pub(crate) fn take_markers(&mut self) -> Option<Vec<super::TxnMarker>> {
        let markers = std::mem::take(&mut self.markers);
        (!self.markers_incomplete).then_some(markers)
    }

    /// The trailer for these totals; `None` when no batch was added.
    pub(crate) fn trailer(&self, chunks: u64) -> Option<SegmentTrailer> {
        let first_batch_offset = self.first_batch_offset?;
        let last_offset = self.last_offset?;
        Some(SegmentTrailer {
            chunks,
            batches: self.batches,
            records: self.records,
            raw_bytes: self.raw_bytes,
            first_batch_offset,
            last_offset,
            // check() keeps last offsets below i64::MAX.
            end_offset: last_offset + 1,
            min_timestamp: self.min_timestamp.unwrap_or(-1),
            max_timestamp: self.max_timestamp.unwrap_or(-1),
            control_batches: self.control,
            transactional_batches: self.transactional,
            producer_ids: self.producers.len() as u64,
        })
    }
}

/// Compares a stored trailer with the one computed from the data, field by field, so the
/// error names the first field that disagrees.
pub(crate) fn compare(stored: &SegmentTrailer, read: &SegmentTrailer) -> Result<(), FormatError> {
    let fields: [(&'static str, i128, i128); 12] = [
        ("chunks", stored.chunks.into(), read.chunks.into()),
        ("batches", stored.batches.into(), read.batches.into()),
        ("records", stored.records.into(), read.records.into()),
        ("raw_bytes", stored.raw_bytes.into(), read.raw_bytes.into()),
        (
            "first_batch_offset",
            stored.first_batch_offset.into(),
            read.first_batch_offset.into(),
        ),
        (
            "last_offset",
            stored.last_offset.into(),
            read.last_offset.into(),
        ),
        (
            "end_offset",
            stored.end_offset.into(),
            read.end_offset.into(),
        ),
        (
            "min_timestamp",
            stored.min_timestamp.into(),
            read.min_timestamp.into(),
        ),
        (
            "max_timestamp",
            stored.max_timestamp.into(),
            read.max_timestamp.into(),
        ),
        (
            "control_batches",
            stored.control_batches.into(),
            read.control_batches.into(),
        ),
        (
            "transactional_batches",
            stored.transactional_batches.into(),
            read.transactional_batches.into(),
        ),
        (
            "producer_ids",
            stored.producer_ids.into(),
            read.producer_ids.into(),
        ),
    ];
    for (field, expected, actual) in fields {
        if expected != actual {
            return Err(FormatError::TrailerMismatch {
                field,
                expected,
                actual,
            });
        }
    }
    Ok(())
}

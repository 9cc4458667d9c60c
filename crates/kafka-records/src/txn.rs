//! Which batches of one partition are committed data: transactional batches of aborted
//! transactions are never restored, and control batches (markers) are never data.
//!
//! Two sources of truth are supported and give the same answer on the same log:
//!
//! - **(a) The broker's aborted-transaction list** from a read_committed Fetch:
//!   [`AbortedTxnFilter`], the algorithm of Kafka's Java consumer. Use one filter per Fetch
//!   response, fed that response's batches, as the Java consumer does: the list describes the
//!   fetched range only, and re-adding an old entry in a later response would wrongly abort the
//!   producer's next transaction.
//! - **(b) The control markers in the log itself**, for data where no broker list exists (a
//!   backup being restored, a broker that does not send the list). A transactional batch
//!   belongs to the open transaction of its producer id, which ends at that producer's next
//!   marker: ABORT drops it, COMMIT keeps it.
//!
//! Design of (b): two passes with memory bounded by the number of transactions, never by their
//! size. A marker can come gigabytes after the batches it decides, so buffering batches until
//! their marker arrives would need unbounded memory (or fail on large transactions). Instead:
//!
//! 1. **Pass 1** ([`MarkerIndex::observe`]) reads batch *headers* only, plus the one small,
//!    uncompressed record of each control batch ([`BatchSummary::read`]): no data is
//!    decompressed or kept. It records `(offset, commit/abort)` for every marker, per producer
//!    id, and tracks transactions still open at the end.
//! 2. **Pass 2** ([`MarkerFilter::decide`]) decides each batch by a range lookup: the first
//!    marker of the batch's producer after the batch's last offset. Markers behind the read
//!    position are dropped as pass 2 advances, so its memory shrinks as it goes.
//!
//! Memory: about 40 bytes per transaction in the scanned range (a million transactions take
//! tens of MB), independent of transaction size. Callers bound it further by scanning a
//! partition in ranges.
//!
//! A transactional batch whose producer has no marker after it in the data scanned is
//! [`Decision::Undecided`]: its transaction was still open when the data ends (or its marker
//! lies beyond the range). The caller chooses (a restore to a point in time normally leaves
//! such records out, as a read_committed consumer would not have seen them yet);
//! [`MarkerIndex::open_transactions`] lists them after pass 1.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};

use bytes::Bytes;

use crate::batch::{self, BatchHeader};
use crate::compression::DecodeLimits;
use crate::control::{ControlKind, ControlMarker, parse_control_batch};
use crate::error::RecordError;
use crate::record::{DecodedBatch, decode_batch};

/// What to do with one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Data: a non-transactional batch, or one whose transaction committed.
    Keep,
    /// A batch of an aborted transaction: never restore it.
    Aborted,
    /// A control batch (a transaction marker): never data.
    Control,
    /// A transactional batch whose transaction has no marker in the data seen: still open.
    Undecided,
}

/// What the filters need to know about a batch: its header and, for a control batch, its
/// transaction marker. Cheap to get: only control batches (one small record) are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    /// The batch header.
    pub header: BatchHeader,
    /// The marker, for a control batch holding a COMMIT or ABORT marker.
    pub marker: Option<ControlMarker>,
}

impl BatchSummary {
    /// Verifies `batch` (length and CRC) and, if it is a control batch, decodes its marker.
    /// Data batches are not decompressed. A control batch of another type than COMMIT/ABORT
    /// has no marker (and is still never data).
    pub fn read(batch: &Bytes, limits: &DecodeLimits) -> Result<Self, RecordError> {
        let header = batch::verify(batch).map_err(|source| RecordError::Batch {
            base_offset: batch
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes),
            source,
        })?;
        if !header.is_control() {
            return Ok(Self {
                header,
                marker: None,
            });
        }
        Self::from_decoded(&decode_batch(batch, limits)?)
    }

    /// The summary of an already decoded batch.
    pub fn from_decoded(batch: &DecodedBatch) -> Result<Self, RecordError> {
        let marker = if batch.is_control() {
            match parse_control_batch(batch) {
                Ok(marker) => Some(marker),
                Err(RecordError::UnknownControlType { .. }) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        Ok(Self {
            header: batch.header,
            marker,
        })
    }
}

/// Rejects batches fed out of offset order.
#[derive(Debug, Clone, Copy, Default)]
struct OrderCheck {
    last_offset: Option<i64>,
}

impl OrderCheck {
    fn check(&mut self, header: &BatchHeader) -> Result<(), RecordError> {
        if let Some(previous) = self.last_offset
            && header.base_offset <= previous
        {
            return Err(RecordError::OutOfOrder {
                offset: header.base_offset,
                previous,
            });
        }
        self.last_offset = Some(header.last_offset());
        Ok(())
    }
}

/// Truth source (a): the aborted-transaction list of one read_committed Fetch response,
/// applied as Kafka's Java consumer does.
///
/// Feed the response's batches in order. Before each batch with a producer id, every aborted
/// transaction whose first offset is at or before the batch's last offset marks its producer
/// as aborted; a transactional batch of an aborted producer is dropped; that producer's ABORT
/// marker clears it again.
#[derive(Debug, Clone, Default)]
pub struct AbortedTxnFilter {
    /// (first offset, producer id), smallest first offset on top.
    pending: BinaryHeap<Reverse<(i64, i64)>>,
    aborted_producers: HashSet<i64>,
    order: OrderCheck,
}

impl AbortedTxnFilter {
    /// A filter for one Fetch response's `aborted_transactions` as
    /// `(producer_id, first_offset)` pairs.
    pub fn new(aborted: impl IntoIterator<Item = (i64, i64)>) -> Self {
        Self {
            pending: aborted
                .into_iter()
                .map(|(producer_id, first_offset)| Reverse((first_offset, producer_id)))
                .collect(),
            ..Self::default()
        }
    }

    /// Decides the next batch. Never [`Decision::Undecided`]: a read_committed Fetch returns
    /// nothing past the last stable offset.
    pub fn decide(&mut self, batch: &BatchSummary) -> Result<Decision, RecordError> {
        let header = &batch.header;
        self.order.check(header)?;
        if header.producer_id >= 0 {
            while let Some(Reverse((first_offset, producer_id))) = self.pending.peek().copied() {
                if first_offset > header.last_offset() {
                    break;
                }
                self.pending.pop();
                self.aborted_producers.insert(producer_id);
            }
            let is_abort_marker = batch
                .marker
                .is_some_and(|m| header.is_control() && m.kind == ControlKind::Abort);
            if is_abort_marker {
                self.aborted_producers.remove(&header.producer_id);
            } else if header.is_transactional()
                && !header.is_control()
                && self.aborted_producers.contains(&header.producer_id)
            {
                return Ok(Decision::Aborted);
            }
        }
        Ok(if header.is_control() {
            Decision::Control
        } else {
            Decision::Keep
        })
    }
}

/// A transaction with data but no marker in the scanned range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpenTransaction {
    /// Offset of its first batch in the scanned range.
    pub first_offset: i64,
    /// Its producer.
    pub producer_id: i64,
}

/// Truth source (b), pass 1: collects the transaction markers of one partition from batch
/// summaries fed in offset order. See the module documentation for the design.
#[derive(Debug, Clone, Default)]
pub struct MarkerIndex {
    /// Per producer id, its markers in offset order.
    markers: HashMap<i64, VecDeque<(i64, ControlKind)>>,
    /// Per producer id with a transaction in progress, the offset of its first batch.
    open: HashMap<i64, i64>,
    order: OrderCheck,
}

impl MarkerIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the next batch (in offset order).
    pub fn observe(&mut self, batch: &BatchSummary) -> Result<(), RecordError> {
        let header = &batch.header;
        self.order.check(header)?;
        if let Some(marker) = batch.marker.filter(|_| header.is_control()) {
            self.markers
                .entry(header.producer_id)
                .or_default()
                .push_back((marker.offset, marker.kind));
            self.open.remove(&header.producer_id);
        } else if header.is_transactional() && !header.is_control() {
            self.open
                .entry(header.producer_id)
                .or_insert(header.base_offset);
        }
        Ok(())
    }

    /// Records a marker known without reading its batch (listed in a backup's manifest),
    /// in offset order with the batches and markers fed before it. Pass 2 then checks, as
    /// it meets each control batch, that the marker recorded for it is what the log holds
    /// ([`MarkerFilter::decide_summary`]).
    pub fn record_marker(
        &mut self,
        offset: i64,
        producer_id: i64,
        kind: ControlKind,
    ) -> Result<(), RecordError> {
        if let Some(previous) = self.order.last_offset
            && offset <= previous
        {
            return Err(RecordError::OutOfOrder { offset, previous });
        }
        self.order.last_offset = Some(offset);
        self.markers
            .entry(producer_id)
            .or_default()
            .push_back((offset, kind));
        self.open.remove(&producer_id);
        Ok(())
    }

    /// Transactions with data but no marker so far, by first offset: their batches will be
    /// [`Decision::Undecided`].
    pub fn open_transactions(&self) -> Vec<OpenTransaction> {
        let mut open: Vec<OpenTransaction> = self
            .open
            .iter()
            .map(|(&producer_id, &first_offset)| OpenTransaction {
                first_offset,
                producer_id,
            })
            .collect();
        open.sort();
        open
    }

    /// Number of markers recorded.
    pub fn marker_count(&self) -> usize {
        self.markers.values().map(VecDeque::len).sum()
    }

    /// Ends pass 1: the filter for pass 2, which must see the same batches in the same order.
    pub fn into_filter(self) -> MarkerFilter {
        MarkerFilter {
            markers: self.markers,
            order: OrderCheck::default(),
        }
    }
}

/// Truth source (b), pass 2: decides batches from the markers [`MarkerIndex`] collected.
#[derive(Debug, Clone)]
pub struct MarkerFilter {
    markers: HashMap<i64, VecDeque<(i64, ControlKind)>>,
    order: OrderCheck,
}

impl MarkerFilter {
    /// Decides the next batch (in offset order) from its header alone.
    pub fn decide(&mut self, header: &BatchHeader) -> Result<Decision, RecordError> {
        self.order.check(header)?;
        let is_control = header.is_control();
        if !is_control && !header.is_transactional() {
            return Ok(Decision::Keep);
        }
        let Some(queue) = self.markers.get_mut(&header.producer_id) else {
            return Ok(if is_control {
                Decision::Control
            } else {
                Decision::Undecided
            });
        };
        // Markers at or before this batch can decide nothing from here on.
        while queue
            .front()
            .is_some_and(|(at, _)| *at <= header.last_offset())
        {
            queue.pop_front();
        }
        let next = queue.front().map(|(_, kind)| *kind);
        if queue.is_empty() {
            self.markers.remove(&header.producer_id);
        }
        Ok(match (is_control, next) {
            (true, _) => Decision::Control,
            (false, Some(ControlKind::Commit)) => Decision::Keep,
            (false, Some(ControlKind::Abort)) => Decision::Aborted,
            (false, None) => Decision::Undecided,
        })
    }

    /// Like [`MarkerFilter::decide`], and for a control batch with a COMMIT or ABORT marker,
    /// checks that pass 1 recorded exactly that marker: markers listed apart from the data
    /// (in a manifest) must agree with the log, or a listed ABORT could drop committed data.
    pub fn decide_summary(&mut self, batch: &BatchSummary) -> Result<Decision, RecordError> {
        let header = &batch.header;
        let Some(marker) = batch.marker.filter(|_| header.is_control()) else {
            return self.decide(header);
        };
        let known = self.markers.get(&header.producer_id).is_some_and(|queue| {
            queue
                .iter()
                .find(|(at, _)| *at >= header.base_offset)
                .is_some_and(|(at, kind)| *at == header.base_offset && *kind == marker.kind)
        });
        if !known {
            return Err(RecordError::InvalidControlBatch {
                offset: header.base_offset,
                what: format!(
                    "its {:?} marker for producer {} is not among the markers listed for this \
                     partition",
                    marker.kind, header.producer_id
                ),
            });
        }
        self.decide(header)
    }

    /// Markers not yet passed.
    pub fn remaining_markers(&self) -> usize {
        self.markers.values().map(VecDeque::len).sum()
    }
}

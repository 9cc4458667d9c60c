//! `--deep`: transaction markers of one partition (one lineage), across its segments in offset
//! order. A transaction can start in one segment and end in a later one, so this runs per
//! partition, fed the few batches that matter ([`super::SegmentCheck::txn_events`]), with
//! memory bounded by the number of transactions, not their size.
//!
//! Checked: markers decode ([`kafka_records::BatchSummary`], done per segment), batches stay in
//! offset order from one segment to the next ([`MarkerIndex`]), and every aborted transaction
//! a segment header lists (from the broker's read_committed answers) is ended by an ABORT
//! marker, not a COMMIT. Transactions still open at the end of the backup are counted, not
//! reported: a backup stops at the last stable offset, and a transaction that began before it
//! may legitimately have its marker after it.

use std::collections::{BTreeSet, HashMap, HashSet};

use kafka_records::{ControlKind, MarkerIndex};

use super::segment::SegmentCheck;
use crate::catalog::{Problem, ProblemKind, SegmentRef};

/// The transaction check of one partition.
#[derive(Debug, Default)]
pub(crate) struct TxnCheck {
    index: MarkerIndex,
    /// Per producer, first offsets of transactions headers say were aborted, not yet ended
    /// by a marker.
    claims: HashMap<i64, BTreeSet<i64>>,
    seen_claims: HashSet<(i64, i64)>,
    pub committed: u64,
    pub aborted: u64,
}

impl TxnCheck {
    /// Feeds the next segment of the partition (in offset order).
    pub(crate) fn segment(&mut self, segment: &SegmentRef, check: &SegmentCheck) -> Vec<Problem> {
        let mut problems = Vec::new();
        let at = |p: Problem, offset: i64| {
            p.at(&segment.parsed.topic, segment.parsed.partition)
                .offset(offset)
                .object(&segment.key)
        };
        for a in &check.aborted_transactions {
            if self.seen_claims.insert((a.producer_id, a.first_offset)) {
                self.claims
                    .entry(a.producer_id)
                    .or_default()
                    .insert(a.first_offset);
            }
        }
        for event in &check.txn_events {
            let h = &event.header;
            if let Err(e) = self.index.observe(event) {
                problems.push(at(
                    Problem::new(
                        ProblemKind::TransactionInconsistent,
                        format!("batches are out of offset order across segments: {e}"),
                    ),
                    h.base_offset,
                ));
                continue;
            }
            let Some(marker) = event.marker.filter(|_| h.is_control()) else {
                continue;
            };
            match marker.kind {
                ControlKind::Commit => self.committed += 1,
                ControlKind::Abort => self.aborted += 1,
            }
            let Some(firsts) = self.claims.get_mut(&h.producer_id) else {
                continue;
            };
            let ended: Vec<i64> = firsts.range(..marker.offset).copied().collect();
            for first in &ended {
                firsts.remove(first);
            }
            if firsts.is_empty() {
                self.claims.remove(&h.producer_id);
            }
            if marker.kind == ControlKind::Commit
                && let Some(first) = ended.first()
            {
                problems.push(at(
                    Problem::new(
                        ProblemKind::TransactionInconsistent,
                        format!(
                            "a segment header lists the transaction of producer {} from offset \
                             {first} as aborted, but its marker at offset {} is a COMMIT",
                            h.producer_id, marker.offset
                        ),
                    ),
                    marker.offset,
                ));
            }
        }
        problems
    }

    /// Transactions with data but no marker in the partition's backed-up range.
    pub(crate) fn open_transactions(&self) -> u64 {
        self.index.open_transactions().len() as u64
    }
}

//! The map from source offsets to target offsets that a restore builds as it produces, and the
//! translation of consumer-group positions through it.

use std::collections::BTreeMap;

use kafka_client::TopicPartition;
use serde::Serialize;

use super::units::SourceOffsets;

/// Where one produced batch's records went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MapEntry {
    pub source: SourceOffsets,
    pub target_first: i64,
    pub count: u32,
}

/// The source -> target offset map of one partition, in source order.
#[derive(Debug, Clone, Default)]
pub struct PartitionMap {
    /// The target offset where the restore began writing.
    pub target_start: i64,
    pub(crate) entries: Vec<MapEntry>,
}

impl PartitionMap {
    pub(crate) fn new(target_start: i64) -> Self {
        Self {
            target_start,
            entries: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, source: SourceOffsets, count: u32) {
        let target_first = self.target_end();
        self.entries.push(MapEntry {
            source,
            target_first,
            count,
        });
    }

    /// The target offset after the last restored record.
    pub fn target_end(&self) -> i64 {
        self.entries
            .last()
            .map(|e| e.target_first + i64::from(e.count))
            .unwrap_or(self.target_start)
    }

    /// Records restored.
    pub fn records(&self) -> u64 {
        self.entries.iter().map(|e| u64::from(e.count)).sum()
    }

    /// The target offset for a consumer positioned at source offset `committed` (the next
    /// record it would read): the target offset of the first restored record at or after it,
    /// or the end of the restored data when none is (the group had read everything, or the
    /// rest was left out by a time window or an aborted transaction).
    pub fn translate(&self, committed: i64) -> i64 {
        // Entries are in source order: skip those that end before `committed`.
        let start = self
            .entries
            .partition_point(|e| e.source.get(e.count as usize - 1) < committed);
        match self.entries.get(start) {
            Some(e) => {
                let i = e.source.first_at_or_after(committed, e.count).unwrap_or(0);
                e.target_first + i as i64
            }
            None => self.target_end(),
        }
    }

    /// Contiguous runs `(source_first, source_last, target_first)`, for display.
    pub fn runs(&self) -> Vec<OffsetRun> {
        let mut out: Vec<OffsetRun> = Vec::new();
        for e in &self.entries {
            for i in 0..e.count as usize {
                let s = e.source.get(i);
                let t = e.target_first + i as i64;
                match out.last_mut() {
                    Some(r) if r.source_last + 1 == s && r.target_last + 1 == t => {
                        r.source_last = s;
                        r.target_last = t;
                    }
                    _ => out.push(OffsetRun {
                        source_first: s,
                        source_last: s,
                        target_first: t,
                        target_last: t,
                    }),
                }
            }
        }
        out
    }
}

/// A run of source offsets restored to consecutive target offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OffsetRun {
    /// First source offset.
    pub source_first: i64,
    /// Last source offset (inclusive).
    pub source_last: i64,
    /// Target offset of `source_first`.
    pub target_first: i64,
    /// Target offset of `source_last`.
    pub target_last: i64,
}

/// Offset maps of a restore, by target partition, with the source partition each came from.
#[derive(Debug, Clone, Default)]
pub struct OffsetMaps {
    /// Target partition -> (source partition, map).
    pub partitions: BTreeMap<TopicPartition, (TopicPartition, PartitionMap)>,
}

impl OffsetMaps {
    /// The map of the target partition restored from `source`.
    pub fn for_source(&self, source: &TopicPartition) -> Option<(&TopicPartition, &PartitionMap)> {
        self.partitions
            .iter()
            .find(|(_, (s, _))| s == source)
            .map(|(t, (_, m))| (t, m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> PartitionMap {
        // Source 100..=104 dense, then a compacted batch (110, 113), then 120..=121.
        let mut m = PartitionMap::new(50);
        m.push(SourceOffsets::Dense { first: 100 }, 5);
        m.push(SourceOffsets::Listed(vec![110, 113]), 2);
        m.push(SourceOffsets::Dense { first: 120 }, 2);
        m
    }

    #[test]
    fn translates_to_the_same_record_or_the_next_one() {
        let m = map();
        assert_eq!(m.translate(0), 50, "before everything: the first record");
        assert_eq!(m.translate(100), 50);
        assert_eq!(m.translate(103), 53);
        assert_eq!(m.translate(105), 55, "into a gap: the next record");
        assert_eq!(m.translate(111), 56);
        assert_eq!(m.translate(113), 56);
        assert_eq!(m.translate(114), 57);
        assert_eq!(m.translate(121), 58);
        assert_eq!(m.translate(122), 59, "past the end: the end");
        assert_eq!(m.target_end(), 59);
        assert_eq!(m.records(), 9);
        assert_eq!(PartitionMap::new(7).translate(3), 7);
    }

    #[test]
    fn runs_merge_consecutive_offsets() {
        let runs = map().runs();
        assert_eq!(
            runs.iter()
                .map(|r| (r.source_first, r.source_last, r.target_first))
                .collect::<Vec<_>>(),
            [
                (100, 104, 50),
                (110, 110, 55),
                (113, 113, 56),
                (120, 121, 57)
            ]
        );
    }
}

//! What a kept record batch becomes on the way to the target: the stored bytes as they are
//! whenever possible, a re-encoded batch where something requires it (a time-window
//! boundary, compaction holes inside the batch, records before the segment's coverage start,
//! LogAppendTime), and per-key placement when repartitioning.

use bytes::{Bytes, BytesMut};
use kafka_records::batch::{ATTR_LOG_APPEND_TIME, BatchHeader};
use kafka_records::{Compression, DecodeLimits, EncodeOptions, Record, TimestampType};

use super::RestoreError;

/// Which source offsets a unit's records carry, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceOffsets {
    /// `count` consecutive offsets from `first`.
    Dense { first: i64 },
    /// Explicit offsets (compaction holes, or records left out).
    Listed(Vec<i64>),
}

impl SourceOffsets {
    /// The source offset of the unit's `i`-th record.
    pub(crate) fn get(&self, i: usize) -> i64 {
        match self {
            SourceOffsets::Dense { first } => first + i as i64,
            SourceOffsets::Listed(v) => v[i],
        }
    }

    /// Index of the first record whose source offset is at or after `offset`, if any.
    pub(crate) fn first_at_or_after(&self, offset: i64, count: u32) -> Option<usize> {
        match self {
            SourceOffsets::Dense { first } => {
                let i = (offset - first).max(0);
                (i < i64::from(count)).then_some(i as usize)
            }
            SourceOffsets::Listed(v) => v.iter().position(|&o| o >= offset),
        }
    }
}

/// One batch to produce.
#[derive(Debug)]
pub(crate) struct Unit {
    /// A complete record batch (magic v2); the producer stamps its identity and CRC.
    pub bytes: BytesMut,
    /// Records in it.
    pub records: u32,
    /// Their source offsets.
    pub source: SourceOffsets,
    /// Whether it was rebuilt rather than sent as stored.
    pub reencoded: bool,
}

/// What decides which records of a batch are restored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// Records before this offset are not part of the backup's coverage (they were deleted
    /// from the log before the segment began; Kafka returned them inside a whole batch).
    pub coverage_start: i64,
    /// Inclusive lower time bound (ms).
    pub window_start: Option<i64>,
    /// Exclusive upper time bound (ms).
    pub window_end: Option<i64>,
}

impl Rules {
    fn in_window(&self, ts: i64) -> bool {
        self.window_start.is_none_or(|s| ts >= s) && self.window_end.is_none_or(|e| ts < e)
    }
}

/// Decode limits for restore: generous, but a corrupt batch still cannot exhaust memory.
pub(crate) fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

/// The batch as stored: sent as it is (the producer stamps its identity and CRC).
fn as_stored(batch: &Bytes, header: &BatchHeader, count: u32) -> Unit {
    Unit {
        bytes: BytesMut::from(&batch[..]),
        records: count,
        source: SourceOffsets::Dense {
            first: header.base_offset,
        },
        reencoded: false,
    }
}

/// Turns one kept (committed, non-control) batch into at most one unit.
pub(crate) fn unit_for(
    batch: &Bytes,
    header: &BatchHeader,
    rules: &Rules,
) -> Result<Option<Unit>, RestoreError> {
    let count = u32::try_from(header.record_count).unwrap_or(0);
    // Every record is at most maxTimestamp: a batch entirely before the window needs no look.
    if rules.window_start.is_some_and(|s| header.max_timestamp < s) {
        return Ok(None);
    }
    let dense = i64::from(header.last_offset_delta) + 1 == i64::from(header.record_count);
    let log_append = header.attributes & ATTR_LOG_APPEND_TIME != 0;
    let windowed = rules.window_start.is_some() || rules.window_end.is_some();
    let before_coverage = header.base_offset < rules.coverage_start;
    if dense && !log_append && !windowed && !before_coverage {
        return Ok(Some(as_stored(batch, header, count)));
    }
    let decoded = kafka_records::decode_batch(batch, &limits()).map_err(|e| {
        RestoreError::Corrupt(format!("batch at offset {}: {e}", header.base_offset))
    })?;
    let kept: Vec<&Record> = decoded
        .records
        .iter()
        .filter(|r| r.offset >= rules.coverage_start && rules.in_window(r.timestamp))
        .collect();
    if kept.is_empty() {
        return Ok(None);
    }
    if kept.len() == decoded.records.len() && dense && !log_append {
        return Ok(Some(as_stored(batch, header, count)));
    }
    let offsets: Vec<i64> = kept.iter().map(|r| r.offset).collect();
    let bytes = encode(kept.into_iter().cloned().collect(), decoded.compression)?;
    Ok(Some(Unit {
        records: offsets.len() as u32,
        source: SourceOffsets::Listed(offsets),
        bytes,
        reencoded: true,
    }))
}

/// Encodes records as one CreateTime batch with offsets renumbered from 0, as a producer
/// does: brokers require dense offset deltas, and the record timestamps are what consumers saw.
pub(crate) fn encode(
    mut records: Vec<Record>,
    compression: Compression,
) -> Result<BytesMut, RestoreError> {
    for (i, r) in records.iter_mut().enumerate() {
        r.offset = i as i64;
    }
    kafka_records::encode_batch(
        &records,
        &EncodeOptions {
            compression,
            timestamp_type: TimestampType::CreateTime,
            ..EncodeOptions::default()
        },
    )
    .map_err(|e| RestoreError::Internal(format!("cannot encode a record batch: {e}")))
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), which its default partitioner uses
/// for keyed records: `toPositive(murmur2(key)) % partitions`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key` among `partitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Vectors from Kafka's own tests (clients/.../utils/UtilsTest.java).
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn listed_offsets_find_the_next_record() {
        let s = SourceOffsets::Listed(vec![10, 12, 15]);
        assert_eq!(s.first_at_or_after(11, 3), Some(1));
        assert_eq!(s.first_at_or_after(16, 3), None);
        let d = SourceOffsets::Dense { first: 100 };
        assert_eq!(d.first_at_or_after(90, 5), Some(0));
        assert_eq!(d.first_at_or_after(104, 5), Some(4));
        assert_eq!(d.first_at_or_after(105, 5), None);
    }
}

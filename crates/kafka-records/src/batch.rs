//! The fixed header of a Kafka record batch (magic v2): reading it from untrusted bytes, and
//! re-stamping producer identity and sequence (with a fresh CRC) before producing.

use bytes::Bytes;

/// Size of the record batch header that precedes the records.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the `batchLength` field counts from: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;

const MAGIC_OFFSET: usize = 16;
/// Where the CRC32C field sits.
pub(crate) const CRC_OFFSET: usize = 17;
/// Where the attributes field sits (the CRC covers from here to the end).
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORD_COUNT_OFFSET: usize = 57;

/// Attribute bit: the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit: the batch is a transaction marker (commit/abort), not data.
pub const ATTR_CONTROL: i16 = 0x20;
/// Attribute bit: timestamps are the broker's LogAppendTime.
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;

/// Why bytes are not a usable record batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than a header.
    #[error("record batch is truncated: {have} bytes, need at least {need}")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Only magic v2 batches are supported.
    #[error("record batch has magic {0}; only v2 batches (Kafka 0.11+) are supported")]
    UnsupportedMagic(i8),
    /// The batchLength field disagrees with the bytes.
    #[error("record batch length field says {declared} bytes but {actual} are present")]
    LengthMismatch {
        /// From the header.
        declared: i64,
        /// Actual.
        actual: usize,
    },
    /// The stored CRC32C does not match the bytes.
    #[error("record batch CRC32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// From the header.
        stored: u32,
        /// Over the bytes.
        computed: u32,
    },
    /// A control batch (transaction marker) cannot be produced by a client.
    #[error("control batches (transaction markers) cannot be produced")]
    ControlBatch,
}

/// The header fields of a record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// First offset in the batch.
    pub base_offset: i64,
    /// Total batch size in bytes, including the offset and length fields.
    pub total_len: usize,
    /// Leader epoch at append time.
    pub partition_leader_epoch: i32,
    /// Magic byte (always 2 here).
    pub magic: i8,
    /// CRC32C stored in the batch.
    pub crc: u32,
    /// Attribute bits (compression, timestamp type, transactional, control).
    pub attributes: i16,
    /// Offset delta of the last record (last offset = base + delta).
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Producer id, -1 when none.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 when none.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `bytes`. Checks magic and that the declared length
    /// is sane, but not that all of the batch is present (see [`BatchHeader::total_len`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        if bytes.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated {
                have: bytes.len(),
                need: BATCH_HEADER_LEN,
            });
        }
        let i64_at = |o: usize| i64::from_be_bytes(bytes[o..o + 8].try_into().unwrap_or([0; 8]));
        let i32_at = |o: usize| i32::from_be_bytes(bytes[o..o + 4].try_into().unwrap_or([0; 4]));
        let i16_at = |o: usize| i16::from_be_bytes(bytes[o..o + 2].try_into().unwrap_or([0; 2]));
        let magic = bytes[MAGIC_OFFSET] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let batch_length = i32_at(8);
        let total = i64::from(batch_length) + LOG_OVERHEAD as i64;
        if batch_length < 0 || (total as usize) < BATCH_HEADER_LEN {
            return Err(BatchError::LengthMismatch {
                declared: i64::from(batch_length),
                actual: bytes.len(),
            });
        }
        Ok(Self {
            base_offset: i64_at(0),
            total_len: total as usize,
            partition_leader_epoch: i32_at(12),
            magic,
            crc: i32_at(CRC_OFFSET) as u32,
            attributes: i16_at(ATTRIBUTES_OFFSET),
            last_offset_delta: i32_at(23),
            base_timestamp: i64_at(27),
            max_timestamp: i64_at(35),
            producer_id: i64_at(PRODUCER_ID_OFFSET),
            producer_epoch: i16_at(PRODUCER_EPOCH_OFFSET),
            base_sequence: i32_at(BASE_SEQUENCE_OFFSET),
            record_count: i32_at(RECORD_COUNT_OFFSET),
        })
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Whether this is a transaction marker.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Whether the batch was written inside a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
}

/// CRC32C of a whole batch, computed as Kafka does (from the attributes to the end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET.min(batch.len())..])
}

/// Checks a complete batch: header, exact length and CRC.
pub fn verify(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len != batch.len() {
        return Err(BatchError::LengthMismatch {
            declared: header.total_len as i64 - LOG_OVERHEAD as i64,
            actual: batch.len(),
        });
    }
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Splits a fetched record set into complete batches. A trailing partial batch (the broker
/// cuts the last one at the size limit) is left out; the returned offset is where the
/// complete batches end, so the caller can tell.
pub fn split_batches(records: &Bytes) -> Result<(Vec<Bytes>, usize), BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while records.len() - pos >= LOG_OVERHEAD {
        let rest = &records[pos..];
        let batch_length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if batch_length < 0 {
            return Err(BatchError::LengthMismatch {
                declared: i64::from(batch_length),
                actual: rest.len(),
            });
        }
        let total = batch_length as usize + LOG_OVERHEAD;
        if total > rest.len() {
            break;
        }
        BatchHeader::parse(&rest[..total])?;
        out.push(records.slice(pos..pos + total));
        pos += total;
    }
    Ok((out, pos))
}

/// Rewrites a batch for an idempotent producer: sets producer id, epoch and base sequence,
/// clears the transactional flag (the producer is not transactional), zeroes the base offset
/// (the broker assigns offsets) and recomputes the CRC. Returns the record count.
pub fn stamp_for_producer(
    batch: &mut [u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<i32, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len != batch.len() {
        return Err(BatchError::LengthMismatch {
            declared: header.total_len as i64 - LOG_OVERHEAD as i64,
            actual: batch.len(),
        });
    }
    if header.is_control() {
        return Err(BatchError::ControlBatch);
    }
    batch[0..8].copy_from_slice(&0i64.to_be_bytes());
    let attributes = header.attributes & !ATTR_TRANSACTIONAL;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2]
        .copy_from_slice(&producer_epoch.to_be_bytes());
    batch[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4]
        .copy_from_slice(&base_sequence.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(header.record_count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(n: i64) -> BytesMut {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 100 + i,
                // The encoder keeps records in one batch only while offset - sequence is constant.
                sequence: i as i32,
                timestamp: 1_700_000_000_000 + i,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'x'; 50])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf
    }

    #[test]
    fn parses_and_verifies_an_encoded_batch() {
        let b = batch(3);
        let h = verify(&b).unwrap();
        assert_eq!(h.base_offset, 100);
        assert_eq!(h.last_offset(), 102);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.total_len, b.len());
        assert!(!h.is_control() && !h.is_transactional());
    }

    #[test]
    fn stamping_sets_identity_and_keeps_crc_valid() {
        let mut b = batch(2);
        let n = stamp_for_producer(&mut b, 4242, 3, 17).unwrap();
        assert_eq!(n, 2);
        let h = verify(&b).unwrap();
        assert_eq!(
            (
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.base_offset
            ),
            (4242, 3, 17, 0)
        );
    }

    #[test]
    fn corruption_and_truncation_are_errors_not_panics() {
        let mut b = batch(2);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(verify(&b), Err(BatchError::CrcMismatch { .. })));
        for cut in [0, 5, 12, 60, b.len() - 1] {
            assert!(verify(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut neg = batch(1);
        neg[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(BatchHeader::parse(&neg).is_err());
        let mut magic = batch(1);
        magic[MAGIC_OFFSET] = 1;
        assert_eq!(
            BatchHeader::parse(&magic),
            Err(BatchError::UnsupportedMagic(1))
        );
    }

    #[test]
    fn split_leaves_out_a_trailing_partial_batch() {
        let mut all = BytesMut::new();
        all.extend_from_slice(&batch(2));
        all.extend_from_slice(&batch(3));
        let second = batch(1);
        all.extend_from_slice(&second[..30]);
        let all = all.freeze();
        let (batches, end) = split_batches(&all).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(end, all.len() - 30);
    }
}

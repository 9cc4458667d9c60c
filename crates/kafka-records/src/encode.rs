//! Building v2 record batches from records: used by restore where a batch must be cut (a
//! point-in-time boundary inside a batch) or records regrouped (repartitioning). Everything a
//! consumer can see is kept exactly: null vs empty keys, values and header values, header
//! order and duplicate header keys, timestamps.

use bytes::{BufMut, BytesMut};

use crate::batch::{
    ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL, BATCH_HEADER_LEN, CRC_OFFSET, LOG_OVERHEAD,
};
use crate::compression::{self, Compression};
use crate::error::RecordError;
use crate::record::{Record, TimestampType};
use crate::varint::{put_varint, put_varlong};

/// How to build a batch. The defaults are those of a plain, non-idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Codec for the records section.
    pub compression: Compression,
    /// Codec level; `None` for Kafka's default (see [`compression::compress`]).
    pub level: Option<i32>,
    /// Timestamp type bit. With [`TimestampType::LogAppendTime`] the batch's maxTimestamp is
    /// the largest record timestamp, which is what consumers then see for every record; a
    /// broker appending the batch to a LogAppendTime topic overwrites it anyway.
    pub timestamp_type: TimestampType,
    /// Producer id, -1 for none.
    pub producer_id: i64,
    /// Producer epoch, -1 for none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 for none.
    pub base_sequence: i32,
    /// Sets the transactional attribute bit.
    pub transactional: bool,
    /// Leader epoch field; -1 (unknown) for batches a client produces.
    pub partition_leader_epoch: i32,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            compression: Compression::None,
            level: None,
            timestamp_type: TimestampType::CreateTime,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            partition_leader_epoch: -1,
        }
    }
}

/// Encodes `records` into one v2 batch with a valid CRC32C.
///
/// The base offset is the first record's offset and each record stores its delta from it; the
/// base timestamp is the first record's timestamp (as Kafka's producer does; later records may
/// have negative deltas), maxTimestamp the largest. Offsets must strictly increase and span at
/// most `i32::MAX`.
///
/// Produce path: brokers check that `lastOffsetDelta + 1` equals the record count, and the
/// idempotent producer's sequence numbers assume it, so renumber offsets consecutively
/// (0, 1, 2, ...) before encoding records that will be produced; gaps (from compaction or
/// transaction markers) are fine only in batches that are stored, not produced.
pub fn encode_batch(records: &[Record], opts: &EncodeOptions) -> Result<BytesMut, RecordError> {
    let fail = |what: String| RecordError::Encode { what };
    let first = records
        .first()
        .ok_or_else(|| fail("a batch needs at least one record".into()))?;
    let count = i32::try_from(records.len())
        .map_err(|_| fail(format!("{} records do not fit one batch", records.len())))?;
    let base_offset = first.offset;
    let base_timestamp = first.timestamp;
    let mut max_timestamp = base_timestamp;
    let mut last_delta: Option<i32> = None;

    let mut section = Vec::new();
    let mut body = Vec::new();
    for record in records {
        let delta = record
            .offset
            .checked_sub(base_offset)
            .and_then(|d| i32::try_from(d).ok())
            .filter(|d| last_delta.is_none_or(|p| *d > p))
            .ok_or_else(|| {
                fail(format!(
                    "record at offset {} does not follow the previous one within an i32 delta \
                     of base offset {base_offset}",
                    record.offset
                ))
            })?;
        last_delta = Some(delta);
        let timestamp_delta = record
            .timestamp
            .checked_sub(base_timestamp)
            .ok_or_else(|| {
                fail(format!(
                    "timestamp {} of the record at offset {} is too far from the base timestamp \
                 {base_timestamp}",
                    record.timestamp, record.offset
                ))
            })?;
        max_timestamp = max_timestamp.max(record.timestamp);

        body.clear();
        body.push(0); // record attributes: unused in v2
        put_varlong(&mut body, timestamp_delta);
        put_varint(&mut body, delta);
        let at = record.offset;
        put_nullable(&mut body, record.key.as_deref(), "key", at)?;
        put_nullable(&mut body, record.value.as_deref(), "value", at)?;
        put_varint(
            &mut body,
            len_i32(record.headers.len(), "header count", at)?,
        );
        for header in &record.headers {
            put_varint(&mut body, len_i32(header.key.len(), "header key", at)?);
            body.extend_from_slice(&header.key);
            put_nullable(&mut body, header.value.as_deref(), "header value", at)?;
        }
        put_varint(&mut section, len_i32(body.len(), "record", at)?);
        section.extend_from_slice(&body);
    }
    let last_offset_delta = last_delta.unwrap_or(0);

    let section = match opts.compression {
        Compression::None => section,
        codec => {
            compression::compress(codec, opts.level, &section).map_err(|e| fail(e.to_string()))?
        }
    };
    let total = BATCH_HEADER_LEN + section.len();
    let batch_length = i32::try_from(total - LOG_OVERHEAD)
        .map_err(|_| fail(format!("a {total}-byte batch is larger than Kafka allows")))?;

    let mut attributes = i16::from(opts.compression.id());
    if opts.timestamp_type == TimestampType::LogAppendTime {
        attributes |= ATTR_LOG_APPEND_TIME;
    }
    if opts.transactional {
        attributes |= ATTR_TRANSACTIONAL;
    }

    let mut out = BytesMut::with_capacity(total);
    out.put_i64(base_offset);
    out.put_i32(batch_length);
    out.put_i32(opts.partition_leader_epoch);
    out.put_i8(2); // magic
    out.put_u32(0); // CRC, filled in below
    out.put_i16(attributes);
    out.put_i32(last_offset_delta);
    out.put_i64(base_timestamp);
    out.put_i64(max_timestamp);
    out.put_i64(opts.producer_id);
    out.put_i16(opts.producer_epoch);
    out.put_i32(opts.base_sequence);
    out.put_i32(count);
    out.extend_from_slice(&section);
    let crc = crate::batch::compute_crc(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn len_i32(len: usize, field: &str, offset: i64) -> Result<i32, RecordError> {
    i32::try_from(len).map_err(|_| RecordError::Encode {
        what: format!("{field} of the record at offset {offset} is too long ({len})"),
    })
}

fn put_nullable(
    out: &mut Vec<u8>,
    data: Option<&[u8]>,
    field: &str,
    offset: i64,
) -> Result<(), RecordError> {
    match data {
        None => put_varint(out, -1),
        Some(d) => {
            put_varint(out, len_i32(d.len(), field, offset)?);
            out.extend_from_slice(d);
        }
    }
    Ok(())
}

//! Records inside a v2 batch, and the decoder that turns a verified batch into them.
//!
//! The decoder is our own rather than kafka-protocol's because fidelity and bounds matter here:
//! headers stay a list (duplicate keys and their order survive; kafka-protocol keeps an
//! `IndexMap`), null and empty keys, values and header values stay distinct, decompression is
//! bounded ([`DecodeLimits`]), and every length read from the bytes is checked against the
//! bytes that remain before anything is sliced or allocated.
//!
//! Record layout (Kafka's `DefaultRecord`): length varint, attributes i8 (unused),
//! timestampDelta varlong, offsetDelta varint, keyLength varint (-1 = null), key,
//! valueLength varint (-1 = null), value, headerCount varint, then per header:
//! keyLength varint, key, valueLength varint (-1 = null), value.

use bytes::Bytes;

use crate::batch::{self, ATTR_LOG_APPEND_TIME, BATCH_HEADER_LEN, BatchHeader};
use crate::compression::{self, Compression, DecodeLimits};
use crate::error::RecordError;
use crate::varint::{Cursor, ReadError};

/// The smallest possible record: length, attributes, timestamp delta, offset delta, key
/// length, value length and header count, one byte each. Bounds record counts before
/// anything is allocated for them.
const MIN_RECORD_LEN: usize = 7;
/// The smallest possible header: key length and value length, one byte each.
const MIN_HEADER_LEN: usize = 2;

/// One record header. Kafka defines header keys as UTF-8 strings, but they are kept as raw
/// bytes so that whatever a client wrote is restored exactly, valid UTF-8 or not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// Header key (raw bytes; may be empty).
    pub key: Bytes,
    /// Header value; `None` is a null value, distinct from `Some` of an empty value.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header from anything convertible to bytes.
    pub fn new(key: impl Into<Bytes>, value: Option<impl Into<Bytes>>) -> Self {
        Self {
            key: key.into(),
            value: value.map(Into::into),
        }
    }
}

/// One record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// The record's offset in its partition (base offset + offset delta).
    pub offset: i64,
    /// The timestamp a consumer sees, and the one to restore: for CreateTime batches
    /// baseTimestamp + timestampDelta, for LogAppendTime batches the batch's maxTimestamp
    /// (the broker's append time), as Kafka's consumers report it. The producer's original
    /// create time that LogAppendTime batches still carry is in
    /// [`DecodedBatch::raw_timestamps`].
    pub timestamp: i64,
    /// Key; `None` is null, distinct from an empty key.
    pub key: Option<Bytes>,
    /// Value; `None` is null (a tombstone on compacted topics), distinct from an empty value.
    pub value: Option<Bytes>,
    /// Headers in wire order, duplicates kept.
    pub headers: Vec<Header>,
}

/// Which clock a batch's timestamps come from (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer.
    #[default]
    CreateTime,
    /// Set by the broker when it appended the batch (the topic's
    /// `message.timestamp.type=LogAppendTime`).
    LogAppendTime,
}

impl TimestampType {
    /// The timestamp type named by a batch's attributes.
    pub fn from_attributes(attributes: i16) -> Self {
        if attributes & ATTR_LOG_APPEND_TIME != 0 {
            Self::LogAppendTime
        } else {
            Self::CreateTime
        }
    }
}

/// A decoded, verified batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    /// The batch header as stored.
    pub header: BatchHeader,
    /// Timestamp type from the attributes.
    pub timestamp_type: TimestampType,
    /// Compression codec from the attributes.
    pub compression: Compression,
    /// The records, in order. Keys, values and headers are slices of one shared buffer (the
    /// batch itself, or its decompressed records section): cheap to clone, and they keep that
    /// whole buffer alive while any of them is.
    pub records: Vec<Record>,
    /// For each record, baseTimestamp + timestampDelta as stored. Equal to
    /// [`Record::timestamp`] in CreateTime batches; in LogAppendTime batches it is the
    /// producer's create time, which Kafka keeps in the bytes but never shows consumers. Use
    /// [`Record::timestamp`] to restore; this is for inspection and exact re-encoding.
    pub raw_timestamps: Vec<i64>,
}

impl DecodedBatch {
    /// Whether this is a control batch (a transaction marker).
    pub fn is_control(&self) -> bool {
        self.header.is_control()
    }

    /// Whether the batch was written inside a transaction.
    pub fn is_transactional(&self) -> bool {
        self.header.is_transactional()
    }
}

/// Decodes one complete batch (as returned by [`batch::split_batches`]).
///
/// Checks, in order: the header, the batch length and CRC32C ([`batch::verify`]); the codec;
/// decompression, record count and header count within `limits`; then every record: lengths
/// against the bytes left, each record's length prefix against the bytes its fields take,
/// offset deltas within `[0, lastOffsetDelta]` and strictly increasing, no i64 overflow in
/// offsets or timestamps, exactly the header's record count and no bytes after the last
/// record. Any failure is an error naming the batch's base offset, the record's index and the
/// field.
///
/// Keys, values and headers are zero-copy slices of `batch` (uncompressed batches) or of the
/// decompressed section. To decode from a `&[u8]`, pass `Bytes::copy_from_slice(slice)`.
///
/// Batches with no records are valid: Kafka's log cleaner keeps emptied batches for their
/// producer state.
pub fn decode_batch(batch: &Bytes, limits: &DecodeLimits) -> Result<DecodedBatch, RecordError> {
    let header = batch::verify(batch).map_err(|source| RecordError::Batch {
        base_offset: batch
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_be_bytes),
        source,
    })?;
    let base_offset = header.base_offset;
    let compression = Compression::from_attributes(header.attributes)
        .map_err(|codec| RecordError::UnknownCompression { base_offset, codec })?;
    let timestamp_type = TimestampType::from_attributes(header.attributes);
    let raw_section = batch.slice(BATCH_HEADER_LEN.min(batch.len())..);
    let section = match compression {
        Compression::None => raw_section,
        codec => Bytes::from(
            compression::decompress(codec, &raw_section, limits).map_err(|source| {
                RecordError::Compression {
                    base_offset,
                    source,
                }
            })?,
        ),
    };

    let count = usize::try_from(header.record_count)
        .ok()
        .filter(|n| n.saturating_mul(MIN_RECORD_LEN) <= section.len())
        .ok_or(RecordError::InvalidRecordCount {
            base_offset,
            count: header.record_count,
            section_len: section.len(),
        })?;

    if count > limits.max_records {
        return Err(RecordError::LimitExceeded {
            base_offset,
            what: "records",
            setting: "max_records",
            limit: limits.max_records,
        });
    }
    let mut decoder = RecordDecoder {
        header: &header,
        section: &section,
        cursor: Cursor::new(&section),
        previous_delta: None,
        headers_left: limits.max_headers,
        max_headers: limits.max_headers,
    };
    let mut records = Vec::with_capacity(count);
    let mut raw_timestamps = Vec::with_capacity(count);
    for index in 0..count {
        let (record, raw_timestamp) = decoder.record(index)?;
        let record = match timestamp_type {
            TimestampType::CreateTime => record,
            TimestampType::LogAppendTime => Record {
                timestamp: header.max_timestamp,
                ..record
            },
        };
        records.push(record);
        raw_timestamps.push(raw_timestamp);
    }
    let extra = decoder.cursor.remaining();
    if extra != 0 {
        return Err(RecordError::TrailingBytes {
            base_offset,
            count: header.record_count,
            extra,
        });
    }
    Ok(DecodedBatch {
        header,
        timestamp_type,
        compression,
        records,
        raw_timestamps,
    })
}

/// Reads records one after another from a (decompressed) records section.
struct RecordDecoder<'a> {
    header: &'a BatchHeader,
    section: &'a Bytes,
    cursor: Cursor<'a>,
    previous_delta: Option<i32>,
    /// Headers the batch may still have under `DecodeLimits::max_headers`.
    headers_left: usize,
    max_headers: usize,
}

impl RecordDecoder<'_> {
    /// Decodes record `index`; returns it with its raw (stored) timestamp.
    fn record(&mut self, index: usize) -> Result<(Record, i64), RecordError> {
        let base_offset = self.header.base_offset;
        let err = |field: &'static str| {
            move |e: ReadError| match e {
                ReadError::Eof { need, have } => RecordError::Truncated {
                    base_offset,
                    index,
                    field,
                    need,
                    have,
                },
                ReadError::VarintTooLong => RecordError::VarintTooLong {
                    base_offset,
                    index,
                    field,
                },
            }
        };
        let invalid = |field: &'static str, length: i64| RecordError::InvalidLength {
            base_offset,
            index,
            field,
            length,
        };

        let declared = self.cursor.varint().map_err(err("record length"))?;
        let declared = usize::try_from(declared).map_err(|_| invalid("record", declared.into()))?;
        let range = self.cursor.take(declared).map_err(err("record"))?;
        // Ranges inside the record are relative to its start; `at` makes them absolute so the
        // shared section can be sliced without copying.
        let start = range.start;
        let at = |r: std::ops::Range<usize>| self.section.slice(start + r.start..start + r.end);
        let mut rec = Cursor::new(self.section.get(range).unwrap_or_default());

        let _attributes = rec.i8().map_err(err("attributes"))?;
        let timestamp_delta = rec.varlong().map_err(err("timestamp delta"))?;
        let offset_delta = rec.varint().map_err(err("offset delta"))?;
        let key = nullable(&mut rec, "key", &err, &invalid)?.map(at);
        let value = nullable(&mut rec, "value", &err, &invalid)?.map(at);
        let header_count = rec.varint().map_err(err("header count"))?;
        let header_count = usize::try_from(header_count)
            .ok()
            .filter(|n| n.saturating_mul(MIN_HEADER_LEN) <= rec.remaining())
            .ok_or_else(|| invalid("header count", header_count.into()))?;
        self.headers_left =
            self.headers_left
                .checked_sub(header_count)
                .ok_or(RecordError::LimitExceeded {
                    base_offset,
                    what: "headers",
                    setting: "max_headers",
                    limit: self.max_headers,
                })?;
        let mut headers = Vec::with_capacity(header_count);
        for _ in 0..header_count {
            let key_len = rec.varint().map_err(err("header key length"))?;
            let key_len =
                usize::try_from(key_len).map_err(|_| invalid("header key", key_len.into()))?;
            let key = at(rec.take(key_len).map_err(err("header key"))?);
            let value = nullable(&mut rec, "header value", &err, &invalid)?.map(at);
            headers.push(Header { key, value });
        }
        if rec.remaining() != 0 {
            return Err(RecordError::RecordLengthMismatch {
                base_offset,
                index,
                declared,
                consumed: rec.position(),
            });
        }

        let last = self.header.last_offset_delta;
        if offset_delta < 0
            || offset_delta > last
            || self.previous_delta.is_some_and(|p| offset_delta <= p)
        {
            return Err(RecordError::InvalidOffsetDelta {
                base_offset,
                index,
                delta: offset_delta,
                last_offset_delta: last,
                previous: self.previous_delta,
            });
        }
        self.previous_delta = Some(offset_delta);
        let overflow = |field| RecordError::Overflow {
            base_offset,
            index,
            field,
        };
        let offset = base_offset
            .checked_add(offset_delta.into())
            .ok_or(overflow("offset"))?;
        let timestamp = self
            .header
            .base_timestamp
            .checked_add(timestamp_delta)
            .ok_or(overflow("timestamp"))?;
        Ok((
            Record {
                offset,
                timestamp,
                key,
                value,
                headers,
            },
            timestamp,
        ))
    }
}

/// Reads a length-prefixed field where -1 means null; returns its range in the record.
fn nullable<E, I>(
    rec: &mut Cursor<'_>,
    field: &'static str,
    err: &impl Fn(&'static str) -> E,
    invalid: &I,
) -> Result<Option<std::ops::Range<usize>>, RecordError>
where
    E: FnMut(ReadError) -> RecordError,
    I: Fn(&'static str, i64) -> RecordError,
{
    let len = rec.varint().map_err(err(field))?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| invalid(field, len.into()))?;
    Ok(Some(rec.take(len).map_err(err(field))?))
}

//! Errors of record decoding, encoding and transaction filtering. Each says where (the batch's
//! base offset, the record's index in the batch, the field) and what, because the bytes come
//! from a backup file or a broker and the operator needs to find the damaged spot.

use crate::batch::BatchError;
use crate::compression::CompressionError;

/// Why a record batch could not be decoded, encoded or filtered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The batch header, length or CRC is wrong (see [`BatchError`]). `base_offset` is `None`
    /// when not even the header could be read.
    #[error("record batch{}: {source}", at(*base_offset))]
    Batch {
        /// Base offset from the header, when it could be read.
        base_offset: Option<i64>,
        /// What is wrong.
        #[source]
        source: BatchError,
    },
    /// The compression bits name a codec that does not exist (5, 6 or 7).
    #[error("record batch at offset {base_offset}: unknown compression codec id {codec}")]
    UnknownCompression {
        /// Base offset of the batch.
        base_offset: i64,
        /// The attribute bits 0-2.
        codec: u8,
    },
    /// The compressed records section could not be decompressed, or expands past the limit.
    #[error("record batch at offset {base_offset}: {source}")]
    Compression {
        /// Base offset of the batch.
        base_offset: i64,
        /// What went wrong.
        #[source]
        source: CompressionError,
    },
    /// The record count in the header is negative, or larger than the records section can hold.
    #[error(
        "record batch at offset {base_offset}: record count {count} is impossible for a \
         {section_len}-byte records section"
    )]
    InvalidRecordCount {
        /// Base offset of the batch.
        base_offset: i64,
        /// The header's record count.
        count: i32,
        /// Size of the (decompressed) records section.
        section_len: usize,
    },
    /// The batch holds more records or headers than [`DecodeLimits`](crate::DecodeLimits)
    /// allows.
    #[error(
        "record batch at offset {base_offset}: more than {limit} {what} (raise DecodeLimits::{setting} \
         if this batch is genuine)"
    )]
    LimitExceeded {
        /// Base offset of the batch.
        base_offset: i64,
        /// "records" or "headers".
        what: &'static str,
        /// The limit's field name in `DecodeLimits`.
        setting: &'static str,
        /// The limit in force.
        limit: usize,
    },
    /// A field runs past the end of its record or of the records section.
    #[error(
        "record batch at offset {base_offset}, record #{index}: {field} needs {need} bytes but \
         only {have} are left"
    )]
    Truncated {
        /// Base offset of the batch.
        base_offset: i64,
        /// Index of the record within the batch (0-based).
        index: usize,
        /// Which field.
        field: &'static str,
        /// Bytes the field needs.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// A varint is longer than Kafka allows (5 bytes, or 10 for a varlong).
    #[error("record batch at offset {base_offset}, record #{index}: {field} is an overlong varint")]
    VarintTooLong {
        /// Base offset of the batch.
        base_offset: i64,
        /// Index of the record within the batch.
        index: usize,
        /// Which field.
        field: &'static str,
    },
    /// A length is negative (other than -1, "null", where null is allowed).
    #[error(
        "record batch at offset {base_offset}, record #{index}: {field} has invalid length {length}"
    )]
    InvalidLength {
        /// Base offset of the batch.
        base_offset: i64,
        /// Index of the record within the batch.
        index: usize,
        /// Which field.
        field: &'static str,
        /// The length read.
        length: i64,
    },
    /// The record's length prefix disagrees with the bytes its fields took.
    #[error(
        "record batch at offset {base_offset}, record #{index}: length prefix says {declared} \
         bytes but the fields take {consumed}"
    )]
    RecordLengthMismatch {
        /// Base offset of the batch.
        base_offset: i64,
        /// Index of the record within the batch.
        index: usize,
        /// From the length prefix.
        declared: usize,
        /// Bytes the fields took.
        consumed: usize,
    },
    /// Bytes are left in the records section after the header's record count.
    #[error(
        "record batch at offset {base_offset}: {extra} bytes follow the {count} records the \
         header declares"
    )]
    TrailingBytes {
        /// Base offset of the batch.
        base_offset: i64,
        /// The header's record count.
        count: i32,
        /// Bytes left over.
        extra: usize,
    },
    /// A record's offset delta is outside `[0, lastOffsetDelta]`, or not above the previous
    /// record's (a batch's offsets strictly increase).
    #[error(
        "record batch at offset {base_offset}, record #{index}: offset delta {delta} is invalid \
         (last offset delta {last_offset_delta}, previous delta {previous:?})"
    )]
    InvalidOffsetDelta {
        /// Base offset of the batch.
        base_offset: i64,
        /// Index of the record within the batch.
        index: usize,
        /// The record's delta.
        delta: i32,
        /// The header's last offset delta.
        last_offset_delta: i32,
        /// The previous record's delta, if any.
        previous: Option<i32>,
    },
    /// baseTimestamp + timestampDelta (or base offset + delta) overflows an i64.
    #[error("record batch at offset {base_offset}, record #{index}: {field} overflows")]
    Overflow {
        /// Base offset of the batch.
        base_offset: i64,
        /// Index of the record within the batch.
        index: usize,
        /// Which value.
        field: &'static str,
    },
    /// The batch is not a valid transaction marker (control batch).
    #[error("control batch at offset {offset}: {what}")]
    InvalidControlBatch {
        /// Offset of the batch.
        offset: i64,
        /// What is wrong.
        what: String,
    },
    /// A control record of a type other than COMMIT (1) or ABORT (0).
    #[error(
        "control batch at offset {offset}: control record type {kind} is not a transaction marker"
    )]
    UnknownControlType {
        /// Offset of the batch.
        offset: i64,
        /// The type read from the key.
        kind: i16,
    },
    /// The records cannot be encoded into one batch.
    #[error("cannot encode record batch: {what}")]
    Encode {
        /// What is wrong (with the offending record's offset where there is one).
        what: String,
    },
    /// Batches were fed to a transaction filter out of offset order.
    #[error(
        "transaction filter: batch at offset {offset} arrived after offset {previous}; feed batches in offset order"
    )]
    OutOfOrder {
        /// Base offset of the batch just fed.
        offset: i64,
        /// Last offset of the batch before it.
        previous: i64,
    },
}

fn at(offset: Option<i64>) -> String {
    offset
        .map(|o| format!(" at offset {o}"))
        .unwrap_or_default()
}

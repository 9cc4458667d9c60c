//! Errors of the segment format. Each variant says what is wrong and where (byte position in
//! the object, chunk index, Kafka offset), because the person reading it is usually looking
//! at a damaged object in a bucket and needs to know whether to blame storage, the network
//! or a writer bug.

use kafka_records::BatchError;

/// Why a segment could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The object does not start (or end) with the segment magic: not a segment, or cut.
    #[error("not a kafka-backup segment: bad {which} magic at byte {at}")]
    BadMagic {
        /// `"preamble"` or `"end"`.
        which: &'static str,
        /// Byte position of the magic in the object.
        at: u64,
    },
    /// A version this build does not know (written by a newer kafka-backup).
    #[error(
        "unsupported {what} version {found} (this build reads version {supported}); \
         upgrade kafka-backup to read it"
    )]
    UnsupportedVersion {
        /// Which version field.
        what: &'static str,
        /// Version found.
        found: u64,
        /// Version this build supports.
        supported: u64,
    },
    /// Flag bits this build does not know.
    #[error("segment preamble has unknown flag bits {flags:#06x} (written by a newer version?)")]
    UnknownFlags {
        /// The unknown bits.
        flags: u16,
    },
    /// The header length is over the format's (or the reader's) limit.
    #[error("segment header is {len} bytes, over the limit of {limit}")]
    HeaderTooLarge {
        /// Declared or serialized length.
        len: u64,
        /// Limit.
        limit: u64,
    },
    /// The header is not valid JSON, misses fields or has invalid values.
    #[error("invalid segment header: {reason}")]
    InvalidHeader {
        /// What is wrong.
        reason: String,
    },
    /// The segment is encrypted and was opened without its data key.
    #[error(
        "the segment is encrypted ({provider} key {}); configure a key that can decrypt it",
        if key_ids.is_empty() { "(no key id recorded)".to_owned() } else { key_ids.join(", ") }
    )]
    Encrypted {
        /// The key provider that wrapped its data key.
        provider: String,
        /// The keys that can unwrap it.
        key_ids: Vec<String>,
    },
    /// An encrypted block (chunk or trailer) failed authentication or could not be
    /// encrypted.
    #[error("{source} ({what})")]
    Crypto {
        /// Where (e.g. "at byte 4096", "writing chunk 3").
        what: String,
        /// The cipher's verdict.
        #[source]
        source: crate::crypto::CryptoError,
    },
    /// A chunk declares a length over the limit.
    #[error("chunk {chunk} at byte {at}: {field} {len} is over the limit of {limit}")]
    ChunkTooLarge {
        /// Chunk index (0-based).
        chunk: u64,
        /// Byte position of the chunk in the object.
        at: u64,
        /// `"raw_len"` or `"stored_len"`.
        field: &'static str,
        /// Declared length.
        len: u64,
        /// Limit.
        limit: u64,
    },
    /// A chunk header is inconsistent (for example empty, or stored_len ≠ raw_len when
    /// uncompressed).
    #[error("chunk {chunk} at byte {at}: {reason}")]
    InvalidChunk {
        /// Chunk index.
        chunk: u64,
        /// Byte position of the chunk in the object.
        at: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A block kind that is neither a chunk nor the trailer.
    #[error("unknown block kind {kind:#04x} at byte {at}")]
    UnknownBlockKind {
        /// The kind byte.
        kind: u8,
        /// Byte position.
        at: u64,
    },
    /// The stored bytes of a chunk do not match its CRC32C: damaged in storage or transit.
    #[error(
        "chunk {chunk} at byte {offset_in_object}: CRC32C mismatch \
         (stored {stored:#010x}, computed {computed:#010x})"
    )]
    ChunkCrcMismatch {
        /// Chunk index.
        chunk: u64,
        /// Byte position of the chunk in the object.
        offset_in_object: u64,
        /// CRC in the chunk header.
        stored: u32,
        /// CRC of the stored bytes.
        computed: u32,
    },
    /// The decompressor rejected a chunk (its CRC matched, so the writer or a hostile
    /// object is to blame, not storage).
    #[error(
        "chunk {chunk} at byte {offset_in_object}: {compression} decompression failed: {message}"
    )]
    Decompress {
        /// Chunk index.
        chunk: u64,
        /// Byte position of the chunk in the object.
        offset_in_object: u64,
        /// Codec name.
        compression: &'static str,
        /// The decompressor's message.
        message: String,
    },
    /// A chunk decompressed to a size other than its declared raw_len.
    #[error("chunk {chunk} decompressed to {} bytes, its header says {expected}",
        actual.map_or_else(|| format!("more than {expected}"), |a| a.to_string()))]
    DecompressedSizeMismatch {
        /// Chunk index.
        chunk: u64,
        /// Declared raw_len.
        expected: u64,
        /// Actual size; `None` when the output did not fit in `expected` bytes.
        actual: Option<u64>,
    },
    /// A record batch in a chunk (or given to the writer) is not a valid v2 batch.
    #[error(
        "chunk {chunk}, byte {offset_in_chunk} of its raw content: invalid record batch: {source}"
    )]
    InvalidBatch {
        /// Chunk index (for the writer: the chunk it would have gone into).
        chunk: u64,
        /// Byte position of the batch within the chunk's raw (decompressed) content.
        offset_in_chunk: u64,
        /// What kafka-records found.
        #[source]
        source: BatchError,
    },
    /// A batch header that is well-formed but has impossible values.
    #[error("record batch at offset {base_offset}: {reason}")]
    InvalidBatchHeader {
        /// The batch's base offset.
        base_offset: i64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A batch bigger than the largest chunk.
    #[error("record batch at offset {base_offset} is {len} bytes, over the chunk limit of {limit}")]
    BatchTooLarge {
        /// The batch's base offset.
        base_offset: i64,
        /// Its size.
        len: u64,
        /// The chunk limit.
        limit: u64,
    },
    /// Batches out of order, overlapping, or outside the segment's coverage.
    #[error("record batch at offset {base_offset}: {reason} ({bound})")]
    OffsetOrder {
        /// The batch's base offset.
        base_offset: i64,
        /// The offset it was checked against.
        bound: i64,
        /// Which rule was broken.
        reason: &'static str,
    },
    /// [`crate::segment::read_all`] would keep more raw content than its limit allows.
    #[error("segment holds more than {limit} bytes of raw content (limit of the reader)")]
    TotalTooLarge {
        /// The limit.
        limit: u64,
    },
    /// A segment without batches: the writer refuses to write one, the reader to accept one.
    #[error("a segment must contain at least one record batch")]
    EmptySegment,
    /// The trailer is not valid JSON or misses fields.
    #[error("invalid segment trailer: {reason}")]
    InvalidTrailer {
        /// What is wrong.
        reason: String,
    },
    /// The trailer disagrees with the data read.
    #[error("segment trailer says {field} = {expected}, but the data read gives {actual}")]
    TrailerMismatch {
        /// Trailer field.
        field: &'static str,
        /// Value recorded in the trailer.
        expected: i128,
        /// Value computed from the chunks read.
        actual: i128,
    },
    /// The object ends before a structure that starts at `at` and needs `need` bytes.
    #[error("segment truncated: {need} bytes needed at byte {at}, only {have} present")]
    Truncated {
        /// Byte position where the structure starts.
        at: u64,
        /// Bytes the structure needs from `at`.
        need: u64,
        /// Bytes present from `at`.
        have: u64,
    },
    /// Bytes after the end magic.
    #[error("{count} unexpected bytes after the end of the segment at byte {at}")]
    TrailingBytes {
        /// Byte position of the first extra byte.
        at: u64,
        /// Number of extra bytes.
        count: u64,
    },
    /// The object's SHA-256 is not the one expected (from its name or manifest).
    #[error("segment SHA-256 mismatch: expected {expected}, computed {actual}")]
    Sha256Mismatch {
        /// Expected digest, hex.
        expected: String,
        /// Computed digest, hex.
        actual: String,
    },
    /// Writer options out of range.
    #[error("invalid segment writer options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// The compressor failed.
    #[error("{compression} compression failed: {message}")]
    Compress {
        /// Codec name.
        compression: &'static str,
        /// The compressor's message.
        message: String,
    },
    /// The writer failed earlier and its state is unusable.
    #[error("the segment writer failed earlier and cannot be used")]
    Poisoned,
}

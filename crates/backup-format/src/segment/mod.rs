//! The segment object: a contiguous range of one partition's record batches, stored exactly as
//! the broker sent them (never decoded and re-encoded, so a restore reproduces them byte for
//! byte, CRCs included).
//!
//! # Layout (version 1; all integers big-endian)
//!
//! ```text
//! Preamble  (16 bytes)
//!   magic       8   0x89 'K' 'B' 'S' 'E' 'G' '\r' '\n'
//!   version     u16 1
//!   flags       u16 bit 0: encrypted (the header's `encryption` says how);
//!                   any other bit: rejected (unknown)
//!   header_len  u32 ≤ 1 MiB
//! Header    header_len bytes: SegmentHeader as compact JSON
//! Chunk*    (13-byte chunk header + stored bytes), at least one
//!   kind        u8  0x01
//!   raw_len     u32 1 ..= 64 MiB: size of the raw content (complete record batches)
//!   stored_len  u32 = raw_len for "none";
//!                   ≤ raw_len + raw_len/128 + 1024 for "zstd" and "lz4";
//!                   + 16 (the authentication tag) when encrypted
//!   crc32c      u32 CRC32C (Castagnoli) of the stored bytes
//!   stored      stored_len bytes: the raw content, compressed with the header's codec
//!               (then encrypted, tag appended, when the segment is encrypted)
//! Trailer
//!   kind        u8  0xFF
//!   trailer_len u32 ≤ 64 KiB (+ 16 when encrypted)
//!   trailer     trailer_len bytes: SegmentTrailer as compact JSON (encrypted, tag appended,
//!               when the segment is encrypted)
//!   end magic   8   "KBSEGEND"
//! ```
//!
//! Codecs, per chunk and independent of each other (bounded decompression memory: the
//! output size is known before decompressing; chunks can later be decoded in parallel):
//! - `none`: the stored bytes are the record batches themselves;
//! - `zstd`: exactly one standard zstd frame (RFC 8878; no skippable or legacy frames), as
//!   written by `ZSTD_compress2`;
//! - `lz4`: one LZ4 *block* (not the frame format: the chunk header already carries the
//!   sizes and a CRC, so the frame's own would be redundant), as `lz4_flex::block` writes.
//!
//! The stored-length bound for compressed chunks is part of the format, not taken from the
//! libraries, so a library upgrade can never make old objects unreadable. It is above the
//! worst case of both zstd (`n + n/256 + 64 KiB/2048`) and LZ4 (`n + n/255 + 16`).
//!
//! # Encryption
//!
//! An encrypted segment sets flag bit 0 and the header's `encryption` (algorithm, the
//! segment's HKDF salt, and the run's wrapped data key); both must agree. Preamble and header
//! stay in the clear (a restore needs the wrapped key and the identity before it can decrypt
//! anything). Each chunk's stored bytes are encrypted after compression and the trailer is
//! encrypted as the final block, as [`crate::crypto::stream`] describes: the chunk CRC covers
//! the ciphertext, so damage in storage is still told apart from tampering (a CRC that
//! matches on bytes that fail authentication was altered deliberately, or the key is wrong).
//! Readers before encryption existed reject such segments on the flag, so they never mistake
//! ciphertext for batches.

mod codec;
mod reader;
mod tally;
mod writer;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::FormatError;
use crate::naming;

pub use reader::{
    ReaderLimits, Segment, SegmentReader, peek_header, read_all, read_all_with, read_all_with_key,
    read_trailer,
};
pub use writer::{FinishedSegment, SegmentWriter, WriterOptions};

/// First 8 bytes of every segment. The non-ASCII first byte and the CR LF catch text-mode
/// transfers that would rewrite line endings (as PNG's signature does).
pub const MAGIC: [u8; 8] = [0x89, b'K', b'B', b'S', b'E', b'G', b'\r', b'\n'];
/// Last 8 bytes of every segment: a cheap check that the object is complete.
pub const END_MAGIC: [u8; 8] = *b"KBSEGEND";
/// The preamble version this build writes and reads.
pub const VERSION: u16 = 1;
/// The `format` value of [`SegmentHeader`] this build writes and reads.
pub const HEADER_FORMAT: u32 = 1;
/// Preamble flag: chunks and trailer are encrypted.
pub const FLAG_ENCRYPTED: u16 = 0x0001;
/// Size of the preamble: magic, version, flags, header_len.
pub const PREAMBLE_LEN: usize = 16;
/// Largest header the format allows.
pub const MAX_HEADER_LEN: usize = 1 << 20;
/// Largest raw content of one chunk, and so the largest record batch a segment can hold.
pub const MAX_CHUNK_RAW_LEN: usize = 64 << 20;
/// Largest trailer the format allows.
pub const MAX_TRAILER_LEN: usize = 64 << 10;
/// Size of a chunk header: kind, raw_len, stored_len, crc32c.
pub const CHUNK_HEADER_LEN: usize = 13;
/// Size of the trailer's fixed part before its JSON: kind, trailer_len.
pub const TRAILER_HEADER_LEN: usize = 5;
/// Block kind of a chunk.
pub const KIND_CHUNK: u8 = 0x01;
/// Block kind of the trailer.
pub const KIND_TRAILER: u8 = 0xFF;
/// Default size at which the writer closes a chunk.
pub const DEFAULT_CHUNK_TARGET: usize = 4 << 20;

/// How chunk contents are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as is.
    None,
    /// zstd, each chunk its own frame.
    Zstd,
    /// LZ4 block format, each chunk its own block.
    Lz4,
}

impl Compression {
    /// The name used in headers and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zstd => "zstd",
            Self::Lz4 => "lz4",
        }
    }

    /// The largest `stored_len` the format allows for a chunk of `raw_len` bytes.
    pub fn max_stored_len(self, raw_len: usize) -> usize {
        match self {
            Self::None => raw_len,
            Self::Zstd | Self::Lz4 => raw_len + raw_len / 128 + 1024,
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transaction that was aborted, as a read_committed Fetch reports it: records of
/// `producer_id` from `first_offset` up to the producer's ABORT marker are not committed.
/// Ordered by `first_offset` first, as Kafka's consumer consumes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AbortedTransaction {
    /// First offset of the aborted transaction in this partition.
    pub first_offset: i64,
    /// The transactional producer.
    pub producer_id: i64,
}

/// A transaction marker (a COMMIT or ABORT control batch) in a segment, as listed in the
/// segment's manifest entry: a restore that knows every marker of a partition before reading
/// its segments can decide each transactional batch as it streams past, so it reads each
/// segment once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnMarker {
    /// The control batch's offset.
    pub offset: i64,
    /// The producer whose transaction it ends.
    pub producer_id: i64,
    /// `true` for COMMIT, `false` for ABORT.
    pub commit: bool,
}

/// What a segment holds, written before its chunks so that a streaming reader knows it
/// before the first batch.
///
/// Unknown fields are ignored (not rejected) so a newer writer can add optional ones without
/// a version bump; anything an old reader must not ignore bumps `format` instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// Header format; must be [`HEADER_FORMAT`].
    pub format: u32,
    /// The backup this segment belongs to.
    pub backup_id: String,
    /// The run that wrote it.
    pub run_id: String,
    /// The source cluster's id, when the broker reports one.
    pub cluster_id: Option<String>,
    /// Topic name.
    pub topic: String,
    /// Topic id (hyphenated lower-case UUID; all zeros for brokers without topic ids), so a
    /// topic deleted and re-created under the same name is never mixed up with the old one.
    pub topic_id: String,
    /// Partition.
    pub partition: i32,
    /// Fetch position where this segment's coverage begins (inclusive). With compaction the
    /// first batch's base offset can be larger; after DeleteRecords it can be smaller (Kafka
    /// returns whole batches), but the first batch always reaches this offset.
    pub start_offset: i64,
    /// How chunks are stored. Set by the writer from [`WriterOptions`].
    pub compression: Compression,
    /// The compression level used (informational). Set by the writer.
    pub compression_level: Option<i32>,
    /// When the segment was started, RFC 3339.
    pub created_at: String,
    /// How the segment is encrypted; `None` for a segment in the clear. Set by the writer
    /// from [`WriterOptions::encryption`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::crypto::Encryption>,
    /// Aborted transactions overlapping this range, as read_committed Fetches reported them,
    /// de-duplicated and sorted by first offset. Needed to restore committed data only.
    #[serde(default)]
    pub aborted_transactions: Vec<AbortedTransaction>,
}

impl SegmentHeader {
    /// The identity bound into an encrypted segment's key and blocks.
    pub fn identity(&self) -> crate::crypto::stream::SegmentIdentity<'_> {
        crate::crypto::stream::SegmentIdentity {
            backup_id: &self.backup_id,
            topic: &self.topic,
            topic_id: &self.topic_id,
            partition: self.partition,
            start_offset: self.start_offset,
            compression: self.compression.as_str(),
        }
    }

    /// Checks what both the writer and the reader require: known format, known encryption
    /// parameters, and names that are safe to put in object keys.
    pub fn validate(&self) -> Result<(), FormatError> {
        if self.format != HEADER_FORMAT {
            return Err(FormatError::UnsupportedVersion {
                what: "segment header format",
                found: u64::from(self.format),
                supported: u64::from(HEADER_FORMAT),
            });
        }
        let invalid = |reason: String| FormatError::InvalidHeader { reason };
        if let Some(e) = &self.encryption {
            e.validate().map_err(|e| invalid(e.to_string()))?;
        }
        let invalid = |reason: String| FormatError::InvalidHeader { reason };
        naming::validate_backup_id(&self.backup_id).map_err(|e| invalid(e.to_string()))?;
        naming::validate_run_id(&self.run_id).map_err(|e| invalid(e.to_string()))?;
        naming::validate_topic(&self.topic).map_err(|e| invalid(e.to_string()))?;
        naming::validate_topic_id(&self.topic_id).map_err(|e| invalid(e.to_string()))?;
        if self.partition < 0 {
            return Err(invalid(format!("negative partition {}", self.partition)));
        }
        if self.start_offset < 0 {
            return Err(invalid(format!(
                "negative start_offset {}",
                self.start_offset
            )));
        }
        Ok(())
    }
}

/// Totals of a segment, written after its chunks (they are only known at the end) and
/// checked by the reader against what it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentTrailer {
    /// Number of chunks.
    pub chunks: u64,
    /// Number of record batches (control batches included).
    pub batches: u64,
    /// Sum of the batches' record counts.
    pub records: u64,
    /// Sum of the batches' sizes: the uncompressed content.
    pub raw_bytes: u64,
    /// Base offset of the first batch.
    pub first_batch_offset: i64,
    /// Last offset of the last batch (its base offset + lastOffsetDelta), inclusive.
    pub last_offset: i64,
    /// End of the coverage, exclusive: `last_offset + 1`.
    pub end_offset: i64,
    /// Smallest first timestamp of a batch (its baseTimestamp, or maxTimestamp for
    /// LogAppendTime batches); -1 if no batch has one. A bound from the batch headers, not
    /// from decoded records.
    pub min_timestamp: i64,
    /// Largest batch maxTimestamp; -1 if none.
    pub max_timestamp: i64,
    /// Number of control batches (transaction markers).
    pub control_batches: u64,
    /// Number of transactional batches (markers included).
    pub transactional_batches: u64,
    /// Number of distinct producer ids (≥ 0) among the batches.
    pub producer_ids: u64,
}

/// SHA-256 of a whole object, as used in segment keys and manifests.
pub fn object_sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Checks an object against the SHA-256 its key or manifest entry names.
pub fn verify_sha256(bytes: &[u8], expected: &[u8; 32]) -> Result<(), FormatError> {
    let actual = object_sha256(bytes);
    if &actual != expected {
        return Err(FormatError::Sha256Mismatch {
            expected: crate::hex::encode32(expected),
            actual: crate::hex::encode32(&actual),
        });
    }
    Ok(())
}

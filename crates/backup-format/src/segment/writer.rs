//! Building a segment object in memory.
//!
//! The writer is on the backup's hot path (it must keep up with the fetch loop on 2 cores),
//! so it touches each batch byte as few times as it can:
//! - `none`: the batch is verified (CRC pass over the caller's buffer), copied once into the
//!   object after a placeholder chunk header, the chunk CRC is extended over the copy while it
//!   is in cache, and the header is patched when the chunk closes;
//! - `zstd`/`lz4`: the batch is copied once into the chunk's raw buffer and compressed
//!   straight into the object's spare capacity.
//!
//! The object's SHA-256 is computed chunk by chunk as chunks close. The header comes first in
//! the object, but aborted transactions arrive with each Fetch, after the header was written:
//! the object is built behind a reserved gap, so a header that grew (rare: only when
//! transactions were aborted in the range) is rewritten in place at [`SegmentWriter::finish`],
//! and only then is the object hashed a second time.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use kafka_records::batch;
use sha2::{Digest, Sha256};

use super::codec::Encoder;
use super::tally::Tally;
use super::{
    AbortedTransaction, CHUNK_HEADER_LEN, Compression, DEFAULT_CHUNK_TARGET, END_MAGIC,
    FLAG_ENCRYPTED, KIND_CHUNK, KIND_TRAILER, MAGIC, MAX_CHUNK_RAW_LEN, MAX_HEADER_LEN,
    MAX_TRAILER_LEN, PREAMBLE_LEN, SegmentHeader, SegmentTrailer, VERSION,
};
use crate::crypto::stream::{MAX_BLOCKS, SegmentCipher};
use crate::crypto::{Encryption, RunKey, TAG_LEN};
use crate::{FormatError, naming};

/// Room kept in front of the header for aborted transactions learnt later (~300 entries)
/// before the object has to be moved.
const HEADER_SLACK: usize = 16 << 10;

/// How the writer stores chunks.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Codec for every chunk of the segment.
    pub compression: Compression,
    /// zstd level (default 3); must be `None` for `none` and `lz4`, which have no levels.
    pub level: Option<i32>,
    /// A chunk is closed once its raw content reaches this size (1 ..= 64 MiB). A batch
    /// larger than this gets a chunk of its own. Default 4 MiB: large enough for good
    /// compression, small enough to bound the reader's memory per chunk.
    pub chunk_target_bytes: usize,
    /// Expected object size, to allocate the output once instead of growing it (growing
    /// copies what was written so far). 0: grow as needed.
    pub expected_segment_bytes: usize,
    /// Encrypt chunks and trailer under this run key (each segment derives its own key with
    /// a fresh salt); `None` writes the segment in the clear.
    pub encryption: Option<Arc<RunKey>>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            compression: Compression::None,
            level: None,
            chunk_target_bytes: DEFAULT_CHUNK_TARGET,
            expected_segment_bytes: 0,
            encryption: None,
        }
    }
}

/// A complete segment object, ready to upload under [`FinishedSegment::key`].
#[derive(Debug, Clone)]
pub struct FinishedSegment {
    /// The whole object.
    pub bytes: Bytes,
    /// SHA-256 of `bytes`; part of the object's name.
    pub sha256: [u8; 32],
    /// The header as written (compression and level filled in, aborted transactions sorted).
    pub header: SegmentHeader,
    /// The trailer as written.
    pub trailer: SegmentTrailer,
    /// The segment's transaction markers, in offset order (for its manifest entry); `None`
    /// when a control batch did not decode.
    pub markers: Option<Vec<super::TxnMarker>>,
}

impl FinishedSegment {
    /// The parts of the object's key (unsigned; sign it with [`naming::SegmentKey::sign`]).
    pub fn segment_key(&self) -> naming::SegmentKey {
        naming::SegmentKey {
            backup_id: self.header.backup_id.clone(),
            topic: self.header.topic.clone(),
            topic_id: self.header.topic_id.clone(),
            partition: self.header.partition,
            start_offset: self.header.start_offset,
            last_offset: self.trailer.last_offset,
            sha256: self.sha256,
            signature: None,
        }
    }

    /// The object's unsigned key (without the storage prefix).
    pub fn key(&self) -> String {
        naming::segment_key_unchecked(
            &self.header.backup_id,
            &self.header.topic,
            &self.header.topic_id,
            self.header.partition,
            self.header.start_offset,
            self.trailer.last_offset,
            &self.sha256,
        )
    }
}

impl FinishedSegment {
    /// Gives the object's allocation back for [`SegmentWriter::with_buffer`], once nothing
    /// else holds the bytes (e.g. the upload is done); `None` while a clone of `bytes` lives.
    pub fn into_buffer(self) -> Option<Vec<u8>> {
        let mut bytes = self.bytes.try_into_mut().ok()?;
        // Emptied first, so the conversion moves no data.
        bytes.clear();
        Some(Vec::from(bytes))
    }
}

/// Builds one segment object from record batches pushed in offset order.
pub struct SegmentWriter {
    header: SegmentHeader,
    aborted: BTreeSet<AbortedTransaction>,
    /// Aborted transactions were added after the header was first written.
    header_changed: bool,
    /// Upper bound of the header's JSON length with the aborted transactions added so far.
    header_len_estimate: usize,
    chunk_target: usize,
    encoder: Encoder,
    /// The object, behind a gap: `out[head_start..reserve]` is the preamble and header,
    /// chunks follow from `reserve`.
    out: Vec<u8>,
    reserve: usize,
    head_start: usize,
    /// SHA-256 of `out[head_start..]` up to the last closed chunk.
    sha: Sha256,
    /// `none`: position of the open chunk's placeholder header in `out`.
    chunk_start: usize,
    chunk_raw_len: usize,
    /// `none`: CRC32C of the open chunk so far.
    chunk_crc: u32,
    /// `zstd`/`lz4`: raw content of the open chunk.
    scratch: Vec<u8>,
    chunks: u64,
    tally: Tally,
    /// Set while a step that can fail half-way runs; a writer left poisoned refuses work.
    poisoned: bool,
    /// The segment's cipher when it is encrypted.
    cipher: Option<SegmentCipher>,
}

impl SegmentWriter {
    /// Starts a segment. Fills `header.compression` and `header.compression_level` from
    /// `options` (the options are what the writer actually does), validates the header and
    /// writes it.
    pub fn new(header: SegmentHeader, options: WriterOptions) -> Result<Self, FormatError> {
        Self::with_buffer(header, options, Vec::new())
    }

    /// Like [`SegmentWriter::new`], building the object in `buffer`'s allocation (its content
    /// is discarded), typically one returned by [`FinishedSegment::into_buffer`]. Fresh
    /// memory costs a page fault per 4 KiB on first touch, about as much as the copy itself;
    /// recycling one or two buffers keeps the writer on warm memory.
    pub fn with_buffer(
        mut header: SegmentHeader,
        options: WriterOptions,
        mut buffer: Vec<u8>,
    ) -> Result<Self, FormatError> {
        if !(1..=MAX_CHUNK_RAW_LEN).contains(&options.chunk_target_bytes) {
            return Err(FormatError::InvalidOptions {
                reason: format!(
                    "chunk_target_bytes {} is outside 1..={MAX_CHUNK_RAW_LEN}",
                    options.chunk_target_bytes
                ),
            });
        }
        let (encoder, level) = Encoder::new(options.compression, options.level)?;
        header.compression = options.compression;
        header.compression_level = level;
        header.encryption = match &options.encryption {
            Some(key) => Some(Encryption::new(key.wrapped.clone()).map_err(|source| {
                FormatError::Crypto {
                    what: "starting the segment".to_owned(),
                    source,
                }
            })?),
            None => None,
        };
        header.validate()?;
        let cipher = match (&options.encryption, &header.encryption) {
            (Some(key), Some(e)) => Some(SegmentCipher::new(
                &key.data_key,
                &e.salt,
                &header.identity(),
            )),
            _ => None,
        };
        let aborted: BTreeSet<_> = header.aborted_transactions.iter().copied().collect();
        header.aborted_transactions = aborted.iter().copied().collect();
        let head = encode_head(&header)?;
        let reserve = head.len() + HEADER_SLACK;
        buffer.clear();
        buffer.reserve(reserve + options.expected_segment_bytes.max(64 << 10));
        let mut out = buffer;
        out.resize(reserve, 0);
        let head_start = reserve - head.len();
        out[head_start..].copy_from_slice(&head);
        let mut sha = Sha256::new();
        sha.update(&head);
        let scratch = match options.compression {
            Compression::None => Vec::new(),
            _ => Vec::with_capacity(options.chunk_target_bytes.min(MAX_CHUNK_RAW_LEN)),
        };
        Ok(Self {
            header_len_estimate: head.len() - PREAMBLE_LEN,
            header,
            aborted,
            header_changed: false,
            chunk_target: options.chunk_target_bytes,
            encoder,
            out,
            reserve,
            head_start,
            sha,
            chunk_start: 0,
            chunk_raw_len: 0,
            chunk_crc: 0,
            scratch,
            chunks: 0,
            tally: Tally::default(),
            poisoned: false,
            cipher,
        })
    }

    /// Appends one complete record batch, exactly as the broker sent it. Checks its length and
    /// CRC, that it starts after the previous batch and (the first one) reaches the
    /// segment's start offset. A rejected batch leaves the writer unchanged.
    pub fn push_batch(&mut self, batch: &[u8]) -> Result<(), FormatError> {
        if self.poisoned {
            return Err(FormatError::Poisoned);
        }
        let h = batch::verify(batch).map_err(|source| FormatError::InvalidBatch {
            chunk: self.chunks,
            offset_in_chunk: self.chunk_raw_len as u64,
            source,
        })?;
        if batch.len() > MAX_CHUNK_RAW_LEN {
            return Err(FormatError::BatchTooLarge {
                base_offset: h.base_offset,
                len: batch.len() as u64,
                limit: MAX_CHUNK_RAW_LEN as u64,
            });
        }
        let last = self.tally.check(&h, self.header.start_offset)?;
        if self.chunk_raw_len > 0 && self.chunk_raw_len + batch.len() > self.chunk_target {
            self.close_chunk()?;
        }
        if self.header.compression == Compression::None {
            if self.chunk_raw_len == 0 {
                self.chunk_start = self.out.len();
                self.out.extend_from_slice(&[0; CHUNK_HEADER_LEN]);
                self.chunk_crc = 0;
            }
            let at = self.out.len();
            self.out.extend_from_slice(batch);
            // Encrypted chunks are checksummed after encryption, in close_chunk.
            if self.cipher.is_none() {
                self.chunk_crc = crc32c::crc32c_append(self.chunk_crc, &self.out[at..]);
            }
        } else {
            self.scratch.extend_from_slice(batch);
        }
        self.chunk_raw_len += batch.len();
        self.tally.add(&h, last, batch.len());
        if h.is_control() {
            self.tally.add_marker(control_marker(batch));
        }
        if self.chunk_raw_len >= self.chunk_target {
            self.close_chunk()?;
        }
        Ok(())
    }

    /// Records aborted transactions reported by a read_committed Fetch for this range.
    /// Duplicates (every Fetch overlapping a transaction reports it again) are merged. Fails,
    /// adding none of them, when the header would outgrow its 1 MiB limit (~20,000 entries):
    /// the caller should then finish this segment and start the next one.
    pub fn add_aborted_transactions(
        &mut self,
        transactions: impl IntoIterator<Item = AbortedTransaction>,
    ) -> Result<(), FormatError> {
        let mut new: Vec<AbortedTransaction> = transactions
            .into_iter()
            .filter(|t| !self.aborted.contains(t))
            .collect();
        new.sort_unstable();
        new.dedup();
        let mut estimate = self.header_len_estimate;
        for t in &new {
            // The entry plus its separating comma.
            estimate += serde_json::to_vec(t).map_or(64, |v| v.len()) + 1;
        }
        if estimate > MAX_HEADER_LEN {
            return Err(FormatError::HeaderTooLarge {
                len: estimate as u64,
                limit: MAX_HEADER_LEN as u64,
            });
        }
        self.header_len_estimate = estimate;
        self.header_changed |= !new.is_empty();
        self.aborted.extend(new);
        Ok(())
    }

    /// Raw bytes of the batches pushed so far (what a restore produces).
    pub fn raw_bytes(&self) -> u64 {
        self.tally.raw_bytes
    }

    /// Size of the object so far, without the trailer. For `zstd` and `lz4` the open chunk
    /// is not counted (its compressed size is unknown until it closes); at most
    /// `chunk_target_bytes` of raw content is open.
    pub fn stored_bytes(&self) -> u64 {
        (self.out.len() - self.head_start) as u64
    }

    /// Number of batches pushed so far.
    pub fn batches(&self) -> u64 {
        self.tally.batches
    }

    /// Last offset of the last batch pushed, if any: the next batch must start after it.
    pub fn last_offset(&self) -> Option<i64> {
        self.tally.last_offset
    }

    /// The header as it will be written (without aborted transactions added later).
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// Closes the last chunk, writes the trailer and returns the object. A segment without
    /// batches is an error: an empty object would claim a coverage it does not have.
    pub fn finish(mut self) -> Result<FinishedSegment, FormatError> {
        if self.poisoned {
            return Err(FormatError::Poisoned);
        }
        self.close_chunk()?;
        let trailer = self
            .tally
            .trailer(self.chunks)
            .ok_or(FormatError::EmptySegment)?;
        if self.header_changed {
            self.rewrite_head()?;
        }
        let mut json = serde_json::to_vec(&trailer).map_err(|e| FormatError::InvalidTrailer {
            reason: e.to_string(),
        })?;
        if json.len() > MAX_TRAILER_LEN {
            return Err(FormatError::InvalidTrailer {
                reason: format!("{} bytes, over the limit of {MAX_TRAILER_LEN}", json.len()),
            });
        }
        if let Some(cipher) = &self.cipher {
            let head_sha: [u8; 32] =
                Sha256::digest(&self.out[self.head_start..self.reserve]).into();
            let tag = cipher
                .seal_trailer(&head_sha, &mut json)
                .map_err(|source| FormatError::Crypto {
                    what: "writing the trailer".to_owned(),
                    source,
                })?;
            json.extend_from_slice(&tag);
        }
        let tail_start = self.out.len();
        self.out.push(KIND_TRAILER);
        self.out
            .extend_from_slice(&(json.len() as u32).to_be_bytes());
        self.out.extend_from_slice(&json);
        self.out.extend_from_slice(&END_MAGIC);
        self.sha.update(&self.out[tail_start..]);
        let sha256: [u8; 32] = self.sha.finalize().into();
        let bytes = Bytes::from(self.out).slice(self.head_start..);
        Ok(FinishedSegment {
            bytes,
            sha256,
            header: self.header,
            trailer,
            markers: self.tally.take_markers(),
        })
    }

    /// Writes the chunk header of the open chunk (compressing it first when needed) and
    /// hashes the chunk.
    fn close_chunk(&mut self) -> Result<(), FormatError> {
        if self.chunk_raw_len == 0 {
            return Ok(());
        }
        self.poisoned = true;
        if self.chunks + 1 >= MAX_BLOCKS - 1 {
            return Err(FormatError::InvalidOptions {
                reason: format!("a segment holds at most {} chunks", MAX_BLOCKS - 1),
            });
        }
        let raw_len = self.chunk_raw_len;
        let (mut stored_len, mut crc) = if self.header.compression == Compression::None {
            (raw_len, self.chunk_crc)
        } else {
            self.chunk_start = self.out.len();
            self.out.extend_from_slice(&[0; CHUNK_HEADER_LEN]);
            let n = self.encoder.compress_append(&self.scratch, &mut self.out)?;
            if n > self.header.compression.max_stored_len(raw_len) {
                return Err(FormatError::Compress {
                    compression: self.header.compression.as_str(),
                    message: format!("{n} bytes from {raw_len}, over the format's bound"),
                });
            }
            self.scratch.clear();
            (n, 0)
        };
        let data_at = self.chunk_start + CHUNK_HEADER_LEN;
        if let Some(cipher) = &self.cipher {
            let tag = cipher
                .seal_chunk(self.chunks, raw_len as u32, &mut self.out[data_at..])
                .map_err(|source| FormatError::Crypto {
                    what: format!("writing chunk {}", self.chunks),
                    source,
                })?;
            self.out.extend_from_slice(&tag);
            stored_len += TAG_LEN;
        }
        if self.cipher.is_some() || self.header.compression != Compression::None {
            crc = crc32c::crc32c(&self.out[data_at..]);
        }
        let at = self.chunk_start;
        self.out[at] = KIND_CHUNK;
        // Both lengths are ≤ 64 MiB + bound (checked above), so they fit in u32.
        self.out[at + 1..at + 5].copy_from_slice(&(raw_len as u32).to_be_bytes());
        self.out[at + 5..at + 9].copy_from_slice(&(stored_len as u32).to_be_bytes());
        self.out[at + 9..at + 13].copy_from_slice(&crc.to_be_bytes());
        self.sha.update(&self.out[at..]);
        self.chunks += 1;
        self.chunk_raw_len = 0;
        self.poisoned = false;
        Ok(())
    }

    /// Re-encodes the header with the aborted transactions learnt since [`Self::new`], puts it
    /// in front of the chunks (in the reserved gap when it fits, else by moving the chunks)
    /// and re-hashes the object.
    fn rewrite_head(&mut self) -> Result<(), FormatError> {
        self.header.aborted_transactions = self.aborted.iter().copied().collect();
        let head = encode_head(&self.header)?;
        if head.len() <= self.reserve {
            self.head_start = self.reserve - head.len();
            self.out[self.head_start..self.reserve].copy_from_slice(&head);
        } else {
            let mut out = Vec::with_capacity(head.len() + self.out.len() - self.reserve + 1024);
            out.extend_from_slice(&head);
            out.extend_from_slice(&self.out[self.reserve..]);
            self.out = out;
            self.reserve = head.len();
            self.head_start = 0;
        }
        self.sha = Sha256::new();
        self.sha.update(&self.out[self.head_start..]);
        Ok(())
    }
}

/// Preamble and header JSON.
fn encode_head(header: &SegmentHeader) -> Result<Vec<u8>, FormatError> {
    let json = serde_json::to_vec(header).map_err(|e| FormatError::InvalidHeader {
        reason: e.to_string(),
    })?;
    if json.len() > MAX_HEADER_LEN {
        return Err(FormatError::HeaderTooLarge {
            len: json.len() as u64,
            limit: MAX_HEADER_LEN as u64,
        });
    }
    let mut head = Vec::with_capacity(PREAMBLE_LEN + json.len());
    head.extend_from_slice(&MAGIC);
    head.extend_from_slice(&VERSION.to_be_bytes());
    let flags = if header.encryption.is_some() {
        FLAG_ENCRYPTED
    } else {
        0
    };
    head.extend_from_slice(&flags.to_be_bytes());
    head.extend_from_slice(&(json.len() as u32).to_be_bytes());
    head.extend_from_slice(&json);
    Ok(head)
}

/// The COMMIT or ABORT marker of a control batch: `Ok(None)` for other control types, which
/// decide nothing; `Err` for one that does not decode (the broker stored it, so the backup
/// keeps it, and its entry lists no markers: a restore then reads the segment to decide).
/// Control batches hold one small record, so decoding it costs little.
fn control_marker(batch: &[u8]) -> Result<Option<super::TxnMarker>, ()> {
    use kafka_records::control::{ControlKind, parse_control_batch};
    let decoded = kafka_records::record::decode_batch(
        &Bytes::copy_from_slice(batch),
        &kafka_records::compression::DecodeLimits::default(),
    )
    .map_err(|_| ())?;
    match parse_control_batch(&decoded) {
        Ok(marker) => Ok(Some(super::TxnMarker {
            offset: marker.offset,
            producer_id: marker.producer_id,
            commit: marker.kind == ControlKind::Commit,
        })),
        Err(kafka_records::RecordError::UnknownControlType { .. }) => Ok(None),
        Err(_) => Err(()),
    }
}

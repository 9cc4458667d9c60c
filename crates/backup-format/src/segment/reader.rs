//! Reading a segment object held in memory, as untrusted bytes.
//!
//! Every length is checked against its limit before it is used, and against the bytes
//! present before anything is sliced, so corrupt or hostile input yields a [`FormatError`],
//! never a panic, and memory stays bounded: at most one decompressed chunk (≤ the raw_len
//! limit) is held by the reader at a time. Batches of uncompressed chunks are zero-copy
//! slices of the object.

use bytes::{Bytes, BytesMut};
use kafka_records::{BatchHeader, batch};
use sha2::{Digest, Sha256};

use super::codec::Decoder;
use super::tally::{self, Tally};
use super::{
    CHUNK_HEADER_LEN, Compression, END_MAGIC, FLAG_ENCRYPTED, KIND_CHUNK, KIND_TRAILER, MAGIC,
    MAX_CHUNK_RAW_LEN, MAX_HEADER_LEN, MAX_TRAILER_LEN, PREAMBLE_LEN, SegmentHeader,
    SegmentTrailer, TRAILER_HEADER_LEN, VERSION,
};
use crate::FormatError;
use crate::crypto::stream::SegmentCipher;
use crate::crypto::{DataKey, TAG_LEN};

/// Limits a reader applies on top of the format's own. Values above the format's limits are
/// clamped to them; lower values make a reader (a fuzzer, a memory-tight restore) stricter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Largest header accepted.
    pub max_header_len: usize,
    /// Largest raw (decompressed) chunk accepted: the reader's memory per chunk.
    pub max_chunk_raw_len: usize,
    /// Largest total raw content [`read_all`] keeps: a few KiB of hostile zstd can claim
    /// 64 MiB per chunk, so a whole-object read needs a total bound too.
    pub max_total_raw_bytes: u64,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        Self {
            max_header_len: MAX_HEADER_LEN,
            max_chunk_raw_len: MAX_CHUNK_RAW_LEN,
            max_total_raw_bytes: 4 << 30,
        }
    }
}

/// A whole segment, read and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The header.
    pub header: SegmentHeader,
    /// The record batches, in offset order, exactly as stored.
    pub batches: Vec<Bytes>,
    /// The trailer, verified against the batches.
    pub trailer: SegmentTrailer,
}

/// Reads and verifies a whole segment with the default limits.
pub fn read_all(bytes: Bytes) -> Result<Segment, FormatError> {
    read_all_with(bytes, ReaderLimits::default())
}

/// Reads and verifies a whole segment. Nothing is returned unless all of it (every chunk
/// CRC, every batch CRC, offsets, trailer, end magic) checked out.
pub fn read_all_with(bytes: Bytes, limits: ReaderLimits) -> Result<Segment, FormatError> {
    read_all_from(SegmentReader::new(bytes, limits.clone())?, limits)
}

/// [`read_all_with`] for a segment that may be encrypted under `data_key` (one in the clear
/// is read as it is).
pub fn read_all_with_key(
    bytes: Bytes,
    limits: ReaderLimits,
    data_key: &DataKey,
) -> Result<Segment, FormatError> {
    read_all_from(
        SegmentReader::with_key(bytes, limits.clone(), data_key)?,
        limits,
    )
}

fn read_all_from(mut reader: SegmentReader, limits: ReaderLimits) -> Result<Segment, FormatError> {
    let max_total = limits.max_total_raw_bytes;
    let mut batches = Vec::new();
    let mut total = 0u64;
    while let Some((_, batch)) = reader.next_batch()? {
        total += batch.len() as u64;
        if total > max_total {
            return Err(FormatError::TotalTooLarge { limit: max_total });
        }
        batches.push(batch);
    }
    let trailer = reader.trailer.take().ok_or(FormatError::EmptySegment)?;
    Ok(Segment {
        header: reader.header,
        batches,
        trailer,
    })
}

/// Parses the preamble and header from the start of an object, for example from a ranged
/// GET of its first bytes. When `bytes` is too short, the error is
/// [`FormatError::Truncated`]: fetch at least `at + need` bytes and try again.
pub fn peek_header(bytes: &[u8]) -> Result<SegmentHeader, FormatError> {
    parse_head(bytes, MAX_HEADER_LEN).map(|(header, _)| header)
}

/// Streams the batches of a segment held in memory.
///
/// Each batch is verified (CRC, length, offset order) before it is returned, but the object
/// as a whole (trailer totals, end magic, no trailing bytes) only once
/// [`SegmentReader::next_batch`] has returned `Ok(None)`: a caller that must not act on a
/// damaged object should read it to the end first (or use [`read_all`]).
pub struct SegmentReader {
    bytes: Bytes,
    limits: ReaderLimits,
    header: SegmentHeader,
    /// Position of the next block in `bytes`.
    pos: usize,
    /// Raw content of the current chunk, and the position of its next batch.
    chunk: Bytes,
    chunk_pos: usize,
    /// Index of the current chunk.
    chunk_index: u64,
    chunks: u64,
    decoder: Decoder,
    tally: Tally,
    trailer: Option<SegmentTrailer>,
    /// An error was returned or the end was reached: iteration is over.
    done: bool,
    /// The cipher, for an encrypted segment.
    cipher: Option<SegmentCipher>,
    /// Encrypted segments: the part of the object not read yet, owned, so that each chunk is
    /// decrypted in place and handed out without a copy (a fresh copy per chunk cost more
    /// than the decryption itself). `bytes` then holds only what the generic code still
    /// reads (the trailer), starting at object position `base`.
    rest: Option<BytesMut>,
    /// Object position of `bytes[0]`.
    base: usize,
    /// SHA-256 of preamble and header, which the encrypted trailer authenticates.
    head_sha256: [u8; 32],
    /// Encrypted chunks already checked and decrypted by
    /// [`SegmentReader::authenticate_chunks`], not yet read: content, raw length, index and
    /// object position of each.
    opened: std::collections::VecDeque<(Bytes, usize, u64, usize)>,
}

impl SegmentReader {
    /// Parses and validates the preamble and header of a segment in the clear; chunks are
    /// read by [`SegmentReader::next_batch`]. An encrypted segment is
    /// [`FormatError::Encrypted`]: read its wrapped key with [`peek_header`], unwrap it, and
    /// use [`SegmentReader::with_key`].
    pub fn new(bytes: Bytes, limits: ReaderLimits) -> Result<Self, FormatError> {
        let reader = Self::open(bytes, limits, None)?;
        if let Some(e) = &reader.header.encryption {
            return Err(FormatError::Encrypted {
                provider: e.key.provider.to_string(),
                key_ids: e.key.key_ids.clone(),
            });
        }
        Ok(reader)
    }

    /// Like [`SegmentReader::new`], decrypting with `data_key` when the segment is encrypted
    /// (a segment in the clear is read as it is: whether encryption is required is the
    /// caller's policy, visible in [`SegmentReader::header`]).
    pub fn with_key(
        bytes: Bytes,
        limits: ReaderLimits,
        data_key: &DataKey,
    ) -> Result<Self, FormatError> {
        Self::open(bytes, limits, Some(data_key))
    }

    fn open(
        bytes: Bytes,
        limits: ReaderLimits,
        data_key: Option<&DataKey>,
    ) -> Result<Self, FormatError> {
        let limits = ReaderLimits {
            max_header_len: limits.max_header_len.min(MAX_HEADER_LEN),
            max_chunk_raw_len: limits.max_chunk_raw_len.min(MAX_CHUNK_RAW_LEN),
            max_total_raw_bytes: limits.max_total_raw_bytes,
        };
        let (header, pos) = parse_head(&bytes, limits.max_header_len)?;
        let cipher = match (&header.encryption, data_key) {
            (Some(e), Some(key)) => Some(SegmentCipher::new(key, &e.salt, &header.identity())),
            _ => None,
        };
        let head_sha256 = Sha256::digest(&bytes[..pos]).into();
        let (bytes, rest, base) = if cipher.is_some() {
            // Owned without a copy when the caller handed over the only reference.
            let mut owned = bytes
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
            let rest = owned.split_off(pos);
            (Bytes::new(), Some(rest), pos)
        } else {
            (bytes, None, 0)
        };
        Ok(Self {
            rest,
            base,
            bytes,
            limits,
            header,
            pos,
            chunk: Bytes::new(),
            chunk_pos: 0,
            chunk_index: 0,
            chunks: 0,
            decoder: Decoder::default(),
            tally: Tally::default(),
            trailer: None,
            done: false,
            cipher,
            head_sha256,
            opened: std::collections::VecDeque::new(),
        })
    }

    /// Encrypted segments: checks and decrypts every chunk now (in place, as reading them
    /// would, so nothing is done twice), so that a caller learns of a forged or damaged chunk
    /// before it acts on the first batch. Chunks are still decompressed one at a time as they
    /// are read. Does nothing for a segment in the clear, whose bytes only the SHA-256 in its
    /// name can vouch for anyway.
    pub fn authenticate_chunks(&mut self) -> Result<(), FormatError> {
        while self
            .rest
            .as_ref()
            .is_some_and(|rest| rest.first() == Some(&KIND_CHUNK))
        {
            let opened = self.open_owned_chunk();
            match opened {
                Ok(chunk) => self.opened.push_back(chunk),
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The segment's header.
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// The trailer, once the whole object has been read and verified.
    pub fn trailer(&self) -> Option<&SegmentTrailer> {
        self.trailer.as_ref()
    }

    /// The next batch with its parsed header, or `None` at the verified end. After an error,
    /// or after the end, returns `Ok(None)`.
    pub fn next_batch(&mut self) -> Result<Option<(BatchHeader, Bytes)>, FormatError> {
        if self.done {
            return Ok(None);
        }
        let result = self.step();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    fn step(&mut self) -> Result<Option<(BatchHeader, Bytes)>, FormatError> {
        while self.chunk_pos >= self.chunk.len() {
            if !self.next_chunk()? {
                return Ok(None);
            }
        }
        let rest = &self.chunk[self.chunk_pos..];
        let invalid = |source| FormatError::InvalidBatch {
            chunk: self.chunk_index,
            offset_in_chunk: self.chunk_pos as u64,
            source,
        };
        let parsed = BatchHeader::parse(rest).map_err(invalid)?;
        if parsed.total_len > rest.len() {
            return Err(invalid(kafka_records::BatchError::Truncated {
                have: rest.len(),
                need: parsed.total_len,
            }));
        }
        let bytes = self
            .chunk
            .slice(self.chunk_pos..self.chunk_pos + parsed.total_len);
        let h = batch::verify(&bytes).map_err(invalid)?;
        let last = self.tally.check(&h, self.header.start_offset)?;
        self.tally.add(&h, last, bytes.len());
        self.chunk_pos += bytes.len();
        Ok(Some((h, bytes)))
    }

    /// Bytes `at..at + len`, or `Truncated`.
    fn need(&self, at: usize, len: usize) -> Result<&[u8], FormatError> {
        match at.checked_sub(self.base) {
            Some(relative) => take(&self.bytes, relative, len).map_err(|e| match e {
                FormatError::Truncated { need, have, .. } => FormatError::Truncated {
                    at: at as u64,
                    need,
                    have,
                },
                other => other,
            }),
            None => Err(FormatError::Truncated {
                at: at as u64,
                need: len as u64,
                have: 0,
            }),
        }
    }

    /// Reads the next block: loads a chunk and returns true, or reads and verifies the
    /// trailer and returns false.
    fn next_chunk(&mut self) -> Result<bool, FormatError> {
        let at = self.pos;
        if let Some(rest) = &self.rest {
            if !self.opened.is_empty() || rest.first() == Some(&KIND_CHUNK) {
                return self.next_owned_chunk();
            }
            // The trailer (or whatever else follows): read by the generic code below.
            self.bytes = self.rest.take().map(BytesMut::freeze).unwrap_or_default();
            self.base = at;
        }
        let kind = self.need(at, 1)?[0];
        match kind {
            KIND_CHUNK => {}
            KIND_TRAILER => {
                self.read_trailer(at)?;
                return Ok(false);
            }
            _ => {
                return Err(FormatError::UnknownBlockKind {
                    kind,
                    at: at as u64,
                });
            }
        }
        let index = self.chunks;
        let head = self.need(at, CHUNK_HEADER_LEN)?;
        let raw_len = be_u32(&head[1..5]) as usize;
        let stored_len = be_u32(&head[5..9]) as usize;
        let stored_crc = be_u32(&head[9..13]);
        let compression = self.header.compression;
        self.check_chunk_header(index, at, raw_len, stored_len)?;
        let data_at = at + CHUNK_HEADER_LEN;
        let stored = self.need(data_at, stored_len)?;
        let computed = crc32c::crc32c(stored);
        if computed != stored_crc {
            return Err(FormatError::ChunkCrcMismatch {
                chunk: index,
                offset_in_object: at as u64,
                stored: stored_crc,
                computed,
            });
        }
        self.chunk = match &self.cipher {
            None if compression == Compression::None => {
                let from = data_at - self.base;
                self.bytes.slice(from..from + stored_len)
            }
            None => {
                let from = data_at - self.base;
                let stored = &self.bytes[from..from + stored_len];
                Bytes::from(self.decoder.decompress(
                    compression,
                    stored,
                    raw_len,
                    index,
                    at as u64,
                )?)
            }
            Some(_) => {
                return Err(FormatError::InvalidChunk {
                    chunk: index,
                    at: at as u64,
                    reason: "an encrypted chunk outside the owned reading path",
                });
            }
        };
        self.chunk_pos = 0;
        self.chunk_index = index;
        self.chunks += 1;
        self.pos = data_at + stored_len;
        Ok(true)
    }

    /// The next chunk of an encrypted segment: one [`SegmentReader::authenticate_chunks`]
    /// opened, or the next from the owned rest of the object; decompressed when needed.
    fn next_owned_chunk(&mut self) -> Result<bool, FormatError> {
        let (block, raw_len, index, at) = match self.opened.pop_front() {
            Some(opened) => opened,
            None => self.open_owned_chunk()?,
        };
        let compression = self.header.compression;
        self.chunk = if compression == Compression::None {
            block
        } else {
            Bytes::from(
                self.decoder
                    .decompress(compression, &block, raw_len, index, at as u64)?,
            )
        };
        self.chunk_pos = 0;
        self.chunk_index = index;
        Ok(true)
    }

    /// Takes the next chunk of an encrypted segment from the owned rest of the object:
    /// checked (lengths, CRC32C of the ciphertext), decrypted in place, and handed out
    /// without a copy, with its raw length, index and object position.
    fn open_owned_chunk(&mut self) -> Result<(Bytes, usize, u64, usize), FormatError> {
        let at = self.pos;
        let index = self.chunks;
        let have = self.rest.as_ref().map_or(0, BytesMut::len);
        if have < CHUNK_HEADER_LEN {
            return Err(FormatError::Truncated {
                at: at as u64,
                need: CHUNK_HEADER_LEN as u64,
                have: have as u64,
            });
        }
        let (raw_len, stored_len, stored_crc) = {
            let head = &self.rest.as_ref().expect("checked above")[..CHUNK_HEADER_LEN];
            (
                be_u32(&head[1..5]) as usize,
                be_u32(&head[5..9]) as usize,
                be_u32(&head[9..13]),
            )
        };
        self.check_chunk_header(index, at, raw_len, stored_len)?;
        if have - CHUNK_HEADER_LEN < stored_len {
            return Err(FormatError::Truncated {
                at: (at + CHUNK_HEADER_LEN) as u64,
                need: stored_len as u64,
                have: (have - CHUNK_HEADER_LEN) as u64,
            });
        }
        let mut piece = self
            .rest
            .as_mut()
            .expect("checked above")
            .split_to(CHUNK_HEADER_LEN + stored_len);
        let computed = crc32c::crc32c(&piece[CHUNK_HEADER_LEN..]);
        if computed != stored_crc {
            return Err(FormatError::ChunkCrcMismatch {
                chunk: index,
                offset_in_object: at as u64,
                stored: stored_crc,
                computed,
            });
        }
        let cipher = self.cipher.as_ref().ok_or(FormatError::InvalidChunk {
            chunk: index,
            at: at as u64,
            reason: "an encrypted chunk without a key",
        })?;
        let plain_len = cipher
            .open_chunk(index, raw_len as u32, &mut piece[CHUNK_HEADER_LEN..])
            .map_err(|source| FormatError::Crypto {
                what: format!("at byte {at}"),
                source,
            })?
            .len();
        let block = piece
            .freeze()
            .slice(CHUNK_HEADER_LEN..CHUNK_HEADER_LEN + plain_len);
        self.chunks += 1;
        self.pos = at + CHUNK_HEADER_LEN + stored_len;
        Ok((block, raw_len, index, at))
    }

    /// The checks of a chunk header before its content is touched: lengths within the
    /// format's and the reader's limits.
    fn check_chunk_header(
        &self,
        index: u64,
        at: usize,
        raw_len: usize,
        stored_len: usize,
    ) -> Result<(), FormatError> {
        let compression = self.header.compression;
        let too_large = |field, len: usize, limit: usize| FormatError::ChunkTooLarge {
            chunk: index,
            at: at as u64,
            field,
            len: len as u64,
            limit: limit as u64,
        };
        if raw_len > self.limits.max_chunk_raw_len {
            return Err(too_large("raw_len", raw_len, self.limits.max_chunk_raw_len));
        }
        if raw_len == 0 {
            return Err(FormatError::InvalidChunk {
                chunk: index,
                at: at as u64,
                reason: "empty chunk",
            });
        }
        let tag = if self.cipher.is_some() { TAG_LEN } else { 0 };
        let bound = compression.max_stored_len(raw_len) + tag;
        if stored_len > bound {
            return Err(too_large("stored_len", stored_len, bound));
        }
        if compression == Compression::None && stored_len != raw_len + tag {
            return Err(FormatError::InvalidChunk {
                chunk: index,
                at: at as u64,
                reason: "stored_len differs from raw_len in an uncompressed chunk",
            });
        }
        if stored_len < tag {
            return Err(FormatError::InvalidChunk {
                chunk: index,
                at: at as u64,
                reason: "an encrypted chunk shorter than its authentication tag",
            });
        }
        Ok(())
    }

    /// Reads the trailer at `at`, checks it against the totals and checks the end.
    fn read_trailer(&mut self, at: usize) -> Result<(), FormatError> {
        let head = self.need(at, TRAILER_HEADER_LEN)?;
        let len = be_u32(&head[1..5]) as usize;
        let limit = MAX_TRAILER_LEN + if self.cipher.is_some() { TAG_LEN } else { 0 };
        if len > limit {
            return Err(FormatError::InvalidTrailer {
                reason: format!("{len} bytes at byte {at}, over the limit of {limit}"),
            });
        }
        let json_at = at + TRAILER_HEADER_LEN;
        // The trailer JSON and the end magic in one check, so a cut anywhere in them reports
        // the full need.
        let tail = self.need(json_at, len + END_MAGIC.len())?;
        let (json, end) = tail.split_at(len);
        if end != END_MAGIC {
            return Err(FormatError::BadMagic {
                which: "end",
                at: (json_at + len) as u64,
            });
        }
        let mut opened;
        let json = match &self.cipher {
            None => json,
            Some(cipher) => {
                opened = json.to_vec();
                &*cipher
                    .open_trailer(&self.head_sha256, &mut opened)
                    .map_err(|source| FormatError::Crypto {
                        what: format!("at byte {at}"),
                        source,
                    })?
            }
        };
        let stored: SegmentTrailer =
            serde_json::from_slice(json).map_err(|e| FormatError::InvalidTrailer {
                reason: e.to_string(),
            })?;
        let end_at = json_at + len + END_MAGIC.len();
        let object_end = self.base + self.bytes.len();
        if end_at < object_end {
            return Err(FormatError::TrailingBytes {
                at: end_at as u64,
                count: (object_end - end_at) as u64,
            });
        }
        let read = self
            .tally
            .trailer(self.chunks)
            .ok_or(FormatError::EmptySegment)?;
        tally::compare(&stored, &read)?;
        self.pos = end_at;
        self.trailer = Some(stored);
        Ok(())
    }
}

impl Iterator for SegmentReader {
    type Item = Result<Bytes, FormatError>;

    /// The next batch; `None` at the verified end or after the first error.
    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch()
            .map(|b| b.map(|(_, bytes)| bytes))
            .transpose()
    }
}

impl std::iter::FusedIterator for SegmentReader {}

/// Reads a segment's trailer from the object's tail, without reading its chunks: `head` holds
/// at least the preamble and header (e.g. the first bytes of the object, or all of it), `tail`
/// at least the trailer block and end magic (e.g. the last
/// `MAX_TRAILER_LEN + TRAILER_HEADER_LEN + 8 + 16` bytes, or all of it). An encrypted trailer
/// is decrypted (and so authenticated) with `data_key`; without one it is
/// [`FormatError::Encrypted`]. The totals are not checked against the chunks: for a verified
/// trailer, read the whole segment.
pub fn read_trailer(
    head: &[u8],
    tail: &[u8],
    data_key: Option<&DataKey>,
) -> Result<(SegmentHeader, SegmentTrailer), FormatError> {
    let (header, head_len) = parse_head(head, MAX_HEADER_LEN)?;
    let cipher = match (&header.encryption, data_key) {
        (Some(e), Some(key)) => Some(SegmentCipher::new(key, &e.salt, &header.identity())),
        (Some(e), None) => {
            return Err(FormatError::Encrypted {
                provider: e.key.provider.to_string(),
                key_ids: e.key.key_ids.clone(),
            });
        }
        (None, _) => None,
    };
    let head_sha256: [u8; 32] = Sha256::digest(&head[..head_len]).into();
    let json_end = tail
        .len()
        .checked_sub(END_MAGIC.len())
        .ok_or(FormatError::Truncated {
            at: 0,
            need: END_MAGIC.len() as u64,
            have: tail.len() as u64,
        })?;
    if tail[json_end..] != END_MAGIC {
        return Err(FormatError::BadMagic {
            which: "end",
            at: json_end as u64,
        });
    }
    let tag = if cipher.is_some() { TAG_LEN } else { 0 };
    // The trailer block is `0xFF, u32 length, body` right before the end magic. Scanning back
    // for a kind byte whose length reaches exactly to the magic finds it; a clear body is
    // JSON (never 0xFF), and a false candidate inside ciphertext fails to decrypt.
    let lowest = json_end.saturating_sub(MAX_TRAILER_LEN + tag + TRAILER_HEADER_LEN);
    let highest = json_end
        .checked_sub(TRAILER_HEADER_LEN)
        .ok_or(FormatError::Truncated {
            at: 0,
            need: (TRAILER_HEADER_LEN + END_MAGIC.len()) as u64,
            have: tail.len() as u64,
        })?;
    let mut last_error = FormatError::InvalidTrailer {
        reason: "no trailer block before the end magic".to_owned(),
    };
    for at in (lowest..=highest).rev() {
        if tail[at] != KIND_TRAILER {
            continue;
        }
        let len = be_u32(&tail[at + 1..at + 5]) as usize;
        if at + TRAILER_HEADER_LEN + len != json_end {
            continue;
        }
        let body = &tail[at + TRAILER_HEADER_LEN..json_end];
        let mut opened;
        let json = match &cipher {
            None => body,
            Some(c) => {
                opened = body.to_vec();
                match c.open_trailer(&head_sha256, &mut opened) {
                    Ok(plain) => &*plain,
                    Err(source) => {
                        last_error = FormatError::Crypto {
                            what: "the trailer, read from the object's tail".to_owned(),
                            source,
                        };
                        continue;
                    }
                }
            }
        };
        match serde_json::from_slice::<SegmentTrailer>(json) {
            Ok(t) => return Ok((header, t)),
            Err(e) => {
                last_error = FormatError::InvalidTrailer {
                    reason: e.to_string(),
                }
            }
        }
    }
    Err(last_error)
}

/// Parses the preamble and header; returns the header and the position after it.
fn parse_head(bytes: &[u8], max_header_len: usize) -> Result<(SegmentHeader, usize), FormatError> {
    // The magic is checked on whatever is present, so a short non-segment is BadMagic rather
    // than Truncated.
    let present = bytes.len().min(MAGIC.len());
    if bytes[..present] != MAGIC[..present] {
        return Err(FormatError::BadMagic {
            which: "preamble",
            at: 0,
        });
    }
    let pre = take(bytes, 0, PREAMBLE_LEN)?;
    let version = u16::from_be_bytes([pre[8], pre[9]]);
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion {
            what: "segment",
            found: u64::from(version),
            supported: u64::from(VERSION),
        });
    }
    let flags = u16::from_be_bytes([pre[10], pre[11]]);
    if flags & !FLAG_ENCRYPTED != 0 {
        return Err(FormatError::UnknownFlags { flags });
    }
    let header_len = be_u32(&pre[12..16]) as usize;
    if header_len > max_header_len {
        return Err(FormatError::HeaderTooLarge {
            len: header_len as u64,
            limit: max_header_len as u64,
        });
    }
    let json = take(bytes, PREAMBLE_LEN, header_len)?;
    let header: SegmentHeader =
        serde_json::from_slice(json).map_err(|e| FormatError::InvalidHeader {
            reason: e.to_string(),
        })?;
    header.validate()?;
    if (flags & FLAG_ENCRYPTED != 0) != header.encryption.is_some() {
        return Err(FormatError::InvalidHeader {
            reason: "the preamble's encryption flag and the header's `encryption` disagree"
                .to_owned(),
        });
    }
    Ok((header, PREAMBLE_LEN + header_len))
}

/// `bytes[at..at + len]`, or `Truncated` (never a panic, whatever `at` and `len` are).
fn take(bytes: &[u8], at: usize, len: usize) -> Result<&[u8], FormatError> {
    let have = bytes.len().saturating_sub(at);
    if have < len {
        return Err(FormatError::Truncated {
            at: at as u64,
            need: len as u64,
            have: have as u64,
        });
    }
    Ok(&bytes[at..at + len])
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

//! Compression of a record batch's records section, as Kafka's clients and brokers do it, with
//! a hard bound on decompressed output.
//!
//! Decompression never trusts the input: output is produced in chunks and capped at
//! [`DecodeLimits::max_decompressed_bytes`], so a decompression bomb (a few kilobytes that
//! expand to gigabytes) is an error instead of an out-of-memory abort. Lengths declared inside
//! the data (snappy's uncompressed length, snappy-java block lengths) are checked against the
//! limit and the bytes present before anything is allocated.
//!
//! Formats (what Kafka writes and reads for magic v2 batches):
//! - gzip: RFC 1952 members; several concatenated members are read like Java's
//!   `GZIPInputStream` does.
//! - snappy: Kafka's Java clients write snappy-java ("xerial") framing: the magic
//!   `\x82SNAPPY\0`, a version and a compatible version (big-endian i32, both 1), then blocks of
//!   `[u32 big-endian length][raw snappy block]` of 32 KiB input each. librdkafka writes one raw
//!   snappy block without framing (checked on the wire in `tests/librdkafka_batches.rs`).
//!   librdkafka and snappy-java (Kafka's Java clients and brokers) read both: they detect the
//!   framing by its magic and otherwise take the data as one raw block. [`decompress`] does the
//!   same. [`compress`] writes one raw block, as librdkafka does: every Kafka reader accepts
//!   it, while some brokers mishandle multi-block snappy-java framing (nisshi, the test broker,
//!   reads only the first block).
//! - lz4: the LZ4 *frame* format (magic `0x184D2204`). Kafka's Java reader rejects frames with
//!   dependent blocks, so [`compress`] writes independent 64 KiB blocks without checksums, the
//!   same frame layout as Kafka's own `Lz4BlockOutputStream`.
//! - zstd: standard zstd frames (several concatenated frames are read).

use std::fmt;
use std::io::{self, Read, Write};

/// Default bound on a batch's decompressed records section: 256 MiB. Kafka's default maximum
/// batch size is 1 MiB compressed; even highly compressible batches stay far below this.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

/// The snappy-java stream header magic that prefixes xerial-framed snappy data.
pub const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic (8) + version (4) + compatible version (4).
const XERIAL_HEADER_LEN: usize = 16;
/// snappy-java's default block size, which Kafka's Java producer uses.
#[cfg(test)]
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;
/// Output is produced this many bytes at a time, so it never overshoots the limit by more.
const CHUNK: usize = 64 * 1024;

/// A batch's compression codec: attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (0).
    #[default]
    None,
    /// gzip (1).
    Gzip,
    /// snappy (2).
    Snappy,
    /// LZ4 frame format (3).
    Lz4,
    /// zstd (4), Kafka 2.1+.
    Zstd,
}

impl Compression {
    /// All codecs, for tests and option parsing.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec named by a batch's attribute bits 0-2; `Err(id)` for ids 5-7, which no Kafka
    /// version defines.
    pub fn from_attributes(attributes: i16) -> Result<Self, u8> {
        match (attributes & 0x07) as u8 {
            0 => Ok(Self::None),
            1 => Ok(Self::Gzip),
            2 => Ok(Self::Snappy),
            3 => Ok(Self::Lz4),
            4 => Ok(Self::Zstd),
            other => Err(other),
        }
    }

    /// The codec's id in the attribute bits.
    pub fn id(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }

    /// The name Kafka's `compression.type` uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Default bound on the records of one batch; see [`DecodeLimits::max_records`].
pub const DEFAULT_MAX_RECORDS: usize = 1_000_000;
/// Default bound on the headers of one batch; see [`DecodeLimits::max_headers`].
pub const DEFAULT_MAX_HEADERS: usize = 1_000_000;

/// Bounds applied while decoding untrusted batches.
///
/// Peak memory of one [`decode_batch`](crate::decode_batch) is about
/// `max_decompressed_bytes` + `max_records` × 110 bytes (a `Record` and its raw timestamp) +
/// `max_headers` × 64 bytes (a `Header`): with the defaults, about 430 MiB for the most
/// hostile batch. The record and header bounds matter because a record takes 7 bytes on the
/// wire but about 100 in memory, and a header 2 bytes but 64, so a well-compressed batch of
/// empty records could otherwise turn 256 MiB into gigabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest decompressed records section accepted, in bytes. Larger output is a
    /// [`CompressionError::TooLarge`] error, and no more than this is ever allocated for it.
    pub max_decompressed_bytes: usize,
    /// Most records accepted in one batch (the header's record count is checked before
    /// anything is allocated for the records).
    pub max_records: usize,
    /// Most headers accepted in one batch, summed over its records.
    pub max_headers: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            max_records: DEFAULT_MAX_RECORDS,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

/// Why data could not be (de)compressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// The compressed data is malformed.
    #[error("{codec} data is corrupt: {detail}")]
    Corrupt {
        /// Codec.
        codec: Compression,
        /// The decoder's message.
        detail: String,
    },
    /// The data expands past [`DecodeLimits::max_decompressed_bytes`].
    #[error(
        "{codec} data expands past the {limit}-byte limit (a decompression bomb, or \
         max_decompressed_bytes set too low for this data)"
    )]
    TooLarge {
        /// Codec.
        codec: Compression,
        /// The limit in force.
        limit: usize,
    },
    /// Memory for the output could not be allocated.
    #[error("cannot allocate {bytes} bytes for decompressed {codec} data")]
    OutOfMemory {
        /// Codec.
        codec: Compression,
        /// The size requested.
        bytes: usize,
    },
    /// Compression failed (an invalid level, for instance).
    #[error("{codec} compression failed: {detail}")]
    Compress {
        /// Codec.
        codec: Compression,
        /// Why.
        detail: String,
    },
}

/// Decompresses a records section compressed with `codec`, producing at most
/// `limits.max_decompressed_bytes` bytes. `Compression::None` returns a copy (still bounded).
pub fn decompress(
    codec: Compression,
    input: &[u8],
    limits: &DecodeLimits,
) -> Result<Vec<u8>, CompressionError> {
    let limit = limits.max_decompressed_bytes;
    // A guess for the first allocation; growth is bounded by the limit either way.
    let hint = input.len().saturating_mul(4);
    match codec {
        Compression::None => read_bounded(codec, input, limit, input.len()),
        Compression::Gzip => {
            read_bounded(codec, flate2::read::MultiGzDecoder::new(input), limit, hint)
        }
        Compression::Snappy => snappy_decompress(input, limit),
        Compression::Lz4 => read_bounded(
            codec,
            lz4_flex::frame::FrameDecoder::new(input),
            limit,
            hint,
        ),
        Compression::Zstd => {
            // zstd's default window limit (2^27 = 128 MiB, ZSTD_WINDOWLOG_LIMIT_DEFAULT) stays in
            // force: frames that ask for a larger window are rejected, which bounds the
            // decoder's own memory. Kafka's clients never need more.
            let decoder =
                zstd::stream::read::Decoder::with_buffer(input).map_err(|e| corrupt(codec, &e))?;
            read_bounded(codec, decoder, limit, hint)
        }
    }
}

/// Compresses a records section the way Kafka's producers do, so that brokers, the Java
/// consumer and librdkafka all accept it (see the module documentation for each format).
///
/// `level` is the codec's level, `None` for Kafka's defaults (gzip 6, zstd 3). gzip takes 0-9
/// and zstd its own range (1-22, or negative for fast modes). snappy has no levels, and
/// lz4_flex has one (fast) level; for those `level` is ignored: levels only trade size for
/// speed, every level decodes the same way.
pub fn compress(
    codec: Compression,
    level: Option<i32>,
    raw: &[u8],
) -> Result<Vec<u8>, CompressionError> {
    let fail = |e: &dyn fmt::Display| CompressionError::Compress {
        codec,
        detail: e.to_string(),
    };
    match codec {
        Compression::None => Ok(raw.to_vec()),
        Compression::Gzip => {
            let level = match level {
                None => 6,
                Some(l @ 0..=9) => l as u32,
                Some(other) => {
                    return Err(fail(&format!("gzip level {other} is outside 0-9")));
                }
            };
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            encoder.write_all(raw).map_err(|e| fail(&e))?;
            encoder.finish().map_err(|e| fail(&e))
        }
        Compression::Snappy => snap::raw::Encoder::new()
            .compress_vec(raw)
            .map_err(|e| fail(&e)),
        Compression::Lz4 => {
            use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
            let info = FrameInfo::new()
                .block_size(BlockSize::Max64KB)
                .block_mode(BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false);
            let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
            encoder.write_all(raw).map_err(|e| fail(&e))?;
            encoder.finish().map_err(|e| fail(&e))
        }
        Compression::Zstd => zstd::bulk::compress(raw, level.unwrap_or(3)).map_err(|e| fail(&e)),
    }
}

fn corrupt(codec: Compression, e: &dyn fmt::Display) -> CompressionError {
    CompressionError::Corrupt {
        codec,
        detail: e.to_string(),
    }
}

/// Grows `out` so that `extra` more bytes fit, at most doubling and never past `limit`: the
/// allocation stays within the limit, and a failed allocation is an error, not an abort.
fn reserve(
    codec: Compression,
    out: &mut Vec<u8>,
    extra: usize,
    limit: usize,
) -> Result<(), CompressionError> {
    let needed = out.len().saturating_add(extra);
    if needed > limit {
        return Err(CompressionError::TooLarge { codec, limit });
    }
    if needed > out.capacity() {
        let target = out.capacity().saturating_mul(2).max(needed).min(limit);
        out.try_reserve_exact(target - out.len())
            .map_err(|_| CompressionError::OutOfMemory {
                codec,
                bytes: target,
            })?;
    }
    Ok(())
}

/// Reads a decoder to its end, keeping at most `limit` bytes.
fn read_bounded(
    codec: Compression,
    mut reader: impl Read,
    limit: usize,
    hint: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    reserve(codec, &mut out, hint.min(limit), limit)?;
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(codec, &e)),
        };
        reserve(codec, &mut out, n, limit)?;
        out.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

fn snappy_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    let mut decoder = snap::raw::Decoder::new();
    let mut out = Vec::new();
    if !is_xerial(input) {
        // librdkafka's producer: one raw snappy block.
        raw_snappy_block(&mut decoder, input, &mut out, limit)?;
        return Ok(out);
    }
    let mut pos = XERIAL_HEADER_LEN;
    while pos < input.len() {
        let rest = input.get(pos..).unwrap_or_default();
        // snappy-java reads a concatenated stream's header where a block length would be.
        if is_xerial(rest) {
            pos += XERIAL_HEADER_LEN;
            continue;
        }
        let len_bytes: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt(codec, &"snappy-java block length is truncated"))?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let block = rest.get(4..).and_then(|r| r.get(..len)).ok_or_else(|| {
            corrupt(
                codec,
                &format!(
                    "snappy-java block of {len} bytes, but only {} are left",
                    rest.len() - 4
                ),
            )
        })?;
        raw_snappy_block(&mut decoder, block, &mut out, limit)?;
        pos += 4 + len;
    }
    Ok(out)
}

fn is_xerial(data: &[u8]) -> bool {
    data.len() >= XERIAL_HEADER_LEN && data.starts_with(&XERIAL_MAGIC)
}

/// Decompresses one raw snappy block onto the end of `out`, after checking its declared
/// uncompressed length against the limit.
fn raw_snappy_block(
    decoder: &mut snap::raw::Decoder,
    block: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), CompressionError> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, &e))?;
    reserve(codec, out, len, limit)?;
    let start = out.len();
    out.resize(start + len, 0);
    let written = decoder
        .decompress(block, out.get_mut(start..).unwrap_or_default())
        .map_err(|e| corrupt(codec, &e))?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(n: usize) -> DecodeLimits {
        DecodeLimits {
            max_decompressed_bytes: n,
            ..DecodeLimits::default()
        }
    }

    fn sample() -> Vec<u8> {
        // Compressible and incompressible parts, longer than several lz4 (64 KiB) and
        // snappy-java (32 KiB) blocks.
        let mut data = b"kafka record batch ".repeat(10_000);
        let mut x: u32 = 12345;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            data.push(x as u8);
        }
        data
    }

    #[test]
    fn every_codec_round_trips() {
        let data = sample();
        for codec in Compression::ALL {
            let packed = compress(codec, None, &data).unwrap();
            let unpacked = decompress(codec, &packed, &DecodeLimits::default()).unwrap();
            assert_eq!(unpacked, data, "{codec}");
            if codec != Compression::None {
                assert!(packed.len() < data.len(), "{codec} did not compress");
            }
        }
        let empty = compress(Compression::Zstd, Some(19), b"").unwrap();
        assert_eq!(
            decompress(Compression::Zstd, &empty, &limits(10)).unwrap(),
            b""
        );
    }

    /// What Kafka's Java producer writes: snappy-java framing, 32 KiB blocks.
    fn xerial(data: &[u8]) -> Vec<u8> {
        let mut out = XERIAL_MAGIC.to_vec();
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        for block in data.chunks(XERIAL_BLOCK_SIZE) {
            let packed = snap::raw::Encoder::new().compress_vec(block).unwrap();
            out.extend_from_slice(&(packed.len() as u32).to_be_bytes());
            out.extend_from_slice(&packed);
        }
        out
    }

    #[test]
    fn snappy_is_read_with_or_without_xerial_framing_and_written_raw() {
        let data = sample();
        let all = DecodeLimits::default();
        // librdkafka's (and our) format: one raw block.
        let raw = compress(Compression::Snappy, None, &data).unwrap();
        assert!(!raw.starts_with(&XERIAL_MAGIC));
        assert_eq!(
            snap::raw::Decoder::new().decompress_vec(&raw).unwrap(),
            data
        );
        assert_eq!(decompress(Compression::Snappy, &raw, &all).unwrap(), data);
        // The Java producer's format: many blocks (data is several times 32 KiB).
        let framed = xerial(&data);
        assert!(framed.len() > 16 + 4 * 4);
        assert_eq!(
            decompress(Compression::Snappy, &framed, &all).unwrap(),
            data
        );
        // Two concatenated snappy-java streams, as snappy-java itself reads them.
        let mut twice = framed.clone();
        twice.extend_from_slice(&framed);
        let both = decompress(Compression::Snappy, &twice, &all).unwrap();
        assert_eq!(both.len(), data.len() * 2);
        assert_eq!(&both[data.len()..], &data[..]);
        // Truncated framing: a block length past the end, a cut length field.
        let mut bad = framed[..XERIAL_HEADER_LEN].to_vec();
        bad.extend_from_slice(&1000u32.to_be_bytes());
        bad.extend_from_slice(&[0; 10]);
        for input in [
            &bad[..],
            &framed[..XERIAL_HEADER_LEN + 2],
            &framed[..framed.len() - 1],
        ] {
            assert!(matches!(
                decompress(Compression::Snappy, input, &all),
                Err(CompressionError::Corrupt { .. })
            ));
        }
        // A bomb inside the framing: blocks that together exceed the limit.
        let zeros = xerial(&vec![0u8; 4 * 1024 * 1024]);
        assert_eq!(
            decompress(Compression::Snappy, &zeros, &limits(1024 * 1024)),
            Err(CompressionError::TooLarge {
                codec: Compression::Snappy,
                limit: 1024 * 1024
            })
        );
    }

    #[test]
    fn lz4_frames_use_independent_64k_blocks_like_kafka() {
        let packed = compress(Compression::Lz4, None, b"hello").unwrap();
        assert_eq!(packed[..4], 0x184D2204u32.to_le_bytes());
        // FLG: version 01, block independence, no checksums, no content size.
        assert_eq!(packed[4], 0b0110_0000);
        // BD: 64 KiB maximum block size.
        assert_eq!(packed[5], 4 << 4);
    }

    #[test]
    fn decompression_bombs_are_errors_not_allocations() {
        // 64 MiB of zeros compresses to a few kilobytes with every codec.
        let zeros = vec![0u8; 64 * 1024 * 1024];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bomb = compress(codec, None, &zeros).unwrap();
            assert!(bomb.len() < 4 * 1024 * 1024, "{codec}: {}", bomb.len());
            let err = decompress(codec, &bomb, &limits(1024 * 1024)).unwrap_err();
            assert_eq!(
                err,
                CompressionError::TooLarge {
                    codec,
                    limit: 1024 * 1024
                },
                "{codec}"
            );
            // Exactly at the limit is fine.
            let ok = decompress(codec, &bomb, &limits(zeros.len())).unwrap();
            assert_eq!(ok.len(), zeros.len(), "{codec}");
        }
        // A raw snappy block that declares 1 GiB is refused before allocating.
        let mut lie = Vec::new();
        let mut n: u64 = 1 << 30;
        while n >= 0x80 {
            lie.push((n as u8) | 0x80);
            n >>= 7;
        }
        lie.push(n as u8);
        lie.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decompress(Compression::Snappy, &lie, &DecodeLimits::default()),
            Err(CompressionError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for codec in Compression::ALL.into_iter().skip(1) {
            for junk in [&b"not compressed at all"[..], &[0xff; 64]] {
                let r = decompress(codec, junk, &DecodeLimits::default());
                assert!(
                    matches!(r, Err(CompressionError::Corrupt { .. })),
                    "{codec} accepted {junk:?}: {r:?}"
                );
            }
            // Empty and tiny inputs: valid empty streams for some codecs; never a panic.
            for tiny in [&b""[..], b"\x00", b"\x80"] {
                let _ = decompress(codec, tiny, &DecodeLimits::default());
            }
        }
    }

    #[test]
    fn invalid_levels_are_errors() {
        assert!(compress(Compression::Gzip, Some(10), b"x").is_err());
        assert!(compress(Compression::Gzip, Some(1), b"x").is_ok());
    }
}

//! Per-chunk compression. Each chunk is compressed on its own, and decompressed into exactly
//! its declared raw size, so a hostile chunk can never make the reader allocate more than
//! the raw_len it already checked against the limit.

use std::io::Cursor;
use std::sync::Mutex;

use zstd::zstd_safe;

use super::Compression;
use crate::FormatError;

/// zstd level when none is given: zstd's own default, a good speed/ratio balance for JSON-like
/// records.
pub(crate) const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Bytes of a chunk each zstd worker compresses at a time: a 4 MiB chunk becomes four jobs,
/// so the cores the broker leaves free share one chunk's compression.
const ZSTD_JOB_SIZE: u32 = 1 << 20;

/// zstd worker threads per compressor: one per core (0, zstd's single-threaded mode, on a
/// single core, where workers would only add hand-offs). `KAFKA_BACKUP_ZSTD_WORKERS` overrides
/// it for measurements.
fn zstd_workers() -> u32 {
    if let Some(n) = std::env::var("KAFKA_BACKUP_ZSTD_WORKERS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        return n.min(64);
    }
    match std::thread::available_parallelism().map(|n| n.get()) {
        Ok(1) | Err(_) => 0,
        Ok(n) => n.min(64) as u32,
    }
}

/// Idle zstd contexts with their level, shared by every writer in the process. A context
/// holds a few MiB (its window and, with workers, their job buffers), so one per open segment
/// would grow memory with the partitions being written; a pool grows only with the chunks
/// compressed at the same moment (at most one per thread), whatever the partition count.
static IDLE_ZSTD: Mutex<Vec<(Context, zstd::bulk::Compressor<'static>)>> = Mutex::new(Vec::new());

/// Chunks smaller than this are compressed without workers: they would make one job anyway,
/// and a context with workers adds a hand-off to each call (many partitions mean many small
/// chunks).
const MIN_PARALLEL_CHUNK: usize = 2 * ZSTD_JOB_SIZE as usize;

/// What a pooled context was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Context {
    level: i32,
    workers: bool,
}

/// Most idle contexts kept; more are dropped when given back.
const MAX_IDLE_ZSTD: usize = 8;

fn compress_failed(e: std::io::Error) -> FormatError {
    FormatError::Compress {
        compression: "zstd",
        message: e.to_string(),
    }
}

/// An idle context for `level` from the pool (one with [`zstd_workers`] workers when
/// `workers`), or a new one.
fn take(
    level: i32,
    workers: bool,
) -> Result<(Context, zstd::bulk::Compressor<'static>), FormatError> {
    let threads = if workers { zstd_workers() } else { 0 };
    let wanted = Context {
        level,
        workers: threads > 0,
    };
    {
        let mut idle = IDLE_ZSTD.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = idle.iter().position(|(c, _)| *c == wanted) {
            return Ok(idle.swap_remove(at));
        }
    }
    let mut compressor = zstd::bulk::Compressor::new(level).map_err(compress_failed)?;
    if threads > 0 {
        compressor
            .set_parameter(zstd_safe::CParameter::NbWorkers(threads))
            .map_err(compress_failed)?;
        compressor
            .set_parameter(zstd_safe::CParameter::JobSize(ZSTD_JOB_SIZE))
            .map_err(compress_failed)?;
    }
    Ok((wanted, compressor))
}

/// Returns a context taken with [`take`] to the pool.
fn give_back(taken: (Context, zstd::bulk::Compressor<'static>)) {
    let mut idle = IDLE_ZSTD.lock().unwrap_or_else(|p| p.into_inner());
    if idle.len() < MAX_IDLE_ZSTD {
        idle.push(taken);
    }
}

/// Magic number of a (non-legacy, non-skippable) zstd frame, little-endian 0xFD2FB528.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Compresses chunks for the writer.
pub(crate) enum Encoder {
    /// Stored as is (the writer copies batches straight into the object instead).
    None,
    /// zstd at `level`, with a context from the process's pool for each chunk.
    Zstd {
        /// The compression level.
        level: i32,
    },
    /// LZ4 block format.
    Lz4,
}

impl Encoder {
    /// An encoder, and the level to record in the header.
    pub(crate) fn new(
        compression: Compression,
        level: Option<i32>,
    ) -> Result<(Self, Option<i32>), FormatError> {
        let invalid = |reason: String| FormatError::InvalidOptions { reason };
        match compression {
            Compression::None | Compression::Lz4 => {
                if let Some(level) = level {
                    return Err(invalid(format!(
                        "compression {compression} has no levels (got level {level})"
                    )));
                }
                let encoder = if compression == Compression::None {
                    Self::None
                } else {
                    Self::Lz4
                };
                Ok((encoder, None))
            }
            Compression::Zstd => {
                let level = level.unwrap_or(DEFAULT_ZSTD_LEVEL);
                let range = zstd_safe::min_c_level()..=zstd_safe::max_c_level();
                if !range.contains(&level) {
                    return Err(invalid(format!(
                        "zstd level {level} is outside {}..={}",
                        range.start(),
                        range.end()
                    )));
                }
                // Made (and pooled) now, so that a context zstd cannot create fails the
                // writer's creation rather than its first chunk.
                give_back(take(level, false)?);
                Ok((Self::Zstd { level }, Some(level)))
            }
        }
    }

    /// Appends the compressed form of `raw` to `out` and returns its length. Writes into
    /// `out`'s spare capacity (no intermediate buffer).
    pub(crate) fn compress_append(
        &mut self,
        raw: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, FormatError> {
        let start = out.len();
        match self {
            Self::None => {
                out.extend_from_slice(raw);
            }
            Self::Zstd { level } => {
                out.reserve(zstd_safe::compress_bound(raw.len()));
                let mut cursor = Cursor::new(&mut *out);
                cursor.set_position(start as u64);
                let mut taken = take(*level, raw.len() >= MIN_PARALLEL_CHUNK)?;
                let done = taken.1.compress_to_buffer(raw, &mut cursor);
                give_back(taken);
                done.map_err(compress_failed)?;
            }
            Self::Lz4 => {
                out.resize(
                    start + lz4_flex::block::get_maximum_output_size(raw.len()),
                    0,
                );
                let n = lz4_flex::block::compress_into(raw, &mut out[start..]).map_err(|e| {
                    FormatError::Compress {
                        compression: "lz4",
                        message: e.to_string(),
                    }
                })?;
                out.truncate(start + n);
            }
        }
        Ok(out.len() - start)
    }
}

/// Decompresses chunks for the reader.
#[derive(Default)]
pub(crate) struct Decoder {
    /// Created on the first zstd chunk and reused.
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

impl Decoder {
    /// Decompresses one chunk into exactly `raw_len` bytes (already checked against the
    /// limit); output of any other size is an error.
    pub(crate) fn decompress(
        &mut self,
        compression: Compression,
        stored: &[u8],
        raw_len: usize,
        chunk: u64,
        at: u64,
    ) -> Result<Vec<u8>, FormatError> {
        let failed = |message: String| FormatError::Decompress {
            chunk,
            offset_in_object: at,
            compression: compression.as_str(),
            message,
        };
        let mismatch = |actual: Option<usize>| FormatError::DecompressedSizeMismatch {
            chunk,
            expected: raw_len as u64,
            actual: actual.map(|a| a as u64),
        };
        match compression {
            Compression::None => Ok(stored.to_vec()),
            Compression::Zstd => {
                // Exactly one standard frame, as the writer makes: no skippable frames, and no
                // legacy (pre-1.0) frames, whose decoders the process may have compiled in
                // (kafka-protocol enables zstd's `legacy` feature) but that no writer of
                // this format produces.
                if !stored.starts_with(&ZSTD_MAGIC) {
                    return Err(failed("not a zstd frame".into()));
                }
                match zstd_safe::find_frame_compressed_size(stored) {
                    Ok(n) if n == stored.len() => {}
                    Ok(_) => return Err(failed("bytes after the zstd frame".into())),
                    Err(code) => return Err(failed(zstd_safe::get_error_name(code).into())),
                }
                let decompressor = match &mut self.zstd {
                    Some(d) => d,
                    slot => slot.insert(
                        zstd::bulk::Decompressor::new().map_err(|e| failed(e.to_string()))?,
                    ),
                };
                // The output buffer's capacity is the bound: zstd fails rather than grow it.
                let mut out = Vec::with_capacity(raw_len);
                match decompressor.decompress_to_buffer(stored, &mut out) {
                    Ok(n) if n == raw_len && out.len() == raw_len => Ok(out),
                    Ok(n) => Err(mismatch(Some(n))),
                    Err(e) if e.to_string().contains("too small") => Err(mismatch(None)),
                    Err(e) => Err(failed(e.to_string())),
                }
            }
            Compression::Lz4 => {
                let mut out = vec![0u8; raw_len];
                match lz4_flex::block::decompress_into(stored, &mut out) {
                    Ok(n) if n == raw_len => Ok(out),
                    Ok(n) => Err(mismatch(Some(n))),
                    Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) => {
                        Err(mismatch(None))
                    }
                    Err(e) => Err(failed(e.to_string())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"v\":\"x\"}}").into_bytes())
            .collect()
    }

    #[test]
    fn compress_appends_after_existing_bytes_and_round_trips() {
        let raw = sample();
        for c in [Compression::None, Compression::Zstd, Compression::Lz4] {
            let (mut enc, _) = Encoder::new(c, None).unwrap();
            let mut out = b"prefix".to_vec();
            let n = enc.compress_append(&raw, &mut out).unwrap();
            assert_eq!(&out[..6], b"prefix");
            assert_eq!(out.len(), 6 + n);
            assert!(n <= c.max_stored_len(raw.len()));
            let back = Decoder::default()
                .decompress(c, &out[6..], raw.len(), 0, 0)
                .unwrap();
            assert_eq!(back, raw, "{c}");
        }
    }

    #[test]
    fn lying_raw_len_is_a_size_mismatch() {
        let raw = sample();
        for c in [Compression::Zstd, Compression::Lz4] {
            let (mut enc, _) = Encoder::new(c, None).unwrap();
            let mut out = Vec::new();
            enc.compress_append(&raw, &mut out).unwrap();
            let mut dec = Decoder::default();
            let short = dec.decompress(c, &out, raw.len() - 1, 3, 0).unwrap_err();
            assert!(
                matches!(
                    short,
                    FormatError::DecompressedSizeMismatch {
                        chunk: 3,
                        actual: None,
                        ..
                    }
                ),
                "{c}: {short}"
            );
            let long = dec.decompress(c, &out, raw.len() + 10, 3, 0).unwrap_err();
            assert!(
                matches!(long, FormatError::DecompressedSizeMismatch { actual: Some(n), .. } if n == raw.len() as u64),
                "{c}: {long}"
            );
        }
    }

    #[test]
    fn only_one_standard_zstd_frame_is_accepted() {
        let raw = sample();
        let (mut enc, _) = Encoder::new(Compression::Zstd, None).unwrap();
        let mut one = Vec::new();
        enc.compress_append(&raw[..1000], &mut one).unwrap();
        let mut dec = Decoder::default();
        assert_eq!(
            dec.decompress(Compression::Zstd, &one, 1000, 0, 0).unwrap(),
            raw[..1000]
        );
        let two = [one.clone(), one.clone()].concat();
        assert!(matches!(
            dec.decompress(Compression::Zstd, &two, 2000, 0, 0),
            Err(FormatError::Decompress { .. })
        ));
        // A skippable frame (magic 0x184D2A50) in front.
        let skippable = [&[0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0][..], &one].concat();
        assert!(matches!(
            dec.decompress(Compression::Zstd, &skippable, 1000, 0, 0),
            Err(FormatError::Decompress { .. })
        ));
        let mut legacy = one.clone();
        legacy[0] = 0x27; // zstd v0.7 magic 0xFD2FB527
        assert!(
            dec.decompress(Compression::Zstd, &legacy, 1000, 0, 0)
                .is_err()
        );
    }

    #[test]
    fn level_validation() {
        assert!(Encoder::new(Compression::Lz4, Some(1)).is_err());
        assert!(Encoder::new(Compression::None, Some(1)).is_err());
        assert!(Encoder::new(Compression::Zstd, Some(1000)).is_err());
        assert_eq!(
            Encoder::new(Compression::Zstd, None).unwrap().1,
            Some(DEFAULT_ZSTD_LEVEL)
        );
    }
}

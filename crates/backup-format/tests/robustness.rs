//! Corrupt and hostile segments: every truncation, thousands of deterministic mutations,
//! garbage, lying lengths and lying trailers. Each must give an error (the expected one where
//! there is one), never a panic, never an unbounded allocation. Runs in `cargo test`, since
//! the fuzzer (fuzz/) does not run in CI.

mod common;

use backup_format::segment::{
    Compression, FLAG_ENCRYPTED, MAX_HEADER_LEN, PREAMBLE_LEN, ReaderLimits, read_all_with,
};
use backup_format::{FormatError, SegmentReader, manifest::RunManifest, peek_header, read_all};
use bytes::Bytes;
use common::*;

const CODECS: [Compression; 3] = [Compression::None, Compression::Zstd, Compression::Lz4];

/// Reads everything the way a restore would, through both APIs.
fn read(bytes: Bytes) -> Result<Vec<Bytes>, FormatError> {
    let streamed: Result<Vec<Bytes>, FormatError> =
        SegmentReader::new(bytes.clone(), ReaderLimits::default()).and_then(|r| r.collect());
    let all = read_all(bytes).map(|s| s.batches);
    assert_eq!(streamed, all, "streaming and whole reads disagree");
    all
}

#[test]
fn every_truncation_is_an_error() {
    for c in CODECS {
        let (seg, _) = small_segment(c);
        for cut in 0..seg.bytes.len() {
            match read(seg.bytes.slice(..cut)) {
                Err(FormatError::Truncated { at, need, have }) => {
                    assert!(at + have == cut as u64 && need > have, "{c} cut {cut}");
                }
                other => panic!("{c}: cut at {cut}: {other:?}"),
            }
        }
        assert!(read(seg.bytes.clone()).is_ok());
    }
}

#[test]
fn random_mutations_are_errors_or_harmless() {
    let mut rng = Rng(0x5eed_0001);
    for c in CODECS {
        let (seg, batches) = small_segment(c);
        let len = seg.bytes.len();
        let (mut errors, mut harmless) = (0, 0);
        for i in 0..20_000 {
            let mut b = seg.bytes.to_vec();
            let at = rng.below(len);
            if i % 2 == 0 {
                b[at] ^= 1 << rng.below(8);
            } else {
                let v = rng.next_u64() as u8;
                if b[at] == v {
                    continue;
                }
                b[at] = v;
            }
            match read(Bytes::from(b)) {
                Err(_) => errors += 1,
                // Only metadata outside the CRCs can change harmlessly (a header string);
                // the batches must be exactly the original ones.
                Ok(read) => {
                    assert_eq!(read, batches, "{c}: mutation at {at} changed the data");
                    harmless += 1;
                }
            }
        }
        eprintln!("{c}: {errors} mutations rejected, {harmless} harmless");
        assert!(errors > 19_000, "{c}: {errors} errors, {harmless} harmless");
    }
}

#[test]
fn random_garbage_is_an_error() {
    let mut rng = Rng(42);
    for i in 0..5_000 {
        let n = rng.below(2_000);
        let mut b = rng.bytes(n);
        // Half of them with a valid magic, to get past the first check.
        if i % 2 == 0 && n >= 8 {
            b[..8].copy_from_slice(&backup_format::segment::MAGIC);
        }
        assert!(read(Bytes::from(b.clone())).is_err());
        assert!(peek_header(&b).is_err());
        assert!(RunManifest::from_json(&b).is_err());
    }
}

#[test]
fn a_header_claiming_4_gib_is_refused_before_reading_it() {
    let (seg, _) = small_segment(Compression::None);
    let mut b = seg.bytes.to_vec();
    b[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        read(Bytes::from(b)),
        Err(FormatError::HeaderTooLarge {
            len: u64::from(u32::MAX),
            limit: MAX_HEADER_LEN as u64
        })
    );
}

#[test]
fn lying_chunk_lengths() {
    let (seg, _) = small_segment(Compression::None);
    let parts = Parts::split(&seg.bytes);
    // A chunk claiming 64 MiB with 10 bytes present: truncated, nothing allocated.
    let mut p = parts.clone();
    p.chunks.truncate(1);
    p.chunks[0] = (1, 64 << 20, 64 << 20, 0, Vec::new());
    let mut b = p.join().to_vec();
    let first_chunk = b.len() - 13 - 5 - p.trailer.len() - 8;
    b.truncate(first_chunk + 13 + 10);
    assert!(matches!(
        read(Bytes::from(b)),
        Err(FormatError::Truncated { need, have: 10, .. }) if need == 64 << 20
    ));
    // Over 64 MiB: refused on the header alone.
    let mut p = parts.clone();
    p.chunks[0].1 = (64 << 20) + 1;
    assert!(matches!(
        read(p.join()),
        Err(FormatError::ChunkTooLarge {
            field: "raw_len",
            chunk: 0,
            ..
        })
    ));
    // stored_len over the bound of raw_len.
    let mut p = parts.clone();
    p.chunks[0].2 += 1;
    assert!(matches!(
        read(p.join()),
        Err(FormatError::ChunkTooLarge {
            field: "stored_len",
            ..
        })
    ));
    // Uncompressed with stored_len below raw_len.
    let mut p = parts.clone();
    p.chunks[0].1 += 1;
    assert!(matches!(
        read(p.join()),
        Err(FormatError::InvalidChunk { .. })
    ));
    let mut p = parts.clone();
    p.chunks[0] = (1, 0, 0, 0, Vec::new());
    assert!(matches!(
        read(p.join()),
        Err(FormatError::InvalidChunk {
            reason: "empty chunk",
            ..
        })
    ));
    // A lower reader limit applies too.
    let limits = ReaderLimits {
        max_chunk_raw_len: 1000,
        ..ReaderLimits::default()
    };
    assert!(matches!(
        read_all_with(seg.bytes.clone(), limits),
        Err(FormatError::ChunkTooLarge { limit: 1000, .. })
    ));
}

#[test]
fn compressed_chunks_whose_raw_len_lies() {
    for c in [Compression::Zstd, Compression::Lz4] {
        let (seg, _) = small_segment(c);
        let parts = Parts::split(&seg.bytes);
        for delta in [-1i64, 1, -100, 5000] {
            let mut p = parts.clone();
            p.chunks[1].1 = (i64::from(p.chunks[1].1) + delta) as u32;
            match read(p.join()) {
                Err(FormatError::DecompressedSizeMismatch { chunk: 1, .. }) => {}
                // lz4 may also notice a short output as a bad block.
                Err(FormatError::Decompress { chunk: 1, .. }) if c == Compression::Lz4 => {}
                other => panic!("{c} delta {delta}: {other:?}"),
            }
        }
    }
}

#[test]
fn hostile_chunks_with_valid_crcs() {
    let mut rng = Rng(7);
    for c in CODECS {
        let (seg, _) = small_segment(c);
        let parts = Parts::split(&seg.bytes);
        for i in 0..1_500 {
            let mut p = parts.clone();
            let n = rng.below(3_000) + 1;
            let mut stored = rng.bytes(n);
            // Half of the zstd ones past the frame magic check, into the decoder.
            if c == Compression::Zstd && i % 2 == 0 && n >= 4 {
                stored[..4].copy_from_slice(&[0x28, 0xB5, 0x2F, 0xFD]);
            }
            let raw_len = if c == Compression::None {
                stored.len() as u32
            } else {
                (rng.below(1 << 20) + 1) as u32
            };
            let crc = crc32c::crc32c(&stored);
            p.chunks[0] = (1, raw_len, stored.len() as u32, crc, stored);
            assert!(read(p.join()).is_err());
        }
        // Raw content that is not a sequence of complete batches.
        let mut p = parts.clone();
        let mut raw = encoded_batch(100, 4, 300).to_vec();
        raw.truncate(raw.len() - 1);
        p.set_plain_chunk(0, &raw);
        p.edit_header(|h| h["compression"] = "none".into());
        assert!(matches!(
            read(p.join()),
            Err(FormatError::InvalidBatch {
                chunk: 0,
                offset_in_chunk: 0,
                ..
            })
        ));
    }
}

#[test]
fn hostile_offsets_do_not_overflow() {
    let (seg, _) = small_segment(Compression::None);
    let cases = [
        Hand {
            last_delta: i32::MAX,
            ..Hand::new(i64::MAX - 10, 1)
        },
        Hand::new(i64::MAX, 1),
        Hand {
            last_delta: -5,
            ..Hand::new(200, 1)
        },
        Hand {
            records: -1,
            ..Hand::new(200, 1)
        },
        Hand::new(-3, 1),
    ];
    for h in cases {
        let mut p = Parts::split(&seg.bytes);
        p.set_plain_chunk(0, &h.build());
        assert!(
            matches!(read(p.join()), Err(FormatError::InvalidBatchHeader { .. })),
            "base {}",
            h.base
        );
    }
    // Offsets going backwards across chunks.
    let mut p = Parts::split(&seg.bytes);
    p.set_plain_chunk(1, &encoded_batch(100, 1, 10));
    assert!(matches!(
        read(p.join()),
        Err(FormatError::OffsetOrder { .. })
    ));
}

#[test]
fn a_zstd_bomb_is_bounded_by_the_total_limit() {
    // 40 chunks of 1 MiB of (valid) batches compress to almost nothing.
    let batch = Hand {
        payload_len: (1 << 20) - 61,
        ..Hand::new(0, 1)
    };
    let batches: Vec<Bytes> = (0..40)
        .map(|i| {
            let mut b = Hand { base: i, ..batch }.build().to_vec();
            b[61..].fill(0);
            let crc = crc32c::crc32c(&b[21..]);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
            Bytes::from(b)
        })
        .collect();
    let seg = write(0, &batches, Compression::Zstd, 1 << 20);
    assert!(seg.bytes.len() < 100_000, "{}", seg.bytes.len());
    let limits = ReaderLimits {
        max_total_raw_bytes: 10 << 20,
        ..ReaderLimits::default()
    };
    assert_eq!(
        read_all_with(seg.bytes.clone(), limits).err(),
        Some(FormatError::TotalTooLarge { limit: 10 << 20 })
    );
    assert_eq!(read_all(seg.bytes).unwrap().batches.len(), 40);
}

#[test]
fn trailers_that_lie() {
    let (seg, _) = small_segment(Compression::Zstd);
    let fields = [
        "chunks",
        "batches",
        "records",
        "raw_bytes",
        "first_batch_offset",
        "last_offset",
        "end_offset",
        "min_timestamp",
        "max_timestamp",
        "control_batches",
        "transactional_batches",
        "producer_ids",
    ];
    for field in fields {
        let mut p = Parts::split(&seg.bytes);
        p.edit_trailer(|t| t[field] = (t[field].as_i64().unwrap() + 1).into());
        match read(p.join()) {
            Err(FormatError::TrailerMismatch {
                field: f,
                expected,
                actual,
            }) => {
                assert_eq!((f, expected, actual + 1), (field, expected, expected));
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    let mut p = Parts::split(&seg.bytes);
    p.edit_trailer(|t| {
        t.as_object_mut().unwrap().remove("records");
    });
    assert!(matches!(
        read(p.join()),
        Err(FormatError::InvalidTrailer { .. })
    ));
    let mut p = Parts::split(&seg.bytes);
    p.trailer = vec![b'x'; 70_000];
    assert!(matches!(
        read(p.join()),
        Err(FormatError::InvalidTrailer { .. })
    ));
    // A trailer straight after the header: no chunks.
    let mut p = Parts::split(&seg.bytes);
    p.chunks.clear();
    assert_eq!(read(p.join()), Err(FormatError::EmptySegment));
    // Bad end magic, bytes after the end.
    let mut p = Parts::split(&seg.bytes);
    p.end = *b"KBSEGENX";
    assert!(matches!(
        read(p.join()),
        Err(FormatError::BadMagic { which: "end", .. })
    ));
    let mut b = seg.bytes.to_vec();
    b.extend_from_slice(b"extra");
    assert_eq!(
        read(Bytes::from(b)),
        Err(FormatError::TrailingBytes {
            at: seg.bytes.len() as u64,
            count: 5
        })
    );
}

#[test]
fn encryption_and_unknown_versions_are_clear_errors() {
    let (seg, _) = small_segment(Compression::None);
    // Flag and header must agree; unknown encryption parameters are refused.
    let mut p = Parts::split(&seg.bytes);
    p.flags = FLAG_ENCRYPTED;
    let err = read(p.join()).unwrap_err();
    assert!(err.to_string().contains("encryption flag"), "{err}");
    let mut p = Parts::split(&seg.bytes);
    p.edit_header(|h| h["encryption"] = serde_json::json!({"alg": "AES-256-GCM", "key_id": "k"}));
    assert!(matches!(
        read(p.join()),
        Err(FormatError::InvalidHeader { .. })
    ));
    let mut p = Parts::split(&seg.bytes);
    p.flags = 0x0004;
    assert_eq!(read(p.join()), Err(FormatError::UnknownFlags { flags: 4 }));
    let mut p = Parts::split(&seg.bytes);
    p.version = 2;
    let err = read(p.join()).unwrap_err();
    assert!(matches!(
        err,
        FormatError::UnsupportedVersion { found: 2, .. }
    ));
    assert!(err.to_string().contains("upgrade"), "{err}");
    let mut p = Parts::split(&seg.bytes);
    p.edit_header(|h| h["format"] = 2.into());
    assert!(matches!(
        read(p.join()),
        Err(FormatError::UnsupportedVersion { found: 2, .. })
    ));
    let mut p = Parts::split(&seg.bytes);
    p.edit_header(|h| h["compression"] = "brotli".into());
    assert!(matches!(
        read(p.join()),
        Err(FormatError::InvalidHeader { .. })
    ));
    let mut p = Parts::split(&seg.bytes);
    p.edit_header(|h| h["topic"] = "../../x".into());
    assert!(matches!(
        read(p.join()),
        Err(FormatError::InvalidHeader { .. })
    ));
    let mut p = Parts::split(&seg.bytes);
    p.chunks[0].0 = 0x02;
    assert!(matches!(
        read(p.join()),
        Err(FormatError::UnknownBlockKind { kind: 2, .. })
    ));
    assert!(matches!(
        read(Bytes::from_static(b"PK\x03\x04 not a segment at all")),
        Err(FormatError::BadMagic {
            which: "preamble",
            at: 0
        })
    ));
}

#[test]
fn a_flipped_stored_byte_names_the_chunk() {
    for c in CODECS {
        let (seg, _) = small_segment(c);
        let mut p = Parts::split(&seg.bytes);
        p.chunks[1].4[3] ^= 0x40;
        let header_end = PREAMBLE_LEN + p.header.len();
        let chunk1_at = header_end + 13 + p.chunks[0].4.len();
        assert!(matches!(
            read(p.join()),
            Err(FormatError::ChunkCrcMismatch { chunk: 1, offset_in_object, .. })
                if offset_in_object == chunk1_at as u64
        ));
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let (seg, _) = small_segment(Compression::None);
    let mut p = Parts::split(&seg.bytes);
    p.header = [vec![b'['; 100_000], vec![b']'; 100_000]].concat();
    assert!(matches!(
        read(p.join()),
        Err(FormatError::InvalidHeader { .. })
    ));
    let nested = [vec![b'['; 1_000_000], vec![b']'; 1_000_000]].concat();
    assert!(RunManifest::from_json(&nested).is_err());
}

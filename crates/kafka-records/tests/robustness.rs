//! Hostile bytes: truncations, random strings, random mutations (with the CRC re-sealed so the
//! record parser itself is exercised), lying counts and lengths, decompression bombs. The
//! decoder must answer each with an error, never a panic or a huge allocation.

mod common;

use bytes::{Bytes, BytesMut};
use common::{Rng, tricky_records};
use kafka_records::batch::{self, BATCH_HEADER_LEN};
use kafka_records::compression::{self, CompressionError};
use kafka_records::txn::BatchSummary;
use kafka_records::{
    Compression, DecodeLimits, EncodeOptions, RecordError, decode_batch, encode_batch,
};

fn valid_batches() -> Vec<(Compression, BytesMut)> {
    Compression::ALL
        .into_iter()
        .map(|codec| {
            let opts = EncodeOptions {
                compression: codec,
                ..EncodeOptions::default()
            };
            (codec, encode_batch(&tricky_records(10), &opts).unwrap())
        })
        .collect()
}

/// Fixes the length field and CRC after a change, so the change reaches the record parser.
fn reseal(b: &mut BytesMut) {
    if b.len() < BATCH_HEADER_LEN {
        return;
    }
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = batch::compute_crc(b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// A batch with `section` (already compressed as `codec`) as its records section.
fn batch_with_section(codec: Compression, count: i32, section: &[u8]) -> Bytes {
    let template = encode_batch(&tricky_records(0)[..1], &EncodeOptions::default()).unwrap();
    let mut b = BytesMut::from(&template[..BATCH_HEADER_LEN]);
    b[21..23].copy_from_slice(&i16::from(codec.id()).to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    b.extend_from_slice(section);
    reseal(&mut b);
    b.freeze()
}

fn limits() -> DecodeLimits {
    DecodeLimits {
        max_decompressed_bytes: 4 * 1024 * 1024,
        ..DecodeLimits::default()
    }
}

#[test]
fn every_truncation_is_an_error() {
    for (codec, b) in valid_batches() {
        for cut in 0..b.len() {
            let short = Bytes::copy_from_slice(&b[..cut]);
            assert!(
                decode_batch(&short, &limits()).is_err(),
                "{codec} cut {cut}"
            );
            assert!(
                BatchSummary::read(&short, &limits()).is_err(),
                "{codec} cut {cut}"
            );
            // Re-sealed: the header is consistent, the records section is short. That is an
            // error, except where only the LZ4 frame's end mark was cut: lz4_flex takes the end
            // of input at a block boundary as the end, and the data is complete. Never a
            // different result.
            let mut sealed = BytesMut::from(&b[..cut]);
            reseal(&mut sealed);
            match decode_batch(&sealed.freeze(), &limits()) {
                Err(_) => {}
                Ok(d) => {
                    assert_eq!(codec, Compression::Lz4, "re-sealed cut {cut} decoded");
                    assert!(cut >= b.len() - 4, "lz4 cut {cut} of {} decoded", b.len());
                    assert_eq!(d.records, tricky_records(10));
                }
            }
        }
    }
    // Truncating the decompressed section and compressing it again: the codec is fine, the
    // records are short.
    let raw = valid_batches().remove(0).1;
    let section = &raw[BATCH_HEADER_LEN..];
    for codec in Compression::ALL.into_iter().skip(1) {
        for cut in (0..section.len()).step_by(7) {
            let packed = compression::compress(codec, None, &section[..cut]).unwrap();
            let b = batch_with_section(codec, 7, &packed);
            assert!(
                decode_batch(&b, &limits()).is_err(),
                "{codec} section cut {cut}"
            );
        }
    }
}

#[test]
fn random_byte_strings_never_panic() {
    let mut rng = Rng::new(1);
    let template = valid_batches().remove(0).1;
    let mut errors = std::collections::BTreeMap::new();
    for i in 0..10_000 {
        let len = rng.below(200);
        let mut b = BytesMut::from(&rng.bytes(len)[..]);
        if i % 2 == 0 && len >= BATCH_HEADER_LEN {
            // Plausible header (magic 2, right length, right CRC), random everything else,
            // so that the random bytes reach the record parser.
            b[16] = 2;
            b[21..23].copy_from_slice(&(rng.below(5) as i16).to_be_bytes());
            b[23..27].copy_from_slice(&(rng.below(4) as i32).to_be_bytes());
            b[57..61].copy_from_slice(&(rng.below(4) as i32).to_be_bytes());
            if i % 4 == 0 {
                // A real records section's first bytes, randomised further on.
                let n = (len - BATCH_HEADER_LEN).min(template.len() - BATCH_HEADER_LEN);
                b[BATCH_HEADER_LEN..BATCH_HEADER_LEN + n]
                    .copy_from_slice(&template[BATCH_HEADER_LEN..BATCH_HEADER_LEN + n]);
                b[21..23].copy_from_slice(&[0, 0]);
                let at = BATCH_HEADER_LEN + rng.below(len - BATCH_HEADER_LEN + 1);
                if at < len {
                    b[at] = rng.next_u64() as u8;
                }
            }
            reseal(&mut b);
        }
        let b = b.freeze();
        if let Err(e) = decode_batch(&b, &limits()) {
            *errors.entry(variant(&e)).or_insert(0) += 1;
        }
        let _ = BatchSummary::read(&b, &limits());
        let _ = batch::split_batches(&b);
        for codec in Compression::ALL {
            let _ = compression::decompress(codec, &b, &limits());
        }
    }
    // The random bytes reached the record parser, not only the header checks.
    eprintln!("{errors:?}");
    for reached in ["Truncated", "InvalidLength", "Compression"] {
        assert!(errors.contains_key(reached), "{reached}: {errors:?}");
    }
}

fn variant(e: &RecordError) -> &'static str {
    match e {
        RecordError::Batch { .. } => "Batch",
        RecordError::Compression { .. } => "Compression",
        RecordError::InvalidRecordCount { .. } => "InvalidRecordCount",
        RecordError::Truncated { .. } => "Truncated",
        RecordError::InvalidLength { .. } => "InvalidLength",
        RecordError::RecordLengthMismatch { .. } => "RecordLengthMismatch",
        RecordError::TrailingBytes { .. } => "TrailingBytes",
        RecordError::InvalidOffsetDelta { .. } => "InvalidOffsetDelta",
        RecordError::VarintTooLong { .. } => "VarintTooLong",
        _ => "other",
    }
}

#[test]
fn random_mutations_of_valid_batches_never_panic() {
    let mut rng = Rng::new(2);
    let batches = valid_batches();
    let mut decoded_ok = 0;
    let mut errors = std::collections::BTreeMap::new();
    for i in 0..10_000 {
        let (codec, original) = &batches[i % batches.len()];
        let mut b = original.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len());
            match rng.below(3) {
                0 => b[at] ^= 1 << rng.below(8),
                1 => b[at] = rng.next_u64() as u8,
                _ => b[at] = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.below(5)],
            }
        }
        let unsealed = b.clone().freeze();
        // Without re-sealing, a change the CRC covers must be caught.
        if unsealed[21..] != original[21..] {
            assert!(
                decode_batch(&unsealed, &limits()).is_err(),
                "{codec}: CRC missed a change"
            );
        }
        reseal(&mut b);
        match decode_batch(&b.freeze(), &limits()) {
            Ok(_) => decoded_ok += 1,
            Err(e) => *errors.entry(variant(&e)).or_insert(0) += 1,
        }
    }
    eprintln!("decoded {decoded_ok}, errors {errors:?}");
    // Some mutations hit bytes that do not matter (values, the leader epoch); most do not.
    assert!(decoded_ok > 0 && decoded_ok < 10_000, "{decoded_ok}");
}

#[test]
fn mutated_decompressed_sections_never_panic() {
    // The record parser on decompressed input, which no CRC protects beyond the codec's own.
    let mut rng = Rng::new(3);
    let raw = valid_batches().remove(0).1;
    let section = raw[BATCH_HEADER_LEN..].to_vec();
    for i in 0..2_000 {
        let mut s = section.clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(s.len());
            s[at] = rng.next_u64() as u8;
        }
        let codec = Compression::ALL[1 + i % 4];
        let packed = compression::compress(codec, None, &s).unwrap();
        let _ = decode_batch(&batch_with_section(codec, 7, &packed), &limits());
    }
}

#[test]
fn lying_counts_and_lengths_are_errors_before_allocation() {
    // A record count of i32::MAX with a few bytes of records.
    let b = batch_with_section(Compression::None, i32::MAX, &[0; 20]);
    assert!(matches!(
        decode_batch(&b, &limits()),
        Err(RecordError::InvalidRecordCount {
            count: i32::MAX,
            ..
        })
    ));
    let b = batch_with_section(Compression::None, -1, &[]);
    assert!(matches!(
        decode_batch(&b, &limits()),
        Err(RecordError::InvalidRecordCount { count: -1, .. })
    ));
    // A record whose value claims 2^30 bytes.
    let mut rec = vec![0u8, 0, 0, 1];
    rec.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]); // varint 2^30 (zig-zag)
    let mut section = vec![(rec.len() as u8) << 1];
    section.extend_from_slice(&rec);
    section.resize(section.len() + 4, 0);
    let b = batch_with_section(Compression::None, 1, &section);
    let err = decode_batch(&b, &limits()).unwrap_err();
    assert!(
        matches!(err, RecordError::Truncated { field: "value", .. }),
        "{err}"
    );
    // A header count of a billion in a 10-byte record.
    let rec = [0u8, 0, 0, 1, 1, 0x80, 0xa8, 0xd6, 0xb9, 0x07];
    let mut section = vec![(rec.len() as u8) << 1];
    section.extend_from_slice(&rec);
    let b = batch_with_section(Compression::None, 1, &section);
    assert!(matches!(
        decode_batch(&b, &limits()),
        Err(RecordError::InvalidLength {
            field: "header count",
            ..
        })
    ));
    // Negative lengths other than -1, and a record length that disagrees with its fields.
    let rec = [0u8, 0, 0, 0x03, 1, 0];
    let mut section = vec![(rec.len() as u8) << 1];
    section.extend_from_slice(&rec);
    let b = batch_with_section(Compression::None, 1, &section);
    assert!(matches!(
        decode_batch(&b, &limits()),
        Err(RecordError::InvalidLength {
            field: "key",
            length: -2,
            ..
        })
    ));
    let rec = [0u8, 0, 0, 1, 1, 0, 0xaa];
    let mut section = vec![(rec.len() as u8) << 1];
    section.extend_from_slice(&rec);
    let b = batch_with_section(Compression::None, 1, &section);
    assert!(matches!(
        decode_batch(&b, &limits()),
        Err(RecordError::RecordLengthMismatch {
            declared: 7,
            consumed: 6,
            ..
        })
    ));
    // Bytes after the declared records.
    let rec = [0u8, 0, 0, 1, 1, 0];
    let mut section = vec![(rec.len() as u8) << 1];
    section.extend_from_slice(&rec);
    section.extend_from_slice(&[0; 9]);
    let b = batch_with_section(Compression::None, 1, &section);
    assert!(matches!(
        decode_batch(&b, &limits()),
        Err(RecordError::TrailingBytes { extra: 9, .. })
    ));
    // An offset delta beyond lastOffsetDelta (0 here).
    let rec = [0u8, 0, 0x02, 1, 1, 0];
    let mut section = vec![(rec.len() as u8) << 1];
    section.extend_from_slice(&rec);
    let b = batch_with_section(Compression::None, 1, &section);
    assert!(matches!(
        decode_batch(&b, &limits()),
        Err(RecordError::InvalidOffsetDelta { delta: 1, .. })
    ));
}

#[test]
fn record_and_header_limits_bound_memory() {
    let records = tricky_records(0);
    let headers: usize = records.iter().map(|r| r.headers.len()).sum();
    let b = encode_batch(&records, &EncodeOptions::default())
        .unwrap()
        .freeze();
    let at = |max_records, max_headers| DecodeLimits {
        max_records,
        max_headers,
        ..DecodeLimits::default()
    };
    assert!(decode_batch(&b, &at(records.len(), headers)).is_ok());
    assert!(matches!(
        decode_batch(&b, &at(records.len() - 1, headers)),
        Err(RecordError::LimitExceeded { what: "records", limit, .. }) if limit == records.len() - 1
    ));
    assert!(matches!(
        decode_batch(&b, &at(records.len(), headers - 1)),
        Err(RecordError::LimitExceeded {
            what: "headers",
            ..
        })
    ));
    // 200k empty records (about 1.7 MiB) in a little zstd: refused by the record bound before
    // 200k records (about 20 MiB in memory) are built.
    let empty: Vec<kafka_records::Record> = (0..200_000)
        .map(|i| kafka_records::Record {
            offset: i,
            timestamp: 0,
            key: None,
            value: None,
            headers: vec![],
        })
        .collect();
    let opts = EncodeOptions {
        compression: Compression::Zstd,
        ..EncodeOptions::default()
    };
    let packed = encode_batch(&empty, &opts).unwrap().freeze();
    assert!(packed.len() < 256 * 1024, "{}", packed.len());
    assert!(matches!(
        decode_batch(&packed, &at(100_000, 100_000)),
        Err(RecordError::LimitExceeded {
            what: "records",
            ..
        })
    ));
    assert_eq!(
        decode_batch(&packed, &DecodeLimits::default())
            .unwrap()
            .records
            .len(),
        200_000
    );
}

#[test]
fn unknown_codecs_and_wrong_magic_are_errors() {
    let mut b = valid_batches().remove(0).1;
    b[22] = 0x05;
    reseal(&mut b);
    assert!(matches!(
        decode_batch(&b.clone().freeze(), &limits()),
        Err(RecordError::UnknownCompression {
            codec: 5,
            base_offset: 10
        })
    ));
    b[16] = 1;
    assert!(matches!(
        decode_batch(&b.freeze(), &limits()),
        Err(RecordError::Batch {
            base_offset: Some(10),
            ..
        })
    ));
}

#[test]
fn decompression_bombs_in_a_batch_are_errors() {
    // 16 MiB of zeros as the "records section": a few KiB compressed, far past a 1 MiB limit.
    let zeros = vec![0u8; 16 * 1024 * 1024];
    let small = DecodeLimits {
        max_decompressed_bytes: 1024 * 1024,
        ..DecodeLimits::default()
    };
    for codec in Compression::ALL.into_iter().skip(1) {
        let bomb = compression::compress(codec, None, &zeros).unwrap();
        assert!(bomb.len() < 1024 * 1024, "{codec}");
        let b = batch_with_section(codec, 1, &bomb);
        assert_eq!(
            decode_batch(&b, &small),
            Err(RecordError::Compression {
                base_offset: 0,
                source: CompressionError::TooLarge {
                    codec,
                    limit: 1024 * 1024
                }
            }),
            "{codec}"
        );
    }
}

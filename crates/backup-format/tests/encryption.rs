//! Encrypted segments: round trips with every codec, and every way an attacker with write
//! access to the bucket (but no key) could try to alter one: flipped ciphertext bits with
//! the CRC fixed up, chunks moved between segments, reordered, dropped or cut, the clear
//! header edited, and the wrong key.

mod common;

use std::sync::Arc;

use backup_format::crypto::{DataKey, ProviderKind, RunKey, WrappedKey};
use backup_format::segment::{
    Compression, FLAG_ENCRYPTED, ReaderLimits, read_all_with, read_all_with_key,
};
use backup_format::{FormatError, SegmentReader, SegmentWriter, WriterOptions, peek_header};
use bytes::Bytes;
use common::{Parts, encoded_batch, header};

fn run_key() -> Arc<RunKey> {
    Arc::new(RunKey {
        data_key: DataKey::generate().unwrap(),
        wrapped: WrappedKey {
            provider: ProviderKind::Local,
            key_ids: vec!["0123456789abcdef".into()],
            blob: vec![0xAA; 60],
        },
    })
}

fn batches(start: i64, n: i64) -> Vec<Bytes> {
    (0..n)
        .map(|i| encoded_batch(start + i * 4, 4, 300))
        .collect()
}

fn write_encrypted(key: &Arc<RunKey>, start: i64, compression: Compression) -> (Bytes, Vec<Bytes>) {
    let batches = batches(start, 12);
    let mut w = SegmentWriter::new(
        header(start),
        WriterOptions {
            compression,
            chunk_target_bytes: 5_000,
            encryption: Some(key.clone()),
            ..WriterOptions::default()
        },
    )
    .unwrap();
    for b in &batches {
        w.push_batch(b).unwrap();
    }
    let seg = w.finish().unwrap();
    assert_eq!(
        backup_format::segment::object_sha256(&seg.bytes),
        seg.sha256
    );
    (seg.bytes, batches)
}

fn read_with(key: &DataKey, bytes: Bytes) -> Result<Vec<Bytes>, FormatError> {
    read_all_with_key(bytes, ReaderLimits::default(), key).map(|s| s.batches)
}

#[test]
fn every_codec_round_trips_and_hides_the_records() {
    let key = run_key();
    for compression in [Compression::None, Compression::Zstd, Compression::Lz4] {
        let (bytes, batches) = write_encrypted(&key, 100, compression);
        let h = peek_header(&bytes).unwrap();
        let e = h
            .encryption
            .as_ref()
            .expect("encryption parameters in the header");
        assert_eq!(e.algorithm, "AES-256-GCM");
        assert_eq!(e.key, key.wrapped);
        assert_eq!(u16::from_be_bytes([bytes[10], bytes[11]]), FLAG_ENCRYPTED);
        // No record value, key or batch appears in the object.
        for b in &batches {
            assert!(
                !bytes.windows(64).any(|w| w == &b[b.len() - 64..]),
                "{compression}: plaintext batch bytes in the object"
            );
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("customer"), "{compression}");
        assert!(
            !text.contains("\"records\""),
            "{compression}: trailer in the clear"
        );
        assert_eq!(read_with(&key.data_key, bytes.clone()).unwrap(), batches);
        // The streaming reader too, with the trailer verified at the end.
        let mut r =
            SegmentReader::with_key(bytes.clone(), ReaderLimits::default(), &key.data_key).unwrap();
        let mut n = 0;
        while r.next_batch().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 12);
        assert_eq!(r.trailer().unwrap().batches, 12);
    }
}

#[test]
fn without_the_key_or_with_another_one_nothing_is_read() {
    let key = run_key();
    let (bytes, _) = write_encrypted(&key, 0, Compression::Zstd);
    let err = read_all_with(bytes.clone(), ReaderLimits::default()).unwrap_err();
    assert_eq!(
        err,
        FormatError::Encrypted {
            provider: "local".into(),
            key_ids: vec!["0123456789abcdef".into()]
        }
    );
    assert!(
        err.to_string().contains("local key 0123456789abcdef"),
        "{err}"
    );
    let wrong = DataKey::generate().unwrap();
    let err = read_with(&wrong, bytes).unwrap_err();
    assert!(matches!(err, FormatError::Crypto { .. }), "{err:?}");
    assert!(err.to_string().contains("failed authentication"), "{err}");
}

#[test]
fn a_flipped_bit_is_corruption_unless_the_crc_was_fixed_then_it_is_tampering() {
    let key = run_key();
    let (bytes, _) = write_encrypted(&key, 0, Compression::None);
    let mut p = Parts::split(&bytes);
    p.chunks[1].4[7] ^= 0x01;
    assert!(matches!(
        read_with(&key.data_key, p.join()),
        Err(FormatError::ChunkCrcMismatch { chunk: 1, .. })
    ));
    p.chunks[1].3 = crc32c::crc32c(&p.chunks[1].4);
    let err = read_with(&key.data_key, p.join()).unwrap_err();
    assert!(
        err.to_string().contains("chunk 1 failed authentication"),
        "{err}"
    );
}

#[test]
fn chunks_cannot_be_swapped_between_segments_reordered_dropped_or_cut() {
    let key = run_key();
    let (a, _) = write_encrypted(&key, 0, Compression::Lz4);
    let (b, _) = write_encrypted(&key, 0, Compression::Lz4);
    let pa = Parts::split(&a);
    let pb = Parts::split(&b);
    assert!(pa.chunks.len() >= 3);

    // Same run key, same identity, another segment (another salt): its chunk does not open.
    let mut p = pa.clone();
    p.chunks[0] = pb.chunks[0].clone();
    assert!(matches!(
        read_with(&key.data_key, p.join()),
        Err(FormatError::Crypto { .. })
    ));
    // Two chunks exchanged.
    let mut p = pa.clone();
    p.chunks.swap(0, 1);
    assert!(matches!(
        read_with(&key.data_key, p.join()),
        Err(FormatError::Crypto { .. })
    ));
    // The last chunk dropped: the trailer is then block n-1, where a chunk was expected.
    let mut p = pa.clone();
    p.chunks.pop();
    assert!(read_with(&key.data_key, p.join()).is_err());
    // A chunk repeated.
    let mut p = pa.clone();
    let first = p.chunks[0].clone();
    p.chunks.insert(1, first);
    assert!(read_with(&key.data_key, p.join()).is_err());
    // Another segment's trailer (with its totals).
    let mut p = pa.clone();
    p.trailer = pb.trailer.clone();
    assert!(matches!(
        read_with(&key.data_key, p.join()),
        Err(FormatError::Crypto { .. })
    ));
    // Cut before the trailer's tag.
    let cut = a.slice(..a.len() - 20);
    assert!(read_with(&key.data_key, cut).is_err());
}

#[test]
fn the_clear_header_is_authenticated() {
    let key = run_key();
    let (bytes, _) = write_encrypted(&key, 100, Compression::Zstd);
    // Identity fields change the derived key: the first chunk fails.
    for (field, value) in [
        ("partition", serde_json::json!(4)),
        ("start_offset", serde_json::json!(96)),
        ("topic", serde_json::json!("payments")),
        ("backup_id", serde_json::json!("other")),
    ] {
        let mut p = Parts::split(&bytes);
        p.edit_header(|h| h[field] = value.clone());
        let err = read_with(&key.data_key, p.join()).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Crypto { .. } | FormatError::OffsetOrder { .. }
            ),
            "{field}: {err:?}"
        );
    }
    // Fields outside the identity are bound by the trailer, the final block.
    let mut p = Parts::split(&bytes);
    p.edit_header(|h| {
        h["aborted_transactions"] = serde_json::json!([{"first_offset": 100, "producer_id": 7}])
    });
    let err = read_with(&key.data_key, p.join()).unwrap_err();
    assert!(
        err.to_string().contains("trailer failed authentication"),
        "{err}"
    );
    let mut p = Parts::split(&bytes);
    p.edit_header(|h| h["created_at"] = serde_json::json!("2020-01-01T00:00:00.000Z"));
    assert!(matches!(
        read_with(&key.data_key, p.join()),
        Err(FormatError::Crypto { .. })
    ));
    // Taking encryption away (flag and parameters) leaves ciphertext that is no batch.
    let mut p = Parts::split(&bytes);
    p.flags = 0;
    p.edit_header(|h| {
        h.as_object_mut().unwrap().remove("encryption");
    });
    assert!(read_all_with(p.join(), ReaderLimits::default()).is_err());
}

#[test]
fn a_segment_in_the_clear_reads_with_or_without_a_key() {
    let (seg, batches) = common::small_segment(Compression::Zstd);
    let key = DataKey::generate().unwrap();
    assert_eq!(read_with(&key, seg.bytes.clone()).unwrap(), batches);
}

#[test]
fn aborted_transactions_added_late_still_verify() {
    let key = run_key();
    let mut w = SegmentWriter::new(
        header(0),
        WriterOptions {
            encryption: Some(key.clone()),
            chunk_target_bytes: 2_000,
            ..WriterOptions::default()
        },
    )
    .unwrap();
    for b in batches(0, 6) {
        w.push_batch(&b).unwrap();
    }
    let many: Vec<_> = (0..2_000)
        .map(|i| backup_format::AbortedTransaction {
            first_offset: i,
            producer_id: 9,
        })
        .collect();
    // More than the reserved gap holds: the header moves and the object is rebuilt.
    w.add_aborted_transactions(many).unwrap();
    let seg = w.finish().unwrap();
    let read =
        read_all_with_key(seg.bytes.clone(), ReaderLimits::default(), &key.data_key).unwrap();
    assert_eq!(read.header.aborted_transactions.len(), 2_000);
    assert_eq!(read.batches.len(), 6);
}

#[test]
fn the_trailer_reads_from_the_tail_alone() {
    let key = run_key();
    for compression in [Compression::None, Compression::Zstd] {
        let (bytes, batches) = write_encrypted(&key, 40, compression);
        let full =
            read_all_with_key(bytes.clone(), ReaderLimits::default(), &key.data_key).unwrap();
        let tail = &bytes[bytes.len() - 1000..];
        let (h, t) =
            backup_format::segment::read_trailer(&bytes, tail, Some(&key.data_key)).unwrap();
        assert_eq!(t, full.trailer);
        assert_eq!(h, full.header);
        assert_eq!(t.batches, batches.len() as u64);
        // Without the key: a clear error naming the key; with another key: authentication.
        assert!(matches!(
            backup_format::segment::read_trailer(&bytes, tail, None),
            Err(FormatError::Encrypted { .. })
        ));
        let other = DataKey::generate().unwrap();
        assert!(matches!(
            backup_format::segment::read_trailer(&bytes, tail, Some(&other)),
            Err(FormatError::Crypto { .. })
        ));
    }
    // A clear segment's trailer reads without a key.
    let (seg, _) = common::small_segment(Compression::Lz4);
    let (_, t) = backup_format::segment::read_trailer(&seg.bytes, &seg.bytes, None).unwrap();
    assert_eq!(t, seg.trailer);
}

#[test]
fn dropping_the_last_chunks_is_caught_by_the_trailer() {
    let key = run_key();
    let (bytes, _) = write_encrypted(&key, 0, Compression::None);
    let mut p = Parts::split(&bytes);
    p.chunks.truncate(1);
    let err = read_with(&key.data_key, p.join()).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::TrailerMismatch {
                field: "chunks",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn every_single_bit_flip_anywhere_in_an_encrypted_segment_is_refused() {
    // Every byte of an encrypted segment is covered by something the reader checks: the
    // clear header by the trailer's associated data, chunk headers by the CRC or the
    // associated data, ciphertext by the tag, the trailer and the magics by themselves. So no
    // single flipped bit may ever be read as valid data.
    let key = run_key();
    for compression in [Compression::None, Compression::Zstd] {
        let (bytes, _) = write_encrypted(&key, 7, compression);
        let mut rng = common::Rng(0x5eed ^ bytes.len() as u64);
        let positions: Vec<usize> = (0..bytes.len())
            .step_by(1 + bytes.len() / 3000)
            .chain((0..400).map(|_| rng.below(bytes.len())))
            .collect();
        for at in positions {
            let mut damaged = bytes.to_vec();
            damaged[at] ^= 1 << rng.below(8);
            assert!(
                read_with(&key.data_key, Bytes::from(damaged)).is_err(),
                "{compression}: a flipped bit at byte {at} of {} went unnoticed",
                bytes.len()
            );
        }
    }
}

/// A restore must learn of a forged chunk before it acts on the segment's first batch:
/// `authenticate_chunks` checks every chunk's tag up front, and reading afterwards gives back
/// every batch, each chunk decrypted once.
#[test]
fn every_chunk_is_authenticated_before_the_first_batch_is_read() {
    let key = run_key();
    for compression in [Compression::None, Compression::Zstd] {
        let (bytes, batches) = write_encrypted(&key, 0, compression);
        let mut reader =
            SegmentReader::with_key(bytes.clone(), ReaderLimits::default(), &key.data_key).unwrap();
        reader.authenticate_chunks().unwrap();
        let mut got = Vec::new();
        while let Some((_, b)) = reader.next_batch().unwrap() {
            got.push(b);
        }
        assert_eq!(got, batches, "{compression:?}");
        assert!(reader.trailer().is_some());

        // The last chunk forged (its CRC fixed up): refused before any batch is handed out.
        let mut p = Parts::split(&bytes);
        let last = p.chunks.len() - 1;
        assert!(last > 0, "several chunks");
        p.chunks[last].4[3] ^= 0x40;
        p.chunks[last].3 = crc32c::crc32c(&p.chunks[last].4);
        let mut reader =
            SegmentReader::with_key(p.join(), ReaderLimits::default(), &key.data_key).unwrap();
        let err = reader.authenticate_chunks().unwrap_err();
        assert!(err.to_string().contains("failed authentication"), "{err}");
        assert!(
            reader.next_batch().unwrap().is_none(),
            "nothing after a refusal"
        );
    }
}

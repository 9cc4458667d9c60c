//! Segments written and read back: every codec, chunking, compacted offsets, control and
//! transactional batches, aborted transactions, keys and manifest entries.

mod common;

use backup_format::segment::{
    self, AbortedTransaction, Compression, FLAG_ENCRYPTED, MAGIC, PREAMBLE_LEN, object_sha256,
    verify_sha256,
};
use backup_format::{
    FormatError, SegmentEntry, SegmentReader, SegmentWriter, WriterOptions, naming, peek_header,
    read_all,
};
use bytes::Bytes;
use common::*;
use kafka_records::batch::{ATTR_CONTROL, ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL};

const CODECS: [Compression; 3] = [Compression::None, Compression::Zstd, Compression::Lz4];

#[test]
fn round_trip_every_codec() {
    for c in CODECS {
        let (seg, batches) = small_segment(c);
        assert_eq!(seg.sha256, object_sha256(&seg.bytes), "{c}");
        verify_sha256(&seg.bytes, &seg.sha256).unwrap();
        let read = read_all(seg.bytes.clone()).unwrap();
        assert_eq!(read.batches, batches, "{c}");
        assert_eq!(read.header, seg.header);
        assert_eq!(read.trailer, seg.trailer);
        assert_eq!(read.header.compression, c);
        let t = &seg.trailer;
        assert_eq!(t.batches, 12);
        assert_eq!(t.records, 48);
        assert_eq!(t.first_batch_offset, 100);
        assert_eq!(t.last_offset, 147);
        assert_eq!(t.end_offset, 148);
        assert_eq!(
            t.raw_bytes,
            batches.iter().map(|b| b.len() as u64).sum::<u64>()
        );
        assert_eq!(t.min_timestamp, 1_700_000_000_100);
        assert_eq!(t.max_timestamp, 1_700_000_000_147);
        assert_eq!(t.producer_ids, 1);
        assert_eq!((t.control_batches, t.transactional_batches), (0, 0));
        assert!(t.chunks >= 2, "{c}: {} chunks", t.chunks);
        if c != Compression::None {
            assert!(
                seg.bytes.len() < t.raw_bytes as usize,
                "{c} did not compress"
            );
        }
    }
}

#[test]
fn layout_starts_and_ends_as_documented() {
    let (seg, _) = small_segment(Compression::None);
    let b = &seg.bytes;
    assert_eq!(b[..8], MAGIC);
    assert_eq!(u16::from_be_bytes([b[8], b[9]]), 1);
    assert_eq!(u16::from_be_bytes([b[10], b[11]]), 0);
    let header_len = u32::from_be_bytes(b[12..16].try_into().unwrap()) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&b[PREAMBLE_LEN..PREAMBLE_LEN + header_len]).unwrap();
    assert_eq!(header["format"], 1);
    assert_eq!(header["compression"], "none");
    assert_eq!(header["encryption"], serde_json::Value::Null);
    assert_eq!(b[PREAMBLE_LEN + header_len], 0x01);
    assert_eq!(&b[b.len() - 8..], b"KBSEGEND");
    let parts = Parts::split(b);
    assert_eq!(parts.join(), *b);
    for (_, raw, stored, crc, data) in &parts.chunks {
        assert_eq!(raw, stored);
        assert_eq!(*crc, crc32c::crc32c(data));
    }
}

#[test]
fn uncompressed_batches_are_zero_copy_slices_of_the_object() {
    let (seg, _) = small_segment(Compression::None);
    let range = seg.bytes.as_ptr() as usize..seg.bytes.as_ptr() as usize + seg.bytes.len();
    for b in read_all(seg.bytes.clone()).unwrap().batches {
        assert!(range.contains(&(b.as_ptr() as usize)));
    }
}

#[test]
fn a_batch_bigger_than_the_chunk_target_gets_its_own_chunk() {
    for c in CODECS {
        let batches = vec![
            encoded_batch(0, 2, 100),
            encoded_batch(2, 40, 1000), // ~40 KiB, target 8 KiB
            encoded_batch(42, 2, 100),
            encoded_batch(44, 2, 100),
        ];
        let seg = write(0, &batches, c, 8 << 10);
        assert_eq!(seg.trailer.chunks, 3, "{c}");
        let parts = Parts::split(&seg.bytes);
        assert_eq!(parts.chunks[1].1 as usize, batches[1].len());
        assert_eq!(read_all(seg.bytes).unwrap().batches, batches);
    }
}

#[test]
fn chunks_close_at_the_target() {
    // 10 batches of ~1.3 KiB, target 4 KiB: three per chunk, the fourth would overflow.
    let batches: Vec<Bytes> = (0..10).map(|i| encoded_batch(i * 2, 2, 600)).collect();
    let lens: Vec<usize> = batches.iter().map(|b| b.len()).collect();
    assert!(
        lens.iter().all(|&l| 3 * l <= 4096 && 4 * l > 4096),
        "{lens:?}"
    );
    let seg = write(0, &batches, Compression::None, 4096);
    assert_eq!(seg.trailer.chunks, 4);
    let parts = Parts::split(&seg.bytes);
    let raw: Vec<usize> = parts.chunks.iter().map(|c| c.1 as usize).collect();
    let expected: Vec<usize> = lens.chunks(3).map(|c| c.iter().sum()).collect();
    assert_eq!(raw, expected);
    // A chunk that reaches the target exactly is closed at once.
    let exact = write(0, &batches[..4], Compression::None, lens[0] + lens[1]);
    assert_eq!(exact.trailer.chunks, 2);
}

#[test]
fn compacted_offsets_and_a_start_before_the_first_batch() {
    // Compaction removed offsets 10..50 and records inside batches (delta > count - 1).
    let batches = vec![
        Hand {
            last_delta: 9,
            records: 3,
            ..Hand::new(0, 3)
        }
        .build(),
        Hand::new(50, 5).build(),
        Hand {
            records: 0, // an empty batch kept for producer state
            last_delta: 4,
            ..Hand::new(100, 0)
        }
        .build(),
        Hand::new(1_000_000, 1).build(),
    ];
    for c in CODECS {
        let seg = write(0, &batches, c, 1 << 20);
        let t = &seg.trailer;
        assert_eq!((t.records, t.batches), (9, 4));
        assert_eq!((t.first_batch_offset, t.last_offset), (0, 1_000_000));
        let read = read_all(seg.bytes.clone()).unwrap();
        assert_eq!(read.batches, batches);
        // Coverage may begin after the first batch's base (fetch from the middle of a batch,
        // e.g. after DeleteRecords) ...
        let mid = write(5, &batches, c, 1 << 20);
        assert_eq!(mid.header.start_offset, 5);
        assert_eq!(mid.trailer.first_batch_offset, 0);
        read_all(mid.bytes.clone()).unwrap();
        let key = naming::parse_segment_key(&mid.key()).unwrap();
        assert_eq!((key.start_offset, key.last_offset), (5, 1_000_000));
        // ... or before it (compaction removed the offsets between).
        let before = write(0, &batches[1..], c, 1 << 20);
        assert_eq!(before.trailer.first_batch_offset, 50);
    }
}

#[test]
fn control_transactional_and_log_append_time_batches_are_counted() {
    let data = Hand {
        attributes: ATTR_TRANSACTIONAL,
        producer_id: 7,
        ..Hand::new(10, 3)
    }
    .build();
    let marker = Hand {
        attributes: ATTR_TRANSACTIONAL | ATTR_CONTROL,
        producer_id: 7,
        payload_len: 20,
        ..Hand::new(13, 1)
    }
    .build();
    let other = Hand {
        producer_id: 8,
        attributes: ATTR_LOG_APPEND_TIME,
        base_ts: 5, // ignored: LogAppendTime records all carry max_ts
        max_ts: 1_800_000_000_000,
        ..Hand::new(14, 2)
    }
    .build();
    let no_ts = Hand {
        base_ts: -1,
        max_ts: -1,
        ..Hand::new(16, 1)
    }
    .build();
    let batches = vec![data, marker, other, no_ts];
    for c in CODECS {
        let seg = write(10, &batches, c, 1 << 20);
        let t = &seg.trailer;
        assert_eq!(t.control_batches, 1);
        assert_eq!(t.transactional_batches, 2);
        assert_eq!(t.producer_ids, 2);
        assert_eq!(t.min_timestamp, 1_700_000_000_010);
        assert_eq!(t.max_timestamp, 1_800_000_000_000);
        assert_eq!(read_all(seg.bytes).unwrap().batches, batches);
    }
    let seg = write(16, &batches[3..], Compression::None, 1 << 20);
    assert_eq!(
        (seg.trailer.min_timestamp, seg.trailer.max_timestamp),
        (-1, -1)
    );
}

#[test]
fn aborted_transactions_learnt_while_writing_end_up_in_the_header() {
    let batches: Vec<Bytes> = (0..6).map(|i| encoded_batch(i * 4, 4, 200)).collect();
    for (c, many) in [
        (Compression::None, 10),
        (Compression::Zstd, 2000),
        (Compression::Lz4, 3),
    ] {
        let mut h = header(0);
        h.aborted_transactions = vec![AbortedTransaction {
            producer_id: 9,
            first_offset: 2,
        }];
        let mut w = SegmentWriter::new(
            h,
            WriterOptions {
                compression: c,
                chunk_target_bytes: 2000,
                ..WriterOptions::default()
            },
        )
        .unwrap();
        for (i, b) in batches.iter().enumerate() {
            w.push_batch(b).unwrap();
            // Every fetch reports the transactions overlapping it again.
            let reported = (0..=i as i64).flat_map(|j| {
                (0..many).map(move |k| AbortedTransaction {
                    producer_id: 100 + k,
                    first_offset: j * 4,
                })
            });
            w.add_aborted_transactions(reported).unwrap();
            w.add_aborted_transactions([AbortedTransaction {
                producer_id: 9,
                first_offset: 2,
            }])
            .unwrap();
        }
        let seg = w.finish().unwrap();
        assert_eq!(seg.sha256, object_sha256(&seg.bytes), "{c}");
        let read = read_all(seg.bytes.clone()).unwrap();
        assert_eq!(read.batches, batches);
        let aborted = &read.header.aborted_transactions;
        assert_eq!(aborted.len(), 6 * many as usize + 1, "{c}");
        assert!(
            aborted.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        assert_eq!(*aborted, seg.header.aborted_transactions);
        assert_eq!(peek_header(&seg.bytes).unwrap(), read.header);
    }
}

#[test]
fn too_many_aborted_transactions_are_refused_not_truncated() {
    let mut w = SegmentWriter::new(header(0), WriterOptions::default()).unwrap();
    w.push_batch(&encoded_batch(0, 1, 10)).unwrap();
    let huge = (0..40_000).map(|i| AbortedTransaction {
        producer_id: i,
        first_offset: i,
    });
    assert!(matches!(
        w.add_aborted_transactions(huge),
        Err(FormatError::HeaderTooLarge { .. })
    ));
    // Nothing was added; the segment can still be finished.
    let seg = w.finish().unwrap();
    assert!(seg.header.aborted_transactions.is_empty());
    read_all(seg.bytes).unwrap();
}

#[test]
fn the_writer_rejects_bad_batches_and_stays_usable() {
    let mut w = SegmentWriter::new(header(10), WriterOptions::default()).unwrap();
    // Ends before the start offset.
    let early = encoded_batch(0, 5, 10);
    assert!(matches!(
        w.push_batch(&early),
        Err(FormatError::OffsetOrder { bound: 10, .. })
    ));
    let first = encoded_batch(8, 5, 10); // 8..=12 reaches 10
    w.push_batch(&first).unwrap();
    for bad_base in [8, 12] {
        assert!(matches!(
            w.push_batch(&encoded_batch(bad_base, 1, 10)),
            Err(FormatError::OffsetOrder { bound: 12, .. })
        ));
    }
    let mut corrupt = encoded_batch(13, 2, 10).to_vec();
    *corrupt.last_mut().unwrap() ^= 1;
    assert!(matches!(
        w.push_batch(&corrupt),
        Err(FormatError::InvalidBatch { .. })
    ));
    assert!(w.push_batch(&corrupt[..30]).is_err());
    assert!(w.push_batch(&[]).is_err());
    let negative = Hand {
        last_delta: -1,
        ..Hand::new(20, 1)
    }
    .build();
    assert!(matches!(
        w.push_batch(&negative),
        Err(FormatError::InvalidBatchHeader { .. })
    ));
    let overflow = Hand {
        last_delta: 10,
        ..Hand::new(i64::MAX - 5, 1)
    }
    .build();
    assert!(matches!(
        w.push_batch(&overflow),
        Err(FormatError::InvalidBatchHeader { .. })
    ));
    assert_eq!((w.batches(), w.last_offset()), (1, Some(12)));
    let good = encoded_batch(13, 2, 10);
    w.push_batch(&good).unwrap();
    let seg = w.finish().unwrap();
    assert_eq!(read_all(seg.bytes).unwrap().batches, vec![first, good]);
}

#[test]
fn empty_segments_and_bad_options_are_refused() {
    let w = SegmentWriter::new(header(0), WriterOptions::default()).unwrap();
    assert_eq!(w.finish().unwrap_err(), FormatError::EmptySegment);
    for options in [
        WriterOptions {
            chunk_target_bytes: 0,
            ..WriterOptions::default()
        },
        WriterOptions {
            chunk_target_bytes: (64 << 20) + 1,
            ..WriterOptions::default()
        },
        WriterOptions {
            compression: Compression::Lz4,
            level: Some(3),
            ..WriterOptions::default()
        },
    ] {
        assert!(matches!(
            SegmentWriter::new(header(0), options),
            Err(FormatError::InvalidOptions { .. })
        ));
    }
    let mut h = header(0);
    h.topic = "../x".into();
    assert!(matches!(
        SegmentWriter::new(h, WriterOptions::default()),
        Err(FormatError::InvalidHeader { .. })
    ));
    let mut h = header(0);
    h.format = 2;
    assert!(matches!(
        SegmentWriter::new(h, WriterOptions::default()),
        Err(FormatError::UnsupportedVersion { found: 2, .. })
    ));
}

#[test]
fn the_writer_fills_codec_and_level_and_reports_sizes() {
    let mut h = header(0);
    h.compression = Compression::Lz4; // overridden by the options
    let mut w = SegmentWriter::new(
        h,
        WriterOptions {
            compression: Compression::Zstd,
            level: Some(9),
            chunk_target_bytes: 1 << 20,
            expected_segment_bytes: 1 << 20,
            encryption: None,
        },
    )
    .unwrap();
    let b = encoded_batch(0, 10, 500);
    w.push_batch(&b).unwrap();
    assert_eq!(w.raw_bytes(), b.len() as u64);
    let before = w.stored_bytes();
    let seg = w.finish().unwrap();
    assert!(seg.bytes.len() as u64 > before);
    assert_eq!(seg.header.compression, Compression::Zstd);
    assert_eq!(seg.header.compression_level, Some(9));

    let mut w = SegmentWriter::new(header(0), WriterOptions::default()).unwrap();
    let empty = w.stored_bytes();
    w.push_batch(&b).unwrap();
    assert_eq!(w.stored_bytes(), empty + 13 + b.len() as u64);
}

#[test]
fn keys_and_manifest_entries_describe_the_object() {
    let (seg, _) = small_segment(Compression::Zstd);
    let key = seg.key();
    let parsed = naming::parse_segment_key(&key).unwrap();
    assert_eq!(parsed.sha256, seg.sha256);
    assert_eq!(parsed.start_offset, seg.header.start_offset);
    assert_eq!(parsed.end_offset(), seg.trailer.end_offset);
    let entry = SegmentEntry::from_finished(&seg, key.clone());
    assert_eq!(entry.key, key);
    assert_eq!(entry.stored_bytes, seg.bytes.len() as u64);
    assert_eq!(entry.records, 48);
    assert_eq!(entry.compression, Compression::Zstd);
    let mut other = seg.sha256;
    other[0] ^= 1;
    assert!(matches!(
        verify_sha256(&seg.bytes, &other),
        Err(FormatError::Sha256Mismatch { .. })
    ));
}

#[test]
fn streaming_reader_and_peek_header() {
    let (seg, batches) = small_segment(Compression::Lz4);
    let mut r = SegmentReader::new(seg.bytes.clone(), Default::default()).unwrap();
    assert_eq!(r.header().topic, "orders");
    assert!(r.trailer().is_none());
    let mut n = 0;
    while let Some((h, b)) = r.next_batch().unwrap() {
        assert_eq!(b, batches[n]);
        assert_eq!(h.base_offset, 100 + 4 * n as i64);
        n += 1;
    }
    assert_eq!(n, 12);
    assert_eq!(r.trailer(), Some(&seg.trailer));
    assert_eq!(r.next_batch().unwrap(), None);
    let collected: Result<Vec<Bytes>, _> =
        SegmentReader::new(seg.bytes.clone(), Default::default())
            .unwrap()
            .collect();
    assert_eq!(collected.unwrap(), batches);

    // peek_header on a prefix says how much it needs.
    let header_end =
        PREAMBLE_LEN + u32::from_be_bytes(seg.bytes[12..16].try_into().unwrap()) as usize;
    assert_eq!(peek_header(&seg.bytes[..header_end]).unwrap(), seg.header);
    match peek_header(&seg.bytes[..40]) {
        Err(FormatError::Truncated { at, need, have }) => {
            assert_eq!((at, need, have), (16, header_end as u64 - 16, 24));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        peek_header(&seg.bytes[..10]),
        Err(FormatError::Truncated {
            at: 0,
            need: 16,
            ..
        })
    ));
    // The flag without encryption parameters in the header is a contradiction.
    let mut flagged = seg.bytes.to_vec();
    flagged[11] |= FLAG_ENCRYPTED as u8;
    assert!(matches!(
        peek_header(&flagged),
        Err(FormatError::InvalidHeader { .. })
    ));
}

#[test]
fn unknown_header_fields_are_ignored() {
    let (seg, batches) = small_segment(Compression::None);
    let mut parts = Parts::split(&seg.bytes);
    parts.edit_header(|h| {
        h["added_by_a_newer_writer"] = serde_json::json!({"x": [1, 2, 3]});
    });
    assert_eq!(read_all(parts.join()).unwrap().batches, batches);
}

#[test]
fn constants_match_the_brief() {
    assert_eq!(segment::MAX_HEADER_LEN, 1 << 20);
    assert_eq!(segment::MAX_CHUNK_RAW_LEN, 64 << 20);
    assert_eq!(segment::MAX_TRAILER_LEN, 64 << 10);
    assert_eq!(segment::DEFAULT_CHUNK_TARGET, 4 << 20);
    assert_eq!(segment::END_MAGIC, *b"KBSEGEND");
}

#[test]
fn an_uploaded_object_gives_its_buffer_back() {
    let batches: Vec<Bytes> = (0..50).map(|i| encoded_batch(i * 4, 4, 500)).collect();
    let seg = write(0, &batches, Compression::None, 1 << 20);
    let held = seg.bytes.clone();
    assert!(
        seg.clone().into_buffer().is_none(),
        "a clone is still alive"
    );
    drop(held);
    let len = seg.bytes.len();
    let buffer = seg.into_buffer().expect("unique");
    assert!(buffer.is_empty() && buffer.capacity() >= len);
    let ptr = buffer.as_ptr();
    let mut w = SegmentWriter::with_buffer(header(200), WriterOptions::default(), buffer).unwrap();
    w.push_batch(&encoded_batch(200, 4, 500)).unwrap();
    let again = w.finish().unwrap();
    let range = ptr as usize..ptr as usize + len;
    assert!(
        range.contains(&(again.bytes.as_ptr() as usize)),
        "same allocation"
    );
    read_all(again.bytes).unwrap();
}

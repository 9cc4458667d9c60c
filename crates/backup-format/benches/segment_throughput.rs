//! Segment writer and reader throughput on 1 KiB JSON-like records (16 per batch), for each
//! codec, with the per-byte primitives (copy, CRC32C, SHA-256) for comparison.
//!
//! `cargo bench -p backup-format --bench segment_throughput` prints MB/s (of raw batch bytes).
//! Under `cargo test --all-targets` (no `--bench` argument) it runs a small smoke pass only.

use std::time::{Duration, Instant};

use backup_format::segment::{
    Compression, ReaderLimits, SegmentHeader, SegmentReader, SegmentWriter, WriterOptions,
};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression as KafkaCompression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sha2::Digest;

const RECORDS_PER_BATCH: i64 = 16;
const RECORD_LEN: usize = 1024;

fn header() -> SegmentHeader {
    SegmentHeader {
        format: 1,
        backup_id: "bench".into(),
        run_id: "20260101T000000Z-00000000".into(),
        cluster_id: None,
        topic: "bench".into(),
        topic_id: "00000000-0000-0000-0000-000000000000".into(),
        partition: 0,
        start_offset: 0,
        compression: Compression::None,
        compression_level: None,
        created_at: "2026-01-01T00:00:00Z".into(),
        encryption: None,
        aborted_transactions: Vec::new(),
    }
}

/// A JSON-like record: repeated keys, varying values, as application events usually are.
fn value(i: i64) -> Bytes {
    let mut v = format!(
        "{{\"event_id\":\"{:016x}\",\"type\":\"{}\",\"user\":{},\"ts\":{},\"payload\":{{",
        (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        ["click", "view", "purchase", "signup"][(i % 4) as usize],
        i * 7919 % 1_000_003,
        1_700_000_000_000 + i
    );
    let mut k = 0;
    while v.len() < RECORD_LEN - 40 {
        v.push_str(&format!(
            "\"f{k}\":\"{:x}\",",
            (i + k).wrapping_mul(2_654_435_761) % 1_000_000
        ));
        k += 1;
    }
    v.push_str("\"end\":true}}");
    let mut b = v.into_bytes();
    b.resize(RECORD_LEN, b' ');
    Bytes::from(b)
}

fn batches(total_bytes: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let (mut offset, mut size) = (0i64, 0usize);
    while size < total_bytes {
        let records: Vec<Record> = (0..RECORDS_PER_BATCH)
            .map(|j| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 1,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: offset + j,
                sequence: j as i32,
                timestamp: 1_700_000_000_000 + offset + j,
                key: Some(Bytes::from(format!("user-{}", (offset + j) % 10_000))),
                value: Some(value(offset + j)),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: KafkaCompression::None,
            },
        )
        .expect("encode");
        size += buf.len();
        out.push(buf.freeze());
        offset += RECORDS_PER_BATCH;
    }
    out
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// Best of `iters` runs of `f`.
fn best(iters: usize, mut f: impl FnMut()) -> Duration {
    (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (total, segment_raw, iters) = if full {
        (256 << 20, 64 << 20, 3)
    } else {
        (512 << 10, 256 << 10, 1)
    };
    let input = batches(total);
    let raw: usize = input.iter().map(|b| b.len()).sum();
    let flat: Vec<u8> = input.iter().flat_map(|b| b.iter().copied()).collect();
    println!(
        "input: {} batches, {:.1} MiB, {RECORDS_PER_BATCH} x {RECORD_LEN} B records per batch; \
         segments of {} MiB; best of {iters}",
        input.len(),
        raw as f64 / (1 << 20) as f64,
        segment_raw >> 20
    );

    let mut sink = 0u64;
    let t = best(iters, || {
        let mut v = Vec::with_capacity(flat.len());
        v.extend_from_slice(&flat);
        sink += u64::from(v[v.len() / 2]);
    });
    println!("  memcpy (fresh)       {:>8.0} MB/s", mbps(raw, t));
    let mut warm = Vec::with_capacity(flat.len());
    let t = best(iters, || {
        warm.clear();
        warm.extend_from_slice(&flat);
        sink += u64::from(warm[warm.len() / 2]);
    });
    println!("  memcpy (warm)        {:>8.0} MB/s", mbps(raw, t));
    let t = best(iters, || sink += u64::from(crc32c::crc32c(&flat)));
    println!("  crc32c               {:>8.0} MB/s", mbps(raw, t));
    let t = best(iters, || sink += u64::from(sha2::Sha256::digest(&flat)[0]));
    println!("  sha256               {:>8.0} MB/s", mbps(raw, t));
    let t = best(iters, || {
        for b in &input {
            sink += kafka_records::batch::verify(b).map_or(0, |h| h.record_count as u64);
        }
    });
    println!("  batch::verify        {:>8.0} MB/s", mbps(raw, t));

    let run_key = std::sync::Arc::new(backup_format::crypto::RunKey {
        data_key: backup_format::crypto::DataKey::generate().expect("key"),
        wrapped: backup_format::crypto::WrappedKey {
            provider: backup_format::crypto::ProviderKind::Local,
            key_ids: vec!["bench".into()],
            blob: vec![0; 61],
        },
    });
    for (compression, level, encryption) in [
        (Compression::None, None, None),
        (Compression::None, None, Some(run_key.clone())),
        (Compression::Lz4, None, None),
        (Compression::Zstd, Some(1), None),
        (Compression::Zstd, Some(3), None),
        (Compression::Zstd, Some(3), Some(run_key.clone())),
    ] {
        let mut objects = Vec::new();
        let write = best(iters, || {
            objects.clear();
            let options = WriterOptions {
                compression,
                level,
                expected_segment_bytes: segment_raw + (1 << 20),
                encryption: encryption.clone(),
                ..WriterOptions::default()
            };
            let mut w = SegmentWriter::new(header(), options.clone()).expect("writer");
            for b in &input {
                if w.raw_bytes() + b.len() as u64 > segment_raw as u64 {
                    let next = w.last_offset().expect("batches") + 1;
                    objects.push(w.finish().expect("finish"));
                    let mut h = header();
                    h.start_offset = next;
                    w = SegmentWriter::new(h, options.clone()).expect("writer");
                }
                w.push_batch(b).expect("push");
            }
            objects.push(w.finish().expect("finish"));
        });
        let stored: usize = objects.iter().map(|o| o.bytes.len()).sum();
        // The same with each object's buffer recycled once "uploaded", as the engine can.
        let mut pool: Vec<Vec<u8>> = Vec::new();
        let recycled = best(iters, || {
            let options = WriterOptions {
                compression,
                level,
                expected_segment_bytes: segment_raw + (1 << 20),
                encryption: encryption.clone(),
                ..WriterOptions::default()
            };
            let buffer = pool.pop().unwrap_or_default();
            let mut w =
                SegmentWriter::with_buffer(header(), options.clone(), buffer).expect("writer");
            for b in &input {
                if w.raw_bytes() + b.len() as u64 > segment_raw as u64 {
                    let next = w.last_offset().expect("batches") + 1;
                    let done = w.finish().expect("finish");
                    sink += done.bytes.len() as u64;
                    pool.extend(done.into_buffer());
                    let mut h = header();
                    h.start_offset = next;
                    let buffer = pool.pop().unwrap_or_default();
                    w = SegmentWriter::with_buffer(h, options.clone(), buffer).expect("writer");
                }
                w.push_batch(b).expect("push");
            }
            pool.extend(w.finish().expect("finish").into_buffer());
        });
        // Each read gets objects of its own, as a restore does (it reads each object into a
        // buffer it owns): an encrypted segment is then decrypted in place.
        let read = (0..iters)
            .map(|_| {
                let owned: Vec<Bytes> = objects
                    .iter()
                    .map(|o| Bytes::from(o.bytes.to_vec()))
                    .collect();
                let t = Instant::now();
                for bytes in owned {
                    let r = match &encryption {
                        Some(k) => {
                            SegmentReader::with_key(bytes, ReaderLimits::default(), &k.data_key)
                        }
                        None => SegmentReader::new(bytes, ReaderLimits::default()),
                    }
                    .expect("reader");
                    for b in r {
                        sink += b.expect("batch").len() as u64;
                    }
                }
                t.elapsed()
            })
            .min()
            .unwrap_or_default();
        let name = match level {
            Some(l) => format!("{compression} {l}"),
            None => compression.to_string(),
        } + if encryption.is_some() { " +aead" } else { "" };
        println!(
            "  {name:<12} write {:>5.0} MB/s (recycled buffers {:>5.0} MB/s)   read {:>5.0} MB/s   ratio {:.2}",
            mbps(raw, write),
            mbps(raw, recycled),
            mbps(raw, read),
            raw as f64 / stored as f64
        );
    }
    assert!(sink > 0);
}

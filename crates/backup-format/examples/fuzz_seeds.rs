//! Writes seed inputs for the `segment_reader` fuzz target (see `fuzz/README.md`): valid
//! segments for every codec and fuzz mode, and valid JSON documents and keys, so the fuzzer
//! starts from structure rather than from random bytes.
//!
//! `cargo run -p backup-format --example fuzz_seeds -- crates/backup-format/fuzz/corpus/segment_reader`

use std::collections::BTreeMap;

use backup_format::crypto::{DataKey, ProviderKind, RunKey, WrappedKey};
use backup_format::manifest::{
    BackupDescriptor, Gap, GapRecord, RunManifest, RunMode, RunStatus, RunSummary, SourceCluster,
    TopicSnapshot,
};
use backup_format::segment::{AbortedTransaction, Compression};
use backup_format::signing::SigningKey;
use backup_format::{SegmentEntry, SegmentHeader, SegmentWriter, WriterOptions};

/// A record batch with a correct CRC (records section as filler: the format never decodes
/// records).
fn batch(base: i64, records: i32, attributes: i16, producer_id: i64) -> Vec<u8> {
    let payload = 24 * records.max(1) as usize;
    let total = 61 + payload;
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&base.to_be_bytes());
    b.extend_from_slice(&((total - 12) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&(records.max(1) - 1).to_be_bytes());
    b.extend_from_slice(&(1_700_000_000_000 + base).to_be_bytes());
    b.extend_from_slice(&(1_700_000_000_000 + base + 5).to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&records.to_be_bytes());
    let filler = b"{\"k\":\"value\",\"n\":12345}";
    b.extend((0..payload).map(|i| filler[i % filler.len()]));
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn header() -> SegmentHeader {
    SegmentHeader {
        format: 1,
        backup_id: "b".into(),
        run_id: "20260101T000000Z-00000000".into(),
        cluster_id: None,
        topic: "t".into(),
        topic_id: "00000000-0000-0000-0000-000000000000".into(),
        partition: 0,
        start_offset: 0,
        compression: Compression::None,
        compression_level: None,
        created_at: "2026-01-01T00:00:00Z".into(),
        encryption: None,
        aborted_transactions: vec![AbortedTransaction {
            producer_id: 5,
            first_offset: 3,
        }],
    }
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "crates/backup-format/fuzz/corpus/segment_reader".into());
    std::fs::create_dir_all(&dir)?;
    let mut n = 0;
    let mut put = |mode: u8, data: &[u8]| -> std::io::Result<()> {
        n += 1;
        std::fs::write(format!("{dir}/seed-{n:03}"), [&[mode][..], data].concat())
    };
    let mut entry = None;
    let (signing, _) = SigningKey::generate().expect("signing key");
    for compression in [Compression::None, Compression::Zstd, Compression::Lz4] {
        let mut w = SegmentWriter::new(
            header(),
            WriterOptions {
                compression,
                chunk_target_bytes: 300,
                ..WriterOptions::default()
            },
        )
        .expect("writer");
        w.push_batch(&batch(0, 3, 0, -1)).expect("batch");
        w.push_batch(&batch(3, 2, 0x10, 5)).expect("batch");
        w.push_batch(&batch(5, 1, 0x30, 5)).expect("batch");
        w.push_batch(&batch(10, 4, 0, 7)).expect("batch");
        let seg = w.finish().expect("segment");
        for mode in 0..3 {
            put(mode, &seg.bytes)?;
        }
        put(3, seg.key().as_bytes())?;
        entry = Some(SegmentEntry::from_finished(&seg, seg.key()));
        // The same, encrypted with the fuzz target's fixed data key, and its signed name.
        let key = std::sync::Arc::new(RunKey {
            data_key: DataKey::from_slice(&[0x5a; 32]).expect("32 bytes"),
            wrapped: WrappedKey {
                provider: ProviderKind::Local,
                key_ids: vec!["fuzz".into()],
                blob: vec![1; 61],
            },
        });
        let mut w = SegmentWriter::new(
            header(),
            WriterOptions {
                compression,
                chunk_target_bytes: 300,
                encryption: Some(key),
                ..WriterOptions::default()
            },
        )
        .expect("writer");
        w.push_batch(&batch(0, 3, 0, -1)).expect("batch");
        w.push_batch(&batch(3, 2, 0x10, 5)).expect("batch");
        let seg = w.finish().expect("segment");
        put(0, &seg.bytes)?;
        put(1, &seg.bytes)?;
        let signed = seg
            .segment_key()
            .sign(&signing)
            .expect("name")
            .to_key()
            .expect("key");
        put(3, signed.as_bytes())?;
    }
    let gap = Gap {
        topic: "t".into(),
        topic_id: "00000000-0000-0000-0000-000000000000".into(),
        partition: 0,
        from: 20,
        to: 30,
        reason: "retention".into(),
        detected_at: "2026-01-01T00:00:00Z".into(),
    };
    let topics = vec![TopicSnapshot {
        name: "t".into(),
        topic_id: "00000000-0000-0000-0000-000000000000".into(),
        is_internal: false,
        partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
    }];
    let segments: Vec<SegmentEntry> = entry.into_iter().collect();
    let manifest = RunManifest {
        format: 1,
        backup_id: "b".into(),
        run_id: "20260101T000000Z-00000000".into(),
        part: 0,
        final_part: true,
        tool_version: "0.1.0".into(),
        mode: RunMode::Continuous,
        status: RunStatus::Interrupted,
        started_at: "2026-01-01T00:00:00Z".into(),
        written_at: "2026-01-01T00:00:00Z".into(),
        finished_at: None,
        source: SourceCluster {
            cluster_id: None,
            bootstrap_servers: vec!["localhost:9092".into()],
        },
        summary: RunSummary::tally(&topics, &segments, 1),
        topics,
        segments,
        gaps: vec![gap.clone()],
        consumer_groups: None,
        previous: None,
        end_offsets: Vec::new(),
        signing_key_id: None,
        encryption: None,
        sealed: None,
    };
    put(3, &manifest.to_json().expect("manifest"))?;
    let descriptor = BackupDescriptor {
        format: 1,
        backup_id: "b".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        source_cluster_id: Some("c".into()),
        tool_version: "0.1.0".into(),
    };
    put(3, &descriptor.to_json().expect("descriptor"))?;
    let record = GapRecord {
        format: 1,
        backup_id: "b".into(),
        run_id: "r".into(),
        gap: gap.clone(),
        encryption: None,
        sealed: None,
    };
    put(3, &record.to_json().expect("gap record"))?;
    put(3, gap.key("b").expect("gap key").as_bytes())?;
    put(3, b"b/runs/20260101T000000Z-00000000/manifest-000001.json")?;
    println!("wrote {n} seeds to {dir}");
    Ok(())
}

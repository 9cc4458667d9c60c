//! Shared test helpers: record batches (encoded by kafka-protocol, or built by hand for
//! control, transactional and compacted batches), a deterministic PRNG, a segment header,
//! and a splitter that takes a segment apart so tests can damage one piece of it.
#![allow(dead_code)]

use backup_format::segment::{
    CHUNK_HEADER_LEN, Compression, END_MAGIC, PREAMBLE_LEN, TRAILER_HEADER_LEN,
};
use backup_format::{FinishedSegment, SegmentHeader, SegmentWriter, WriterOptions};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression as KafkaCompression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub const TOPIC_ID: &str = "0f5b3d2e-8c1a-4e6f-9a7b-123456789abc";

/// A header for partition 3 of `orders`, starting at `start_offset`.
pub fn header(start_offset: i64) -> SegmentHeader {
    SegmentHeader {
        format: 1,
        backup_id: "prod".into(),
        run_id: "20261123T183000Z-1a2b3c4d".into(),
        cluster_id: Some("c1".into()),
        topic: "orders".into(),
        topic_id: TOPIC_ID.into(),
        partition: 3,
        start_offset,
        compression: Compression::None,
        compression_level: None,
        created_at: "2026-11-23T18:30:00.000Z".into(),
        encryption: None,
        aborted_transactions: Vec::new(),
    }
}

/// JSON-like value of about `len` bytes, varied enough that compression is realistic.
pub fn json_value(i: i64, len: usize) -> Vec<u8> {
    let mut v = format!(
        "{{\"id\":{i},\"customer\":\"c-{}\",\"status\":\"{}\",\"amount\":{}.{:02},\"items\":[",
        i * 7919 % 100_000,
        ["new", "paid", "shipped", "cancelled"][(i % 4) as usize],
        i * 31 % 1000,
        i % 100
    )
    .into_bytes();
    let mut k = 0;
    while v.len() + 40 < len {
        v.extend_from_slice(
            format!(
                "{{\"sku\":\"SKU-{:06}\",\"qty\":{}}},",
                (i * 13 + k) % 999_983,
                k % 9 + 1
            )
            .as_bytes(),
        );
        k += 1;
    }
    v.extend_from_slice(b"{}]}");
    v.resize(len.max(v.len()), b' ');
    v
}

/// A batch of `n` records at `base`, encoded by kafka-protocol (the client library's encoder).
pub fn encoded_batch(base: i64, n: i64, value_len: usize) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 5,
            producer_id: 1000,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: base + i,
            // The encoder keeps records in one batch only while offset - sequence is constant.
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + base + i,
            key: Some(Bytes::from(format!("key-{}", base + i))),
            value: Some(Bytes::from(json_value(base + i, value_len))),
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
    .unwrap();
    buf.freeze()
}

/// Fields of a hand-built batch.
#[derive(Clone, Copy)]
pub struct Hand {
    pub base: i64,
    pub last_delta: i32,
    pub records: i32,
    pub attributes: i16,
    pub producer_id: i64,
    pub base_ts: i64,
    pub max_ts: i64,
    pub payload_len: usize,
}

impl Hand {
    pub fn new(base: i64, records: i32) -> Self {
        Self {
            base,
            last_delta: records - 1,
            records,
            attributes: 0,
            producer_id: -1,
            base_ts: base.wrapping_add(1_700_000_000_000),
            max_ts: base.wrapping_add(1_700_000_000_000 + i64::from(records)),
            payload_len: 40 * records.max(1) as usize,
        }
    }

    /// The batch bytes with a correct CRC. The records section is filler: nothing in the
    /// format decodes records, so only the header and CRC matter.
    pub fn build(self) -> Bytes {
        let total = 61 + self.payload_len;
        let mut b = Vec::with_capacity(total);
        b.extend_from_slice(&self.base.to_be_bytes());
        b.extend_from_slice(&((total - 12) as i32).to_be_bytes());
        b.extend_from_slice(&7i32.to_be_bytes()); // partition leader epoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 4]); // crc, below
        b.extend_from_slice(&self.attributes.to_be_bytes());
        b.extend_from_slice(&self.last_delta.to_be_bytes());
        b.extend_from_slice(&self.base_ts.to_be_bytes());
        b.extend_from_slice(&self.max_ts.to_be_bytes());
        b.extend_from_slice(&self.producer_id.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&self.records.to_be_bytes());
        b.extend(
            (0..self.payload_len).map(|i| (i as u64 * 31).wrapping_add(self.base as u64) as u8),
        );
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(b)
    }
}

/// Writes `batches` into a segment starting at `start`.
pub fn write(
    start: i64,
    batches: &[Bytes],
    compression: Compression,
    chunk_target: usize,
) -> FinishedSegment {
    let mut w = SegmentWriter::new(
        header(start),
        WriterOptions {
            compression,
            chunk_target_bytes: chunk_target,
            ..WriterOptions::default()
        },
    )
    .unwrap();
    for b in batches {
        w.push_batch(b).unwrap();
    }
    w.finish().unwrap()
}

/// A typical small segment: 12 encoded batches of 4 records, ~3 chunks.
pub fn small_segment(compression: Compression) -> (FinishedSegment, Vec<Bytes>) {
    let batches: Vec<Bytes> = (0..12)
        .map(|i| encoded_batch(100 + i * 4, 4, 300))
        .collect();
    (write(100, &batches, compression, 5_000), batches)
}

/// splitmix64: tiny, deterministic, good enough to drive mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// A segment taken apart (trusting its layout): tests change one piece and reassemble.
#[derive(Clone, Debug)]
pub struct Parts {
    pub version: u16,
    pub flags: u16,
    pub header: Vec<u8>,
    /// (kind, raw_len, stored_len, crc, stored bytes)
    pub chunks: Vec<(u8, u32, u32, u32, Vec<u8>)>,
    pub trailer: Vec<u8>,
    pub end: [u8; 8],
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

impl Parts {
    pub fn split(b: &[u8]) -> Self {
        let header_len = u32_at(b, 12) as usize;
        let header = b[PREAMBLE_LEN..PREAMBLE_LEN + header_len].to_vec();
        let mut pos = PREAMBLE_LEN + header_len;
        let mut chunks = Vec::new();
        while b[pos] == 0x01 {
            let raw = u32_at(b, pos + 1);
            let stored = u32_at(b, pos + 5);
            let crc = u32_at(b, pos + 9);
            let data_at = pos + CHUNK_HEADER_LEN;
            chunks.push((
                1,
                raw,
                stored,
                crc,
                b[data_at..data_at + stored as usize].to_vec(),
            ));
            pos = data_at + stored as usize;
        }
        let tlen = u32_at(b, pos + 1) as usize;
        let trailer = b[pos + TRAILER_HEADER_LEN..pos + TRAILER_HEADER_LEN + tlen].to_vec();
        let end = b[b.len() - 8..].try_into().unwrap();
        Self {
            version: u16::from_be_bytes([b[8], b[9]]),
            flags: u16::from_be_bytes([b[10], b[11]]),
            header,
            chunks,
            trailer,
            end,
        }
    }

    pub fn join(&self) -> Bytes {
        let mut b = Vec::new();
        b.extend_from_slice(&backup_format::segment::MAGIC);
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(&self.flags.to_be_bytes());
        b.extend_from_slice(&(self.header.len() as u32).to_be_bytes());
        b.extend_from_slice(&self.header);
        for (kind, raw, stored, crc, data) in &self.chunks {
            b.push(*kind);
            b.extend_from_slice(&raw.to_be_bytes());
            b.extend_from_slice(&stored.to_be_bytes());
            b.extend_from_slice(&crc.to_be_bytes());
            b.extend_from_slice(data);
        }
        b.push(0xFF);
        b.extend_from_slice(&(self.trailer.len() as u32).to_be_bytes());
        b.extend_from_slice(&self.trailer);
        b.extend_from_slice(&self.end);
        assert_eq!(END_MAGIC.len(), self.end.len());
        Bytes::from(b)
    }

    /// Replaces a chunk's content with `raw`, stored as is, with a correct CRC: a hostile
    /// writer, not storage damage.
    pub fn set_plain_chunk(&mut self, i: usize, raw: &[u8]) {
        self.chunks[i] = (
            1,
            raw.len() as u32,
            raw.len() as u32,
            crc32c::crc32c(raw),
            raw.to_vec(),
        );
    }

    /// Edits the trailer JSON.
    pub fn edit_trailer(&mut self, f: impl FnOnce(&mut serde_json::Value)) {
        let mut v: serde_json::Value = serde_json::from_slice(&self.trailer).unwrap();
        f(&mut v);
        self.trailer = serde_json::to_vec(&v).unwrap();
    }

    /// Edits the header JSON.
    pub fn edit_header(&mut self, f: impl FnOnce(&mut serde_json::Value)) {
        let mut v: serde_json::Value = serde_json::from_slice(&self.header).unwrap();
        f(&mut v);
        self.header = serde_json::to_vec(&v).unwrap();
    }
}

//! Helpers shared by the kafka-records integration tests: a deterministic PRNG (no extra
//! dependency) and records that exercise everything a batch must carry exactly.
#![allow(dead_code)]

use bytes::Bytes;
use kafka_records::{Header, Record};

/// SplitMix64: deterministic, so a failing case reproduces from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Between 0 and `max_len - 1` random bytes.
    pub fn some_bytes(&mut self, max_len: usize) -> Vec<u8> {
        let n = self.below(max_len);
        self.bytes(n)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Key, value, timestamp, headers.
type Row<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64, Vec<Header>);

pub const DAY_MS: i64 = 86_400_000;
pub const BASE_TS: i64 = 1_700_000_000_000;

/// Records covering null vs empty keys and values, duplicate header keys in a given order,
/// null and empty header values, non-UTF-8 bytes, a timestamp earlier than the first record's
/// (negative delta) and timestamps 30 days apart.
pub fn tricky_records(base_offset: i64) -> Vec<Record> {
    let h = |k: &[u8], v: Option<&[u8]>| Header {
        key: Bytes::copy_from_slice(k),
        value: v.map(Bytes::copy_from_slice),
    };
    let binary: Vec<u8> = (0..=255u8).collect();
    let rows: Vec<Row<'_>> = vec![
        (Some(b"key-0"), Some(b"value-0"), BASE_TS, vec![]),
        (
            None,
            Some(b"null key"),
            BASE_TS - 5 * DAY_MS,
            vec![h(b"a", Some(b"1"))],
        ),
        (Some(b""), Some(b"empty key"), BASE_TS + 30 * DAY_MS, vec![]),
        (Some(b"null value"), None, BASE_TS + 1, vec![h(b"", None)]),
        (
            Some(b"empty value"),
            Some(b""),
            BASE_TS - 1,
            vec![h(b"e", Some(b""))],
        ),
        (None, None, BASE_TS, vec![]),
        (
            Some(&binary),
            Some(&binary[..]),
            BASE_TS + 2,
            vec![
                h(b"dup", Some(b"first")),
                h(b"other", None),
                h(b"dup", None),
                h(b"dup", Some(b"third")),
                h(&[0xff, 0xfe, 0x00], Some(&[0x00, 0x80])),
            ],
        ),
    ];
    rows.into_iter()
        .enumerate()
        .map(|(i, (key, value, timestamp, headers))| Record {
            offset: base_offset + i as i64,
            timestamp,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers,
        })
        .collect()
}

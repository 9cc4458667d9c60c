//! Feeds arbitrary bytes to the segment reader and the JSON document parsers. The first byte
//! picks a mode; modes 1 and 2 repair CRCs first, so that mutations reach the decompressors,
//! the batch checks and the trailer checks instead of stopping at the first CRC mismatch.
#![no_main]

use backup_format::crypto::DataKey;
use backup_format::manifest::{BackupDescriptor, GapRecord, RunManifest};
use backup_format::naming;
use backup_format::segment::{
    CHUNK_HEADER_LEN, KIND_CHUNK, PREAMBLE_LEN, ReaderLimits, SegmentReader, peek_header,
    read_all_with, read_all_with_key, read_trailer,
};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

/// Low limits so that a decompression bomb costs milliseconds, not seconds.
fn limits() -> ReaderLimits {
    ReaderLimits {
        max_header_len: 64 << 10,
        max_chunk_raw_len: 4 << 20,
        max_total_raw_bytes: 16 << 20,
    }
}

fn be_u32(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

/// Recomputes the CRC of every complete chunk, and with `batches` first the CRCs of the
/// complete record batches inside uncompressed chunks. Lenient: stops at the first thing
/// that does not parse.
fn repair(b: &mut [u8], batches: bool) {
    let Some(header_len) = be_u32(b, 12) else {
        return;
    };
    let mut pos = PREAMBLE_LEN + header_len;
    while b.get(pos) == Some(&KIND_CHUNK) {
        let (Some(raw), Some(stored)) = (be_u32(b, pos + 1), be_u32(b, pos + 5)) else {
            return;
        };
        let data = pos + CHUNK_HEADER_LEN;
        let Some(end) = data.checked_add(stored).filter(|&e| e <= b.len()) else {
            return;
        };
        if batches && raw == stored {
            let chunk = &mut b[data..end];
            let mut q = 0;
            while q + 61 <= chunk.len() {
                let len =
                    i32::from_be_bytes([chunk[q + 8], chunk[q + 9], chunk[q + 10], chunk[q + 11]]);
                let Some(total) = usize::try_from(len).ok().map(|l| l + 12) else {
                    break;
                };
                if total < 61 || q + total > chunk.len() {
                    break;
                }
                let crc = crc32c::crc32c(&chunk[q + 21..q + total]);
                chunk[q + 17..q + 21].copy_from_slice(&crc.to_be_bytes());
                q += total;
            }
        }
        let crc = crc32c::crc32c(&b[data..end]);
        b[pos + 9..pos + 13].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
}

/// The data key the seeds' encrypted segments are written with (`examples/fuzz_seeds.rs`).
fn fuzz_key() -> DataKey {
    DataKey::from_slice(&[0x5a; 32]).expect("32 bytes")
}

fn read_segment(data: Vec<u8>) {
    let bytes = Bytes::from(data);
    let _ = peek_header(&bytes);
    // Encrypted segments: the reader with a key, and the tail reader, must never panic either.
    let key = fuzz_key();
    let _ = read_all_with_key(bytes.clone(), limits(), &key);
    let _ = read_trailer(&bytes, &bytes, Some(&key));
    let whole = read_all_with(bytes.clone(), limits());
    if let Ok(reader) = SegmentReader::new(bytes, limits()) {
        let mut n = 0;
        let mut last_ok = true;
        for batch in reader {
            last_ok = batch.is_ok();
            n += usize::from(last_ok);
        }
        // The streaming reader and read_all must agree on success and on the batch count.
        if let Ok(s) = &whole {
            assert!(last_ok && n == s.batches.len());
        }
    } else {
        assert!(whole.is_err());
    }
}

fn parse_documents(data: &[u8]) {
    if let Ok(m) = RunManifest::from_json(data) {
        // Whatever parses must serialize and parse back to the same thing.
        let again = RunManifest::from_json(&m.to_json().expect("valid manifest serializes"));
        assert_eq!(again.expect("round trip"), m);
    }
    let _ = BackupDescriptor::from_json(data);
    let _ = GapRecord::from_json(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(k) = naming::parse_segment_key(s) {
            assert_eq!(k.to_key().as_deref(), Ok(s));
        }
        if let Some(k) = naming::parse_gap_key(s) {
            assert_eq!(k.to_key().as_deref(), Ok(s));
        }
        if let Some(k) = naming::parse_manifest_key(s) {
            assert_eq!(k.to_key().as_deref(), Ok(s));
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    match mode % 4 {
        0 => read_segment(data.to_vec()),
        1 | 2 => {
            let mut data = data.to_vec();
            repair(&mut data, mode % 4 == 2);
            read_segment(data);
        }
        _ => parse_documents(data),
    }
});

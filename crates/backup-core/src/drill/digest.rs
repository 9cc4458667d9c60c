//! Record digests of one partition, as the backup holds it and as the target holds it after a
//! restore, so a drill can compare them record by record.
//!
//! A record's digest is the SHA-256 of its key, value (each with null distinct from empty),
//! headers in order (duplicates and null values kept) and timestamp: everything a consumer
//! sees except the offset, which a restore may change. The backup side keeps what a
//! read_committed consumer would have seen (aborted and still-open transactions and control
//! batches left out), exactly what a restore writes.

use std::time::Duration;

use backup_format::segment::{ReaderLimits, SegmentReader, object_sha256, peek_header};
use bytes::Bytes;
use kafka_client::{FetchOptions, FetchPartition, IsolationLevel, KafkaClient, TopicPartition};
use kafka_records::record::{Record, decode_batch};
use kafka_records::txn::{BatchSummary, Decision, MarkerIndex};
use ring::digest::{Context, SHA256};

use super::DrillError;
use crate::catalog::SegmentRef;
use crate::decrypt::{DataKeys, segment_data_key};
use crate::storage::Storage;

/// One partition's records, in order.
#[derive(Debug, Clone, Default)]
pub struct Side {
    /// Each record's offset (in its own log) and digest.
    pub records: Vec<(i64, [u8; 32])>,
    /// Newest record timestamp.
    pub newest_timestamp: Option<i64>,
}

impl Side {
    /// The SHA-256 over every record digest in order: equal sides have equal digests.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Context::new(&SHA256);
        for (_, d) in &self.records {
            h.update(d);
        }
        finish(h)
    }

    /// How many records lie before `offset`: the position a consumer committed at `offset`
    /// resumes from.
    pub fn position_of(&self, offset: i64) -> usize {
        self.records.partition_point(|(o, _)| *o < offset)
    }

    fn push(&mut self, r: &Record) {
        self.records.push((r.offset, record_digest(r)));
        self.newest_timestamp = Some(self.newest_timestamp.unwrap_or(i64::MIN).max(r.timestamp));
    }
}

/// Where two sides first differ, in words; `None` when they hold the same records in the
/// same order.
pub fn first_difference(backup: &Side, target: &Side) -> Option<String> {
    let at = |side: &Side, i: usize| {
        side.records
            .get(i)
            .map_or("nothing".to_owned(), |r| format!("offset {}", r.0))
    };
    (0..backup.records.len().max(target.records.len()))
        .find(|&i| backup.records.get(i).map(|r| r.1) != target.records.get(i).map(|r| r.1))
        .map(|i| {
            format!(
                "record {i}: the backup has {}, the target {}, and they differ",
                at(backup, i),
                at(target, i)
            )
        })
}

fn finish(h: Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(h.finish().as_ref());
    out
}

fn field(h: &mut Context, b: Option<&[u8]>) {
    match b {
        None => h.update(&[0u8]),
        Some(b) => {
            h.update(&[1u8]);
            h.update(&(b.len() as u64).to_be_bytes());
            h.update(b);
        }
    }
}

/// The digest of what a consumer sees of `r`, offset aside.
pub fn record_digest(r: &Record) -> [u8; 32] {
    let mut h = Context::new(&SHA256);
    field(&mut h, r.key.as_deref());
    field(&mut h, r.value.as_deref());
    h.update(&(r.headers.len() as u64).to_be_bytes());
    for header in &r.headers {
        field(&mut h, Some(&header.key));
        field(&mut h, header.value.as_deref());
    }
    h.update(&r.timestamp.to_be_bytes());
    finish(h)
}

/// Reads `segments` (one partition, in offset order), checking each against the SHA-256 in
/// its name and decrypting with `keys`, and calls `each` with every batch.
async fn for_each_batch(
    storage: &Storage,
    segments: &[SegmentRef],
    keys: Option<&dyn DataKeys>,
    mut each: impl FnMut(&Bytes) -> Result<(), DrillError>,
) -> Result<(), DrillError> {
    for seg in segments {
        let bad = |why: String| DrillError::Backup(format!("segment {}: {why}", seg.key));
        let bytes = storage.get_bounded(&seg.key, seg.size).await?;
        if object_sha256(&bytes) != seg.parsed.sha256 {
            return Err(bad("it does not match the SHA-256 in its name".into()));
        }
        let header = peek_header(&bytes).map_err(|e| bad(e.to_string()))?;
        let key = segment_data_key(keys, &header)
            .await
            .map_err(|why| bad(format!("cannot decrypt it: {why}")))?;
        let mut reader = match &key {
            Some(k) => SegmentReader::with_key(bytes, ReaderLimits::default(), k),
            None => SegmentReader::new(bytes, ReaderLimits::default()),
        }
        .map_err(|e| bad(e.to_string()))?;
        while let Some((_, batch)) = reader.next_batch().map_err(|e| bad(e.to_string()))? {
            each(&batch)?;
        }
    }
    Ok(())
}

/// The records of one backed-up partition a restore writes.
pub async fn backup_side(
    storage: &Storage,
    segments: &[SegmentRef],
    keys: Option<&dyn DataKeys>,
) -> Result<Side, DrillError> {
    let limits = crate::restore::decode_limits();
    let undecodable = |e: kafka_records::RecordError| DrillError::Backup(e.to_string());
    // One pass decides most partitions: without transactional batches every data batch is
    // kept. Otherwise the markers are indexed first and a second pass filters.
    let mut side = Side::default();
    let mut transactional = false;
    for_each_batch(storage, segments, keys, |batch| {
        let summary = BatchSummary::read(batch, &limits).map_err(undecodable)?;
        transactional |= summary.header.is_transactional();
        if !transactional && !summary.header.is_control() {
            for r in decode_batch(batch, &limits).map_err(undecodable)?.records {
                side.push(&r);
            }
        }
        Ok(())
    })
    .await?;
    if !transactional {
        return Ok(side);
    }
    let mut index = MarkerIndex::new();
    for_each_batch(storage, segments, keys, |batch| {
        index
            .observe(&BatchSummary::read(batch, &limits).map_err(undecodable)?)
            .map_err(undecodable)
    })
    .await?;
    let mut filter = index.into_filter();
    let mut side = Side::default();
    for_each_batch(storage, segments, keys, |batch| {
        let summary = BatchSummary::read(batch, &limits).map_err(undecodable)?;
        if filter.decide(&summary.header).map_err(undecodable)? == Decision::Keep {
            for r in decode_batch(batch, &limits).map_err(undecodable)?.records {
                side.push(&r);
            }
        }
        Ok(())
    })
    .await?;
    Ok(side)
}

/// The records of `tp` in the target from `start` up to `end` (exclusive), read back.
pub async fn target_side(
    client: &KafkaClient,
    tp: &TopicPartition,
    start: i64,
    end: i64,
) -> Result<Side, DrillError> {
    let limits = crate::restore::decode_limits();
    let options = FetchOptions {
        isolation: IsolationLevel::ReadUncommitted,
        max_wait: Duration::from_millis(200),
        ..FetchOptions::default()
    };
    let mut side = Side::default();
    let mut next = start;
    let mut idle = 0;
    while next < end {
        let leader = client
            .metadata()
            .partition(tp)
            .and_then(|p| p.leader)
            .ok_or_else(|| DrillError::Target(format!("{tp} has no leader in the target")))?;
        let request = [FetchPartition {
            tp: tp.clone(),
            offset: next,
            max_bytes: 8 << 20,
        }];
        let fetched = client.fetch(leader, &request, &options).await?;
        let Some(p) = fetched.partitions.into_iter().find(|p| &p.tp == tp) else {
            return Err(DrillError::Target(format!(
                "the fetch answer left out {tp}"
            )));
        };
        if let Some(e) = p.error {
            return Err(DrillError::Target(format!("reading {tp} back: {e:?}")));
        }
        let before = next;
        let mut rest = p.records.clone();
        while let Ok(h) = kafka_records::batch::BatchHeader::parse(&rest) {
            if h.total_len > rest.len() {
                break; // a trailing partial batch
            }
            let batch = rest.split_to(h.total_len);
            if h.last_offset() < next {
                continue;
            }
            if !h.is_control() {
                let decoded =
                    decode_batch(&batch, &limits).map_err(|e| DrillError::Target(e.to_string()))?;
                for r in decoded
                    .records
                    .iter()
                    .filter(|r| r.offset >= next && r.offset < end)
                {
                    side.push(r);
                }
            }
            next = h.last_offset() + 1;
        }
        if next == before {
            idle += 1;
            if idle > 20 || p.high_watermark <= next {
                return Err(DrillError::Target(format!(
                    "{tp} ends at offset {} in the target, before {end} where the restore said \
                     it wrote up to",
                    p.high_watermark
                )));
            }
        } else {
            idle = 0;
        }
    }
    Ok(side)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_records::record::Header;

    fn rec(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&[u8], Option<&[u8]>)]) -> Record {
        Record {
            offset: 7,
            timestamp: 1_700_000_000_000,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: headers
                .iter()
                .map(|(k, v)| Header {
                    key: Bytes::copy_from_slice(k),
                    value: v.map(Bytes::copy_from_slice),
                })
                .collect(),
        }
    }

    #[test]
    fn the_digest_tells_apart_what_a_consumer_can_tell_apart() {
        let base = record_digest(&rec(
            Some(b"k"),
            Some(b"v"),
            &[(b"a", Some(b"1")), (b"b", None)],
        ));
        let variants = [
            rec(None, Some(b"v"), &[(b"a", Some(b"1")), (b"b", None)]),
            rec(Some(b""), Some(b"v"), &[(b"a", Some(b"1")), (b"b", None)]),
            rec(Some(b"k"), None, &[(b"a", Some(b"1")), (b"b", None)]),
            rec(Some(b"k"), Some(b""), &[(b"a", Some(b"1")), (b"b", None)]),
            rec(Some(b"k"), Some(b"v"), &[(b"b", None), (b"a", Some(b"1"))]),
            rec(
                Some(b"k"),
                Some(b"v"),
                &[(b"a", Some(b"1")), (b"b", Some(b""))],
            ),
            rec(Some(b"k"), Some(b"v"), &[(b"a", Some(b"1"))]),
            rec(
                Some(b"k"),
                Some(b"v"),
                &[(b"a", Some(b"1")), (b"b", None), (b"b", None)],
            ),
            rec(Some(b"kv"), Some(b""), &[(b"a", Some(b"1")), (b"b", None)]),
        ];
        for v in &variants {
            assert_ne!(record_digest(v), base, "{v:?}");
        }
        let mut later = rec(Some(b"k"), Some(b"v"), &[(b"a", Some(b"1")), (b"b", None)]);
        later.timestamp += 1;
        assert_ne!(record_digest(&later), base);
        // The offset is not part of it: a restore may move records.
        later.timestamp -= 1;
        later.offset = 99;
        assert_eq!(record_digest(&later), base);
    }

    #[test]
    fn sides_differ_at_the_first_record_that_differs_or_is_missing() {
        let side = |records: &[(i64, u8)]| Side {
            records: records.iter().map(|&(o, d)| (o, [d; 32])).collect(),
            newest_timestamp: None,
        };
        let backup = side(&[(10, 1), (11, 2), (12, 3)]);
        // Offsets may differ (the target starts elsewhere); the records may not.
        assert_eq!(
            first_difference(&backup, &side(&[(0, 1), (1, 2), (2, 3)])),
            None
        );
        assert_eq!(
            first_difference(&backup, &side(&[(0, 1), (1, 9), (2, 3)])).unwrap(),
            "record 1: the backup has offset 11, the target offset 1, and they differ"
        );
        assert_eq!(
            first_difference(&backup, &side(&[(0, 1), (1, 2)])).unwrap(),
            "record 2: the backup has offset 12, the target nothing, and they differ"
        );
        assert!(first_difference(&backup, &side(&[(0, 1), (1, 2), (2, 3), (3, 4)])).is_some());
        assert!(first_difference(&backup, &side(&[(0, 2), (1, 1), (2, 3)])).is_some());
        assert_ne!(backup.digest(), side(&[(0, 2), (1, 1), (2, 3)]).digest());
        assert_eq!(backup.digest(), side(&[(0, 1), (1, 2), (2, 3)]).digest());
    }

    #[test]
    fn positions_count_the_records_before_an_offset() {
        let side = Side {
            records: vec![(3, [0; 32]), (5, [1; 32]), (9, [2; 32])],
            newest_timestamp: None,
        };
        assert_eq!(side.position_of(0), 0);
        assert_eq!(side.position_of(4), 1);
        assert_eq!(side.position_of(5), 1);
        assert_eq!(side.position_of(10), 3);
    }
}

//! The plan of one partition before a restore produces anything: its segments' continuity,
//! figures and transaction markers, so that aborted transactions can be left out while
//! producing.
//!
//! A segment whose manifest entry lists its markers is planned from the entry alone and read
//! once, by the produce pass, which checks it whole before producing any of its batches. A
//! segment without such an entry (a run killed before its manifest, or a manifest from before
//! markers were listed) is read and checked here, and read again when produced.

use backup_format::crypto::DataKey;
use backup_format::segment::object_sha256;
use backup_format::{ReaderLimits, SegmentReader};
use kafka_client::TopicPartition;
use kafka_records::txn::{BatchSummary, MarkerIndex};

use super::units::limits;
use crate::catalog::{PartitionCatalog, SegmentRef, read_limits};
use crate::decrypt::{DataKeys, segment_data_key};
use crate::storage::Storage;

/// What the scan of one partition found.
pub(crate) struct ScannedPartition {
    pub source: TopicPartition,
    pub lineage: String,
    pub segments: Vec<SegmentRef>,
    pub index: MarkerIndex,
    pub batches: u64,
    pub records: u64,
    /// Bytes read from storage by the plan (segments without markers in their entry).
    pub stored_bytes: u64,
    pub first_offset: Option<i64>,
    pub end_offset: Option<i64>,
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    /// Integrity problems, one line each, naming the object.
    pub problems: Vec<String>,
    /// Segments that failed a check: left out when a restore is forced.
    pub bad_segments: Vec<String>,
    /// Segments that could not be decrypted with the configured keys, and why: a restore
    /// stops on them, forced or not (a key is missing, not data).
    pub key_failures: Vec<(String, crate::decrypt::KeyFailure)>,
}

/// Reads and checks every segment of one partition, in order.
pub(crate) async fn scan_partition(
    storage: &Storage,
    source: TopicPartition,
    lineage: &str,
    catalog: &PartitionCatalog,
    keys: Option<&dyn DataKeys>,
    require_encrypted: bool,
) -> Result<ScannedPartition, crate::storage::StorageError> {
    let mut out = ScannedPartition {
        source: source.clone(),
        lineage: lineage.to_owned(),
        segments: catalog.segments.clone(),
        index: MarkerIndex::new(),
        batches: 0,
        records: 0,
        stored_bytes: 0,
        first_offset: None,
        end_offset: None,
        min_timestamp: None,
        max_timestamp: None,
        problems: Vec::new(),
        bad_segments: Vec::new(),
        key_failures: Vec::new(),
    };
    let mut expected: Option<i64> = None;
    for seg in &catalog.segments {
        let key = &seg.parsed;
        if let Some(end) = expected
            && key.start_offset != end
        {
            let explained = catalog
                .gaps
                .iter()
                .any(|g| g.from <= end && g.to >= key.start_offset);
            if !explained {
                out.problems.push(format!(
                    "{source}: offsets {end} to {} are missing between segments (before {})",
                    key.start_offset - 1,
                    seg.key
                ));
            }
        }
        expected = Some(key.last_offset + 1);
        if let Some(entry) = &seg.entry
            && (entry.sha256 != key.sha256 || entry.stored_bytes != seg.size)
        {
            out.problems.push(format!(
                "{source}: segment {} does not match the SHA-256 and size its manifest lists",
                seg.key
            ));
            out.bad_segments.push(seg.key.clone());
            continue;
        }
        if seg.size > read_limits::SEGMENT {
            out.problems.push(format!(
                "{source}: segment {} is {} bytes, more than any segment kafka-backup writes",
                seg.key, seg.size
            ));
            out.bad_segments.push(seg.key.clone());
            continue;
        }
        if let Some(entry) = &seg.entry
            && let Some(markers) = &entry.markers
        {
            if let Err(problem) = plan_from_entry(&mut out, entry, markers) {
                out.problems
                    .push(format!("{source}: segment {}: {problem}", seg.key));
                out.bad_segments.push(seg.key.clone());
            }
            continue;
        }
        let bytes = match storage.get_bounded(&seg.key, read_limits::SEGMENT).await {
            Ok(b) => b,
            Err(too_large @ crate::storage::StorageError::TooLarge { .. }) => {
                out.problems
                    .push(format!("{source}: segment {}: {too_large}", seg.key));
                out.bad_segments.push(seg.key.clone());
                continue;
            }
            Err(crate::storage::StorageError::NotFound { .. }) => {
                out.problems
                    .push(format!("{source}: segment {} is missing", seg.key));
                out.bad_segments.push(seg.key.clone());
                continue;
            }
            Err(e) => return Err(e),
        };
        out.stored_bytes += bytes.len() as u64;
        if object_sha256(&bytes) != key.sha256 {
            out.problems.push(format!(
                "{source}: segment {} does not match the SHA-256 in its name (changed or replaced after it was written)",
                seg.key
            ));
            out.bad_segments.push(seg.key.clone());
            continue;
        }
        let data_key = match backup_format::segment::peek_header(&bytes) {
            Ok(header) if require_encrypted && header.encryption.is_none() => {
                out.problems.push(format!(
                    "{source}: segment {} is stored in the clear, but this restore decrypts \
                     (restore.encryption) and nothing authenticates the backup (no \
                     restore.verify_key): it was written before encryption was enabled, or \
                     replaced in the clear by someone with write access; restore it with \
                     --accept-unauthenticated only if you trust everyone who can write to the \
                     bucket",
                    seg.key
                ));
                out.bad_segments.push(seg.key.clone());
                continue;
            }
            Ok(header) => match segment_data_key(keys, &header).await {
                Ok(k) => k,
                Err(why) => {
                    out.key_failures
                        .push((format!("{source}: segment {}", seg.key), why));
                    out.bad_segments.push(seg.key.clone());
                    continue;
                }
            },
            Err(e) => {
                out.problems
                    .push(format!("{source}: segment {}: {e}", seg.key));
                out.bad_segments.push(seg.key.clone());
                continue;
            }
        };
        match check_without_transactions(&mut out, &seg.key, &bytes, data_key.as_ref()) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(problem) => {
                out.problems
                    .push(format!("{source}: segment {}: {problem}", seg.key));
                out.bad_segments.push(seg.key.clone());
                continue;
            }
        }
        if let Err(problem) = check_batches(&mut out, &seg.key, bytes, data_key.as_ref()) {
            out.problems
                .push(format!("{source}: segment {}: {problem}", seg.key));
            out.bad_segments.push(seg.key.clone());
        }
    }
    // A forced restore leaves the failed segments out (their records are lost, and said so).
    let bad = std::mem::take(&mut out.bad_segments);
    out.segments.retain(|s| !bad.contains(&s.key));
    out.bad_segments = bad;
    Ok(out)
}

/// Plans a segment from its (authentic) manifest entry: figures and markers, nothing read.
fn plan_from_entry(
    out: &mut ScannedPartition,
    entry: &backup_format::SegmentEntry,
    markers: &[backup_format::TxnMarker],
) -> Result<(), String> {
    use kafka_records::ControlKind;
    for m in markers {
        let kind = if m.commit {
            ControlKind::Commit
        } else {
            ControlKind::Abort
        };
        out.index
            .record_marker(m.offset, m.producer_id, kind)
            .map_err(|e| {
                format!("its manifest entry lists transaction markers out of order: {e}")
            })?;
    }
    out.add_segment(Figures {
        batches: entry.batches,
        records: entry.records,
        start_offset: entry.start_offset,
        end_offset: entry.end_offset,
        min_timestamp: entry.min_timestamp,
        max_timestamp: entry.max_timestamp,
    });
    Ok(())
}

/// The quick check of a segment whose SHA-256 matched its name (so every byte is what the
/// backup wrote): its header must name this backup's partition and range, and its trailer
/// must end where its name says. A segment without transactional batches needs nothing more
/// before producing, as it holds no marker to index: `Ok(true)`, with its figures taken from
/// the trailer. `Ok(false)`: read it whole with [`check_batches`]. Its chunks and batches are
/// still checked (CRC32C) as they are read for producing.
fn check_without_transactions(
    out: &mut ScannedPartition,
    key: &str,
    bytes: &[u8],
    data_key: Option<&DataKey>,
) -> Result<bool, String> {
    let parsed = backup_format::naming::parse_segment_key(key).ok_or("its name does not parse")?;
    let (header, trailer) = check_place(bytes, &parsed, data_key)?;
    if trailer.transactional_batches > 0 {
        return Ok(false);
    }
    out.add_segment(Figures {
        batches: trailer.batches,
        records: trailer.records,
        start_offset: header.start_offset,
        end_offset: trailer.end_offset,
        min_timestamp: trailer.min_timestamp,
        max_timestamp: trailer.max_timestamp,
    });
    Ok(true)
}

/// A segment's header and trailer (read from its tail; for an encrypted segment the
/// trailer's tag authenticates both) must describe the partition and range its name says.
pub(crate) fn check_place(
    bytes: &[u8],
    parsed: &backup_format::SegmentKey,
    data_key: Option<&DataKey>,
) -> Result<(backup_format::SegmentHeader, backup_format::SegmentTrailer), String> {
    let (header, trailer) =
        backup_format::segment::read_trailer(bytes, bytes, data_key).map_err(|e| e.to_string())?;
    check_identity(&header, parsed)?;
    if trailer.end_offset != parsed.last_offset + 1 {
        return Err(format!(
            "its trailer ends at offset {}, its name at {}",
            trailer.end_offset - 1,
            parsed.last_offset
        ));
    }
    Ok((header, trailer))
}

/// What one segment adds to its partition's figures.
struct Figures {
    batches: u64,
    records: u64,
    start_offset: i64,
    end_offset: i64,
    /// -1 when no batch has one.
    min_timestamp: i64,
    max_timestamp: i64,
}

impl ScannedPartition {
    fn add_segment(&mut self, f: Figures) {
        self.batches += f.batches;
        self.records += f.records;
        self.first_offset.get_or_insert(f.start_offset);
        self.end_offset = Some(f.end_offset);
        if f.max_timestamp >= 0 {
            self.max_timestamp = Some(
                self.max_timestamp
                    .map_or(f.max_timestamp, |m| m.max(f.max_timestamp)),
            );
        }
        if f.min_timestamp >= 0 {
            self.min_timestamp = Some(
                self.min_timestamp
                    .map_or(f.min_timestamp, |m| m.min(f.min_timestamp)),
            );
        }
    }
}

/// A segment's header must describe the partition and range its name (and so its place in
/// the backup) says: a segment of another backup or partition copied in its place does not.
fn check_identity(
    header: &backup_format::SegmentHeader,
    parsed: &backup_format::SegmentKey,
) -> Result<(), String> {
    if header.backup_id != parsed.backup_id
        || header.topic != parsed.topic
        || header.topic_id != parsed.topic_id
        || header.partition != parsed.partition
        || header.start_offset != parsed.start_offset
    {
        return Err(format!(
            "its header describes {}/{} partition {} from offset {} of backup {}: it was put in place of \
             another segment",
            header.topic, header.topic_id, header.partition, header.start_offset, header.backup_id
        ));
    }
    Ok(())
}

/// Parses a segment (chunk CRCs, batch CRC32C, trailer), checks that its header names this
/// backup's partition and range, and indexes its transaction markers.
fn check_batches(
    out: &mut ScannedPartition,
    key: &str,
    bytes: bytes::Bytes,
    data_key: Option<&DataKey>,
) -> Result<(), String> {
    let parsed = backup_format::naming::parse_segment_key(key).ok_or("its name does not parse")?;
    let mut reader = match data_key {
        Some(k) => SegmentReader::with_key(bytes, ReaderLimits::default(), k),
        None => SegmentReader::new(bytes, ReaderLimits::default()),
    }
    .map_err(|e| e.to_string())?;
    let header = reader.header().clone();
    check_identity(&header, &parsed)?;
    let limits = limits();
    while let Some((batch_header, batch)) = reader.next_batch().map_err(|e| e.to_string())? {
        let summary = BatchSummary::read(&batch, &limits).map_err(|e| e.to_string())?;
        out.index.observe(&summary).map_err(|e| e.to_string())?;
        out.batches += 1;
        out.records += u64::from(batch_header.record_count.max(0) as u32);
        out.first_offset.get_or_insert(header.start_offset);
        out.end_offset = Some(batch_header.last_offset() + 1);
        if !batch_header.is_control() {
            let ts = batch_header.max_timestamp;
            out.max_timestamp = Some(out.max_timestamp.map_or(ts, |m| m.max(ts)));
            let first = batch_header.base_timestamp;
            out.min_timestamp = Some(out.min_timestamp.map_or(first, |m| m.min(first)));
        }
    }
    let trailer = reader.trailer().ok_or("it has no trailer (truncated)")?;
    if trailer.end_offset != parsed.last_offset + 1 {
        return Err(format!(
            "its trailer ends at offset {}, its name at {}",
            trailer.end_offset - 1,
            parsed.last_offset
        ));
    }
    Ok(())
}

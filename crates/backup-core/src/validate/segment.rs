//! Checking one segment object: its bytes against the SHA-256 in its name, its structure with
//! the segment reader (magic, version, chunk CRC32C, batch CRC32C, offsets, trailer), its
//! header against its key (a segment copied here from another backup or partition), its
//! trailer against its manifest entry and, deep, every record of every batch.

use std::collections::HashSet;

use backup_format::crypto::DataKey;
use backup_format::segment::{AbortedTransaction, object_sha256, peek_header};
use backup_format::{FormatError, ReaderLimits, SegmentReader};
use bytes::Bytes;
use kafka_records::{BatchSummary, DecodeLimits, decode_batch};

use crate::catalog::{Problem, ProblemKind, SegmentRef, read_limits};
use crate::decrypt::DataKeys;
use crate::storage::{Storage, StorageError};

/// Problems of one kind reported per segment before the rest are summarized: a damaged
/// segment of small batches would otherwise report every batch.
const MAX_DEEP_PROBLEMS: usize = 10;

/// What checking one segment found, beyond its problems: the figures that the whole-backup
/// report adds up, and what the partition-wide transaction check needs.
#[derive(Debug, Clone, Default)]
pub struct SegmentCheck {
    /// What is wrong with it.
    pub problems: Vec<Problem>,
    /// Whether the reader verified it to its end (structure, CRCs and trailer; the hash and
    /// identity checks are separate problems).
    pub readable: bool,
    /// Object size read.
    pub bytes: u64,
    /// Record batches read.
    pub batches: u64,
    /// Records by the batch headers (control records included).
    pub records: u64,
    /// Deep: records actually decoded.
    pub records_decoded: u64,
    /// Control batches (transaction markers).
    pub control_batches: u64,
    /// Deep: the batches that matter to transaction markers, in offset order: every control
    /// batch, and a producer's first transactional batch after each of its markers.
    pub txn_events: Vec<BatchSummary>,
    /// The aborted transactions the header lists.
    pub aborted_transactions: Vec<AbortedTransaction>,
    /// The segment is encrypted.
    pub encrypted: bool,
    /// Encrypted, and no key was available: only its hash, name and clear header were
    /// checked.
    pub not_decrypted: bool,
}

/// Reads and checks one segment; see the module documentation. A storage failure is a
/// [`ProblemKind::Unreadable`] problem here, so callers that only need a verdict get one;
/// `validate` itself fails with the storage error instead.
pub async fn verify_segment(
    storage: &Storage,
    segment: &SegmentRef,
    deep: bool,
    keys: Option<&dyn DataKeys>,
) -> Vec<Problem> {
    match fetch_and_check(storage, segment, deep, keys).await {
        Ok(check) => check.problems,
        Err(e) => vec![located(
            Problem::new(ProblemKind::Unreadable, e.to_string()),
            segment,
        )],
    }
}

/// Reads the object and checks it off the async threads (hashing, decompression and decoding
/// take CPU). `Err` only for storage failures other than "not found".
pub(crate) async fn fetch_and_check(
    storage: &Storage,
    segment: &SegmentRef,
    deep: bool,
    keys: Option<&dyn DataKeys>,
) -> Result<SegmentCheck, StorageError> {
    if segment.size > read_limits::SEGMENT {
        return Ok(SegmentCheck {
            problems: vec![located(
                Problem::new(
                    ProblemKind::CorruptSegment,
                    format!(
                        "the object is {} bytes, more than any segment kafka-backup writes; it \
                         was not read",
                        segment.size
                    ),
                ),
                segment,
            )],
            ..SegmentCheck::default()
        });
    }
    let bytes = match storage
        .get_bounded(&segment.key, read_limits::SEGMENT)
        .await
    {
        Ok(b) => b,
        Err(too_large @ StorageError::TooLarge { .. }) => {
            return Ok(SegmentCheck {
                problems: vec![located(
                    Problem::new(ProblemKind::CorruptSegment, too_large.to_string()),
                    segment,
                )],
                ..SegmentCheck::default()
            });
        }
        Err(StorageError::NotFound { .. }) => {
            return Ok(SegmentCheck {
                problems: vec![located(
                    Problem::new(
                        ProblemKind::MissingSegment,
                        "the segment was listed but is gone (removed while being validated?)",
                    ),
                    segment,
                )],
                ..SegmentCheck::default()
            });
        }
        Err(e) => return Err(e),
    };
    // An encrypted segment's data key is unwrapped first (a KMS call is async); a failure is
    // a problem of this segment, named with the reason.
    let mut data_key = None;
    if let (Some(keys), Ok(header)) = (keys, peek_header(&bytes))
        && let Some(e) = &header.encryption
    {
        match keys
            .data_key(&e.key, &header.backup_id, &header.run_id)
            .await
        {
            Ok(k) => data_key = Some(k),
            Err(why) => {
                return Ok(SegmentCheck {
                    bytes: bytes.len() as u64,
                    encrypted: true,
                    not_decrypted: true,
                    problems: vec![located(
                        Problem::new(
                            ProblemKind::Undecryptable,
                            format!("cannot decrypt it: {why}"),
                        ),
                        segment,
                    )],
                    ..SegmentCheck::default()
                });
            }
        }
    }
    let owned = segment.clone();
    let check = tokio::task::spawn_blocking(move || {
        check_segment_bytes(&owned, bytes, deep, data_key.as_ref())
    })
    .await
    .unwrap_or_else(|e| SegmentCheck {
        problems: vec![located(
            Problem::new(
                ProblemKind::CorruptSegment,
                format!("checking this segment failed unexpectedly ({e}); please report it"),
            ),
            segment,
        )],
        ..SegmentCheck::default()
    });
    Ok(check)
}

/// Checks a segment's bytes, already read (a restore that has fetched them verifies before
/// producing, without a second GET), decrypting with `data_key` when it is encrypted. Without
/// the key an encrypted segment is checked by hash and clear header only. Never panics,
/// whatever the bytes.
pub fn check_segment_bytes(
    segment: &SegmentRef,
    bytes: Bytes,
    deep: bool,
    data_key: Option<&DataKey>,
) -> SegmentCheck {
    let mut out = SegmentCheck {
        bytes: bytes.len() as u64,
        ..SegmentCheck::default()
    };
    let key = &segment.parsed;
    let len = bytes.len() as u64;
    let expected_len = segment.entry.as_ref().map(|e| e.stored_bytes);
    if let Some(expected) = expected_len.filter(|&e| e != len) {
        out.problems.push(located(
            Problem::new(
                ProblemKind::SizeMismatch,
                format!("the object is {len} bytes, its manifest entry says {expected}"),
            ),
            segment,
        ));
    }
    let actual = object_sha256(&bytes);
    if actual != key.sha256 {
        out.problems.push(located(
            Problem::new(
                ProblemKind::HashMismatch,
                format!(
                    "its content's SHA-256 is {}, not the {} its name (and manifest) records: \
                     the object was changed or replaced after it was written",
                    hex(&actual),
                    hex(&key.sha256)
                ),
            ),
            segment,
        ));
    }

    let opened = match data_key {
        Some(k) => SegmentReader::with_key(bytes.clone(), ReaderLimits::default(), k),
        None => SegmentReader::new(bytes.clone(), ReaderLimits::default()),
    };
    let mut reader = match opened {
        Ok(r) => {
            out.encrypted = r.header().encryption.is_some();
            r
        }
        Err(FormatError::Encrypted { .. }) => {
            out.encrypted = true;
            out.not_decrypted = true;
            if let Ok(header) = peek_header(&bytes)
                && let Some(p) = identity_problem(segment, &header)
            {
                out.problems.push(p);
            }
            return out;
        }
        Err(e) => {
            out.problems.push(format_problem(
                segment,
                &e,
                key.start_offset,
                len,
                expected_len,
            ));
            return out;
        }
    };
    out.aborted_transactions = reader.header().aborted_transactions.clone();
    if let Some(p) = identity_problem(segment, reader.header()) {
        out.problems.push(p);
    }

    let limits = DecodeLimits::default();
    let mut deep_problems = 0usize;
    // Producers with a transactional batch since their last marker in this segment.
    let mut open_here: HashSet<i64> = HashSet::new();
    // The first offset not verified yet, for locating damage.
    let mut next_offset = key.start_offset;
    loop {
        let (header, batch) = match reader.next_batch() {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => {
                out.problems
                    .push(format_problem(segment, &e, next_offset, len, expected_len));
                return out;
            }
        };
        // The reader checked that the last offset does not overflow.
        next_offset = header.last_offset().saturating_add(1);
        out.batches += 1;
        out.records += u64::try_from(header.record_count).unwrap_or(0);
        if header.is_control() {
            out.control_batches += 1;
        }
        if !deep {
            continue;
        }
        let summary = decode_batch(&batch, &limits).and_then(|decoded| {
            out.records_decoded += decoded.records.len() as u64;
            BatchSummary::from_decoded(&decoded)
        });
        match summary {
            Ok(s) if header.is_control() => {
                open_here.remove(&header.producer_id);
                out.txn_events.push(s);
            }
            Ok(s) if header.is_transactional() => {
                if open_here.insert(header.producer_id) {
                    out.txn_events.push(s);
                }
            }
            Ok(_) => {}
            Err(e) => {
                deep_problems += 1;
                if deep_problems <= MAX_DEEP_PROBLEMS {
                    out.problems.push(
                        located(
                            Problem::new(ProblemKind::UndecodableRecords, e.to_string()),
                            segment,
                        )
                        .offset(header.base_offset),
                    );
                }
            }
        }
    }
    if deep_problems > MAX_DEEP_PROBLEMS {
        out.problems.push(located(
            Problem::new(
                ProblemKind::UndecodableRecords,
                format!(
                    "{} more batches of this segment do not decode",
                    deep_problems - MAX_DEEP_PROBLEMS
                ),
            ),
            segment,
        ));
    }
    out.readable = true;
    if let Some(p) = trailer_problem(segment, &reader) {
        out.problems.push(p);
    }
    out
}

/// The problem's topic, partition, start offset and object from the segment.
fn located(p: Problem, segment: &SegmentRef) -> Problem {
    p.at(&segment.parsed.topic, segment.parsed.partition)
        .offset(segment.parsed.start_offset)
        .object(&segment.key)
}

/// A reader error as a problem at `offset` (the first offset not verified).
fn format_problem(
    segment: &SegmentRef,
    e: &FormatError,
    offset: i64,
    len: u64,
    expected_len: Option<u64>,
) -> Problem {
    let (kind, message) = match e {
        FormatError::Truncated { .. } => {
            let of = expected_len.map_or(String::new(), |e| format!(" of the {e} written"));
            (
                ProblemKind::Truncated,
                format!("the object is truncated ({len} bytes{of}): {e}"),
            )
        }
        FormatError::UnsupportedVersion { .. }
        | FormatError::Encrypted { .. }
        | FormatError::UnknownFlags { .. } => (ProblemKind::UnsupportedSegment, e.to_string()),
        _ => (
            ProblemKind::CorruptSegment,
            format!("{e}; records from offset {offset} on cannot be restored from it"),
        ),
    };
    located(Problem::new(kind, message), segment).offset(offset)
}

/// Whether the header names this segment's own backup, topic, lineage, partition and start.
fn identity_problem(
    segment: &SegmentRef,
    header: &backup_format::SegmentHeader,
) -> Option<Problem> {
    let key = &segment.parsed;
    let mut differs = Vec::new();
    if header.backup_id != key.backup_id {
        differs.push(format!("backup `{}`", header.backup_id));
    }
    if header.topic != key.topic {
        differs.push(format!("topic `{}`", header.topic));
    }
    if header.topic_id != key.topic_id {
        differs.push(format!("topic id {}", header.topic_id));
    }
    if header.partition != key.partition {
        differs.push(format!("partition {}", header.partition));
    }
    if header.start_offset != key.start_offset {
        differs.push(format!("start offset {}", header.start_offset));
    }
    if differs.is_empty() {
        return None;
    }
    Some(located(
        Problem::new(
            ProblemKind::IdentityMismatch,
            format!(
                "its header says {}, unlike its name: this is another segment, copied here",
                differs.join(", ")
            ),
        ),
        segment,
    ))
}

/// The verified trailer against the key's end and the manifest entry.
fn trailer_problem(segment: &SegmentRef, reader: &SegmentReader) -> Option<Problem> {
    let t = reader.trailer()?;
    let key = &segment.parsed;
    if t.end_offset != key.end_offset() {
        return Some(located(
            Problem::new(
                ProblemKind::IdentityMismatch,
                format!(
                    "its data ends at offset {}, but its name says {}: this is another segment, \
                     copied here",
                    t.end_offset - 1,
                    key.last_offset
                ),
            ),
            segment,
        ));
    }
    let e = segment.entry.as_ref()?;
    let h = reader.header();
    let fields: [(&str, i128, i128); 8] = [
        ("records", e.records.into(), t.records.into()),
        ("batches", e.batches.into(), t.batches.into()),
        ("raw_bytes", e.raw_bytes.into(), t.raw_bytes.into()),
        (
            "first_batch_offset",
            e.first_batch_offset.into(),
            t.first_batch_offset.into(),
        ),
        ("last_offset", e.last_offset.into(), t.last_offset.into()),
        ("end_offset", e.end_offset.into(), t.end_offset.into()),
        (
            "min_timestamp",
            e.min_timestamp.into(),
            t.min_timestamp.into(),
        ),
        (
            "max_timestamp",
            e.max_timestamp.into(),
            t.max_timestamp.into(),
        ),
    ];
    let mut differs: Vec<String> = fields
        .iter()
        .filter(|(_, m, s)| m != s)
        .map(|(f, m, s)| format!("{f} {m} in the manifest, {s} in the segment"))
        .collect();
    if e.compression != h.compression {
        differs.push(format!(
            "compression {} in the manifest, {} in the segment",
            e.compression, h.compression
        ));
    }
    if e.aborted_transactions != h.aborted_transactions {
        differs.push("different aborted transactions".to_owned());
    }
    (!differs.is_empty()).then(|| {
        located(
            Problem::new(
                ProblemKind::EntryMismatch,
                format!(
                    "its manifest entry disagrees with it: {}",
                    differs.join("; ")
                ),
            ),
            segment,
        )
    })
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

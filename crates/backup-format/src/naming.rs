//! Object keys (relative to the storage prefix, which the storage layer adds in front):
//!
//! ```text
//! {backup_id}/backup.json
//! {backup_id}/runs/{run_id}/manifest-{part:06}.json
//! {backup_id}/topics/{topic}/{topic_id}/{partition:05}/{start:020}-{last:020}-{sha256}.kbseg
//! {backup_id}/topics/{topic}/{topic_id}/{partition:05}/gaps/{from:020}-{to:020}.json
//! ```
//!
//! The backup identity can write and list but not read, so a new run resumes from a LIST
//! alone: a segment's name carries its coverage (`start`, inclusive, to `last`, inclusive)
//! and the SHA-256 of its content, which lets a run adopt segments an interrupted run wrote
//! without reading them. Zero-padded numbers make the lexicographic order of a LIST the
//! offset order.
//!
//! Every component is validated before a key is built (so no name can contain `/` or be
//! `..` and escape its directory), and parsing is strict: a key is accepted only if building
//! it again from the parsed parts gives the same string, so temporary files, other tools'
//! objects and non-canonical spellings are ignored rather than misread.

use time::{OffsetDateTime, UtcOffset};

use crate::hex;

/// A name that cannot be used in an object key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a legal Kafka topic name.
    #[error("invalid topic name {name:?}: {reason}")]
    Topic {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Not a usable backup id.
    #[error("invalid backup id {name:?}: {reason}")]
    BackupId {
        /// The id.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Not a usable run id.
    #[error("invalid run id {name:?}: {reason}")]
    RunId {
        /// The id.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Not a hyphenated lower-case UUID.
    #[error("invalid topic id {name:?}: expected a hyphenated lower-case UUID")]
    TopicId {
        /// The id.
        name: String,
    },
    /// A negative partition.
    #[error("invalid partition {0}")]
    Partition(i32),
    /// An offset range that is empty, reversed or negative.
    #[error("invalid offset range {from}..{to}: {reason}")]
    Offsets {
        /// Range start.
        from: i64,
        /// Range end.
        to: i64,
        /// Why.
        reason: &'static str,
    },
}

/// Suffix of segment objects.
pub const SEGMENT_SUFFIX: &str = ".kbseg";
/// Longest backup or run id, well under object stores' 1024-byte key limit together with a
/// 249-character topic.
pub const MAX_ID_LEN: usize = 128;
/// Longest Kafka topic name.
pub const MAX_TOPIC_LEN: usize = 249;

fn legal_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')
}

/// Checks a Kafka topic name: `[a-zA-Z0-9._-]`, 1 to 249 characters, not `.` or `..`.
pub fn validate_topic(name: &str) -> Result<(), NameError> {
    let err = |reason| {
        Err(NameError::Topic {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > MAX_TOPIC_LEN {
        return err("must be 1 to 249 characters");
    }
    if name == "." || name == ".." {
        return err("cannot be '.' or '..'");
    }
    if !name.bytes().all(legal_char) {
        return err("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

fn validate_id(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_ID_LEN {
        return Err("must be 1 to 128 characters");
    }
    if name.starts_with('.') {
        return Err("cannot start with '.'");
    }
    if !name.bytes().all(legal_char) {
        return Err("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Checks a backup id: `[a-zA-Z0-9._-]`, 1 to 128 characters, not starting with `.`.
pub fn validate_backup_id(name: &str) -> Result<(), NameError> {
    validate_id(name).map_err(|reason| NameError::BackupId {
        name: name.to_owned(),
        reason,
    })
}

/// Checks a run id, with the same rules as a backup id.
pub fn validate_run_id(name: &str) -> Result<(), NameError> {
    validate_id(name).map_err(|reason| NameError::RunId {
        name: name.to_owned(),
        reason,
    })
}

/// Checks a topic id: a hyphenated lower-case UUID (`8-4-4-4-12` hex digits), the form
/// `uuid::Uuid` displays; all zeros for topics of brokers without topic ids.
pub fn validate_topic_id(name: &str) -> Result<(), NameError> {
    let b = name.as_bytes();
    let ok = b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => matches!(c, b'0'..=b'9' | b'a'..=b'f'),
        });
    if ok {
        Ok(())
    } else {
        Err(NameError::TopicId {
            name: name.to_owned(),
        })
    }
}

fn validate_partition_dir(
    backup_id: &str,
    topic: &str,
    topic_id: &str,
    partition: i32,
) -> Result<(), NameError> {
    validate_backup_id(backup_id)?;
    validate_topic(topic)?;
    validate_topic_id(topic_id)?;
    if partition < 0 {
        return Err(NameError::Partition(partition));
    }
    Ok(())
}

/// `{backup_id}/topics/{topic}/{topic_id}/{partition:05}/`: the prefix to LIST for one
/// partition's segments and gaps.
pub fn partition_prefix(
    backup_id: &str,
    topic: &str,
    topic_id: &str,
    partition: i32,
) -> Result<String, NameError> {
    validate_partition_dir(backup_id, topic, topic_id, partition)?;
    Ok(format!(
        "{backup_id}/topics/{topic}/{topic_id}/{partition:05}/"
    ))
}

/// `{backup_id}/topics/`: the prefix to LIST for every segment and gap of a backup.
pub fn topics_prefix(backup_id: &str) -> Result<String, NameError> {
    validate_backup_id(backup_id)?;
    Ok(format!("{backup_id}/topics/"))
}

/// `{backup_id}/runs/`: the prefix to LIST for every run's manifests.
pub fn runs_prefix(backup_id: &str) -> Result<String, NameError> {
    validate_backup_id(backup_id)?;
    Ok(format!("{backup_id}/runs/"))
}

/// `{backup_id}/backup.json`: the backup descriptor, written once.
pub fn backup_descriptor_key(backup_id: &str) -> Result<String, NameError> {
    validate_backup_id(backup_id)?;
    Ok(format!("{backup_id}/backup.json"))
}

/// The parts of a segment object's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SegmentKey {
    /// Backup id.
    pub backup_id: String,
    /// Topic name.
    pub topic: String,
    /// Topic id.
    pub topic_id: String,
    /// Partition.
    pub partition: i32,
    /// Coverage start, inclusive (the header's `start_offset`).
    pub start_offset: i64,
    /// Coverage end, inclusive (the trailer's `end_offset - 1`).
    pub last_offset: i64,
    /// SHA-256 of the whole object.
    pub sha256: [u8; 32],
}

impl SegmentKey {
    /// The key, after validating every part.
    pub fn to_key(&self) -> Result<String, NameError> {
        validate_partition_dir(&self.backup_id, &self.topic, &self.topic_id, self.partition)?;
        if self.start_offset < 0 || self.last_offset < self.start_offset {
            return Err(NameError::Offsets {
                from: self.start_offset,
                to: self.last_offset,
                reason: "a segment covers start..=last with 0 <= start <= last",
            });
        }
        Ok(segment_key_unchecked(
            &self.backup_id,
            &self.topic,
            &self.topic_id,
            self.partition,
            self.start_offset,
            self.last_offset,
            &self.sha256,
        ))
    }

    /// The coverage end, exclusive: where the next segment of the partition starts.
    pub fn end_offset(&self) -> i64 {
        self.last_offset.saturating_add(1)
    }
}

/// Builds a segment key from parts validated elsewhere (a writer's header).
pub(crate) fn segment_key_unchecked(
    backup_id: &str,
    topic: &str,
    topic_id: &str,
    partition: i32,
    start: i64,
    last: i64,
    sha256: &[u8; 32],
) -> String {
    format!(
        "{backup_id}/topics/{topic}/{topic_id}/{partition:05}/{start:020}-{last:020}-{}{SEGMENT_SUFFIX}",
        hex::encode32(sha256)
    )
}

/// Builds a segment object's key.
pub fn segment_key(key: &SegmentKey) -> Result<String, NameError> {
    key.to_key()
}

/// Parses a segment object's key; `None` for anything that is not exactly one.
pub fn parse_segment_key(key: &str) -> Option<SegmentKey> {
    let (backup_id, topic, topic_id, partition, file) = split_partition_dir(key)?;
    let name = file.strip_suffix(SEGMENT_SUFFIX)?;
    let (start, rest) = name.split_once('-')?;
    let (last, sha) = rest.split_once('-')?;
    let parsed = SegmentKey {
        backup_id: backup_id.to_owned(),
        topic: topic.to_owned(),
        topic_id: topic_id.to_owned(),
        partition,
        start_offset: parse_offset(start)?,
        last_offset: parse_offset(last)?,
        sha256: hex::decode32(sha)?,
    };
    // Canonical form only: one object, one spelling.
    (parsed.to_key().ok()? == key).then_some(parsed)
}

/// The parts of a gap record's key: offsets `[from, to)` of a partition were lost (to
/// retention, usually) before they were backed up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GapKey {
    /// Backup id.
    pub backup_id: String,
    /// Topic name.
    pub topic: String,
    /// Topic id.
    pub topic_id: String,
    /// Partition.
    pub partition: i32,
    /// First lost offset.
    pub from: i64,
    /// End of the lost range, exclusive.
    pub to: i64,
}

impl GapKey {
    /// The key, after validating every part.
    pub fn to_key(&self) -> Result<String, NameError> {
        validate_partition_dir(&self.backup_id, &self.topic, &self.topic_id, self.partition)?;
        if self.from < 0 || self.to <= self.from {
            return Err(NameError::Offsets {
                from: self.from,
                to: self.to,
                reason: "a gap covers from..to with 0 <= from < to",
            });
        }
        Ok(format!(
            "{}/topics/{}/{}/{:05}/gaps/{:020}-{:020}.json",
            self.backup_id, self.topic, self.topic_id, self.partition, self.from, self.to
        ))
    }
}

/// Builds a gap record's key.
pub fn gap_key(key: &GapKey) -> Result<String, NameError> {
    key.to_key()
}

/// Parses a gap record's key; `None` for anything that is not exactly one.
pub fn parse_gap_key(key: &str) -> Option<GapKey> {
    let (dir, file) = key.rsplit_once('/')?;
    let (backup_id, topic, topic_id, partition, gaps) = split_partition_dir(dir)?;
    if gaps != "gaps" {
        return None;
    }
    let (from, to) = file.strip_suffix(".json")?.split_once('-')?;
    let parsed = GapKey {
        backup_id: backup_id.to_owned(),
        topic: topic.to_owned(),
        topic_id: topic_id.to_owned(),
        partition,
        from: parse_offset(from)?,
        to: parse_offset(to)?,
    };
    (parsed.to_key().ok()? == key).then_some(parsed)
}

/// The parts of a run manifest's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ManifestKey {
    /// Backup id.
    pub backup_id: String,
    /// Run id.
    pub run_id: String,
    /// Part number: a run writes parts 0, 1, … as it goes, the last one marked final.
    pub part: u32,
}

impl ManifestKey {
    /// The key, after validating every part.
    pub fn to_key(&self) -> Result<String, NameError> {
        validate_backup_id(&self.backup_id)?;
        validate_run_id(&self.run_id)?;
        Ok(format!(
            "{}/runs/{}/manifest-{:06}.json",
            self.backup_id, self.run_id, self.part
        ))
    }
}

/// Builds a run manifest's key.
pub fn manifest_key(key: &ManifestKey) -> Result<String, NameError> {
    key.to_key()
}

/// Parses a run manifest's key; `None` for anything that is not exactly one.
pub fn parse_manifest_key(key: &str) -> Option<ManifestKey> {
    let mut parts = key.split('/');
    let (backup_id, runs, run_id, file) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || runs != "runs" {
        return None;
    }
    let digits = file.strip_prefix("manifest-")?.strip_suffix(".json")?;
    let parsed = ManifestKey {
        backup_id: backup_id.to_owned(),
        run_id: run_id.to_owned(),
        part: parse_digits(digits)?.try_into().ok()?,
    };
    (parsed.to_key().ok()? == key).then_some(parsed)
}

/// A new run id, `20261123T183000Z-1a2b3c4d`: the UTC start time (so ids sort in start order)
/// and 32 random bits (so two runs started in the same second never share an id).
pub fn run_id_new(now: OffsetDateTime) -> String {
    run_id_with_suffix(now, rand::random())
}

/// A run id with a given suffix (deterministic, for tests).
pub fn run_id_with_suffix(now: OffsetDateTime, suffix: u32) -> String {
    let t = now.to_offset(UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{suffix:08x}",
        t.year().clamp(0, 9999),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Splits `{backup_id}/topics/{topic}/{topic_id}/{partition}/{rest}` (rest without `/`),
/// leaving validation of the parts to the caller's canonical-form check.
fn split_partition_dir(key: &str) -> Option<(&str, &str, &str, i32, &str)> {
    let mut parts = key.split('/');
    let backup_id = parts.next()?;
    if parts.next()? != "topics" {
        return None;
    }
    let (topic, topic_id, partition, rest) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let partition = i32::try_from(parse_digits(partition)?).ok()?;
    Some((backup_id, topic, topic_id, partition, rest))
}

/// Decimal digits only (no sign, no spaces), at most 20 of them.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_offset(s: &str) -> Option<i64> {
    i64::try_from(parse_digits(s)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: &str = "0f5b3d2e-8c1a-4e6f-9a7b-123456789abc";

    fn seg() -> SegmentKey {
        SegmentKey {
            backup_id: "prod-eu".into(),
            topic: "orders.v1".into(),
            topic_id: TID.into(),
            partition: 7,
            start_offset: 1000,
            last_offset: 1999,
            sha256: [0xab; 32],
        }
    }

    #[test]
    fn segment_keys_round_trip_and_sort_by_offset() {
        let k = seg().to_key().unwrap();
        assert_eq!(
            k,
            format!(
                "prod-eu/topics/orders.v1/{TID}/00007/00000000000000001000-00000000000000001999-{}.kbseg",
                "ab".repeat(32)
            )
        );
        assert_eq!(parse_segment_key(&k), Some(seg()));
        let later = SegmentKey {
            start_offset: 2000,
            last_offset: 30_000,
            ..seg()
        }
        .to_key()
        .unwrap();
        assert!(k < later);
        assert_eq!(seg().end_offset(), 2000);
    }

    #[test]
    fn parsing_is_strict() {
        let k = seg().to_key().unwrap();
        let bad = [
            format!("{k}.tmp"),
            k.replace("00007", "7"),
            k.replace("00007", "000007"),
            k.replace("-ab", "-AB"),
            k.replace("orders.v1", ".."),
            k.replace("/topics/", "/topic/"),
            k.replace(".kbseg", ".json"),
            format!("x/{k}"),
            k.replace("00000000000000001000-", "00000000000000003000-"),
            k.replace("00000000000000001000", "+0000000000000001000"),
            k.replace(TID, &TID.to_uppercase()),
            String::new(),
            "/".repeat(10),
        ];
        for b in &bad {
            assert_eq!(parse_segment_key(b), None, "{b}");
        }
        assert_eq!(parse_gap_key(&k), None);
        assert_eq!(parse_manifest_key(&k), None);
    }

    #[test]
    fn names_that_could_escape_are_rejected() {
        for topic in ["", ".", "..", "a/b", "a b", "ä", &"x".repeat(250)] {
            assert!(validate_topic(topic).is_err(), "{topic:?}");
        }
        assert!(validate_topic(&"x".repeat(249)).is_ok());
        assert!(validate_topic("__consumer_offsets").is_ok());
        for id in ["", ".hidden", "..", "a/b", "a\\b", "a\0", &"x".repeat(129)] {
            assert!(validate_backup_id(id).is_err(), "{id:?}");
            assert!(validate_run_id(id).is_err(), "{id:?}");
        }
        let k = SegmentKey {
            topic: "../../etc".into(),
            ..seg()
        };
        assert!(matches!(k.to_key(), Err(NameError::Topic { .. })));
        assert!(
            SegmentKey {
                partition: -1,
                ..seg()
            }
            .to_key()
            .is_err()
        );
        assert!(
            SegmentKey {
                last_offset: 999,
                ..seg()
            }
            .to_key()
            .is_err()
        );
        assert!(validate_topic_id("00000000-0000-0000-0000-000000000000").is_ok());
        assert!(validate_topic_id("0f5b3d2e8c1a4e6f9a7b123456789abc").is_err());
    }

    #[test]
    fn gap_and_manifest_keys_round_trip() {
        let g = GapKey {
            backup_id: "b".into(),
            topic: "t".into(),
            topic_id: TID.into(),
            partition: 123_456,
            from: 0,
            to: 42,
        };
        let k = g.to_key().unwrap();
        assert_eq!(
            k,
            format!("b/topics/t/{TID}/123456/gaps/00000000000000000000-00000000000000000042.json")
        );
        assert_eq!(parse_gap_key(&k), Some(g.clone()));
        assert_eq!(parse_segment_key(&k), None);
        assert!(GapKey { to: 0, ..g.clone() }.to_key().is_err());
        assert_eq!(parse_gap_key(&k.replace("/gaps/", "/gap/")), None);

        let m = ManifestKey {
            backup_id: "b".into(),
            run_id: "20261123T183000Z-1a2b3c4d".into(),
            part: 3,
        };
        let k = m.to_key().unwrap();
        assert_eq!(k, "b/runs/20261123T183000Z-1a2b3c4d/manifest-000003.json");
        assert_eq!(parse_manifest_key(&k), Some(m));
        assert_eq!(parse_manifest_key("b/runs/r/manifest-3.json"), None);
        assert_eq!(parse_manifest_key("b/runs/r/x/manifest-000003.json"), None);
        assert_eq!(
            parse_manifest_key("b/runs/r/manifest-9999999999.json"),
            None
        );
        assert_eq!(backup_descriptor_key("b").unwrap(), "b/backup.json");
        assert!(backup_descriptor_key("../x").is_err());
        assert_eq!(
            partition_prefix("b", "t", TID, 2).unwrap(),
            format!("b/topics/t/{TID}/00002/")
        );
    }

    #[test]
    fn run_ids_sort_by_time_and_differ() {
        let t = time::macros::datetime!(2026-11-23 19:30:00 +01:00);
        assert_eq!(
            run_id_with_suffix(t, 0x1a2b3c4d),
            "20261123T183000Z-1a2b3c4d"
        );
        let a = run_id_new(t);
        let b = run_id_new(t);
        assert_ne!(a, b);
        assert!(validate_run_id(&a).is_ok());
        let later = run_id_with_suffix(t + time::Duration::seconds(1), 0);
        assert!(a < later);
    }
}

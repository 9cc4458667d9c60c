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
//!
//! # Signed names
//!
//! A backup with a signing key names its objects with an Ed25519 signature (86 characters of
//! unpadded base64url) in front of the suffix, over the *signed message*: the name as it
//! would be without the signature, which always carries the SHA-256 of the content:
//!
//! ```text
//! …/{partition:05}/{start:020}-{last:020}-{sha256}.{signature}.kbseg
//! …/{partition:05}/gaps/{from:020}-{to:020}-{sha256}.{signature}.json
//! {backup_id}/runs/{run_id}/manifest-{part:06}-{sha256}.{signature}.json
//! ```
//!
//! The name binds the content (by its digest) and the backup, topic, topic id, partition and
//! offsets (or run and part), so a LIST authenticates which objects exist, with no read: the
//! write-only backup role relies on that to resume, and restore and validate on it to tell
//! planted objects from the backup's own. See [`crate::signing`].

use sha2::Digest as _;
use time::{OffsetDateTime, UtcOffset};

use crate::hex;
use crate::shard::Shard;
use crate::signing::{
    SIGNATURE_LEN, SigningKey, VerifyingKey, VerifyingKeys, decode_name_signature,
    encode_name_signature,
};

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
    /// Signature over [`SegmentKey::signed_message`], in a signed backup.
    pub signature: Option<[u8; SIGNATURE_LEN]>,
}

impl SegmentKey {
    /// The key, after validating every part (with its signature when it has one).
    pub fn to_key(&self) -> Result<String, NameError> {
        let unsigned = self.signed_message()?;
        Ok(match &self.signature {
            Some(sig) => insert_signature(&unsigned, SEGMENT_SUFFIX, sig),
            None => unsigned,
        })
    }

    /// This key signed with `key`.
    pub fn sign(mut self, key: &SigningKey) -> Result<Self, NameError> {
        self.signature = Some(key.sign_name(&self.signed_message()?));
        Ok(self)
    }

    /// The key of this segment that verifies under one of `keys`, if any.
    pub fn verify<'k>(&self, keys: &'k VerifyingKeys) -> Option<&'k VerifyingKey> {
        keys.verify_name(&self.signed_message().ok()?, self.signature.as_ref()?)
    }

    /// What the signature covers: the key without its signature.
    pub fn signed_message(&self) -> Result<String, NameError> {
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
    let (name, signature) = split_signature(file.strip_suffix(SEGMENT_SUFFIX)?)?;
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
        signature,
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
    /// Content digest and signature, in a signed backup.
    pub seal: Option<NameSeal>,
}

impl GapKey {
    /// The key, after validating every part.
    pub fn to_key(&self) -> Result<String, NameError> {
        let dir = self.dir()?;
        let base = format!("{dir}{:020}-{:020}", self.from, self.to);
        Ok(match &self.seal {
            None => format!("{base}.json"),
            Some(seal) => seal.name(&base, ".json"),
        })
    }

    /// This key, for a record whose content is `content`, signed with `key`.
    pub fn sign(mut self, content: &[u8], key: &SigningKey) -> Result<Self, NameError> {
        self.seal = None;
        let dir = self.dir()?;
        let base = format!("{dir}{:020}-{:020}", self.from, self.to);
        self.seal = Some(NameSeal::new(&base, ".json", content, key));
        Ok(self)
    }

    /// The key that signed this name, if any of `keys` did.
    pub fn verify<'k>(&self, keys: &'k VerifyingKeys) -> Option<&'k VerifyingKey> {
        let base = format!("{}{:020}-{:020}", self.dir().ok()?, self.from, self.to);
        self.seal.as_ref()?.verify(&base, ".json", keys)
    }

    /// The same gap without the seal: identifies the range whatever record holds it.
    pub fn range_key(&self) -> Self {
        Self {
            seal: None,
            ..self.clone()
        }
    }

    fn dir(&self) -> Result<String, NameError> {
        validate_partition_dir(&self.backup_id, &self.topic, &self.topic_id, self.partition)?;
        if self.from < 0 || self.to <= self.from {
            return Err(NameError::Offsets {
                from: self.from,
                to: self.to,
                reason: "a gap covers from..to with 0 <= from < to",
            });
        }
        Ok(format!(
            "{}/topics/{}/{}/{:05}/gaps/",
            self.backup_id, self.topic, self.topic_id, self.partition
        ))
    }
}

/// The content digest and name signature of a signed gap record or manifest part.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameSeal {
    /// SHA-256 of the object's content.
    pub sha256: [u8; 32],
    /// Signature over the name with the digest and without the signature.
    pub signature: [u8; SIGNATURE_LEN],
}

impl NameSeal {
    fn new(base: &str, suffix: &str, content: &[u8], key: &SigningKey) -> Self {
        let sha256: [u8; 32] = sha2::Sha256::digest(content).into();
        let message = format!("{base}-{}{suffix}", hex::encode32(&sha256));
        Self {
            sha256,
            signature: key.sign_name(&message),
        }
    }

    fn name(&self, base: &str, suffix: &str) -> String {
        insert_signature(
            &format!("{base}-{}{suffix}", hex::encode32(&self.sha256)),
            suffix,
            &self.signature,
        )
    }

    fn verify<'k>(
        &self,
        base: &str,
        suffix: &str,
        keys: &'k VerifyingKeys,
    ) -> Option<&'k VerifyingKey> {
        let message = format!("{base}-{}{suffix}", hex::encode32(&self.sha256));
        keys.verify_name(&message, &self.signature)
    }

    /// Parses `{name}-{sha256}.{signature}` (the suffix already removed) into the name and
    /// the seal; `None` when it has no seal.
    fn split(text: &str) -> Option<(&str, NameSeal)> {
        let (rest, sig) = text.rsplit_once('.')?;
        let signature = decode_name_signature(sig)?;
        let (name, sha) = rest.rsplit_once('-')?;
        Some((
            name,
            NameSeal {
                sha256: hex::decode32(sha)?,
                signature,
            },
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
    let stem = file.strip_suffix(".json")?;
    let (range, seal) = match NameSeal::split(stem) {
        Some((range, seal)) => (range, Some(seal)),
        None => (stem, None),
    };
    let (from, to) = range.split_once('-')?;
    let parsed = GapKey {
        backup_id: backup_id.to_owned(),
        topic: topic.to_owned(),
        topic_id: topic_id.to_owned(),
        partition,
        from: parse_offset(from)?,
        to: parse_offset(to)?,
        seal,
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
    /// Content digest and signature, in a signed backup.
    pub seal: Option<NameSeal>,
}

impl ManifestKey {
    /// The key, after validating every part.
    pub fn to_key(&self) -> Result<String, NameError> {
        let base = self.base()?;
        Ok(match &self.seal {
            None => format!("{base}.json"),
            Some(seal) => seal.name(&base, ".json"),
        })
    }

    /// This key, for a manifest whose content is `content`, signed with `key`.
    pub fn sign(mut self, content: &[u8], key: &SigningKey) -> Result<Self, NameError> {
        let base = self.base()?;
        self.seal = Some(NameSeal::new(&base, ".json", content, key));
        Ok(self)
    }

    /// The key that signed this name, if any of `keys` did.
    pub fn verify<'k>(&self, keys: &'k VerifyingKeys) -> Option<&'k VerifyingKey> {
        self.seal
            .as_ref()?
            .verify(&self.base().ok()?, ".json", keys)
    }

    fn base(&self) -> Result<String, NameError> {
        validate_backup_id(&self.backup_id)?;
        validate_run_id(&self.run_id)?;
        Ok(format!(
            "{}/runs/{}/manifest-{:06}",
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
    let stem = file.strip_prefix("manifest-")?.strip_suffix(".json")?;
    let (digits, seal) = match NameSeal::split(stem) {
        Some((digits, seal)) => (digits, Some(seal)),
        None => (stem, None),
    };
    let parsed = ManifestKey {
        backup_id: backup_id.to_owned(),
        run_id: run_id.to_owned(),
        part: parse_digits(digits)?.try_into().ok()?,
        seal,
    };
    (parsed.to_key().ok()? == key).then_some(parsed)
}

/// A new run id, `20261123T183000Z-1a2b3c4d`: the UTC start time, and a suffix whose first 10
/// bits are the millisecond and the other 22 random. Ids sort in start order even for runs
/// started within one second (a snapshot that finds nothing new ends in well under a second):
/// the manifest chain links a run to the newest run by id and requires ids to increase along
/// it, so a random suffix alone broke the chain of back-to-back runs. The random bits keep two
/// runs started in the same millisecond apart.
pub fn run_id_new(now: OffsetDateTime) -> String {
    let millis = u32::from(now.to_offset(UtcOffset::UTC).millisecond());
    run_id_with_suffix(now, (millis << 22) | (rand::random::<u32>() >> 10))
}

/// A new run id that sorts after `newest`, the newest run the backup already holds (the one
/// the new run's first manifest part chains to). Readers require a run to chain to an earlier
/// one, and a run started in the same second as `newest` (or on a host whose clock is behind)
/// would otherwise draw an id that sorts before it half of the time.
///
/// A shard's run (`shard` set) gets the lane suffix of [`Shard::run_suffix`], and `newest`
/// is then the newest run of that lane: ids are compared without their suffixes.
pub fn run_id_after(now: OffsetDateTime, newest: Option<&str>, shard: Option<Shard>) -> String {
    let id = run_id_new(now);
    let base = match newest.map(crate::shard::run_base) {
        Some(newest) if id.as_str() <= newest => run_id_following(newest).unwrap_or(id),
        _ => id,
    };
    match shard {
        Some(shard) => format!("{base}{}", shard.run_suffix()),
        None => base,
    }
}

/// An id that sorts after `id`: its time with a larger random suffix, or, when its suffix
/// is the largest (or `id` is not of this format), `id` with `0` appended.
fn run_id_following(id: &str) -> Option<String> {
    if let Some((time, suffix)) = id.rsplit_once('-')
        && suffix.len() == 8
        && suffix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && let Ok(n) = u32::from_str_radix(suffix, 16)
        && n < u32::MAX
    {
        let larger = n + 1 + rand::random::<u32>() % (u32::MAX - n);
        return Some(format!("{time}-{larger:08x}"));
    }
    let longer = format!("{id}0");
    validate_run_id(&longer).is_ok().then_some(longer)
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

/// `{stem}{suffix}` with `.{signature}` inserted before the suffix.
fn insert_signature(unsigned: &str, suffix: &str, sig: &[u8; SIGNATURE_LEN]) -> String {
    let stem = unsigned.strip_suffix(suffix).unwrap_or(unsigned);
    format!("{stem}.{}{suffix}", encode_name_signature(sig))
}

/// Splits an optional `.{signature}` off the end of a file name's stem.
fn split_signature(stem: &str) -> Option<(&str, Option<[u8; SIGNATURE_LEN]>)> {
    match stem.rsplit_once('.') {
        None => Some((stem, None)),
        Some((rest, sig)) => Some((rest, Some(decode_name_signature(sig)?))),
    }
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
            signature: None,
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
            seal: None,
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
            seal: None,
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
    fn signed_names_round_trip_and_verify_only_what_was_signed() {
        let (key, _) = SigningKey::generate().unwrap();
        let keys = VerifyingKeys::new(vec![key.verifying_key().clone()]);
        let (other, _) = SigningKey::generate().unwrap();
        let others = VerifyingKeys::new(vec![other.verifying_key().clone()]);

        let signed = seg().sign(&key).unwrap();
        let k = signed.to_key().unwrap();
        let unsigned = seg().to_key().unwrap();
        assert!(
            k.starts_with(unsigned.strip_suffix(".kbseg").unwrap()),
            "{k}"
        );
        assert!(k.ends_with(".kbseg"));
        assert_eq!(
            k.len(),
            unsigned.len() + 1 + crate::signing::NAME_SIGNATURE_CHARS
        );
        let parsed = parse_segment_key(&k).unwrap();
        assert_eq!(parsed, signed);
        assert!(parsed.verify(&keys).is_some());
        assert!(parsed.verify(&others).is_none());
        assert!(
            seg().verify(&keys).is_none(),
            "an unsigned name verifies nothing"
        );
        // The signature does not carry over to another range, partition or digest.
        for forged in [
            SegmentKey {
                last_offset: 2999,
                ..signed.clone()
            },
            SegmentKey {
                partition: 8,
                ..signed.clone()
            },
            SegmentKey {
                sha256: [0xac; 32],
                ..signed.clone()
            },
            SegmentKey {
                backup_id: "other".into(),
                ..signed.clone()
            },
        ] {
            assert!(forged.verify(&keys).is_none(), "{forged:?}");
        }
        // Non-canonical signature text is not a key at all.
        let sig = &k[k.len() - 6 - 86..k.len() - 6];
        assert_eq!(parse_segment_key(&k.replace(sig, &sig[..85])), None);
        assert_eq!(parse_segment_key(&k.replace(".kbseg", ".x.kbseg")), None);

        let g = GapKey {
            backup_id: "b".into(),
            topic: "t".into(),
            topic_id: TID.into(),
            partition: 1,
            from: 10,
            to: 20,
            seal: None,
        };
        let sg = g.clone().sign(b"{\"gap\":1}", &key).unwrap();
        let gk = sg.to_key().unwrap();
        assert!(
            gk.contains("/gaps/00000000000000000010-00000000000000000020-"),
            "{gk}"
        );
        assert_eq!(parse_gap_key(&gk), Some(sg.clone()));
        assert!(sg.verify(&keys).is_some());
        assert_eq!(
            sg.seal.as_ref().unwrap().sha256,
            crate::segment::object_sha256(b"{\"gap\":1}")
        );
        assert!(
            GapKey {
                to: 21,
                ..sg.clone()
            }
            .verify(&keys)
            .is_none()
        );
        assert_eq!(sg.range_key(), g);

        let m = ManifestKey {
            backup_id: "b".into(),
            run_id: "20261123T183000Z-1a2b3c4d".into(),
            part: 0,
            seal: None,
        };
        let sm = m.clone().sign(b"manifest", &key).unwrap();
        let mk = sm.to_key().unwrap();
        assert!(
            mk.starts_with("b/runs/20261123T183000Z-1a2b3c4d/manifest-000000-"),
            "{mk}"
        );
        assert_eq!(parse_manifest_key(&mk), Some(sm.clone()));
        assert!(sm.verify(&keys).is_some());
        assert!(
            ManifestKey {
                part: 1,
                ..sm.clone()
            }
            .verify(&keys)
            .is_none()
        );
        assert!(sm.verify(&others).is_none());
        assert_eq!(parse_segment_key(&mk), None);
        assert_eq!(parse_gap_key(&mk), None);
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
        // Within one second, by the millisecond, whatever the random bits.
        let mut previous = run_id_new(t);
        for ms in 1..1000 {
            let next = run_id_new(t + time::Duration::milliseconds(ms));
            assert!(previous < next, "{previous} then {next}");
            previous = next;
        }
        assert!(previous < later);
    }

    #[test]
    fn a_new_run_id_sorts_after_the_newest_run_even_in_the_same_second() {
        let t = time::macros::datetime!(2026-11-23 18:30:00 UTC);
        for newest in [
            run_id_with_suffix(t, 0xfffffff0),
            run_id_with_suffix(t, 0xfffffffe),
            // A clock behind the previous run's host.
            run_id_with_suffix(t + time::Duration::hours(1), 0x80000000),
        ] {
            for _ in 0..100 {
                let id = run_id_after(t, Some(&newest), None);
                assert!(id > newest, "{id} after {newest}");
                assert_eq!(id.len(), newest.len());
                assert!(validate_run_id(&id).is_ok());
            }
        }
        let last = run_id_with_suffix(t, u32::MAX);
        assert_eq!(run_id_after(t, Some(&last), None), format!("{last}0"));
        assert!(run_id_after(t, Some(&format!("{last}0")), None) > format!("{last}0"));
        // An older run leaves the new id as it is.
        let old = run_id_with_suffix(t - time::Duration::seconds(1), u32::MAX);
        assert!(run_id_after(t, Some(&old), None).starts_with("20261123T183000Z-"));
        assert!(run_id_after(t, None, None).starts_with("20261123T183000Z-"));
    }

    #[test]
    fn a_shard_run_id_sorts_after_the_newest_run_of_its_lane() {
        let t = time::macros::datetime!(2026-11-23 18:30:00 UTC);
        let shard = Shard::new(2, 3).unwrap();
        let newest = format!(
            "{}{}",
            run_id_with_suffix(t, 0xfffffff0),
            shard.run_suffix()
        );
        for _ in 0..100 {
            let id = run_id_after(t, Some(&newest), Some(shard));
            assert!(id > newest, "{id} after {newest}");
            assert!(id.ends_with(".shard-2-of-3"), "{id}");
            assert_eq!(Shard::of_run(&id), Some(shard));
            assert!(validate_run_id(&id).is_ok());
        }
        let last = format!("{}{}", run_id_with_suffix(t, u32::MAX), shard.run_suffix());
        let id = run_id_after(t, Some(&last), Some(shard));
        assert!(id > last, "{id} after {last}");
        assert_eq!(Shard::of_run(&id), Some(shard));
    }
}

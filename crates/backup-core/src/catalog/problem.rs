//! What is wrong with a backup, one finding at a time, with enough context (topic, partition,
//! offset, object key) for an operator to find the damaged object in the bucket.

use std::fmt;

use serde::Serialize;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, but the data it concerns is intact and restorable (e.g. a segment that
    /// no manifest lists, verified against the hash in its name). `validate` still exits 0.
    Warning,
    /// Data is missing, damaged or inconsistent: a restore would lose or misplace records.
    /// `validate` exits 7.
    Error,
}

/// The kind of a finding; each has a fixed [`Severity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// `{backup_id}/backup.json` is missing while the backup has other objects.
    MissingDescriptor,
    /// The descriptor does not parse, or names another backup.
    CorruptDescriptor,
    /// A manifest part does not parse (damaged, or written by a newer version).
    CorruptManifest,
    /// A manifest's content disagrees with its key, or two manifests describe one segment
    /// differently.
    ManifestMismatch,
    /// A run has a later manifest part but not this one: an object was removed.
    MissingManifestPart,
    /// A manifest lists a segment that is not in storage.
    MissingSegment,
    /// A manifest lists a gap whose own object is not in storage.
    MissingGapRecord,
    /// A gap record does not parse or disagrees with its key.
    CorruptGapRecord,
    /// An object under the backup that is not one of the names this tool writes.
    UnexpectedObject,
    /// A segment no manifest lists and whose name is not signed by a configured key: written
    /// by a run interrupted before its manifest, or by someone else with write access. Restore
    /// leaves it out unless told to accept unauthenticated segments.
    OrphanSegment,
    /// The object's size differs from its manifest entry's.
    SizeMismatch,
    /// The object's SHA-256 differs from the one in its name (and manifest).
    HashMismatch,
    /// The object ends early.
    Truncated,
    /// The object is not a valid segment (magic, chunk CRC, batch CRC, trailer, ...).
    CorruptSegment,
    /// A segment this build cannot read (newer format version, encrypted).
    UnsupportedSegment,
    /// The segment's header names another backup, topic, topic id, partition or range than
    /// its key: it was copied here from somewhere else.
    IdentityMismatch,
    /// The segment's trailer disagrees with its manifest entry (records, offsets, ...).
    EntryMismatch,
    /// Offsets between two segments that neither a segment nor a gap record covers.
    Hole,
    /// Two segments cover the same offsets.
    Overlap,
    /// A gap record covers offsets that a segment holds.
    GapOverlap,
    /// `--deep`: a record batch whose records do not decode.
    UndecodableRecords,
    /// `--deep`: transaction markers disagree with each other or with the segment headers.
    TransactionInconsistent,
    /// The object could not be read (a storage error other than "not found").
    Unreadable,
    /// With verify keys configured: an object whose name no configured key signed (and, for a
    /// segment, that no authentic manifest lists), or a descriptor that is not signed by one.
    /// Planted or forged, or written before signing was enabled: left out of restores.
    Unauthenticated,
    /// The backup is signed but no verify key is configured, so nothing was authenticated.
    Unverified,
    /// A manifest part's link to the part before it points at a missing, unauthentic or
    /// different object: a part or a run was deleted or replaced.
    ChainBroken,
    /// Two parts continue the same one, or two runs start the chain: runs overlapped.
    ChainFork,
    /// The newest part of a run is not final and nothing follows it.
    RunUnfinished,
    /// A run that must be there (`--expect-run`) is not.
    MissingRun,
    /// A sharded backup has runs of some shards of a count but none of another: that
    /// shard's partitions are not in the backup (never run, or its runs were deleted).
    MissingShard,
    /// A segment stored in the clear in a backup read with decryption keys and without
    /// verify keys: written before encryption was enabled, or a downgrade planted in place of
    /// an encrypted one (restore refuses it unless told to accept unauthenticated data).
    InTheClear,
    /// An encrypted object whose data key none of the configured keys unwraps (or whose
    /// ciphertext fails authentication).
    Undecryptable,
    /// A run recorded that a partition was backed up further than the backup's authentic
    /// segments and gaps reach: objects at its end were deleted.
    CoverageShort,
}

impl ProblemKind {
    /// The fixed severity of this kind.
    pub fn severity(self) -> Severity {
        match self {
            Self::MissingDescriptor
            | Self::MissingGapRecord
            | Self::UnexpectedObject
            | Self::OrphanSegment
            | Self::GapOverlap
            | Self::Unverified
            | Self::ChainFork
            | Self::RunUnfinished
            | Self::InTheClear => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// The kebab-case name used in JSON and text output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingDescriptor => "missing-descriptor",
            Self::CorruptDescriptor => "corrupt-descriptor",
            Self::CorruptManifest => "corrupt-manifest",
            Self::ManifestMismatch => "manifest-mismatch",
            Self::MissingManifestPart => "missing-manifest-part",
            Self::MissingSegment => "missing-segment",
            Self::MissingGapRecord => "missing-gap-record",
            Self::CorruptGapRecord => "corrupt-gap-record",
            Self::UnexpectedObject => "unexpected-object",
            Self::OrphanSegment => "orphan-segment",
            Self::SizeMismatch => "size-mismatch",
            Self::HashMismatch => "hash-mismatch",
            Self::Truncated => "truncated",
            Self::CorruptSegment => "corrupt-segment",
            Self::UnsupportedSegment => "unsupported-segment",
            Self::IdentityMismatch => "identity-mismatch",
            Self::EntryMismatch => "entry-mismatch",
            Self::Hole => "hole",
            Self::Overlap => "overlap",
            Self::GapOverlap => "gap-overlap",
            Self::UndecodableRecords => "undecodable-records",
            Self::TransactionInconsistent => "transaction-inconsistent",
            Self::Unreadable => "unreadable",
            Self::Unauthenticated => "unauthenticated",
            Self::Unverified => "unverified",
            Self::ChainBroken => "chain-broken",
            Self::ChainFork => "chain-fork",
            Self::RunUnfinished => "run-unfinished",
            Self::MissingRun => "missing-run",
            Self::MissingShard => "missing-shard",
            Self::CoverageShort => "coverage-short",
            Self::Undecryptable => "undecryptable",
            Self::InTheClear => "in-the-clear",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Derived from `kind`.
    pub severity: Severity,
    /// What was found.
    pub kind: ProblemKind,
    /// The topic concerned, when one is.
    pub topic: Option<String>,
    /// The partition concerned, when one is.
    pub partition: Option<i32>,
    /// The first Kafka offset concerned (for damage inside a segment: the first offset that
    /// could not be verified).
    pub offset: Option<i64>,
    /// The object key (relative to the storage prefix) concerned.
    pub object: Option<String>,
    /// What is wrong, for people.
    pub message: String,
}

impl Problem {
    /// A finding of `kind`, without location yet.
    pub fn new(kind: ProblemKind, message: impl Into<String>) -> Self {
        Self {
            severity: kind.severity(),
            kind,
            topic: None,
            partition: None,
            offset: None,
            object: None,
            message: message.into(),
        }
    }

    /// Sets the topic and partition.
    pub fn at(mut self, topic: &str, partition: i32) -> Self {
        self.topic = Some(topic.to_owned());
        self.partition = Some(partition);
        self
    }

    /// Sets the topic only.
    pub fn topic(mut self, topic: &str) -> Self {
        self.topic = Some(topic.to_owned());
        self
    }

    /// Sets the offset.
    pub fn offset(mut self, offset: i64) -> Self {
        self.offset = Some(offset);
        self
    }

    /// Sets the object key.
    pub fn object(mut self, key: &str) -> Self {
        self.object = Some(key.to_owned());
        self
    }

    /// Whether this is an [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// One line: `error hash-mismatch orders/3 @1200 (key): message`.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity} {}", self.kind)?;
        match (&self.topic, self.partition) {
            (Some(t), Some(p)) => write!(f, " {t}/{p}")?,
            (Some(t), None) => write!(f, " {t}")?,
            _ => {}
        }
        if let Some(o) = self.offset {
            write!(f, " @{o}")?;
        }
        if let Some(k) = &self.object {
            write!(f, " ({k})")?;
        }
        // Messages come from parsers of untrusted bytes: keep them on one line.
        let message = self.message.replace(['\n', '\r'], " ");
        write!(f, ": {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_print_on_one_line_with_their_location() {
        let p = Problem::new(ProblemKind::HashMismatch, "bad\nthing")
            .at("orders", 3)
            .offset(1200)
            .object("b/topics/orders/x/00003/s.kbseg");
        assert_eq!(
            p.to_string(),
            "error hash-mismatch orders/3 @1200 (b/topics/orders/x/00003/s.kbseg): bad thing"
        );
        assert!(p.is_error());
        let w = Problem::new(ProblemKind::OrphanSegment, "m");
        assert_eq!(w.severity, Severity::Warning);
        assert_eq!(w.to_string(), "warning orphan-segment: m");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["kind"], "hash-mismatch");
        assert_eq!(json["severity"], "error");
        assert_eq!(json["partition"], 3);
    }
}

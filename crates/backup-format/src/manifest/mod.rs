//! Run manifests, the backup descriptor and gap records: JSON documents, `format: 2` (format 1,
//! written before encryption and signatures existed, is still read).
//!
//! Each run writes its own manifest (in parts, `manifest-000000.json`, … the last marked
//! `final_part`), never touching another run's, because objects are create-only. A restore
//! merges the manifests of all runs; the segment keys inside are relative to the storage
//! prefix, so a backup can be copied elsewhere and still be read.
//!
//! Parsing is bounded (documents over the size limit are refused before parsing; serde_json's
//! recursion limit stays on), versioned (an unknown `format` is a clear error, even when the
//! rest of the document no longer matches this build's structure) and validated (keys must
//! parse and agree with the fields next to them).
//!
//! In an encrypted backup, what a manifest part or gap record must not show in the clear is
//! *sealed* ([`crate::crypto::document`]): topic configurations and consumer-group offsets of
//! a manifest, the details of a gap. What stays in the clear is what a restore plans with
//! and what object names already reveal: topic names and ids, partitions, offset ranges,
//! record and byte counts, timestamp ranges.
//!
//! In a signed backup, manifest parts form a chain: each names the digest of the part before
//! it (the previous part of its run, or for part 0 the newest part of an earlier run), so a
//! run or part deleted from the middle breaks the chain; the final part records where each
//! partition's coverage ends, so segments deleted from the end are noticed too.

mod descriptor;
mod gap;
mod json;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{CryptoError, DataKey, Encryption, RunKey};
use crate::naming::{self, ManifestKey, NameError};
use crate::segment::{AbortedTransaction, Compression, FinishedSegment, TxnMarker};
pub use descriptor::{BackupDescriptor, DescriptorSignature};
pub use gap::{Gap, GapRecord};
pub use json::timestamp;
use json::{check_format, from_json, open_fields, seal_fields, to_json};

/// The `format` this build writes.
pub const MANIFEST_FORMAT: u32 = 2;
/// The oldest `format` this build reads.
pub const MIN_MANIFEST_FORMAT: u32 = 1;
/// Largest manifest part accepted (about a million segment entries).
pub const MAX_MANIFEST_LEN: usize = 256 << 20;
/// Largest backup descriptor or gap record accepted.
pub const MAX_SMALL_DOCUMENT_LEN: usize = 1 << 20;

/// Why a manifest, descriptor or gap record could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Over the size limit; refused before parsing.
    #[error("{what} is {len} bytes, over the limit of {limit}")]
    TooLarge {
        /// Which document.
        what: &'static str,
        /// Its size.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// Written by a newer (or unknown) version.
    #[error(
        "{what} has format {found}, this build reads formats up to {supported}; \
         upgrade kafka-backup to read it"
    )]
    UnsupportedFormat {
        /// Which document.
        what: &'static str,
        /// The format found.
        found: u64,
        /// The format supported.
        supported: u32,
    },
    /// Not valid JSON for this document.
    #[error("invalid {what}: {reason}")]
    Json {
        /// Which document.
        what: &'static str,
        /// serde_json's message (with line and column).
        reason: String,
    },
    /// Valid JSON with inconsistent content.
    #[error("inconsistent {what}: {reason}")]
    Invalid {
        /// Which document.
        what: &'static str,
        /// What disagrees.
        reason: String,
    },
    /// A name that cannot be used in a key.
    #[error(transparent)]
    Name(#[from] NameError),
}

/// Whether a run backs up once or follows the topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Up to the end offsets seen at start, then stop.
    Snapshot,
    /// Keep following new records until stopped.
    Continuous,
}

/// How a run ended (or, for a part that is not final, how it stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// A part written while the run goes on (continuous mode); a later part ends the run.
    Running,
    /// Everything it set out to back up is in segments or gap records.
    Complete,
    /// Stopped (signal, shutdown) before the end; a later run resumes.
    Interrupted,
    /// Finished, but some partitions could not be backed up.
    Partial,
    /// Failed.
    Failed,
}

/// What one run wrote. A run writes parts as it goes; every part lists only the segments
/// and gaps written since the previous part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunManifest {
    /// Must be [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The backup.
    pub backup_id: String,
    /// The run.
    pub run_id: String,
    /// Part number, from 0.
    pub part: u32,
    /// Whether this is the run's last part.
    pub final_part: bool,
    /// kafka-backup version that wrote it.
    pub tool_version: String,
    /// Snapshot or continuous.
    pub mode: RunMode,
    /// How the run stands.
    pub status: RunStatus,
    /// RFC 3339.
    pub started_at: String,
    /// When this part was written, RFC 3339.
    pub written_at: String,
    /// When the run ended, RFC 3339; none while it runs.
    pub finished_at: Option<String>,
    /// The source cluster.
    pub source: SourceCluster,
    /// Topic metadata and configs at the start of the run, to re-create topics on restore.
    pub topics: Vec<TopicSnapshot>,
    /// Segments written.
    pub segments: Vec<SegmentEntry>,
    /// Offsets lost before they could be backed up.
    pub gaps: Vec<Gap>,
    /// Consumer group offsets, when captured.
    pub consumer_groups: Option<GroupSnapshot>,
    /// Totals of this part.
    pub summary: RunSummary,
    /// The part before this one in the backup's chain (signed backups): the previous part of
    /// this run, or for part 0 the newest part of an earlier run; `None` for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<ManifestLink>,
    /// In the final part: where the coverage of every partition of the run ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub end_offsets: Vec<PartitionEnd>,
    /// [`crate::signing::VerifyingKey::key_id`] of the key that signed this part's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_id: Option<String>,
    /// How [`RunManifest::sealed`] is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// Topic configurations and consumer-group offsets ([`SealedManifestFields`]), encrypted;
    /// while sealed, `topics[].configs` are empty and `consumer_groups` is `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

/// A link to another manifest part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ManifestLink {
    /// Its object key.
    pub key: String,
    /// SHA-256 of its content.
    #[serde(with = "crate::hex::serde32")]
    pub sha256: [u8; 32],
}

/// Where a partition's coverage ended when a run finished.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartitionEnd {
    /// Topic name.
    pub topic: String,
    /// Topic id.
    pub topic_id: String,
    /// Partition.
    pub partition: i32,
    /// First offset not covered by the backup's segments and gaps.
    pub end_offset: i64,
    /// The partition's log start offset on the source when the run began: the records before
    /// it were no longer in the cluster, so this run's view of the partition is
    /// `log_start_offset..end_offset`. Retention (`prune`) keeps what a kept run's view needs;
    /// absent (older runs), the view is taken to start at offset 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start_offset: Option<i64>,
}

/// The fields of a manifest part that are sealed in an encrypted backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedManifestFields {
    /// Topic configurations by topic name and id.
    pub topic_configs: Vec<TopicConfigs>,
    /// The consumer-group snapshot.
    pub consumer_groups: Option<GroupSnapshot>,
}

/// One topic's configuration, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfigs {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub topic_id: String,
    /// Its configuration.
    pub configs: BTreeMap<String, String>,
}

/// The cluster a run backed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCluster {
    /// Cluster id, when the broker reports one.
    pub cluster_id: Option<String>,
    /// Bootstrap servers as configured.
    pub bootstrap_servers: Vec<String>,
}

/// A topic's metadata and configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSnapshot {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub topic_id: String,
    /// Whether Kafka marks it internal (`__consumer_offsets`, …).
    pub is_internal: bool,
    /// Partition count.
    pub partitions: u32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Topic-level configs that are set on the topic (not broker defaults).
    pub configs: BTreeMap<String, String>,
}

/// One segment object, as a run records it: the trailer's totals plus where and how it is
/// stored, so a restore can plan without reading segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Object key, relative to the storage prefix.
    pub key: String,
    /// Topic name.
    pub topic: String,
    /// Topic id.
    pub topic_id: String,
    /// Partition.
    pub partition: i32,
    /// Coverage start, inclusive.
    pub start_offset: i64,
    /// Coverage end, exclusive.
    pub end_offset: i64,
    /// Base offset of the first batch.
    pub first_batch_offset: i64,
    /// Last offset of the last batch.
    pub last_offset: i64,
    /// Record batches.
    pub batches: u64,
    /// Records.
    pub records: u64,
    /// Uncompressed size of the batches.
    pub raw_bytes: u64,
    /// Object size.
    pub stored_bytes: u64,
    /// SHA-256 of the object, hex.
    #[serde(with = "crate::hex::serde32")]
    pub sha256: [u8; 32],
    /// Chunk codec.
    pub compression: Compression,
    /// See [`crate::SegmentTrailer::min_timestamp`].
    pub min_timestamp: i64,
    /// See [`crate::SegmentTrailer::max_timestamp`].
    pub max_timestamp: i64,
    /// Aborted transactions overlapping the segment.
    pub aborted_transactions: Vec<AbortedTransaction>,
    /// The segment's COMMIT and ABORT markers in offset order. `None` in manifests written
    /// before kafka-backup recorded them (or when a control batch did not decode): a restore
    /// then reads the segment once more, before producing, to find them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markers: Option<Vec<TxnMarker>>,
}

impl SegmentEntry {
    /// The entry for a segment just written under `key` (relative to the storage prefix,
    /// normally [`FinishedSegment::key`]).
    pub fn from_finished(segment: &FinishedSegment, key: String) -> Self {
        let (h, t) = (&segment.header, &segment.trailer);
        Self {
            key,
            topic: h.topic.clone(),
            topic_id: h.topic_id.clone(),
            partition: h.partition,
            start_offset: h.start_offset,
            end_offset: t.end_offset,
            first_batch_offset: t.first_batch_offset,
            last_offset: t.last_offset,
            batches: t.batches,
            records: t.records,
            raw_bytes: t.raw_bytes,
            stored_bytes: segment.bytes.len() as u64,
            sha256: segment.sha256,
            compression: h.compression,
            min_timestamp: t.min_timestamp,
            max_timestamp: t.max_timestamp,
            aborted_transactions: h.aborted_transactions.clone(),
            markers: segment.markers.clone(),
        }
    }

    /// Checks that the key parses and agrees with the fields.
    fn validate(&self, backup_id: &str) -> Result<(), String> {
        let k = naming::parse_segment_key(&self.key)
            .ok_or_else(|| format!("segment key {:?} is not a segment key", self.key))?;
        let agrees = k.backup_id == backup_id
            && k.topic == self.topic
            && k.topic_id == self.topic_id
            && k.partition == self.partition
            && k.start_offset == self.start_offset
            && k.end_offset() == self.end_offset
            && k.last_offset == self.last_offset
            && k.sha256 == self.sha256;
        if !agrees {
            return Err(format!(
                "segment key {:?} disagrees with its entry",
                self.key
            ));
        }
        if self.first_batch_offset > self.last_offset {
            return Err(format!(
                "segment {:?}: first_batch_offset after last_offset",
                self.key
            ));
        }
        if let Some(markers) = &self.markers {
            let in_range = markers
                .iter()
                .all(|m| m.offset >= self.first_batch_offset && m.offset <= self.last_offset);
            let ordered = markers.windows(2).all(|w| w[0].offset < w[1].offset);
            if !in_range || !ordered {
                return Err(format!(
                    "segment {:?}: its transaction markers are out of order or outside its offsets",
                    self.key
                ));
            }
        }
        Ok(())
    }
}

/// Consumer group offsets captured by a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// RFC 3339.
    pub captured_at: String,
    /// The groups.
    pub groups: Vec<GroupOffsets>,
}

/// One consumer group's committed offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffsets {
    /// Group id.
    pub group_id: String,
    /// Group state as the broker reported it (`Stable`, `Empty`, …).
    pub state: String,
    /// Committed offsets.
    pub offsets: Vec<GroupOffset>,
}

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffset {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset.
    pub offset: i64,
    /// Leader epoch of the commit, when known.
    pub leader_epoch: Option<i32>,
    /// Commit metadata.
    pub metadata: Option<String>,
}

/// Totals of a manifest part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Topics.
    pub topics: u64,
    /// Partitions.
    pub partitions: u64,
    /// Segments.
    pub segments: u64,
    /// Batches.
    pub batches: u64,
    /// Records.
    pub records: u64,
    /// Uncompressed bytes.
    pub raw_bytes: u64,
    /// Object bytes.
    pub stored_bytes: u64,
    /// Run duration so far.
    pub duration_ms: u64,
}

impl RunSummary {
    /// Totals of `segments`, with topic and partition counts from `topics`.
    pub fn tally(topics: &[TopicSnapshot], segments: &[SegmentEntry], duration_ms: u64) -> Self {
        let mut s = Self {
            topics: topics.len() as u64,
            partitions: topics.iter().map(|t| u64::from(t.partitions)).sum(),
            duration_ms,
            ..Self::default()
        };
        for e in segments {
            s.segments += 1;
            s.batches += e.batches;
            s.records += e.records;
            s.raw_bytes += e.raw_bytes;
            s.stored_bytes += e.stored_bytes;
        }
        s
    }
}

impl RunManifest {
    /// This part's unsigned key (a signed backup names it with
    /// [`naming::ManifestKey::sign`] over its content instead).
    pub fn key(&self) -> Result<String, NameError> {
        self.manifest_key().to_key()
    }

    /// The parts of this part's key, unsigned.
    pub fn manifest_key(&self) -> ManifestKey {
        ManifestKey {
            backup_id: self.backup_id.clone(),
            run_id: self.run_id.clone(),
            part: self.part,
            seal: None,
        }
    }

    /// Encrypts the topic configurations and the consumer-group snapshot under `key`.
    pub fn seal(&mut self, key: &RunKey) -> Result<(), CryptoError> {
        let fields = SealedManifestFields {
            topic_configs: self
                .topics
                .iter_mut()
                .map(|t| TopicConfigs {
                    name: t.name.clone(),
                    topic_id: t.topic_id.clone(),
                    configs: std::mem::take(&mut t.configs),
                })
                .collect(),
            consumer_groups: self.consumer_groups.take(),
        };
        let (encryption, sealed) = seal_fields(key, "manifest fields", &self.binding(), &fields)?;
        self.encryption = Some(encryption);
        self.sealed = Some(sealed);
        Ok(())
    }

    /// Decrypts the sealed fields with the run's (unwrapped) data key and puts them back
    /// in place (`encryption` stays, naming the run's key). A part that is not sealed is left
    /// as it is.
    pub fn open(&mut self, data_key: &DataKey) -> Result<(), CryptoError> {
        let Some(fields) = open_fields::<SealedManifestFields>(
            data_key,
            (&self.encryption, &self.sealed),
            "manifest fields",
            &self.binding(),
        )?
        else {
            return Ok(());
        };
        for c in fields.topic_configs {
            if let Some(t) = self
                .topics
                .iter_mut()
                .find(|t| t.name == c.name && t.topic_id == c.topic_id)
            {
                t.configs = c.configs;
            }
        }
        self.consumer_groups = fields.consumer_groups;
        // `encryption` stays: it still says which key the run's objects need.
        self.sealed = None;
        Ok(())
    }

    /// Whether topic configurations and consumer groups are still encrypted.
    pub fn is_sealed(&self) -> bool {
        self.sealed.is_some()
    }

    /// What sealed values are bound to: this part's identity.
    fn binding(&self) -> String {
        format!(
            "{}/runs/{}/manifest-{:06}",
            self.backup_id, self.run_id, self.part
        )
    }

    /// Serializes after validating, so a writer cannot produce what readers would refuse.
    pub fn to_json(&self) -> Result<Vec<u8>, ManifestError> {
        self.validate()?;
        to_json("run manifest", self, MAX_MANIFEST_LEN)
    }

    /// Parses a manifest part: bounded, versioned, validated.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let m: Self = from_json("run manifest", bytes, MAX_MANIFEST_LEN, |m: &Self| m.format)?;
        m.validate()?;
        Ok(m)
    }

    /// Checks names, keys against entries, and ranges.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |reason: String| ManifestError::Invalid {
            what: "run manifest",
            reason,
        };
        check_format("run manifest", self.format)?;
        naming::validate_backup_id(&self.backup_id)?;
        naming::validate_run_id(&self.run_id)?;
        for t in &self.topics {
            naming::validate_topic(&t.name)?;
            naming::validate_topic_id(&t.topic_id)?;
        }
        for e in &self.segments {
            e.validate(&self.backup_id).map_err(invalid)?;
        }
        for g in &self.gaps {
            g.key(&self.backup_id)?;
        }
        if self.sealed.is_some() {
            let e = self
                .encryption
                .as_ref()
                .ok_or_else(|| invalid("sealed fields without encryption parameters".into()))?;
            e.validate().map_err(|e| invalid(e.to_string()))?;
            if self.consumer_groups.is_some() || self.topics.iter().any(|t| !t.configs.is_empty()) {
                return Err(invalid(
                    "sealed fields are also present in the clear".to_owned(),
                ));
            }
        }
        if let Some(link) = &self.previous {
            naming::parse_manifest_key(&link.key)
                .filter(|k| k.backup_id == self.backup_id)
                .ok_or_else(|| {
                    invalid(format!(
                        "previous {:?} is not a manifest key of this backup",
                        link.key
                    ))
                })?;
        }
        for e in &self.end_offsets {
            naming::validate_topic(&e.topic)?;
            naming::validate_topic_id(&e.topic_id)?;
            if e.partition < 0 || e.end_offset < 0 {
                return Err(invalid(format!(
                    "end offset {} of partition {}-{} is negative",
                    e.end_offset, e.topic, e.partition
                )));
            }
            if let Some(start) = e.log_start_offset
                && start < 0
            {
                return Err(invalid(format!(
                    "log start offset {start} of partition {}-{} is negative",
                    e.topic, e.partition
                )));
            }
        }
        Ok(())
    }
}

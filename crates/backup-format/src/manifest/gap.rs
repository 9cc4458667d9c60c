//! Gaps: offsets of a partition lost before they were backed up, in a run's manifest and as
//! gap records of their own (sealed in an encrypted backup).

use serde::{Deserialize, Serialize};

use super::json::{check_format, from_json, open_fields, seal_fields, to_json};
use super::{MAX_SMALL_DOCUMENT_LEN, ManifestError};
use crate::crypto::{CryptoError, DataKey, Encryption, RunKey};
use crate::naming::{self, NameError};

/// Offsets `[from, to)` of a partition lost (to retention, usually) before they were backed
/// up. Also stored on its own under a gap key, so a later run sees it by LIST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
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
    /// Why, for people: e.g. `"retention"` (log start offset moved past the backup's
    /// position) or `"truncation"` (the log was truncated, e.g. unclean leader election).
    pub reason: String,
    /// RFC 3339.
    pub detected_at: String,
}

impl Gap {
    /// The key of this gap's own object.
    pub fn key(&self, backup_id: &str) -> Result<String, NameError> {
        naming::GapKey {
            backup_id: backup_id.to_owned(),
            topic: self.topic.clone(),
            topic_id: self.topic_id.clone(),
            partition: self.partition,
            from: self.from,
            to: self.to,
            seal: None,
        }
        .to_key()
    }

    /// The parts of this gap's unsigned key.
    pub fn gap_key(&self, backup_id: &str) -> naming::GapKey {
        naming::GapKey {
            backup_id: backup_id.to_owned(),
            topic: self.topic.clone(),
            topic_id: self.topic_id.clone(),
            partition: self.partition,
            from: self.from,
            to: self.to,
            seal: None,
        }
    }
}

/// The content of a gap object (at [`Gap::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapRecord {
    /// Must be [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The backup.
    pub backup_id: String,
    /// The run that found the gap.
    pub run_id: String,
    /// The gap (`reason` and `detected_at` empty while sealed).
    pub gap: Gap,
    /// How [`GapRecord::sealed`] is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// The gap's `reason` and `detected_at`, encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

/// The fields of a gap record that are sealed in an encrypted backup.
#[derive(Serialize, Deserialize)]
struct SealedGap {
    reason: String,
    detected_at: String,
}

impl GapRecord {
    /// Serializes after validating.
    pub fn to_json(&self) -> Result<Vec<u8>, ManifestError> {
        self.validate()?;
        to_json("gap record", self, MAX_SMALL_DOCUMENT_LEN)
    }

    /// Parses a gap record: bounded, versioned, validated.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let g: Self = from_json("gap record", bytes, MAX_SMALL_DOCUMENT_LEN, |g: &Self| {
            g.format
        })?;
        g.validate()?;
        Ok(g)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        check_format("gap record", self.format)?;
        naming::validate_run_id(&self.run_id)?;
        self.gap.key(&self.backup_id)?;
        if self.sealed.is_some() {
            let invalid = |reason: String| ManifestError::Invalid {
                what: "gap record",
                reason,
            };
            self.encryption
                .as_ref()
                .ok_or_else(|| invalid("sealed fields without encryption parameters".into()))?
                .validate()
                .map_err(|e| invalid(e.to_string()))?;
        }
        Ok(())
    }

    /// Encrypts the gap's reason and detection time under `key`.
    pub fn seal(&mut self, key: &RunKey) -> Result<(), CryptoError> {
        let fields = SealedGap {
            reason: std::mem::take(&mut self.gap.reason),
            detected_at: std::mem::take(&mut self.gap.detected_at),
        };
        let (encryption, sealed) = seal_fields(key, "gap", &self.binding(), &fields)?;
        self.encryption = Some(encryption);
        self.sealed = Some(sealed);
        Ok(())
    }

    /// Decrypts what [`GapRecord::seal`] hid; a record that is not sealed is left as it is.
    pub fn open(&mut self, data_key: &DataKey) -> Result<(), CryptoError> {
        let Some(fields) = open_fields::<SealedGap>(
            data_key,
            (&self.encryption, &self.sealed),
            "gap",
            &self.binding(),
        )?
        else {
            return Ok(());
        };
        self.gap.reason = fields.reason;
        self.gap.detected_at = fields.detected_at;
        self.sealed = None;
        Ok(())
    }

    fn binding(&self) -> String {
        format!(
            "{}/gap/{}/{}/{}/{}-{}",
            self.backup_id,
            self.gap.topic,
            self.gap.topic_id,
            self.gap.partition,
            self.gap.from,
            self.gap.to
        )
    }
}

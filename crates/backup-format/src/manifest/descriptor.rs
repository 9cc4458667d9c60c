//! The backup descriptor, `{backup_id}/backup.json`: plain JSON, or a signed DSSE envelope.

use serde::{Deserialize, Serialize};

use super::json::{check_format, from_json, to_json};
use super::{MAX_SMALL_DOCUMENT_LEN, ManifestError};
use crate::naming;
use crate::signing::{DESCRIPTOR_PAYLOAD_TYPE, Envelope, EnvelopeCheck, SigningKey, VerifyingKeys};

/// The backup descriptor, `{backup_id}/backup.json`, written once when the backup is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupDescriptor {
    /// Must be [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The backup.
    pub backup_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// The source cluster's id, when known: later runs against another cluster can refuse.
    pub source_cluster_id: Option<String>,
    /// kafka-backup version that created it.
    pub tool_version: String,
}

impl BackupDescriptor {
    /// Serializes after validating.
    pub fn to_json(&self) -> Result<Vec<u8>, ManifestError> {
        check_format("backup descriptor", self.format)?;
        naming::validate_backup_id(&self.backup_id)?;
        to_json("backup descriptor", self, MAX_SMALL_DOCUMENT_LEN)
    }

    /// Serializes inside a DSSE envelope signed with `key`.
    pub fn to_signed_json(&self, key: &SigningKey) -> Result<Vec<u8>, ManifestError> {
        let body = self.to_json()?;
        let envelope = Envelope::seal(DESCRIPTOR_PAYLOAD_TYPE, &body, key);
        to_json("backup descriptor", &envelope, MAX_SMALL_DOCUMENT_LEN)
    }

    /// Parses a descriptor: bounded, versioned, validated. A signed descriptor is unwrapped
    /// without checking its signature (see [`BackupDescriptor::from_json_verified`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        Self::from_json_verified(bytes, &VerifyingKeys::default()).map(|(d, _)| d)
    }

    /// Parses a descriptor, plain or signed, and says whether one of `keys` signed it.
    pub fn from_json_verified(
        bytes: &[u8],
        keys: &VerifyingKeys,
    ) -> Result<(Self, DescriptorSignature), ManifestError> {
        if bytes.len() > MAX_SMALL_DOCUMENT_LEN {
            return Err(ManifestError::TooLarge {
                what: "backup descriptor",
                len: bytes.len() as u64,
                limit: MAX_SMALL_DOCUMENT_LEN as u64,
            });
        }
        let (body, signature) = match serde_json::from_slice::<Envelope>(bytes) {
            Ok(envelope) => {
                let (payload, check) =
                    envelope
                        .open(DESCRIPTOR_PAYLOAD_TYPE, keys)
                        .ok_or_else(|| ManifestError::Invalid {
                            what: "backup descriptor",
                            reason:
                                "a signed envelope of another type or with an undecodable payload"
                                    .to_owned(),
                        })?;
                let signature = match check {
                    EnvelopeCheck::Verified(id) => DescriptorSignature::Verified(id),
                    EnvelopeCheck::NotVerified(ids) => DescriptorSignature::NotVerified(ids),
                };
                (payload, signature)
            }
            Err(_) => (bytes.to_vec(), DescriptorSignature::Unsigned),
        };
        let d: Self = from_json(
            "backup descriptor",
            &body,
            MAX_SMALL_DOCUMENT_LEN,
            |d: &Self| d.format,
        )?;
        naming::validate_backup_id(&d.backup_id)?;
        Ok((d, signature))
    }
}

/// Whether a backup descriptor is signed, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptorSignature {
    /// Plain JSON.
    Unsigned,
    /// Signed by the configured key with this id.
    Verified(String),
    /// Signed, but not by a configured key (or the signature does not match): the key ids
    /// it claims.
    NotVerified(Vec<String>),
}

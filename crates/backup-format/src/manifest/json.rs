//! What every document shares: bounded, versioned JSON, sealed fields, timestamps.

use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{OffsetDateTime, UtcOffset};

use super::{MANIFEST_FORMAT, MIN_MANIFEST_FORMAT, ManifestError};
use crate::crypto::{self, CryptoError, DataKey, Encryption, RunKey};

/// Seals `fields` under a fresh salt: the parameters to store beside them, and the sealed text.
pub(super) fn seal_fields<T: Serialize>(
    key: &RunKey,
    purpose: &str,
    binding: &str,
    fields: &T,
) -> Result<(Encryption, String), CryptoError> {
    let encryption = Encryption::new(key.wrapped.clone())?;
    let sealed = crypto::document::seal(
        &key.data_key,
        &encryption,
        purpose,
        binding.as_bytes(),
        fields,
    )?;
    Ok((encryption, sealed))
}

/// Opens what [`seal_fields`] sealed; `None` when nothing is sealed.
pub(super) fn open_fields<T: DeserializeOwned>(
    data_key: &DataKey,
    (encryption, sealed): (&Option<Encryption>, &Option<String>),
    purpose: &str,
    binding: &str,
) -> Result<Option<T>, CryptoError> {
    let (Some(encryption), Some(sealed)) = (encryption, sealed) else {
        return Ok(None);
    };
    crypto::document::open(data_key, encryption, purpose, binding.as_bytes(), sealed).map(Some)
}

/// A timestamp as the documents store them: RFC 3339, UTC, milliseconds.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year().clamp(0, 9999),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

pub(super) fn check_format(what: &'static str, format: u32) -> Result<(), ManifestError> {
    if !(MIN_MANIFEST_FORMAT..=MANIFEST_FORMAT).contains(&format) {
        return Err(ManifestError::UnsupportedFormat {
            what,
            found: u64::from(format),
            supported: MANIFEST_FORMAT,
        });
    }
    Ok(())
}

pub(super) fn to_json<T: Serialize>(
    what: &'static str,
    v: &T,
    limit: usize,
) -> Result<Vec<u8>, ManifestError> {
    let json = serde_json::to_vec(v).map_err(|e| ManifestError::Json {
        what,
        reason: e.to_string(),
    })?;
    if json.len() > limit {
        return Err(ManifestError::TooLarge {
            what,
            len: json.len() as u64,
            limit: limit as u64,
        });
    }
    Ok(json)
}

/// Bounded, versioned parse. When the document does not match this build's structure, its
/// `format` is looked at on its own, so a newer format gets "upgrade" rather than a confusing
/// missing-field error.
pub(super) fn from_json<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    limit: usize,
    format_of: impl Fn(&T) -> u32,
) -> Result<T, ManifestError> {
    if bytes.len() > limit {
        return Err(ManifestError::TooLarge {
            what,
            len: bytes.len() as u64,
            limit: limit as u64,
        });
    }
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) => {
            check_format(what, format_of(&v))?;
            Ok(v)
        }
        Err(e) => {
            #[derive(Deserialize)]
            struct Probe {
                format: Option<u64>,
            }
            if let Ok(Probe {
                format: Some(found),
            }) = serde_json::from_slice::<Probe>(bytes)
                && !(u64::from(MIN_MANIFEST_FORMAT)..=u64::from(MANIFEST_FORMAT)).contains(&found)
            {
                return Err(ManifestError::UnsupportedFormat {
                    what,
                    found,
                    supported: MANIFEST_FORMAT,
                });
            }
            Err(ManifestError::Json {
                what,
                reason: e.to_string(),
            })
        }
    }
}

//! Quarantine: a backup suspected of being compromised is marked so that restores refuse it
//! until the mark is released, without deleting or altering anything.
//!
//! Each quarantine or release is a new create-only object:
//!
//! ```text
//! {backup_id}/quarantine/{seq:06}-{quarantine|release}-{sha256}[.{signature}].json
//! ```
//!
//! The last marker in sequence order decides the state. A quarantine marker counts whether or
//! not it is signed (anyone able to write the backup may stop its restores: the safe
//! direction). A release counts only when its name is signed by a key the reader trusts
//! (`restore.verify_key`, `--verify-key`), so that someone who can merely write to the
//! storage cannot lift a quarantine; without verify keys nothing is authenticated, and every
//! release counts.

use backup_format::naming::validate_backup_id;
use backup_format::signing::{SigningKey, VerifyingKeys};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::storage::{Storage, StorageError};

/// Largest marker read: markers are a few hundred bytes.
const MAX_MARKER: u64 = 64 * 1024;

/// Most markers read for one backup: each is a deliberate operator action.
const MAX_MARKERS: usize = 10_000;

/// Quarantine or release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Restores refuse the backup.
    Quarantine,
    /// Restores accept it again.
    Release,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Self::Quarantine => "quarantine",
            Self::Release => "release",
        }
    }
}

/// The body of a marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Layout version (1).
    pub format: u32,
    /// Quarantine or release.
    pub action: Action,
    /// The backup.
    pub backup_id: String,
    /// Why, in the operator's words.
    pub reason: String,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// Who: host and operating-system user of the command that wrote it.
    pub by: String,
}

/// A marker as found in storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// Its key.
    pub key: String,
    /// Its place in the sequence.
    pub seq: u32,
    /// Its content.
    pub marker: Marker,
    /// The key id that signed its name, when a trusted key did.
    pub signed_by: Option<String>,
    /// Whether it counts (a release must be signed by a trusted key when keys are given).
    pub counts: bool,
}

/// A backup's quarantine state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct State {
    /// The quarantine in force, when there is one.
    pub quarantined: Option<Found>,
    /// Every marker, in sequence order.
    pub history: Vec<Found>,
}

/// Quarantine markers that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuarantineError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A bad backup id.
    #[error("{0}")]
    Name(String),
    /// A release without a signing key.
    #[error(
        "a release must be signed, so that whoever can only write to the storage cannot lift a \
         quarantine: run it with a configuration whose backup.signing_key (or audit.signing_key) \
         is the admin's signing key, whose public half restores trust"
    )]
    Unsigned,
    /// More markers than any operator writes: something else writes there.
    #[error(
        "{location} holds more than {MAX_MARKERS} quarantine markers, more than operators ever \
         write; they were not read. Find out what else writes under that prefix"
    )]
    TooMany {
        /// The marker prefix.
        location: String,
    },
    /// The backup is not quarantined (nothing to release).
    #[error("backup `{0}` is not quarantined: there is nothing to release")]
    NotQuarantined(String),
}

fn prefix(backup_id: &str) -> Result<String, QuarantineError> {
    validate_backup_id(backup_id).map_err(|e| QuarantineError::Name(e.to_string()))?;
    Ok(format!("{backup_id}/quarantine/"))
}

/// The unsigned name of a marker, which its signature covers.
fn base_name(seq: u32, action: Action, sha256: &str) -> String {
    format!("{seq:06}-{}-{sha256}", action.as_str())
}

/// Parses `{seq}-{action}-{sha}[.{sig}].json`.
fn parse_name(name: &str) -> Option<(u32, Action, String, Option<[u8; 64]>)> {
    let (base, sig) = crate::catalog::pruned::split_signed_json(name)?;
    let mut parts = base.splitn(3, '-');
    let seq_text = parts.next()?;
    let seq: u32 = seq_text.parse().ok()?;
    let action = match parts.next()? {
        "quarantine" => Action::Quarantine,
        "release" => Action::Release,
        _ => return None,
    };
    let sha = parts.next()?;
    let canonical = sha.len() == 64
        && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && format!("{seq:06}") == seq_text;
    canonical.then(|| (seq, action, sha.to_owned(), sig))
}

/// Reads every marker of `backup_id` and the state they give, trusting releases signed by
/// `keys` (all releases when `keys` is empty). Markers whose content does not match their
/// name are skipped with a warning.
pub async fn read_state(
    storage: &Storage,
    backup_id: &str,
    keys: &VerifyingKeys,
) -> Result<State, QuarantineError> {
    let prefix = prefix(backup_id)?;
    let mut names = Vec::new();
    let mut listing = storage.list_stream(&prefix);
    while let Some(item) = listing.next().await {
        names.push(item?.key);
        if names.len() > MAX_MARKERS {
            return Err(QuarantineError::TooMany {
                location: storage.location(&prefix),
            });
        }
    }
    let mut history = Vec::new();
    for key in names {
        let name = key.strip_prefix(&prefix).unwrap_or(&key);
        let Some((seq, action, sha, sig)) = parse_name(name) else {
            continue;
        };
        let body = storage.get_bounded(&key, MAX_MARKER).await?;
        if crate::audit::sha256_hex(&body) != sha {
            tracing::warn!(
                key,
                "a quarantine marker's content does not match its name: ignored"
            );
            continue;
        }
        let Ok(marker) = serde_json::from_slice::<Marker>(&body) else {
            tracing::warn!(key, "a quarantine marker does not parse: ignored");
            continue;
        };
        if marker.action != action || marker.backup_id != backup_id {
            tracing::warn!(
                key,
                "a quarantine marker names another action or backup: ignored"
            );
            continue;
        }
        let signed_by = sig.and_then(|s| {
            keys.verify_name(&base_name(seq, action, &sha), &s)
                .map(|k| k.key_id())
        });
        let counts = match action {
            Action::Quarantine => true,
            Action::Release => keys.is_empty() || signed_by.is_some(),
        };
        history.push(Found {
            key,
            seq,
            marker,
            signed_by,
            counts,
        });
    }
    history.sort_by(|a, b| a.seq.cmp(&b.seq).then(a.key.cmp(&b.key)));
    let quarantined = history
        .iter()
        .rev()
        .find(|f| f.counts)
        .filter(|f| f.marker.action == Action::Quarantine)
        .cloned();
    Ok(State {
        quarantined,
        history,
    })
}

/// Writes a marker after the existing ones; a release needs `key`. Returns the marker's key.
pub async fn write_marker(
    storage: &Storage,
    backup_id: &str,
    action: Action,
    reason: &str,
    by: &str,
    key: Option<&SigningKey>,
) -> Result<String, QuarantineError> {
    if action == Action::Release && key.is_none() {
        return Err(QuarantineError::Unsigned);
    }
    let trust = key
        .map(|k| VerifyingKeys::new(vec![k.verifying_key().clone()]))
        .unwrap_or_default();
    let state = read_state(storage, backup_id, &trust).await?;
    if action == Action::Release && state.quarantined.is_none() {
        return Err(QuarantineError::NotQuarantined(backup_id.to_owned()));
    }
    let seq = state.history.iter().map(|f| f.seq + 1).max().unwrap_or(1);
    let marker = Marker {
        format: 1,
        action,
        backup_id: backup_id.to_owned(),
        reason: reason.to_owned(),
        at: crate::audit::now(),
        by: by.to_owned(),
    };
    let body = serde_json::to_vec_pretty(&marker)
        .map_err(|e| QuarantineError::Name(format!("cannot encode the marker: {e}")))?;
    let sha = crate::audit::sha256_hex(&body);
    let base = base_name(seq, action, &sha);
    let full = format!(
        "{}{}",
        prefix(backup_id)?,
        crate::catalog::pruned::signed_json_name(&base, key)
    );
    storage.put_new(&full, Bytes::from(body)).await?;
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_format::signing::encode_name_signature;

    #[test]
    fn names_round_trip_and_only_canonical_ones_parse() {
        let sha = "a".repeat(64);
        let base = base_name(3, Action::Release, &sha);
        assert_eq!(
            parse_name(&format!("{base}.json")),
            Some((3, Action::Release, sha.clone(), None))
        );
        let key = SigningKey::generate().unwrap().0;
        let sig = encode_name_signature(&key.sign_name(&base));
        let (_, _, _, parsed) = parse_name(&format!("{base}.{sig}.json")).unwrap();
        let keys = VerifyingKeys::new(vec![key.verifying_key().clone()]);
        assert!(keys.verify_name(&base, &parsed.unwrap()).is_some());
        assert_eq!(parse_name(&format!("3-release-{sha}.json")), None);
        assert_eq!(parse_name(&format!("000003-delete-{sha}.json")), None);
        assert_eq!(parse_name("000003-release-abc.json"), None);
    }
}

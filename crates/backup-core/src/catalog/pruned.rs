//! Prune records: what retention removed from a backup, so that readers can tell a run that
//! policy deleted from one that an intruder deleted.
//!
//! `prune --execute` writes one create-only record before it deletes anything:
//!
//! ```text
//! {backup_id}/pruned/{seq:06}-pruned-{sha256}[.{signature}].json
//! ```
//!
//! It lists each removed run's manifest parts (key and SHA-256, exactly what the next part's
//! chain link names) and every object of the run. In a signed backup a record counts only when
//! its name is signed by an admin key the reader trusts (`restore.release_verify_key`, or
//! else the verify keys): someone who can merely write to the bucket cannot excuse the runs
//! they deleted. Without verify keys nothing is authenticated and every record counts.

use std::collections::BTreeMap;

use backup_format::naming::validate_backup_id;
use backup_format::signing::{
    SigningKey, VerifyingKeys, decode_name_signature, encode_name_signature,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::problem::{Problem, ProblemKind};
use crate::storage::{Storage, StorageError};

/// Largest prune record read: one lists every object of the runs it removed.
pub const MAX_RECORD: u64 = 16 << 20;

/// Most prune records read for one backup: one per `prune --execute` that removed something.
pub const MAX_RECORDS: usize = 10_000;

/// The layout version written.
pub const RECORD_FORMAT: u32 = 1;

/// What one `prune --execute` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRecord {
    /// Layout version ([`RECORD_FORMAT`]).
    pub format: u32,
    /// The backup.
    pub backup_id: String,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// Who: host and operating-system user.
    pub by: String,
    /// The policy applied, in words (`--keep-last 3 --max-age 30d`).
    pub policy: String,
    /// The runs removed.
    pub runs: Vec<PrunedRun>,
}

/// What retention removed of one run: all of it (`whole`, its manifest parts included), or
/// the segments and gap records no kept run needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrunedRun {
    /// Its id.
    pub run_id: String,
    /// When it started, as its manifest says.
    pub started_at: String,
    /// Whether the whole run went, manifest parts included.
    pub whole: bool,
    /// Its manifest parts, when the whole run went.
    pub parts: Vec<PrunedPart>,
    /// Every object removed of it (segments, gap records, and manifest parts when whole).
    pub objects: Vec<String>,
    /// Bytes of those objects, as listed.
    pub bytes: u64,
}

/// A removed manifest part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrunedPart {
    /// Its object key.
    pub key: String,
    /// SHA-256 of its content, lower-case hex.
    pub sha256: String,
}

/// A prune record as found in storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundRecord {
    /// Its key.
    pub key: String,
    /// Its place in the sequence.
    pub seq: u32,
    /// Its content.
    pub record: PruneRecord,
    /// The trusted key that signed its name.
    pub signed_by: Option<String>,
}

/// The prefix of `backup_id`'s prune records.
pub fn prefix(backup_id: &str) -> String {
    format!("{backup_id}/pruned/")
}

/// The unsigned name of a record, which its signature covers.
fn base_name(seq: u32, sha256: &str) -> String {
    format!("{seq:06}-pruned-{sha256}")
}

/// `{base}.{signature}.json` with `key`, or `{base}.json` without: the names of operator
/// records (prune records, quarantine markers), whose signature covers the base name.
pub(crate) fn signed_json_name(base: &str, key: Option<&SigningKey>) -> String {
    match key {
        Some(k) => format!("{base}.{}.json", encode_name_signature(&k.sign_name(base))),
        None => format!("{base}.json"),
    }
}

/// Splits a [`signed_json_name`] into its base and signature; `None` when it is not one.
pub(crate) fn split_signed_json(name: &str) -> Option<(&str, Option<[u8; 64]>)> {
    let stem = name.strip_suffix(".json")?;
    Some(match stem.split_once('.') {
        Some((b, s)) => (b, Some(decode_name_signature(s)?)),
        None => (stem, None),
    })
}

/// Parses `{seq}-pruned-{sha}[.{sig}].json`; anything else is `None`.
pub(crate) fn parse_name(name: &str) -> Option<(u32, String, Option<[u8; 64]>)> {
    let (base, sig) = split_signed_json(name)?;
    let (seq_text, sha) = base.split_once("-pruned-")?;
    let seq: u32 = seq_text.parse().ok()?;
    let canonical = format!("{seq:06}") == seq_text
        && sha.len() == 64
        && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    canonical.then(|| (seq, sha.to_owned(), sig))
}

/// Reads the records listed as `keys` (with their listed sizes) that may be believed: every
/// one when `trusted` is `None` (nothing is authenticated), else those whose names a key in it
/// signed. The others, and records that do not match their names, are [`Problem`]s, never
/// errors; only storage failures are.
pub(crate) async fn read_records(
    storage: &Storage,
    backup_id: &str,
    keys: &[(String, u64)],
    trusted: Option<&VerifyingKeys>,
    problems: &mut Vec<Problem>,
) -> Result<Vec<FoundRecord>, StorageError> {
    let prefix = prefix(backup_id);
    // With keys, a record whose name no trusted key signed is set aside unread, so that
    // records planted by a writer can neither crowd out the real ones nor cost a GET each.
    let mut candidates = Vec::new();
    for (key, size) in keys {
        let name = key.strip_prefix(&prefix).unwrap_or(key);
        let Some((seq, sha, sig)) = parse_name(name) else {
            continue;
        };
        let signed_by = match (trusted, sig) {
            (Some(keys), Some(sig)) => keys
                .verify_name(&base_name(seq, &sha), &sig)
                .map(|k| k.key_id()),
            _ => None,
        };
        if trusted.is_some() && signed_by.is_none() {
            problems.push(
                Problem::new(
                    ProblemKind::Unauthenticated,
                    "a prune record is not signed by a trusted admin key, so the runs it names \
                     are not excused: anyone able to write to the bucket could have written it \
                     after deleting them. Sign prunes with the admin's key (backup.signing_key \
                     or audit.signing_key of the prune configuration) and trust its public half \
                     (restore.release_verify_key or restore.verify_key)",
                )
                .object(key),
            );
            continue;
        }
        candidates.push((key, *size, seq, sha, signed_by));
    }
    if candidates.len() > MAX_RECORDS {
        problems.push(Problem::new(
            ProblemKind::UnexpectedObject,
            format!(
                "{} holds {} prune records, more than {MAX_RECORDS}, more than retention ever \
                 writes; none was read. Find out what else writes there",
                storage.location(&prefix),
                candidates.len()
            ),
        ));
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (key, size, seq, sha, signed_by) in candidates {
        let ignored = |why: &str| {
            Problem::new(
                ProblemKind::UnexpectedObject,
                format!("a prune record {why}: it is ignored"),
            )
            .object(key)
        };
        if size > MAX_RECORD {
            problems.push(ignored("is larger than any prune writes"));
            continue;
        }
        let body = match storage.get_bounded(key, MAX_RECORD).await {
            Ok(b) => b,
            Err(StorageError::NotFound { .. }) => continue,
            Err(StorageError::TooLarge { .. }) => {
                problems.push(ignored("is larger than any prune writes"));
                continue;
            }
            Err(e) => return Err(e),
        };
        if crate::audit::sha256_hex(&body) != sha {
            problems.push(ignored("does not match the digest in its name"));
            continue;
        }
        let record = match serde_json::from_slice::<PruneRecord>(&body) {
            Ok(r) if r.format == RECORD_FORMAT && r.backup_id == backup_id => r,
            _ => {
                problems.push(ignored("does not parse as a prune record of this backup"));
                continue;
            }
        };
        out.push(FoundRecord {
            key: key.clone(),
            seq,
            record,
            signed_by,
        });
    }
    out.sort_by(|a, b| a.seq.cmp(&b.seq).then(a.key.cmp(&b.key)));
    Ok(out)
}

/// The manifest parts that the records say retention removed: object key to SHA-256.
pub(crate) fn pruned_parts(records: &[FoundRecord]) -> BTreeMap<String, String> {
    records
        .iter()
        .flat_map(|r| r.record.runs.iter())
        .flat_map(|run| run.parts.iter())
        .map(|p| (p.key.clone(), p.sha256.clone()))
        .collect()
}

/// Every object that the records say retention removed.
pub(crate) fn pruned_objects(records: &[FoundRecord]) -> std::collections::BTreeSet<String> {
    records
        .iter()
        .flat_map(|r| r.record.runs.iter())
        .flat_map(|run| run.objects.iter().cloned())
        .collect()
}

/// Writes `record` as record `seq`, its name signed with `key` when given. Returns its key.
pub async fn write_record(
    storage: &Storage,
    record: &PruneRecord,
    seq: u32,
    key: Option<&SigningKey>,
) -> Result<String, StorageError> {
    validate_backup_id(&record.backup_id).map_err(|_| StorageError::InvalidKey {
        key: record.backup_id.escape_debug().to_string(),
        reason: "not a valid backup id",
    })?;
    let body = serde_json::to_vec_pretty(record).map_err(|_| StorageError::InvalidKey {
        key: record.backup_id.clone(),
        reason: "the prune record cannot be encoded",
    })?;
    let sha = crate::audit::sha256_hex(&body);
    let base = base_name(seq, &sha);
    let full = format!(
        "{}{}",
        prefix(&record.backup_id),
        signed_json_name(&base, key)
    );
    storage.put_new(&full, Bytes::from(body)).await?;
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_canonical_ones_parse() {
        let sha = "b".repeat(64);
        let base = base_name(7, &sha);
        assert_eq!(base, format!("000007-pruned-{sha}"));
        assert_eq!(
            parse_name(&format!("{base}.json")),
            Some((7, sha.clone(), None))
        );
        let key = SigningKey::generate().unwrap().0;
        let sig = encode_name_signature(&key.sign_name(&base));
        let (_, _, parsed) = parse_name(&format!("{base}.{sig}.json")).unwrap();
        let keys = VerifyingKeys::new(vec![key.verifying_key().clone()]);
        assert!(keys.verify_name(&base, &parsed.unwrap()).is_some());
        assert!(
            keys.verify_name(&base_name(8, &sha), &parsed.unwrap())
                .is_none()
        );
        assert_eq!(parse_name(&format!("7-pruned-{sha}.json")), None);
        // Past 999999 the sequence keeps growing (a planted record cannot end it).
        assert_eq!(
            parse_name(&format!("1000000-pruned-{sha}.json")),
            Some((1_000_000, sha.clone(), None))
        );
        assert_eq!(parse_name(&format!("0000007-pruned-{sha}.json")), None);
        assert_eq!(
            parse_name(&format!("000007-pruned-{}.json", "B".repeat(64))),
            None
        );
        assert_eq!(parse_name("000007-pruned-abc.json"), None);
        assert_eq!(parse_name(&format!("000007-quarantine-{sha}.json")), None);
    }
}

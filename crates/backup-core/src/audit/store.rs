//! The storage sink: each event a create-only object beside the backups, so that the backup
//! role (which may create and list, not read, overwrite or delete) can append to the trail
//! but not rewrite it.
//!
//! ```text
//! audit/{backup_id}/{seq:012}.claim               who takes sequence number seq (create-only)
//! audit/{backup_id}/{seq:012}-{sha256}.json       the event: one line of [`super::chain`]
//! ```
//!
//! A writer cannot read the previous event, so the chain is carried by names: the listing
//! gives the last event's SHA-256, which becomes the new event's `prev_sha256`. Concurrent
//! writers (two commands on one backup, or shards of one backup) are ordered by the claim: the
//! create-only write of `{seq}.claim` succeeds for exactly one of them, the others list again,
//! wait until the claimed number's event is there (so that theirs links to it), and claim the
//! next. A writer that stops between its claim and its event leaves a claimed number without
//! an event: the others link past it after [`PENDING_CLAIM_WAIT`], and [`verify`] reports it
//! as a note, not a break.

use std::collections::BTreeMap;

use backup_format::naming::validate_backup_id;
use backup_format::signing::{SigningKey, VerifyingKeys};
use bytes::Bytes;
use futures::StreamExt;

use super::chain::{self, Link, MAX_LINE, Verification, Verifier};
use super::{AuditError, AuditEvent, sha256_hex};
use crate::storage::{Storage, StorageError};

/// How many times a writer lists and claims again when others keep taking the number.
const CLAIM_ATTEMPTS: usize = 16;

/// How long a writer waits for the event of a number another writer claimed, before taking
/// that writer for gone and linking past its claim.
const PENDING_CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// `audit/{backup_id}/`.
pub fn stream_prefix(backup_id: &str) -> Result<String, AuditError> {
    validate_backup_id(backup_id).map_err(|e| AuditError::Encode(e.to_string()))?;
    Ok(format!("audit/{backup_id}/"))
}

/// What a stream's listing holds.
#[derive(Debug, Default)]
struct Listing {
    /// Events by sequence number: their SHA-256 (from the name) and keys; several at one
    /// number only when something forked the stream.
    events: BTreeMap<u64, Vec<(String, String)>>,
    /// Claimed sequence numbers.
    claims: Vec<u64>,
}

fn parse(name: &str) -> Option<Result<(u64, String), u64>> {
    if let Some(seq) = name.strip_suffix(".claim") {
        return (seq.len() == 12).then(|| seq.parse().ok().map(Err))?;
    }
    let stem = name.strip_suffix(".json")?;
    let (seq, sha) = stem.split_once('-')?;
    let ok = seq.len() == 12
        && sha.len() == 64
        && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| seq.parse().ok().map(|s| Ok((s, sha.to_owned()))))?
}

/// Most objects of one stream that reading or verifying holds (names only, about 200 bytes
/// each): a stream a store made larger is refused rather than read into memory. Appending
/// holds nothing but the stream's tip, whatever its length.
const MAX_STREAM_OBJECTS: usize = 200_000;

async fn list(storage: &Storage, prefix: &str) -> Result<Listing, AuditError> {
    let mut listing = Listing::default();
    let mut held = 0usize;
    let mut stream = storage.list_stream(prefix);
    while let Some(item) = stream.next().await {
        let key = item?.key;
        let name = key.strip_prefix(prefix).unwrap_or(&key);
        let parsed = parse(name);
        if parsed.is_some() {
            held += 1;
            if held > MAX_STREAM_OBJECTS {
                return Err(AuditError::TooLarge {
                    location: storage.location(prefix),
                    limit: MAX_STREAM_OBJECTS,
                });
            }
        }
        match parsed {
            Some(Ok((seq, sha))) => listing.events.entry(seq).or_default().push((sha, key)),
            Some(Err(seq)) => listing.claims.push(seq),
            None => {}
        }
    }
    Ok(listing)
}

/// The end of a stream, found by listing without holding it: the last event (its number and,
/// if several share it, the smallest hash) and the highest claimed number.
#[derive(Debug, Default)]
struct Tip {
    last: Option<Link>,
    max_claim: u64,
}

async fn tip(storage: &Storage, prefix: &str) -> Result<Tip, AuditError> {
    let mut tip = Tip::default();
    let mut stream = storage.list_stream(prefix);
    while let Some(item) = stream.next().await {
        let key = item?.key;
        match parse(key.strip_prefix(prefix).unwrap_or(&key)) {
            Some(Ok((seq, sha))) => {
                let replace = match &tip.last {
                    None => true,
                    // A fork's branches are told apart by name; the first continues the chain.
                    Some(l) => seq > l.seq || (seq == l.seq && sha < l.sha256),
                };
                if replace {
                    tip.last = Some(Link { seq, sha256: sha });
                }
            }
            Some(Err(seq)) => tip.max_claim = tip.max_claim.max(seq),
            None => {}
        }
    }
    Ok(tip)
}

/// Appends `event` to the stream of `backup_id`, signed with `key` when given; returns the
/// event's object key.
pub async fn append(
    storage: &Storage,
    backup_id: &str,
    event: &AuditEvent,
    key: Option<&SigningKey>,
    claimant: &str,
) -> Result<String, AuditError> {
    let prefix = stream_prefix(backup_id)?;
    let started = std::time::Instant::now();
    let mut attempts = 0;
    while attempts < CLAIM_ATTEMPTS {
        let tip = tip(storage, &prefix).await?;
        // A number claimed above the last event is a writer between its claim and its event:
        // wait for that event, so that this one links to it, unless its writer seems gone.
        let last_event = tip.last.as_ref().map_or(0, |l| l.seq);
        if tip.max_claim > last_event && started.elapsed() < PENDING_CLAIM_WAIT {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        }
        attempts += 1;
        let next = last_event.max(tip.max_claim) + 1;
        let prev = tip.last;
        let claim = format!("{prefix}{next:012}.claim");
        match storage
            .put_new(&claim, Bytes::from(claimant.to_owned()))
            .await
        {
            Ok(_) => {}
            Err(StorageError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
        // The line's own seq is the claimed number; its link is the last event's hash.
        let line = chain::seal_at(event, next, prev.as_ref(), key)?;
        let sha = sha256_hex(line.as_bytes());
        let object = format!("{prefix}{next:012}-{sha}.json");
        storage.put_new(&object, Bytes::from(line)).await?;
        return Ok(object);
    }
    Err(AuditError::Contended {
        location: storage.location(&prefix),
        attempts: CLAIM_ATTEMPTS,
    })
}

/// Every event line of the stream of `backup_id`, in sequence order, unchecked (for
/// reading; [`verify`] is the check).
pub async fn read_lines(storage: &Storage, backup_id: &str) -> Result<Vec<String>, AuditError> {
    let prefix = stream_prefix(backup_id)?;
    let listing = list(storage, &prefix).await?;
    let mut lines = Vec::new();
    for versions in listing.events.values() {
        for (_, key) in versions {
            let body = storage.get_bounded(key, MAX_LINE as u64).await?;
            lines.push(String::from_utf8_lossy(&body).into_owned());
        }
    }
    Ok(lines)
}

/// Reads and checks the stream of `backup_id`: each event's content against the SHA-256 in
/// its name, its link to the event before, its signature with `keys`; a number claimed but
/// never written is a note.
pub async fn verify(
    storage: &Storage,
    backup_id: &str,
    keys: &VerifyingKeys,
) -> Result<(Verification, Vec<chain::ChainedEvent>), AuditError> {
    let prefix = stream_prefix(backup_id)?;
    let listing = list(storage, &prefix).await?;
    let mut verifier = Verifier::new(keys);
    verifier.allow_gaps();
    let mut events = Vec::new();
    let mut notes = Vec::new();
    let mut expected = listing.events.keys().next().copied();
    for (seq, versions) in &listing.events {
        if let Some(e) = expected
            && *seq > e
        {
            for missing in e..*seq {
                if listing.claims.contains(&missing) {
                    notes.push(format!(
                        "event {missing} was claimed but never written (its writer stopped)"
                    ));
                } else {
                    verifier.fail(
                        &format!("{prefix}{missing:012}"),
                        format!("event {missing} is missing: its object was deleted"),
                    );
                }
            }
        }
        expected = Some(seq + 1);
        if versions.len() > 1 {
            let names: Vec<&str> = versions.iter().map(|(_, k)| k.as_str()).collect();
            verifier.fail(
                &names.join(", "),
                format!(
                    "{} events claim number {seq}: one was inserted, or two writers raced \
                     past the claim",
                    versions.len()
                ),
            );
        }
        let (sha, key) = &versions[0];
        let body = storage.get_bounded(key, MAX_LINE as u64).await?;
        let line = String::from_utf8_lossy(&body);
        if sha256_hex(&body) != *sha {
            verifier.fail(
                key,
                "its content does not match the SHA-256 in its name: it was replaced".into(),
            );
        }
        if let Some(event) = verifier.check(key, &line) {
            events.push(event);
        }
        if verifier.broken() {
            break;
        }
    }
    let mut result = verifier.finish();
    result.notes.extend(notes);
    Ok((result, events))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn only_canonical_names_parse() {
        let sha = "ab".repeat(32);
        assert_eq!(
            parse(&format!("000000000007-{sha}.json")),
            Some(Ok((7, sha.clone())))
        );
        assert_eq!(parse("000000000007.claim"), Some(Err(7)));
        assert_eq!(parse("7.claim"), None);
        assert_eq!(parse(&format!("7-{sha}.json")), None);
        assert_eq!(parse("000000000007-xyz.json"), None);
    }
}

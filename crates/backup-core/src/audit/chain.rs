//! The line an event is written as, and the check of a sequence of lines.
//!
//! A line is one JSON object: `seq` (1 for the first event of a stream), `prev_sha256` (the
//! SHA-256 of the previous line's bytes, `null` for the first), the event's fields, and last,
//! when signed, `"signature":{"key_id":"…","sig":"…"}`. The signature covers the line's
//! bytes up to that field, closed with `}`: exactly what was written, with no canonical form
//! to agree on, and the line stays readable JSON for any log tool.

use backup_format::signing::{SigningKey, VerifyingKeys};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::{AuditError, AuditEvent, sha256_hex};

/// Longest line accepted when reading: events are well under 4 KiB; a longer line is not one,
/// and is not held.
pub const MAX_LINE: usize = 64 * 1024;

/// Where a signed line's signature starts.
const SIGNATURE_FIELD: &str = ",\"signature\":{";

/// The link of a line to the one before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The previous line's `seq`.
    pub seq: u64,
    /// SHA-256 of the previous line, hex.
    pub sha256: String,
}

#[derive(Serialize)]
struct Chained<'a> {
    seq: u64,
    prev_sha256: Option<&'a str>,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

/// An event as read back, with its chain fields.
#[derive(Debug, Clone, Deserialize)]
pub struct ChainedEvent {
    /// Its position in the stream.
    pub seq: u64,
    /// SHA-256 of the line before it.
    pub prev_sha256: Option<String>,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
}

#[derive(Deserialize)]
struct Signature {
    key_id: String,
    sig: String,
}

/// The line for `event` after `prev` (`None`: the first of its stream), signed with `key`
/// when given. No trailing newline.
pub fn seal(
    event: &AuditEvent,
    prev: Option<&Link>,
    key: Option<&SigningKey>,
) -> Result<String, AuditError> {
    seal_at(event, prev.map_or(1, |p| p.seq + 1), prev, key)
}

/// [`seal`] at sequence number `seq` (a stream in storage may skip numbers that were claimed
/// and never written).
pub fn seal_at(
    event: &AuditEvent,
    seq: u64,
    prev: Option<&Link>,
    key: Option<&SigningKey>,
) -> Result<String, AuditError> {
    let chained = Chained {
        seq,
        prev_sha256: prev.map(|p| p.sha256.as_str()),
        event,
    };
    let body = serde_json::to_string(&chained).map_err(|e| AuditError::Encode(e.to_string()))?;
    let Some(key) = key else {
        return Ok(body);
    };
    let sig = key.sign_audit_event(body.as_bytes());
    let mut line = body;
    line.pop(); // the closing brace, put back after the signature
    line.push_str(&format!(
        "{SIGNATURE_FIELD}\"key_id\":\"{}\",\"sig\":\"{}\"}}}}",
        key.verifying_key().key_id(),
        B64.encode(sig)
    ));
    Ok(line)
}

/// The link a line gives the line after it; `None` when it is not an event line.
pub fn link_of(line: &str) -> Option<Link> {
    let (body, _) = split_signature(line);
    let event: ChainedEvent = serde_json::from_str(&body).ok()?;
    Some(Link {
        seq: event.seq,
        sha256: sha256_hex(line.as_bytes()),
    })
}

/// The signed body of a line (the line itself when unsigned) and the signature's JSON.
fn split_signature(line: &str) -> (String, Option<&str>) {
    match line.rfind(SIGNATURE_FIELD) {
        Some(at) if line.ends_with("}}") => {
            let mut body = line[..at].to_owned();
            body.push('}');
            // `{"key_id":…,"sig":…}`
            let sig = &line[at + SIGNATURE_FIELD.len() - 1..line.len() - 1];
            (body, Some(sig))
        }
        _ => (line.to_owned(), None),
    }
}

/// What is wrong at the first place a stream breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// Where: `line N` of a file, or an object key.
    pub at: String,
    /// What is wrong, and what it means.
    pub reason: String,
}

/// The result of checking a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Events read up to the first break (all of them when there is none).
    pub events: u64,
    /// `seq` of the first event read.
    pub first_seq: Option<u64>,
    /// `seq` of the last event read before any break.
    pub last_seq: Option<u64>,
    /// The key ids whose signatures were verified.
    pub signed_by: Vec<String>,
    /// Events without a signature.
    pub unsigned: u64,
    /// Whether signatures were checked (verify keys were given).
    pub signatures_checked: bool,
    /// The first break; `None` when the stream is intact.
    pub first_break: Option<Break>,
    /// Things that are not breaks but limit what the check proves.
    pub notes: Vec<String>,
}

/// Checks lines in order, stopping at the first break.
#[derive(Debug)]
pub struct Verifier<'k> {
    keys: &'k VerifyingKeys,
    prev: Option<Link>,
    result: Verification,
    /// Sequence numbers may skip (the caller checks the gaps).
    gaps: bool,
}

impl<'k> Verifier<'k> {
    /// A verifier that requires every event to be signed by one of `keys` (none: signatures
    /// are not checked, and the result says so).
    pub fn new(keys: &'k VerifyingKeys) -> Self {
        Self {
            keys,
            prev: None,
            result: Verification {
                signatures_checked: !keys.is_empty(),
                ..Verification::default()
            },
            gaps: false,
        }
    }

    /// Accepts numbers that skip ahead: for streams whose caller accounts for the gaps.
    pub fn allow_gaps(&mut self) {
        self.gaps = true;
    }

    /// Records a break found by the caller (at most the first counts).
    pub fn fail(&mut self, at: &str, reason: String) {
        if !self.broken() {
            self.result.first_break = Some(Break {
                at: at.to_owned(),
                reason,
            });
        }
    }

    /// True once a break was found: further lines are not checked.
    pub fn broken(&self) -> bool {
        self.result.first_break.is_some()
    }

    /// Checks the next line (`at` names it for the report); returns the event when the line
    /// is intact.
    pub fn check(&mut self, at: &str, line: &str) -> Option<ChainedEvent> {
        if self.broken() {
            return None;
        }
        match self.check_line(line) {
            Ok(event) => {
                let result = &mut self.result;
                result.events += 1;
                result.first_seq.get_or_insert(event.seq);
                result.last_seq = Some(event.seq);
                self.prev = Some(Link {
                    seq: event.seq,
                    sha256: sha256_hex(line.as_bytes()),
                });
                Some(event)
            }
            Err(reason) => {
                self.result.first_break = Some(Break {
                    at: at.to_owned(),
                    reason,
                });
                None
            }
        }
    }

    fn check_line(&mut self, line: &str) -> Result<ChainedEvent, String> {
        if line.len() > MAX_LINE {
            return Err(format!(
                "the line is {} bytes, longer than any audit event ({MAX_LINE} at most)",
                line.len()
            ));
        }
        let (body, signature) = split_signature(line);
        let event: ChainedEvent = serde_json::from_str(&body).map_err(|e| {
            format!("not an audit event ({e}): altered, or not written by kafka-backup")
        })?;
        match &self.prev {
            None => {
                if event.seq != 1 || event.prev_sha256.is_some() {
                    self.result.notes.push(format!(
                        "the stream starts at event {}: the events before it are not here \
                         (rotated away or deleted), so this check covers event {} onwards",
                        event.seq, event.seq
                    ));
                }
            }
            Some(prev) => {
                let in_order = if self.gaps {
                    event.seq > prev.seq
                } else {
                    event.seq == prev.seq + 1
                };
                if !in_order {
                    return Err(format!(
                        "event {} follows event {}: {} missing or reordered",
                        event.seq,
                        prev.seq,
                        if event.seq > prev.seq + 1 {
                            "events are"
                        } else {
                            "the events are"
                        }
                    ));
                }
                if event.prev_sha256.as_deref() != Some(prev.sha256.as_str()) {
                    return Err(format!(
                        "event {} does not chain to the line before it (its prev_sha256 is \
                         {}, the line before hashes to {}): that line was altered or replaced, \
                         or this one was",
                        event.seq,
                        event.prev_sha256.as_deref().unwrap_or("null"),
                        prev.sha256
                    ));
                }
            }
        }
        match signature {
            Some(sig) => {
                let sig: Signature = serde_json::from_str(sig)
                    .map_err(|e| format!("event {}: a malformed signature ({e})", event.seq))?;
                if self.keys.is_empty() {
                    self.result.notes.push(format!(
                        "signatures (key {}) were not checked: give --verify-key",
                        sig.key_id
                    ));
                    self.result.notes.dedup();
                    return Ok(event);
                }
                let bytes = B64
                    .decode(sig.sig.as_bytes())
                    .map_err(|_| format!("event {}: the signature is not base64", event.seq))?;
                match self.keys.verify_audit_event(body.as_bytes(), &bytes) {
                    Some(key) => {
                        let id = key.key_id();
                        if !self.result.signed_by.contains(&id) {
                            self.result.signed_by.push(id);
                        }
                        Ok(event)
                    }
                    None => Err(format!(
                        "event {}: its signature (claimed key {}) does not verify with the \
                         given keys: the event was altered after it was signed, or signed with \
                         another key",
                        event.seq, sig.key_id
                    )),
                }
            }
            None if !self.keys.is_empty() => Err(format!(
                "event {} is not signed, but verify keys were given: every event of a signed \
                 trail must be signed (an unsigned event was inserted, or the writer ran \
                 without its signing key)",
                event.seq
            )),
            None => {
                self.result.unsigned += 1;
                Ok(event)
            }
        }
    }

    /// The result so far.
    pub fn finish(self) -> Verification {
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32) -> AuditEvent {
        AuditEvent {
            time: format!("2026-12-04T10:00:0{n}.000Z"),
            command: "backup".into(),
            host: "h".into(),
            pid: n,
            invocation: format!("inv-{n}"),
            tool_version: "0.1.0".into(),
            ..AuditEvent::default()
        }
    }

    fn stream(n: u32, key: Option<&SigningKey>) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for i in 0..n {
            let prev = lines.last().and_then(|l| link_of(l));
            lines.push(seal(&event(i), prev.as_ref(), key).unwrap());
        }
        lines
    }

    fn verify(lines: &[String], keys: &VerifyingKeys) -> Verification {
        let mut v = Verifier::new(keys);
        for (i, l) in lines.iter().enumerate() {
            v.check(&format!("line {}", i + 1), l);
        }
        v.finish()
    }

    fn signing() -> SigningKey {
        SigningKey::generate().unwrap().0
    }

    #[test]
    fn an_intact_signed_stream_verifies() {
        let key = signing();
        let keys = VerifyingKeys::new(vec![key.verifying_key().clone()]);
        let lines = stream(4, Some(&key));
        let v = verify(&lines, &keys);
        assert_eq!(v.first_break, None, "{v:?}");
        assert_eq!((v.events, v.first_seq, v.last_seq), (4, Some(1), Some(4)));
        assert_eq!(v.signed_by, [key.verifying_key().key_id()]);
        let parsed: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(parsed["seq"], 2);
        assert_eq!(parsed["command"], "backup");
    }

    #[test]
    fn each_kind_of_tampering_breaks_the_chain_where_it_happened() {
        let key = signing();
        let keys = VerifyingKeys::new(vec![key.verifying_key().clone()]);
        let lines = stream(5, Some(&key));
        let at = |lines: &[String], keys: &VerifyingKeys| {
            verify(lines, keys).first_break.map(|b| (b.at, b.reason))
        };

        let mut altered = lines.clone();
        altered[2] = altered[2].replace("\"pid\":2", "\"pid\":9");
        let (where_, why) = at(&altered, &keys).unwrap();
        assert_eq!(where_, "line 3");
        assert!(why.contains("does not verify"), "{why}");
        // Without keys the edit shows in the next line's link.
        let (where_, why) = at(&altered, &VerifyingKeys::default()).unwrap();
        assert_eq!(where_, "line 4");
        assert!(why.contains("does not chain"), "{why}");

        let mut deleted = lines.clone();
        deleted.remove(2);
        let (where_, why) = at(&deleted, &keys).unwrap();
        assert_eq!(where_, "line 3");
        assert!(why.contains("event 4 follows event 2"), "{why}");

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert_eq!(at(&swapped, &keys).unwrap().0, "line 2");

        // A forged event chained properly but signed with another key.
        let mut forged = lines.clone();
        let link = link_of(&forged[4]).unwrap();
        forged.push(seal(&event(7), Some(&link), Some(&signing())).unwrap());
        let (where_, why) = at(&forged, &keys).unwrap();
        assert_eq!(where_, "line 6");
        assert!(why.contains("does not verify"), "{why}");

        // An unsigned event appended by someone without the key.
        let mut unsigned = lines.clone();
        unsigned.push(seal(&event(8), Some(&link), None).unwrap());
        let (_, why) = at(&unsigned, &keys).unwrap();
        assert!(why.contains("is not signed"), "{why}");

        // A signature moved from another event.
        let mut moved = lines.clone();
        let sig_of_1 = &lines[1][lines[1].rfind(SIGNATURE_FIELD).unwrap()..];
        let body_of_2 = &lines[2][..lines[2].rfind(SIGNATURE_FIELD).unwrap()];
        moved[2] = format!("{body_of_2}{sig_of_1}");
        assert_eq!(at(&moved, &keys).unwrap().0, "line 3");

        let mut garbage = lines.clone();
        garbage[0] = "not json".into();
        assert!(
            at(&garbage, &keys)
                .unwrap()
                .1
                .contains("not an audit event")
        );
    }

    #[test]
    fn a_stream_that_starts_later_is_noted_not_broken() {
        let lines = stream(4, None);
        let v = verify(&lines[2..], &VerifyingKeys::default());
        assert_eq!(v.first_break, None);
        assert_eq!(v.first_seq, Some(3));
        assert!(v.notes[0].contains("starts at event 3"), "{:?}", v.notes);
        assert_eq!(v.unsigned, 2);
    }
}

//! The `public-key` provider: each run's data key is encrypted to X25519 recipients in the
//! `age` format (<https://age-encryption.org/v1>), as a binary (not armored) age file.
//!
//! The backup host holds only recipients (`age1…` public keys) and so can never unwrap what
//! it wrote. Each recipient's identity (`AGE-SECRET-KEY-1…`) unwraps on its own, e.g. an
//! offline disaster-recovery key and an operations key. The wrapped key is an ordinary age
//! file whose plaintext is exactly the 32 data key bytes, so `age -d -i identity` decrypts
//! it without this program (the break-glass path).
//!
//! age has no associated data, so the wrapped key is not bound to its run the way KMS and
//! local keys are; every object is still bound to its run by the per-object key derivation,
//! so a wrapped key moved to another run yields a data key that authenticates nothing there.
//!
//! File formats are age's own: a recipients file has one `age1…` per line, an identity
//! file (as `age-keygen` writes it) one `AGE-SECRET-KEY-1…` per line; `#` comments and blank
//! lines are allowed in both, and several keys per file. Only X25519 keys are accepted (no
//! SSH keys, no plugins, no passphrases).

use std::fmt;
use std::io::{Read as _, Write as _};
use std::str::FromStr;
use std::sync::Arc;

use age::secrecy::ExposeSecret as _;
use backup_format::crypto::{DataKey, KEY_LEN, ProviderKind, WrappedKey};
use zeroize::Zeroizing;

use super::{KeyContext, KeyError, KeyFuture, KeyMatch, UnwrapKeys, WrapKeys};

/// Format help for recipient errors.
pub(crate) const RECIPIENT_FORMAT: &str = "a recipient is an X25519 age public key (age1…, 62 \
     characters), as `age-keygen -y IDENTITY` or `kafka-backup keys generate --type age` prints \
     it; SSH and plugin recipients are not supported";
/// Format help for identity errors.
pub(crate) const IDENTITY_FORMAT: &str = "an identity file holds X25519 age identities \
     (AGE-SECRET-KEY-1…), one per line, with optional # comment lines, as `age-keygen -o FILE` \
     or `kafka-backup keys generate --type age --out FILE` writes it";

/// X25519 age recipients (public keys): what a backup encrypts to.
#[derive(Clone)]
pub struct AgeRecipients {
    recipients: Vec<age::x25519::Recipient>,
    ids: Vec<String>,
}

impl fmt::Debug for AgeRecipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AgeRecipients").field(&self.ids).finish()
    }
}

impl PartialEq for AgeRecipients {
    fn eq(&self, other: &Self) -> bool {
        self.ids == other.ids
    }
}

impl Eq for AgeRecipients {}

impl AgeRecipients {
    /// An empty set, to add to.
    pub fn new() -> Self {
        Self {
            recipients: Vec::new(),
            ids: Vec::new(),
        }
    }

    /// Adds one recipient (`age1…`); a duplicate is ignored. The error explains the format.
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        let text = text.trim();
        if text.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
            // Not quoted: it is a private key.
            return Err(
                "holds an age identity (a private key), which must never be on the backup host: \
                 give its recipient instead (`age-keygen -y IDENTITY_FILE` prints it), and keep \
                 the identity for restores"
                    .to_owned(),
            );
        }
        let recipient = age::x25519::Recipient::from_str(text).map_err(|_| {
            let shown: String = text.chars().take(80).collect();
            format!(
                "is not a recipient (`{}`): {RECIPIENT_FORMAT}",
                shown.escape_debug()
            )
        })?;
        let id = recipient.to_string();
        if !self.ids.contains(&id) {
            self.ids.push(id);
            self.recipients.push(recipient);
        }
        Ok(())
    }

    /// Adds every recipient of a recipients file's text; errors name the line.
    pub fn add_file_text(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.add(line).map_err(|e| format!("line {} {e}", n + 1))?;
        }
        Ok(())
    }

    /// The recipients as `age1…` strings.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl Default for AgeRecipients {
    fn default() -> Self {
        Self::new()
    }
}

/// X25519 age identities (private keys): what a restore unwraps with. `Debug` shows only
/// their recipients.
#[derive(Clone)]
pub struct AgeIdentities {
    /// Each identity with its recipient string.
    identities: Vec<(Arc<age::x25519::Identity>, String)>,
}

impl fmt::Debug for AgeIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.identities.iter().map(|(_, r)| r.as_str()).collect();
        write!(f, "AgeIdentities({ids:?}, ***)")
    }
}

impl PartialEq for AgeIdentities {
    fn eq(&self, other: &Self) -> bool {
        self.recipients() == other.recipients()
    }
}

impl Eq for AgeIdentities {}

impl AgeIdentities {
    /// An empty set, to add to.
    pub fn new() -> Self {
        Self {
            identities: Vec::new(),
        }
    }

    /// Adds every identity of an identity file's text. The error names the line but never
    /// quotes it (it may hold a key).
    pub fn add_file_text(&mut self, text: &str) -> Result<usize, String> {
        let mut added = 0;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let what = if line.starts_with("age1") {
                "holds a recipient (public key), not an identity: a restore needs the private key \
                 whose public key that is"
            } else if line.starts_with("AGE-PLUGIN-") {
                "holds a plugin identity, which is not supported"
            } else if line.starts_with("-----BEGIN") || line.starts_with("ssh-") {
                "holds an SSH or PEM key, which is not supported"
            } else {
                "is not an X25519 age identity"
            };
            let identity = age::x25519::Identity::from_str(line)
                .map_err(|_| format!("line {} {what}; {IDENTITY_FORMAT}", n + 1))?;
            let recipient = identity.to_public().to_string();
            if !self.identities.iter().any(|(_, r)| *r == recipient) {
                self.identities.push((Arc::new(identity), recipient));
                added += 1;
            }
        }
        if added == 0 && self.identities.is_empty() {
            return Err(format!("it holds no identity; {IDENTITY_FORMAT}"));
        }
        Ok(added)
    }

    /// The recipients (public keys) of the identities.
    pub fn recipients(&self) -> Vec<String> {
        self.identities.iter().map(|(_, r)| r.clone()).collect()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }
}

impl Default for AgeIdentities {
    fn default() -> Self {
        Self::new()
    }
}

/// A new identity: its identity file text (age-keygen's format) and its recipient.
pub fn generate_identity(created: &str) -> (Zeroizing<String>, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = Zeroizing::new(format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    ));
    (text, recipient)
}

/// The backup side.
#[derive(Debug)]
pub(crate) struct AgeWrapper {
    pub(crate) recipients: AgeRecipients,
}

impl WrapKeys for AgeWrapper {
    fn provider(&self) -> ProviderKind {
        ProviderKind::PublicKey
    }

    fn key_ids(&self) -> Vec<String> {
        self.recipients.ids.clone()
    }

    fn new_run_key<'a>(&'a self, _ctx: &'a KeyContext) -> KeyFuture<'a, (DataKey, WrappedKey)> {
        Box::pin(async move {
            let data_key = DataKey::generate().map_err(|e| KeyError::internal(e.to_string()))?;
            let blob = encrypt(&self.recipients, &data_key)?;
            Ok((
                data_key,
                WrappedKey {
                    provider: ProviderKind::PublicKey,
                    key_ids: self.recipients.ids.clone(),
                    blob,
                },
            ))
        })
    }
}

fn encrypt(recipients: &AgeRecipients, data_key: &DataKey) -> Result<Vec<u8>, KeyError> {
    if recipients.is_empty() {
        return Err(KeyError::configuration(
            "no age recipient is configured; add backup.encryption.recipients",
        ));
    }
    let encryptor = age::Encryptor::with_recipients(
        recipients
            .recipients
            .iter()
            .map(|r| r as &dyn age::Recipient),
    )
    .map_err(|e| KeyError::internal(format!("age: {e}")))?;
    let mut blob = Vec::with_capacity(128 + 100 * recipients.recipients.len());
    let io = |e: std::io::Error| KeyError::internal(format!("age: {e}"));
    let mut writer = encryptor.wrap_output(&mut blob).map_err(io)?;
    writer.write_all(data_key.expose_bytes()).map_err(io)?;
    writer.finish().map_err(io)?;
    Ok(blob)
}

/// The restore side.
#[derive(Debug)]
pub(crate) struct AgeUnwrapper {
    pub(crate) identities: AgeIdentities,
}

impl AgeUnwrapper {
    fn matching(&self, wrapped: &WrappedKey) -> Vec<&(Arc<age::x25519::Identity>, String)> {
        self.identities
            .identities
            .iter()
            .filter(|(_, r)| wrapped.key_ids.contains(r))
            .collect()
    }
}

impl UnwrapKeys for AgeUnwrapper {
    fn provider(&self) -> ProviderKind {
        ProviderKind::PublicKey
    }

    fn key_ids(&self) -> Vec<String> {
        self.identities.recipients()
    }

    fn matches(&self, wrapped: &WrappedKey) -> KeyMatch {
        match self.matching(wrapped).first() {
            Some((_, r)) => KeyMatch::Yes(r.clone()),
            None => KeyMatch::No,
        }
    }

    fn unwrap_key<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        _ctx: &'a KeyContext,
    ) -> KeyFuture<'a, DataKey> {
        Box::pin(async move {
            let candidates = self.matching(wrapped);
            if candidates.is_empty() {
                return Err(KeyError::NoMatchingKey {
                    provider: ProviderKind::PublicKey,
                    needed: wrapped.key_ids.clone(),
                    configured: self.key_ids(),
                });
            }
            decrypt(wrapped, &candidates)
        })
    }
}

fn decrypt(
    wrapped: &WrappedKey,
    candidates: &[&(Arc<age::x25519::Identity>, String)],
) -> Result<DataKey, KeyError> {
    let invalid = |reason: String| KeyError::InvalidWrappedKey {
        provider: ProviderKind::PublicKey,
        key_ids: wrapped.key_ids.clone(),
        reason,
    };
    let decryptor = age::Decryptor::new_buffered(wrapped.blob.as_slice())
        .map_err(|e| invalid(format!("it is not a valid age file ({e})")))?;
    let identities = candidates
        .iter()
        .map(|(identity, _)| identity.as_ref() as &dyn age::Identity);
    let mut reader = decryptor.decrypt(identities).map_err(|e| {
        let names: Vec<&str> = candidates.iter().map(|(_, r)| r.as_str()).collect();
        invalid(match e {
            age::DecryptError::NoMatchingKeys => format!(
                "it names recipient {}, whose identity is configured, but holds no stanza that \
                 identity opens",
                names.join(", ")
            ),
            other => format!("age: {other}"),
        })
    })?;
    // The plaintext is a data key: read one byte more to refuse anything longer.
    let mut plain = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
    reader
        .by_ref()
        .take(KEY_LEN as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| invalid(format!("its payload does not decrypt ({e})")))?;
    if plain.len() != KEY_LEN {
        return Err(invalid(format!(
            "its payload is not a {KEY_LEN}-byte data key"
        )));
    }
    DataKey::from_slice(&plain).map_err(|e| KeyError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_files_are_age_keygen_format_and_never_printed() {
        let (text, recipient) = generate_identity("2026-01-01T00:00:00Z");
        assert!(text.starts_with("# created: 2026-01-01T00:00:00Z\n# public key: age1"));
        let mut ids = AgeIdentities::new();
        assert_eq!(ids.add_file_text(&text).unwrap(), 1);
        assert_eq!(ids.recipients(), std::slice::from_ref(&recipient));
        let secret_line = text.lines().nth(2).unwrap();
        assert!(secret_line.starts_with("AGE-SECRET-KEY-1"));
        assert!(!format!("{ids:?}").contains(secret_line));
        let mut rs = AgeRecipients::new();
        rs.add_file_text(&format!("# ops\n{recipient}\n\n{recipient}\n"))
            .unwrap();
        assert_eq!(rs.ids(), [recipient]);
    }

    #[test]
    fn bad_keys_name_the_line_without_quoting_secrets() {
        let mut ids = AgeIdentities::new();
        let err = ids
            .add_file_text("# x\nAGE-SECRET-KEY-1NOTAKEY-SECRETISH\n")
            .unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("SECRETISH"), "{err}");
        let (_, recipient) = generate_identity("now");
        let err = ids.add_file_text(&recipient).unwrap_err();
        assert!(
            err.contains("recipient (public key), not an identity"),
            "{err}"
        );
        assert!(
            ids.add_file_text("# nothing\n")
                .unwrap_err()
                .contains("no identity")
        );
        let mut rs = AgeRecipients::new();
        let err = rs.add_file_text("age1\nssh-ed25519 AAAA").unwrap_err();
        assert!(
            err.contains("line 1") && err.contains("age-keygen -y"),
            "{err}"
        );
    }
}

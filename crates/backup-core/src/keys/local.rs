//! The `local` provider: a 256-bit key in a file wraps each run's data key with AES-256-GCM.
//!
//! Key file format (what `kafka-backup keys generate --type local` writes): UTF-8 text,
//! lines starting with `#` are comments, blank lines are ignored, and exactly one other line
//! holds the 32 key bytes as standard base64 (44 characters, as `openssl rand -base64 32`
//! prints) or as 64 hex digits (`openssl rand -hex 32`).
//!
//! ```text
//! # kafka-backup local key (AES-256); keep it secret: chmod 600
//! # created: 2026-01-01T00:00:00Z
//! # fingerprint: 3f0c5e6b8d2a9174
//! u1d1b2Yk6f8mD3pQ0c9x0bq7lJ2k3m4n5o6p7q8r9s0=
//! ```
//!
//! A wrapped key is `0x01 ‖ nonce (12) ‖ AES-256-GCM(data key) ‖ tag (16)`, 61 bytes, with
//! the run's [`KeyContext`] as associated data: it unwraps only under the backup id and run
//! id it was made for. The key id is the key's fingerprint: 16 hex digits of SHA-256 over a
//! domain-separation string and the key, which identifies the key without revealing it.

use std::fmt;
use std::sync::Arc;

use backup_format::crypto::{DataKey, KEY_LEN, ProviderKind, WrappedKey, random_fill};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::{KeyContext, KeyError, KeyFuture, KeyMatch, UnwrapKeys, WrapKeys, hex};

/// Version byte of the wrapped form.
const WRAP_VERSION: u8 = 1;
/// Length of a wrapped key.
const WRAPPED_LEN: usize = 1 + NONCE_LEN + KEY_LEN + 16;
/// Domain separation of the fingerprint.
const FINGERPRINT_CONTEXT: &[u8] = b"kafka-backup local key fingerprint v1\0";
/// Domain separation of the associated data.
const AAD_CONTEXT: &[u8] = b"kafka-backup local key wrap v1\0";

/// What the format help says in every key file error.
pub(crate) const LOCAL_KEY_FORMAT: &str = "a local key file holds one line of 32 bytes in base64 \
     (44 characters) or hex (64 digits), with optional # comment lines; create one with \
     `kafka-backup keys generate --type local --out FILE` (or `openssl rand -base64 32 > FILE`)";

/// A 256-bit local key. `Debug` shows only its fingerprint; the bytes are zeroed on drop.
pub struct LocalKey {
    key: Zeroizing<[u8; KEY_LEN]>,
    fingerprint: String,
}

impl fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalKey({}, ***)", self.fingerprint)
    }
}

impl PartialEq for LocalKey {
    fn eq(&self, other: &Self) -> bool {
        // Fingerprints are a hash of the key: equal exactly when the keys are.
        self.fingerprint == other.fingerprint
    }
}

impl Eq for LocalKey {}

impl LocalKey {
    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random_fill(key.as_mut()).map_err(|e| KeyError::internal(e.to_string()))?;
        Ok(Self::from_bytes(key))
    }

    fn from_bytes(key: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        h.update(FINGERPRINT_CONTEXT);
        h.update(&key[..]);
        let fingerprint = hex(&h.finish().as_ref()[..8]);
        Self { key, fingerprint }
    }

    /// Parses a key file's contents (see the module documentation). The error says what is
    /// wrong without quoting the file.
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let text =
            std::str::from_utf8(text).map_err(|_| format!("it is not text; {LOCAL_KEY_FORMAT}"))?;
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let Some(line) = lines.next() else {
            return Err(format!("it holds no key; {LOCAL_KEY_FORMAT}"));
        };
        if lines.next().is_some() {
            return Err(format!(
                "it holds more than one non-comment line; {LOCAL_KEY_FORMAT}"
            ));
        }
        let bytes = Zeroizing::new(if line.len() == 2 * KEY_LEN {
            decode_hex(line)
                .ok_or_else(|| format!("its key line is not hex; {LOCAL_KEY_FORMAT}"))?
        } else {
            B64.decode(line.as_bytes())
                .map_err(|_| format!("its key line is not base64; {LOCAL_KEY_FORMAT}"))?
        });
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "its key is {} bytes, not {KEY_LEN} (256 bits); {LOCAL_KEY_FORMAT}",
                bytes.len()
            )
        })?;
        Ok(Self::from_bytes(Zeroizing::new(key)))
    }

    /// The key file text for this key (see the module documentation).
    pub fn to_file_text(&self, created: &str) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "# kafka-backup local key (AES-256); keep it secret: chmod 600\n# created: {created}\n\
             # fingerprint: {}\n{}\n",
            self.fingerprint,
            B64.encode(&self.key[..])
        ))
    }

    /// The key's id: 16 hex digits, safe to show and to store.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.key[..]).expect("AES-256 takes 32-byte keys"),
        )
    }

    fn wrap(&self, data_key: &DataKey, ctx: &KeyContext) -> Result<WrappedKey, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_fill(&mut nonce).map_err(|e| KeyError::internal(e.to_string()))?;
        let mut buf = data_key.expose_bytes().to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(ctx)),
                &mut buf,
            )
            .map_err(|_| KeyError::internal("AES-256-GCM sealing failed"))?;
        let mut blob = Vec::with_capacity(WRAPPED_LEN);
        blob.push(WRAP_VERSION);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&buf);
        zeroize::Zeroize::zeroize(&mut buf);
        Ok(WrappedKey {
            provider: ProviderKind::Local,
            key_ids: vec![self.fingerprint.clone()],
            blob,
        })
    }

    fn unwrap(&self, wrapped: &WrappedKey, ctx: &KeyContext) -> Result<DataKey, KeyError> {
        let invalid = |reason: &str| KeyError::InvalidWrappedKey {
            provider: ProviderKind::Local,
            key_ids: wrapped.key_ids.clone(),
            reason: reason.to_owned(),
        };
        let blob = &wrapped.blob;
        if blob.len() != WRAPPED_LEN || blob[0] != WRAP_VERSION {
            return Err(invalid(&format!(
                "a local wrapped key is {WRAPPED_LEN} bytes of version {WRAP_VERSION}, this one is \
                 {} bytes",
                blob.len()
            )));
        }
        let nonce: [u8; NONCE_LEN] = blob[1..1 + NONCE_LEN].try_into().expect("length checked");
        let mut buf = Zeroizing::new(blob[1 + NONCE_LEN..].to_vec());
        let plain = self
            .aead()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(ctx)),
                buf.as_mut_slice(),
            )
            .map_err(|_| {
                invalid(&format!(
                    "AES-256-GCM authentication failed with key {} for backup `{}` run `{}`",
                    self.fingerprint, ctx.backup_id, ctx.run_id
                ))
            })?;
        DataKey::from_slice(plain).map_err(|e| KeyError::internal(e.to_string()))
    }
}

fn aad(ctx: &KeyContext) -> Vec<u8> {
    let mut out = AAD_CONTEXT.to_vec();
    for part in [&ctx.backup_id, &ctx.run_id] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

/// The backup side: wraps with one key.
#[derive(Debug)]
pub(crate) struct LocalWrapper {
    pub(crate) key: Arc<LocalKey>,
}

impl WrapKeys for LocalWrapper {
    fn provider(&self) -> ProviderKind {
        ProviderKind::Local
    }

    fn key_ids(&self) -> Vec<String> {
        vec![self.key.fingerprint.clone()]
    }

    fn new_run_key<'a>(&'a self, ctx: &'a KeyContext) -> KeyFuture<'a, (DataKey, WrappedKey)> {
        Box::pin(async move {
            let data_key = DataKey::generate().map_err(|e| KeyError::internal(e.to_string()))?;
            let wrapped = self.key.wrap(&data_key, ctx)?;
            Ok((data_key, wrapped))
        })
    }
}

/// The restore side: every configured key file, found by fingerprint.
#[derive(Debug)]
pub(crate) struct LocalUnwrapper {
    pub(crate) keys: Vec<Arc<LocalKey>>,
}

impl UnwrapKeys for LocalUnwrapper {
    fn provider(&self) -> ProviderKind {
        ProviderKind::Local
    }

    fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.fingerprint.clone()).collect()
    }

    fn matches(&self, wrapped: &WrappedKey) -> KeyMatch {
        match self
            .keys
            .iter()
            .find(|k| wrapped.key_ids.contains(&k.fingerprint))
        {
            Some(k) => KeyMatch::Yes(k.fingerprint.clone()),
            None => KeyMatch::No,
        }
    }

    fn unwrap_key<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        ctx: &'a KeyContext,
    ) -> KeyFuture<'a, DataKey> {
        Box::pin(async move {
            let Some(key) = self
                .keys
                .iter()
                .find(|k| wrapped.key_ids.contains(&k.fingerprint))
            else {
                return Err(KeyError::NoMatchingKey {
                    provider: ProviderKind::Local,
                    needed: wrapped.key_ids.clone(),
                    configured: self.key_ids(),
                });
            };
            key.unwrap(wrapped, ctx)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_in_base64_and_hex() {
        let key = LocalKey::generate().unwrap();
        let text = key.to_file_text("2026-01-01T00:00:00Z");
        let back = LocalKey::parse(text.as_bytes()).unwrap();
        assert_eq!(back, key);
        assert_eq!(back.fingerprint().len(), 16);
        assert!(text.contains(&format!("# fingerprint: {}", key.fingerprint())));
        let hex_text = format!("# openssl rand -hex 32\n{}\n", hex(&key.key[..]));
        assert_eq!(LocalKey::parse(hex_text.as_bytes()).unwrap(), key);
        assert!(!format!("{key:?}").contains(&B64.encode(&key.key[..])));
    }

    #[test]
    fn malformed_key_files_say_the_format() {
        for (text, why) in [
            (&b""[..], "holds no key"),
            (b"# only a comment\n", "holds no key"),
            (b"abc\ndef\n", "more than one"),
            (b"not base64 !!", "not base64"),
            (b"AAAA", "3 bytes, not 32"),
            (b"\xff\xfe", "not text"),
        ] {
            let err = LocalKey::parse(text).unwrap_err();
            assert!(err.contains(why), "{err}");
            assert!(err.contains("keys generate --type local"), "{err}");
        }
    }

    #[test]
    fn wrapped_keys_are_bound_to_their_run() {
        let key = LocalKey::generate().unwrap();
        let ctx = KeyContext::new("b", "r1");
        let data = DataKey::generate().unwrap();
        let wrapped = key.wrap(&data, &ctx).unwrap();
        assert_eq!(wrapped.blob.len(), WRAPPED_LEN);
        let back = key.unwrap(&wrapped, &ctx).unwrap();
        assert_eq!(back.expose_bytes(), data.expose_bytes());
        // The fields are length-prefixed: ("b", "r1") is not ("br", "1").
        for other in [KeyContext::new("b", "r2"), KeyContext::new("br", "1")] {
            let err = key.unwrap(&wrapped, &other).unwrap_err();
            assert!(matches!(err, KeyError::InvalidWrappedKey { .. }), "{err}");
        }
    }
}

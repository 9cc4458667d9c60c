//! Client-side envelope encryption: what is stored with encrypted objects, and the ciphers.
//!
//! A run draws one random 256-bit **data key** ([`DataKey`]) and has it wrapped by a key
//! provider (public-key recipients, a KMS, a local key file: see `backup-core`'s `keys`).
//! Only the wrapped form ([`WrappedKey`]) is ever stored: in every segment header, every
//! manifest part and every gap record of the run, so each object can be decrypted on its own
//! (a segment of a run killed before its manifest included).
//!
//! Each object is encrypted with its own key, derived from the data key by HKDF-SHA256 with
//! a fresh random 32-byte salt and the object's identity (backup, topic, topic id, partition,
//! start offset for a segment; the object key for a document). AES-256-GCM nonces can then
//! be counters without ever repeating under one key.
//!
//! - [`stream`]: segments, as a chunked AEAD in the STREAM construction (a nonce of counter
//!   and final-block flag), so a segment is encrypted and decrypted chunk by chunk and any
//!   reordering, truncation or splice between segments fails authentication.
//! - [`document`]: small JSON documents (the sensitive fields of a manifest, gap records).

pub mod document;
pub mod stream;

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The one algorithm this version writes and reads.
pub const ALGORITHM: &str = "AES-256-GCM";
/// Size of data keys, derived keys and salts.
pub const KEY_LEN: usize = 32;
/// Size of an AES-GCM authentication tag, appended to every encrypted block.
pub const TAG_LEN: usize = 16;
/// Largest wrapped key accepted (an `age` file for ~40 recipients, a KMS blob): bounds what
/// a hostile header can make a reader decode.
pub const MAX_WRAPPED_KEY_LEN: usize = 16 << 10;
/// Most key ids one wrapped key may name.
pub const MAX_KEY_IDS: usize = 64;

/// Why something could not be encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication failed: the ciphertext, its associated data or the key is not what it
    /// was when it was written.
    #[error(
        "{what} failed authentication: it was altered, truncated, moved from another object, or \
         the key is not the one it was written with"
    )]
    Authentication {
        /// What failed (e.g. "chunk 3", "trailer", "sealed manifest fields").
        what: String,
    },
    /// Encryption parameters that this version does not know or that are malformed.
    #[error("unsupported or malformed encryption parameters: {reason}")]
    Parameters {
        /// What is wrong.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// A 256-bit data key. Never stored or printed: `Debug` shows `DataKey(***)`, and the bytes
/// are zeroed when dropped.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random_fill(key.as_mut())?;
        Ok(Self(key))
    }

    /// A key from its bytes (an unwrapped key); fails unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::Parameters {
            reason: format!("a data key is {KEY_LEN} bytes, not {}", bytes.len()),
        })?;
        Ok(Self(Zeroizing::new(array)))
    }

    /// The key's bytes, for a key provider to wrap. Do not copy them anywhere else.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(***)")
    }
}

/// A run's data key and its wrapped form: what a writer needs to encrypt objects of the run.
pub struct RunKey {
    /// The data key.
    pub data_key: DataKey,
    /// The same key, wrapped by the provider; stored with every object.
    pub wrapped: WrappedKey,
}

impl fmt::Debug for RunKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunKey")
            .field("data_key", &self.data_key)
            .field("wrapped", &self.wrapped)
            .finish()
    }
}

/// Which kind of key provider wrapped a data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// X25519 recipients in the `age` format: the backup host holds only public keys.
    PublicKey,
    /// AWS KMS (GenerateDataKey / Decrypt).
    AwsKms,
    /// A 256-bit key file.
    Local,
}

impl ProviderKind {
    /// The name used in configuration and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PublicKey => "public-key",
            Self::AwsKms => "aws-kms",
            Self::Local => "local",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data key as a provider wrapped it: safe to store next to the data.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The provider that can unwrap it.
    pub provider: ProviderKind,
    /// Which keys can unwrap it, for people and for choosing from a key ring: `age`
    /// recipients (public keys), the KMS key ARN, or a local key's fingerprint. Never
    /// secret.
    pub key_ids: Vec<String>,
    /// The wrapped key (an `age` file, a KMS ciphertext blob, an AES-GCM box), base64.
    #[serde(with = "b64")]
    pub blob: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("provider", &self.provider)
            .field("key_ids", &self.key_ids)
            .field("blob_len", &self.blob.len())
            .finish()
    }
}

impl WrappedKey {
    /// Checks the bounds a reader relies on.
    pub fn validate(&self) -> Result<(), CryptoError> {
        let bad = |reason: String| Err(CryptoError::Parameters { reason });
        if self.blob.is_empty() || self.blob.len() > MAX_WRAPPED_KEY_LEN {
            return bad(format!(
                "a wrapped key of {} bytes (1 to {MAX_WRAPPED_KEY_LEN} allowed)",
                self.blob.len()
            ));
        }
        if self.key_ids.len() > MAX_KEY_IDS || self.key_ids.iter().any(|k| k.len() > 2048) {
            return bad("too many or too long key ids".to_owned());
        }
        Ok(())
    }

    /// A short stable name for this wrapped key (SHA-256 of provider and blob, 16 hex
    /// digits), to cache unwrapped keys and to tell runs' keys apart in reports.
    pub fn fingerprint(&self) -> String {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        h.update(self.provider.as_str().as_bytes());
        h.update(&[0]);
        h.update(&self.blob);
        crate::hex::encode(&h.finish().as_ref()[..8])
    }
}

/// How an object is encrypted: stored in the clear beside the ciphertext (segment header,
/// manifest, gap record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// Always [`ALGORITHM`].
    pub algorithm: String,
    /// The per-object HKDF salt.
    #[serde(with = "b64_32")]
    pub salt: [u8; KEY_LEN],
    /// The run's data key, wrapped.
    pub key: WrappedKey,
}

impl Encryption {
    /// Parameters for a new object under `key`, with a fresh salt.
    pub fn new(key: WrappedKey) -> Result<Self, CryptoError> {
        let mut salt = [0u8; KEY_LEN];
        random_fill(&mut salt)?;
        Ok(Self {
            algorithm: ALGORITHM.to_owned(),
            salt,
            key,
        })
    }

    /// Checks what a reader relies on.
    pub fn validate(&self) -> Result<(), CryptoError> {
        if self.algorithm != ALGORITHM {
            return Err(CryptoError::Parameters {
                reason: format!(
                    "algorithm {:?}; this version reads {ALGORITHM} only",
                    self.algorithm
                ),
            });
        }
        self.key.validate()
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_fill(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

/// Derives a 256-bit key: HKDF-SHA256 with `salt`, the data key as input key material, and
/// `info` (already domain-separated by the caller).
fn derive(data_key: &DataKey, salt: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; KEY_LEN]> {
    use ring::hkdf::{HKDF_SHA256, Salt};
    let prk = Salt::new(HKDF_SHA256, salt).extract(data_key.expose_bytes());
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    // Expanding 32 bytes from SHA-256 cannot fail (the limit is 255 × 32), nor can filling it.
    prk.expand(info, HKDF_SHA256)
        .and_then(|okm| okm.fill(out.as_mut()))
        .expect("HKDF-SHA256 expands 32 bytes");
    out
}

/// An AES-256-GCM key from derived bytes.
fn aead_key(bytes: &[u8; KEY_LEN]) -> ring::aead::LessSafeKey {
    let unbound = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, bytes)
        .expect("AES-256-GCM takes 32-byte keys");
    ring::aead::LessSafeKey::new(unbound)
}

/// Appends `bytes` with a 4-byte big-endian length in front, so that concatenated fields
/// cannot be re-split differently.
fn length_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

mod b64 {
    use super::B64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        // The text bound keeps a hostile document from making us decode megabytes.
        if text.len() > super::MAX_WRAPPED_KEY_LEN * 4 / 3 + 4 {
            return Err(serde::de::Error::custom("base64 value too long"));
        }
        B64.decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

mod b64_32 {
    use super::{B64, KEY_LEN};
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; KEY_LEN], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; KEY_LEN], D::Error> {
        let text = String::deserialize(d)?;
        if text.len() > 64 {
            return Err(serde::de::Error::custom("salt too long"));
        }
        let bytes = B64
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a salt is 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_are_random_and_never_printed() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        assert_eq!(format!("{a:?}"), "DataKey(***)");
        assert!(DataKey::from_slice(&[0; 31]).is_err());
    }

    #[test]
    fn wrapped_keys_round_trip_through_json_and_stay_bounded() {
        let w = WrappedKey {
            provider: ProviderKind::PublicKey,
            key_ids: vec!["age1xyz".into()],
            blob: vec![7; 300],
        };
        let e = Encryption::new(w.clone()).unwrap();
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"provider\":\"public-key\""), "{json}");
        let back: Encryption = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        back.validate().unwrap();
        assert!(!format!("{w:?}").contains("7, 7"));
        let huge = WrappedKey {
            blob: vec![0; MAX_WRAPPED_KEY_LEN + 1],
            ..w.clone()
        };
        assert!(huge.validate().is_err());
        let other = Encryption {
            algorithm: "AES-128-CBC".into(),
            ..e
        };
        assert!(other.validate().is_err());
        assert_eq!(w.fingerprint().len(), 16);
    }
}

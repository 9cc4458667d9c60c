//! Sealed documents: a small JSON value encrypted with a key derived from the run's data key,
//! bound to the object it is stored in.
//!
//! Used for what a manifest part or gap record must not show in the clear (topic
//! configurations, consumer-group offsets, gap details). The key is HKDF-SHA256(salt = the
//! document's random salt, key material = the data key, info = `"kafka-backup document key
//! v1"` ‖ purpose ‖ binding); the binding (the object's identity, e.g. backup, run and part)
//! is also the associated data, so a sealed value moved into another document fails to open.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{Aad, Nonce};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CryptoError, DataKey, Encryption, TAG_LEN, aead_key, derive, length_prefixed};

/// Largest sealed value accepted (base64 text), before decoding.
pub const MAX_SEALED_LEN: usize = 192 << 20;

/// Encrypts `value` (as JSON) for the document bound to `binding`; returns base64 text.
/// `encryption` carries the salt (fresh per document) and the wrapped data key.
pub fn seal<T: Serialize>(
    data_key: &DataKey,
    encryption: &Encryption,
    purpose: &str,
    binding: &[u8],
    value: &T,
) -> Result<String, CryptoError> {
    let mut plain = serde_json::to_vec(value).map_err(|e| CryptoError::Parameters {
        reason: format!("cannot encode the value to seal: {e}"),
    })?;
    let key = aead_key(&derive(
        data_key,
        &encryption.salt,
        &[&info(purpose, binding)],
    ));
    let tag = key
        .seal_in_place_separate_tag(zero_nonce(), Aad::from(binding), &mut plain)
        .map_err(|_| CryptoError::Parameters {
            reason: "value too large to seal".to_owned(),
        })?;
    plain.extend_from_slice(tag.as_ref());
    Ok(B64.encode(&plain))
}

/// Decrypts and parses what [`seal`] produced, for the same purpose and binding.
pub fn open<T: DeserializeOwned>(
    data_key: &DataKey,
    encryption: &Encryption,
    purpose: &str,
    binding: &[u8],
    sealed: &str,
) -> Result<T, CryptoError> {
    let failed = || CryptoError::Authentication {
        what: format!("sealed {purpose}"),
    };
    if sealed.len() > MAX_SEALED_LEN {
        return Err(CryptoError::Parameters {
            reason: format!(
                "sealed {purpose} of {} bytes is over the limit",
                sealed.len()
            ),
        });
    }
    let mut data = B64.decode(sealed.as_bytes()).map_err(|_| failed())?;
    if data.len() < TAG_LEN {
        return Err(failed());
    }
    let key = aead_key(&derive(
        data_key,
        &encryption.salt,
        &[&info(purpose, binding)],
    ));
    let plain = key
        .open_in_place(zero_nonce(), Aad::from(binding), &mut data)
        .map_err(|_| failed())?;
    serde_json::from_slice(plain).map_err(|e| CryptoError::Parameters {
        reason: format!("sealed {purpose} decrypted but does not parse: {e}"),
    })
}

fn info(purpose: &str, binding: &[u8]) -> Vec<u8> {
    let mut info = b"kafka-backup document key v1".to_vec();
    length_prefixed(&mut info, purpose.as_bytes());
    length_prefixed(&mut info, binding);
    info
}

/// Every document key is used once (fresh salt), so a fixed nonce is safe.
fn zero_nonce() -> Nonce {
    Nonce::assume_unique_for_key([0; 12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{ProviderKind, WrappedKey};

    fn enc() -> Encryption {
        Encryption::new(WrappedKey {
            provider: ProviderKind::Local,
            key_ids: vec!["k".into()],
            blob: vec![1; 60],
        })
        .unwrap()
    }

    #[test]
    fn sealed_values_open_only_for_their_document() {
        let key = DataKey::generate().unwrap();
        let e = enc();
        let value = serde_json::json!({"retention.ms": "604800000"});
        let s = seal(&key, &e, "topic configs", b"b/run/0", &value).unwrap();
        assert!(!s.contains("604800000"));
        let back: serde_json::Value = open(&key, &e, "topic configs", b"b/run/0", &s).unwrap();
        assert_eq!(back, value);
        let err = open::<serde_json::Value>(&key, &e, "topic configs", b"b/run/1", &s).unwrap_err();
        assert!(matches!(err, CryptoError::Authentication { .. }));
        assert!(open::<serde_json::Value>(&key, &e, "groups", b"b/run/0", &s).is_err());
        assert!(open::<serde_json::Value>(&key, &enc(), "topic configs", b"b/run/0", &s).is_err());
        let other = DataKey::generate().unwrap();
        assert!(open::<serde_json::Value>(&other, &e, "topic configs", b"b/run/0", &s).is_err());
        assert!(open::<serde_json::Value>(&key, &e, "topic configs", b"b/run/0", "AAAA").is_err());
        assert!(open::<serde_json::Value>(&key, &e, "topic configs", b"b/run/0", "!!").is_err());
    }
}

//! Ed25519 signatures: the backup role's signing key, the verify keys of everyone else, and the
//! two things that are signed.
//!
//! - **Object names.** A signed backup gives every object a name that carries the SHA-256 of
//!   its content and an Ed25519 signature over the rest of the name (see [`crate::naming`]).
//!   A LIST then authenticates which objects exist, and a GET with a hash check authenticates
//!   what they hold. This is what lets the write-only backup role tell its own objects from
//!   planted ones when it resumes (it may not read them), and lets restore and validate
//!   authenticate a segment that a killed run never listed in a manifest.
//! - **The backup descriptor**, whose name is fixed: a DSSE envelope
//!   (<https://github.com/secure-systems-lab/dsse>) around its JSON.
//!
//! Keys are PEM: the signing key PKCS#8 (`BEGIN PRIVATE KEY`, as `openssl genpkey -algorithm
//! ed25519` writes it), the verify key SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`, as
//! `openssl pkey -pubout` writes it).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a signature in an object name (unpadded base64url).
pub const NAME_SIGNATURE_CHARS: usize = 86;
/// DSSE payload type of a signed backup descriptor.
pub const DESCRIPTOR_PAYLOAD_TYPE: &str = "application/vnd.kafka-backup.descriptor+json";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (32 bytes) }.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of an Ed25519 PKCS#8 version 1 private key (RFC 8410): SEQUENCE { INTEGER 0,
/// SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32 bytes) } }. ring's version 2
/// output has the same length up to the seed.
const V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// Domain separation of name signatures from anything else the key might sign.
const NAME_CONTEXT: &[u8] = b"kafka-backup object name v1\n";
/// Domain separation of audit-event signatures: an event can never pass for a name or an
/// envelope, nor the reverse.
const AUDIT_CONTEXT: &[u8] = b"kafka-backup audit event v1\n";

/// A key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not PEM of the expected kind.
    #[error(
        "not an Ed25519 {what} in PEM form ({reason}); create a key pair with \
         `kafka-backup keys generate --type signing --out NAME` or \
         `openssl genpkey -algorithm ed25519 -out NAME.key` and \
         `openssl pkey -in NAME.key -pubout -out NAME.pub`"
    )]
    Format {
        /// "signing key (PKCS#8 private key)" or "verify key (public key)".
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// The backup role's Ed25519 private key. `Debug` never shows it.
#[derive(Clone)]
pub struct SigningKey {
    pair: Arc<Ed25519KeyPair>,
    verify: VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, ***)", self.verify.key_id())
    }
}

impl SigningKey {
    /// A new random key, and its PKCS#8 PEM (to write to a file readable by its owner only).
    ///
    /// The PEM is PKCS#8 version 1 (RFC 8410: the private key alone), as `openssl genpkey`
    /// writes it. ring generates version 2 (with the public key), which OpenSSL 3.0 cannot
    /// read, so the seed is re-encoded.
    pub fn generate() -> Result<(Self, Zeroizing<String>), KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?;
        let v2 = pkcs8.as_ref();
        // ring's fixed layout: SEQUENCE { INTEGER 1, AlgorithmIdentifier, OCTET STRING {
        // OCTET STRING (32-byte seed) }, [1] public key }.
        let seed = v2
            .get(V1_PREFIX.len()..V1_PREFIX.len() + 32)
            .filter(|_| v2.len() > V1_PREFIX.len() + 32 && v2[2..5] == [0x02, 0x01, 0x01])
            .ok_or_else(|| KeyError::Format {
                what: "signing key (PKCS#8 private key)",
                reason: "unexpected PKCS#8 layout from the key generator".to_owned(),
            })?;
        let mut v1 = Zeroizing::new(V1_PREFIX.to_vec());
        v1.extend_from_slice(seed);
        let pem = Zeroizing::new(to_pem("PRIVATE KEY", &v1));
        let key = Self::from_pkcs8_der(&v1)?;
        // The re-encoded key must be the generated one.
        if key.verify != Self::from_pkcs8_der(v2)?.verify {
            return Err(KeyError::Format {
                what: "signing key (PKCS#8 private key)",
                reason: "re-encoding the generated key changed it".to_owned(),
            });
        }
        Ok((key, pem))
    }

    /// Parses a PKCS#8 PEM private key (version 1, as OpenSSL writes, or 2).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|e| KeyError::Format {
            what: "signing key (PKCS#8 private key)",
            reason: pem_reason(&e),
        })?;
        Self::from_pkcs8_der(der.secret_pkcs8_der())
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| KeyError::Format {
                what: "signing key (PKCS#8 private key)",
                reason: format!("{e} (is it an Ed25519 key?)"),
            })?;
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .expect("Ed25519 public keys are 32 bytes");
        Ok(Self {
            pair: Arc::new(pair),
            verify: VerifyingKey { public },
        })
    }

    /// The matching verify key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verify
    }

    /// Signs an object name (its form without the signature).
    pub fn sign_name(&self, name: &str) -> [u8; SIGNATURE_LEN] {
        let mut msg = Vec::with_capacity(NAME_CONTEXT.len() + name.len());
        msg.extend_from_slice(NAME_CONTEXT);
        msg.extend_from_slice(name.as_bytes());
        self.sign(&msg)
    }

    /// Signs the bytes of an audit event (its line without the signature).
    pub fn sign_audit_event(&self, event: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.sign(&audit_message(event))
    }

    fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.pair
            .sign(msg)
            .as_ref()
            .try_into()
            .expect("Ed25519 signatures are 64 bytes")
    }
}

/// An Ed25519 public key that verifies names and envelopes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerifyingKey {
    public: [u8; 32],
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.key_id())
    }
}

impl VerifyingKey {
    /// Parses a SubjectPublicKeyInfo PEM public key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let bad = |reason: String| KeyError::Format {
            what: "verify key (public key)",
            reason,
        };
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|e| bad(pem_reason(&e)))?;
        let der = der.as_ref();
        if der.len() != SPKI_PREFIX.len() + 32 || der[..SPKI_PREFIX.len()] != SPKI_PREFIX {
            return Err(bad(
                "the public key is not an Ed25519 key (RSA and EC keys cannot verify backups)"
                    .to_owned(),
            ));
        }
        let public = der[SPKI_PREFIX.len()..]
            .try_into()
            .expect("length checked above");
        Ok(Self { public })
    }

    /// The key as SubjectPublicKeyInfo PEM.
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.public);
        to_pem("PUBLIC KEY", &der)
    }

    /// A short id: the first 8 bytes of the SHA-256 of the public key, in hex.
    pub fn key_id(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.public);
        crate::hex::encode(&digest.as_ref()[..8])
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(msg, sig)
            .is_ok()
    }
}

/// The keys a reader accepts signatures from: normally one, several while the signing key is
/// being rotated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyingKeys(Vec<VerifyingKey>);

impl VerifyingKeys {
    /// The set of `keys`.
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        Self(keys)
    }

    /// True when no key is configured: nothing can be authenticated.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.0
    }

    /// The key that signed the audit event `event` (its bytes without the signature), if any.
    pub fn verify_audit_event(&self, event: &[u8], sig: &[u8]) -> Option<&VerifyingKey> {
        let msg = audit_message(event);
        self.0.iter().find(|k| k.verify(&msg, sig))
    }

    /// The key that signed `name` (given without its signature), if any.
    pub fn verify_name(&self, name: &str, sig: &[u8; SIGNATURE_LEN]) -> Option<&VerifyingKey> {
        let mut msg = Vec::with_capacity(NAME_CONTEXT.len() + name.len());
        msg.extend_from_slice(NAME_CONTEXT);
        msg.extend_from_slice(name.as_bytes());
        self.0.iter().find(|k| k.verify(&msg, sig))
    }
}

fn audit_message(event: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(AUDIT_CONTEXT.len() + event.len());
    msg.extend_from_slice(AUDIT_CONTEXT);
    msg.extend_from_slice(event);
    msg
}

/// A signature as it appears in an object name.
pub fn encode_name_signature(sig: &[u8; SIGNATURE_LEN]) -> String {
    B64URL.encode(sig)
}

/// Parses a name signature: exactly [`NAME_SIGNATURE_CHARS`] characters of canonical unpadded
/// base64url.
pub fn decode_name_signature(s: &str) -> Option<[u8; SIGNATURE_LEN]> {
    if s.len() != NAME_SIGNATURE_CHARS {
        return None;
    }
    let bytes = B64URL.decode(s.as_bytes()).ok()?;
    let sig: [u8; SIGNATURE_LEN] = bytes.try_into().ok()?;
    // One signature, one spelling: the unused low bits of the last character must be zero.
    (B64URL.encode(sig) == s).then_some(sig)
}

/// A DSSE envelope with one Ed25519 signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// What the payload is.
    pub payload_type: String,
    /// The payload, base64.
    pub payload: String,
    /// The signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// [`VerifyingKey::key_id`] of the signer.
    pub keyid: String,
    /// The signature over the DSSE pre-authentication encoding, base64.
    pub sig: String,
}

/// What opening an envelope found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeCheck {
    /// Signed by this configured key.
    Verified(String),
    /// Signed, but by none of the configured keys (or no key is configured), or the
    /// signature does not match: the key ids it claims.
    NotVerified(Vec<String>),
}

impl Envelope {
    /// Signs `payload` as `payload_type`.
    pub fn seal(payload_type: &str, payload: &[u8], key: &SigningKey) -> Self {
        let sig = key.sign(&pae(payload_type, payload));
        Self {
            payload_type: payload_type.to_owned(),
            payload: B64.encode(payload),
            signatures: vec![EnvelopeSignature {
                keyid: key.verifying_key().key_id(),
                sig: B64.encode(sig),
            }],
        }
    }

    /// Decodes the payload and checks its signatures against `keys`. A payload type other
    /// than `payload_type` is an error (`None`).
    pub fn open(
        &self,
        payload_type: &str,
        keys: &VerifyingKeys,
    ) -> Option<(Vec<u8>, EnvelopeCheck)> {
        if self.payload_type != payload_type || self.signatures.len() > 16 {
            return None;
        }
        let payload = B64.decode(self.payload.as_bytes()).ok()?;
        let message = pae(payload_type, &payload);
        for s in &self.signatures {
            let Ok(sig) = B64.decode(s.sig.as_bytes()) else {
                continue;
            };
            if let Some(k) = keys.keys().iter().find(|k| k.verify(&message, &sig)) {
                return Some((payload, EnvelopeCheck::Verified(k.key_id())));
            }
        }
        let claimed = self.signatures.iter().map(|s| s.keyid.clone()).collect();
        Some((payload, EnvelopeCheck::NotVerified(claimed)))
    }
}

/// DSSE's pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let body = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_reason(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM block of that kind found".to_owned(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem_and_sign_names() {
        let (key, pem) = SigningKey::generate().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again = SigningKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(again.verifying_key(), key.verifying_key());
        let public = key.verifying_key().to_pem();
        let verify = VerifyingKey::from_pem(public.as_bytes()).unwrap();
        assert_eq!(&verify, key.verifying_key());
        assert!(!format!("{key:?}").contains(pem.lines().nth(1).unwrap()));

        let keys = VerifyingKeys::new(vec![verify.clone()]);
        let sig = key.sign_name("b/topics/t/x/00000/1-2-ab.kbseg");
        assert!(
            keys.verify_name("b/topics/t/x/00000/1-2-ab.kbseg", &sig)
                .is_some()
        );
        assert!(
            keys.verify_name("b/topics/t/x/00000/1-3-ab.kbseg", &sig)
                .is_none()
        );
        let (other, _) = SigningKey::generate().unwrap();
        let wrong = VerifyingKeys::new(vec![other.verifying_key().clone()]);
        assert!(
            wrong
                .verify_name("b/topics/t/x/00000/1-2-ab.kbseg", &sig)
                .is_none()
        );
        assert!(VerifyingKeys::default().verify_name("n", &sig).is_none());

        let text = encode_name_signature(&sig);
        assert_eq!(text.len(), NAME_SIGNATURE_CHARS);
        assert_eq!(decode_name_signature(&text), Some(sig));
        assert_eq!(decode_name_signature(&text[1..]), None);
        assert_eq!(decode_name_signature(&format!("{text}=")), None);
    }

    #[test]
    fn generated_keys_are_pkcs8_v1_as_openssl_writes_them() {
        let (key, pem) = SigningKey::generate().unwrap();
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
        let der = der.secret_pkcs8_der();
        assert_eq!(der.len(), 48);
        assert_eq!(der[..16], V1_PREFIX);
        let again = SigningKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(again.verifying_key(), key.verifying_key());
    }

    #[test]
    fn pem_errors_name_the_fix() {
        let err = SigningKey::from_pem(b"hello").unwrap_err().to_string();
        assert!(err.contains("keys generate"), "{err}");
        let (key, pem) = SigningKey::generate().unwrap();
        // A private key is not a public key and vice versa.
        assert!(VerifyingKey::from_pem(pem.as_bytes()).is_err());
        assert!(SigningKey::from_pem(key.verifying_key().to_pem().as_bytes()).is_err());
    }

    #[test]
    fn envelopes_verify_only_with_the_right_key_and_type() {
        let (key, _) = SigningKey::generate().unwrap();
        let keys = VerifyingKeys::new(vec![key.verifying_key().clone()]);
        let env = Envelope::seal(DESCRIPTOR_PAYLOAD_TYPE, b"{\"a\":1}", &key);
        let json = serde_json::to_string(&env).unwrap();
        let back: Envelope = serde_json::from_str(&json).unwrap();
        let (payload, check) = back.open(DESCRIPTOR_PAYLOAD_TYPE, &keys).unwrap();
        assert_eq!(payload, b"{\"a\":1}");
        assert_eq!(check, EnvelopeCheck::Verified(key.verifying_key().key_id()));
        assert!(back.open("other", &keys).is_none());
        let forged = Envelope {
            payload: B64.encode(b"{\"a\":2}"),
            ..back.clone()
        };
        let (_, check) = forged.open(DESCRIPTOR_PAYLOAD_TYPE, &keys).unwrap();
        assert!(matches!(check, EnvelopeCheck::NotVerified(_)));
        let (_, check) = back
            .open(DESCRIPTOR_PAYLOAD_TYPE, &VerifyingKeys::default())
            .unwrap();
        assert!(matches!(check, EnvelopeCheck::NotVerified(_)));
    }
}

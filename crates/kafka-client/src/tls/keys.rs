//! The client's private key: PKCS#8, PKCS#1 RSA, SEC1 EC, and PBES2-encrypted PKCS#8, read into
//! buffers that are wiped on drop. Failures say which of the many ways a key file can be wrong
//! applies, without ever quoting key material or the password.

use std::path::Path;
use std::sync::Arc;

use pkcs8::der::asn1::{ContextSpecific, ObjectIdentifier, OctetStringRef, UintRef};
use pkcs8::der::{Decode, Header, SliceReader, TagNumber};
use pkcs8::{EncryptedPrivateKeyInfo, PrivateKeyInfo};
use rustls::InconsistentKeys;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use rustls::sign::{CertifiedKey, SigningKey};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use super::TlsError;
use super::files::{KEY_LOCATION, LoadedCertificate, describe_contents, pem_blocks, read_file};
use crate::secret::Secret;

/// Loads the one private key of `path`, decrypting it with `password` if it is encrypted.
pub(crate) fn load_private_key(
    path: &Path,
    password: Option<&Secret>,
    warnings: &mut Vec<String>,
) -> Result<Arc<dyn SigningKey>, TlsError> {
    let data = Zeroizing::new(read_file(KEY_LOCATION, path)?);
    let blocks = pem_blocks(KEY_LOCATION, path, &data)?;
    let keys: Vec<_> = blocks
        .iter()
        .filter(|b| b.label.ends_with("PRIVATE KEY"))
        .collect();
    let block = match keys.as_slice() {
        [one] => *one,
        [] => {
            return Err(TlsError::NoPrivateKey {
                path: path.to_owned(),
                found: describe_contents(&data, &blocks),
            });
        }
        many => {
            return Err(TlsError::MultiplePrivateKeys {
                path: path.to_owned(),
                count: many.len(),
            });
        }
    };
    let pem = &data[block.range.clone()];
    if contains(pem, b"Proc-Type:") && contains(pem, b"ENCRYPTED") {
        return Err(TlsError::LegacyEncryptedKey {
            path: path.to_owned(),
        });
    }
    let label = block.label.as_str();
    let der = decode_block(path, label, pem)?;
    let der: Zeroizing<Vec<u8>> = match label {
        "ENCRYPTED PRIVATE KEY" => {
            let password = password.ok_or_else(|| TlsError::KeyPasswordRequired {
                path: path.to_owned(),
            })?;
            decrypt_pkcs8(path, &der, password)?
        }
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
            if password.is_some() {
                warnings.push(format!(
                    "ssl_key_password is set but the ssl_key_location file {} is not encrypted, so the \
                     password is not used. Remove ssl_key_password, or store the key encrypted \
                     (`openssl pkcs8 -topk8 -v2 aes-256-cbc`)",
                    path.display()
                ));
            }
            der
        }
        "DSA PRIVATE KEY" => return Err(unsupported(path, "a DSA key")),
        "OPENSSH PRIVATE KEY" => {
            return Err(unsupported(
                path,
                "an OpenSSH key (a key for SSH, in OpenSSH's own format)",
            ));
        }
        other => return Err(unsupported(path, &format!("a `{other}` block"))),
    };
    let key = match label {
        "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der.as_slice())),
        "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der.as_slice())),
        _ => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.as_slice())),
    };
    // ring's own loader, not the provider's `load_private_key`: it borrows the DER, so the
    // plaintext key stays in buffers that are wiped on drop.
    rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| match describe_key(&key) {
        Ok((kind, true)) => TlsError::InvalidKey {
            path: path.to_owned(),
            detail: format!("{kind}, but it was rejected: {e}"),
        },
        Ok((kind, false)) => unsupported(path, &kind),
        Err(detail) => TlsError::InvalidKey {
            path: path.to_owned(),
            detail,
        },
    })
}

fn unsupported(path: &Path, detail: &str) -> TlsError {
    TlsError::UnsupportedKeyType {
        path: path.to_owned(),
        detail: detail.to_owned(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Base64-decodes one PEM block into a wiped-on-drop buffer. The body is re-wrapped at 64
/// columns first because the strict RFC 7468 decoder rejects other line lengths, which many
/// tools write.
fn decode_block(path: &Path, label: &str, pem: &[u8]) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    let malformed = || TlsError::InvalidPem {
        key: KEY_LOCATION,
        path: path.to_owned(),
        detail: format!("the base64 text of the {label} block is malformed"),
    };
    let mut body = Zeroizing::new(Vec::with_capacity(pem.len()));
    for line in pem.split(|b| *b == b'\n').map(<[u8]>::trim_ascii) {
        if line.starts_with(b"-----") {
            continue;
        }
        if line.contains(&b':') {
            // An RFC 1421 header line; the key types we accept have none.
            return Err(malformed());
        }
        body.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
    }
    let mut normalized = Zeroizing::new(Vec::with_capacity(body.len() + body.len() / 64 + 80));
    normalized.extend_from_slice(format!("-----BEGIN {label}-----\n").as_bytes());
    for chunk in body.chunks(64) {
        normalized.extend_from_slice(chunk);
        normalized.push(b'\n');
    }
    normalized.extend_from_slice(format!("-----END {label}-----\n").as_bytes());
    let mut der = Zeroizing::new(vec![0u8; body.len() / 4 * 3 + 3]);
    let len = pkcs8::der::pem::decode(&normalized, &mut der)
        .map_err(|_| malformed())?
        .1
        .len();
    der.truncate(len);
    Ok(der)
}

/// Decrypts an `ENCRYPTED PRIVATE KEY` (PKCS#8 with PKCS#5 PBES2) in place in a wiped buffer.
fn decrypt_pkcs8(
    path: &Path,
    der: &[u8],
    password: &Secret,
) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    let info = match EncryptedPrivateKeyInfo::try_from(der) {
        Ok(info) => info,
        Err(e) => {
            // pkcs5 only parses the schemes it knows; name the one used if we can read it.
            return Err(match encryption_oid(der) {
                Some(oid) if oid != PBES2 => TlsError::UnsupportedKeyEncryption {
                    path: path.to_owned(),
                    scheme: oid_name(oid),
                },
                _ => TlsError::InvalidKey {
                    path: path.to_owned(),
                    detail: format!("malformed encrypted PKCS#8 structure: {e}"),
                },
            });
        }
    };
    let mut buf = Zeroizing::new(info.encrypted_data.to_vec());
    let len = match info
        .encryption_algorithm
        .decrypt_in_place(password.expose(), &mut buf)
    {
        Ok(plain) => plain.len(),
        // pkcs5 0.7 reports a failed CBC padding check (the usual sign of a wrong password)
        // as `EncryptFailed` even when decrypting, so both mean "wrong password".
        Err(pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed) => {
            return Err(TlsError::WrongKeyPassword {
                path: path.to_owned(),
            });
        }
        Err(pkcs8::pkcs5::Error::UnsupportedAlgorithm { oid }) => {
            return Err(TlsError::UnsupportedKeyEncryption {
                path: path.to_owned(),
                scheme: oid_name(oid),
            });
        }
        Err(e) => {
            return Err(TlsError::UnsupportedKeyEncryption {
                path: path.to_owned(),
                scheme: format!("{} ({e})", oid_name(info.encryption_algorithm.oid())),
            });
        }
    };
    buf.truncate(len);
    // A wrong password passes the CBC padding check about once in 256 tries and yields
    // garbage; only a well-formed PKCS#8 structure proves the password right.
    if PrivateKeyInfo::try_from(buf.as_slice()).is_err() {
        return Err(TlsError::WrongKeyPassword {
            path: path.to_owned(),
        });
    }
    Ok(buf)
}

const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");

/// The algorithm OID of an EncryptedPrivateKeyInfo, read without understanding its parameters.
fn encryption_oid(der: &[u8]) -> Option<ObjectIdentifier> {
    let mut r = SliceReader::new(der).ok()?;
    Header::decode(&mut r).ok()?;
    Header::decode(&mut r).ok()?;
    ObjectIdentifier::decode(&mut r).ok()
}

fn oid_name(oid: ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "1.2.840.113549.1.5.3" => "PBES1 pbeWithMD5AndDES-CBC",
        "1.2.840.113549.1.5.10" => "PBES1 pbeWithSHA1AndDES-CBC",
        "1.2.840.113549.1.12.1.3" => "PKCS#12 pbeWithSHAAnd3-KeyTripleDES-CBC",
        "1.2.840.113549.1.12.1.6" => "PKCS#12 pbeWithSHAAnd40BitRC2-CBC",
        "1.2.840.113549.2.7" => "PBES2 with the hmacWithSHA1 PRF",
        "1.2.840.113549.3.7" => "PBES2 with des-ede3-cbc",
        "1.3.14.3.2.7" => "PBES2 with des-cbc",
        "1.2.840.113549.3.2" => "PBES2 with rc2-cbc",
        _ => return format!("the algorithm {oid}"),
    };
    format!("{name} ({oid})")
}

/// Describes a key's algorithm for error messages, and whether ring can sign with it.
/// `Err` means the key's structure cannot be parsed.
fn describe_key(key: &PrivateKeyDer<'_>) -> Result<(String, bool), String> {
    match key {
        PrivateKeyDer::Pkcs1(k) => Ok(describe_rsa(k.secret_pkcs1_der())),
        PrivateKeyDer::Sec1(k) => {
            let curve =
                sec1_curve(k.secret_sec1_der()).ok_or("malformed SEC1 EC private key structure")?;
            Ok(describe_curve(curve))
        }
        PrivateKeyDer::Pkcs8(k) => {
            let info = PrivateKeyInfo::try_from(k.secret_pkcs8_der())
                .map_err(|e| format!("malformed PKCS#8 structure: {e}"))?;
            let oid = info.algorithm.oid.to_string();
            Ok(match oid.as_str() {
                "1.2.840.113549.1.1.1" => describe_rsa(info.private_key),
                "1.2.840.10045.2.1" => match info.algorithm.parameters_oid() {
                    Ok(curve) => describe_curve(curve),
                    Err(_) => ("an EC key without a named curve".to_owned(), false),
                },
                "1.3.101.112" => ("an Ed25519 key".to_owned(), true),
                "1.3.101.113" => ("an Ed448 key".to_owned(), false),
                "1.3.101.110" | "1.3.101.111" => (
                    "an X25519/X448 key-agreement key, which cannot sign".to_owned(),
                    false,
                ),
                "1.2.840.113549.1.1.10" => (
                    "an RSASSA-PSS-restricted RSA key (convert it to a plain RSA key, or reissue)"
                        .to_owned(),
                    false,
                ),
                "1.2.840.10040.4.1" => ("a DSA key".to_owned(), false),
                _ => (format!("a key of algorithm {oid}"), false),
            })
        }
        _ => Err("an unknown private key encoding".to_owned()),
    }
}

fn describe_rsa(pkcs1: &[u8]) -> (String, bool) {
    match rsa_modulus_bits(pkcs1) {
        Some(bits) => (
            format!("an RSA key of {bits} bits"),
            (2048..=8192).contains(&bits),
        ),
        None => ("a malformed RSA key".to_owned(), true),
    }
}

fn describe_curve(curve: ObjectIdentifier) -> (String, bool) {
    let (name, ok) = match curve.to_string().as_str() {
        "1.2.840.10045.3.1.7" => ("P-256", true),
        "1.3.132.0.34" => ("P-384", true),
        "1.3.132.0.35" => ("P-521", false),
        "1.3.132.0.10" => ("secp256k1", false),
        "1.3.36.3.3.2.8.1.1.7" => ("brainpoolP256r1", false),
        "1.3.36.3.3.2.8.1.1.11" => ("brainpoolP384r1", false),
        "1.3.36.3.3.2.8.1.1.13" => ("brainpoolP512r1", false),
        _ => return (format!("an EC key on the curve {curve}"), false),
    };
    (format!("an ECDSA key on {name}"), ok)
}

/// RSAPrivateKey ::= SEQUENCE { version, modulus, ... }
fn rsa_modulus_bits(pkcs1: &[u8]) -> Option<usize> {
    let mut r = SliceReader::new(pkcs1).ok()?;
    Header::decode(&mut r).ok()?;
    UintRef::decode(&mut r).ok()?;
    let n = UintRef::decode(&mut r).ok()?;
    let bytes = n.as_bytes();
    let first = *bytes.first()?;
    Some((bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize))
}

/// ECPrivateKey ::= SEQUENCE { version, privateKey OCTET STRING, [0] parameters, ... }
fn sec1_curve(sec1: &[u8]) -> Option<ObjectIdentifier> {
    let mut r = SliceReader::new(sec1).ok()?;
    Header::decode(&mut r).ok()?;
    UintRef::decode(&mut r).ok()?;
    OctetStringRef::decode(&mut r).ok()?;
    ContextSpecific::<ObjectIdentifier>::decode_explicit(&mut r, TagNumber::N0)
        .ok()?
        .map(|c| c.value)
}

/// Pairs the client certificate chain with its key, proving that they belong together.
pub(crate) fn certified_key(
    cert_path: &Path,
    certs: &[LoadedCertificate],
    key_path: &Path,
    key: Arc<dyn SigningKey>,
) -> Result<CertifiedKey, TlsError> {
    let chain = certs.iter().map(|c| c.der.clone()).collect();
    let certified = CertifiedKey::new(chain, key);
    let subject = certs
        .first()
        .map(|c| c.summary.subject.clone())
        .unwrap_or_default();
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // ring's keys always know their public key; "unknown" cannot be checked, not a mismatch.
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            let key_spki = certified.key.public_key();
            let position = key_spki.as_ref().and_then(|spki| {
                certs.iter().position(|c| {
                    X509Certificate::from_der(&c.der)
                        .map(|(_, x)| x.public_key().raw == spki.as_ref())
                        .unwrap_or(false)
                })
            });
            let hint = match position {
                Some(i) => format!(
                    " The key belongs to certificate #{} in that file (`{}`): the client's own \
                     certificate must come first, followed by its CA chain.",
                    i + 1,
                    certs[i].summary.subject
                ),
                None => String::new(),
            };
            Err(TlsError::KeyCertificateMismatch {
                cert_path: cert_path.to_owned(),
                key_path: key_path.to_owned(),
                subject,
                hint,
            })
        }
        Err(e) => Err(TlsError::InvalidCertificate {
            key: super::files::CERTIFICATE_LOCATION,
            path: cert_path.to_owned(),
            index: 1,
            detail: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, data: &[u8]) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    #[test]
    fn loads_an_rcgen_pkcs8_key_wrapped_at_any_width() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = key.serialize_pem();
        // Re-wrap at 76 columns, as some tools do.
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let mut wrapped = String::from("-----BEGIN PRIVATE KEY-----\r\n");
        for chunk in body.as_bytes().chunks(76) {
            wrapped.push_str(std::str::from_utf8(chunk).unwrap());
            wrapped.push_str("\r\n");
        }
        wrapped.push_str("-----END PRIVATE KEY-----\r\n");
        let p = write(&dir, "k.pem", wrapped.as_bytes());
        let mut warnings = Vec::new();
        let k = load_private_key(&p, None, &mut warnings).unwrap();
        assert_eq!(k.algorithm(), rustls::SignatureAlgorithm::ECDSA);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn password_for_a_plain_key_is_a_warning_without_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let p = write(&dir, "k.pem", key.serialize_pem().as_bytes());
        let mut warnings = Vec::new();
        let secret = Secret::new("s3cr3t-value");
        load_private_key(&p, Some(&secret), &mut warnings).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("not encrypted"), "{warnings:?}");
        assert!(!warnings[0].contains("s3cr3t-value"));
    }

    #[test]
    fn key_file_problems_have_their_own_errors() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let mut w = Vec::new();

        let p = write(&dir, "two.pem", format!("{key}{key}").as_bytes());
        let e = load_private_key(&p, None, &mut w).unwrap_err();
        assert!(
            matches!(e, TlsError::MultiplePrivateKeys { count: 2, .. }),
            "{e:?}"
        );

        let p = write(
            &dir,
            "ssh.pem",
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        );
        let e = load_private_key(&p, None, &mut w).unwrap_err();
        assert!(matches!(e, TlsError::UnsupportedKeyType { .. }), "{e:?}");
        assert!(e.to_string().contains("OpenSSH"), "{e}");

        let p = write(
            &dir,
            "bad64.pem",
            b"-----BEGIN PRIVATE KEY-----\n!!!not base64!!!\n-----END PRIVATE KEY-----\n",
        );
        let e = load_private_key(&p, None, &mut w).unwrap_err();
        assert!(matches!(e, TlsError::InvalidPem { .. }), "{e:?}");

        let p = write(
            &dir,
            "garbage.pem",
            b"-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n",
        );
        let e = load_private_key(&p, None, &mut w).unwrap_err();
        assert!(matches!(e, TlsError::InvalidKey { .. }), "{e:?}");
    }

    #[test]
    fn names_unsupported_curves() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let der = key.serialize_der();
        let (kind, ok) = describe_key(&PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            der.as_slice(),
        )))
        .unwrap();
        assert_eq!((kind.as_str(), ok), ("an ECDSA key on P-384", true));
        let (kind, ok) = describe_curve(ObjectIdentifier::new_unwrap("1.3.132.0.35"));
        assert_eq!((kind.as_str(), ok), ("an ECDSA key on P-521", false));
    }
}

//! Reading PEM files: locating blocks, certificates and trust roots. Blocks are located by
//! their BEGIN/END lines before anything is decoded, so that a malformed or foreign block (an
//! encrypted key in a certificate file, say) cannot hide the blocks we need, and so that error
//! messages can say what a file holds instead of what was expected.

use std::ops::Range;
use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::TlsError;
use super::summary::CertificateSummary;

/// Configuration key of the CA file.
pub(crate) const CA_LOCATION: &str = "ssl_ca_location";
/// Configuration key of the client certificate file.
pub(crate) const CERTIFICATE_LOCATION: &str = "ssl_certificate_location";
/// Configuration key of the client key file.
pub(crate) const KEY_LOCATION: &str = "ssl_key_location";

/// One `-----BEGIN label----- ... -----END label-----` block.
#[derive(Debug, Clone)]
pub(crate) struct PemBlock {
    pub label: String,
    /// Byte range of the block in the file, BEGIN and END lines included.
    pub range: Range<usize>,
}

/// A certificate read from a file, with its decoded summary.
#[derive(Debug, Clone)]
pub(crate) struct LoadedCertificate {
    pub der: CertificateDer<'static>,
    pub summary: CertificateSummary,
}

pub(crate) fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::FileUnreadable {
        key,
        path: path.to_owned(),
        source,
    })
}

/// Finds the PEM blocks of a file. Text outside blocks (comments, `Bag Attributes` written by
/// `openssl pkcs12`) is ignored, as OpenSSL does.
pub(crate) fn pem_blocks(
    key: &'static str,
    path: &Path,
    data: &[u8],
) -> Result<Vec<PemBlock>, TlsError> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, usize)> = None;
    let mut offset = 0;
    for raw_line in data.split_inclusive(|b| *b == b'\n') {
        let start = offset;
        offset += raw_line.len();
        let line = raw_line.trim_ascii();
        if let Some(label) = line
            .strip_prefix(b"-----BEGIN ")
            .and_then(|l| l.strip_suffix(b"-----"))
        {
            if let Some((label, _)) = open {
                return Err(TlsError::InvalidPem {
                    key,
                    path: path.to_owned(),
                    detail: format!("the {label} block has no -----END {label}----- line"),
                });
            }
            open = Some((String::from_utf8_lossy(label).into_owned(), start));
        } else if let Some(label) = line
            .strip_prefix(b"-----END ")
            .and_then(|l| l.strip_suffix(b"-----"))
        {
            match open.take() {
                Some((open_label, begin)) if open_label.as_bytes() == label => {
                    blocks.push(PemBlock {
                        label: open_label,
                        range: begin..offset,
                    });
                }
                Some((open_label, _)) => {
                    return Err(TlsError::InvalidPem {
                        key,
                        path: path.to_owned(),
                        detail: format!(
                            "the {open_label} block ends with -----END {}-----",
                            String::from_utf8_lossy(label)
                        ),
                    });
                }
                None => {
                    return Err(TlsError::InvalidPem {
                        key,
                        path: path.to_owned(),
                        detail: format!(
                            "-----END {}----- without a matching BEGIN line",
                            String::from_utf8_lossy(label)
                        ),
                    });
                }
            }
        }
    }
    if let Some((label, _)) = open {
        return Err(TlsError::InvalidPem {
            key,
            path: path.to_owned(),
            detail: format!(
                "the {label} block has no -----END {label}----- line (is the file truncated?)"
            ),
        });
    }
    Ok(blocks)
}

/// Says what a file holds, for "expected X but found Y" messages.
pub(crate) fn describe_contents(data: &[u8], blocks: &[PemBlock]) -> String {
    if data.iter().all(u8::is_ascii_whitespace) {
        return "the file is empty".to_owned();
    }
    if blocks.is_empty() {
        let binary = data
            .iter()
            .any(|b| !b.is_ascii_graphic() && !b.is_ascii_whitespace());
        return if binary {
            "it holds binary data, not PEM text: it looks like a DER, PKCS#12 (.p12/.pfx) or Java \
             keystore (.jks) file. Convert it to PEM with openssl (e.g. `openssl x509 -inform der`, \
             `openssl pkcs12 -nodes`) or keytool"
                .to_owned()
        } else {
            "it holds no -----BEGIN ...----- block".to_owned()
        };
    }
    let labels: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
    format!("it holds only {}", labels.join(", "))
}

/// Reads every certificate of a PEM file. A file with none is an error.
pub(crate) fn load_certificates(
    key: &'static str,
    path: &Path,
    hint: &'static str,
) -> Result<(Vec<LoadedCertificate>, Vec<PemBlock>), TlsError> {
    let data = read_file(key, path)?;
    let blocks = pem_blocks(key, path, &data)?;
    let mut certs = Vec::new();
    for block in blocks.iter().filter(|b| b.label == "CERTIFICATE") {
        let index = certs.len() + 1;
        let der = CertificateDer::from_pem_slice(&data[block.range.clone()]).map_err(|e| {
            TlsError::InvalidPem {
                key,
                path: path.to_owned(),
                detail: format!("certificate #{index} cannot be decoded: {e}"),
            }
        })?;
        let summary =
            CertificateSummary::from_der(&der).map_err(|detail| TlsError::InvalidCertificate {
                key,
                path: path.to_owned(),
                index,
                detail,
            })?;
        certs.push(LoadedCertificate { der, summary });
    }
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            key,
            path: path.to_owned(),
            detail: describe_contents(&data, &blocks),
            hint,
        });
    }
    Ok((certs, blocks))
}

/// Trust roots from `ssl_ca_location`, or from the operating system when it is unset.
/// Returns the store and the subjects of the CAs (for "not issued by a CA in ..." messages).
pub(crate) fn load_roots(
    ca_location: Option<&Path>,
    roots_for: RootsFor,
    warnings: &mut Vec<String>,
) -> Result<(RootCertStore, Vec<String>), TlsError> {
    let mut roots = RootCertStore::empty();
    let mut subjects = Vec::new();
    let key = roots_for.key;
    match ca_location {
        Some(path) => {
            let (certs, blocks) = load_certificates(key, path, roots_for.hint)?;
            for (i, cert) in certs.into_iter().enumerate() {
                roots
                    .add(cert.der)
                    .map_err(|e| TlsError::InvalidCertificate {
                        key,
                        path: path.to_owned(),
                        index: i + 1,
                        detail: format!("it cannot be used as a trust anchor: {e}"),
                    })?;
                subjects.push(cert.summary.subject);
            }
            if let Some(b) = blocks.iter().find(|b| b.label.contains("PRIVATE KEY")) {
                warnings.push(format!(
                    "the {key} file {} also holds a private key ({}). A CA file should hold \
                     only certificates, and is usually readable by everyone: move the key out of it",
                    path.display(),
                    b.label
                ));
            }
        }
        None => roots = native_roots(rustls_native_certs::load_native_certs(), warnings)?,
    }
    Ok((roots, subjects))
}

/// Whose certificates a set of trust roots checks, for the key and hint in its errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RootsFor {
    /// The configuration key naming the CA file.
    pub key: &'static str,
    /// What to put in that file.
    pub hint: &'static str,
}

impl RootsFor {
    /// The brokers' TLS listeners.
    pub(crate) const BROKERS: RootsFor = RootsFor {
        key: CA_LOCATION,
        hint: "Set ssl_ca_location to a PEM file holding the certificate of the CA that issued the \
               brokers' certificates (-----BEGIN CERTIFICATE----- blocks)",
    };
    /// The OAuth token endpoint.
    pub(crate) const TOKEN_ENDPOINT: RootsFor = RootsFor {
        key: "sasl_oauthbearer_ca_location",
        hint: "Set sasl_oauthbearer_ca_location to a PEM file holding the certificate of the CA \
               that issued the token endpoint's certificate (-----BEGIN CERTIFICATE----- blocks)",
    };
}

/// The system trust store. Certificates it holds that cannot be parsed are skipped: that
/// removes trust, never adds it; but an empty result is an error, not "trust nothing".
fn native_roots(
    found: rustls_native_certs::CertificateResult,
    warnings: &mut Vec<String>,
) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (_, skipped) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let mut detail: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
        if skipped > 0 {
            detail.push(format!("{skipped} certificates could not be parsed"));
        }
        return Err(TlsError::NoSystemRoots {
            detail: if detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", detail.join("; "))
            },
        });
    }
    for e in &found.errors {
        warnings.push(format!(
            "loading the system trust store reported: {e}; {} CA certificates were loaded anyway. \
             Set ssl_ca_location to use an explicit CA file",
            roots.len()
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/x.pem";

    #[test]
    fn finds_blocks_and_ignores_text_around_them() {
        let data = b"Bag Attributes\n    friendlyName: x\n-----BEGIN CERTIFICATE-----\r\nAAAA\r\n-----END CERTIFICATE-----\r\n\n-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----";
        let blocks = pem_blocks(KEY_LOCATION, Path::new(P), data).unwrap();
        let labels: Vec<_> = blocks.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["CERTIFICATE", "PRIVATE KEY"]);
        assert!(data[blocks[0].range.clone()].starts_with(b"-----BEGIN CERTIFICATE"));
        assert!(data[blocks[1].range.clone()].ends_with(b"-----END PRIVATE KEY-----"));
    }

    #[test]
    fn unterminated_and_mismatched_blocks_are_errors() {
        let e = pem_blocks(
            CA_LOCATION,
            Path::new(P),
            b"-----BEGIN CERTIFICATE-----\nAAAA\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("no -----END CERTIFICATE----- line"),
            "{e}"
        );
        assert!(e.to_string().contains("ssl_ca_location"), "{e}");
        let e = pem_blocks(
            CA_LOCATION,
            Path::new(P),
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("ends with -----END PRIVATE KEY-----"),
            "{e}"
        );
    }

    #[test]
    fn empty_system_trust_store_says_to_set_ca_location() {
        let mut found = rustls_native_certs::CertificateResult::default();
        found.errors.push(rustls_native_certs::Error {
            context: "failed to read /etc/ssl/certs",
            kind: rustls_native_certs::ErrorKind::Os("no such directory".into()),
        });
        let e = native_roots(found, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, TlsError::NoSystemRoots { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("Set ssl_ca_location"), "{text}");
        assert!(text.contains("failed to read /etc/ssl/certs"), "{text}");

        let e = native_roots(Default::default(), &mut Vec::new()).unwrap_err();
        assert!(
            e.to_string().contains("yielded no usable CA certificates."),
            "{e}"
        );
    }

    #[test]
    fn describes_what_a_file_holds() {
        assert_eq!(describe_contents(b"\n  \n", &[]), "the file is empty");
        assert!(describe_contents(&[0x30, 0x82, 0x01, 0x0a], &[]).contains("PKCS#12"));
        let blocks = [PemBlock {
            label: "PRIVATE KEY".into(),
            range: 0..1,
        }];
        assert_eq!(
            describe_contents(b"x", &blocks),
            "it holds only PRIVATE KEY"
        );
    }
}

//! What an operator needs to know about a certificate, decoded from DER with x509-parser.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// The parts of an X.509 certificate that error messages, logs and expiry checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// Subject distinguished name, e.g. `CN=kafka-1.example.com, O=Example`.
    pub subject: String,
    /// Issuer distinguished name, in the same form.
    pub issuer: String,
    /// Start of the validity period.
    pub not_before: OffsetDateTime,
    /// End of the validity period.
    pub not_after: OffsetDateTime,
    /// Subject alternative names, each prefixed with its kind: `DNS:`, `IP:`, `email:`,
    /// `URI:` or `DirName:`.
    pub subject_alt_names: Vec<String>,
    /// Serial number as colon-separated hex bytes, as OpenSSL prints it.
    pub serial: String,
}

impl CertificateSummary {
    /// Decodes a DER certificate. The error is a human-readable reason.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
        if !rest.is_empty() {
            return Err(format!(
                "{} unexpected bytes after the certificate",
                rest.len()
            ));
        }
        let subject_alt_names = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext.value.general_names.iter().map(general_name).collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(format!("invalid subjectAltName extension: {e}")),
        };
        Ok(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            subject_alt_names,
            serial: cert.raw_serial_as_string(),
        })
    }

    /// Whether the certificate has expired or will expire within `d` from now.
    pub fn expires_within(&self, d: Duration) -> bool {
        let remaining = self.not_after - OffsetDateTime::now_utc();
        if remaining.is_negative() {
            return true;
        }
        remaining.unsigned_abs() <= d
    }

    /// Whether the certificate is outside its validity period now.
    pub fn is_expired(&self) -> bool {
        self.not_after < OffsetDateTime::now_utc()
    }
}

impl fmt::Display for CertificateSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject `{}`, issued by `{}`, valid {} to {}",
            self.subject,
            self.issuer,
            format_time(self.not_before),
            format_time(self.not_after)
        )
    }
}

/// RFC 3339 in UTC: unambiguous for operators in any time zone.
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| format!("{t}"))
}

fn general_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(s) => format!("DNS:{s}"),
        GeneralName::IPAddress(b) => match <[u8; 4]>::try_from(*b) {
            Ok(v4) => format!("IP:{}", IpAddr::from(v4)),
            Err(_) => match <[u8; 16]>::try_from(*b) {
                Ok(v6) => format!("IP:{}", IpAddr::from(v6)),
                Err(_) => format!("IP:<{} bytes>", b.len()),
            },
        },
        GeneralName::RFC822Name(s) => format!("email:{s}"),
        GeneralName::URI(s) => format!("URI:{s}"),
        GeneralName::DirectoryName(n) => format!("DirName:{n}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sans: &[&str], not_after: OffsetDateTime) -> rcgen::Certificate {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "broker-1");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = not_after;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0a, 0xbc]));
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap()
    }

    #[test]
    fn summarises_a_certificate() {
        let not_after = OffsetDateTime::now_utc() + time::Duration::days(10);
        let c = cert(&["kafka-1.example.com", "10.1.2.3", "::1"], not_after);
        let s = CertificateSummary::from_der(c.der()).unwrap();
        assert!(s.subject.contains("CN=broker-1"), "{}", s.subject);
        assert!(s.subject.contains("O=Example"), "{}", s.subject);
        assert_eq!(s.subject, s.issuer, "self-signed");
        assert_eq!(
            s.subject_alt_names,
            vec!["DNS:kafka-1.example.com", "IP:10.1.2.3", "IP:::1"]
        );
        assert_eq!(s.serial, "0a:bc");
        assert_eq!(s.not_after.unix_timestamp(), not_after.unix_timestamp());
        assert!(s.expires_within(Duration::from_secs(11 * 86_400)));
        assert!(!s.expires_within(Duration::from_secs(9 * 86_400)));
        assert!(!s.is_expired());
        let shown = s.to_string();
        assert!(shown.contains("CN=broker-1"), "{shown}");
        assert!(
            shown.contains(&format_time(s.not_after)),
            "{shown} should show the expiry"
        );
    }

    #[test]
    fn expired_certificates_expire_within_any_duration() {
        let c = cert(
            &["a.example"],
            OffsetDateTime::now_utc() - time::Duration::hours(1),
        );
        let s = CertificateSummary::from_der(c.der()).unwrap();
        assert!(s.is_expired());
        assert!(s.expires_within(Duration::ZERO));
    }

    #[test]
    fn rejects_garbage() {
        let e = CertificateSummary::from_der(b"not a certificate").unwrap_err();
        assert!(e.contains("not a valid X.509 certificate"), "{e}");
    }
}

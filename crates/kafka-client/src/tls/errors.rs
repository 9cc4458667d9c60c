//! [`TlsError`]. Every message is one paragraph that names the file, certificate or broker at
//! fault, the cause, and the setting that fixes it.
//! No message ever contains a secret: key passwords are never formatted, and key material is
//! never quoted.

use std::io;
use std::path::{Path, PathBuf};

use rustls::AlertDescription;
use time::OffsetDateTime;

use super::summary::{CertificateSummary, format_time};
use crate::config::BrokerAddress;

/// A TLS failure, naming the certificate or file at fault and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    // ----- Loading files and building the configuration -----
    /// A configured file could not be read.
    #[error(
        "cannot read the {key} file {}: {}. Check that {key} names the right file and that the user \
         running kafka-backup may read it",
        .path.display(), describe_io(.source)
    )]
    FileUnreadable {
        /// The configuration key (`ssl_ca_location`, ...).
        key: &'static str,
        /// The path configured.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },

    /// A configured file is not well-formed PEM.
    #[error(
        "the {key} file {} is not valid PEM: {detail}. It must hold base64 blocks between \
         -----BEGIN ...----- and -----END ...----- lines; re-export it as PEM",
        .path.display()
    )]
    InvalidPem {
        /// The configuration key.
        key: &'static str,
        /// The path configured.
        path: PathBuf,
        /// What is malformed.
        detail: String,
    },

    /// A CA or client certificate file contains no certificate.
    #[error("the {key} file {} contains no certificate: {detail}. {hint}", .path.display())]
    NoCertificates {
        /// The configuration key.
        key: &'static str,
        /// The path configured.
        path: PathBuf,
        /// What the file holds instead.
        detail: String,
        /// What the file should hold.
        hint: &'static str,
    },

    /// A certificate in a file cannot be parsed or used.
    #[error(
        "certificate #{index} in the {key} file {} is not a usable X.509 certificate ({detail}). Replace \
         it with a valid PEM certificate, or remove it from the file",
        .path.display()
    )]
    InvalidCertificate {
        /// The configuration key.
        key: &'static str,
        /// The path configured.
        path: PathBuf,
        /// 1-based position of the certificate in the file.
        index: usize,
        /// Why it is unusable.
        detail: String,
    },

    /// `ssl_ca_location` is unset and the operating system offers no trusted CA.
    #[error(
        "ssl_ca_location is not set, so the system trust store is used, but it yielded no usable CA \
         certificates{detail}. Set ssl_ca_location to the PEM file of the CA that issued the brokers' \
         certificates (or install the system CA bundle, e.g. the ca-certificates package)"
    )]
    NoSystemRoots {
        /// Errors the loader reported, prefixed with "; ", or empty.
        detail: String,
    },

    /// Only one of the client certificate and its key is configured.
    #[error(
        "{set} is set but {missing} is not: a client certificate (mTLS) needs both \
         ssl_certificate_location and ssl_key_location. Set {missing}, or remove {set} if this listener \
         does not use client certificates"
    )]
    IncompleteClientAuth {
        /// The key that is set.
        set: &'static str,
        /// The key that is missing.
        missing: &'static str,
    },

    /// The key file holds no private key.
    #[error(
        "the ssl_key_location file {} contains no private key ({found}). Point ssl_key_location at the PEM \
         private key of the certificate in ssl_certificate_location (a -----BEGIN PRIVATE KEY-----, \
         RSA PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED PRIVATE KEY block)",
        .path.display()
    )]
    NoPrivateKey {
        /// The key file.
        path: PathBuf,
        /// What the file holds instead.
        found: String,
    },

    /// The key file holds more than one private key, so which one to use is ambiguous.
    #[error(
        "the ssl_key_location file {} contains {count} private keys; it must contain exactly one, the key \
         of the certificate in ssl_certificate_location. Remove the others",
        .path.display()
    )]
    MultiplePrivateKeys {
        /// The key file.
        path: PathBuf,
        /// How many keys it holds.
        count: usize,
    },

    /// The key is encrypted and no password is configured.
    #[error(
        "the ssl_key_location file {} holds an encrypted private key (-----BEGIN ENCRYPTED PRIVATE KEY-----) \
         but ssl_key_password is not set. Set ssl_key_password to the key's passphrase",
        .path.display()
    )]
    KeyPasswordRequired {
        /// The key file.
        path: PathBuf,
    },

    /// The configured password does not decrypt the key.
    #[error(
        "ssl_key_password does not decrypt {}: the passphrase is wrong, or the file is corrupt. Set \
         ssl_key_password to the passphrase the key was encrypted with (check it with \
         `openssl pkey -in {} -noout`)",
        .path.display(), .path.display()
    )]
    WrongKeyPassword {
        /// The key file.
        path: PathBuf,
    },

    /// The key is encrypted with a scheme this tool does not implement.
    #[error(
        "the ssl_key_location file {} is encrypted with {scheme}, which kafka-backup does not support. \
         Re-encrypt it with PBES2 and AES: `openssl pkcs8 -topk8 -v2 aes-256-cbc -in {} -out key.p8.pem`, \
         then point ssl_key_location at key.p8.pem",
        .path.display(), .path.display()
    )]
    UnsupportedKeyEncryption {
        /// The key file.
        path: PathBuf,
        /// The encryption scheme found.
        scheme: String,
    },

    /// The key uses OpenSSL's legacy PEM encryption (`Proc-Type: 4,ENCRYPTED`).
    #[error(
        "the ssl_key_location file {} uses OpenSSL's legacy PEM encryption (Proc-Type: 4,ENCRYPTED), whose \
         MD5-based key derivation is weak and is not supported. Convert it to an encrypted PKCS#8 key with \
         `openssl pkcs8 -topk8 -v2 aes-256-cbc -in {} -out key.p8.pem` and point ssl_key_location at \
         key.p8.pem (the command asks for the current passphrase, then a new one: set ssl_key_password \
         to the new one)",
        .path.display(), .path.display()
    )]
    LegacyEncryptedKey {
        /// The key file.
        path: PathBuf,
    },

    /// The private key's structure is broken.
    #[error(
        "the private key in the ssl_key_location file {} cannot be parsed ({detail}); the file may be \
         truncated or corrupt. Re-export the key as PEM",
        .path.display()
    )]
    InvalidKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong (never key material).
        detail: String,
    },

    /// The key's algorithm cannot be used for TLS client authentication.
    #[error(
        "the private key in the ssl_key_location file {} is {detail}, which cannot be used for TLS client \
         authentication. Use an RSA key of 2048 to 8192 bits, an ECDSA key on P-256 or P-384, or an \
         Ed25519 key, with a certificate issued for it",
        .path.display()
    )]
    UnsupportedKeyType {
        /// The key file.
        path: PathBuf,
        /// What kind of key it is.
        detail: String,
    },

    /// The client certificate and the private key are not a pair.
    #[error(
        "the private key in ssl_key_location ({}) does not belong to the client certificate in \
         ssl_certificate_location ({}, subject `{subject}`): their public keys differ.{hint} Point both \
         settings at a matching pair; compare `openssl x509 -in CERT -noout -pubkey` with \
         `openssl pkey -in KEY -pubout`",
        .key_path.display(), .cert_path.display()
    )]
    KeyCertificateMismatch {
        /// The certificate file.
        cert_path: PathBuf,
        /// The key file.
        key_path: PathBuf,
        /// Subject of the first certificate in the file.
        subject: String,
        /// Extra help, e.g. that the matching certificate is not first in the file.
        hint: String,
    },

    /// rustls refused the configuration (an internal error: the settings are valid TLS options).
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),

    // ----- The handshake -----
    /// The broker's host is neither a DNS name nor an IP address.
    #[error(
        "cannot connect to {broker} with TLS: `{host}` is not a valid DNS name or IP address for \
         certificate verification. Fix the host in bootstrap_servers (or the broker's advertised.listeners)",
        host = .broker.host
    )]
    InvalidServerName {
        /// The broker.
        broker: BrokerAddress,
    },

    /// The broker's certificate chain does not lead to a trusted CA.
    #[error(
        "TLS handshake with {broker} failed: the broker's certificate{} is not issued by a CA in {trust}. \
         Set ssl_ca_location to the PEM file of the CA that issued the brokers' certificates (see the chain \
         with `openssl s_client -connect {broker} -showcerts`); if it is issued by an intermediate CA, the \
         broker must also send that intermediate certificate",
        describe_peer(.presented.as_deref())
    )]
    UnknownIssuer {
        /// The broker.
        broker: BrokerAddress,
        /// The trust roots used, e.g. "the CA file /etc/kafka/ca.pem (ssl_ca_location)".
        trust: String,
        /// The certificate the broker presented, if it could be decoded.
        presented: Option<Box<CertificateSummary>>,
    },

    /// A certificate in the broker's chain has expired.
    #[error(
        "TLS handshake with {broker} failed: {} expired on {} (this machine's clock says {}). Renew the \
         broker's certificate; if this machine's clock is wrong, fix it",
        which_cert(.presented.as_deref(), *.not_after), fmt_opt_time(*.not_after), fmt_opt_time(*.now)
    )]
    CertificateExpired {
        /// The broker.
        broker: BrokerAddress,
        /// End of validity of the expired certificate, when rustls reports it.
        not_after: Option<OffsetDateTime>,
        /// The time the check was made.
        now: Option<OffsetDateTime>,
        /// The broker's own certificate, if it could be decoded.
        presented: Option<Box<CertificateSummary>>,
    },

    /// A certificate in the broker's chain is not valid yet.
    #[error(
        "TLS handshake with {broker} failed: {} is not valid until {} (this machine's clock says {}). \
         Check this machine's clock (and the broker's), or wait until the certificate becomes valid",
        which_cert_not_before(.presented.as_deref(), *.not_before), fmt_opt_time(*.not_before), fmt_opt_time(*.now)
    )]
    CertificateNotYetValid {
        /// The broker.
        broker: BrokerAddress,
        /// Start of validity of the certificate, when rustls reports it.
        not_before: Option<OffsetDateTime>,
        /// The time the check was made.
        now: Option<OffsetDateTime>,
        /// The broker's own certificate, if it could be decoded.
        presented: Option<Box<CertificateSummary>>,
    },

    /// The broker's certificate does not name the host we dialled.
    #[error(
        "TLS handshake with {broker} failed: the broker's certificate is not valid for `{host}`; it is valid \
         for {}. Connect with a name the certificate contains (fix bootstrap_servers, or the broker's \
         advertised.listeners when the address came from cluster metadata), or reissue the certificate \
         with `{host}` in its subjectAltName. Setting ssl_endpoint_identification_algorithm to none skips \
         this check but lets anyone holding a certificate from the same CA impersonate the broker",
        list_names(.presented_names)
    )]
    HostnameMismatch {
        /// The broker.
        broker: BrokerAddress,
        /// The host name or IP address we connected to.
        host: String,
        /// The names the certificate presents (`DNS:...`, `IP:...` or as rustls reports them).
        presented_names: Vec<String>,
    },

    /// The broker's certificate is invalid for another reason (bad signature, revoked, wrong
    /// purpose, ...).
    #[error(
        "TLS handshake with {broker} failed: the broker's certificate{} was rejected: {reason}",
        describe_peer(.presented.as_deref())
    )]
    ServerCertificateInvalid {
        /// The broker.
        broker: BrokerAddress,
        /// Why, and what to do.
        reason: String,
        /// The broker's certificate, if it could be decoded.
        presented: Option<Box<CertificateSummary>>,
    },

    /// The listener requires a client certificate and none is configured.
    #[error(
        "{broker} requires a client certificate and none is configured: this listener requires mTLS \
         (ssl.client.auth=required on the broker). Set ssl_certificate_location and ssl_key_location to \
         this client's certificate and private key"
    )]
    ClientCertificateRequired {
        /// The broker.
        broker: BrokerAddress,
    },

    /// The broker refused our client certificate.
    #[error(
        "{broker} rejected the client certificate{} with TLS alert `{alert}`: {hint}",
        .certificate.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
    )]
    ClientCertificateRejected {
        /// The broker.
        broker: BrokerAddress,
        /// The TLS alert the broker sent, e.g. `unknown_ca`.
        alert: String,
        /// Our certificate: the file and its subject, when known.
        certificate: Option<String>,
        /// The likely cause and fix.
        hint: &'static str,
    },

    /// The peer does not speak TLS: it closed the connection or sent non-TLS bytes.
    #[error(
        "{broker} did not answer with TLS ({detail}). Is this a PLAINTEXT listener? Check \
         security_protocol (SSL and SASL_SSL need a TLS listener) and that the port in bootstrap_servers \
         is the broker's TLS listener"
    )]
    NotTls {
        /// The broker.
        broker: BrokerAddress,
        /// What was seen.
        detail: String,
    },

    /// No common TLS version, cipher suite, key exchange group or signature scheme.
    #[error(
        "{broker} and kafka-backup have no TLS protocol version or cipher suite in common ({detail}). \
         kafka-backup speaks only TLS 1.2 and TLS 1.3 with ECDHE and AES-GCM or ChaCha20-Poly1305; enable \
         TLSv1.2 or TLSv1.3 on the broker (ssl.enabled.protocols) and allow such cipher suites \
         (ssl.cipher.suites)"
    )]
    ProtocolMismatch {
        /// The broker.
        broker: BrokerAddress,
        /// What rustls or the broker reported.
        detail: String,
    },

    /// The handshake failed for another TLS reason; the rustls error is kept.
    #[error(
        "TLS handshake with {broker} failed: {source}. The broker's log shows its side of this failure"
    )]
    Handshake {
        /// The broker.
        broker: BrokerAddress,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },

    /// The network failed during the handshake.
    #[error(
        "the connection to {broker} failed during the TLS handshake: {source}. Check that the broker is \
         up and reachable"
    )]
    HandshakeIo {
        /// The broker.
        broker: BrokerAddress,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A TLS error on an established connection that is not about certificates.
    #[error("TLS error on the connection to {broker}: {source}")]
    Session {
        /// The broker.
        broker: BrokerAddress,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
}

impl TlsError {
    /// Whether the problem is in the local TLS settings or files (CA bundle, client
    /// certificate, key, key password), found before any connection was made. Fixing it means
    /// fixing the configuration; retrying cannot help.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            TlsError::FileUnreadable { .. }
                | TlsError::InvalidPem { .. }
                | TlsError::NoCertificates { .. }
                | TlsError::InvalidCertificate { .. }
                | TlsError::NoSystemRoots { .. }
                | TlsError::IncompleteClientAuth { .. }
                | TlsError::NoPrivateKey { .. }
                | TlsError::MultiplePrivateKeys { .. }
                | TlsError::KeyPasswordRequired { .. }
                | TlsError::WrongKeyPassword { .. }
                | TlsError::UnsupportedKeyEncryption { .. }
                | TlsError::LegacyEncryptedKey { .. }
                | TlsError::InvalidKey { .. }
                | TlsError::UnsupportedKeyType { .. }
                | TlsError::KeyCertificateMismatch { .. }
                | TlsError::Config(_)
        )
    }
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "the file does not exist".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::IsADirectory => "it is a directory".to_owned(),
        _ => e.to_string(),
    }
}

fn fmt_opt_time(t: Option<OffsetDateTime>) -> String {
    t.map(format_time)
        .unwrap_or_else(|| "an unreported date".to_owned())
}

fn describe_peer(peer: Option<&CertificateSummary>) -> String {
    match peer {
        Some(p) => format!(" (subject `{}`, issued by `{}`)", p.subject, p.issuer),
        None => String::new(),
    }
}

/// rustls reports the first certificate in the chain that failed; it is the broker's own only
/// if the dates match.
fn which_cert(peer: Option<&CertificateSummary>, not_after: Option<OffsetDateTime>) -> String {
    match (peer, not_after) {
        (Some(p), Some(t)) if p.not_after.unix_timestamp() == t.unix_timestamp() => {
            format!("the broker's certificate `{}`", p.subject)
        }
        (Some(p), None) => format!("the broker's certificate `{}`", p.subject),
        (Some(p), Some(_)) => format!(
            "a CA certificate in the chain of the broker's certificate `{}`",
            p.subject
        ),
        (None, _) => "the broker's certificate".to_owned(),
    }
}

fn which_cert_not_before(
    peer: Option<&CertificateSummary>,
    not_before: Option<OffsetDateTime>,
) -> String {
    match (peer, not_before) {
        (Some(p), Some(t)) if p.not_before.unix_timestamp() != t.unix_timestamp() => format!(
            "a CA certificate in the chain of the broker's certificate `{}`",
            p.subject
        ),
        (Some(p), _) => format!("the broker's certificate `{}`", p.subject),
        (None, _) => "the broker's certificate".to_owned(),
    }
}

fn list_names(names: &[String]) -> String {
    if names.is_empty() {
        "no host name (it has no subjectAltName, and the subject CN is not used for host names)"
            .to_owned()
    } else {
        names.join(", ")
    }
}

/// TLS's own spelling of an alert, as brokers log it.
pub(crate) fn alert_name(a: AlertDescription) -> String {
    use AlertDescription as A;
    let s = match a {
        A::HandshakeFailure => "handshake_failure",
        A::BadCertificate => "bad_certificate",
        A::UnsupportedCertificate => "unsupported_certificate",
        A::CertificateRevoked => "certificate_revoked",
        A::CertificateExpired => "certificate_expired",
        A::CertificateUnknown => "certificate_unknown",
        A::UnknownCA => "unknown_ca",
        A::AccessDenied => "access_denied",
        A::DecryptError => "decrypt_error",
        A::ProtocolVersion => "protocol_version",
        A::InsufficientSecurity => "insufficient_security",
        A::CertificateRequired => "certificate_required",
        A::IllegalParameter => "illegal_parameter",
        A::InternalError => "internal_error",
        A::UnrecognisedName => "unrecognized_name",
        _ => return format!("{a:?}"),
    };
    s.to_owned()
}

/// "the CA file X (ssl_ca_location)" or "the system trust store".
pub(crate) fn describe_trust(ca: Option<&Path>, subjects: &[String]) -> String {
    match ca {
        Some(path) => {
            let shown: Vec<&str> = subjects.iter().take(3).map(String::as_str).collect();
            let more = subjects.len().saturating_sub(shown.len());
            let mut s = format!(
                "the CA file {} (ssl_ca_location), which holds `{}`",
                path.display(),
                shown.join("`, `")
            );
            if more > 0 {
                s.push_str(&format!(" and {more} more"));
            }
            s
        }
        None => "the system trust store (ssl_ca_location is not set)".to_owned(),
    }
}

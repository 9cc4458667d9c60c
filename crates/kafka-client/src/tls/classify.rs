//! Maps rustls failures (during and after the handshake) to the most precise [`TlsError`].
//! rustls reports what went wrong; this module adds what we know about the connection (whether
//! a client certificate is configured, whether the broker asked for one, which certificate the
//! broker presented) to tell apart failures that share one alert.

use std::io;

use rustls::{AlertDescription, CertificateError, PeerIncompatible};
use time::OffsetDateTime;

use super::errors::{TlsError, alert_name};
use super::summary::CertificateSummary;
use crate::config::BrokerAddress;

/// What the connector knows when a handshake or a read fails.
pub(crate) struct FailureContext<'a> {
    pub broker: &'a BrokerAddress,
    /// Describes the trust roots, for the unknown-issuer message.
    pub trust: &'a str,
    /// Our client certificate ("file, subject"), when mTLS is configured.
    pub client_cert: Option<&'a str>,
    pub have_client_cert: bool,
    /// Whether the broker sent a CertificateRequest during the handshake; `None` when unknown
    /// (errors after the handshake, classified without the connector).
    pub cert_requested: Option<bool>,
    /// The broker's end-entity certificate, if the verifier saw it.
    pub presented: Option<Box<CertificateSummary>>,
}

/// The rustls error inside an I/O error from tokio-rustls, if any.
pub(crate) fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Maps a failed `connect` to the most precise error.
pub(crate) fn classify_handshake(ctx: FailureContext<'_>, err: io::Error) -> TlsError {
    let broker = ctx.broker.clone();
    let Some(tls) = rustls_error(&err).cloned() else {
        return match err.kind() {
            io::ErrorKind::UnexpectedEof => TlsError::NotTls {
                broker,
                detail:
                    "it closed the connection during the TLS handshake without sending a TLS alert"
                        .to_owned(),
            },
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => TlsError::NotTls {
                broker,
                detail:
                    "it reset the connection during the TLS handshake without sending a TLS alert"
                        .to_owned(),
            },
            _ => TlsError::HandshakeIo {
                broker,
                source: err,
            },
        };
    };
    classify_rustls(ctx, tls, true)
}

fn classify_rustls(ctx: FailureContext<'_>, tls: rustls::Error, in_handshake: bool) -> TlsError {
    use rustls::Error as E;
    let broker = ctx.broker.clone();
    match tls {
        E::InvalidCertificate(cert_err) => classify_certificate(ctx, cert_err),
        E::AlertReceived(alert) => classify_alert(ctx, alert, in_handshake),
        E::InvalidMessage(m) if in_handshake => TlsError::NotTls {
            broker,
            detail: format!(
                "it answered our TLS ClientHello with data that is not TLS; rustls: {}",
                invalid_message_text(&E::InvalidMessage(m))
            ),
        },
        E::PeerIncompatible(p) if is_version_or_cipher(&p) => TlsError::ProtocolMismatch {
            broker,
            detail: format!("{}", E::PeerIncompatible(p)),
        },
        E::NoCertificatesPresented => TlsError::ServerCertificateInvalid {
            broker,
            reason:
                "the broker sent no certificate at all. Configure a certificate (keystore) on the \
                     broker's TLS listener"
                    .to_owned(),
            presented: None,
        },
        other if in_handshake => TlsError::Handshake {
            broker,
            source: other,
        },
        other => TlsError::Session {
            broker,
            source: other,
        },
    }
}

/// rustls lists presented names in `Debug` form: `DnsName("x")`, `IpAddress(1.2.3.4)`.
fn readable_name(name: &str) -> String {
    if let Some(dns) = name
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
    {
        format!("DNS:{dns}")
    } else if let Some(ip) = name
        .strip_prefix("IpAddress(")
        .and_then(|n| n.strip_suffix(')'))
    {
        format!("IP:{ip}")
    } else {
        name.to_owned()
    }
}

fn invalid_message_text(e: &rustls::Error) -> String {
    let s = e.to_string();
    s.strip_prefix("received corrupt message of type ")
        .map(str::to_owned)
        .unwrap_or(s)
}

fn is_version_or_cipher(p: &PeerIncompatible) -> bool {
    use PeerIncompatible as P;
    matches!(
        p,
        P::ServerDoesNotSupportTls12Or13
            | P::ServerTlsVersionIsDisabledByOurConfig
            | P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::SupportedVersionsExtensionRequired
            | P::NoCipherSuitesInCommon
            | P::NoKxGroupsInCommon
            | P::NoSignatureSchemesInCommon
            | P::NoEcPointFormatsInCommon
            | P::ExtendedMasterSecretExtensionRequired
    )
}

fn unix_to_time(t: rustls::pki_types::UnixTime) -> Option<OffsetDateTime> {
    let secs = i64::try_from(t.as_secs()).ok()?;
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

fn classify_certificate(ctx: FailureContext<'_>, err: CertificateError) -> TlsError {
    use CertificateError as C;
    let broker = ctx.broker.clone();
    let presented = ctx.presented;
    let reason = match err {
        C::UnknownIssuer => {
            return TlsError::UnknownIssuer {
                broker,
                trust: ctx.trust.to_owned(),
                presented,
            };
        }
        C::Expired => {
            return TlsError::CertificateExpired {
                broker,
                not_after: None,
                now: Some(OffsetDateTime::now_utc()),
                presented,
            };
        }
        C::ExpiredContext { time, not_after } => {
            return TlsError::CertificateExpired {
                broker,
                not_after: unix_to_time(not_after),
                now: unix_to_time(time),
                presented,
            };
        }
        C::NotValidYet => {
            return TlsError::CertificateNotYetValid {
                broker,
                not_before: None,
                now: Some(OffsetDateTime::now_utc()),
                presented,
            };
        }
        C::NotValidYetContext { time, not_before } => {
            return TlsError::CertificateNotYetValid {
                broker,
                not_before: unix_to_time(not_before),
                now: unix_to_time(time),
                presented,
            };
        }
        C::NotValidForName => {
            return TlsError::HostnameMismatch {
                host: broker.host.clone(),
                broker,
                presented_names: presented
                    .map(|p| p.subject_alt_names)
                    .unwrap_or_default(),
            };
        }
        C::NotValidForNameContext {
            expected: _,
            presented: names,
        } => {
            // Our summary spells names as operators know them (`DNS:x`, `IP:y`); rustls's
            // list is the fallback when the certificate could not be decoded.
            let names = match presented {
                Some(p) if !p.subject_alt_names.is_empty() => p.subject_alt_names,
                _ => names.iter().map(|n| readable_name(n)).collect(),
            };
            return TlsError::HostnameMismatch {
                host: broker.host.clone(),
                broker,
                presented_names: names,
            };
        }
        C::Revoked => "it has been revoked by its CA. The broker needs a new certificate".to_owned(),
        C::BadSignature => "a signature in its chain does not verify: the chain is corrupt or was \
                            assembled from unrelated certificates. Fix the broker's keystore"
            .to_owned(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "it is not valid for TLS server authentication (its extendedKeyUsage lacks serverAuth). \
             Reissue the broker's certificate with extendedKeyUsage serverAuth"
                .to_owned()
        }
        C::BadEncoding => "it is not a well-formed X.509 certificate. Fix the broker's keystore".to_owned(),
        C::UnhandledCriticalExtension => "it has a critical extension that cannot be verified. Reissue \
                                          it without that extension marked critical"
            .to_owned(),
        other => format!(
            "{}. Check the broker's certificate chain",
            rustls::Error::InvalidCertificate(other)
        ),
    };
    TlsError::ServerCertificateInvalid {
        broker,
        reason,
        presented,
    }
}

fn classify_alert(
    ctx: FailureContext<'_>,
    alert: AlertDescription,
    in_handshake: bool,
) -> TlsError {
    use AlertDescription as A;
    let broker = ctx.broker.clone();
    let about_client_cert = matches!(
        alert,
        A::CertificateRequired
            | A::HandshakeFailure
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::DecryptError
            | A::NoCertificate
    );
    // After the handshake (TLS 1.3 checks the client certificate then) nothing else can be
    // wrong with the handshake, so certificate-ish alerts are about our certificate. During the
    // handshake, handshake_failure is also how brokers say "no cipher in common", so it is
    // blamed on the client certificate only if the broker asked for one.
    let requested = ctx.cert_requested.unwrap_or(!in_handshake);
    if !ctx.have_client_cert {
        if alert == A::CertificateRequired
            || (about_client_cert && requested && alert != A::DecryptError)
        {
            return TlsError::ClientCertificateRequired { broker };
        }
    } else if about_client_cert && requested {
        return TlsError::ClientCertificateRejected {
            broker,
            alert: alert_name(alert),
            certificate: ctx.client_cert.map(str::to_owned),
            hint: rejection_hint(alert),
        };
    }
    if matches!(
        alert,
        A::ProtocolVersion | A::InsufficientSecurity | A::HandshakeFailure
    ) && in_handshake
    {
        return TlsError::ProtocolMismatch {
            broker,
            detail: format!(
                "the broker aborted the handshake with TLS alert `{}`",
                alert_name(alert)
            ),
        };
    }
    let source = rustls::Error::AlertReceived(alert);
    if in_handshake {
        TlsError::Handshake { broker, source }
    } else {
        TlsError::Session { broker, source }
    }
}

fn rejection_hint(alert: AlertDescription) -> &'static str {
    use AlertDescription as A;
    match alert {
        A::UnknownCA => {
            "the broker does not trust the CA that issued it. Add that CA to the broker's \
             ssl.truststore, or use a client certificate issued by a CA the broker trusts"
        }
        A::CertificateExpired => {
            "the broker considers it expired. Renew the client certificate (or fix the clock of the \
             broker or of this machine)"
        }
        A::CertificateRevoked => "it has been revoked. Obtain a new client certificate",
        A::DecryptError => {
            "the signature made with ssl_key_location did not verify, so the key does not match the \
             certificate the broker checked. Point ssl_certificate_location and ssl_key_location at a \
             matching pair"
        }
        A::AccessDenied => {
            "the certificate was accepted but the broker denies access to its principal. Check the \
             broker's ssl.principal.mapping.rules and ACLs"
        }
        _ => {
            "the broker could not validate it. Check that it is issued by a CA in the broker's \
             ssl.truststore, that ssl_certificate_location includes any intermediate CA certificates, \
             that it has not expired, and that its extendedKeyUsage allows clientAuth"
        }
    }
}

/// For failures that surface after the handshake: with TLS 1.3 the broker checks the client
/// certificate after the client considers the handshake done, so a missing or rejected client
/// certificate shows up as an `io::Error` wrapping `rustls::Error::AlertReceived(..)` on the
/// first read or write. Turns such errors, and any other TLS error wrapped in an `io::Error`,
/// into a [`TlsError`]; returns `None` for plain I/O errors (resets, EOF, timeouts), which are
/// network failures.
pub fn classify_io_error(
    broker: &BrokerAddress,
    err: &io::Error,
    have_client_cert: bool,
) -> Option<TlsError> {
    classify_after_handshake(broker, err, have_client_cert, None)
}

pub(crate) fn classify_after_handshake(
    broker: &BrokerAddress,
    err: &io::Error,
    have_client_cert: bool,
    client_cert: Option<&str>,
) -> Option<TlsError> {
    let tls = rustls_error(err)?.clone();
    let ctx = FailureContext {
        broker,
        trust: "",
        client_cert,
        have_client_cert,
        cert_requested: None,
        presented: None,
    };
    Some(classify_rustls(ctx, tls, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> BrokerAddress {
        BrokerAddress::new("kafka-1.example.com", 9093)
    }

    fn alert_io(a: AlertDescription) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, rustls::Error::AlertReceived(a))
    }

    #[test]
    fn tls13_alert_after_handshake_without_cert_means_mtls_required() {
        for a in [
            AlertDescription::CertificateRequired,
            AlertDescription::HandshakeFailure,
            AlertDescription::BadCertificate,
        ] {
            let e = classify_io_error(&broker(), &alert_io(a), false).unwrap();
            assert!(
                matches!(e, TlsError::ClientCertificateRequired { .. }),
                "{a:?}: {e:?}"
            );
            let text = e.to_string();
            assert!(text.contains("requires mTLS"), "{text}");
            assert!(text.contains("ssl_certificate_location"), "{text}");
            assert!(text.contains("ssl_key_location"), "{text}");
        }
    }

    #[test]
    fn alert_after_handshake_with_cert_means_rejected() {
        let e = classify_io_error(&broker(), &alert_io(AlertDescription::UnknownCA), true).unwrap();
        match &e {
            TlsError::ClientCertificateRejected { alert, .. } => assert_eq!(alert, "unknown_ca"),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("ssl.truststore"), "{e}");
    }

    #[test]
    fn plain_io_errors_are_not_tls_errors() {
        let e = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert!(classify_io_error(&broker(), &e, false).is_none());
        let e = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(classify_io_error(&broker(), &e, true).is_none());
    }

    fn ctx(have_cert: bool, requested: Option<bool>) -> FailureContext<'static> {
        static B: std::sync::OnceLock<BrokerAddress> = std::sync::OnceLock::new();
        FailureContext {
            broker: B.get_or_init(broker),
            trust: "the CA file /etc/ca.pem (ssl_ca_location)",
            client_cert: None,
            have_client_cert: have_cert,
            cert_requested: requested,
            presented: None,
        }
    }

    #[test]
    fn handshake_failure_is_blamed_on_client_auth_only_when_a_cert_was_requested() {
        let e = classify_handshake(
            ctx(false, Some(true)),
            alert_io(AlertDescription::HandshakeFailure),
        );
        assert!(
            matches!(e, TlsError::ClientCertificateRequired { .. }),
            "{e:?}"
        );
        let e = classify_handshake(
            ctx(false, Some(false)),
            alert_io(AlertDescription::HandshakeFailure),
        );
        assert!(matches!(e, TlsError::ProtocolMismatch { .. }), "{e:?}");
        let e = classify_handshake(
            ctx(true, Some(false)),
            alert_io(AlertDescription::HandshakeFailure),
        );
        assert!(matches!(e, TlsError::ProtocolMismatch { .. }), "{e:?}");
        let e = classify_handshake(
            ctx(false, Some(false)),
            alert_io(AlertDescription::ProtocolVersion),
        );
        assert!(matches!(e, TlsError::ProtocolMismatch { .. }), "{e:?}");
        assert!(e.to_string().contains("protocol_version"), "{e}");
    }

    #[test]
    fn expired_context_carries_the_dates() {
        let not_after = rustls::pki_types::UnixTime::since_unix_epoch(
            std::time::Duration::from_secs(1_600_000_000),
        );
        let now = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            1_700_000_000,
        ));
        let err = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                time: now,
                not_after,
            }),
        );
        let e = classify_handshake(ctx(false, None), err);
        let text = e.to_string();
        assert!(text.contains("expired on 2020-09-13T12:26:40Z"), "{text}");
        assert!(text.contains("kafka-1.example.com:9093"), "{text}");
    }

    #[test]
    fn rustls_name_lists_are_made_readable() {
        assert_eq!(
            readable_name("DnsName(\"kafka.example\")"),
            "DNS:kafka.example"
        );
        assert_eq!(readable_name("IpAddress(10.0.0.1)"), "IP:10.0.0.1");
        assert_eq!(readable_name("other"), "other");
    }

    #[test]
    fn eof_during_handshake_suggests_plaintext_listener() {
        let e = classify_handshake(
            ctx(false, None),
            io::Error::from(io::ErrorKind::UnexpectedEof),
        );
        assert!(matches!(e, TlsError::NotTls { .. }), "{e:?}");
        assert!(e.to_string().contains("PLAINTEXT listener"), "{e}");
        assert!(e.to_string().contains("security_protocol"), "{e}");
    }
}

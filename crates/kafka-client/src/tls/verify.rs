//! Certificate verification and client-certificate selection hooks. Two jobs: skipping only the
//! host-name check when the operator disabled it (never the chain check), and recording what
//! happened during one handshake (the broker's certificate, whether it asked for ours) so a
//! failure can be explained precisely.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::ResolvesClientCert;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::summary::CertificateSummary;

/// What one handshake revealed, for error messages and [`super::TlsSessionInfo`].
#[derive(Debug, Default)]
pub(crate) struct HandshakeProbe {
    peer: Mutex<Option<CertificateDer<'static>>>,
    cert_requested: AtomicBool,
}

impl HandshakeProbe {
    /// The broker's end-entity certificate, if the verifier saw one that decodes.
    pub(crate) fn peer_summary(&self) -> Option<CertificateSummary> {
        // A poisoned lock only means another thread panicked while storing a certificate;
        // the data is still a valid Option.
        let guard = self.peer.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .and_then(|der| CertificateSummary::from_der(der).ok())
    }

    pub(crate) fn cert_requested(&self) -> bool {
        self.cert_requested.load(Ordering::Relaxed)
    }
}

/// The WebPKI verifier, recording the certificate the broker presented, and skipping only the
/// host-name check when the operator turned it off. rustls verifies the chain (signatures,
/// validity, key usage, trust anchor) before the name, so a `NotValidForName*` error means the
/// chain itself was accepted; any other error is passed through unchanged.
#[derive(Debug)]
pub(crate) struct BrokerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    verify_hostname: bool,
    probe: Arc<HandshakeProbe>,
}

impl BrokerVerifier {
    pub(crate) fn new(
        inner: Arc<WebPkiServerVerifier>,
        verify_hostname: bool,
        probe: Arc<HandshakeProbe>,
    ) -> Self {
        Self {
            inner,
            verify_hostname,
            probe,
        }
    }
}

impl ServerCertVerifier for BrokerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.probe.peer.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(end_entity.clone().into_owned());
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.verify_hostname => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// Offers the configured client certificate (if any), and records that the broker asked for
/// one: that is what tells "this listener requires mTLS" apart from "no cipher in common" when
/// a broker answers with a bare `handshake_failure`.
pub(crate) struct RecordingResolver {
    key: Option<Arc<CertifiedKey>>,
    probe: Arc<HandshakeProbe>,
}

impl RecordingResolver {
    pub(crate) fn new(key: Option<Arc<CertifiedKey>>, probe: Arc<HandshakeProbe>) -> Self {
        Self { key, probe }
    }
}

impl fmt::Debug for RecordingResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingResolver")
            .field("has_client_certificate", &self.key.is_some())
            .finish()
    }
}

impl ResolvesClientCert for RecordingResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.probe.cert_requested.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

//! Real TLS handshakes between `TlsConnector` and a rustls server on 127.0.0.1, with
//! certificates made by rcgen and keys made by the `openssl` command line (so that files in the
//! formats operators actually have are proven to load).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kafka_client::tls::{TlsConnector, TlsError, TlsSessionInfo, classify_io_error};
use kafka_client::{BrokerAddress, Secret, TlsOptions};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SignatureAlgorithm,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use tempfile::TempDir;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::client::TlsStream;

const TIMEOUT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct-horse-battery-staple-42";
const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

// ---------------------------------------------------------------------------------------------
// PKI fixtures
// ---------------------------------------------------------------------------------------------

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(cn: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Self { params, key, pem }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// An intermediate CA signed by this CA.
    fn intermediate(&self, cn: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.signed_by(&key, &self.issuer()).unwrap().pem();
        Self { params, key, pem }
    }

    fn leaf_params(
        cn: &str,
        sans: &[&str],
        eku: ExtendedKeyUsagePurpose,
        validity: Option<(OffsetDateTime, OffsetDateTime)>,
    ) -> CertificateParams {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![eku];
        let (not_before, not_after) = validity.unwrap_or_else(|| {
            let now = OffsetDateTime::now_utc();
            (
                now - time::Duration::days(1),
                now + time::Duration::days(365),
            )
        });
        params.not_before = not_before;
        params.not_after = not_after;
        params
    }

    /// A server certificate and its PKCS#8 key, both PEM.
    fn server(
        &self,
        sans: &[&str],
        validity: Option<(OffsetDateTime, OffsetDateTime)>,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = Self::leaf_params(
            "kafka-broker-1",
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
            validity,
        );
        let cert = params.signed_by(&key, &self.issuer()).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate for a public key made elsewhere (by openssl).
    fn client_for(&self, cn: &str, public_key: &OpensslPublicKey) -> String {
        let params = Self::leaf_params(cn, &[], ExtendedKeyUsagePurpose::ClientAuth, None);
        params.signed_by(public_key, &self.issuer()).unwrap().pem()
    }

    /// A client certificate and its rcgen (PKCS#8 ECDSA P-256) key.
    fn client(&self, cn: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = Self::leaf_params(cn, &[], ExtendedKeyUsagePurpose::ClientAuth, None);
        let cert = params.signed_by(&key, &self.issuer()).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A public key read from `openssl pkey -pubout`, so that rcgen can certify keys it cannot read.
struct OpensslPublicKey {
    alg: &'static SignatureAlgorithm,
    bits: Vec<u8>,
}

impl PublicKeyData for OpensslPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command line must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn public_key_of(key: &Path, password: Option<&str>) -> OpensslPublicKey {
    let out = key.with_extension("pub.der");
    let (k, o) = (key.to_str().unwrap(), out.to_str().unwrap());
    let pass = password.map(|p| format!("pass:{p}"));
    let mut args = vec!["pkey", "-in", k, "-pubout", "-outform", "DER", "-out", o];
    if let Some(p) = &pass {
        args.extend(["-passin", p]);
    }
    openssl(&args);
    let der = std::fs::read(&out).unwrap();
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&der).unwrap();
    let alg = match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => &rcgen::PKCS_RSA_SHA256,
        "1.3.101.112" => &rcgen::PKCS_ED25519,
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .unwrap()
                .to_id_string();
            match curve.as_str() {
                "1.2.840.10045.3.1.7" => &rcgen::PKCS_ECDSA_P256_SHA256,
                "1.3.132.0.34" => &rcgen::PKCS_ECDSA_P384_SHA384,
                other => panic!("curve {other}"),
            }
        }
        other => panic!("algorithm {other}"),
    };
    OpensslPublicKey {
        alg,
        bits: spki.subject_public_key.data.to_vec(),
    }
}

struct Files {
    dir: TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn options(ca: &Path) -> TlsOptions {
    TlsOptions {
        ca_location: Some(ca.to_owned()),
        ..TlsOptions::default()
    }
}

fn mtls_options(ca: &Path, cert: &Path, key: &Path, password: Option<&str>) -> TlsOptions {
    TlsOptions {
        ca_location: Some(ca.to_owned()),
        certificate_location: Some(cert.to_owned()),
        key_location: Some(key.to_owned()),
        key_password: password.map(Secret::new),
        verify_hostname: true,
    }
}

// ---------------------------------------------------------------------------------------------
// Server and client
// ---------------------------------------------------------------------------------------------

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(
    chain_pem: &str,
    key_pem: &str,
    versions: &[&'static SupportedProtocolVersion],
    client_ca_pem: Option<&str>,
) -> ServerConfig {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match client_ca_pem {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder.with_single_cert(chain, key).unwrap()
}

/// Serves one TLS connection: handshake, send "hello", wait for the client to close. Yields
/// the subject of the client certificate, if one was presented, or the server's error.
async fn serve_once(
    config: ServerConfig,
) -> (SocketAddr, JoinHandle<Result<Option<String>, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let handle = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let subject = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| {
                kafka_client::tls::CertificateSummary::from_der(c)
                    .unwrap()
                    .subject
            });
        tls.write_all(b"hello").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 16];
        let _ = tokio::time::timeout(TIMEOUT, tls.read(&mut buf)).await;
        Ok(subject)
    });
    (addr, handle)
}

async fn connect(
    connector: &TlsConnector,
    host: &str,
    addr: SocketAddr,
) -> Result<(TlsStream<TcpStream>, TlsSessionInfo), TlsError> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let broker = BrokerAddress::new(host, addr.port());
    tokio::time::timeout(TIMEOUT, connector.connect(&broker, tcp))
        .await
        .expect("handshake timed out")
}

async fn read_hello(stream: &mut TlsStream<TcpStream>) -> std::io::Result<()> {
    let mut buf = [0u8; 5];
    tokio::time::timeout(TIMEOUT, stream.read_exact(&mut buf))
        .await
        .expect("read timed out")?;
    assert_eq!(&buf, b"hello");
    Ok(())
}

/// Handshake that must succeed, followed by application data both ways.
async fn assert_connects(
    connector: &TlsConnector,
    host: &str,
    config: ServerConfig,
) -> (TlsSessionInfo, Option<String>) {
    let (addr, server) = serve_once(config).await;
    let (mut stream, info) = match connect(connector, host, addr).await {
        Ok(ok) => ok,
        Err(e) => panic!("handshake failed: {e}"),
    };
    if let Err(e) = read_hello(&mut stream).await {
        let broker = BrokerAddress::new(host, addr.port());
        panic!(
            "read after handshake failed: {e} / {:?}",
            connector.classify_io_error(&broker, &e)
        );
    }
    stream.shutdown().await.unwrap();
    let client_subject = server.await.unwrap().expect("server side failed");
    (info, client_subject)
}

/// Handshake that must fail; the failure may surface on the first read (TLS 1.3 client auth).
async fn handshake_error(connector: &TlsConnector, host: &str, config: ServerConfig) -> TlsError {
    let (addr, server) = serve_once(config).await;
    let result = match connect(connector, host, addr).await {
        Err(e) => e,
        Ok((mut stream, _)) => {
            let err = read_hello(&mut stream)
                .await
                .expect_err("the server should have rejected the connection");
            let broker = BrokerAddress::new(host, addr.port());
            let free = classify_io_error(&broker, &err, connector.has_client_certificate())
                .unwrap_or_else(|| panic!("not classified as TLS: {err}"));
            let bound = connector.classify_io_error(&broker, &err).unwrap();
            assert_eq!(
                std::mem::discriminant(&free),
                std::mem::discriminant(&bound)
            );
            bound
        }
    };
    let _ = tokio::time::timeout(TIMEOUT, server).await;
    result
}

fn assert_mentions(e: &TlsError, parts: &[&str]) {
    let text = e.to_string();
    for p in parts {
        assert!(text.contains(p), "`{p}` missing from: {text}");
    }
    assert!(!text.contains('\n'), "one paragraph: {text}");
}

struct Setup {
    files: Files,
    ca: Ca,
    ca_path: PathBuf,
    server_cert: String,
    server_key: String,
}

fn setup() -> Setup {
    let files = Files::new();
    let ca = Ca::new("Test Root CA");
    let ca_path = files.write("ca.pem", &ca.pem);
    let (server_cert, server_key) = ca.server(&["localhost", "127.0.0.1"], None);
    Setup {
        files,
        ca,
        ca_path,
        server_cert,
        server_key,
    }
}

// ---------------------------------------------------------------------------------------------
// Server authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tls13_handshake_reports_version_cipher_and_server_certificate() {
    let s = setup();
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();
    assert!(
        connector.warnings().is_empty(),
        "{:?}",
        connector.warnings()
    );
    let config = server_config(&s.server_cert, &s.server_key, TLS13, None);
    let (info, client) = assert_connects(&connector, "localhost", config).await;
    assert_eq!(info.protocol_version, "TLSv1.3");
    assert!(
        [
            "TLS13_AES_256_GCM_SHA384",
            "TLS13_AES_128_GCM_SHA256",
            "TLS13_CHACHA20_POLY1305_SHA256"
        ]
        .contains(&info.cipher_suite.as_str()),
        "{}",
        info.cipher_suite
    );
    let peer = info.peer_certificate.expect("server certificate summary");
    assert_eq!(peer.subject, "CN=kafka-broker-1");
    assert_eq!(peer.issuer, "CN=Test Root CA");
    assert!(peer.subject_alt_names.contains(&"DNS:localhost".to_owned()));
    assert!(peer.subject_alt_names.contains(&"IP:127.0.0.1".to_owned()));
    assert!(!peer.expires_within(Duration::from_secs(300 * 86_400)));
    assert!(peer.expires_within(Duration::from_secs(366 * 86_400)));
    assert!(!info.client_certificate_requested);
    assert_eq!(client, None);
}

#[tokio::test]
async fn tls12_only_server_works_and_reports_tls12() {
    let s = setup();
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();
    let config = server_config(&s.server_cert, &s.server_key, TLS12, None);
    let (info, _) = assert_connects(&connector, "localhost", config).await;
    assert_eq!(info.protocol_version, "TLSv1.2");
    assert!(
        info.cipher_suite.starts_with("TLS_ECDHE_ECDSA_WITH_"),
        "{}",
        info.cipher_suite
    );
}

#[tokio::test]
async fn ip_address_brokers_are_verified_against_ip_sans() {
    let s = setup();
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();
    let config = server_config(&s.server_cert, &s.server_key, TLS13, None);
    let (info, _) = assert_connects(&connector, "127.0.0.1", config).await;
    assert_eq!(info.protocol_version, "TLSv1.3");

    // A certificate without that IP is a mismatch, reported with what it does name.
    let (cert, key) = s.ca.server(&["localhost"], None);
    let config = server_config(&cert, &key, TLS13, None);
    let e = handshake_error(&connector, "127.0.0.1", config).await;
    assert!(matches!(e, TlsError::HostnameMismatch { .. }), "{e:?}");
    assert_mentions(&e, &["`127.0.0.1`", "localhost"]);
}

#[tokio::test]
async fn ca_file_with_several_certificates_trusts_all_of_them() {
    let s = setup();
    let other = Ca::new("Other CA");
    let bundle = s
        .files
        .write("bundle.pem", format!("{}{}", other.pem, s.ca.pem));
    let connector = TlsConnector::new(&options(&bundle)).unwrap();
    let config = server_config(&s.server_cert, &s.server_key, TLS13, None);
    assert_connects(&connector, "localhost", config).await;
}

#[tokio::test]
async fn intermediate_chain_is_verified_and_a_missing_intermediate_is_explained() {
    let s = setup();
    let intermediate = s.ca.intermediate("Test Issuing CA");
    let (leaf, key) = intermediate.server(&["localhost"], None);
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();

    let chain = format!("{leaf}{}", intermediate.pem);
    let config = server_config(&chain, &key, TLS13, None);
    let (info, _) = assert_connects(&connector, "localhost", config).await;
    assert_eq!(info.peer_certificate.unwrap().issuer, "CN=Test Issuing CA");

    let config = server_config(&leaf, &key, TLS13, None);
    let e = handshake_error(&connector, "localhost", config).await;
    assert!(matches!(e, TlsError::UnknownIssuer { .. }), "{e:?}");
    assert_mentions(&e, &["intermediate", "CN=Test Issuing CA"]);
}

#[tokio::test]
async fn wrong_ca_is_unknown_issuer() {
    let s = setup();
    let other = Ca::new("Unrelated CA");
    let other_path = s.files.write("other-ca.pem", &other.pem);
    let connector = TlsConnector::new(&options(&other_path)).unwrap();
    let config = server_config(&s.server_cert, &s.server_key, TLS13, None);
    let e = handshake_error(&connector, "localhost", config).await;
    match &e {
        TlsError::UnknownIssuer {
            broker,
            trust,
            presented,
        } => {
            assert_eq!(broker.host, "localhost");
            assert!(trust.contains(other_path.to_str().unwrap()), "{trust}");
            assert!(trust.contains("CN=Unrelated CA"), "{trust}");
            assert_eq!(
                presented.as_ref().unwrap().issuer,
                "CN=Test Root CA",
                "the message can say who issued the broker's certificate"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_mentions(
        &e,
        &[
            "localhost:",
            "not issued by a CA in",
            "ssl_ca_location",
            other_path.to_str().unwrap(),
            "CN=Test Root CA",
        ],
    );
}

#[tokio::test]
async fn expired_server_certificate_reports_the_expiry_date() {
    let s = setup();
    let not_before = rcgen::date_time_ymd(2020, 1, 1);
    let not_after = rcgen::date_time_ymd(2021, 6, 30);
    let (cert, key) = s.ca.server(&["localhost"], Some((not_before, not_after)));
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();
    let config = server_config(&cert, &key, TLS13, None);
    let e = handshake_error(&connector, "localhost", config).await;
    match &e {
        TlsError::CertificateExpired { not_after: got, .. } => {
            assert_eq!(*got, Some(not_after));
        }
        other => panic!("{other:?}"),
    }
    assert_mentions(
        &e,
        &[
            "expired on 2021-06-30T00:00:00Z",
            "CN=kafka-broker-1",
            "Renew",
        ],
    );
}

#[tokio::test]
async fn not_yet_valid_server_certificate_is_reported() {
    let s = setup();
    let now = OffsetDateTime::now_utc();
    let validity = (
        now + time::Duration::days(30),
        now + time::Duration::days(60),
    );
    let (cert, key) = s.ca.server(&["localhost"], Some(validity));
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();
    let e = handshake_error(
        &connector,
        "localhost",
        server_config(&cert, &key, TLS13, None),
    )
    .await;
    assert!(
        matches!(e, TlsError::CertificateNotYetValid { .. }),
        "{e:?}"
    );
    assert_mentions(&e, &["not valid until", "clock"]);
}

#[tokio::test]
async fn hostname_mismatch_names_both_sides_and_the_settings() {
    let s = setup();
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();
    let config = server_config(&s.server_cert, &s.server_key, TLS13, None);
    let e = handshake_error(&connector, "kafka-9.wrong.example", config).await;
    match &e {
        TlsError::HostnameMismatch {
            host,
            presented_names,
            ..
        } => {
            assert_eq!(host, "kafka-9.wrong.example");
            assert!(
                presented_names.iter().any(|n| n.contains("localhost")),
                "{presented_names:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_mentions(
        &e,
        &[
            "not valid for `kafka-9.wrong.example`",
            "localhost",
            "bootstrap_servers",
            "advertised.listeners",
            "ssl_endpoint_identification_algorithm",
        ],
    );
}

#[tokio::test]
async fn disabled_hostname_verification_still_verifies_the_chain() {
    let s = setup();
    let mut opts = options(&s.ca_path);
    opts.verify_hostname = false;
    let connector = TlsConnector::new(&opts).unwrap();
    assert_eq!(connector.warnings().len(), 1);
    let warning = &connector.warnings()[0];
    assert!(
        warning.contains("hostname verification is disabled"),
        "{warning}"
    );
    assert!(
        warning.contains("anyone with a certificate from a trusted CA can impersonate the broker"),
        "{warning}"
    );

    // The name does not match, and that is accepted.
    let config = server_config(&s.server_cert, &s.server_key, TLS13, None);
    let (info, _) = assert_connects(&connector, "kafka-9.wrong.example", config).await;
    assert_eq!(info.protocol_version, "TLSv1.3");

    // A chain from another CA is still rejected.
    let rogue = Ca::new("Rogue CA");
    let (cert, key) = rogue.server(&["kafka-9.wrong.example"], None);
    let e = handshake_error(
        &connector,
        "kafka-9.wrong.example",
        server_config(&cert, &key, TLS13, None),
    )
    .await;
    assert!(matches!(e, TlsError::UnknownIssuer { .. }), "{e:?}");

    // So is an expired certificate from the trusted CA.
    let (cert, key) = s.ca.server(
        &["localhost"],
        Some((
            rcgen::date_time_ymd(2020, 1, 1),
            rcgen::date_time_ymd(2021, 1, 1),
        )),
    );
    let e = handshake_error(
        &connector,
        "kafka-9.wrong.example",
        server_config(&cert, &key, TLS12, None),
    )
    .await;
    assert!(matches!(e, TlsError::CertificateExpired { .. }), "{e:?}");
}

#[tokio::test]
async fn server_certificate_without_server_auth_usage_is_rejected() {
    let s = setup();
    let key = KeyPair::generate().unwrap();
    let params = Ca::leaf_params(
        "not-a-server",
        &["localhost"],
        ExtendedKeyUsagePurpose::ClientAuth,
        None,
    );
    let cert = params.signed_by(&key, &s.ca.issuer()).unwrap().pem();
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();
    let e = handshake_error(
        &connector,
        "localhost",
        server_config(&cert, &key.serialize_pem(), TLS13, None),
    )
    .await;
    assert!(
        matches!(e, TlsError::ServerCertificateInvalid { .. }),
        "{e:?}"
    );
    assert_mentions(&e, &["serverAuth", "CN=not-a-server"]);
}

// ---------------------------------------------------------------------------------------------
// Peers that are not (modern) TLS
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn plaintext_listener_that_hangs_up_is_not_tls() {
    let s = setup();
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // What a Kafka PLAINTEXT listener does with a ClientHello: read a 4-byte size, find it
    // absurd (0x16030100...), and close.
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut size = [0u8; 4];
        tcp.read_exact(&mut size).await.unwrap();
        drop(tcp);
        u32::from_be_bytes(size)
    });
    let e = connect(&connector, "localhost", addr).await.unwrap_err();
    assert!(server.await.unwrap() > 100 * 1024 * 1024);
    assert!(matches!(e, TlsError::NotTls { .. }), "{e:?}");
    assert_mentions(&e, &["PLAINTEXT listener", "security_protocol"]);
}

#[tokio::test]
async fn peer_answering_with_non_tls_bytes_is_not_tls() {
    let s = setup();
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
        let _ = tokio::time::timeout(TIMEOUT, tcp.read(&mut buf)).await;
    });
    let e = connect(&connector, "localhost", addr).await.unwrap_err();
    server.abort();
    assert!(matches!(e, TlsError::NotTls { .. }), "{e:?}");
    assert_mentions(
        &e,
        &[
            "did not answer with TLS",
            "PLAINTEXT listener",
            "security_protocol",
        ],
    );
}

/// An OpenSSL server limited to TLS 1.1, as old brokers configured with
/// `ssl.enabled.protocols=TLSv1.1` are.
#[tokio::test]
async fn tls11_only_server_is_a_protocol_mismatch() {
    let s = setup();
    let cert = s.files.write("s11.pem", &s.server_cert);
    let key = s.files.write("s11.key", &s.server_key);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let accept = format!("127.0.0.1:{port}");
    let mut child = Command::new("openssl")
        .args([
            "s_server",
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-accept",
            &accept,
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
            "-naccept",
            "1",
            "-quiet",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let addr: SocketAddr = accept.parse().unwrap();
    let mut tcp = None;
    for _ in 0..100 {
        match TcpStream::connect(addr).await {
            Ok(t) => {
                tcp = Some(t);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let Some(tcp) = tcp else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("openssl s_server did not start");
    };
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();
    let broker = BrokerAddress::new("localhost", port);
    let e = tokio::time::timeout(TIMEOUT, connector.connect(&broker, tcp))
        .await
        .unwrap()
        .unwrap_err();
    let _ = child.kill();
    let _ = child.wait();
    assert!(matches!(e, TlsError::ProtocolMismatch { .. }), "{e:?}");
    assert_mentions(
        &e,
        &["protocol_version", "TLS 1.2", "ssl.enabled.protocols"],
    );
}

// ---------------------------------------------------------------------------------------------
// Client certificates (mTLS)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn mtls_required_without_client_certificate_tls13_surfaces_on_first_read() {
    let s = setup();
    let client_ca = Ca::new("Client CA");
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();
    assert!(!connector.has_client_certificate());
    let config = server_config(&s.server_cert, &s.server_key, TLS13, Some(&client_ca.pem));

    let (addr, server) = serve_once(config).await;
    // With TLS 1.3 the client finishes its side before the server checks for a certificate.
    let (mut stream, info) = connect(&connector, "localhost", addr)
        .await
        .expect("TLS 1.3 handshake completes on the client side");
    assert!(info.client_certificate_requested);
    let err = read_hello(&mut stream).await.unwrap_err();
    let broker = BrokerAddress::new("localhost", addr.port());
    let e = classify_io_error(&broker, &err, false).expect("a TLS error");
    assert!(
        matches!(e, TlsError::ClientCertificateRequired { .. }),
        "{e:?}"
    );
    assert_mentions(
        &e,
        &[
            "requires mTLS",
            "ssl_certificate_location",
            "ssl_key_location",
            "localhost:",
        ],
    );
    assert!(server.await.unwrap().is_err());
}

#[tokio::test]
async fn mtls_required_without_client_certificate_tls12_fails_the_handshake() {
    let s = setup();
    let client_ca = Ca::new("Client CA");
    let connector = TlsConnector::new(&options(&s.ca_path)).unwrap();
    let config = server_config(&s.server_cert, &s.server_key, TLS12, Some(&client_ca.pem));
    let (addr, _server) = serve_once(config).await;
    let e = connect(&connector, "localhost", addr).await.unwrap_err();
    assert!(
        matches!(e, TlsError::ClientCertificateRequired { .. }),
        "{e:?}"
    );
    assert_mentions(&e, &["requires mTLS", "ssl_certificate_location"]);
}

/// Generates a key with openssl in one format, certifies it with the client CA, and returns
/// (cert path, key path).
fn openssl_client(
    files: &Files,
    client_ca: &Ca,
    name: &str,
    password: Option<&str>,
) -> (PathBuf, PathBuf) {
    let key = files.path(&format!("{name}.key"));
    let k = key.to_str().unwrap();
    match name {
        "pkcs8-rsa" => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            k,
        ]),
        "pkcs8-p384" => openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            k,
        ]),
        "pkcs8-ed25519" => openssl(&["genpkey", "-algorithm", "ED25519", "-out", k]),
        "pkcs1-rsa" => openssl(&["genrsa", "-traditional", "-out", k, "2048"]),
        "sec1-p256" => openssl(&[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            k,
        ]),
        "encrypted-pkcs8-rsa" | "encrypted-pkcs8-p256" => {
            let plain = files.path(&format!("{name}.plain.key"));
            let p = plain.to_str().unwrap();
            if name.ends_with("rsa") {
                openssl(&["genrsa", "-traditional", "-out", p, "2048"]);
            } else {
                openssl(&[
                    "ecparam",
                    "-genkey",
                    "-name",
                    "prime256v1",
                    "-noout",
                    "-out",
                    p,
                ]);
            }
            let pass = format!("pass:{}", password.unwrap());
            openssl(&[
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-256-cbc",
                "-in",
                p,
                "-out",
                k,
                "-passout",
                &pass,
            ]);
            std::fs::remove_file(&plain).unwrap();
        }
        other => panic!("{other}"),
    }
    let public = public_key_of(&key, password);
    let cert = files.write(
        &format!("{name}.crt"),
        client_ca.client_for(&format!("client-{name}"), &public),
    );
    (cert, key)
}

#[tokio::test]
async fn mtls_works_with_every_key_format_openssl_writes() {
    let s = setup();
    let client_ca = Ca::new("Client CA");
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("pkcs8-rsa", None, "-----BEGIN PRIVATE KEY-----"),
        ("pkcs8-p384", None, "-----BEGIN PRIVATE KEY-----"),
        ("pkcs8-ed25519", None, "-----BEGIN PRIVATE KEY-----"),
        ("pkcs1-rsa", None, "-----BEGIN RSA PRIVATE KEY-----"),
        ("sec1-p256", None, "-----BEGIN EC PRIVATE KEY-----"),
        (
            "encrypted-pkcs8-rsa",
            Some(PASSWORD),
            "-----BEGIN ENCRYPTED PRIVATE KEY-----",
        ),
        (
            "encrypted-pkcs8-p256",
            Some(PASSWORD),
            "-----BEGIN ENCRYPTED PRIVATE KEY-----",
        ),
    ];
    for (i, (name, password, marker)) in cases.iter().enumerate() {
        let (cert, key) = openssl_client(&s.files, &client_ca, name, *password);
        let key_text = std::fs::read_to_string(&key).unwrap();
        assert!(key_text.starts_with(marker), "{name}: {key_text:.40}");
        let connector =
            TlsConnector::new(&mtls_options(&s.ca_path, &cert, &key, *password)).unwrap();
        assert!(connector.has_client_certificate());
        assert!(
            connector.warnings().is_empty(),
            "{name}: {:?}",
            connector.warnings()
        );
        // Alternate versions: TLS 1.2 signs with the key in a different message.
        let versions = if i % 2 == 0 { TLS13 } else { TLS12 };
        let config = server_config(
            &s.server_cert,
            &s.server_key,
            versions,
            Some(&client_ca.pem),
        );
        let (info, client_subject) = assert_connects(&connector, "localhost", config).await;
        assert!(info.client_certificate_requested, "{name}");
        assert_eq!(
            client_subject.as_deref(),
            Some(format!("CN=client-{name}").as_str()),
            "{name}: the server saw our certificate"
        );
    }
}

#[tokio::test]
async fn client_certificate_from_a_ca_the_broker_does_not_trust_is_rejected() {
    let s = setup();
    let broker_trusts = Ca::new("Client CA");
    let stranger = Ca::new("Stranger CA");
    let (cert, key) = stranger.client("client-x");
    let cert_path = s.files.write("x.crt", cert);
    let key_path = s.files.write("x.key", key);
    let connector =
        TlsConnector::new(&mtls_options(&s.ca_path, &cert_path, &key_path, None)).unwrap();
    for versions in [TLS13, TLS12] {
        let config = server_config(
            &s.server_cert,
            &s.server_key,
            versions,
            Some(&broker_trusts.pem),
        );
        let e = handshake_error(&connector, "localhost", config).await;
        match &e {
            TlsError::ClientCertificateRejected { alert, .. } => {
                assert!(
                    ["unknown_ca", "bad_certificate"].contains(&alert.as_str()),
                    "{alert}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_mentions(&e, &["rejected the client certificate", "ssl.truststore"]);
        assert_mentions(&e, &[cert_path.to_str().unwrap(), "CN=client-x"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration errors
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_key_password_is_its_own_error() {
    let s = setup();
    let client_ca = Ca::new("Client CA");
    let (cert, key) = openssl_client(&s.files, &client_ca, "encrypted-pkcs8-p256", Some(PASSWORD));
    let wrong = "Tr0ub4dor&3-not-it";
    let e = TlsConnector::new(&mtls_options(&s.ca_path, &cert, &key, Some(wrong))).unwrap_err();
    assert!(matches!(e, TlsError::WrongKeyPassword { .. }), "{e:?}");
    assert_mentions(
        &e,
        &["ssl_key_password does not decrypt", key.to_str().unwrap()],
    );
    assert!(!format!("{e} {e:?}").contains(wrong));

    let e = TlsConnector::new(&mtls_options(&s.ca_path, &cert, &key, None)).unwrap_err();
    assert!(matches!(e, TlsError::KeyPasswordRequired { .. }), "{e:?}");
    assert_mentions(
        &e,
        &["encrypted", "ssl_key_password", key.to_str().unwrap()],
    );
}

#[test]
fn legacy_and_unsupported_key_encryption_say_how_to_convert() {
    let s = setup();
    let client_ca = Ca::new("Client CA");
    let (cert, plain) = openssl_client(&s.files, &client_ca, "pkcs1-rsa", None);
    let pass = format!("pass:{PASSWORD}");

    let legacy = s.files.path("legacy.key");
    openssl(&[
        "rsa",
        "-in",
        plain.to_str().unwrap(),
        "-aes256",
        "-traditional",
        "-passout",
        &pass,
        "-out",
        legacy.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read_to_string(&legacy)
            .unwrap()
            .contains("Proc-Type: 4,ENCRYPTED")
    );
    let e =
        TlsConnector::new(&mtls_options(&s.ca_path, &cert, &legacy, Some(PASSWORD))).unwrap_err();
    assert!(matches!(e, TlsError::LegacyEncryptedKey { .. }), "{e:?}");
    assert_mentions(
        &e,
        &[
            "Proc-Type: 4,ENCRYPTED",
            "openssl pkcs8 -topk8 -v2 aes-256-cbc",
            legacy.to_str().unwrap(),
        ],
    );

    let des = s.files.path("3des.key");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v1",
        "PBE-SHA1-3DES",
        "-in",
        plain.to_str().unwrap(),
        "-passout",
        &pass,
        "-out",
        des.to_str().unwrap(),
    ]);
    let e = TlsConnector::new(&mtls_options(&s.ca_path, &cert, &des, Some(PASSWORD))).unwrap_err();
    assert!(
        matches!(e, TlsError::UnsupportedKeyEncryption { .. }),
        "{e:?}"
    );
    assert_mentions(&e, &["pbeWithSHAAnd3-KeyTripleDES-CBC", "-v2 aes-256-cbc"]);
}

#[test]
fn unsupported_key_types_are_named() {
    let s = setup();
    let client_ca = Ca::new("Client CA");
    let (cert, _) = client_ca.client("client");
    let cert = s.files.write("c.crt", cert);
    for (name, args, expect) in [
        (
            "p521",
            vec![
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-521",
            ],
            "an ECDSA key on P-521",
        ),
        (
            "rsa1024",
            vec![
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:1024",
            ],
            "an RSA key of 1024 bits",
        ),
        (
            "ed448",
            vec!["genpkey", "-algorithm", "ED448"],
            "an Ed448 key",
        ),
    ] {
        let key = s.files.path(&format!("{name}.key"));
        let mut args = args.clone();
        args.extend(["-out", key.to_str().unwrap()]);
        openssl(&args);
        let e = TlsConnector::new(&mtls_options(&s.ca_path, &cert, &key, None)).unwrap_err();
        assert!(
            matches!(e, TlsError::UnsupportedKeyType { .. }),
            "{name}: {e:?}"
        );
        assert_mentions(&e, &[expect, "ssl_key_location", "P-256"]);
    }
}

#[test]
fn missing_key_file_names_the_setting_and_path() {
    let s = setup();
    let (cert, _) = Ca::new("Client CA").client("client");
    let cert = s.files.write("c.crt", cert);
    let missing = s.files.path("no-such.key");
    let e = TlsConnector::new(&mtls_options(&s.ca_path, &cert, &missing, None)).unwrap_err();
    assert!(
        matches!(
            e,
            TlsError::FileUnreadable {
                key: "ssl_key_location",
                ..
            }
        ),
        "{e:?}"
    );
    assert_mentions(
        &e,
        &[
            "ssl_key_location",
            missing.to_str().unwrap(),
            "does not exist",
        ],
    );
}

#[test]
fn key_file_without_a_key_says_what_it_holds() {
    let s = setup();
    let (cert, _) = Ca::new("Client CA").client("client");
    let cert = s.files.write("c.crt", cert);
    let e = TlsConnector::new(&mtls_options(&s.ca_path, &cert, &cert, None)).unwrap_err();
    assert!(matches!(e, TlsError::NoPrivateKey { .. }), "{e:?}");
    assert_mentions(
        &e,
        &[
            "contains no private key",
            "it holds only CERTIFICATE",
            "ssl_key_location",
        ],
    );
}

#[test]
fn certificate_and_key_that_do_not_match_are_detected() {
    let s = setup();
    let client_ca = Ca::new("Client CA");
    let (cert, _) = client_ca.client("client-a");
    let (_, other_key) = client_ca.client("client-b");
    let cert_path = s.files.write("a.crt", &cert);
    let key_path = s.files.write("b.key", other_key);
    let e = TlsConnector::new(&mtls_options(&s.ca_path, &cert_path, &key_path, None)).unwrap_err();
    assert!(
        matches!(e, TlsError::KeyCertificateMismatch { .. }),
        "{e:?}"
    );
    assert_mentions(
        &e,
        &[
            "does not belong to",
            "ssl_key_location",
            "ssl_certificate_location",
            "CN=client-a",
            cert_path.to_str().unwrap(),
            key_path.to_str().unwrap(),
        ],
    );

    // The right key, but the chain file lists the CA first: say so.
    let (cert, key) = client_ca.client("client-c");
    let cert_path = s
        .files
        .write("c-chain.crt", format!("{}{cert}", client_ca.pem));
    let key_path = s.files.write("c.key", key);
    let e = TlsConnector::new(&mtls_options(&s.ca_path, &cert_path, &key_path, None)).unwrap_err();
    assert!(
        matches!(e, TlsError::KeyCertificateMismatch { .. }),
        "{e:?}"
    );
    assert_mentions(&e, &["certificate #2", "must come first"]);
}

#[test]
fn ca_file_without_certificates_is_an_error() {
    let s = setup();
    let key_only = s.files.write(
        "key-as-ca.pem",
        KeyPair::generate().unwrap().serialize_pem(),
    );
    let e = TlsConnector::new(&options(&key_only)).unwrap_err();
    assert!(
        matches!(
            e,
            TlsError::NoCertificates {
                key: "ssl_ca_location",
                ..
            }
        ),
        "{e:?}"
    );
    assert_mentions(
        &e,
        &[
            "ssl_ca_location",
            key_only.to_str().unwrap(),
            "contains no certificate",
            "PRIVATE KEY",
        ],
    );

    let empty = s.files.write("empty.pem", "");
    let e = TlsConnector::new(&options(&empty)).unwrap_err();
    assert!(matches!(e, TlsError::NoCertificates { .. }), "{e:?}");
    assert_mentions(&e, &["the file is empty", empty.to_str().unwrap()]);

    let der = s.files.write(
        "ca.der",
        CertificateDer::from_pem_slice(s.ca.pem.as_bytes())
            .unwrap()
            .as_ref(),
    );
    let e = TlsConnector::new(&options(&der)).unwrap_err();
    assert_mentions(&e, &["binary", "DER"]);
}

#[test]
fn secret_password_never_appears_in_errors_warnings_or_debug() {
    let s = setup();
    let client_ca = Ca::new("Client CA");
    let (enc_cert, enc_key) =
        openssl_client(&s.files, &client_ca, "encrypted-pkcs8-rsa", Some(PASSWORD));
    let (plain_cert, plain_key) = client_ca.client("plain");
    let plain_cert = s.files.write("plain.crt", plain_cert);
    let plain_key = s.files.write("plain.key", plain_key);
    let secret = "S3cr3t!-must-never-leak";

    let mut seen = Vec::new();
    // Wrong password for an encrypted key.
    seen.push(
        TlsConnector::new(&mtls_options(&s.ca_path, &enc_cert, &enc_key, Some(secret)))
            .unwrap_err(),
    );
    // Right key file but mismatched certificate, with a password set.
    seen.push(
        TlsConnector::new(&mtls_options(
            &s.ca_path,
            &plain_cert,
            &enc_key,
            Some(PASSWORD),
        ))
        .unwrap_err(),
    );
    // Missing key file with a password set.
    seen.push(
        TlsConnector::new(&mtls_options(
            &s.ca_path,
            &plain_cert,
            &s.files.path("nope"),
            Some(secret),
        ))
        .unwrap_err(),
    );
    for e in &seen {
        let text = format!("{e} | {e:?} | {:?}", std::error::Error::source(e));
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
    }
    assert!(
        matches!(seen[1], TlsError::KeyCertificateMismatch { .. }),
        "{:?}",
        seen[1]
    );

    // A password for an unencrypted key is a warning, which does not show it either.
    let opts = mtls_options(&s.ca_path, &plain_cert, &plain_key, Some(secret));
    let connector = TlsConnector::new(&opts).unwrap();
    assert_eq!(connector.warnings().len(), 1, "{:?}", connector.warnings());
    assert!(connector.warnings()[0].contains("not encrypted"));
    let all = format!("{:?} {:?} {:?}", connector.warnings(), connector, opts);
    assert!(!all.contains(secret), "{all}");

    // The crate error wraps TlsError transparently, and does not leak either.
    // A wrong key password is found before connecting: it is a configuration error.
    let wrapped: kafka_client::Error = seen.remove(0).into();
    assert_eq!(wrapped.kind(), kafka_client::ErrorKind::Config);
    assert!(!format!("{wrapped} {wrapped:?}").contains(secret));
}

#[test]
fn warns_about_a_client_certificate_near_expiry_and_a_key_in_the_ca_file() {
    let s = setup();
    let client_ca = Ca::new("Client CA");
    let key = KeyPair::generate().unwrap();
    let now = OffsetDateTime::now_utc();
    let params = Ca::leaf_params(
        "client-soon",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
        Some((
            now - time::Duration::days(1),
            now + time::Duration::days(10),
        )),
    );
    let cert = params.signed_by(&key, &client_ca.issuer()).unwrap().pem();
    let cert_path = s.files.write("soon.crt", cert);
    let key_path = s.files.write("soon.key", key.serialize_pem());
    let ca_with_key = s.files.write(
        "ca-with-key.pem",
        format!(
            "{}{}",
            s.ca.pem,
            KeyPair::generate().unwrap().serialize_pem()
        ),
    );
    let connector =
        TlsConnector::new(&mtls_options(&ca_with_key, &cert_path, &key_path, None)).unwrap();
    let warnings = connector.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("expires on") && w.contains("CN=client-soon")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("also holds a private key") && w.contains("ca-with-key.pem")),
        "{warnings:?}"
    );
}

//! SASL GSSAPI through the real connection code: `KafkaClient::connect` against a minimal
//! Kafka broker (ApiVersions, SaslHandshake, SaslAuthenticate, Metadata) whose SASL side is
//! scripts/gssapi_acceptor.py, with tickets from a real KDC (scripts/kdc.py).
#![cfg(feature = "gssapi")]

mod gssapi_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BytesMut};
use gssapi_support::{Acceptor, Realm};
use kafka_client::sasl::Gssapi;
use kafka_client::{BrokerAddress, ClientConfig, KafkaClient, Security, SecurityProtocol};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// What the fake broker saw: the principal of each authenticated connection, and refusals.
#[derive(Default, Debug)]
struct Seen {
    principals: Vec<String>,
    refusals: Vec<String>,
}

/// Starts a broker on 127.0.0.1 that accepts GSSAPI with `service_keytab`; it serves every
/// connection on its own thread until the client closes it.
fn fake_broker(realm: &'static Realm, service_keytab: PathBuf) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let seen_by_server = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let seen = Arc::clone(&seen_by_server);
            let keytab = service_keytab.clone();
            std::thread::spawn(move || serve(stream, realm, &keytab, port, &seen));
        }
    });
    (port, seen)
}

fn serve(mut stream: TcpStream, realm: &Realm, keytab: &Path, port: u16, seen: &Mutex<Seen>) {
    let mut acceptor = Acceptor::with_keytab(realm, keytab);
    loop {
        let mut size = [0u8; 4];
        if stream.read_exact(&mut size).is_err() {
            return;
        }
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut frame).unwrap();
        let mut buf = bytes::Bytes::from(frame);
        let key = ApiKey::try_from(i16::from_be_bytes([buf[0], buf[1]])).unwrap();
        let version = i16::from_be_bytes([buf[2], buf[3]]);
        let header = RequestHeader::decode(&mut buf, key.request_header_version(version)).unwrap();
        let mut body = BytesMut::new();
        match key {
            ApiKey::ApiVersions => {
                let api_keys = [
                    ApiKey::ApiVersions,
                    ApiKey::SaslHandshake,
                    ApiKey::SaslAuthenticate,
                    ApiKey::Metadata,
                ]
                .into_iter()
                .map(|k| {
                    let range = k.valid_versions();
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_min_version(range.min)
                        .with_max_version(range.max)
                })
                .collect();
                ApiVersionsResponse::default()
                    .with_api_keys(api_keys)
                    .encode(&mut body, version)
                    .unwrap();
            }
            ApiKey::SaslHandshake => {
                let request = SaslHandshakeRequest::decode(&mut buf, version).unwrap();
                assert_eq!(request.mechanism.as_str(), "GSSAPI");
                SaslHandshakeResponse::default()
                    .with_mechanisms(vec![StrBytes::from_static_str("GSSAPI")])
                    .encode(&mut body, version)
                    .unwrap();
            }
            ApiKey::SaslAuthenticate => {
                let request = SaslAuthenticateRequest::decode(&mut buf, version).unwrap();
                let response = match acceptor.step(&request.auth_bytes) {
                    Ok(step) => {
                        if let Some(principal) = step.principal {
                            seen.lock().unwrap().principals.push(principal);
                        }
                        SaslAuthenticateResponse::default().with_auth_bytes(step.response.into())
                    }
                    Err(why) => {
                        seen.lock().unwrap().refusals.push(why.clone());
                        // What a Kafka broker answers: SASL_AUTHENTICATION_FAILED (58).
                        SaslAuthenticateResponse::default()
                            .with_error_code(58)
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "Authentication failed during authentication due to invalid \
                                 credentials with SASL mechanism GSSAPI: {why}"
                            ))))
                    }
                };
                response.encode(&mut body, version).unwrap();
            }
            ApiKey::Metadata => {
                MetadataResponse::default()
                    .with_brokers(vec![
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(1))
                            .with_host(StrBytes::from_static_str("localhost"))
                            .with_port(i32::from(port)),
                    ])
                    .with_cluster_id(Some(StrBytes::from_static_str("gssapi-test")))
                    .with_controller_id(BrokerId(1))
                    .encode(&mut body, version)
                    .unwrap();
            }
            other => panic!("the fake broker does not serve {other:?}"),
        }
        let mut out = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, key.response_header_version(version))
            .unwrap();
        out.extend_from_slice(&body);
        let mut framed = (out.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(out.chunk());
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
}

fn client_config(port: u16, mechanism: Gssapi) -> ClientConfig {
    let mut config = ClientConfig::new(vec![BrokerAddress::new("localhost", port)]);
    config.security = Security {
        protocol: SecurityProtocol::SaslPlaintext,
        sasl: Some(Arc::new(mechanism)),
        ..Security::default()
    };
    config.max_retries = 0;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_client_authenticates_with_gssapi() {
    let realm = realm_or_skip!();
    let (port, seen) = fake_broker(realm, realm.path("service_keytab"));
    let mechanism = Gssapi::new(realm.config()).expect("login");
    let client = KafkaClient::connect(client_config(port, mechanism))
        .await
        .expect("connected with GSSAPI");
    drop(client);
    let seen = seen.lock().unwrap();
    assert!(seen.refusals.is_empty(), "{seen:?}");
    assert!(!seen.principals.is_empty(), "{seen:?}");
    assert!(
        seen.principals
            .iter()
            .all(|p| *p == realm.get("client_principal")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_with_the_wrong_key_rejects_the_client() {
    let realm = realm_or_skip!();
    // The broker holds a keytab without kafka/localhost's key: it cannot read the ticket.
    let (port, seen) = fake_broker(realm, realm.path("other_keytab"));
    let mechanism = Gssapi::new(realm.config()).expect("login");
    let err = KafkaClient::connect(client_config(port, mechanism))
        .await
        .expect_err("the broker refuses");
    let text = err.to_string();
    eprintln!("rejected: {text}");
    for needle in [
        "GSSAPI",
        "the broker said",
        "invalid credentials",
        "keytab holds the current key",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    assert_eq!(seen.lock().unwrap().refusals.len(), 1);
}

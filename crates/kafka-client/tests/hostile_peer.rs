//! A peer that misbehaves: garbage, wrong correlation ids, absurd length prefixes, silence,
//! closed ports. No real broker misbehaves on demand, so a tiny TCP server inside the test
//! plays the broken peer. Every case must end in a clear error within the configured timeout,
//! without a panic and without a large allocation (checked by a counting allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use kafka_client::{ClientConfig, Error, ErrorKind, KafkaClient};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, MetadataResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Records the largest single allocation made by this test binary.
struct Counting;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The client never needs more than a few MiB at once for these peers.
const ALLOCATION_LIMIT: usize = 8 * 1024 * 1024;

fn config(addr: std::net::SocketAddr, timeout: Duration) -> ClientConfig {
    let mut c = ClientConfig::new(vec![addr.to_string().parse().unwrap()]);
    c.connect_timeout = timeout;
    c.request_timeout = timeout;
    c.max_retries = 0;
    c
}

/// Serves one connection with `behave`, which receives the socket after the client's first
/// request has been read.
async fn peer<F, Fut>(behave: F) -> std::net::SocketAddr
where
    F: FnOnce(TcpStream, i32) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let correlation_id = read_request(&mut sock).await;
        behave(sock, correlation_id).await;
    });
    addr
}

/// Reads one request frame and returns its correlation id.
async fn read_request(sock: &mut TcpStream) -> i32 {
    let len = sock.read_u32().await.unwrap() as usize;
    let mut buf = vec![0; len];
    sock.read_exact(&mut buf).await.unwrap();
    i32::from_be_bytes(buf[4..8].try_into().unwrap())
}

fn api_versions_frame(correlation_id: i32) -> BytesMut {
    let keys = [
        (ApiKey::ApiVersions, 0, 3),
        (ApiKey::Metadata, 0, 12),
        (ApiKey::Fetch, 4, 12),
    ];
    let body = ApiVersionsResponse::default().with_api_keys(
        keys.iter()
            .map(|(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    );
    frame(correlation_id, 0, |b| body.encode(b, 3).unwrap())
}

fn frame(correlation_id: i32, header_version: i16, body: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut payload = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut payload, header_version)
        .unwrap();
    body(&mut payload);
    let mut out = BytesMut::new();
    out.put_u32(payload.len() as u32);
    out.extend_from_slice(&payload);
    out
}

async fn connect_err(addr: std::net::SocketAddr, timeout: Duration) -> (Error, Duration) {
    let start = Instant::now();
    let result = KafkaClient::connect(config(addr, timeout)).await;
    let took = start.elapsed();
    (
        result.expect_err("connecting to a broken peer must fail"),
        took,
    )
}

fn assert_no_large_allocation() {
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < ALLOCATION_LIMIT,
        "largest allocation was {largest} bytes"
    );
}

#[tokio::test]
async fn a_two_gib_length_prefix_is_refused_without_allocating_it() {
    let addr = peer(|mut s, _| async move {
        s.write_all(&[0x80, 0, 0, 0]).await.unwrap();
        s.write_all(&[0u8; 64]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let (err, took) = connect_err(addr, Duration::from_secs(3)).await;
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    let text = err.to_string();
    assert!(text.contains("2147483648-byte response"), "{text}");
    assert!(text.contains("max_response_bytes"), "{text}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_no_large_allocation();
}

#[tokio::test]
async fn a_large_announced_frame_that_never_arrives_times_out_with_bounded_memory() {
    // 90 MiB is under the default bound, so the client must start reading it, but it may only
    // allocate as the bytes arrive.
    let addr = peer(|mut s, _| async move {
        s.write_all(&(90u32 * 1024 * 1024).to_be_bytes())
            .await
            .unwrap();
        s.write_all(&[0u8; 1000]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let (err, took) = connect_err(addr, Duration::from_millis(800)).await;
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(took < Duration::from_millis(1800), "took {took:?}");
    assert_no_large_allocation();
}

#[tokio::test]
async fn http_garbage_is_a_protocol_error() {
    let addr = peer(|mut s, _| async move {
        s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let (err, _) = connect_err(addr, Duration::from_secs(3)).await;
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("security_protocol"), "{err}");
    assert_no_large_allocation();
}

#[tokio::test]
async fn a_well_framed_but_undecodable_body_is_a_protocol_error() {
    let addr = peer(|mut s, id| async move {
        let f = frame(id, 0, |b| b.extend_from_slice(&[0xff; 7]));
        s.write_all(&f).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let (err, _) = connect_err(addr, Duration::from_secs(3)).await;
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("ApiVersions"), "{err}");
}

#[tokio::test]
async fn a_wrong_correlation_id_during_setup_is_refused() {
    let addr = peer(|mut s, id| async move {
        s.write_all(&api_versions_frame(id + 1000)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let (err, _) = connect_err(addr, Duration::from_secs(3)).await;
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{text}");
    assert!(text.contains("correlation id"), "{text}");
}

#[tokio::test]
async fn a_wrong_correlation_id_on_a_shared_connection_closes_it() {
    // Answers ApiVersions correctly, then answers Metadata with an id nobody asked for.
    let addr = peer(|mut s, id| async move {
        s.write_all(&api_versions_frame(id)).await.unwrap();
        let metadata_id = read_request(&mut s).await;
        let f = frame(metadata_id + 7, 1, |b| {
            MetadataResponse::default().encode(b, 12).unwrap()
        });
        s.write_all(&f).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let (err, took) = connect_err(addr, Duration::from_secs(3)).await;
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{text}");
    assert!(text.contains("matches no request in flight"), "{text}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn a_peer_that_accepts_and_never_answers_times_out_on_time() {
    let addr = peer(|s, _| async move {
        let _keep_open = s;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let timeout = Duration::from_millis(700);
    let (err, took) = connect_err(addr, timeout).await;
    match &err {
        Error::Timeout { what, .. } => assert!(what.contains("ApiVersions"), "{err}"),
        other => panic!("expected a timeout, got {other}"),
    }
    assert!(err.to_string().contains("Kafka listener"), "{err}");
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(700),
        "took {took:?}"
    );
}

#[tokio::test]
async fn a_peer_that_hangs_up_is_a_disconnect_with_a_tls_hint() {
    let addr = peer(|s, _| async move { drop(s) }).await;
    let (err, _) = connect_err(addr, Duration::from_secs(3)).await;
    assert_eq!(err.kind(), ErrorKind::Network, "{err}");
    let text = err.to_string();
    assert!(text.contains("before answering ApiVersions"), "{text}");
    assert!(text.contains("SSL"), "{text}");
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error_naming_the_broker() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (err, took) = connect_err(addr, Duration::from_secs(3)).await;
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(err.is_retriable());
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[tokio::test]
async fn an_unroutable_address_fails_within_the_connect_timeout() {
    // 192.0.2.0/24 is TEST-NET-1: never routed. Depending on the host's network this either
    // fails at once (no route) or hangs until our timeout; both must end in time.
    let addr: std::net::SocketAddr = "192.0.2.1:9092".parse().unwrap();
    let timeout = Duration::from_millis(800);
    let (err, took) = connect_err(addr, timeout).await;
    assert_eq!(err.kind(), ErrorKind::Network, "{err}");
    assert!(took < timeout + Duration::from_millis(700), "took {took:?}");
}

#[tokio::test]
async fn a_crafted_array_count_is_an_error_not_an_abort() {
    // A well-framed ApiVersions answer whose api_keys array claims 2^31-1 entries (read as
    // v0) or 126 entries (read as v3, where 0x7f is a one-byte varint). Unpatched
    // kafka-protocol would try to allocate tens of GiB for the former and abort.
    let addr = peer(|mut s, id| async move {
        let f = frame(id, 0, |b| {
            b.extend_from_slice(&0i16.to_be_bytes()); // error_code
            b.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]); // array count
            b.extend_from_slice(&[0u8; 16]);
        });
        s.write_all(&f).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let (err, _) = connect_err(addr, Duration::from_secs(3)).await;
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("exceeds"), "{err}");
    assert_no_large_allocation();
}

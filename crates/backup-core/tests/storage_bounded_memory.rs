//! `Storage::get_bounded` holds no more than its limit, whatever the storage claims or sends.
//!
//! A counting allocator records the peak of live heap bytes, so "bounded" is measured, not
//! assumed. Honest objects come from moto (started by `scripts/test-env.sh`). No real server
//! lies about sizes on demand, so, as in kafka-client's `hostile_peer.rs`, a tiny HTTP server
//! inside the test plays an S3 endpoint that declares a small `Content-Length` and then streams
//! a chunked body far larger than the limit. One test function, so that no other test of this
//! binary allocates while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backup_core::storage::{
    S3Config, S3Credentials, Storage, StorageConfig, StorageError, StorageOptions,
};
use bytes::Bytes;
use kafka_client::Secret;
use test_support::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Tracks the live heap bytes of this test binary and their peak.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as if old and new blocks lived at once, the worst case of a move.
        grew(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1024 * 1024;
/// What a read may hold beyond its limit: the HTTP client's buffers, one chunk, bookkeeping.
const SLACK: usize = 2 * MIB;

/// Runs `f` and returns its result with the peak of live heap bytes above those live at the
/// start.
async fn peak_during<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f.await;
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn s3(endpoint: &str, bucket: &str, prefix: &str) -> Storage {
    let config = S3Config {
        region: Some("us-east-1".to_owned()),
        prefix: prefix.to_owned(),
        endpoint: Some(endpoint.to_owned()),
        force_path_style: true,
        allow_http: true,
        credentials: Some(S3Credentials {
            access_key_id: get("/s3/access_key_id"),
            secret_access_key: Secret::new(get("/s3/secret_access_key")),
            session_token: None,
        }),
        ..S3Config::new(bucket)
    };
    let options = StorageOptions {
        max_retries: 0,
        ..StorageOptions::default()
    };
    Storage::open_with(&StorageConfig::S3(config), &options, &|_| None).unwrap()
}

/// An "S3" that answers every request with 200, `Content-Length: declared`, and then, if
/// `chunked`, a chunked body of `sent` bytes (Transfer-Encoding wins over Content-Length in
/// HTTP/1.1), else nothing more. Returns its endpoint and the count of body bytes it wrote.
async fn lying_endpoint(declared: u64, sent: usize, chunked: bool) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&written);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                // The request head (a GET has no body).
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if sock.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let mut answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\nETag: \"lie\"\r\n\
                     Last-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
                );
                if chunked {
                    answer.push_str("Transfer-Encoding: chunked\r\n");
                }
                answer.push_str("\r\n");
                if sock.write_all(answer.as_bytes()).await.is_err() || !chunked {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = sent;
                while left > 0 {
                    let n = left.min(chunk.len());
                    let frame = [format!("{n:x}\r\n").as_bytes(), &chunk[..n], b"\r\n"].concat();
                    if sock.write_all(&frame).await.is_err() {
                        return; // The client hung up: what it should do.
                    }
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    left -= n;
                }
                let _ = sock.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    (endpoint, written)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_reads_hold_at_most_their_limit() {
    // Warm up: the first request builds the client, its TLS config and connection pool.
    let prefix = format!("tests/{}", test_support::unique_topic("bounded-mem"));
    let moto = s3(&get("/s3/endpoint"), &get("/s3/bucket"), &prefix);
    moto.put_new("small", Bytes::from_static(b"x"))
        .await
        .unwrap();
    moto.get_bounded("small", 10).await.unwrap();

    // 1. An honest 8 MiB object read with a limit of exactly its size: one buffer of its size.
    const HONEST: usize = 8 * MIB;
    let data: Bytes = (0..HONEST).map(|i| (i % 251) as u8).collect();
    moto.put_new("honest", data.clone()).await.unwrap();
    let (read, peak) = peak_during(moto.get_bounded("honest", HONEST as u64)).await;
    assert_eq!(read.unwrap(), data);
    eprintln!(
        "honest 8 MiB object: peak {:.1} MiB",
        peak as f64 / MIB as f64
    );
    assert!(
        peak <= HONEST + SLACK,
        "peak {peak} for an {HONEST}-byte object"
    );
    drop(data);

    // 2. A declared size above the limit: refused before the body is read.
    let (read, peak) = peak_during(moto.get_bounded("honest", MIB as u64)).await;
    assert!(
        matches!(read, Err(StorageError::TooLarge { claimed: Some(s), .. }) if s == HONEST as u64)
    );
    assert!(peak <= SLACK, "peak {peak} for a refused read");

    // 3. An endpoint that declares 10 bytes and streams 256 MiB: stopped once past the limit.
    const LIMIT: usize = 4 * MIB;
    const SENT: usize = 256 * MIB;
    let (endpoint, written) = lying_endpoint(10, SENT, true).await;
    let liar = s3(&endpoint, "kb-liar", "p");
    let t0 = Instant::now();
    let (read, peak) = peak_during(liar.get_bounded("seg", LIMIT as u64)).await;
    let err = read.unwrap_err();
    match &err {
        StorageError::TooLarge {
            key,
            limit,
            claimed,
            ..
        } => {
            assert_eq!(
                (key.as_str(), *limit, *claimed),
                ("seg", LIMIT as u64, None)
            );
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("more than {LIMIT} bytes arrived")),
        "{err}"
    );
    eprintln!(
        "lying endpoint: refused after {:?}, peak {:.1} MiB, {:.1} MiB sent before the client \
         hung up",
        t0.elapsed(),
        peak as f64 / MIB as f64,
        written.load(Ordering::Relaxed) as f64 / MIB as f64
    );
    assert!(peak <= LIMIT + SLACK, "peak {peak} with a limit of {LIMIT}");
    // The client stopped reading long before the end (the socket buffers hold a few MiB).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        written.load(Ordering::Relaxed) < (SENT / 4) as u64,
        "the whole body was read: {}",
        written.load(Ordering::Relaxed)
    );

    // 4. The same liar, with a limit above what it sends: refused all the same (the body is
    // longer than declared), and only the declared 10 bytes were kept meanwhile.
    let (endpoint, _) = lying_endpoint(10, 3 * MIB, true).await;
    let liar = s3(&endpoint, "kb-liar", "p");
    let (read, peak) = peak_during(liar.get_bounded("seg", LIMIT as u64)).await;
    let err = read.unwrap_err();
    assert!(
        matches!(&err, StorageError::Other { detail, retriable: false, .. }
            if detail.contains("declared 10 bytes for this object but sent 3145728")),
        "{err:?}"
    );
    assert!(peak <= SLACK, "peak {peak} for a 10-byte declaration");

    // A body shorter than declared is refused too.
    let (endpoint, _) = lying_endpoint(MIB as u64, 10, true).await;
    let liar = s3(&endpoint, "kb-liar", "p");
    let err = liar.get_bounded("seg", LIMIT as u64).await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Other { detail, .. }
            if detail.contains("declared 1048576 bytes for this object but sent 10")),
        "{err:?}"
    );

    // 5. A declared size of 1 TiB: refused at once, nothing allocated for it.
    let (endpoint, _) = lying_endpoint(1 << 40, 0, false).await;
    let liar = s3(&endpoint, "kb-liar", "p");
    let (read, peak) = peak_during(liar.get_bounded("seg", LIMIT as u64)).await;
    assert!(
        matches!(read, Err(StorageError::TooLarge { claimed: Some(s), .. }) if s == 1 << 40),
        "{read:?}"
    );
    assert!(peak <= SLACK, "peak {peak}");
}

//! `Storage` against moto behind a fault-injecting proxy (`scripts/fault-proxy.py`, started
//! per test): 503s before and after a write reached moto, connections reset halfway through a
//! body, and answers slower than the request timeout. Every write and read must still come out
//! right, and the proxy's counts show that the faults happened.

use std::time::Duration;

use backup_core::storage::{
    PutOutcome, S3Config, S3Credentials, Storage, StorageConfig, StorageError, StorageOptions,
};
use bytes::Bytes;
use kafka_client::Secret;
use test_support::{FaultProxy, get};

const OBJECTS: usize = 12;
const SIZE: usize = 40_000;

fn config(endpoint: String, prefix: &str) -> S3Config {
    S3Config {
        region: Some(get("/s3/region")),
        prefix: prefix.to_owned(),
        endpoint: Some(endpoint),
        force_path_style: true,
        allow_http: true,
        credentials: Some(S3Credentials {
            access_key_id: get("/s3/access_key_id"),
            secret_access_key: Secret::new(get("/s3/secret_access_key")),
            session_token: None,
        }),
        ..S3Config::new(get("/s3/bucket"))
    }
}

/// Short timeouts, so that a `slow` answer costs a second, not two minutes.
fn options() -> StorageOptions {
    StorageOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(1),
        max_retries: 5,
        retry_timeout: Duration::from_secs(30),
    }
}

fn open(config: S3Config) -> Storage {
    Storage::open_with(&StorageConfig::S3(config), &options(), &|_| None).unwrap()
}

fn object(i: usize) -> Bytes {
    Bytes::from(
        (0..SIZE)
            .map(|j| (j.wrapping_mul(31) ^ i) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// Writes and reads back `OBJECTS` objects through a proxy in `mode`; returns how many writes
/// found their own earlier attempt stored, and the proxy's stats.
async fn round_trip(mode: &str, every: u32) -> (usize, serde_json::Value) {
    let proxy = FaultProxy::start(mode, every, Duration::from_secs(2));
    let prefix = format!("tests/{}", test_support::unique_topic(mode));
    let storage = open(config(proxy.endpoint(), &prefix));
    let mut already = 0;
    for i in 0..OBJECTS {
        match storage.put_new(&format!("o/{i}"), object(i)).await {
            Ok(PutOutcome::Created) => {}
            Ok(PutOutcome::AlreadyStored) => already += 1,
            Err(e) => panic!("{mode}: put {i}: {e}"),
        }
    }
    for i in 0..OBJECTS {
        let data = storage
            .get_bounded(&format!("o/{i}"), SIZE as u64)
            .await
            .unwrap_or_else(|e| panic!("{mode}: get {i}: {e}"));
        assert!(data == object(i), "{mode}: object {i} differs");
    }
    // What moto holds, seen without the proxy: each object once, exactly as written.
    let direct = open(config(get("/s3/endpoint"), &prefix));
    let listed = direct.list("o").await.unwrap();
    assert_eq!(listed.len(), OBJECTS, "{mode}");
    for i in 0..OBJECTS {
        let data = direct
            .get_bounded(&format!("o/{i}"), SIZE as u64)
            .await
            .unwrap();
        assert!(data == object(i), "{mode}: stored object {i} differs");
    }
    let stats = proxy.stats();
    eprintln!("{mode}: {stats}; {already} writes found already stored");
    (already, stats)
}

fn faults(stats: &serde_json::Value, method: &str) -> u64 {
    stats["faults"][method].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn error_before_forwarding_is_retried() {
    let (already, stats) = round_trip("error-before", 3).await;
    assert!(
        faults(&stats, "PUT") >= 4 && faults(&stats, "GET") >= 4,
        "{stats}"
    );
    // Nothing reached moto, so every retry created its object.
    assert_eq!(already, 0);
}

#[tokio::test]
async fn error_after_a_stored_write_counts_as_written() {
    let (already, stats) = round_trip("error-after", 3).await;
    assert!(faults(&stats, "PUT") >= 3, "{stats}");
    assert_eq!(already as u64, faults(&stats, "PUT"), "{stats}");
}

#[tokio::test]
async fn resets_mid_body_are_retried() {
    let (_, stats) = round_trip("reset", 3).await;
    assert!(
        faults(&stats, "PUT") >= 4 && faults(&stats, "GET") >= 4,
        "{stats}"
    );
}

#[tokio::test]
async fn reset_after_a_stored_write_counts_as_written() {
    let (already, stats) = round_trip("reset-after", 3).await;
    assert!(faults(&stats, "PUT") >= 3, "{stats}");
    assert_eq!(already as u64, faults(&stats, "PUT"), "{stats}");
}

#[tokio::test]
async fn answers_slower_than_the_timeout_are_retried() {
    let (already, stats) = round_trip("slow", 4).await;
    assert!(
        faults(&stats, "PUT") >= 3 && faults(&stats, "GET") >= 3,
        "{stats}"
    );
    // The slow write was stored before its answer was held back.
    assert_eq!(already as u64, faults(&stats, "PUT"), "{stats}");
}

/// A key taken by other bytes stays a conflict through the proxy too, and is not replaced.
#[tokio::test]
async fn a_real_conflict_is_still_refused() {
    let proxy = FaultProxy::start("error-after", 2, Duration::from_secs(2));
    let prefix = format!("tests/{}", test_support::unique_topic("conflict"));
    let direct = open(config(get("/s3/endpoint"), &prefix));
    direct.put_new("o/x", object(1)).await.unwrap();
    let storage = open(config(proxy.endpoint(), &prefix));
    let err = storage.put_new("o/x", object(2)).await.unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");
    assert!(direct.get_bounded("o/x", SIZE as u64).await.unwrap() == object(1));
}

/// The write-only backup identity (`s3:PutObject` and `s3:ListBucket`, no `s3:GetObject`) on
/// the IAM-enforcing moto, every answer to a PUT lost after moto stored it: the retry finds
/// the key taken, cannot read it back, and tells its own write from another by the listed size
/// (the key names carry the content's SHA-256; `validate` checks the bytes). Other bytes of
/// another size under the name stay a conflict.
#[tokio::test]
async fn a_write_only_identity_tells_its_lost_answer_by_size() {
    let upstream = get("/s3_iam/endpoint");
    // Every second PUT: after one clean write, each object's first attempt is stored and its
    // answer lost, and the retry (the next PUT) finds the key taken.
    let proxy = FaultProxy::start_to(&upstream, "error-after", 2, Duration::from_secs(2));
    let prefix = format!("tests/{}", test_support::unique_topic("write-only"));
    let writer = |endpoint: String| S3Config {
        region: Some(get("/s3_iam/region")),
        prefix: prefix.clone(),
        endpoint: Some(endpoint),
        force_path_style: true,
        allow_http: true,
        credentials: Some(S3Credentials {
            access_key_id: get("/s3_iam/users/writer/access_key_id"),
            secret_access_key: Secret::new(get("/s3_iam/users/writer/secret_access_key")),
            session_token: None,
        }),
        ..S3Config::new(get("/s3_iam/bucket"))
    };
    let storage = open(writer(proxy.endpoint()));
    let warm_up = storage.put_new("o/warm-up", object(9)).await.unwrap();
    assert_eq!(warm_up, PutOutcome::Created);
    for i in 0..3 {
        let outcome = storage.put_new(&format!("o/{i}"), object(i)).await.unwrap();
        assert_eq!(outcome, PutOutcome::AlreadyStored, "object {i}");
    }
    // Really without read permission: the fallback is what decided.
    let err = storage.get_bounded("o/0", SIZE as u64).await.unwrap_err();
    assert!(
        matches!(err, StorageError::PermissionDenied { .. }),
        "{err}"
    );

    let direct = open(writer(upstream));
    direct.put_new("o/x", object(1)).await.unwrap();
    let shorter = object(2).slice(..SIZE - 1);
    let err = storage.put_new("o/x", shorter).await.unwrap_err();
    let StorageError::AlreadyExists { found, .. } = &err else {
        panic!("not a conflict: {err}");
    };
    assert!(found.contains(&format!("{SIZE} bytes listed")), "{err}");
    let stats = proxy.stats();
    assert!(faults(&stats, "PUT") >= 3, "{stats}");
}

//! `storage.object_lock` against real servers: moto's Object Lock bucket (`kb-lock`), its
//! plain bucket (no Object Lock), and the IAM-enforcing moto, which checks every request's
//! SigV4 signature with botocore (so the lock headers, added by our connector and signed again,
//! are proven to be signed correctly). Retention is read back independently, through boto3's
//! HeadObject.
//!
//! What moto cannot show: it lets PutObjectRetention shorten a COMPLIANCE retention (real S3
//! refuses), it does not verify Content-MD5, and it checks object-lock writes as
//! `s3:PutObject` only (real S3 also wants `s3:PutObjectRetention`). These tests therefore
//! prove that every write carries the retention we asked for and that moto refuses to delete
//! the locked version; COMPLIANCE immutability itself is S3's promise, not something shown here.
// Tests of the storage layer itself read whole objects on purpose.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backup_core::config::{self, ConfigError};
use backup_core::storage::{
    ObjectLock, ObjectLockMode, Operation, PutOutcome, S3Config, S3Credentials, S3Encryption,
    Storage, StorageConfig, StorageError, StorageOptions,
};
use bytes::Bytes;
use kafka_client::Secret;
use test_support::{S3Access, get};

fn no_env(_: &str) -> Option<String> {
    None
}

fn open(config: &S3Config) -> Storage {
    let config = StorageConfig::S3(config.clone());
    Storage::open_with(&config, &StorageOptions::default(), &no_env)
        .unwrap_or_else(|e| panic!("cannot open {config}: {e}"))
}

fn prefix(name: &str) -> String {
    format!("tests/{}", test_support::unique_topic(name))
}

/// The plain moto's Object Lock bucket.
fn lock_config(name: &str, mode: ObjectLockMode, retain_days: u32) -> S3Config {
    S3Config {
        region: Some(get("/s3/region")),
        prefix: prefix(name),
        endpoint: Some(get("/s3/endpoint")),
        force_path_style: true,
        allow_http: true,
        credentials: Some(S3Credentials {
            access_key_id: get("/s3/access_key_id"),
            secret_access_key: Secret::new(get("/s3/secret_access_key")),
            session_token: None,
        }),
        object_lock: Some(ObjectLock { mode, retain_days }),
        ..S3Config::new(test_support::s3_lock_bucket())
    }
}

/// An IAM user of the IAM-enforcing moto, on its Object Lock bucket.
fn iam_lock_config(user: &str, name: &str) -> S3Config {
    S3Config {
        region: Some(get("/s3_iam/region")),
        prefix: prefix(name),
        endpoint: Some(get("/s3_iam/endpoint")),
        force_path_style: true,
        allow_http: true,
        credentials: Some(S3Credentials {
            access_key_id: get(&format!("/s3_iam/users/{user}/access_key_id")),
            secret_access_key: Secret::new(get(&format!("/s3_iam/users/{user}/secret_access_key"))),
            session_token: None,
        }),
        object_lock: Some(ObjectLock {
            mode: ObjectLockMode::Governance,
            retain_days: 2,
        }),
        ..S3Config::new(test_support::s3_iam_lock_bucket())
    }
}

fn iam_access(user: &str) -> S3Access {
    S3Access {
        endpoint: get("/s3_iam/endpoint"),
        region: get("/s3_iam/region"),
        access_key_id: get(&format!("/s3_iam/users/{user}/access_key_id")),
        secret_access_key: get(&format!("/s3_iam/users/{user}/secret_access_key")),
    }
}

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[track_caller]
fn assert_one_paragraph(error: &dyn std::fmt::Display, fragments: &[&str]) {
    let text = error.to_string();
    eprintln!("{text}");
    for fragment in fragments {
        assert!(
            text.contains(fragment),
            "message lacks {fragment:?}:\n{text}"
        );
    }
    assert!(!text.contains('\n'), "not one paragraph: {text}");
}

/// Every write carries the retention (read back with boto3), create-only still holds, the
/// locked version cannot be deleted, and SSE is still requested.
#[tokio::test]
async fn every_write_carries_the_retention_in_both_modes() {
    for (mode, days) in [
        (ObjectLockMode::Governance, 3),
        (ObjectLockMode::Compliance, 1),
    ] {
        let mut config = lock_config("lock", mode, days);
        config.sse = Some(S3Encryption::Aes256);
        let storage = open(&config);
        storage.verify_reachable().await.unwrap();
        let s3 = S3Access::plain();
        let keys = [
            "b1/topic.a/0/00000000000000000000.seg",
            "b1/manifest=1.json",
        ];
        for (i, key) in keys.iter().enumerate() {
            let before = unix_now();
            let data = Bytes::from(vec![u8::try_from(i).unwrap(); 100_000 * i]);
            storage.put_new(key, data.clone()).await.unwrap();
            let after = unix_now();

            let full = format!("{}/{key}", config.prefix);
            let retention = s3.retention(&config.bucket, &full);
            assert_eq!(retention.mode.as_deref(), Some(mode.as_str()), "{key}");
            let until = retention.retain_until_unix.expect("a retain-until date");
            let want = i64::from(days) * 86_400;
            // Rounded up to the second, from a clock read during the write.
            assert!(
                until >= before + want && until <= after + want + 1,
                "{mode}: retain-until {until} is not {days} days after [{before}, {after}]"
            );
            assert_eq!(storage.get(key).await.unwrap(), data, "{key}");

            // Create-only holds on a versioned bucket too: no second version is made.
            let err = storage
                .put_new(key, Bytes::from_static(b"replacement"))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StorageError::AlreadyExists { key: k, .. } if k == key),
                "{mode}: {err:?}"
            );
            assert_eq!(storage.get(key).await.unwrap(), data, "{key} was replaced");
            // A retry of a write whose answer was lost finds its own locked object: written.
            assert_eq!(
                storage.put_new(key, data.clone()).await.unwrap(),
                PutOutcome::AlreadyStored,
                "{key}"
            );

            // The locked version stays (no governance bypass is sent).
            let version = retention.version_id.expect("a versioned bucket");
            assert_eq!(
                s3.delete_version(&config.bucket, &full, &version),
                Err("AccessDenied".to_owned()),
                "{mode}: the locked version of {key} was deleted"
            );
            assert_eq!(storage.get(key).await.unwrap(), data);
        }
        // SSE headers are still sent beside the lock headers.
        assert_eq!(
            test_support::python(
                r#"
import sys, boto3
endpoint, region, key_id, secret, bucket, key = sys.argv[1:7]
c = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                 aws_access_key_id=key_id, aws_secret_access_key=secret)
print(c.head_object(Bucket=bucket, Key=key).get("ServerSideEncryption"))
"#,
                &[
                    &s3.endpoint,
                    &s3.region,
                    &s3.access_key_id,
                    &s3.secret_access_key,
                    &config.bucket,
                    &format!("{}/{}", config.prefix, keys[0]),
                ],
            )
            .trim(),
            "AES256"
        );
        let mut listed: Vec<String> = storage
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        listed.sort();
        assert_eq!(listed, ["b1/manifest=1.json", keys[0]]);
    }
}

/// Without object_lock nothing is added: the lock bucket then has no retention on the object
/// (it has no default retention), which shows the retention above came from our writes.
#[tokio::test]
async fn without_object_lock_no_retention_is_sent() {
    let mut config = lock_config("no-lock", ObjectLockMode::Governance, 1);
    config.object_lock = None;
    let storage = open(&config);
    storage
        .put_new("plain", Bytes::from_static(b"x"))
        .await
        .unwrap();
    let retention =
        S3Access::plain().retention(&config.bucket, &format!("{}/plain", config.prefix));
    assert_eq!(retention.mode, None);
    assert_eq!(retention.retain_until_unix, None);
}

#[tokio::test]
async fn a_bucket_without_object_lock_is_a_clear_error() {
    let mut config = lock_config("lock-missing", ObjectLockMode::Governance, 7);
    config.bucket = get("/s3/bucket");
    let storage = open(&config);
    let err = storage
        .put_new("b1/seg", Bytes::from_static(b"data"))
        .await
        .unwrap_err();
    match &err {
        StorageError::ObjectLockNotEnabled {
            bucket,
            key,
            detail,
            ..
        } => {
            assert_eq!(bucket, &config.bucket);
            assert_eq!(key, "b1/seg");
            assert!(
                detail
                    .as_deref()
                    .is_some_and(|d| d.contains("InvalidRequest")),
                "{detail:?}"
            );
        }
        other => panic!("expected ObjectLockNotEnabled, got {other:?}"),
    }
    assert!(!err.is_retriable());
    assert_one_paragraph(
        &err,
        &[
            "storage.object_lock is set, but the bucket `kb-test` does not have S3 Object Lock \
             enabled",
            "nothing was written",
            "Bucket is missing ObjectLockConfiguration",
            "--object-lock-enabled-for-bucket",
            "put-object-lock-configuration --bucket kb-test",
            "remove storage.object_lock",
        ],
    );
    assert!(storage.list("").await.unwrap().is_empty());
}

/// The IAM-enforcing moto recomputes every signature with botocore: a write signed again with
/// its lock headers is accepted, the retention is there, and a reader may not write.
#[tokio::test]
async fn signed_again_writes_pass_signature_checks() {
    let writer = iam_lock_config("writer", "iam-lock");
    let storage = open(&writer);
    storage.verify_reachable().await.unwrap();
    storage
        .put_new("b1/seg-0", Bytes::from(vec![5u8; 300_000]))
        .await
        .unwrap();
    let full = format!("{}/b1/seg-0", writer.prefix);
    let retention = iam_access("reader").retention(&writer.bucket, &full);
    assert_eq!(retention.mode.as_deref(), Some("GOVERNANCE"));
    let until = retention.retain_until_unix.unwrap();
    assert!((until - unix_now() - 2 * 86_400).abs() < 120, "{until}");
    let err = storage
        .put_new("b1/seg-0", Bytes::from_static(b"again"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err:?}");

    // The reader identity may not write; the message names both permissions real S3 checks.
    let mut reader = iam_lock_config("reader", "unused");
    reader.prefix = writer.prefix.clone();
    let err = open(&reader)
        .put_new("b1/seg-1", Bytes::from_static(b"data"))
        .await
        .unwrap_err();
    match &err {
        StorageError::PermissionDenied {
            operation,
            permission,
            ..
        } => {
            assert_eq!(*operation, Operation::Put);
            assert_eq!(*permission, "`s3:PutObject` and `s3:PutObjectRetention`");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    assert_one_paragraph(&err, &["s3:PutObjectRetention", "storage.object_lock"]);

    // A wrong secret is still a signature error, not hidden by signing again.
    let mut wrong = writer.clone();
    wrong.credentials.as_mut().unwrap().secret_access_key =
        Secret::new("Wrong-Secret-Key-For-The-Writer-0123456789");
    let err = open(&wrong)
        .put_new("b1/seg-2", Bytes::from_static(b"data"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Unauthenticated { .. }),
        "{err:?}"
    );
    assert_one_paragraph(&err, &["SignatureDoesNotMatch"]);
    assert!(!err.to_string().contains("Wrong-Secret-Key"));
}

/// Reads and listing are untouched by the connector.
#[tokio::test]
async fn reads_and_ranges_work_on_a_locked_bucket() {
    let config = lock_config("lock-read", ObjectLockMode::Governance, 1);
    let storage = open(&config);
    storage
        .put_new("k", Bytes::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(storage.get_range("k", 1..4).await.unwrap(), "ell");
    assert_eq!(storage.head("k").await.unwrap().size, 5);
    assert_eq!(storage.list_dirs("").await.unwrap(), Vec::<String>::new());
    let started = SystemTime::now() - Duration::from_secs(60);
    assert!(storage.list("").await.unwrap()[0].last_modified > started);
}

// ---------------------------------------------------------------------------
// Configuration

fn load(storage: &str) -> Result<config::LoadedConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backup.yaml");
    std::fs::write(
        &path,
        format!(
            "mode: backup\nbackup_id: prod-orders\nsource:\n  bootstrap_servers: kafka-0:9093\n\
             storage:\n{storage}"
        ),
    )
    .unwrap();
    config::load_with_env(&path, &no_env)
}

#[test]
fn object_lock_is_read_case_insensitively() {
    let loaded = load(
        "  backend: s3\n  bucket: kafka-backups\n  object_lock:\n    mode: governance\n    \
         retain_days: 30\n",
    )
    .unwrap();
    let StorageConfig::S3(s3) = loaded.storage.as_ref().unwrap() else {
        panic!("{:?}", loaded.storage)
    };
    assert_eq!(
        s3.object_lock,
        Some(ObjectLock {
            mode: ObjectLockMode::Governance,
            retain_days: 30
        })
    );
    assert!(
        loaded
            .storage
            .as_ref()
            .unwrap()
            .to_string()
            .contains("object lock GOVERNANCE retention of 30 days"),
        "{}",
        loaded.storage.as_ref().unwrap()
    );
    let loaded = load(
        "  backend: s3\n  bucket: b-1\n  object_lock: {mode: Compliance, retain_days: 36500}\n",
    )
    .unwrap();
    let StorageConfig::S3(s3) = loaded.storage.unwrap() else {
        panic!()
    };
    assert_eq!(s3.object_lock.unwrap().mode, ObjectLockMode::Compliance);
    // Without the section: no lock.
    let loaded = load("  backend: s3\n  bucket: b-1\n").unwrap();
    let StorageConfig::S3(s3) = loaded.storage.unwrap() else {
        panic!()
    };
    assert_eq!(s3.object_lock, None);
}

#[test]
fn object_lock_errors_name_the_key_and_the_fix() {
    let cases: &[(&str, &[&str])] = &[
        (
            "  backend: s3\n  bucket: b-1\n  object_lock:\n    mode: LEGAL_HOLD\n    retain_days: 3\n",
            &[
                "storage.object_lock.mode",
                "LEGAL_HOLD",
                "GOVERNANCE",
                "COMPLIANCE",
            ],
        ),
        (
            "  backend: s3\n  bucket: b-1\n  object_lock:\n    mode: GOVERNANCE\n    retain_days: 0\n",
            &[
                "storage.object_lock.retain_days",
                "line 10",
                "is 0; give 1 to 36500 days",
            ],
        ),
        (
            "  backend: s3\n  bucket: b-1\n  object_lock:\n    mode: GOVERNANCE\n    retain_days: 36501\n",
            &["storage.object_lock.retain_days", "is 36501"],
        ),
        (
            "  backend: s3\n  bucket: b-1\n  object_lock:\n    mode: GOVERNANCE\n    retain_days: -1\n",
            &["storage.object_lock.retain_days", "a whole number of days"],
        ),
        (
            "  backend: s3\n  bucket: b-1\n  object_lock:\n    retain_days: 3\n",
            &["storage.object_lock.mode", "GOVERNANCE or COMPLIANCE"],
        ),
        (
            "  backend: s3\n  bucket: b-1\n  object_lock:\n    mode: GOVERNANCE\n",
            &["storage.object_lock.retain_days", "1 to 36500"],
        ),
        (
            "  backend: s3\n  bucket: b-1\n  object_lock:\n    mode: GOVERNANCE\n    retention_days: 3\n",
            &[
                "storage.object_lock.retention_days",
                "did you mean `retain_days`?",
            ],
        ),
        (
            "  backend: azure\n  account_name: acct1\n  container_name: kb\n  object_lock:\n    \
             mode: GOVERNANCE\n    retain_days: 3\n",
            &[
                "storage.object_lock",
                "a setting of the s3 backend, but backend is azure",
                "immutability",
                "container",
            ],
        ),
        (
            "  backend: gcs\n  bucket: b-1\n  object_lock:\n    mode: GOVERNANCE\n    retain_days: 3\n",
            &[
                "storage.object_lock",
                "backend is gcs",
                "retention policy",
                "bucket",
            ],
        ),
        (
            "  backend: filesystem\n  path: /tmp/kb\n  object_lock:\n    mode: GOVERNANCE\n    \
             retain_days: 3\n",
            &[
                "storage.object_lock",
                "backend is filesystem",
                "no object lock",
            ],
        ),
    ];
    for (storage, fragments) in cases {
        let err = load(storage).expect_err(storage);
        assert_one_paragraph(&err, fragments);
    }
}

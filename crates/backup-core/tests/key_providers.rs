//! Key providers against real counterparts: one conformance suite that every provider runs
//! (public-key with age, aws-kms against moto's KMS, local key files), then what only one
//! provider has: the `age` CLI as the break-glass path, KMS least privilege under moto's IAM
//! enforcement, KMS errors.
//!
//! Needs `scripts/test-env.sh start` (moto with KMS, the IAM moto, the `age` CLI).

use std::process::Command;
use std::sync::Arc;

use backup_core::keys::{
    AgeIdentities, AgeRecipients, DecryptionSettings, EncryptionSettings, KeyAvailability,
    KeyContext, KeyError, KeyErrorKind, KeyRing, KeyType, KeyWrapper, KmsCredentials, KmsSettings,
    LocalKey, ProviderKind, generate_key,
};
use kafka_client::Secret;

/// A provider under test: a wrapper, a ring holding its key, a ring of the same provider
/// holding another key, and whether wrapped keys are bound to their run.
struct Fixture {
    name: &'static str,
    wrapper: KeyWrapper,
    ring: KeyRing,
    wrong_ring: KeyRing,
    binds_context: bool,
}

// ---------------------------------------------------------------------------
// The conformance suite.

async fn conformance(f: &Fixture) {
    round_trip(f).await;
    runs_get_different_keys(f).await;
    wrong_ring_has_no_matching_key(f).await;
    tampered_blob_is_refused(f).await;
    context_is_bound(f).await;
    unwrapping_is_cached_per_run(f).await;
}

async fn round_trip(f: &Fixture) {
    let ctx = KeyContext::new("orders", "run-1");
    let (key, wrapped) = f.wrapper.new_run_key(&ctx).await.unwrap();
    assert_eq!(wrapped.provider, f.wrapper.provider(), "{}", f.name);
    assert!(!wrapped.key_ids.is_empty(), "{}", f.name);
    assert!(
        matches!(
            f.ring.availability(&wrapped),
            KeyAvailability::Available { .. } | KeyAvailability::Possible { .. }
        ),
        "{}",
        f.name
    );
    let back = f.ring.unwrap(&wrapped, &ctx).await.unwrap();
    assert_eq!(back.expose_bytes(), key.expose_bytes(), "{}", f.name);
    // Neither the wrapper, the ring nor the wrapped key show the data key.
    let hex: String = key
        .expose_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let shown = format!("{:?} {:?} {:?} {:?}", f.wrapper, f.ring, wrapped, key);
    assert!(!shown.contains(&hex), "{}: {shown}", f.name);
    assert!(
        !shown.contains(&format!("{:?}", key.expose_bytes())),
        "{}",
        f.name
    );
}

async fn runs_get_different_keys(f: &Fixture) {
    let (k1, w1) = f
        .wrapper
        .new_run_key(&KeyContext::new("orders", "run-1"))
        .await
        .unwrap();
    let (k2, w2) = f
        .wrapper
        .new_run_key(&KeyContext::new("orders", "run-2"))
        .await
        .unwrap();
    assert_ne!(k1.expose_bytes(), k2.expose_bytes(), "{}", f.name);
    assert_ne!(w1.blob, w2.blob, "{}", f.name);
    assert_ne!(w1.fingerprint(), w2.fingerprint(), "{}", f.name);
}

async fn wrong_ring_has_no_matching_key(f: &Fixture) {
    let ctx = KeyContext::new("orders", "run-1");
    let (_, wrapped) = f.wrapper.new_run_key(&ctx).await.unwrap();
    for ring in [&f.wrong_ring, &KeyRing::default()] {
        let err = ring.unwrap(&wrapped, &ctx).await.unwrap_err();
        assert_eq!(err.kind(), KeyErrorKind::NoMatchingKey, "{}: {err}", f.name);
        let text = format!("cannot decrypt b/x.kbseg: {err}");
        // The ids the object needs are named; the message is one line.
        assert!(text.contains(&wrapped.key_ids[0]), "{}: {text}", f.name);
        assert!(!text.contains('\n'), "{text}");
        assert!(matches!(
            ring.availability(&wrapped),
            KeyAvailability::Missing { .. }
        ));
    }
}

async fn tampered_blob_is_refused(f: &Fixture) {
    let ctx = KeyContext::new("orders", "run-1");
    let (_, mut wrapped) = f.wrapper.new_run_key(&ctx).await.unwrap();
    let last = wrapped.blob.len() - 1;
    wrapped.blob[last] ^= 0x01;
    let err = f.ring.unwrap(&wrapped, &ctx).await.unwrap_err();
    assert_eq!(
        err.kind(),
        KeyErrorKind::InvalidWrappedKey,
        "{}: {err}",
        f.name
    );
    assert!(err.to_string().contains("altered"), "{}: {err}", f.name);
    wrapped.blob.truncate(3);
    let err = f.ring.unwrap(&wrapped, &ctx).await.unwrap_err();
    assert_eq!(
        err.kind(),
        KeyErrorKind::InvalidWrappedKey,
        "{}: {err}",
        f.name
    );
}

async fn context_is_bound(f: &Fixture) {
    let ctx = KeyContext::new("orders", "run-1");
    let (key, wrapped) = f.wrapper.new_run_key(&ctx).await.unwrap();
    for other in [
        KeyContext::new("orders", "run-2"),
        KeyContext::new("payments", "run-1"),
    ] {
        let result = f.ring.unwrap(&wrapped, &other).await;
        if f.binds_context {
            let err = result.unwrap_err();
            assert_eq!(
                err.kind(),
                KeyErrorKind::InvalidWrappedKey,
                "{}: {err}",
                f.name
            );
            assert!(
                err.to_string().contains("moved from another backup or run"),
                "{err}"
            );
        } else {
            // age has no associated data: the key unwraps, and the per-object key derivation
            // is what keeps it from decrypting another run's objects.
            assert_eq!(
                result.unwrap().expose_bytes(),
                key.expose_bytes(),
                "{}",
                f.name
            );
        }
    }
}

async fn unwrapping_is_cached_per_run(f: &Fixture) {
    let ctx = KeyContext::new("orders", "run-cache");
    let (key, wrapped) = f.wrapper.new_run_key(&ctx).await.unwrap();
    let ring = f.ring.clone();
    let before = ring.provider_calls();
    // Many segments of one run, unwrapped at the same time.
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (ring, wrapped, ctx) = (ring.clone(), wrapped.clone(), ctx.clone());
            tokio::spawn(async move { ring.unwrap(&wrapped, &ctx).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().expose_bytes(), key.expose_bytes());
    }
    assert_eq!(ring.provider_calls() - before, 1, "{}", f.name);
}

// ---------------------------------------------------------------------------
// The providers.

fn local_fixture() -> Fixture {
    let key = Arc::new(LocalKey::generate().unwrap());
    let old = Arc::new(LocalKey::generate().unwrap());
    let other = Arc::new(LocalKey::generate().unwrap());
    Fixture {
        name: "local",
        wrapper: KeyWrapper::new(&EncryptionSettings::Local(key.clone())),
        // A ring with an older key as well, as after a rotation.
        ring: KeyRing::new(&[DecryptionSettings::Local(vec![old, key])]),
        wrong_ring: KeyRing::new(&[DecryptionSettings::Local(vec![other])]),
        binds_context: true,
    }
}

fn age_identity() -> (AgeIdentities, String) {
    let key = generate_key(KeyType::Age, "2026-01-01T00:00:00Z").unwrap();
    let mut ids = AgeIdentities::new();
    ids.add_file_text(&key.private_file).unwrap();
    (ids, key.id)
}

fn public_key_fixture() -> Fixture {
    let (ops, ops_recipient) = age_identity();
    let (_, dr_recipient) = age_identity();
    let (other, _) = age_identity();
    let mut recipients = AgeRecipients::new();
    recipients.add(&ops_recipient).unwrap();
    recipients.add(&dr_recipient).unwrap();
    Fixture {
        name: "public-key",
        wrapper: KeyWrapper::new(&EncryptionSettings::PublicKey(recipients)),
        ring: KeyRing::new(&[DecryptionSettings::PublicKey(ops)]),
        wrong_ring: KeyRing::new(&[DecryptionSettings::PublicKey(other)]),
        binds_context: false,
    }
}

fn kms(key_id: Option<String>) -> KmsSettings {
    KmsSettings {
        key_id,
        region: Some(test_support::get("/kms/region")),
        endpoint: Some(test_support::get("/kms/endpoint")),
        credentials: Some(KmsCredentials {
            access_key_id: test_support::get("/kms/access_key_id"),
            secret_access_key: Secret::new(test_support::get("/kms/secret_access_key")),
            session_token: None,
        }),
    }
}

fn kms_fixture(wrap_with: &str, ring_key: Option<String>) -> Fixture {
    Fixture {
        name: "aws-kms",
        wrapper: KeyWrapper::new(&EncryptionSettings::AwsKms(kms(Some(wrap_with.to_owned())))),
        ring: KeyRing::new(&[DecryptionSettings::AwsKms(kms(ring_key))]),
        wrong_ring: KeyRing::new(&[DecryptionSettings::AwsKms(kms(Some(test_support::get(
            "/kms/other_key_arn",
        ))))]),
        binds_context: true,
    }
}

#[tokio::test]
async fn local_key_files() {
    conformance(&local_fixture()).await;
}

#[tokio::test]
async fn public_key_with_age() {
    conformance(&public_key_fixture()).await;
}

#[tokio::test]
async fn aws_kms_by_alias_with_a_ring_restricted_to_the_key() {
    let f = kms_fixture(
        &test_support::get("/kms/alias"),
        Some(test_support::get("/kms/key_arn")),
    );
    conformance(&f).await;
    // The wrapped key names the key ARN KMS returned, not the alias.
    let (_, wrapped) = f
        .wrapper
        .new_run_key(&KeyContext::new("b", "r"))
        .await
        .unwrap();
    assert_eq!(wrapped.key_ids, [test_support::get("/kms/key_arn")]);
}

#[tokio::test]
async fn aws_kms_by_key_id_with_an_unrestricted_ring() {
    let f = kms_fixture(&test_support::get("/kms/key_id"), None);
    conformance(&f).await;
}

// ---------------------------------------------------------------------------
// public-key: the age CLI is the break-glass path.

fn age_cli(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write as _;
    let bin = if args.first() == Some(&"keygen") {
        test_support::get("/age/keygen")
    } else {
        test_support::get("/age/bin")
    };
    let args = if args.first() == Some(&"keygen") {
        &args[1..]
    } else {
        args
    };
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn age_keygen_keys_work_and_age_decrypts_our_wrapped_keys() {
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("ops.agekey");
    let identity_str = identity.to_str().unwrap();
    age_cli(&["keygen", "-o", identity_str], None);
    let recipient = String::from_utf8(age_cli(&["keygen", "-y", identity_str], None)).unwrap();
    let recipient = recipient.trim();

    // Their identity file is our identity file, their recipient our recipient.
    let mut ids = AgeIdentities::new();
    ids.add_file_text(&std::fs::read_to_string(&identity).unwrap())
        .unwrap();
    assert_eq!(ids.recipients(), [recipient]);
    let mut recipients = AgeRecipients::new();
    recipients.add(recipient).unwrap();
    let (_, other_recipient) = age_identity();
    recipients.add(&other_recipient).unwrap();
    let wrapper = KeyWrapper::new(&EncryptionSettings::PublicKey(recipients));
    let ctx = KeyContext::new("orders", "run-1");
    let (key, wrapped) = wrapper.new_run_key(&ctx).await.unwrap();
    let ring = KeyRing::new(&[DecryptionSettings::PublicKey(ids)]);
    assert_eq!(
        ring.unwrap(&wrapped, &ctx).await.unwrap().expose_bytes(),
        key.expose_bytes()
    );

    // Break glass: `age -d -i identity` gives exactly the data key.
    let blob = dir.path().join("wrapped.age");
    std::fs::write(&blob, &wrapped.blob).unwrap();
    let plain = age_cli(&["-d", "-i", identity_str, blob.to_str().unwrap()], None);
    assert_eq!(plain, key.expose_bytes());

    // And what age encrypts to our generated recipient, our identity decrypts.
    let ours = generate_key(KeyType::Age, "now").unwrap();
    let mut our_ids = AgeIdentities::new();
    our_ids.add_file_text(&ours.private_file).unwrap();
    let data = [7u8; 32];
    let age_blob = age_cli(&["-r", &ours.id], Some(&data));
    let wrapped = backup_core::keys::WrappedKey {
        provider: ProviderKind::PublicKey,
        key_ids: vec![ours.id.clone()],
        blob: age_blob,
    };
    let ring = KeyRing::new(&[DecryptionSettings::PublicKey(our_ids)]);
    assert_eq!(
        ring.unwrap(&wrapped, &ctx).await.unwrap().expose_bytes(),
        &data
    );
}

// ---------------------------------------------------------------------------
// aws-kms: least privilege under IAM enforcement, and errors.

fn iam_kms(user: &str, secret: Option<&str>) -> KmsSettings {
    KmsSettings {
        key_id: Some(test_support::get("/s3_iam/kms_key_arn")),
        region: Some(test_support::get("/s3_iam/region")),
        endpoint: Some(test_support::get("/s3_iam/endpoint")),
        credentials: Some(KmsCredentials {
            access_key_id: test_support::get(&format!("/s3_iam/users/{user}/access_key_id")),
            secret_access_key: Secret::new(secret.map(ToOwned::to_owned).unwrap_or_else(|| {
                test_support::get(&format!("/s3_iam/users/{user}/secret_access_key"))
            })),
            session_token: None,
        }),
    }
}

#[tokio::test]
async fn kms_backup_identity_wraps_but_cannot_unwrap_and_restore_identity_can() {
    let ctx = KeyContext::new("orders", "run-1");
    let backup = EncryptionSettings::AwsKms(iam_kms("backup_kms", None));
    let (key, wrapped) = KeyWrapper::new(&backup).new_run_key(&ctx).await.unwrap();

    // The backup identity's own ring (what validate/describe on a backup config would use).
    let own = KeyRing::new(&[backup.self_decryption().unwrap()]);
    let err = own.unwrap(&wrapped, &ctx).await.unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::AccessDenied, "{err}");
    let text = err.to_string();
    let arn = test_support::get("/s3_iam/kms_key_arn");
    assert!(
        text.contains(&format!("grant kms:Decrypt on {arn}")),
        "{text}"
    );
    assert!(text.contains("the backup role needs only"), "{text}");

    let restore = KeyRing::new(&[DecryptionSettings::AwsKms(iam_kms("restore_kms", None))]);
    assert_eq!(
        restore.unwrap(&wrapped, &ctx).await.unwrap().expose_bytes(),
        key.expose_bytes()
    );
    // The restore identity may not make data keys.
    let err = KeyWrapper::new(&EncryptionSettings::AwsKms(iam_kms("restore_kms", None)))
        .new_run_key(&ctx)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("grant kms:GenerateDataKey on {arn}")),
        "{err}"
    );
}

#[tokio::test]
async fn kms_errors_say_what_to_fix() {
    let ctx = KeyContext::new("orders", "run-1");
    // Wrong secret key.
    let secret = "Wrong-Kms-Secret-0000000000000000000000";
    let err = KeyWrapper::new(&EncryptionSettings::AwsKms(iam_kms(
        "backup_kms",
        Some(secret),
    )))
    .new_run_key(&ctx)
    .await
    .unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::AccessDenied, "{err}");
    assert!(matches!(err, KeyError::Unauthenticated { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains(secret));

    // A key that does not exist.
    let arn = test_support::get("/kms/key_arn");
    let (prefix, _) = arn.rsplit_once('/').unwrap();
    let mut settings = kms(Some(format!(
        "{prefix}/00000000-0000-0000-0000-000000000000"
    )));
    let err = KeyWrapper::new(&EncryptionSettings::AwsKms(settings.clone()))
        .new_run_key(&ctx)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::Configuration, "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    // Nothing listens: unreachable, naming the endpoint.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    settings.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let started = std::time::Instant::now();
    let err = KeyWrapper::new(&EncryptionSettings::AwsKms(settings))
        .new_run_key(&ctx)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::Unreachable, "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 30);
}

// ---------------------------------------------------------------------------
// Key rings over time: several recipients, rotated keys, changed providers.

#[tokio::test]
async fn each_recipient_unwraps_on_its_own() {
    let (ops, ops_recipient) = age_identity();
    let (dr, dr_recipient) = age_identity();
    let mut recipients = AgeRecipients::new();
    recipients.add(&ops_recipient).unwrap();
    recipients.add(&dr_recipient).unwrap();
    let ctx = KeyContext::new("orders", "run-1");
    let (key, wrapped) = KeyWrapper::new(&EncryptionSettings::PublicKey(recipients))
        .new_run_key(&ctx)
        .await
        .unwrap();
    assert_eq!(wrapped.key_ids, [ops_recipient, dr_recipient]);
    for identity in [ops, dr] {
        let ring = KeyRing::new(&[DecryptionSettings::PublicKey(identity)]);
        assert_eq!(
            ring.unwrap(&wrapped, &ctx).await.unwrap().expose_bytes(),
            key.expose_bytes()
        );
    }
}

#[tokio::test]
async fn one_ring_reads_backups_across_rotations_and_providers() {
    let old = Arc::new(LocalKey::generate().unwrap());
    let current = Arc::new(LocalKey::generate().unwrap());
    let (identities, recipient) = age_identity();
    let mut recipients = AgeRecipients::new();
    recipients.add(&recipient).unwrap();
    let writers = [
        EncryptionSettings::Local(old.clone()),
        EncryptionSettings::Local(current.clone()),
        EncryptionSettings::PublicKey(recipients),
        EncryptionSettings::AwsKms(kms(Some(test_support::get("/kms/alias")))),
    ];
    let ring = KeyRing::new(&[
        DecryptionSettings::AwsKms(kms(Some(test_support::get("/kms/key_arn")))),
        DecryptionSettings::PublicKey(identities),
        DecryptionSettings::Local(vec![current, old]),
    ]);
    for (i, settings) in writers.iter().enumerate() {
        let ctx = KeyContext::new("orders", format!("run-{i}"));
        let (key, wrapped) = KeyWrapper::new(settings).new_run_key(&ctx).await.unwrap();
        assert!(matches!(
            ring.availability(&wrapped),
            KeyAvailability::Available { .. }
        ));
        assert_eq!(
            ring.unwrap(&wrapped, &ctx).await.unwrap().expose_bytes(),
            key.expose_bytes(),
            "{settings:?}"
        );
    }
}

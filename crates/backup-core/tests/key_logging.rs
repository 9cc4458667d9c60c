//! No data key, private key or KMS secret reaches a log, at any level, whichever provider
//! runs: every event of a round trip through each provider (the AWS SDK's included) is
//! captured at trace level and searched. Its own test binary, so its global subscriber
//! sees nothing else.
//!
//! Needs `scripts/test-env.sh start` (moto's KMS).

use std::io::Write;
use std::sync::{Arc, Mutex};

use backup_core::keys::{
    AgeIdentities, AgeRecipients, DataKey, DecryptionSettings, EncryptionSettings, KeyContext,
    KeyRing, KeyType, KeyWrapper, KmsCredentials, KmsSettings, LocalKey, generate_key,
};
use base64::Engine as _;
use kafka_client::Secret;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every way a key's bytes could be printed.
fn spellings(key: &DataKey) -> Vec<String> {
    let bytes = key.expose_bytes();
    vec![
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
        base64::engine::general_purpose::STANDARD.encode(bytes),
        format!("{:?}", &bytes[..8])
            .trim_end_matches(']')
            .to_owned(),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_material_in_trace_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let secret = "Kms-Secret-For-The-Log-Test-1234567890";
    let kms = KmsSettings {
        key_id: Some(test_support::get("/kms/alias")),
        region: Some(test_support::get("/kms/region")),
        endpoint: Some(test_support::get("/kms/endpoint")),
        credentials: Some(KmsCredentials {
            access_key_id: test_support::get("/kms/access_key_id"),
            // moto's plain KMS accepts any secret.
            secret_access_key: Secret::new(secret),
            session_token: None,
        }),
    };
    let age = generate_key(KeyType::Age, "now").unwrap();
    let mut recipients = AgeRecipients::new();
    recipients.add(&age.id).unwrap();
    let mut identities = AgeIdentities::new();
    identities.add_file_text(&age.private_file).unwrap();
    let local = Arc::new(LocalKey::generate().unwrap());
    let local_text = local.to_file_text("now");
    let providers = [
        (
            EncryptionSettings::AwsKms(kms.clone()),
            DecryptionSettings::AwsKms(kms),
        ),
        (
            EncryptionSettings::PublicKey(recipients),
            DecryptionSettings::PublicKey(identities),
        ),
        (
            EncryptionSettings::Local(local.clone()),
            DecryptionSettings::Local(vec![local]),
        ),
    ];
    let ctx = KeyContext::new("orders", "run-log");
    let mut keys = Vec::new();
    for (wrap, unwrap) in providers {
        let (key, wrapped) = KeyWrapper::new(&wrap).new_run_key(&ctx).await.unwrap();
        let ring = KeyRing::new(&[unwrap]);
        let back = ring.unwrap(&wrapped, &ctx).await.unwrap();
        assert_eq!(back.expose_bytes(), key.expose_bytes());
        tracing::info!(?wrap, ?ring, ?wrapped, ?key, "round trip");
        keys.push(key);
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: the SDK's own trace events are there.
    assert!(logs.contains("TRACE"), "no trace events captured");
    assert!(logs.contains("GenerateDataKey") || logs.contains("generate_data_key"));
    let mut forbidden: Vec<String> = keys.iter().flat_map(spellings).collect();
    forbidden.push(secret.to_owned());
    forbidden.extend(age.private_file.lines().last().map(ToOwned::to_owned));
    forbidden.extend(local_text.lines().last().map(ToOwned::to_owned));
    for f in forbidden {
        assert!(!logs.contains(&f), "{f:?} is in the logs");
    }
}

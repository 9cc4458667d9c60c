//! The custom resource types read the examples users already write.

use kube::CustomResourceExt;
use serde_json::Value;

use super::*;

/// The peer tool's operator example (its security guide, "Kubernetes Operator Configuration"),
/// with the storage block every real resource has: the guide shows only `kafkaCluster`.
const PEER_EXAMPLE: &str = r#"
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata:
  name: secure-backup
spec:
  kafkaCluster:
    bootstrapServers:
      - kafka:9093
    securityProtocol: SASL_SSL
    tlsSecret:
      name: kafka-tls
      caKey: ca.crt
    saslSecret:
      name: kafka-credentials
      mechanism: SCRAM-SHA-256
      usernameKey: username
      passwordKey: password
  storage:
    backend: s3
    bucket: my-kafka-backups
    region: us-west-2
"#;

/// A Strimzi cluster `my-cluster` with a TLS KafkaUser `backup-user`: the cluster CA Secret
/// and the user's Secret are referenced as Strimzi creates them.
const STRIMZI_EXAMPLE: &str = r#"
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata:
  name: strimzi-backup
  namespace: kafka
spec:
  kafkaCluster:
    bootstrapServers: ["my-cluster-kafka-bootstrap:9093"]
    securityProtocol: SSL
    caSecret:
      name: my-cluster-cluster-ca-cert
      caKey: ca.crt
    tlsSecret:
      name: backup-user
      certKey: user.crt
      keyKey: user.key
  topics:
    include: ["orders", "payments-*"]
    exclude: ["*-tmp"]
  storage:
    backend: s3
    bucket: kafka-backups
    region: eu-west-1
    prefix: prod
  backup:
    compression: zstd
    segmentMaxBytes: 33554432
  encryption:
    keyProvider: public-key
    recipients: ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
  schedule: "0 2 * * *"
  shards: 4
  serviceAccountName: kafka-backup
"#;

fn backup(yaml: &str) -> KafkaBackup {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("example does not parse: {e}"))
}

#[test]
fn peer_example_reads_with_its_field_names() {
    let kb = backup(PEER_EXAMPLE);
    let cluster = &kb.spec.kafka_cluster;
    assert_eq!(cluster.bootstrap_servers, ["kafka:9093"]);
    assert_eq!(cluster.security_protocol, Some(SecurityProtocol::SaslSsl));
    assert_eq!(
        cluster.tls_secret,
        Some(TlsSecretRef {
            name: "kafka-tls".into(),
            ca_key: Some("ca.crt".into()),
            cert_key: None,
            key_key: None,
            key_password_key: None,
        })
    );
    assert_eq!(
        cluster.sasl_secret,
        Some(SaslSecretRef {
            name: "kafka-credentials".into(),
            mechanism: SaslMechanism::ScramSha256,
            username_key: Some("username".into()),
            username: None,
            password_key: "password".into(),
        })
    );
    assert_eq!(kb.spec.storage.backend, StorageBackend::S3);
    assert_eq!(
        kb.spec.storage.credentials_secret, None,
        "no Secret: workload identity"
    );
    assert_eq!(kb.spec.schedule, None, "no schedule: one Job");
}

#[test]
fn strimzi_example_references_the_secrets_strimzi_creates() {
    let kb = backup(STRIMZI_EXAMPLE);
    let cluster = &kb.spec.kafka_cluster;
    assert_eq!(
        cluster.ca_secret,
        Some(CaSecretRef {
            name: "my-cluster-cluster-ca-cert".into(),
            ca_key: "ca.crt".into(),
        })
    );
    let tls = cluster.tls_secret.as_ref().expect("tlsSecret");
    assert_eq!(tls.name, "backup-user");
    assert_eq!(tls.cert_key.as_deref(), Some("user.crt"));
    assert_eq!(tls.key_key.as_deref(), Some("user.key"));
    assert_eq!(tls.ca_key, None);
    assert_eq!(kb.spec.shards, Some(4));
    assert_eq!(kb.spec.schedule.as_deref(), Some("0 2 * * *"));
    let encryption = kb.spec.encryption.as_ref().expect("encryption");
    assert_eq!(encryption.key_provider, KeyProvider::PublicKey);
    assert_eq!(encryption.recipients.len(), 1);
    assert_eq!(
        kb.spec.backup.as_ref().and_then(|b| b.compression),
        Some(Compression::Zstd)
    );
    assert_eq!(kb.metadata.namespace.as_deref(), Some("kafka"));
}

#[test]
fn scram_without_the_second_dash_is_the_same_mechanism() {
    // The peer tool's newer guide writes SCRAM-SHA256.
    let yaml = PEER_EXAMPLE.replace("SCRAM-SHA-256", "SCRAM-SHA256");
    let kb = backup(&yaml);
    let sasl = kb.spec.kafka_cluster.sasl_secret.expect("saslSecret");
    assert_eq!(sasl.mechanism, SaslMechanism::ScramSha256);
    assert_eq!(sasl.mechanism.as_str(), "SCRAM-SHA-256");
}

#[test]
fn a_misspelt_field_is_an_error_naming_it() {
    // A dropped `tlsSecret` would silently turn TLS off; the API server prunes unknown fields
    // (kubectl's strict field validation reports them), and our own reading refuses them.
    let yaml = PEER_EXAMPLE.replace("tlsSecret:", "tlsSecrett:");
    let err = serde_saphyr::from_str::<KafkaBackup>(&yaml)
        .expect_err("an unknown field must be refused")
        .to_string();
    assert!(err.contains("tlsSecrett"), "{err}");

    let yaml = PEER_EXAMPLE.replace("caKey: ca.crt", "cakey: ca.crt");
    let err = serde_saphyr::from_str::<KafkaBackup>(&yaml)
        .expect_err("an unknown key of a Secret reference must be refused")
        .to_string();
    assert!(err.contains("cakey"), "{err}");
}

#[test]
fn an_unknown_enum_value_is_an_error() {
    let yaml = PEER_EXAMPLE.replace("SASL_SSL", "SASL_TLS");
    let err = serde_saphyr::from_str::<KafkaBackup>(&yaml)
        .expect_err("an unknown protocol must not fall back to PLAINTEXT")
        .to_string();
    assert!(err.contains("SASL_TLS"), "{err}");
}

/// The `openAPIV3Schema` of a CRD, descended along `path` through `properties`.
fn schema_at<'a>(crd: &'a Value, path: &[&str]) -> &'a Value {
    let mut node = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    for part in path {
        node = &node["properties"][part];
        assert!(!node.is_null(), "no schema at {path:?}");
    }
    node
}

fn enum_values(crd: &Value, path: &[&str]) -> Vec<String> {
    schema_at(crd, path)["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no enum at {path:?}"))
        .iter()
        .map(|v| v.as_str().expect("string enum value").to_string())
        .collect()
}

/// Every value the schema admits deserialises, and every value we write is admitted: the API
/// server and the operator agree on each enum.
fn check_enum<T>(crd: &Value, path: &[&str], variants: &[T])
where
    T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let admitted = enum_values(crd, path);
    for value in &admitted {
        serde_json::from_value::<T>(Value::String(value.clone()))
            .unwrap_or_else(|e| panic!("{path:?}: schema admits {value} which fails: {e}"));
    }
    for variant in variants {
        let written = serde_json::to_value(variant).expect("serialise");
        let written = written.as_str().expect("string");
        assert!(
            admitted.iter().any(|a| a == written),
            "{path:?}: {variant:?} is written as {written}, which the schema refuses"
        );
    }
}

#[test]
fn schema_enums_match_the_rust_enums() {
    let crd = serde_json::to_value(KafkaBackup::crd()).expect("CRD as JSON");
    let cluster = ["spec", "kafkaCluster"];
    check_enum(
        &crd,
        &[&cluster[..], &["securityProtocol"]].concat(),
        &[
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ],
    );
    check_enum(
        &crd,
        &[&cluster[..], &["saslSecret", "mechanism"]].concat(),
        &[
            SaslMechanism::Plain,
            SaslMechanism::ScramSha256,
            SaslMechanism::ScramSha512,
        ],
    );
    assert_eq!(
        enum_values(&crd, &["spec", "kafkaCluster", "saslSecret", "mechanism"]).len(),
        5,
        "both SCRAM spellings are admitted"
    );
    check_enum(
        &crd,
        &["spec", "storage", "backend"],
        &[
            StorageBackend::S3,
            StorageBackend::Azure,
            StorageBackend::Gcs,
            StorageBackend::Filesystem,
        ],
    );
    check_enum(
        &crd,
        &["spec", "backup", "compression"],
        &[Compression::Zstd, Compression::Lz4, Compression::None],
    );
    check_enum(
        &crd,
        &["spec", "encryption", "keyProvider"],
        &[
            KeyProvider::PublicKey,
            KeyProvider::AwsKms,
            KeyProvider::Local,
        ],
    );
    check_enum(
        &crd,
        &["spec", "encryption", "algorithm"],
        &[EncryptionAlgorithm::Aes256Gcm],
    );
    check_enum(
        &crd,
        &["status", "phase"],
        &[
            BackupPhase::Pending,
            BackupPhase::Scheduled,
            BackupPhase::Running,
            BackupPhase::Succeeded,
            BackupPhase::Failed,
            BackupPhase::Suspended,
        ],
    );
}

#[test]
fn schema_bounds_shards_and_requires_the_essentials() {
    let crd = serde_json::to_value(KafkaBackup::crd()).expect("CRD as JSON");
    let shards = schema_at(&crd, &["spec", "shards"]);
    assert_eq!(shards["minimum"].as_f64(), Some(1.0));
    assert_eq!(shards["maximum"].as_f64(), Some(f64::from(MAX_SHARDS)));
    let required = &schema_at(&crd, &["spec"])["required"];
    assert_eq!(required, &serde_json::json!(["kafkaCluster", "storage"]));
    // Structural schemas forbid additionalProperties beside properties: unknown fields are
    // pruned by the API server, not described as refused.
    assert!(
        schema_at(&crd, &["spec"])
            .get("additionalProperties")
            .is_none()
    );
    let conditions = schema_at(&crd, &["status", "conditions"]);
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    let condition = &conditions["items"]["properties"];
    for field in ["type", "status", "reason", "message", "lastTransitionTime"] {
        assert!(!condition[field].is_null(), "condition has {field}");
    }
}

#[test]
fn restore_reads_its_example() {
    let kr: KafkaRestore = serde_saphyr::from_str(
        r#"
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaRestore
metadata:
  name: orders-dr
spec:
  backupId: prod-orders
  storage:
    backend: s3
    bucket: kafka-backups
    credentialsSecret:
      name: s3-reader
      accessKeyKey: access-key
      secretKeyKey: secret-key
  kafkaCluster:
    bootstrapServers: ["dr-kafka-bootstrap:9093"]
    securityProtocol: SASL_SSL
    caSecret: { name: dr-cluster-ca-cert, caKey: ca.crt }
    saslSecret: { name: restore-user, mechanism: SCRAM-SHA-512, username: restore-user, passwordKey: password }
  topicMapping:
    orders: orders-restored
  consumerGroups:
    include: ["billing-*"]
  restore:
    createTopics: true
    timeWindowEnd: "2026-11-01T00:00:00Z"
  encryption:
    - keyProvider: public-key
      identitySecrets: [{ name: dr-age, key: identity.agekey }]
  verifyKeySecrets: [{ name: backup-signing, key: signing.pub }]
"#,
    )
    .unwrap_or_else(|e| panic!("restore example does not parse: {e}"));
    assert_eq!(kr.spec.backup_id, "prod-orders");
    assert_eq!(
        kr.spec.topic_mapping.get("orders").map(String::as_str),
        Some("orders-restored")
    );
    let sasl = kr.spec.kafka_cluster.sasl_secret.expect("saslSecret");
    assert_eq!(sasl.username.as_deref(), Some("restore-user"));
    assert_eq!(sasl.username_key, None);
    assert_eq!(
        kr.spec.encryption[0].identity_secrets[0].key,
        "identity.agekey"
    );
    let creds = kr
        .spec
        .storage
        .credentials_secret
        .expect("credentialsSecret");
    assert_eq!(creds.access_key_key.as_deref(), Some("access-key"));
}

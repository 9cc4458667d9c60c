//! Every way a resource can fail to render, each with the message its author reads in the
//! status condition: the field and the fix.

use serde_json::{Value, json};

use super::*;
use crate::crd::{KafkaBackup, KafkaRestore};

fn base_backup() -> Value {
    json!({
        "apiVersion": "kafka.oso.sh/v1alpha1",
        "kind": "KafkaBackup",
        "metadata": {"name": "orders", "namespace": "kafka", "uid": "uid-1"},
        "spec": {
            "kafkaCluster": {"bootstrapServers": ["kafka:9092"]},
            "storage": {"backend": "s3", "bucket": "kafka-backups", "region": "eu-west-1"}
        }
    })
}

fn ctx() -> RenderContext {
    RenderContext {
        image: "registry.example/kafka-backup:0.1.0".into(),
        ..RenderContext::default()
    }
}

fn backup_error(edit: impl FnOnce(&mut Value)) -> RenderError {
    let mut value = base_backup();
    edit(&mut value);
    let kb: KafkaBackup = serde_json::from_value(value).expect("the test resource reads");
    render_backup(&kb, &ctx()).expect_err("the resource must not render")
}

/// `error` has `reason` and its message contains every one of `parts`.
fn check(what: &str, error: &RenderError, reason: &str, parts: &[&str]) {
    let message = error.to_string();
    assert_eq!(error.reason(), reason, "{what}: {message}");
    for part in parts {
        assert!(message.contains(part), "{what}: `{message}` lacks `{part}`");
    }
}

#[test]
fn the_base_resource_renders() {
    let kb: KafkaBackup = serde_json::from_value(base_backup()).expect("reads");
    render_backup(&kb, &ctx()).expect("renders");
}

#[test]
fn a_secret_reference_without_the_key_a_setting_needs() {
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "certificate without key",
            json!({"securityProtocol": "SSL",
                   "tlsSecret": {"name": "backup-user", "certKey": "user.crt"}}),
            &[
                "spec.kafkaCluster.tlsSecret",
                "backup-user",
                "keyKey",
                "keyKey: user.key",
            ],
        ),
        (
            "key without certificate",
            json!({"securityProtocol": "SSL",
                   "tlsSecret": {"name": "backup-user", "keyKey": "user.key"}}),
            &[
                "spec.kafkaCluster.tlsSecret",
                "backup-user",
                "certKey: user.crt",
            ],
        ),
        (
            "a TLS Secret naming no key",
            json!({"securityProtocol": "SSL", "tlsSecret": {"name": "kafka-tls"}}),
            &["kafka-tls", "caKey, or certKey and keyKey", "caKey: ca.crt"],
        ),
        (
            "SASL without a user name",
            json!({"securityProtocol": "SASL_SSL",
                   "saslSecret": {"name": "creds", "mechanism": "SCRAM-SHA-512",
                                  "passwordKey": "password"}}),
            &[
                "spec.kafkaCluster.saslSecret",
                "creds",
                "usernameKey",
                "username: <the KafkaUser",
            ],
        ),
    ];
    for (what, cluster, parts) in cases {
        let error = backup_error(|v| {
            let target = &mut v["spec"]["kafkaCluster"];
            for (k, val) in cluster.as_object().expect("an object") {
                target[k] = val.clone();
            }
        });
        check(what, &error, "MissingSecretKey", parts);
    }
    let error = backup_error(|v| {
        v["spec"]["storage"]["credentialsSecret"] =
            json!({"name": "s3-creds", "accessKeyKey": "access-key-id"});
    });
    check(
        "S3 without the secret key",
        &error,
        "MissingSecretKey",
        &[
            "spec.storage.credentialsSecret",
            "s3-creds",
            "secretKeyKey",
            "IRSA",
        ],
    );
}

#[test]
fn an_encryption_block_that_cannot_be_honoured_fails_closed() {
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "aws-kms without its key",
            json!({"keyProvider": "aws-kms"}),
            &["spec.encryption.kmsKeyId", "alias/kafka-backup"],
        ),
        (
            "local without its key Secret",
            json!({"keyProvider": "local"}),
            &["spec.encryption.keySecret", "keys generate --type local"],
        ),
        (
            "public-key without recipients",
            json!({"keyProvider": "public-key"}),
            &["spec.encryption.recipients", "age1", "recipientsConfigMap"],
        ),
        (
            "an identity given as a recipient",
            json!({"keyProvider": "public-key", "recipients": ["AGE-SECRET-KEY-1QQQ"]}),
            &[
                "spec.encryption.recipients[0]",
                "not an age X25519 recipient",
            ],
        ),
        (
            "another provider's key",
            json!({"keyProvider": "public-key",
                   "recipients": ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"],
                   "keySecret": {"name": "k", "key": "backup.key"}}),
            &[
                "spec.encryption.keySecret",
                "keyProvider local",
                "is public-key",
            ],
        ),
        (
            "KMS over http without allowHttp",
            json!({"keyProvider": "aws-kms", "kmsKeyId": "alias/k",
                   "endpoint": "http://kms.local:4566"}),
            &["spec.encryption.endpoint", "https://", "allowHttp: true"],
        ),
    ];
    for (what, encryption, parts) in cases {
        let error = backup_error(|v| v["spec"]["encryption"] = encryption);
        check(what, &error, "EncryptionUnusable", parts);
    }
}

#[test]
fn an_unknown_encryption_algorithm_is_refused_when_read() {
    let mut value = base_backup();
    value["spec"]["encryption"] = json!({"keyProvider": "local", "algorithm": "AES-128-CBC",
                                         "keySecret": {"name": "k", "key": "backup.key"}});
    let error = serde_json::from_value::<KafkaBackup>(value)
        .expect_err("an unknown algorithm must not read")
        .to_string();
    assert!(error.contains("AES-128-CBC"), "{error}");
}

#[test]
fn a_restore_key_ring_entry_without_its_keys_fails_closed() {
    let kr: KafkaRestore = serde_json::from_value(json!({
        "apiVersion": "kafka.oso.sh/v1alpha1",
        "kind": "KafkaRestore",
        "metadata": {"name": "dr", "namespace": "kafka", "uid": "uid-2"},
        "spec": {
            "backupId": "orders",
            "kafkaCluster": {"bootstrapServers": ["kafka:9092"]},
            "storage": {"backend": "s3", "bucket": "kafka-backups"},
            "encryption": [
                {"keyProvider": "local", "keySecrets": [{"name": "k", "key": "a.key"}]},
                {"keyProvider": "public-key"}
            ]
        }
    }))
    .expect("reads");
    let error = render_restore(&kr, &ctx()).expect_err("must not render");
    check(
        "public-key without identities",
        &error,
        "EncryptionUnusable",
        &["spec.encryption[1].identitySecrets", "age identities"],
    );
}

#[test]
fn schedules_are_validated() {
    let error = backup_error(|v| v["spec"]["schedule"] = json!("0 0 2 * * *"));
    assert_eq!(
        error.to_string(),
        "spec.schedule \"0 0 2 * * *\" is not a valid cron schedule: it has 6 fields; a schedule \
         has five (minute hour day-of-month month day-of-week), e.g. `0 2 * * *` for 02:00 every \
         day, with no seconds field"
    );
    assert_eq!(error.reason(), "InvalidSchedule");
    let error = backup_error(|v| v["spec"]["schedule"] = json!("0 25 * * *"));
    check(
        "hour 25",
        &error,
        "InvalidSchedule",
        &["hour field `25`", "0-23"],
    );
}

#[test]
fn shards_out_of_range() {
    for shards in [0, MAX_SHARDS + 1] {
        let error = backup_error(|v| v["spec"]["shards"] = json!(shards));
        check(
            "shards",
            &error,
            "ShardsOutOfRange",
            &["spec.shards", "between 1 and 1000"],
        );
    }
}

/// A change of the base resource.
type Edit = Box<dyn FnOnce(&mut Value)>;

#[test]
fn inconsistent_specs_name_the_field_and_the_fix() {
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        (
            "SASL credentials without a SASL protocol",
            Box::new(|v| {
                v["spec"]["kafkaCluster"]["securityProtocol"] = json!("SSL");
                v["spec"]["kafkaCluster"]["saslSecret"] = json!({"name": "c",
                    "mechanism": "PLAIN", "usernameKey": "u", "passwordKey": "p"});
            }),
            &["spec.kafkaCluster.saslSecret", "securityProtocol: SASL_SSL"],
        ),
        (
            "a SASL protocol without credentials",
            Box::new(|v| v["spec"]["kafkaCluster"]["securityProtocol"] = json!("SASL_SSL")),
            &[
                "spec.kafkaCluster.securityProtocol",
                "add saslSecret",
                "or use SSL",
            ],
        ),
        (
            "TLS material without TLS",
            Box::new(|v| {
                v["spec"]["kafkaCluster"]["caSecret"] = json!({"name": "ca", "caKey": "ca.crt"});
            }),
            &[
                "spec.kafkaCluster.caSecret",
                "PLAINTEXT",
                "securityProtocol: SSL",
            ],
        ),
        (
            "two SASL sources",
            Box::new(|v| {
                let c = &mut v["spec"]["kafkaCluster"];
                c["securityProtocol"] = json!("SASL_SSL");
                c["saslSecret"] = json!({"name": "c", "mechanism": "PLAIN",
                    "usernameKey": "u", "passwordKey": "p"});
                c["oauth"] = json!({"tokenSecret": {"name": "t", "key": "token"}});
            }),
            &[
                "spec.kafkaCluster.oauth",
                "saslSecret and oauth",
                "keep one",
            ],
        ),
        (
            "OAuth client credentials incomplete",
            Box::new(|v| {
                let c = &mut v["spec"]["kafkaCluster"];
                c["securityProtocol"] = json!("SASL_SSL");
                c["oauth"] = json!({"tokenEndpointUrl": "https://idp/token", "clientId": "kb"});
            }),
            &[
                "spec.kafkaCluster.oauth",
                "lacks clientSecretSecret",
                "tokenSecret",
            ],
        ),
        (
            "an OAuth token file with a scope",
            Box::new(|v| {
                let c = &mut v["spec"]["kafkaCluster"];
                c["securityProtocol"] = json!("SASL_SSL");
                c["oauth"] = json!({"tokenSecret": {"name": "t", "key": "token"},
                                    "scope": "kafka"});
            }),
            &["spec.kafkaCluster.oauth.scope", "keep tokenSecret alone"],
        ),
        (
            "continuous on a schedule",
            Box::new(|v| {
                v["spec"]["backup"] = json!({"continuous": true});
                v["spec"]["schedule"] = json!("0 2 * * *");
            }),
            &["spec.backup.continuous", "remove spec.schedule"],
        ),
        (
            "a setting of another backend",
            Box::new(|v| v["spec"]["storage"]["containerName"] = json!("kafka")),
            &["spec.storage.containerName", "backend azure, not of s3"],
        ),
        (
            "a credential of another backend",
            Box::new(|v| {
                v["spec"]["storage"]["credentialsSecret"] =
                    json!({"name": "c", "sasTokenKey": "sas"});
            }),
            &[
                "spec.storage.credentialsSecret.sasTokenKey",
                "backend azure",
            ],
        ),
        (
            "kmsKeyId without SSE-KMS",
            Box::new(|v| v["spec"]["storage"]["kmsKeyId"] = json!("alias/k")),
            &["spec.storage.kmsKeyId", "sse: aws:kms"],
        ),
        (
            "an http endpoint without allowHttp",
            Box::new(|v| v["spec"]["storage"]["endpoint"] = json!("http://minio:9000")),
            &["spec.storage.endpoint", "allowHttp: true"],
        ),
        (
            "filesystem without a volume",
            Box::new(|v| {
                v["spec"]["storage"] = json!({"backend": "filesystem",
                                                       "path": "/backups"})
            }),
            &["spec.storage.persistentVolumeClaim", "read-only"],
        ),
        (
            "a time zone without a schedule",
            Box::new(|v| v["spec"]["timeZone"] = json!("Europe/Berlin")),
            &["spec.timeZone", "add a schedule"],
        ),
        (
            "pruning asked for",
            Box::new(|v| v["spec"]["retention"] = json!({"keepLast": 7})),
            &[
                "spec.retention.keepLast",
                "kafka-backup prune --execute",
                "HistoryLimit",
            ],
        ),
        (
            "a name too long for a CronJob",
            Box::new(|v| {
                v["metadata"]["name"] = json!("a".repeat(53));
                v["spec"]["schedule"] = json!("@daily");
            }),
            &["metadata.name", "53 characters", "CronJob", "at most 52"],
        ),
        (
            "a Secret key no volume can hold",
            Box::new(|v| {
                v["spec"]["signingKeySecret"] = json!({"name": "sign", "key": "keys/sign.key"});
            }),
            &[
                "`keys/sign.key` is not a valid key of Secret `sign`",
                "kubectl describe",
            ],
        ),
    ];
    for (what, edit, parts) in cases {
        let error = backup_error(edit);
        check(what, &error, "InvalidSpec", parts);
    }
}

#[test]
fn a_resource_not_from_the_api_server_lacks_metadata() {
    for (field, edit) in [("metadata.uid", "uid"), ("metadata.namespace", "namespace")] {
        let error = backup_error(|v| {
            v["metadata"]
                .as_object_mut()
                .expect("metadata")
                .remove(edit);
        });
        assert!(
            error.to_string().starts_with(&format!(
                "the resource has no {field}: render it as the API server"
            )),
            "{error}"
        );
        assert_eq!(error.reason(), "MissingMetadata");
    }
}

#[test]
fn literals_cannot_become_references_in_the_pod() {
    let mut value = base_backup();
    value["spec"]["topics"] = json!({"include": ["orders-${HOME}"]});
    let kb: KafkaBackup = serde_json::from_value(value).expect("reads");
    let rendered = render_backup(&kb, &ctx()).expect("renders");
    let config = &rendered.config_map.data.as_ref().expect("data")["config.yaml"];
    assert!(config.contains("orders-$${HOME}"), "{config}");
}

#[test]
fn errors_name_the_secret_the_field_and_the_fix() {
    let err = RenderError::MissingSecretKey {
        field: "spec.kafkaCluster.tlsSecret".into(),
        secret: "backup-user".into(),
        missing: "keyKey".into(),
        hint: "a client certificate needs its private key, e.g. keyKey: user.key".into(),
    };
    let message = err.to_string();
    for part in [
        "spec.kafkaCluster.tlsSecret",
        "backup-user",
        "keyKey",
        "user.key",
    ] {
        assert!(message.contains(part), "{message} lacks {part}");
    }
    assert_eq!(err.reason(), "MissingSecretKey");
    let err = RenderError::ShardsOutOfRange {
        shards: 0,
        max: crate::crd::MAX_SHARDS,
    };
    assert_eq!(
        err.to_string(),
        "spec.shards is 0; it must be between 1 and 1000"
    );
}

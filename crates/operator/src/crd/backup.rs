//! The `KafkaBackup` custom resource.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::kafka_cluster::KafkaClusterSpec;
use super::refs::{AwsCredentialsSecretRef, ConfigMapKeyRef, SecretKeyRef};
use super::status::KafkaBackupStatus;
use super::storage::StorageSpec;

/// The largest `shards`: an Indexed Job of more Pods than this is more likely a typo than a
/// plan, and each shard holds its own connections to every broker.
pub const MAX_SHARDS: i32 = 1000;

/// A backup of Kafka topics to object storage: once (no `schedule`), or on a cron schedule.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kafka.oso.sh",
    version = "v1alpha1",
    kind = "KafkaBackup",
    namespaced,
    status = "KafkaBackupStatus",
    shortname = "kb",
    derive = "PartialEq",
    doc = "A backup of Kafka topics to object storage, run by kafka-backup once or on a schedule.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the backup stands"
    ),
    printcolumn(
        name = "Last Success",
        type_ = "date",
        json_path = ".status.lastSuccessTime",
        description = "When the last successful run finished"
    ),
    // The raw form: clippy's duplicated_attributes takes a second `type_ = "date"` inside
    // one attribute for a mistake.
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaBackupSpec {
    /// The cluster to back up.
    pub kafka_cluster: KafkaClusterSpec,
    /// Name of the backup in the storage ([A-Za-z0-9._-], 1-128 characters); default the
    /// resource's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9._-]+$"))]
    pub backup_id: Option<String>,
    /// Topics to back up; default all but internal ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<TopicSelection>,
    /// Where the backup is written.
    pub storage: StorageSpec,
    /// How segments are written and the cluster is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSettings>,
    /// Client-side encryption of everything written. When present it is honoured or the
    /// backup does not run: a block the operator cannot render fails the resource, it is never
    /// dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,
    /// Ed25519 signing key (PKCS#8 PEM) that signs object names and the descriptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_secret: Option<SecretKeyRef>,
    /// Cron schedule (five fields, e.g. `0 2 * * *`) of a CronJob; absent: one Job runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub schedule: Option<String>,
    /// Time zone of `schedule` (an IANA name such as `Europe/Berlin`); default the
    /// controller manager's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub time_zone: Option<String>,
    /// Processes backing up one run together, each a distinct subset of the partitions (an
    /// Indexed Job); default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_SHARDS))]
    pub shards: Option<i32>,
    /// Stop starting new runs (suspends the CronJob or Job); running Pods finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// How many runs are kept in the storage; older ones are pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// Service account of the backup Pods (workload identity for storage or KMS); default
    /// the namespace's default service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub service_account_name: Option<String>,
    /// CPU and memory of the backup container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// kafka-backup image; default the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
}

/// Topic selection by glob patterns (`*` and `?`). Internal topics match only patterns that
/// start with `__`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopicSelection {
    /// Patterns of topics to include; default `["*"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Patterns of topics to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// Settings of kafka-backup's `backup:` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSettings {
    /// Segment compression: zstd (default), lz4 or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// zstd level, 1-19.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 19))]
    pub compression_level: Option<i32>,
    /// Close a segment at this size, bytes (1 MiB - 1 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1_048_576, max = 1_073_741_824))]
    pub segment_max_bytes: Option<i64>,
    /// Continuous mode: close segments and write a manifest part this often, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub segment_max_interval_ms: Option<i64>,
    /// Keep following new records until stopped, rather than a snapshot; not with `schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous: Option<bool>,
    /// Partitions read at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent_partitions: Option<i32>,
    /// Most bytes of Fetch answers in flight per broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub fetch_max_bytes: Option<i64>,
    /// Fetches in flight per broker, one per connection (1-16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub connections_per_broker: Option<i32>,
    /// Capture the committed offsets of consumer groups on the topics; default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group_snapshot: Option<bool>,
    /// Continuous mode: how often to look for new topics and partitions, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub metadata_max_age_ms: Option<i64>,
}

/// Segment compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Zstandard (the default).
    Zstd,
    /// LZ4: faster, larger.
    Lz4,
    /// Uncompressed.
    None,
}

impl Compression {
    /// The spelling of kafka-backup's `backup.compression` configuration key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zstd => "zstd",
            Self::Lz4 => "lz4",
            Self::None => "none",
        }
    }
}

/// Client-side encryption of a backup (kafka-backup's `backup.encryption`). Give only the keys
/// of the chosen `keyProvider`: a key of another provider is an error, not ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncryptionSpec {
    /// false stores the backup unencrypted (logged as a warning); default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// AES-256-GCM, the one algorithm (AES-256 is accepted as the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<EncryptionAlgorithm>,
    /// Who wraps each run's data key: public-key (age recipients; the backup Pod can never
    /// decrypt), aws-kms, or local (a 256-bit key file from a Secret).
    pub key_provider: KeyProvider,
    /// public-key: age X25519 recipients (`age1...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// public-key: a ConfigMap key holding recipients, one per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_config_map: Option<ConfigMapKeyRef>,
    /// aws-kms: key id, key ARN, alias or alias ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub kms_key_id: Option<String>,
    /// aws-kms: region; default the key ARN's, else AWS_REGION.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// aws-kms: endpoint of a KMS-compatible service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// aws-kms: allow an http:// endpoint (data keys cross in clear). For test servers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// aws-kms: static credentials; absent: the Pod's AWS credential chain (IRSA, Pod Identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<AwsCredentialsSecretRef>,
    /// local: the key file (base64 or hex of 32 bytes), mounted read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret: Option<SecretKeyRef>,
}

/// The encryption algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncryptionAlgorithm {
    /// AES-256-GCM (the peer tool's AES-256 means the same).
    #[serde(rename = "AES-256-GCM", alias = "AES-256")]
    Aes256Gcm,
}

// The schema must accept the peer tool's spelling too, which schemars (leaving serde aliases
// out) would not list.
impl JsonSchema for EncryptionAlgorithm {
    fn schema_name() -> Cow<'static, str> {
        "EncryptionAlgorithm".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // As for SaslMechanism: one `const` per value, like a derived enum.
        json_schema!({
            "oneOf": [
                { "type": "string", "const": "AES-256-GCM" },
                { "type": "string", "const": "AES-256" },
            ]
        })
    }
}

/// Who wraps the data key of each run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KeyProvider {
    /// age X25519 recipients: only holders of the identities can decrypt.
    PublicKey,
    /// AWS KMS GenerateDataKey, once per run.
    AwsKms,
    /// A local 256-bit key.
    Local,
}

impl KeyProvider {
    /// The spelling of kafka-backup's `key_provider` configuration key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PublicKey => "public-key",
            Self::AwsKms => "aws-kms",
            Self::Local => "local",
        }
    }
}

/// Which runs are kept in the storage, as `kafka-backup prune` counts them: a run either rule
/// keeps stays, and the newest run always stays.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionSpec {
    /// Keep the newest this many runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<i32>,
    /// Keep runs active within this age: `30d`, `12h`, `90m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+[dhm]$"))]
    pub max_age: Option<String>,
    /// Storage credentials allowed to delete (the admin role); default `storage.credentialsSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<super::storage::StorageCredentialsSecretRef>,
    /// Finished Jobs of successful runs kept in the cluster (CronJob history); default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub successful_jobs_history_limit: Option<i32>,
    /// Finished Jobs of failed runs kept in the cluster (CronJob history); default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub failed_jobs_history_limit: Option<i32>,
}

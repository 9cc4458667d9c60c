//! The `KafkaRestore` custom resource.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backup::{KeyProvider, TopicSelection};
use super::kafka_cluster::KafkaClusterSpec;
use super::refs::{AwsCredentialsSecretRef, SecretKeyRef};
use super::status::KafkaRestoreStatus;
use super::storage::StorageSpec;

/// A restore of a backup from object storage into a Kafka cluster, run once as a Job.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kafka.oso.sh",
    version = "v1alpha1",
    kind = "KafkaRestore",
    namespaced,
    status = "KafkaRestoreStatus",
    shortname = "kr",
    derive = "PartialEq",
    doc = "A restore of a kafka-backup backup into a Kafka cluster, run once as a Job.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the restore stands"
    ),
    printcolumn(
        name = "Last Success",
        type_ = "date",
        json_path = ".status.lastSuccessTime",
        description = "When the restore finished successfully"
    ),
    // The raw form: clippy's duplicated_attributes takes a second `type_ = "date"` inside
    // one attribute for a mistake.
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaRestoreSpec {
    /// Name of the backup in the storage to restore.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9._-]+$"))]
    pub backup_id: String,
    /// Where the backup is; read access is enough.
    pub storage: StorageSpec,
    /// The cluster to restore into.
    pub kafka_cluster: KafkaClusterSpec,
    /// Topics of the backup to restore; default all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<TopicSelection>,
    /// Backed-up topic name to target topic name; other topics keep their names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topic_mapping: BTreeMap<String, String>,
    /// Which consumer groups' committed offsets are moved to the restored topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_groups: Option<ConsumerGroupsSpec>,
    /// Settings of kafka-backup's `restore:` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSettings>,
    /// Decryption keys: a key ring, one entry per key provider block. Required to restore an
    /// encrypted backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encryption: Vec<DecryptionKeySpec>,
    /// Public keys (Ed25519) the backup must be signed with; several while a key is rotated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_key_secrets: Vec<SecretKeyRef>,
    /// Service account of the restore Pod; default the namespace's default service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub service_account_name: Option<String>,
    /// CPU and memory of the restore container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// kafka-backup image; default the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
}

/// Consumer groups whose offsets are restored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumerGroupsSpec {
    /// Move consumer group offsets at all; default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Group patterns to include; default all groups in the backup's snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Group patterns to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// Settings of kafka-backup's `restore:` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreSettings {
    /// First record time restored (inclusive): RFC 3339 or epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window_start: Option<String>,
    /// Record time where the restore stops (exclusive): RFC 3339 or epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window_end: Option<String>,
    /// Create missing target topics with the backed-up partitions and configs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_topics: Option<bool>,
    /// Replication factor of created topics; default the backed-up one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub replication_factor: Option<i32>,
    /// Restore into this many partitions, placing records by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub repartition_to: Option<i32>,
    /// Plan only; nothing is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Allow writing after records a target partition already holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append: Option<bool>,
    /// Produce rate limit, bytes per second; default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_bytes_per_second: Option<i64>,
    /// Partitions produced at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrent_partitions: Option<i32>,
    /// Names this restore's progress, kept in the target cluster; default the backup id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub restore_id: Option<String>,
    /// Largest partition count a created topic may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_partitions: Option<i32>,
    /// Restore segments that nothing authenticates (an unsigned, unencrypted backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_unauthenticated: Option<bool>,
}

/// One entry of the restore's key ring (kafka-backup's `restore.encryption` list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecryptionKeySpec {
    /// The provider whose wrapped keys this entry unwraps.
    pub key_provider: KeyProvider,
    /// public-key: age identity files (age-keygen format).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_secrets: Vec<SecretKeyRef>,
    /// aws-kms: only this key may decrypt; default any key the wrapped key names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub kms_key_id: Option<String>,
    /// aws-kms: region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// aws-kms: endpoint of a KMS-compatible service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// aws-kms: allow an http:// endpoint. For test servers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// aws-kms: static credentials; absent: the Pod's AWS credential chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<AwsCredentialsSecretRef>,
    /// local: key files, the current one and older ones still needed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_secrets: Vec<SecretKeyRef>,
}

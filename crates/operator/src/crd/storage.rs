//! Where backups are stored.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The object store (or volume) holding the backups; the keys mirror kafka-backup's
/// `storage:` configuration. Without `credentialsSecret` the cloud SDK's default chain
/// applies: IRSA, EKS Pod Identity or Azure/GCP workload identity of the Pod's service account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageSpec {
    /// Storage backend: s3 (and S3-compatible stores), azure, gcs or filesystem.
    pub backend: StorageBackend,
    /// Bucket (s3, gcs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub bucket: Option<String>,
    /// Region (s3); default AWS_REGION, then us-east-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Key prefix inside the bucket or container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Endpoint of an S3-compatible store or of an Azure emulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Bucket in the path rather than the host name (s3; needed for IP endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_path_style: Option<bool>,
    /// Allow an http:// endpoint: everything crosses in clear text. For test servers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// S3 server-side encryption: AES256 or aws:kms; default the bucket's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse: Option<ServerSideEncryption>,
    /// KMS key for `sse: aws:kms`; default the AWS managed key aws/s3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// S3 Object Lock retention on every object written (s3 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockSpec>,
    /// Storage account (azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub account_name: Option<String>,
    /// Blob container (azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub container_name: Option<String>,
    /// Directory inside the Pod (filesystem); the volume of `persistentVolumeClaim` is mounted
    /// there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub path: Option<String>,
    /// PersistentVolumeClaim mounted at `path` (filesystem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub persistent_volume_claim: Option<String>,
    /// Static credentials in a Secret; absent: the Pod's workload identity or the SDK's
    /// default credential chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<StorageCredentialsSecretRef>,
    /// TCP connect and TLS handshake timeout of one request, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 600_000))]
    pub connect_timeout_ms: Option<i64>,
    /// Timeout of one whole request, body included, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 3_600_000))]
    pub request_timeout_ms: Option<i64>,
    /// Retries of one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_retries: Option<i32>,
}

/// A storage backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Amazon S3 or an S3-compatible store.
    S3,
    /// Azure Blob Storage.
    Azure,
    /// Google Cloud Storage.
    Gcs,
    /// A directory, normally on a PersistentVolumeClaim.
    Filesystem,
}

impl StorageBackend {
    /// The spelling of kafka-backup's `storage.backend` configuration key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Azure => "azure",
            Self::Gcs => "gcs",
            Self::Filesystem => "filesystem",
        }
    }
}

/// S3 server-side encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServerSideEncryption {
    /// SSE-S3.
    #[serde(rename = "AES256")]
    Aes256,
    /// SSE-KMS.
    #[serde(rename = "aws:kms")]
    AwsKms,
}

/// S3 Object Lock retention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectLockSpec {
    /// GOVERNANCE or COMPLIANCE.
    pub mode: ObjectLockMode,
    /// Each object is locked until its write plus this many days.
    #[schemars(range(min = 1, max = 36500))]
    pub retain_days: i32,
}

/// S3 Object Lock mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ObjectLockMode {
    /// Users with a special permission may shorten or remove the lock.
    Governance,
    /// Nobody can shorten or remove the lock.
    Compliance,
}

/// Storage credentials in a Secret: name the keys of the chosen backend only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageCredentialsSecretRef {
    /// Name of the Secret (same namespace as this resource).
    #[schemars(length(min = 1))]
    pub name: String,
    /// s3: key holding the access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub access_key_key: Option<String>,
    /// s3: key holding the secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub secret_key_key: Option<String>,
    /// s3: key holding a session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub session_token_key: Option<String>,
    /// azure: key holding the storage account key (or give `sasTokenKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub account_key_key: Option<String>,
    /// azure: key holding a SAS token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub sas_token_key: Option<String>,
    /// gcs: key holding a service account JSON key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub service_account_json_key: Option<String>,
}

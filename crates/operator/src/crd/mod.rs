//! Custom resource types: `KafkaBackup` and `KafkaRestore` in `kafka.oso.sh/v1alpha1`.
//!
//! Every spec struct denies unknown fields. The API server prunes unknown fields from a
//! structural schema (and `kubectl apply` reports them under strict field validation), so the
//! operator never sees them from a cluster; the same types are also used to read the examples
//! in the docs and in tests, where a misspelt key must be an error rather than a silently
//! dropped setting (a dropped `tlsSecret` would turn TLS off). kube's schema rewriter removes
//! the `additionalProperties: false` this produces, which structural schemas forbid.
//!
//! Doc comments on fields become the schema's descriptions, shown by `kubectl explain`.

mod backup;
mod kafka_cluster;
mod manifest;
mod refs;
mod restore;
mod status;
mod storage;

pub use backup::{
    BackupSettings, Compression, EncryptionAlgorithm, EncryptionSpec, KafkaBackup, KafkaBackupSpec,
    KeyProvider, MAX_SHARDS, RetentionSpec, TopicSelection,
};
pub use kafka_cluster::{
    CaSecretRef, KafkaClusterSpec, KerberosSpec, OAuthSpec, SaslMechanism, SaslSecretRef,
    SecurityProtocol, TlsSecretRef,
};
pub use manifest::{REGENERATE_COMMAND, crd_yaml, crds};
pub use refs::{AwsCredentialsSecretRef, ConfigMapKeyRef, SecretKeyRef};
pub use restore::{
    ConsumerGroupsSpec, DecryptionKeySpec, KafkaRestore, KafkaRestoreSpec, RestoreSettings,
};
pub use status::{BackupPhase, KafkaBackupStatus, KafkaRestoreStatus, LastRun, RestorePhase};
pub use storage::{
    ObjectLockMode, ObjectLockSpec, ServerSideEncryption, StorageBackend,
    StorageCredentialsSecretRef, StorageSpec,
};

/// The API group of both custom resources.
pub const GROUP: &str = "kafka.oso.sh";
/// The API version of both custom resources.
pub const VERSION: &str = "v1alpha1";

#[cfg(test)]
mod tests;

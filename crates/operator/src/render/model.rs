//! The kafka-backup configuration file as data: structs that mirror backup-core's
//! configuration keys, in the order its README lists them, so the serialised file reads like
//! a hand-written one. `config` assembles them from a resource; `cluster`, `storage` and
//! `encryption` fill their parts.

use std::collections::BTreeMap;

use serde::Serialize;

/// The whole file.
#[derive(Debug, Serialize)]
pub(super) struct ConfigFile {
    pub mode: &'static str,
    pub backup_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Cluster>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Cluster>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
    pub storage: Storage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<Restore>,
}

/// `source:` or `target:`.
#[derive(Debug, Serialize)]
pub(super) struct Cluster {
    pub bootstrap_servers: Vec<String>,
    pub security: Security,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<Topics>,
}

/// `security:`; every key of every mechanism, the unused ones left out.
#[derive(Debug, Default, Serialize)]
pub(super) struct Security {
    pub security_protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_ca_location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_certificate_location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_key_location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_key_password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_oauthbearer_token_endpoint_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_oauthbearer_client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_oauthbearer_client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_oauthbearer_scope: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sasl_oauthbearer_extensions: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_oauthbearer_ca_location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_oauthbearer_token_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_kerberos_service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_keytab_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_kerberos_principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_krb5_config_path: Option<String>,
}

/// `topics:` of `source:` or `restore:`.
#[derive(Debug, Serialize)]
pub(super) struct Topics {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// `storage:`.
#[derive(Debug, Default, Serialize)]
pub(super) struct Storage {
    pub backend: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_path_style: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sas_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
}

/// `storage.object_lock:`.
#[derive(Debug, Serialize)]
pub(super) struct ObjectLock {
    pub mode: &'static str,
    pub retain_days: i32,
}

/// `backup:`.
#[derive(Debug, Default, Serialize)]
pub(super) struct Backup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_max_bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_max_interval_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuous: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_partitions: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_max_bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_per_broker: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_group_snapshot: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_max_age_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
}

/// `backup.encryption:`, or one block of `restore.encryption:`.
#[derive(Debug, Default, Serialize)]
pub(super) struct Encryption {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<&'static str>,
    pub key_provider: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients_file: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identity_files: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_files: Vec<String>,
}

/// `restore:`.
#[derive(Debug, Default, Serialize)]
pub(super) struct Restore {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<Topics>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub topic_mapping: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_window_start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_window_end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_topics: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repartitioning: Option<Repartitioning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_groups: Option<ConsumerGroups>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes_per_second: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_partitions: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_partitions: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_unauthenticated: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub encryption: Vec<Encryption>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verify_key: Vec<String>,
}

/// `restore.repartitioning:`.
#[derive(Debug, Serialize)]
pub(super) struct Repartitioning {
    pub partitions: i32,
}

/// `restore.consumer_groups:`.
#[derive(Debug, Serialize)]
pub(super) struct ConsumerGroups {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

//! The kafka-backup configuration file a resource renders to (the ConfigMap's `config.yaml`).
//!
//! The structs below mirror backup-core's configuration keys, in the order its README lists
//! them, so the file reads like a hand-written one. Secret values appear only as
//! `${file:...}` references to the mounted Secrets (see [`super::mounts`]); every literal the
//! user wrote goes through [`literal`], so it can never turn into a reference in the Pod.

use std::collections::BTreeMap;

use serde::Serialize;

use super::RenderError;
use super::mounts::{Mounts, literal};
use crate::crd::{KafkaBackupSpec, KafkaRestoreSpec, TopicSelection};

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

/// The configuration of a backup, recording in `mounts` the Secrets and ConfigMaps it names.
pub(super) fn backup_config(
    spec: &KafkaBackupSpec,
    backup_id: &str,
    mounts: &mut Mounts,
) -> Result<ConfigFile, RenderError> {
    let shards = spec.shards.unwrap_or(1);
    let settings = spec.backup.clone().unwrap_or_default();
    if settings.continuous == Some(true) && spec.schedule.is_some() {
        return Err(RenderError::InvalidSpec {
            field: "spec.backup.continuous".into(),
            reason: "a continuous backup runs until it is stopped, so it cannot also run on \
                     spec.schedule; remove spec.schedule (one Job that keeps running) or \
                     continuous: true (a snapshot per scheduled run)"
                .into(),
        });
    }
    let mut source = super::cluster::cluster(&spec.kafka_cluster, mounts)?;
    source.topics = spec.topics.as_ref().map(topics);
    let storage = super::storage::storage(&spec.storage, mounts)?;
    let backup = Backup {
        compression: settings.compression.map(|c| c.as_str()),
        compression_level: settings.compression_level,
        segment_max_bytes: settings.segment_max_bytes,
        segment_max_interval_ms: settings.segment_max_interval_ms,
        continuous: settings.continuous,
        max_concurrent_partitions: settings.max_concurrent_partitions,
        fetch_max_bytes: settings.fetch_max_bytes,
        connections_per_broker: settings.connections_per_broker,
        consumer_group_snapshot: settings.consumer_group_snapshot,
        metadata_max_age_ms: settings.metadata_max_age_ms,
        shards: (shards > 1).then_some(shards),
        encryption: spec
            .encryption
            .as_ref()
            .map(|e| super::encryption::backup_encryption(e, mounts))
            .transpose()?,
        signing_key: spec
            .signing_key_secret
            .as_ref()
            .map(|s| mounts.secret_file(&s.name, &s.key)),
    };
    Ok(ConfigFile {
        mode: "backup",
        backup_id: literal(backup_id),
        source: Some(source),
        target: None,
        backup: Some(backup),
        storage,
        restore: None,
    })
}

/// The configuration of a restore, recording in `mounts` the Secrets and ConfigMaps it names.
pub(super) fn restore_config(
    spec: &KafkaRestoreSpec,
    mounts: &mut Mounts,
) -> Result<ConfigFile, RenderError> {
    let target = super::cluster::cluster(&spec.kafka_cluster, mounts)?;
    let storage = super::storage::storage(&spec.storage, mounts)?;
    let settings = spec.restore.clone().unwrap_or_default();
    let mut encryption = Vec::new();
    for (index, entry) in spec.encryption.iter().enumerate() {
        encryption.push(super::encryption::decryption_key(
            entry,
            &format!("spec.encryption[{index}]"),
            mounts,
        )?);
    }
    let restore = Restore {
        topics: spec.topics.as_ref().map(topics),
        topic_mapping: spec
            .topic_mapping
            .iter()
            .map(|(from, to)| (from.clone(), literal(to)))
            .collect(),
        time_window_start: settings.time_window_start.as_deref().map(literal),
        time_window_end: settings.time_window_end.as_deref().map(literal),
        create_topics: settings.create_topics,
        replication_factor: settings.replication_factor,
        repartitioning: settings
            .repartition_to
            .map(|partitions| Repartitioning { partitions }),
        dry_run: settings.dry_run,
        append: settings.append,
        consumer_groups: spec.consumer_groups.as_ref().map(|g| ConsumerGroups {
            enabled: g.enabled,
            include: g.include.iter().map(|p| literal(p)).collect(),
            exclude: g.exclude.iter().map(|p| literal(p)).collect(),
        }),
        max_bytes_per_second: settings.max_bytes_per_second,
        max_concurrent_partitions: settings.max_concurrent_partitions,
        restore_id: settings.restore_id.as_deref().map(literal),
        max_partitions: settings.max_partitions,
        accept_unauthenticated: settings.accept_unauthenticated,
        encryption,
        verify_key: spec
            .verify_key_secrets
            .iter()
            .map(|s| mounts.secret_file(&s.name, &s.key))
            .collect(),
    };
    Ok(ConfigFile {
        mode: "restore",
        backup_id: literal(&spec.backup_id),
        source: None,
        target: Some(target),
        backup: None,
        storage,
        restore: Some(restore),
    })
}

fn topics(selection: &TopicSelection) -> Topics {
    Topics {
        include: selection.include.iter().map(|p| literal(p)).collect(),
        exclude: selection.exclude.iter().map(|p| literal(p)).collect(),
    }
}

/// The file as YAML, headed by a comment saying where it comes from.
pub(super) fn to_yaml(config: &ConfigFile, resource: &str) -> Result<String, RenderError> {
    let body = serde_saphyr::to_string(config).map_err(|e| RenderError::InvalidSpec {
        // Only strings, numbers and booleans are serialised: this cannot fail on any spec,
        // but a failure must still be reported rather than applied half-written.
        field: "spec".into(),
        reason: format!("the configuration cannot be written as YAML ({e}); report this as a bug"),
    })?;
    Ok(format!(
        "# Rendered by kafka-backup-operator from {resource}: edit the resource, not this file.\n\
         # Secret values are not here: only the paths of the Secret files the Pod mounts.\n{body}"
    ))
}

//! The kafka-backup configuration file a resource renders to (the ConfigMap's `config.yaml`).
//!
//! Assembled from the resource into the structs of [`super::model`]. Secret values appear only as
//! `${file:...}` references to the mounted Secrets (see [`super::mounts`]); every literal the
//! user wrote goes through [`literal`], so it can never turn into a reference in the Pod.

use super::RenderError;
use super::model::{Backup, ConfigFile, ConsumerGroups, Repartitioning, Restore, Topics};
use super::mounts::{Mounts, literal};
use crate::crd::{KafkaBackupSpec, KafkaRestoreSpec, TopicSelection};

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

//! Rendering: pure functions from a custom resource to the Kubernetes objects that run it.
//!
//! Nothing here talks to the API server, so every rule of what is rendered (Secret keys as
//! `secretKeyRef` env vars or files mounted at mode 0400, the Pod's security context, Indexed
//! Jobs for `shards > 1`, owner references to the custom resource) is testable without a
//! cluster. The controller applies what these functions return with server-side apply.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, ResourceRequirements};

use crate::crd::{KafkaBackup, KafkaRestore};

/// What the operator knows that the custom resource does not say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RenderContext {
    /// kafka-backup image used unless the resource sets `spec.image`; the operator's own image,
    /// so the CLI and the operator that renders its configuration are of one version.
    pub image: String,
    /// Image pull policy of rendered containers; default the cluster's (by tag).
    pub image_pull_policy: Option<String>,
    /// Service account of rendered Pods when the resource names none.
    pub default_service_account_name: Option<String>,
    /// Resources of the container when the resource sets none.
    pub default_resources: Option<ResourceRequirements>,
    /// Labels added to every rendered object and Pod, besides the operator's own.
    pub extra_labels: BTreeMap<String, String>,
}

/// The objects that run one custom resource, to be applied together.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The kafka-backup configuration (YAML), holding secrets only as `${VAR}` and
    /// `${file:/path}` references.
    pub config_map: ConfigMap,
    /// The CronJob (scheduled backup) or Job (one-off backup, restore) running kafka-backup.
    pub workload: Workload,
}

/// The object that runs kafka-backup.
#[derive(Clone, Debug, PartialEq)]
// The variants differ by a tenth of their size and one exists per render; boxing would only
// add a dereference to every use.
#[allow(clippy::large_enum_variant)]
pub enum Workload {
    /// A scheduled backup.
    CronJob(CronJob),
    /// A one-off backup or a restore; an Indexed Job when the backup has `shards > 1`.
    Job(Job),
}

/// Why a custom resource cannot be rendered. Every variant but [`RenderError::NotImplemented`]
/// is something the resource's author must fix in the spec: the controller reports it as a
/// status condition whose reason is [`RenderError::reason`] and applies nothing, so a backup
/// never runs with less than was asked for (fail closed).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// A Secret reference lacks the key name a setting needs (e.g. `certKey` without
    /// `keyKey`).
    #[error("{field} (Secret {secret}) needs {missing}: {hint}")]
    MissingSecretKey {
        /// Path of the reference in the spec, e.g. `spec.kafkaCluster.tlsSecret`.
        field: String,
        /// Name of the Secret referenced.
        secret: String,
        /// The key-name field that is missing, e.g. `keyKey`.
        missing: String,
        /// What to set, in the user's terms.
        hint: String,
    },
    /// An `encryption` block that cannot be honoured as written; the backup must not run
    /// unencrypted or differently encrypted instead.
    #[error("{field} cannot be honoured: {reason}")]
    Encryption {
        /// Path of the offending setting, e.g. `spec.encryption.keySecret`.
        field: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// `schedule` is not a five-field cron expression (or a `@hourly`-style macro).
    #[error("spec.schedule {schedule:?} is not a valid cron schedule: {reason}")]
    InvalidSchedule {
        /// The schedule as written.
        schedule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `shards` outside 1..=max.
    #[error("spec.shards is {shards}; it must be between 1 and {max}")]
    ShardsOutOfRange {
        /// The value written.
        shards: i32,
        /// The largest accepted.
        max: i32,
    },
    /// Any other spec inconsistency (a key of another storage backend, SASL credentials with a
    /// protocol that does not use SASL, a continuous backup with a schedule, ...).
    #[error("{field}: {reason}")]
    InvalidSpec {
        /// Path of the offending setting.
        field: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The object lacks metadata that rendering needs (name, namespace, uid for owner
    /// references): it did not come from the API server.
    #[error("the resource has no {field}")]
    MissingMetadata {
        /// e.g. `metadata.uid`.
        field: String,
    },
    /// PHASE 1 of the operator's development: the render functions are declared but their
    /// bodies are not written yet. Exists on the `operator` branch only.
    #[error("rendering {what} is not implemented yet")]
    NotImplemented {
        /// What cannot be rendered yet.
        what: String,
    },
}

impl RenderError {
    /// The CamelCase reason of the status condition that reports this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingSecretKey { .. } => "MissingSecretKey",
            Self::Encryption { .. } => "EncryptionUnusable",
            Self::InvalidSchedule { .. } => "InvalidSchedule",
            Self::ShardsOutOfRange { .. } => "ShardsOutOfRange",
            Self::InvalidSpec { .. } => "InvalidSpec",
            Self::MissingMetadata { .. } => "MissingMetadata",
            Self::NotImplemented { .. } => "NotImplemented",
        }
    }
}

/// Renders the ConfigMap and the CronJob (with `schedule`) or Job of a `KafkaBackup`.
pub fn render_backup(kb: &KafkaBackup, ctx: &RenderContext) -> Result<Rendered, RenderError> {
    // PHASE 1: the API is fixed so the controller and the renderer can be written in parallel;
    // the next helper replaces this body. This never reaches main.
    let _ = (kb, ctx);
    Err(RenderError::NotImplemented {
        what: "KafkaBackup".into(),
    })
}

/// Renders the ConfigMap and the Job of a `KafkaRestore`.
pub fn render_restore(kr: &KafkaRestore, ctx: &RenderContext) -> Result<Rendered, RenderError> {
    // PHASE 1: as in render_backup; the next helper replaces this body.
    let _ = (kr, ctx);
    Err(RenderError::NotImplemented {
        what: "KafkaRestore".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! Rendering: pure functions from a custom resource to the Kubernetes objects that run it.
//!
//! Nothing here talks to the API server, so every rule of what is rendered (each Secret the
//! resource names mounted whole and read-only at mode 0400, the Pod's security context,
//! Indexed Jobs for `shards > 1`, owner references to the custom resource) is testable without
//! a cluster. The controller applies what these functions return with server-side apply.
//!
//! - `config`: the kafka-backup configuration (the ConfigMap's `config.yaml`), built from
//!   `cluster`, `storage` and `encryption`; secrets only as `${file:...}` references.
//! - `mounts`: the paths the configuration and the Pod agree on.
//! - `pod` and `workload`: the Pod template and the Job or CronJob around it.
//! - `schedule`: validation of cron schedules in the API server's dialect.

mod cluster;
mod config;
mod encryption;
mod model;
mod mounts;
mod pod;
mod schedule;
mod storage;
mod workload;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::crd::{KafkaBackup, KafkaRestore, MAX_SHARDS, StorageSpec};
use mounts::{CONFIG_KEY, Mounts};
use pod::PodInputs;

pub use mounts::{CONFIG_DIR, CONFIG_MAPS_DIR, TERMINATION_LOG, TMP_DIR, secret_dir};
pub use pod::{CONTAINER, METRICS_PORT, RUN_AS, SECRET_MODE};
pub use workload::{BACKOFF_LIMIT, FINAL_EXIT_CODES};

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

/// Why a custom resource cannot be rendered. Every variant is something the resource's author
/// must fix in the spec: the controller reports it as a
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
    #[error(
        "the resource has no {field}: render it as the API server returns it, with a name, a namespace and a uid"
    )]
    MissingMetadata {
        /// e.g. `metadata.uid`.
        field: String,
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
        }
    }
}

/// The `app.kubernetes.io/name` of everything rendered.
pub const APP_NAME: &str = "kafka-backup";
/// The `app.kubernetes.io/managed-by` of everything rendered; the controller's watches select
/// by it.
pub const MANAGED_BY: &str = "kafka-backup-operator";
/// The label whose value is the `KafkaBackup`'s name, on everything rendered for it.
pub const BACKUP_LABEL: &str = "kafka.oso.sh/backup";
/// The label whose value is the `KafkaRestore`'s name, on everything rendered for it.
pub const RESTORE_LABEL: &str = "kafka.oso.sh/restore";

/// Longest name of a Job: its name is the value of the `batch.kubernetes.io/job-name` label
/// of its Pods, and label values have at most 63 characters.
const MAX_JOB_NAME: usize = 63;
/// Longest name of a CronJob: Kubernetes appends an 11-character suffix to name its Jobs.
const MAX_CRON_JOB_NAME: usize = 52;
/// Longest backup id kafka-backup accepts.
const MAX_BACKUP_ID: usize = 128;

/// Renders the ConfigMap and the CronJob (with `schedule`) or Job of a `KafkaBackup`.
pub fn render_backup(kb: &KafkaBackup, ctx: &RenderContext) -> Result<Rendered, RenderError> {
    let spec = &kb.spec;
    let identity = Identity::of(kb)?;
    let shards = spec.shards.unwrap_or(1);
    if !(1..=MAX_SHARDS).contains(&shards) {
        return Err(RenderError::ShardsOutOfRange {
            shards,
            max: MAX_SHARDS,
        });
    }
    if let Some(schedule) = &spec.schedule {
        schedule::validate(schedule).map_err(|reason| RenderError::InvalidSchedule {
            schedule: schedule.clone(),
            reason,
        })?;
    }
    let max_name = if spec.schedule.is_some() {
        MAX_CRON_JOB_NAME
    } else {
        MAX_JOB_NAME
    };
    identity.check_name_length(
        max_name,
        if spec.schedule.is_some() {
            "CronJob"
        } else {
            "Job"
        },
    )?;
    if let Some(retention) = &spec.retention {
        let pruning = [
            ("keepLast", retention.keep_last.is_some()),
            ("maxAge", retention.max_age.is_some()),
            ("credentialsSecret", retention.credentials_secret.is_some()),
        ];
        if let Some((field, _)) = pruning.iter().find(|(_, set)| *set) {
            // Pruning needs the admin identity and, for signed backups, the admin's keys; a
            // resource that asks for it must not run as if it had not.
            return Err(RenderError::InvalidSpec {
                field: format!("spec.retention.{field}"),
                reason: "pruning runs from the storage is not run by this operator version; \
                         remove keepLast, maxAge and credentialsSecret, and run `kafka-backup \
                         prune --execute` with the admin role's credentials (a CronJob of your \
                         own, see docs/kubernetes.md). successfulJobsHistoryLimit and \
                         failedJobsHistoryLimit are honoured"
                    .into(),
            });
        }
    }
    let backup_id = spec
        .backup_id
        .clone()
        .unwrap_or_else(|| identity.name.clone());
    if backup_id.len() > MAX_BACKUP_ID {
        return Err(RenderError::InvalidSpec {
            field: "spec.backupId".into(),
            reason: format!(
                "the backup id defaults to the resource's name, which has {} characters; a \
                 backup id has at most {MAX_BACKUP_ID}: set spec.backupId",
                backup_id.len()
            ),
        });
    }
    let mut mounts = Mounts::default();
    let config = config::backup_config(spec, &backup_id, &mut mounts)?;
    mounts.check()?;
    let yaml = config::to_yaml(&config, &identity.describe("KafkaBackup"))?;

    let labels = labels(BACKUP_LABEL, &identity.name, ctx);
    let config_map = identity.config_map(yaml, &labels);
    let pod = pod::pod_template(
        pod_inputs(
            "backup",
            Overrides {
                image: spec.image.as_ref(),
                service_account_name: spec.service_account_name.as_ref(),
                resources: spec.resources.as_ref(),
            },
            &spec.storage,
            &identity.name,
            &labels,
            ctx,
        ),
        &mounts,
    );
    let metadata = identity.metadata(identity.name.clone(), &labels);
    let workload = match &spec.schedule {
        Some(schedule) => Workload::CronJob(workload::cron_job(
            metadata,
            // The CronJob is what a suspended schedule suspends; its Jobs run when started.
            workload::job_spec(pod, shards, None),
            workload::Schedule {
                schedule: schedule.trim().to_owned(),
                time_zone: spec.time_zone.clone(),
                suspend: spec.suspend,
                successful_jobs_history_limit: spec
                    .retention
                    .as_ref()
                    .and_then(|r| r.successful_jobs_history_limit),
                failed_jobs_history_limit: spec
                    .retention
                    .as_ref()
                    .and_then(|r| r.failed_jobs_history_limit),
            },
        )),
        None => {
            if spec.time_zone.is_some() {
                return Err(RenderError::InvalidSpec {
                    field: "spec.timeZone".into(),
                    reason: "is the time zone of spec.schedule, which is not set; remove it, \
                             or add a schedule"
                        .into(),
                });
            }
            Workload::Job(workload::job(
                metadata,
                workload::job_spec(pod, shards, spec.suspend),
            ))
        }
    };
    Ok(Rendered {
        config_map,
        workload,
    })
}

/// Renders the ConfigMap and the Job of a `KafkaRestore`.
pub fn render_restore(kr: &KafkaRestore, ctx: &RenderContext) -> Result<Rendered, RenderError> {
    let spec = &kr.spec;
    let identity = Identity::of(kr)?;
    let job_name = format!("{}-restore", identity.name);
    if job_name.len() > MAX_JOB_NAME {
        return Err(RenderError::InvalidSpec {
            field: "metadata.name".into(),
            reason: format!(
                "names the Job {job_name}, longer than the {MAX_JOB_NAME} characters a Job name \
                 may have; use a name of at most {} characters",
                MAX_JOB_NAME - "-restore".len()
            ),
        });
    }
    let mut mounts = Mounts::default();
    let config = config::restore_config(spec, &mut mounts)?;
    mounts.check()?;
    let yaml = config::to_yaml(&config, &identity.describe("KafkaRestore"))?;

    let labels = labels(RESTORE_LABEL, &identity.name, ctx);
    let config_map = identity.config_map(yaml, &labels);
    let pod = pod::pod_template(
        pod_inputs(
            "restore",
            Overrides {
                image: spec.image.as_ref(),
                service_account_name: spec.service_account_name.as_ref(),
                resources: spec.resources.as_ref(),
            },
            &spec.storage,
            &identity.name,
            &labels,
            ctx,
        ),
        &mounts,
    );
    let job = workload::job(
        identity.metadata(job_name, &labels),
        workload::job_spec(pod, 1, None),
    );
    Ok(Rendered {
        config_map,
        workload: Workload::Job(job),
    })
}

/// The name of the ConfigMap rendered for the resource `name`.
pub fn config_map_name(name: &str) -> String {
    format!("{name}-config")
}

/// The labels of everything rendered for a resource: the operator's own win over the
/// context's extra labels.
fn labels(label: &str, name: &str, ctx: &RenderContext) -> BTreeMap<String, String> {
    let mut labels = ctx.extra_labels.clone();
    for (key, value) in [
        ("app.kubernetes.io/name", APP_NAME),
        ("app.kubernetes.io/managed-by", MANAGED_BY),
        ("app.kubernetes.io/instance", name),
        (label, name),
    ] {
        labels.insert(key.to_owned(), value.to_owned());
    }
    labels
}

/// What a resource may set for its own Pods instead of the operator's defaults.
struct Overrides<'a> {
    image: Option<&'a String>,
    service_account_name: Option<&'a String>,
    resources: Option<&'a ResourceRequirements>,
}

/// The Pod of a resource's runs: its own choices, else the operator's defaults.
fn pod_inputs(
    command: &'static str,
    own: Overrides<'_>,
    storage: &StorageSpec,
    name: &str,
    labels: &BTreeMap<String, String>,
    ctx: &RenderContext,
) -> PodInputs {
    PodInputs {
        command,
        image: own.image.unwrap_or(&ctx.image).clone(),
        image_pull_policy: ctx.image_pull_policy.clone(),
        service_account_name: own
            .service_account_name
            .or(ctx.default_service_account_name.as_ref())
            .cloned(),
        resources: own.resources.or(ctx.default_resources.as_ref()).cloned(),
        config_map: config_map_name(name),
        labels: labels.clone(),
        volume_claim: volume_claim(storage),
    }
}

fn volume_claim(storage: &StorageSpec) -> Option<(String, String)> {
    Some((
        storage.persistent_volume_claim.clone()?,
        storage.path.clone()?,
    ))
}

/// The metadata of a resource that rendering needs.
struct Identity {
    name: String,
    namespace: String,
    owner: OwnerReference,
}

impl Identity {
    fn of<K: Resource<DynamicType = ()>>(resource: &K) -> Result<Self, RenderError> {
        let meta = resource.meta();
        let missing = |field: &str| RenderError::MissingMetadata {
            field: field.into(),
        };
        let name = meta.name.clone().ok_or_else(|| missing("metadata.name"))?;
        let namespace = meta
            .namespace
            .clone()
            .ok_or_else(|| missing("metadata.namespace"))?;
        meta.uid.as_ref().ok_or_else(|| missing("metadata.uid"))?;
        let mut owner = resource
            .controller_owner_ref(&())
            .ok_or_else(|| missing("metadata.uid"))?;
        // Foreground deletion of the resource waits for its Jobs, whose Pods then stop
        // cleanly (storing their open segments) before it is gone.
        owner.block_owner_deletion = Some(true);
        Ok(Self {
            name,
            namespace,
            owner,
        })
    }

    fn describe(&self, kind: &str) -> String {
        format!("{kind} {}/{}", self.namespace, self.name)
    }

    fn check_name_length(&self, max: usize, kind: &str) -> Result<(), RenderError> {
        if self.name.len() <= max {
            return Ok(());
        }
        Err(RenderError::InvalidSpec {
            field: "metadata.name".into(),
            reason: format!(
                "has {} characters, but it names the {kind}, which may have at most {max}; \
                 use a shorter name (spec.backupId keeps the backup's name in the storage)",
                self.name.len()
            ),
        })
    }

    fn metadata(&self, name: String, labels: &BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    fn config_map(&self, yaml: String, labels: &BTreeMap<String, String>) -> ConfigMap {
        ConfigMap {
            metadata: self.metadata(config_map_name(&self.name), labels),
            data: Some(BTreeMap::from([(CONFIG_KEY.to_owned(), yaml)])),
            ..ConfigMap::default()
        }
    }
}

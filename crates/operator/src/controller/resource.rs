//! What the reconciler needs to know of each custom resource, so one reconciler serves both.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crd::{
    BackupPhase, KafkaBackup, KafkaBackupStatus, KafkaRestore, KafkaRestoreStatus, LastRun,
    RestorePhase,
};
use crate::render::{self, RenderContext, RenderError, Rendered};

/// The label on every object rendered for a `KafkaBackup`, valued with its name.
pub const BACKUP_LABEL: &str = "kafka.oso.sh/backup";
/// The label on every object rendered for a `KafkaRestore`, valued with its name.
pub const RESTORE_LABEL: &str = "kafka.oso.sh/restore";

/// A custom resource the operator reconciles.
pub trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// The status subresource's type.
    type Status: Clone + Debug + PartialEq + Serialize;

    /// The label whose value is the resource's name on its rendered objects and Pods.
    const LABEL: &'static str;

    /// The objects that run it.
    fn render(&self, ctx: &RenderContext) -> Result<Rendered, RenderError>;

    /// `spec.suspend`: no new runs start.
    fn suspended(&self) -> bool;

    /// The current status, if any was written.
    fn status(&self) -> Option<&Self::Status>;

    /// The status as the reconciler works with it.
    fn to_observed(status: &Self::Status) -> Observed;

    /// The status the reconciler computed, as this resource writes it.
    fn from_observed(observed: Observed) -> Self::Status;
}

/// Where a resource stands, for both kinds (a restore is never `Scheduled` or `Suspended`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The objects are not in place yet, or the Job has not started.
    Pending,
    /// A CronJob waits for its schedule.
    Scheduled,
    /// A run is going on.
    Running,
    /// The last run succeeded.
    Succeeded,
    /// The last run failed, or the spec cannot be rendered.
    Failed,
    /// No new runs start.
    Suspended,
}

/// The status of either kind, as the reconciler computes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Where it stands.
    pub phase: Option<Phase>,
    /// The generation described.
    pub observed_generation: Option<i64>,
    /// The most recent run.
    pub last_run: Option<LastRun>,
    /// Records of the last successful run, summed over its shards.
    pub records: Option<i64>,
    /// Bytes of the last successful run, summed over its shards.
    pub bytes: Option<i64>,
    /// When the last successful run finished.
    pub last_success_time: Option<Time>,
    /// Conditions.
    pub conditions: Vec<Condition>,
}

impl Managed for KafkaBackup {
    type Status = KafkaBackupStatus;
    const LABEL: &'static str = BACKUP_LABEL;

    fn render(&self, ctx: &RenderContext) -> Result<Rendered, RenderError> {
        render::render_backup(self, ctx)
    }

    fn suspended(&self) -> bool {
        self.spec.suspend.unwrap_or(false)
    }

    fn status(&self) -> Option<&KafkaBackupStatus> {
        self.status.as_ref()
    }

    fn to_observed(status: &KafkaBackupStatus) -> Observed {
        Observed {
            phase: status.phase.map(|phase| match phase {
                BackupPhase::Pending => Phase::Pending,
                BackupPhase::Scheduled => Phase::Scheduled,
                BackupPhase::Running => Phase::Running,
                BackupPhase::Succeeded => Phase::Succeeded,
                BackupPhase::Failed => Phase::Failed,
                BackupPhase::Suspended => Phase::Suspended,
            }),
            observed_generation: status.observed_generation,
            last_run: status.last_run.clone(),
            records: status.records,
            bytes: status.bytes,
            last_success_time: status.last_success_time.clone(),
            conditions: status.conditions.clone(),
        }
    }

    fn from_observed(observed: Observed) -> KafkaBackupStatus {
        KafkaBackupStatus {
            phase: observed.phase.map(|phase| match phase {
                Phase::Pending => BackupPhase::Pending,
                Phase::Scheduled => BackupPhase::Scheduled,
                Phase::Running => BackupPhase::Running,
                Phase::Succeeded => BackupPhase::Succeeded,
                Phase::Failed => BackupPhase::Failed,
                Phase::Suspended => BackupPhase::Suspended,
            }),
            observed_generation: observed.observed_generation,
            last_run: observed.last_run,
            records: observed.records,
            bytes: observed.bytes,
            last_success_time: observed.last_success_time,
            conditions: observed.conditions,
        }
    }
}

impl Managed for KafkaRestore {
    type Status = KafkaRestoreStatus;
    const LABEL: &'static str = RESTORE_LABEL;

    fn render(&self, ctx: &RenderContext) -> Result<Rendered, RenderError> {
        render::render_restore(self, ctx)
    }

    fn suspended(&self) -> bool {
        false
    }

    fn status(&self) -> Option<&KafkaRestoreStatus> {
        self.status.as_ref()
    }

    fn to_observed(status: &KafkaRestoreStatus) -> Observed {
        Observed {
            phase: status.phase.map(|phase| match phase {
                RestorePhase::Pending => Phase::Pending,
                RestorePhase::Running => Phase::Running,
                RestorePhase::Succeeded => Phase::Succeeded,
                RestorePhase::Failed => Phase::Failed,
            }),
            observed_generation: status.observed_generation,
            last_run: status.last_run.clone(),
            records: status.records,
            bytes: status.bytes,
            last_success_time: status.last_success_time.clone(),
            conditions: status.conditions.clone(),
        }
    }

    fn from_observed(observed: Observed) -> KafkaRestoreStatus {
        KafkaRestoreStatus {
            phase: observed.phase.map(|phase| match phase {
                // A restore has no schedule and cannot be suspended.
                Phase::Pending | Phase::Scheduled | Phase::Suspended => RestorePhase::Pending,
                Phase::Running => RestorePhase::Running,
                Phase::Succeeded => RestorePhase::Succeeded,
                Phase::Failed => RestorePhase::Failed,
            }),
            observed_generation: observed.observed_generation,
            last_run: observed.last_run,
            records: observed.records,
            bytes: observed.bytes,
            last_success_time: observed.last_success_time,
            conditions: observed.conditions,
        }
    }
}

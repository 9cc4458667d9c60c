//! The controller: one kube-runtime `Controller` for `KafkaBackup` and one for `KafkaRestore`.
//!
//! Each reconciliation of a resource:
//! 1. on deletion, stops its Jobs cleanly (foreground deletion, so their Pods get SIGTERM and
//!    store their open segments), waits until they are gone, then removes the finalizer
//!    ([`FINALIZER`]);
//! 2. otherwise adds the finalizer first, renders the resource ([`crate::render`]) and, when it
//!    renders, applies the ConfigMap and the CronJob or Job with server-side apply (field
//!    manager [`FIELD_MANAGER`]) and an owner reference to the resource; when it does not,
//!    applies nothing (an encryption block that cannot be honoured never runs unencrypted) and
//!    says why in the status;
//! 3. computes the status from the resource's Jobs and the JSON summaries their Pods left as
//!    termination messages, and patches the status subresource when it changed.
//!
//! The operator never reads Secrets: the Pods mount them, and report what went wrong with
//! them (a missing key) in their summaries.

mod error;
mod finalizer;
mod identity;
mod reconcile;
mod resource;
mod run;
mod status;
mod summary;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Client;

use crate::render::RenderContext;

pub use error::{Disposition, Error};
pub use reconcile::reconcile;
pub use resource::{BACKUP_LABEL, Managed, Observed, Phase, RESTORE_LABEL};
pub use run::{Config, PreflightError, connect, preflight, run};
pub use summary::{JobReport, RunSummary};

/// The field manager of the operator's server-side applies.
pub const FIELD_MANAGER: &str = "kafka-backup-operator";
/// The finalizer that keeps a resource until its running Jobs have stopped.
pub const FINALIZER: &str = "kafka.oso.sh/finalizer";
/// The `app.kubernetes.io/managed-by` value on everything the operator applies; its watches of
/// Jobs and Pods select by it.
pub const MANAGED_BY: &str = "kafka-backup-operator";

/// What every reconciliation shares.
pub struct Context {
    client: Client,
    render: RenderContext,
    /// Failures in a row per resource (`Kind/namespace/name`), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context reconciling through `client`, rendering with `render`.
    pub fn new(client: Client, render: RenderContext) -> Self {
        Self {
            client,
            render,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one more failure of `key` and returns how many in a row.
    fn failed(&self, key: &str) -> u32 {
        match self.failures.lock() {
            Ok(mut failures) => {
                let count = failures.entry(key.to_owned()).or_insert(0);
                *count = count.saturating_add(1);
                *count
            }
            // A poisoned lock only loses the count: back off as after a first failure.
            Err(_) => 1,
        }
    }

    fn succeeded(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

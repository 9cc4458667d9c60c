//! The finalizer: a deleted resource stays until its running Jobs have stopped cleanly.
//!
//! Without it, the garbage collector would remove the CronJob, Jobs and Pods in the
//! background while the resource is already gone. With it, the operator deletes the Jobs in
//! the foreground (each Job stays until its Pods are gone; each Pod gets SIGTERM and its grace
//! period, in which kafka-backup stores its open segments and manifest), waits for them, and
//! only then lets the resource go.

use std::time::Duration;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, TestOperation};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::error::Error;
use super::identity::{Identity, list};
use super::resource::Managed;
use super::{Context, FINALIZER};

/// How soon a deletion looks again whether the Jobs are gone.
const STOP_POLL: Duration = Duration::from_secs(5);

/// Adds the finalizer, failing (and retrying) rather than duplicating it when another writer
/// changed the list meanwhile.
pub(super) async fn add<K: Managed>(obj: &K, ctx: &Context, id: &Identity) -> Result<(), Error> {
    let finalizers = obj.finalizers();
    let list = PointerBuf::from_tokens(["metadata", "finalizers"]);
    let patch = if finalizers.is_empty() {
        vec![
            PatchOperation::Test(TestOperation {
                path: list.clone(),
                value: Value::Null,
            }),
            PatchOperation::Add(AddOperation {
                path: list,
                value: Value::from(vec![FINALIZER]),
            }),
        ]
    } else {
        vec![
            PatchOperation::Test(TestOperation {
                path: list,
                value: Value::from(finalizers.to_vec()),
            }),
            PatchOperation::Add(AddOperation {
                path: PointerBuf::from_tokens(["metadata", "finalizers", "-"]),
                value: Value::from(FINALIZER),
            }),
        ]
    };
    id.api::<K>(ctx)
        .patch(
            &id.name,
            &PatchParams::default(),
            &Patch::<()>::Json(json_patch::Patch(patch)),
        )
        .await
        .map_err(|source| Error::Api {
            action: format!("adding the finalizer {FINALIZER} to {}", id.describe),
            source,
        })?;
    Ok(())
}

/// The deleted resource's cleanup: stop its CronJobs and Jobs in the foreground, wait until
/// they are gone, then remove the finalizer.
pub(super) async fn cleanup<K: Managed>(
    obj: &K,
    ctx: &Context,
    id: &Identity,
) -> Result<Action, Error> {
    let Some(index) = obj.finalizers().iter().position(|f| f == FINALIZER) else {
        // Someone else's finalizer holds it: nothing of ours to do.
        return Ok(Action::await_change());
    };
    let selector = id.selector::<K>();

    let mut crons = list::<CronJob>(ctx, id, &selector).await?;
    crons.retain(|cron| id.owns(&cron.metadata, &[]));
    let cron_uids: Vec<String> = crons
        .iter()
        .filter_map(|c| c.metadata.uid.clone())
        .collect();
    for cron in &crons {
        delete_foreground(cron, ctx, id).await?;
    }
    let mut jobs = list::<Job>(ctx, id, &selector).await?;
    jobs.retain(|job| id.owns(&job.metadata, &cron_uids));
    for job in &jobs {
        delete_foreground(job, ctx, id).await?;
    }
    if !crons.is_empty() || !jobs.is_empty() {
        tracing::info!(
            resource = %id.describe,
            cronjobs = crons.len(),
            jobs = jobs.len(),
            "deleted: waiting for its Jobs to stop before removing the finalizer"
        );
        return Ok(Action::requeue(STOP_POLL));
    }

    // By index, tested first: never removes another controller's finalizer that moved.
    let at = PointerBuf::from_tokens([
        "metadata".to_owned(),
        "finalizers".to_owned(),
        index.to_string(),
    ]);
    let patch = json_patch::Patch(vec![
        PatchOperation::Test(TestOperation {
            path: at.clone(),
            value: Value::from(FINALIZER),
        }),
        PatchOperation::Remove(RemoveOperation { path: at }),
    ]);
    match id
        .api::<K>(ctx)
        .patch(&id.name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        // Gone already: nothing holds it.
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(Action::await_change()),
        Err(source) => Err(Error::Api {
            action: format!("removing the finalizer {FINALIZER} from {}", id.describe),
            source,
        }),
    }
}

/// Deletes `object` in the foreground unless it is being deleted already; gone is fine.
async fn delete_foreground<T>(object: &T, ctx: &Context, id: &Identity) -> Result<(), Error>
where
    T: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if object.meta().deletion_timestamp.is_some() {
        return Ok(());
    }
    let name = object.name_any();
    match id
        .api::<T>(ctx)
        .delete(&name, &DeleteParams::foreground())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(source) => Err(Error::Api {
            action: format!(
                "deleting {} {}/{name} of the deleted {}",
                T::kind(&()),
                id.namespace,
                id.describe
            ),
            source,
        }),
    }
}

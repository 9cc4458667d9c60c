//! One reconciliation of a resource: finalizer, render, server-side apply, status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::{Disposition, Error};
use super::identity::{Identity, list};
use super::resource::{Managed, Observed, Phase};
use super::status::{self, Inputs};
use super::{Context, FIELD_MANAGER, FINALIZER, MANAGED_BY, finalizer};
use crate::render::{RenderError, Rendered, Workload};

/// How often a resource is looked at again without a change: a safety net under the watches.
const RESYNC: Duration = Duration::from_secs(300);
/// How often while a run goes on.
const RESYNC_RUNNING: Duration = Duration::from_secs(60);

/// Reconciles one resource (the `Controller`'s reconciler).
pub async fn reconcile<K: Managed>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let result = reconcile_with(obj.as_ref(), &ctx, |obj: &K| obj.render(&ctx.render)).await;
    if result.is_ok() {
        ctx.succeeded(&key(obj.as_ref()));
    }
    result
}

/// What to do after a failed reconciliation (the `Controller`'s error policy): back off, by
/// more when a person must fix something.
pub fn error_policy<K: Managed>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = key(obj.as_ref());
    let failures = ctx.failed(&key);
    let delay = error.backoff(failures);
    match error.disposition() {
        Disposition::Retry => {
            tracing::warn!(resource = %key, failures, retry_in_s = delay.as_secs(), "{error}")
        }
        Disposition::UserMustFix => {
            tracing::error!(resource = %key, failures, retry_in_s = delay.as_secs(), "{error}")
        }
    }
    Action::requeue(delay)
}

/// `Kind/namespace/name`, for logs and the backoff.
pub(super) fn key<K: Managed>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// The reconciliation with the render step given, so tests can hand it any outcome.
pub(super) async fn reconcile_with<K: Managed>(
    obj: &K,
    ctx: &Context,
    render: impl FnOnce(&K) -> Result<Rendered, RenderError>,
) -> Result<Action, Error> {
    let id = Identity::of(obj)?;
    if obj.meta().deletion_timestamp.is_some() {
        return finalizer::cleanup(obj, ctx, &id).await;
    }
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        finalizer::add(obj, ctx, &id).await?;
    }
    let previous = obj.status().map(K::to_observed);
    let generation = obj.meta().generation;
    let now = Time(Timestamp::now());

    let rendered = match render(obj) {
        Ok(rendered) => rendered,
        Err(error) => {
            tracing::info!(resource = %id.describe, reason = error.reason(), "{error}");
            let observed = status::render_failed(previous.as_ref(), generation, &error, &now);
            write_status(obj, ctx, &id, observed).await?;
            // The spec must change before anything else can happen.
            return Ok(Action::await_change());
        }
    };

    let (workload, jobs, pods) = match apply_and_read::<K>(obj, ctx, &id, rendered).await {
        Ok(found) => found,
        Err(error) if error.disposition() == Disposition::UserMustFix => {
            let reason = match error.status_code() {
                Some(401 | 403) => "Forbidden",
                _ => "ApplyRejected",
            };
            let observed = status::apply_failed(
                previous.as_ref(),
                generation,
                reason,
                error.to_string(),
                &now,
            );
            write_status(obj, ctx, &id, observed).await?;
            return Err(error);
        }
        Err(error) => return Err(error),
    };

    let observed = status::observe(Inputs {
        generation,
        previous: previous.as_ref(),
        workload: &workload.describe(),
        scheduled: matches!(workload, Applied::CronJob { .. }),
        suspended: obj.suspended(),
        jobs: &jobs,
        pods: &pods,
        now: &now,
    });
    let running = observed.phase == Some(Phase::Running);
    write_status(obj, ctx, &id, observed).await?;
    Ok(Action::requeue(if running {
        RESYNC_RUNNING
    } else {
        RESYNC
    }))
}

/// What runs the resource, once applied.
enum Applied {
    CronJob { name: String },
    Job { name: String },
}

impl Applied {
    fn describe(&self) -> String {
        match self {
            Self::CronJob { name } => format!("CronJob {name}"),
            Self::Job { name } => format!("Job {name}"),
        }
    }
}

/// Applies the rendered objects and reads the resource's Jobs and their Pods.
async fn apply_and_read<K: Managed>(
    obj: &K,
    ctx: &Context,
    id: &Identity,
    rendered: Rendered,
) -> Result<(Applied, Vec<Job>, Vec<Pod>), Error> {
    let Rendered {
        mut config_map,
        workload,
    } = rendered;
    adopt::<K>(&mut config_map.metadata, id, "ConfigMap")?;
    apply::<ConfigMap>(ctx, id, &config_map).await?;

    let mut cron_uids = Vec::new();
    let (applied, job) = match workload {
        Workload::CronJob(mut cron) => {
            let name = adopt::<K>(&mut cron.metadata, id, "CronJob")?;
            let spec = cron.spec.get_or_insert_with(Default::default);
            // The CronJob's Jobs and Pods carry the labels too: the watches map them back.
            let template = &mut spec.job_template;
            label::<K>(template.metadata.get_or_insert_with(Default::default), id);
            if let Some(job_spec) = template.spec.as_mut() {
                label::<K>(
                    job_spec
                        .template
                        .metadata
                        .get_or_insert_with(Default::default),
                    id,
                );
            }
            spec.suspend = Some(obj.suspended());
            let applied = apply::<CronJob>(ctx, id, &cron).await?;
            cron_uids.extend(applied.metadata.uid);
            (Applied::CronJob { name }, None)
        }
        Workload::Job(mut job) => {
            let name = adopt::<K>(&mut job.metadata, id, "Job")?;
            if let Some(spec) = job.spec.as_mut() {
                label::<K>(
                    spec.template.metadata.get_or_insert_with(Default::default),
                    id,
                );
            }
            (Applied::Job { name }, Some(job))
        }
    };

    let mut jobs = list::<Job>(ctx, id, &id.selector::<K>()).await?;
    jobs.retain(|job| id.owns(&job.metadata, &cron_uids));
    if let (Applied::Job { name }, Some(job)) = (&applied, job) {
        // A Job's Pod template cannot change once created, and a one-off run is not rerun
        // because its spec changed: it is applied only while it does not exist.
        if !jobs.iter().any(|j| j.metadata.name.as_ref() == Some(name)) {
            jobs.push(apply::<Job>(ctx, id, &job).await?);
        }
    }

    let names: Vec<&str> = jobs
        .iter()
        .filter_map(|job| job.metadata.name.as_deref())
        .collect();
    let pods = if names.is_empty() {
        Vec::new()
    } else {
        let selector = format!("batch.kubernetes.io/job-name in ({})", names.join(","));
        list::<Pod>(ctx, id, &selector).await?
    };
    Ok((applied, jobs, pods))
}

/// Makes a rendered object the resource's: in its namespace, owned by it (controller), with
/// the labels the watches select by. Returns its name.
fn adopt<K: Managed>(meta: &mut ObjectMeta, id: &Identity, kind: &str) -> Result<String, Error> {
    let name = meta.name.clone().ok_or_else(|| Error::MissingMetadata {
        kind: format!("{kind} rendered for {}", id.describe),
        field: "metadata.name",
        purpose: "apply it",
    })?;
    meta.namespace = Some(id.namespace.clone());
    let owners = meta.owner_references.get_or_insert_with(Vec::new);
    owners.retain(|owner| owner.uid != id.uid && owner.controller != Some(true));
    owners.push(id.owner.clone());
    label::<K>(meta, id);
    Ok(name)
}

fn label<K: Managed>(meta: &mut ObjectMeta, id: &Identity) {
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(K::LABEL.to_owned(), id.name.clone());
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        MANAGED_BY.to_owned(),
    );
}

/// Server-side apply, forcing ownership of the fields the operator sets.
async fn apply<T>(ctx: &Context, id: &Identity, object: &T) -> Result<T, Error>
where
    T: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    id.api::<T>(ctx)
        .patch(&name, &params, &Patch::Apply(object))
        .await
        .map_err(|source| Error::Api {
            action: format!(
                "server-side apply of {} {}/{name} for {}",
                T::kind(&()),
                id.namespace,
                id.describe
            ),
            source,
        })
}

/// Patches the status subresource with a merge patch, when it changed.
async fn write_status<K: Managed>(
    obj: &K,
    ctx: &Context,
    id: &Identity,
    observed: Observed,
) -> Result<(), Error> {
    let new = K::from_observed(observed);
    if obj.status() == Some(&new) {
        return Ok(());
    }
    let old = obj
        .status()
        .and_then(|status| serde_json::to_value(status).ok())
        .unwrap_or(Value::Null);
    let new = serde_json::to_value(&new).map_err(|source| Error::Serialize {
        what: format!("the status of {}", id.describe),
        source,
    })?;
    let patch = json!({ "status": status::merge_patch(&old, &new) });
    id.api::<K>(ctx)
        .patch_status(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Api {
            action: format!("patching the status of {}", id.describe),
            source,
        })?;
    Ok(())
}

//! Running the two controllers: watches, and a check that the cluster is ready for them.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::reconcile::{error_policy, reconcile};
use super::resource::Managed;
use super::{Context, MANAGED_BY};
use crate::crd::{KafkaBackup, KafkaRestore};
use crate::render::RenderContext;

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The one namespace watched; `None`: all namespaces (needs a ClusterRole).
    pub namespace: Option<String>,
    /// What rendering needs besides the resource (the image of the Jobs, ...).
    pub render: RenderContext,
}

/// Why the operator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Neither an in-cluster ServiceAccount nor a kubeconfig was found.
    #[error(
        "no Kubernetes cluster is configured ({0}). In a cluster, run the operator in a Pod \
         whose ServiceAccount token is mounted (deploy/operator.yaml); outside one, point \
         KUBECONFIG (or ~/.kube/config) at a context of a running cluster."
    )]
    NoConfig(#[source] kube::Error),
    /// The API server did not answer.
    #[error(
        "the Kubernetes API server cannot be reached ({0}). In a cluster the operator uses its \
         Pod's ServiceAccount; outside one, the current context of KUBECONFIG (or \
         ~/.kube/config): check that the context points to a running cluster and that its \
         credentials are valid (`kubectl version` must answer)."
    )]
    Unreachable(#[source] kube::Error),
    /// The CRDs are not installed.
    #[error(
        "the {kind} custom resource definition is not installed in this cluster. Install the \
         CRDs with `kafka-backup operator crds | kubectl apply -f -` (or apply deploy/crds/), \
         then start the operator again."
    )]
    CrdMissing {
        /// `KafkaBackup` or `KafkaRestore`.
        kind: &'static str,
    },
    /// The ServiceAccount may not list the resources.
    #[error(
        "the operator may not list {kind}s in {scope} ({source}). Apply deploy/rbac.yaml, which \
         grants its ServiceAccount what it needs in its namespace; to watch all namespaces, \
         bind the rules with a ClusterRole, or pass --namespace."
    )]
    Forbidden {
        /// `KafkaBackup` or `KafkaRestore`.
        kind: &'static str,
        /// `namespace kafka` or `all namespaces`.
        scope: String,
        /// The API server's answer.
        #[source]
        source: kube::Error,
    },
    /// Any other refusal.
    #[error("listing {kind}s in {scope} failed: {source}")]
    Other {
        /// `KafkaBackup` or `KafkaRestore`.
        kind: &'static str,
        /// `namespace kafka` or `all namespaces`.
        scope: String,
        /// The API server's answer.
        #[source]
        source: kube::Error,
    },
}

/// A client of the cluster the operator runs in (its Pod's ServiceAccount), or else of the
/// current kubeconfig context. Nothing is contacted yet: [`preflight`] does.
pub async fn connect() -> Result<Client, PreflightError> {
    // A binary that also links object_store has both of rustls' providers, and rustls then
    // picks none by itself: kube's TLS uses ring, the provider the workspace chose. An
    // already installed default (an embedding program's) is kept.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::try_default()
        .await
        .map_err(PreflightError::NoConfig)
}

/// Checks that the API server answers, the CRDs are installed and the operator may list its
/// resources where it will watch them: so a misconfigured operator says what to fix at once,
/// rather than logging watch errors forever.
pub async fn preflight(client: &Client, namespace: Option<&str>) -> Result<(), PreflightError> {
    client
        .apiserver_version()
        .await
        .map_err(PreflightError::Unreachable)?;
    check_list::<KafkaBackup>(client, namespace, "KafkaBackup").await?;
    check_list::<KafkaRestore>(client, namespace, "KafkaRestore").await
}

async fn check_list<K: Managed>(
    client: &Client,
    namespace: Option<&str>,
    kind: &'static str,
) -> Result<(), PreflightError> {
    let scope = match namespace {
        Some(ns) => format!("namespace {ns}"),
        None => "all namespaces".to_owned(),
    };
    match api::<K>(client, namespace)
        .list(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => {
            Err(PreflightError::CrdMissing { kind })
        }
        Err(source @ kube::Error::Api(_)) if matches!(&source, kube::Error::Api(s) if s.code == 401 || s.code == 403) => {
            Err(PreflightError::Forbidden {
                kind,
                scope,
                source,
            })
        }
        Err(source) => Err(PreflightError::Other {
            kind,
            scope,
            source,
        }),
    }
}

fn api<T>(client: &Client, namespace: Option<&str>) -> Api<T>
where
    T: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the `KafkaBackup` and `KafkaRestore` controllers until SIGTERM or SIGINT; each
/// finishes the reconciliations under way before returning.
pub async fn run(client: Client, config: Config) {
    let ctx = Arc::new(Context::new(client.clone(), config.render));
    let namespace = config.namespace.as_deref();
    let backups = controller::<KafkaBackup>(&client, namespace)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(log_outcome);
    let restores = controller::<KafkaRestore>(&client, namespace)
        .run(reconcile, error_policy, ctx)
        .for_each(log_outcome);
    tracing::info!(
        namespace = namespace.unwrap_or("(all)"),
        "operator started: watching KafkaBackups and KafkaRestores"
    );
    futures::join!(backups, restores);
    tracing::info!("operator stopped");
}

/// The controller of `K`: its resources, the ConfigMaps and CronJobs it owns, and the Jobs and
/// Pods labelled with its name (a CronJob's Jobs are owned by the CronJob, not by it).
fn controller<K: Managed>(client: &Client, namespace: Option<&str>) -> Controller<K> {
    let managed =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
    Controller::new(api::<K>(client, namespace), watcher::Config::default())
        .owns(api::<ConfigMap>(client, namespace), managed.clone())
        .owns(api::<CronJob>(client, namespace), managed.clone())
        .watches(
            api::<Job>(client, namespace),
            managed.clone(),
            by_label::<K, Job>,
        )
        .watches(api::<Pod>(client, namespace), managed, by_label::<K, Pod>)
        .shutdown_on_signal()
}

/// The resource an object belongs to, by its label.
fn by_label<K: Managed, T: Resource + DeserializeOwned>(object: T) -> Option<ObjectRef<K>> {
    let name = object.labels().get(K::LABEL)?;
    let namespace = object.namespace()?;
    Some(ObjectRef::new(name).within(&namespace))
}

fn log_outcome<E: std::error::Error, Q: std::error::Error>(
    outcome: Result<impl std::fmt::Debug, kube::runtime::controller::Error<E, Q>>,
) -> std::future::Ready<()> {
    match outcome {
        Ok(done) => tracing::debug!(?done, "reconciled"),
        // The reconciler's own errors are logged by the error policy, with the resource.
        Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
        Err(error) => tracing::warn!("{error}"),
    }
    std::future::ready(())
}

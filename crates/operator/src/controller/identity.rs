//! Who a resource is, as a reconciliation needs it (name, namespace, uid, the owner reference
//! its objects carry), and listing the objects labelled as its own.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::Context;
use super::error::Error;
use super::resource::Managed;

/// What a reconciliation needs to know of the resource, checked once.
pub(super) struct Identity {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// e.g. `KafkaBackup kafka/orders`.
    pub describe: String,
    pub owner: OwnerReference,
}

impl Identity {
    pub fn of<K: Managed>(obj: &K) -> Result<Self, Error> {
        let describe = format!(
            "{} {}/{}",
            K::kind(&()),
            obj.namespace().unwrap_or_default(),
            obj.name_any()
        );
        let missing = |field, purpose| Error::MissingMetadata {
            kind: describe.clone(),
            field,
            purpose,
        };
        let name = obj
            .meta()
            .name
            .clone()
            .ok_or_else(|| missing("metadata.name", "address it"))?;
        let namespace = obj
            .namespace()
            .ok_or_else(|| missing("metadata.namespace", "address it"))?;
        let uid = obj
            .uid()
            .ok_or_else(|| missing("metadata.uid", "own the objects it applies"))?;
        let mut owner = obj
            .controller_owner_ref(&())
            .ok_or_else(|| missing("metadata.uid", "own the objects it applies"))?;
        // Deleting the resource in the foreground waits for its objects.
        owner.block_owner_deletion = Some(true);
        Ok(Self {
            name,
            namespace,
            uid,
            describe,
            owner,
        })
    }

    pub fn api<T>(&self, ctx: &Context) -> Api<T>
    where
        T: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        Api::namespaced(ctx.client.clone(), &self.namespace)
    }

    /// The selector of the objects rendered for this resource.
    pub fn selector<K: Managed>(&self) -> String {
        format!("{}={}", K::LABEL, self.name)
    }

    /// Whether `meta` names this resource, or one of `also` (the uids of its CronJobs), as its
    /// owner.
    pub fn owns(&self, meta: &ObjectMeta, also: &[String]) -> bool {
        meta.owner_references
            .iter()
            .flatten()
            .any(|owner| owner.uid == self.uid || also.contains(&owner.uid))
    }
}

/// The objects of kind `T` in the resource's namespace that carry `selector`.
pub(super) async fn list<T>(ctx: &Context, id: &Identity, selector: &str) -> Result<Vec<T>, Error>
where
    T: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let params = ListParams::default().labels(selector);
    let list = id
        .api::<T>(ctx)
        .list(&params)
        .await
        .map_err(|source| Error::Api {
            action: format!("listing {}s of {} ({selector})", T::kind(&()), id.describe),
            source,
        })?;
    Ok(list.items)
}

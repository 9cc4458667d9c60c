//! Retention (`kafka-backup prune`, the admin role): removes what a policy no longer keeps,
//! never what a kept run needs, and records what it removed.
//!
//! [`plan`] decides (see [`plan::plan`]); [`execute`] writes a prune record first (see
//! [`crate::catalog::pruned`]: readers then know the removed runs were removed by policy, and a
//! prune cut off half-way is finished by running it again), then deletes the segments and
//! gap records, and the manifest parts last, so that an interrupted prune never leaves a
//! manifest-less segment a kept run needs. An object that a retention lock holds is reported,
//! not an error.

pub mod plan;

use backup_format::naming;
use backup_format::signing::SigningKey;
use futures::StreamExt as _;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::catalog::pruned::{self, PruneRecord, PrunedPart, PrunedRun};
use crate::storage::{Deleted, Storage, StorageError};
pub use plan::{Plan, Policy, plan};

/// Deletions in flight at once.
const DELETES_IN_FLIGHT: usize = 16;

/// Why a prune stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PruneError {
    /// Storage failed; `removed` objects were deleted before it did. The prune record is
    /// written, so running prune again finishes the job.
    #[error("{source} ({removed} objects were removed before this; run prune again to finish)")]
    Storage {
        /// The failure.
        source: StorageError,
        /// Objects removed before it.
        removed: usize,
    },
    /// The prune record could not be written: nothing was removed.
    #[error("cannot write the prune record, so nothing was removed: {0}")]
    Record(StorageError),
}

/// What [`execute`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Executed {
    /// The prune record written (none when there was nothing to remove).
    pub record: Option<String>,
    /// Objects deleted.
    pub removed: usize,
    /// Bytes of the segments deleted.
    pub removed_bytes: u64,
    /// Objects the store refused to delete because a retention lock holds them: key, and the
    /// store's words.
    pub locked: Vec<(String, String)>,
}

/// Carries out `plan` on `storage`: writes the prune record (its name signed with `key` when
/// given), then deletes.
pub async fn execute(
    storage: &Storage,
    catalog: &Catalog,
    plan: &Plan,
    by: &str,
    key: Option<&SigningKey>,
) -> Result<Executed, PruneError> {
    let mut done = Executed::default();
    if plan.remove_count() == 0 {
        return Ok(done);
    }
    let mut runs = Vec::new();
    for r in plan.runs.iter().filter(|r| !r.remove.is_empty()) {
        let mut parts = Vec::new();
        if r.whole {
            for k in &r.parts {
                parts.push(PrunedPart {
                    key: k.clone(),
                    sha256: part_digest(storage, k).await.map_err(PruneError::Record)?,
                });
            }
        }
        runs.push(PrunedRun {
            run_id: r.run_id.clone(),
            started_at: r.started_at.clone(),
            whole: r.whole,
            parts,
            objects: r.remove.iter().map(|o| o.key.clone()).collect(),
            bytes: r.remove.iter().map(|o| o.bytes).sum(),
        });
    }
    let record = PruneRecord {
        format: pruned::RECORD_FORMAT,
        backup_id: catalog.backup_id.clone(),
        at: crate::audit::now(),
        by: by.to_owned(),
        policy: plan.policy.clone(),
        runs,
    };
    let seq = catalog.pruned.iter().map(|r| r.seq + 1).max().unwrap_or(1);
    done.record = Some(
        pruned::write_record(storage, &record, seq, key)
            .await
            .map_err(PruneError::Record)?,
    );

    // Data first, manifests last.
    let parts: std::collections::BTreeSet<&str> = plan
        .runs
        .iter()
        .filter(|r| r.whole)
        .flat_map(|r| r.parts.iter().map(String::as_str))
        .collect();
    let (data, manifests): (Vec<_>, Vec<_>) = plan
        .runs
        .iter()
        .flat_map(|r| r.remove.iter())
        .partition(|o| !parts.contains(o.key.as_str()));
    for (i, batch) in [data, manifests].into_iter().enumerate() {
        // A whole run keeps its manifest when any of its data stayed under a lock, so that a
        // later prune still sees (and retries) what is left of it.
        let batch: Vec<_> = if i == 0 {
            batch
        } else {
            let held_runs: std::collections::BTreeSet<&str> = plan
                .runs
                .iter()
                .filter(|r| {
                    r.remove
                        .iter()
                        .any(|o| done.locked.iter().any(|(k, _)| k == &o.key))
                })
                .flat_map(|r| r.parts.iter().map(String::as_str))
                .collect();
            batch
                .into_iter()
                .filter(|o| !held_runs.contains(o.key.as_str()))
                .collect()
        };
        let mut results = futures::stream::iter(batch)
            .map(|o| async move { (o, storage.delete_for_retention(&o.key).await) })
            .buffer_unordered(DELETES_IN_FLIGHT);
        while let Some((o, result)) = results.next().await {
            match result {
                Ok(Deleted::Yes) => {
                    done.removed += 1;
                    done.removed_bytes += o.bytes;
                }
                Ok(Deleted::Locked(why)) => done.locked.push((o.key.clone(), why)),
                Err(source) => {
                    return Err(PruneError::Storage {
                        source,
                        removed: done.removed,
                    });
                }
            }
        }
    }
    Ok(done)
}

/// The SHA-256 (hex) of a manifest part: from its signed name, or by reading it.
async fn part_digest(storage: &Storage, key: &str) -> Result<String, StorageError> {
    if let Some(seal) = naming::parse_manifest_key(key).and_then(|k| k.seal) {
        return Ok(crate::keys::hex(&seal.sha256));
    }
    let body = storage
        .get_bounded(key, crate::catalog::read_limits::MANIFEST)
        .await?;
    Ok(crate::audit::sha256_hex(&body))
}

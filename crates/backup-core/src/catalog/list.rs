//! Which backups a store holds, without listing every object of the store: one delimiter LIST
//! finds the backup directories, then each backup costs a GET of its descriptor, a delimiter
//! LIST of its runs and one (paged) LIST of its segments for the size.

use std::time::SystemTime;

use backup_format::manifest::BackupDescriptor;
use backup_format::naming;
use futures::TryStreamExt;
use serde::Serialize;

use super::CatalogError;
use crate::storage::{Storage, StorageError};

/// One backup in a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupSummary {
    /// The backup id.
    pub backup_id: String,
    /// From the descriptor.
    pub created_at: Option<String>,
    /// From the descriptor: the cluster it was taken from.
    pub source_cluster_id: Option<String>,
    /// Runs (directories under `runs/`).
    pub runs: usize,
    /// Segment objects.
    pub segments: u64,
    /// Bytes stored in segments.
    pub stored_bytes: u64,
    /// When the newest segment was written (RFC 3339), if any.
    pub last_written: Option<String>,
    /// Why the descriptor could not be used, when it could not.
    pub note: Option<String>,
}

/// Every backup under the configured prefix, by id: each directory that has a `backup.json`,
/// or (without one) a `topics/` or `runs/` directory.
pub async fn list_backups(storage: &Storage) -> Result<Vec<BackupSummary>, CatalogError> {
    let mut out = Vec::new();
    for id in candidates(storage).await? {
        if let Some(summary) = summarize(storage, &id).await? {
            out.push(summary);
        }
    }
    Ok(out)
}

/// Up to `limit` backup ids in the store (for "did you mean" messages).
pub(crate) async fn backup_names(
    storage: &Storage,
    limit: usize,
) -> Result<Vec<String>, CatalogError> {
    let mut out = Vec::new();
    for id in candidates(storage).await? {
        if out.len() >= limit {
            break;
        }
        let dirs = storage.list_dirs(&id).await?;
        let key = naming::backup_descriptor_key(&id)?;
        if has_backup_dirs(&id, &dirs) || storage.head(&key).await.is_ok() {
            out.push(id);
        }
    }
    Ok(out)
}

/// Top-level directories whose names can be backup ids.
async fn candidates(storage: &Storage) -> Result<Vec<String>, CatalogError> {
    let dirs = match storage.list_dirs("").await {
        Ok(d) => d,
        // An empty filesystem store may not even have its directory yet.
        Err(StorageError::NotFound { .. }) if storage.backend_name() == "filesystem" => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(dirs
        .into_iter()
        .filter(|d| naming::validate_backup_id(d).is_ok())
        .collect())
}

fn has_backup_dirs(id: &str, dirs: &[String]) -> bool {
    dirs.iter()
        .any(|d| *d == format!("{id}/topics") || *d == format!("{id}/runs"))
}

async fn summarize(storage: &Storage, id: &str) -> Result<Option<BackupSummary>, CatalogError> {
    let key = naming::backup_descriptor_key(id)?;
    let (descriptor, note) = match storage
        .get_bounded(&key, super::read_limits::SMALL_DOCUMENT)
        .await
    {
        Ok(bytes) => match BackupDescriptor::from_json(&bytes) {
            Ok(d) if d.backup_id == id => (Some(d), None),
            Ok(d) => (
                None,
                Some(format!(
                    "backup.json names another backup, `{}`",
                    d.backup_id
                )),
            ),
            Err(e) => (None, Some(format!("backup.json is unreadable: {e}"))),
        },
        Err(StorageError::NotFound { .. }) => (None, Some("no backup.json".to_owned())),
        Err(e) => return Err(e.into()),
    };
    let dirs = storage.list_dirs(id).await?;
    if descriptor.is_none() && !has_backup_dirs(id, &dirs) {
        // Not a backup: some other directory in the same store.
        return Ok(None);
    }
    let runs = if dirs.iter().any(|d| *d == format!("{id}/runs")) {
        storage.list_dirs(&format!("{id}/runs")).await?.len()
    } else {
        0
    };
    let (mut segments, mut stored_bytes, mut newest) = (0u64, 0u64, None::<SystemTime>);
    let mut objects = storage.list_stream(&format!("{id}/topics"));
    while let Some(o) = objects.try_next().await? {
        if naming::parse_segment_key(&o.key).is_some() {
            segments += 1;
            stored_bytes += o.size;
            newest = newest.max(Some(o.last_modified));
        }
    }
    Ok(Some(BackupSummary {
        backup_id: id.to_owned(),
        created_at: descriptor.as_ref().map(|d| d.created_at.clone()),
        source_cluster_id: descriptor.and_then(|d| d.source_cluster_id),
        runs,
        segments,
        stored_bytes,
        last_written: newest
            .map(|t| backup_format::manifest::timestamp(time::OffsetDateTime::from(t))),
        note,
    }))
}

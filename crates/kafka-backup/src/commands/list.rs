//! `kafka-backup list`: the backups a store holds. The configuration's `backup_id` is
//! required by the file format but not used: every backup under `storage:` is listed.

use std::path::Path;

use backup_core::backup::progress::human_bytes;
use backup_core::catalog::{BackupSummary, list_backups};

use super::{catalog_failed, open_store, print_json, table};
use crate::OutputFormat;
use crate::exit::{Exit, Failed};

/// Lists the backups in the configuration's store.
pub async fn run(config_path: &Path, format: OutputFormat) -> Result<Exit, Failed> {
    let (loaded, storage) = open_store(config_path, false).await?;
    let mut backups = list_backups(&storage).await.map_err(catalog_failed)?;
    let trusted = super::release_keys(&loaded, &super::TrustArgs::default())?;
    for b in &mut backups {
        let state = super::quarantine::state(&storage, &b.backup_id, &trusted).await?;
        if let Some(line) = super::quarantine::describe(&state) {
            b.note = Some(match b.note.take() {
                Some(note) => format!("{line}; {note}"),
                None => line,
            });
        }
    }
    match format {
        OutputFormat::Json => print_json(&backups)?,
        OutputFormat::Text => super::print_text(&render_text(&storage.location(""), &backups)),
    }
    Ok(Exit::Ok)
}

/// The backups as a table, one per line.
pub fn render_text(location: &str, backups: &[BackupSummary]) -> String {
    if backups.is_empty() {
        return format!("No backups at {location}\n");
    }
    let dash = || "-".to_owned();
    let mut rows = vec![
        [
            "BACKUP",
            "CREATED",
            "SOURCE CLUSTER",
            "RUNS",
            "SEGMENTS",
            "SIZE",
            "LAST WRITTEN",
            "NOTE",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for b in backups {
        rows.push(vec![
            b.backup_id.clone(),
            b.created_at.clone().unwrap_or_else(dash),
            b.source_cluster_id.clone().unwrap_or_else(dash),
            b.runs.to_string(),
            b.segments.to_string(),
            human_bytes(b.stored_bytes),
            b.last_written.clone().unwrap_or_else(dash),
            b.note.clone().unwrap_or_default(),
        ]);
    }
    let plural = if backups.len() == 1 { "" } else { "s" };
    format!(
        "{} backup{plural} at {location}\n\n{}",
        backups.len(),
        table("", &rows)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_are_listed_in_aligned_columns() {
        let backups = vec![
            BackupSummary {
                backup_id: "orders".into(),
                created_at: Some("2024-05-01T12:00:00Z".into()),
                source_cluster_id: Some("abc".into()),
                runs: 3,
                segments: 12,
                stored_bytes: 2_500_000,
                last_written: Some("2024-05-02T12:00:00Z".into()),
                note: None,
            },
            BackupSummary {
                backup_id: "x".into(),
                created_at: None,
                source_cluster_id: None,
                runs: 0,
                segments: 1,
                stored_bytes: 10,
                last_written: None,
                note: Some("no backup.json".into()),
            },
        ];
        let text = render_text("/store", &backups);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "2 backups at /store");
        assert!(lines[2].starts_with("BACKUP  CREATED "), "{text}");
        assert!(
            lines[3].starts_with("orders  2024-05-01T12:00:00Z  abc "),
            "{text}"
        );
        assert!(lines[3].contains("2.5 MB"), "{text}");
        assert!(lines[4].ends_with("no backup.json"), "{text}");
        assert_eq!(render_text("/s", &[]), "No backups at /s\n");
    }
}

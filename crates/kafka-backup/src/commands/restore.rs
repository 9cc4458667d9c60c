//! `kafka-backup restore` and `kafka-backup offsets show`.

use std::fmt::Write as _;
use std::path::Path;

use backup_core::backup::progress::human_bytes;
use backup_core::config::{LoadedConfig, Mode};
use backup_core::restore::{
    GroupOutcome, OffsetMaps, RestoreError, RestoreOptions, RestoreReport, run_restore,
    show_offsets,
};
use backup_core::storage::Storage;
use serde::Serialize;
use tokio::sync::watch;

use crate::OutputFormat;
use crate::exit::{Exit, Failed};

pub(crate) async fn load(
    config_path: &Path,
    command: &str,
) -> Result<(LoadedConfig, Storage), Failed> {
    let (loaded, storage) = super::open_store(config_path, true).await?;
    if loaded.mode != Mode::Restore {
        return Err(Failed::new(
            Exit::Config,
            format!(
                "{} has mode: {}; `kafka-backup {command}` needs a configuration with mode: restore",
                config_path.display(),
                loaded.mode
            ),
        ));
    }
    Ok((loaded, storage))
}

/// One line per translated offset of a group.
fn render_offsets(out: &mut String, g: &GroupOutcome) {
    for o in &g.offsets {
        let _ = writeln!(
            out,
            "    {}-{} @ {}  ->  {}-{} @ {}",
            o.source_topic,
            o.partition,
            o.source_offset,
            o.target_topic,
            o.target_partition,
            o.target_offset
        );
    }
}

/// What the operator allowed on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// Only print the plan.
    pub dry_run: bool,
    /// Restore what passes even if the backup fails its check.
    pub force: bool,
    /// Restore a quarantined backup.
    pub allow_quarantined: bool,
    /// Restore unauthenticated segments.
    pub accept_unauthenticated: bool,
}

/// Runs a restore (or its plan) and reports it.
pub async fn run(
    config_path: &Path,
    format: OutputFormat,
    overrides: Overrides,
    trust_args: &super::TrustArgs,
) -> Result<Exit, Failed> {
    let Overrides {
        dry_run,
        force,
        allow_quarantined,
        accept_unauthenticated,
    } = overrides;
    let (loaded, storage) = load(config_path, "restore").await?;
    let verify_keys = super::read_verify_keys(&trust_args.verify_keys)?;
    tracing::info!("{loaded}");
    let trusted = super::release_keys(&loaded, trust_args)?;
    let quarantine = super::quarantine::state(&storage, &loaded.backup_id, &trusted).await?;
    if let Some(line) = super::quarantine::describe(&quarantine) {
        if !allow_quarantined && !dry_run {
            return Err(Failed::new(
                Exit::Integrity,
                format!(
                    "backup `{}` is {line}. Nothing was restored. If the backup was examined \
                     and found sound, lift the quarantine with `kafka-backup quarantine \
                     --release --reason TEXT --config FILE` (signed with a key this restore \
                     trusts); to restore it anyway, e.g. into a scratch cluster for forensics, \
                     pass --allow-quarantined",
                    loaded.backup_id
                ),
            ));
        }
        tracing::warn!(
            "backup `{}` is {line}; restoring it because {}",
            loaded.backup_id,
            if dry_run {
                "this is a dry run"
            } else {
                "--allow-quarantined was given"
            }
        );
        if !dry_run {
            crate::audit::detail(&format!("restored a quarantined backup ({line})"));
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!(
            "signal received: stopping after the batches in flight; run again to continue"
        );
        let _ = stop_tx.send(true);
    });
    let report = run_restore(
        &loaded,
        storage,
        RestoreOptions {
            force,
            dry_run,
            log_progress: true,
            accept_unauthenticated,
            expected_runs: trust_args.expect_runs.clone(),
            verify_keys,
            group_prefix: None,
        },
        stop_rx,
    )
    .await
    .map_err(failed)?;
    crate::audit::run_id(&report.restore_id);
    crate::summary::record(crate::summary::Work {
        backup_id: Some(report.backup_id.clone()),
        run_id: Some(report.restore_id.clone()),
        shard: None,
        outcome: Some(if report.interrupted {
            "interrupted"
        } else {
            "complete"
        }),
        records: report.records_written,
        bytes: report.bytes_written,
    });
    crate::audit::counts(&[
        ("dry_run", u64::from(report.dry_run)),
        ("topics", report.topics.len() as u64),
        ("partitions", report.partitions.len() as u64),
        ("records", report.records_written),
        ("bytes_written", report.bytes_written),
        ("bytes_read", report.stored_bytes_read),
        ("consumer_groups", report.consumer_groups.len() as u64),
    ]);
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    match format {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => super::print_text(&render(&report)),
    }
    Ok(if report.interrupted {
        Exit::Partial
    } else {
        Exit::Ok
    })
}

/// Prints the offset map and the translated group offsets.
pub async fn show(config_path: &Path, format: OutputFormat) -> Result<Exit, Failed> {
    let (loaded, storage) = load(config_path, "offsets show").await?;
    let (maps, groups, mapping) = show_offsets(&loaded, storage).await.map_err(failed)?;
    #[derive(Serialize)]
    struct Shown {
        topic_mapping: std::collections::BTreeMap<String, String>,
        partitions: Vec<Partition>,
        consumer_groups: Vec<backup_core::restore::GroupOutcome>,
    }
    let partitions = partitions_of(&maps);
    let shown = Shown {
        topic_mapping: mapping,
        partitions,
        consumer_groups: groups,
    };
    match format {
        OutputFormat::Json => print_json(&shown)?,
        OutputFormat::Text => {
            let mut out = String::new();
            for p in &shown.partitions {
                let _ = writeln!(
                    out,
                    "{} -> {} (target offsets {}..{})",
                    p.source, p.target, p.target_start, p.target_end
                );
                for r in &p.runs {
                    let _ = writeln!(
                        out,
                        "  source {}..={}  ->  target {}..={}",
                        r.source_first, r.source_last, r.target_first, r.target_last
                    );
                }
            }
            let _ = writeln!(out, "\nConsumer groups");
            if shown.consumer_groups.is_empty() {
                let _ = writeln!(
                    out,
                    "  (none in the backup's snapshot match restore.consumer_groups)"
                );
            }
            for g in &shown.consumer_groups {
                let _ = writeln!(out, "  {}", g.group_id);
                render_offsets(&mut out, g);
            }
            super::print_text(&out);
        }
    }
    Ok(Exit::Ok)
}

#[derive(Serialize)]
struct Partition {
    source: String,
    target: String,
    target_start: i64,
    target_end: i64,
    runs: Vec<backup_core::restore::OffsetRun>,
}

fn partitions_of(maps: &OffsetMaps) -> Vec<Partition> {
    maps.partitions
        .iter()
        .map(|(target, (source, map))| Partition {
            source: source.to_string(),
            target: target.to_string(),
            target_start: map.target_start,
            target_end: map.target_end(),
            runs: map.runs(),
        })
        .collect()
}

fn print_json<T: Serialize>(value: &T) -> Result<(), Failed> {
    let json = serde_json::to_string_pretty(value)
        .map_err(|e| Failed::new(Exit::Failure, format!("cannot format the report: {e}")))?;
    println!("{json}");
    Ok(())
}

pub(crate) fn failed(e: RestoreError) -> Failed {
    let exit = match &e {
        RestoreError::Config(_) | RestoreError::Target(_) => Exit::Config,
        RestoreError::Integrity { .. }
        | RestoreError::Rejected { .. }
        | RestoreError::Corrupt(_) => Exit::Integrity,
        RestoreError::Kafka(k) => Exit::for_kafka(k.kind()),
        RestoreError::Storage(_) | RestoreError::Catalog(_) => Exit::Storage,
        RestoreError::Keys { .. } => e.key_failure_kind().map_or(Exit::Failure, Exit::for_keys),
        RestoreError::Internal(_) => Exit::Failure,
    };
    Failed::new(exit, e.to_string())
}

/// The report as text.
pub fn render(r: &RestoreReport) -> String {
    let mut out = String::new();
    let what = if r.dry_run {
        "plan only, dry run: nothing written"
    } else if r.interrupted {
        "INTERRUPTED: run the same command again to continue"
    } else {
        "complete"
    };
    let _ = writeln!(
        out,
        "Restore      {} from backup {} ({what})",
        r.restore_id, r.backup_id
    );
    for t in &r.topics {
        let source = r
            .topic_mapping
            .iter()
            .find(|(_, v)| **v == t.topic)
            .map(|(k, _)| k.as_str())
            .unwrap_or("?");
        let configs = if t.configs.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = t.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(", configs {}", list.join(" "))
        };
        let _ = writeln!(
            out,
            "Topic        {source} -> {} ({}, {} partitions{configs})",
            t.topic, t.action, t.partitions
        );
    }
    let _ = writeln!(
        out,
        "Authenticity {}{}",
        r.authentication.describe(),
        if r.encrypted {
            "; encrypted, decrypted on the way"
        } else {
            ""
        }
    );
    let total: u64 = r.partitions.iter().map(|p| p.records).sum();
    let already: u64 = r.partitions.iter().map(|p| p.already_restored).sum();
    let _ = writeln!(
        out,
        "Records      {total} in the restore ({already} written by earlier runs)"
    );
    if !r.dry_run {
        let _ = writeln!(
            out,
            "Written      {} records, {} in {} batches ({} rebuilt)",
            r.records_written,
            human_bytes(r.bytes_written),
            r.batches_written,
            r.batches_reencoded
        );
    }
    let stored: u64 = r.partitions.iter().map(|p| p.stored_bytes).sum();
    let _ = writeln!(
        out,
        "Read         {} from storage ({} of segments restored)",
        human_bytes(r.stored_bytes_read),
        human_bytes(stored)
    );
    let _ = writeln!(
        out,
        "Left out     {} of aborted transactions, {} of transactions still open, {} outside the window",
        r.aborted_records_skipped, r.open_transaction_records_skipped, r.window_records_skipped
    );
    if let Some((lo, hi)) = r.time_range {
        let _ = writeln!(
            out,
            "Time range   {} .. {}",
            super::format_ms(lo),
            super::format_ms(hi)
        );
    }
    for p in &r.partitions {
        let _ = writeln!(
            out,
            "  {} -> {}  offsets {}..{}  ({} records)",
            p.source, p.target, p.target_start, p.target_end, p.records
        );
    }
    if !r.consumer_groups.is_empty() {
        let _ = writeln!(out, "Consumer groups");
        for g in &r.consumer_groups {
            let _ = writeln!(out, "  {}: {}", g.group_id, g.status);
            render_offsets(&mut out, g);
        }
    }
    for p in &r.problems_ignored {
        let _ = writeln!(out, "Ignored (--force): {p}");
    }
    let _ = writeln!(
        out,
        "Duration     {:.1} s ({:.1} MB/s)",
        r.duration_secs, r.throughput_mb_s
    );
    out
}

//! `kafka-backup drill`: restore into scratch topics, prove the result record by record,
//! measure RTO and RPO as observed, and clean up when asked.

use std::fmt::Write as _;
use std::path::Path;

use backup_core::catalog::CatalogError;
use backup_core::drill::{self, Cleanup, DrillError, DrillOptions, DrillReport};
use backup_core::restore::RestoreOptions;
use serde_json::json;

use super::{TrustArgs, print_json};
use crate::OutputFormat;
use crate::exit::{Exit, Failed};

/// What the command line adds.
#[derive(Debug, Clone, Default)]
pub struct DrillArgs {
    /// Scratch prefix; a fresh `kb-drill-<time>-` when `None`.
    pub prefix: Option<String>,
    /// Delete the scratch topics and groups afterwards.
    pub cleanup: bool,
    /// Restore segments no key authenticates.
    pub accept_unauthenticated: bool,
}

fn failed(e: DrillError) -> Failed {
    let e = match e {
        DrillError::Restore(r) => return super::restore::failed(*r),
        other => other,
    };
    let exit = match &e {
        DrillError::Config(_) => Exit::Config,
        DrillError::Catalog(CatalogError::Name(_)) => Exit::Config,
        DrillError::Catalog(_) | DrillError::Storage(_) => Exit::Storage,
        DrillError::Backup(_) => Exit::Integrity,
        DrillError::Target(_) => Exit::Failure,
        DrillError::Kafka(k) => Exit::for_kafka(k.kind()),
        _ => Exit::Failure,
    };
    Failed::new(exit, e.to_string())
}

/// Checks a scratch prefix: it becomes part of topic and group names.
fn check_prefix(prefix: &str) -> Result<(), Failed> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 100
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !prefix.starts_with("__");
    if ok {
        Ok(())
    } else {
        Err(Failed::new(
            Exit::Usage,
            format!(
                "--prefix {prefix:?} cannot start topic names: use 1 to 100 of a-z, A-Z, 0-9, \
                 '.', '_' and '-', not starting with \"__\" (e.g. kb-drill-)"
            ),
        ))
    }
}

/// Runs a drill with the restore configuration at `config_path`.
pub async fn run(
    config_path: &Path,
    args: DrillArgs,
    trust_args: &TrustArgs,
    format: OutputFormat,
) -> Result<Exit, Failed> {
    let prefix = match args.prefix {
        Some(p) => p,
        None => {
            let now = time::OffsetDateTime::now_utc();
            format!(
                "kb-drill-{:04}{:02}{:02}{:02}{:02}{:02}-",
                now.year(),
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute(),
                now.second()
            )
        }
    };
    check_prefix(&prefix)?;
    let (loaded, storage) = super::restore::load(config_path, "drill").await?;
    let trusted = super::release_keys(&loaded, trust_args)?;
    let quarantine = super::quarantine::state(&storage, &loaded.backup_id, &trusted).await?;
    if let Some(line) = super::quarantine::describe(&quarantine) {
        return Err(Failed::new(
            Exit::Integrity,
            format!(
                "backup `{}` is {line}. A drill proves a backup fit to restore; a quarantined one \
                 is not, until an admin releases it (`kafka-backup quarantine --release`)",
                loaded.backup_id
            ),
        ));
    }
    let options = DrillOptions {
        prefix: prefix.clone(),
        restore: RestoreOptions {
            log_progress: true,
            accept_unauthenticated: args.accept_unauthenticated,
            expected_runs: trust_args.expect_runs.clone(),
            verify_keys: super::read_verify_keys(&trust_args.verify_keys)?,
            ..RestoreOptions::default()
        },
    };
    let report = drill::run_drill(&loaded, storage, options)
        .await
        .map_err(failed)?;
    let cleaned = if args.cleanup {
        Some(drill::cleanup(&loaded, &report).await.map_err(failed)?)
    } else {
        None
    };
    crate::audit::run_id(&format!("{prefix}drill"));
    crate::audit::counts(&[
        ("partitions", report.partitions.len() as u64),
        ("records", report.records),
        ("group_positions", report.groups.len() as u64),
        ("proven", u64::from(report.proven)),
    ]);
    crate::audit::detail(&audit_detail(&report, cleaned.as_ref()));
    match format {
        OutputFormat::Json => print_json(&json!({ "drill": report, "cleanup": cleaned }))?,
        OutputFormat::Text => super::print_text(&render(&report, cleaned.as_ref())),
    }
    Ok(if report.proven {
        Exit::Ok
    } else {
        Exit::Integrity
    })
}

/// The audit event's detail: the verdict and the figures an auditor asks for. `report
/// --evidence` reads the newest one back from the audit trail.
fn audit_detail(r: &DrillReport, cleaned: Option<&Cleanup>) -> String {
    format!(
        "drill {}: {} partitions, {} records, {} group positions compared; restore {:.1} s \
         (RTO), verify {:.1} s; last run finished {} ({}); newest record {}; scratch prefix \
         {}; {}",
        if r.proven { "PROVEN" } else { "FAILED" },
        r.partitions.len(),
        r.records,
        r.groups.len(),
        r.restore_secs,
        r.verify_secs,
        r.last_run_finished.as_deref().unwrap_or("never"),
        r.rpo_secs.map_or("no finished run".to_owned(), |a| format!(
            "{a:.0} s before: RPO"
        )),
        r.newest_record.as_deref().unwrap_or("none"),
        r.prefix,
        match cleaned {
            Some(c) if c.failed.is_empty() => format!(
                "cleaned up {} topics and {} groups",
                c.topics_deleted.len(),
                c.groups_deleted.len()
            ),
            Some(c) => format!("cleanup left: {}", c.failed.join("; ")),
            None => "scratch topics left in place".to_owned(),
        }
    )
}

fn render(r: &DrillReport, cleaned: Option<&Cleanup>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Drill of backup `{}` into `{}*`: {}",
        r.backup_id,
        r.prefix,
        if r.proven {
            "PROVEN: every record and group position matches the backup"
        } else {
            "FAILED: the restored data differs from the backup"
        }
    );
    let _ = writeln!(
        out,
        "  restore   {:.1} s (RTO as observed), verify {:.1} s, {} records",
        r.restore_secs, r.verify_secs, r.records
    );
    let _ = writeln!(
        out,
        "  last run  {}{}",
        r.last_run_finished.as_deref().unwrap_or("none finished"),
        r.rpo_secs.map_or(String::new(), |a| format!(
            " ({a:.0} s before the drill: RPO as observed)"
        ))
    );
    let _ = writeln!(
        out,
        "  newest    record timestamp {}",
        r.newest_record.as_deref().unwrap_or("none")
    );
    for p in &r.partitions {
        let _ = writeln!(
            out,
            "  {} {} -> {}: {} records, sha256 {}{}",
            if p.proven { "ok  " } else { "DIFF" },
            p.source,
            p.target,
            p.target_records,
            &p.target_sha256[..16],
            p.first_difference
                .as_ref()
                .map(|d| format!(" ({} in the backup; {d})", p.backup_records))
                .unwrap_or_default()
        );
    }
    for g in &r.groups {
        let _ = writeln!(
            out,
            "  {} group {} on {}: source offset {} -> target {} (record #{}{})",
            if g.proven { "ok  " } else { "DIFF" },
            g.group_id,
            g.source,
            g.source_offset,
            g.target_offset,
            g.target_position,
            if g.proven {
                String::new()
            } else {
                format!(
                    "; the backup resumes at record #{}, the scratch group holds {:?}",
                    g.backup_position, g.committed_offset
                )
            }
        );
    }
    for g in &r.groups_not_moved {
        let _ = writeln!(out, "  DIFF group not moved: {g}");
    }
    if r.partitions.is_empty() {
        let _ = writeln!(out, "  nothing was restored, so nothing is proven");
    }
    for t in &r.existing_topics {
        let _ = writeln!(
            out,
            "  note: {t} existed before this drill; it is compared, never deleted"
        );
    }
    for w in &r.warnings {
        let _ = writeln!(out, "  note: {w}");
    }
    match cleaned {
        Some(c) => {
            let _ = writeln!(
                out,
                "Cleaned up {} topics and {} groups.",
                c.topics_deleted.len(),
                c.groups_deleted.len()
            );
            for f in &c.failed {
                let _ = writeln!(out, "  left: {f}");
            }
        }
        None => {
            let _ = writeln!(
                out,
                "The scratch topics and groups stay (run with --cleanup to delete them)."
            );
        }
    }
    out
}

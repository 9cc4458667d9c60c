//! `kafka-backup prune`: retention for the admin role. A dry run unless `--execute`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use backup_core::backup::progress::human_bytes;
use backup_core::catalog::{Authentication, Catalog, Severity};
use backup_core::prune::plan::{Held, Plan};
use backup_core::prune::{self, Executed, Policy, PruneError};
use backup_core::storage::{BucketLock, StorageConfig};
use serde_json::json;

use super::{TrustArgs, catalog_failed, open_store, print_json, read_keys};
use crate::OutputFormat;
use crate::exit::{Exit, Failed};

/// Parses `--max-age`: a whole number with `d`, `h` or `m` (`30d`).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid age {text:?}: expected a whole number of days, hours or minutes, like 30d, \
             12h or 90m"
        )
    };
    let t = text.trim();
    let (number, unit) = t.split_at(t.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "m" => n.checked_mul(60),
        _ => None,
    }
    .filter(|&s| s > 0 && s <= 100 * 365 * 86_400)
    .ok_or_else(bad)?;
    Ok(Duration::from_secs(secs))
}

/// How many days objects may be locked for: the configuration's `storage.object_lock` or the
/// bucket's default retention, whichever is longer. A bucket with Object Lock whose objects'
/// retention cannot be told (no default, none configured, or the configuration unreadable) is
/// refused for `--execute`: a plain delete there would only hide a locked object behind a
/// delete marker.
async fn lock_days(
    storage: &backup_core::storage::Storage,
    configured: Option<u32>,
    execute: bool,
) -> Result<Option<u32>, Failed> {
    let refuse = |why: String| -> Result<Option<u32>, Failed> {
        if execute {
            Err(Failed::new(Exit::Config, why))
        } else {
            tracing::warn!("{why}");
            Ok(configured)
        }
    };
    match storage.bucket_object_lock().await {
        None | Some(Ok(BucketLock { enabled: false, .. })) => Ok(configured),
        Some(Ok(BucketLock {
            default_days: Some(d),
            ..
        })) => Ok(Some(configured.map_or(d, |c| c.max(d)))),
        Some(Ok(_)) if configured.is_some() => Ok(configured),
        Some(Ok(_)) => refuse(
            "the bucket has S3 Object Lock enabled without a default retention, and this \
             configuration has no storage.object_lock, so prune cannot tell how long the backup's \
             objects are locked (a delete would only hide a locked object behind a delete \
             marker); set storage.object_lock as in the backup configuration"
                .to_owned(),
        ),
        Some(Err(why)) if configured.is_none() => refuse(format!(
            "cannot read the bucket's Object Lock configuration ({why}), and this configuration \
             has no storage.object_lock, so prune cannot tell whether the backup's objects are \
             locked; grant the admin role s3:GetBucketObjectLockConfiguration, or set \
             storage.object_lock as in the backup configuration"
        )),
        Some(Err(why)) => {
            tracing::warn!(
                "cannot read the bucket's Object Lock configuration ({why}); relying on \
                 storage.object_lock"
            );
            Ok(configured)
        }
    }
}

/// Refuses to delete from a backup whose catalog cannot be trusted: a signed backup read
/// without verify keys (a planted manifest could pose as the newest run and make every real
/// run look unneeded), one that fails its integrity check, or one that is quarantined.
async fn refuse_unsafe(
    loaded: &backup_core::config::LoadedConfig,
    storage: &backup_core::storage::Storage,
    catalog: &Catalog,
    trust_args: &TrustArgs,
    signed: bool,
) -> Result<(), Failed> {
    if signed && !matches!(catalog.authentication, Authentication::Verified { .. }) {
        return Err(Failed::new(
            Exit::Config,
            "this backup is signed, but the prune configuration has no verify key, so its \
             manifests cannot be authenticated, and a manifest planted by anyone able to write \
             to the bucket could make real runs look unneeded; nothing was removed. Give the \
             prune configuration the backup's public key (restore.verify_key, --verify-key, or \
             its own backup.signing_key)"
                .to_owned(),
        ));
    }
    let errors: Vec<&str> = catalog
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.kind.as_str())
        .collect();
    if !errors.is_empty() {
        return Err(Failed::new(
            Exit::Integrity,
            format!(
                "the backup fails its integrity check ({}), so what it needs cannot be \
                 trusted and nothing was removed; run `kafka-backup validate` and deal with its \
                 findings first",
                errors.join(", ")
            ),
        ));
    }
    let trusted = super::release_keys(loaded, trust_args)?;
    let quarantine = super::quarantine::state(storage, &loaded.backup_id, &trusted).await?;
    if let Some(line) = super::quarantine::describe(&quarantine) {
        return Err(Failed::new(
            Exit::Integrity,
            format!(
                "backup `{}` is {line}; a quarantined backup is evidence, and nothing was \
                 removed. Release it first (`kafka-backup quarantine --release`)",
                loaded.backup_id
            ),
        ));
    }
    Ok(())
}

/// Plans retention for the configuration's backup, and carries it out with `execute`.
pub async fn run(
    config_path: &Path,
    policy: Policy,
    execute: bool,
    trust_args: &TrustArgs,
    format: OutputFormat,
) -> Result<Exit, Failed> {
    if policy.keep_last.is_none() && policy.max_age.is_none() {
        return Err(Failed::new(
            Exit::Usage,
            "prune needs a policy: --keep-last N (keep the newest N runs), --max-age D (keep runs \
             active within D, e.g. 30d), or both (a run either keeps stays)"
                .to_owned(),
        ));
    }
    if policy.keep_last == Some(0) {
        return Err(Failed::new(
            Exit::Usage,
            "--keep-last 0 would remove every run: the newest run is always kept; use 1 or more"
                .to_owned(),
        ));
    }
    let (loaded, storage) = open_store(config_path, false).await?;
    let read = read_keys(&loaded, trust_args)?;
    let catalog = Catalog::load(&storage, &loaded.backup_id, &read.trust)
        .await
        .map_err(catalog_failed)?;
    let configured = match loaded.storage.as_ref() {
        Some(StorageConfig::S3(s)) => s.object_lock.as_ref().map(|l| l.retain_days),
        _ => None,
    };
    let days = lock_days(&storage, configured, execute).await?;
    let lock = days.map(|d| Duration::from_secs(u64::from(d) * 86_400));
    let plan = prune::plan(&catalog, &policy, SystemTime::now(), lock);
    let key = loaded
        .audit
        .signing_key
        .clone()
        .or_else(|| loaded.backup.as_ref().and_then(|b| b.signing_key.clone()));
    let signed = !matches!(
        catalog.authentication,
        backup_core::catalog::Authentication::NotChecked { signed: false }
    );
    if signed && key.is_none() && execute && plan.remove_count() > 0 {
        return Err(Failed::new(
            Exit::Config,
            "this backup is signed, so its prune record must be signed too, or readers would \
             take the removed runs for deleted ones (chain-broken): run prune with a \
             configuration whose backup.signing_key or audit.signing_key is the admin's signing \
             key, and trust its public half (restore.release_verify_key or restore.verify_key)"
                .to_owned(),
        ));
    }
    if execute && plan.remove_count() > 0 {
        refuse_unsafe(&loaded, &storage, &catalog, trust_args, signed).await?;
    }
    let done = if execute {
        let by = crate::audit::who();
        if let Some(k) = &key {
            crate::audit::key_ids([k.verifying_key().key_id()]);
        }
        let result = prune::execute(&storage, &catalog, &plan, &by, key.as_ref()).await;
        match &result {
            Ok(d) => crate::audit::detail(&audit_detail(&plan, d)),
            Err(e) => crate::audit::detail(&format!("prune stopped: {e}")),
        }
        Some(result.map_err(|e| {
            let exit = match &e {
                PruneError::Storage { .. } | PruneError::Record(_) => Exit::Storage,
                _ => Exit::Failure,
            };
            Failed::new(exit, e.to_string())
        })?)
    } else {
        crate::audit::detail(&format!(
            "dry run: {} objects ({}) would be removed under {}",
            plan.remove_count(),
            human_bytes(plan.remove_bytes()),
            plan.policy
        ));
        None
    };
    match format {
        OutputFormat::Json => print_json(&json!({
            "backup_id": plan.backup_id,
            "policy": plan.policy,
            "executed": execute,
            "runs": plan.runs,
            "unlisted_segments": plan.unlisted_segments,
            "remove_objects": plan.remove_count(),
            "remove_bytes": plan.remove_bytes(),
            "result": done,
        }))?,
        OutputFormat::Text => super::print_text(&render(&plan, done.as_ref())),
    }
    Ok(Exit::Ok)
}

/// The audit event's detail: what was removed, run by run.
fn audit_detail(plan: &Plan, done: &Executed) -> String {
    let runs: Vec<String> = plan
        .runs
        .iter()
        .filter(|r| !r.remove.is_empty())
        .map(|r| {
            format!(
                "{} ({}{} objects)",
                r.run_id,
                if r.whole { "whole run, " } else { "" },
                r.remove.len()
            )
        })
        .collect();
    format!(
        "pruned under {}: removed {} objects ({}) of runs [{}]{}{}",
        plan.policy,
        done.removed,
        human_bytes(done.removed_bytes),
        runs.join(", "),
        done.record
            .as_ref()
            .map(|r| format!("; prune record {r}"))
            .unwrap_or_default(),
        if done.locked.is_empty() {
            String::new()
        } else {
            format!("; {} objects held by a retention lock", done.locked.len())
        }
    )
}

fn render(plan: &Plan, done: Option<&Executed>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Retention of backup `{}` under {}{}",
        plan.backup_id,
        plan.policy,
        if done.is_some() {
            ""
        } else {
            " (dry run: nothing is removed without --execute)"
        }
    );
    for r in &plan.runs {
        let verdict = match (&r.kept_by, r.whole, r.remove.len(), r.held_count) {
            (Some(why), ..) => format!("kept: {why}"),
            (None, true, n, _) => format!("REMOVE whole run ({n} objects)"),
            (None, false, 0, _) => "kept: every object is still needed or locked".to_owned(),
            (None, false, n, held) => {
                format!("remove {n} objects no kept run needs; {held} stay")
            }
        };
        let _ = writeln!(
            out,
            "  run {}  started {}  last active {}  {verdict}",
            r.run_id, r.started_at, r.last_active
        );
        for (key, why) in r.held.iter().take(3) {
            let because = match why {
                Held::Needed {
                    run_id,
                    topic,
                    partition,
                    from,
                    to,
                } => format!("run {run_id} still needs {topic}-{partition} offsets {from}..{to}"),
                Held::Newer {
                    topic,
                    partition,
                    from,
                } => format!(
                    "{topic}-{partition} from offset {from} is newer than any kept run reached"
                ),
                Held::Locked { until } => format!("object lock holds it until about {until}"),
            };
            let _ = writeln!(out, "      {key}: {because}");
        }
        if r.held_count > 3 {
            let _ = writeln!(out, "      … and {} more held", r.held_count - 3);
        }
    }
    if plan.unlisted_segments > 0 {
        let _ = writeln!(
            out,
            "  {} segments no manifest lists (a killed run's, or planted) are left alone; \
             `validate` reports them",
            plan.unlisted_segments
        );
    }
    let _ = writeln!(
        out,
        "{} {} objects ({} of segments).",
        if done.is_some() {
            "Planned"
        } else {
            "Would remove"
        },
        plan.remove_count(),
        human_bytes(plan.remove_bytes())
    );
    if let Some(d) = done {
        let _ = writeln!(
            out,
            "Removed {} objects ({}){}.",
            d.removed,
            human_bytes(d.removed_bytes),
            d.record
                .as_ref()
                .map(|r| format!("; prune record {r}"))
                .unwrap_or_default()
        );
        for (key, why) in &d.locked {
            let _ = writeln!(
                out,
                "  kept by a retention lock: {key} ({})",
                super::one_line(why)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_in_days_hours_and_minutes_only() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_age("90m"), Ok(Duration::from_secs(90 * 60)));
        for bad in [
            "",
            "d",
            "0d",
            "-1d",
            "1.5d",
            "30",
            "30s",
            "30D",
            "99999999999999d",
        ] {
            let e = parse_age(bad).unwrap_err();
            assert!(e.contains("like 30d, 12h or 90m"), "{bad}: {e}");
        }
        assert_eq!(
            backup_core::prune::plan::format_age(Duration::from_secs(30 * 86_400)),
            "30d"
        );
    }
}

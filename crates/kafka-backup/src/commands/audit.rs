//! `kafka-backup audit verify` and `kafka-backup audit show`: check an audit log's chain and
//! signatures, and read its events.

use std::fmt::Write as _;
use std::path::Path;

use backup_core::audit::chain::{ChainedEvent, Verification, Verifier};
use backup_core::audit::file::read_lines;
use backup_core::audit::store;
use backup_core::config::parse_time;
use backup_format::signing::VerifyingKeys;
use serde::Serialize;

use super::{count, print_json, read_verify_keys, table};
use crate::OutputFormat;
use crate::exit::{Exit, Failed};

fn unreadable(e: impl std::fmt::Display) -> Failed {
    Failed::new(Exit::Config, e.to_string())
}

/// Where a trail is read from.
pub enum Source<'a> {
    /// A JSON-lines file.
    File(&'a Path),
    /// The `audit/{backup_id}/` stream in a configuration's storage.
    Storage(&'a Path),
}

/// Checks every event of the trail, reports the first break, and exits 7 on one.
pub async fn verify(
    source: Source<'_>,
    verify_keys: &[std::path::PathBuf],
    format: OutputFormat,
) -> Result<Exit, Failed> {
    let mut keys = read_verify_keys(verify_keys)?;
    let (result, label) = match source {
        Source::File(file) => {
            let keys = VerifyingKeys::new(keys);
            let mut verifier = Verifier::new(&keys);
            read_lines(file, |n, line| {
                verifier.check(&format!("line {n}"), line);
                !verifier.broken()
            })
            .map_err(unreadable)?;
            (verifier.finish(), file.display().to_string())
        }
        Source::Storage(config) => {
            let (loaded, storage) = super::open_store(config, false).await?;
            if keys.is_empty() {
                keys = loaded.verifying_keys().keys().to_vec();
                if let Some(k) = &loaded.audit.signing_key {
                    keys.push(k.verifying_key().clone());
                }
            }
            let keys = VerifyingKeys::new(keys);
            let (result, _) = store::verify(&storage, &loaded.backup_id, &keys)
                .await
                .map_err(|e| Failed::new(Exit::Storage, e.to_string()))?;
            let prefix = store::stream_prefix(&loaded.backup_id)
                .map_err(|e| Failed::new(Exit::Config, e.to_string()))?;
            (result, storage.location(&prefix))
        }
    };
    crate::audit::counts(&[
        ("events", result.events),
        ("breaks", u64::from(result.first_break.is_some())),
    ]);
    #[derive(Serialize)]
    struct Report<'a> {
        log: String,
        ok: bool,
        #[serde(flatten)]
        result: &'a Verification,
    }
    match format {
        OutputFormat::Json => print_json(&Report {
            log: label.clone(),
            ok: result.first_break.is_none(),
            result: &result,
        })?,
        OutputFormat::Text => super::print_text(&render_verification(&label, &result)),
    }
    Ok(if result.first_break.is_some() {
        Exit::Integrity
    } else {
        Exit::Ok
    })
}

fn render_verification(label: &str, r: &Verification) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Audit log    {label}");
    let range = match (r.first_seq, r.last_seq) {
        (Some(a), Some(b)) => format!(" (events {a} to {b})"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "Checked      {}{range}",
        count(r.events, "event", "events")
    );
    let signatures = if !r.signatures_checked {
        "not checked: give --verify-key with the public half of the signing key".to_owned()
    } else {
        format!("every event signed by {}", r.signed_by.join(", "))
    };
    let _ = writeln!(out, "Signatures   {signatures}");
    match &r.first_break {
        None => {
            let _ = writeln!(
                out,
                "Result       intact: no event altered, removed, reordered or inserted"
            );
        }
        Some(b) => {
            let _ = writeln!(out, "Result       BROKEN at {}: {}", b.at, b.reason);
            let _ = writeln!(
                out,
                "             Events before it are intact; nothing after it was checked."
            );
        }
    }
    for note in &r.notes {
        let _ = writeln!(out, "Note         {note}");
    }
    out
}

/// Which events `audit show` prints.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ShowFilter {
    /// Only events at or after this time (RFC 3339, or milliseconds since the epoch).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Only this command (`backup`, `restore`, `validate`, ...).
    #[arg(long)]
    pub command: Option<String>,
    /// Only events of this backup id.
    #[arg(long)]
    pub backup: Option<String>,
    /// Only this outcome: success, partial or failure.
    #[arg(long)]
    pub outcome: Option<String>,
}

/// Prints the events of the log at `file` that pass `filter`. Lines that are not events are
/// skipped with a warning (`audit verify` says where the log breaks).
pub async fn show(
    source: Source<'_>,
    filter: &ShowFilter,
    format: OutputFormat,
) -> Result<Exit, Failed> {
    let bound = |text: &Option<String>, flag: &str| -> Result<Option<i64>, Failed> {
        text.as_deref()
            .map(|t| {
                parse_time(t).ok_or_else(|| {
                    Failed::new(
                        Exit::Usage,
                        format!(
                            "--{flag} `{t}` is not a time: give RFC 3339 \
                             (2026-12-04T10:00:00Z) or milliseconds since the epoch"
                        ),
                    )
                })
            })
            .transpose()
    };
    let since = bound(&filter.since, "since")?;
    let until = bound(&filter.until, "until")?;
    if let Some(o) = &filter.outcome
        && !["success", "partial", "failure"].contains(&o.as_str())
    {
        return Err(Failed::new(
            Exit::Usage,
            format!("--outcome `{o}`: give success, partial or failure"),
        ));
    }
    let mut events: Vec<(ChainedEvent, serde_json::Value)> = Vec::new();
    let mut skipped = 0u64;
    let mut take = |line: &str| {
        let body = line
            .rfind(",\"signature\":{")
            .map_or_else(|| line.to_owned(), |at| format!("{}}}", &line[..at]));
        match (
            serde_json::from_str::<ChainedEvent>(&body),
            serde_json::from_str::<serde_json::Value>(line),
        ) {
            (Ok(e), Ok(raw)) => {
                if keep(&e, filter, since, until) {
                    events.push((e, raw));
                }
            }
            _ => skipped += 1,
        }
    };
    let label = match source {
        Source::File(file) => {
            read_lines(file, |_, line| {
                take(line);
                true
            })
            .map_err(unreadable)?;
            format!("--file {}", file.display())
        }
        Source::Storage(config) => {
            let (loaded, storage) = super::open_store(config, false).await?;
            let lines = store::read_lines(&storage, &loaded.backup_id)
                .await
                .map_err(|e| Failed::new(Exit::Storage, e.to_string()))?;
            for line in &lines {
                take(line);
            }
            format!("--config {}", config.display())
        }
    };
    if skipped > 0 {
        tracing::warn!(
            "{} of the trail are not audit events and were skipped; run `kafka-backup audit \
             verify {label}` to see where it breaks",
            count(skipped, "line", "lines"),
        );
    }
    match format {
        OutputFormat::Json => {
            let raw: Vec<&serde_json::Value> = events.iter().map(|(_, r)| r).collect();
            print_json(&raw)?;
        }
        OutputFormat::Text => {
            let mut rows = vec![
                [
                    "SEQ",
                    "TIME",
                    "COMMAND",
                    "PHASE",
                    "OUTCOME",
                    "EXIT",
                    "BACKUP",
                    "RUN",
                    "PRINCIPAL",
                    "HOST",
                ]
                .map(str::to_owned)
                .to_vec(),
            ];
            for (e, _) in &events {
                let ev = &e.event;
                rows.push(vec![
                    e.seq.to_string(),
                    ev.time.clone(),
                    ev.command.clone(),
                    ev.phase
                        .map_or("", |p| match p {
                            backup_core::audit::Phase::Start => "start",
                            backup_core::audit::Phase::End => "end",
                        })
                        .to_owned(),
                    ev.outcome.map_or("", |o| o.as_str()).to_owned(),
                    ev.exit_code.map_or(String::new(), |c| c.to_string()),
                    ev.backup_id.clone().unwrap_or_default(),
                    ev.run_id.clone().unwrap_or_default(),
                    ev.principal.clone().unwrap_or_default(),
                    ev.host.clone(),
                ]);
            }
            super::print_text(&table("", &rows));
        }
    }
    Ok(Exit::Ok)
}

fn keep(e: &ChainedEvent, f: &ShowFilter, since: Option<i64>, until: Option<i64>) -> bool {
    let ev = &e.event;
    let at = parse_time(&ev.time);
    if let Some(s) = since
        && at.is_none_or(|t| t < s)
    {
        return false;
    }
    if let Some(u) = until
        && at.is_none_or(|t| t >= u)
    {
        return false;
    }
    if f.command.as_ref().is_some_and(|c| *c != ev.command) {
        return false;
    }
    if f.backup
        .as_ref()
        .is_some_and(|b| ev.backup_id.as_ref() != Some(b))
    {
        return false;
    }
    if f.outcome
        .as_ref()
        .is_some_and(|o| ev.outcome.map(|x| x.as_str()) != Some(o.as_str()))
    {
        return false;
    }
    true
}

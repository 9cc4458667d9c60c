//! `kafka-backup validate`: read every object of a backup and report what is missing,
//! damaged or inconsistent. Storage read access only; never Kafka.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;

use backup_core::backup::ProgressMode;
use backup_core::backup::progress::human_bytes;
use backup_core::catalog::Severity;
use backup_core::config::TopicSelection;
use backup_core::validate::{ValidateOptions, ValidationReport, validate};

use super::{TrustArgs, catalog_failed, count, open_store, print_json, read_keys};
use crate::OutputFormat;
use crate::exit::{Exit, Failed};
use crate::logging::LogFormat;

/// Validates the backup of a configuration and prints the report. Exits 0 when no problem is
/// an error (warnings are printed but allowed), 7 when one is.
pub async fn run(
    config_path: &Path,
    deep: bool,
    topics: Vec<String>,
    trust_args: &TrustArgs,
    format: OutputFormat,
    log_format: LogFormat,
) -> Result<Exit, Failed> {
    let (loaded, storage) = open_store(config_path, false).await?;
    let read = read_keys(&loaded, trust_args)?;
    let patterns = topics.clone();
    let topics = (!topics.is_empty()).then(|| TopicSelection {
        include: topics,
        exclude: Vec::new(),
    });
    // JSON output goes to a program: a redrawn progress line on its terminal's stderr would
    // only get in the way of the document it waits for.
    let progress = if std::io::stderr().is_terminal()
        && log_format == LogFormat::Text
        && format == OutputFormat::Text
    {
        ProgressMode::Terminal
    } else {
        ProgressMode::Log
    };
    tracing::info!(
        backup_id = %loaded.backup_id,
        location = %storage.location(&loaded.backup_id),
        deep,
        "validating the backup"
    );
    let report = validate(
        &storage,
        &loaded.backup_id,
        ValidateOptions {
            deep,
            topics,
            progress,
            trust: read.trust,
            keys: read.data,
        },
    )
    .await
    .map_err(catalog_failed)?;
    if !patterns.is_empty() && report.topics == 0 {
        // Validating nothing and exiting 0 would read as "the backup is fine".
        return Err(Failed::new(
            Exit::Config,
            format!(
                "no topic of backup `{}` matches --topic {}; patterns are globs (`*`, `?`) \
                 matched against whole topic names: run `kafka-backup describe --config {}` \
                 to see the backed-up topics",
                report.backup_id,
                patterns.join(" --topic "),
                config_path.display()
            ),
        ));
    }
    crate::audit::counts(&[
        ("errors", report.errors as u64),
        ("warnings", report.warnings as u64),
        ("runs", report.runs as u64),
        ("topics", report.topics as u64),
        ("partitions", report.partitions as u64),
        ("segments", report.segments),
    ]);
    match format {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => super::print_text(&render_text(&report)),
    }
    Ok(if report.ok { Exit::Ok } else { Exit::Integrity })
}

/// The report as text: the verdict, the figures, then every problem on one line each.
pub fn render_text(r: &ValidationReport) -> String {
    let mut out = String::new();
    let how = if r.deep {
        "deep: every record decoded"
    } else {
        "segments and structure; --deep also decodes records"
    };
    let _ = writeln!(out, "Backup       {} at {}", r.backup_id, r.location);
    let _ = writeln!(out, "Checked      {how}");
    let counts = format!(
        "{}, {}",
        count(r.errors as u64, "error", "errors"),
        count(r.warnings as u64, "warning", "warnings")
    );
    if r.ok {
        let _ = writeln!(out, "Result       OK ({counts})");
    } else {
        let _ = writeln!(
            out,
            "Result       FAILED ({counts}): the backup is damaged or incomplete; see the \
             problems below"
        );
    }
    let _ = writeln!(out, "Authenticity {}", r.authentication.describe());
    if r.encrypted_segments > 0 {
        let not_decrypted = if r.not_decrypted_segments > 0 {
            format!(
                ", {} NOT decrypted (checked by hash and clear header only): configure a key \
                 that can decrypt them (restore.encryption)",
                r.not_decrypted_segments
            )
        } else {
            ", all decrypted".to_owned()
        };
        let _ = writeln!(
            out,
            "Encrypted    {}{not_decrypted}",
            count(r.encrypted_segments, "segment", "segments")
        );
    }
    let _ = writeln!(
        out,
        "Runs         {} ({})",
        r.runs,
        count(r.manifests as u64, "manifest part", "manifest parts")
    );
    let _ = writeln!(
        out,
        "Topics       {} ({})",
        r.topics,
        count(r.partitions as u64, "partition", "partitions")
    );
    let orphans = if r.orphan_segments > 0 {
        format!(", {} listed by no manifest", r.orphan_segments)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "Segments     {} read, {}{orphans}",
        r.segments,
        human_bytes(r.bytes_read)
    );
    let _ = writeln!(
        out,
        "Batches      {} ({} control)",
        r.batches, r.control_batches
    );
    let _ = writeln!(out, "Records      {}", r.records);
    if let Some(decoded) = r.records_decoded {
        let _ = writeln!(out, "Decoded      {decoded} records");
    }
    if let (Some(committed), Some(aborted), Some(open)) = (
        r.transactions_committed,
        r.transactions_aborted,
        r.open_transactions,
    ) {
        let _ = writeln!(
            out,
            "Transactions {committed} committed, {aborted} aborted, {open} open at the end of \
             the backed-up range"
        );
    }
    if r.gap_records > 0 {
        let _ = writeln!(
            out,
            "Gaps         {} gap records (offsets lost to retention before they were copied)",
            r.gap_records
        );
    }
    let _ = writeln!(out, "Duration     {:.1} s", r.duration_secs);
    if !r.problems.is_empty() {
        let _ = writeln!(out, "\nProblems");
        // Errors first: they decide the exit code and are what an operator acts on.
        for severity in [Severity::Error, Severity::Warning] {
            for p in r.problems.iter().filter(|p| p.severity == severity) {
                let _ = writeln!(out, "  {p}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use backup_core::catalog::{Problem, ProblemKind};

    use super::*;

    fn report() -> ValidationReport {
        ValidationReport {
            backup_id: "b".into(),
            location: "/store/b".into(),
            deep: true,
            ok: false,
            errors: 1,
            warnings: 1,
            manifests: 1,
            runs: 1,
            topics: 1,
            partitions: 2,
            segments: 3,
            orphan_segments: 1,
            encrypted_segments: 0,
            not_decrypted_segments: 0,
            authentication: backup_core::catalog::Authentication::NotChecked { signed: false },
            gap_records: 0,
            bytes_read: 4096,
            batches: 10,
            records: 300,
            records_decoded: Some(300),
            control_batches: 0,
            transactions_committed: Some(0),
            transactions_aborted: Some(0),
            open_transactions: Some(0),
            duration_secs: 0.25,
            problems: vec![
                Problem::new(ProblemKind::OrphanSegment, "orphan")
                    .at("t", 0)
                    .offset(0)
                    .object("b/topics/t/id/00000/a.kbseg"),
                Problem::new(ProblemKind::HashMismatch, "bad")
                    .at("t", 1)
                    .offset(100)
                    .object("b/topics/t/id/00001/c.kbseg"),
            ],
        }
    }

    #[test]
    fn errors_are_listed_before_warnings_with_their_objects() {
        let text = render_text(&report());
        assert!(text.contains("FAILED (1 error, 1 warning)"), "{text}");
        assert!(
            text.contains("3 read, 4.1 kB, 1 listed by no manifest"),
            "{text}"
        );
        assert!(text.contains("Decoded      300 records"), "{text}");
        assert!(
            text.contains("Authenticity unsigned: nothing in it is authenticated"),
            "{text}"
        );
        assert!(!text.contains("Encrypted"), "{text}");
        let error = text.find("error hash-mismatch t/1 @100 (b/topics/t/id/00001/c.kbseg)");
        let warning = text.find("warning orphan-segment t/0 @0");
        assert!(error.is_some() && warning.is_some(), "{text}");
        assert!(error < warning, "{text}");
    }

    #[test]
    fn shallow_reports_leave_out_the_deep_figures() {
        let mut r = report();
        r.deep = false;
        r.records_decoded = None;
        r.transactions_committed = None;
        r.transactions_aborted = None;
        r.open_transactions = None;
        r.problems.clear();
        r.errors = 0;
        r.warnings = 0;
        r.ok = true;
        let text = render_text(&r);
        assert!(
            text.contains("Result       OK (0 errors, 0 warnings)"),
            "{text}"
        );
        assert!(!text.contains("Decoded"), "{text}");
        assert!(!text.contains("Transactions"), "{text}");
        assert!(!text.contains("Problems"), "{text}");
        r.encrypted_segments = 3;
        r.not_decrypted_segments = 3;
        let text = render_text(&r);
        assert!(
            text.contains("Encrypted    3 segments, 3 NOT decrypted (checked by hash"),
            "{text}"
        );
    }
}

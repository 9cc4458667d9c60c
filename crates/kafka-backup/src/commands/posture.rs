//! `kafka-backup check --security`: the posture findings of one or more configurations, as
//! text, JSON or SARIF 2.1.0 (for code-scanning tools), with `--fail-on` as policy.

use std::fmt::Write as _;
use std::path::PathBuf;

use backup_core::config;
use backup_core::posture::{self, Finding, RULES, Severity};
use serde_json::json;

use super::{count, print_json};
use crate::exit::{Exit, Failed};

/// How `check --security` prints its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PostureFormat {
    /// A list for people.
    Text,
    /// One JSON document.
    Json,
    /// SARIF 2.1.0, for code scanning (GitHub, GitLab, Azure DevOps).
    Sarif,
}

/// Assesses `configs` (with `storage`, their S3 buckets' own settings too) and prints the
/// findings; exits 8 when one is at or above `fail_on`.
pub async fn run(
    configs: &[PathBuf],
    fail_on: Option<Severity>,
    storage: bool,
    format: PostureFormat,
) -> Result<Exit, Failed> {
    let mut loaded = Vec::new();
    for (i, path) in configs.iter().enumerate() {
        let l = if i == 0 {
            super::load_config(path, false)?
        } else {
            let l = config::load(path)?;
            for warning in &l.warnings {
                tracing::warn!("{warning}");
            }
            l
        };
        loaded.push((path.clone(), l));
    }
    let mut findings = posture::assess(&loaded);
    if storage {
        for (path, l) in &loaded {
            let Some(storage_config) = &l.storage else {
                continue;
            };
            let store = backup_core::storage::Storage::open_with(
                storage_config,
                &l.storage_options,
                &|name| std::env::var(name).ok(),
            )
            .map_err(|e| Failed::new(Exit::Storage, e.to_string()))?;
            if let Some(facts) = store.bucket_facts().await {
                let name = path.display().to_string();
                findings.extend(posture::bucket::assess_bucket(&name, l, &facts));
            }
        }
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.cmp(b.rule)));
    }
    let failed = fail_on.is_some_and(|level| findings.iter().any(|f| f.severity >= level));
    let tally = |s: Severity| findings.iter().filter(|f| f.severity == s).count() as u64;
    crate::audit::counts(&[
        ("high", tally(Severity::High)),
        ("medium", tally(Severity::Medium)),
        ("low", tally(Severity::Low)),
    ]);
    match format {
        PostureFormat::Text => super::print_text(&render_text(&findings, fail_on, failed)),
        PostureFormat::Json => print_json(&json!({
            "configs": configs,
            "findings": findings,
            "high": tally(Severity::High),
            "medium": tally(Severity::Medium),
            "low": tally(Severity::Low),
            "fail_on": fail_on.map(Severity::as_str),
            "failed": failed,
        }))?,
        PostureFormat::Sarif => print_json(&sarif(&findings))?,
    }
    Ok(if failed { Exit::Findings } else { Exit::Ok })
}

fn render_text(findings: &[Finding], fail_on: Option<Severity>, failed: bool) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        let _ = writeln!(out, "No findings.");
    }
    for f in findings {
        let at = match f.line {
            Some(line) => format!("{}:{line}", f.config),
            None => f.config.clone(),
        };
        let _ = writeln!(out, "{:<6} {}  {}", f.severity.as_str(), f.rule, f.title);
        let _ = writeln!(out, "       in       {at}");
        let _ = writeln!(out, "       evidence {}", f.evidence);
        let _ = writeln!(out, "       fix      {}", f.fix);
        let _ = writeln!(out);
    }
    let n = |s: Severity| findings.iter().filter(|f| f.severity == s).count() as u64;
    let _ = write!(
        out,
        "{}: {} high, {} medium, {} low",
        count(findings.len() as u64, "finding", "findings"),
        n(Severity::High),
        n(Severity::Medium),
        n(Severity::Low)
    );
    match fail_on {
        Some(level) if failed => {
            let _ = writeln!(out, "; FAILED: at least one at or above {}", level.as_str());
        }
        Some(level) => {
            let _ = writeln!(out, "; none at or above {}", level.as_str());
        }
        None => {
            let _ = writeln!(out);
        }
    }
    out
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// GitHub ranks code-scanning alerts by this score (0-10).
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::High => "8.0",
        Severity::Medium => "5.0",
        Severity::Low => "2.0",
    }
}

/// The findings as a SARIF 2.1.0 log.
fn sarif(findings: &[Finding]) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = RULES
        .iter()
        .map(|(id, text)| {
            let worst = findings
                .iter()
                .filter(|f| f.rule == *id)
                .map(|f| f.severity)
                .max()
                .unwrap_or(Severity::Medium);
            json!({
                "id": id,
                "shortDescription": { "text": text },
                "defaultConfiguration": { "level": level(worst) },
                "properties": { "security-severity": security_severity(worst), "tags": ["security"] },
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            let mut location = json!({
                "physicalLocation": { "artifactLocation": { "uri": f.config } }
            });
            if let Some(line) = f.line {
                location["physicalLocation"]["region"] = json!({ "startLine": line });
            }
            json!({
                "ruleId": f.rule,
                "ruleIndex": RULES.iter().position(|(id, _)| *id == f.rule),
                "level": level(f.severity),
                "message": { "text": format!("{}: {}. Fix: {}", f.title, f.evidence, f.fix) },
                "locations": [location],
                "properties": { "severity": f.severity.as_str() },
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "kafka-backup",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

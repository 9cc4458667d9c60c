//! `kafka-backup check`: load the configuration, connect to its cluster, print the report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::posture::PostureFormat;

use backup_core::check::{CheckReport, check_cluster};

use crate::OutputFormat;
use crate::exit::{Exit, Failed};

/// `check` without `--security`: one configuration, connected to; `sarif` is for the posture
/// check only.
pub async fn connect(configs: &[PathBuf], format: PostureFormat) -> Result<Exit, Failed> {
    let [config_path] = configs else {
        return Err(Failed::new(
            Exit::Usage,
            "check connects to one cluster: give one --config (several are for --security)"
                .to_owned(),
        ));
    };
    let format = match format {
        PostureFormat::Text => OutputFormat::Text,
        PostureFormat::Json => OutputFormat::Json,
        PostureFormat::Sarif => {
            return Err(Failed::new(
                Exit::Usage,
                "--format sarif is for check --security; use text or json".to_owned(),
            ));
        }
    };
    run(config_path, format).await
}

/// Runs the check and prints the report; the exit code says whether every broker was fine.
pub async fn run(config_path: &Path, format: OutputFormat) -> Result<Exit, Failed> {
    let loaded = super::load_config(config_path, true)?;
    tracing::info!("{loaded}");
    let client_config = loaded
        .cluster
        .client_config()
        .map_err(|e| Failed::new(Exit::Config, format!("{}: {e}", config_path.display())))?;
    let role = loaded.mode.cluster_key();
    let report = check_cluster(role, client_config).await?;
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    match format {
        OutputFormat::Json => {
            let json = serde_json::to_string_pretty(&report).map_err(|e| {
                Failed::new(Exit::Failure, format!("cannot format the report: {e}"))
            })?;
            println!("{json}");
        }
        OutputFormat::Text => super::print_text(&render_text(&report)),
    }
    Ok(if report.ok { Exit::Ok } else { Exit::Kafka })
}

/// The report as aligned text.
pub fn render_text(r: &CheckReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Cluster      {}",
        r.cluster_id.as_deref().unwrap_or("(no cluster id)")
    );
    let _ = writeln!(out, "Role         {}", r.role);
    let _ = writeln!(out, "Bootstrap    {}", r.bootstrap_servers.join(", "));
    let _ = writeln!(out, "Security     {}", r.security_protocol);
    let _ = writeln!(
        out,
        "Topics       {} visible ({} internal)",
        r.topics_visible, r.internal_topics_visible
    );
    let _ = writeln!(out, "Brokers      {}", r.brokers.len());
    for b in &r.brokers {
        let controller = if r.controller_id == Some(b.id) {
            " (controller)"
        } else {
            ""
        };
        let status = if b.ok { "ok" } else { "FAILED" };
        let _ = writeln!(
            out,
            "\n  Broker {} at {}{controller}: {status}",
            b.id, b.address
        );
        if let Some(e) = &b.error {
            let _ = writeln!(out, "    Error        {e}");
        }
        if let Some(t) = &b.tls {
            let _ = writeln!(
                out,
                "    TLS          {}, {}",
                t.protocol_version, t.cipher_suite
            );
            if let Some(c) = &t.certificate {
                let _ = writeln!(out, "    Certificate  {}", c.subject);
                let _ = writeln!(out, "    Issuer       {}", c.issuer);
                if !c.subject_alt_names.is_empty() {
                    let _ = writeln!(out, "    Names        {}", c.subject_alt_names.join(", "));
                }
                let flag = if c.days_left < 30 {
                    "  << renew soon"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "    Expires      {} ({} days){flag}",
                    c.not_after, c.days_left
                );
            }
        }
        if let Some(s) = &b.sasl {
            let lifetime = if s.session_lifetime_ms > 0 {
                format!(", session lifetime {} s", s.session_lifetime_ms / 1000)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "    SASL         {} as {}{lifetime}",
                s.mechanism,
                s.user.as_deref().unwrap_or("?")
            );
        }
        if !b.api_versions.is_empty() {
            let _ = writeln!(out, "    API versions (chosen / broker range)");
            for a in &b.api_versions {
                let chosen = a.chosen.map_or("none".to_owned(), |v| format!("v{v}"));
                let range = a
                    .broker_range
                    .map_or("not offered".to_owned(), |(lo, hi)| format!("{lo}-{hi}"));
                let _ = writeln!(out, "      {:<18} {:<5} {range}", a.api, chosen);
            }
        }
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings");
        for w in &r.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    let _ = writeln!(
        out,
        "\nResult       {}",
        if r.ok {
            "OK"
        } else {
            "FAILED: see the brokers above"
        }
    );
    out
}

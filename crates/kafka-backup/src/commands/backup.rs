//! `kafka-backup backup`: load the configuration, open storage, run the backup until it is
//! done or a signal asks it to stop, print the summary.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;

use backup_core::backup::progress::human_bytes;
use backup_core::backup::{BackupError, BackupReport, Outcome, ProgressMode, run_backup};
use backup_core::config::{JOB_COMPLETION_INDEX, Mode};
use backup_core::storage::Storage;
use backup_format::Shard;
use tokio::sync::watch;

use crate::OutputFormat;
use crate::exit::{Exit, Failed};
use crate::logging::LogFormat;

/// Runs a backup and reports it.
pub async fn run(
    config_path: &Path,
    shard: Option<Shard>,
    format: OutputFormat,
    log_format: LogFormat,
) -> Result<Exit, Failed> {
    let mut loaded = super::load_config(config_path, true)?;
    if loaded.mode != Mode::Backup {
        return Err(Failed::new(
            Exit::Config,
            format!(
                "{} has mode: {}; `kafka-backup backup` needs a configuration with mode: backup",
                config_path.display(),
                loaded.mode
            ),
        ));
    }
    if let Some(plan) = loaded.backup.as_mut() {
        let job_index = std::env::var(JOB_COMPLETION_INDEX).ok();
        let shard = plan
            .resolve_shard(shard, job_index.as_deref())
            .map_err(|e| Failed::new(Exit::Config, e))?;
        if let Some(s) = shard {
            crate::audit::detail(&format!("shard {s}"));
            tracing::info!(shard = %s, "backing up the partitions of shard {s}");
        }
    }
    tracing::info!("{loaded}");
    let storage_config = loaded.require_storage(&config_path.display().to_string())?;
    let storage = Storage::open_with(storage_config, &loaded.storage_options, &|name| {
        std::env::var(name).ok()
    })
    .map_err(|e| Failed::new(Exit::Storage, e.to_string()))?;
    crate::audit::storage(&storage).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            "signal received: stopping after the current fetches; a second signal aborts"
        );
        let _ = stop_tx.send(true);
        wait_for_signal().await;
        eprintln!("second signal: aborting without finishing the open segments");
        std::process::exit(130);
    });

    let progress = if std::io::stderr().is_terminal() && log_format == LogFormat::Text {
        ProgressMode::Terminal
    } else {
        ProgressMode::Log
    };
    let report = run_backup(&loaded, storage, progress, stop_rx)
        .await
        .map_err(failed)?;
    record(&report);
    match format {
        OutputFormat::Json => {
            let json = serde_json::to_string_pretty(&report).map_err(|e| {
                Failed::new(Exit::Failure, format!("cannot format the report: {e}"))
            })?;
            println!("{json}");
        }
        OutputFormat::Text => super::print_text(&render_text(&report)),
    }
    Ok(match report.outcome {
        Outcome::Complete => Exit::Ok,
        Outcome::Interrupted | Outcome::Partial => Exit::Partial,
    })
}

/// What the audit trail keeps of a backup run.
fn record(r: &BackupReport) {
    crate::summary::record(crate::summary::Work {
        backup_id: Some(r.backup_id.clone()),
        run_id: Some(r.run_id.clone()),
        shard: r.shard.clone(),
        outcome: Some(match r.outcome {
            Outcome::Complete => "complete",
            Outcome::Interrupted => "interrupted",
            Outcome::Partial => "partial",
        }),
        records: r.records,
        bytes: r.bytes_written,
    });
    crate::audit::run_id(&r.run_id);
    crate::audit::cluster_id(r.source_cluster_id.as_deref());
    crate::audit::counts(&[
        ("topics", r.topics as u64),
        ("partitions", r.partitions as u64),
        ("records", r.records),
        ("bytes_read", r.bytes_read),
        ("bytes_written", r.bytes_written),
        ("segments", r.segments as u64),
        ("gaps", r.gaps as u64),
        ("consumer_groups", r.consumer_groups as u64),
        ("failed_partitions", r.failed_partitions.len() as u64),
    ]);
    let encryption = r.encryption.iter().flat_map(|e| e.key_ids.iter().cloned());
    crate::audit::key_ids(encryption.chain(r.signing_key_id.iter().cloned()));
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn failed(e: BackupError) -> Failed {
    let exit = match &e {
        BackupError::Config(_) | BackupError::NoTopicsMatched { .. } | BackupError::Name(_) => {
            Exit::Config
        }
        BackupError::Kafka(k) => Exit::for_kafka(k.kind()),
        BackupError::Storage(_) => Exit::Storage,
        BackupError::Keys(k) => Exit::for_keys(k.kind()),
        BackupError::Format(_) | BackupError::Internal(_) => Exit::Failure,
    };
    Failed::new(exit, e.to_string())
}

/// The summary as text.
pub fn render_text(r: &BackupReport) -> String {
    let mut out = String::new();
    let outcome = match r.outcome {
        Outcome::Complete => "complete",
        Outcome::Interrupted => "INTERRUPTED: run the same command again to resume",
        Outcome::Partial => "PARTIAL: some partitions failed (see below)",
    };
    let _ = writeln!(
        out,
        "Backup       {} (run {}, {})",
        r.backup_id, r.run_id, r.mode
    );
    if let Some(shard) = &r.shard {
        let _ = writeln!(out, "Shard        {shard}");
    }
    let _ = writeln!(out, "Outcome      {outcome}");
    let _ = writeln!(out, "Topics       {}", r.topics);
    let _ = writeln!(out, "Partitions   {}", r.partitions);
    let _ = writeln!(out, "Records      {}", r.records);
    let _ = writeln!(out, "Read         {}", human_bytes(r.bytes_read));
    let _ = writeln!(
        out,
        "Written      {} in {} segments (compression ratio {:.2})",
        human_bytes(r.bytes_written),
        r.segments,
        r.compression_ratio
    );
    let _ = writeln!(
        out,
        "Duration     {:.1} s ({:.1} MB/s)",
        r.duration_secs, r.throughput_mb_s
    );
    let _ = writeln!(
        out,
        "Groups       {} consumer groups captured",
        r.consumer_groups
    );
    let _ = writeln!(
        out,
        "Encryption   {}",
        match &r.encryption {
            Some(e) => format!(
                "{}, run key wrapped by {} for {}",
                e.algorithm,
                e.provider,
                e.key_ids.join(", ")
            ),
            None => "none: segments are stored in the clear (set backup.encryption)".to_owned(),
        }
    );
    let _ = writeln!(
        out,
        "Signed       {}",
        match &r.signing_key_id {
            Some(id) => format!("with key {id}: names, manifests and descriptor"),
            None => "no: objects are not authenticated (set backup.signing_key)".to_owned(),
        }
    );
    if r.gaps > 0 {
        let _ = writeln!(
            out,
            "Gaps         {} (offsets lost to retention; see the warnings)",
            r.gaps
        );
    }
    if !r.failed_partitions.is_empty() {
        let _ = writeln!(out, "Failed partitions");
        for (tp, why) in &r.failed_partitions {
            let _ = writeln!(out, "  {tp}: {why}");
        }
    }
    if r.per_topic.len() > 1 {
        let _ = writeln!(out, "Per topic");
        for (name, t) in &r.per_topic {
            let _ = writeln!(
                out,
                "  {name:<30} {:>4} partitions {:>10} records {:>10}",
                t.partitions,
                t.records,
                human_bytes(t.bytes)
            );
        }
    }
    out
}

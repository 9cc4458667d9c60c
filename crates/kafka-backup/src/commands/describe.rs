//! `kafka-backup describe`: what a backup holds (topics, lineages, partitions, runs,
//! consumer-group snapshots), from its listing and manifests. Storage read access only.

use std::fmt::Write as _;
use std::path::Path;

use backup_core::backup::progress::human_bytes;
use backup_core::catalog::Catalog;
use backup_core::catalog::describe::{
    BackupDescription, LineageDescription, PartitionDescription, RunDescription, describe,
};

use super::{
    TrustArgs, catalog_failed, count, format_ms, open_store, print_json, read_keys, table,
};
use crate::OutputFormat;
use crate::exit::{Exit, Failed};

/// Describes the backup of a configuration. Exits 0 even when the catalog has problems:
/// they are printed, and judging the backup is `validate`'s job.
pub async fn run(
    config_path: &Path,
    trust_args: &TrustArgs,
    format: OutputFormat,
) -> Result<Exit, Failed> {
    let (loaded, storage) = open_store(config_path, false).await?;
    let read = read_keys(&loaded, trust_args)?;
    let ring = loaded.key_ring();
    let mut catalog = Catalog::load(&storage, &loaded.backup_id, &read.trust)
        .await
        .map_err(catalog_failed)?;
    // Topic configurations and groups of an encrypted backup show when a key is configured.
    if let Some(keys) = &read.data {
        for (object, failure) in catalog.unseal(keys.as_ref()).await {
            tracing::warn!("{object}: {failure}");
        }
    }
    let mut description = describe(&storage, &catalog, read.data.as_deref())
        .await
        .map_err(catalog_failed)?;
    for run in &mut description.runs {
        if let Some(e) = &mut run.encryption {
            e.available = Some(availability(&ring, &catalog, &run.run_id));
        }
    }
    let trusted = super::release_keys(&loaded, trust_args)?;
    let quarantine = super::quarantine::state(&storage, &loaded.backup_id, &trusted).await?;
    match format {
        OutputFormat::Json => {
            let mut value = serde_json::to_value(&description).map_err(|e| {
                Failed::new(Exit::Failure, format!("cannot format the report: {e}"))
            })?;
            if let Some(object) = value.as_object_mut() {
                object.insert(
                    "quarantine".to_owned(),
                    super::quarantine::to_json(&quarantine),
                );
                object.insert(
                    "pruned".to_owned(),
                    serde_json::to_value(&catalog.pruned).unwrap_or_default(),
                );
            }
            print_json(&value)?;
        }
        OutputFormat::Text => {
            super::print_text(&super::quarantine::render(&quarantine));
            super::print_text(&render_pruned(&catalog));
            super::print_text(&render_text(&description));
        }
    }
    Ok(Exit::Ok)
}

/// One line per prune record: when, by whom, under which policy, what it removed.
fn render_pruned(catalog: &Catalog) -> String {
    let mut out = String::new();
    for r in &catalog.pruned {
        let whole = r.record.runs.iter().filter(|run| run.whole).count();
        let objects: usize = r.record.runs.iter().map(|run| run.objects.len()).sum();
        let _ = writeln!(
            out,
            "Pruned       {} by {} under {}: {} runs whole, {objects} objects{}",
            r.record.at,
            r.record.by,
            r.record.policy,
            whole,
            r.signed_by
                .as_ref()
                .map(|k| format!(", signed by {k}"))
                .unwrap_or_default()
        );
    }
    out
}

/// Whether the configured keys can decrypt `run`, in words.
fn availability(ring: &backup_core::keys::KeyRing, catalog: &Catalog, run: &str) -> String {
    use backup_core::keys::KeyAvailability as A;
    let Some(e) = catalog
        .manifests
        .iter()
        .find(|m| m.manifest.run_id == run)
        .and_then(|m| m.manifest.encryption.as_ref())
    else {
        return "unknown".to_owned();
    };
    match ring.availability(&e.key) {
        A::Available { key_id } => format!("yes, with {key_id}"),
        A::Possible { reason } => format!("possibly: {reason}"),
        A::Missing { configured } if configured.is_empty() => {
            "no: no key of this provider is configured".to_owned()
        }
        A::Missing { configured } => {
            format!("no: the configured {} do not match", configured.join(", "))
        }
    }
}

/// The description as text.
pub fn render_text(d: &BackupDescription) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Backup       {} at {}", d.backup_id, d.location);
    let _ = writeln!(
        out,
        "Created      {}{}",
        d.created_at.as_deref().unwrap_or("(no descriptor)"),
        d.tool_version
            .as_deref()
            .map(|v| format!(" by kafka-backup {v}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "Source       {}",
        d.source_cluster_id
            .as_deref()
            .unwrap_or("(cluster id not recorded)")
    );
    let _ = writeln!(out, "Authenticity {}", d.authentication.describe());
    let t = &d.totals;
    let _ = writeln!(
        out,
        "Contents     {} ({}), {}, {}",
        count(t.topics, "topic", "topics"),
        count(t.lineages, "lineage", "lineages"),
        count(t.partitions, "partition", "partitions"),
        count(t.records, "record", "records")
    );
    let _ = writeln!(
        out,
        "Stored       {} in {} ({} of record batches before compression)",
        human_bytes(t.stored_bytes),
        count(t.segments, "segment", "segments"),
        human_bytes(t.raw_bytes)
    );
    if t.gaps > 0 {
        let _ = writeln!(
            out,
            "Gaps         {} (offsets lost to retention before they were copied)",
            t.gaps
        );
    }

    if !d.unauthenticated_segments.is_empty() {
        let _ = writeln!(
            out,
            "Left out     {} not counted above: not authenticated \
             (see the problems; a restore leaves them out)",
            count(
                d.unauthenticated_segments.len() as u64,
                "segment",
                "segments"
            )
        );
    }

    let _ = writeln!(out, "\nRuns");
    if d.runs.is_empty() {
        let _ = writeln!(
            out,
            "  (no manifest: every run was stopped before writing one)"
        );
    } else {
        let mut rows = vec![
            [
                "RUN", "MODE", "STATUS", "STARTED", "FINISHED", "SEGMENTS", "RECORDS", "SIZE",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        for r in &d.runs {
            let finished = match (&r.finished_at, r.finished) {
                (Some(at), _) => at.clone(),
                (None, true) => "-".to_owned(),
                // No final part: still running, or killed before it could write one.
                (None, false) => "(no final manifest)".to_owned(),
            };
            rows.push(vec![
                r.run_id.clone(),
                r.mode.clone(),
                r.status.clone(),
                r.started_at.clone(),
                finished,
                r.segments.to_string(),
                r.records.to_string(),
                human_bytes(r.stored_bytes),
            ]);
        }
        out.push_str(&table("  ", &rows));
        // What each run needs: an auditor checks signatures and keys without JSON.
        let _ = writeln!(out, "\nKeys");
        for r in &d.runs {
            let _ = writeln!(out, "  {}: {}", r.run_id, run_keys(r));
        }
    }

    let _ = writeln!(out, "\nTopics");
    if d.topics.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for topic in &d.topics {
        let _ = writeln!(out, "  {}", topic.name);
        for lineage in &topic.lineages {
            render_lineage(&mut out, lineage, topic.lineages.len() > 1);
        }
    }

    let _ = writeln!(out, "\nConsumer groups");
    if d.group_snapshots.is_empty() {
        let _ = writeln!(out, "  (no snapshot)");
    }
    for s in &d.group_snapshots {
        let _ = writeln!(
            out,
            "  captured {} by run {}: {}",
            s.captured_at,
            s.run_id,
            count(s.groups.len() as u64, "group", "groups")
        );
        let rows: Vec<Vec<String>> = s
            .groups
            .iter()
            .map(|g| {
                vec![
                    g.group_id.clone(),
                    g.state.clone(),
                    format!("{} offsets", g.offsets),
                ]
            })
            .collect();
        out.push_str(&table("    ", &rows));
    }

    if !d.problems.is_empty() {
        let _ = writeln!(
            out,
            "\nProblems (from the listing and manifests; `kafka-backup validate` reads every \
             object)"
        );
        for p in &d.problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}

/// How a run is encrypted and signed, in words: provider, key ids, whether the configured
/// keys can decrypt it, and the signing key.
fn run_keys(r: &RunDescription) -> String {
    let encryption = match &r.encryption {
        Some(e) => format!(
            "encrypted ({}, {} key {}; decryptable: {})",
            e.algorithm,
            e.provider,
            e.key_ids.join(", "),
            e.available.as_deref().unwrap_or("unknown")
        ),
        None => "not encrypted".to_owned(),
    };
    let signed = match &r.signed_by {
        Some(id) => format!("signed by key {id}"),
        None => "signature not verified".to_owned(),
    };
    format!("{encryption}, {signed}")
}

fn render_lineage(out: &mut String, l: &LineageDescription, several: bool) {
    let mut about = vec![format!("topic id {}", l.topic_id)];
    if several && l.latest {
        about.push("latest: restored by default".to_owned());
    } else if several {
        about.push("older: the topic was deleted and re-created".to_owned());
    }
    if let Some(n) = l.partition_count {
        about.push(format!("{n} partitions"));
    }
    if let Some(rf) = l.replication_factor {
        about.push(format!("replication factor {rf}"));
    }
    if let Some(run) = &l.last_seen_run {
        about.push(format!("last seen by run {run}"));
    }
    let _ = writeln!(out, "    {}", about.join(", "));
    let t = &l.totals;
    let _ = writeln!(
        out,
        "    {}, {} in {}",
        count(t.records, "record", "records"),
        human_bytes(t.stored_bytes),
        count(t.segments, "segment", "segments")
    );
    if !l.configs.is_empty() {
        let configs: Vec<String> = l.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "    configs: {}", configs.join(", "));
    }
    let mut rows = vec![
        [
            "PARTITION",
            "OFFSETS",
            "RECORDS",
            "SEGMENTS",
            "SIZE",
            "TIME RANGE",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    rows.extend(l.partitions.iter().map(partition_row));
    out.push_str(&table("      ", &rows));
    for p in &l.partitions {
        for g in &p.gaps {
            let _ = writeln!(
                out,
                "      partition {}: offsets {}..{} lost before they were copied",
                p.partition,
                g.from,
                g.to - 1
            );
        }
        if p.orphan_segments > 0 {
            let _ = writeln!(
                out,
                "      partition {}: {} listed by no manifest (an interrupted run)",
                p.partition,
                count(p.orphan_segments, "segment", "segments")
            );
        }
    }
}

fn partition_row(p: &PartitionDescription) -> Vec<String> {
    let offsets = match (p.first_offset, p.last_offset) {
        (Some(first), Some(last)) => format!("{first}..{last}"),
        _ => "-".to_owned(),
    };
    let times = match (p.min_timestamp, p.max_timestamp) {
        (Some(lo), Some(hi)) => format!("{} .. {}", format_ms(lo), format_ms(hi)),
        _ => "-".to_owned(),
    };
    vec![
        p.partition.to_string(),
        offsets,
        p.records.to_string(),
        p.segments.to_string(),
        human_bytes(p.stored_bytes),
        times,
    ]
}

#[cfg(test)]
mod tests {
    use backup_core::catalog::describe::{GapDescription, RunEncryption, Totals};

    use super::*;

    #[test]
    fn runs_say_which_keys_they_need_and_who_signed_them() {
        let mut r = RunDescription {
            run_id: "r1".into(),
            shard: None,
            mode: "snapshot".into(),
            status: "complete".into(),
            finished: true,
            parts: 1,
            started_at: "t".into(),
            finished_at: None,
            segments: 1,
            records: 1,
            stored_bytes: 1,
            encryption: Some(RunEncryption {
                algorithm: "AES-256-GCM".into(),
                provider: "local".into(),
                key_ids: vec!["0123456789abcdef".into()],
                available: Some("no: no key of this provider is configured".into()),
            }),
            signed_by: Some("fedcba9876543210".into()),
        };
        assert_eq!(
            run_keys(&r),
            "encrypted (AES-256-GCM, local key 0123456789abcdef; decryptable: no: no key of this \
             provider is configured), signed by key fedcba9876543210"
        );
        r.encryption = None;
        r.signed_by = None;
        assert_eq!(run_keys(&r), "not encrypted, signature not verified");
    }

    #[test]
    fn partitions_show_offsets_times_and_gaps() {
        let p = PartitionDescription {
            partition: 2,
            first_offset: Some(10),
            last_offset: Some(99),
            segments: 2,
            orphan_segments: 1,
            records: 80,
            stored_bytes: 1500,
            raw_bytes: 9000,
            min_timestamp: Some(0),
            max_timestamp: Some(1000),
            gaps: vec![GapDescription { from: 50, to: 60 }],
        };
        let l = LineageDescription {
            topic_id: "id-1".into(),
            latest: true,
            last_seen_run: Some("run-1".into()),
            partition_count: Some(3),
            replication_factor: Some(1),
            configs: [("retention.ms".to_owned(), "1000".to_owned())].into(),
            totals: Totals::default(),
            partitions: vec![p],
        };
        let mut out = String::new();
        render_lineage(&mut out, &l, false);
        assert!(
            out.contains("topic id id-1, 3 partitions, replication factor 1"),
            "{out}"
        );
        assert!(out.contains("configs: retention.ms=1000"), "{out}");
        assert!(
            out.contains("2          10..99   80       2         1.5 kB  1970-01-01T00:00:00.000Z .. 1970-01-01T00:00:01.000Z"),
            "{out}"
        );
        assert!(out.contains("partition 2: offsets 50..59 lost"), "{out}");
        assert!(
            out.contains("partition 2: 1 segment listed by no manifest"),
            "{out}"
        );
    }
}

//! `describe`: what a backup holds, per topic, lineage and partition, with its runs and
//! consumer-group snapshots. Figures come from the manifests; for segments no manifest lists
//! (orphans), from their trailers, read with a ranged GET of the object's last bytes.

use std::collections::BTreeMap;

use backup_format::SegmentTrailer;
use backup_format::segment::{END_MAGIC, KIND_TRAILER, MAX_TRAILER_LEN, TRAILER_HEADER_LEN};
use futures::StreamExt;
use serde::Serialize;

use super::{Catalog, CatalogError, Problem, ProblemKind, SegmentRef};
use crate::storage::Storage;

/// Trailers read at once.
const TRAILER_READS: usize = 8;

/// A backup's contents.
#[derive(Debug, Clone, Serialize)]
pub struct BackupDescription {
    /// The backup.
    pub backup_id: String,
    /// Where it is stored.
    pub location: String,
    /// From the descriptor.
    pub created_at: Option<String>,
    /// From the descriptor.
    pub source_cluster_id: Option<String>,
    /// From the descriptor: the version that created the backup.
    pub tool_version: Option<String>,
    /// Sums over every topic.
    pub totals: Totals,
    /// Runs, by run id (which sorts by start time).
    pub runs: Vec<RunDescription>,
    /// Topics, by name.
    pub topics: Vec<TopicDescription>,
    /// Consumer-group snapshots, in capture order.
    pub group_snapshots: Vec<GroupSnapshotDescription>,
    /// How far the backup could be authenticated.
    pub authentication: super::Authentication,
    /// Segments left out of everything above: not authentic (see
    /// [`super::Catalog::unauthenticated`]); a restore leaves them out.
    pub unauthenticated_segments: Vec<String>,
    /// What loading the catalog (and reading trailers) found wrong; `validate` checks more.
    pub problems: Vec<Problem>,
}

/// Sums of a backup, lineage or partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Topics (names).
    pub topics: u64,
    /// Lineages (topic ids).
    pub lineages: u64,
    /// Partitions (per lineage).
    pub partitions: u64,
    /// Segment objects.
    pub segments: u64,
    /// Records (control records included), from manifests or trailers.
    pub records: u64,
    /// Bytes in storage.
    pub stored_bytes: u64,
    /// Bytes of record batches before segment compression.
    pub raw_bytes: u64,
    /// Gap records.
    pub gaps: u64,
}

/// One run, from its manifest parts.
#[derive(Debug, Clone, Serialize)]
pub struct RunDescription {
    /// Run id.
    pub run_id: String,
    /// The shard (`INDEX/COUNT`) of a sharded backup's run; `None` for an unsharded run.
    pub shard: Option<String>,
    /// `snapshot` or `continuous`.
    pub mode: String,
    /// From its latest part: `running`, `complete`, `interrupted`, `partial`, `failed`.
    pub status: String,
    /// Whether its latest part is marked final (false: the run is still going, or was killed).
    pub finished: bool,
    /// Manifest parts read.
    pub parts: u32,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, from the final part.
    pub finished_at: Option<String>,
    /// Segments its manifests list.
    pub segments: u64,
    /// Records in those segments.
    pub records: u64,
    /// Their stored bytes.
    pub stored_bytes: u64,
    /// How the run's objects are encrypted: what a restore needs to decrypt them.
    pub encryption: Option<RunEncryption>,
    /// Id of the configured verify key that signed the run's manifest names.
    pub signed_by: Option<String>,
}

/// The keys a run's objects need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunEncryption {
    /// Algorithm.
    pub algorithm: String,
    /// Key provider of the run's wrapped data key.
    pub provider: String,
    /// Any one of these keys unwraps it.
    pub key_ids: Vec<String>,
    /// Whether the configured keys can (filled by the caller, who has the key ring).
    pub available: Option<String>,
}

/// One topic name.
#[derive(Debug, Clone, Serialize)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// By topic id.
    pub lineages: Vec<LineageDescription>,
}

/// One lineage of a topic.
#[derive(Debug, Clone, Serialize)]
pub struct LineageDescription {
    /// Topic id.
    pub topic_id: String,
    /// Whether this is the lineage a restore takes by default (the newest).
    pub latest: bool,
    /// The latest run whose manifest lists it.
    pub last_seen_run: Option<String>,
    /// Partition count in the topic's metadata, when a manifest captured it.
    pub partition_count: Option<u32>,
    /// Replication factor in the topic's metadata.
    pub replication_factor: Option<i16>,
    /// Topic-level configuration overrides.
    pub configs: BTreeMap<String, String>,
    /// Sums over its partitions.
    pub totals: Totals,
    /// Partitions with data or gaps.
    pub partitions: Vec<PartitionDescription>,
}

/// One partition of a lineage.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionDescription {
    /// Partition.
    pub partition: i32,
    /// First offset covered.
    pub first_offset: Option<i64>,
    /// Last offset covered (inclusive).
    pub last_offset: Option<i64>,
    /// Segments.
    pub segments: u64,
    /// Segments no manifest lists.
    pub orphan_segments: u64,
    /// Records (control records included).
    pub records: u64,
    /// Bytes in storage.
    pub stored_bytes: u64,
    /// Bytes of record batches before compression.
    pub raw_bytes: u64,
    /// Smallest batch timestamp (ms since the epoch), from the batch headers.
    pub min_timestamp: Option<i64>,
    /// Largest batch timestamp.
    pub max_timestamp: Option<i64>,
    /// Offsets lost before they could be copied, `[from, to)`.
    pub gaps: Vec<GapDescription>,
}

/// A gap, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GapDescription {
    /// First lost offset.
    pub from: i64,
    /// End of the lost range, exclusive.
    pub to: i64,
}

/// One consumer-group snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSnapshotDescription {
    /// The run that captured it.
    pub run_id: String,
    /// RFC 3339.
    pub captured_at: String,
    /// The groups.
    pub groups: Vec<GroupDescription>,
}

/// One group in a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State the broker reported.
    pub state: String,
    /// Committed offsets captured (partitions).
    pub offsets: usize,
}

/// Figures of one segment, from its manifest entry or its trailer.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    records: u64,
    raw_bytes: u64,
    min_timestamp: i64,
    max_timestamp: i64,
}

/// Describes a loaded backup. Reads the trailers of segments no manifest lists (a ranged
/// GET each; for an encrypted one, also its header, and the trailer is decrypted with `keys`);
/// everything else comes from the catalog.
pub async fn describe(
    storage: &Storage,
    catalog: &Catalog,
    keys: Option<&dyn crate::decrypt::DataKeys>,
) -> Result<BackupDescription, CatalogError> {
    let mut problems = catalog.problems.clone();
    let orphans: Vec<&SegmentRef> = catalog.segments().filter(|s| s.entry.is_none()).collect();
    let mut trailers: BTreeMap<&str, Figures> = BTreeMap::new();
    let mut reads = futures::stream::iter(
        orphans
            .into_iter()
            .map(|s| async move { (s, orphan_trailer(storage, s, keys).await) }),
    )
    .buffer_unordered(TRAILER_READS);
    while let Some((s, trailer)) = reads.next().await {
        match trailer? {
            Some(t) => {
                trailers.insert(&s.key, figures_of_trailer(&t));
            }
            None => problems.push(
                Problem::new(
                    ProblemKind::CorruptSegment,
                    "no manifest lists this segment and its trailer cannot be read from its tail \
                     (encrypted, or damaged), so its records are not counted; run validate",
                )
                .at(&s.parsed.topic, s.parsed.partition)
                .offset(s.parsed.start_offset)
                .object(&s.key),
            ),
        }
    }

    let mut totals = Totals::default();
    let mut topics = Vec::new();
    for topic in catalog.topics.values() {
        let latest = topic.latest_lineage().map(|l| l.topic_id.as_str());
        let mut lineages = Vec::new();
        for lineage in topic.lineages.values() {
            let mut lt = Totals {
                lineages: 1,
                ..Totals::default()
            };
            let mut partitions = Vec::new();
            for (&partition, p) in &lineage.partitions {
                let mut d = PartitionDescription {
                    partition,
                    first_offset: None,
                    last_offset: None,
                    segments: 0,
                    orphan_segments: 0,
                    records: 0,
                    stored_bytes: 0,
                    raw_bytes: 0,
                    min_timestamp: None,
                    max_timestamp: None,
                    gaps: p
                        .gaps
                        .iter()
                        .map(|g| GapDescription {
                            from: g.from,
                            to: g.to,
                        })
                        .collect(),
                };
                if let Some((first, end)) = p.offset_range() {
                    d.first_offset = Some(first);
                    d.last_offset = Some(end - 1);
                }
                for s in &p.segments {
                    d.segments += 1;
                    d.stored_bytes += s.size;
                    let f = match &s.entry {
                        Some(e) => Figures {
                            records: e.records,
                            raw_bytes: e.raw_bytes,
                            min_timestamp: e.min_timestamp,
                            max_timestamp: e.max_timestamp,
                        },
                        None => {
                            d.orphan_segments += 1;
                            trailers.get(s.key.as_str()).copied().unwrap_or(Figures {
                                min_timestamp: -1,
                                max_timestamp: -1,
                                ..Figures::default()
                            })
                        }
                    };
                    d.records += f.records;
                    d.raw_bytes += f.raw_bytes;
                    if f.min_timestamp >= 0 {
                        d.min_timestamp = Some(
                            d.min_timestamp
                                .map_or(f.min_timestamp, |m| m.min(f.min_timestamp)),
                        );
                    }
                    if f.max_timestamp >= 0 {
                        d.max_timestamp = Some(
                            d.max_timestamp
                                .map_or(f.max_timestamp, |m| m.max(f.max_timestamp)),
                        );
                    }
                }
                lt.partitions += 1;
                lt.segments += d.segments;
                lt.records += d.records;
                lt.stored_bytes += d.stored_bytes;
                lt.raw_bytes += d.raw_bytes;
                lt.gaps += d.gaps.len() as u64;
                partitions.push(d);
            }
            add(&mut totals, &lt);
            let snapshot = lineage.snapshot.as_ref();
            lineages.push(LineageDescription {
                topic_id: lineage.topic_id.clone(),
                latest: latest == Some(lineage.topic_id.as_str()),
                last_seen_run: lineage.last_seen_run.clone(),
                partition_count: snapshot.map(|s| s.partitions),
                replication_factor: snapshot.map(|s| s.replication_factor),
                configs: snapshot.map(|s| s.configs.clone()).unwrap_or_default(),
                totals: lt,
                partitions,
            });
        }
        totals.topics += 1;
        topics.push(TopicDescription {
            name: topic.name.clone(),
            lineages,
        });
    }
    super::sort_problems(&mut problems);
    let d = catalog.descriptor.as_ref();
    Ok(BackupDescription {
        backup_id: catalog.backup_id.clone(),
        location: catalog.location.clone(),
        created_at: d.map(|d| d.created_at.clone()),
        source_cluster_id: d.and_then(|d| d.source_cluster_id.clone()),
        tool_version: d.map(|d| d.tool_version.clone()),
        totals,
        runs: runs(catalog),
        topics,
        group_snapshots: catalog
            .group_snapshots()
            .into_iter()
            .map(|(run, g)| GroupSnapshotDescription {
                run_id: run.to_owned(),
                captured_at: g.captured_at.clone(),
                groups: g
                    .groups
                    .iter()
                    .map(|g| GroupDescription {
                        group_id: g.group_id.clone(),
                        state: g.state.clone(),
                        offsets: g.offsets.len(),
                    })
                    .collect(),
            })
            .collect(),
        authentication: catalog.authentication.clone(),
        unauthenticated_segments: catalog
            .unauthenticated
            .iter()
            .map(|s| s.key.clone())
            .collect(),
        problems,
    })
}

fn add(to: &mut Totals, t: &Totals) {
    to.lineages += t.lineages;
    to.partitions += t.partitions;
    to.segments += t.segments;
    to.records += t.records;
    to.stored_bytes += t.stored_bytes;
    to.raw_bytes += t.raw_bytes;
    to.gaps += t.gaps;
}

/// Runs from their manifest parts (sorted by run, then part).
fn runs(catalog: &Catalog) -> Vec<RunDescription> {
    let mut out: Vec<RunDescription> = Vec::new();
    for (m, signed_by) in catalog
        .manifests
        .iter()
        .map(|r| (&r.manifest, &r.signed_by))
    {
        if out.last().is_none_or(|r| r.run_id != m.run_id) {
            out.push(RunDescription {
                run_id: m.run_id.clone(),
                shard: backup_format::Shard::of_run(&m.run_id).map(|s| s.to_string()),
                mode: String::new(),
                status: String::new(),
                finished: false,
                parts: 0,
                started_at: m.started_at.clone(),
                finished_at: None,
                segments: 0,
                records: 0,
                stored_bytes: 0,
                encryption: None,
                signed_by: None,
            });
        }
        let Some(r) = out.last_mut() else { continue };
        if let Some(e) = &m.encryption {
            r.encryption = Some(RunEncryption {
                algorithm: e.algorithm.clone(),
                provider: e.key.provider.to_string(),
                key_ids: e.key.key_ids.clone(),
                available: None,
            });
        }
        // The latest part says how the run stands.
        r.signed_by = signed_by.clone();
        r.mode = json_name(&m.mode);
        r.status = json_name(&m.status);
        r.finished = m.final_part;
        r.finished_at = m.finished_at.clone();
        r.parts += 1;
        r.segments += m.segments.len() as u64;
        r.records += m.segments.iter().map(|s| s.records).sum::<u64>();
        r.stored_bytes += m.segments.iter().map(|s| s.stored_bytes).sum::<u64>();
    }
    out
}

/// A unit enum's serde name (`complete`, `snapshot`, ...).
fn json_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn figures_of_trailer(t: &SegmentTrailer) -> Figures {
    Figures {
        records: t.records,
        raw_bytes: t.raw_bytes,
        min_timestamp: t.min_timestamp,
        max_timestamp: t.max_timestamp,
    }
}

/// The trailer of a segment no manifest lists, from ranged reads: its tail, and for an
/// encrypted segment its header too (the trailer is authenticated with it). `None` when it
/// cannot be read (damaged, or encrypted without a key).
async fn orphan_trailer(
    storage: &Storage,
    s: &SegmentRef,
    keys: Option<&dyn crate::decrypt::DataKeys>,
) -> Result<Option<SegmentTrailer>, crate::storage::StorageError> {
    let tail_len = (MAX_TRAILER_LEN + TRAILER_HEADER_LEN + END_MAGIC.len() + 16) as u64;
    let tail = storage
        .get_range(&s.key, s.size.saturating_sub(tail_len)..s.size)
        .await?;
    if let Some(t) = parse_trailer(&tail) {
        return Ok(Some(t));
    }
    let Some(keys) = keys else {
        return Ok(None);
    };
    let head_len =
        (backup_format::segment::PREAMBLE_LEN + backup_format::segment::MAX_HEADER_LEN) as u64;
    let head = storage.get_range(&s.key, 0..s.size.min(head_len)).await?;
    let Ok(header) = backup_format::segment::peek_header(&head) else {
        return Ok(None);
    };
    let Ok(Some(key)) = crate::decrypt::segment_data_key(Some(keys), &header).await else {
        return Ok(None);
    };
    Ok(
        backup_format::segment::read_trailer(&head, &tail, Some(&key))
            .ok()
            .map(|(_, t)| t),
    )
}

/// The trailer at the end of `tail` (an object's last bytes), as written: not verified
/// against the data, which only a full read can do. `None` if there is none to be found.
pub(crate) fn parse_trailer(tail: &[u8]) -> Option<SegmentTrailer> {
    let json_end = tail.len().checked_sub(END_MAGIC.len())?;
    if tail[json_end..] != END_MAGIC {
        return None;
    }
    // The trailer is `0xFF, u32 length, JSON`. JSON is UTF-8, which never contains 0xFF, so
    // scanning back for a kind byte whose length reaches exactly to the end magic finds it.
    let lowest = json_end.saturating_sub(MAX_TRAILER_LEN + TRAILER_HEADER_LEN);
    let highest = json_end.checked_sub(TRAILER_HEADER_LEN)?;
    (lowest..=highest).rev().find_map(|at| {
        if tail[at] != KIND_TRAILER {
            return None;
        }
        let len = u32::from_be_bytes(tail[at + 1..at + 5].try_into().ok()?) as usize;
        if at + TRAILER_HEADER_LEN + len != json_end {
            return None;
        }
        serde_json::from_slice(&tail[at + TRAILER_HEADER_LEN..json_end]).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailer() -> SegmentTrailer {
        SegmentTrailer {
            chunks: 1,
            batches: 2,
            records: 300,
            raw_bytes: 4096,
            first_batch_offset: 10,
            last_offset: 309,
            end_offset: 310,
            min_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_500,
            control_batches: 0,
            transactional_batches: 0,
            producer_ids: 1,
        }
    }

    #[test]
    fn trailers_are_found_at_the_end_of_an_object() {
        let json = serde_json::to_vec(&trailer()).unwrap();
        // Data before the trailer full of 0xFF bytes must not be mistaken for its start.
        let mut object = vec![0xFF; 100];
        object.push(KIND_TRAILER);
        object.extend_from_slice(&(json.len() as u32).to_be_bytes());
        object.extend_from_slice(&json);
        object.extend_from_slice(&END_MAGIC);
        assert_eq!(parse_trailer(&object), Some(trailer()));
        assert_eq!(parse_trailer(&object[..object.len() - 1]), None);
        assert_eq!(parse_trailer(&object[object.len() - 20..]), None);
        assert_eq!(parse_trailer(b""), None);
        assert_eq!(parse_trailer(&END_MAGIC), None);
    }
}

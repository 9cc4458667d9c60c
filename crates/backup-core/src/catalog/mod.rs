//! What a backup holds, read with storage read access only (LIST and GET; never Kafka).
//!
//! [`Catalog::load`] lists `{backup_id}/` once and reads the descriptor and every run
//! manifest. Segments and gap records are taken from the listing, not from the manifests:
//! objects are create-only and a segment's key carries its topic, lineage, partition, range
//! and SHA-256, so the listing is the truth about what is stored, and a segment written by a
//! run that was killed before its manifest (an *orphan*) still belongs to the backup, exactly
//! as the backup engine treats it when it resumes. Manifests add what the keys cannot carry:
//! record counts and time ranges per segment, topic metadata, consumer-group snapshots and
//! run history.
//!
//! Loading never fails on bad content: a manifest that does not parse, a manifest naming a
//! segment that is not there, segments that do not tile their partition's offsets, and the
//! like are collected as [`Problem`]s. Only storage failures and a backup that does not exist
//! at all are errors. Checking object contents is [`crate::validate`]'s job.

mod coverage;
pub mod describe;
mod list;
pub mod problem;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::SystemTime;

use backup_format::manifest::{
    BackupDescriptor, GroupSnapshot, RunManifest, SegmentEntry, TopicSnapshot,
};
use backup_format::naming::{self, GapKey, ManifestKey, NameError, SegmentKey};
use futures::{StreamExt, TryStreamExt};

use crate::storage::{Storage, StorageError};
pub use list::{BackupSummary, list_backups};
pub use problem::{Problem, ProblemKind, Severity};

/// Manifests read at once while loading.
const MANIFEST_READS: usize = 4;

/// Why a backup's catalog could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Storage failed (unreachable, permission denied, ...).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// There is no such backup in this store.
    #[error(
        "there is no backup `{backup_id}` at {location}: no {backup_id}/backup.json and no \
         objects under {backup_id}/; check backup_id and storage.prefix{}",
        if available.is_empty() {
            " (this location holds no backups)".to_owned()
        } else {
            format!(" (this location holds: {})", available.join(", "))
        }
    )]
    NotFound {
        /// The backup asked for.
        backup_id: String,
        /// The store location searched (bucket and prefix, or directory).
        location: String,
        /// The backups this location does hold (at most 20 names).
        available: Vec<String>,
    },
    /// The backup id cannot be part of an object key.
    #[error("{0}")]
    Name(#[from] NameError),
}

/// Everything one backup holds, as listed and as its manifests describe it.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The backup.
    pub backup_id: String,
    /// Where it is (`s3://bucket/prefix`, a directory, ...), for messages.
    pub location: String,
    /// `backup.json`, when present and valid.
    pub descriptor: Option<BackupDescriptor>,
    /// Every manifest part that parsed, sorted by `(run_id, part)`.
    pub manifests: Vec<ManifestRef>,
    /// By topic name.
    pub topics: BTreeMap<String, TopicCatalog>,
    /// What loading found wrong (manifests, missing objects, holes, orphans, ...).
    pub problems: Vec<Problem>,
}

/// One manifest part.
#[derive(Debug, Clone)]
pub struct ManifestRef {
    /// Its object key.
    pub key: String,
    /// Its content.
    pub manifest: RunManifest,
}

/// One topic name's data, per lineage (a topic deleted and re-created under the same name has
/// a new topic id, and its data is never mixed with the old one's).
#[derive(Debug, Clone)]
pub struct TopicCatalog {
    /// Topic name.
    pub name: String,
    /// By topic id.
    pub lineages: BTreeMap<String, LineageCatalog>,
}

/// One lineage (topic id) of a topic.
#[derive(Debug, Clone)]
pub struct LineageCatalog {
    /// The topic id.
    pub topic_id: String,
    /// Partitions with segments or gaps.
    pub partitions: BTreeMap<i32, PartitionCatalog>,
    /// Metadata and configuration from the latest manifest listing this lineage.
    pub snapshot: Option<TopicSnapshot>,
    /// The latest run whose manifest lists this lineage (in its topics or segments).
    pub last_seen_run: Option<String>,
}

/// One partition of one lineage.
#[derive(Debug, Clone, Default)]
pub struct PartitionCatalog {
    /// Segments by `(start_offset, last_offset)`.
    pub segments: Vec<SegmentRef>,
    /// Gaps (offsets lost before they were copied) by `from`: gap objects, plus any gap a
    /// manifest lists whose object is missing (reported as [`ProblemKind::MissingGapRecord`]).
    pub gaps: Vec<GapKey>,
}

/// One stored segment.
#[derive(Debug, Clone)]
pub struct SegmentRef {
    /// Object key, relative to the storage prefix.
    pub key: String,
    /// What the key says.
    pub parsed: SegmentKey,
    /// Object size, as listed.
    pub size: u64,
    /// When storage says it was written.
    pub last_modified: SystemTime,
    /// Its manifest entry, when a manifest lists it (`None`: an orphan).
    pub entry: Option<SegmentEntry>,
}

impl TopicCatalog {
    /// The lineage whose data is newest: the one the latest run listed; among lineages no
    /// manifest lists, the one with the most recently written segment.
    pub fn latest_lineage(&self) -> Option<&LineageCatalog> {
        self.lineages.values().max_by(|a, b| {
            (&a.last_seen_run, a.newest_write()).cmp(&(&b.last_seen_run, b.newest_write()))
        })
    }
}

impl LineageCatalog {
    fn new(topic_id: &str) -> Self {
        Self {
            topic_id: topic_id.to_owned(),
            partitions: BTreeMap::new(),
            snapshot: None,
            last_seen_run: None,
        }
    }

    /// When the most recently written segment of this lineage was stored.
    pub fn newest_write(&self) -> Option<SystemTime> {
        self.partitions
            .values()
            .flat_map(|p| p.segments.iter().map(|s| s.last_modified))
            .max()
    }
}

impl PartitionCatalog {
    /// First offset covered, and the end (exclusive) of the last segment.
    pub fn offset_range(&self) -> Option<(i64, i64)> {
        let first = self.segments.iter().map(|s| s.parsed.start_offset).min()?;
        let end = self.segments.iter().map(|s| s.parsed.end_offset()).max()?;
        Some((first, end))
    }
}

impl Catalog {
    /// Lists `{backup_id}/` and reads the descriptor and every manifest. A manifest or
    /// descriptor that does not parse, and every inconsistency between listing and manifests,
    /// is a [`Problem`] in [`Catalog::problems`], not an error.
    pub async fn load(storage: &Storage, backup_id: &str) -> Result<Catalog, CatalogError> {
        naming::validate_backup_id(backup_id)?;
        let listing = Listing::read(storage, backup_id).await?;
        if listing.is_empty() {
            return Err(CatalogError::NotFound {
                backup_id: backup_id.to_owned(),
                location: storage.location(""),
                available: list::backup_names(storage, 20).await.unwrap_or_default(),
            });
        }
        let mut problems = Vec::new();
        let descriptor = read_descriptor(storage, backup_id, &listing, &mut problems).await?;
        let manifests = read_manifests(storage, backup_id, &listing, &mut problems).await?;
        let mut catalog = Catalog {
            backup_id: backup_id.to_owned(),
            location: storage.location(backup_id),
            descriptor,
            manifests,
            topics: BTreeMap::new(),
            problems,
        };
        catalog.assemble(listing);
        Ok(catalog)
    }

    /// Every consumer-group snapshot, with the run that captured it, in capture order.
    pub fn group_snapshots(&self) -> Vec<(&str, &GroupSnapshot)> {
        let mut out: Vec<(&str, &GroupSnapshot)> = self
            .manifests
            .iter()
            .filter_map(|m| {
                let g = m.manifest.consumer_groups.as_ref()?;
                Some((m.manifest.run_id.as_str(), g))
            })
            .collect();
        // RFC 3339 in UTC with a fixed precision (as runs write them) sorts as text; the
        // stable sort keeps run order for equal times.
        out.sort_by(|a, b| a.1.captured_at.cmp(&b.1.captured_at));
        out
    }

    /// The most recently captured consumer-group snapshot.
    pub fn latest_group_snapshot(&self) -> Option<(&str, &GroupSnapshot)> {
        self.group_snapshots().pop()
    }

    /// Every segment, by topic, lineage, partition and offset.
    pub fn segments(&self) -> impl Iterator<Item = &SegmentRef> {
        self.topics
            .values()
            .flat_map(|t| t.lineages.values())
            .flat_map(|l| l.partitions.values())
            .flat_map(|p| p.segments.iter())
    }

    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }

    fn lineage(&mut self, topic: &str, topic_id: &str) -> &mut LineageCatalog {
        self.topics
            .entry(topic.to_owned())
            .or_insert_with(|| TopicCatalog {
                name: topic.to_owned(),
                lineages: BTreeMap::new(),
            })
            .lineages
            .entry(topic_id.to_owned())
            .or_insert_with(|| LineageCatalog::new(topic_id))
    }

    /// Builds the topic tree from the listing and the manifests, and checks them against
    /// each other.
    fn assemble(&mut self, listing: Listing) {
        let mut segments: HashMap<String, SegmentRef> = listing
            .segments
            .into_iter()
            .map(|(parsed, info)| {
                let r = SegmentRef {
                    key: info.key,
                    parsed,
                    size: info.size,
                    last_modified: info.last_modified,
                    entry: None,
                };
                (r.key.clone(), r)
            })
            .collect();
        let listed_gaps: BTreeSet<String> = listing.gaps.iter().map(|(k, _)| k.clone()).collect();
        let mut gaps: Vec<GapKey> = listing.gaps.into_iter().map(|(_, g)| g).collect();
        let mut missing = BTreeSet::new();
        let mut problems = Vec::new();

        // Manifests are sorted by (run, part): later ones overwrite snapshots and runs.
        let manifests = std::mem::take(&mut self.manifests);
        for m in &manifests {
            let run = &m.manifest.run_id;
            for t in &m.manifest.topics {
                let lineage = self.lineage(&t.name, &t.topic_id);
                lineage.snapshot = Some(t.clone());
                lineage.last_seen_run = Some(run.clone());
            }
            for e in &m.manifest.segments {
                self.lineage(&e.topic, &e.topic_id).last_seen_run = Some(run.clone());
                match segments.get_mut(&e.key) {
                    Some(s) => match &s.entry {
                        None => s.entry = Some(e.clone()),
                        Some(earlier) if earlier == e => {}
                        Some(_) => problems.push(
                            Problem::new(
                                ProblemKind::ManifestMismatch,
                                format!(
                                    "{} describes this segment differently from an earlier \
                                     manifest",
                                    m.key
                                ),
                            )
                            .at(&e.topic, e.partition)
                            .offset(e.start_offset)
                            .object(&e.key),
                        ),
                    },
                    None if missing.insert(e.key.clone()) => problems.push(
                        Problem::new(
                            ProblemKind::MissingSegment,
                            format!(
                                "{} lists this segment (offsets {}..{}, {} records), but it is \
                                 not in storage",
                                m.key,
                                e.start_offset,
                                e.end_offset - 1,
                                e.records
                            ),
                        )
                        .at(&e.topic, e.partition)
                        .offset(e.start_offset)
                        .object(&e.key),
                    ),
                    None => {}
                }
            }
            for g in &m.manifest.gaps {
                let Ok(key) = g.key(&self.backup_id) else {
                    continue;
                };
                if listed_gaps.contains(&key) || !missing.insert(key.clone()) {
                    continue;
                }
                problems.push(
                    Problem::new(
                        ProblemKind::MissingGapRecord,
                        format!(
                            "{} lists a gap of offsets {}..{} ({}) whose own record is not in \
                             storage; the manifest's copy is used",
                            m.key,
                            g.from,
                            g.to - 1,
                            g.reason
                        ),
                    )
                    .at(&g.topic, g.partition)
                    .offset(g.from)
                    .object(&key),
                );
                gaps.push(GapKey {
                    backup_id: self.backup_id.clone(),
                    topic: g.topic.clone(),
                    topic_id: g.topic_id.clone(),
                    partition: g.partition,
                    from: g.from,
                    to: g.to,
                });
            }
        }
        self.manifests = manifests;

        for s in segments.into_values() {
            if s.entry.is_none() {
                problems.push(
                    Problem::new(
                        ProblemKind::OrphanSegment,
                        "no manifest lists this segment: a run wrote it and was stopped before \
                         its manifest; it is part of the backup (the next run resumed after it) \
                         and is checked against the SHA-256 in its name",
                    )
                    .at(&s.parsed.topic, s.parsed.partition)
                    .offset(s.parsed.start_offset)
                    .object(&s.key),
                );
            }
            let (topic, topic_id, partition) = (
                s.parsed.topic.clone(),
                s.parsed.topic_id.clone(),
                s.parsed.partition,
            );
            self.lineage(&topic, &topic_id)
                .partitions
                .entry(partition)
                .or_default()
                .segments
                .push(s);
        }
        for g in gaps {
            self.lineage(&g.topic, &g.topic_id)
                .partitions
                .entry(g.partition)
                .or_default()
                .gaps
                .push(g);
        }
        for key in listing.unexpected {
            problems.push(
                Problem::new(
                    ProblemKind::UnexpectedObject,
                    "not an object kafka-backup writes (a temporary file, or another tool's); \
                     it is ignored",
                )
                .object(&key),
            );
        }
        for topic in self.topics.values_mut() {
            for lineage in topic.lineages.values_mut() {
                for (&partition, p) in lineage.partitions.iter_mut() {
                    p.segments.sort_by(|a, b| {
                        (a.parsed.start_offset, a.parsed.last_offset, &a.key).cmp(&(
                            b.parsed.start_offset,
                            b.parsed.last_offset,
                            &b.key,
                        ))
                    });
                    p.gaps.sort_by_key(|g| (g.from, g.to));
                    p.gaps.dedup();
                    let spans: Vec<coverage::Span<'_>> = p
                        .segments
                        .iter()
                        .map(|s| coverage::Span {
                            start: s.parsed.start_offset,
                            end: s.parsed.end_offset(),
                            key: &s.key,
                        })
                        .collect();
                    let gaps: Vec<(i64, i64)> = p.gaps.iter().map(|g| (g.from, g.to)).collect();
                    problems.extend(coverage::check(&topic.name, partition, &spans, &gaps));
                }
            }
        }
        self.problems.extend(problems);
        sort_problems(&mut self.problems);
    }
}

/// Problems in a stable order: backup-wide first, then by topic, partition and offset.
pub(crate) fn sort_problems(problems: &mut [Problem]) {
    problems.sort_by(|a, b| {
        (&a.topic, a.partition, a.offset, &a.object, a.kind).cmp(&(
            &b.topic,
            b.partition,
            b.offset,
            &b.object,
            b.kind,
        ))
    });
}

/// One LIST of `{backup_id}/`, sorted into the kinds of objects a backup has.
#[derive(Default)]
struct Listing {
    descriptor: bool,
    manifests: Vec<(ManifestKey, String)>,
    segments: Vec<(SegmentKey, crate::storage::ObjectInfo)>,
    gaps: Vec<(String, GapKey)>,
    unexpected: Vec<String>,
}

impl Listing {
    async fn read(storage: &Storage, backup_id: &str) -> Result<Self, CatalogError> {
        let descriptor_key = naming::backup_descriptor_key(backup_id)?;
        let mut out = Listing::default();
        let mut stream = storage.list_stream(backup_id);
        while let Some(info) = stream.try_next().await? {
            if info.key == descriptor_key {
                out.descriptor = true;
            } else if let Some(k) = naming::parse_segment_key(&info.key)
                && k.backup_id == backup_id
            {
                out.segments.push((k, info));
            } else if let Some(g) = naming::parse_gap_key(&info.key)
                && g.backup_id == backup_id
            {
                out.gaps.push((info.key, g));
            } else if let Some(m) = naming::parse_manifest_key(&info.key)
                && m.backup_id == backup_id
            {
                out.manifests.push((m, info.key));
            } else {
                out.unexpected.push(info.key);
            }
        }
        out.manifests
            .sort_by(|a, b| (&a.0.run_id, a.0.part).cmp(&(&b.0.run_id, b.0.part)));
        Ok(out)
    }

    fn is_empty(&self) -> bool {
        !self.descriptor
            && self.manifests.is_empty()
            && self.segments.is_empty()
            && self.gaps.is_empty()
            && self.unexpected.is_empty()
    }
}

async fn read_descriptor(
    storage: &Storage,
    backup_id: &str,
    listing: &Listing,
    problems: &mut Vec<Problem>,
) -> Result<Option<BackupDescriptor>, CatalogError> {
    let key = naming::backup_descriptor_key(backup_id)?;
    let missing = || {
        Problem::new(
            ProblemKind::MissingDescriptor,
            "the backup has no descriptor (every run writes it first, so it was removed, or the \
             backup was copied incompletely); its data is still readable",
        )
        .object(&key)
    };
    if !listing.descriptor {
        problems.push(missing());
        return Ok(None);
    }
    let bytes = match storage.get(&key).await {
        Ok(b) => b,
        Err(StorageError::NotFound { .. }) => {
            problems.push(missing());
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    match BackupDescriptor::from_json(&bytes) {
        Ok(d) if d.backup_id == backup_id => Ok(Some(d)),
        Ok(d) => {
            problems.push(
                Problem::new(
                    ProblemKind::CorruptDescriptor,
                    format!(
                        "the descriptor names backup `{}`, not `{backup_id}`: it was copied \
                         here from another backup",
                        d.backup_id
                    ),
                )
                .object(&key),
            );
            Ok(None)
        }
        Err(e) => {
            problems.push(Problem::new(ProblemKind::CorruptDescriptor, e.to_string()).object(&key));
            Ok(None)
        }
    }
}

/// Reads every manifest part, a few at a time; parts that do not parse, or whose content
/// disagrees with their key, are problems (and left out). Also reports parts missing before a
/// run's last one.
async fn read_manifests(
    storage: &Storage,
    backup_id: &str,
    listing: &Listing,
    problems: &mut Vec<Problem>,
) -> Result<Vec<ManifestRef>, CatalogError> {
    let mut out = Vec::new();
    let mut reads = futures::stream::iter(listing.manifests.iter().map(|(mkey, key)| async move {
        let result = storage.get(key).await;
        (mkey, key, result)
    }))
    .buffered(MANIFEST_READS);
    while let Some((mkey, key, result)) = reads.next().await {
        let bytes = match result {
            Ok(b) => b,
            // Listed a moment ago: report it like any other missing part below.
            Err(StorageError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        match RunManifest::from_json(&bytes) {
            Ok(m) if m.backup_id == backup_id && m.run_id == mkey.run_id && m.part == mkey.part => {
                out.push(ManifestRef {
                    key: key.clone(),
                    manifest: m,
                });
            }
            Ok(m) => problems.push(
                Problem::new(
                    ProblemKind::ManifestMismatch,
                    format!(
                        "the manifest says backup `{}`, run `{}`, part {}, which is not what its \
                         key says: it was copied here from elsewhere and is ignored",
                        m.backup_id, m.run_id, m.part
                    ),
                )
                .object(key),
            ),
            Err(e) => problems.push(
                Problem::new(
                    ProblemKind::CorruptManifest,
                    format!(
                        "{e}; the manifest is ignored (its segments are still found by listing)"
                    ),
                )
                .object(key),
            ),
        }
    }
    // Parts are numbered from 0 without holes: a missing one was removed.
    let mut parts: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for (m, _) in &listing.manifests {
        parts.entry(&m.run_id).or_default().insert(m.part);
    }
    for (run, listed) in parts {
        let last = listed.iter().copied().max().unwrap_or(0);
        for part in (0..=last).filter(|p| !listed.contains(p)) {
            let key = ManifestKey {
                backup_id: backup_id.to_owned(),
                run_id: run.to_owned(),
                part,
            }
            .to_key()?;
            problems.push(
                Problem::new(
                    ProblemKind::MissingManifestPart,
                    format!("run {run} has manifest part {last} but not part {part}"),
                )
                .object(&key),
            );
        }
    }
    Ok(out)
}

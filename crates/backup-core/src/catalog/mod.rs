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
//!
//! What may be believed is decided by [`Trust`] (see [`trust`]): with verify keys, only
//! authentic objects enter the catalog's tree and its group snapshots; segments that are not
//! authentic (or, without keys, that no manifest lists) are kept apart in
//! [`Catalog::unauthenticated`], so restore leaves them out unless told otherwise.
//!
//! Every object is read with a bound (see [`read_limits`]): a listing that claims more, or a
//! body that grows past it, is refused before it can exhaust memory.

mod coverage;
pub mod describe;
mod list;
pub mod problem;
pub mod pruned;
mod read;
pub mod trust;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::SystemTime;

use backup_format::manifest::{
    BackupDescriptor, GroupSnapshot, RunManifest, SegmentEntry, TopicSnapshot,
};
use backup_format::naming::{self, GapKey, NameError, SegmentKey};

use crate::storage::{Storage, StorageError};
pub use list::{BackupSummary, list_backups};
pub use problem::{Problem, ProblemKind, Severity};
pub use read::read_limits;
use read::{Listing, read_descriptor, read_manifests};
pub use trust::{Authentication, Trust};

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
    /// Every authentic manifest part (without verify keys: every one that parsed), sorted by
    /// `(run_id, part)`.
    pub manifests: Vec<ManifestRef>,
    /// By topic name: authentic segments and gaps only.
    pub topics: BTreeMap<String, TopicCatalog>,
    /// Segments left out of [`Catalog::topics`]: with verify keys, those neither signed nor
    /// listed by an authentic manifest; without, those no manifest lists.
    pub unauthenticated: Vec<SegmentRef>,
    /// How far the backup could be authenticated.
    pub authentication: Authentication,
    /// What loading found wrong (manifests, missing objects, holes, orphans, ...).
    pub problems: Vec<Problem>,
    /// Prune records: the runs retention removed, oldest first.
    pub pruned: Vec<pruned::FoundRecord>,
}

/// One manifest part.
#[derive(Debug, Clone)]
pub struct ManifestRef {
    /// Its object key.
    pub key: String,
    /// Its content.
    pub manifest: RunManifest,
    /// Id of the configured key that signed its name.
    pub signed_by: Option<String>,
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
    /// Its manifest entry, when an authentic manifest lists it.
    pub entry: Option<SegmentEntry>,
    /// Id of the configured key that signed its name.
    pub signed_by: Option<String>,
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
    /// Lists `{backup_id}/` and reads the descriptor and every manifest, believing what
    /// `trust` allows. A manifest or descriptor that does not parse or is not authentic, and
    /// every inconsistency between listing and manifests, is a [`Problem`] in
    /// [`Catalog::problems`], not an error.
    pub async fn load(
        storage: &Storage,
        backup_id: &str,
        trust: &Trust,
    ) -> Result<Catalog, CatalogError> {
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
        let descriptor =
            read_descriptor(storage, backup_id, &listing, trust, &mut problems).await?;
        let pruned = pruned::read_records(
            storage,
            backup_id,
            &listing.prune_records,
            trust.verifies().then(|| trust.admin()),
            &mut problems,
        )
        .await?;
        let pruned_parts = pruned::pruned_parts(&pruned);
        let manifests = read_manifests(
            storage,
            backup_id,
            &listing,
            trust,
            &pruned_parts,
            &mut problems,
        )
        .await?;
        let authentication = if trust.verifies() {
            Authentication::Verified {
                key_ids: trust.keys.keys().iter().map(|k| k.key_id()).collect(),
            }
        } else {
            let signed = listing.is_signed();
            if signed {
                problems.push(Problem::new(
                    ProblemKind::Unverified,
                    "the backup's object names are signed, but no verify key is configured, so \
                     no signature was checked and anyone with write access to the bucket could \
                     have added or replaced objects; configure the backup's public key \
                     (restore.verify_key, or --verify-key)",
                ));
            }
            Authentication::NotChecked { signed }
        };
        let mut catalog = Catalog {
            backup_id: backup_id.to_owned(),
            location: storage.location(backup_id),
            descriptor,
            manifests,
            topics: BTreeMap::new(),
            unauthenticated: Vec::new(),
            authentication,
            problems,
            pruned,
        };
        catalog.assemble(listing, trust);
        Ok(catalog)
    }

    /// Every consumer-group snapshot of an authentic manifest, with the run that captured it,
    /// oldest first by the parsed capture time. Snapshots whose time does not parse are left
    /// out (a text sort would let a forged `"9999-…"` win).
    pub fn group_snapshots(&self) -> Vec<(&str, &GroupSnapshot)> {
        let mut out: Vec<(time::OffsetDateTime, &str, &GroupSnapshot)> = self
            .manifests
            .iter()
            .filter_map(|m| {
                let g = m.manifest.consumer_groups.as_ref()?;
                let at = time::OffsetDateTime::parse(
                    &g.captured_at,
                    &time::format_description::well_known::Rfc3339,
                )
                .ok()?;
                Some((at, m.manifest.run_id.as_str(), g))
            })
            .collect();
        // Stable: equal times keep run order.
        out.sort_by_key(|(at, _, _)| *at);
        out.into_iter().map(|(_, run, g)| (run, g)).collect()
    }

    /// Decrypts the sealed fields (topic configurations, consumer groups) of every manifest
    /// part with `keys`, and refreshes the topic snapshots that use them. Returns the parts
    /// that could not be opened (they stay sealed), with why.
    pub async fn unseal(
        &mut self,
        keys: &dyn crate::decrypt::DataKeys,
    ) -> Vec<(String, crate::decrypt::KeyFailure)> {
        let mut failures = Vec::new();
        for m in &mut self.manifests {
            let Some(e) = &m.manifest.encryption else {
                continue;
            };
            let opened = match keys
                .data_key(&e.key, &m.manifest.backup_id, &m.manifest.run_id)
                .await
            {
                Ok(k) => m.manifest.open(&k).map_err(|e| crate::decrypt::KeyFailure {
                    message: format!("cannot decrypt it: {e}"),
                    kind: crate::keys::KeyErrorKind::InvalidWrappedKey,
                }),
                Err(why) => Err(crate::decrypt::KeyFailure::of_unwrap(&why)),
            };
            if let Err(why) = opened {
                failures.push((format!("manifest {}", m.key), why));
            }
        }
        let snapshots: Vec<TopicSnapshot> = self
            .manifests
            .iter()
            .flat_map(|m| m.manifest.topics.iter().cloned())
            .collect();
        for t in snapshots {
            if let Some(lineage) = self
                .topics
                .get_mut(&t.name)
                .and_then(|topic| topic.lineages.get_mut(&t.topic_id))
            {
                lineage.snapshot = Some(t);
            }
        }
        failures
    }

    /// Manifest parts whose topic configurations and groups are still encrypted.
    pub fn sealed_manifests(&self) -> impl Iterator<Item = &ManifestRef> {
        self.manifests.iter().filter(|m| m.manifest.is_sealed())
    }

    /// Puts the segments set apart as unauthenticated into the tree, for a restore told to
    /// accept them.
    pub fn admit_unauthenticated(&mut self) {
        for s in std::mem::take(&mut self.unauthenticated) {
            let (topic, topic_id, partition) = (
                s.parsed.topic.clone(),
                s.parsed.topic_id.clone(),
                s.parsed.partition,
            );
            let segments = &mut self
                .lineage(&topic, &topic_id)
                .partitions
                .entry(partition)
                .or_default()
                .segments;
            segments.push(s);
            segments.sort_by(|a, b| {
                (a.parsed.start_offset, a.parsed.last_offset, &a.key).cmp(&(
                    b.parsed.start_offset,
                    b.parsed.last_offset,
                    &b.key,
                ))
            });
        }
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
    fn assemble(&mut self, listing: Listing, trust: &Trust) {
        let mut problems = Vec::new();
        let mut segments: HashMap<String, SegmentRef> = listing
            .segments
            .into_iter()
            .map(|(parsed, info)| {
                let signed_by = parsed.verify(&trust.keys).map(|k| k.key_id());
                let r = SegmentRef {
                    key: info.key,
                    parsed,
                    size: info.size,
                    last_modified: info.last_modified,
                    entry: None,
                    signed_by,
                };
                (r.key.clone(), r)
            })
            .collect();
        let mut listed_gaps: BTreeSet<String> = BTreeSet::new();
        let mut gaps: Vec<GapKey> = Vec::new();
        for (key, g) in listing.gaps {
            if trust.verifies() && g.verify(&trust.keys).is_none() {
                problems.push(
                    Problem::new(
                        ProblemKind::Unauthenticated,
                        "this gap record's name is not signed by a configured verify key: it was \
                         planted (a forged gap could hide deleted data) or written before signing \
                         was enabled; it is ignored",
                    )
                    .at(&g.topic, g.partition)
                    .offset(g.from)
                    .object(&key),
                );
                continue;
            }
            listed_gaps.insert(g.range_key().to_key().unwrap_or_default());
            gaps.push(g);
        }
        let mut missing = BTreeSet::new();
        // Objects retention removed are absent on purpose: their manifests' entries are not
        // missing objects, and their gaps no longer count.
        let pruned_objects = pruned::pruned_objects(&self.pruned);
        let pruned_gaps: BTreeSet<String> = pruned_objects
            .iter()
            .filter_map(|k| naming::parse_gap_key(k))
            .filter_map(|g| g.range_key().to_key().ok())
            .collect();

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
                    None if pruned_objects.contains(&e.key) => {}
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
                // Signed gap records carry a digest in their name: compare by range.
                if listed_gaps.contains(&key)
                    || pruned_gaps.contains(&key)
                    || !missing.insert(key.clone())
                {
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
                    seal: None,
                });
            }
        }
        self.manifests = manifests;

        let mut all_spans: BTreeMap<PartitionId, Vec<(i64, i64, String)>> = BTreeMap::new();
        for s in segments.into_values() {
            let authentic = s.entry.is_some() || s.signed_by.is_some();
            // Coverage: with verify keys, of authentic segments only (a planted segment has
            // its own problem and must not make holes or overlaps appear); without, of every
            // segment, so the offsets of a killed run's orphans are reported once, as orphans.
            if authentic || !trust.verifies() {
                all_spans
                    .entry((
                        s.parsed.topic.clone(),
                        s.parsed.topic_id.clone(),
                        s.parsed.partition,
                    ))
                    .or_default()
                    .push((s.parsed.start_offset, s.parsed.end_offset(), s.key.clone()));
            }
            if !authentic {
                let problem = if trust.verifies() {
                    Problem::new(
                        ProblemKind::Unauthenticated,
                        "this segment's name is not signed by a configured verify key and no \
                         authentic manifest lists it: it was planted by someone with write \
                         access, or written before signing was enabled; restore leaves it out \
                         unless --accept-unauthenticated is given",
                    )
                } else if s.parsed.signature.is_some() {
                    Problem::new(
                        ProblemKind::OrphanSegment,
                        "no manifest lists this segment, and no verify key is configured to \
                         check the signature in its name: configure the backup's public key \
                         (restore.verify_key, or --verify-key) to authenticate it; restore \
                         leaves it out until then, unless --accept-unauthenticated is given",
                    )
                } else {
                    Problem::new(
                        ProblemKind::OrphanSegment,
                        "no manifest lists this segment: a backup run wrote it and was stopped \
                         before its manifest, or someone with write access to the bucket added \
                         it; nothing can tell which (sign backups with backup.signing_key), so \
                         restore leaves it out unless --accept-unauthenticated is given",
                    )
                };
                problems.push(
                    problem
                        .at(&s.parsed.topic, s.parsed.partition)
                        .offset(s.parsed.start_offset)
                        .object(&s.key),
                );
                self.unauthenticated.push(s);
                continue;
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
                    // Two runs may record the same gap; signed records have distinct names.
                    p.gaps.dedup_by_key(|g| (g.from, g.to));
                    let mut spans: Vec<coverage::Span<'_>> = all_spans
                        .get(&(topic.name.clone(), lineage.topic_id.clone(), partition))
                        .map(|v| {
                            v.iter()
                                .map(|(start, end, key)| coverage::Span {
                                    start: *start,
                                    end: *end,
                                    key,
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    spans.sort_by(|a, b| (a.start, a.end, a.key).cmp(&(b.start, b.end, b.key)));
                    let gaps: Vec<(i64, i64)> = p.gaps.iter().map(|g| (g.from, g.to)).collect();
                    problems.extend(coverage::check(&topic.name, partition, &spans, &gaps));
                }
            }
        }
        problems.extend(self.check_end_offsets(&pruned_objects));
        self.forget_pruned_lineages(&pruned_objects);
        self.problems.extend(problems);
        sort_problems(&mut self.problems);
    }

    /// Each final manifest part records where each partition's coverage ended; authentic
    /// segments and gaps must reach that far, or objects at the end were deleted.
    /// Lineages whose every segment and gap retention removed are no longer part of the
    /// backup (a restore must not create them as empty topics), though old manifests still
    /// name them.
    fn forget_pruned_lineages(&mut self, pruned_objects: &BTreeSet<String>) {
        let pruned: BTreeSet<(String, String)> = pruned_objects
            .iter()
            .filter_map(|k| naming::parse_segment_key(k))
            .map(|k| (k.topic, k.topic_id))
            .collect();
        for topic in self.topics.values_mut() {
            topic.lineages.retain(|id, l| {
                !pruned.contains(&(topic.name.clone(), id.clone()))
                    || l.partitions
                        .values()
                        .any(|p| !p.segments.is_empty() || !p.gaps.is_empty())
            });
        }
        self.topics.retain(|_, t| !t.lineages.is_empty());
    }

    /// A partition whose segments up to the recorded end were removed by retention is
    /// excused.
    fn check_end_offsets(&self, pruned_objects: &BTreeSet<String>) -> Vec<Problem> {
        let pruned_ends: BTreeMap<PartitionId, i64> = pruned_objects
            .iter()
            .filter_map(|k| naming::parse_segment_key(k))
            .fold(BTreeMap::new(), |mut ends, k| {
                let end = ends
                    .entry((k.topic.clone(), k.topic_id.clone(), k.partition))
                    .or_insert(0);
                *end = k.end_offset().max(*end);
                ends
            });
        let mut problems = Vec::new();
        for m in &self.manifests {
            for e in &m.manifest.end_offsets {
                let pruned_to = pruned_ends
                    .get(&(e.topic.clone(), e.topic_id.clone(), e.partition))
                    .copied()
                    .unwrap_or(0);
                if e.end_offset == 0 || pruned_to >= e.end_offset {
                    continue;
                }
                let reached = self
                    .topics
                    .get(&e.topic)
                    .and_then(|t| t.lineages.get(&e.topic_id))
                    .and_then(|l| l.partitions.get(&e.partition))
                    .map(|p| {
                        let segments = p.segments.iter().map(|s| s.parsed.end_offset());
                        let gaps = p.gaps.iter().map(|g| g.to);
                        segments.chain(gaps).max().unwrap_or(0)
                    })
                    .unwrap_or(0);
                if reached < e.end_offset {
                    problems.push(
                        Problem::new(
                            ProblemKind::CoverageShort,
                            format!(
                                "run {} backed this partition up to offset {}, but its authentic \
                                 segments and gaps end at {reached}: objects were deleted",
                                m.manifest.run_id,
                                e.end_offset - 1
                            ),
                        )
                        .at(&e.topic, e.partition)
                        .offset(reached)
                        .object(&m.key),
                    );
                }
            }
        }
        problems
    }
}

/// Topic, topic id and partition.
type PartitionId = (String, String, i32);

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

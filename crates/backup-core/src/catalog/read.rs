//! Reading what a backup holds from storage: one LIST sorted into the kinds of objects a
//! backup has, and the descriptor and manifest parts, each read with a bound and believed only
//! as far as [`Trust`] allows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use backup_format::manifest::{BackupDescriptor, DescriptorSignature, RunManifest};
use backup_format::naming::{self, GapKey, ManifestKey, SegmentKey};
use backup_format::shard::Shard;
use futures::{StreamExt, TryStreamExt};

use super::trust::{self, Trust};
use super::{CatalogError, ManifestRef, Problem, ProblemKind};
use crate::storage::{Storage, StorageError};

/// Largest objects of each kind a reader accepts, before any GET.
pub mod read_limits {
    /// A manifest part.
    pub const MANIFEST: u64 = backup_format::manifest::MAX_MANIFEST_LEN as u64;
    /// A descriptor or gap record.
    pub const SMALL_DOCUMENT: u64 = backup_format::manifest::MAX_SMALL_DOCUMENT_LEN as u64;
    /// A segment: well above the largest a backup writes (`segment_max_bytes` is at most
    /// 1 GiB), below what would exhaust a restore host.
    pub const SEGMENT: u64 = 2 << 30;
}

/// Manifests read at once while loading.
const MANIFEST_READS: usize = 4;

/// One LIST of `{backup_id}/`, sorted into the kinds of objects a backup has.
#[derive(Default)]
pub(super) struct Listing {
    pub(super) descriptor: bool,
    pub(super) manifests: Vec<(ManifestKey, String)>,
    /// Listed sizes of manifests, by object key.
    pub(super) manifest_sizes: HashMap<String, u64>,
    pub(super) descriptor_size: u64,
    pub(super) segments: Vec<(SegmentKey, crate::storage::ObjectInfo)>,
    pub(super) gaps: Vec<(String, GapKey)>,
    /// Prune records, with their listed sizes.
    pub(super) prune_records: Vec<(String, u64)>,
    pub(super) unexpected: Vec<String>,
}

impl Listing {
    pub(super) async fn read(storage: &Storage, backup_id: &str) -> Result<Self, CatalogError> {
        let descriptor_key = naming::backup_descriptor_key(backup_id)?;
        let mut out = Listing::default();
        let pruned_prefix = super::pruned::prefix(backup_id);
        let quarantine_prefix = format!("{backup_id}/quarantine/");
        let mut stream = storage.list_stream(backup_id);
        while let Some(info) = stream.try_next().await? {
            if info.key == descriptor_key {
                out.descriptor = true;
                out.descriptor_size = info.size;
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
                out.manifest_sizes.insert(info.key.clone(), info.size);
                out.manifests.push((m, info.key));
            } else if let Some(name) = info.key.strip_prefix(&pruned_prefix)
                && super::pruned::parse_name(name).is_some()
            {
                out.prune_records.push((info.key, info.size));
            } else if info.key.starts_with(&quarantine_prefix) {
                // Read by the quarantine module.
            } else {
                out.unexpected.push(info.key);
            }
        }
        out.manifests
            .sort_by(|a, b| (&a.0.run_id, a.0.part).cmp(&(&b.0.run_id, b.0.part)));
        Ok(out)
    }

    /// Whether any object name carries a signature.
    pub(super) fn is_signed(&self) -> bool {
        self.segments.iter().any(|(k, _)| k.signature.is_some())
            || self.gaps.iter().any(|(_, g)| g.seal.is_some())
            || self.manifests.iter().any(|(m, _)| m.seal.is_some())
    }

    pub(super) fn is_empty(&self) -> bool {
        !self.descriptor
            && self.manifests.is_empty()
            && self.segments.is_empty()
            && self.gaps.is_empty()
            && self.unexpected.is_empty()
    }
}

pub(super) async fn read_descriptor(
    storage: &Storage,
    backup_id: &str,
    listing: &Listing,
    trust: &Trust,
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
    if listing.descriptor_size > read_limits::SMALL_DOCUMENT {
        problems.push(
            Problem::new(
                ProblemKind::CorruptDescriptor,
                format!(
                    "the descriptor is {} bytes, far more than any descriptor kafka-backup \
                     writes; it was not read",
                    listing.descriptor_size
                ),
            )
            .object(&key),
        );
        return Ok(None);
    }
    let bytes = match storage.get_bounded(&key, read_limits::SMALL_DOCUMENT).await {
        Ok(b) => b,
        Err(StorageError::NotFound { .. }) => {
            problems.push(missing());
            return Ok(None);
        }
        Err(too_large @ StorageError::TooLarge { .. }) => {
            problems.push(
                Problem::new(ProblemKind::CorruptDescriptor, too_large.to_string()).object(&key),
            );
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let verified = BackupDescriptor::from_json_verified(&bytes, &trust.keys);
    if trust.verifies()
        && let Ok((_, signature)) = &verified
        && !matches!(signature, DescriptorSignature::Verified(_))
    {
        problems.push(
            Problem::new(
                ProblemKind::Unauthenticated,
                match signature {
                    DescriptorSignature::NotVerified(ids) => format!(
                        "the descriptor is signed by key {}, which is not a configured verify key \
                         (or its signature does not match); it is ignored",
                        ids.join(", ")
                    ),
                    _ => "the descriptor is not signed: written before signing was enabled, or \
                          replaced by someone with write access; it is ignored"
                        .to_owned(),
                },
            )
            .object(&key),
        );
        return Ok(None);
    }
    match verified.map(|(d, _)| d) {
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
pub(super) async fn read_manifests(
    storage: &Storage,
    backup_id: &str,
    listing: &Listing,
    trust: &Trust,
    pruned: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Result<Vec<ManifestRef>, CatalogError> {
    let mut out = Vec::new();
    let mut to_read = Vec::new();
    for (mkey, key) in &listing.manifests {
        let signed_by = mkey.verify(&trust.keys).map(|k| k.key_id());
        if trust.verifies() && signed_by.is_none() {
            // Not read at all: nothing in it could be believed.
            problems.push(
                Problem::new(
                    ProblemKind::Unauthenticated,
                    if mkey.seal.is_some() {
                        "this manifest part's name is signed, but not by a configured verify key \
                         (forged, or signed with another key): it is ignored"
                    } else {
                        "this manifest part is not signed: forged by someone with write access, \
                         or written before signing was enabled; it is ignored"
                    },
                )
                .object(key),
            );
            continue;
        }
        let size = listing.manifest_sizes.get(key).copied().unwrap_or(0);
        if size > read_limits::MANIFEST {
            problems.push(
                Problem::new(
                    ProblemKind::CorruptManifest,
                    format!(
                        "{size} bytes, more than the largest manifest part kafka-backup writes; it \
                         was not read"
                    ),
                )
                .object(key),
            );
            continue;
        }
        to_read.push((mkey, key, signed_by));
    }
    let mut reads = futures::stream::iter(to_read.into_iter().map(
        |(mkey, key, signed_by)| async move {
            let result = storage.get_bounded(key, read_limits::MANIFEST).await;
            (mkey, key, signed_by, result)
        },
    ))
    .buffered(MANIFEST_READS);
    while let Some((mkey, key, signed_by, result)) = reads.next().await {
        let bytes = match result {
            Ok(b) => b,
            // Listed a moment ago: report it like any other missing part below.
            Err(StorageError::NotFound { .. }) => continue,
            Err(too_large @ StorageError::TooLarge { .. }) => {
                problems.push(
                    Problem::new(ProblemKind::CorruptManifest, too_large.to_string()).object(key),
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(seal) = &mkey.seal
            && backup_format::segment::object_sha256(&bytes) != seal.sha256
        {
            problems.push(
                Problem::new(
                    ProblemKind::HashMismatch,
                    "the manifest part's content does not match the SHA-256 in its name: it was \
                     altered after it was written; it is ignored",
                )
                .object(key),
            );
            continue;
        }
        match RunManifest::from_json(&bytes) {
            Ok(m) if m.backup_id == backup_id && m.run_id == mkey.run_id && m.part == mkey.part => {
                out.push(ManifestRef {
                    key: key.clone(),
                    manifest: m,
                    signed_by,
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
                seal: None,
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
    out.sort_by(|a, b| {
        (&a.manifest.run_id, a.manifest.part).cmp(&(&b.manifest.run_id, b.manifest.part))
    });
    let pruned_runs: Vec<String> = pruned
        .keys()
        .filter_map(|k| naming::parse_manifest_key(k))
        .map(|k| k.run_id)
        .collect();
    let run_ids = out.iter().map(|m| m.manifest.run_id.as_str());
    problems.extend(missing_shards(
        run_ids.chain(pruned_runs.iter().map(String::as_str)),
    ));
    if trust.verifies() {
        let keys: HashMap<&str, &ManifestKey> = listing
            .manifests
            .iter()
            .map(|(k, o)| (o.as_str(), k))
            .collect();
        let parts: Vec<trust::ChainPart<'_>> = out
            .iter()
            .filter_map(|m| {
                Some(trust::ChainPart {
                    object: &m.key,
                    key: keys.get(m.key.as_str())?,
                    manifest: &m.manifest,
                })
            })
            .collect();
        problems.extend(trust::check_chain(
            &listing.manifests,
            &parts,
            &trust.expected_runs,
            pruned,
        ));
    } else if !trust.expected_runs.is_empty() {
        for run in &trust.expected_runs {
            if !out.iter().any(|m| &m.manifest.run_id == run) {
                problems.push(Problem::new(
                    ProblemKind::MissingRun,
                    format!(
                        "run {run} was expected (--expect-run) but no manifest of it is in storage"
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// Shards of a sharded backup with no run: for each shard count some run used, every index
/// of it must have a run (read, or removed by a recorded prune). A shard that never ran, or
/// whose runs were all deleted, leaves its partitions out of the backup, and the other
/// lanes' chains are whole, so only this can tell.
fn missing_shards<'a>(run_ids: impl Iterator<Item = &'a str>) -> Vec<Problem> {
    let mut seen: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for shard in run_ids.filter_map(Shard::of_run) {
        seen.entry(shard.count()).or_default().insert(shard.index());
    }
    let mut problems = Vec::new();
    for (count, present) in seen {
        let missing: Vec<String> = (0..count)
            .filter(|i| !present.contains(i))
            .map(|i| format!("{i}/{count}"))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let have: Vec<String> = present.iter().map(|i| format!("{i}/{count}")).collect();
        problems.push(Problem::new(
            ProblemKind::MissingShard,
            format!(
                "shard {} of this sharded backup {} no run, while {} {}: the partitions {} \
                 are not in the backup. Run `kafka-backup backup --shard {}` (a shard that never \
                 ran, e.g. a pod that failed), or, if it did run, its runs were deleted",
                missing.join(", "),
                if missing.len() == 1 { "has" } else { "have" },
                have.join(", "),
                if have.len() == 1 { "has" } else { "have" },
                if missing.len() == 1 {
                    "it owns"
                } else {
                    "they own"
                },
                missing[0],
            ),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_without_runs_is_reported_by_name() {
        let runs = [
            "20261204T100000Z-00000001.shard-0-of-3",
            "20261204T100000Z-00000002.shard-2-of-3",
            "20261204T110000Z-00000003.shard-0-of-3",
            "20261204T090000Z-00000004",
            "20261204T120000Z-00000005.shard-1-of-2",
            "20261204T120000Z-00000006.shard-0-of-2",
        ];
        let problems = missing_shards(runs.into_iter());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].kind, ProblemKind::MissingShard);
        assert!(problems[0].is_error());
        let text = &problems[0].message;
        assert!(
            text.contains("shard 1/3 of this sharded backup has no run, while 0/3, 2/3 have"),
            "{text}"
        );
        assert!(text.contains("--shard 1/3"), "{text}");
        assert!(
            missing_shards(["a", "b"].into_iter()).is_empty(),
            "unsharded"
        );
    }
}

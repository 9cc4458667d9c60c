//! What a reader may believe about a backup: which objects are authentic, and whether the
//! chain of manifest parts is whole.
//!
//! Storage is not trusted. With verify keys configured, an object is authentic when its name
//! carries a signature by one of them (the name binds the content's SHA-256, checked when
//! the object is read), or, for a segment, when an authentic manifest lists it. Everything
//! else (planted segments and gaps, forged or re-signed manifests, objects of runs before
//! signing was enabled) is reported and kept out of what restore uses. Without keys nothing
//! can be authenticated: manifests are believed as they are, and only segments that no
//! manifest lists are set apart.
//!
//! The chain: each authentic manifest part names the digest of the part before it (the
//! previous part of its run; for part 0, the newest part of an earlier run). A link to an
//! object that is missing, not authentic, or has another digest means a part or a whole run
//! was deleted or replaced. Deleting the newest runs leaves a shorter chain that is still
//! whole: only an anchor from outside the bucket (`--expect-run`, the audit log) or object
//! lock can catch that.
//!
//! A sharded backup has one chain per shard (a lane: the runs whose ids end in
//! `.shard-I-of-N`), each with its own first run; a link from one lane into another is
//! broken. A lane deleted whole is caught by the catalog: a shard of a count is missing.

use std::collections::{BTreeMap, BTreeSet};

use backup_format::manifest::RunManifest;
use backup_format::naming::ManifestKey;
use backup_format::shard::Shard;
use backup_format::signing::VerifyingKeys;
use serde::Serialize;

use super::problem::{Problem, ProblemKind};

/// What a reader trusts, from its configuration and command line.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Keys whose signatures authenticate objects (`verify_key`; the backup's own signing
    /// key for a backup configuration). Empty: nothing can be authenticated.
    pub keys: VerifyingKeys,
    /// Runs that must be in the backup, authentic (`--expect-run`): an anchor kept outside
    /// the bucket, against the deletion of the newest runs.
    pub expected_runs: Vec<String>,
    /// The admins' keys (`restore.release_verify_key`): the only ones whose prune records
    /// excuse removed runs. Empty: [`Trust::keys`] are the admins' too.
    pub admin_keys: VerifyingKeys,
}

impl Trust {
    /// Trust with these verify keys and no anchors.
    pub fn with_keys(keys: VerifyingKeys) -> Self {
        Self {
            keys,
            expected_runs: Vec::new(),
            admin_keys: VerifyingKeys::default(),
        }
    }

    /// The keys an admin's action (a prune record) must be signed by.
    pub fn admin(&self) -> &VerifyingKeys {
        if self.admin_keys.is_empty() {
            &self.keys
        } else {
            &self.admin_keys
        }
    }

    /// Whether signatures are checked.
    pub fn verifies(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// How far a backup could be authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum Authentication {
    /// Signatures were checked against the configured keys (their ids).
    Verified {
        /// The configured verify keys.
        key_ids: Vec<String>,
    },
    /// No verify key is configured: nothing was authenticated.
    NotChecked {
        /// Whether the backup's object names are signed (so a verify key would help).
        signed: bool,
    },
}

impl Authentication {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Verified { key_ids } => {
                format!("signatures verified with key {}", key_ids.join(", "))
            }
            Self::NotChecked { signed: true } => {
                "signed, but NOT verified: configure the backup's \
                 public key (restore.verify_key, or --verify-key) to authenticate it"
                    .to_owned()
            }
            Self::NotChecked { signed: false } => "unsigned: nothing in it is authenticated (sign \
                 backups with backup.signing_key)"
                .to_owned(),
        }
    }
}

/// How messages name a lane of runs.
fn lane_name(lane: Option<Shard>) -> String {
    match lane {
        Some(s) => format!("shard {s}"),
        None => "the unsharded runs".to_owned(),
    }
}

/// A manifest part as the chain check sees it.
pub(crate) struct ChainPart<'a> {
    pub object: &'a str,
    pub key: &'a ManifestKey,
    pub manifest: &'a RunManifest,
}

/// Checks the links between authentic manifest parts. `listed` are all manifest keys found in
/// storage, authentic or not, with their object keys; `authentic` the parts that verified.
pub(crate) fn check_chain(
    listed: &[(ManifestKey, String)],
    authentic: &[ChainPart<'_>],
    expected_runs: &[String],
    pruned: &BTreeMap<String, String>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let by_object: BTreeMap<&str, &ManifestKey> =
        listed.iter().map(|(k, o)| (o.as_str(), k)).collect();
    let authentic_objects: BTreeSet<&str> = authentic.iter().map(|p| p.object).collect();
    let mut runs: BTreeMap<&str, BTreeMap<u32, &ChainPart<'_>>> = BTreeMap::new();
    for p in authentic {
        runs.entry(p.key.run_id.as_str())
            .or_default()
            .insert(p.key.part, p);
    }
    let mut linked_to: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    // Runs that start a chain, per lane: each shard's lane has its own first run.
    let mut genesis: BTreeMap<Option<Shard>, Vec<&str>> = BTreeMap::new();

    for p in authentic {
        let at = |kind, text: String| Problem::new(kind, text).object(p.object);
        match &p.manifest.previous {
            None if p.key.part == 0 => genesis
                .entry(Shard::of_run(&p.key.run_id))
                .or_default()
                .push(p.key.run_id.as_str()),
            None => problems.push(at(
                ProblemKind::ChainBroken,
                format!(
                    "part {} of run {} does not name the part before it; every part after the \
                     first names its predecessor",
                    p.key.part, p.key.run_id
                ),
            )),
            Some(link) => {
                linked_to
                    .entry(link.key.as_str())
                    .or_default()
                    .push(p.object);
                let pruned_digest = pruned.get(link.key.as_str());
                match by_object.get(link.key.as_str()) {
                    None if pruned_digest == Some(&crate::keys::hex(&link.sha256)) => {}
                    None if pruned_digest.is_some() => problems.push(at(
                        ProblemKind::ChainBroken,
                        format!(
                            "this part names {} as the part before it; a prune record says \
                             retention removed that part, but with another digest: the record \
                             does not describe the part this chain names",
                            link.key
                        ),
                    )),
                    None => problems.push(at(
                        ProblemKind::ChainBroken,
                        format!(
                            "this part names {} as the part before it, but that object is not in \
                             storage: a manifest part{} was deleted",
                            link.key,
                            if p.key.part == 0 {
                                " or a whole run"
                            } else {
                                ""
                            }
                        ),
                    )),
                    Some(prev) if !authentic_objects.contains(link.key.as_str()) => {
                        problems.push(at(
                            ProblemKind::ChainBroken,
                            format!(
                                "this part names {} (run {}) as the part before it, but that part \
                                 is not authentic",
                                link.key, prev.run_id
                            ),
                        ))
                    }
                    Some(prev) if prev.seal.as_ref().map(|s| s.sha256) != Some(link.sha256) => {
                        problems.push(at(
                            ProblemKind::ChainBroken,
                            format!(
                                "this part names {} as the part before it with another digest: \
                                 the predecessor was replaced",
                                link.key
                            ),
                        ))
                    }
                    Some(prev) if Shard::of_run(&prev.run_id) != Shard::of_run(&p.key.run_id) => {
                        problems.push(at(
                            ProblemKind::ChainBroken,
                            format!(
                                "this part (run {}) names run {} as the part before it, which \
                                 belongs to {}: each shard chains in a lane of its own, so a \
                                 link across lanes was not written by kafka-backup",
                                p.key.run_id,
                                prev.run_id,
                                lane_name(Shard::of_run(&prev.run_id))
                            ),
                        ))
                    }
                    Some(prev) => {
                        let same_run = prev.run_id == p.key.run_id;
                        let in_order = if p.key.part > 0 {
                            same_run && prev.part + 1 == p.key.part
                        } else {
                            !same_run && prev.run_id < p.key.run_id
                        };
                        if !in_order {
                            problems.push(at(
                                ProblemKind::ChainBroken,
                                format!(
                                    "this part (run {}, part {}) names run {} part {} as the part \
                                     before it, which is out of order",
                                    p.key.run_id, p.key.part, prev.run_id, prev.part
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    // Parts missing inside a run are reported by the catalog (numbering); here: a run whose
    // newest part is not final, and which no later run follows.
    for (run, parts) in &runs {
        if let Some((_, last)) = parts.last_key_value()
            && !last.manifest.final_part
            && !linked_to.contains_key(last.object)
        {
            problems.push(
                Problem::new(
                    ProblemKind::RunUnfinished,
                    format!(
                        "run {run} ends at part {} which is not final, and no later run follows \
                         it: the run is still going, was killed, or its last parts were deleted \
                         (only --expect-run, the audit log or object lock can tell)",
                        last.key.part
                    ),
                )
                .object(last.object),
            );
        }
    }
    for (object, followers) in &linked_to {
        if followers.len() > 1 {
            problems.push(
                Problem::new(
                    ProblemKind::ChainFork,
                    format!(
                        "{} parts name this one as their predecessor ({}): runs overlapped in \
                         time; each branch is checked",
                        followers.len(),
                        followers.join(", ")
                    ),
                )
                .object(object),
            );
        }
    }
    for (lane, starts) in genesis.iter().filter(|(_, starts)| starts.len() > 1) {
        let later: Vec<&str> = starts.iter().skip(1).copied().collect();
        problems.push(Problem::new(
            ProblemKind::ChainFork,
            format!(
                "run {} starts the chain of {}, and so do {}: runs that started while no signed \
                 manifest existed, or a chain restarted after earlier runs were deleted",
                starts[0],
                lane_name(*lane),
                later.join(", ")
            ),
        ));
    }
    for run in expected_runs {
        if !runs.contains_key(run.as_str()) {
            problems.push(Problem::new(
                ProblemKind::MissingRun,
                format!(
                    "run {run} was expected (--expect-run) but no authentic manifest of it is in \
                     storage: it was deleted (a rollback of the backup), or the run id is wrong"
                ),
            ));
        }
    }
    problems
}

//! Deciding what retention may remove: a pure function of the catalog, the policy, the time
//! and the object lock.
//!
//! A run is *kept by policy* when it is one of the newest `keep_last` runs or younger than
//! `max_age` (the union of the rules, as in other backup tools); the newest run is always
//! kept. A kept run's *view* of a partition is what the source still had when it ran: from
//! the log start it recorded (offset 0 for runs that did not record one) to the end it
//! reached; a run without a final part (running, or killed) views every partition it
//! touched, whole. A segment or gap record of a run outside the policy may go only when no
//! kept run lists it or views any of its offsets, and when no retention lock holds it. A run
//! all of whose objects may go goes whole, manifest parts included; otherwise its removable
//! objects go and its manifest stays. Segments no manifest lists (a killed run's, or planted)
//! are never touched.
//!
//! In a sharded backup each shard's runs are a lane of their own: the newest runs are counted
//! per lane, and a shard's run views only the partitions its shard owns.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use backup_format::shard::Shard;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::catalog::{Catalog, ManifestRef};

/// Which runs to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Keep the newest N runs.
    pub keep_last: Option<u32>,
    /// Keep runs active within this long.
    pub max_age: Option<Duration>,
}

impl Policy {
    /// The policy in the command's words.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.keep_last {
            parts.push(format!("--keep-last {n}"));
        }
        if let Some(d) = self.max_age {
            parts.push(format!("--max-age {}", format_age(d)));
        }
        parts.join(" ")
    }
}

/// `30d`, `12h`, `90m` or seconds, whichever is exact.
pub fn format_age(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s > 0 && s.is_multiple_of(3_600) {
        format!("{}h", s / 3_600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// One object retention considers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Object {
    /// Its key.
    pub key: String,
    /// Its listed size (0 for manifest parts and gap records, whose size is not listed in
    /// the catalog).
    pub bytes: u64,
}

/// Why an object of a run outside the policy stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "why")]
pub enum Held {
    /// A kept run lists it or views its offsets.
    Needed {
        /// The kept run.
        run_id: String,
        /// Topic, and partition.
        topic: String,
        /// Partition.
        partition: i32,
        /// The offsets of the kept run's view it holds (inclusive).
        from: i64,
        /// Last offset.
        to: i64,
    },
    /// It holds offsets newer than any kept run reached: removing it would lose the newest
    /// data of the partition.
    Newer {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Its first offset.
        from: i64,
    },
    /// Object lock keeps it until then.
    Locked {
        /// RFC 3339, estimated from its write time and `storage.object_lock.retain_days`.
        until: String,
    },
}

/// What retention does with one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunPlan {
    /// The run.
    pub run_id: String,
    /// When it started.
    pub started_at: String,
    /// Its newest part's time: when it was last active.
    pub last_active: String,
    /// Why the policy keeps it, or `None` when it is outside the policy.
    pub kept_by: Option<String>,
    /// The objects to remove.
    pub remove: Vec<Object>,
    /// Objects that stay although the run is outside the policy, and why (one example each
    /// of up to 20; `held_count` says how many).
    pub held: Vec<(String, Held)>,
    /// How many objects are held.
    pub held_count: usize,
    /// Whether the whole run goes (its manifest parts are in `remove`).
    pub whole: bool,
    /// Its manifest parts' keys.
    pub parts: Vec<String>,
}

/// What retention would do with a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The backup.
    pub backup_id: String,
    /// The policy, in words.
    pub policy: String,
    /// Every run, oldest first.
    pub runs: Vec<RunPlan>,
    /// Segments that no manifest lists; never removed by retention.
    pub unlisted_segments: usize,
}

impl Plan {
    /// Objects to remove.
    pub fn remove_count(&self) -> usize {
        self.runs.iter().map(|r| r.remove.len()).sum()
    }

    /// Bytes to remove (segments).
    pub fn remove_bytes(&self) -> u64 {
        self.runs
            .iter()
            .flat_map(|r| r.remove.iter())
            .map(|o| o.bytes)
            .sum()
    }
}

/// A run as retention sees it.
struct Run<'a> {
    id: &'a str,
    started: OffsetDateTime,
    started_text: &'a str,
    last_active: OffsetDateTime,
    last_active_text: &'a str,
    parts: Vec<&'a ManifestRef>,
    finished: bool,
}

type Partition = (String, String, i32);

/// Most partitions of one topic taken from a manifest (Kafka's own practical limit is far
/// lower); a forged count cannot make planning loop for billions.
const MAX_PARTITIONS: u32 = 100_000;

/// A run without a final part that wrote within this long may still be running: never pruned.
const STILL_RUNNING: Duration = Duration::from_secs(86_400);

fn parse(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

fn runs(catalog: &Catalog) -> Vec<Run<'_>> {
    let mut by_id: BTreeMap<&str, Run<'_>> = BTreeMap::new();
    for m in &catalog.manifests {
        let man = &m.manifest;
        let started = parse(&man.started_at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let active_text = man.finished_at.as_deref().unwrap_or(&man.written_at);
        let active = parse(active_text).unwrap_or(started);
        let run = by_id.entry(man.run_id.as_str()).or_insert_with(|| Run {
            id: &man.run_id,
            started,
            started_text: &man.started_at,
            last_active: active,
            last_active_text: active_text,
            parts: Vec::new(),
            finished: false,
        });
        if active > run.last_active {
            run.last_active = active;
            run.last_active_text = active_text;
        }
        run.finished |= man.final_part;
        run.parts.push(m);
    }
    let mut out: Vec<Run<'_>> = by_id.into_values().collect();
    // Newest by last activity: a long continuous run that is still writing is newer than a
    // snapshot started after it and already finished.
    out.sort_by(|a, b| (a.last_active, a.started, a.id).cmp(&(b.last_active, b.started, b.id)));
    out
}

/// What kept runs need: the offsets each views per partition, and the keys they list.
#[derive(Default)]
struct Needs<'a> {
    views: BTreeMap<Partition, Vec<(i64, i64, &'a str)>>,
    listed: BTreeMap<&'a str, &'a str>,
}

impl<'a> Needs<'a> {
    fn add(&mut self, run: &Run<'a>) {
        let mut touched: BTreeSet<Partition> = BTreeSet::new();
        for m in &run.parts {
            for e in &m.manifest.segments {
                self.listed.insert(&e.key, run.id);
                touched.insert((e.topic.clone(), e.topic_id.clone(), e.partition));
            }
            for g in &m.manifest.gaps {
                touched.insert((g.topic.clone(), g.topic_id.clone(), g.partition));
            }
            // A shard's run lists every topic but backs up only the partitions it owns.
            let shard = Shard::of_run(run.id);
            for t in &m.manifest.topics {
                // A manifest is untrusted input: no more partitions than Kafka allows a topic.
                for p in 0..t.partitions.min(MAX_PARTITIONS) as i32 {
                    if shard.is_none_or(|s| s.owns(&t.name, p)) {
                        touched.insert((t.name.clone(), t.topic_id.clone(), p));
                    }
                }
            }
        }
        let mut ended: BTreeSet<Partition> = BTreeSet::new();
        if run.finished {
            for m in &run.parts {
                for e in &m.manifest.end_offsets {
                    let start = e.log_start_offset.unwrap_or(0).max(0);
                    let p = (e.topic.clone(), e.topic_id.clone(), e.partition);
                    self.views
                        .entry(p.clone())
                        .or_default()
                        .push((start, e.end_offset, run.id));
                    ended.insert(p);
                }
            }
        }
        // A run that never finished, or a final part that does not say where a partition it
        // touched ends (written before end offsets existed), views that partition whole.
        for p in touched.into_iter().filter(|p| !ended.contains(p)) {
            self.views.entry(p).or_default().push((0, i64::MAX, run.id));
        }
    }

    /// Where the newest kept view of `p` ends; `None` when no kept run covers `p`.
    fn newest_end(&self, p: &Partition) -> Option<i64> {
        self.views.get(p)?.iter().map(|&(_, e, _)| e).max()
    }

    /// The first kept view that overlaps `from..end` of `p`: (run, first, last offset).
    fn overlap(&self, p: &Partition, from: i64, end: i64) -> Option<(&'a str, i64, i64)> {
        self.views.get(p)?.iter().find_map(|&(s, e, run)| {
            let (lo, hi) = (from.max(s), end.min(e));
            (lo < hi).then_some((run, lo, hi - 1))
        })
    }
}

/// Plans retention of `catalog` under `policy` at `now`; `lock` is the retention every
/// object was written with (`storage.object_lock.retain_days`), if any.
pub fn plan(catalog: &Catalog, policy: &Policy, now: SystemTime, lock: Option<Duration>) -> Plan {
    let now_t = OffsetDateTime::from(now);
    let runs = runs(catalog);
    let keep_last = policy.keep_last.map_or(0, |k| k as usize).max(1);
    // The newest runs are counted per lane: each shard of a sharded backup keeps its own
    // newest runs, since no other lane's runs hold its partitions.
    let mut lane_sizes: BTreeMap<Option<Shard>, usize> = BTreeMap::new();
    for r in &runs {
        *lane_sizes.entry(Shard::of_run(r.id)).or_default() += 1;
    }
    let mut lane_seen: BTreeMap<Option<Shard>, usize> = BTreeMap::new();
    let kept_by: Vec<Option<String>> = runs
        .iter()
        .map(|r| {
            let lane = Shard::of_run(r.id);
            let seen = lane_seen.entry(lane).or_default();
            let (i, n) = (*seen, lane_sizes[&lane]);
            *seen += 1;
            if n - i <= keep_last && (policy.keep_last.is_some() || i + 1 == n) {
                Some(if policy.keep_last.is_some() {
                    format!("one of the newest {keep_last}")
                } else {
                    "the newest run".to_owned()
                })
            } else if let Some(age) = policy.max_age
                && now_t - r.last_active < age
            {
                Some(format!("active within {}", format_age(age)))
            } else if !r.finished && now_t - r.last_active < STILL_RUNNING {
                Some("it may still be running (no final part, active within a day)".to_owned())
            } else {
                None
            }
        })
        .collect();
    let mut needs = Needs::default();
    for (r, k) in runs.iter().zip(&kept_by) {
        if k.is_some() {
            needs.add(r);
        }
    }
    let segments: BTreeMap<&str, (u64, SystemTime)> = catalog
        .topics
        .values()
        .flat_map(|t| t.lineages.values())
        .flat_map(|l| l.partitions.values())
        .flat_map(|p| p.segments.iter())
        .chain(catalog.unauthenticated.iter())
        .map(|s| (s.key.as_str(), (s.size, s.last_modified)))
        .collect();
    let gap_keys: BTreeMap<(Partition, i64, i64), String> = catalog
        .topics
        .values()
        .flat_map(|t| t.lineages.values())
        .flat_map(|l| l.partitions.values())
        .flat_map(|p| p.gaps.iter())
        .filter_map(|g| {
            let key = g.to_key().ok()?;
            Some((
                (
                    (g.topic.clone(), g.topic_id.clone(), g.partition),
                    g.from,
                    g.to,
                ),
                key,
            ))
        })
        .collect();
    let locked_until = |written: SystemTime| -> Option<String> {
        let retain = lock?;
        // A margin for the clock difference between the writer and the store.
        let until = OffsetDateTime::from(written) + retain + Duration::from_secs(3_600);
        (until > now_t).then(|| until.format(&Rfc3339).unwrap_or_default())
    };

    let mut listed_anywhere: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::with_capacity(runs.len());
    for (run, kept) in runs.iter().zip(kept_by) {
        let parts: Vec<String> = run.parts.iter().map(|m| m.key.clone()).collect();
        let mut plan = RunPlan {
            run_id: run.id.to_owned(),
            started_at: run.started_text.to_owned(),
            last_active: run.last_active_text.to_owned(),
            kept_by: kept.clone(),
            remove: Vec::new(),
            held: Vec::new(),
            held_count: 0,
            whole: false,
            parts: parts.clone(),
        };
        for m in &run.parts {
            for e in &m.manifest.segments {
                listed_anywhere.insert(&e.key);
            }
        }
        if kept.is_some() {
            out.push(plan);
            continue;
        }
        let hold = |plan: &mut RunPlan, key: &str, why: Held| {
            plan.held_count += 1;
            if plan.held.len() < 20 {
                plan.held.push((key.to_owned(), why));
            }
        };
        for m in &run.parts {
            for e in &m.manifest.segments {
                let Some(&(bytes, written)) = segments.get(e.key.as_str()) else {
                    continue; // already gone
                };
                let p = (e.topic.clone(), e.topic_id.clone(), e.partition);
                if let Some(&by) = needs.listed.get(e.key.as_str()) {
                    let why = Held::Needed {
                        run_id: by.to_owned(),
                        topic: e.topic.clone(),
                        partition: e.partition,
                        from: e.start_offset,
                        to: e.end_offset - 1,
                    };
                    hold(&mut plan, &e.key, why);
                } else if let Some((by, from, to)) = needs.overlap(&p, e.start_offset, e.end_offset)
                {
                    let why = Held::Needed {
                        run_id: by.to_owned(),
                        topic: e.topic.clone(),
                        partition: e.partition,
                        from,
                        to,
                    };
                    hold(&mut plan, &e.key, why);
                } else if needs.newest_end(&p).is_some_and(|end| e.end_offset > end) {
                    let why = Held::Newer {
                        topic: e.topic.clone(),
                        partition: e.partition,
                        from: e.start_offset,
                    };
                    hold(&mut plan, &e.key, why);
                } else if let Some(until) = locked_until(written) {
                    hold(&mut plan, &e.key, Held::Locked { until });
                } else {
                    plan.remove.push(Object {
                        key: e.key.clone(),
                        bytes,
                    });
                }
            }
            for g in &m.manifest.gaps {
                let p = (g.topic.clone(), g.topic_id.clone(), g.partition);
                let Some(key) = gap_keys.get(&(p.clone(), g.from, g.to)) else {
                    continue;
                };
                if let Some((by, from, to)) = needs.overlap(&p, g.from, g.to) {
                    let why = Held::Needed {
                        run_id: by.to_owned(),
                        topic: g.topic.clone(),
                        partition: g.partition,
                        from,
                        to,
                    };
                    hold(&mut plan, key, why);
                } else if let Some(until) = locked_until(SystemTime::from(run.last_active)) {
                    // Gap records carry no listed time: none was written after the run was
                    // last active.
                    hold(&mut plan, key, Held::Locked { until });
                } else if !plan.remove.iter().any(|o| &o.key == key) {
                    plan.remove.push(Object {
                        key: key.clone(),
                        bytes: 0,
                    });
                }
            }
        }
        // Manifest parts carry no listed time in the catalog; none was written after the
        // run was last active, so that time bounds their locks.
        let parts_locked = locked_until(SystemTime::from(run.last_active));
        if plan.held_count == 0 {
            if let Some(until) = parts_locked {
                for key in &parts {
                    hold(
                        &mut plan,
                        key,
                        Held::Locked {
                            until: until.clone(),
                        },
                    );
                }
            } else {
                plan.whole = true;
                plan.remove.extend(parts.iter().map(|k| Object {
                    key: k.clone(),
                    bytes: 0,
                }));
            }
        }
        out.push(plan);
    }
    let unlisted_segments = segments
        .keys()
        .filter(|k| !listed_anywhere.contains(*k))
        .count();
    Plan {
        backup_id: catalog.backup_id.clone(),
        policy: policy.describe(),
        runs: out,
        unlisted_segments,
    }
}

//! What validate and the catalog believe about a signed backup, attacked as someone with write
//! access to the bucket but without the signing key would: planted segments and gaps, forged
//! and re-signed manifests, deleted runs, parts and segments, replaced content. The backups
//! are written by hand into a real file-system store, with the same signing and naming code
//! the backup engine uses; the CLI tests cover backups made from a real broker.

use std::collections::BTreeMap;

use backup_core::catalog::{Authentication, Catalog, ProblemKind, Severity, Trust};
use backup_core::storage::{FilesystemConfig, Storage, StorageConfig};
use backup_core::validate::{ValidateOptions, ValidationReport, validate};
use backup_format::manifest::{
    BackupDescriptor, Gap, GapRecord, GroupOffset, GroupOffsets, GroupSnapshot, MANIFEST_FORMAT,
    ManifestLink, PartitionEnd, RunManifest, RunMode, RunStatus, RunSummary, SegmentEntry,
    SourceCluster, TopicSnapshot,
};
use backup_format::segment::object_sha256;
use backup_format::signing::{SigningKey, VerifyingKeys};
use backup_format::{SegmentHeader, SegmentWriter, WriterOptions};
use bytes::Bytes;
use kafka_records::{EncodeOptions, Record, encode_batch};

const TID: &str = "0f5b3d2e-8c1a-4e6f-9a7b-123456789abc";
const RUNS: [&str; 3] = [
    "20261123T183000Z-00000001",
    "20261124T183000Z-00000002",
    "20261125T183000Z-00000003",
];

struct Fx {
    dir: tempfile::TempDir,
    storage: Storage,
    id: String,
    key: SigningKey,
}

fn batch(base: i64, n: i64) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            offset: base + i,
            timestamp: 1_700_000_000_000 + base + i,
            key: Some(Bytes::from(format!("k{}", base + i))),
            value: Some(Bytes::from(format!("value {}", base + i))),
            headers: Vec::new(),
        })
        .collect();
    encode_batch(&records, &EncodeOptions::default())
        .unwrap()
        .freeze()
}

impl Fx {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&StorageConfig::Filesystem(FilesystemConfig {
            path: dir.path().join("store"),
        }))
        .unwrap();
        Self {
            dir,
            storage,
            id: "signed".into(),
            key: SigningKey::generate().unwrap().0,
        }
    }

    fn trust(&self) -> Trust {
        Trust::with_keys(VerifyingKeys::new(vec![self.key.verifying_key().clone()]))
    }

    fn path(&self, key: &str) -> std::path::PathBuf {
        self.dir.path().join("store").join(key)
    }

    async fn put(&self, key: &str, bytes: impl Into<Bytes>) {
        self.storage.put_new(key, bytes.into()).await.unwrap();
    }

    /// A segment of partition `p` covering `[start, start + n)`, signed with `key` (or
    /// unsigned).
    async fn segment(&self, p: i32, start: i64, n: i64, key: Option<&SigningKey>) -> SegmentEntry {
        let mut w = SegmentWriter::new(
            SegmentHeader {
                format: 1,
                backup_id: self.id.clone(),
                run_id: RUNS[0].into(),
                cluster_id: None,
                topic: "orders".into(),
                topic_id: TID.into(),
                partition: p,
                start_offset: start,
                compression: backup_format::segment::Compression::None,
                compression_level: None,
                created_at: "2026-11-23T18:30:00.000Z".into(),
                encryption: None,
                aborted_transactions: Vec::new(),
            },
            WriterOptions::default(),
        )
        .unwrap();
        w.push_batch(&batch(start, n)).unwrap();
        let done = w.finish().unwrap();
        let name = match key {
            Some(k) => done.segment_key().sign(k).unwrap().to_key().unwrap(),
            None => done.key(),
        };
        self.put(&name, done.bytes.clone()).await;
        SegmentEntry::from_finished(&done, name)
    }

    #[allow(clippy::too_many_arguments)]
    async fn manifest(
        &self,
        run: &str,
        part: u32,
        final_part: bool,
        segments: Vec<SegmentEntry>,
        previous: Option<ManifestLink>,
        end_offsets: Vec<PartitionEnd>,
        key: Option<&SigningKey>,
        captured_at: &str,
    ) -> ManifestLink {
        let topics = vec![TopicSnapshot {
            name: "orders".into(),
            topic_id: TID.into(),
            is_internal: false,
            partitions: 2,
            replication_factor: 1,
            configs: BTreeMap::from([("retention.ms".to_owned(), "604800000".to_owned())]),
        }];
        let m = RunManifest {
            format: MANIFEST_FORMAT,
            backup_id: self.id.clone(),
            run_id: run.into(),
            part,
            final_part,
            tool_version: "0.1.0".into(),
            mode: RunMode::Snapshot,
            status: RunStatus::Complete,
            started_at: "2026-11-23T18:30:00.000Z".into(),
            written_at: "2026-11-23T18:31:00.000Z".into(),
            finished_at: Some("2026-11-23T18:31:00.000Z".into()),
            source: SourceCluster {
                cluster_id: None,
                bootstrap_servers: vec!["k:9092".into()],
            },
            summary: RunSummary::tally(&topics, &segments, 1000),
            topics,
            segments,
            gaps: Vec::new(),
            consumer_groups: Some(GroupSnapshot {
                captured_at: captured_at.into(),
                groups: vec![GroupOffsets {
                    group_id: format!("g-{run}"),
                    state: "Empty".into(),
                    offsets: vec![GroupOffset {
                        topic: "orders".into(),
                        partition: 0,
                        offset: 1,
                        leader_epoch: None,
                        metadata: None,
                    }],
                }],
            }),
            previous,
            end_offsets,
            signing_key_id: key.map(|k| k.verifying_key().key_id()),
            encryption: None,
            sealed: None,
        };
        let body = m.to_json().unwrap();
        let name = match key {
            Some(k) => m.manifest_key().sign(&body, k).unwrap().to_key().unwrap(),
            None => m.key().unwrap(),
        };
        self.put(&name, body.clone()).await;
        ManifestLink {
            key: name,
            sha256: object_sha256(&body),
        }
    }

    fn end(&self, p: i32, end_offset: i64) -> PartitionEnd {
        PartitionEnd {
            topic: "orders".into(),
            topic_id: TID.into(),
            partition: p,
            end_offset,
            log_start_offset: None,
        }
    }

    /// Three signed runs: run 1 backs up 0..10 of partitions 0 and 1, run 2 (two parts)
    /// 10..30 of partition 0, run 3 30..40 of partition 0. Returns the links of every part.
    async fn three_runs(&self) -> Vec<(ManifestLink, Vec<SegmentEntry>)> {
        let k = Some(&self.key);
        self.put(
            &format!("{}/backup.json", self.id),
            self.descriptor("cluster-1")
                .to_signed_json(&self.key)
                .unwrap(),
        )
        .await;
        let s0 = self.segment(0, 0, 10, k).await;
        let s1 = self.segment(1, 0, 10, k).await;
        let r1 = self
            .manifest(
                RUNS[0],
                0,
                true,
                vec![s0.clone(), s1.clone()],
                None,
                vec![self.end(0, 10), self.end(1, 10)],
                k,
                "2026-11-23T18:31:00.000Z",
            )
            .await;
        let s2 = self.segment(0, 10, 10, k).await;
        let r2a = self
            .manifest(
                RUNS[1],
                0,
                false,
                vec![s2.clone()],
                Some(r1.clone()),
                Vec::new(),
                k,
                "2026-11-24T18:31:00.000Z",
            )
            .await;
        let s3 = self.segment(0, 20, 10, k).await;
        let r2b = self
            .manifest(
                RUNS[1],
                1,
                true,
                vec![s3.clone()],
                Some(r2a.clone()),
                vec![self.end(0, 30), self.end(1, 10)],
                k,
                "2026-11-24T18:32:00.000Z",
            )
            .await;
        let s4 = self.segment(0, 30, 10, k).await;
        let r3 = self
            .manifest(
                RUNS[2],
                0,
                true,
                vec![s4.clone()],
                Some(r2b.clone()),
                vec![self.end(0, 40), self.end(1, 10)],
                k,
                "2026-11-25T18:31:00.000Z",
            )
            .await;
        vec![
            (r1, vec![s0, s1]),
            (r2a, vec![s2]),
            (r2b, vec![s3]),
            (r3, vec![s4]),
        ]
    }

    fn descriptor(&self, cluster: &str) -> BackupDescriptor {
        BackupDescriptor {
            format: MANIFEST_FORMAT,
            backup_id: self.id.clone(),
            created_at: "2026-11-23T18:30:00.000Z".into(),
            source_cluster_id: Some(cluster.into()),
            tool_version: "0.1.0".into(),
        }
    }

    async fn validate(&self, trust: Trust) -> ValidationReport {
        validate(
            &self.storage,
            &self.id,
            ValidateOptions {
                trust,
                ..ValidateOptions::default()
            },
        )
        .await
        .unwrap()
    }

    fn remove(&self, key: &str) {
        std::fs::remove_file(self.path(key)).unwrap();
    }
}

fn kinds(r: &ValidationReport) -> Vec<(ProblemKind, Severity)> {
    r.problems.iter().map(|p| (p.kind, p.severity)).collect()
}

fn has(r: &ValidationReport, kind: ProblemKind, object: &str) -> bool {
    r.problems
        .iter()
        .any(|p| p.kind == kind && p.object.as_deref() == Some(object))
}

#[tokio::test]
async fn an_intact_signed_backup_verifies_and_its_chain_is_whole() {
    let fx = Fx::new();
    fx.three_runs().await;
    let r = fx.validate(fx.trust()).await;
    assert!(r.ok, "{:?}", r.problems);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.segments, 5);
    assert_eq!(
        r.authentication,
        Authentication::Verified {
            key_ids: vec![fx.key.verifying_key().key_id()]
        }
    );
    // Without a verify key the same backup is reported as not checked.
    let r = fx.validate(Trust::default()).await;
    assert!(r.ok);
    assert_eq!(
        r.authentication,
        Authentication::NotChecked { signed: true }
    );
    assert_eq!(kinds(&r), [(ProblemKind::Unverified, Severity::Warning)]);
    // With another key, nothing is authentic.
    let other = SigningKey::generate().unwrap().0;
    let r = fx
        .validate(Trust::with_keys(VerifyingKeys::new(vec![
            other.verifying_key().clone(),
        ])))
        .await;
    assert!(!r.ok);
    assert_eq!(r.segments, 0, "nothing unauthenticated is read");
    assert!(
        r.problems
            .iter()
            .all(|p| p.kind == ProblemKind::Unauthenticated),
        "{:?}",
        r.problems
    );
}

#[tokio::test]
async fn planted_segments_are_not_authentic_and_stay_out_of_the_catalog() {
    let fx = Fx::new();
    fx.three_runs().await;
    // One "just past the end" of partition 0, one for a new partition, neither signed; one
    // signed with another key.
    let past_end = fx.segment(0, 40, 5, None).await;
    let new_partition = fx.segment(7, 0, 5, None).await;
    let other = SigningKey::generate().unwrap().0;
    let other_key = fx.segment(1, 10, 5, Some(&other)).await;
    // One over offsets the backup holds, and one far beyond the end.
    let overlapping = fx.segment(0, 5, 3, None).await;
    let far = fx.segment(1, 1_000, 5, None).await;
    let r = fx.validate(fx.trust()).await;
    assert!(!r.ok);
    // Each is reported for what it is, and nothing else: no hole or overlap appears because
    // of them.
    assert!(
        r.problems
            .iter()
            .all(|p| p.kind == ProblemKind::Unauthenticated),
        "{:?}",
        r.problems
    );
    for s in [&past_end, &new_partition, &other_key, &overlapping, &far] {
        assert!(
            has(&r, ProblemKind::Unauthenticated, &s.key),
            "{}: {:?}",
            s.key,
            r.problems
        );
    }
    let catalog = Catalog::load(&fx.storage, &fx.id, &fx.trust())
        .await
        .unwrap();
    let lineage = &catalog.topics["orders"].lineages[TID];
    assert!(!lineage.partitions.contains_key(&7));
    assert_eq!(lineage.partitions[&0].offset_range(), Some((0, 40)));
    assert_eq!(catalog.unauthenticated.len(), 5);
}

#[tokio::test]
async fn a_killed_runs_segments_are_authentic_by_their_signed_names() {
    let fx = Fx::new();
    fx.three_runs().await;
    // A fourth run wrote a segment and was killed before its manifest.
    let s = fx.segment(0, 40, 5, Some(&fx.key)).await;
    let r = fx.validate(fx.trust()).await;
    assert!(r.ok, "{:?}", r.problems);
    assert_eq!(r.segments, 6);
    let catalog = Catalog::load(&fx.storage, &fx.id, &fx.trust())
        .await
        .unwrap();
    assert!(catalog.unauthenticated.is_empty());
    assert_eq!(
        catalog.topics["orders"].lineages[TID].partitions[&0].offset_range(),
        Some((0, 45))
    );
    let _ = s;
}

#[tokio::test]
async fn forged_and_resigned_manifests_are_ignored() {
    let fx = Fx::new();
    let runs = fx.three_runs().await;
    // A forged manifest for a later run: other configs, a later snapshot, no signature.
    let forged = fx
        .manifest(
            "20261130T000000Z-ffffffff",
            0,
            true,
            vec![],
            Some(runs[3].0.clone()),
            vec![],
            None,
            "2099-01-01T00:00:00.000Z",
        )
        .await;
    // And one signed by another key.
    let other = SigningKey::generate().unwrap().0;
    let resigned = fx
        .manifest(
            "20261130T000000Z-eeeeeeee",
            0,
            true,
            vec![],
            Some(runs[3].0.clone()),
            vec![],
            Some(&other),
            "2099-01-01T00:00:00.000Z",
        )
        .await;
    let r = fx.validate(fx.trust()).await;
    assert!(
        has(&r, ProblemKind::Unauthenticated, &forged.key),
        "{:?}",
        r.problems
    );
    assert!(
        has(&r, ProblemKind::Unauthenticated, &resigned.key),
        "{:?}",
        r.problems
    );
    let catalog = Catalog::load(&fx.storage, &fx.id, &fx.trust())
        .await
        .unwrap();
    assert_eq!(catalog.manifests.len(), 4);
    let (run, snapshot) = catalog.latest_group_snapshot().unwrap();
    assert_eq!(run, RUNS[2]);
    assert_eq!(snapshot.groups[0].group_id, format!("g-{}", RUNS[2]));
}

#[tokio::test]
async fn a_deleted_run_in_the_middle_breaks_the_chain() {
    let fx = Fx::new();
    let runs = fx.three_runs().await;
    // Run 2 gone: both parts and their segments.
    for (link, segments) in &runs[1..3] {
        fx.remove(&link.key);
        for s in segments {
            fx.remove(&s.key);
        }
    }
    let r = fx.validate(fx.trust()).await;
    assert!(!r.ok);
    assert!(
        has(&r, ProblemKind::ChainBroken, &runs[3].0.key),
        "{:?}",
        r.problems
    );
    // Run 1 ends at a non-final part? No: it is final; nothing else is blamed on it.
    assert!(!has(&r, ProblemKind::ChainBroken, &runs[0].0.key));
}

#[tokio::test]
async fn a_deleted_part_in_the_middle_of_a_run_breaks_the_chain() {
    let fx = Fx::new();
    let runs = fx.three_runs().await;
    fx.remove(&runs[1].0.key);
    let r = fx.validate(fx.trust()).await;
    assert!(!r.ok);
    assert!(
        has(&r, ProblemKind::ChainBroken, &runs[2].0.key),
        "{:?}",
        r.problems
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.kind == ProblemKind::MissingManifestPart),
        "{:?}",
        r.problems
    );
}

#[tokio::test]
async fn segments_deleted_at_the_end_are_caught_by_the_end_offsets() {
    let fx = Fx::new();
    let runs = fx.three_runs().await;
    // The newest segment of partition 0 and the newest run's manifest are gone: the chain
    // is shorter but whole, and run 2's end offsets still hold. Deleting only the segment,
    // the run's own manifest names what is missing.
    fx.remove(&runs[3].1[0].key);
    let r = fx.validate(fx.trust()).await;
    assert!(!r.ok);
    assert!(
        r.problems
            .iter()
            .any(|p| p.kind == ProblemKind::CoverageShort),
        "{:?}",
        r.problems
    );
    // Deleting the whole newest run is a rollback: only an anchor catches it.
    fx.remove(&runs[3].0.key);
    let r = fx.validate(fx.trust()).await;
    assert!(r.ok, "{:?}", r.problems);
    let mut anchored = fx.trust();
    anchored.expected_runs = vec![RUNS[2].into()];
    let r = fx.validate(anchored).await;
    assert!(!r.ok);
    assert_eq!(
        kinds(&r),
        [(ProblemKind::MissingRun, Severity::Error)],
        "{:?}",
        r.problems
    );
}

#[tokio::test]
async fn a_forged_gap_cannot_hide_deleted_data() {
    let fx = Fx::new();
    let runs = fx.three_runs().await;
    // Delete run 2's first segment and plant an unsigned gap record over its range.
    fx.remove(&runs[1].1[0].key);
    let gap = Gap {
        topic: "orders".into(),
        topic_id: TID.into(),
        partition: 0,
        from: 10,
        to: 20,
        reason: "retention".into(),
        detected_at: "2026-11-24T00:00:00.000Z".into(),
    };
    let record = GapRecord {
        format: MANIFEST_FORMAT,
        backup_id: fx.id.clone(),
        run_id: RUNS[1].into(),
        gap: gap.clone(),
        encryption: None,
        sealed: None,
    };
    let gap_key = gap.key(&fx.id).unwrap();
    fx.put(&gap_key, record.to_json().unwrap()).await;
    let r = fx.validate(fx.trust()).await;
    assert!(!r.ok);
    assert!(
        has(&r, ProblemKind::Unauthenticated, &gap_key),
        "{:?}",
        r.problems
    );
    assert!(
        has(&r, ProblemKind::MissingSegment, &runs[1].1[0].key),
        "{:?}",
        r.problems
    );
    assert!(
        r.problems.iter().any(|p| p.kind == ProblemKind::Hole),
        "{:?}",
        r.problems
    );
}

#[tokio::test]
async fn replaced_content_under_a_signed_name_fails_its_hash() {
    let fx = Fx::new();
    let runs = fx.three_runs().await;
    // A segment and a manifest overwritten in place (someone with write access and no
    // object lock): the signed names still carry the original digests.
    let seg = &runs[0].1[0];
    std::fs::write(fx.path(&seg.key), b"not the segment").unwrap();
    let manifest = &runs[2].0;
    std::fs::write(fx.path(&manifest.key), b"{\"format\":2}").unwrap();
    let r = fx.validate(fx.trust()).await;
    assert!(!r.ok);
    assert!(
        has(&r, ProblemKind::HashMismatch, &seg.key),
        "{:?}",
        r.problems
    );
    assert!(
        has(&r, ProblemKind::HashMismatch, &manifest.key),
        "{:?}",
        r.problems
    );
}

#[tokio::test]
async fn a_replaced_descriptor_is_not_believed() {
    let fx = Fx::new();
    fx.three_runs().await;
    let key = format!("{}/backup.json", fx.id);
    // Overwritten (no object lock) with an unsigned one naming another cluster.
    std::fs::write(
        fx.path(&key),
        fx.descriptor("evil-cluster").to_json().unwrap(),
    )
    .unwrap();
    let r = fx.validate(fx.trust()).await;
    assert!(
        has(&r, ProblemKind::Unauthenticated, &key),
        "{:?}",
        r.problems
    );
    let catalog = Catalog::load(&fx.storage, &fx.id, &fx.trust())
        .await
        .unwrap();
    assert!(catalog.descriptor.is_none());
}

#[tokio::test]
async fn a_signed_and_sealed_gap_record_explains_its_hole() {
    let fx = Fx::new();
    let runs = fx.three_runs().await;
    // Run 2's first segment never existed: retention deleted 10..20 before it was copied, and
    // two runs recorded that gap (signed names differ, so both are stored).
    fx.remove(&runs[1].1[0].key);
    let key = backup_format::crypto::RunKey {
        data_key: backup_format::crypto::DataKey::generate().unwrap(),
        wrapped: backup_format::crypto::WrappedKey {
            provider: backup_format::crypto::ProviderKind::Local,
            key_ids: vec!["k".into()],
            blob: vec![1; 61],
        },
    };
    for (run, detected) in [
        (RUNS[1], "2026-11-24T00:00:00Z"),
        (RUNS[2], "2026-11-25T00:00:00Z"),
    ] {
        let gap = Gap {
            topic: "orders".into(),
            topic_id: TID.into(),
            partition: 0,
            from: 10,
            to: 20,
            reason: "retention".into(),
            detected_at: detected.into(),
        };
        let mut record = GapRecord {
            format: MANIFEST_FORMAT,
            backup_id: fx.id.clone(),
            run_id: run.into(),
            gap: gap.clone(),
            encryption: None,
            sealed: None,
        };
        record.seal(&key).unwrap();
        let body = record.to_json().unwrap();
        let name = gap
            .gap_key(&fx.id)
            .sign(&body, &fx.key)
            .unwrap()
            .to_key()
            .unwrap();
        fx.put(&name, body).await;
    }
    let r = fx.validate(fx.trust()).await;
    // The run's own manifest still lists the deleted segment: that is the only error.
    assert_eq!(
        kinds(&r),
        [(ProblemKind::MissingSegment, Severity::Error)],
        "{:?}",
        r.problems
    );
    assert_eq!(r.gap_records, 1, "the same gap twice is one gap");
}

/// Retention planning over hand-written backups (the CLI tests cover backups from a broker):
/// what no kept run views may go; what is newer than every kept view, what a kept run whose
/// final part names no end offsets needs, and a run that may still be running stay.
mod retention {
    use std::time::{Duration, SystemTime};

    use backup_core::prune::plan::{Held, plan};
    use backup_core::prune::{Plan, Policy};

    use super::*;

    const KEEP_LAST_1: Policy = Policy {
        keep_last: Some(1),
        max_age: None,
    };

    /// Long after every run: nothing is recent.
    fn later() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)
    }

    async fn planned(fx: &Fx, now: SystemTime) -> Plan {
        let catalog = Catalog::load(&fx.storage, &fx.id, &fx.trust())
            .await
            .unwrap();
        plan(&catalog, &KEEP_LAST_1, now, None)
    }

    fn run<'a>(p: &'a Plan, id: &str) -> &'a backup_core::prune::plan::RunPlan {
        p.runs.iter().find(|r| r.run_id == id).unwrap()
    }

    #[tokio::test]
    async fn offsets_newer_than_every_kept_view_stay() {
        let fx = Fx::new();
        let k = Some(&fx.key);
        // Run 2 wrote 0..20 of partition 0; run 3 (kept) recorded that it saw only 0..10.
        let a = fx.segment(0, 0, 10, k).await;
        let b = fx.segment(0, 10, 10, k).await;
        fx.manifest(
            RUNS[1],
            0,
            true,
            vec![a, b],
            None,
            vec![fx.end(0, 20)],
            k,
            "2026-11-24T18:31:00.000Z",
        )
        .await;
        fx.manifest(
            RUNS[2],
            0,
            true,
            Vec::new(),
            None,
            vec![fx.end(0, 10)],
            k,
            "2026-11-25T18:31:00.000Z",
        )
        .await;
        let p = planned(&fx, later()).await;
        let r2 = run(&p, RUNS[1]);
        assert!(r2.kept_by.is_none());
        assert!(!r2.whole);
        assert_eq!(r2.held_count, 2, "{r2:#?}");
        assert!(matches!(r2.held[0].1, Held::Needed { .. }), "{r2:#?}");
        assert!(
            r2.held
                .iter()
                .any(|(_, h)| matches!(h, Held::Newer { from: 10, .. })),
            "{r2:#?}"
        );
        assert!(r2.remove.is_empty(), "{r2:#?}");
    }

    #[tokio::test]
    async fn a_final_part_without_end_offsets_views_its_partitions_whole() {
        let fx = Fx::new();
        let k = Some(&fx.key);
        let a = fx.segment(1, 0, 10, k).await;
        fx.manifest(
            RUNS[1],
            0,
            true,
            vec![a],
            None,
            vec![fx.end(1, 10)],
            k,
            "2026-11-24T18:31:00.000Z",
        )
        .await;
        // Written before end offsets existed: it names partitions 0 and 1 in its topics only.
        fx.manifest(
            RUNS[2],
            0,
            true,
            Vec::new(),
            None,
            Vec::new(),
            k,
            "2026-11-25T18:31:00.000Z",
        )
        .await;
        let p = planned(&fx, later()).await;
        let r2 = run(&p, RUNS[1]);
        assert!(r2.remove.is_empty(), "{r2:#?}");
        assert!(
            matches!(r2.held[0].1, Held::Needed { partition: 1, .. }),
            "{r2:#?}"
        );
    }

    #[tokio::test]
    async fn a_run_that_may_still_be_running_stays_and_an_old_one_goes() {
        let fx = Fx::new();
        let k = Some(&fx.key);
        // Run 1: a part that is not final, of a topic no later run follows.
        let a = fx.segment(1, 0, 10, k).await;
        fx.manifest(
            RUNS[0],
            0,
            false,
            vec![a],
            None,
            Vec::new(),
            k,
            "2026-11-23T18:31:00.000Z",
        )
        .await;
        fx.manifest(
            RUNS[2],
            0,
            true,
            Vec::new(),
            None,
            vec![fx.end(0, 0)],
            k,
            "2026-11-25T18:31:00.000Z",
        )
        .await;
        // An hour after its last part (2026-11-23T18:31Z) it may still be running.
        let soon = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_458_660 + 3_600);
        let p = planned(&fx, soon).await;
        let r1 = run(&p, RUNS[0]);
        assert!(
            r1.kept_by
                .as_deref()
                .is_some_and(|w| w.contains("may still be running")),
            "{r1:#?}"
        );
        // Long after, it is an abandoned run like any other.
        let p = planned(&fx, later()).await;
        assert!(run(&p, RUNS[0]).kept_by.is_none());
    }
}

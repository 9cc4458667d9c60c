//! The catalog and `validate` on backups written by hand into a real file-system store: the
//! shapes a broker cannot easily be made to produce (retention gaps, transactions across
//! segments, headers that lie about aborted transactions, batches whose records do not
//! decode, lineages of a re-created topic, missing manifest parts). The CLI tests cover
//! backups made by the engine from a real broker.

use backup_core::catalog::describe::describe;
use backup_core::catalog::{Catalog, CatalogError, ProblemKind, Severity, Trust, list_backups};
use backup_core::storage::{FilesystemConfig, Storage, StorageConfig};
use backup_core::validate::{ValidateOptions, ValidationReport, validate};
use backup_format::manifest::{
    BackupDescriptor, Gap, GapRecord, GroupOffset, GroupOffsets, GroupSnapshot, MANIFEST_FORMAT,
    RunManifest, RunMode, RunStatus, RunSummary, SegmentEntry, SourceCluster, TopicSnapshot,
};
use backup_format::segment::AbortedTransaction;
use backup_format::{SegmentHeader, SegmentWriter, WriterOptions};
use bytes::Bytes;
use kafka_records::{ControlKind, ControlMarker, EncodeOptions, Record, encode_batch};

const T1: &str = "0f5b3d2e-8c1a-4e6f-9a7b-123456789abc";
const T2: &str = "1f5b3d2e-8c1a-4e6f-9a7b-123456789abc";
const RUN1: &str = "20261123T183000Z-00000001";
const RUN2: &str = "20261124T183000Z-00000002";

struct Fx {
    _dir: tempfile::TempDir,
    storage: Storage,
    id: String,
}

impl Fx {
    fn new(id: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&StorageConfig::Filesystem(FilesystemConfig {
            path: dir.path().join("store"),
        }))
        .unwrap();
        Self {
            _dir: dir,
            storage,
            id: id.to_owned(),
        }
    }

    fn path(&self, key: &str) -> std::path::PathBuf {
        self._dir.path().join("store").join(key)
    }

    async fn put(&self, key: &str, bytes: impl Into<Bytes>) {
        self.storage.put_new(key, bytes.into()).await.unwrap();
    }

    async fn descriptor(&self) {
        let d = BackupDescriptor {
            format: MANIFEST_FORMAT,
            backup_id: self.id.clone(),
            created_at: "2026-11-23T18:30:00.000Z".into(),
            source_cluster_id: Some("cluster-1".into()),
            tool_version: "0.1.0".into(),
        };
        self.put(&format!("{}/backup.json", self.id), d.to_json().unwrap())
            .await;
    }

    /// Writes a segment of `batches` and returns its manifest entry.
    async fn segment(
        &self,
        topic_id: &str,
        partition: i32,
        start: i64,
        batches: &[Bytes],
        aborted: &[AbortedTransaction],
    ) -> SegmentEntry {
        let mut w = SegmentWriter::new(
            header(&self.id, topic_id, partition, start),
            WriterOptions::default(),
        )
        .unwrap();
        for b in batches {
            w.push_batch(b).unwrap();
        }
        w.add_aborted_transactions(aborted.iter().copied()).unwrap();
        let done = w.finish().unwrap();
        let key = done.key();
        self.put(&key, done.bytes.clone()).await;
        SegmentEntry::from_finished(&done, key)
    }

    async fn gap(&self, topic_id: &str, partition: i32, from: i64, to: i64) -> Gap {
        let gap = Gap {
            topic: "orders".into(),
            topic_id: topic_id.into(),
            partition,
            from,
            to,
            reason: "retention".into(),
            detected_at: "2026-11-24T18:30:00.000Z".into(),
        };
        let record = GapRecord {
            format: MANIFEST_FORMAT,
            backup_id: self.id.clone(),
            run_id: RUN2.into(),
            gap: gap.clone(),
            encryption: None,
            sealed: None,
        };
        self.put(&gap.key(&self.id).unwrap(), record.to_json().unwrap())
            .await;
        gap
    }

    async fn manifest(
        &self,
        run: &str,
        part: u32,
        segments: Vec<SegmentEntry>,
        gaps: Vec<Gap>,
        topic_id: &str,
        captured_at: &str,
    ) -> String {
        let topics = vec![TopicSnapshot {
            name: "orders".into(),
            topic_id: topic_id.into(),
            is_internal: false,
            partitions: 2,
            replication_factor: 1,
            configs: [("retention.ms".to_owned(), "1000".to_owned())].into(),
        }];
        let m = RunManifest {
            format: MANIFEST_FORMAT,
            backup_id: self.id.clone(),
            run_id: run.into(),
            part,
            final_part: true,
            tool_version: "0.1.0".into(),
            mode: RunMode::Snapshot,
            status: RunStatus::Complete,
            started_at: "2026-11-23T18:30:00.000Z".into(),
            written_at: "2026-11-23T18:31:00.000Z".into(),
            finished_at: Some("2026-11-23T18:31:00.000Z".into()),
            source: SourceCluster {
                cluster_id: Some("cluster-1".into()),
                bootstrap_servers: vec!["k:9092".into()],
            },
            summary: RunSummary::tally(&topics, &segments, 1000),
            topics,
            segments,
            gaps,
            consumer_groups: Some(GroupSnapshot {
                captured_at: captured_at.into(),
                groups: vec![GroupOffsets {
                    group_id: format!("g-{run}"),
                    state: "Stable".into(),
                    offsets: vec![GroupOffset {
                        topic: "orders".into(),
                        partition: 0,
                        offset: 5,
                        leader_epoch: None,
                        metadata: None,
                    }],
                }],
            }),
            previous: None,
            end_offsets: Vec::new(),
            signing_key_id: None,
            encryption: None,
            sealed: None,
        };
        let key = m.key().unwrap();
        self.put(&key, m.to_json().unwrap()).await;
        key
    }

    async fn validate(&self, deep: bool) -> ValidationReport {
        let options = ValidateOptions {
            deep,
            ..ValidateOptions::default()
        };
        validate(&self.storage, &self.id, options).await.unwrap()
    }
}

fn header(backup_id: &str, topic_id: &str, partition: i32, start: i64) -> SegmentHeader {
    SegmentHeader {
        format: 1,
        backup_id: backup_id.into(),
        run_id: RUN1.into(),
        cluster_id: None,
        topic: "orders".into(),
        topic_id: topic_id.into(),
        partition,
        start_offset: start,
        compression: backup_format::segment::Compression::None,
        compression_level: None,
        created_at: "2026-11-23T18:30:00.000Z".into(),
        encryption: None,
        aborted_transactions: Vec::new(),
    }
}

/// `n` records from `base`; transactional batches belong to `producer`.
fn batch(base: i64, n: i64, producer: i64, transactional: bool) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            offset: base + i,
            timestamp: 1_700_000_000_000 + base + i,
            key: Some(Bytes::from(format!("k{}", base + i))),
            value: Some(Bytes::from(format!("value {}", base + i))),
            headers: Vec::new(),
        })
        .collect();
    let opts = EncodeOptions {
        producer_id: producer,
        producer_epoch: if producer >= 0 { 0 } else { -1 },
        base_sequence: if producer >= 0 { 0 } else { -1 },
        transactional,
        ..EncodeOptions::default()
    };
    encode_batch(&records, &opts).unwrap().freeze()
}

fn marker(offset: i64, producer: i64, kind: ControlKind) -> Bytes {
    let m = ControlMarker {
        kind,
        producer_id: producer,
        producer_epoch: 0,
        offset,
        coordinator_epoch: 1,
        timestamp: 1_700_000_000_000 + offset,
    };
    kafka_records::encode_control_batch(&m, -1)
        .unwrap()
        .freeze()
}

fn kinds(problems: &[backup_core::catalog::Problem]) -> Vec<(ProblemKind, Option<i64>)> {
    problems.iter().map(|p| (p.kind, p.offset)).collect()
}

/// Partition 0: run 1 stores 0..10 and 10..20; retention deletes 20..30 before run 2, which
/// stores 30..40 and is killed before its manifest after writing 40..45 (an orphan).
/// Partition 1: one segment with a committed and an aborted transaction, markers included.
async fn healthy(fx: &Fx) {
    fx.descriptor().await;
    let a = fx.segment(T1, 0, 0, &[batch(0, 10, -1, false)], &[]).await;
    let b = fx
        .segment(
            T1,
            0,
            10,
            &[batch(10, 5, -1, false), batch(15, 5, -1, false)],
            &[],
        )
        .await;
    let txn = fx
        .segment(
            T1,
            1,
            0,
            &[
                batch(0, 3, 7, true),
                batch(3, 2, 8, true),
                marker(5, 7, ControlKind::Commit),
                marker(6, 8, ControlKind::Abort),
                batch(7, 1, -1, false),
            ],
            &[AbortedTransaction {
                first_offset: 3,
                producer_id: 8,
            }],
        )
        .await;
    fx.manifest(
        RUN1,
        0,
        vec![a, b, txn],
        vec![],
        T1,
        "2026-11-23T18:31:00.000Z",
    )
    .await;
    let gap = fx.gap(T1, 0, 20, 30).await;
    let c = fx
        .segment(T1, 0, 30, &[batch(30, 10, -1, false)], &[])
        .await;
    fx.manifest(RUN2, 0, vec![c], vec![gap], T1, "2026-11-24T18:31:00.000Z")
        .await;
    fx.segment(T1, 0, 40, &[batch(40, 5, -1, false)], &[]).await;
}

#[tokio::test]
async fn a_healthy_backup_validates_with_only_the_orphan_as_a_warning() {
    let fx = Fx::new("good");
    healthy(&fx).await;
    let report = fx.validate(true).await;
    assert!(report.ok, "{:#?}", report.problems);
    assert_eq!(
        kinds(&report.problems),
        [(ProblemKind::OrphanSegment, Some(40))]
    );
    assert_eq!(report.problems[0].severity, Severity::Warning);
    assert_eq!((report.errors, report.warnings), (0, 1));
    assert_eq!(report.segments, 5);
    assert_eq!(report.orphan_segments, 1);
    assert_eq!((report.manifests, report.runs), (2, 2));
    assert_eq!(report.gap_records, 1);
    // 10 + 10 + 10 + 5 data records, 6 in partition 1 plus its two marker records.
    assert_eq!(report.records, 43);
    assert_eq!(report.records_decoded, Some(43));
    assert_eq!(report.control_batches, 2);
    assert_eq!(report.transactions_committed, Some(1));
    assert_eq!(report.transactions_aborted, Some(1));
    assert_eq!(report.open_transactions, Some(0));

    let shallow = fx.validate(false).await;
    assert!(shallow.ok);
    assert_eq!(shallow.records, 43);
    assert_eq!(shallow.records_decoded, None);
}

#[tokio::test]
async fn the_catalog_and_describe_show_what_is_stored() {
    let fx = Fx::new("desc");
    healthy(&fx).await;
    let catalog = Catalog::load(&fx.storage, "desc", &Trust::default())
        .await
        .unwrap();
    assert_eq!(
        catalog.descriptor.as_ref().unwrap().created_at,
        "2026-11-23T18:30:00.000Z"
    );
    let runs: Vec<(&str, u32)> = catalog
        .manifests
        .iter()
        .map(|m| (m.manifest.run_id.as_str(), m.manifest.part))
        .collect();
    assert_eq!(runs, [(RUN1, 0), (RUN2, 0)]);
    let lineage = catalog.topics["orders"].latest_lineage().unwrap();
    assert_eq!(lineage.topic_id, T1);
    assert_eq!(lineage.last_seen_run.as_deref(), Some(RUN2));
    let p0 = &lineage.partitions[&0];
    let starts: Vec<i64> = p0.segments.iter().map(|s| s.parsed.start_offset).collect();
    // The segment no manifest lists is not authenticated: kept apart, out of the tree.
    assert_eq!(starts, [0, 10, 30]);
    assert_eq!(catalog.unauthenticated.len(), 1);
    assert_eq!(catalog.unauthenticated[0].parsed.start_offset, 40);
    assert_eq!(p0.gaps.len(), 1);
    let groups: Vec<&str> = catalog
        .group_snapshots()
        .iter()
        .map(|(run, _)| *run)
        .collect();
    assert_eq!(groups, [RUN1, RUN2]);
    assert_eq!(catalog.latest_group_snapshot().unwrap().0, RUN2);

    let d = describe(&fx.storage, &catalog, None).await.unwrap();
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["totals"]["records"], 38);
    assert_eq!(json["totals"]["segments"], 4);
    assert_eq!(json["totals"]["gaps"], 1);
    assert_eq!(
        json["unauthenticated_segments"][0],
        catalog.unauthenticated[0].key.as_str()
    );
    assert_eq!(json["authentication"]["status"], "not-checked");
    let p0 = &json["topics"][0]["lineages"][0]["partitions"][0];
    assert_eq!(p0["first_offset"], 0);
    assert_eq!(p0["last_offset"], 39);
    assert_eq!(p0["records"], 30);
    assert_eq!(p0["orphan_segments"], 0);
    assert_eq!(p0["min_timestamp"], 1_700_000_000_000i64);
    assert_eq!(p0["max_timestamp"], 1_700_000_000_039i64);
    assert_eq!(p0["gaps"][0]["from"], 20);
    assert_eq!(json["topics"][0]["lineages"][0]["latest"], true);
    assert_eq!(json["topics"][0]["lineages"][0]["partition_count"], 2);
    assert_eq!(json["runs"][1]["status"], "complete");
    assert_eq!(json["runs"][1]["segments"], 1);
    assert_eq!(
        json["group_snapshots"][1]["groups"][0]["group_id"],
        format!("g-{RUN2}")
    );
}

#[tokio::test]
async fn structural_problems_are_found_without_reading_segments() {
    let fx = Fx::new("holes");
    fx.descriptor().await;
    let a = fx.segment(T1, 0, 0, &[batch(0, 10, -1, false)], &[]).await;
    // A hole at 10..20 that no gap record explains, then an overlap at 25.
    let b = fx
        .segment(T1, 0, 20, &[batch(20, 10, -1, false)], &[])
        .await;
    let c = fx
        .segment(T1, 0, 25, &[batch(25, 10, -1, false)], &[])
        .await;
    let gone = fx.segment(T1, 1, 0, &[batch(0, 4, -1, false)], &[]).await;
    // Run 1 wrote parts 0 and 2; part 1 is gone. Run 2's manifest is damaged.
    fx.manifest(RUN1, 0, vec![a, b], vec![], T1, "2026-11-23T18:31:00.000Z")
        .await;
    fx.manifest(
        RUN1,
        2,
        vec![c, gone.clone()],
        vec![],
        T1,
        "2026-11-23T18:32:00.000Z",
    )
    .await;
    fx.put(
        &format!("holes/runs/{RUN2}/manifest-000000.json"),
        &b"{\"format\": 1, \"backup_id\": "[..],
    )
    .await;
    std::fs::remove_file(fx.path(&gone.key)).unwrap();

    let catalog = Catalog::load(&fx.storage, "holes", &Trust::default())
        .await
        .unwrap();
    let found: Vec<(ProblemKind, Option<String>)> = catalog
        .problems
        .iter()
        .map(|p| (p.kind, p.object.clone()))
        .collect();
    assert!(
        found.contains(&(ProblemKind::MissingSegment, Some(gone.key.clone()))),
        "{found:?}"
    );
    assert!(found.contains(&(
        ProblemKind::MissingManifestPart,
        Some(format!("holes/runs/{RUN1}/manifest-000001.json"))
    )));
    assert!(found.contains(&(
        ProblemKind::CorruptManifest,
        Some(format!("holes/runs/{RUN2}/manifest-000000.json"))
    )));
    let p0: Vec<(ProblemKind, Option<i64>)> = catalog
        .problems
        .iter()
        .filter(|p| p.partition == Some(0))
        .map(|p| (p.kind, p.offset))
        .collect();
    assert_eq!(
        p0,
        [
            (ProblemKind::Hole, Some(10)),
            (ProblemKind::Overlap, Some(25))
        ]
    );
    let report = fx.validate(false).await;
    assert!(!report.ok);
    assert_eq!(report.errors, 5, "{:#?}", report.problems);
}

#[tokio::test]
async fn content_problems_name_the_segment_and_the_offset() {
    let fx = Fx::new("bad");
    fx.descriptor().await;
    // A segment whose header says partition 1, stored with a correct hash under a key of
    // partition 0: copied from elsewhere.
    let mut w = SegmentWriter::new(header("bad", T1, 1, 0), WriterOptions::default()).unwrap();
    w.push_batch(&batch(0, 5, -1, false)).unwrap();
    let done = w.finish().unwrap();
    let key = done.key().replace("/00001/", "/00000/");
    fx.put(&key, done.bytes.clone()).await;
    // A manifest entry that disagrees with its segment's trailer.
    let mut e = fx.segment(T1, 0, 5, &[batch(5, 5, -1, false)], &[]).await;
    e.records = 6;
    // A batch with a valid CRC whose first record's length is negative.
    let mut broken = batch(10, 3, -1, false).to_vec();
    broken[61] = 0x01;
    let crc = kafka_records::batch::compute_crc(&broken);
    broken[17..21].copy_from_slice(&crc.to_be_bytes());
    let undecodable = fx
        .segment(
            T1,
            0,
            10,
            &[Bytes::from(broken), batch(13, 2, -1, false)],
            &[],
        )
        .await;
    // Transactions: the header lists producer 9's transaction as aborted, its marker commits;
    // producer 10's transaction starts here and ends in the next segment.
    let lying = fx
        .segment(
            T1,
            0,
            15,
            &[
                batch(15, 2, 9, true),
                marker(17, 9, ControlKind::Commit),
                batch(18, 2, 10, true),
            ],
            &[AbortedTransaction {
                first_offset: 15,
                producer_id: 9,
            }],
        )
        .await;
    let next = fx
        .segment(T1, 0, 20, &[marker(20, 10, ControlKind::Abort)], &[])
        .await;
    fx.manifest(
        RUN1,
        0,
        vec![e, undecodable, lying, next],
        vec![],
        T1,
        "2026-11-23T18:31:00.000Z",
    )
    .await;

    let report = fx.validate(true).await;
    for p in &report.problems {
        eprintln!("{p}");
    }
    let found: Vec<(ProblemKind, Option<i64>)> = kinds(&report.problems);
    assert!(
        found.contains(&(ProblemKind::IdentityMismatch, Some(0))),
        "{found:?}"
    );
    assert!(
        found.contains(&(ProblemKind::EntryMismatch, Some(5))),
        "{found:?}"
    );
    assert!(
        found.contains(&(ProblemKind::UndecodableRecords, Some(10))),
        "{found:?}"
    );
    assert!(
        found.contains(&(ProblemKind::TransactionInconsistent, Some(17))),
        "{found:?}"
    );
    let identity = report
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::IdentityMismatch)
        .unwrap();
    assert_eq!(identity.object.as_deref(), Some(key.as_str()));
    assert!(identity.message.contains("partition 1"), "{identity}");
    // Producer 10's transaction is decided by the marker in the next segment.
    assert_eq!(report.open_transactions, Some(0));
    assert_eq!(report.transactions_aborted, Some(1));
    assert!(!report.ok);
}

#[tokio::test]
async fn a_recreated_topic_has_two_lineages_and_the_newest_is_latest() {
    let fx = Fx::new("lineages");
    fx.descriptor().await;
    let old = fx.segment(T2, 0, 0, &[batch(0, 10, -1, false)], &[]).await;
    fx.manifest(RUN1, 0, vec![old], vec![], T2, "2026-11-23T18:31:00.000Z")
        .await;
    let new = fx.segment(T1, 0, 0, &[batch(0, 3, -1, false)], &[]).await;
    fx.manifest(RUN2, 0, vec![new], vec![], T1, "2026-11-24T18:31:00.000Z")
        .await;
    let catalog = Catalog::load(&fx.storage, "lineages", &Trust::default())
        .await
        .unwrap();
    let topic = &catalog.topics["orders"];
    assert_eq!(topic.lineages.len(), 2);
    assert_eq!(topic.latest_lineage().unwrap().topic_id, T1);
    assert!(catalog.problems.is_empty(), "{:?}", catalog.problems);
    assert!(fx.validate(true).await.ok);
}

#[tokio::test]
async fn missing_backups_and_listing_a_store() {
    let fx = Fx::new("one");
    healthy(&fx).await;
    let two = Fx {
        _dir: tempfile::tempdir().unwrap(),
        storage: fx.storage.clone(),
        id: "two".into(),
    };
    two.descriptor().await;
    two.segment(T1, 0, 0, &[batch(0, 1, -1, false)], &[]).await;
    fx.put("not-a-backup/file.txt", &b"x"[..]).await;

    let err = Catalog::load(&fx.storage, "three", &Trust::default())
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::NotFound { .. }));
    let text = err.to_string();
    assert!(text.contains("`three`"), "{text}");
    assert!(text.contains(&fx.storage.location("")), "{text}");
    assert!(text.contains("one, two"), "{text}");

    let list = list_backups(&fx.storage).await.unwrap();
    let ids: Vec<&str> = list.iter().map(|b| b.backup_id.as_str()).collect();
    assert_eq!(ids, ["one", "two"]);
    assert_eq!(list[0].runs, 2);
    assert_eq!(list[0].segments, 5);
    assert_eq!(list[1].runs, 0);
    assert_eq!(
        list[1].created_at.as_deref(),
        Some("2026-11-23T18:30:00.000Z")
    );
    assert!(list[0].stored_bytes > 0);
}

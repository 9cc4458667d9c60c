//! Run manifests, backup descriptors and gap records: round trips, versioning, bounds and
//! consistency checks.

mod common;

use std::collections::BTreeMap;

use backup_format::manifest::{
    BackupDescriptor, Gap, GapRecord, GroupOffset, GroupOffsets, GroupSnapshot, MAX_MANIFEST_LEN,
    ManifestError, RunManifest, RunMode, RunStatus, RunSummary, SegmentEntry, SourceCluster,
    TopicSnapshot, timestamp,
};
use backup_format::segment::Compression;
use common::*;

fn manifest() -> RunManifest {
    let (seg, _) = small_segment(Compression::Zstd);
    let entry = SegmentEntry::from_finished(&seg, seg.key());
    let topics = vec![TopicSnapshot {
        name: "orders".into(),
        topic_id: TOPIC_ID.into(),
        is_internal: false,
        partitions: 6,
        replication_factor: 3,
        configs: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
    }];
    let segments = vec![entry];
    RunManifest {
        format: 1,
        backup_id: "prod".into(),
        run_id: "20261123T183000Z-1a2b3c4d".into(),
        part: 0,
        final_part: true,
        tool_version: "0.1.0".into(),
        mode: RunMode::Snapshot,
        status: RunStatus::Complete,
        started_at: "2026-11-23T18:30:00.000Z".into(),
        written_at: "2026-11-23T18:31:00.000Z".into(),
        finished_at: Some("2026-11-23T18:31:00.000Z".into()),
        source: SourceCluster {
            cluster_id: Some("c1".into()),
            bootstrap_servers: vec!["b1:9092".into()],
        },
        summary: RunSummary::tally(&topics, &segments, 60_000),
        topics,
        segments,
        gaps: vec![Gap {
            topic: "orders".into(),
            topic_id: TOPIC_ID.into(),
            partition: 1,
            from: 0,
            to: 500,
            reason: "retention".into(),
            detected_at: "2026-11-23T18:30:01.000Z".into(),
        }],
        consumer_groups: Some(GroupSnapshot {
            captured_at: "2026-11-23T18:30:59.000Z".into(),
            groups: vec![GroupOffsets {
                group_id: "billing".into(),
                state: "Stable".into(),
                offsets: vec![GroupOffset {
                    topic: "orders".into(),
                    partition: 3,
                    offset: 120,
                    leader_epoch: Some(5),
                    metadata: None,
                }],
            }],
        }),
    }
}

#[test]
fn manifest_round_trip() {
    let m = manifest();
    assert_eq!(m.summary.segments, 1);
    assert_eq!(m.summary.records, 48);
    assert_eq!(m.summary.partitions, 6);
    let json = m.to_json().unwrap();
    assert_eq!(RunManifest::from_json(&json).unwrap(), m);
    assert_eq!(
        m.key().unwrap(),
        "prod/runs/20261123T183000Z-1a2b3c4d/manifest-000000.json"
    );
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["mode"], "snapshot");
    assert_eq!(v["status"], "complete");
    assert_eq!(v["segments"][0]["compression"], "zstd");
    assert_eq!(v["segments"][0]["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn newer_formats_get_a_clear_error() {
    let mut v: serde_json::Value = serde_json::from_slice(&manifest().to_json().unwrap()).unwrap();
    v["format"] = 2.into();
    let same_shape = serde_json::to_vec(&v).unwrap();
    let err = RunManifest::from_json(&same_shape).unwrap_err();
    assert!(matches!(
        err,
        ManifestError::UnsupportedFormat { found: 2, .. }
    ));
    assert!(err.to_string().contains("upgrade"), "{err}");
    // A format 2 that no longer has this build's fields still says "format 2".
    let other_shape = br#"{"format": 2, "parts": {"everything": "renamed"}}"#;
    assert!(matches!(
        RunManifest::from_json(other_shape),
        Err(ManifestError::UnsupportedFormat { found: 2, .. })
    ));
    let no_format = br#"{"backup_id": "x"}"#;
    assert!(matches!(
        RunManifest::from_json(no_format),
        Err(ManifestError::Json { .. })
    ));
}

#[test]
fn oversized_manifests_are_refused_before_parsing() {
    let big = vec![b' '; MAX_MANIFEST_LEN + 1];
    assert!(matches!(
        RunManifest::from_json(&big),
        Err(ManifestError::TooLarge { .. })
    ));
}

#[test]
fn inconsistent_manifests_are_refused() {
    let mut m = manifest();
    m.segments[0].start_offset += 1;
    assert!(matches!(m.to_json(), Err(ManifestError::Invalid { .. })));
    let json = serde_json::to_vec(&m).unwrap();
    assert!(matches!(
        RunManifest::from_json(&json),
        Err(ManifestError::Invalid { .. })
    ));

    let mut m = manifest();
    m.segments[0].sha256[0] ^= 1;
    assert!(m.to_json().is_err());
    let mut m = manifest();
    m.segments[0].key = format!("other/{}", m.segments[0].key);
    assert!(m.to_json().is_err());
    let mut m = manifest();
    m.backup_id = "other".into();
    assert!(m.to_json().is_err(), "segment keys of another backup");
    let mut m = manifest();
    m.gaps[0].to = 0;
    assert!(matches!(m.to_json(), Err(ManifestError::Name(_))));
    let mut m = manifest();
    m.topics[0].name = "a/b".into();
    assert!(matches!(m.to_json(), Err(ManifestError::Name(_))));
    let mut m = manifest();
    m.run_id = "..".into();
    assert!(m.to_json().is_err());

    let mut v: serde_json::Value = serde_json::from_slice(&manifest().to_json().unwrap()).unwrap();
    v["status"] = "exploded".into();
    assert!(matches!(
        RunManifest::from_json(&serde_json::to_vec(&v).unwrap()),
        Err(ManifestError::Json { .. })
    ));
    let mut v: serde_json::Value = serde_json::from_slice(&manifest().to_json().unwrap()).unwrap();
    v["segments"][0]["sha256"] = "ABC".into();
    assert!(matches!(
        RunManifest::from_json(&serde_json::to_vec(&v).unwrap()),
        Err(ManifestError::Json { .. })
    ));
}

#[test]
fn descriptor_and_gap_records() {
    let d = BackupDescriptor {
        format: 1,
        backup_id: "prod".into(),
        created_at: timestamp(time::macros::datetime!(2026-11-23 18:30:00.123 UTC)),
        source_cluster_id: None,
        tool_version: "0.1.0".into(),
    };
    assert_eq!(d.created_at, "2026-11-23T18:30:00.123Z");
    let json = d.to_json().unwrap();
    assert_eq!(BackupDescriptor::from_json(&json).unwrap(), d);
    let mut bad = d.clone();
    bad.backup_id = "a/b".into();
    assert!(bad.to_json().is_err());
    assert!(matches!(
        BackupDescriptor::from_json(br#"{"format":7}"#),
        Err(ManifestError::UnsupportedFormat { found: 7, .. })
    ));

    let g = GapRecord {
        format: 1,
        backup_id: "prod".into(),
        run_id: "r1".into(),
        gap: manifest().gaps.remove(0),
    };
    let json = g.to_json().unwrap();
    assert_eq!(GapRecord::from_json(&json).unwrap(), g);
    assert_eq!(
        g.gap.key("prod").unwrap(),
        format!(
            "prod/topics/orders/{TOPIC_ID}/00001/gaps/00000000000000000000-00000000000000000500.json"
        )
    );
}

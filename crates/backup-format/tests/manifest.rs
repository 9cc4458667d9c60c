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
        previous: None,
        end_offsets: Vec::new(),
        signing_key_id: None,
        encryption: None,
        sealed: None,
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
    // Format 1 (before encryption and signatures) is still read.
    v["format"] = 1.into();
    assert_eq!(
        RunManifest::from_json(&serde_json::to_vec(&v).unwrap())
            .unwrap()
            .format,
        1
    );
    v["format"] = 3.into();
    let same_shape = serde_json::to_vec(&v).unwrap();
    let err = RunManifest::from_json(&same_shape).unwrap_err();
    assert!(matches!(
        err,
        ManifestError::UnsupportedFormat { found: 3, .. }
    ));
    assert!(err.to_string().contains("upgrade"), "{err}");
    // A format 3 that no longer has this build's fields still says "format 3".
    let other_shape = br#"{"format": 3, "parts": {"everything": "renamed"}}"#;
    assert!(matches!(
        RunManifest::from_json(other_shape),
        Err(ManifestError::UnsupportedFormat { found: 3, .. })
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
        encryption: None,
        sealed: None,
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

fn run_key() -> backup_format::crypto::RunKey {
    backup_format::crypto::RunKey {
        data_key: backup_format::crypto::DataKey::generate().unwrap(),
        wrapped: backup_format::crypto::WrappedKey {
            provider: backup_format::crypto::ProviderKind::Local,
            key_ids: vec!["k1".into()],
            blob: vec![3; 60],
        },
    }
}

#[test]
fn sealed_fields_are_hidden_and_bound_to_their_part() {
    let key = run_key();
    let mut m = manifest();
    let clear = m.clone();
    m.seal(&key).unwrap();
    assert!(m.is_sealed());
    assert!(m.consumer_groups.is_none());
    assert!(m.topics.iter().all(|t| t.configs.is_empty()));
    let json = m.to_json().unwrap();
    let text = String::from_utf8_lossy(&json);
    for secret in ["cleanup.policy", "compact", "billing"] {
        assert!(!text.contains(secret), "{secret} in the clear: {text}");
    }
    // What a restore plans with stays readable.
    assert!(text.contains("\"orders\""));
    assert!(text.contains("\"records\":48"));

    let mut back = RunManifest::from_json(&json).unwrap();
    back.open(&key.data_key).unwrap();
    assert_eq!(back.topics, clear.topics);
    assert_eq!(back.consumer_groups, clear.consumer_groups);
    assert!(!back.is_sealed());
    // Opened, the part still says how the run is encrypted (describe and restore show it).
    assert_eq!(back.encryption, m.encryption);

    // Sealed fields moved into another part (another run, part, or backup) do not open, nor
    // with another key.
    let mut moved = RunManifest::from_json(&json).unwrap();
    moved.part = 1;
    assert!(moved.open(&key.data_key).is_err());
    let mut other_key = RunManifest::from_json(&json).unwrap();
    assert!(other_key.open(&run_key().data_key).is_err());
    // Sealed and clear at once is inconsistent.
    let mut both = RunManifest::from_json(&json).unwrap();
    both.consumer_groups = clear.consumer_groups.clone();
    assert!(both.to_json().is_err());
}

#[test]
fn chain_links_and_end_offsets_are_validated() {
    let mut m = manifest();
    m.previous = Some(backup_format::manifest::ManifestLink {
        key: "prod/runs/20261122T000000Z-00000000/manifest-000003.json".into(),
        sha256: [7; 32],
    });
    m.end_offsets = vec![backup_format::manifest::PartitionEnd {
        topic: "orders".into(),
        topic_id: TOPIC_ID.into(),
        partition: 3,
        end_offset: 148,
        log_start_offset: None,
    }];
    let back = RunManifest::from_json(&m.to_json().unwrap()).unwrap();
    assert_eq!(back, m);
    let mut other_backup = m.clone();
    other_backup.previous.as_mut().unwrap().key =
        "other/runs/20261122T000000Z-00000000/manifest-000003.json".into();
    assert!(other_backup.to_json().is_err());
    let mut negative = m.clone();
    negative.end_offsets[0].end_offset = -1;
    assert!(negative.to_json().is_err());
}

#[test]
fn signed_descriptors_verify_only_with_their_key() {
    use backup_format::manifest::DescriptorSignature;
    use backup_format::signing::{SigningKey, VerifyingKeys};
    let (key, _) = SigningKey::generate().unwrap();
    let keys = VerifyingKeys::new(vec![key.verifying_key().clone()]);
    let d = BackupDescriptor {
        format: 2,
        backup_id: "prod".into(),
        created_at: "2026-11-23T18:30:00.123Z".into(),
        source_cluster_id: Some("c1".into()),
        tool_version: "0.1.0".into(),
    };
    let signed = d.to_signed_json(&key).unwrap();
    let (back, sig) = BackupDescriptor::from_json_verified(&signed, &keys).unwrap();
    assert_eq!(back, d);
    assert_eq!(
        sig,
        DescriptorSignature::Verified(key.verifying_key().key_id())
    );
    let (_, sig) =
        BackupDescriptor::from_json_verified(&signed, &VerifyingKeys::default()).unwrap();
    assert!(matches!(sig, DescriptorSignature::NotVerified(_)));
    let (_, sig) = BackupDescriptor::from_json_verified(&d.to_json().unwrap(), &keys).unwrap();
    assert_eq!(sig, DescriptorSignature::Unsigned);
    // A forged payload (another cluster id) in the signed envelope fails verification.
    let mut env: serde_json::Value = serde_json::from_slice(&signed).unwrap();
    let forged = BackupDescriptor {
        source_cluster_id: Some("evil".into()),
        ..d.clone()
    };
    use base64::Engine as _;
    env["payload"] = base64::engine::general_purpose::STANDARD
        .encode(forged.to_json().unwrap())
        .into();
    let (got, sig) =
        BackupDescriptor::from_json_verified(&serde_json::to_vec(&env).unwrap(), &keys).unwrap();
    assert_eq!(got.source_cluster_id.as_deref(), Some("evil"));
    assert!(matches!(sig, DescriptorSignature::NotVerified(_)));
}

#[test]
fn sealed_gap_records_hide_their_details() {
    let key = run_key();
    let mut g = GapRecord {
        format: 2,
        backup_id: "prod".into(),
        run_id: "r1".into(),
        gap: manifest().gaps.remove(0),
        encryption: None,
        sealed: None,
    };
    let clear = g.clone();
    g.seal(&key).unwrap();
    let json = g.to_json().unwrap();
    assert!(!String::from_utf8_lossy(&json).contains("retention"));
    let mut back = GapRecord::from_json(&json).unwrap();
    back.open(&key.data_key).unwrap();
    assert_eq!(back.gap, clear.gap);
    let mut moved = GapRecord::from_json(&json).unwrap();
    moved.gap.to += 1;
    assert!(moved.open(&key.data_key).is_err());
}

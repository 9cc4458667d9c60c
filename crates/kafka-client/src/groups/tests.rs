//! Unit tests of request building and answer handling, at every supported version.
use super::*;
use bytes::BytesMut;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeGroupsResponse, ListGroupsResponse,
    describe_groups_response::DescribedGroupMember, list_groups_response::ListedGroup,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::versions::support_for;

/// Every version of `key` this client may negotiate.
fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let s = support_for(key).expect("a supported API");
    s.min..=s.max
}

/// Encodes and decodes `msg` at `version`, as it would cross the wire.
fn wire<T: Encodable + Decodable>(msg: &T, version: i16) -> T {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("encoding at v{version}: {e}"));
    T::decode(&mut buf.freeze(), version).unwrap_or_else(|e| panic!("decoding at v{version}: {e}"))
}

fn s(v: &str) -> StrBytes {
    str_bytes(v)
}

#[test]
fn find_coordinator_at_every_version() {
    for v in versions(ApiKey::FindCoordinator) {
        let request = wire(&find_coordinator_request("orders", v), v);
        assert_eq!(request.key_type, KEY_TYPE_GROUP);
        if v >= 4 {
            assert_eq!(request.coordinator_keys, [s("orders")], "v{v}");
        } else {
            assert_eq!(request.key.as_str(), "orders", "v{v}");
        }

        let (ok, failed) = if v >= 4 {
            let c = Coordinator::default()
                .with_key(s("orders"))
                .with_host(s("b3"))
                .with_port(9092);
            (
                FindCoordinatorResponse::default()
                    .with_coordinators(vec![c.clone().with_node_id(BrokerId(3))]),
                FindCoordinatorResponse::default()
                    .with_coordinators(vec![c.with_node_id(BrokerId(-1)).with_error_code(15)]),
            )
        } else {
            let r = FindCoordinatorResponse::default()
                .with_host(s("b3"))
                .with_port(9092);
            (
                r.clone().with_node_id(BrokerId(3)),
                r.with_node_id(BrokerId(-1)).with_error_code(15),
            )
        };
        assert_eq!(
            coordinator_from(&wire(&ok, v), v, "orders", "b1").ok(),
            Some(3)
        );
        let e = coordinator_from(&wire(&failed, v), v, "orders", "b1").unwrap_err();
        assert_eq!(
            e.code(),
            Some(ResponseError::CoordinatorNotAvailable),
            "v{v}"
        );
        assert!(e.is_retriable());
    }
}

#[test]
fn list_and_describe_groups_decode_at_every_version() {
    for v in versions(ApiKey::ListGroups) {
        wire(&ListGroupsRequest::default(), v);
        let mut g = ListedGroup::default()
            .with_group_id(s("orders").into())
            .with_protocol_type(s("consumer"));
        if v >= 4 {
            g = g.with_group_state(s("Empty"));
        }
        let r = wire(&ListGroupsResponse::default().with_groups(vec![g]), v);
        assert_eq!(r.groups[0].group_id.as_str(), "orders");
    }
    for v in versions(ApiKey::DescribeGroups) {
        let request = DescribeGroupsRequest::default().with_groups(vec![s("orders").into()]);
        assert_eq!(wire(&request, v).groups.len(), 1);
        let mut member = DescribedGroupMember::default()
            .with_member_id(s("m-1"))
            .with_client_id(s("app"))
            .with_client_host(s("/10.0.0.1"));
        if v >= 4 {
            member = member.with_group_instance_id(Some(s("static-1")));
        }
        let group = DescribedGroup::default()
            .with_group_id(s("orders").into())
            .with_group_state(s("Stable"))
            .with_protocol_type(s("consumer"))
            .with_protocol_data(s("range"))
            .with_members(vec![member]);
        let r = wire(
            &DescribeGroupsResponse::default().with_groups(vec![group]),
            v,
        );
        let d = GroupDescription::from_response(&r.groups[0], 7);
        assert_eq!(
            (d.state.as_str(), d.protocol.as_str(), d.coordinator),
            ("Stable", "range", Some(7))
        );
        assert_eq!(d.members[0].client_host, "/10.0.0.1");
        assert_eq!(
            d.members[0].group_instance_id.as_deref(),
            (v >= 4).then_some("static-1"),
            "v{v}"
        );
    }
}

#[test]
fn offset_fetch_at_every_version() {
    let wanted: BTreeMap<String, Vec<i32>> = [("t".to_owned(), vec![0, 1, 2])].into();
    for v in versions(ApiKey::OffsetFetch) {
        let request = wire(&offset_fetch_request("g", v, Some(wanted.clone())), v);
        assert_eq!(request.group_id.as_str(), "g");
        assert_eq!(request.require_stable, v >= 7, "v{v}");
        assert_eq!(request.topics.as_ref().map(Vec::len), Some(1));
        if v >= 2 {
            assert_eq!(wire(&offset_fetch_request("g", v, None), v).topics, None);
        }

        let epoch = if v >= 5 { 4 } else { -1 };
        let partition = |p: i32, offset: i64, metadata: &str| {
            OffsetFetchResponsePartition::default()
                .with_partition_index(p)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(epoch)
                .with_metadata(Some(s(metadata)))
        };
        let response = OffsetFetchResponse::default().with_topics(vec![
            OffsetFetchResponseTopic::default()
                .with_name(s("t").into())
                .with_partitions(vec![
                    partition(0, 5, "from-app"),
                    partition(1, -1, ""),
                    partition(2, 7, ""),
                ]),
            OffsetFetchResponseTopic::default()
                .with_name(s("other").into())
                .with_partitions(vec![partition(0, 9, "")]),
        ]);
        let response = wire(&response, v);
        let all = committed_offsets_from(&response, v, "g", None, "b1").unwrap();
        assert_eq!(all.len(), 3, "v{v}: {all:?}");
        let got = committed_offsets_from(&response, v, "g", Some(&wanted), "b1").unwrap();
        let expected: BTreeMap<TopicPartition, CommittedOffset> = [
            (
                TopicPartition::new("t", 0),
                CommittedOffset {
                    offset: 5,
                    leader_epoch: (v >= 5).then_some(4),
                    metadata: Some("from-app".into()),
                },
            ),
            (
                TopicPartition::new("t", 2),
                CommittedOffset {
                    offset: 7,
                    leader_epoch: (v >= 5).then_some(4),
                    // Kafka's "no metadata".
                    metadata: None,
                },
            ),
        ]
        .into();
        assert_eq!(got, expected, "v{v}");

        // A transaction still open on a partition: retriable, so the caller asks again.
        let unstable = OffsetFetchResponse::default().with_topics(vec![
            OffsetFetchResponseTopic::default()
                .with_name(s("t").into())
                .with_partitions(vec![partition(1, -1, "").with_error_code(88)]),
        ]);
        let e = committed_offsets_from(&wire(&unstable, v), v, "g", None, "b1").unwrap_err();
        assert_eq!(e.code(), Some(ResponseError::UnstableOffsetCommit));
        assert!(e.is_retriable() && e.to_string().contains("t-1"), "{e}");
        if v >= 2 {
            let denied = OffsetFetchResponse::default().with_error_code(30);
            let e = committed_offsets_from(&wire(&denied, v), v, "g", None, "b1").unwrap_err();
            assert_eq!(e.code(), Some(ResponseError::GroupAuthorizationFailed));
            assert!(e.to_string().contains("group g"), "{e}");
        }
    }
}

#[test]
fn offset_commit_at_every_version() {
    let offsets: BTreeMap<TopicPartition, CommittedOffset> = [
        (
            TopicPartition::new("t", 0),
            CommittedOffset {
                offset: 42,
                leader_epoch: Some(3),
                metadata: Some("restored".into()),
            },
        ),
        (TopicPartition::new("t", 1), CommittedOffset::new(0)),
        (TopicPartition::new("u", 0), CommittedOffset::new(7)),
    ]
    .into();
    let request = offset_commit_request("g", &offsets).unwrap();
    for v in versions(ApiKey::OffsetCommit) {
        let sent = wire(&request, v);
        assert_eq!(sent.generation_id_or_member_epoch, -1);
        assert_eq!(sent.member_id.as_str(), "");
        assert_eq!(sent.group_instance_id, None);
        assert_eq!(sent.topics.len(), 2);
        let p0 = &sent.topics[0].partitions[0];
        assert_eq!(
            (p0.committed_offset, p0.committed_metadata.as_deref()),
            (42, Some("restored"))
        );
        // The field exists from v6; before it the decoder fills in -1.
        assert_eq!(
            p0.committed_leader_epoch,
            if v >= 6 { 3 } else { -1 },
            "v{v}"
        );
        assert_eq!(
            sent.topics[0].partitions[1].committed_metadata.as_deref(),
            Some("")
        );
    }
    let e = offset_commit_request(
        "g",
        &[(TopicPartition::new("t", 0), CommittedOffset::new(-1))].into(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
}

fn commit_response(codes: &[(i32, i16)]) -> OffsetCommitResponse {
    OffsetCommitResponse::default().with_topics(vec![
        OffsetCommitResponseTopic::default()
            .with_name(s("t").into())
            .with_partitions(
                codes
                    .iter()
                    .map(|&(p, code)| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(code)
                    })
                    .collect(),
            ),
    ])
}

#[test]
fn commit_outcomes() {
    assert!(commit_outcome(&commit_response(&[(0, 0), (1, 0)]), "g", "b1").is_ok());
    for code in [25, 22, 27] {
        let e = commit_outcome(&commit_response(&[(0, code), (1, code)]), "g", "b1").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("group g has active members"), "{text}");
        assert!(!e.is_retriable());
    }
    // A retriable failure wins, so the whole commit is sent again.
    let e = commit_outcome(&commit_response(&[(0, 29), (1, 16)]), "g", "b1").unwrap_err();
    assert_eq!(e.code(), Some(ResponseError::NotCoordinator));
    // Otherwise the error names a partition and counts the others.
    let e = commit_outcome(&commit_response(&[(0, 12), (1, 12)]), "g", "b1").unwrap_err();
    assert_eq!(e.code(), Some(ResponseError::OffsetMetadataTooLarge));
    let text = e.to_string();
    assert!(
        text.contains("partition t-0") && text.contains("1 other partition"),
        "{text}"
    );
}

#[test]
fn active_member_codes_are_not_retried() {
    for code in [
        ResponseError::UnknownMemberId,
        ResponseError::IllegalGeneration,
        ResponseError::RebalanceInProgress,
        ResponseError::StaleMemberEpoch,
    ] {
        assert!(means_active_members(code), "{code:?}");
        // Retrying would only delay the clear error: the members will not leave by themselves.
        assert!(!code.is_retriable(), "{code:?}");
    }
    assert!(!means_active_members(ResponseError::NotCoordinator));
}

#[test]
fn coordinator_moves_are_retriable() {
    for code in [
        ResponseError::NotCoordinator,
        ResponseError::CoordinatorNotAvailable,
        ResponseError::CoordinatorLoadInProgress,
        ResponseError::UnstableOffsetCommit,
    ] {
        assert!(code.is_retriable(), "{code:?}");
    }
    assert!(is_coordinator_error(
        ResponseError::CoordinatorLoadInProgress
    ));
    assert!(!is_coordinator_error(
        ResponseError::GroupAuthorizationFailed
    ));
}

//! Consumer-group and admin calls against a real broker, checked with an independent client
//! (confluent-kafka, driven through `groups_admin_helper.py`): it produces the test data, forms
//! real consumer groups, and reads back what we wrote.
//!
//! Where the test broker departs from Kafka (validate_only, config sources), the test compares
//! our client with confluent-kafka on the same broker and asserts Kafka's behaviour whenever
//! the broker shows it.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use kafka_client::{
    ClientConfig, CommittedOffset, ConfigSource, Error, KafkaClient, NewTopic, TopicPartition,
    non_default,
};
use kafka_protocol::ResponseError;
use serde_json::Value;

const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/groups_admin_helper.py");

async fn client_with(max_retries: u32) -> KafkaClient {
    let broker = common::plaintext_broker().parse().expect("broker address");
    let mut config = ClientConfig::new(vec![broker]);
    config.client_id = "kafka-client-groups-admin-test".into();
    config.max_retries = max_retries;
    KafkaClient::connect(config)
        .await
        .expect("connect to the test broker")
}

async fn client() -> KafkaClient {
    client_with(8).await
}

fn python_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(common::get("/venv_python"));
    cmd.arg(HELPER).arg(common::plaintext_broker()).args(args);
    cmd
}

/// Runs the helper and returns the JSON it printed last.
fn python(args: &[&str]) -> Value {
    let output = python_command(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the venv python for {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python helper {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("helper printed {last:?}: {e}"))
}

/// The `{"topic:partition": offset}` maps the helper prints.
fn offsets_from_python(v: &Value) -> BTreeMap<TopicPartition, i64> {
    v.as_object()
        .expect("an object")
        .iter()
        .map(|(k, off)| {
            let (topic, partition) = k.rsplit_once(':').expect("topic:partition");
            (
                TopicPartition::new(topic, partition.parse().expect("partition")),
                off.as_i64().expect("an offset"),
            )
        })
        .collect()
}

fn offsets_only(m: &BTreeMap<TopicPartition, CommittedOffset>) -> BTreeMap<TopicPartition, i64> {
    m.iter().map(|(tp, o)| (tp.clone(), o.offset)).collect()
}

fn tps(topic: &str, offsets: &[i64]) -> BTreeMap<TopicPartition, i64> {
    offsets
        .iter()
        .enumerate()
        .map(|(p, &o)| (TopicPartition::new(topic, p as i32), o))
        .collect()
}

async fn create(client: &KafkaClient, topic: NewTopic) {
    let name = topic.name.clone();
    let results = client
        .create_topics(&[topic], false)
        .await
        .expect("CreateTopics");
    assert_eq!(results.len(), 1);
    assert!(
        results[0].is_ok(),
        "creating {name}: {:?}",
        results[0].error
    );
}

#[tokio::test]
async fn create_topics_reports_per_topic_outcomes_and_waits_for_leaders() {
    let client = client().await;
    let topic = common::unique_topic("ga-create");
    let new = NewTopic::new(&topic, 3, 1)
        .with_config("cleanup.policy", "compact")
        .with_config("retention.ms", "3600000");
    let results = client
        .create_topics(&[new], false)
        .await
        .expect("CreateTopics");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].name, topic);
    assert!(results[0].is_ok(), "{:?}", results[0].error);

    // Callers may produce at once: the cached metadata already has every leader.
    let md = client.metadata();
    let t = md
        .topics
        .get(&topic)
        .expect("the new topic is in the cached metadata");
    assert_eq!(t.partitions.len(), 3);
    assert!(t.partitions.values().all(|p| p.leader.is_some()), "{t:?}");

    // Creating it again fails for that topic only; a new topic in the same call is created.
    let other = common::unique_topic("ga-create-other");
    let results = client
        .create_topics(
            &[NewTopic::new(&topic, 3, 1), NewTopic::new(&other, 2, -1)],
            false,
        )
        .await
        .expect("CreateTopics");
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [topic.as_str(), other.as_str()],
        "results in request order"
    );
    let err = results[0]
        .error
        .as_ref()
        .expect("the existing topic is refused");
    assert_eq!(err.code(), Some(ResponseError::TopicAlreadyExists), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("TOPIC_ALREADY_EXISTS") && text.contains(&topic),
        "{text}"
    );
    assert!(results[1].is_ok(), "{:?}", results[1].error);
    assert_eq!(client.metadata().topics[&other].partitions.len(), 2);

    // Duplicates in one call are a caller error, caught before anything is sent.
    let dup = client
        .create_topics(
            &[NewTopic::new(&other, 1, 1), NewTopic::new(&other, 1, 1)],
            false,
        )
        .await
        .expect_err("duplicate names");
    assert!(matches!(dup, Error::Config(_)), "{dup}");
}

#[tokio::test]
async fn validate_only_creates_nothing() {
    let client = client().await;
    let ours = common::unique_topic("ga-validate");
    let results = client
        .create_topics(&[NewTopic::new(&ours, 3, 1)], true)
        .await
        .expect("CreateTopics validate_only");
    assert!(results[0].is_ok(), "{:?}", results[0].error);
    let md = client
        .fetch_metadata(Some(std::slice::from_ref(&ours)))
        .await
        .expect("metadata");
    let we_created = md.topics.get(&ours).is_some_and(|t| t.error.is_none());

    let theirs = common::unique_topic("ga-validate-py");
    let broker_creates = python(&["validate_only_creates", &theirs])["created"]
        .as_bool()
        .expect("bool");
    if broker_creates {
        // nisshi ignores validate_only (confluent-kafka sees the same); all we can check is
        // that we behave like the reference client.
        eprintln!("note: this broker creates topics on validate_only requests");
        assert!(
            we_created,
            "confluent-kafka's validate_only created a topic but ours did not"
        );
    } else {
        assert!(!we_created, "validate_only created topic {ours}");
    }
}

#[tokio::test]
async fn describe_topic_configs_reports_overrides() {
    let client = client().await;
    let topic = common::unique_topic("ga-configs");
    create(
        &client,
        NewTopic::new(&topic, 1, 1)
            .with_config("cleanup.policy", "compact")
            .with_config("retention.ms", "3600000"),
    )
    .await;

    let configs = client
        .describe_topic_configs(std::slice::from_ref(&topic))
        .await
        .expect("DescribeConfigs");
    let entries = configs.get(&topic).expect("the topic's entries");
    let by_name: BTreeMap<&str, _> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
    assert_eq!(by_name["cleanup.policy"].value.as_deref(), Some("compact"));
    assert_eq!(by_name["retention.ms"].value.as_deref(), Some("3600000"));
    for e in entries {
        assert_eq!(e.is_default, e.source == ConfigSource::Default, "{e:?}");
        if e.is_sensitive {
            assert_eq!(e.value, None, "{e:?}");
        }
    }

    // What confluent-kafka reads from the same broker, entry by entry.
    let reference = python(&["describe_configs", &topic]);
    let reference = reference.as_object().expect("an object");
    assert_eq!(reference.len(), entries.len(), "same number of entries");
    for (name, r) in reference {
        let ours = by_name
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(ours.value.as_deref(), r["value"].as_str(), "{name}");
        assert_eq!(
            i64::from(ours.source.code()),
            r["source"].as_i64().unwrap(),
            "{name}"
        );
    }

    let overrides: Vec<(&str, Option<&str>)> = non_default(entries)
        .into_iter()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    if by_name["cleanup.policy"].source == ConfigSource::DynamicTopic {
        assert_eq!(
            overrides,
            [
                ("cleanup.policy", Some("compact")),
                ("retention.ms", Some("3600000"))
            ]
        );
    } else {
        // nisshi labels a topic's stored settings DEFAULT_CONFIG (confluent-kafka, checked
        // above, reads the same), so nothing is an override by Kafka's rules.
        eprintln!(
            "note: this broker reports topic overrides with source {}",
            by_name["cleanup.policy"].source
        );
        assert_eq!(overrides, []);
    }

    // A missing topic fails, naming it. Few retries: the broker's answer will not change.
    let quick = client_with(1).await;
    let missing = common::unique_topic("ga-no-such-topic");
    let err = quick
        .describe_topic_configs(std::slice::from_ref(&missing))
        .await
        .expect_err("an unknown topic");
    assert_eq!(
        err.code(),
        Some(ResponseError::UnknownTopicOrPartition),
        "{err}"
    );
    assert!(err.to_string().contains(&missing), "{err}");
}

#[tokio::test]
async fn group_offsets_round_trip_with_a_real_consumer() {
    let client = client().await;
    let topic = common::unique_topic("ga-offsets");
    let group = common::unique_topic("ga-group");
    create(&client, NewTopic::new(&topic, 3, 1)).await;
    python(&["produce", &topic, "4,7,10"]);

    // A real consumer group: joins, consumes everything, commits, leaves.
    let committed_by_python =
        offsets_from_python(&python(&["consume_commit", &topic, &group, "21"]));
    assert_eq!(committed_by_python, tps(&topic, &[4, 7, 10]));

    let coordinator = client
        .find_coordinator(&group)
        .await
        .expect("FindCoordinator");
    assert!(client.metadata().brokers.contains_key(&coordinator));

    let listed = client.list_groups().await.expect("ListGroups");
    let ours = listed
        .iter()
        .find(|g| g.group_id == group)
        .unwrap_or_else(|| panic!("{group} not listed in {listed:?}"));
    assert_eq!(ours.protocol_type, "consumer");
    assert_eq!(ours.coordinator, coordinator);
    if let Some(state) = &ours.state {
        // Compared with confluent-kafka rather than Kafka's "Empty": nisshi lists every group
        // as "unknown".
        let reference = python(&["group_state", &group]);
        assert_eq!(
            state.to_ascii_uppercase(),
            reference[&group].as_str().expect("a state"),
            "{ours:?}"
        );
    }

    let no_such_group = common::unique_topic("ga-no-such-group");
    let described = client
        .describe_groups(&[group.clone(), no_such_group.clone(), group.clone()])
        .await
        .expect("DescribeGroups");
    assert_eq!(described.len(), 2, "duplicates removed: {described:?}");
    let d = &described[0];
    assert_eq!(d.group_id, group);
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(d.state, "Empty", "the consumer closed: {d:?}");
    assert_eq!(d.protocol_type, "consumer");
    assert!(d.members.is_empty(), "{d:?}");
    assert_eq!(d.coordinator, Some(coordinator));
    // Kafka before 4.0 describes an unknown group as Dead; newer ones (and nisshi) say
    // GROUP_ID_NOT_FOUND.
    let unknown = &described[1];
    assert_eq!(unknown.group_id, no_such_group);
    match &unknown.error {
        Some(e) => assert_eq!(e.code(), Some(ResponseError::GroupIdNotFound), "{e}"),
        None => assert_eq!((unknown.state.as_str(), unknown.members.len()), ("Dead", 0)),
    }

    // We read exactly what confluent-kafka committed, whether asking for the topic or for all.
    let fetched = client
        .fetch_committed_offsets(&group, Some(std::slice::from_ref(&topic)))
        .await
        .expect("OffsetFetch for the topic");
    assert_eq!(offsets_only(&fetched), committed_by_python);
    let all = client
        .fetch_committed_offsets(&group, None)
        .await
        .expect("OffsetFetch for all topics");
    assert_eq!(offsets_only(&all), committed_by_python);
    // A topic without offsets in this group contributes nothing.
    let empty = client
        .fetch_committed_offsets(&no_such_group, Some(std::slice::from_ref(&topic)))
        .await
        .expect("OffsetFetch for a group without offsets");
    assert!(empty.is_empty(), "{empty:?}");

    // Rewind the (empty) group, as a restore does.
    let rewind: BTreeMap<TopicPartition, CommittedOffset> = [(0, 1), (1, 2), (2, 3)]
        .into_iter()
        .map(|(p, o)| {
            (
                TopicPartition::new(&topic, p),
                CommittedOffset {
                    offset: o,
                    leader_epoch: None,
                    metadata: Some("restored by kafka-backup".into()),
                },
            )
        })
        .collect();
    client
        .commit_offsets(&group, &rewind)
        .await
        .expect("OffsetCommit");
    let expected = tps(&topic, &[1, 2, 3]);
    assert_eq!(
        offsets_only(
            &client
                .fetch_committed_offsets(&group, Some(std::slice::from_ref(&topic)))
                .await
                .expect("OffsetFetch after commit")
        ),
        expected
    );
    assert_eq!(
        offsets_from_python(&python(&["committed", &topic, &group, "3"])),
        expected,
        "confluent-kafka reads the committed offsets"
    );
    // And a consumer of the group resumes exactly there.
    assert_eq!(
        offsets_from_python(&python(&["consume_first", &topic, &group, "3"])),
        expected
    );

    let negative: BTreeMap<_, _> = [(TopicPartition::new(&topic, 0), CommittedOffset::new(-1))]
        .into_iter()
        .collect();
    let err = client
        .commit_offsets(&group, &negative)
        .await
        .expect_err("a negative offset");
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[tokio::test]
async fn commit_is_refused_while_the_group_has_members() {
    let client = client().await;
    let topic = common::unique_topic("ga-active");
    let group = common::unique_topic("ga-active-group");
    create(&client, NewTopic::new(&topic, 2, 1)).await;
    python(&["produce", &topic, "3,3"]);

    // A consumer that stays in the group until its stdin closes.
    let mut member = python_command(&["hold", &topic, &group])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the python consumer");
    let stdout = member.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read from the python consumer");
    assert!(
        line.contains("assigned"),
        "the consumer did not join: {line:?}"
    );

    let described = client
        .describe_groups(std::slice::from_ref(&group))
        .await
        .expect("DescribeGroups");
    assert_eq!(described[0].members.len(), 1, "{:?}", described[0]);

    let offsets: BTreeMap<_, _> = [(TopicPartition::new(&topic, 0), CommittedOffset::new(1))]
        .into_iter()
        .collect();
    let result = client.commit_offsets(&group, &offsets).await;

    drop(member.stdin.take());
    let status = tokio::task::spawn_blocking(move || member.wait())
        .await
        .expect("join")
        .expect("wait for the python consumer");
    assert!(status.success(), "python consumer: {status}");

    let err = result.expect_err("a commit outside the generation while a member is active");
    assert!(
        matches!(
            err.code(),
            Some(
                ResponseError::UnknownMemberId
                    | ResponseError::IllegalGeneration
                    | ResponseError::RebalanceInProgress
            )
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("active members") && text.contains(&group),
        "{text}"
    );

    // Once the consumer has left, the same commit goes through.
    tokio::time::sleep(Duration::from_millis(200)).await;
    client
        .commit_offsets(&group, &offsets)
        .await
        .expect("commit after the consumer left");
}

//! Administrative calls a restore needs: creating topics and reading their configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{CreateTopicsRequest, DescribeConfigsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::KafkaClient;
use crate::error::{Error, Result};
use crate::groups::broker_error;

/// DescribeConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;

/// Time the broker may spend past the `timeout_ms` we give it before we stop waiting for its
/// CreateTopics answer: it answers at `timeout_ms` at the latest, plus transfer time.
const CREATE_TOPICS_SLACK: Duration = Duration::from_secs(5);

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic name.
    pub name: String,
    /// Number of partitions; -1 for the broker's `num.partitions` (CreateTopics v4+, Kafka 2.4+).
    pub num_partitions: i32,
    /// Replication factor; -1 for the broker's `default.replication.factor` (CreateTopics v4+,
    /// Kafka 2.4+). Older brokers need an explicit value.
    pub replication_factor: i16,
    /// Topic-level configuration overrides, e.g. `cleanup.policy=compact`.
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with no configuration overrides.
    pub fn new(name: impl Into<String>, num_partitions: i32, replication_factor: i16) -> Self {
        Self {
            name: name.into(),
            num_partitions,
            replication_factor,
            configs: BTreeMap::new(),
        }
    }

    /// Adds a configuration override.
    pub fn with_config(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(name.into(), value.into());
        self
    }
}

/// What the broker said about one topic of a CreateTopics call.
#[derive(Debug)]
pub struct CreateTopicResult {
    /// The topic name.
    pub name: String,
    /// Why the topic was not created (or, with `validate_only`, would not be), with the broker's
    /// message: TOPIC_ALREADY_EXISTS, INVALID_REPLICATION_FACTOR, POLICY_VIOLATION, ...
    pub error: Option<Error>,
    /// The new topic's id (CreateTopics v7+, Kafka 2.8+).
    pub topic_id: Option<Uuid>,
    /// The partition count the broker used (CreateTopics v5+, Kafka 2.4+).
    pub num_partitions: Option<i32>,
    /// The replication factor the broker used (CreateTopics v5+, Kafka 2.4+).
    pub replication_factor: Option<i16>,
}

impl CreateTopicResult {
    /// Whether the topic was created (or, with `validate_only`, would be).
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Where a configuration value comes from (DescribeConfigs `config_source`, KIP-226).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigSource {
    /// The broker did not say (0).
    Unknown,
    /// A topic-level override (`DYNAMIC_TOPIC_CONFIG`, 1): what a backup must capture.
    DynamicTopic,
    /// A per-broker dynamic setting (`DYNAMIC_BROKER_CONFIG`, 2).
    DynamicBroker,
    /// A cluster-wide dynamic broker default (`DYNAMIC_DEFAULT_BROKER_CONFIG`, 3).
    DefaultBroker,
    /// The broker's `server.properties` (`STATIC_BROKER_CONFIG`, 4).
    StaticBroker,
    /// Kafka's built-in default (`DEFAULT_CONFIG`, 5).
    Default,
    /// A dynamic broker logger level (`DYNAMIC_BROKER_LOGGER_CONFIG`, 6).
    DynamicBrokerLogger,
    /// A client-metrics subscription (`CLIENT_METRICS_CONFIG`, 7).
    ClientMetrics,
    /// A group-level override (`GROUP_CONFIG`, 8).
    Group,
    /// A code this client does not know, kept so it can be reported.
    Other(i8),
}

impl ConfigSource {
    /// The source for a wire code.
    pub fn from_code(code: i8) -> Self {
        match code {
            0 => Self::Unknown,
            1 => Self::DynamicTopic,
            2 => Self::DynamicBroker,
            3 => Self::DefaultBroker,
            4 => Self::StaticBroker,
            5 => Self::Default,
            6 => Self::DynamicBrokerLogger,
            7 => Self::ClientMetrics,
            8 => Self::Group,
            other => Self::Other(other),
        }
    }

    /// The wire code.
    pub fn code(self) -> i8 {
        match self {
            Self::Unknown => 0,
            Self::DynamicTopic => 1,
            Self::DynamicBroker => 2,
            Self::DefaultBroker => 3,
            Self::StaticBroker => 4,
            Self::Default => 5,
            Self::DynamicBrokerLogger => 6,
            Self::ClientMetrics => 7,
            Self::Group => 8,
            Self::Other(code) => code,
        }
    }

    /// Kafka's name for the source, as `kafka-configs --describe` prints it.
    pub fn kafka_name(self) -> &'static str {
        match self {
            Self::Unknown | Self::Other(_) => "UNKNOWN",
            Self::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
            Self::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
            Self::DefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            Self::StaticBroker => "STATIC_BROKER_CONFIG",
            Self::Default => "DEFAULT_CONFIG",
            Self::DynamicBrokerLogger => "DYNAMIC_BROKER_LOGGER_CONFIG",
            Self::ClientMetrics => "CLIENT_METRICS_CONFIG",
            Self::Group => "GROUP_CONFIG",
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(code) => write!(f, "UNKNOWN({code})"),
            other => f.write_str(other.kafka_name()),
        }
    }
}

/// One configuration entry of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The configuration name, e.g. `retention.ms`.
    pub name: String,
    /// The value; `None` for sensitive values, which brokers never reveal.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether the value is Kafka's built-in default (derived from `source`, as the Java
    /// client does).
    pub is_default: bool,
    /// Whether the value cannot be changed.
    pub read_only: bool,
    /// Whether the value is secret.
    pub is_sensitive: bool,
}

/// The topic-level overrides among `entries` (source [`ConfigSource::DynamicTopic`]): what a
/// backup must capture to re-create the topic as it was. Values inherited from broker settings
/// are left out, so a restore onto another cluster takes that cluster's defaults. Sensitive
/// overrides are included with a `None` value so callers can report them.
pub fn non_default(entries: &[ConfigEntry]) -> Vec<&ConfigEntry> {
    entries
        .iter()
        .filter(|e| e.source == ConfigSource::DynamicTopic)
        .collect()
}

impl KafkaClient {
    /// Creates `topics` on the controller (or, when metadata names none, any broker, which
    /// forwards the request). With `validate_only` the broker only checks the request.
    ///
    /// Per-topic failures (TOPIC_ALREADY_EXISTS, INVALID_REPLICATION_FACTOR, POLICY_VIOLATION,
    /// ...) are reported in each [`CreateTopicResult`]; the call fails only when the request
    /// cannot be made. After a successful creation this waits, within the request timeout,
    /// until metadata shows a leader for every partition of the new topics, so callers can
    /// produce at once; if that does not happen in time the call fails with a timeout although
    /// the topics exist.
    ///
    /// A request that times out on the network is retried; when the first attempt had in fact
    /// succeeded, the retry reports TOPIC_ALREADY_EXISTS.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<CreateTopicResult>> {
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        let mut names = BTreeSet::new();
        if let Some(dup) = topics.iter().find(|t| !names.insert(t.name.as_str())) {
            return Err(Error::Config(format!(
                "topic {} is listed twice in one CreateTopics call",
                dup.name
            )));
        }
        let request_timeout = self.config().request_timeout;
        let timeout_ms = i32::try_from(request_timeout.as_millis()).unwrap_or(i32::MAX);
        // Results of earlier attempts: a retry after NOT_CONTROLLER only re-sends the topics
        // that have no answer yet.
        let done: Mutex<BTreeMap<String, CreateTopicResult>> = Mutex::new(BTreeMap::new());
        let done_ref = &done;

        self.retry("CreateTopics", |attempt| async move {
            let pending: Vec<&NewTopic> = {
                let d = done_ref.lock().unwrap_or_else(|p| p.into_inner());
                topics.iter().filter(|t| !d.contains_key(&t.name)).collect()
            };
            if pending.is_empty() {
                return Ok(());
            }
            // Whatever failed (NOT_CONTROLLER, an unreachable controller), the controller may
            // have moved, and `retry` refreshes metadata only for partition and coordinator
            // routing errors. Brokers and controller are enough.
            if attempt > 0
                && let Err(e) = Box::pin(self.fetch_metadata(Some(&[]))).await
            {
                tracing::warn!(error = %e, "metadata refresh failed");
            }
            let conn = match self.metadata().controller_id {
                Some(id) => self.broker_connection(id).await?,
                None => self.any_connection().await?,
            };
            let version = conn.version::<CreateTopicsRequest>()?;
            let request =
                create_topics_request(&pending, version, timeout_ms, validate_only, conn.label())?;
            let response = conn.send_at(&request, version, CREATE_TOPICS_SLACK).await?;

            let mut retry_with: Option<Error> = None;
            let mut answered = Vec::new();
            for r in &response.topics {
                let name = r.name.to_string();
                let error = broker_error(
                    conn.label(),
                    "CreateTopics",
                    Some(format!("topic {name}")),
                    r.error_code,
                    r.error_message.as_ref(),
                );
                // Sent to a broker that is not (or no longer) the controller, or throttled:
                // nothing was done for this topic, so it is safe to send again.
                if error.as_ref().and_then(Error::code).is_some_and(|c| {
                    matches!(
                        c,
                        ResponseError::NotController | ResponseError::ThrottlingQuotaExceeded
                    )
                }) {
                    retry_with = retry_with.or(error);
                    continue;
                }
                answered.push(CreateTopicResult {
                    name,
                    error,
                    topic_id: (version >= 7 && !r.topic_id.is_nil()).then_some(r.topic_id),
                    num_partitions: (version >= 5 && r.num_partitions > 0)
                        .then_some(r.num_partitions),
                    replication_factor: (version >= 5 && r.replication_factor > 0)
                        .then_some(r.replication_factor),
                });
            }
            {
                let mut d = done_ref.lock().unwrap_or_else(|p| p.into_inner());
                for r in answered {
                    d.insert(r.name.clone(), r);
                }
            }
            match retry_with {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
        .await?;

        let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
        let results: Vec<CreateTopicResult> = topics
            .iter()
            .map(|t| {
                done.remove(&t.name).unwrap_or_else(|| CreateTopicResult {
                    name: t.name.clone(),
                    error: Some(Error::Protocol {
                        broker: "the controller".into(),
                        detail: format!(
                            "the CreateTopics answer does not mention topic {}, which was asked for",
                            t.name
                        ),
                    }),
                    topic_id: None,
                    num_partitions: None,
                    replication_factor: None,
                })
            })
            .collect();

        if !validate_only {
            let created: BTreeMap<String, Option<i32>> = topics
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(t, r)| {
                    let expected = (t.num_partitions > 0)
                        .then_some(t.num_partitions)
                        .or(r.num_partitions);
                    (t.name.clone(), expected)
                })
                .collect();
            if !created.is_empty() {
                self.await_leaders(&created, request_timeout).await?;
            }
        }
        Ok(results)
    }

    /// Waits until metadata shows `topics` (with their expected partition counts, when known)
    /// with a leader for every partition, or `limit` passes.
    async fn await_leaders(
        &self,
        topics: &BTreeMap<String, Option<i32>>,
        limit: Duration,
    ) -> Result<()> {
        let names: Vec<String> = topics.keys().cloned().collect();
        let deadline = Instant::now() + limit;
        let mut attempt = 0u32;
        loop {
            let metadata = self.fetch_metadata(Some(&names)).await?;
            let waiting: Vec<&str> = topics
                .iter()
                .filter(|(name, expected)| {
                    let Some(t) = metadata.topics.get(*name) else {
                        return true;
                    };
                    let complete = match expected {
                        Some(n) => usize::try_from(*n).is_ok_and(|n| t.partitions.len() == n),
                        None => !t.partitions.is_empty(),
                    };
                    t.error.is_some()
                        || !complete
                        || t.partitions.values().any(|p| p.leader.is_none())
                })
                .map(|(name, _)| name.as_str())
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            let delay = self.backoff(attempt);
            if Instant::now() + delay > deadline {
                return Err(Error::Timeout {
                    broker: "cluster".into(),
                    what: format!(
                        "leaders for every partition of new topic(s) {}",
                        waiting.join(", ")
                    ),
                    after: limit,
                    hint: "The topics were created, but not every partition had a leader in time; \
                           writes to them fail until the brokers elect one. Check the brokers' \
                           health, or raise request_timeout_ms.",
                });
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// The configuration of each of `topics`, by topic name. Fails, naming the topic, when the
    /// broker cannot describe one (e.g. UNKNOWN_TOPIC_OR_PARTITION, TOPIC_AUTHORIZATION_FAILED).
    /// UNKNOWN_TOPIC_OR_PARTITION is retried first, within the retry budget, because a topic
    /// just created may not have reached every broker yet. Use [`non_default`] to pick the
    /// topic-level overrides.
    pub async fn describe_topic_configs(
        &self,
        topics: &[String],
    ) -> Result<BTreeMap<String, Vec<ConfigEntry>>> {
        if topics.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.retry("DescribeConfigs", |_| async move {
            // Topic configuration is known to every broker; only broker resources need their
            // own broker.
            let conn = self.any_connection().await?;
            let request = describe_configs_request(topics);
            let response = conn.send(&request).await?;
            let mut out = BTreeMap::new();
            for r in &response.results {
                let name = r.resource_name.to_string();
                if r.resource_type != RESOURCE_TOPIC || !topics.contains(&name) {
                    continue;
                }
                if let Some(e) = broker_error(
                    conn.label(),
                    "DescribeConfigs",
                    Some(format!("topic {name}")),
                    r.error_code,
                    r.error_message.as_ref(),
                ) {
                    return Err(e);
                }
                out.insert(name, r.configs.iter().map(config_entry).collect());
            }
            if let Some(missing) = topics.iter().find(|t| !out.contains_key(*t)) {
                return Err(Error::Protocol {
                    broker: conn.label().to_owned(),
                    detail: format!(
                        "the DescribeConfigs answer does not mention topic {missing}, which was asked about"
                    ),
                });
            }
            Ok(out)
        })
        .await
    }
}

/// A CreateTopics request for `topics` at `version`, refusing broker defaults (-1) where the
/// version cannot express them.
fn create_topics_request(
    topics: &[&NewTopic],
    version: i16,
    timeout_ms: i32,
    validate_only: bool,
    broker: &str,
) -> Result<CreateTopicsRequest> {
    if version < 4
        && let Some(t) = topics
            .iter()
            .find(|t| t.num_partitions < 0 || t.replication_factor < 0)
    {
        return Err(Error::Config(format!(
            "topic {}: -1 (the broker's default) for the partition count or replication factor \
             needs CreateTopics v4 (Kafka 2.4+), and {broker} speaks v{version}; give explicit values",
            t.name
        )));
    }
    Ok(CreateTopicsRequest::default()
        .with_topics(topics.iter().map(|t| creatable(t)).collect())
        .with_timeout_ms(timeout_ms)
        .with_validate_only(validate_only))
}

/// A DescribeConfigs request for every key of each of `topics`.
fn describe_configs_request(topics: &[String]) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default().with_resources(
        topics
            .iter()
            .map(|t| {
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(StrBytes::from_string(t.clone()))
                    // Null asks for every key; an empty list would ask for none.
                    .with_configuration_keys(None)
            })
            .collect(),
    )
}

fn creatable(t: &NewTopic) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName::from(StrBytes::from_string(t.name.clone())))
        .with_num_partitions(t.num_partitions)
        .with_replication_factor(t.replication_factor)
        .with_configs(
            t.configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_value(Some(StrBytes::from_string(v.clone())))
                })
                .collect(),
        )
}

fn config_entry(
    c: &kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult,
) -> ConfigEntry {
    let source = ConfigSource::from_code(c.config_source);
    ConfigEntry {
        name: c.name.to_string(),
        // Brokers send null for secrets; never keep one that slipped through.
        value: if c.is_sensitive {
            None
        } else {
            c.value.as_ref().map(|v| v.to_string())
        },
        source,
        is_default: source == ConfigSource::Default,
        read_only: c.read_only,
        is_sensitive: c.is_sensitive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::{Decodable, Encodable};

    use crate::versions::support_for;

    fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
        let s = support_for(key).expect("a supported API");
        s.min..=s.max
    }

    fn wire<T: Encodable + Decodable>(msg: &T, version: i16) -> T {
        let mut buf = BytesMut::new();
        msg.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encoding at v{version}: {e}"));
        T::decode(&mut buf.freeze(), version)
            .unwrap_or_else(|e| panic!("decoding at v{version}: {e}"))
    }

    #[test]
    fn create_topics_at_every_version() {
        let explicit = NewTopic::new("orders", 3, 2).with_config("cleanup.policy", "compact");
        let defaults = NewTopic::new("events", -1, -1);
        for v in versions(ApiKey::CreateTopics) {
            let sent = wire(
                &create_topics_request(&[&explicit], v, 30_000, true, "b1").unwrap(),
                v,
            );
            assert!(sent.validate_only);
            assert_eq!(sent.timeout_ms, 30_000);
            let t = &sent.topics[0];
            assert_eq!((t.num_partitions, t.replication_factor), (3, 2));
            assert_eq!(t.configs[0].name.as_str(), "cleanup.policy");
            assert_eq!(t.configs[0].value.as_deref(), Some("compact"));

            let with_defaults =
                create_topics_request(&[&explicit, &defaults], v, 30_000, false, "b1");
            if v >= 4 {
                let sent = wire(&with_defaults.unwrap(), v);
                assert_eq!(sent.topics[1].replication_factor, -1);
            } else {
                let e = with_defaults.unwrap_err();
                assert!(
                    matches!(e, Error::Config(_)) && e.to_string().contains("events"),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn describe_configs_asks_for_every_key_at_every_version() {
        for v in versions(ApiKey::DescribeConfigs) {
            let sent = wire(&describe_configs_request(&["orders".to_owned()]), v);
            let r = &sent.resources[0];
            assert_eq!(r.resource_type, RESOURCE_TOPIC);
            assert_eq!(r.resource_name.as_str(), "orders");
            assert_eq!(r.configuration_keys, None, "v{v}");
        }
    }

    #[test]
    fn config_sources_follow_kafkas_codes() {
        let expected = [
            (0, ConfigSource::Unknown, "UNKNOWN"),
            (1, ConfigSource::DynamicTopic, "DYNAMIC_TOPIC_CONFIG"),
            (2, ConfigSource::DynamicBroker, "DYNAMIC_BROKER_CONFIG"),
            (
                3,
                ConfigSource::DefaultBroker,
                "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ),
            (4, ConfigSource::StaticBroker, "STATIC_BROKER_CONFIG"),
            (5, ConfigSource::Default, "DEFAULT_CONFIG"),
            (
                6,
                ConfigSource::DynamicBrokerLogger,
                "DYNAMIC_BROKER_LOGGER_CONFIG",
            ),
            (7, ConfigSource::ClientMetrics, "CLIENT_METRICS_CONFIG"),
            (8, ConfigSource::Group, "GROUP_CONFIG"),
        ];
        for (code, source, name) in expected {
            assert_eq!(ConfigSource::from_code(code), source, "code {code}");
            assert_eq!(source.code(), code);
            assert_eq!(source.to_string(), name);
        }
        for code in [-1, 9, i8::MAX, i8::MIN] {
            let s = ConfigSource::from_code(code);
            assert_eq!(s, ConfigSource::Other(code));
            assert_eq!(s.code(), code, "unknown codes survive a round trip");
            assert_eq!(s.to_string(), format!("UNKNOWN({code})"));
        }
    }

    fn wire_entry(
        name: &str,
        value: Option<&str>,
        source: i8,
        sensitive: bool,
    ) -> kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult {
        kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult::default(
        )
        .with_name(StrBytes::from_string(name.to_owned()))
        .with_value(value.map(|v| StrBytes::from_string(v.to_owned())))
        .with_config_source(source)
        .with_is_sensitive(sensitive)
    }

    #[test]
    fn entries_derive_is_default_from_the_source_and_hide_secrets() {
        let d = config_entry(&wire_entry("segment.bytes", Some("1073741824"), 5, false));
        assert!(d.is_default);
        assert_eq!(d.value.as_deref(), Some("1073741824"));
        let s = config_entry(&wire_entry("retention.ms", Some("1000"), 4, false));
        assert!(
            !s.is_default,
            "a static broker setting is not Kafka's default"
        );
        let secret = config_entry(&wire_entry("ssl.key.password", Some("oops"), 1, true));
        assert_eq!(secret.value, None);
        assert!(secret.is_sensitive);
    }

    #[test]
    fn non_default_picks_exactly_the_topic_overrides() {
        let entries: Vec<ConfigEntry> = [
            ("cleanup.policy", Some("compact"), 1, false),
            ("retention.ms", Some("3600000"), 1, false),
            ("segment.bytes", Some("1073741824"), 5, false),
            ("min.insync.replicas", Some("2"), 4, false),
            ("max.message.bytes", Some("2000000"), 3, false),
            ("message.timestamp.type", Some("CreateTime"), 2, false),
            ("secret.thing", None, 1, true),
        ]
        .iter()
        .map(|(n, v, s, sens)| config_entry(&wire_entry(n, *v, *s, *sens)))
        .collect();
        let picked: Vec<(&str, Option<&str>)> = non_default(&entries)
            .into_iter()
            .map(|e| (e.name.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(
            picked,
            [
                ("cleanup.policy", Some("compact")),
                ("retention.ms", Some("3600000")),
                ("secret.thing", None),
            ]
        );
    }
}

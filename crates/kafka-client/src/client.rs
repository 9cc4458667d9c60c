//! The client of one cluster: bootstrap, a metadata cache, one connection per broker, leader
//! routing, and retries with backoff for failures that may pass.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kafka_protocol::messages::MetadataRequest;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::protocol::{Request, StrBytes};
use rand::Rng;

use crate::config::{BrokerAddress, ClientConfig};
use crate::connection::{ConnectSettings, Connection};
use crate::error::{Error, ErrorKind, Result, needs_metadata_refresh};
use crate::metadata::{ClusterMetadata, TopicPartition};
use crate::tls::TlsConnector;

type Slot = Arc<tokio::sync::Mutex<Option<Connection>>>;

struct Inner {
    config: ClientConfig,
    settings: ConnectSettings,
    warnings: Vec<String>,
    metadata: RwLock<Arc<ClusterMetadata>>,
    /// Per broker and lane (see [`KafkaClient::lane_connection`]).
    brokers: Mutex<HashMap<(i32, usize), Slot>>,
    bootstrap: tokio::sync::Mutex<Option<Connection>>,
}

/// A client of one Kafka cluster. Cheap to clone; clones share connections and metadata.
#[derive(Clone)]
pub struct KafkaClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KafkaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaClient")
            .field("bootstrap_servers", &self.inner.config.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl KafkaClient {
    /// Checks the configuration, loads TLS material, connects to the first reachable
    /// bootstrap server (authenticating as configured) and reads the cluster's metadata.
    pub async fn connect(config: ClientConfig) -> Result<Self> {
        validate(&config)?;
        let tls = if config.security.protocol.uses_tls() {
            Some(TlsConnector::new(&config.security.tls)?)
        } else {
            None
        };
        let warnings = tls
            .as_ref()
            .map(|t| t.warnings().to_vec())
            .unwrap_or_default();
        let settings = ConnectSettings::new(&config, tls);
        if let Some(mechanism) = &settings.sasl {
            mechanism
                .prepare()
                .await
                .map_err(|source| Error::SaslCredentials {
                    mechanism: mechanism.name().to_owned(),
                    source,
                })?;
        }
        let client = Self {
            inner: Arc::new(Inner {
                config,
                settings,
                warnings,
                metadata: RwLock::new(Arc::new(ClusterMetadata::default())),
                brokers: Mutex::new(HashMap::new()),
                bootstrap: tokio::sync::Mutex::new(None),
            }),
        };
        client.bootstrap_connection().await?;
        client.refresh_metadata().await?;
        Ok(client)
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Warnings an operator should see (e.g. TLS hostname verification disabled).
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// The most recently fetched metadata.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.inner
            .metadata
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Fetches metadata for every topic and replaces the cache.
    pub async fn refresh_metadata(&self) -> Result<Arc<ClusterMetadata>> {
        self.fetch_metadata(None).await
    }

    /// Fetches metadata for `topics` (all topics when `None`) and merges it into the cache.
    pub async fn fetch_metadata(&self, topics: Option<&[String]>) -> Result<Arc<ClusterMetadata>> {
        self.retry("Metadata", |_| async move {
            let conn = self.any_connection().await?;
            let version = conn.version::<MetadataRequest>()?;
            let mut request = MetadataRequest::default().with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(StrBytes::from_string(t.clone()).into()))
                    })
                    .collect()
            }));
            if version >= 4 {
                // A backup tool must never create topics by asking about them.
                request = request.with_allow_auto_topic_creation(false);
            }
            let response = conn.send_at(&request, version, Duration::ZERO).await?;
            let fresh = ClusterMetadata::from_response(&response);
            let mut guard = self
                .inner
                .metadata
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let merged = if topics.is_some() {
                let mut m = (**guard).clone();
                m.merge(fresh);
                m
            } else {
                fresh
            };
            *guard = Arc::new(merged);
            Ok(guard.clone())
        })
        .await
    }

    /// The leader of a partition according to cached metadata.
    pub fn leader_for(&self, tp: &TopicPartition) -> Result<i32> {
        let md = self.metadata();
        let topic = md
            .topics
            .get(&tp.topic)
            .ok_or_else(|| unknown_topic(&tp.topic))?;
        let partition = topic
            .partitions
            .get(&tp.partition)
            .ok_or_else(|| Error::Broker {
                broker: "cluster".into(),
                api: "Metadata",
                resource: Some(format!("partition {tp}")),
                code: kafka_protocol::ResponseError::UnknownTopicOrPartition,
                message: Some(format!(
                    "topic {} has {} partitions",
                    tp.topic,
                    topic.partitions.len()
                )),
            })?;
        partition.leader.ok_or_else(|| Error::Broker {
            broker: "cluster".into(),
            api: "Metadata",
            resource: Some(format!("partition {tp}")),
            code: partition
                .error
                .unwrap_or(kafka_protocol::ResponseError::LeaderNotAvailable),
            message: None,
        })
    }

    /// Groups partitions by their current leader.
    pub fn group_by_leader<'a>(
        &self,
        partitions: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> Result<BTreeMap<i32, Vec<TopicPartition>>> {
        let mut out: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        for tp in partitions {
            out.entry(self.leader_for(tp)?)
                .or_default()
                .push(tp.clone());
        }
        Ok(out)
    }

    /// The connection to broker `id`, opened on first use and reopened after it failed.
    pub async fn broker_connection(&self, id: i32) -> Result<Connection> {
        self.lane_connection(id, 0).await
    }

    /// Connection number `lane` to broker `id` (lane 0 is [`KafkaClient::broker_connection`]),
    /// opened on first use and reopened after it failed.
    ///
    /// A Kafka broker reads the next request of a connection only after it has answered the
    /// previous one, so requests that should keep the broker busy at the same time (fetches
    /// for different partitions, say) need connections of their own.
    pub async fn lane_connection(&self, id: i32, lane: usize) -> Result<Connection> {
        let address = match self.metadata().brokers.get(&id) {
            Some(b) => b.address.clone(),
            None => {
                self.refresh_metadata().await?;
                self.metadata()
                    .brokers
                    .get(&id)
                    .map(|b| b.address.clone())
                    .ok_or_else(|| Error::Broker {
                        broker: "cluster".into(),
                        api: "Metadata",
                        resource: Some(format!("broker {id}")),
                        code: kafka_protocol::ResponseError::BrokerNotAvailable,
                        message: Some("the cluster metadata does not list this broker".into()),
                    })?
            }
        };
        let slot = {
            let mut map = self.inner.brokers.lock().unwrap_or_else(|p| p.into_inner());
            map.entry((id, lane)).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.as_ref().filter(|c| c.is_alive())
            && conn.info().broker == address
        {
            return Ok(conn.clone());
        }
        let conn = Connection::open(&address, &self.inner.settings).await?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// A live connection to any broker: one already open, else the bootstrap connection.
    pub async fn any_connection(&self) -> Result<Connection> {
        let slots: Vec<Slot> = self
            .inner
            .brokers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for slot in slots {
            if let Ok(guard) = slot.try_lock()
                && let Some(conn) = guard.as_ref().filter(|c| c.is_alive())
            {
                return Ok(conn.clone());
            }
        }
        self.bootstrap_connection().await
    }

    /// The connection to a bootstrap server, trying each in order until one works.
    /// Configuration, TLS and authentication failures stop the search: every broker of the
    /// cluster would give the same answer.
    pub async fn bootstrap_connection(&self) -> Result<Connection> {
        let mut guard = self.inner.bootstrap.lock().await;
        if let Some(conn) = guard.as_ref().filter(|c| c.is_alive()) {
            return Ok(conn.clone());
        }
        let mut candidates: Vec<BrokerAddress> = self.inner.config.bootstrap_servers.clone();
        // Also fall back to brokers learnt from metadata, in case every bootstrap server moved.
        for b in self.metadata().brokers.values() {
            if !candidates.contains(&b.address) {
                candidates.push(b.address.clone());
            }
        }
        let mut first_error = None;
        for (i, address) in candidates.iter().enumerate() {
            match Connection::open(address, &self.inner.settings).await {
                Ok(conn) => {
                    *guard = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) if matches!(e.kind(), ErrorKind::Network) => {
                    if i + 1 < candidates.len() {
                        tracing::warn!(broker = %address, error = %e, "bootstrap server unavailable; trying the next one");
                    }
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_error.unwrap_or_else(|| {
            Error::Config("bootstrap_servers is empty: list at least one host:port".into())
        }))
    }

    /// Sends `request` to broker `id` at the negotiated version, reconnecting once if the
    /// connection had died since it was last used.
    pub async fn send_to_broker<R: Request>(&self, id: i32, request: &R) -> Result<R::Response> {
        let conn = self.broker_connection(id).await?;
        conn.send(request).await
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or the retry budget is
    /// spent. Between attempts it refreshes metadata when the failure suggests stale routing,
    /// and sleeps with exponential backoff and jitter.
    pub async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0u32;
        loop {
            match op(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && attempt < self.inner.config.max_retries => {
                    let delay = self.backoff(attempt);
                    tracing::warn!(operation = what, attempt = attempt + 1, error = %e, delay_ms = delay.as_millis() as u64, "retrying");
                    tokio::time::sleep(delay).await;
                    if e.code().is_some_and(needs_metadata_refresh)
                        && what != "Metadata"
                        && let Err(me) = Box::pin(self.refresh_metadata()).await
                    {
                        tracing::warn!(error = %me, "metadata refresh failed");
                    }
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The delay before retry number `attempt` (0-based): exponential, capped, with jitter so
    /// that many clients do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        backoff(
            self.inner.config.retry_backoff,
            self.inner.config.retry_backoff_max,
            attempt,
        )
    }
}

fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16)).min(max);
    // "Equal jitter": at least half the delay, so backoff still grows.
    let half = exp / 2;
    let jitter = rand::rng().random_range(0..=half.as_micros().min(u64::MAX as u128) as u64);
    half + Duration::from_micros(jitter)
}

fn unknown_topic(topic: &str) -> Error {
    Error::Broker {
        broker: "cluster".into(),
        api: "Metadata",
        resource: Some(format!("topic {topic}")),
        code: kafka_protocol::ResponseError::UnknownTopicOrPartition,
        message: None,
    }
}

fn validate(config: &ClientConfig) -> Result<()> {
    if config.bootstrap_servers.is_empty() {
        return Err(Error::Config(
            "bootstrap_servers is empty: list at least one host:port".into(),
        ));
    }
    let sec = &config.security;
    if sec.protocol.uses_sasl() && sec.sasl.is_none() {
        return Err(Error::Config(format!(
            "security_protocol {} needs a SASL mechanism: set sasl_mechanism, sasl_username and sasl_password",
            sec.protocol
        )));
    }
    if !sec.protocol.uses_sasl() && sec.sasl.is_some() {
        return Err(Error::Config(format!(
            "a SASL mechanism is configured but security_protocol is {}; use SASL_SSL (or SASL_PLAINTEXT)",
            sec.protocol
        )));
    }
    if config.connect_timeout.is_zero() || config.request_timeout.is_zero() {
        return Err(Error::Config("timeouts must be greater than zero".into()));
    }
    if config.max_response_bytes < 1024 {
        return Err(Error::Config(
            "max_response_bytes is too small to hold any response".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 0..20 {
            let d = backoff(base, max, attempt);
            let full = base.saturating_mul(1 << attempt.min(16)).min(max);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }
}

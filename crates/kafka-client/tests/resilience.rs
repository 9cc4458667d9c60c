//! Stale metadata, a broker that dies and comes back, and SASL sessions that expire: the
//! client must recover by itself, against real brokers.

mod common;

use std::time::{Duration, Instant};

use kafka_client::sasl::mechanism_from_config;
use kafka_client::{
    ClientConfig, IsolationLevel, KafkaClient, OffsetSpec, Secret, SecurityProtocol, TopicPartition,
};

const CREATE_TOPIC: &str = "import sys\nfrom confluent_kafka.admin import AdminClient, NewTopic\n\
a = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
[f.result() for f in a.create_topics([NewTopic(sys.argv[2], int(sys.argv[3]), 1)]).values()]\n";

#[tokio::test]
async fn a_topic_created_after_connecting_is_found_by_refreshing_metadata() {
    let client = KafkaClient::connect(common::plaintext_config())
        .await
        .unwrap();
    let topic = common::unique_topic("late-topic");
    assert!(!client.metadata().topics.contains_key(&topic));
    common::python(CREATE_TOPIC, &[&common::plaintext_broker(), &topic, "2"]);
    // The cache does not know the topic: routing fails with UNKNOWN_TOPIC_OR_PARTITION, which
    // must trigger a refresh and succeed.
    let tps = [
        TopicPartition::new(&topic, 0),
        TopicPartition::new(&topic, 1),
    ];
    let offsets = client
        .list_offsets(&tps, OffsetSpec::Latest, IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    assert_eq!(offsets.len(), 2);
    assert!(client.metadata().topics.contains_key(&topic));
}

#[tokio::test]
async fn the_client_recovers_when_a_broker_is_killed_and_restarted() {
    let mut broker = common::OwnBroker::start();
    let topic = common::unique_topic("restart");
    common::python(CREATE_TOPIC, &[&broker.address(), &topic, "1"]);
    let mut config = ClientConfig::new(vec![broker.address().parse().unwrap()]);
    config.retry_backoff = Duration::from_millis(200);
    config.retry_backoff_max = Duration::from_secs(1);
    config.max_retries = 20;
    config.connect_timeout = Duration::from_secs(2);
    let client = KafkaClient::connect(config).await.unwrap();
    let tp = TopicPartition::new(&topic, 0);
    client
        .list_offsets(
            std::slice::from_ref(&tp),
            OffsetSpec::Latest,
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();

    broker.kill();
    // Bring it back after the client has started failing and backing off.
    let restart = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        broker.spawn();
        broker
    });
    let started = Instant::now();
    let offsets = client
        .list_offsets(
            std::slice::from_ref(&tp),
            OffsetSpec::Latest,
            IsolationLevel::ReadUncommitted,
        )
        .await
        .expect("list_offsets recovers after the broker restarts");
    assert!(offsets.contains_key(&tp));
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "the broker was down, so the call must have waited"
    );
    let _broker = restart.join().unwrap();
}

#[tokio::test]
async fn sasl_sessions_are_renewed_in_place_before_the_broker_expires_them() {
    let broker = common::get("/brokers/sasl_plaintext");
    let mut config = ClientConfig::new(vec![broker.parse().unwrap()]);
    config.security.protocol = SecurityProtocol::SaslPlaintext;
    config.security.sasl = Some(
        mechanism_from_config(
            "SCRAM-SHA-512",
            &common::get("/scram/sha512/username"),
            Secret::new(common::get("/scram/sha512/password")),
        )
        .unwrap(),
    );
    let client = KafkaClient::connect(config).await.unwrap();
    let first = client.bootstrap_connection().await.unwrap();
    let lifetime = first.info().sasl.as_ref().unwrap().session_lifetime_ms;
    assert!(
        lifetime > 0 && lifetime <= 120_000,
        "the test broker announces a short session lifetime, got {lifetime} ms"
    );
    let start = Instant::now();
    // Keep using the client across the broker's session lifetime: every call must work, on
    // the same connection, renewed by KIP-368 re-authentication rather than replaced.
    while start.elapsed() < Duration::from_millis(lifetime as u64) + Duration::from_secs(3) {
        client
            .refresh_metadata()
            .await
            .expect("metadata across session expiry");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(
        first.reauthentications() >= 1,
        "the session was renewed in place"
    );
    assert!(first.is_alive() && !first.is_retiring());
    let now = client.bootstrap_connection().await.unwrap();
    assert_eq!(
        now.info().sasl.as_ref().unwrap().authenticated_at,
        first.info().sasl.as_ref().unwrap().authenticated_at,
        "the client still uses the first connection"
    );
}

/// PLAIN and SCRAM-SHA-256 against the proxy that ends sessions after 3 s and closes a
/// connection that sends anything but a re-authentication after that: the client keeps
/// working on its first connection by renewing the session in place.
#[tokio::test]
async fn plain_and_scram_sessions_of_three_seconds_are_renewed_in_place() {
    let broker = common::get("/brokers/sasl_reauth");
    for (mechanism, user, password) in [
        ("PLAIN", "/plain/username", "/plain/password"),
        (
            "SCRAM-SHA-256",
            "/scram/sha256/username",
            "/scram/sha256/password",
        ),
    ] {
        let mut config = ClientConfig::new(vec![broker.parse().unwrap()]);
        config.security.protocol = SecurityProtocol::SaslPlaintext;
        config.security.sasl = Some(
            mechanism_from_config(
                mechanism,
                &common::get(user),
                Secret::new(common::get(password)),
            )
            .unwrap(),
        );
        let client = KafkaClient::connect(config).await.unwrap();
        let first = client.bootstrap_connection().await.unwrap();
        assert_eq!(
            first.info().sasl.as_ref().unwrap().session_lifetime_ms,
            3000
        );
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(8) {
            client
                .refresh_metadata()
                .await
                .unwrap_or_else(|e| panic!("{mechanism}: metadata across session ends: {e}"));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(
            first.reauthentications() >= 2,
            "{mechanism}: renewed {} times",
            first.reauthentications()
        );
        assert!(
            first.is_alive(),
            "{mechanism}: the first connection still serves"
        );
        let now = client.bootstrap_connection().await.unwrap();
        assert_eq!(
            now.info().sasl.as_ref().unwrap().authenticated_at,
            first.info().sasl.as_ref().unwrap().authenticated_at,
            "{mechanism}: still the first connection"
        );
    }
}

/// A mechanism that cannot re-authenticate: SCRAM with `reauthenticates()` false, as a
/// plugin might be.
#[derive(Debug)]
struct NoRenewal(std::sync::Arc<dyn kafka_client::sasl::SaslMechanism>);

impl kafka_client::sasl::SaslMechanism for NoRenewal {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn principal(&self) -> Option<&str> {
        self.0.principal()
    }
    fn start(
        &self,
        broker: &kafka_client::BrokerAddress,
    ) -> Result<Box<dyn kafka_client::sasl::SaslExchange>, kafka_client::sasl::SaslError> {
        self.0.start(broker)
    }
    fn reauthenticates(&self) -> bool {
        false
    }
}

/// Without re-authentication the connection is retired before the session ends and a fresh
/// one carries on: the proxy never sees a request after a session's end.
#[tokio::test]
async fn a_mechanism_that_cannot_renew_moves_to_a_fresh_connection_in_time() {
    let broker = common::get("/brokers/sasl_reauth");
    let user = common::get("/scram/sha256/username");
    let stats = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(common::get("/sasl_proxy/reauth_stats")).unwrap())
            .unwrap()
    };
    let expired = |s: &serde_json::Value| {
        s["by_principal"][&user]["expired_closes"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = expired(&stats());
    let mut config = ClientConfig::new(vec![broker.parse().unwrap()]);
    config.security.protocol = SecurityProtocol::SaslPlaintext;
    config.security.sasl = Some(std::sync::Arc::new(NoRenewal(
        mechanism_from_config(
            "SCRAM-SHA-256",
            &user,
            Secret::new(common::get("/scram/sha256/password")),
        )
        .unwrap(),
    )));
    let client = KafkaClient::connect(config).await.unwrap();
    let first = client.bootstrap_connection().await.unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(7) {
        client
            .refresh_metadata()
            .await
            .expect("metadata across session ends");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(first.is_retiring(), "the first connection was retired");
    assert_eq!(first.reauthentications(), 0);
    let now = client.bootstrap_connection().await.unwrap();
    assert!(now.is_alive());
    assert_ne!(
        now.info().sasl.as_ref().unwrap().authenticated_at,
        first.info().sasl.as_ref().unwrap().authenticated_at,
        "a fresh connection"
    );
    assert_eq!(
        expired(&stats()),
        before,
        "no request after a session's end"
    );
}

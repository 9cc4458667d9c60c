//! Shared helpers of the kafka-client integration tests.
#![allow(dead_code)]

pub use test_support::*;

/// Client configuration for the PLAINTEXT broker.
pub fn plaintext_config() -> kafka_client::ClientConfig {
    kafka_client::ClientConfig::new(vec![plaintext_broker().parse().unwrap()])
}

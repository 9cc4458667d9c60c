//! A Kafka wire client for kafka-backup: TCP and TLS connections, SASL authentication,
//! per-API version negotiation, metadata with leader routing, and the calls a backup and
//! restore tool needs. It knows nothing about backups.
// Without Kerberos there is no unsafe code at all. The `gssapi` feature needs a few FFI calls
// (sasl::gssapi), which allow it locally; everywhere else it stays an error.
#![cfg_attr(not(feature = "gssapi"), forbid(unsafe_code))]
#![cfg_attr(feature = "gssapi", deny(unsafe_code))]
#![warn(missing_docs)]

mod address;
pub mod admin;
/// Record batch headers and producer stamping (re-exported from `kafka-records`).
pub use kafka_records::batch;
pub mod client;
pub mod config;
pub mod connection;
mod delete;
pub mod error;
pub mod fetch;
mod frame;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod sasl;
pub mod secret;
mod stream;
pub mod tls;
pub mod versions;

pub use admin::{ConfigEntry, ConfigSource, CreateTopicResult, NewTopic, non_default};
pub use client::KafkaClient;
pub use config::{BrokerAddress, ClientConfig, Security, SecurityProtocol, TlsOptions};
pub use connection::{Connection, ConnectionInfo, SaslSessionInfo};
pub use error::{Error, ErrorKind, Result};
pub use fetch::{AbortedTransaction, FetchOptions, FetchPartition, FetchResult, FetchedPartition};
pub use groups::{CommittedOffset, GroupDescription, GroupListing, GroupMember};
pub use metadata::{ClusterMetadata, TopicPartition};
pub use offsets::{IsolationLevel, ListedOffset, OffsetSpec};
pub use produce::{IdempotentProducer, ProduceAck};
pub use secret::Secret;

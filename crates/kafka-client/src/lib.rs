//! A Kafka wire client for kafka-backup: TCP and TLS connections, SASL authentication,
//! per-API version negotiation, metadata with leader routing, and the calls a backup and
//! restore tool needs. It knows nothing about backups.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod sasl;
pub mod secret;
pub mod tls;

pub use config::{BrokerAddress, ClientConfig, Security, SecurityProtocol, TlsOptions};
pub use error::{Error, ErrorKind, Result};
pub use secret::Secret;

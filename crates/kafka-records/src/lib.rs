//! Kafka's record batch format (magic v2) as it travels between brokers, clients and the
//! backup: batch headers, CRC32C, and re-stamping for an idempotent producer. Pure code over
//! bytes with bounded parsing, shared by the wire client and the backup format.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;

pub use batch::{BatchError, BatchHeader};

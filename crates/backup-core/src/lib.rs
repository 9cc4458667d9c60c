//! The engines of kafka-backup and what they share: configuration, storage, and the backup,
//! restore and validate flows.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod backup;
pub mod catalog;
pub mod check;
pub mod config;
pub mod decrypt;
pub mod drill;
pub mod keys;
pub mod metrics;
pub mod permissions;
pub mod posture;
pub mod prune;
pub mod quarantine;
pub mod restore;
pub mod storage;
pub mod validate;

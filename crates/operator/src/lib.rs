//! The Kubernetes operator of kafka-backup.
//!
//! - [`crd`]: the `KafkaBackup` and `KafkaRestore` custom resources (group `kafka.oso.sh`,
//!   version `v1alpha1`), whose field names are the ones users of the peer tool already write.
//! - [`render`]: pure functions from a custom resource to the objects the operator applies (a
//!   ConfigMap holding the kafka-backup configuration, and a CronJob or Job running it).
//!
//! Secrets never appear in rendered objects: the configuration holds only `${VAR}` and
//! `${file:/path}` references, which backup-core's configuration loader resolves in the Pod
//! from environment variables and mounted Secret files.

#![warn(missing_docs)]

pub mod crd;
pub mod render;

//! The audit trail: who ran which command, when, against what, with what outcome.
//!
//! Every command of the CLI records an [`AuditEvent`] when it starts and when it ends (a
//! configuration that fails to load ends the command at once: one `end` event). Sinks write
//! each event as one line of JSON ([`chain`] describes the line): a JSON-lines file
//! ([`file`]), standard output, or the backup storage. Within a stream (one file, one
//! storage prefix) every event carries the SHA-256 of the line before it and a sequence
//! number, and, where a signing key is configured, an Ed25519 signature over its own bytes:
//! an event removed, reordered, altered or inserted breaks the chain at that point, which
//! [`chain::Verifier`] reports.
//!
//! Events carry no secret: identities are names (the SASL user, a certificate's subject),
//! storage is its location and the *kind* of credential used, and the configuration is a
//! digest of its effective settings as this version parses them, secrets masked.

pub mod chain;
pub mod file;
pub mod store;
pub mod syslog;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Whether an event opens or closes a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The command started (its configuration loaded).
    Start,
    /// The command ended, with an outcome and exit code.
    End,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Exit code 0.
    Success,
    /// Part of the work was done (exit code 6).
    Partial,
    /// Any other exit code.
    Failure,
}

impl Outcome {
    /// The outcome of an exit code.
    pub fn of_exit_code(code: i32) -> Self {
        match code {
            0 => Self::Success,
            6 => Self::Partial,
            _ => Self::Failure,
        }
    }

    /// `success`, `partial` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Partial => "partial",
            Self::Failure => "failure",
        }
    }
}

/// The cluster a command talked to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRef {
    /// `source` (backup) or `target` (restore).
    pub role: String,
    /// The cluster id the brokers reported, when the command got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `bootstrap_servers` as configured.
    pub bootstrap_servers: Vec<String>,
    /// The security protocol (`SASL_SSL`, ...).
    pub security_protocol: String,
}

/// The storage a command used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageRef {
    /// Where: `s3://bucket/prefix`, `file:///dir`, ...
    pub location: String,
    /// Which kind of credential was used, in words (never the credential).
    pub credential_source: String,
}

/// One audit event, without its chain fields (which the sink adds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// Start or end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The command (`backup`, `restore`, `validate`, `offsets show`, ...).
    pub command: String,
    /// How it ended (`end` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The process exit code (`end` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it failed: the error message the operator saw (which never holds a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the command did, in words, where its figures do not say it (a quarantine's
    /// reason, a restore that overrode a quarantine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The backup the command worked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// The backup run (backup) or restore id (restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The Kafka cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRef>,
    /// Who the command authenticated to Kafka as: `User:NAME` (SASL), the client
    /// certificate's subject (mTLS), or `ANONYMOUS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageRef>,
    /// Ids of the keys used: encryption key ids, the signing key's id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ids: Vec<String>,
    /// Figures of the work: records, bytes read and written, segments, ...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
    /// How long the command ran (`end` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The host it ran on.
    pub host: String,
    /// The operating-system user it ran as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
    /// Its process id.
    pub pid: u32,
    /// A random id shared by the `start` and `end` events of one command.
    pub invocation: String,
    /// kafka-backup's version.
    pub tool_version: String,
    /// SHA-256 of the effective configuration (secrets masked), when one was loaded: the
    /// same file and environment give the same digest with the same version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
    /// The configuration file's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
}

/// An audit trail that cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The audit file cannot be opened, locked, read or written.
    #[error(
        "cannot write the audit log {path}: {source}. Check that the directory exists and this \
         user may write the file, or change audit.file / --audit-file"
    )]
    File {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file's last line is not an event of this format, so the next one cannot be
    /// chained to it.
    #[error(
        "cannot append to the audit log {path}: its last line is not an audit event ({reason}), \
         so a new event cannot be chained to it. Run `kafka-backup audit verify --file {path}` \
         to see where it breaks, keep the file as evidence and start a new one"
    )]
    Unchainable {
        /// The file.
        path: String,
        /// What is wrong with its last line.
        reason: String,
    },
    /// An event could not be encoded (a bug), or a stream named with an invalid backup id.
    #[error("cannot encode an audit event: {0}")]
    Encode(String),
    /// The storage sink failed.
    #[error("cannot write or read the audit trail in storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// The syslog server could not be reached or refused the message.
    #[error(
        "cannot send the audit event to syslog at {target}: {why}. Check that the server listens \
         there (and accepts this host), or change audit.syslog"
    )]
    Syslog {
        /// The address.
        target: String,
        /// What failed.
        why: String,
    },
    /// A trail in storage holds more objects than a reader holds.
    #[error(
        "the audit trail at {location} holds more than {limit} objects, more than kafka-backup \
         reads at once; it was not read further. Check what else writes under that prefix"
    )]
    TooLarge {
        /// The stream.
        location: String,
        /// The most objects held.
        limit: usize,
    },
    /// Other writers kept taking the next sequence number.
    #[error(
        "cannot append to the audit trail at {location}: {attempts} sequence numbers in a row \
         were taken by other writers; try again, and check what else writes to this backup"
    )]
    Contended {
        /// The stream.
        location: String,
        /// How many numbers were tried.
        attempts: usize,
    },
}

/// SHA-256 of `bytes`, lower-case hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    crate::keys::hex(digest.as_ref())
}

/// SHA-256 of the effective configuration as this version holds it after loading: every
/// setting and default, `${VAR}` values substituted, secrets and key material masked (their
/// `Debug` forms print neither). Tells whether two runs used the same settings without
/// storing them; it may change between versions of kafka-backup.
pub fn config_digest(loaded: &crate::config::LoadedConfig) -> String {
    sha256_hex(format!("{loaded:?}").as_bytes())
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    let layout = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&layout)
        .unwrap_or_default()
}

//! Process exit codes, one per class of failure, so scripts and schedulers can tell a broken
//! configuration from an unreachable cluster without parsing messages.

use backup_core::config::ConfigError;
use kafka_client::ErrorKind;

/// Exit status of the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked.
    Ok = 0,
    /// An unexpected failure not covered below.
    Failure = 1,
    /// The command line itself was wrong (clap uses 2 as well).
    Usage = 2,
    /// The configuration file is invalid.
    Config = 3,
    /// Connecting or authenticating to Kafka failed (network, TLS, SASL, ACLs, protocol).
    Kafka = 4,
    /// Storage (or the key service, KMS) could not be reached or refused an operation.
    Storage = 5,
    /// Part of the work succeeded, part failed (or a snapshot was interrupted).
    Partial = 6,
    /// The backup failed an integrity check (validate found problems, or restore refused).
    Integrity = 7,
    /// `check --security` found a finding at or above `--fail-on`.
    Findings = 8,
}

impl Exit {
    /// A short name of what failed, for the `errors` metric's `kind` label.
    pub fn kind(self) -> &'static str {
        match self {
            Exit::Ok => "none",
            Exit::Failure => "failure",
            Exit::Usage => "usage",
            Exit::Config => "config",
            Exit::Kafka => "kafka",
            Exit::Storage => "storage",
            Exit::Partial => "partial",
            Exit::Integrity => "integrity",
            Exit::Findings => "findings",
        }
    }

    /// The exit code for a Kafka client failure.
    pub fn for_kafka(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Config => Exit::Config,
            _ => Exit::Kafka,
        }
    }

    /// The exit code for a key provider failure: a key to configure is a configuration
    /// problem, a key service that refuses or cannot be reached is treated like storage, a
    /// damaged wrapped key like any damaged object.
    pub fn for_keys(kind: backup_core::keys::KeyErrorKind) -> Self {
        use backup_core::keys::KeyErrorKind as K;
        match kind {
            K::Configuration | K::NoMatchingKey => Exit::Config,
            K::AccessDenied | K::Unreachable => Exit::Storage,
            K::InvalidWrappedKey => Exit::Integrity,
            K::Internal => Exit::Failure,
        }
    }

    /// The exit code for a configuration failure.
    pub fn for_config(_: &ConfigError) -> Self {
        Exit::Config
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// A failure with the exit code it maps to. The message is already written for an operator.
#[derive(Debug)]
pub struct Failed {
    /// Exit code.
    pub exit: Exit,
    /// One paragraph: cause and fix.
    pub message: String,
}

impl Failed {
    /// A failure of class `exit`.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

impl From<ConfigError> for Failed {
    fn from(e: ConfigError) -> Self {
        Failed::new(Exit::for_config(&e), e.to_string())
    }
}

impl From<kafka_client::Error> for Failed {
    fn from(e: kafka_client::Error) -> Self {
        Failed::new(Exit::for_kafka(e.kind()), e.to_string())
    }
}

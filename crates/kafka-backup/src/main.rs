//! The `kafka-backup` command line: parse arguments, set up logging, run one command, and map
//! its outcome to an exit code.

mod commands;
mod exit;
mod logging;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::exit::{Exit, Failed};

/// Back up and restore Apache Kafka topics, consumer-group offsets and topic configuration.
#[derive(Debug, Parser)]
#[command(name = "kafka-backup", version, about, long_about = None)]
struct Cli {
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, value_enum, default_value_t = logging::LogFormat::Text, global = true)]
    log_format: logging::LogFormat,

    /// Log level (error, warn, info, debug, trace) or a tracing filter such as
    /// `kafka_client=debug`. Overrides RUST_LOG.
    #[arg(long, global = true)]
    log_level: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to the cluster of a configuration (source for backup, target for restore),
    /// authenticate, and report TLS, SASL, API versions and visible topics of every broker.
    Check {
        /// The backup or restore configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Back up the selected topics of the source cluster to storage. A snapshot stops at the
    /// offsets found at start; `backup.continuous: true` keeps following new records until
    /// SIGINT or SIGTERM, which stores every open segment and the manifest before exiting.
    Backup {
        /// The backup configuration file (mode: backup).
        #[arg(long, short)]
        config: PathBuf,
        /// Format of the final summary.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Restore a backup into the target cluster: verify every segment first, then produce the
    /// committed records in order, and move the consumer groups. Interrupted, it continues
    /// where it stopped when run again.
    Restore {
        /// The restore configuration file (mode: restore).
        #[arg(long, short)]
        config: PathBuf,
        /// Print the plan (topics, partitions, records, target names, group changes) and stop.
        #[arg(long)]
        dry_run: bool,
        /// Restore even if the backup fails its integrity check (what failed is left out).
        #[arg(long)]
        force: bool,
        /// Also restore segments that are not authenticated: no configured key signed their
        /// name and no authentic manifest lists them (without verify keys: no manifest lists
        /// them, e.g. those of a backup run killed before its manifest).
        #[arg(long)]
        accept_unauthenticated: bool,
        #[command(flatten)]
        trust: commands::TrustArgs,
        /// Format of the report.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Read every object of a backup and report what is missing, damaged or inconsistent:
    /// hashes, segment structure and CRCs, identity, offset continuity, manifests. Needs
    /// storage read access only, never Kafka. Exits 7 when any problem is an error.
    Validate {
        /// A backup or restore configuration: its `storage:` and `backup_id` are used.
        #[arg(long, short)]
        config: PathBuf,
        /// Also decode every record and check the transaction markers (slower: CPU-bound).
        #[arg(long)]
        deep: bool,
        /// Only these topics (glob patterns, `*` and `?`); repeat for several. Problems of the
        /// backup as a whole are always reported.
        #[arg(long = "topic", value_name = "PATTERN")]
        topics: Vec<String>,
        #[command(flatten)]
        trust: commands::TrustArgs,
        /// Format of the report.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// List the backups in the configured storage location (the file's `backup_id` is not
    /// used). Needs storage read access only.
    List {
        /// A backup or restore configuration: its `storage:` is used.
        #[arg(long, short)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Show what a backup holds: topics, partitions with offset and time ranges, record
    /// counts, sizes, runs and consumer-group snapshots. Needs storage read access only.
    Describe {
        /// A backup or restore configuration: its `storage:` and `backup_id` are used.
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        trust: commands::TrustArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Consumer offsets of a restore.
    Offsets {
        #[command(subcommand)]
        command: OffsetsCommand,
    },
    /// Encryption and signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a new key: an age identity and recipient (public-key encryption), a local key
    /// (key_provider: local), or an Ed25519 signing key and its verify key. Private files are
    /// created with mode 600 and never overwrite an existing file; the directory must exist.
    /// Prints the recipient, fingerprint or key id.
    Generate {
        /// What to create.
        #[arg(long = "type", value_enum)]
        kind: commands::keys::KeyKind,
        /// The private key file to create; public keys go to PATH.pub.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
enum OffsetsCommand {
    /// Print the source -> target offset map of a restore and the translated offsets of the
    /// backed-up consumer groups, for review or to apply by hand.
    Show {
        /// The restore configuration file (mode: restore).
        #[arg(long, short)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    Text,
    /// One JSON document for machines.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.log_format, cli.log_level.as_deref()) {
        eprintln!("error: {e}");
        return Exit::Usage.into();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Check { config, format } => commands::check::run(&config, format).await,
            Command::Backup { config, format } => {
                commands::backup::run(&config, format, cli.log_format).await
            }
            Command::Restore {
                config,
                dry_run,
                force,
                accept_unauthenticated,
                trust,
                format,
            } => {
                commands::restore::run(
                    &config,
                    format,
                    dry_run,
                    force,
                    accept_unauthenticated,
                    &trust,
                )
                .await
            }
            Command::Validate {
                config,
                deep,
                topics,
                trust,
                format,
            } => {
                commands::validate::run(&config, deep, topics, &trust, format, cli.log_format).await
            }
            Command::List { config, format } => commands::list::run(&config, format).await,
            Command::Describe {
                config,
                trust,
                format,
            } => commands::describe::run(&config, &trust, format).await,
            Command::Offsets {
                command: OffsetsCommand::Show { config, format },
            } => commands::restore::show(&config, format).await,
            Command::Keys {
                command: KeysCommand::Generate { kind, out, format },
            } => commands::keys::generate(kind, &out, format),
        }
    });
    match result {
        Ok(exit) => exit.into(),
        Err(Failed { exit, message }) => {
            logging::report_failure(cli.log_format, &message);
            exit.into()
        }
    }
}

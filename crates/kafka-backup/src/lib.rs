//! The `kafka-backup` command line: parse arguments, set up logging, run one command, and map
//! its outcome to an exit code.
//!
//! It is a library so that a downstream binary can add SASL mechanisms without a fork:
//! register them with `kafka_client::sasl::register_mechanism`, then call [`run`]. See
//! `examples/msk-iam` in the repository.

mod audit;
mod commands;
mod exit;
mod logging;
mod metrics;
mod summary;

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

    /// Append this command's audit events to this JSON-lines file (created 0600; adds to the
    /// configuration's `audit.file`). Also the only sink of a configuration that fails to load.
    #[arg(
        long,
        global = true,
        env = "KAFKA_BACKUP_AUDIT_FILE",
        value_name = "PATH"
    )]
    audit_file: Option<PathBuf>,

    /// Also print this command's audit events on stdout, one JSON line each.
    #[arg(long, global = true)]
    audit_stdout: bool,

    /// Serve Prometheus metrics at http://HOST:PORT/metrics while the command runs (records,
    /// bytes, segments, per-partition lag, errors, last success).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,

    /// Write the metrics to this file when the command ends (OpenMetrics text; for the
    /// node-exporter textfile collector).
    #[arg(long, global = true, value_name = "PATH")]
    metrics_file: Option<PathBuf>,

    /// Write a one-line JSON summary of the command (exit code, outcome, run id, shard,
    /// records, bytes, error) to this file when it ends, at most 4 KiB: in Kubernetes,
    /// /dev/termination-log, which the operator reads back into the resource's status.
    #[arg(long, global = true, value_name = "PATH")]
    summary_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to the cluster of a configuration (source for backup, target for restore),
    /// authenticate, and report TLS, SASL, API versions and visible topics of every broker.
    /// With --security: instead list the configuration's security weaknesses (offline).
    Check {
        /// The backup or restore configuration file. With --security, repeat it to assess
        /// several (a backup and a restore configuration are also compared for a shared
        /// identity).
        #[arg(long, short, required = true)]
        config: Vec<PathBuf>,
        /// Assess the security posture of the configurations and the files they name:
        /// findings with severity, evidence and fix. Contacts neither Kafka nor storage.
        #[arg(long, conflicts_with = "permissions")]
        security: bool,
        /// Probe the storage identity for least privilege: try to list, create a canary
        /// object, read and delete it, and compare with what the role needs. Exits 8 on a
        /// missing or a forbidden right.
        #[arg(long)]
        permissions: bool,
        /// With --permissions: the role to probe (default: the configuration's mode).
        #[arg(long, value_enum, requires = "permissions")]
        role: Option<commands::permissions::RoleArg>,
        /// With --permissions: probe only the storage (and KMS) identity, or only the Kafka
        /// principal (default: both).
        #[arg(long, value_enum, requires = "permissions")]
        only: Option<commands::permissions::Only>,
        /// With --security: also ask the storage service about the bucket itself (S3: default
        /// encryption, Block Public Access, policy status, ACL), with the configured
        /// credentials.
        #[arg(long, requires = "security")]
        storage: bool,
        /// With --security: exit 8 when a finding is at or above this severity.
        #[arg(long, value_name = "LOW|MEDIUM|HIGH", value_parser = parse_severity, requires = "security")]
        fail_on: Option<backup_core::posture::Severity>,
        /// Output format (`sarif` with --security only).
        #[arg(long, value_enum, default_value_t = commands::posture::PostureFormat::Text)]
        format: commands::posture::PostureFormat,
    },
    /// Back up the selected topics of the source cluster to storage. A snapshot stops at the
    /// offsets found at start; `backup.continuous: true` keeps following new records until
    /// SIGINT or SIGTERM, which stores every open segment and the manifest before exiting.
    Backup {
        /// The backup configuration file (mode: backup).
        #[arg(long, short)]
        config: PathBuf,
        /// Back up one shard of the selected partitions: INDEX of COUNT processes (from 0)
        /// that back up this backup at once, each in a run of its own. Without it, and with
        /// `backup.shards` above 1, the index comes from JOB_COMPLETION_INDEX (a Kubernetes
        /// Indexed Job).
        #[arg(long, value_name = "INDEX/COUNT", value_parser = parse_shard)]
        shard: Option<backup_format::Shard>,
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
        /// Restore a quarantined backup (e.g. into a scratch cluster for forensics); the
        /// audit trail records the override.
        #[arg(long)]
        allow_quarantined: bool,
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
    /// Mark the configuration's backup as suspect: restores refuse it until it is released.
    /// Writes a create-only marker (signed with the configuration's signing key when it has
    /// one); a release must be signed, and counts for restores only when its signature is
    /// trusted. Needs storage put and list.
    Quarantine {
        /// A configuration with the backup's `storage:` and `backup_id` (and, to release, a
        /// signing key: `backup.signing_key` or `audit.signing_key`).
        #[arg(long, short)]
        config: PathBuf,
        /// Why: recorded in the marker and the audit trail.
        #[arg(long)]
        reason: String,
        /// Lift the quarantine instead.
        #[arg(long)]
        release: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Restore drill: restores the backup of a restore configuration into scratch topics and
    /// groups (every name prefixed), proves the result record by record and group position by
    /// group position, and reports the time to restore (RTO) and the age of the newest data
    /// (RPO). Exit 7 when anything differs.
    Drill {
        /// A restore configuration (its target cluster receives the scratch topics).
        #[arg(long, short)]
        config: PathBuf,
        /// Prefix of the scratch topics and groups (default: kb-drill-<UTC time>-).
        #[arg(long)]
        prefix: Option<String>,
        /// Delete the scratch topics and groups afterwards.
        #[arg(long)]
        cleanup: bool,
        /// Restore segments that no configured key authenticates.
        #[arg(long)]
        accept_unauthenticated: bool,
        #[command(flatten)]
        trust: commands::TrustArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Retention (admin role): removes the runs a policy no longer keeps, never a segment a
    /// kept run needs, and records what it removed. A dry run unless --execute.
    Prune {
        /// A configuration with the backup's `storage:` and `backup_id` (and, for a signed
        /// backup, the admin's signing key: `backup.signing_key` or `audit.signing_key`).
        #[arg(long, short)]
        config: PathBuf,
        /// Keep the newest N runs.
        #[arg(long, value_name = "N")]
        keep_last: Option<u32>,
        /// Keep runs active within this age: 30d, 12h or 90m.
        #[arg(long, value_name = "AGE", value_parser = commands::prune::parse_age)]
        max_age: Option<std::time::Duration>,
        /// Delete; without it, only show what would be removed.
        #[arg(long)]
        execute: bool,
        #[command(flatten)]
        trust: commands::TrustArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Evidence for reviews and auditors: `--evidence` validates each backup (through the
    /// restore configurations), verifies the audit trails, assesses the posture and maps the
    /// data boundary, into OUT.json (a DSSE envelope with --sign-with) and OUT.md; `--verify`
    /// checks such a document's signature.
    Report {
        /// Build the evidence document.
        #[arg(long, conflicts_with = "verify", required_unless_present = "verify")]
        evidence: bool,
        /// Check the signature of this evidence document instead.
        #[arg(long, value_name = "FILE")]
        verify: Option<PathBuf>,
        /// The configurations to cover (backup ones for the boundary and posture, restore
        /// ones also to validate the backups and their audit trail in storage).
        #[arg(long, short)]
        config: Vec<PathBuf>,
        /// Audit logs (JSON lines) to verify and include; repeatable.
        #[arg(long = "audit-log", value_name = "PATH")]
        audit_logs: Vec<PathBuf>,
        /// Sign the document with this Ed25519 key (PKCS#8 PEM).
        #[arg(long, value_name = "PATH")]
        sign_with: Option<PathBuf>,
        /// Where to write: OUT.json and OUT.md.
        #[arg(long, default_value = "evidence")]
        out: PathBuf,
        /// With --verify: the public keys that may have signed it.
        #[arg(long = "verify-key", value_name = "PATH")]
        verify_keys: Vec<PathBuf>,
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
    /// The audit trail: check a log's chain and signatures, read its events.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run the Kubernetes operator: turn KafkaBackup and KafkaRestore resources into a
    /// ConfigMap and a CronJob or Job running kafka-backup, and report their runs in their
    /// status. Runs until SIGTERM; serves /metrics with the global --metrics-addr. `operator
    /// crds` prints the CustomResourceDefinitions instead.
    Operator {
        #[command(subcommand)]
        command: Option<OperatorCommand>,
        #[command(flatten)]
        args: commands::operator::OperatorArgs,
    },
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Print the KafkaBackup and KafkaRestore CustomResourceDefinitions as YAML, for
    /// `kafka-backup operator crds | kubectl apply -f -`.
    Crds,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check that no event of an audit log was altered, removed, reordered or inserted: each
    /// line's link to the one before it and, with --verify-key, every event's signature.
    /// Reports the first break and exits 7 on one.
    Verify {
        /// The audit log (JSON lines).
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        file: Option<PathBuf>,
        /// Instead of a file: the `audit/{backup_id}/` stream in this configuration's storage
        /// (verify keys default to the configuration's).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The public half of the key that signs the events (PEM); repeat while rotating.
        #[arg(long = "verify-key", value_name = "PATH")]
        verify_keys: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Print the events of an audit log, filtered.
    Show {
        /// The audit log (JSON lines).
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        file: Option<PathBuf>,
        /// Instead of a file: the `audit/{backup_id}/` stream in this configuration's storage.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        filter: commands::audit::ShowFilter,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
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

fn parse_severity(text: &str) -> Result<backup_core::posture::Severity, String> {
    backup_core::posture::Severity::parse(text)
        .ok_or_else(|| format!("`{text}` is not a severity: give LOW, MEDIUM or HIGH"))
}

fn parse_shard(text: &str) -> Result<backup_format::Shard, String> {
    text.parse()
        .map_err(|e: backup_format::ShardError| e.to_string())
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    Text,
    /// One JSON document for machines.
    Json,
}

/// Makes every file and directory this process creates private to its user (0600 / 0700):
/// backup objects in a file-system store, progress files, keys, whatever the inherited umask
/// would have allowed. Set before anything is created, for the whole process.
/// MIT Kerberos takes its krb5.conf only from the `KRB5_CONFIG` environment variable, which
/// is safe to set only while no other thread runs: so it is set here, before the runtime
/// starts, from the configuration's `sasl_krb5_config_path`. A configuration that does not
/// load is left for the command to report.
#[cfg(feature = "gssapi")]
fn kerberos_config_before_threads(config: Option<&std::path::Path>) {
    let Some(path) = config else {
        return;
    };
    let Ok(loaded) = backup_core::config::load(path) else {
        return;
    };
    if let Some(sasl) = &loaded.cluster.security.sasl
        && let backup_core::config::SaslCredentials::Kerberos(kerberos) = &sasl.credentials
        && let Some(krb5_conf) = &kerberos.krb5_config_path
    {
        // A refusal is reported again, with the key, when the mechanism is built.
        let _ = kafka_client::sasl::gssapi::set_krb5_config(krb5_conf);
    }
}

fn private_files() {
    #[cfg(unix)]
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Runs the command line on this process's arguments and returns its exit code. Mechanisms
/// registered before the call can be selected with `sasl_mechanism`.
pub fn run() -> ExitCode {
    private_files();
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.log_format, cli.log_level.as_deref()) {
        eprintln!("error: {e}");
        return Exit::Usage.into();
    }
    #[cfg(feature = "gssapi")]
    kerberos_config_before_threads(cli.command.audit_identity().1.as_deref());
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
    let (name, config_path) = cli.command.audit_identity();
    audit::begin(
        &name,
        config_path.as_deref(),
        audit::CliSinks {
            files: cli.audit_file.clone().into_iter().collect(),
            stdout: cli.audit_stdout,
        },
    );
    if config_path.is_none()
        && let Err(Failed { exit, message }) = audit::start()
    {
        logging::report_failure(cli.log_format, &message);
        return exit.into();
    }
    if let Some(addr) = &cli.metrics_addr
        && let Err(Failed { exit, message }) = runtime.block_on(metrics::serve(addr))
    {
        logging::report_failure(cli.log_format, &message);
        return exit.into();
    }
    let metrics_file = cli.metrics_file.clone();
    let summary_file = cli.summary_file.clone();
    let result = runtime.block_on(async {
        match cli.command {
            Command::Check {
                config,
                security: true,
                fail_on,
                format,
                storage,
                ..
            } => commands::posture::run(&config, fail_on, storage, format).await,
            Command::Check {
                config,
                permissions: true,
                role,
                only,
                format,
                ..
            } => match (config.as_slice(), format) {
                ([one], commands::posture::PostureFormat::Text) => {
                    commands::permissions::run(one, role, only, OutputFormat::Text).await
                }
                ([one], commands::posture::PostureFormat::Json) => {
                    commands::permissions::run(one, role, only, OutputFormat::Json).await
                }
                _ => Err(Failed::new(
                    Exit::Usage,
                    "check --permissions probes one configuration, as text or json".to_owned(),
                )),
            },
            Command::Check {
                config,
                security: false,
                format,
                ..
            } => commands::check::connect(&config, format).await,
            Command::Backup {
                config,
                shard,
                format,
            } => commands::backup::run(&config, shard, format, cli.log_format).await,
            Command::Restore {
                config,
                dry_run,
                force,
                allow_quarantined,
                accept_unauthenticated,
                trust,
                format,
            } => {
                commands::restore::run(
                    &config,
                    format,
                    commands::restore::Overrides {
                        dry_run,
                        force,
                        allow_quarantined,
                        accept_unauthenticated,
                    },
                    &trust,
                )
                .await
            }
            Command::Quarantine {
                config,
                reason,
                release,
                format,
            } => commands::quarantine::run(&config, &reason, release, format).await,
            Command::Drill {
                config,
                prefix,
                cleanup,
                accept_unauthenticated,
                trust,
                format,
            } => {
                let args = commands::drill::DrillArgs {
                    prefix,
                    cleanup,
                    accept_unauthenticated,
                };
                commands::drill::run(&config, args, &trust, format).await
            }
            Command::Prune {
                config,
                keep_last,
                max_age,
                execute,
                trust,
                format,
            } => {
                let policy = backup_core::prune::Policy { keep_last, max_age };
                commands::prune::run(&config, policy, execute, &trust, format).await
            }
            Command::Report {
                verify: Some(file),
                verify_keys,
                ..
            } => commands::report::verify(&file, &verify_keys),
            Command::Report {
                config,
                audit_logs,
                sign_with,
                out,
                ..
            } => {
                if config.is_empty() {
                    Err(Failed::new(
                        Exit::Usage,
                        "report --evidence needs at least one --config".to_owned(),
                    ))
                } else {
                    commands::report::evidence(&config, &audit_logs, sign_with.as_deref(), &out)
                        .await
                }
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
            Command::Operator {
                command: Some(OperatorCommand::Crds),
                ..
            } => commands::operator::crds(),
            Command::Operator {
                command: None,
                args,
            } => commands::operator::run(args).await,
            Command::Audit {
                command:
                    AuditCommand::Verify {
                        file,
                        config,
                        verify_keys,
                        format,
                    },
            } => match (&file, &config) {
                (Some(f), _) => {
                    let source = commands::audit::Source::File(f);
                    commands::audit::verify(source, &verify_keys, format).await
                }
                (None, Some(c)) => {
                    let source = commands::audit::Source::Storage(c);
                    commands::audit::verify(source, &verify_keys, format).await
                }
                (None, None) => Err(Failed::new(
                    Exit::Usage,
                    "give --file (a JSON-lines log) or --config (the trail in storage)".to_owned(),
                )),
            },
            Command::Audit {
                command:
                    AuditCommand::Show {
                        file,
                        config,
                        filter,
                        format,
                    },
            } => match (&file, &config) {
                (Some(f), _) => {
                    commands::audit::show(commands::audit::Source::File(f), &filter, format).await
                }
                (None, Some(c)) => {
                    commands::audit::show(commands::audit::Source::Storage(c), &filter, format)
                        .await
                }
                (None, None) => Err(Failed::new(
                    Exit::Usage,
                    "give --file (a JSON-lines log) or --config (the trail in storage)".to_owned(),
                )),
            },
        }
    });
    let (mut exit, mut message) = match result {
        Ok(exit) => (exit, None),
        Err(Failed { exit, message }) => (exit, Some(message)),
    };
    if let Some(message) = &message {
        logging::report_failure(cli.log_format, message);
    }
    if exit != Exit::Ok {
        backup_core::metrics::metrics().error(exit.kind());
    }
    // A CronJob's alerts read this file: a command that succeeded but could not write it
    // fails (exit 1, on record in the audit trail), rather than leave the last run's figures
    // in place unnoticed.
    if let Some(path) = &metrics_file
        && let Err(why) = metrics::write_file(path)
    {
        logging::report_failure(cli.log_format, &why);
        if exit == Exit::Ok {
            exit = Exit::Failure;
            message = Some(why);
        }
    }
    if let Some(path) = &summary_file
        && let Err(why) = summary::write(path, &name, exit as i32, message.as_deref())
    {
        logging::report_failure(cli.log_format, &why);
        if exit == Exit::Ok {
            exit = Exit::Failure;
            message = Some(why);
        }
    }
    if let Err(why) = runtime.block_on(audit::end(exit as i32, message.as_deref())) {
        let message = format!(
            "the command's audit event could not be written, so the run is not on record: \
             {why}"
        );
        logging::report_failure(cli.log_format, &message);
        if exit == Exit::Ok {
            return Exit::Failure.into();
        }
    }
    exit.into()
}

impl Command {
    /// The command's name in audit events, and its configuration file.
    fn audit_identity(&self) -> (String, Option<PathBuf>) {
        let (name, config) = match self {
            Command::Check {
                config,
                security,
                permissions,
                ..
            } => (
                if *security {
                    "check --security"
                } else if *permissions {
                    "check --permissions"
                } else {
                    "check"
                },
                config.first(),
            ),
            Command::Backup { config, .. } => ("backup", Some(config)),
            Command::Restore { config, .. } => ("restore", Some(config)),
            Command::Validate { config, .. } => ("validate", Some(config)),
            Command::List { config, .. } => ("list", Some(config)),
            Command::Describe { config, .. } => ("describe", Some(config)),
            Command::Offsets {
                command: OffsetsCommand::Show { config, .. },
            } => ("offsets show", Some(config)),
            Command::Report {
                verify: Some(_), ..
            } => ("report --verify", None),
            Command::Report { config, .. } => ("report --evidence", config.first()),
            Command::Quarantine {
                config, release, ..
            } => (
                if *release {
                    "quarantine --release"
                } else {
                    "quarantine"
                },
                Some(config),
            ),
            Command::Drill { config, .. } => ("drill", Some(config)),
            Command::Prune {
                config, execute, ..
            } => (
                if *execute { "prune --execute" } else { "prune" },
                Some(config),
            ),
            Command::Keys {
                command: KeysCommand::Generate { .. },
            } => ("keys generate", None),
            Command::Operator {
                command: Some(OperatorCommand::Crds),
                ..
            } => ("operator crds", None),
            Command::Operator { command: None, .. } => ("operator", None),
            Command::Audit {
                command: AuditCommand::Verify { config, .. },
            } => ("audit verify", config.as_ref()),
            Command::Audit {
                command: AuditCommand::Show { config, .. },
            } => ("audit show", config.as_ref()),
        };
        (name.to_owned(), config.cloned())
    }
}

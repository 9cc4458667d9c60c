//! One module per command, and what the storage-only commands share.

pub mod audit;
pub mod backup;
pub mod check;
pub mod describe;
pub mod drill;
pub mod keys;
pub mod list;
pub mod operator;
pub mod permissions;
pub mod posture;
pub mod prune;
pub mod quarantine;
pub mod report;
pub mod restore;
pub mod validate;

use std::io::Read as _;
use std::path::{Path, PathBuf};

use backup_core::catalog::CatalogError;
use backup_core::config::{self, LoadedConfig};
use backup_core::decrypt::ReadKeys;
use backup_core::storage::Storage;
use backup_format::signing::VerifyingKey;
use serde::Serialize;

use crate::exit::{Exit, Failed};

/// Loads a backup or restore configuration and opens its storage, for the commands that read
/// a backup and never talk to Kafka (`validate`, `list`, `describe`): either mode will do, so
/// an operator can point them at the file the backup or the restore job already uses.
pub(crate) async fn open_store(
    config_path: &Path,
    uses_kafka: bool,
) -> Result<(LoadedConfig, Storage), Failed> {
    let loaded = load_config(config_path, uses_kafka)?;
    let storage_config = loaded.require_storage(&config_path.display().to_string())?;
    let storage = Storage::open_with(storage_config, &loaded.storage_options, &|name| {
        std::env::var(name).ok()
    })
    .map_err(|e| Failed::new(Exit::Storage, e.to_string()))?;
    crate::audit::storage(&storage).await?;
    Ok((loaded, storage))
}

/// Loads the configuration, logs its warnings and writes the audit trail's `start` event
/// (which must succeed before the command does anything). `uses_kafka`: the command talks to
/// the configuration's cluster.
pub(crate) fn load_config(config_path: &Path, uses_kafka: bool) -> Result<LoadedConfig, Failed> {
    let loaded = config::load(config_path)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    crate::audit::config_loaded(&loaded, uses_kafka)?;
    Ok(loaded)
}

/// What the reading commands authenticate with, from the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrustArgs {
    /// The backup's Ed25519 public key (PEM); repeat while the signing key is being rotated.
    /// Added to the configuration's `restore.verify_key` (for a backup configuration: its
    /// signing key's public half).
    #[arg(long = "verify-key", value_name = "PATH")]
    pub verify_keys: Vec<PathBuf>,
    /// A run that must be in the backup (from the audit log or the backup job's output):
    /// fails if it was deleted, which the chain of manifests alone cannot show. Repeatable.
    #[arg(long = "expect-run", value_name = "RUN_ID")]
    pub expect_runs: Vec<String>,
}

/// Reads the verify keys given on the command line.
pub(crate) fn read_verify_keys(paths: &[PathBuf]) -> Result<Vec<VerifyingKey>, Failed> {
    paths
        .iter()
        .map(|path| {
            let mut pem = Vec::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(64 * 1024).read_to_end(&mut pem))
                .map_err(|e| {
                    Failed::new(
                        Exit::Config,
                        format!("cannot read the verify key {}: {e}", path.display()),
                    )
                })?;
            VerifyingKey::from_pem(&pem).map_err(|e| {
                Failed::new(Exit::Config, format!("verify key {}: {e}", path.display()))
            })
        })
        .collect()
}

/// What a reading command trusts and decrypts with: the configuration's verify keys and key
/// ring, and the command line's verify keys and anchors.
pub(crate) fn read_keys(loaded: &LoadedConfig, args: &TrustArgs) -> Result<ReadKeys, Failed> {
    let keys = read_verify_keys(&args.verify_keys)?;
    Ok(loaded.read_keys(&keys, &args.expect_runs))
}

/// The keys whose signatures a reading command trusts: the configuration's and the command
/// line's.
pub(crate) fn trusted_keys(
    loaded: &LoadedConfig,
    args: &TrustArgs,
) -> Result<backup_format::signing::VerifyingKeys, Failed> {
    let mut keys = loaded.verifying_keys().keys().to_vec();
    for k in read_verify_keys(&args.verify_keys)? {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    Ok(backup_format::signing::VerifyingKeys::new(keys))
}

/// The keys a quarantine release must be signed by: `restore.release_verify_key` when the
/// configuration sets it, else the keys [`trusted_keys`] gives.
pub(crate) fn release_keys(
    loaded: &LoadedConfig,
    args: &TrustArgs,
) -> Result<backup_format::signing::VerifyingKeys, Failed> {
    match loaded.release_keys() {
        Some(keys) => Ok(keys),
        None => trusted_keys(loaded, args),
    }
}

/// The exit code for a catalog failure. A backup that does not exist is a storage-class
/// failure (5): the configuration is valid, but the store does not hold what it names, and
/// restore reports the same case with the same code.
pub(crate) fn catalog_failed(e: CatalogError) -> Failed {
    let exit = match &e {
        CatalogError::Storage(_) | CatalogError::NotFound { .. } => Exit::Storage,
        CatalogError::Name(_) => Exit::Config,
    };
    Failed::new(exit, e.to_string())
}

/// Prints `value` as one pretty JSON document on stdout.
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), Failed> {
    let json = serde_json::to_string_pretty(value)
        .map_err(|e| Failed::new(Exit::Failure, format!("cannot format the report: {e}")))?;
    println!("{json}");
    Ok(())
}

/// Milliseconds since the epoch as RFC 3339 UTC with exactly three decimals
/// (`2024-05-01T12:00:00.120Z`, so that ranges line up in columns), or the number itself when
/// it is outside the calendar `time` can represent (a broker can stamp anything).
pub(crate) fn format_ms(ms: i64) -> String {
    let layout = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let formatted = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&layout).ok());
    formatted.unwrap_or_else(|| format!("{ms} ms"))
}

/// `n` and the noun in the right number: `1 topic`, `2 topics`.
pub(crate) fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `text` with its control characters escaped (`\u{1b}`), except line breaks when
/// `keep_newlines`: names and messages that come from storage or a broker (group ids, gap
/// reasons, configuration values) cannot move the cursor, recolour or rewrite what an operator
/// sees.
fn escape_controls(text: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| c.is_control() && !(keep_newlines && c == '\n');
    if !text.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Rendered text for a terminal: control characters escaped, the renderer's line breaks kept.
pub(crate) fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, true)
}

/// A value from outside placed inside a line (a table cell, an error paragraph): every control
/// character escaped, line breaks included.
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(text, false)
}

/// Prints rendered text on stdout, [`terminal_safe`].
pub(crate) fn print_text(text: &str) {
    print!("{}", terminal_safe(text));
}

/// Lays out rows as columns separated by two spaces, each as wide as its widest cell; the
/// last column is not padded, so lines carry no trailing blanks.
pub(crate) fn table(indent: &str, rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| one_line(c).into_owned()).collect())
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = indent.to_owned();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_blanks() {
        let rows = vec![
            vec!["ID".to_owned(), "SIZE".to_owned(), "NOTE".to_owned()],
            vec!["a-long-id".to_owned(), "1 B".to_owned(), String::new()],
        ];
        assert_eq!(
            table("  ", &rows),
            "  ID         SIZE  NOTE\n  a-long-id  1 B\n"
        );
    }

    #[test]
    fn control_characters_from_outside_are_escaped() {
        let hostile = "group\u{1b}[2J\u{1b}[31mred\rover\u{7}\u{9b}x";
        let safe = terminal_safe(hostile);
        assert!(!safe.chars().any(char::is_control), "{safe}");
        assert!(safe.contains("\\u{1b}[2J"), "{safe}");
        assert_eq!(terminal_safe("a\nb"), "a\nb");
        assert_eq!(one_line("a\nb"), "a\\nb");
        let rows = vec![vec![hostile.to_owned(), "x".to_owned()]];
        assert!(!table("", &rows).trim_end().chars().any(char::is_control));
        assert_eq!(one_line("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn timestamps_are_rfc3339_or_the_raw_number() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_700_000_000_120), "2023-11-14T22:13:20.120Z");
        assert_eq!(format_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_ms(i64::MAX), format!("{} ms", i64::MAX));
        assert_eq!(count(1u64, "topic", "topics"), "1 topic");
        assert_eq!(count(0u64, "topic", "topics"), "0 topics");
    }
}

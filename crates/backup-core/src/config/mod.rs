//! The YAML configuration file: loading, `${VAR}` substitution, validation, and conversion
//! into the Kafka client's settings.
//!
//! Keys are those of OSO kafka-backup, so its users' files keep working, but the loader is
//! stricter where strictness protects them:
//!
//! - an unknown key or value is an error that suggests the intended one, because a misspelt
//!   security key that is ignored silently turns security off;
//! - `${VAR}` is substituted inside parsed string values only (so a value cannot inject YAML),
//!   an unset variable is an error naming the key, and `$${` writes a literal `${`;
//! - TLS or SASL settings that the chosen `security_protocol` would ignore are errors;
//! - passwords are [`kafka_client::Secret`] from the moment they are read, and no error or
//!   `Debug` output contains one.
//!
//! The raw serde model (`raw`) is kept apart from the validated one ([`LoadedConfig`]): the
//! first mirrors the file, the second is what the program may rely on.

mod audit;
mod backup;
mod diagnose;
mod encryption;
mod env;
mod error;
mod kerberos;
mod key_files;
mod model;
mod oauth;
mod plugin;
mod raw;
mod restore;
mod scrub;
mod security;
mod signing;
mod storage;
mod validate;
mod validator;
mod vocabulary;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::Read;
use std::path::Path;

pub use audit::AuditSettings;
pub use backup::{
    BackupPlan, BackupSettings, Compression, JOB_COMPLETION_INDEX, TopicSelection, glob_match,
};
pub use env::KUBERNETES_SECRETS_DIR;
pub use error::ConfigError;
pub use model::{
    KafkaClusterConfig, KerberosSettings, LoadedConfig, Mode, SaslCredentials, SaslMechanismName,
    SaslSettings, SecurityConfig,
};
pub use restore::{GroupSelection, ProgressStore, RestoreSettings, parse_time};

/// Largest configuration accepted, checked before parsing. Real files are a few KiB; the cap
/// keeps a wrong path (a log file, a device) from being read into memory.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// Reads, parses and validates the configuration file at `path`, taking `${VAR}` values from
/// the process environment.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// [`load`] with the environment supplied by `env` (`None` = not set), for callers and tests
/// that must not depend on the process environment.
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, ConfigError> {
    let origin = path.display().to_string();
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let declared = file.metadata().map_err(io)?.len();
    if declared > MAX_CONFIG_BYTES as u64 {
        return Err(too_large(&origin, declared));
    }
    // Read one byte past the cap: the size from metadata is 0 for pipes and devices.
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(too_large(&origin, bytes.len() as u64));
    }
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
        origin: origin.clone(),
        line: None,
        message: format!(
            "the file is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        ),
    })?;
    parse(&text, &origin, env)
}

/// Parses and validates configuration `text`. `origin` names it in messages (usually the file
/// path); `env` supplies `${VAR}` values, `None` meaning not set.
pub fn parse(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, ConfigError> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(too_large(origin, text.len() as u64));
    }
    let outcome = env::with_substitution(text, env, || {
        let mut path = None;
        let result = serde_saphyr::with_deserializer_from_str_with_options(
            text,
            yaml_options(),
            |deserializer| {
                serde_path_to_error::deserialize::<_, raw::RawConfig>(deserializer).map_err(|e| {
                    path = Some(diagnose::KeyPath::from_serde(e.path()));
                    e.into_inner()
                })
            },
        );
        (result, path)
    })
    .ok_or_else(|| ConfigError::Limit {
        origin: origin.to_owned(),
        message: "too many `${...}` references are spelt with YAML escape sequences; write them \
                  as plain ${NAME}"
            .to_owned(),
    })?;
    let (result, path) = outcome.result;
    let mut secrets = outcome.secrets;
    let raw = result.map_err(|e| {
        // The parse stopped early: secrets later in the file are not known yet.
        secrets.extend(scrub::harvest_secrets(text, env));
        let error = diagnose::from_yaml_error(&e, path, outcome.failure, origin);
        storage::refine_unknown_key(error, text).finish(&secrets)
    })?;
    let mut loaded = validate::validate(raw, origin).map_err(|e| e.finish(&secrets))?;
    loaded.literal_secret_lines = outcome.literal_secret_lines;
    loaded.warnings.extend(outcome.warnings);
    loaded.literal_secret_lines.sort_unstable();
    loaded.literal_secret_lines.dedup();
    Ok(loaded)
}

fn too_large(origin: &str, size: u64) -> ConfigError {
    ConfigError::Limit {
        origin: origin.to_owned(),
        message: format!(
            "the configuration is {size} bytes, more than the {MAX_CONFIG_BYTES}-byte limit; check \
             that this is the configuration file (a configuration is a few KiB)"
        ),
    }
}

/// Parser settings: duplicate keys are errors (the default, kept explicit), no source
/// snippets in errors (they could quote a password written in the file), and a budget sized
/// for configuration files rather than the generous defaults.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 100_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_depth = 32;
    budget.max_documents = 1;
    budget.max_nodes = 50_000;
    budget.max_total_scalar_bytes = 4 * MAX_CONFIG_BYTES;
    budget.max_recorded_anchor_events = 50_000;
    budget.max_recorded_anchor_bytes = 4 * MAX_CONFIG_BYTES;
    budget.max_merge_keys = 1_000;

    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    options.alias_limits.max_total_replayed_events = 50_000;
    options.alias_limits.max_replay_stack_depth = 16;
    options
}

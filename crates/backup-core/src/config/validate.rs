//! From the raw file to the validated model: the mode and its cluster section, the backup
//! id, brokers, timeouts and size bounds. The `security` section is checked in `security`.
//!
//! Validation stops at the first problem: each message carries its fix, and a fix often
//! changes what the next check would say.

use std::time::Duration;

use kafka_client::{BrokerAddress, ClientConfig};

use super::BackupPlan;
use super::env::{ConfigString, ConfigU64};
use super::error::ConfigError;
use super::model::{KafkaClusterConfig, LoadedConfig, Mode};
use super::raw::{RawCluster, RawConfig};
use super::validator::Validator;

/// Longest accepted timeout: beyond it a hung broker goes unnoticed for too long.
const MAX_TIMEOUT_MS: u64 = 60 * 60 * 1000;
/// Smallest accepted response bound; below it ordinary fetch responses would be refused.
const MIN_RESPONSE_BYTES: u64 = 1024 * 1024;
/// Largest accepted response bound; more is a memory-exhaustion risk, and Kafka's own
/// frames are sized by an `i32`.
const MAX_RESPONSE_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Longest backup id; it becomes a storage path component.
const MAX_BACKUP_ID_LEN: usize = 128;

/// Checks `raw` and builds the validated configuration.
pub(crate) fn validate(raw: RawConfig, origin: &str) -> Result<LoadedConfig, ConfigError> {
    let mut v = Validator {
        origin,
        warnings: Vec::new(),
        private_files: Vec::new(),
    };
    let backup_id = v.backup_id(&raw.backup_id)?;
    let mode = raw.mode.value;
    let (chosen, other) = match mode {
        Mode::Backup => (raw.source, raw.target),
        Mode::Restore => (raw.target, raw.source),
    };
    let (key, other_key) = match mode {
        Mode::Backup => ("source", "target"),
        Mode::Restore => ("target", "source"),
    };
    if other.is_some() {
        let other_mode = match mode {
            Mode::Backup => Mode::Restore,
            Mode::Restore => Mode::Backup,
        };
        return Err(v.invalid(
            other_key.to_owned(),
            None,
            format!(
                "mode is {mode}, which uses `{key}`, but the file also has a `{other_key}` section; \
                 remove `{other_key}`, or set mode: {other_mode} if this file is for a {other_mode}"
            ),
        ));
    }
    let Some(cluster) = chosen else {
        let what = match mode {
            Mode::Backup => "the cluster to back up",
            Mode::Restore => "the cluster to restore into",
        };
        return Err(v.invalid(
            key.to_owned(),
            raw.mode.line,
            format!(
                "mode is {mode} but there is no `{key}` section; add `{key}:` with the \
                 `bootstrap_servers` (and `security`) of {what}"
            ),
        ));
    };
    let mut cluster = cluster;
    let topics = cluster.topics.take();
    let restore = match mode {
        Mode::Restore => Some(v.restore_settings(raw.restore, &backup_id)?),
        Mode::Backup if raw.restore.is_some() => {
            return Err(v.invalid(
                "restore".to_owned(),
                None,
                "applies to mode: restore, but this file has mode: backup; remove the `restore` \
                 section or set mode: restore"
                    .to_owned(),
            ));
        }
        Mode::Backup => None,
    };
    let backup = match mode {
        Mode::Backup => {
            let mut raw_backup = raw.backup;
            let encryption = raw_backup.as_mut().and_then(|b| b.encryption.take());
            let signing_key = raw_backup.as_mut().and_then(|b| b.signing_key.take());
            Some(BackupPlan {
                topics: v.topics(topics)?,
                settings: v.backup_settings(raw_backup)?,
                encryption: v.backup_encryption(encryption)?,
                signing_key: v.signing_key(signing_key)?,
                shard: None,
            })
        }
        Mode::Restore => {
            if topics.is_some() {
                return Err(v.invalid(
                    "target.topics".to_owned(),
                    None,
                    "is not used when restoring: a restore takes its topics from the backup, \
                     selected with restore.topics; move the patterns there"
                        .to_owned(),
                ));
            }
            if raw.backup.is_some() {
                return Err(v.invalid(
                    "backup".to_owned(),
                    None,
                    "applies to mode: backup, but this file has mode: restore; remove the `backup` \
                     section or set mode: backup"
                        .to_owned(),
                ));
            }
            None
        }
    };
    let cluster = v.cluster(cluster, key)?;
    let storage_options = match &raw.storage {
        Some(s) => v.storage_options(s)?,
        None => crate::storage::StorageOptions::default(),
    };
    let storage = raw.storage.map(|s| v.storage(s)).transpose()?;
    let audit = v.audit(raw.audit)?;
    Ok(LoadedConfig {
        mode,
        backup_id,
        cluster,
        backup,
        restore,
        storage,
        storage_options,
        audit,
        literal_secret_lines: Vec::new(),
        private_files: v.private_files,
        warnings: v.warnings,
    })
}

impl Validator<'_> {
    fn backup_id(&self, id: &ConfigString) -> Result<String, ConfigError> {
        let value = &id.value;
        let fail = |message: String| Err(self.invalid("backup_id".to_owned(), id.line, message));
        let allowed =
            "use only A-Z, a-z, 0-9, `.`, `_` and `-` (the id becomes part of storage paths)";
        if value.is_empty() {
            return fail(format!(
                "is empty; give the backup a name, e.g. prod-orders; {allowed}"
            ));
        }
        let len = value.chars().count();
        if len > MAX_BACKUP_ID_LEN {
            return fail(format!(
                "is {len} characters long; use at most {MAX_BACKUP_ID_LEN}"
            ));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return fail(format!(
                "contains `{}`, which is not allowed; {allowed}",
                bad.escape_debug()
            ));
        }
        if value.starts_with('.') {
            return fail(
                "starts with `.`, which would make a hidden or `..` path in storage; start it \
                 with a letter or digit"
                    .to_owned(),
            );
        }
        Ok(value.clone())
    }

    fn cluster(&mut self, raw: RawCluster, key: &str) -> Result<KafkaClusterConfig, ConfigError> {
        let RawCluster {
            bootstrap_servers,
            client_id,
            connect_timeout_ms,
            request_timeout_ms,
            max_response_bytes,
            retry_backoff_ms,
            retry_backoff_max_ms,
            security,
            // Taken out and checked by `validate` before the cluster is.
            topics: _,
        } = raw;
        let bootstrap_servers = self.servers(&bootstrap_servers.0, key)?;
        let client_id = match client_id {
            None => "kafka-backup".to_owned(),
            Some(id) if id.value.trim().is_empty() => {
                return Err(self.invalid(
                    format!("{key}.client_id"),
                    id.line,
                    "is empty; remove the key to use the default `kafka-backup`, or give a name"
                        .to_owned(),
                ));
            }
            Some(id) if id.value.chars().any(char::is_control) => {
                return Err(self.invalid(
                    format!("{key}.client_id"),
                    id.line,
                    "contains a control character; use printable characters only".to_owned(),
                ));
            }
            Some(id) => id.value,
        };
        let connect_timeout = self.millis(
            format!("{key}.connect_timeout_ms"),
            connect_timeout_ms,
            ClientConfig::DEFAULT_CONNECT_TIMEOUT,
        )?;
        let request_timeout = self.millis(
            format!("{key}.request_timeout_ms"),
            request_timeout_ms,
            ClientConfig::DEFAULT_REQUEST_TIMEOUT,
        )?;
        let defaults = ClientConfig::new(Vec::new());
        let retry_backoff = self.millis(
            format!("{key}.retry_backoff_ms"),
            retry_backoff_ms,
            defaults.retry_backoff,
        )?;
        let retry_backoff_max = self.millis(
            format!("{key}.retry_backoff_max_ms"),
            retry_backoff_max_ms,
            defaults.retry_backoff_max,
        )?;
        if retry_backoff > retry_backoff_max {
            return Err(self.invalid(
                format!("{key}.retry_backoff_ms"),
                retry_backoff_ms.and_then(|v| v.line),
                format!(
                    "is {} ms, more than retry_backoff_max_ms ({} ms{}); raise retry_backoff_max_ms \
                     or lower retry_backoff_ms",
                    retry_backoff.as_millis(),
                    retry_backoff_max.as_millis(),
                    if retry_backoff_max_ms.is_none() {
                        ", the default"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let max_response_bytes = self.response_bytes(key, max_response_bytes)?;
        let security = self.security(security.unwrap_or_default(), key)?;
        Ok(KafkaClusterConfig {
            bootstrap_servers,
            client_id,
            connect_timeout,
            request_timeout,
            max_response_bytes,
            retry_backoff,
            retry_backoff_max,
            security,
        })
    }

    fn servers(
        &self,
        entries: &[ConfigString],
        key: &str,
    ) -> Result<Vec<BrokerAddress>, ConfigError> {
        let mut servers = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let path = if entries.len() == 1 {
                format!("{key}.bootstrap_servers")
            } else {
                format!("{key}.bootstrap_servers[{index}]")
            };
            // Kafka's own `bootstrap.servers` is comma-separated; accept that in any entry.
            for part in entry
                .value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                let address = part
                    .parse::<BrokerAddress>()
                    .map_err(|e| self.invalid(path.clone(), entry.line, e.to_string()))?;
                servers.push(address);
            }
        }
        if servers.is_empty() {
            return Err(self.invalid(
                format!("{key}.bootstrap_servers"),
                entries.first().and_then(|e| e.line),
                "is empty; list at least one broker as host:port, e.g. [\"kafka-0:9093\"]"
                    .to_owned(),
            ));
        }
        Ok(servers)
    }

    fn millis(
        &self,
        path: String,
        value: Option<ConfigU64>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(ConfigU64 { value, line }) = value else {
            return Ok(default);
        };
        let range = format!(
            "use 1 to {MAX_TIMEOUT_MS} ms (the default is {})",
            default.as_millis()
        );
        if value == 0 {
            return Err(self.invalid(
                path,
                line,
                format!("is 0, which would give up at once; {range}"),
            ));
        }
        if value > MAX_TIMEOUT_MS {
            return Err(self.invalid(
                path,
                line,
                format!(
                    "is {value} ms, more than one hour, which would leave a hung broker unnoticed; {range}"
                ),
            ));
        }
        Ok(Duration::from_millis(value))
    }

    fn response_bytes(&self, key: &str, value: Option<ConfigU64>) -> Result<usize, ConfigError> {
        let Some(ConfigU64 { value, line }) = value else {
            return Ok(ClientConfig::DEFAULT_MAX_RESPONSE_BYTES);
        };
        let range = format!(
            "use {MIN_RESPONSE_BYTES} (1 MiB) to {MAX_RESPONSE_BYTES} (2 GiB); the default is {}",
            ClientConfig::DEFAULT_MAX_RESPONSE_BYTES
        );
        let path = format!("{key}.max_response_bytes");
        if value < MIN_RESPONSE_BYTES {
            return Err(self.invalid(
                path,
                line,
                format!("is {value} bytes, less than 1 MiB, so ordinary responses would be refused; {range}"),
            ));
        }
        if value > MAX_RESPONSE_BYTES {
            return Err(self.invalid(
                path,
                line,
                format!(
                    "is {value} bytes, more than 2 GiB, so one response could exhaust memory; {range}"
                ),
            ));
        }
        usize::try_from(value).map_err(|_| {
            self.invalid(
                format!("{key}.max_response_bytes"),
                line,
                format!("does not fit this platform's memory; {range}"),
            )
        })
    }
}

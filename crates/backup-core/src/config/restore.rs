//! The `restore:` section: which topics of a backup go where, from when to when, and how the
//! target cluster is prepared and written.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::backup::{RawTopics, TopicSelection};
use super::env::{ConfigBool, ConfigString, ConfigU64};
use super::error::ConfigError;
use super::validator::Validator;

/// `restore:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRestore {
    pub topics: Option<RawTopics>,
    pub topic_mapping: Option<BTreeMap<String, ConfigString>>,
    pub time_window_start: Option<ConfigString>,
    pub time_window_end: Option<ConfigString>,
    pub create_topics: Option<ConfigBool>,
    pub replication_factor: Option<ConfigU64>,
    pub repartitioning: Option<RawRepartitioning>,
    pub dry_run: Option<ConfigBool>,
    pub append: Option<ConfigBool>,
    pub consumer_groups: Option<RawGroups>,
    pub max_in_flight: Option<ConfigU64>,
    pub batch_max_bytes: Option<ConfigU64>,
    pub max_bytes_per_second: Option<ConfigU64>,
    pub max_concurrent_partitions: Option<ConfigU64>,
    pub max_partitions: Option<ConfigU64>,
    pub accept_unauthenticated: Option<ConfigBool>,
    pub restore_id: Option<ConfigString>,
    pub progress_file: Option<ConfigString>,
    /// Checked in `encryption`.
    pub encryption: Option<super::encryption::RawDecryption>,
    /// Checked in `signing`.
    pub verify_key: Option<super::vocabulary::StringList>,
    /// Checked in `signing`.
    pub release_verify_key: Option<super::vocabulary::StringList>,
}

/// `restore.repartitioning`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRepartitioning {
    pub partitions: ConfigU64,
}

/// `restore.consumer_groups`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroups {
    pub enabled: Option<ConfigBool>,
    pub include: Option<Vec<ConfigString>>,
    pub exclude: Option<Vec<ConfigString>>,
}

/// Where a restore keeps its progress, so that a restore interrupted at any point and run
/// again writes every record exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressStore {
    /// In the target cluster: the offsets of a consumer group named after the restore
    /// (`kafka-backup.restore.<restore_id>`), committed before anything is produced.
    Target,
    /// In a local JSON file the operator places (for restores that may not touch groups).
    File(PathBuf),
}

/// Which consumer groups a restore moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSelection {
    /// Whether groups are restored at all.
    pub enabled: bool,
    /// Group id patterns to restore (`*`, `?`).
    pub include: Vec<String>,
    /// Group id patterns to leave alone.
    pub exclude: Vec<String>,
}

impl GroupSelection {
    /// Whether `group` is restored.
    pub fn includes(&self, group: &str) -> bool {
        self.enabled
            && self.include.iter().any(|p| super::glob_match(p, group))
            && !self.exclude.iter().any(|p| super::glob_match(p, group))
    }
}

/// Validated `restore:` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSettings {
    /// Topics of the backup to restore.
    pub topics: TopicSelection,
    /// Backed-up name -> target name; topics not listed keep their name.
    pub topic_mapping: BTreeMap<String, String>,
    /// Only records with a timestamp at or after this (ms since the epoch) are restored.
    pub time_window_start: Option<i64>,
    /// Only records with a timestamp before this (ms since the epoch) are restored.
    pub time_window_end: Option<i64>,
    /// Create missing target topics with the backed-up partition count and configuration.
    pub create_topics: bool,
    /// Replication factor of created topics; `None` keeps the backed-up one.
    pub replication_factor: Option<i16>,
    /// Restore into this many partitions, placing records by Kafka's murmur2 key hash.
    pub repartition_to: Option<i32>,
    /// Print the plan and stop.
    pub dry_run: bool,
    /// Allow writing into target partitions that already hold records.
    pub append: bool,
    /// Consumer groups to move.
    pub consumer_groups: GroupSelection,
    /// Produce requests in flight per partition, as configured; this version sends one at a
    /// time and warns when more is asked for.
    pub max_in_flight: usize,
    /// Size of record batches the restore builds itself (at time-window boundaries and when
    /// repartitioning).
    pub batch_max_bytes: usize,
    /// Produce rate limit in bytes per second; `None` for no limit.
    pub max_bytes_per_second: Option<u64>,
    /// Partitions produced at once.
    pub max_concurrent_partitions: usize,
    /// Most partitions a restore creates a topic with: a manifest cannot make it create
    /// absurd topics (default 1000).
    pub max_partitions: i32,
    /// Restore segments that are not authenticated (also `--accept-unauthenticated`).
    pub accept_unauthenticated: bool,
    /// Names this restore's progress; runs with the same id continue each other.
    pub restore_id: String,
    /// Where progress is kept.
    pub progress: ProgressStore,
    /// `restore.encryption`: the key ring entries that unwrap data keys, in order; empty
    /// when none is configured (only unencrypted backups can be read).
    pub decryption: Vec<crate::keys::DecryptionSettings>,
    /// `restore.verify_key`: the keys signatures are accepted from; empty when none is
    /// configured.
    pub verify_keys: backup_format::signing::VerifyingKeys,
    /// `restore.release_verify_key`: the only keys a quarantine release is accepted from;
    /// empty when not configured (then the verify keys).
    pub release_verify_keys: backup_format::signing::VerifyingKeys,
}

/// Parses a time bound: whole milliseconds since the epoch, or RFC 3339.
pub fn parse_time(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Some(ms);
    }
    let parsed =
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

impl Validator<'_> {
    pub(super) fn restore_settings(
        &mut self,
        raw: Option<RawRestore>,
        backup_id: &str,
    ) -> Result<RestoreSettings, ConfigError> {
        let mut raw = raw.unwrap_or_default();
        let decryption = self.restore_encryption(raw.encryption.take())?;
        let verify_keys = self.verify_keys(raw.verify_key.take())?;
        let release_verify_keys =
            self.verify_keys_at("restore.release_verify_key", raw.release_verify_key.take())?;
        self.warn_unrestricted_kms(&decryption, &verify_keys);
        let topics = match raw.topics {
            Some(t) => self.selection(t, "restore.topics")?,
            None => TopicSelection::default(),
        };
        let mut topic_mapping = BTreeMap::new();
        for (from, to) in raw.topic_mapping.unwrap_or_default() {
            let target = to.value.trim().to_owned();
            if !valid_topic(&target) {
                return Err(self.invalid(
                    format!("restore.topic_mapping.{from}"),
                    to.line,
                    format!(
                        "`{target}` is not a valid Kafka topic name: use 1 to 249 of A-Z, a-z, 0-9, `.`, `_`, `-`"
                    ),
                ));
            }
            topic_mapping.insert(from, target);
        }
        let mut targets: BTreeMap<&str, &str> = BTreeMap::new();
        for (from, to) in &topic_mapping {
            if let Some(other) = targets.insert(to.as_str(), from.as_str()) {
                return Err(self.invalid(
                    "restore.topic_mapping".to_owned(),
                    None,
                    format!("both `{other}` and `{from}` map to `{to}`; each target topic can receive one topic"),
                ));
            }
        }
        let time = |v: &Self,
                    key: &str,
                    value: Option<ConfigString>|
         -> Result<Option<i64>, ConfigError> {
            let Some(value) = value else { return Ok(None) };
            parse_time(&value.value).map(Some).ok_or_else(|| {
                v.invalid(
                    format!("restore.{key}"),
                    value.line,
                    format!(
                        "`{}` is not a time: write milliseconds since the epoch (1767225600000) or RFC 3339 \
                         (2026-01-01T00:00:00Z)",
                        value.value
                    ),
                )
            })
        };
        let time_window_start = time(self, "time_window_start", raw.time_window_start)?;
        let time_window_end = time(self, "time_window_end", raw.time_window_end)?;
        if let (Some(s), Some(e)) = (time_window_start, time_window_end)
            && s >= e
        {
            return Err(self.invalid(
                "restore.time_window_end".to_owned(),
                None,
                "is not after time_window_start, so no record could be restored; the window is \
                 [time_window_start, time_window_end)"
                    .to_owned(),
            ));
        }
        let replication_factor = match raw.replication_factor {
            None => None,
            Some(rf) if (1..=32).contains(&rf.value) => Some(rf.value as i16),
            Some(rf) => {
                return Err(self.invalid(
                    "restore.replication_factor".to_owned(),
                    rf.line,
                    format!("{} is not a replication factor; use 1 to 32", rf.value),
                ));
            }
        };
        let repartition_to = match raw.repartitioning {
            None => None,
            Some(r) if (1..=100_000).contains(&r.partitions.value) => {
                Some(r.partitions.value as i32)
            }
            Some(r) => {
                return Err(self.invalid(
                    "restore.repartitioning.partitions".to_owned(),
                    r.partitions.line,
                    format!(
                        "{} is not a partition count; use 1 to 100000",
                        r.partitions.value
                    ),
                ));
            }
        };
        let groups = raw.consumer_groups;
        let consumer_groups = GroupSelection {
            enabled: groups
                .as_ref()
                .and_then(|g| g.enabled)
                .map(|b| b.value)
                .unwrap_or(true),
            include: match groups.as_ref().and_then(|g| g.include.clone()) {
                Some(list) => list.into_iter().map(|s| s.value).collect(),
                None => vec!["*".to_owned()],
            },
            exclude: groups
                .and_then(|g| g.exclude)
                .map(|l| l.into_iter().map(|s| s.value).collect())
                .unwrap_or_default(),
        };
        let bounded =
            |v: &Self, key: &str, value: Option<ConfigU64>, default: u64, min: u64, max: u64| {
                let Some(n) = value else { return Ok(default) };
                if n.value < min || n.value > max {
                    return Err(v.invalid(
                        format!("restore.{key}"),
                        n.line,
                        format!(
                            "{} is outside the accepted range {min} to {max} (default {default})",
                            n.value
                        ),
                    ));
                }
                Ok(n.value)
            };
        let max_in_flight = bounded(self, "max_in_flight", raw.max_in_flight, 1, 1, 5)? as usize;
        if max_in_flight > 1 {
            self.warnings.push(format!(
                "restore.max_in_flight: {max_in_flight} is accepted for compatibility and ignored: this version \
                 sends one batch per partition at a time (partitions proceed in parallel, see \
                 restore.max_concurrent_partitions)"
            ));
        }
        let batch_max_bytes = bounded(
            self,
            "batch_max_bytes",
            raw.batch_max_bytes,
            1 << 20,
            1024,
            64 << 20,
        )? as usize;
        let max_concurrent_partitions = bounded(
            self,
            "max_concurrent_partitions",
            raw.max_concurrent_partitions,
            16,
            1,
            10_000,
        )? as usize;
        let max_partitions = bounded(
            self,
            "max_partitions",
            raw.max_partitions,
            crate::restore::policy::DEFAULT_MAX_PARTITIONS as u64,
            1,
            1_000_000,
        )? as i32;
        let max_bytes_per_second = raw
            .max_bytes_per_second
            .map(|n| {
                if n.value < 1024 {
                    Err(self.invalid(
                        "restore.max_bytes_per_second".to_owned(),
                        n.line,
                        format!("{} bytes per second is too slow to restore anything; use at least 1024", n.value),
                    ))
                } else {
                    Ok(n.value)
                }
            })
            .transpose()?;
        let restore_id = match raw.restore_id {
            Some(id) => {
                let value = id.value.trim().to_owned();
                if value.is_empty()
                    || value.len() > 128
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                {
                    return Err(self.invalid(
                        "restore.restore_id".to_owned(),
                        id.line,
                        "use 1 to 128 of A-Z, a-z, 0-9, `.`, `_`, `-` (it names a consumer group)"
                            .to_owned(),
                    ));
                }
                value
            }
            None => backup_id.to_owned(),
        };
        let progress = match raw.progress_file {
            Some(path) => ProgressStore::File(PathBuf::from(path.value)),
            None => ProgressStore::Target,
        };
        Ok(RestoreSettings {
            topics,
            topic_mapping,
            time_window_start,
            time_window_end,
            create_topics: raw.create_topics.map(|b| b.value).unwrap_or(true),
            replication_factor,
            repartition_to,
            dry_run: raw.dry_run.map(|b| b.value).unwrap_or(false),
            append: raw.append.map(|b| b.value).unwrap_or(false),
            consumer_groups,
            max_in_flight,
            batch_max_bytes,
            max_bytes_per_second,
            max_concurrent_partitions,
            max_partitions,
            accept_unauthenticated: raw.accept_unauthenticated.map(|b| b.value).unwrap_or(false),
            restore_id,
            progress,
            decryption,
            verify_keys,
            release_verify_keys,
        })
    }
}

fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_epoch_milliseconds_or_rfc3339() {
        assert_eq!(parse_time("1767225600000"), Some(1_767_225_600_000));
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(
            parse_time("2026-01-01T01:00:00+01:00"),
            Some(1_767_225_600_000)
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}

//! The `backup:` section and `source.topics`: which topics a backup copies, and how it cuts,
//! compresses and paces its segments.

use std::time::Duration;

use backup_format::Shard;
use serde::Deserialize;

use super::env::{ConfigBool, ConfigString, ConfigU64};
use super::error::ConfigError;
use super::validator::Validator;
use super::vocabulary::{Keyword, KeywordSet};

/// `source.topics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTopics {
    pub include: Option<Vec<ConfigString>>,
    pub exclude: Option<Vec<ConfigString>>,
}

/// `backup:`, with OSO kafka-backup's key names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackup {
    pub compression: Option<Keyword<Compression>>,
    pub compression_level: Option<ConfigU64>,
    pub segment_max_bytes: Option<ConfigU64>,
    pub segment_max_interval_ms: Option<ConfigU64>,
    pub continuous: Option<ConfigBool>,
    pub stop_at_current_offsets: Option<ConfigBool>,
    pub max_concurrent_partitions: Option<ConfigU64>,
    pub fetch_max_bytes: Option<ConfigU64>,
    pub connections_per_broker: Option<ConfigU64>,
    pub consumer_group_snapshot: Option<ConfigBool>,
    pub metadata_max_age_ms: Option<ConfigU64>,
    pub include_offset_headers: Option<ConfigBool>,
    pub shards: Option<ConfigU64>,
    /// Checked in `encryption`.
    pub encryption: Option<super::encryption::RawEncryption>,
    /// Checked in `signing`.
    pub signing_key: Option<ConfigString>,
}

/// How segment chunks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Stored as fetched (record batches keep whatever compression the producer chose).
    None,
    /// zstd (the default): about 3:1 on typical JSON events at level 3.
    Zstd,
    /// LZ4: faster, less compact.
    Lz4,
}

impl Compression {
    /// The name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        }
    }
}

impl KeywordSet for Compression {
    const NAMES: &'static [&'static str] = &["zstd", "lz4", "none"];

    fn from_name(name: &str) -> Option<Self> {
        [
            ("zstd", Compression::Zstd),
            ("lz4", Compression::Lz4),
            ("none", Compression::None),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| c)
    }
}

/// Which topics a backup copies: glob patterns (`*`, `?`) matched against topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSelection {
    /// A topic is copied when it matches one of these...
    pub include: Vec<String>,
    /// ...and none of these.
    pub exclude: Vec<String>,
}

impl Default for TopicSelection {
    fn default() -> Self {
        Self {
            include: vec!["*".to_owned()],
            exclude: Vec::new(),
        }
    }
}

impl TopicSelection {
    /// Whether `topic` is selected. Internal topics (`__consumer_offsets`,
    /// `__transaction_state`, anything Kafka marks internal or that starts with `__`) are only
    /// matched by include patterns that themselves start with `__`, so `*` never copies the
    /// cluster's own bookkeeping by accident.
    pub fn includes(&self, topic: &str, internal: bool) -> bool {
        let internal = internal || topic.starts_with("__");
        let included = self
            .include
            .iter()
            .filter(|p| !internal || p.starts_with("__"))
            .any(|p| glob_match(p, topic));
        included && !self.exclude.iter().any(|p| glob_match(p, topic))
    }
}

/// Matches `*` (any run, possibly empty) and `?` (one character). Kafka topic names cannot
/// contain either, so no escaping is needed.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            // Let the last `*` swallow one more character and retry.
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Validated `backup:` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// Segment compression.
    pub compression: Compression,
    /// zstd level (1..=19); `None` for the codec's default.
    pub compression_level: Option<i32>,
    /// A segment is closed when its stored size reaches this.
    pub segment_max_bytes: u64,
    /// A segment is closed when it has been open this long (continuous mode).
    pub segment_max_interval: Duration,
    /// Keep running, following new records, partitions and topics, until stopped.
    pub continuous: bool,
    /// Partitions fetched and open as segments at the same time.
    pub max_concurrent_partitions: usize,
    /// Most bytes asked for in one Fetch.
    pub fetch_max_bytes: u32,
    /// Connections to each broker, each with one Fetch in flight for its share of the
    /// broker's partitions: a broker serves one request per connection at a time, so one
    /// connection leaves it idle while an answer travels and is taken apart.
    pub connections_per_broker: usize,
    /// Capture the committed offsets of consumer groups on the backed-up topics.
    pub consumer_group_snapshot: bool,
    /// Continuous mode: how often to look for new topics and partitions (Kafka's
    /// `metadata.max.age.ms`).
    pub metadata_max_age: Duration,
    /// How many shard processes back this backup up at once (`backup.shards`; 1: one
    /// process backs up everything). Which one a process is comes from `--shard` or
    /// `JOB_COMPLETION_INDEX`: see [`BackupPlan::resolve_shard`].
    pub shards: u32,
}

impl BackupSettings {
    /// Default `segment_max_bytes`.
    pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 32 * 1024 * 1024;
    /// Default `segment_max_interval_ms`.
    pub const DEFAULT_SEGMENT_MAX_INTERVAL: Duration = Duration::from_secs(300);
    /// Default `max_concurrent_partitions`.
    pub const DEFAULT_MAX_CONCURRENT_PARTITIONS: usize = 32;
    /// Default `fetch_max_bytes`.
    pub const DEFAULT_FETCH_MAX_BYTES: u32 = 16 * 1024 * 1024;
    /// Default `connections_per_broker`.
    pub const DEFAULT_CONNECTIONS_PER_BROKER: usize = 3;
    /// Default `metadata_max_age_ms`.
    pub const DEFAULT_METADATA_MAX_AGE: Duration = Duration::from_secs(60);
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            compression: Compression::Zstd,
            compression_level: None,
            segment_max_bytes: Self::DEFAULT_SEGMENT_MAX_BYTES,
            segment_max_interval: Self::DEFAULT_SEGMENT_MAX_INTERVAL,
            continuous: false,
            max_concurrent_partitions: Self::DEFAULT_MAX_CONCURRENT_PARTITIONS,
            fetch_max_bytes: Self::DEFAULT_FETCH_MAX_BYTES,
            connections_per_broker: Self::DEFAULT_CONNECTIONS_PER_BROKER,
            consumer_group_snapshot: true,
            metadata_max_age: Self::DEFAULT_METADATA_MAX_AGE,
            shards: 1,
        }
    }
}

/// What a `mode: backup` configuration asks for, beyond the cluster connection.
#[derive(Debug, Clone)]
pub struct BackupPlan {
    /// `source.topics`.
    pub topics: TopicSelection,
    /// `backup:`.
    pub settings: BackupSettings,
    /// `backup.encryption`: the key provider that wraps each run's data key; `None` when
    /// absent or `enabled: false` (segments are stored unencrypted).
    pub encryption: Option<crate::keys::EncryptionSettings>,
    /// `backup.signing_key`: signs object names and the backup descriptor.
    pub signing_key: Option<backup_format::signing::SigningKey>,
    /// The shard this process backs up, once resolved ([`BackupPlan::resolve_shard`]);
    /// `None`: every selected partition.
    pub shard: Option<Shard>,
}

/// The environment variable a Kubernetes Indexed Job sets to each pod's index.
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

impl BackupPlan {
    /// Decides which shard this process backs up, from `--shard` (`from_flag`), else
    /// `JOB_COMPLETION_INDEX` (`job_index`) when `backup.shards` is above 1, and stores it
    /// in [`BackupPlan::shard`]. The error says what to pass or set.
    pub fn resolve_shard(
        &mut self,
        from_flag: Option<Shard>,
        job_index: Option<&str>,
    ) -> Result<Option<Shard>, String> {
        let configured = self.settings.shards;
        let shard = match from_flag {
            Some(s) if configured > 1 && s.count() != configured => {
                return Err(format!(
                    "--shard {s} names {} shards, but backup.shards is {configured} in the \
                     configuration: every shard must split the partitions the same way; pass \
                     --shard INDEX/{configured}, or change backup.shards",
                    s.count()
                ));
            }
            Some(s) => s,
            None if configured <= 1 => return Ok(None),
            None => {
                let Some(text) = job_index else {
                    return Err(format!(
                        "backup.shards is {configured}, but this process was not told which \
                         shard it is: pass --shard INDEX/{configured} (INDEX from 0 to {}), or \
                         set {JOB_COMPLETION_INDEX} (a Kubernetes Indexed Job sets it in each pod)",
                        configured - 1
                    ));
                };
                let index = text.trim().parse::<u32>().map_err(|_| {
                    format!(
                        "{JOB_COMPLETION_INDEX} is {text:?}, not a shard index: it must be a \
                         number from 0 to {} (backup.shards is {configured})",
                        configured - 1
                    )
                })?;
                Shard::new(index, configured).map_err(|e| {
                    format!("{JOB_COMPLETION_INDEX}={index}: {e} (backup.shards is {configured})")
                })?
            }
        };
        // One shard of one is the whole backup: it stays in the unsharded lane.
        self.shard = (shard.count() > 1).then_some(shard);
        Ok(self.shard)
    }
}

impl Validator<'_> {
    pub(super) fn topics(&mut self, raw: Option<RawTopics>) -> Result<TopicSelection, ConfigError> {
        match raw {
            None => Ok(TopicSelection::default()),
            Some(raw) => self.selection(raw, "source.topics"),
        }
    }

    /// Validates include/exclude patterns found under `key`.
    pub(super) fn selection(
        &mut self,
        raw: RawTopics,
        key: &str,
    ) -> Result<TopicSelection, ConfigError> {
        let include = self.patterns(raw.include, &format!("{key}.include"))?;
        let exclude = self.patterns(raw.exclude, &format!("{key}.exclude"))?;
        if include.is_empty() {
            return Err(self.invalid(
                format!("{key}.include"),
                None,
                format!(
                    "is empty, so nothing would be selected; list the topics or patterns, e.g. \
                     include: [\"orders\", \"payments-*\"], or remove `{key}` to select every topic"
                ),
            ));
        }
        Ok(TopicSelection { include, exclude })
    }

    fn patterns(
        &self,
        raw: Option<Vec<ConfigString>>,
        key: &str,
    ) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for (i, p) in raw.unwrap_or_default().into_iter().enumerate() {
            let value = p.value.trim().to_owned();
            let bad = value
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?')));
            if value.is_empty() || value.len() > 249 || bad.is_some() {
                let why = match bad {
                    Some(c) => format!("contains `{}`", c.escape_debug()),
                    None if value.is_empty() => "is empty".to_owned(),
                    None => "is longer than Kafka's 249-character topic names".to_owned(),
                };
                return Err(self.invalid(
                    format!("{key}[{i}]"),
                    p.line,
                    format!(
                        "`{value}` {why}; a pattern is a topic name (A-Z, a-z, 0-9, `.`, `_`, `-`) \
                         with `*` for any run of characters and `?` for one"
                    ),
                ));
            }
            out.push(value);
        }
        Ok(out)
    }

    pub(super) fn backup_settings(
        &mut self,
        raw: Option<RawBackup>,
    ) -> Result<BackupSettings, ConfigError> {
        let raw = raw.unwrap_or_default();
        let d = BackupSettings::default();
        let compression = raw.compression.map(|k| k.value).unwrap_or(d.compression);
        let compression_level = match (raw.compression_level, compression) {
            (None, _) => None,
            (Some(level), Compression::Zstd) => {
                if !(1..=19).contains(&level.value) {
                    return Err(self.invalid(
                        "backup.compression_level".to_owned(),
                        level.line,
                        format!(
                            "{} is outside zstd's useful range; use 1 (fastest) to 19 (smallest), 3 is the default",
                            level.value
                        ),
                    ));
                }
                Some(level.value as i32)
            }
            (Some(level), other) => {
                return Err(self.invalid(
                    "backup.compression_level".to_owned(),
                    level.line,
                    format!(
                        "applies to zstd only, but compression is {}; remove compression_level or set compression: zstd",
                        other.as_str()
                    ),
                ));
            }
        };
        let segment_max_bytes = self.bounded(
            raw.segment_max_bytes,
            "backup.segment_max_bytes",
            d.segment_max_bytes,
            1024 * 1024,
            1024 * 1024 * 1024,
            "bytes",
        )?;
        let segment_max_interval = Duration::from_millis(self.bounded(
            raw.segment_max_interval_ms,
            "backup.segment_max_interval_ms",
            d.segment_max_interval.as_millis() as u64,
            1_000,
            24 * 3600 * 1000,
            "ms",
        )?);
        let max_concurrent_partitions = self.bounded(
            raw.max_concurrent_partitions,
            "backup.max_concurrent_partitions",
            d.max_concurrent_partitions as u64,
            1,
            10_000,
            "partitions",
        )? as usize;
        let fetch_max_bytes = self.bounded(
            raw.fetch_max_bytes,
            "backup.fetch_max_bytes",
            u64::from(d.fetch_max_bytes),
            1024 * 1024,
            256 * 1024 * 1024,
            "bytes",
        )? as u32;
        let connections_per_broker = self.bounded(
            raw.connections_per_broker,
            "backup.connections_per_broker",
            d.connections_per_broker as u64,
            1,
            16,
            "connections",
        )? as usize;

        let metadata_max_age = Duration::from_millis(self.bounded(
            raw.metadata_max_age_ms,
            "backup.metadata_max_age_ms",
            d.metadata_max_age.as_millis() as u64,
            1_000,
            24 * 3600 * 1000,
            "ms",
        )?);
        let shards = self.bounded(
            raw.shards,
            "backup.shards",
            1,
            1,
            u64::from(backup_format::shard::MAX_SHARDS),
            "shards",
        )? as u32;
        let continuous = raw.continuous.map(|b| b.value).unwrap_or(false);
        match (continuous, raw.stop_at_current_offsets) {
            (true, Some(stop)) if stop.value => {
                return Err(self.invalid(
                    "backup.stop_at_current_offsets".to_owned(),
                    stop.line,
                    "is true while continuous is true: a backup either stops at the offsets it finds \
                     at start (snapshot) or keeps following new records (continuous); remove one of them"
                        .to_owned(),
                ));
            }
            (false, Some(stop)) if !stop.value => {
                return Err(self.invalid(
                    "backup.stop_at_current_offsets".to_owned(),
                    stop.line,
                    "is false but continuous is not set: a snapshot backup stops at the offsets it \
                     finds at start; set continuous: true to keep following new records instead"
                        .to_owned(),
                ));
            }
            _ => {}
        }
        if raw.include_offset_headers.is_some() {
            self.warnings.push(
                "backup.include_offset_headers is accepted and ignored: record batches are stored \
                 exactly as Kafka wrote them, so every record keeps its original offset, timestamp \
                 and headers without extra headers"
                    .to_owned(),
            );
        }
        Ok(BackupSettings {
            compression,
            compression_level,
            segment_max_bytes,
            segment_max_interval,
            continuous,
            max_concurrent_partitions,
            connections_per_broker,
            fetch_max_bytes,
            consumer_group_snapshot: raw
                .consumer_group_snapshot
                .map(|b| b.value)
                .unwrap_or(d.consumer_group_snapshot),
            metadata_max_age,
            shards,
        })
    }

    pub(super) fn bounded(
        &self,
        value: Option<ConfigU64>,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
        unit: &str,
    ) -> Result<u64, ConfigError> {
        let Some(v) = value else {
            return Ok(default);
        };
        if v.value < min || v.value > max {
            return Err(self.invalid(
                key.to_owned(),
                v.line,
                format!(
                    "{} {unit} is outside the accepted range {min} to {max} {unit} (default {default})",
                    v.value
                ),
            ));
        }
        Ok(v.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("*", "orders", true),
            ("orders", "orders", true),
            ("orders", "orders2", false),
            ("pay*", "payments", true),
            ("pay*", "pa", false),
            ("*-dlq", "orders-dlq", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxxb", true),
            ("*a*b", "xxaxxbxxc", false),
            ("", "", true),
            ("**", "x", true),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn internal_topics_need_an_explicit_pattern() {
        let all = TopicSelection::default();
        assert!(all.includes("orders", false));
        assert!(!all.includes("__consumer_offsets", true));
        assert!(!all.includes("__transaction_state", false));
        let explicit = TopicSelection {
            include: vec!["*".into(), "__consumer_offsets".into()],
            exclude: vec!["tmp-*".into()],
        };
        assert!(explicit.includes("__consumer_offsets", true));
        assert!(!explicit.includes("__transaction_state", true));
        assert!(!explicit.includes("tmp-1", false));
    }
}

//! Prometheus metrics of the command that is running: what a backup has read and stored, how
//! far each partition is behind its high watermark, errors by kind, and when a run last
//! succeeded. One registry per process, so the engine updates it where it already keeps its
//! figures and the command line serves or writes it without the engine knowing how.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use kafka_client::TopicPartition;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of a partition's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

/// Labels of a series per kind or state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// Running totals as last reported, so that counters advance by what changed.
#[derive(Default)]
struct Seen {
    backup_records: u64,
    backup_bytes_read: u64,
    backup_bytes_written: u64,
    backup_segments: u64,
}

/// The process's metrics. Counter names get `_total` from the exposition format.
pub struct Metrics {
    registry: Registry,
    backup_records: Counter,
    backup_bytes_read: Counter,
    backup_bytes_written: Counter,
    backup_segments: Counter,
    backup_lag: Family<PartitionLabels, Gauge>,
    backup_partitions: Family<StateLabels, Gauge>,
    restore_records: Counter,
    restore_bytes: Counter,
    errors: Family<KindLabels, Counter>,
    last_success: Gauge<f64, AtomicU64>,
    duration: Gauge<f64, AtomicU64>,
    seen: Mutex<Seen>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("kafka_backup");
        let m = Self {
            backup_records: Counter::default(),
            backup_bytes_read: Counter::default(),
            backup_bytes_written: Counter::default(),
            backup_segments: Counter::default(),
            backup_lag: Family::default(),
            backup_partitions: Family::default(),
            restore_records: Counter::default(),
            restore_bytes: Counter::default(),
            errors: Family::default(),
            last_success: Gauge::default(),
            duration: Gauge::default(),
            seen: Mutex::new(Seen::default()),
            registry: Registry::default(),
        };
        registry.register(
            "backup_records",
            "Records read from Kafka and stored by backups",
            m.backup_records.clone(),
        );
        registry.register(
            "backup_read_bytes",
            "Record batch bytes read from Kafka by backups",
            m.backup_bytes_read.clone(),
        );
        registry.register(
            "backup_written_bytes",
            "Bytes written to backup storage",
            m.backup_bytes_written.clone(),
        );
        registry.register(
            "backup_segments",
            "Segments written to backup storage",
            m.backup_segments.clone(),
        );
        registry.register(
            "backup_partition_lag_offsets",
            "Offsets between a partition's high watermark and what the backup has read",
            m.backup_lag.clone(),
        );
        registry.register(
            "backup_partitions",
            "Partitions of the running backup by state (active, done, failed)",
            m.backup_partitions.clone(),
        );
        registry.register(
            "restore_records",
            "Records written to Kafka by restores",
            m.restore_records.clone(),
        );
        registry.register(
            "restore_bytes",
            "Record batch bytes written to Kafka by restores",
            m.restore_bytes.clone(),
        );
        registry.register(
            "errors",
            "Failures by kind (kafka, storage, integrity, config, ...)",
            m.errors.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When the last run of this process completed without failure (Unix time)",
            m.last_success.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Wall time of the current or last run",
            m.duration.clone(),
        );
        Self { registry, ..m }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A backup's running totals and, per partition, its high watermark and read position.
    pub fn backup_progress<'a>(
        &self,
        records: u64,
        bytes_read: u64,
        bytes_written: u64,
        segments: u64,
        partitions: impl IntoIterator<Item = (&'a TopicPartition, Option<i64>, i64, &'a str)>,
    ) {
        {
            let mut seen = self.seen();
            advance(&self.backup_records, &mut seen.backup_records, records);
            advance(
                &self.backup_bytes_read,
                &mut seen.backup_bytes_read,
                bytes_read,
            );
            advance(
                &self.backup_bytes_written,
                &mut seen.backup_bytes_written,
                bytes_written,
            );
            advance(&self.backup_segments, &mut seen.backup_segments, segments);
        }
        let mut states: BTreeMap<&str, i64> = BTreeMap::new();
        for (tp, high_watermark, position, state) in partitions {
            *states.entry(state).or_default() += 1;
            if let Some(hw) = high_watermark {
                self.backup_lag
                    .get_or_create(&PartitionLabels {
                        topic: tp.topic.clone(),
                        partition: tp.partition.to_string(),
                    })
                    .set((hw - position).max(0));
            }
        }
        for state in ["active", "done", "failed"] {
            self.backup_partitions
                .get_or_create(&StateLabels {
                    state: state.to_owned(),
                })
                .set(states.get(state).copied().unwrap_or(0));
        }
    }

    /// Records and record batch bytes a restore has just written.
    pub fn restore_written(&self, records: u64, bytes: u64) {
        self.restore_records.inc_by(records);
        self.restore_bytes.inc_by(bytes);
    }

    /// The run's wall time so far.
    pub fn run_duration(&self, seconds: f64) {
        self.duration.set(seconds);
    }

    /// A run completed without failure now.
    pub fn succeeded(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_success.set(now);
    }

    /// A failure of `kind`.
    pub fn error(&self, kind: &str) {
        self.errors
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// The metrics in the OpenMetrics text format (what `/metrics` serves).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The metrics in Prometheus' classic text format (0.0.4), for files: node-exporter's
    /// textfile collector parses that format only, and read the OpenMetrics text with every
    /// counter turned "untyped" (its family is named without `_total`, its samples with it).
    pub fn encode_classic(&self) -> String {
        openmetrics_to_classic(&self.encode())
    }
}

/// Rewrites OpenMetrics text as the classic format: counter families take their samples'
/// `_total` name, and `# EOF` and `# UNIT` (unknown there) go.
fn openmetrics_to_classic(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Moves a counter forward to `total`; a total that went down (a new run) counts from zero.
fn advance(counter: &Counter, last: &mut u64, total: u64) {
    if total >= *last {
        counter.inc_by(total - *last);
    } else {
        counter.inc_by(total);
    }
    *last = total;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_format_names_counter_families_as_their_samples() {
        let open = "# HELP kb_records Records.\n# TYPE kb_records counter\nkb_records_total 3\n\
                    # HELP kb_lag Lag.\n# TYPE kb_lag gauge\n# UNIT kb_lag offsets\n\
                    kb_lag{topic=\"a\"} 0\n# EOF\n";
        assert_eq!(
            openmetrics_to_classic(open),
            "# HELP kb_records_total Records.\n# TYPE kb_records_total counter\nkb_records_total 3\n\
             # HELP kb_lag Lag.\n# TYPE kb_lag gauge\nkb_lag{topic=\"a\"} 0\n"
        );
    }

    #[test]
    fn counters_follow_totals_and_lag_is_per_partition() {
        let m = Metrics::new();
        let a = TopicPartition::new("orders", 0);
        let b = TopicPartition::new("orders", 1);
        m.backup_progress(
            10,
            1000,
            400,
            1,
            [(&a, Some(50), 10, "active"), (&b, None, 0, "failed")],
        );
        m.backup_progress(
            25,
            2500,
            900,
            2,
            [(&a, Some(50), 25, "active"), (&b, None, 0, "failed")],
        );
        m.restore_written(7, 70);
        m.error("storage");
        m.succeeded();
        let text = m.encode();
        for line in [
            "kafka_backup_backup_records_total 25",
            "kafka_backup_backup_read_bytes_total 2500",
            "kafka_backup_backup_written_bytes_total 900",
            "kafka_backup_backup_segments_total 2",
            "kafka_backup_backup_partition_lag_offsets{topic=\"orders\",partition=\"0\"} 25",
            "kafka_backup_backup_partitions{state=\"failed\"} 1",
            "kafka_backup_restore_records_total 7",
            "kafka_backup_errors_total{kind=\"storage\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.contains("kafka_backup_last_success_timestamp_seconds "));
        // A second run in the same process starts its totals again: counters keep growing.
        m.backup_progress(5, 100, 50, 1, []);
        assert!(m.encode().contains("kafka_backup_backup_records_total 30"));
    }
}

//! Progress while a backup runs: a per-topic table redrawn on a terminal, or a structured log
//! line every few seconds when output goes to a log pipeline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use kafka_client::TopicPartition;

use super::partition::{PartitionState, Status};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Redraw a table on stderr (a terminal).
    Terminal,
    /// Log a summary line every 10 seconds.
    Log,
    /// Nothing.
    Off,
}

const LOG_EVERY: Duration = Duration::from_secs(10);
const DRAW_EVERY: Duration = Duration::from_millis(500);
const MAX_ROWS: usize = 12;

#[derive(Default, Clone, Copy)]
struct TopicRow {
    partitions: usize,
    done: usize,
    failed: usize,
    records: u64,
    bytes: u64,
    remaining: u64,
}

/// Progress of one run.
pub struct Progress {
    mode: ProgressMode,
    started: Instant,
    last_shown: Option<Instant>,
    drawn_lines: usize,
    snapshot: bool,
}

impl Progress {
    /// Starts reporting in `mode`.
    pub fn new(mode: ProgressMode, snapshot: bool) -> Self {
        Self {
            mode,
            started: Instant::now(),
            last_shown: None,
            drawn_lines: 0,
            snapshot,
        }
    }

    /// Time since the run started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Shows the final state, whatever the time since the last update.
    pub(crate) fn finish(
        &mut self,
        partitions: &BTreeMap<TopicPartition, PartitionState>,
        segments: usize,
    ) {
        self.last_shown = None;
        self.update(partitions, segments);
    }

    pub(crate) fn update(
        &mut self,
        partitions: &BTreeMap<TopicPartition, PartitionState>,
        segments: usize,
    ) {
        let every = match self.mode {
            ProgressMode::Off => return,
            ProgressMode::Terminal => DRAW_EVERY,
            ProgressMode::Log => LOG_EVERY,
        };
        let now = Instant::now();
        if self
            .last_shown
            .is_some_and(|t| now.duration_since(t) < every)
        {
            return;
        }
        self.last_shown = Some(now);
        let mut rows: BTreeMap<&str, TopicRow> = BTreeMap::new();
        for (tp, p) in partitions {
            let row = rows.entry(tp.topic.as_str()).or_default();
            row.partitions += 1;
            row.done += usize::from(p.status == Status::Done);
            row.failed += usize::from(matches!(p.status, Status::Failed(_)));
            row.records += p.records;
            row.bytes += p.raw_bytes;
            row.remaining += p.remaining();
        }
        let elapsed = now.duration_since(self.started).as_secs_f64().max(0.001);
        let total = rows.values().fold(TopicRow::default(), |mut a, r| {
            a.partitions += r.partitions;
            a.done += r.done;
            a.failed += r.failed;
            a.records += r.records;
            a.bytes += r.bytes;
            a.remaining += r.remaining;
            a
        });
        let rate = total.bytes as f64 / elapsed;
        let record_rate = total.records as f64 / elapsed;
        let eta = (self.snapshot && record_rate > 0.0 && total.remaining > 0)
            .then(|| Duration::from_secs_f64(total.remaining as f64 / record_rate));
        match self.mode {
            ProgressMode::Log => tracing::info!(
                records = total.records,
                bytes = total.bytes,
                mb_per_s = format!("{:.1}", rate / 1e6),
                partitions_done = total.done,
                partitions = total.partitions,
                segments,
                eta_s = eta.map(|e| e.as_secs()),
                "backup progress"
            ),
            ProgressMode::Terminal => {
                let mut out = String::new();
                if self.drawn_lines > 0 {
                    // Move up over the previous table and clear it.
                    let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn_lines);
                }
                let mut lines = 0;
                let _ = writeln!(
                    out,
                    "{:<32} {:>9} {:>12} {:>10}  partitions",
                    "topic", "records", "bytes", "rate"
                );
                lines += 1;
                for (name, r) in rows.iter().take(MAX_ROWS) {
                    let _ = writeln!(
                        out,
                        "{:<32} {:>9} {:>12} {:>8}/s  {}/{}{}",
                        truncate(name, 32),
                        human_count(r.records),
                        human_bytes(r.bytes),
                        human_bytes((r.bytes as f64 / elapsed) as u64),
                        r.done,
                        r.partitions,
                        if r.failed > 0 {
                            format!(" ({} failed)", r.failed)
                        } else {
                            String::new()
                        }
                    );
                    lines += 1;
                }
                if rows.len() > MAX_ROWS {
                    let _ = writeln!(out, "... and {} more topics", rows.len() - MAX_ROWS);
                    lines += 1;
                }
                let _ = writeln!(
                    out,
                    "total {} records, {} at {}/s, {segments} segments stored{}",
                    human_count(total.records),
                    human_bytes(total.bytes),
                    human_bytes(rate as u64),
                    eta.map(|e| format!(", ETA {}s", e.as_secs()))
                        .unwrap_or_default()
                );
                lines += 1;
                let mut stderr = std::io::stderr().lock();
                let _ = stderr.write_all(out.as_bytes());
                let _ = stderr.flush();
                self.drawn_lines = lines;
            }
            ProgressMode::Off => {}
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// `1.2 MB`-style sizes (decimal units, as throughput is usually quoted).
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

fn human_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=9_999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_count(12_345), "12.3k");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}

//! `--summary-file`: one small JSON object about the command, written when it ends, success
//! or failure. In Kubernetes the operator points it at `/dev/termination-log`, and reads it
//! back from the pod's status (at most 4 KiB there) to fill the resource's status without
//! reading logs or storage.

use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// The largest summary written: what Kubernetes keeps of a termination message.
pub const MAX_SUMMARY_BYTES: usize = 4096;

/// What a backup or restore reports for the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Work {
    /// The backup.
    pub backup_id: Option<String>,
    /// The backup run, or the restore id.
    pub run_id: Option<String>,
    /// `INDEX/COUNT` of a sharded backup's run.
    pub shard: Option<String>,
    /// `complete`, `partial`, `interrupted`.
    pub outcome: Option<&'static str>,
    /// Records stored (backup) or written to Kafka (restore).
    pub records: u64,
    /// Bytes written to storage (backup) or to Kafka (restore).
    pub bytes: u64,
}

static WORK: Mutex<Option<Work>> = Mutex::new(None);

/// Records what the command did, for the summary.
pub fn record(work: Work) {
    if let Ok(mut w) = WORK.lock() {
        *w = Some(work);
    }
}

#[derive(Serialize)]
struct Summary<'a> {
    command: &'a str,
    exit_code: i32,
    outcome: &'a str,
    backup_id: Option<&'a str>,
    run_id: Option<&'a str>,
    shard: Option<&'a str>,
    records: u64,
    bytes: u64,
    finished_at: String,
    error: Option<&'a str>,
}

/// The summary's JSON, at most [`MAX_SUMMARY_BYTES`]: a long error message is cut at a
/// character boundary, with `…` marking the cut.
fn render(command: &str, exit_code: i32, error: Option<&str>, work: &Work) -> String {
    let finished_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let outcome = match (exit_code, work.outcome) {
        (0, Some(o)) => o,
        (0, None) => "complete",
        (_, Some(o)) if o != "complete" => o,
        _ => "failed",
    };
    let mut error = error.map(str::to_owned);
    loop {
        let summary = Summary {
            command,
            exit_code,
            outcome,
            backup_id: work.backup_id.as_deref(),
            run_id: work.run_id.as_deref(),
            shard: work.shard.as_deref(),
            records: work.records,
            bytes: work.bytes,
            finished_at: finished_at.clone(),
            error: error.as_deref(),
        };
        let json = serde_json::to_string(&summary).unwrap_or_else(|_| "{}".to_owned());
        let Some(text) = error.as_mut().filter(|_| json.len() > MAX_SUMMARY_BYTES) else {
            return json;
        };
        // JSON escaping can make the message longer than its text: cut by the excess and
        // try again.
        let excess = json.len() - MAX_SUMMARY_BYTES + '…'.len_utf8();
        let mut keep = text.len().saturating_sub(excess);
        while !text.is_char_boundary(keep) {
            keep -= 1;
        }
        text.truncate(keep);
        text.push('…');
    }
}

/// Writes the summary of `command` to `path`.
pub fn write(
    path: &Path,
    command: &str,
    exit_code: i32,
    error: Option<&str>,
) -> Result<(), String> {
    let work = WORK.lock().ok().and_then(|w| w.clone()).unwrap_or_default();
    std::fs::write(path, render(command, exit_code, error, &work)).map_err(|e| {
        format!(
            "cannot write the summary to --summary-file {}: {e}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_says_what_ran_and_fits_a_termination_message() {
        let work = Work {
            backup_id: Some("orders".into()),
            run_id: Some("20261204T233000Z-1a2b3c4d.shard-1-of-3".into()),
            shard: Some("1/3".into()),
            outcome: Some("complete"),
            records: 300,
            bytes: 4096,
        };
        let json: serde_json::Value =
            serde_json::from_str(&render("backup", 0, None, &work)).unwrap();
        assert_eq!(json["outcome"], "complete");
        assert_eq!(json["shard"], "1/3");
        assert_eq!(json["records"], 300);
        assert_eq!(json["error"], serde_json::Value::Null);

        let failed = render(
            "backup",
            3,
            Some("Secret `x` has no key `y`"),
            &Work::default(),
        );
        let json: serde_json::Value = serde_json::from_str(&failed).unwrap();
        assert_eq!(json["outcome"], "failed");
        assert_eq!(json["exit_code"], 3);
        assert_eq!(json["error"], "Secret `x` has no key `y`");

        // A partial run keeps its outcome; a huge message (quotes escape to two bytes each,
        // and multi-byte characters) is cut to fit.
        let work = Work {
            outcome: Some("partial"),
            ..Work::default()
        };
        let long = "\"é".repeat(5000);
        let text = render("backup", 6, Some(&long), &work);
        assert!(text.len() <= MAX_SUMMARY_BYTES, "{}", text.len());
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["outcome"], "partial");
        assert!(json["error"].as_str().unwrap().ends_with('…'));
    }
}

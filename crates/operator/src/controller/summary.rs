//! The JSON summary kafka-backup writes to `/dev/termination-log` (`--summary-file`), read
//! back from the Pods of a Job: what each shard of a run did, without reading logs or storage.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

/// The annotation the Job controller puts on each Pod of an Indexed Job.
const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The label the Job controller puts on each Pod of a Job.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// One command's summary, as `kafka-backup --summary-file` writes it. Unknown fields are
/// allowed: a newer kafka-backup may report more.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct RunSummary {
    /// `backup` or `restore`.
    pub command: String,
    /// The process's exit code.
    pub exit_code: i32,
    /// `complete`, `partial`, `interrupted` or `failed`.
    pub outcome: String,
    /// The backup.
    #[serde(default)]
    pub backup_id: Option<String>,
    /// The backup run, or the restore id.
    #[serde(default)]
    pub run_id: Option<String>,
    /// `INDEX/COUNT` of a sharded run.
    #[serde(default)]
    pub shard: Option<String>,
    /// Records stored (backup) or written to Kafka (restore).
    pub records: u64,
    /// Bytes written to storage (backup) or to Kafka (restore).
    pub bytes: u64,
    /// When the command ended (RFC 3339).
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

impl RunSummary {
    fn finished(&self) -> Option<Timestamp> {
        self.finished_at.as_deref()?.parse().ok()
    }

    /// Whether the command did all it was asked.
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0 && self.outcome == "complete"
    }
}

/// What the Pods of one Job reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobReport {
    /// The deciding summary of each shard (the key is the shard, or the completion index):
    /// the successful attempt if there is one, else the latest.
    pub shards: BTreeMap<String, RunSummary>,
    /// Pods whose termination message is not a summary, each with why.
    pub malformed: Vec<String>,
}

impl JobReport {
    /// Reads the termination messages of `job`'s Pods among `pods`.
    pub fn of(job: &Job, pods: &[Pod]) -> Self {
        let mut report = Self::default();
        for pod in pods.iter().filter(|pod| belongs_to(pod, job)) {
            let pod_name = pod.metadata.name.as_deref().unwrap_or("(unnamed)");
            let statuses = pod
                .status
                .as_ref()
                .and_then(|status| status.container_statuses.as_deref())
                .unwrap_or_default();
            for message in statuses
                .iter()
                .filter_map(|status| {
                    status
                        .state
                        .as_ref()?
                        .terminated
                        .as_ref()?
                        .message
                        .as_deref()
                })
                .map(str::trim)
                .filter(|message| !message.is_empty())
            {
                match serde_json::from_str::<RunSummary>(message) {
                    Ok(summary) => report.add(pod, summary),
                    Err(e) => report.malformed.push(format!(
                        "Pod {pod_name}'s termination message is not kafka-backup's JSON \
                         summary ({e}), so its records and bytes are not counted"
                    )),
                }
            }
        }
        report
    }

    fn add(&mut self, pod: &Pod, summary: RunSummary) {
        let key = summary
            .shard
            .clone()
            .or_else(|| {
                let index = pod.metadata.annotations.as_ref()?.get(COMPLETION_INDEX)?;
                Some(index.clone())
            })
            .unwrap_or_default();
        let better = match self.shards.get(&key) {
            None => true,
            Some(kept) => {
                (summary.succeeded(), summary.finished()) > (kept.succeeded(), kept.finished())
            }
        };
        if better {
            self.shards.insert(key, summary);
        }
    }

    /// Records of all shards.
    pub fn records(&self) -> u64 {
        self.shards.values().map(|s| s.records).sum()
    }

    /// Bytes of all shards.
    pub fn bytes(&self) -> u64 {
        self.shards.values().map(|s| s.bytes).sum()
    }

    /// The worst outcome of the shards: `failed` over `interrupted` over `partial` over
    /// `complete`.
    pub fn outcome(&self) -> Option<String> {
        self.shards
            .values()
            .map(|s| s.outcome.as_str())
            .max_by_key(|outcome| match *outcome {
                "complete" => 0,
                "partial" => 1,
                "interrupted" => 2,
                // `failed`, and anything a newer kafka-backup may say: not a success.
                _ => 3,
            })
            .map(str::to_owned)
    }

    /// The run ids, in shard order, without repeats.
    pub fn run_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for id in self.shards.values().filter_map(|s| s.run_id.clone()) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// The errors the shards reported, each with its shard when the run is sharded.
    pub fn errors(&self) -> Vec<String> {
        self.shards
            .values()
            .filter_map(|s| {
                let error = s.error.as_deref()?;
                Some(match &s.shard {
                    Some(shard) => format!("shard {shard}: {error}"),
                    None => error.to_owned(),
                })
            })
            .collect()
    }

    /// When the last shard finished.
    pub fn finished(&self) -> Option<Timestamp> {
        self.shards.values().filter_map(RunSummary::finished).max()
    }
}

/// Whether `pod` is one of `job`'s: owned by it when the Job has a uid (a Job of the same name
/// recreated has another), else labelled with its name.
fn belongs_to(pod: &Pod, job: &Job) -> bool {
    match &job.metadata.uid {
        Some(uid) => pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|owner| &owner.uid == uid),
        None => {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(JOB_NAME_LABEL))
                == job.metadata.name.as_ref()
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn job() -> Job {
        let mut job = Job::default();
        job.metadata.name = Some("orders-29000000".into());
        job.metadata.uid = Some("job-uid".into());
        job
    }

    fn pod(name: &str, owner_uid: &str, message: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: "orders-29000000".into(),
            uid: owner_uid.into(),
            controller: Some(true),
            ..Default::default()
        }]);
        pod.status = Some(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: "kafka-backup".into(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        message: Some(message.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
        pod
    }

    fn summary(shard: &str, exit_code: i32, outcome: &str, records: u64, error: &str) -> String {
        serde_json::json!({
            "command": "backup", "exit_code": exit_code, "outcome": outcome,
            "backup_id": "orders", "run_id": format!("run-{shard}"), "shard": shard,
            "records": records, "bytes": records * 10,
            "finished_at": "2026-12-05T02:00:00Z",
            "error": if error.is_empty() { serde_json::Value::Null } else { error.into() },
            "a_field_of_a_newer_version": true,
        })
        .to_string()
    }

    #[test]
    fn shards_are_summed_and_a_retried_shard_counts_once() {
        let pods = [
            pod("a", "job-uid", &summary("0/2", 0, "complete", 100, "")),
            // Shard 1 failed once, then succeeded: only the success counts.
            pod(
                "b1",
                "job-uid",
                &summary("1/2", 1, "failed", 7, "broker gone"),
            ),
            pod("b2", "job-uid", &summary("1/2", 0, "complete", 200, "")),
            // Another Job's Pod (same name, earlier uid) is not this run's.
            pod("old", "older-uid", &summary("0/2", 0, "complete", 999, "")),
        ];
        let report = JobReport::of(&job(), &pods);
        assert_eq!(report.shards.len(), 2);
        assert_eq!((report.records(), report.bytes()), (300, 3000));
        assert_eq!(report.outcome().as_deref(), Some("complete"));
        assert_eq!(report.run_ids(), ["run-0/2", "run-1/2"]);
        assert!(report.errors().is_empty());
        assert!(report.malformed.is_empty());
    }

    #[test]
    fn the_worst_outcome_and_every_error_are_reported() {
        let pods = [
            pod("a", "job-uid", &summary("0/2", 0, "complete", 1, "")),
            pod(
                "b",
                "job-uid",
                &summary(
                    "1/2",
                    3,
                    "failed",
                    0,
                    "Secret `kafka-tls` has no key `ca.crt`",
                ),
            ),
        ];
        let report = JobReport::of(&job(), &pods);
        assert_eq!(report.outcome().as_deref(), Some("failed"));
        assert_eq!(
            report.errors(),
            ["shard 1/2: Secret `kafka-tls` has no key `ca.crt`"]
        );
    }

    #[test]
    fn a_message_that_is_not_a_summary_is_noted_not_fatal() {
        let pods = [
            pod("garbled", "job-uid", "panicked at 'oops'"),
            pod("cut", "job-uid", "{\"command\":\"backup\",\"exit_"),
            pod("empty", "job-uid", "  "),
            pod("good", "job-uid", &summary("0/1", 0, "complete", 5, "")),
        ];
        let report = JobReport::of(&job(), &pods);
        assert_eq!(report.records(), 5);
        assert_eq!(report.malformed.len(), 2, "{:?}", report.malformed);
        assert!(report.malformed[0].contains("Pod garbled"));
    }
}

//! The status of a resource, computed from its Jobs and their Pods' summaries: a pure
//! function of what the API server returned, so every rule is tested without one.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::Value;

use super::resource::{Observed, Phase};
use super::summary::JobReport;
use crate::crd::LastRun;
use crate::render::RenderError;

/// Condition type: the resource does what it asks (its last run did not fail, its spec
/// renders).
pub const READY: &str = "Ready";
/// Condition type: the spec rendered and the objects were applied.
pub const RENDERED: &str = "Rendered";
/// Condition type, present only when a Pod's termination message could not be read.
pub const SUMMARY: &str = "RunSummary";

/// What the status is computed from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// `metadata.generation` of the resource.
    pub generation: Option<i64>,
    /// The status written so far.
    pub previous: Option<&'a Observed>,
    /// What runs it, e.g. `CronJob orders`.
    pub workload: &'a str,
    /// Whether it is a CronJob (no Job yet means waiting for the schedule).
    pub scheduled: bool,
    /// `spec.suspend`.
    pub suspended: bool,
    /// Its Jobs.
    pub jobs: &'a [Job],
    /// Their Pods.
    pub pods: &'a [Pod],
    /// Now, for new conditions.
    pub now: &'a Time,
}

/// Whether a Job is finished, from its conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobState {
    Running,
    Succeeded,
    Failed,
}

fn job_state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_deref())
        .unwrap_or_default();
    let is = |type_: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    if is("Complete") {
        JobState::Succeeded
    } else if is("Failed") {
        JobState::Failed
    } else {
        JobState::Running
    }
}

fn job_name(job: &Job) -> &str {
    job.metadata.name.as_deref().unwrap_or("(unnamed)")
}

/// When a finished Job finished: its completion time, or when it was marked failed.
fn job_finished(job: &Job) -> Option<Time> {
    let status = job.status.as_ref()?;
    status.completion_time.clone().or_else(|| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Failed" && c.status == "True")?
            .last_transition_time
            .clone()
    })
}

/// The status after the resource's Jobs and Pods were read.
pub fn observe(inputs: Inputs<'_>) -> Observed {
    let previous = inputs.previous.cloned().unwrap_or_default();
    let mut jobs: Vec<&Job> = inputs.jobs.iter().collect();
    // Oldest first: a Job not started yet sorts by creation.
    jobs.sort_by_key(|job| {
        let started = job.status.as_ref().and_then(|s| s.start_time.clone());
        (
            started.or_else(|| job.metadata.creation_timestamp.clone()),
            job.metadata.name.clone(),
        )
    });
    let latest = jobs.last().copied();
    let latest_success = jobs
        .iter()
        .rev()
        .find(|job| job_state(job) == JobState::Succeeded)
        .copied();

    let mut malformed = Vec::new();
    let latest_report = latest.map(|job| JobReport::of(job, inputs.pods));
    if let Some(report) = &latest_report {
        malformed.extend(report.malformed.iter().cloned());
    }

    let mut observed = Observed {
        observed_generation: inputs.generation,
        records: previous.records,
        bytes: previous.bytes,
        last_success_time: previous.last_success_time.clone(),
        last_run: previous.last_run.clone(),
        ..Observed::default()
    };
    if let Some(job) = latest_success {
        let report = if Some(job) == latest {
            latest_report.clone().unwrap_or_default()
        } else {
            let report = JobReport::of(job, inputs.pods);
            malformed.extend(report.malformed.iter().cloned());
            report
        };
        // Pods of an old Job may be gone (history limits, TTL): what was read from them
        // before stays.
        if !report.shards.is_empty() {
            observed.records = Some(saturating_i64(report.records()));
            observed.bytes = Some(saturating_i64(report.bytes()));
        }
        observed.last_success_time = job_finished(job)
            .or_else(|| report.finished().map(Time))
            .or(observed.last_success_time);
    }

    let state = latest.map(job_state);
    if let (Some(job), Some(report)) = (latest, &latest_report) {
        let started = job.status.as_ref().and_then(|s| s.start_time.clone());
        observed.last_run = Some(LastRun {
            job_name: job.metadata.name.clone(),
            start_time: started,
            completion_time: match state {
                Some(JobState::Running) | None => None,
                _ => job_finished(job),
            },
            succeeded: match state {
                Some(JobState::Succeeded) => Some(true),
                Some(JobState::Failed) => Some(false),
                _ => None,
            },
            outcome: report.outcome(),
            run_ids: report.run_ids(),
        });
    }

    let (phase, ready, reason, message) = match (latest, state) {
        (Some(job), Some(JobState::Running)) => (
            Phase::Running,
            true,
            "Running",
            format!("Job {} is running", job_name(job)),
        ),
        (_, _) if inputs.suspended => (
            Phase::Suspended,
            true,
            "Suspended",
            format!(
                "spec.suspend is true: {} starts no new runs",
                inputs.workload
            ),
        ),
        (Some(job), Some(JobState::Succeeded)) => {
            let counts = match &latest_report {
                Some(report) if !report.shards.is_empty() => {
                    format!(": {} records, {} bytes", report.records(), report.bytes())
                }
                _ => String::new(),
            };
            (
                Phase::Succeeded,
                true,
                "Succeeded",
                format!("Job {} completed{counts}", job_name(job)),
            )
        }
        (Some(job), _) => (
            Phase::Failed,
            false,
            "JobFailed",
            failure_message(job, latest_report.as_ref()),
        ),
        (None, _) if inputs.scheduled => (
            Phase::Scheduled,
            true,
            "Scheduled",
            format!("{} waits for its schedule", inputs.workload),
        ),
        (None, _) => (
            Phase::Pending,
            false,
            "Pending",
            format!("{} is created and has not started", inputs.workload),
        ),
    };
    observed.phase = Some(phase);

    let mut conditions = Conditions::new(&previous.conditions, inputs.generation, inputs.now);
    conditions.set(
        RENDERED,
        true,
        "Applied",
        format!("the ConfigMap and {} are applied", inputs.workload),
    );
    conditions.set(READY, ready, reason, message);
    if !malformed.is_empty() {
        conditions.set(SUMMARY, false, "MalformedSummary", malformed.join("; "));
    }
    observed.conditions = conditions.done();
    observed
}

/// The status of a resource whose spec does not render: nothing is applied, and the
/// condition says which field to fix. What earlier runs reported stays.
pub fn render_failed(
    previous: Option<&Observed>,
    generation: Option<i64>,
    error: &RenderError,
    now: &Time,
) -> Observed {
    let previous = previous.cloned().unwrap_or_default();
    let message = format!("{error}; nothing is applied until the spec is fixed");
    let mut conditions = Conditions::new(&previous.conditions, generation, now);
    conditions.set(RENDERED, false, error.reason(), message.clone());
    conditions.set(READY, false, error.reason(), message);
    Observed {
        phase: Some(Phase::Failed),
        observed_generation: generation,
        conditions: conditions.done(),
        ..previous
    }
}

/// The status of a resource whose objects the API server refused (the operator's RBAC, or an
/// object it rejects): the error names what to fix.
pub fn apply_failed(
    previous: Option<&Observed>,
    generation: Option<i64>,
    reason: &str,
    message: String,
    now: &Time,
) -> Observed {
    let previous = previous.cloned().unwrap_or_default();
    let mut conditions = Conditions::new(&previous.conditions, generation, now);
    conditions.set(RENDERED, false, reason, message.clone());
    conditions.set(READY, false, reason, message);
    Observed {
        phase: Some(Phase::Failed),
        observed_generation: generation,
        conditions: conditions.done(),
        ..previous
    }
}

fn failure_message(job: &Job, report: Option<&JobReport>) -> String {
    let name = job_name(job);
    let errors = report.map(JobReport::errors).unwrap_or_default();
    if !errors.is_empty() {
        return format!("Job {name} failed: {}", errors.join("; "));
    }
    let why = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")
        .map(|c| {
            let reason = c.reason.as_deref().unwrap_or("Failed");
            match c.message.as_deref() {
                Some(message) => format!("{reason}: {message}"),
                None => reason.to_owned(),
            }
        })
        .unwrap_or_else(|| "it did not complete".to_owned());
    format!("Job {name} failed ({why}) and its Pods left no summary: see `kubectl logs job/{name}`")
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Conditions being set, keeping the transition time of those whose status did not change
/// (so an unchanged status compares equal and is not written again).
struct Conditions<'a> {
    previous: &'a [Condition],
    generation: Option<i64>,
    now: &'a Time,
    set: Vec<Condition>,
}

impl<'a> Conditions<'a> {
    fn new(previous: &'a [Condition], generation: Option<i64>, now: &'a Time) -> Self {
        Self {
            previous,
            generation,
            now,
            set: Vec::new(),
        }
    }

    fn set(&mut self, type_: &str, status: bool, reason: &str, message: String) {
        let status = if status { "True" } else { "False" };
        let last_transition_time = self
            .previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| self.now.clone(), |c| c.last_transition_time.clone());
        self.set.push(Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            last_transition_time,
            observed_generation: self.generation,
        });
    }

    fn done(self) -> Vec<Condition> {
        self.set
    }
}

/// A JSON merge patch (RFC 7386) that turns `old` into `new`: `new` with `null` for every
/// member `old` has and `new` lacks, at any depth (the status types leave unset fields out,
/// which a merge patch would read as "keep").
pub fn merge_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in new {
                let member = match old.get(key) {
                    Some(before) => merge_patch(before, value),
                    None => value.clone(),
                };
                patch.insert(key.clone(), member);
            }
            for key in old.keys().filter(|key| !new.contains_key(*key)) {
                patch.insert(key.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

#[cfg(test)]
mod tests;

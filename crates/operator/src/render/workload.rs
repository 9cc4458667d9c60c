//! The Job or CronJob around the Pod.

use k8s_openapi::api::batch::v1::{
    CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec, PodFailurePolicy,
    PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::pod::CONTAINER;

/// Retries of a failed Pod. Few: a run resumes where the failed one stopped, so a retry only
/// helps with what passes by itself (a broker restart, a storage hiccup).
pub const BACKOFF_LIMIT: i32 = 2;

/// Exit codes a retry cannot change: a wrong command line (2) and an invalid configuration
/// (3, which includes a Secret without the key the resource names). The Job fails at once
/// with the summary of the first Pod instead of three identical ones.
pub const FINAL_EXIT_CODES: [i32; 2] = [2, 3];

/// A Job of `shards` Pods (an Indexed Job above one, whose Pods learn their index from
/// `JOB_COMPLETION_INDEX`), suspended when `suspend`.
pub(super) fn job_spec(pod: PodTemplateSpec, shards: i32, suspend: Option<bool>) -> JobSpec {
    let indexed = shards > 1;
    JobSpec {
        template: pod,
        backoff_limit: Some(BACKOFF_LIMIT),
        completion_mode: indexed.then(|| "Indexed".to_owned()),
        completions: indexed.then_some(shards),
        parallelism: indexed.then_some(shards),
        suspend,
        pod_failure_policy: Some(PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some(CONTAINER.into()),
                    operator: "In".into(),
                    values: FINAL_EXIT_CODES.to_vec(),
                }),
                on_pod_conditions: None,
            }],
        }),
        ..JobSpec::default()
    }
}

/// A Job from its metadata and spec.
pub(super) fn job(metadata: ObjectMeta, spec: JobSpec) -> Job {
    Job {
        metadata,
        spec: Some(spec),
        status: None,
    }
}

/// How a CronJob runs its Jobs.
pub(super) struct Schedule {
    pub schedule: String,
    pub time_zone: Option<String>,
    pub suspend: Option<bool>,
    pub successful_jobs_history_limit: Option<i32>,
    pub failed_jobs_history_limit: Option<i32>,
}

/// A CronJob starting a Job of `spec` on `schedule`. The Job carries `metadata`'s labels, so
/// the controller finds the Jobs and Pods of each run by them.
pub(super) fn cron_job(metadata: ObjectMeta, spec: JobSpec, schedule: Schedule) -> CronJob {
    let job_metadata = ObjectMeta {
        labels: metadata.labels.clone(),
        ..ObjectMeta::default()
    };
    CronJob {
        metadata,
        spec: Some(CronJobSpec {
            schedule: schedule.schedule,
            time_zone: schedule.time_zone,
            suspend: schedule.suspend,
            // A run that overlaps the next would back up the same partitions twice at once.
            concurrency_policy: Some("Forbid".into()),
            successful_jobs_history_limit: Some(
                schedule.successful_jobs_history_limit.unwrap_or(3),
            ),
            failed_jobs_history_limit: Some(schedule.failed_jobs_history_limit.unwrap_or(1)),
            job_template: JobTemplateSpec {
                metadata: Some(job_metadata),
                spec: Some(spec),
            },
            ..CronJobSpec::default()
        }),
        status: None,
    }
}

//! Objects as the API server returns them, for the controller's tests.

use k8s_openapi::api::batch::v1::{
    CronJob, CronJobSpec, Job, JobCondition, JobSpec, JobStatus, JobTemplateSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus,
    PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use serde_json::{Value, json};

use crate::crd::{KafkaBackup, KafkaRestore};
use crate::render::{Rendered, Workload};

/// The uid of the `KafkaBackup` of the tests.
pub const BACKUP_UID: &str = "8d3b6a5e-2c1f-4f7e-9a0b-1c2d3e4f5a6b";
/// Its namespace.
pub const NAMESPACE: &str = "kafka";

/// A `KafkaBackup` `orders` as read from the API server (uid, generation), the Strimzi way:
/// cluster CA and a TLS KafkaUser, S3 storage.
pub fn kafka_backup(schedule: Option<&str>) -> KafkaBackup {
    let mut spec = json!({
        "kafkaCluster": {
            "bootstrapServers": ["my-cluster-kafka-bootstrap:9093"],
            "securityProtocol": "SSL",
            "caSecret": {"name": "my-cluster-cluster-ca-cert", "caKey": "ca.crt"},
            "tlsSecret": {"name": "backup-user", "certKey": "user.crt", "keyKey": "user.key"}
        },
        "storage": {"backend": "s3", "bucket": "kafka-backups", "region": "eu-west-1"}
    });
    if let Some(schedule) = schedule {
        spec["schedule"] = schedule.into();
    }
    serde_json::from_value(json!({
        "apiVersion": "kafka.oso.sh/v1alpha1",
        "kind": "KafkaBackup",
        "metadata": {
            "name": "orders", "namespace": NAMESPACE, "uid": BACKUP_UID,
            "generation": 3, "resourceVersion": "1000"
        },
        "spec": spec
    }))
    .expect("the test KafkaBackup reads")
}

/// A time of the tests: `2026-12-05T02:MM:00Z`.
pub fn time(minute: u32) -> Time {
    Time(
        format!("2026-12-05T02:{minute:02}:00Z")
            .parse()
            .expect("a valid timestamp"),
    )
}

/// How a test Job stands.
#[derive(Clone, Copy, Debug)]
pub enum State {
    Running,
    Complete,
    Failed,
}

/// A Job `name` owned by `owner_uid` (the KafkaBackup or its CronJob), started at `minute`,
/// finished ten minutes later unless running.
pub fn job(name: &str, owner_uid: &str, minute: u32, state: State) -> Job {
    let mut job = Job::default();
    job.metadata.name = Some(name.into());
    job.metadata.namespace = Some(NAMESPACE.into());
    job.metadata.uid = Some(format!("uid-{name}"));
    job.metadata.labels = Some([("kafka.oso.sh/backup".to_owned(), "orders".to_owned())].into());
    job.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "kafka.oso.sh/v1alpha1".into(),
        kind: "KafkaBackup".into(),
        name: "orders".into(),
        uid: owner_uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    let condition = |type_: &str, reason: &str, message: &str| JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(time(minute + 10)),
        ..Default::default()
    };
    job.status = Some(JobStatus {
        start_time: Some(time(minute)),
        active: matches!(state, State::Running).then_some(1),
        completion_time: matches!(state, State::Complete).then(|| time(minute + 10)),
        conditions: match state {
            State::Running => None,
            State::Complete => Some(vec![condition("Complete", "", "")]),
            State::Failed => Some(vec![condition(
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )]),
        },
        ..Default::default()
    });
    job
}

/// A terminated Pod of `job` whose termination message is `message`.
pub fn pod(name: &str, job: &Job, message: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.namespace = Some(NAMESPACE.into());
    pod.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.metadata.name.clone().unwrap_or_default(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
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

/// The summary `kafka-backup --summary-file` writes for one shard.
pub fn summary(shard: Option<&str>, records: u64, bytes: u64, error: Option<&str>) -> String {
    let failed = error.is_some();
    json!({
        "command": "backup",
        "exit_code": if failed { 3 } else { 0 },
        "outcome": if failed { "failed" } else { "complete" },
        "backup_id": "orders",
        "run_id": format!("20261205T020000Z-{}", shard.unwrap_or("0/1").replace('/', "of")),
        "shard": shard,
        "records": records,
        "bytes": bytes,
        "finished_at": "2026-12-05T02:09:30Z",
        "error": error.map_or(Value::Null, Value::from),
    })
    .to_string()
}

/// The uid of the `KafkaRestore` of the tests.
pub const RESTORE_UID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

/// A `KafkaRestore` `orders-dr` of the backup `orders`, as read from the API server.
pub fn kafka_restore() -> KafkaRestore {
    serde_json::from_value(json!({
        "apiVersion": "kafka.oso.sh/v1alpha1",
        "kind": "KafkaRestore",
        "metadata": {
            "name": "orders-dr", "namespace": NAMESPACE, "uid": RESTORE_UID,
            "generation": 1, "resourceVersion": "2000",
            "finalizers": ["kafka.oso.sh/finalizer"]
        },
        "spec": {
            "backupId": "orders",
            "storage": {"backend": "s3", "bucket": "kafka-backups", "region": "eu-west-1"},
            "kafkaCluster": {"bootstrapServers": ["dr-kafka-bootstrap:9092"]}
        }
    }))
    .expect("the test KafkaRestore reads")
}

/// Objects as the renderer returns them for `cr` (labels, no owner references: the
/// controller must add those): a ConfigMap `<cr>-config` and `workload`.
pub fn rendered(cr: &str, label: &str, workload: Workload) -> Rendered {
    let mut config_map = ConfigMap::default();
    config_map.metadata.name = Some(format!("{cr}-config"));
    config_map.metadata.labels = Some(labels(cr, label));
    config_map.data = Some(
        [(
            "config.yaml".to_owned(),
            "mode: backup\nbackup_id: orders\nsource:\n  bootstrap_servers: [my-cluster-kafka-bootstrap:9093]\n  security:\n    ssl_key_location: ${file:/var/run/kafka-backup/secrets/backup-user/user.key}\n"
                .to_owned(),
        )]
        .into(),
    );
    Rendered {
        config_map,
        workload,
    }
}

fn labels(cr: &str, label: &str) -> std::collections::BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", "kafka-backup"),
        ("app.kubernetes.io/instance", cr),
        (label, cr),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn pod_template(cr: &str, label: &str, command: &str) -> PodTemplateSpec {
    serde_json::from_value(json!({
        "metadata": {"labels": labels(cr, label)},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "kafka-backup",
                "image": "registry.example/kafka-backup:1.0",
                "args": ["--log-format", "json", "--summary-file", "/dev/termination-log",
                         command, "--config", "/etc/kafka-backup/config.yaml"]
            }]
        }
    }))
    .expect("a pod template")
}

/// A CronJob `orders` as rendered.
pub fn cron_job(schedule: &str) -> Workload {
    let mut cron = CronJob::default();
    cron.metadata.name = Some("orders".into());
    cron.metadata.labels = Some(labels("orders", "kafka.oso.sh/backup"));
    cron.spec = Some(CronJobSpec {
        schedule: schedule.into(),
        job_template: JobTemplateSpec {
            metadata: None,
            spec: Some(JobSpec {
                backoff_limit: Some(2),
                template: pod_template("orders", "kafka.oso.sh/backup", "backup"),
                ..Default::default()
            }),
        },
        ..Default::default()
    });
    Workload::CronJob(cron)
}

/// A Job `name` as rendered for `cr`.
pub fn one_off_job(cr: &str, name: &str, label: &str, command: &str) -> Workload {
    let mut job = Job::default();
    job.metadata.name = Some(name.into());
    job.metadata.labels = Some(labels(cr, label));
    job.spec = Some(JobSpec {
        backoff_limit: Some(2),
        template: pod_template(cr, label, command),
        ..Default::default()
    });
    Workload::Job(job)
}

//! Test (2) of the operator: what is rendered actually runs. A `KafkaBackup` (SCRAM-SHA-512
//! broker, S3 on the test environment's moto, credentials from Secrets) is rendered, its Pod
//! laid out as the kubelet would (see `common::kubelet`), and its command run against the
//! real broker and moto: the backup succeeds, alone and as three shards of an Indexed Job,
//! and a Secret without the key the resource names fails naming the Secret and the key.
//!
//! Needs `scripts/test-env.sh start` (KB_TEST_ENV names its env.json) and the kafka-backup
//! binary (`cargo build -p kafka-backup`).

mod common;

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

use common::kubelet::{MaterialisedPod, Secrets};
use common::{Resource, parse};
use k8s_openapi::api::core::v1::PodSpec;
use kafka_backup_operator::render::{Rendered, Workload};
use test_support::{get, python, unique_topic};

const PARTITIONS: usize = 3;
const RECORDS_PER_PARTITION: usize = 40;

/// Creates `topic` on the SCRAM broker with [`PARTITIONS`] partitions and produces
/// [`RECORDS_PER_PARTITION`] records into each.
fn produce(topic: &str) {
    let out = python(
        r#"
import sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
broker, user, password, topic, partitions, n = sys.argv[1:7]
conf = {"bootstrap.servers": broker, "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password}
admin = AdminClient(conf)
for f in admin.create_topics([NewTopic(topic, int(partitions), 1)]).values():
    f.result()
p = Producer(conf)
for part in range(int(partitions)):
    for i in range(int(n)):
        p.produce(topic, key=f"k-{part}-{i}".encode(), value=f"v-{i}".encode(), partition=part)
p.flush()
print("ok")
"#,
        &[
            &get("/brokers/sasl_plaintext"),
            &get("/scram/sha512/username"),
            &get("/scram/sha512/password"),
            topic,
            &PARTITIONS.to_string(),
            &RECORDS_PER_PARTITION.to_string(),
        ],
    );
    assert_eq!(out.trim(), "ok");
}

/// The objects under `prefix` in the test bucket, listed with boto3 (not the code under test).
fn objects(prefix: &str) -> Vec<String> {
    let out = python(
        r#"
import sys, boto3
endpoint, region, key_id, secret, bucket, prefix = sys.argv[1:7]
c = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                 aws_access_key_id=key_id, aws_secret_access_key=secret)
for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for o in page.get("Contents", []):
        print(o["Key"])
"#,
        &[
            &get("/s3/endpoint"),
            &get("/s3/region"),
            &get("/s3/access_key_id"),
            &get("/s3/secret_access_key"),
            &get("/s3/bucket"),
            prefix,
        ],
    );
    out.lines().map(str::to_owned).collect()
}

/// A `KafkaBackup` of `topic` as a user would write it for the test environment, with a uid
/// as from the API server.
fn kafka_backup(name: &str, topic: &str, prefix: &str, shards: u32) -> Resource {
    let yaml = format!(
        r#"
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata:
  name: {name}
  namespace: kafka
spec:
  kafkaCluster:
    bootstrapServers: ["{broker}"]
    securityProtocol: SASL_PLAINTEXT
    saslSecret:
      name: kafka-user
      mechanism: SCRAM-SHA-512
      usernameKey: username
      passwordKey: password
  topics:
    include: ["{topic}"]
  storage:
    backend: s3
    bucket: {bucket}
    region: {region}
    endpoint: {endpoint}
    forcePathStyle: true
    allowHttp: true
    prefix: {prefix}
    credentialsSecret:
      name: moto-s3
      accessKeyKey: access-key-id
      secretKeyKey: secret-access-key
  shards: {shards}
"#,
        broker = get("/brokers/sasl_plaintext"),
        bucket = get("/s3/bucket"),
        region = get("/s3/region"),
        endpoint = get("/s3/endpoint"),
    );
    parse(name, &yaml)
}

/// The Secrets of the namespace: the SCRAM user's and moto's keys.
fn secrets() -> Secrets {
    let secret = |pairs: &[(&str, String)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };
    BTreeMap::from([
        (
            "kafka-user".to_owned(),
            secret(&[
                ("username", get("/scram/sha512/username")),
                ("password", get("/scram/sha512/password")),
            ]),
        ),
        (
            "moto-s3".to_owned(),
            secret(&[
                ("access-key-id", get("/s3/access_key_id")),
                ("secret-access-key", get("/s3/secret_access_key")),
            ]),
        ),
    ])
}

fn pod_spec(rendered: &Rendered) -> (PodSpec, Option<i32>) {
    let Workload::Job(job) = &rendered.workload else {
        panic!("no schedule: a Job");
    };
    let spec = job.spec.as_ref().expect("a Job spec");
    let indexed = (spec.completion_mode.as_deref() == Some("Indexed")).then(|| {
        assert_eq!(spec.completions, spec.parallelism);
        spec.completions.expect("completions")
    });
    (spec.template.spec.clone().expect("a Pod spec"), indexed)
}

/// Waits for the process, failing the test after `limit`.
fn wait(child: std::process::Child, limit: Duration) -> Output {
    let pid = child.id();
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("the process's output"),
        Err(_) => panic!(
            "kafka-backup (pid {pid}) did not finish within {:?}",
            started.elapsed()
        ),
    }
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_rendered_job_backs_up_the_topic_to_moto() {
    let topic = unique_topic("op-job");
    produce(&topic);
    let prefix = unique_topic("op-job-prefix");
    let resource = kafka_backup("orders", &topic, &prefix, 1);
    let rendered = resource.render().expect("renders");
    let (pod, indexed) = pod_spec(&rendered);
    assert_eq!(indexed, None);
    let secrets = secrets();
    let materialised = MaterialisedPod::new(&pod, &rendered.config_map, &secrets);
    let output = wait(materialised.start(None), Duration::from_secs(180));
    assert!(output.status.success(), "{}", describe(&output));

    let summary = materialised.summary();
    assert_eq!(summary["command"], "backup", "{summary}");
    assert_eq!(summary["exit_code"], 0, "{summary}");
    assert_eq!(summary["outcome"], "complete", "{summary}");
    assert_eq!(summary["backup_id"], "orders", "{summary}");
    assert_eq!(summary["shard"], serde_json::Value::Null, "{summary}");
    assert_eq!(
        summary["records"],
        (PARTITIONS * RECORDS_PER_PARTITION) as u64,
        "{summary}"
    );
    assert!(summary["bytes"].as_u64().unwrap_or(0) > 0, "{summary}");
    assert_eq!(summary["error"], serde_json::Value::Null, "{summary}");

    let stored = objects(&format!("{prefix}/orders/"));
    let segments: Vec<&String> = stored.iter().filter(|k| k.ends_with(".kbseg")).collect();
    assert!(
        segments.len() >= PARTITIONS,
        "a segment per partition at least: {stored:?}"
    );
    for partition in 0..PARTITIONS {
        assert!(
            segments
                .iter()
                .any(|k| k.contains(&format!("/{topic}/"))
                    && k.contains(&format!("/{partition:05}/"))),
            "partition {partition} stored: {segments:?}"
        );
    }
    // No secret reached the output or the summary (the user name and the access key id are
    // identities, which reports name).
    let everything = format!("{}{summary}", describe(&output));
    for (secret, key) in [("kafka-user", "password"), ("moto-s3", "secret-access-key")] {
        let value = &secrets[secret][key];
        assert!(
            !everything.contains(value.as_str()),
            "{secret}/{key} in the output"
        );
    }
}

#[test]
fn three_shards_of_the_indexed_job_back_up_one_backup_together() {
    let topic = unique_topic("op-shards");
    produce(&topic);
    let prefix = unique_topic("op-shards-prefix");
    let resource = kafka_backup("events", &topic, &prefix, 3);
    let rendered = resource.render().expect("renders");
    let (pod, indexed) = pod_spec(&rendered);
    assert_eq!(indexed, Some(3), "an Indexed Job of three");
    let secrets = secrets();
    // One root per Pod: each Pod has its own volumes and termination log.
    let pods: Vec<MaterialisedPod> = (0..3)
        .map(|_| MaterialisedPod::new(&pod, &rendered.config_map, &secrets))
        .collect();
    let children: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(index, p)| p.start(Some(index as u32)))
        .collect();
    let mut records = 0;
    let mut run_ids = std::collections::BTreeSet::new();
    for (index, child) in children.into_iter().enumerate() {
        let output = wait(child, Duration::from_secs(180));
        assert!(
            output.status.success(),
            "shard {index}: {}",
            describe(&output)
        );
        let summary = pods[index].summary();
        assert_eq!(summary["outcome"], "complete", "{summary}");
        assert_eq!(summary["shard"], format!("{index}/3"), "{summary}");
        records += summary["records"].as_u64().expect("records");
        run_ids.insert(summary["run_id"].as_str().expect("a run id").to_owned());
    }
    assert_eq!(run_ids.len(), 3, "each shard is its own run: {run_ids:?}");
    assert_eq!(
        records,
        (PARTITIONS * RECORDS_PER_PARTITION) as u64,
        "the shards together back up every record once"
    );
    let stored = objects(&format!("{prefix}/events/"));
    for partition in 0..PARTITIONS {
        assert!(
            stored
                .iter()
                .any(|k| k.ends_with(".kbseg") && k.contains(&format!("/{partition:05}/"))),
            "partition {partition} stored: {stored:?}"
        );
    }
}

#[test]
fn a_secret_without_the_named_key_fails_naming_the_secret_and_the_key() {
    let topic = unique_topic("op-missing");
    let prefix = unique_topic("op-missing-prefix");
    let resource = kafka_backup("orders", &topic, &prefix, 1);
    let rendered = resource.render().expect("renders");
    let (pod, _) = pod_spec(&rendered);
    let mut secrets = secrets();
    secrets
        .get_mut("moto-s3")
        .expect("the S3 Secret")
        .remove("secret-access-key");
    let materialised = MaterialisedPod::new(&pod, &rendered.config_map, &secrets);
    let output = wait(materialised.start(None), Duration::from_secs(60));
    assert_eq!(
        output.status.code(),
        Some(3),
        "a configuration error: {}",
        describe(&output)
    );
    let summary = materialised.summary();
    assert_eq!(summary["outcome"], "failed", "{summary}");
    let error = summary["error"].as_str().expect("an error message");
    assert!(
        error.contains("Secret `moto-s3` has no key `secret-access-key`"),
        "{error}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Secret `moto-s3` has no key `secret-access-key`"),
        "{stderr}"
    );
    assert!(
        objects(&format!("{prefix}/")).is_empty(),
        "nothing was written"
    );
}

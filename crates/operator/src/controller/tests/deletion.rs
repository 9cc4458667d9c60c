//! A deleted resource keeps its finalizer until its Jobs have stopped.

use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use serde_json::json;

use super::fixtures::{BACKUP_UID, State, job, kafka_backup};
use super::{ApiServer, list};
use crate::controller::FINALIZER;
use crate::controller::reconcile::reconcile_with;
use crate::crd::KafkaBackup;

const BACKUP: &str = "/apis/kafka.oso.sh/v1alpha1/namespaces/kafka/kafkabackups/orders";
const CRON_JOBS: &str = "/apis/batch/v1/namespaces/kafka/cronjobs";
const JOBS: &str = "/apis/batch/v1/namespaces/kafka/jobs";
const SELECTOR: &str = "kafka.oso.sh/backup=orders";

/// The backup being deleted, held by another controller's finalizer and ours.
fn deleted() -> KafkaBackup {
    let mut kb = kafka_backup(Some("0 2 * * *"));
    kb.metadata.finalizers = Some(vec!["other.example/keep".into(), FINALIZER.into()]);
    kb.metadata.deletion_timestamp = Some(super::fixtures::time(59));
    kb
}

fn cron_job_json(owner_uid: &str) -> serde_json::Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "orders", "namespace": "kafka", "uid": "cron-uid",
                     "ownerReferences": [{"apiVersion": "kafka.oso.sh/v1alpha1", "kind": "KafkaBackup",
                                          "name": "orders", "uid": owner_uid, "controller": true}]},
        "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}
    })
}

#[tokio::test]
async fn deletion_stops_the_running_job_in_the_foreground_then_removes_the_finalizer() {
    // First pass: the CronJob and its running Job are deleted in the foreground, and the
    // finalizer stays while they are there.
    let (ctx, mut server) = ApiServer::start();
    let kb = deleted();
    let resource = kb.clone();
    let reconciling = tokio::spawn(async move {
        reconcile_with(&resource, &ctx, |_| {
            panic!("a deleted resource is not rendered")
        })
        .await
    });
    server
        .next(|seen| {
            seen.is_list(CRON_JOBS, SELECTOR);
            list(vec![cron_job_json(BACKUP_UID)])
        })
        .await;
    server
        .next(|seen| {
            seen.is(Method::DELETE, &format!("{CRON_JOBS}/orders"));
            assert_eq!(seen.body["propagationPolicy"], "Foreground");
            (200, cron_job_json(BACKUP_UID))
        })
        .await;
    let running =
        serde_json::to_value(job("orders-29000000", "cron-uid", 0, State::Running)).unwrap();
    let other =
        serde_json::to_value(job("orders-impostor", "not-ours", 0, State::Running)).unwrap();
    server
        .next(|seen| {
            seen.is_list(JOBS, SELECTOR);
            list(vec![running.clone(), other])
        })
        .await;
    server
        .next(|seen| {
            // Foreground: the Job stays until its Pods are gone, each given SIGTERM and its
            // grace period to store its open segments.
            seen.is(Method::DELETE, &format!("{JOBS}/orders-29000000"));
            assert_eq!(seen.body["propagationPolicy"], "Foreground");
            (200, running)
        })
        .await;
    server.nothing_more().await;
    assert_eq!(
        reconciling.await.unwrap().expect("reconciled"),
        Action::requeue(Duration::from_secs(5))
    );

    // Second pass: all gone, so only our finalizer is removed.
    let (ctx, mut server) = ApiServer::start();
    let current = serde_json::to_value(&kb).unwrap();
    let reconciling = tokio::spawn(async move {
        reconcile_with(&kb, &ctx, |_| panic!("a deleted resource is not rendered")).await
    });
    server
        .next(|seen| {
            seen.is_list(CRON_JOBS, SELECTOR);
            list(vec![])
        })
        .await;
    server
        .next(|seen| {
            seen.is_list(JOBS, SELECTOR);
            list(vec![])
        })
        .await;
    server
        .next(|seen| {
            seen.is(Method::PATCH, BACKUP);
            let patched = seen.json_patched(&current);
            assert_eq!(
                patched["metadata"]["finalizers"],
                json!(["other.example/keep"])
            );
            (200, patched)
        })
        .await;
    server.nothing_more().await;
    assert_eq!(
        reconciling.await.unwrap().expect("reconciled"),
        Action::await_change()
    );
}

#[tokio::test]
async fn a_finalizer_list_changed_meanwhile_is_not_overwritten() {
    // Our finalizer was added to a list that another controller has changed since: the
    // patch's test fails on the API server, and nothing is lost.
    let (ctx, mut server) = ApiServer::start();
    let mut kb = kafka_backup(None);
    kb.metadata.finalizers = Some(vec!["other.example/keep".into()]);
    let mut changed = serde_json::to_value(&kb).unwrap();
    changed["metadata"]["finalizers"] = json!(["other.example/keep", "third.example/x"]);
    let reconciling =
        tokio::spawn(async move { reconcile_with(&kb, &ctx, |_| panic!("not rendered")).await });
    server
        .next(|seen| {
            let patch: json_patch::Patch = serde_json::from_value(seen.body.clone()).unwrap();
            assert!(json_patch::patch(&mut changed.clone(), &patch).is_err());
            super::refused(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request",
            )
        })
        .await;
    let error = reconciling
        .await
        .unwrap()
        .expect_err("the finalizer was not added");
    assert!(error.to_string().contains(FINALIZER), "{error}");
}

//! A `KafkaBackup`'s reconciliation, request by request.

use std::sync::Arc;

use http::Method;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::fixtures::{
    BACKUP_UID, NAMESPACE, State, cron_job, job, kafka_backup, one_off_job, pod, rendered, summary,
};
use super::{ApiServer, applied, condition, list, owner, refused, status_patched};
use crate::controller::reconcile::reconcile_with;
use crate::controller::{Disposition, FINALIZER, reconcile};
use crate::crd::KafkaBackup;
use crate::render::{RenderError, render_backup};

const BACKUP: &str = "/apis/kafka.oso.sh/v1alpha1/namespaces/kafka/kafkabackups/orders";
const CONFIG_MAP: &str = "/api/v1/namespaces/kafka/configmaps/orders-config";
const CRON_JOB: &str = "/apis/batch/v1/namespaces/kafka/cronjobs/orders";
const JOBS: &str = "/apis/batch/v1/namespaces/kafka/jobs";
const PODS: &str = "/api/v1/namespaces/kafka/pods";
const SELECTOR: &str = "kafka.oso.sh/backup=orders";

fn with_finalizer(mut kb: KafkaBackup) -> KafkaBackup {
    kb.metadata.finalizers = Some(vec![FINALIZER.into()]);
    kb
}

#[tokio::test]
async fn a_scheduled_backup_gets_its_finalizer_its_objects_and_its_status() {
    let (ctx, mut server) = ApiServer::start();
    let kb = kafka_backup(Some("0 2 * * *"));
    let mut current = serde_json::to_value(&kb).unwrap();
    let given = rendered("orders", "kafka.oso.sh/backup", cron_job("0 2 * * *"));
    let reconciling =
        tokio::spawn(async move { reconcile_with(&kb, &ctx, move |_| Ok(given)).await });

    // 1. The finalizer, first of all, without clobbering a concurrent change.
    server
        .next(|seen| {
            seen.is(Method::PATCH, BACKUP);
            current = seen.json_patched(&current);
            assert_eq!(current["metadata"]["finalizers"], json!([FINALIZER]));
            (200, current.clone())
        })
        .await;

    // 2. The ConfigMap, owned by the KafkaBackup, as rendered.
    server
        .next(|seen| {
            seen.is_apply(CONFIG_MAP);
            let meta = &seen.body["metadata"];
            assert_eq!(
                meta["ownerReferences"],
                owner("KafkaBackup", "orders", BACKUP_UID)
            );
            assert_eq!(meta["namespace"], NAMESPACE);
            assert_eq!(meta["labels"]["kafka.oso.sh/backup"], "orders");
            assert_eq!(
                meta["labels"]["app.kubernetes.io/managed-by"],
                "kafka-backup-operator"
            );
            assert_eq!(
                (seen.body["apiVersion"].as_str(), seen.body["kind"].as_str()),
                (Some("v1"), Some("ConfigMap"))
            );
            let config = seen.body["data"]["config.yaml"].as_str().unwrap();
            assert!(config.contains("${file:/var/run/kafka-backup/secrets/backup-user/user.key}"));
            applied(seen, "cm-uid")
        })
        .await;

    // 3. The CronJob, owned, not suspended, its Jobs' and Pods' templates labelled.
    server
        .next(|seen| {
            seen.is_apply(CRON_JOB);
            let body = &seen.body;
            assert_eq!(body["kind"], "CronJob");
            assert_eq!(
                body["metadata"]["ownerReferences"],
                owner("KafkaBackup", "orders", BACKUP_UID)
            );
            assert_eq!(body["spec"]["suspend"], false);
            assert_eq!(body["spec"]["schedule"], "0 2 * * *");
            let template = &body["spec"]["jobTemplate"];
            assert_eq!(
                template["metadata"]["labels"]["kafka.oso.sh/backup"],
                "orders"
            );
            assert_eq!(
                template["spec"]["template"]["metadata"]["labels"]["kafka.oso.sh/backup"],
                "orders"
            );
            applied(seen, "cron-uid")
        })
        .await;

    // 4. Its Jobs: one of the CronJob's, finished; one with the label but someone else's.
    let done = job("orders-29000000", "cron-uid", 0, State::Complete);
    let foreign = job("orders-impostor", "not-ours", 45, State::Failed);
    let jobs = vec![
        serde_json::to_value(&done).unwrap(),
        serde_json::to_value(&foreign).unwrap(),
    ];
    server
        .next(|seen| {
            seen.is_list(JOBS, SELECTOR);
            list(jobs)
        })
        .await;

    // 5. The Pods of the Job that is ours, with their summaries.
    let pods = vec![
        serde_json::to_value(pod(
            "orders-29000000-0",
            &done,
            &summary(Some("0/2"), 1_000, 64_000, None),
        ))
        .unwrap(),
        serde_json::to_value(pod(
            "orders-29000000-1",
            &done,
            &summary(Some("1/2"), 2_000, 128_000, None),
        ))
        .unwrap(),
    ];
    server
        .next(|seen| {
            seen.is_list(PODS, "batch.kubernetes.io/job-name in (orders-29000000)");
            list(pods)
        })
        .await;

    // 6. The status: the finished run, summed over its shards.
    let seen = server
        .next(|seen| {
            seen.is_status_patch(BACKUP);
            status_patched(&current, seen)
        })
        .await;
    let status = &seen.body["status"];
    assert_eq!(status["phase"], "Succeeded");
    assert_eq!(status["observedGeneration"], 3);
    assert_eq!(status["records"], 3_000);
    assert_eq!(status["bytes"], 192_000);
    assert_eq!(status["lastSuccessTime"], "2026-12-05T02:10:00Z");
    assert_eq!(status["lastRun"]["jobName"], "orders-29000000");
    assert_eq!(status["lastRun"]["succeeded"], true);
    assert_eq!(status["lastRun"]["outcome"], "complete");
    assert_eq!(
        status["lastRun"]["runIds"].as_array().map(Vec::len),
        Some(2)
    );
    let ready = condition(status, "Ready");
    assert_eq!(
        (&ready["status"], &ready["reason"]),
        (&json!("True"), &json!("Succeeded"))
    );
    assert_eq!(condition(status, "Rendered")["reason"], "Applied");

    server.nothing_more().await;
    let action = reconciling.await.unwrap().expect("reconciled");
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(300)));
}

#[tokio::test]
async fn suspend_suspends_the_cronjob_and_an_unchanged_status_is_not_written_again() {
    let mut kb = with_finalizer(kafka_backup(Some("0 2 * * *")));
    kb.spec.suspend = Some(true);
    let mut first_status = Value::Null;
    for pass in 0..2 {
        let (ctx, mut server) = ApiServer::start();
        let resource = kb.clone();
        let current = serde_json::to_value(&kb).unwrap();
        let given = rendered("orders", "kafka.oso.sh/backup", cron_job("0 2 * * *"));
        let reconciling =
            tokio::spawn(async move { reconcile_with(&resource, &ctx, move |_| Ok(given)).await });
        server
            .next(|seen| {
                seen.is_apply(CONFIG_MAP);
                applied(seen, "cm-uid")
            })
            .await;
        server
            .next(|seen| {
                seen.is_apply(CRON_JOB);
                assert_eq!(seen.body["spec"]["suspend"], true);
                applied(seen, "cron-uid")
            })
            .await;
        // No Job yet: no Pods to read.
        server
            .next(|seen| {
                seen.is_list(JOBS, SELECTOR);
                list(vec![])
            })
            .await;
        if pass == 0 {
            let seen = server
                .next(|seen| {
                    seen.is_status_patch(BACKUP);
                    status_patched(&current, seen)
                })
                .await;
            first_status = seen.body["status"].clone();
            assert_eq!(first_status["phase"], "Suspended");
            // The next pass reads the status as written.
            let mut written = current.clone();
            json_patch::merge(&mut written, &seen.body);
            kb = serde_json::from_value(written).unwrap();
        }
        server.nothing_more().await;
        reconciling.await.unwrap().expect("reconciled");
    }
    assert_eq!(
        kb.status.as_ref().and_then(|s| s.phase),
        Some(crate::crd::BackupPhase::Suspended)
    );
    assert_eq!(condition(&first_status, "Ready")["reason"], "Suspended");
}

#[tokio::test]
async fn a_render_error_fails_closed_applying_nothing() {
    let (ctx, mut server) = ApiServer::start();
    let kb = with_finalizer(kafka_backup(None));
    let current = serde_json::to_value(&kb).unwrap();
    let error = RenderError::Encryption {
        field: "spec.encryption.keySecret".into(),
        reason: "keyProvider local needs keySecret with name and key".into(),
    };
    let reconciling =
        tokio::spawn(async move { reconcile_with(&kb, &ctx, move |_| Err(error)).await });

    let seen = server
        .next(|seen| {
            seen.is_status_patch(BACKUP);
            status_patched(&current, seen)
        })
        .await;
    let status = &seen.body["status"];
    assert_eq!(status["phase"], "Failed");
    let ready = condition(status, "Ready");
    assert_eq!(
        (&ready["status"], &ready["reason"]),
        (&json!("False"), &json!("EncryptionUnusable"))
    );
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains("spec.encryption.keySecret"), "{message}");
    assert!(message.contains("nothing is applied"), "{message}");

    // No ConfigMap, no Job: an encryption block that cannot be honoured never runs.
    server.nothing_more().await;
    assert_eq!(
        reconciling.await.unwrap().expect("reconciled"),
        Action::await_change()
    );
}

#[tokio::test]
async fn a_one_off_job_is_applied_once_and_its_failure_names_the_missing_key() {
    // First pass: no Job yet, so it is applied.
    let (ctx, mut server) = ApiServer::start();
    let kb = with_finalizer(kafka_backup(None));
    let current = serde_json::to_value(&kb).unwrap();
    let given = rendered(
        "orders",
        "kafka.oso.sh/backup",
        one_off_job("orders", "orders", "kafka.oso.sh/backup", "backup"),
    );
    let resource = kb.clone();
    let reconciling =
        tokio::spawn(async move { reconcile_with(&resource, &ctx, move |_| Ok(given)).await });
    server
        .next(|seen| {
            seen.is_apply(CONFIG_MAP);
            applied(seen, "cm-uid")
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
            seen.is_apply(&format!("{JOBS}/orders"));
            assert_eq!(
                seen.body["metadata"]["ownerReferences"],
                owner("KafkaBackup", "orders", BACKUP_UID)
            );
            assert_eq!(
                seen.body["spec"]["template"]["metadata"]["labels"]["kafka.oso.sh/backup"],
                "orders"
            );
            applied(seen, "uid-orders")
        })
        .await;
    server
        .next(|seen| {
            seen.is_list(PODS, "batch.kubernetes.io/job-name in (orders)");
            list(vec![])
        })
        .await;
    let seen = server
        .next(|seen| {
            seen.is_status_patch(BACKUP);
            status_patched(&current, seen)
        })
        .await;
    assert_eq!(seen.body["status"]["phase"], "Running");
    server.nothing_more().await;
    reconciling.await.unwrap().expect("reconciled");

    // Second pass: the Job failed on a Secret without the key the spec names. It is not
    // applied again (a Job's template cannot change), and the status says what to fix.
    let (ctx, mut server) = ApiServer::start();
    let given = rendered(
        "orders",
        "kafka.oso.sh/backup",
        one_off_job("orders", "orders", "kafka.oso.sh/backup", "backup"),
    );
    let reconciling =
        tokio::spawn(async move { reconcile_with(&kb, &ctx, move |_| Ok(given)).await });
    server
        .next(|seen| {
            seen.is_apply(CONFIG_MAP);
            applied(seen, "cm-uid")
        })
        .await;
    let failed = job("orders", BACKUP_UID, 0, State::Failed);
    let failed_json = serde_json::to_value(&failed).unwrap();
    server
        .next(|seen| {
            seen.is_list(JOBS, SELECTOR);
            list(vec![failed_json])
        })
        .await;
    let error = "Secret `backup-user` has no key `user.key`: add it to the Secret, or name the \
                 key the Secret has in spec.kafkaCluster.tlsSecret.keyKey";
    let pods = vec![
        serde_json::to_value(pod(
            "orders-abcde",
            &failed,
            &summary(None, 0, 0, Some(error)),
        ))
        .unwrap(),
    ];
    server
        .next(|seen| {
            seen.is_list(PODS, "batch.kubernetes.io/job-name in (orders)");
            list(pods)
        })
        .await;
    let seen = server
        .next(|seen| {
            seen.is_status_patch(BACKUP);
            status_patched(&current, seen)
        })
        .await;
    let status = &seen.body["status"];
    assert_eq!(status["phase"], "Failed");
    let ready = condition(status, "Ready");
    assert_eq!(
        (&ready["status"], &ready["reason"]),
        (&json!("False"), &json!("JobFailed"))
    );
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("Secret `backup-user` has no key `user.key`")
    );
    assert_eq!(status["lastRun"]["succeeded"], false);
    server.nothing_more().await;
    reconciling.await.unwrap().expect("reconciled");
}

#[tokio::test]
async fn a_malformed_termination_message_is_a_condition_not_a_panic() {
    let (ctx, mut server) = ApiServer::start();
    let kb = with_finalizer(kafka_backup(Some("0 2 * * *")));
    let current = serde_json::to_value(&kb).unwrap();
    let given = rendered("orders", "kafka.oso.sh/backup", cron_job("0 2 * * *"));
    let reconciling =
        tokio::spawn(async move { reconcile_with(&kb, &ctx, move |_| Ok(given)).await });
    server
        .next(|seen| {
            seen.is_apply(CONFIG_MAP);
            applied(seen, "cm-uid")
        })
        .await;
    server
        .next(|seen| {
            seen.is_apply(CRON_JOB);
            applied(seen, "cron-uid")
        })
        .await;
    let done = job("orders-29000000", "cron-uid", 0, State::Complete);
    let done_json = serde_json::to_value(&done).unwrap();
    server
        .next(|seen| {
            seen.is_list(JOBS, SELECTOR);
            list(vec![done_json])
        })
        .await;
    let pods = vec![
        serde_json::to_value(pod(
            "orders-29000000-0",
            &done,
            &summary(Some("0/2"), 10, 100, None),
        ))
        .unwrap(),
        serde_json::to_value(pod("orders-29000000-1", &done, "\u{0}\u{1}not json {{{")).unwrap(),
    ];
    server
        .next(|seen| {
            seen.is_list(PODS, "batch.kubernetes.io/job-name in (orders-29000000)");
            list(pods)
        })
        .await;
    let seen = server
        .next(|seen| {
            seen.is_status_patch(BACKUP);
            status_patched(&current, seen)
        })
        .await;
    let status = &seen.body["status"];
    assert_eq!(status["records"], 10);
    let summary = condition(status, "RunSummary");
    assert_eq!(
        (&summary["status"], &summary["reason"]),
        (&json!("False"), &json!("MalformedSummary"))
    );
    assert!(
        summary["message"]
            .as_str()
            .unwrap()
            .contains("orders-29000000-1")
    );
    reconciling.await.unwrap().expect("reconciled");
}

#[tokio::test]
async fn a_forbidden_apply_is_reported_and_left_for_a_person_to_fix() {
    let (ctx, mut server) = ApiServer::start();
    let kb = with_finalizer(kafka_backup(Some("0 2 * * *")));
    let current = serde_json::to_value(&kb).unwrap();
    let given = rendered("orders", "kafka.oso.sh/backup", cron_job("0 2 * * *"));
    let reconciling =
        tokio::spawn(async move { reconcile_with(&kb, &ctx, move |_| Ok(given)).await });
    server
        .next(|seen| {
            seen.is_apply(CONFIG_MAP);
            refused(403, "Forbidden", "configmaps \"orders-config\" is forbidden: User \"system:serviceaccount:kafka:kafka-backup-operator\" cannot patch resource \"configmaps\"")
        })
        .await;
    let seen = server
        .next(|seen| {
            seen.is_status_patch(BACKUP);
            status_patched(&current, seen)
        })
        .await;
    let ready = condition(&seen.body["status"], "Ready");
    assert_eq!(ready["reason"], "Forbidden");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("deploy/rbac.yaml")
    );
    server.nothing_more().await;
    let error = reconciling
        .await
        .unwrap()
        .expect_err("the apply was refused");
    assert_eq!(error.disposition(), Disposition::UserMustFix);
}

/// The reconciler with the real renderer: whatever it makes of this resource is either
/// applied with an owner reference, or reported as a render error with nothing applied.
#[tokio::test]
async fn the_reconciler_applies_what_the_renderer_makes_or_reports_why_not() {
    let (ctx, mut server) = ApiServer::start();
    let kb = with_finalizer(kafka_backup(Some("0 2 * * *")));
    let current = serde_json::to_value(&kb).unwrap();
    let outcome = render_backup(&kb, &ctx.render);
    let reconciling = tokio::spawn(reconcile(Arc::new(kb), Arc::new(ctx)));
    match outcome {
        Ok(_) => {
            server
                .next(|seen| {
                    seen.is_apply(CONFIG_MAP);
                    assert_eq!(
                        seen.body["metadata"]["ownerReferences"],
                        owner("KafkaBackup", "orders", BACKUP_UID)
                    );
                    applied(seen, "cm-uid")
                })
                .await;
            server
                .next(|seen| {
                    seen.is_apply(CRON_JOB);
                    assert_eq!(
                        seen.body["metadata"]["ownerReferences"],
                        owner("KafkaBackup", "orders", BACKUP_UID)
                    );
                    assert_eq!(seen.body["spec"]["schedule"], "0 2 * * *");
                    applied(seen, "cron-uid")
                })
                .await;
            server
                .next(|seen| {
                    seen.is_list(JOBS, SELECTOR);
                    list(vec![])
                })
                .await;
            let seen = server
                .next(|seen| {
                    seen.is_status_patch(BACKUP);
                    status_patched(&current, seen)
                })
                .await;
            assert_eq!(seen.body["status"]["phase"], "Scheduled");
        }
        Err(error) => {
            let seen = server
                .next(|seen| {
                    seen.is_status_patch(BACKUP);
                    status_patched(&current, seen)
                })
                .await;
            assert_eq!(seen.body["status"]["phase"], "Failed");
            assert_eq!(
                condition(&seen.body["status"], "Ready")["reason"],
                error.reason()
            );
        }
    }
    server.nothing_more().await;
    reconciling.await.unwrap().expect("reconciled");
}

#[tokio::test]
async fn failures_back_off_per_resource_until_a_reconciliation_succeeds() {
    use crate::controller::Error;
    use crate::controller::reconcile::{error_policy, key};

    let (ctx, _server) = ApiServer::start();
    let ctx = Arc::new(ctx);
    let kb = Arc::new(with_finalizer(kafka_backup(None)));
    let forbidden = || Error::Api {
        action: "server-side apply of ConfigMap kafka/orders-config".into(),
        source: kube::Error::Api(Box::new(kube::core::Status {
            code: 403,
            reason: "Forbidden".into(),
            ..Default::default()
        })),
    };
    let secs = std::time::Duration::from_secs;
    assert_eq!(
        error_policy(kb.clone(), &forbidden(), ctx.clone()),
        Action::requeue(secs(60))
    );
    assert_eq!(
        error_policy(kb.clone(), &forbidden(), ctx.clone()),
        Action::requeue(secs(120))
    );
    ctx.succeeded(&key(kb.as_ref()));
    assert_eq!(
        error_policy(kb, &forbidden(), ctx),
        Action::requeue(secs(60))
    );
}

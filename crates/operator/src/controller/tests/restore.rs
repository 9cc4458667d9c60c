//! A `KafkaRestore`'s reconciliation uses its own label, Job and phases.

use serde_json::json;

use super::fixtures::{RESTORE_UID, State, job, kafka_restore, one_off_job, pod, rendered};
use super::{ApiServer, applied, condition, list, owner, status_patched};
use crate::controller::reconcile::reconcile_with;

const RESTORE: &str = "/apis/kafka.oso.sh/v1alpha1/namespaces/kafka/kafkarestores/orders-dr";

#[tokio::test]
async fn a_restore_job_is_applied_and_its_summary_becomes_the_status() {
    let (ctx, mut server) = ApiServer::start();
    let kr = kafka_restore();
    let current = serde_json::to_value(&kr).unwrap();
    let given = rendered(
        "orders-dr",
        "kafka.oso.sh/restore",
        one_off_job(
            "orders-dr",
            "orders-dr-restore",
            "kafka.oso.sh/restore",
            "restore",
        ),
    );
    let reconciling =
        tokio::spawn(async move { reconcile_with(&kr, &ctx, move |_| Ok(given)).await });
    server
        .next(|seen| {
            seen.is_apply("/api/v1/namespaces/kafka/configmaps/orders-dr-config");
            assert_eq!(
                seen.body["metadata"]["ownerReferences"],
                owner("KafkaRestore", "orders-dr", RESTORE_UID)
            );
            applied(seen, "cm-uid")
        })
        .await;
    // The restore Job exists already and finished.
    let mut done = job("orders-dr-restore", RESTORE_UID, 0, State::Complete);
    done.metadata.labels =
        Some([("kafka.oso.sh/restore".to_owned(), "orders-dr".to_owned())].into());
    let done_json = serde_json::to_value(&done).unwrap();
    server
        .next(|seen| {
            seen.is_list(
                "/apis/batch/v1/namespaces/kafka/jobs",
                "kafka.oso.sh/restore=orders-dr",
            );
            list(vec![done_json])
        })
        .await;
    let restore_summary = json!({
        "command": "restore", "exit_code": 0, "outcome": "complete", "backup_id": "orders",
        "run_id": "orders-dr-1", "shard": null, "records": 5000, "bytes": 640000,
        "finished_at": "2026-12-05T02:09:59Z", "error": null
    })
    .to_string();
    let pods =
        vec![serde_json::to_value(pod("orders-dr-restore-x", &done, &restore_summary)).unwrap()];
    server
        .next(|seen| {
            seen.is_list(
                "/api/v1/namespaces/kafka/pods",
                "batch.kubernetes.io/job-name in (orders-dr-restore)",
            );
            list(pods)
        })
        .await;
    let seen = server
        .next(|seen| {
            seen.is_status_patch(RESTORE);
            status_patched(&current, seen)
        })
        .await;
    let status = &seen.body["status"];
    assert_eq!(status["phase"], "Succeeded");
    assert_eq!(
        (&status["records"], &status["bytes"]),
        (&json!(5000), &json!(640000))
    );
    assert_eq!(status["lastRun"]["runIds"], json!(["orders-dr-1"]));
    assert_eq!(condition(status, "Ready")["reason"], "Succeeded");
    server.nothing_more().await;
    reconciling.await.unwrap().expect("reconciled");
}

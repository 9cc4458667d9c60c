use serde_json::json;

use super::*;
use crate::controller::tests::fixtures::{BACKUP_UID, State, job, pod, summary, time};

fn inputs<'a>(jobs: &'a [Job], pods: &'a [Pod], now: &'a Time) -> Inputs<'a> {
    Inputs {
        generation: Some(3),
        previous: None,
        workload: "CronJob orders",
        scheduled: true,
        suspended: false,
        jobs,
        pods,
        now,
    }
}

fn condition<'a>(observed: &'a Observed, type_: &str) -> &'a Condition {
    observed
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", observed.conditions))
}

#[test]
fn a_cronjob_without_runs_is_scheduled_or_suspended() {
    let now = time(0);
    let observed = observe(inputs(&[], &[], &now));
    assert_eq!(observed.phase, Some(Phase::Scheduled));
    assert_eq!(observed.observed_generation, Some(3));
    let ready = condition(&observed, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Scheduled")
    );
    assert_eq!(ready.last_transition_time, now);
    assert_eq!(ready.observed_generation, Some(3));
    assert_eq!(condition(&observed, RENDERED).reason, "Applied");
    assert!(observed.last_run.is_none() && observed.records.is_none());

    let suspended = observe(Inputs {
        suspended: true,
        ..inputs(&[], &[], &now)
    });
    assert_eq!(suspended.phase, Some(Phase::Suspended));
    assert!(
        condition(&suspended, READY)
            .message
            .contains("spec.suspend")
    );

    let one_off = observe(Inputs {
        scheduled: false,
        workload: "Job orders",
        ..inputs(&[], &[], &now)
    });
    assert_eq!(one_off.phase, Some(Phase::Pending));
    assert_eq!(condition(&one_off, READY).status, "False");
}

#[test]
fn a_sharded_run_is_summed_into_records_bytes_and_last_success() {
    let done = job("orders-1", "cron-uid", 0, State::Complete);
    let pods = [
        pod("orders-1-0", &done, &summary(Some("0/2"), 100, 1_000, None)),
        pod("orders-1-1", &done, &summary(Some("1/2"), 250, 2_500, None)),
    ];
    let jobs = [done];
    let now = time(30);
    let observed = observe(inputs(&jobs, &pods, &now));
    assert_eq!(observed.phase, Some(Phase::Succeeded));
    assert_eq!((observed.records, observed.bytes), (Some(350), Some(3_500)));
    assert_eq!(observed.last_success_time, Some(time(10)));
    let last_run = observed.last_run.as_ref().expect("a last run");
    assert_eq!(last_run.job_name.as_deref(), Some("orders-1"));
    assert_eq!(
        (
            last_run.start_time.clone(),
            last_run.completion_time.clone()
        ),
        (Some(time(0)), Some(time(10)))
    );
    assert_eq!(last_run.succeeded, Some(true));
    assert_eq!(last_run.outcome.as_deref(), Some("complete"));
    assert_eq!(
        last_run.run_ids,
        ["20261205T020000Z-0of2", "20261205T020000Z-1of2"]
    );
    let ready = condition(&observed, READY);
    assert_eq!(ready.reason, "Succeeded");
    assert!(
        ready.message.contains("350 records, 3500 bytes"),
        "{}",
        ready.message
    );
}

#[test]
fn a_running_run_keeps_the_last_success_figures() {
    let done = job("orders-1", BACKUP_UID, 0, State::Complete);
    let running = job("orders-2", BACKUP_UID, 20, State::Running);
    let pods = [pod("orders-1-0", &done, &summary(None, 42, 420, None))];
    let jobs = [running, done];
    let now = time(30);
    let observed = observe(inputs(&jobs, &pods, &now));
    assert_eq!(observed.phase, Some(Phase::Running));
    assert_eq!((observed.records, observed.bytes), (Some(42), Some(420)));
    let last_run = observed.last_run.as_ref().expect("a last run");
    assert_eq!(last_run.job_name.as_deref(), Some("orders-2"));
    assert_eq!(
        (last_run.completion_time.clone(), last_run.succeeded),
        (None, None)
    );
}

#[test]
fn a_failed_run_reports_the_summary_error_and_keeps_earlier_figures() {
    let failed = job("orders-2", BACKUP_UID, 20, State::Failed);
    let error = "Secret `backup-user` has no key `user.key` (mounted at \
                 /var/run/kafka-backup/secrets/backup-user/user.key)";
    let pods = [pod(
        "orders-2-x",
        &failed,
        &summary(None, 0, 0, Some(error)),
    )];
    let previous = Observed {
        records: Some(42),
        bytes: Some(420),
        last_success_time: Some(time(5)),
        ..Observed::default()
    };
    let jobs = [failed];
    let now = time(40);
    let observed = observe(Inputs {
        previous: Some(&previous),
        ..inputs(&jobs, &pods, &now)
    });
    assert_eq!(observed.phase, Some(Phase::Failed));
    assert_eq!((observed.records, observed.bytes), (Some(42), Some(420)));
    assert_eq!(observed.last_success_time, Some(time(5)));
    let ready = condition(&observed, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "JobFailed")
    );
    assert!(ready.message.contains("backup-user"), "{}", ready.message);
    assert!(ready.message.contains("user.key"), "{}", ready.message);
    let last_run = observed.last_run.as_ref().expect("a last run");
    assert_eq!(last_run.succeeded, Some(false));
    assert_eq!(last_run.completion_time, Some(time(30)));
    assert_eq!(last_run.outcome.as_deref(), Some("failed"));
}

#[test]
fn a_failed_run_without_summaries_points_to_the_logs() {
    let jobs = [job("orders-2", BACKUP_UID, 20, State::Failed)];
    let now = time(40);
    let observed = observe(inputs(&jobs, &[], &now));
    let message = &condition(&observed, READY).message;
    assert!(message.contains("BackoffLimitExceeded"), "{message}");
    assert!(message.contains("kubectl logs job/orders-2"), "{message}");
}

#[test]
fn a_malformed_message_is_a_condition_and_the_rest_still_counts() {
    let done = job("orders-1", BACKUP_UID, 0, State::Complete);
    let pods = [
        pod("orders-1-0", &done, &summary(Some("0/2"), 100, 1_000, None)),
        pod("orders-1-1", &done, "fatal runtime error: stack overflow"),
    ];
    let jobs = [done];
    let now = time(30);
    let observed = observe(inputs(&jobs, &pods, &now));
    assert_eq!(observed.phase, Some(Phase::Succeeded));
    assert_eq!(observed.records, Some(100));
    let summary = condition(&observed, SUMMARY);
    assert_eq!(
        (summary.status.as_str(), summary.reason.as_str()),
        ("False", "MalformedSummary")
    );
    assert!(
        summary.message.contains("orders-1-1"),
        "{}",
        summary.message
    );
}

#[test]
fn an_unchanged_status_compares_equal_and_a_flip_moves_the_transition_time() {
    let now = time(0);
    let first = observe(inputs(&[], &[], &now));
    let later = time(20);
    let again = observe(Inputs {
        previous: Some(&first),
        ..inputs(&[], &[], &later)
    });
    assert_eq!(again, first, "nothing changed, so nothing is written");

    let jobs = [job("orders-1", BACKUP_UID, 15, State::Failed)];
    let flipped = observe(Inputs {
        previous: Some(&first),
        ..inputs(&jobs, &[], &later)
    });
    assert_eq!(condition(&flipped, READY).last_transition_time, later);
    assert_eq!(condition(&flipped, RENDERED).last_transition_time, now);
}

#[test]
fn a_render_error_fails_with_its_reason_and_keeps_what_runs_reported() {
    let previous = Observed {
        phase: Some(Phase::Succeeded),
        records: Some(7),
        last_run: Some(LastRun {
            job_name: Some("orders-1".into()),
            ..LastRun::default()
        }),
        ..Observed::default()
    };
    let error = RenderError::Encryption {
        field: "spec.encryption.keySecret".into(),
        reason: "keyProvider local needs keySecret {name, key}".into(),
    };
    let observed = render_failed(Some(&previous), Some(4), &error, &time(0));
    assert_eq!(observed.phase, Some(Phase::Failed));
    assert_eq!(observed.observed_generation, Some(4));
    assert_eq!(observed.records, Some(7));
    assert_eq!(observed.last_run, previous.last_run);
    for type_ in [READY, RENDERED] {
        let c = condition(&observed, type_);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "EncryptionUnusable")
        );
        assert!(
            c.message.contains("spec.encryption.keySecret"),
            "{}",
            c.message
        );
        assert!(c.message.contains("keySecret {name, key}"), "{}", c.message);
    }
}

#[test]
fn the_merge_patch_clears_what_the_new_status_leaves_out() {
    let old = json!({
        "phase": "Running",
        "lastRun": {"jobName": "orders-2", "startTime": "t0", "runIds": ["a"]},
        "records": 5,
        "conditions": [{"type": "Ready"}, {"type": "RunSummary"}]
    });
    let new = json!({
        "phase": "Failed",
        "lastRun": {"jobName": "orders-3"},
        "conditions": [{"type": "Ready"}]
    });
    let patch = merge_patch(&old, &new);
    assert_eq!(patch["records"], Value::Null);
    assert_eq!(patch["lastRun"]["startTime"], Value::Null);
    let mut applied = old.clone();
    json_patch::merge(&mut applied, &patch);
    assert_eq!(applied, new);
}

//! The audit trail, end to end: real commands against the test broker and moto write their
//! events to JSON-lines files; `audit verify` must find every kind of tampering an intruder
//! with write access to the log could try, and `audit show` must filter what happened.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::protection::*;
use common::*;
use serde_json::Value;

/// `kafka-backup audit ARGS...` (no config).
fn audit(args: &[&str]) -> Run {
    let args: Vec<&std::ffi::OsStr> = std::iter::once("audit")
        .chain(args.iter().copied())
        .map(std::ffi::OsStr::new)
        .collect();
    run_binary(&args, &[])
}

fn verify(log: &Path, keys: &[&GeneratedKey]) -> Run {
    let mut args = vec!["verify".to_owned(), "--file".to_owned(), path_str(log)];
    for k in keys {
        args.push("--verify-key".to_owned());
        args.push(path_str(k.public.as_ref().unwrap()));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    audit(&refs)
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// A backup, a restore and a validate, each with `--audit-file`, the backup signing with its
/// backup key and the restore configuration with an audit key of its own: six events, each
/// saying who did what to which backup with what result, chained and signed, with no secret.
#[test]
fn every_command_records_who_did_what_and_the_signed_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let topic = unique_topic("audit");
    fidelity(&["bulk", &plaintext_broker(), &topic, "300", "2"]);
    let signing = generate_key(dir, "signing", "backup-signing.key");
    let restore_audit = generate_key(dir, "signing", "restore-audit.key");
    let log = dir.join("audit.jsonl");
    let config_log = dir.join("from-config.jsonl");
    let storage = moto_storage(&format!("audit/{topic}"));

    let backup = format!(
        "{}audit:\n  file: {}\n",
        backup_yaml(
            "audited",
            &[&topic],
            &storage,
            &format!("signing_key: {}\n", signing.private.display())
        ),
        config_log.display()
    );
    let target = format!("{topic}-restored");
    let restore = format!(
        "{}audit:\n  signing_key: {}\n",
        restore_yaml(
            "audited",
            &storage,
            &format!(
                "topic_mapping:\n  {topic}: {target}\nverify_key: {}\n",
                signing.public.as_ref().unwrap().display()
            )
        ),
        restore_audit.private.display()
    );
    let with_log = ["--audit-file", log.to_str().unwrap(), "--format", "json"];
    let b = run(dir, "backup", &backup, &[], &with_log);
    b.assert_code(EXIT_OK);
    let r = run(dir, "restore", &restore, &[], &with_log);
    r.assert_code(EXIT_OK);
    let v = run(dir, "validate", &restore, &[], &with_log);
    v.assert_code(EXIT_OK);

    let all = audit_events(&log);
    let shape: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e["command"].as_str().unwrap(), e["phase"].as_str().unwrap()))
        .collect();
    assert_eq!(
        shape,
        [
            ("backup", "start"),
            ("backup", "end"),
            ("restore", "start"),
            ("restore", "end"),
            ("validate", "start"),
            ("validate", "end"),
        ]
    );
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);

    let (start, end) = (&all[0], &all[1]);
    let report = b.json();
    assert_eq!(end["outcome"], "success");
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["backup_id"], "audited");
    assert_eq!(end["run_id"], report["run_id"]);
    assert_eq!(end["counts"]["records"], report["records"]);
    assert_eq!(end["counts"]["segments"], report["segments"]);
    assert_eq!(end["principal"], "User:ANONYMOUS");
    assert_eq!(end["cluster"]["role"], "source");
    assert_eq!(end["cluster"]["security_protocol"], "PLAINTEXT");
    assert_eq!(end["cluster"]["bootstrap_servers"][0], plaintext_broker());
    let location = end["storage"]["location"].as_str().unwrap();
    assert!(location.contains(&get("/s3/bucket")), "{location}");
    assert!(
        end["storage"]["credential_source"]
            .as_str()
            .unwrap()
            .contains("storage.access_key/secret_key"),
        "{end}"
    );
    let key_ids: Vec<&str> = end["key_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        key_ids.contains(&signing_key_id(&signing).as_str()),
        "{end}"
    );
    assert_eq!(start["invocation"], end["invocation"]);
    assert_eq!(start["config_sha256"], end["config_sha256"]);
    assert_eq!(start["config_sha256"].as_str().unwrap().len(), 64);
    assert!(end["duration_ms"].as_u64().is_some());
    assert_eq!(end["tool_version"], env!("CARGO_PKG_VERSION"));

    let restored = &all[3];
    let restore_report = r.json();
    assert_eq!(restored["run_id"], restore_report["restore_id"]);
    assert_eq!(
        restored["counts"]["records"],
        restore_report["records_written"]
    );
    assert_eq!(restored["cluster"]["role"], "target");
    // Validate never talks to Kafka: no cluster is recorded for it.
    assert!(all[5].get("cluster").is_none(), "{}", all[5]);
    assert_eq!(all[5]["counts"]["errors"], 0);

    // The configuration's own sink got the backup's events, chained from 1.
    let from_config = audit_events(&config_log);
    assert_eq!(from_config.len(), 2);
    assert_eq!(from_config[1]["run_id"], report["run_id"]);

    // Intact with both keys; with the backup key alone, the restore's first event is not
    // authentic.
    let ok = verify(&log, &[&signing, &restore_audit]);
    ok.assert_code(EXIT_OK);
    ok.assert_contains("intact");
    ok.assert_contains(&signing_key_id(&signing));
    let partial = verify(&log, &[&signing]);
    partial.assert_code(EXIT_INTEGRITY);
    partial.assert_contains("BROKEN at line 3");

    let text = std::fs::read_to_string(&log).unwrap();
    let secret = get("/s3/secret_access_key");
    assert!(
        !text.contains(&secret),
        "the S3 secret key is in the audit log"
    );
    assert!(!text.contains(signing.secret_text().lines().nth(1).unwrap()));

    let shown = audit(&[
        "show",
        "--file",
        log.to_str().unwrap(),
        "--command",
        "restore",
        "--format",
        "json",
    ]);
    shown.assert_code(EXIT_OK);
    assert_eq!(shown.json().as_array().unwrap().len(), 2);
    let failures = audit(&[
        "show",
        "--file",
        log.to_str().unwrap(),
        "--outcome",
        "failure",
        "--format",
        "json",
    ]);
    assert_eq!(failures.json().as_array().unwrap().len(), 0);
    let table = audit(&[
        "show",
        "--file",
        log.to_str().unwrap(),
        "--backup",
        "audited",
    ]);
    table.assert_code(EXIT_OK);
    assert_eq!(table.stdout.lines().count(), 7, "{}", table.stdout);
}

/// A signed log of six events from `list` runs, made by the CLI.
fn signed_log(dir: &Path) -> (PathBuf, GeneratedKey) {
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let signing = generate_key(dir, "signing", "signing.key");
    let yaml = backup_yaml(
        "listed",
        &["t"],
        &fs_storage(&store),
        &format!("signing_key: {}\n", signing.private.display()),
    );
    let log = dir.join("audit.jsonl");
    for _ in 0..3 {
        run(
            dir,
            "list",
            &yaml,
            &[],
            &["--audit-file", log.to_str().unwrap()],
        )
        .assert_code(EXIT_OK);
    }
    assert_eq!(audit_events(&log).len(), 6);
    verify(&log, &[&signing]).assert_code(EXIT_OK);
    (log, signing)
}

fn rewrite(log: &Path, name: &str, edit: impl FnOnce(&mut Vec<String>)) -> PathBuf {
    let mut lines: Vec<String> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    edit(&mut lines);
    let path = log.with_file_name(name);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    path
}

#[track_caller]
fn assert_broken(run: &Run, at: &str, why: &str) {
    run.assert_code(EXIT_INTEGRITY);
    run.assert_contains(&format!("BROKEN at {at}"));
    run.assert_contains(why);
}

/// Each way of tampering with a signed log is found at the line where it happened.
#[test]
fn tampering_with_the_log_is_found_where_it_happened() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (log, key) = signed_log(dir);

    let altered = rewrite(&log, "altered.jsonl", |l| {
        l[3] = l[3].replace("\"exit_code\":0", "\"exit_code\":1");
    });
    assert_broken(&verify(&altered, &[&key]), "line 4", "does not verify");
    // Without the key the edit still shows, one line later, in the chain.
    assert_broken(&verify(&altered, &[]), "line 5", "does not chain");

    let deleted = rewrite(&log, "deleted.jsonl", |l| {
        l.remove(1);
    });
    assert_broken(
        &verify(&deleted, &[&key]),
        "line 2",
        "event 3 follows event 1",
    );

    let reordered = rewrite(&log, "reordered.jsonl", |l| l.swap(2, 4));
    assert_broken(
        &verify(&reordered, &[&key]),
        "line 3",
        "event 5 follows event 2",
    );

    // A forged event, chained correctly but without the key's signature.
    let forged = rewrite(&log, "forged.jsonl", |l| {
        let mut fake: Value = serde_json::from_str(l.last().unwrap()).unwrap();
        fake.as_object_mut().unwrap().remove("signature");
        fake["seq"] = 7.into();
        fake["prev_sha256"] = sha256sum(l.last().unwrap().as_bytes()).into();
        fake["command"] = "restore".into();
        l.push(fake.to_string());
    });
    assert_broken(&verify(&forged, &[&key]), "line 7", "is not signed");
    // The chain alone accepts it: only signatures tell a forged event from a real one.
    verify(&forged, &[]).assert_code(EXIT_OK);

    let torn = rewrite(&log, "torn.jsonl", |l| {
        let half = l[5].len() / 2;
        l[5].truncate(half);
    });
    assert_broken(&verify(&torn, &[&key]), "line 6", "not an audit event");

    // Removing the first events is noted (the log may have been rotated), not hidden.
    let rotated = rewrite(&log, "rotated.jsonl", |l| {
        l.drain(..2);
    });
    let r = verify(&rotated, &[&key]);
    r.assert_code(EXIT_OK);
    r.assert_contains("starts at event 3");
}

/// A command whose audit log cannot be written does nothing: fail closed.
#[test]
fn a_command_that_cannot_write_its_audit_event_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let topic = unique_topic("audit-closed");
    fidelity(&["bulk", &plaintext_broker(), &topic, "10", "1"]);
    let store = dir.join("store");
    let yaml = fs_backup_yaml("closed", &[&topic], &store, "");
    let missing = dir.join("no-such-dir").join("audit.jsonl");
    let r = run(
        dir,
        "backup",
        &yaml,
        &[],
        &["--audit-file", missing.to_str().unwrap()],
    );
    r.assert_code(EXIT_CONFIG);
    r.assert_contains("cannot write the audit log");
    r.assert_contains(&missing.display().to_string());
    let stored = std::fs::read_dir(&store).map_or(0, |d| d.count());
    assert_eq!(
        stored, 0,
        "the backup ran although its audit event was not written"
    );

    // A log whose last line was cut off cannot be chained to: also refused before the work.
    let torn = dir.join("torn.jsonl");
    std::fs::write(&torn, "{\"seq\":1,\"prev_sha").unwrap();
    let r = run(
        dir,
        "backup",
        &yaml,
        &[],
        &["--audit-file", torn.to_str().unwrap()],
    );
    r.assert_code(EXIT_CONFIG);
    r.assert_contains("cut off before its end");
    assert_eq!(std::fs::read_dir(&store).map_or(0, |d| d.count()), 0);
}

/// A configuration that does not load is on record too, through the command line's sink.
#[test]
fn a_configuration_that_fails_to_load_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let log = dir.join("audit.jsonl");
    let yaml = "mode: backup\nbackup_id: x\nsource:\n  bootstrap_servers: [\"127.0.0.1:1\"]\n  \
                securty: {}\n";
    let r = run(
        dir,
        "backup",
        yaml,
        &[],
        &["--audit-file", log.to_str().unwrap()],
    );
    r.assert_code(EXIT_CONFIG);
    let all = audit_events(&log);
    assert_eq!(all.len(), 1, "{all:?}");
    let e = &all[0];
    assert_eq!(e["phase"], "end");
    assert_eq!(e["command"], "backup");
    assert_eq!(e["outcome"], "failure");
    assert_eq!(e["exit_code"], EXIT_CONFIG);
    assert!(e["error"].as_str().unwrap().contains("securty"), "{e}");
    assert!(e["config_path"].as_str().unwrap().ends_with("backup.yaml"));
    assert!(e.get("config_sha256").is_none());
}

/// Every audit object of `backup_id` in a filesystem store, sorted: (name, path).
fn trail_objects(store: &Path, backup_id: &str) -> Vec<(String, PathBuf)> {
    let dir = store.join("audit").join(backup_id);
    let mut all: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_str().unwrap().to_owned(), e.path())
        })
        .collect();
    all.sort();
    all
}

fn verify_stored(dir: &Path, yaml: &str) -> Run {
    run(dir, "audit verify", yaml, &[], &[])
}

/// With `audit.storage`, events are create-only objects beside the backup; concurrent commands
/// take distinct sequence numbers; `audit verify --config` finds a deleted or replaced event.
#[test]
fn the_trail_in_storage_is_chained_across_concurrent_writers_and_tampering_shows() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let topic = unique_topic("audit-store");
    fidelity(&["bulk", &plaintext_broker(), &topic, "50", "1"]);
    let store = dir.join("store");
    let signing = generate_key(dir, "signing", "signing.key");
    let yaml = format!(
        "{}audit:\n  storage: true\n",
        backup_yaml(
            "stored",
            &[&topic],
            &fs_storage(&store),
            &format!("signing_key: {}\n", signing.private.display())
        )
    );
    run(dir, "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    // Four commands at once append to one stream.
    let path = dir.join("list.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let children: Vec<std::process::Child> = (0..4)
        .map(|_| {
            std::process::Command::new(binary())
                .args(["list", "--config", path.to_str().unwrap()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let objects = trail_objects(&store, "stored");
    let events: Vec<&(String, PathBuf)> = objects
        .iter()
        .filter(|(n, _)| n.ends_with(".json"))
        .collect();
    assert_eq!(events.len(), 10, "{objects:#?}");
    let seqs: BTreeSet<&str> = events.iter().map(|(n, _)| &n[..12]).collect();
    assert_eq!(seqs.len(), 10, "two events share a number: {objects:#?}");

    let ok = verify_stored(dir, &yaml);
    ok.assert_code(EXIT_OK);
    // The verify command's own start event is the eleventh: it audits itself.
    ok.assert_contains("Checked      11 events");
    ok.assert_contains(&format!(
        "every event signed by {}",
        signing_key_id(&signing)
    ));

    let shown = run(
        dir,
        "audit show",
        &yaml,
        &[],
        &["--command", "list", "--format", "json"],
    );
    shown.assert_code(EXIT_OK);
    assert_eq!(shown.json().as_array().unwrap().len(), 8, "{}", shown.all());

    // Tampering, each on a fresh copy of the store.
    let tampered = |name: &str, edit: &dyn Fn(&Path)| -> Run {
        let copy = dir.join(name);
        copy_dir(&store, &copy);
        edit(&copy.join("audit").join("stored"));
        let yaml = yaml.replace(store.to_str().unwrap(), copy.to_str().unwrap());
        verify_stored(dir, &yaml)
    };
    let third = events[2].0.clone();
    let r = tampered("deleted", &|d| {
        std::fs::remove_file(d.join(&third)).unwrap()
    });
    r.assert_code(EXIT_INTEGRITY);
    r.assert_contains("does not chain");
    let r = tampered("deleted-with-claim", &|d| {
        std::fs::remove_file(d.join(&third)).unwrap();
        std::fs::remove_file(d.join(format!("{}.claim", &third[..12]))).unwrap();
    });
    r.assert_code(EXIT_INTEGRITY);
    r.assert_contains("is missing");
    let r = tampered("replaced", &|d| {
        let text = std::fs::read_to_string(d.join(&third)).unwrap();
        std::fs::write(d.join(&third), text.replace("\"pid\":", "\"pid\":1")).unwrap();
    });
    r.assert_code(EXIT_INTEGRITY);
    r.assert_contains("does not match the SHA-256 in its name");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The write-only backup identity appends to the trail in S3 (create and list, no read), and
/// the read-only identity verifies it.
#[test]
fn the_write_only_backup_role_appends_and_the_reader_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let topic = unique_topic("audit-iam");
    fidelity(&["bulk", &plaintext_broker(), &topic, "30", "1"]);
    let signing = generate_key(dir, "signing", "signing.key");
    let storage = s3_iam_storage(&format!("audit-iam/{topic}"));
    let yaml = format!(
        "{}audit:\n  storage: true\n",
        backup_yaml(
            "iam",
            &[&topic],
            &storage,
            &format!("signing_key: {}\n", signing.private.display())
        )
    );
    for _ in 0..2 {
        run_as_s3_user(dir, "backup", &yaml, "writer", &[]).assert_code(EXIT_OK);
    }
    let reader = restore_yaml(
        "iam",
        &storage,
        &format!(
            "verify_key: {}\n",
            signing.public.as_ref().unwrap().display()
        ),
    );
    let r = run_as_s3_user(dir, "audit verify", &reader, "reader", &[]);
    r.assert_code(EXIT_OK);
    r.assert_contains("Checked      4 events");
    r.assert_contains("intact");
}

/// Events reach a real syslog server (rsyslog, started by the test environment) as RFC 5424
/// messages over TCP and UDP, with the facility, severity, host, process id and MSGID that
/// syslog filters use, and the signed event line as the message; an unreachable server over
/// TCP stops the command before it works.
#[test]
fn events_reach_a_real_syslog_server_over_tcp_and_udp() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let signing = generate_key(dir, "signing", "signing.key");
    let received = PathBuf::from(get("/syslog/received"));
    for (transport, address) in [("tcp", get("/syslog/tcp")), ("udp", get("/syslog/udp"))] {
        let backup_id = format!("syslog-{transport}-{}", std::process::id());
        let yaml = format!(
            "{}audit:\n  syslog: {transport}://{address}\n",
            backup_yaml(
                &backup_id,
                &["t"],
                &fs_storage(&store),
                &format!("signing_key: {}\n", signing.private.display())
            )
        );
        run(dir, "list", &yaml, &[], &[]).assert_code(EXIT_OK);
        // rsyslog writes asynchronously: wait for both messages.
        let mut mine: Vec<String> = Vec::new();
        wait_until(
            "syslog messages",
            std::time::Duration::from_secs(10),
            || {
                mine = std::fs::read_to_string(&received)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(&format!("\"backup_id\":\"{backup_id}\"")))
                    .map(str::to_owned)
                    .collect();
                mine.len() == 2
            },
        );
        // authpriv (10) * 8 + notice (5) = 85.
        for (line, msgid) in mine.iter().zip(["1", "2"]) {
            let header: Vec<&str> = line.splitn(8, ' ').collect();
            assert_eq!(header[0].strip_prefix("<85>"), Some("1"), "{line}");
            assert_eq!(header[3], "kafka-backup", "{line}");
            assert_eq!(header[5], msgid, "{line}");
            let structured = format!(
                "[origin software=\"kafka-backup\" swVersion=\"{}\"] {{",
                env!("CARGO_PKG_VERSION")
            );
            assert!(header[6..].join(" ").starts_with(&structured), "{line}");
            let json = &line[line.find('{').unwrap()..];
            let event: Value = serde_json::from_str(json).unwrap();
            assert_eq!(event["command"], "list");
            assert_eq!(header[4], event["pid"].to_string(), "{line}");
            assert_eq!(
                event["signature"]["key_id"],
                signing_key_id(&signing),
                "{line}"
            );
        }
    }

    // Nothing listens on this port: over TCP that is known before the command works.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let yaml = format!(
        "{}audit:\n  syslog: tcp://127.0.0.1:{port}\n",
        backup_yaml("syslog-down", &["t"], &fs_storage(&store), "")
    );
    let r = run(dir, "list", &yaml, &[], &[]);
    r.assert_code(EXIT_CONFIG);
    r.assert_contains("cannot send the audit event to syslog at tcp://127.0.0.1");

    let bad =
        backup_yaml("x", &["t"], &fs_storage(&store), "") + "audit:\n  syslog: 127.0.0.1:514\n";
    let r = run(dir, "list", &bad, &[], &[]);
    r.assert_code(EXIT_CONFIG);
    r.assert_contains("audit.syslog");
    r.assert_contains("tcp://HOST:PORT");
}

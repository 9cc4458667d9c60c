//! `kafka-backup report --evidence` over a real backup: the document carries each backup's
//! validation, the audit trails' verification, the posture and the data boundary; it is signed,
//! and `report --verify` refuses it once altered or when checked with another key.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::protection::*;
use common::*;
use serde_json::Value;

fn report(dir: &std::path::Path, args: &[&str]) -> Run {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    let all: Vec<&std::ffi::OsStr> = all.iter().map(std::ffi::OsStr::new).collect();
    let _ = dir;
    run_binary(&all, &[])
}

#[test]
fn evidence_is_signed_complete_and_tamper_evident() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let topic = unique_topic("evidence");
    fidelity(&["bulk", &plaintext_broker(), &topic, "40", "2"]);
    let store = dir.join("store");
    let signing = generate_key(dir, "signing", "signing.key");
    let backup = format!(
        "{}audit:\n  storage: true\n",
        backup_yaml(
            "evidence",
            &[&topic],
            &fs_storage(&store),
            &format!("signing_key: {}\n", signing.private.display())
        )
    );
    let restore = restore_yaml(
        "evidence",
        &fs_storage(&store),
        &format!(
            "verify_key: {}\n",
            signing.public.as_ref().unwrap().display()
        ),
    );
    let log = dir.join("audit.jsonl");
    run(
        dir,
        "backup",
        &backup,
        &[],
        &["--audit-file", log.to_str().unwrap()],
    )
    .assert_code(EXIT_OK);
    let backup_path = dir.join("b.yaml");
    let restore_path = dir.join("r.yaml");
    std::fs::write(&backup_path, &backup).unwrap();
    std::fs::write(&restore_path, &restore).unwrap();
    let out = dir.join("evidence");
    let made = report(
        dir,
        &[
            "--evidence",
            "--config",
            backup_path.to_str().unwrap(),
            "--config",
            restore_path.to_str().unwrap(),
            "--audit-log",
            log.to_str().unwrap(),
            "--sign-with",
            signing.private.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    made.assert_code(EXIT_OK);
    made.assert_contains("every backup validated and every audit trail intact");

    let json_path = dir.join("evidence.json");
    let envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(
        envelope["payloadType"],
        "application/vnd.kafka-backup.evidence+json"
    );
    let payload: Value =
        serde_json::from_slice(&B64.decode(envelope["payload"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(payload["ok"], true);
    assert_eq!(payload["backups"][0]["backup_id"], "evidence");
    assert_eq!(payload["backups"][0]["ok"], true);
    assert_eq!(payload["backups"][0]["errors"], 0);
    let trails = payload["audit_trails"].as_array().unwrap();
    assert_eq!(
        trails.len(),
        2,
        "the storage trail and the file: {payload:#}"
    );
    assert!(trails.iter().all(|t| t["ok"] == true), "{payload:#}");
    assert_eq!(payload["data_boundary"].as_array().unwrap().len(), 2);
    assert_eq!(
        payload["data_boundary"][0]["cluster"]["security_protocol"],
        "PLAINTEXT"
    );
    assert!(
        payload["posture"]["high"].as_u64().unwrap() >= 1,
        "PLAINTEXT is a HIGH finding"
    );
    let markdown = std::fs::read_to_string(dir.join("evidence.md")).unwrap();
    assert!(
        markdown.contains("| evidence |") && markdown.contains("| valid |"),
        "{markdown}"
    );
    assert!(markdown.contains("## Audit trails") && markdown.contains("| intact |"));

    let public = signing
        .public
        .as_ref()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let ok = report(
        dir,
        &[
            "--verify",
            json_path.to_str().unwrap(),
            "--verify-key",
            &public,
        ],
    );
    ok.assert_code(EXIT_OK);
    ok.assert_contains(&format!("signed by {}", signing_key_id(&signing)));

    // Altered: a failed validation rewritten as a pass would not verify.
    let mut forged = payload.clone();
    forged["backups"][0]["errors"] = 0.into();
    forged["posture"]["high"] = 0.into();
    let mut tampered = envelope.clone();
    tampered["payload"] = B64
        .encode(serde_json::to_vec_pretty(&forged).unwrap())
        .into();
    let tampered_path = dir.join("tampered.json");
    std::fs::write(&tampered_path, tampered.to_string()).unwrap();
    let r = report(
        dir,
        &[
            "--verify",
            tampered_path.to_str().unwrap(),
            "--verify-key",
            &public,
        ],
    );
    r.assert_code(EXIT_INTEGRITY);
    r.assert_contains("does not verify");
    // Checked with another key.
    let other = generate_key(dir, "signing", "other.key");
    let r = report(
        dir,
        &[
            "--verify",
            json_path.to_str().unwrap(),
            "--verify-key",
            other.public.as_ref().unwrap().to_str().unwrap(),
        ],
    );
    r.assert_code(EXIT_INTEGRITY);

    // A damaged backup makes the evidence say so.
    let (_, segment) = segments(&store, "evidence", &topic)
        .into_iter()
        .next()
        .map(|(_, mut v)| v.remove(0))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&segment, bytes).unwrap();
    let damaged = report(
        dir,
        &[
            "--evidence",
            "--config",
            restore_path.to_str().unwrap(),
            "--out",
            dir.join("after").to_str().unwrap(),
        ],
    );
    damaged.assert_code(EXIT_INTEGRITY);
    let markdown = std::fs::read_to_string(dir.join("after.md")).unwrap();
    assert!(markdown.contains("**FAILED**"), "{markdown}");
}

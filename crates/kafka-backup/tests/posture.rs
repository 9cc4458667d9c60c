//! `kafka-backup check --security`: the posture findings of real configurations and the files
//! they name (the test environment's certificates, keys made by `keys generate`), as text,
//! JSON and SARIF, with `--fail-on` as the exit code.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::protection::*;
use common::*;
use serde_json::Value;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes each configuration into `dir` and runs `check --security` on them.
fn posture(dir: &Path, configs: &[(&str, &str)], args: &[&str]) -> Run {
    let mut all: Vec<String> = vec!["check".into(), "--security".into()];
    for (name, yaml) in configs {
        let path = dir.join(name);
        std::fs::write(&path, yaml).unwrap();
        chmod(&path, 0o600);
        all.push("--config".into());
        all.push(path.to_str().unwrap().into());
    }
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let refs: Vec<&std::ffi::OsStr> = all.iter().map(std::ffi::OsStr::new).collect();
    run_binary(&refs, &[])
}

fn rules(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect()
}

/// Everything weak at once: each weakness is found with its evidence, the worst first;
/// `--fail-on` decides the exit code; JSON and SARIF carry the same findings.
#[test]
fn a_weak_backup_and_restore_pair_has_each_finding() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let key = generate_key(dir, "local", "local.key");
    chmod(&key.private, 0o644);
    let storage = moto_storage("posture");
    let backup = backup_yaml("weak", &["t"], &storage, &local_encryption(&key, None));
    let restore = restore_yaml("weak", &storage, "");
    let configs = [
        ("backup.yaml", backup.as_str()),
        ("restore.yaml", restore.as_str()),
    ];
    let run = posture(dir, &configs, &["--format", "json"]);
    run.assert_code(EXIT_OK);
    let report = run.json();
    let found = rules(&report);
    for rule in [
        "KB-NET-001",
        "KB-SEC-001",
        "KB-FILE-001",
        "KB-ENC-002",
        "KB-SIG-001",
        "KB-STO-001",
        "KB-STO-002",
        "KB-IAM-001",
        "KB-AUD-001",
    ] {
        assert!(
            found.contains(rule),
            "{rule} missing: {found:?}\n{}",
            run.all()
        );
    }
    let findings = report["findings"].as_array().unwrap();
    let severities: Vec<&str> = findings
        .iter()
        .map(|f| f["severity"].as_str().unwrap())
        .collect();
    let rank = |s: &str| {
        ["LOW", "MEDIUM", "HIGH"]
            .iter()
            .position(|x| *x == s)
            .unwrap()
    };
    assert!(
        severities.windows(2).all(|w| rank(w[0]) >= rank(w[1])),
        "worst first: {severities:?}"
    );
    let key_file = findings
        .iter()
        .find(|f| f["rule"] == "KB-FILE-001")
        .unwrap();
    assert!(
        key_file["evidence"]
            .as_str()
            .unwrap()
            .contains(&format!("{} has mode 644", key.private.display())),
        "{key_file}"
    );
    assert_eq!(key_file["severity"], "HIGH");
    let literal = findings.iter().find(|f| f["rule"] == "KB-SEC-001").unwrap();
    assert!(literal["line"].as_u64().is_some(), "{literal}");
    // The secret itself is never in the report.
    assert!(!run.stdout.contains(&get("/s3/secret_access_key")));

    // Policy as code: HIGH findings fail --fail-on HIGH (and MEDIUM, LOW).
    for level in ["HIGH", "medium", "Low"] {
        let failing = posture(dir, &configs, &["--fail-on", level]);
        failing.assert_code(EXIT_FINDINGS);
        failing.assert_contains("FAILED: at least one at or above");
    }
    let text = posture(dir, &configs, &[]);
    text.assert_code(EXIT_OK);
    text.assert_contains("HIGH   KB-NET-001");
    text.assert_contains("fix      use SASL_SSL");

    let sarif = posture(dir, &configs, &["--format", "sarif"]);
    sarif.assert_code(EXIT_OK);
    let log = sarif.json();
    assert_eq!(log["version"], "2.1.0");
    let run0 = &log["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "kafka-backup");
    let results = run0["results"].as_array().unwrap();
    assert_eq!(results.len(), findings.len());
    let rule_ids: Vec<&str> = run0["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for r in results {
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rule_ids[index], r["ruleId"].as_str().unwrap());
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        assert!(
            uri.ends_with("backup.yaml") || uri.ends_with("restore.yaml"),
            "{uri}"
        );
    }

    // The files the findings point at: fixing them removes exactly those findings.
    chmod(&key.private, 0o600);
    let fixed = posture(dir, &configs, &["--format", "json"]);
    assert!(!rules(&fixed.json()).contains("KB-FILE-001"));
}

/// A configuration as the security guide recommends it has no HIGH or MEDIUM finding.
#[test]
fn a_hardened_configuration_passes_fail_on_medium() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = dir.join("store");
    std::fs::create_dir(&store).unwrap();
    chmod(&store, 0o700);
    let age = generate_key(dir, "age", "backup.age");
    let signing = generate_key(dir, "signing", "signing.key");
    let yaml = format!(
        "mode: backup\nbackup_id: hardened\nsource:\n  bootstrap_servers: [\"{}\"]\n  security:\n    \
         security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-512\n    sasl_username: {}\n    \
         sasl_password: ${{KB_PASSWORD}}\n    ssl_ca_location: {}\n  topics:\n    include: [\"t\"]\n\
         {}{}audit:\n  file: {}\n",
        get("/brokers/sasl_ssl"),
        get("/scram/sha512/username"),
        get("/tls/ca"),
        fs_storage(&store),
        section("backup", &age_encryption(&[&age], Some(&signing))),
        dir.join("audit.jsonl").display(),
    );
    let path = dir.join("hardened.yaml");
    std::fs::write(&path, &yaml).unwrap();
    chmod(&path, 0o600);
    let run = run_binary(
        &[
            "check".as_ref(),
            "--security".as_ref(),
            "--config".as_ref(),
            path.as_os_str(),
            "--fail-on".as_ref(),
            "MEDIUM".as_ref(),
            "--format".as_ref(),
            "json".as_ref(),
        ],
        &[("KB_PASSWORD", &get("/scram/sha512/password"))],
    );
    run.assert_code(EXIT_OK);
    let report = run.json();
    assert_eq!(report["high"], 0, "{}", run.all());
    assert_eq!(report["medium"], 0, "{}", run.all());
    assert_eq!(report["failed"], false);
}

/// Certificates are read from the files the configuration names: one that expires within 30
/// days is a MEDIUM finding naming the file and the date; turning hostname verification off
/// is one too, HIGH with the system trust store.
#[test]
fn expiring_certificates_and_unchecked_host_names_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = dir.join("store");
    let expiring = get("/tls/server_expiring_cert");
    let yaml = |security: &str| {
        format!(
            "mode: backup\nbackup_id: certs\nsource:\n  bootstrap_servers: [\"{}\"]\n  security:\n{}  \
             topics:\n    include: [\"t\"]\n{}",
            get("/brokers/ssl"),
            indent(security, 4),
            fs_storage(&store),
        )
    };
    let with_ca = yaml(&format!(
        "security_protocol: SSL\nssl_ca_location: {expiring}\n"
    ));
    let run = posture(dir, &[("certs.yaml", &with_ca)], &["--format", "json"]);
    run.assert_code(EXIT_OK);
    let report = run.json();
    let cert = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "KB-TLS-002")
        .unwrap_or_else(|| panic!("no certificate finding: {}", run.all()));
    assert_eq!(cert["severity"], "MEDIUM");
    assert!(
        cert["evidence"].as_str().unwrap().contains(&expiring),
        "{cert}"
    );

    let unchecked = yaml("security_protocol: SSL\nssl_endpoint_identification_algorithm: none\n");
    let run = posture(dir, &[("system.yaml", &unchecked)], &["--format", "json"]);
    let report = run.json();
    let tls = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "KB-TLS-001")
        .unwrap_or_else(|| panic!("no hostname finding: {}", run.all()));
    assert_eq!(tls["severity"], "HIGH");
    assert!(
        tls["evidence"]
            .as_str()
            .unwrap()
            .contains("system trust store")
    );
}

fn bucket_storage(bucket: &str) -> String {
    format!(
        "storage:\n  backend: s3\n  bucket: {bucket}\n  region: {}\n  endpoint: {}\n  \
         force_path_style: true\n  allow_http: true\n  access_key: ${{KB_ACCESS_KEY}}\n  \
         secret_key: ${{KB_SECRET_KEY}}\n",
        get("/s3/region"),
        get("/s3/endpoint"),
    )
}

/// `check --security --storage` asks the S3 service about the bucket itself: a public one is
/// HIGH (policy and ACL), one without default encryption or Block Public Access is MEDIUM, a
/// guarded one has none of these findings, and an identity that may not ask gets a finding
/// that says so, never silence. Without `--storage` nothing is asked.
#[test]
fn the_bucket_itself_is_checked_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let check = |bucket: &str, args: &[&str]| {
        let yaml = backup_yaml("bk", &["t"], &bucket_storage(bucket), "");
        let path = dir.join(format!("{bucket}.yaml"));
        std::fs::write(&path, &yaml).unwrap();
        chmod(&path, 0o600);
        let mut all = vec!["check", "--security", "--format", "json"];
        all.extend_from_slice(&["--config", path.to_str().unwrap()]);
        all.extend_from_slice(args);
        let refs: Vec<&std::ffi::OsStr> = all.iter().map(std::ffi::OsStr::new).collect();
        let key = get("/s3/access_key_id");
        let secret = get("/s3/secret_access_key");
        let out = run_binary(
            &refs,
            &[("KB_ACCESS_KEY", &key), ("KB_SECRET_KEY", &secret)],
        );
        out.assert_code(EXIT_OK);
        assert!(
            !out.all().contains(&secret),
            "the secret key reached the output"
        );
        out.json()
    };
    let of = |report: &Value, rule: &str| -> Option<Value> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == rule)
            .cloned()
    };

    let public = new_moto_bucket("kb-public", "public");
    let offline = check(&public, &[]);
    assert!(
        rules(&offline).iter().all(|r| !r.starts_with("KB-STO-01")),
        "{offline:#}"
    );
    let report = check(&public, &["--storage"]);
    eprintln!("{report:#}");
    let policy = of(&report, "KB-STO-011").expect("a public policy is found");
    assert_eq!(policy["severity"], "HIGH");
    let acl = of(&report, "KB-STO-012").expect("a public ACL is found");
    assert!(
        acl["evidence"].as_str().unwrap().contains("AllUsers"),
        "{acl}"
    );
    assert_eq!(of(&report, "KB-STO-010").unwrap()["severity"], "MEDIUM");
    assert!(of(&report, "KB-STO-013").is_some());
    assert_eq!(report["findings"][0]["severity"], "HIGH");

    let guarded = new_moto_bucket("kb-guarded", "guarded");
    let report = check(&guarded, &["--storage"]);
    for rule in [
        "KB-STO-010",
        "KB-STO-011",
        "KB-STO-012",
        "KB-STO-013",
        "KB-STO-014",
    ] {
        assert!(of(&report, rule).is_none(), "{rule}: {report:#}");
    }

    // An identity without the rights to ask: said so, with the permissions to grant. (The IAM
    // moto authorizes GetBucketAcl and GetBucketPolicyStatus, but lets GetBucketEncryption and
    // GetPublicAccessBlock through whatever the policy says.)
    let yaml = backup_yaml("bk", &["t"], &s3_iam_storage("posture"), "");
    let denied = run_as_s3_user(
        dir,
        "check",
        &yaml,
        "writer",
        &["--security", "--storage", "--format", "json"],
    );
    denied.assert_code(EXIT_OK);
    let report = denied.json();
    let unknown = of(&report, "KB-STO-014").expect("an unchecked bucket is a finding");
    let evidence = unknown["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("GetBucketAcl: access denied (needs s3:GetBucketAcl)"),
        "{evidence}"
    );
    assert!(of(&report, "KB-STO-012").is_none(), "{report:#}");
}

/// OAUTHBEARER without TLS, and a client secret sent to an http token endpoint.
#[test]
fn bearer_tokens_and_client_secrets_in_clear_are_high_findings() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "s3cr3t-of-the-client\n").unwrap();
    chmod(&secret, 0o600);
    let yaml = format!(
        "mode: backup\nbackup_id: oauth\nsource:\n  bootstrap_servers: [\"kafka-0:9092\"]\n  security:\n    \
         security_protocol: SASL_PLAINTEXT\n    sasl_mechanism: OAUTHBEARER\n    \
         sasl_oauthbearer_token_endpoint_url: HTTP://localhost/oauth2/token\n    \
         sasl_oauthbearer_allow_http: true\n    sasl_oauthbearer_client_id: kafka-backup\n    \
         sasl_oauthbearer_client_secret: ${{file:{}}}\nstorage:\n  backend: filesystem\n  path: {}\n",
        secret.display(),
        dir.path().join("store").display()
    );
    let out = posture(dir.path(), &[("oauth.yaml", &yaml)], &["--format", "json"]);
    let found = rules(&out.json());
    for rule in ["KB-NET-001", "KB-NET-003", "KB-NET-004"] {
        assert!(found.contains(rule), "{rule} missing from {found:?}");
    }
    let text = posture(dir.path(), &[("oauth.yaml", &yaml)], &[]);
    text.assert_contains("HIGH   KB-NET-003");
    text.assert_contains("HTTP://localhost/oauth2/token");
    assert!(!text.all().contains("s3cr3t-of-the-client"));
}

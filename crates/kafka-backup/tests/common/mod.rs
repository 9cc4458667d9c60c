//! Shared helpers of the CLI tests: run the binary, write configurations, produce data with
//! confluent-kafka, and read a backup back with the format crate, independently of the engine.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use backup_format::{SegmentKey, naming, read_all};
use bytes::Bytes;
use kafka_records::txn::{BatchSummary, Decision, MarkerIndex};
use kafka_records::{DecodeLimits, decode_batch};
pub use test_support::*;

pub mod protection;

/// Exit codes of the CLI.
pub const EXIT_OK: i32 = 0;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_CONFIG: i32 = 3;
pub const EXIT_KAFKA: i32 = 4;
pub const EXIT_STORAGE: i32 = 5;
pub const EXIT_PARTIAL: i32 = 6;
/// An integrity failure (`validate` found an error, `restore` refused).
pub const EXIT_INTEGRITY: i32 = 7;
pub const EXIT_FINDINGS: i32 = 8;

/// The outcome of one CLI run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.all()))
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) {
        assert_eq!(self.code, code, "exit code; output:\n{}", self.all());
    }

    #[track_caller]
    pub fn assert_contains(&self, needle: &str) {
        assert!(
            self.all().contains(needle),
            "expected `{needle}` in the output:\n{}",
            self.all()
        );
    }
}

/// The CLI binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_kafka-backup")
}

/// Writes `yaml` into `dir` and runs `kafka-backup <command> --config <file> <args>`.
pub fn run(dir: &Path, command: &str, yaml: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    // `command` may be a subcommand path such as "offsets show".
    let path = dir.join(format!("{}.yaml", command.replace(' ', "-")));
    std::fs::write(&path, yaml).unwrap();
    let mut all: Vec<&OsStr> = vec![OsStr::new("--log-format"), OsStr::new("json")];
    all.extend(command.split(' ').map(OsStr::new));
    all.push(OsStr::new("--config"));
    all.push(path.as_os_str());
    all.extend(args.iter().map(OsStr::new));
    run_binary(&all, env)
}

/// Runs the binary with exactly `args` (RUST_LOG removed, `env` added).
pub fn run_binary(args: &[&OsStr], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(binary());
    cmd.args(args);
    cmd.env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A backup configuration of `topics` on the PLAINTEXT broker into a filesystem store.
pub fn fs_backup_yaml(backup_id: &str, topics: &[&str], store: &Path, backup: &str) -> String {
    fs_backup_yaml_on(&plaintext_broker(), backup_id, topics, store, backup)
}

/// [`fs_backup_yaml`] for the broker at `broker`.
pub fn fs_backup_yaml_on(
    broker: &str,
    backup_id: &str,
    topics: &[&str],
    store: &Path,
    backup: &str,
) -> String {
    let include: Vec<String> = topics.iter().map(|t| format!("\"{t}\"")).collect();
    let mut yaml = format!(
        "mode: backup\nbackup_id: {backup_id}\nsource:\n  bootstrap_servers: [\"{}\"]\n  topics:\n    include: [{}]\nstorage:\n  backend: filesystem\n  path: {}\n",
        broker,
        include.join(", "),
        store.display()
    );
    if !backup.is_empty() {
        yaml.push_str("backup:\n");
        for line in backup.lines() {
            yaml.push_str("  ");
            yaml.push_str(line.trim());
            yaml.push('\n');
        }
    }
    yaml
}

/// The `storage:` section for the IAM-enforcing S3 store under `prefix`; the credentials come
/// from `KB_ACCESS_KEY` and `KB_SECRET_KEY`, which [`run_as_s3_user`] sets.
pub fn s3_iam_storage(prefix: &str) -> String {
    format!(
        "storage:\n  backend: s3\n  bucket: {}\n  region: {}\n  endpoint: {}\n  force_path_style: true\n  \
         allow_http: true\n  prefix: {prefix}\n  access_key: ${{KB_ACCESS_KEY}}\n  secret_key: ${{KB_SECRET_KEY}}\n",
        get("/s3_iam/bucket"),
        get("/s3_iam/region"),
        get("/s3_iam/endpoint"),
    )
}

/// [`run`] with the credentials of the IAM store's `user` (`writer`, `reader`, ...).
pub fn run_as_s3_user(dir: &Path, command: &str, yaml: &str, user: &str, args: &[&str]) -> Run {
    let key = get(&format!("/s3_iam/users/{user}/access_key_id"));
    let secret = get(&format!("/s3_iam/users/{user}/secret_access_key"));
    run(
        dir,
        command,
        yaml,
        &[("KB_ACCESS_KEY", &key), ("KB_SECRET_KEY", &secret)],
        args,
    )
}

/// Whether `topic` exists on `broker`, as confluent-kafka's admin client sees it.
pub fn topic_exists(broker: &str, topic: &str) -> bool {
    let listed = python(
        "import sys\nfrom confluent_kafka.admin import AdminClient\n\
         print(sys.argv[2] in AdminClient({'bootstrap.servers': sys.argv[1]}).list_topics(timeout=10).topics)\n",
        &[broker, topic],
    );
    listed.trim() == "True"
}

const FIDELITY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fidelity.py");

/// Runs `fidelity.py` (confluent-kafka) and parses its JSON output.
pub fn fidelity(args: &[&str]) -> serde_json::Value {
    fidelity_with(&serde_json::json!({}), args)
}

/// [`fidelity`] with extra librdkafka settings for every client (SASL for brokers that need
/// it).
pub fn fidelity_with(client: &serde_json::Value, args: &[&str]) -> serde_json::Value {
    let out = Command::new(get("/venv_python"))
        .arg(FIDELITY)
        .args(args)
        .env("KB_FIDELITY_CLIENT", client.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fidelity.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// librdkafka settings for the PLAIN user of the SASL proxies (`sasl_reauth`, `gssapi`,
/// `msk_iam`), with which confluent-kafka writes and reads test data on their listeners.
pub fn librdkafka_plain() -> serde_json::Value {
    serde_json::json!({
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": get("/plain/username"),
        "sasl.password": get("/plain/password"),
    })
}

/// One record as the fidelity script reports it: hex key/value, headers, timestamp.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rec {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, Option<String>)>,
    pub timestamp: i64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The records the producer reported, without those of aborted transactions.
pub fn committed(produced: &serde_json::Value) -> Vec<Rec> {
    let mut out: Vec<Rec> = produced
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["txn"] != "aborted")
        .map(|r| Rec {
            partition: r["p"].as_i64().unwrap() as i32,
            offset: r["o"].as_i64().unwrap(),
            key: r["k"].as_str().map(str::to_owned),
            value: r["v"].as_str().map(str::to_owned),
            headers: r["h"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        hex(h[0].as_str().unwrap().as_bytes()),
                        h[1].as_str().map(str::to_owned),
                    )
                })
                .collect(),
            timestamp: r["ts"].as_i64().unwrap(),
        })
        .collect();
    out.sort();
    out
}

/// Every segment object of `topic` in a filesystem store, by partition, in offset order.
pub fn segments(
    store: &Path,
    backup_id: &str,
    topic: &str,
) -> BTreeMap<i32, Vec<(SegmentKey, PathBuf)>> {
    let mut out: BTreeMap<i32, Vec<(SegmentKey, PathBuf)>> = BTreeMap::new();
    let root = store.join(backup_id).join("topics").join(topic);
    for entry in walk(&root) {
        let rel = entry
            .strip_prefix(store)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        if let Some(key) = naming::parse_segment_key(&rel) {
            out.entry(key.partition).or_default().push((key, entry));
        }
    }
    for list in out.values_mut() {
        list.sort_by_key(|(k, _)| k.start_offset);
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Reads a topic back from a filesystem backup: checks that each partition's segments tile
/// its offsets without overlap (no record twice) and that every object's hash matches its
/// name, then decodes the committed records (aborted transactions and markers left out, as
/// a read_committed consumer would).
pub fn read_back(store: &Path, backup_id: &str, topic: &str) -> Vec<Rec> {
    let mut records = Vec::new();
    for (partition, list) in segments(store, backup_id, topic) {
        let mut batches: Vec<Bytes> = Vec::new();
        let mut expected_start: Option<i64> = None;
        for (key, path) in &list {
            if let Some(start) = expected_start {
                assert_eq!(
                    key.start_offset,
                    start,
                    "partition {partition}: segments must tile (gap or overlap before {})",
                    path.display()
                );
            }
            let bytes = Bytes::from(std::fs::read(path).unwrap());
            assert_eq!(
                backup_format::segment::object_sha256(&bytes),
                key.sha256,
                "hash in the name of {}",
                path.display()
            );
            let segment = read_all(bytes).unwrap();
            assert_eq!(segment.trailer.end_offset, key.last_offset + 1);
            expected_start = Some(key.last_offset + 1);
            batches.extend(segment.batches);
        }
        let limits = DecodeLimits::default();
        let mut index = MarkerIndex::new();
        let summaries: Vec<BatchSummary> = batches
            .iter()
            .map(|b| BatchSummary::read(b, &limits).unwrap())
            .collect();
        for s in &summaries {
            index.observe(s).unwrap();
        }
        let mut filter = index.into_filter();
        for (batch, summary) in batches.iter().zip(&summaries) {
            if filter.decide(&summary.header).unwrap() != Decision::Keep {
                continue;
            }
            for r in decode_batch(batch, &limits).unwrap().records {
                records.push(Rec {
                    partition,
                    offset: r.offset,
                    key: r.key.as_deref().map(hex),
                    value: r.value.as_deref().map(hex),
                    headers: r
                        .headers
                        .iter()
                        .map(|h| (hex(&h.key), h.value.as_deref().map(hex)))
                        .collect(),
                    timestamp: r.timestamp,
                });
            }
        }
    }
    records.sort();
    records
}

fn short(s: &Option<String>) -> String {
    match s {
        None => "null".to_owned(),
        Some(v) if v.len() > 40 => format!("{}…({} hex chars)", &v[..40], v.len()),
        Some(v) => format!("\"{v}\""),
    }
}

fn describe(r: &Rec) -> String {
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|(k, v)| format!("{k}={}", short(v)))
        .collect();
    format!(
        "p{} o{} key={} value={} headers=[{}] ts={}",
        r.partition,
        r.offset,
        short(&r.key),
        short(&r.value),
        headers.join(","),
        r.timestamp
    )
}

/// Asserts two record lists are equal, reporting only the first difference.
#[track_caller]
pub fn assert_same_records(got: &[Rec], want: &[Rec]) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "record {i} differs:\n   got {}\n  want {}\n({} vs {} records)",
            describe(&got[i]),
            describe(&want[i]),
            got.len(),
            want.len()
        );
    }
    if got.len() != want.len() {
        let extra = if got.len() > want.len() {
            format!("first extra: {}", describe(&got[want.len()]))
        } else {
            format!("first missing: {}", describe(&want[got.len()]))
        };
        panic!("{} records, expected {}; {extra}", got.len(), want.len());
    }
}

/// Starts `kafka-backup backup` on `yaml` (written into `dir`) in the background, JSON logs
/// at info and a JSON report, for tests that stop it with a signal.
pub fn spawn_backup(dir: &Path, yaml: &str) -> std::process::Child {
    let config = dir.join("continuous.yaml");
    std::fs::write(&config, yaml).unwrap();
    Command::new(binary())
        .args([
            "--log-format",
            "json",
            "--log-level",
            "info",
            "backup",
            "--format",
            "json",
            "--config",
        ])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends SIGTERM to `child`.
pub fn sigterm(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for `child` to exit (killing it and failing after `timeout`) and collects its output.
pub fn finish(mut child: std::process::Child, timeout: std::time::Duration) -> Run {
    let deadline = std::time::Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the backup did not exit within {timeout:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls `ok` every 100 ms until it holds; fails after `timeout`, naming `what`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// What a read_committed consumer (confluent-kafka) sees in `topic`, offsets left out (a
/// restore gives back the records in order per partition, not at the same offsets).
pub fn consumed(topic: &str) -> Vec<Rec> {
    let mut records = committed(&fidelity(&["consume", &plaintext_broker(), topic]));
    for r in &mut records {
        r.offset = 0;
    }
    records.sort();
    records
}

/// SHA-256 in hex through the `sha256sum` tool, so that a test does not share the code it
/// checks.
pub fn sha256sum(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// The events of a JSON-lines audit log, in order.
pub fn audit_events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

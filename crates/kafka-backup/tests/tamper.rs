//! Tampering with a signed, encrypted backup made by the engine from the real broker, through
//! the real binary, as someone with write access to the bucket but no keys would: flipped bits,
//! swapped, truncated and planted segments, forged manifests and gap records, deleted runs and
//! manifest parts, a rollback, and a hostile manifest of hundreds of megabytes. Every attack
//! must be detected by `validate` (exit 7, the object named) and refused by `restore` (exit 7
//! before anything is produced, the object named); `--force` leaves the bad objects out and
//! reports them.
//!
//! One backup is made once per test binary (three runs, the second in continuous mode with
//! several manifest parts) and kept pristine; each attack works on its own copy of the store.
//! `crates/backup-core/tests/trust.rs` has library-level versions of some of these attacks on
//! hand-written backups.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use backup_format::manifest::{
    Gap, GapRecord, GroupOffset, GroupOffsets, GroupSnapshot, MANIFEST_FORMAT, ManifestLink,
    RunManifest, RunMode, RunStatus, SegmentEntry,
};
use backup_format::naming::{self, GapKey, SegmentKey};
use backup_format::segment::{object_sha256, peek_header};
use backup_format::signing::SigningKey;
use backup_format::{SegmentHeader, SegmentWriter, WriterOptions};
use bytes::Bytes;
use common::*;
use kafka_records::{EncodeOptions, Record, encode_batch};
use serde_json::Value;

const EXIT_INTEGRITY: i32 = 7;
const BACKUP_ID: &str = "tamper";
const PLAIN_ID: &str = "plain";
/// Records produced to every partition before each of the continuous run's parts.
const PER_ROUND: usize = 30;
/// Manifest parts the continuous run writes before it is stopped (plus its final part).
const CONTINUOUS_PARTS: usize = 3;

/// The backup every attack starts from, made once.
struct Fixture {
    topic: String,
    /// The signed and encrypted backup, never modified.
    store: PathBuf,
    /// An encrypted backup without signatures, of the same topic, never modified.
    plain_store: PathBuf,
    local_key: PathBuf,
    signing_key: PathBuf,
    verify_key: PathBuf,
    /// Runs in order, each with its manifest part keys in part order.
    runs: Vec<(String, Vec<String>)>,
    /// Segments by partition, in offset order: key, and the run that listed it.
    segments: BTreeMap<i32, Vec<(SegmentKey, String, String)>>,
    /// What a read_committed consumer sees in the source topic.
    records: usize,
    /// A consumer group committed on the source before the first run: `{topic}-app`, at
    /// offset [`GROUP_OFFSET`] of partition 1.
    group: String,
}

/// Where `{topic}-app` stands on partition 1: plain records only before it, so its target
/// offset is the same number.
const GROUP_OFFSET: i64 = 5;

/// The shared backup; made by the first test that needs it. A failure to make it fails every
/// test with its message (a `OnceLock` would otherwise let the next test try again).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Result<Fixture, String>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            std::panic::catch_unwind(make_fixture).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default()
            })
        })
        .as_ref()
        .unwrap_or_else(|e| panic!("the shared backup could not be made: {e}"))
}

/// A plain record producer: `count` records round-robin over `partitions`, keys
/// `{prefix}-{i}`.
const PRODUCE: &str = "import sys\nfrom confluent_kafka import Producer\n\
p = Producer({'bootstrap.servers': sys.argv[1], 'linger.ms': 5})\n\
n, parts = int(sys.argv[3]), int(sys.argv[5])\n\
for i in range(n):\n\
\x20   p.produce(sys.argv[2], key=('%s-%d' % (sys.argv[4], i)).encode(), value=b'v' * 100, partition=i % parts)\n\
p.flush()\n";

fn produce(topic: &str, count: usize, prefix: &str) {
    python(
        PRODUCE,
        &[&plaintext_broker(), topic, &count.to_string(), prefix, "3"],
    );
}

fn generate_key(kind: &str, out: &Path) {
    let args = [
        "keys".as_ref(),
        "generate".as_ref(),
        "--type".as_ref(),
        kind.as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    run_binary(&args, &[]).assert_code(EXIT_OK);
}

fn make_fixture() -> Fixture {
    let started = Instant::now();
    // Kept under target/tmp after the run, for a look at the pristine backup when a test
    // fails (`cargo clean` removes it); each attack's copy is removed with its test.
    let root = tempfile::Builder::new()
        .prefix("tamper-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    let topic = unique_topic("tamper");
    let broker = plaintext_broker();
    // Every kind of record librdkafka writes, over three partitions, with a committed and an
    // aborted transaction.
    let produced = fidelity(&["produce", &broker, &topic, "3"]);
    let mut records = committed(&produced).len();
    let group = format!("{topic}-app");
    python(
        "import sys\nfrom confluent_kafka import Consumer, TopicPartition\n\
         c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': sys.argv[3], 'enable.auto.commit': False})\n\
         c.commit(offsets=[TopicPartition(sys.argv[2], 1, int(sys.argv[4]))], asynchronous=False)\n\
         c.close()\n",
        &[&broker, &topic, &group, &GROUP_OFFSET.to_string()],
    );

    let local_key = root.join("backup.key");
    let signing_key = root.join("signing.key");
    generate_key("local", &local_key);
    generate_key("signing", &signing_key);
    let verify_key = root.join("signing.key.pub");
    let store = root.join("store");
    let protection = format!(
        "encryption: {{key_provider: local, key_file: {}}}\nsigning_key: {}",
        local_key.display(),
        signing_key.display()
    );
    let snapshot = fs_backup_yaml(BACKUP_ID, &[&topic], &store, &protection);

    // Run 1: a snapshot.
    run(&root, "backup", &snapshot, &[], &[]).assert_code(EXIT_OK);

    // Run 2: continuous, a manifest part each time new segments were stored, stopped with
    // SIGTERM after a few parts.
    let continuous = fs_backup_yaml(
        BACKUP_ID,
        &[&topic],
        &store,
        &format!(
            "{protection}\ncontinuous: true\nsegment_max_interval_ms: 1000\nmetadata_max_age_ms: 1000"
        ),
    );
    let first_runs = run_dirs(&store);
    let child = spawn_backup(&root, &continuous);
    let parts_of_new_run = || {
        run_dirs(&store)
            .iter()
            .filter(|r| !first_runs.contains(r))
            .map(|r| manifest_files(&store, r).len())
            .sum::<usize>()
    };
    for round in 0..CONTINUOUS_PARTS {
        produce(&topic, PER_ROUND, &format!("cont{round}"));
        records += PER_ROUND;
        wait_until("a manifest part", Duration::from_secs(60), || {
            parts_of_new_run() > round
        });
    }
    sigterm(&child);
    finish(child, Duration::from_secs(30)).assert_code(EXIT_OK);

    // Run 3: a snapshot of what came since.
    produce(&topic, PER_ROUND, "last");
    records += PER_ROUND;
    run(&root, "backup", &snapshot, &[], &[]).assert_code(EXIT_OK);

    // The same topic, encrypted but not signed, in a store of its own.
    let plain_store = root.join("plain-store");
    let plain = fs_backup_yaml(
        PLAIN_ID,
        &[&topic],
        &plain_store,
        &format!(
            "encryption: {{key_provider: local, key_file: {}}}",
            local_key.display()
        ),
    );
    run(&root, "backup", &plain, &[], &[]).assert_code(EXIT_OK);

    let runs: Vec<(String, Vec<String>)> = run_dirs(&store)
        .into_iter()
        .map(|r| {
            let parts = manifest_files(&store, &r);
            (r, parts)
        })
        .collect();
    // Run ids sort in start order.
    assert_eq!(runs.len(), 3, "three runs: {runs:?}");
    let modes: Vec<RunMode> = runs
        .iter()
        .map(|(_, parts)| read_manifest(&store, &parts[0]).mode)
        .collect();
    assert_eq!(
        modes,
        [RunMode::Snapshot, RunMode::Continuous, RunMode::Snapshot],
        "{runs:?}"
    );
    assert!(
        runs[1].1.len() > CONTINUOUS_PARTS,
        "the continuous run wrote {CONTINUOUS_PARTS} parts and a final one: {runs:?}"
    );
    let mut listed_by: BTreeMap<String, String> = BTreeMap::new();
    for (run_id, parts) in &runs {
        for part in parts {
            let m = read_manifest(&store, part);
            for s in &m.segments {
                listed_by.insert(s.key.clone(), run_id.clone());
            }
        }
    }
    let segments = common::segments(&store, BACKUP_ID, &topic)
        .into_iter()
        .map(|(p, list)| {
            let list = list
                .into_iter()
                .map(|(k, path)| {
                    let key = relative(&store, &path);
                    let run = listed_by
                        .get(&key)
                        .unwrap_or_else(|| panic!("{key} is listed by no manifest"))
                        .clone();
                    (k, key, run)
                })
                .collect();
            (p, list)
        })
        .collect();
    eprintln!(
        "tamper fixture: 3 runs ({} manifest parts), {records} records, made in {:?}",
        runs.iter().map(|r| r.1.len()).sum::<usize>(),
        started.elapsed()
    );
    Fixture {
        topic,
        store,
        plain_store,
        local_key,
        signing_key,
        verify_key,
        runs,
        segments,
        records,
        group,
    }
}

/// Run ids of a store, in order.
fn run_dirs(store: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(store.join(BACKUP_ID).join("runs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Manifest part keys of a run, in part order (`manifest-000000-…` sorts by part).
fn manifest_files(store: &Path, run_id: &str) -> Vec<String> {
    let dir = store.join(BACKUP_ID).join("runs").join(run_id);
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| relative(store, &e.path())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn relative(store: &Path, path: &Path) -> String {
    path.strip_prefix(store)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

fn read_manifest(store: &Path, key: &str) -> RunManifest {
    RunManifest::from_json(&std::fs::read(store.join(key)).unwrap()).unwrap()
}

/// Copies a filesystem store, to attack the copy.
fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_store(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// One attack: its own copy of a pristine store, its own target topic and restore id.
struct Attack {
    dir: tempfile::TempDir,
    name: String,
    store: PathBuf,
    backup_id: &'static str,
    /// Where a restore of it would write.
    target: String,
    /// Whether the restore configuration names the verify key.
    verify: bool,
}

impl Attack {
    /// A copy of the signed backup.
    fn new(name: &str) -> Self {
        Self::of(name, &fixture().store, BACKUP_ID, true)
    }

    /// A copy of the unsigned (but encrypted) backup.
    fn plain(name: &str) -> Self {
        Self::of(name, &fixture().plain_store, PLAIN_ID, false)
    }

    fn of(name: &str, pristine: &Path, backup_id: &'static str, verify: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tamper-{name}-"))
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let store = dir.path().join("store");
        copy_store(pristine, &store);
        Self {
            target: format!("{}-{name}", fixture().topic),
            name: name.to_owned(),
            dir,
            store,
            backup_id,
            verify,
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.store.join(key)
    }

    fn read(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.path(key)).unwrap()
    }

    fn write(&self, key: &str, bytes: &[u8]) {
        let path = self.path(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn remove(&self, key: &str) {
        std::fs::remove_file(self.path(key)).unwrap_or_else(|e| panic!("remove {key}: {e}"));
    }

    /// The restore configuration (also what validate reads): the local key, the verify key
    /// for the signed backup, the topic restored under a name of this attack's own.
    fn yaml(&self) -> String {
        let f = fixture();
        let mut restore = format!(
            "  topic_mapping:\n    {}: {}\n  restore_id: {}\n  consumer_groups:\n    include: [\"{}-*\"]\n  \
             encryption:\n    key_provider: local\n    key_files: [{}]\n",
            f.topic,
            self.target,
            self.target,
            f.topic,
            f.local_key.display()
        );
        if self.verify {
            restore.push_str(&format!("  verify_key: {}\n", f.verify_key.display()));
        }
        format!(
            "mode: restore\nbackup_id: {}\ntarget:\n  bootstrap_servers: [\"{}\"]\nstorage:\n  \
             backend: filesystem\n  path: {}\nrestore:\n{restore}",
            self.backup_id,
            plaintext_broker(),
            self.store.display()
        )
    }

    /// `validate --format json` and `validate` (text), same arguments; both must agree on
    /// the exit code.
    fn validate(&self, args: &[&str]) -> Validated {
        let mut json_args = vec!["--format", "json"];
        json_args.extend(args);
        let json = run(self.dir.path(), "validate", &self.yaml(), &[], &json_args);
        let text = run(self.dir.path(), "validate", &self.yaml(), &[], args);
        assert_eq!(json.code, text.code, "{}\n{}", json.all(), text.all());
        let report = json.json();
        eprintln!(
            "[{}] validate {args:?}: exit {}, {} errors, {} warnings:\n{}",
            self.name,
            json.code,
            report["errors"],
            report["warnings"],
            problem_lines(&report)
        );
        Validated {
            code: json.code,
            report,
            text: text.all(),
        }
    }

    fn restore(&self, args: &[&str]) -> Run {
        let out = run(self.dir.path(), "restore", &self.yaml(), &[], args);
        eprintln!(
            "[{}] restore {args:?}: exit {}\n{}",
            self.name,
            out.code,
            error_text(&out)
        );
        out
    }

    /// A restore that must be refused naming `objects`, before anything reaches the target.
    #[track_caller]
    fn assert_restore_refused(&self, args: &[&str], objects: &[&str]) -> String {
        let out = self.restore(args);
        out.assert_code(EXIT_INTEGRITY);
        let text = error_text(&out);
        assert!(
            text.contains("failed its integrity check, so nothing was restored"),
            "{text}"
        );
        for o in objects {
            assert!(text.contains(o), "the refusal names {o}:\n{text}");
        }
        // What to do about it.
        assert!(text.contains("kafka-backup validate"), "{text}");
        assert!(text.contains("--force"), "{text}");
        self.assert_target_untouched();
        text
    }

    /// A restore refused over the content of a segment (each is checked whole when its turn
    /// comes, before any of its batches is produced), naming at least one of `objects`; or
    /// refused before anything, naming all of them. Either way no record of a named segment
    /// reaches the target: its partition holds at most the records before it.
    #[track_caller]
    fn assert_segment_refused(&self, args: &[&str], objects: &[&str]) -> String {
        let out = self.restore(args);
        out.assert_code(EXIT_INTEGRITY);
        let text = error_text(&out);
        if text.contains("nothing was restored") {
            return self.assert_restore_refused(args, objects);
        }
        assert!(
            text.contains("before producing any of its batches"),
            "{text}"
        );
        assert!(text.contains("kafka-backup validate"), "{text}");
        assert!(text.contains("--force"), "{text}");
        let named: Vec<&&str> = objects.iter().filter(|o| text.contains(**o)).collect();
        assert!(
            !named.is_empty(),
            "the refusal names one of {objects:?}:\n{text}"
        );
        if topic_exists(&plaintext_broker(), &self.target) {
            let restored = self.restored();
            for key in named {
                let parsed = backup_format::naming::parse_segment_key(key)
                    .unwrap_or_else(|| panic!("{key} is a segment key"));
                let held = restored
                    .iter()
                    .filter(|r| r.partition == parsed.partition)
                    .count() as i64;
                assert!(
                    held <= parsed.start_offset,
                    "partition {} holds {held} records, more than come before {key}",
                    parsed.partition
                );
            }
        }
        text
    }

    #[track_caller]
    fn assert_target_untouched(&self) {
        assert!(
            !topic_exists(&plaintext_broker(), &self.target),
            "nothing is created or written before the integrity check: {} exists",
            self.target
        );
    }

    /// Records a read_committed consumer sees in the target topic.
    fn restored(&self) -> Vec<Rec> {
        committed(&fidelity(&["consume", &plaintext_broker(), &self.target]))
    }
}

/// The error a failed CLI run printed (JSON log lines: their messages).
fn error_text(run: &Run) -> String {
    run.stderr
        .lines()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(v) => v["fields"]["message"]
                .as_str()
                .or(v["message"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| l.to_owned()),
            Err(_) => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn problem_lines(report: &Value) -> String {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "  {} {} ({}): {}",
                p["severity"].as_str().unwrap_or("?"),
                p["kind"].as_str().unwrap_or("?"),
                p["object"].as_str().unwrap_or("-"),
                p["message"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What validate said, as JSON and as text.
struct Validated {
    code: i32,
    report: Value,
    text: String,
}

impl Validated {
    /// The problems of `kind` about `object`.
    fn problems(&self, kind: &str, object: &str) -> Vec<&Value> {
        self.report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["kind"] == kind && p["object"] == object)
            .collect()
    }

    /// Exit 7, an error of `kind` about `object`, named in the text report too; returns its
    /// message.
    #[track_caller]
    fn assert_error(&self, kind: &str, object: &str) -> String {
        assert_eq!(self.code, EXIT_INTEGRITY, "{}", self.text);
        assert_eq!(self.report["ok"], false);
        let found = self.problems(kind, object);
        assert!(
            !found.is_empty(),
            "an error {kind} about {object}:\n{}",
            problem_lines(&self.report)
        );
        assert_eq!(found[0]["severity"], "error");
        assert!(
            self.text.contains(&format!("error {kind}")) && self.text.contains(object),
            "the text report names {kind} and {object}:\n{}",
            self.text
        );
        assert!(
            self.text
                .contains("the backup is damaged or incomplete; see the problems below"),
            "{}",
            self.text
        );
        found[0]["message"].as_str().unwrap().to_owned()
    }

    /// An error of `kind` whose message contains `needle` (for problems without an object).
    #[track_caller]
    fn assert_error_saying(&self, kind: &str, needle: &str) -> String {
        assert_eq!(self.code, EXIT_INTEGRITY, "{}", self.text);
        let found = self.report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                p["kind"] == kind
                    && p["severity"] == "error"
                    && p["message"].as_str().unwrap().contains(needle)
            })
            .unwrap_or_else(|| {
                panic!(
                    "an error {kind} saying {needle}:\n{}",
                    problem_lines(&self.report)
                )
            });
        assert!(self.text.contains(needle), "{}", self.text);
        found["message"].as_str().unwrap().to_owned()
    }

    fn kinds(&self) -> Vec<String> {
        self.report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["kind"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Offsets of a segment's first chunk: (chunk header, stored bytes start, stored length).
fn first_chunk(bytes: &[u8]) -> (usize, usize, usize) {
    let header_len = u32::from_be_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let chunk = 16 + header_len;
    assert_eq!(bytes[chunk], 0x01, "a chunk follows the header");
    let stored_len = u32::from_be_bytes(bytes[chunk + 5..chunk + 9].try_into().unwrap()) as usize;
    (chunk, chunk + 13, stored_len)
}

/// Flips one bit in the middle of the first chunk's ciphertext; with `fix_crc`, also rewrites
/// the chunk's CRC32C so that it matches the altered bytes.
fn flip_bit(bytes: &mut [u8], fix_crc: bool) {
    let (chunk, stored, len) = first_chunk(bytes);
    let before = crc32c::crc32c(&bytes[stored..stored + len]);
    assert_eq!(
        before,
        u32::from_be_bytes(bytes[chunk + 9..chunk + 13].try_into().unwrap()),
        "the chunk CRC covers the stored (encrypted) bytes"
    );
    bytes[stored + len / 2] ^= 0x04;
    if fix_crc {
        let crc = crc32c::crc32c(&bytes[stored..stored + len]);
        bytes[chunk + 9..chunk + 13].copy_from_slice(&crc.to_be_bytes());
    }
}

/// A record batch of `n` records from `base`, keys `{prefix}-{offset}`.
fn batch(base: i64, n: i64, prefix: &str) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            offset: base + i,
            timestamp: 1_750_000_000_000 + i,
            key: Some(Bytes::from(format!("{prefix}-{}", base + i))),
            value: Some(Bytes::from_static(b"planted by someone without the keys")),
            headers: Vec::new(),
        })
        .collect();
    encode_batch(&records, &EncodeOptions::default())
        .unwrap()
        .freeze()
}

/// A well-formed segment (in the clear: whoever plants it has no data key) that copies the
/// clear header of `like` and changes what `edit` says, holding `n` records from its start.
fn forge_segment(
    like: &[u8],
    n: i64,
    prefix: &str,
    edit: impl FnOnce(&mut SegmentHeader),
) -> backup_format::FinishedSegment {
    let mut header = peek_header(like).unwrap();
    header.encryption = None;
    header.aborted_transactions = Vec::new();
    edit(&mut header);
    let start = header.start_offset;
    let mut w = SegmentWriter::new(header, WriterOptions::default()).unwrap();
    w.push_batch(&batch(start, n, prefix)).unwrap();
    w.finish().unwrap()
}

fn other_key() -> SigningKey {
    SigningKey::generate().unwrap().0
}

/// The segment `i` of partition `p` of the pristine backup: its key, and the run that wrote
/// it.
fn segment(p: i32, i: usize) -> (SegmentKey, String, String) {
    fixture().segments[&p][i].clone()
}

/// A segment of partition `p` written by run `run` (0-based), and its index in the partition.
fn segment_of_run(p: i32, run: usize) -> (usize, String) {
    let f = fixture();
    let run_id = &f.runs[run].0;
    f.segments[&p]
        .iter()
        .enumerate()
        .find(|(_, (_, _, r))| r == run_id)
        .map(|(i, (_, k, _))| (i, k.clone()))
        .unwrap_or_else(|| panic!("run {run_id} wrote no segment of partition {p}"))
}

/// The manifest part of the pristine backup that lists `segment`.
fn part_listing(segment: &str) -> String {
    let f = fixture();
    f.runs
        .iter()
        .flat_map(|(_, parts)| parts)
        .find(|part| {
            read_manifest(&f.store, part)
                .segments
                .iter()
                .any(|s| s.key == segment)
        })
        .unwrap()
        .clone()
}

/// A manifest part of the continuous run with parts before and after it that lists a segment
/// of partition `p`: its index, its content, and that segment's entry.
fn middle_part_with(p: i32) -> (usize, RunManifest, SegmentEntry) {
    let f = fixture();
    let parts = &f.runs[1].1;
    (1..parts.len() - 1)
        .find_map(|i| {
            let m = read_manifest(&f.store, &parts[i]);
            let entry = m.segments.iter().find(|s| s.partition == p)?.clone();
            Some((i, m, entry))
        })
        .unwrap_or_else(|| panic!("no middle part of the continuous run lists partition {p}"))
}

#[test]
fn the_pristine_backup_validates_and_restores_in_full() {
    let f = fixture();
    let a = Attack::new("pristine");
    let v = a.validate(&[]);
    assert_eq!(v.code, EXIT_OK, "{}", v.text);
    assert_eq!(v.report["errors"], 0);
    assert_eq!(v.report["warnings"], 0, "{}", problem_lines(&v.report));
    assert_eq!(v.report["runs"], 3);
    assert_eq!(v.report["authentication"]["status"], "verified");
    assert_eq!(
        v.report["encrypted_segments"], v.report["segments"],
        "every segment is encrypted"
    );
    assert_eq!(v.report["not_decrypted_segments"], 0);
    // Anchored to the newest run, too.
    let newest = &f.runs[2].0;
    assert_eq!(a.validate(&["--expect-run", newest]).code, EXIT_OK);

    let out = a.restore(&["--format", "json"]);
    out.assert_code(EXIT_OK);
    let report = out.json();
    assert_eq!(report["problems_ignored"], serde_json::json!([]));
    assert_eq!(report["encrypted"], true);
    assert_eq!(a.restored().len(), f.records, "every committed record");
    let group = report["consumer_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group_id"] == f.group.as_str())
        .unwrap_or_else(|| panic!("{} is restored: {report}", f.group));
    assert_eq!(group["status"], "committed", "{group}");
}

#[test]
fn a_flipped_bit_in_a_segment_is_caught_by_its_hash_and_by_the_aead() {
    let f = fixture();
    // (a) One bit of ciphertext in a segment with the transactions (run 1, partition 0).
    let (_, victim, _) = segment(0, 0);
    let a = Attack::new("flip");
    let mut bytes = a.read(&victim);
    flip_bit(&mut bytes, false);
    a.write(&victim, &bytes);
    let v = a.validate(&[]);
    let message = v.assert_error("hash-mismatch", &victim);
    assert!(message.contains("changed or replaced after it was written"));
    a.assert_segment_refused(&[], &[&victim]);

    // (b) The same with the chunk's CRC32C fixed up: only the hash in the signed name and the
    // AEAD tag can tell. A segment of the last run, so that --force can be checked exactly.
    let (_, victim) = segment_of_run(2, 2);
    let b = Attack::new("flipcrc");
    let mut bytes = b.read(&victim);
    flip_bit(&mut bytes, true);
    b.write(&victim, &bytes);
    let v = b.validate(&[]);
    v.assert_error("hash-mismatch", &victim);
    let aead: Vec<&Value> = v.report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["object"] == victim.as_str() && p["kind"] != "hash-mismatch")
        .collect();
    assert!(
        !aead.is_empty(),
        "decrypting the chunk fails its authentication too:\n{}",
        problem_lines(&v.report)
    );
    b.assert_segment_refused(&[], &[&victim]);

    // --force restores everything else and says what it left out.
    let forced = b.restore(&["--force", "--format", "json"]);
    forced.assert_code(EXIT_OK);
    let report = forced.json();
    assert!(
        report["problems_ignored"].to_string().contains(&victim),
        "{report}"
    );
    let lost = read_manifest(&f.store, &part_listing(&victim))
        .segments
        .iter()
        .find(|s| s.key == victim)
        .unwrap()
        .records as usize;
    let got = b.restored();
    assert_eq!(got.len(), f.records - lost, "all but the bad segment");

    // (c) Flipped, CRC fixed, and renamed with the altered content's SHA-256 but the original
    // signature: the signature no longer verifies, and the original is missing.
    let (mut parsed, victim, _) = segment(1, 0);
    let c = Attack::new("fliprename");
    let mut bytes = c.read(&victim);
    flip_bit(&mut bytes, true);
    c.remove(&victim);
    parsed.sha256 = object_sha256(&bytes);
    let renamed = parsed.to_key().unwrap();
    c.write(&renamed, &bytes);
    let v = c.validate(&[]);
    v.assert_error("unauthenticated", &renamed);
    v.assert_error("missing-segment", &victim);
    c.assert_restore_refused(&[], &[&renamed, &victim]);

    // (d) The same without a verify key: nothing checks the signature, and the AEAD alone
    // refuses the altered chunk.
    let d = Attack::new("flipnokey");
    d.write(&renamed, &bytes);
    d.remove(&victim);
    let d = Attack { verify: false, ..d };
    let v = d.validate(&[]);
    assert_eq!(v.code, EXIT_INTEGRITY, "{}", v.text);
    let aead: Vec<&Value> = v.report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["object"] == renamed.as_str() && p["severity"] == "error")
        .collect();
    assert!(
        !aead.is_empty(),
        "the altered chunk fails authentication:\n{}",
        problem_lines(&v.report)
    );
}

#[test]
fn two_segments_with_their_contents_swapped_are_caught() {
    // Neighbours in one partition: each holds well-formed data of this backup, under the
    // other's name.
    let (_, first, _) = segment(0, 1);
    let (_, second, _) = segment(0, 2);
    let a = Attack::new("swap");
    let (x, y) = (a.read(&first), a.read(&second));
    a.write(&first, &y);
    a.write(&second, &x);
    let v = a.validate(&[]);
    v.assert_error("hash-mismatch", &first);
    v.assert_error("hash-mismatch", &second);
    a.assert_segment_refused(&[], &[&first, &second]);
}

#[test]
fn a_truncated_segment_is_caught() {
    let (_, victim, _) = segment(2, 0);
    let a = Attack::new("truncated");
    let bytes = a.read(&victim);
    a.write(&victim, &bytes[..bytes.len() * 2 / 3]);
    let v = a.validate(&[]);
    v.assert_error("hash-mismatch", &victim);
    v.assert_error("size-mismatch", &victim);
    a.assert_restore_refused(&[], &[&victim]);
}

#[test]
fn a_planted_segment_of_a_new_topic_is_not_authentic() {
    let f = fixture();
    let a = Attack::new("newtopic");
    let (_, like, _) = segment(0, 0);
    let like = a.read(&like);
    let evil = format!("{}-evil", f.topic);
    let plant = |partition: i32| {
        forge_segment(&like, 5, "evil", |h| {
            h.topic = evil.clone();
            h.topic_id = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b".into();
            h.partition = partition;
            h.start_offset = 0;
        })
    };
    // A correctly formatted, unsigned name...
    let unsigned = plant(0);
    let unsigned_key = unsigned.key();
    a.write(&unsigned_key, &unsigned.bytes);
    // ...and one signed with another key.
    let resigned = plant(1);
    let resigned_key = resigned
        .segment_key()
        .sign(&other_key())
        .unwrap()
        .to_key()
        .unwrap();
    a.write(&resigned_key, &resigned.bytes);
    assert!(naming::parse_segment_key(&resigned_key).is_some());

    let v = a.validate(&[]);
    for key in [&unsigned_key, &resigned_key] {
        let message = v.assert_error("unauthenticated", key);
        assert!(
            message.contains("--accept-unauthenticated"),
            "says what a restore does with it: {message}"
        );
    }
    let text = a.assert_restore_refused(&[], &[&unsigned_key, &resigned_key]);
    assert!(text.contains("--accept-unauthenticated"), "{text}");
    assert!(!topic_exists(&plaintext_broker(), &evil));
}

#[test]
fn a_planted_segment_just_past_a_partitions_end_is_not_authentic() {
    let f = fixture();
    let a = Attack::new("pastend");
    let (last, key, _) = f.segments[&1].last().unwrap().clone();
    let bytes = a.read(&key);
    let planted = forge_segment(&bytes, 5, "planted", |h| {
        h.start_offset = last.last_offset + 1;
    });
    let planted_key = planted.key();
    a.write(&planted_key, &planted.bytes);
    let v = a.validate(&[]);
    v.assert_error("unauthenticated", &planted_key);
    a.assert_restore_refused(&[], &[&planted_key]);
}

/// What confluent-kafka's admin client and consumer see of `topic` in the target: partitions,
/// configuration, and the offsets `groups` have committed on it.
fn target_state(topic: &str, groups: &[&str]) -> Value {
    let out = python(
        "import sys, json\nfrom confluent_kafka import Consumer, TopicPartition\n\
         from confluent_kafka.admin import AdminClient, ConfigResource\n\
         a = AdminClient({'bootstrap.servers': sys.argv[1]})\n\
         topic = sys.argv[2]\n\
         parts = sorted(a.list_topics(timeout=10).topics[topic].partitions)\n\
         res = ConfigResource(ConfigResource.Type.TOPIC, topic)\n\
         configs = {k: v.value for k, v in a.describe_configs([res])[res].result().items()}\n\
         committed = {}\n\
         for g in sys.argv[3:]:\n\
         \x20   c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': g, 'enable.auto.commit': False})\n\
         \x20   committed[g] = {str(tp.partition): tp.offset for tp in c.committed([TopicPartition(topic, p) for p in parts], timeout=10)}\n\
         \x20   c.close()\n\
         print(json.dumps({'partitions': len(parts), 'configs': configs, 'committed': committed}))\n",
        &[&[plaintext_broker().as_str(), topic], groups].concat(),
    );
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn a_forged_manifest_changes_no_topic_and_commits_no_group() {
    let f = fixture();
    let a = Attack::new("forgedmanifest");
    let newest = f.runs[2].1.last().unwrap().clone();
    let forged_group = format!("{}-forged", f.topic);
    // A later run, chained to the real newest part, with hostile topic metadata (retention of
    // a millisecond, compaction, a huge partition count) and a later group snapshot that
    // rewinds the real group and adds one.
    let forge = |run_id: &str, key: Option<&SigningKey>| {
        let mut m = read_manifest(&f.store, &newest);
        m.run_id = run_id.into();
        m.part = 0;
        m.final_part = true;
        m.status = RunStatus::Complete;
        m.previous = Some(ManifestLink {
            key: newest.clone(),
            sha256: object_sha256(&a.read(&newest)),
        });
        m.segments = Vec::new();
        m.gaps = Vec::new();
        m.end_offsets = Vec::new();
        m.encryption = None;
        m.sealed = None;
        m.signing_key_id = key.map(|k| k.verifying_key().key_id());
        let later = "2099-12-31T23:59:59.000Z";
        m.started_at = later.into();
        m.written_at = later.into();
        m.finished_at = Some(later.into());
        for t in &mut m.topics {
            t.partitions = 100_000;
            t.configs = BTreeMap::from([
                ("retention.ms".to_owned(), "1".to_owned()),
                ("cleanup.policy".to_owned(), "compact".to_owned()),
            ]);
        }
        let offset = |partition, offset| GroupOffset {
            topic: f.topic.clone(),
            partition,
            offset,
            leader_epoch: None,
            metadata: None,
        };
        m.consumer_groups = Some(GroupSnapshot {
            captured_at: later.into(),
            groups: vec![
                GroupOffsets {
                    group_id: f.group.clone(),
                    state: "Empty".into(),
                    offsets: vec![offset(1, 0)],
                },
                GroupOffsets {
                    group_id: forged_group.clone(),
                    state: "Empty".into(),
                    offsets: vec![offset(0, 3)],
                },
            ],
        });
        let body = m.to_json().unwrap();
        let name = match key {
            Some(k) => m.manifest_key().sign(&body, k).unwrap().to_key().unwrap(),
            None => m.key().unwrap(),
        };
        a.write(&name, &body);
        name
    };
    let unsigned = forge("20991231T235959Z-ffffffff", None);
    let resigned = forge("20991231T235959Z-eeeeeeee", Some(&other_key()));

    let v = a.validate(&[]);
    assert!(
        v.assert_error("unauthenticated", &unsigned)
            .contains("not signed")
    );
    assert!(
        v.assert_error("unauthenticated", &resigned)
            .contains("not by a configured verify key")
    );
    assert_eq!(v.report["runs"], 3, "the forged runs are not counted");
    a.assert_restore_refused(&[], &[&unsigned, &resigned]);

    // Forced, the restore leaves both out: the topic gets the backed-up partition count and
    // no forged configuration; the real group is where the authentic snapshot says, and the
    // forged group is not committed.
    let forced = a.restore(&["--force", "--format", "json"]);
    forced.assert_code(EXIT_OK);
    let report = forced.json();
    let ignored = report["problems_ignored"].to_string();
    assert!(
        ignored.contains(&unsigned) && ignored.contains(&resigned),
        "{report}"
    );
    assert_eq!(report["topics"][0]["partitions"], 3, "{report}");
    let groups: Vec<&str> = report["consumer_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group_id"].as_str().unwrap())
        .collect();
    assert!(!groups.contains(&forged_group.as_str()), "{groups:?}");
    let state = target_state(&a.target, &[&f.group, &forged_group]);
    assert_eq!(state["partitions"], 3, "{state}");
    assert_ne!(state["configs"]["retention.ms"], "1", "{state}");
    assert_ne!(state["configs"]["cleanup.policy"], "compact", "{state}");
    assert_eq!(
        state["committed"][&f.group]["1"], GROUP_OFFSET,
        "the authentic snapshot's offset: {state}"
    );
    for p in ["0", "1", "2"] {
        assert!(
            state["committed"][&forged_group][p].as_i64().unwrap() < 0,
            "the forged group has no offset: {state}"
        );
    }
    assert_eq!(a.restored().len(), f.records);
}

#[test]
fn a_run_deleted_from_the_middle_of_the_chain_is_caught() {
    let f = fixture();
    let a = Attack::new("deletedrun");
    let (middle, parts) = &f.runs[1];
    for part in parts {
        a.remove(part);
    }
    let mut removed = 0;
    for list in f.segments.values() {
        for (_, key, run) in list {
            if run == middle {
                a.remove(key);
                removed += 1;
            }
        }
    }
    assert!(removed >= 3 * CONTINUOUS_PARTS, "{removed} segments");
    let follower = &f.runs[2].1[0];
    let v = a.validate(&[]);
    let message = v.assert_error("chain-broken", follower);
    assert!(
        message.contains(parts.last().unwrap()) && message.contains("was deleted"),
        "names the missing predecessor: {message}"
    );
    assert!(v.kinds().contains(&"hole".to_owned()), "{:?}", v.kinds());
    a.assert_restore_refused(&[], &[follower, parts.last().unwrap()]);
}

#[test]
fn a_manifest_part_deleted_from_the_middle_of_a_run_is_caught() {
    let f = fixture();
    let a = Attack::new("deletedpart");
    let (run_id, parts) = &f.runs[1];
    let deleted = &parts[1];
    a.remove(deleted);
    let v = a.validate(&[]);
    let message = v.assert_error("chain-broken", &parts[2]);
    assert!(message.contains(deleted), "{message}");
    let missing = v.assert_error_saying(
        "missing-manifest-part",
        &format!("run {run_id} has manifest part"),
    );
    assert!(missing.ends_with("but not part 1"), "{missing}");
    a.assert_restore_refused(&[], &[&parts[2], deleted, run_id]);
}

#[test]
fn a_replaced_segment_with_a_consistent_forged_manifest_is_caught() {
    let f = fixture();
    let (run_id, parts) = &f.runs[1];
    let (i, original, entry) = middle_part_with(0);
    let (part, follower) = (&parts[i], &parts[i + 1]);
    for (variant, key) in [("rewrite", None), ("rewritesigned", Some(other_key()))] {
        let a = Attack::new(variant);
        let victim = naming::parse_segment_key(&entry.key).unwrap();
        let bytes = a.read(&entry.key);
        // Other records over exactly the same offsets, under a name with their own digest.
        let n = victim.last_offset - victim.start_offset + 1;
        let replacement = forge_segment(&bytes, n, "rewritten", |_| {});
        let new_key = match &key {
            Some(k) => replacement.segment_key().sign(k).unwrap().to_key().unwrap(),
            None => replacement.key(),
        };
        // The part that listed it, rewritten to list the replacement with its new size and
        // digest, and chained to the same predecessor.
        let mut m = original.clone();
        for s in &mut m.segments {
            if s.key == entry.key {
                *s = SegmentEntry::from_finished(&replacement, new_key.clone());
            }
        }
        m.signing_key_id = key.as_ref().map(|k| k.verifying_key().key_id());
        let body = m.to_json().unwrap();
        let forged = match &key {
            Some(k) => m.manifest_key().sign(&body, k).unwrap().to_key().unwrap(),
            None => m.key().unwrap(),
        };
        a.remove(&entry.key);
        a.remove(part);
        a.write(&new_key, &replacement.bytes);
        a.write(&forged, &body);

        let v = a.validate(&[]);
        v.assert_error("unauthenticated", &forged);
        v.assert_error("unauthenticated", &new_key);
        let message = v.assert_error("chain-broken", follower);
        assert!(message.contains(part.as_str()), "{message}");
        let text = a.assert_restore_refused(&[], &[&forged, &new_key, follower]);
        assert!(text.contains(run_id.as_str()), "{text}");
    }
}

#[test]
fn a_forged_gap_record_cannot_hide_a_deleted_segment() {
    let f = fixture();
    let a = Attack::new("forgedgap");
    let (run_id, parts) = &f.runs[1];
    let (i, _, entry) = middle_part_with(1);
    let victim = naming::parse_segment_key(&entry.key).unwrap();
    a.remove(&entry.key);
    let gap = Gap {
        topic: victim.topic.clone(),
        topic_id: victim.topic_id.clone(),
        partition: victim.partition,
        from: victim.start_offset,
        to: victim.last_offset + 1,
        reason: "retention".into(),
        detected_at: "2026-01-01T00:00:00.000Z".into(),
    };
    let record = GapRecord {
        format: MANIFEST_FORMAT,
        backup_id: BACKUP_ID.into(),
        run_id: run_id.clone(),
        gap: gap.clone(),
        encryption: None,
        sealed: None,
    };
    let body = record.to_json().unwrap();
    let unsigned = gap.key(BACKUP_ID).unwrap();
    let resigned = gap
        .gap_key(BACKUP_ID)
        .sign(&body, &other_key())
        .unwrap()
        .to_key()
        .unwrap();
    assert!(naming::parse_gap_key(&resigned).is_some_and(|k: GapKey| k.seal.is_some()));
    a.write(&unsigned, &body);
    a.write(&resigned, &body);

    let v = a.validate(&[]);
    for key in [&unsigned, &resigned] {
        let message = v.assert_error("unauthenticated", key);
        assert!(message.contains("forged gap"), "{message}");
    }
    let message = v.assert_error("missing-segment", &entry.key);
    assert!(message.contains(&parts[i]), "names the manifest: {message}");
    assert!(v.kinds().contains(&"hole".to_owned()), "{:?}", v.kinds());
    a.assert_restore_refused(&[], &[&entry.key, &unsigned, &resigned]);
}

#[test]
fn a_rollback_of_the_newest_run_is_caught_only_by_an_anchor() {
    let f = fixture();
    let a = Attack::new("rollback");
    let (newest, parts) = &f.runs[2];
    for part in parts {
        a.remove(part);
    }
    for list in f.segments.values() {
        for (_, key, run) in list {
            if run == newest {
                a.remove(key);
            }
        }
    }
    // The chain is shorter but whole, and every remaining run's end offsets hold: without an
    // anchor from outside the bucket, nothing in it can show that a run is gone.
    let v = a.validate(&[]);
    assert_eq!(v.code, EXIT_OK, "{}", v.text);
    assert_eq!(v.report["errors"], 0);
    assert_eq!(v.report["runs"], 2);
    // Anchored to an older run, it still passes; anchored to the deleted one, it fails.
    assert_eq!(a.validate(&["--expect-run", &f.runs[1].0]).code, EXIT_OK);
    let v = a.validate(&["--expect-run", newest]);
    let message = v.assert_error_saying("missing-run", newest);
    assert!(message.contains("rollback"), "{message}");
    let text = a.assert_restore_refused(&["--expect-run", newest], &[newest]);
    assert!(text.contains("--expect-run"), "{text}");
}

/// The unsigned backup's segments of partition `p`.
fn plain_segments(p: i32) -> Vec<(SegmentKey, String)> {
    let f = fixture();
    common::segments(&f.plain_store, PLAIN_ID, &f.topic)
        .remove(&p)
        .unwrap()
        .into_iter()
        .map(|(k, path)| (k, relative(&f.plain_store, &path)))
        .collect()
}

#[test]
fn an_orphan_in_an_unsigned_backup_is_a_warning_and_restored_only_when_accepted() {
    let f = fixture();
    let (last, key) = plain_segments(2).pop().unwrap();
    let planted_count = 4;
    let plant = |a: &Attack| {
        let planted = forge_segment(&a.read(&key), planted_count, "planted", |h| {
            h.start_offset = last.last_offset + 1;
        });
        let planted_key = planted.key();
        a.write(&planted_key, &planted.bytes);
        planted_key
    };
    let is_planted = |r: &Rec| {
        r.key.as_deref().is_some_and(|k| {
            k.starts_with(
                &"planted"
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            )
        })
    };

    let a = Attack::plain("orphan");
    let planted = plant(&a);
    let v = a.validate(&[]);
    assert_eq!(v.code, EXIT_OK, "only a warning:\n{}", v.text);
    assert_eq!(v.report["authentication"]["status"], "not-checked");
    assert_eq!(v.report["authentication"]["signed"], false);
    let found = v.problems("orphan-segment", &planted);
    assert_eq!(found.len(), 1, "{}", problem_lines(&v.report));
    assert_eq!(found[0]["severity"], "warning");
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .contains("--accept-unauthenticated"),
        "{}",
        found[0]
    );
    assert!(v.text.contains("warning orphan-segment") && v.text.contains(&planted));

    let text = a.assert_restore_refused(&[], &[&planted]);
    assert!(text.contains("--accept-unauthenticated"), "{text}");

    // Accepted: restored with the rest.
    let accepted = a.restore(&["--accept-unauthenticated", "--format", "json"]);
    accepted.assert_code(EXIT_OK);
    let report = accepted.json();
    assert!(
        report["warnings"]
            .to_string()
            .contains("unauthenticated segment(s) are restored as told"),
        "{report}"
    );
    let got = a.restored();
    assert_eq!(got.len(), f.records + planted_count as usize);
    assert_eq!(
        got.iter().filter(|r| is_planted(r)).count(),
        planted_count as usize
    );

    // Forced: left out, and said so.
    let b = Attack::plain("orphanforced");
    let planted = plant(&b);
    let forced = b.restore(&["--force", "--format", "json"]);
    forced.assert_code(EXIT_OK);
    let report = forced.json();
    assert!(
        report["problems_ignored"].to_string().contains(&planted),
        "{report}"
    );
    let got = b.restored();
    assert_eq!(got.len(), f.records);
    assert!(!got.iter().any(is_planted));
}

#[test]
fn a_segment_replaced_in_the_clear_with_its_manifest_is_refused_by_a_decrypting_restore() {
    // The downgrade: in an unsigned backup, nothing authenticates the manifests, so an
    // attacker can list a segment of their own. They cannot encrypt under the backup's data
    // key (local provider), so they store it in the clear; a restore that decrypts must not
    // accept data in the clear that nothing authenticates.
    let f = fixture();
    let (victim, key) = plain_segments(0).remove(0);
    let a = Attack::plain("downgrade");
    let bytes = a.read(&key);
    let n = victim.last_offset - victim.start_offset + 1;
    let replacement = forge_segment(&bytes, n, "downgraded", |_| {});
    let new_key = replacement.key();
    // The manifest part that listed it, rewritten in place (no object lock) to list the
    // replacement.
    let runs = f.plain_store.join(PLAIN_ID).join("runs");
    let manifests: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .flat_map(|run| std::fs::read_dir(run.path()).unwrap().flatten())
        .map(|e| relative(&f.plain_store, &e.path()))
        .collect();
    let part = manifests
        .iter()
        .find(|m| {
            read_manifest(&f.plain_store, m)
                .segments
                .iter()
                .any(|s| s.key == key)
        })
        .unwrap()
        .clone();
    let mut m = read_manifest(&f.plain_store, &part);
    for s in &mut m.segments {
        if s.key == key {
            *s = SegmentEntry::from_finished(&replacement, new_key.clone());
        }
    }
    a.remove(&key);
    a.write(&new_key, &replacement.bytes);
    a.remove(&part);
    a.write(&part, &m.to_json().unwrap());

    let v = a.validate(&[]);
    let found = v.problems("in-the-clear", &new_key);
    assert_eq!(found.len(), 1, "{}", problem_lines(&v.report));
    let text = a.assert_segment_refused(&[], &[&new_key]);
    assert!(text.contains("stored in the clear"), "{text}");
    assert!(text.contains("restore.verify_key"), "{text}");
}

/// Runs the binary as a child of a Python process that reports its children's peak resident
/// memory (`ru_maxrss`, KiB): nothing else runs under that process, whatever the tests around
/// do.
fn run_measured(a: &Attack, command: &str, args: &[&str]) -> (Run, u64) {
    let config = a.dir.path().join(format!("{command}-measured.yaml"));
    std::fs::write(&config, a.yaml()).unwrap();
    let rss = a.dir.path().join(format!("{command}-rss"));
    let out = Command::new(get("/venv_python"))
        .arg("-c")
        .arg(
            "import resource, subprocess, sys\n\
             r = subprocess.run(sys.argv[2:])\n\
             open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n\
             sys.exit(r.returncode if r.returncode >= 0 else 1)\n",
        )
        .arg(&rss)
        .arg(binary())
        .args(["--log-format", "json", command, "--config"])
        .arg(&config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let kib = std::fs::read_to_string(&rss)
        .unwrap_or_else(|e| panic!("{command}: no peak memory ({e}):\n{}", run.all()))
        .trim()
        .parse()
        .unwrap();
    (run, kib)
}

/// Puts a sparse file of `len` bytes (hundreds of MB to whoever reads it, nothing on disk)
/// under a manifest part's name of a later run; returns its key.
fn plant_sparse_manifest(a: &Attack, len: u64) -> String {
    let key = format!(
        "{}/runs/20991231T235959Z-00000000/manifest-000000.json",
        a.backup_id
    );
    let path = a.path(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::File::create(&path).unwrap().set_len(len).unwrap();
    key
}

#[test]
fn a_hostile_manifest_of_hundreds_of_megabytes_is_refused_without_being_read() {
    const HOSTILE: u64 = 512 << 20;
    // Well above what validate and restore hold for this backup (about 40 MiB in a debug
    // build), far below the hostile size.
    const LIMIT_KIB: u64 = 100 << 10;

    // Calibration: a manifest under the readers' limit for a manifest part (256 MiB) is read
    // whole when nothing tells a reader not to (no verify key), and the measurement shows it.
    let calibration = Attack::plain("rsscalibration");
    let key = plant_sparse_manifest(&calibration, 160 << 20);
    let (validated, kib) = run_measured(&calibration, "validate", &["--format", "json"]);
    validated.assert_code(EXIT_INTEGRITY);
    let report = validated.json();
    eprintln!(
        "[{}] validate: peak RSS {kib} KiB; {}",
        calibration.name,
        problem_lines(&report)
    );
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "corrupt-manifest" && p["object"] == key.as_str()),
        "{}",
        problem_lines(&report)
    );
    assert!(
        kib > LIMIT_KIB,
        "reading a 160 MiB manifest shows in the peak ({kib} KiB)"
    );

    for (a, kind) in [
        (Attack::new("hostile"), "unauthenticated"),
        (Attack::plain("hostileplain"), "corrupt-manifest"),
    ] {
        let key = plant_sparse_manifest(&a, HOSTILE);
        let (validated, kib) = run_measured(&a, "validate", &["--format", "json"]);
        validated.assert_code(EXIT_INTEGRITY);
        let report = validated.json();
        let problem = report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["object"] == key.as_str())
            .unwrap_or_else(|| panic!("{}", problem_lines(&report)));
        assert_eq!(problem["kind"], kind, "{problem}");
        assert_eq!(problem["severity"], "error");
        eprintln!("[{}] validate: peak RSS {kib} KiB; {problem}", a.name);
        assert!(
            kib < LIMIT_KIB,
            "validate held {kib} KiB with a {HOSTILE}-byte manifest"
        );

        let (restored, kib) = run_measured(&a, "restore", &[]);
        restored.assert_code(EXIT_INTEGRITY);
        let text = error_text(&restored);
        assert!(text.contains(&key), "{text}");
        assert!(text.contains("kafka-backup validate") && text.contains("--force"));
        eprintln!("[{}] restore: peak RSS {kib} KiB", a.name);
        assert!(kib < LIMIT_KIB, "restore held {kib} KiB");
        a.assert_target_untouched();
    }
}

#[test]
fn back_to_back_runs_chain_in_start_order() {
    // Snapshots that find nothing new end in well under a second, so several start within one
    // second: their run ids must still sort in start order, or each run's first part links to
    // a predecessor that sorts after it (a broken chain on an untouched backup) and the next
    // run links past the newest one (a fork that leaves a run out of the chain).
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let yaml = fs_backup_yaml(
        "quick",
        &[&f.topic],
        &store,
        &format!("signing_key: {}", f.signing_key.display()),
    );
    let started = Instant::now();
    for _ in 0..4 {
        run(dir.path(), "backup", &yaml, &[], &[]).assert_code(EXIT_OK);
    }
    let runs: Vec<String> = std::fs::read_dir(store.join("quick/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    eprintln!("4 runs in {:?}: {runs:?}", started.elapsed());
    let restore = format!(
        "mode: restore\nbackup_id: quick\ntarget:\n  bootstrap_servers: [\"{}\"]\nstorage:\n  \
         backend: filesystem\n  path: {}\nrestore:\n  verify_key: {}\n",
        plaintext_broker(),
        store.display(),
        f.verify_key.display()
    );
    let v = run(dir.path(), "validate", &restore, &[], &["--format", "json"]);
    let report = v.json();
    assert_eq!(v.code, EXIT_OK, "{}", problem_lines(&report));
    assert_eq!(report["runs"], 4);
    assert_eq!(report["warnings"], 0, "{}", problem_lines(&report));
}

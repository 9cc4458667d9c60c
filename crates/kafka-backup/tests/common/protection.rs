//! Helpers of the end-to-end tests of encryption, signing and Object Lock
//! (`tests/encryption.rs`): keys made with `kafka-backup keys generate`, configurations with
//! nested `backup:` / `restore:` sections, consumer groups, store scans, and S3 listings read
//! through boto3 rather than through the code under test.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use super::{Rec, Run, committed, fidelity, get, plaintext_broker, python, unique_topic};

/// Runs `kafka-backup <command> --config <yaml written to dir> <args>` with `env` added and
/// every `AWS_*` variable of the test process removed, so that the configuration alone says
/// which credentials are used. Logs are JSON, as in [`super::run`].
pub fn run_clean(
    dir: &Path,
    command: &str,
    yaml: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> Run {
    let path = dir.join(format!("{}.yaml", command.replace(' ', "-")));
    std::fs::write(&path, yaml).unwrap();
    let mut all: Vec<&OsStr> = vec![OsStr::new("--log-format"), OsStr::new("json")];
    all.extend(command.split(' ').map(OsStr::new));
    all.push(OsStr::new("--config"));
    all.push(path.as_os_str());
    all.extend(args.iter().map(OsStr::new));
    let mut cmd = Command::new(super::binary());
    cmd.args(&all).env_remove("RUST_LOG");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A key made with `kafka-backup keys generate`: the private file, the public file (age and
/// signing keys), and what the command printed (recipient, fingerprint or key id).
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    pub private: PathBuf,
    pub public: Option<PathBuf>,
    pub id: String,
}

impl GeneratedKey {
    /// The private file's text.
    pub fn secret_text(&self) -> String {
        std::fs::read_to_string(&self.private).unwrap()
    }
}

/// `kafka-backup keys generate --type kind --out dir/name` (with `extra` arguments, e.g.
/// `--log-level trace`); returns the key and the run, which must have succeeded.
pub fn generate_key_with(
    dir: &Path,
    kind: &str,
    name: &str,
    extra: &[&str],
) -> (GeneratedKey, Run) {
    let out = dir.join(name);
    let fixed = ["keys", "generate", "--type", kind, "--out"];
    let mut args: Vec<&OsStr> = fixed.iter().map(OsStr::new).collect();
    args.push(out.as_os_str());
    args.extend(extra.iter().map(OsStr::new));
    let run = super::run_binary(&args, &[]);
    run.assert_code(super::EXIT_OK);
    let public = dir.join(format!("{name}.pub"));
    let key = GeneratedKey {
        private: out,
        public: public.exists().then_some(public),
        // Text output: the recipient, fingerprint or key id on the first line.
        id: run
            .stdout
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    (key, run)
}

/// [`generate_key_with`] without extra arguments.
pub fn generate_key(dir: &Path, kind: &str, name: &str) -> GeneratedKey {
    generate_key_with(dir, kind, name, &[]).0
}

/// The key id `keys generate --type signing` prints, read back from its JSON report.
pub fn signing_key_id(key: &GeneratedKey) -> String {
    let pem = std::fs::read(&key.private).unwrap();
    backup_format::signing::SigningKey::from_pem(&pem)
        .unwrap()
        .verifying_key()
        .key_id()
}

/// Indents every line of `body` by `n` spaces.
pub fn indent(body: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    body.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}\n")
            }
        })
        .collect()
}

/// `name:` with `body` indented below it (nothing when `body` is empty).
pub fn section(name: &str, body: &str) -> String {
    if body.trim().is_empty() {
        return String::new();
    }
    format!("{name}:\n{}", indent(body, 2))
}

/// The `storage:` section of a filesystem store.
pub fn fs_storage(store: &Path) -> String {
    format!(
        "storage:\n  backend: filesystem\n  path: {}\n",
        store.display()
    )
}

/// Creates a bucket of the calling test's own on the plain moto, named `stem-<unique>`, and
/// returns its name. `kind`: `plain`; `public` (a policy granting everyone GetObject and a
/// public-read ACL); `guarded` (default KMS encryption and all four Block Public Access
/// settings); `versioned` (versioning, no Object Lock); `default-retention` (Object Lock with
/// a one-day GOVERNANCE default retention).
pub fn new_moto_bucket(stem: &str, kind: &str) -> String {
    let bucket = format!(
        "{stem}-{}",
        unique_topic("b").to_lowercase().replace('_', "-")
    );
    let out = python(
        r#"
import sys, json, boto3
endpoint, region, key_id, secret, bucket, kind = sys.argv[1:7]
c = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                 aws_access_key_id=key_id, aws_secret_access_key=secret)
if kind == "default-retention":
    c.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    c.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
else:
    c.create_bucket(Bucket=bucket)
if kind == "versioned":
    c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
elif kind == "public":
    c.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    c.put_bucket_acl(Bucket=bucket, ACL="public-read")
elif kind == "guarded":
    c.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    c.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
print("ok")
"#,
        &[
            &get("/s3/endpoint"),
            &get("/s3/region"),
            &get("/s3/access_key_id"),
            &get("/s3/secret_access_key"),
            &bucket,
            kind,
        ],
    );
    assert_eq!(out.trim(), "ok", "creating a {kind} bucket");
    bucket
}

/// The `storage:` section of the plain moto's `bucket` under `prefix`, its secret key written
/// literally (as a careless user would).
pub fn moto_bucket_storage(bucket: &str, prefix: &str) -> String {
    format!(
        "storage:\n  backend: s3\n  bucket: {bucket}\n  region: {}\n  endpoint: {}\n  \
         force_path_style: true\n  allow_http: true\n  prefix: {prefix}\n  access_key: {}\n  \
         secret_key: {}\n",
        get("/s3/region"),
        get("/s3/endpoint"),
        get("/s3/access_key_id"),
        get("/s3/secret_access_key"),
    )
}

/// The `storage:` section of the plain moto's bucket under `prefix`.
pub fn moto_storage(prefix: &str) -> String {
    moto_bucket_storage(&get("/s3/bucket"), prefix)
}

/// The `storage:` section of the plain moto's Object Lock bucket under `prefix`, with
/// `object_lock` (GOVERNANCE, `retain_days`) when given.
pub fn moto_lock_storage(prefix: &str, retain_days: Option<u32>) -> String {
    let mut s = moto_bucket_storage(&get("/s3/lock_bucket"), prefix);
    if let Some(days) = retain_days {
        s.push_str(&format!(
            "  object_lock:\n    mode: GOVERNANCE\n    retain_days: {days}\n"
        ));
    }
    s
}

/// A backup configuration of `topics` on the PLAINTEXT broker; `backup` is the body of the
/// `backup:` section (nested keys keep their indentation).
pub fn backup_yaml(backup_id: &str, topics: &[&str], storage: &str, backup: &str) -> String {
    let include: Vec<String> = topics.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "mode: backup\nbackup_id: {backup_id}\nsource:\n  bootstrap_servers: [\"{}\"]\n  topics:\n    \
         include: [{}]\n{storage}{}",
        plaintext_broker(),
        include.join(", "),
        section("backup", backup)
    )
}

/// A restore configuration into the PLAINTEXT broker; `restore` is the body of the
/// `restore:` section.
pub fn restore_yaml(backup_id: &str, storage: &str, restore: &str) -> String {
    format!(
        "mode: restore\nbackup_id: {backup_id}\ntarget:\n  bootstrap_servers: [\"{}\"]\n{storage}{}",
        plaintext_broker(),
        section("restore", restore)
    )
}

/// `backup.encryption` with a local key file, and the signing key when given.
pub fn local_encryption(key: &GeneratedKey, signing: Option<&GeneratedKey>) -> String {
    format!(
        "encryption:\n  key_provider: local\n  key_file: {}\n{}",
        key.private.display(),
        signing_line(signing)
    )
}

/// `backup.encryption` to age recipients, and the signing key when given.
pub fn age_encryption(recipients: &[&GeneratedKey], signing: Option<&GeneratedKey>) -> String {
    let list: Vec<String> = recipients.iter().map(|r| format!("\"{}\"", r.id)).collect();
    format!(
        "encryption:\n  key_provider: public-key\n  recipients: [{}]\n{}",
        list.join(", "),
        signing_line(signing)
    )
}

/// The KMS settings of the plain moto (its endpoint, region and static credentials), without
/// `key_provider` and `kms_key_id`.
pub fn moto_kms_settings() -> String {
    format!(
        "region: {}\nendpoint: {}\nallow_http: true\naccess_key_id: {}\nsecret_access_key: {}\n",
        get("/kms/region"),
        get("/kms/endpoint"),
        get("/kms/access_key_id"),
        get("/kms/secret_access_key"),
    )
}

/// `backup.encryption` with the plain moto's KMS key `key_id`, and the signing key.
pub fn kms_encryption(key_id: &str, signing: Option<&GeneratedKey>) -> String {
    format!(
        "encryption:\n  key_provider: aws-kms\n  kms_key_id: \"{key_id}\"\n{}{}",
        indent(&moto_kms_settings(), 2),
        signing_line(signing)
    )
}

fn signing_line(signing: Option<&GeneratedKey>) -> String {
    signing
        .map(|s| format!("signing_key: {}\n", s.private.display()))
        .unwrap_or_default()
}

/// `restore.encryption` (one block) with local key files.
pub fn local_ring(keys: &[&GeneratedKey]) -> String {
    let files: Vec<String> = keys
        .iter()
        .map(|k| k.private.display().to_string())
        .collect();
    format!(
        "encryption:\n  key_provider: local\n  key_files: [{}]\n",
        files.join(", ")
    )
}

/// `restore.encryption` (one block) with age identity files.
pub fn age_ring(identities: &[&GeneratedKey]) -> String {
    let files: Vec<String> = identities
        .iter()
        .map(|k| k.private.display().to_string())
        .collect();
    format!(
        "encryption:\n  key_provider: public-key\n  identity_files: [{}]\n",
        files.join(", ")
    )
}

/// `restore.encryption` (one block) with the plain moto's KMS, restricted to `key_id`.
pub fn kms_ring(key_id: Option<&str>) -> String {
    let restrict = key_id
        .map(|k| format!("  kms_key_id: \"{k}\"\n"))
        .unwrap_or_default();
    format!(
        "encryption:\n  key_provider: aws-kms\n{restrict}{}",
        indent(&moto_kms_settings(), 2)
    )
}

/// `restore.verify_key` with the public half of `signing`.
pub fn verify_line(signing: &GeneratedKey) -> String {
    format!(
        "verify_key: {}\n",
        signing.public.as_ref().unwrap().display()
    )
}

/// Commits `offsets` for `group` on `topic` in the PLAINTEXT broker, with `metadata` on each.
pub fn commit_group(topic: &str, group: &str, offsets: &[(i32, i64)], metadata: &str) {
    let list: Vec<String> = offsets
        .iter()
        .map(|(p, o)| format!("TopicPartition(sys.argv[2], {p}, {o}, metadata=sys.argv[4])"))
        .collect();
    python(
        &format!(
            "import sys\nfrom confluent_kafka import Consumer, TopicPartition\n\
             c = Consumer({{'bootstrap.servers': sys.argv[1], 'group.id': sys.argv[3], 'enable.auto.commit': False}})\n\
             c.commit(offsets=[{}], asynchronous=False)\n\
             c.close()\n",
            list.join(", ")
        ),
        &[&plaintext_broker(), topic, group, metadata],
    );
}

/// The first record a consumer of `group` gets from each partition of `topic`, starting at
/// the group's committed offsets: `{partition: {key (hex), offset}}`.
pub fn first_records_of_group(topic: &str, group: &str, partitions: &[i32]) -> Value {
    let out = python(
        "import sys, json, time\nfrom confluent_kafka import Consumer, TopicPartition\n\
         topic, group = sys.argv[2], sys.argv[3]\n\
         parts = [int(p) for p in sys.argv[4].split(',')]\n\
         c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': group, 'enable.auto.commit': False,\n\
                       'auto.offset.reset': 'error', 'isolation.level': 'read_committed'})\n\
         c.assign([TopicPartition(topic, p) for p in parts])\n\
         got = {}\n\
         deadline = time.time() + 30\n\
         while len(got) < len(parts) and time.time() < deadline:\n\
         \x20   m = c.poll(1.0)\n\
         \x20   if m is None: continue\n\
         \x20   if m.error(): raise SystemExit(str(m.error()))\n\
         \x20   if str(m.partition()) not in got:\n\
         \x20       got[str(m.partition())] = {'key': m.key().hex() if m.key() is not None else None, 'offset': m.offset()}\n\
         c.close()\n\
         print(json.dumps(got))\n",
        &[
            &plaintext_broker(),
            topic,
            group,
            &partitions
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ],
    );
    serde_json::from_str(out.trim()).unwrap()
}

/// The committed offsets of `group` on `topic` in the PLAINTEXT broker: `{partition: offset}`.
pub fn committed_offsets(topic: &str, group: &str, partitions: &[i32]) -> Value {
    let out = python(
        "import sys, json\nfrom confluent_kafka import Consumer, TopicPartition\n\
         parts = [int(p) for p in sys.argv[4].split(',')]\n\
         c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': sys.argv[3], 'enable.auto.commit': False})\n\
         got = c.committed([TopicPartition(sys.argv[2], p) for p in parts], timeout=10)\n\
         c.close()\n\
         print(json.dumps({str(tp.partition): tp.offset for tp in got}))\n",
        &[
            &plaintext_broker(),
            topic,
            group,
            &partitions
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ],
    );
    serde_json::from_str(out.trim()).unwrap()
}

/// Produces `n` more plain records into each of `partitions` partitions of an existing topic
/// (keys `{prefix}-{p}-{i}`), and reports them as `fidelity.py produce` does.
pub fn produce_more(topic: &str, partitions: i32, n: usize, prefix: &str) -> Value {
    let out = python(
        "import sys, json\nfrom confluent_kafka import Producer\n\
         out = []\n\
         def report(err, msg):\n\
         \x20   if err: raise SystemExit(str(err))\n\
         \x20   out.append({'p': msg.partition(), 'o': msg.offset(), 'k': msg.key().hex(), 'v': msg.value().hex(),\n\
         \x20               'h': [['run', '32']], 'ts': msg.timestamp()[1], 'tst': msg.timestamp()[0], 'txn': 'none'})\n\
         p = Producer({'bootstrap.servers': sys.argv[1], 'compression.type': 'zstd', 'linger.ms': 50})\n\
         for part in range(int(sys.argv[3])):\n\
         \x20   for i in range(int(sys.argv[4])):\n\
         \x20       p.produce(sys.argv[2], key=f'{sys.argv[5]}-{part}-{i}'.encode(), value=f'second run {i}'.encode(),\n\
         \x20                 headers=[('run', b'2')], partition=part, on_delivery=report)\n\
         p.flush()\n\
         print(json.dumps(out))\n",
        &[
            &plaintext_broker(),
            topic,
            &partitions.to_string(),
            &n.to_string(),
            prefix,
        ],
    );
    serde_json::from_str(out.trim()).unwrap()
}

/// What a read_committed confluent-kafka consumer sees in `topic`, without offsets (they
/// differ in the target wherever the source had markers or aborted records).
pub fn consumed_without_offsets(topic: &str) -> Vec<Rec> {
    let consumed = fidelity(&["consume", &plaintext_broker(), topic]);
    without_offsets(committed(&consumed))
}

/// `records` (sorted by partition and offset) with every offset set to 0: the order within
/// each partition is kept, so comparing two such lists compares that order too.
pub fn without_offsets(mut records: Vec<Rec>) -> Vec<Rec> {
    for r in &mut records {
        r.offset = 0;
    }
    records
}

/// The offset of the record with key `key` (text) in partition `p` of what the producer
/// reported.
pub fn offset_of(produced: &Value, p: i64, key: &str) -> i64 {
    produced
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["p"] == p && r["k"] == hex(key.as_bytes()).as_str())
        .unwrap_or_else(|| panic!("{key} in partition {p}"))["o"]
        .as_i64()
        .unwrap()
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every file under `root`, as (path relative to `root`, content).
pub fn store_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The forms in which secret bytes could leak into text: lower- and upper-case hex, standard
/// and URL-safe base64 with and without padding.
pub fn encodings(bytes: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let h = hex(bytes);
    let mut out = vec![
        h.to_uppercase(),
        h,
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
    ];
    out.sort();
    out.dedup();
    out
}

/// Standard base64 decoding (for PEM bodies and key file lines).
pub fn base64_decode(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
}

/// The body lines of a PEM file (between its BEGIN and END lines).
pub fn pem_body(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The key line of a local key file (the one line that is not a comment).
pub fn local_key_line(key: &GeneratedKey) -> String {
    key.secret_text()
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap()
        .trim()
        .to_owned()
}

/// Every object version under `prefix` in `bucket` of the plain moto, through boto3:
/// `[(key, version_id)]`.
pub fn s3_versions(bucket: &str, prefix: &str) -> Vec<(String, String)> {
    let out = python(
        r#"
import sys, json, boto3
endpoint, region, key_id, secret, bucket, prefix = sys.argv[1:7]
c = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                 aws_access_key_id=key_id, aws_secret_access_key=secret)
out = []
for page in c.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
    for v in page.get("Versions", []):
        out.append([v["Key"], v["VersionId"]])
    if page.get("DeleteMarkers"):
        raise SystemExit("unexpected delete markers")
print(json.dumps(out))
"#,
        &[
            &get("/s3/endpoint"),
            &get("/s3/region"),
            &get("/s3/access_key_id"),
            &get("/s3/secret_access_key"),
            bucket,
            prefix,
        ],
    );
    let v: Vec<(String, String)> = serde_json::from_str(out.trim()).unwrap();
    v
}

/// KMS Decrypt of `blob` with the encryption context of (`backup_id`, `run_id`) at the
/// endpoint, with the given credentials, through boto3: `Ok(plaintext length)` or
/// `Err("CODE (HTTP STATUS)")`.
pub fn boto3_kms_decrypt(
    endpoint: &str,
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
    blob: &[u8],
    backup_id: &str,
    run_id: &str,
) -> Result<usize, String> {
    let out = python(
        r#"
import sys, base64, boto3
from botocore.exceptions import ClientError
endpoint, region, key_id, secret, blob, backup_id, run_id = sys.argv[1:8]
c = boto3.client("kms", endpoint_url=endpoint, region_name=region,
                 aws_access_key_id=key_id, aws_secret_access_key=secret)
try:
    r = c.decrypt(CiphertextBlob=base64.b64decode(blob),
                  EncryptionContext={"kafka-backup:backup-id": backup_id, "kafka-backup:run-id": run_id})
    print("ok", len(r["Plaintext"]))
except ClientError as e:
    print("error", e.response.get("Error", {}).get("Code", "?"),
          e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
"#,
        &[
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            &base64::engine::general_purpose::STANDARD.encode(blob),
            backup_id,
            run_id,
        ],
    );
    let words: Vec<&str> = out.split_whitespace().collect();
    match words[..] {
        ["ok", n] => Ok(n.parse().unwrap()),
        ["error", code, status] => Err(format!("{code} (HTTP {status})")),
        _ => panic!("unexpected answer from the KMS helper: {out}"),
    }
}

/// Reads the clear header of an encrypted segment object.
pub fn segment_header(bytes: &[u8]) -> backup_format::SegmentHeader {
    backup_format::segment::peek_header(bytes).unwrap()
}

/// The run data key of an encrypted segment, unwrapped with the key ring of the restore
/// configuration `yaml` (through the library, as the tool does): its 32 bytes.
pub fn unwrap_run_key(yaml: &str, segment: &[u8]) -> Vec<u8> {
    let loaded = backup_core::config::parse(yaml, "restore.yaml", &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let header = segment_header(segment);
    let encryption = header.encryption.expect("an encrypted segment");
    let ring = loaded.key_ring();
    let ctx = backup_core::keys::KeyContext::new(header.backup_id.clone(), header.run_id.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = runtime
        .block_on(ring.unwrap(&encryption.key, &ctx))
        .unwrap_or_else(|e| panic!("cannot unwrap the run key: {e}"));
    key.expose_bytes().to_vec()
}

/// Every age secret key (`AGE-SECRET-KEY-1…`) in an identity file.
pub fn age_secret_keys(key: &GeneratedKey) -> Vec<String> {
    key.secret_text()
        .lines()
        .filter(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .map(str::to_owned)
        .collect()
}

//! Access to the real test services started by `scripts/test-env.sh start`: the env file's
//! values, unique names, and the test venv's Python (which has `confluent-kafka`).
//!
//! Tests fail (they do not skip) when the environment is missing: a test that silently passes
//! without its server proves nothing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The parsed env file written by `scripts/test-env.sh start`.
pub fn env() -> &'static Value {
    static ENV: OnceLock<Value> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = std::env::var_os("KB_TEST_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.test-env/env.json")
            });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read the test environment file {}: {e}. Start the test services with \
                 `scripts/test-env.sh start` (or run everything with `scripts/test.sh`).",
                path.display()
            )
        });
        serde_json::from_str(&text).expect("env.json is valid JSON")
    })
}

/// A string at a JSON pointer in the env file (e.g. `/brokers/plaintext`).
pub fn get(pointer: &str) -> String {
    env()
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("env.json has no string at {pointer}"))
        .to_owned()
}

/// Address of the PLAINTEXT broker.
pub fn plaintext_broker() -> String {
    get("/brokers/plaintext")
}

/// The plain moto's bucket created with S3 Object Lock enabled (`kb-lock`).
pub fn s3_lock_bucket() -> String {
    get("/s3/lock_bucket")
}

/// The IAM-enforcing moto's Object Lock bucket (its requests' signatures are checked).
pub fn s3_iam_lock_bucket() -> String {
    get("/s3_iam/lock_bucket")
}

/// How an S3 object version is locked, as HeadObject reports it (read through boto3, not
/// through the code under test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Retention {
    /// `GOVERNANCE` or `COMPLIANCE`; `None` when the version has no retention.
    pub mode: Option<String>,
    /// The retain-until date, as seconds since the Unix epoch.
    pub retain_until_unix: Option<i64>,
    /// The version HeadObject answered for.
    pub version_id: Option<String>,
}

/// Where and as whom to reach an S3 endpoint from the Python helpers.
#[derive(Debug, Clone)]
pub struct S3Access {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The signing region.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl S3Access {
    /// The plain moto, with the credentials env.json names.
    pub fn plain() -> Self {
        Self {
            endpoint: get("/s3/endpoint"),
            region: get("/s3/region"),
            access_key_id: get("/s3/access_key_id"),
            secret_access_key: get("/s3/secret_access_key"),
        }
    }

    fn args<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            self.endpoint.as_str(),
            self.region.as_str(),
            self.access_key_id.as_str(),
            self.secret_access_key.as_str(),
        ];
        args.extend_from_slice(rest);
        args
    }

    /// HeadObject's lock headers for `bucket`/`key` (the whole key, prefix included).
    pub fn retention(&self, bucket: &str, key: &str) -> S3Retention {
        const SCRIPT: &str = r#"
import sys, json, boto3
endpoint, region, key_id, secret, bucket, key = sys.argv[1:7]
c = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                 aws_access_key_id=key_id, aws_secret_access_key=secret)
h = c.head_object(Bucket=bucket, Key=key)
until = h.get("ObjectLockRetainUntilDate")
print(json.dumps({"mode": h.get("ObjectLockMode"), "version_id": h.get("VersionId"),
                  "until": int(until.timestamp()) if until else None}))
"#;
        let out = python(SCRIPT, &self.args(&[bucket, key]));
        let v: Value = serde_json::from_str(out.trim()).expect("JSON from the HeadObject helper");
        S3Retention {
            mode: v["mode"].as_str().map(str::to_owned),
            retain_until_unix: v["until"].as_i64(),
            version_id: v["version_id"].as_str().map(str::to_owned),
        }
    }

    /// Tries to delete one version of `bucket`/`key` (no governance bypass); `Ok(())` when it
    /// was deleted, `Err(code)` with the service's error code when it was refused.
    pub fn delete_version(&self, bucket: &str, key: &str, version_id: &str) -> Result<(), String> {
        const SCRIPT: &str = r#"
import sys, boto3
from botocore.exceptions import ClientError
endpoint, region, key_id, secret, bucket, key, version = sys.argv[1:8]
c = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                 aws_access_key_id=key_id, aws_secret_access_key=secret)
try:
    c.delete_object(Bucket=bucket, Key=key, VersionId=version)
    print("deleted")
except ClientError as e:
    print(e.response.get("Error", {}).get("Code", "?"))
"#;
        match python(SCRIPT, &self.args(&[bucket, key, version_id])).trim() {
            "deleted" => Ok(()),
            code => Err(code.to_owned()),
        }
    }
}

/// A topic name unique to this test run, so tests never see each other's data.
pub fn unique_topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a Python script with the test venv's interpreter (which has `confluent-kafka`),
/// passing `args`, and returns its standard output. Fails the test with the script's stderr
/// if it exits non-zero.
pub fn python(script: &str, args: &[&str]) -> String {
    let interpreter = get("/venv_python");
    let out = std::process::Command::new(&interpreter)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {interpreter}: {e}"));
    assert!(
        out.status.success(),
        "python failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A nisshi broker owned by one test, so the test can kill and restart it without disturbing
/// others. It keeps its data (sqlite) across restarts.
pub struct OwnBroker {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl OwnBroker {
    /// Starts a broker on a free port.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut b = Self {
            dir,
            port,
            child: None,
        };
        b.spawn();
        b
    }

    /// (Re)starts the broker process on the same port and data.
    pub fn spawn(&mut self) {
        let child = Command::new(get("/nisshi/bin"))
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--advertised-listener-url",
                &format!("tcp://localhost:{}", self.port),
                "--storage-engine",
                "sqlite://db/kafka.db",
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "broker did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker process (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fault-injecting HTTP proxy (`scripts/fault-proxy.py`) in front of the plain moto, owned
/// by one test: S3 requests sent to [`FaultProxy::endpoint`] reach moto unchanged, except
/// every `every`th PUT (and, for the modes that name it, GET) is faulted as `mode` says.
/// Stopped (by its PID) when dropped.
pub struct FaultProxy {
    child: Child,
    port: u16,
}

impl FaultProxy {
    /// Starts the proxy in `mode` (`error-before`, `error-after`, `reset`, `reset-after`,
    /// `slow`, `none`), faulting every `every`th request of a faulted method; `slow` holds its
    /// answers for `delay`.
    pub fn start(mode: &str, every: u32, delay: Duration) -> Self {
        Self::start_to(&get("/s3/endpoint"), mode, every, delay)
    }

    /// [`FaultProxy::start`] in front of another plain-HTTP S3 endpoint (the IAM-enforcing
    /// moto: requests are forwarded with their Host header, so signatures still verify).
    pub fn start_to(endpoint: &str, mode: &str, every: u32, delay: Duration) -> Self {
        use std::io::BufRead;
        // KB_FAULT_PROXY_VERBOSE=1 shows every request the proxy sees, for debugging a test.
        let verbose = std::env::var_os("KB_FAULT_PROXY_VERBOSE").is_some();
        let upstream = endpoint
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the test moto is not plain HTTP: {endpoint}"));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fault-proxy.py");
        let mut child = Command::new(get("/venv_python"))
            .arg(&script)
            .args(["--upstream", upstream, "--mode", mode])
            .args(["--every", &every.to_string()])
            .args(["--delay", &delay.as_secs_f64().to_string()])
            .args(verbose.then_some("--verbose"))
            .stdout(Stdio::piped())
            .stderr(if verbose {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        // The proxy prints its port once it listens: the readiness probe.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the fault proxy did not start: {line:?}")
            });
        Self { child, port }
    }

    /// `http://127.0.0.1:PORT`, to use as the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the proxy has done: `{"requests": {"PUT": n, ...}, "faults": {"PUT": n, ...}}`.
    pub fn stats(&self) -> Value {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .write_all(
                b"GET /__fault-proxy__/stats HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("bad stats ({e}): {answer}"))
    }

    /// Faults injected so far into requests of `method`.
    pub fn faults(&self, method: &str) -> u64 {
        self.stats()["faults"][method].as_u64().unwrap_or(0)
    }

    /// Response body bytes forwarded from moto for requests of `method` (as framed on the
    /// wire: exact for the Content-Length bodies S3 sends).
    pub fn response_bytes(&self, method: &str) -> u64 {
        self.stats()["response_bytes"][method].as_u64().unwrap_or(0)
    }

    /// Requests of `method` seen so far (faulted or not).
    pub fn requests(&self, method: &str) -> u64 {
        self.stats()["requests"][method].as_u64().unwrap_or(0)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

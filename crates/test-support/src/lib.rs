//! Access to the real test services started by `scripts/test-env.sh start`: the env file's
//! values, unique names, and the test venv's Python (which has `confluent-kafka`).
//!
//! Tests fail (they do not skip) when the environment is missing: a test that silently passes
//! without its server proves nothing.

use std::path::PathBuf;
use std::sync::OnceLock;

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

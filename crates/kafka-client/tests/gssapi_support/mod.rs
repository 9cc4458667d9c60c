//! A real MIT KDC (scripts/kdc.py) and the broker's side of SASL GSSAPI
//! (scripts/gssapi_acceptor.py) for the GSSAPI tests.
//!
//! One realm per test binary: MIT reads one krb5.conf per process, so every test in a binary
//! shares the realm, and the KDC stops when the binary exits (kdc.py watches the pipe we
//! hold open). The tests skip, saying so, only when the MIT tools are not installed.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use kafka_client::BrokerAddress;
use kafka_client::sasl::{Gssapi, GssapiConfig, SaslExchange, SaslStep};
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The realm kdc.py made, with its KDC running.
pub struct Realm {
    pub info: Value,
    _dir: tempfile::TempDir,
    // Held open: kdc.py stops the KDC when this pipe closes, i.e. when the process exits.
    _supervisor: Mutex<(Child, ChildStdin)>,
}

impl Realm {
    /// A path or name from kdc.py's JSON.
    pub fn get(&self, key: &str) -> String {
        self.info[key]
            .as_str()
            .unwrap_or_else(|| panic!("kdc.py printed no {key}"))
            .to_owned()
    }

    pub fn path(&self, key: &str) -> PathBuf {
        PathBuf::from(self.get(key))
    }

    /// A configuration for the client principal's keytab.
    pub fn config(&self) -> GssapiConfig {
        GssapiConfig {
            service_name: "kafka".to_owned(),
            keytab_path: self.path("client_keytab"),
            principal: None,
            krb5_config_path: Some(self.path("krb5_config")),
        }
    }
}

/// The shared realm, or `None` (after printing why) when the MIT tools are missing.
pub fn realm() -> Option<&'static Realm> {
    static REALM: OnceLock<Option<Realm>> = OnceLock::new();
    REALM.get_or_init(start_realm).as_ref()
}

fn start_realm() -> Option<Realm> {
    let dir = tempfile::tempdir().expect("temp dir");
    let realm_dir = dir.path().join("realm");
    let mut child = Command::new("python3")
        .arg(repo_root().join("scripts/kdc.py"))
        .args(["start", "--watch-stdin", "--dir"])
        .arg(&realm_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 scripts/kdc.py");
    let stdin = child.stdin.take().expect("stdin");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read kdc.py output");
    if line.trim().is_empty() {
        let out = child.wait_with_output().expect("kdc.py exit");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(3) {
            eprintln!(
                "SKIPPED: the GSSAPI tests need a real KDC and the MIT Kerberos tools are not \
                 installed: {}",
                stderr.trim()
            );
            return None;
        }
        panic!("kdc.py failed ({}): {stderr}", out.status);
    }
    let info: Value = serde_json::from_str(&line).expect("kdc.py prints JSON");
    let realm = Realm {
        info,
        _dir: dir,
        _supervisor: Mutex::new((child, stdin)),
    };
    // First in the process, before any Kerberos call: the one krb5.conf of this process.
    kafka_client::sasl::gssapi::set_krb5_config(&realm.path("krb5_config"))
        .expect("set the realm's krb5.conf");
    Some(realm)
}

/// Returns the realm, or returns from the calling test (it has printed why it skips).
#[macro_export]
macro_rules! realm_or_skip {
    () => {
        match gssapi_support::realm() {
            Some(realm) => realm,
            None => return,
        }
    };
}

/// The Python interpreter with the `gssapi` package: `KB_GSSAPI_PYTHON`, else the test venv's,
/// else `python3`.
fn python() -> String {
    if let Some(python) = std::env::var_os("KB_GSSAPI_PYTHON") {
        return python.to_string_lossy().into_owned();
    }
    let venv = repo_root().join(".test-env/venv/bin/python");
    if venv.exists() {
        return venv.to_string_lossy().into_owned();
    }
    "python3".to_owned()
}

/// scripts/gssapi_acceptor.py in a subprocess: one broker-side exchange.
pub struct Acceptor {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// What the acceptor answered to one client message.
#[derive(Debug)]
pub struct AcceptorStep {
    pub response: Vec<u8>,
    pub done: bool,
    pub principal: Option<String>,
}

impl Acceptor {
    /// An acceptor for `kafka/localhost` with the realm's service keytab.
    pub fn start(realm: &Realm) -> Self {
        Self::with_keytab(realm, &realm.path("service_keytab"))
    }

    pub fn with_keytab(realm: &Realm, keytab: &Path) -> Self {
        let python = python();
        let mut child = Command::new(&python)
            .arg(repo_root().join("scripts/gssapi_acceptor.py"))
            .arg("--keytab")
            .arg(keytab)
            .args(["--service", "kafka", "--host", "localhost"])
            .env("KRB5_CONFIG", realm.path("krb5_config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Passes one client message; `Err` is the acceptor's refusal.
    pub fn step(&mut self, token: &[u8]) -> Result<AcceptorStep, String> {
        let request = serde_json::json!({ "token": hex(token) });
        writeln!(self.stdin, "{request}").expect("write to the acceptor");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the acceptor");
        assert!(
            !line.is_empty(),
            "the acceptor exited; it needs the PyPI package `gssapi` (pip install gssapi; set \
             KB_GSSAPI_PYTHON to an interpreter that has it)"
        );
        let reply: Value = serde_json::from_str(&line).expect("acceptor JSON");
        if let Some(error) = reply["error"].as_str() {
            return Err(error.to_owned());
        }
        Ok(AcceptorStep {
            response: unhex(reply["response"].as_str().expect("response")),
            done: reply["done"].as_bool().expect("done"),
            principal: reply["principal"].as_str().map(str::to_owned),
        })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why an authentication did not finish.
#[derive(Debug)]
pub enum Failure {
    /// Our side refused (the error's text).
    Client(kafka_client::sasl::SaslError),
    /// The acceptor refused.
    Broker(String),
}

/// Runs a whole exchange of `mechanism` with `host` against `acceptor`, as the connection's
/// SaslAuthenticate loop does; returns the principal the acceptor authenticated.
pub fn authenticate(
    mechanism: &Gssapi,
    host: &str,
    acceptor: &mut Acceptor,
) -> Result<String, Failure> {
    authenticate_with(mechanism, host, acceptor, |_, reply| reply)
}

/// Like [`authenticate`], with `tamper` applied to each acceptor reply (round, bytes).
pub fn authenticate_with(
    mechanism: &Gssapi,
    host: &str,
    acceptor: &mut Acceptor,
    mut tamper: impl FnMut(usize, Vec<u8>) -> Vec<u8>,
) -> Result<String, Failure> {
    let mut exchange = mechanism
        .exchange(&BrokerAddress::new(host, 9092))
        .map_err(Failure::Client)?;
    let mut message = match exchange.step(None).map_err(Failure::Client)? {
        SaslStep::Respond(bytes) => bytes,
        SaslStep::Done => panic!("GSSAPI finished before sending anything"),
    };
    for round in 0..8 {
        let reply = acceptor.step(&message).map_err(Failure::Broker)?;
        let response = tamper(round, reply.response);
        match exchange.step(Some(&response)).map_err(Failure::Client)? {
            SaslStep::Respond(bytes) => {
                assert!(
                    !reply.done,
                    "the client went on after the acceptor finished"
                );
                message = bytes;
            }
            SaslStep::Done => {
                assert!(reply.done, "the client finished before the acceptor");
                return Ok(reply.principal.expect("a principal when done"));
            }
        }
    }
    panic!("the exchange did not finish in 8 rounds");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

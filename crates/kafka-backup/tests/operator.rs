//! `kafka-backup operator`: the CRDs it prints, and what it says when it cannot start (no
//! cluster configured, an API server that does not answer, CRDs not installed, no image).
//!
//! The reconciler's own requests are tested in the operator crate against kube's mock service;
//! here the binary runs against a kubeconfig of a tiny HTTP server on loopback that answers as
//! an API server would: without the CRDs, or with them and nothing in them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EXIT_FAILURE: i32 = 1;
const EXIT_USAGE: i32 = 2;

/// Runs the binary with no trace of a cluster in its environment but `kubeconfig`.
fn operator(args: &[&str], kubeconfig: &Path, home: &Path) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("KAFKA_BACKUP_IMAGE")
        .env_remove("RUST_LOG")
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
    )
}

fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters:\n- name: test\n  cluster:\n    server: {server}\n\
             users:\n- name: test\n  user:\n    token: not-a-real-token\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: kafka\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn crds_prints_the_committed_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        operator(&["operator", "crds"], &dir.path().join("none"), dir.path());
    assert_eq!(code, 0, "{stderr}");
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    let expected: String = ["kafkabackups.yaml", "kafkarestores.yaml"]
        .iter()
        .map(|file| format!("---\n{}", std::fs::read_to_string(crds.join(file)).unwrap()))
        .collect();
    assert_eq!(stdout, expected);
}

#[test]
fn without_an_image_the_operator_says_how_to_give_one() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = operator(&["operator"], &dir.path().join("none"), dir.path());
    assert_eq!(code, EXIT_USAGE, "{stderr}");
    assert!(stderr.contains("--image"), "{stderr}");
    assert!(stderr.contains("KAFKA_BACKUP_IMAGE"), "{stderr}");
}

#[test]
fn without_a_cluster_the_operator_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = operator(
        &["operator", "--image", "kafka-backup:test"],
        &dir.path().join("no-such-kubeconfig"),
        dir.path(),
    );
    assert_eq!(code, EXIT_FAILURE, "{stderr}");
    assert!(
        stderr.contains("no Kubernetes cluster is configured"),
        "{stderr}"
    );
    assert!(stderr.contains("KUBECONFIG"), "{stderr}");
}

#[test]
fn an_api_server_that_does_not_answer_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = kubeconfig(dir.path(), &format!("http://127.0.0.1:{port}"));
    let (code, _, stderr) = operator(
        &["operator", "--image", "kafka-backup:test"],
        &config,
        dir.path(),
    );
    assert_eq!(code, EXIT_FAILURE, "{stderr}");
    assert!(stderr.contains("cannot be reached"), "{stderr}");
    assert!(stderr.contains("kubectl version"), "{stderr}");
}

/// Answers `/version`, and 404 for everything else (no CRDs), recording the paths asked.
fn api_server_without_crds() -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let serving = std::thread::spawn(move || {
        let mut asked = Vec::new();
        for stream in listener.incoming().take(2) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
            }
            let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
            let (status, body) = if target == "/version" {
                (
                    "200 OK",
                    r#"{"major":"1","minor":"33","gitVersion":"v1.33.0","gitCommit":"","gitTreeState":"","buildDate":"","goVersion":"","compiler":"","platform":"linux/amd64"}"#,
                )
            } else {
                (
                    "404 Not Found",
                    r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404}"#,
                )
            };
            asked.push(target);
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
        asked
    });
    (url, serving)
}

#[test]
fn missing_crds_are_named_with_the_command_that_installs_them() {
    let dir = tempfile::tempdir().unwrap();
    let (url, serving) = api_server_without_crds();
    let config = kubeconfig(dir.path(), &url);
    let (code, _, stderr) = operator(
        &["operator", "--image", "kafka-backup:test"],
        &config,
        dir.path(),
    );
    assert_eq!(code, EXIT_FAILURE, "{stderr}");
    assert!(stderr.contains("KafkaBackup"), "{stderr}");
    assert!(
        stderr.contains("kafka-backup operator crds | kubectl apply -f -"),
        "{stderr}"
    );
    let asked = serving.join().unwrap();
    assert_eq!(asked[0], "/version");
    // The context's namespace is the one watched by default.
    assert!(
        asked[1].starts_with("/apis/kafka.oso.sh/v1alpha1/namespaces/kafka/kafkabackups?"),
        "{asked:?}"
    );
}

/// An API server with the CRDs and nothing in them: lists are empty, watches stay open
/// without events. Records the request targets.
fn empty_api_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked = Arc::new(Mutex::new(Vec::new()));
    let record = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    return;
                }
                loop {
                    let mut header = String::new();
                    match reader.read_line(&mut header) {
                        Ok(n) if n > 0 && !header.trim().is_empty() => {}
                        _ => break,
                    }
                }
                let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
                record.lock().unwrap().push(target.clone());
                if target.contains("watch=true") {
                    // Open, no events, until the operator hangs up.
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Transfer-Encoding: chunked\r\n\r\n"
                    );
                    let _ = stream.flush();
                    let mut rest = Vec::new();
                    let _ = std::io::Read::read_to_end(&mut reader, &mut rest);
                    return;
                }
                let body = if target == "/version" {
                    r#"{"major":"1","minor":"33","gitVersion":"v1.33.0","gitCommit":"","gitTreeState":"","buildDate":"","goVersion":"","compiler":"","platform":"linux/amd64"}"#
                } else {
                    r#"{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":"1"},"items":[]}"#
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (url, asked)
}

fn get_metrics(addr: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).ok()?;
    Some(answer)
}

#[test]
fn the_operator_watches_its_namespace_serves_metrics_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (url, asked) = empty_api_server();
    let config = kubeconfig(dir.path(), &url);
    let metrics_addr = {
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().to_string()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-backup"))
        .args(["--metrics-addr", &metrics_addr, "operator"])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("KAFKA_BACKUP_IMAGE", "kafka-backup:test")
        .env("KUBECONFIG", &config)
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Every watch of both controllers starts, in the context's namespace, the objects the
    // operator applies selected by its managed-by label.
    let expected = [
        "/apis/kafka.oso.sh/v1alpha1/namespaces/kafka/kafkabackups?",
        "/apis/kafka.oso.sh/v1alpha1/namespaces/kafka/kafkarestores?",
        "/api/v1/namespaces/kafka/configmaps?",
        "/apis/batch/v1/namespaces/kafka/cronjobs?",
        "/apis/batch/v1/namespaces/kafka/jobs?",
        "/api/v1/namespaces/kafka/pods?",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let watching = |prefix: &str| {
        asked
            .lock()
            .unwrap()
            .iter()
            .any(|t| t.starts_with(prefix) && t.contains("watch=true"))
    };
    while !expected.iter().all(|prefix| watching(prefix)) {
        assert!(
            Instant::now() < deadline,
            "not all watches started: {:?}",
            asked.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for target in asked.lock().unwrap().iter() {
        if target.contains("/configmaps?")
            || target.contains("/cronjobs?")
            || target.contains("/jobs?")
            || target.contains("/pods?")
        {
            assert!(
                target.contains(
                    "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dkafka-backup-operator"
                ),
                "{target}"
            );
        }
    }

    let metrics = get_metrics(&metrics_addr).expect("the metrics endpoint answers");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");

    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the operator did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

//! Prometheus metrics: a real Prometheus (Debian's) scrapes a continuous backup's
//! `--metrics-addr`, and what it stored must match what the run reports; `--metrics-file`
//! holds the same figures when the command ends.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A Prometheus of this test's own, stopped when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` (HOST:PORT) every second.
    fn start(target: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kafka-backup\n    \
                 static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let child = Command::new(get("/prometheus/bin"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// The value of an instant query, when Prometheus has one.
    fn query(&self, expr: &str) -> Option<f64> {
        let out = python(
            "import json, sys, urllib.parse, urllib.request\n\
             url = 'http://127.0.0.1:%s/api/v1/query?query=%s' % (sys.argv[1], urllib.parse.quote(sys.argv[2]))\n\
             try:\n    r = json.load(urllib.request.urlopen(url, timeout=5))\nexcept Exception:\n    print('none'); sys.exit(0)\n\
             res = r['data']['result']\nprint(res[0]['value'][1] if res else 'none')\n",
            &[&self.port.to_string(), expr],
        );
        out.trim().parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What node-exporter (Debian's) serves after its textfile collector read the `.prom` files
/// of `dir`.
fn node_exporter_reads(dir: &std::path::Path) -> String {
    let port = free_port();
    let mut child = Command::new(get("/node_exporter/bin"))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.disable-defaults")
        .arg("--collector.textfile")
        .arg(format!("--collector.textfile.directory={}", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut text = String::new();
    wait_until("node-exporter to answer", Duration::from_secs(20), || {
        text = python(
            "import sys, urllib.request\n\
             try:\n    print(urllib.request.urlopen('http://127.0.0.1:%s/metrics' % sys.argv[1], timeout=5).read().decode())\n\
             except Exception:\n    print('')\n",
            &[&port.to_string()],
        );
        !text.trim().is_empty()
    });
    let _ = child.kill();
    let _ = child.wait();
    text
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn prometheus_scrapes_what_a_continuous_backup_reports() {
    let topic = unique_topic("metrics");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "300", "3"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let metrics_port = free_port();
    let metrics_file = dir.path().join("kafka-backup.prom");
    let yaml = fs_backup_yaml(
        "metrics",
        &[&topic],
        &store,
        "continuous: true\nmetadata_max_age_ms: 1000\nsegment_max_interval_ms: 1000\nconsumer_group_snapshot: false",
    );
    let config = dir.path().join("backup.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let prometheus = Prometheus::start(&format!("127.0.0.1:{metrics_port}"));
    let child = Command::new(binary())
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .arg("--metrics-file")
        .arg(&metrics_file)
        .args(["backup", "--format", "json", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the records stored", Duration::from_secs(30), || {
        read_back(&store, "metrics", &topic).len() == 300
    });
    // What Prometheus stored from its scrapes of the running backup.
    wait_until(
        "Prometheus to scrape 300 records",
        Duration::from_secs(60),
        || prometheus.query("kafka_backup_backup_records_total") == Some(300.0),
    );
    wait_until("the lag to reach 0", Duration::from_secs(30), || {
        prometheus.query(&format!(
            "sum(kafka_backup_backup_partition_lag_offsets{{topic=\"{topic}\"}})"
        )) == Some(0.0)
    });
    assert_eq!(
        prometheus.query("kafka_backup_backup_partitions{state=\"active\"}"),
        Some(3.0)
    );
    sigterm(&child);
    let out = finish(child, Duration::from_secs(30));
    out.assert_code(EXIT_OK);
    let report = out.json();
    assert_eq!(report["records"], 300);
    assert_eq!(
        prometheus.query("kafka_backup_backup_read_bytes_total"),
        report["bytes_read"].as_f64()
    );

    // The file written at the end holds the run's final figures.
    let text = std::fs::read_to_string(&metrics_file).unwrap();
    for (name, field) in [
        ("kafka_backup_backup_records_total", "records"),
        ("kafka_backup_backup_read_bytes_total", "bytes_read"),
        ("kafka_backup_backup_written_bytes_total", "bytes_written"),
        ("kafka_backup_backup_segments_total", "segments"),
    ] {
        let line = format!("{name} {}", report[field]);
        assert!(text.contains(&line), "{line} missing from:\n{text}");
    }
    let success = text
        .lines()
        .find_map(|l| l.strip_prefix("kafka_backup_last_success_timestamp_seconds "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(
        success > 1.7e9,
        "a run that ended well sets the time: {success}"
    );
}

#[test]
fn a_failed_command_counts_its_error_kind_in_the_metrics_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.prom");
    let yaml = fs_backup_yaml(
        "metricsfail",
        &["no-such-topic-anywhere"],
        &dir.path().join("store"),
        "",
    );
    let config = dir.path().join("backup.yaml");
    std::fs::write(&config, yaml).unwrap();
    let out = run_binary(
        &[
            std::ffi::OsStr::new("--metrics-file"),
            file.as_os_str(),
            std::ffi::OsStr::new("backup"),
            std::ffi::OsStr::new("--config"),
            config.as_os_str(),
        ],
        &[],
    );
    out.assert_code(EXIT_CONFIG);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("kafka_backup_errors_total{kind=\"config\"} 1"),
        "{text}"
    );
    assert!(text.contains("kafka_backup_last_success_timestamp_seconds 0"));
    // A port already taken is a usage error, before anything runs.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_binary(
        &[
            std::ffi::OsStr::new("--metrics-addr"),
            std::ffi::OsStr::new(&addr),
            std::ffi::OsStr::new("backup"),
            std::ffi::OsStr::new("--config"),
            config.as_os_str(),
        ],
        &[],
    );
    out.assert_code(EXIT_USAGE);
    out.assert_contains("cannot serve metrics on --metrics-addr");
}

#[test]
fn a_restore_counts_what_it_wrote() {
    let topic = unique_topic("metricsrestore");
    let broker = plaintext_broker();
    fidelity(&["bulk", &broker, &topic, "120", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let backup = fs_backup_yaml("metricsrestore", &[&topic], &store, "");
    run(dir.path(), "backup", &backup, &[], &[]).assert_code(EXIT_OK);
    let file = dir.path().join("restore.prom");
    let restore = format!(
        "mode: restore\nbackup_id: metricsrestore\ntarget:\n  bootstrap_servers: [\"{broker}\"]\nstorage:\n  \
         backend: filesystem\n  path: {}\nrestore:\n  topic_mapping:\n    {topic}: {topic}-r\n",
        store.display()
    );
    let config = dir.path().join("restore.yaml");
    std::fs::write(&config, restore).unwrap();
    let out = run_binary(
        &[
            std::ffi::OsStr::new("--metrics-file"),
            file.as_os_str(),
            std::ffi::OsStr::new("restore"),
            std::ffi::OsStr::new("--format"),
            std::ffi::OsStr::new("json"),
            std::ffi::OsStr::new("--config"),
            config.as_os_str(),
        ],
        &[],
    );
    out.assert_code(EXIT_OK);
    let report = out.json();
    assert_eq!(report["records_written"], 120);
    let text = std::fs::read_to_string(&file).unwrap();
    for line in [
        "kafka_backup_restore_records_total 120".to_owned(),
        format!(
            "kafka_backup_restore_bytes_total {}",
            report["bytes_written"]
        ),
    ] {
        assert!(text.contains(&line), "{line} missing from:\n{text}");
    }
    assert!(!text.contains("kafka_backup_last_success_timestamp_seconds 0.0"));

    // node-exporter's textfile collector reads the file with its counters typed.
    let served = node_exporter_reads(dir.path());
    for line in [
        "# TYPE kafka_backup_restore_records_total counter".to_owned(),
        "kafka_backup_restore_records_total 120".to_owned(),
        "# TYPE kafka_backup_last_success_timestamp_seconds gauge".to_owned(),
        "node_textfile_scrape_error 0".to_owned(),
    ] {
        assert!(served.contains(&line), "{line} missing from:\n{served}");
    }
    assert!(!served.contains("untyped"), "{served}");

    // A command that succeeded but cannot write its file fails, naming the file.
    let unwritable = dir.path().join("no-such-dir").join("m.prom");
    let out = run_binary(
        &[
            std::ffi::OsStr::new("--metrics-file"),
            unwritable.as_os_str(),
            std::ffi::OsStr::new("describe"),
            std::ffi::OsStr::new("--config"),
            config.as_os_str(),
        ],
        &[],
    );
    out.assert_code(1);
    out.assert_contains("cannot write the metrics to --metrics-file");
}

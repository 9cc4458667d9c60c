//! This process's audit record (one command per process): begun with the command line,
//! filled in as the command learns who and what it works with, and written to every sink
//! when the configuration has loaded (`start`) and when the command ends (`end`).
//!
//! A sink that cannot be written stops the command before it does anything (fail closed:
//! a run that the trail cannot record does not happen); one that fails at the end turns a
//! success into a failure, with the reason.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use backup_core::audit::{self as trail, AuditEvent, ClusterRef, Outcome, Phase, StorageRef};
use backup_core::config::{KafkaClusterConfig, LoadedConfig};
use backup_core::storage::Storage;
use backup_format::signing::SigningKey;

use crate::exit::{Exit, Failed};

struct Recorder {
    event: AuditEvent,
    files: Vec<PathBuf>,
    stdout: bool,
    key: Option<SigningKey>,
    started: Instant,
    /// `audit.storage`: the configuration asks for the storage sink.
    storage_wanted: bool,
    /// The storage sink, once the command opened its storage.
    storage: Option<Storage>,
    /// `audit.syslog`.
    syslog: Option<trail::syslog::SyslogTarget>,
}

static RECORDER: Mutex<Option<Recorder>> = Mutex::new(None);

/// Where events go from the command line (`--audit-file`, `--audit-stdout`).
#[derive(Debug, Clone, Default)]
pub struct CliSinks {
    /// JSON-lines files.
    pub files: Vec<PathBuf>,
    /// Print events on stdout.
    pub stdout: bool,
}

fn with<T>(f: impl FnOnce(&mut Recorder) -> T) -> Option<T> {
    let mut guard = RECORDER.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_mut().map(f)
}

/// Begins the record of `command`.
pub fn begin(command: &str, config_path: Option<&Path>, sinks: CliSinks) {
    let event = AuditEvent {
        command: command.to_owned(),
        host: host(),
        os_user: os_user(),
        pid: std::process::id(),
        invocation: invocation_id(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        config_path: config_path.map(|p| p.display().to_string()),
        ..AuditEvent::default()
    };
    let recorder = Recorder {
        event,
        files: sinks.files,
        stdout: sinks.stdout,
        key: None,
        started: Instant::now(),
        storage_wanted: false,
        storage: None,
        syslog: None,
    };
    *RECORDER.lock().unwrap_or_else(|p| p.into_inner()) = Some(recorder);
}

/// Records what the configuration says (backup, cluster, principal, digest), adds its sinks
/// and signing key, and writes the `start` event. `uses_kafka`: the command talks to the
/// configuration's cluster (the storage-only commands do not, so no cluster is recorded).
pub fn config_loaded(loaded: &LoadedConfig, uses_kafka: bool) -> Result<(), Failed> {
    with(|r| {
        r.event.backup_id = Some(loaded.backup_id.clone());
        r.event.config_sha256 = Some(trail::config_digest(loaded));
        if uses_kafka {
            r.event.cluster = Some(cluster_ref(loaded));
            r.event.principal = Some(principal(&loaded.cluster));
        }
        if let Some(file) = &loaded.audit.file
            && !r.files.contains(file)
        {
            r.files.push(file.clone());
        }
        r.stdout |= loaded.audit.stdout;
        r.storage_wanted = loaded.audit.storage;
        r.syslog = loaded.audit.syslog.clone();
        r.key = loaded
            .audit
            .signing_key
            .clone()
            .or_else(|| loaded.backup.as_ref().and_then(|b| b.signing_key.clone()));
    });
    start()
}

/// Writes the `start` event of a command that has no configuration.
pub fn start() -> Result<(), Failed> {
    write(Phase::Start).map_err(|e| Failed::new(Exit::Config, e))
}

/// Records the storage the command opened; with `audit.storage`, appends the `start` event to
/// its audit stream (which must succeed before the command goes on).
pub async fn storage(storage: &Storage) -> Result<(), Failed> {
    let pending = with(|r| {
        r.event.storage = Some(StorageRef {
            location: storage.location(""),
            credential_source: storage.credential_source().to_owned(),
        });
        if r.storage_wanted {
            r.storage = Some(storage.clone());
        }
        r.storage_wanted.then(|| (r.event.clone(), r.key.clone()))
    })
    .flatten();
    if let Some((mut event, key)) = pending {
        event.phase = Some(Phase::Start);
        append_to_storage(storage, &event, key.as_ref())
            .await
            .map_err(|e| Failed::new(Exit::Storage, e))?;
    }
    Ok(())
}

async fn append_to_storage(
    storage: &Storage,
    event: &AuditEvent,
    key: Option<&SigningKey>,
) -> Result<(), String> {
    let Some(backup_id) = event.backup_id.as_deref() else {
        return Ok(());
    };
    trail::store::append(storage, backup_id, event, key, &event.invocation)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Records the run (backup) or restore id.
pub fn run_id(id: &str) {
    with(|r| r.event.run_id = Some(id.to_owned()));
}

/// Records the cluster id the brokers reported.
pub fn cluster_id(id: Option<&str>) {
    with(|r| {
        if let (Some(c), Some(id)) = (r.event.cluster.as_mut(), id) {
            c.id = Some(id.to_owned());
        }
    });
}

/// Records the ids of keys used.
pub fn key_ids(ids: impl IntoIterator<Item = String>) {
    with(|r| {
        for id in ids {
            if !r.event.key_ids.contains(&id) {
                r.event.key_ids.push(id);
            }
        }
    });
}

/// Records what the command did, in words.
pub fn detail(text: &str) {
    with(|r| {
        r.event.detail = Some(match r.event.detail.take() {
            Some(before) => format!("{before}; {text}"),
            None => text.to_owned(),
        });
    });
}

/// `user@host` of this process, for markers it writes.
pub fn who() -> String {
    let user = os_user().unwrap_or_else(|| "unknown user".to_owned());
    format!("{user} on {}", host())
}

/// Records figures of the work.
pub fn counts(pairs: &[(&str, u64)]) {
    with(|r| {
        for (k, v) in pairs {
            r.event.counts.insert((*k).to_owned(), *v);
        }
    });
}

/// Writes the `end` event with the command's exit code and, when it failed, its message.
/// An error is the reason the event could not be written.
pub async fn end(exit_code: i32, error: Option<&str>) -> Result<(), String> {
    with(|r| {
        r.event.exit_code = Some(exit_code);
        r.event.outcome = Some(Outcome::of_exit_code(exit_code));
        r.event.error = error.map(str::to_owned);
        r.event.duration_ms = Some(r.started.elapsed().as_millis() as u64);
    });
    let local = write(Phase::End);
    let pending = with(|r| {
        r.storage
            .clone()
            .map(|s| (s, r.event.clone(), r.key.clone()))
    })
    .flatten();
    let stored = match pending {
        Some((storage, event, key)) => append_to_storage(&storage, &event, key.as_ref()).await,
        None => Ok(()),
    };
    match (local, stored) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(a), Ok(())) | (Ok(()), Err(a)) => Err(a),
        (Err(a), Err(b)) => Err(format!("{a} {b}")),
    }
}

fn write(phase: Phase) -> Result<(), String> {
    let mut guard = RECORDER.lock().unwrap_or_else(|p| p.into_inner());
    let Some(r) = guard.as_mut() else {
        return Ok(());
    };
    r.event.phase = Some(phase);
    r.event.time = trail::now();
    let mut failures = Vec::new();
    for file in &r.files {
        if let Err(e) = trail::file::append(file, &r.event, r.key.as_ref()) {
            failures.push(e.to_string());
        }
    }
    if r.stdout || r.syslog.is_some() {
        // Unchained: neither standard output nor syslog has an earlier line to link to.
        match trail::chain::seal(&r.event, None, r.key.as_ref()) {
            Ok(line) => {
                if r.stdout {
                    println!("{line}");
                }
                if let Some(target) = &r.syslog
                    && let Err(e) = trail::syslog::send(target, &r.event, &r.event.host, &line)
                {
                    failures.push(e.to_string());
                }
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join(" "))
    }
}

fn cluster_ref(loaded: &LoadedConfig) -> ClusterRef {
    ClusterRef {
        role: loaded.mode.cluster_key().to_owned(),
        id: None,
        bootstrap_servers: loaded
            .cluster
            .bootstrap_servers
            .iter()
            .map(ToString::to_string)
            .collect(),
        security_protocol: loaded.cluster.security.protocol.to_string(),
    }
}

/// Who the command authenticates as: the SASL user, the client certificate's subject, or
/// Kafka's name for an unauthenticated client.
fn principal(cluster: &KafkaClusterConfig) -> String {
    let security = &cluster.security;
    if let Some(sasl) = &security.sasl {
        return format!("User:{}", sasl.username);
    }
    if security.protocol.uses_tls()
        && let Some(path) = &security.tls.certificate_location
    {
        return match kafka_client::tls::read_certificates("ssl_certificate_location", path) {
            Ok(certs) if !certs.is_empty() => format!("User:{}", certs[0].subject),
            _ => format!("the certificate in {}", path.display()),
        };
    }
    "User:ANONYMOUS".to_owned()
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn os_user() -> Option<String> {
    let name = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok();
    #[cfg(unix)]
    {
        // SAFETY: getuid cannot fail and touches no memory.
        let uid = unsafe { libc::getuid() };
        Some(match name {
            Some(n) => format!("{n} (uid {uid})"),
            None => format!("uid {uid}"),
        })
    }
    #[cfg(not(unix))]
    name
}

fn invocation_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

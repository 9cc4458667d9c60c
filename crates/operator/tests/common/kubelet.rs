//! A stand-in for the kubelet, for the one thing the tests need of it: start a rendered
//! Pod's container as a local process, with exactly the files, command line and environment
//! the Pod would have, under a temporary root.
//!
//! Every absolute path the Pod mounts (the ConfigMap, each Secret volume, `/tmp`, the
//! termination log) is moved under the root, in the arguments and in the configuration text;
//! nothing else about the command line changes, except `--metrics-addr`: Pods have a network
//! namespace each, processes on one machine share one, so concurrent shards listen on a port
//! the kernel picks instead of all on 9308.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::{ConfigMap, PodSpec};
use kafka_backup_operator::render::TERMINATION_LOG;

use super::pod_files::write_secret_file;

/// The kafka-backup binary the container's `kafka-backup` command stands for.
///
/// Found by path in the workspace's target directory rather than through `CARGO_BIN_EXE_*`:
/// that needs kafka-backup as a dependency of this crate, and kafka-backup depends on this
/// crate (its `operator` command), a cycle. `cargo test --workspace` builds it first; alone,
/// run `cargo build -p kafka-backup` before `cargo test -p kafka-backup-operator`.
pub fn kafka_backup_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let binary = target.join("debug/kafka-backup");
    assert!(
        binary.is_file(),
        "{} does not exist: build it with `cargo build -p kafka-backup` (cargo test \
         --workspace builds it too)",
        binary.display()
    );
    binary
}

/// The Secrets of the fake namespace: name, then key, then value.
pub type Secrets = BTreeMap<String, BTreeMap<String, String>>;

/// A rendered Pod laid out under a temporary root, ready to start.
pub struct MaterialisedPod {
    /// The root standing for `/`.
    pub root: tempfile::TempDir,
    command: Vec<String>,
    env: Vec<(String, String)>,
}

impl MaterialisedPod {
    /// Lays out `pod` with `config_map` and `secrets` as the kubelet would: the ConfigMap's
    /// keys as files of its volume, each Secret volume's keys as files of mode 0400 (all the
    /// keys the Secret has: the volumes name no items), an empty `/tmp`, and the directory of
    /// the termination log. A Secret the Pod mounts that does not exist fails the test, as
    /// the kubelet would never start the container.
    pub fn new(pod: &PodSpec, config_map: &ConfigMap, secrets: &Secrets) -> Self {
        let root = tempfile::tempdir().expect("a temp dir");
        let container = &pod.containers[0];
        let mounts = container.volume_mounts.clone().unwrap_or_default();
        let mut mount_points = Vec::new();
        for volume in pod.volumes.iter().flatten() {
            let mount = mounts
                .iter()
                .find(|m| m.name == volume.name)
                .unwrap_or_else(|| panic!("volume {} is not mounted", volume.name));
            mount_points.push(mount.mount_path.clone());
            let dir = reroot(root.path(), &mount.mount_path);
            std::fs::create_dir_all(&dir).expect("create a mount point");
            if let Some(source) = &volume.config_map {
                assert_eq!(
                    config_map.metadata.name.as_deref(),
                    Some(source.name.as_str()),
                    "the Pod mounts another ConfigMap than the rendered one"
                );
                let data = config_map.data.clone().unwrap_or_default();
                for item in source.items.iter().flatten() {
                    let text = data
                        .get(&item.key)
                        .unwrap_or_else(|| panic!("the ConfigMap has no key {}", item.key));
                    std::fs::write(dir.join(&item.path), rerooted_text(text, root.path()))
                        .expect("write a ConfigMap file");
                }
            } else if let Some(source) = &volume.secret {
                let name = source.secret_name.clone().expect("a Secret name");
                assert_eq!(source.items, None, "Secrets are mounted whole");
                let data = secrets.get(&name).unwrap_or_else(|| {
                    panic!(
                        "the Pod mounts Secret {name}, which does not exist: it would never start"
                    )
                });
                assert_eq!(source.default_mode, Some(0o400));
                for (key, value) in data {
                    let path = format!("{}/{key}", mount.mount_path);
                    write_secret_file(root.path(), &path, value);
                }
            } else if volume.empty_dir.is_some() {
                // Already created, empty.
            } else {
                panic!("a volume the tests cannot lay out: {volume:?}");
            }
        }
        let termination_log = reroot(root.path(), TERMINATION_LOG);
        std::fs::create_dir_all(termination_log.parent().expect("/dev")).expect("create /dev");
        mount_points.push(TERMINATION_LOG.to_owned());

        let mut command = container.command.clone().expect("a command");
        assert_eq!(command[0], "kafka-backup", "the image's binary");
        command[0] = kafka_backup_binary().display().to_string();
        let mut args = container.args.clone().expect("args");
        for arg in &mut args {
            if mount_points
                .iter()
                .any(|m| arg == m || arg.starts_with(&format!("{m}/")))
            {
                *arg = reroot(root.path(), arg).display().to_string();
            }
        }
        let at = args
            .iter()
            .position(|a| a == "--metrics-addr")
            .expect("--metrics-addr");
        args[at + 1] = "127.0.0.1:0".into();
        command.extend(args);
        let env = container
            .env
            .iter()
            .flatten()
            .map(|e| {
                assert!(e.value_from.is_none(), "no environment from Secrets");
                (e.name.clone(), e.value.clone().unwrap_or_default())
            })
            .collect();
        Self { root, command, env }
    }

    /// Starts the container's process; `index` is the Indexed Job's completion index, which
    /// Kubernetes passes as `JOB_COMPLETION_INDEX`. The environment is the container's only:
    /// nothing of the test's (no AWS variables) leaks in.
    pub fn start(&self, index: Option<u32>) -> Child {
        let mut command = Command::new(&self.command[0]);
        command
            .args(&self.command[1..])
            .env_clear()
            .envs(self.env.iter().cloned())
            // The Pod's /tmp is its emptyDir, moved under the root like every mount.
            .env("TMPDIR", reroot(self.root.path(), "/tmp"))
            .current_dir(self.root.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(index) = index {
            command.env("JOB_COMPLETION_INDEX", index.to_string());
        }
        command.spawn().expect("start kafka-backup")
    }

    /// The termination message the process left, parsed as the summary JSON.
    pub fn summary(&self) -> serde_json::Value {
        let path = reroot(self.root.path(), TERMINATION_LOG);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("no termination message at {}: {e}", path.display()));
        assert!(text.len() <= 4096, "a termination message holds 4 KiB");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

/// `path` (absolute, as in the Pod) under `root`.
pub fn reroot(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// A ConfigMap's text with the Pod's mount points moved under `root`.
fn rerooted_text(text: &str, root: &Path) -> String {
    super::pod_files::rerooted(text, root)
}

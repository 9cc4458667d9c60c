//! The files a rendered Pod sees, materialised under a temporary root as the kubelet would
//! lay them out: the ConfigMap's `config.yaml` and each referenced Secret key as a file of
//! mode 0400.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use backup_core::keys::{KeyType, generate_key};

/// Where the operator's Pods find mounted Secrets and ConfigMaps.
pub const MOUNT_ROOT: &str = "/var/run/kafka-backup/";

/// The absolute paths under [`MOUNT_ROOT`] that `config` names, each with the configuration
/// key naming it (a list item's key is the list's).
pub fn referenced_files(config: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut key = String::new();
    for line in config.lines() {
        let trimmed = line.trim_start();
        if !trimmed.starts_with("- ")
            && let Some((k, _)) = trimmed.split_once(':')
        {
            key = k.trim().to_owned();
        }
        let mut rest = line;
        while let Some(at) = rest.find(MOUNT_ROOT) {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| c == '}' || c == '"' || c.is_whitespace())
                .unwrap_or(tail.len());
            found.push((key.clone(), tail[..end].to_owned()));
            rest = &tail[end..];
        }
    }
    found
}

/// Content in the format the loader expects for a file named by configuration key `key`;
/// other values (passwords, access keys) are distinct fake strings.
pub fn fake_content(key: &str, path: &str) -> String {
    let generated = |kind, public: bool| {
        let key = generate_key(kind, "2026-01-01T00:00:00Z").expect("a generated key");
        if public {
            key.public_file.expect("a public half")
        } else {
            key.private_file.to_string()
        }
    };
    match key {
        "signing_key" => generated(KeyType::Signing, false),
        "verify_key" => generated(KeyType::Signing, true),
        "identity_files" => generated(KeyType::Age, false),
        "recipients_file" => generated(KeyType::Age, true),
        "key_file" | "key_files" => generated(KeyType::Local, false),
        _ => format!("fake-value-of-{}", path.rsplit('/').next().unwrap_or(path)),
    }
}

/// Writes `content` at `root` + `path` with the Secret volume's mode.
pub fn write_secret_file(root: &Path, path: &str, content: &str) -> PathBuf {
    let file = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().expect("a parent")).expect("create the mount dir");
    std::fs::write(&file, content).expect("write a secret file");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).expect("chmod 0400");
    file
}

/// `config` with every path the Pod mounts moved under `root`.
pub fn rerooted(config: &str, root: &Path) -> String {
    config.replace(MOUNT_ROOT, &format!("{}{MOUNT_ROOT}", root.display()))
}

/// Materialises every file `config` names under `root` (with [`fake_content`]) and writes
/// the rerooted configuration at `root`/etc/kafka-backup/config.yaml. Returns the config
/// file and the fake values by path (as the Pod sees it).
pub fn materialise(config: &str, root: &Path) -> (PathBuf, BTreeMap<String, String>) {
    let mut values = BTreeMap::new();
    for (key, path) in referenced_files(config) {
        let content = fake_content(&key, &path);
        write_secret_file(root, &path, &content);
        values.insert(path, content);
    }
    let dir = root.join("etc/kafka-backup");
    std::fs::create_dir_all(&dir).expect("create the config dir");
    let file = dir.join("config.yaml");
    std::fs::write(&file, rerooted(config, root)).expect("write config.yaml");
    (file, values)
}

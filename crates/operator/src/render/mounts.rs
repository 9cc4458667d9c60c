//! The files the Pod mounts and the paths the configuration names them by.
//!
//! Rendering the configuration and rendering the Pod must agree on every path: the
//! configuration is written first and records here each Secret and ConfigMap it refers to, and
//! the Pod gets exactly those volumes.

use std::collections::BTreeSet;

use backup_core::config::KUBERNETES_SECRETS_DIR;

/// Where the ConfigMap holding `config.yaml` is mounted.
pub const CONFIG_DIR: &str = "/etc/kafka-backup";
/// The data key of the rendered ConfigMap, and the file name under [`CONFIG_DIR`].
pub const CONFIG_KEY: &str = "config.yaml";
/// Where ConfigMaps the resource names (krb5.conf, age recipients) are mounted, one directory
/// each. Not under [`CONFIG_DIR`]: that is a read-only volume, and a mount point inside it
/// could not be created.
pub const CONFIG_MAPS_DIR: &str = "/var/run/kafka-backup/configmaps";
/// The scratch directory (an `emptyDir`): the root filesystem is read-only.
pub const TMP_DIR: &str = "/tmp";
/// Where the container writes its summary, which Kubernetes keeps as the termination message.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// The Secrets and ConfigMaps a configuration refers to, collected while it is rendered.
#[derive(Debug, Default)]
pub(crate) struct Mounts {
    secrets: BTreeSet<String>,
    config_maps: BTreeSet<String>,
    /// The first reference that cannot be a file of a mounted volume, reported by [`check`]
    /// once the whole configuration is rendered (so the paths need no error plumbing).
    ///
    /// [`check`]: Mounts::check
    invalid: Option<String>,
}

impl Mounts {
    /// The path of `key` of Secret `secret` in the Pod; the Secret is mounted whole.
    pub fn secret_file(&mut self, secret: &str, key: &str) -> String {
        self.note("Secret", secret, key);
        self.secrets.insert(secret.to_owned());
        format!("{}/{key}", secret_dir(secret))
    }

    /// A reference to the value of `key` of Secret `secret`, which the loader in the Pod
    /// replaces by the file's content: the value itself never reaches the ConfigMap.
    pub fn secret_value(&mut self, secret: &str, key: &str) -> String {
        format!("${{file:{}}}", self.secret_file(secret, key))
    }

    /// The path of `key` of ConfigMap `name` in the Pod; the ConfigMap is mounted whole.
    pub fn config_map_file(&mut self, name: &str, key: &str) -> String {
        self.note("ConfigMap", name, key);
        self.config_maps.insert(name.to_owned());
        format!("{CONFIG_MAPS_DIR}/{name}/{key}")
    }

    /// Whether every reference names a valid object and key: a name Kubernetes refuses, or a
    /// key with a `/`, would render a path no volume ever has.
    pub fn check(&self) -> Result<(), super::RenderError> {
        match &self.invalid {
            None => Ok(()),
            Some(reason) => Err(super::RenderError::InvalidSpec {
                field: "spec (a Secret or ConfigMap reference)".into(),
                reason: reason.clone(),
            }),
        }
    }

    fn note(&mut self, kind: &str, name: &str, key: &str) {
        if self.invalid.is_some() {
            return;
        }
        let name_ok = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        let key_ok = !key.is_empty()
            && key.len() <= 253
            && key != "."
            && key != ".."
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            self.invalid = Some(format!(
                "`{name}` is not a valid {kind} name (lower-case letters, digits, '-' and '.'); \
                 name the {kind} as `kubectl get {}` shows it",
                kind.to_ascii_lowercase()
            ));
        } else if !key_ok {
            self.invalid = Some(format!(
                "`{key}` is not a valid key of {kind} `{name}` (letters, digits, '-', '_' and \
                 '.'); name a key the {kind} has, as `kubectl describe {} {name}` lists them",
                kind.to_ascii_lowercase()
            ));
        }
    }

    /// The Secrets to mount, in a stable order.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(String::as_str)
    }

    /// The ConfigMaps to mount, in a stable order.
    pub fn config_maps(&self) -> impl Iterator<Item = &str> {
        self.config_maps.iter().map(String::as_str)
    }
}

/// The directory where Secret `secret` is mounted.
pub fn secret_dir(secret: &str) -> String {
    format!("{KUBERNETES_SECRETS_DIR}/{secret}")
}

/// `value` as a literal in the configuration: the loader reads `${` as the start of a
/// reference, so a user's text holding one is escaped rather than expanded in the Pod.
pub(crate) fn literal(value: &str) -> String {
    value.replace("${", "$${")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_secret_is_recorded_once_and_its_keys_are_files_in_its_directory() {
        let mut mounts = Mounts::default();
        assert_eq!(
            mounts.secret_file("backup-user", "user.key"),
            "/var/run/kafka-backup/secrets/backup-user/user.key"
        );
        assert_eq!(
            mounts.secret_value("backup-user", "password"),
            "${file:/var/run/kafka-backup/secrets/backup-user/password}"
        );
        mounts.config_map_file("krb5", "krb5.conf");
        assert_eq!(mounts.secrets().collect::<Vec<_>>(), ["backup-user"]);
        assert_eq!(mounts.config_maps().collect::<Vec<_>>(), ["krb5"]);
        assert_eq!(mounts.check(), Ok(()));
    }

    #[test]
    fn a_reference_no_volume_can_hold_is_refused_naming_it() {
        let mut mounts = Mounts::default();
        mounts.secret_file("backup-user", "tls/user.key");
        let err = mounts.check().expect_err("a key with a slash").to_string();
        assert!(
            err.contains("`tls/user.key` is not a valid key of Secret `backup-user`"),
            "{err}"
        );
        let mut mounts = Mounts::default();
        mounts.config_map_file("Krb5_Conf", "krb5.conf");
        let err = mounts.check().expect_err("an upper-case name").to_string();
        assert!(
            err.contains("`Krb5_Conf` is not a valid ConfigMap name"),
            "{err}"
        );
    }

    #[test]
    fn a_literal_cannot_become_a_reference() {
        assert_eq!(literal("orders-${HOME}"), "orders-$${HOME}");
        assert_eq!(literal("plain"), "plain");
    }
}

//! Tests of the configuration loader. Each rule has a test that checks the message text,
//! because the message is the product here: it must name the key and say what to do.

mod backup;
mod consistency;
mod encryption;
mod oauth;
mod parsing;
mod plugin;
mod secrets;
mod signing;
mod storage;
mod substitution;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{ConfigError, LoadedConfig, parse};

/// An environment made of `vars`, so that tests never touch the process environment.
pub(super) fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| vars.get(name).cloned()
}

pub(super) fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<LoadedConfig, ConfigError> {
    parse(text, "test.yaml", &env_of(vars))
}

pub(super) fn ok(text: &str, vars: &[(&str, &str)]) -> LoadedConfig {
    match load_text(text, vars) {
        Ok(config) => config,
        Err(e) => panic!("expected the config to load, got: {e}"),
    }
}

pub(super) fn err(text: &str, vars: &[(&str, &str)]) -> ConfigError {
    match load_text(text, vars) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e,
    }
}

/// The error's message, checked to contain every fragment.
#[track_caller]
pub(super) fn assert_message(error: &ConfigError, fragments: &[&str]) {
    let message = error.to_string();
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "message lacks {fragment:?}:\n{message}"
        );
    }
    assert!(!message.contains('\n'), "not one paragraph: {message}");
}

/// A backup config around a `security:` block (indented by the caller at four spaces).
pub(super) fn with_security(security: &str) -> String {
    format!(
        "mode: backup\nbackup_id: prod-orders\nsource:\n  bootstrap_servers: [\"kafka-0:9093\"]\n  security:\n{security}"
    )
}

/// A directory with a CA, a client certificate and a client key (contents irrelevant: the
/// loader only checks that they exist and can be read).
pub(super) struct CertDir {
    pub dir: tempfile::TempDir,
}

impl CertDir {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ca.crt", "client.crt", "client.key", "client.keytab"] {
            std::fs::write(dir.path().join(name), "-----BEGIN TEST-----\n").unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for name in ["client.key", "client.keytab"] {
                std::fs::set_permissions(
                    dir.path().join(name),
                    std::fs::Permissions::from_mode(0o600),
                )
                .unwrap();
            }
        }
        Self { dir }
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(super) fn dir_str(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
}

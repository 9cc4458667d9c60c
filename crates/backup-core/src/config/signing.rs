//! `backup.signing_key` and `restore.verify_key`: the Ed25519 keys that sign a backup's object
//! names and descriptor, and that restore, validate and describe check them with.
//!
//! ```yaml
//! backup:
//!   signing_key: /keys/signing.key     # PKCS#8 PEM, private: chmod 600
//! restore:
//!   verify_key: /keys/signing.pub      # or a list, while the signing key is rotated
//! ```

use backup_format::signing::{SigningKey, VerifyingKey, VerifyingKeys};

use super::env::ConfigString;
use super::error::ConfigError;
use super::key_files::Private;
use super::model::{LoadedConfig, Mode};
use super::validator::Validator;
use super::vocabulary::StringList;

/// What a key holds, for "expected ..." in parser messages; `None` for other keys.
pub(crate) fn expected_for(key: &str) -> Option<&'static str> {
    Some(match key {
        "signing_key" => "the path of an Ed25519 private key file (PKCS#8 PEM)",
        "verify_key" | "release_verify_key" => {
            "the path of an Ed25519 public key file (PEM), or a list of them"
        }
        _ => return None,
    })
}

impl Validator<'_> {
    /// Reads `backup.signing_key`.
    pub(super) fn signing_key(
        &mut self,
        raw: Option<ConfigString>,
    ) -> Result<Option<SigningKey>, ConfigError> {
        self.signing_key_at("backup.signing_key", raw)
    }

    /// Reads an Ed25519 signing key named by the key `path_key`.
    pub(super) fn signing_key_at(
        &mut self,
        path_key: &str,
        raw: Option<ConfigString>,
    ) -> Result<Option<SigningKey>, ConfigError> {
        let Some(file) = raw else { return Ok(None) };
        let read = self.read_key_file(
            path_key,
            &file,
            Some(Private {
                what: "signing key",
                power: "sign objects that every restore will trust as this backup's",
            }),
        )?;
        if read
            .text()
            .is_some_and(|t| t.contains("-----BEGIN PUBLIC KEY-----"))
        {
            return Err(self.invalid(
                path_key.to_owned(),
                file.line,
                format!(
                    "names {}, which holds a public key; signing needs the private key (the file \
                     `kafka-backup keys generate --type signing --out FILE` writes as FILE, not \
                     FILE.pub)",
                    read.path.display()
                ),
            ));
        }
        SigningKey::from_pem(&read.bytes).map(Some).map_err(|e| {
            self.invalid(
                path_key.to_owned(),
                file.line,
                format!(
                    "names {}, which is not a signing key: {e}",
                    read.path.display()
                ),
            )
        })
    }

    /// Reads `restore.verify_key` (one file or several).
    pub(super) fn verify_keys(
        &mut self,
        raw: Option<StringList>,
    ) -> Result<VerifyingKeys, ConfigError> {
        self.verify_keys_at("restore.verify_key", raw)
    }

    /// Reads a list of Ed25519 public keys named by the key `name`.
    pub(super) fn verify_keys_at(
        &mut self,
        name: &str,
        raw: Option<StringList>,
    ) -> Result<VerifyingKeys, ConfigError> {
        let Some(list) = raw else {
            return Ok(VerifyingKeys::default());
        };
        if list.0.is_empty() {
            return Err(self.invalid(
                name.to_owned(),
                None,
                "is an empty list; give the verify key file (the .pub of the backup's signing \
                 key), or remove the key"
                    .to_owned(),
            ));
        }
        let mut keys: Vec<VerifyingKey> = Vec::new();
        for (i, file) in list.0.iter().enumerate() {
            let path_key = if list.0.len() == 1 {
                name.to_owned()
            } else {
                format!("{name}[{i}]")
            };
            let read = self.read_key_file(&path_key, file, None)?;
            if read.text().is_some_and(|t| t.contains("PRIVATE KEY-----")) {
                return Err(self.invalid(
                    path_key,
                    file.line,
                    format!(
                        "names {}, which holds a private key; a restore needs only the public key \
                         (FILE.pub from `kafka-backup keys generate --type signing`, or `openssl \
                         pkey -in KEY -pubout`): keep the signing key on the backup host only",
                        read.path.display()
                    ),
                ));
            }
            let key = VerifyingKey::from_pem(&read.bytes).map_err(|e| {
                self.invalid(
                    path_key.clone(),
                    file.line,
                    format!(
                        "names {}, which is not a verify key: {e}",
                        read.path.display()
                    ),
                )
            })?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(VerifyingKeys::new(keys))
    }
}

impl LoadedConfig {
    /// The keys a quarantine release must be signed by: `restore.release_verify_key` when set
    /// (the admin's keys, kept apart from the backup hosts' signing key), else `None` (the
    /// reader's verify keys).
    pub fn release_keys(&self) -> Option<VerifyingKeys> {
        self.restore
            .as_ref()
            .map(|r| r.release_verify_keys.clone())
            .filter(|k| !k.is_empty())
    }

    /// The keys signatures are checked with: a restore configuration's `restore.verify_key`,
    /// or the verify key of a backup configuration's `backup.signing_key`. Empty when none is
    /// configured.
    pub fn verifying_keys(&self) -> VerifyingKeys {
        match self.mode {
            Mode::Restore => self
                .restore
                .as_ref()
                .map(|r| r.verify_keys.clone())
                .unwrap_or_default(),
            Mode::Backup => VerifyingKeys::new(
                self.backup
                    .as_ref()
                    .and_then(|b| b.signing_key.as_ref())
                    .map(|k| vec![k.verifying_key().clone()])
                    .unwrap_or_default(),
            ),
        }
    }
}

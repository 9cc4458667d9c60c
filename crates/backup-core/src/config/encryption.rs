//! `backup.encryption` and `restore.encryption`: client-side envelope encryption, the key
//! provider and its keys.
//!
//! ```yaml
//! backup:
//!   encryption:
//!     enabled: true                 # default true when the section is present
//!     algorithm: AES-256-GCM        # or AES-256 (OSO's spelling)
//!     key_provider: public-key      # public-key | aws-kms | local
//!     recipients: ["age1…"]         # public-key: inline and/or recipients_file
//! restore:
//!   encryption:                     # one block or a list of blocks (a key ring)
//!     - key_provider: public-key
//!       identity_files: [/keys/ops.agekey]
//!     - key_provider: aws-kms
//!       region: eu-west-1
//! ```
//!
//! One flat serde struct holds every provider's keys (so that values keep their lines);
//! validation then rejects a key that the chosen provider, or the mode, does not read, naming
//! the provider or mode it belongs to. Key files are read here, once, at load time.

use std::sync::Arc;

use serde::Deserialize;

use super::env::{ConfigBool, ConfigSecret, ConfigString};
use super::error::ConfigError;
use super::key_files::Private;
use super::model::{LoadedConfig, Mode};
use super::validator::Validator;
use super::vocabulary::{Keyword, KeywordSet, OneOrMany, StringList};
use crate::keys::{
    AgeIdentities, AgeRecipients, DecryptionSettings, EncryptionSettings, KeyRing, KmsCredentials,
    KmsSettings, LocalKey, ProviderKind,
};

/// `backup.encryption` or one entry of `restore.encryption`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEncryption {
    pub enabled: Option<ConfigBool>,
    pub algorithm: Option<Keyword<Algorithm>>,
    pub key_provider: Option<Keyword<ProviderName>>,
    pub recipients: Option<Vec<ConfigString>>,
    pub recipients_file: Option<ConfigString>,
    pub identity_files: Option<StringList>,
    pub kms_key_id: Option<ConfigString>,
    pub region: Option<ConfigString>,
    pub endpoint: Option<ConfigString>,
    pub allow_http: Option<ConfigBool>,
    pub access_key_id: Option<ConfigString>,
    pub secret_access_key: Option<ConfigSecret>,
    pub session_token: Option<ConfigSecret>,
    pub key_file: Option<ConfigString>,
    pub key_files: Option<StringList>,
}

/// `restore.encryption`: one block or a list.
pub(crate) type RawDecryption = OneOrMany<RawEncryption>;

/// `algorithm`: the one this version writes, under both spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Algorithm;

impl KeywordSet for Algorithm {
    const NAMES: &'static [&'static str] = &["AES-256-GCM", "AES-256"];

    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
            .then_some(Algorithm)
    }
}

/// `key_provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProviderName(ProviderKind);

impl KeywordSet for ProviderName {
    const NAMES: &'static [&'static str] = &["public-key", "aws-kms", "local"];

    fn from_name(name: &str) -> Option<Self> {
        [
            ProviderKind::PublicKey,
            ProviderKind::AwsKms,
            ProviderKind::Local,
        ]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(name))
        .map(ProviderName)
    }
}

const KMS_KEYS: &[&str] = &[
    "kms_key_id",
    "region",
    "endpoint",
    "allow_http",
    "access_key_id",
    "secret_access_key",
    "session_token",
];

/// The keys a provider reads in a mode, besides `key_provider` (and, for backups, `enabled`
/// and `algorithm`).
fn provider_keys(mode: Mode, provider: ProviderKind) -> &'static [&'static str] {
    match (mode, provider) {
        (Mode::Backup, ProviderKind::PublicKey) => &["recipients", "recipients_file"],
        (Mode::Restore, ProviderKind::PublicKey) => &["identity_files"],
        (_, ProviderKind::AwsKms) => KMS_KEYS,
        (Mode::Backup, ProviderKind::Local) => &["key_file"],
        (Mode::Restore, ProviderKind::Local) => &["key_files", "key_file"],
    }
}

/// What a key holds, for "expected ..." in parser messages; `None` for other keys.
pub(crate) fn expected_for(key: &str) -> Option<&'static str> {
    Some(match key {
        "encryption" => "a mapping with `key_provider` (public-key, aws-kms or local) and its keys",
        "enabled" => "true or false",
        "algorithm" => "AES-256-GCM",
        "key_provider" => "one of public-key, aws-kms, local",
        "recipients" => "a list of age recipients, e.g. [\"age1…\"]",
        "recipients_file" | "key_file" => "a file path",
        "identity_files" | "key_files" => "a file path, or a list of file paths",
        "kms_key_id" => "a KMS key id, key ARN or alias (alias/NAME)",
        "access_key_id" => "an access key id, usually ${VARIABLE}",
        "secret_access_key" => {
            "a string, usually ${VARIABLE} (quote it if it contains YAML special characters)"
        }
        _ => return None,
    })
}

impl Validator<'_> {
    /// Checks `backup.encryption`; `None` when absent or `enabled: false`.
    pub(super) fn backup_encryption(
        &mut self,
        raw: Option<RawEncryption>,
    ) -> Result<Option<EncryptionSettings>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let section = "backup.encryption";
        let enabled = raw.enabled.is_none_or(|b| b.value);
        let provider = raw.key_provider.map(|k| k.value.0);
        if let Some(provider) = provider {
            self.encryption_keys_belong(&raw, Mode::Backup, provider, section)?;
        }
        if !enabled {
            self.warnings.push(
                "backup.encryption.enabled is false: records are stored unencrypted, readable by \
                 anyone who can read the storage; remove `enabled: false` to encrypt them"
                    .to_owned(),
            );
            return Ok(None);
        }
        let Some(provider) = provider else {
            return Err(ConfigError::MissingKey {
                origin: self.origin.to_owned(),
                path: format!("{section}.key_provider"),
                line: raw.enabled.and_then(|b| b.line),
                expected: "one of public-key (age recipients: the backup host cannot decrypt), \
                           aws-kms, local"
                    .to_owned(),
            });
        };
        let missing = |key: &str, expected: &str| ConfigError::MissingKey {
            origin: self.origin.to_owned(),
            path: format!("{section}.{key}"),
            line: raw.key_provider.and_then(|k| k.line),
            expected: format!("{expected} (key_provider {provider} needs it)"),
        };
        Ok(Some(match provider {
            ProviderKind::PublicKey => {
                let mut recipients = AgeRecipients::new();
                for (i, r) in raw.recipients.iter().flatten().enumerate() {
                    recipients.add(&r.value).map_err(|e| {
                        self.invalid(format!("{section}.recipients[{i}]"), r.line, e)
                    })?;
                }
                if let Some(file) = &raw.recipients_file {
                    let path_key = format!("{section}.recipients_file");
                    let read = self.read_key_file(&path_key, file, None)?;
                    let text = read.text().ok_or_else(|| {
                        self.invalid(
                            path_key.clone(),
                            file.line,
                            format!(
                                "names {}, which is not text: a recipients file lists age \
                                 recipients (age1…), one per line",
                                read.path.display()
                            ),
                        )
                    })?;
                    recipients.add_file_text(text).map_err(|e| {
                        self.invalid(
                            path_key.clone(),
                            file.line,
                            format!("names {}: {e}", read.path.display()),
                        )
                    })?;
                }
                let most = backup_format::crypto::MAX_KEY_IDS;
                if recipients.ids().len() > most {
                    return Err(self.invalid(
                        format!("{section}.recipients"),
                        raw.key_provider.and_then(|k| k.line),
                        format!(
                            "lists {} recipients; at most {most} fit in a wrapped key: encrypt to \
                             fewer recipients (e.g. one team key whose identity several people \
                             hold)",
                            recipients.ids().len()
                        ),
                    ));
                }
                if recipients.is_empty() {
                    return Err(missing(
                        "recipients",
                        "a list of age recipients (age1…), or recipients_file",
                    ));
                }
                EncryptionSettings::PublicKey(recipients)
            }
            ProviderKind::AwsKms => {
                let kms = self.kms(&raw, section)?;
                if kms.key_id.is_none() {
                    return Err(missing(
                        "kms_key_id",
                        "the KMS key id, key ARN or alias (alias/NAME) that wraps the data keys",
                    ));
                }
                EncryptionSettings::AwsKms(kms)
            }
            ProviderKind::Local => {
                let Some(file) = &raw.key_file else {
                    return Err(missing(
                        "key_file",
                        "the path of a key file from `kafka-backup keys generate --type local`",
                    ));
                };
                let key = self.local_key(&format!("{section}.key_file"), file)?;
                EncryptionSettings::Local(key)
            }
        }))
    }

    /// Checks `restore.encryption`: every block becomes one entry of the key ring.
    pub(super) fn restore_encryption(
        &mut self,
        raw: Option<RawDecryption>,
    ) -> Result<Vec<DecryptionSettings>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (i, block) in raw.items.iter().enumerate() {
            let section = if raw.single {
                "restore.encryption".to_owned()
            } else {
                format!("restore.encryption[{i}]")
            };
            out.push(self.decryption_block(block, &section)?);
        }
        Ok(out)
    }

    fn decryption_block(
        &mut self,
        raw: &RawEncryption,
        section: &str,
    ) -> Result<DecryptionSettings, ConfigError> {
        for (key, line) in [
            ("enabled", raw.enabled.map(|b| b.line)),
            ("algorithm", raw.algorithm.map(|a| a.line)),
        ] {
            if let Some(line) = line {
                return Err(self.invalid(
                    format!("{section}.{key}"),
                    line,
                    format!(
                        "`{key}` applies to backups only; remove it (a restore reads how each \
                         object is encrypted from the object, and decrypts what needs it)"
                    ),
                ));
            }
        }
        let Some(provider) = raw.key_provider.map(|k| k.value.0) else {
            return Err(ConfigError::MissingKey {
                origin: self.origin.to_owned(),
                path: format!("{section}.key_provider"),
                line: None,
                expected: "one of public-key (with identity_files), aws-kms, local (with \
                           key_files)"
                    .to_owned(),
            });
        };
        self.encryption_keys_belong(raw, Mode::Restore, provider, section)?;
        let line = raw.key_provider.and_then(|k| k.line);
        Ok(match provider {
            ProviderKind::PublicKey => {
                let files = raw.identity_files.as_ref().map(|f| &f.0[..]).unwrap_or(&[]);
                if files.is_empty() {
                    return Err(self.invalid(
                        format!("{section}.identity_files"),
                        line,
                        "is missing or empty: key_provider public-key needs the age identity \
                         files (private keys) of one or more of the backup's recipients, from \
                         `age-keygen -o FILE` or `kafka-backup keys generate --type age`"
                            .to_owned(),
                    ));
                }
                let mut identities = AgeIdentities::new();
                for (i, file) in files.iter().enumerate() {
                    let path_key = if files.len() == 1 {
                        format!("{section}.identity_files")
                    } else {
                        format!("{section}.identity_files[{i}]")
                    };
                    let read = self.read_key_file(
                        &path_key,
                        file,
                        Some(Private {
                            what: "age identity file",
                            power: "decrypt every backup encrypted to its recipient",
                        }),
                    )?;
                    let parsed = read
                        .text()
                        .ok_or_else(|| "it is not text".to_owned())
                        .and_then(|t| identities.add_file_text(t));
                    parsed.map_err(|e| {
                        self.invalid(
                            path_key.clone(),
                            file.line,
                            format!(
                                "names {}, which is not an age identity file: {e}",
                                read.path.display()
                            ),
                        )
                    })?;
                }
                DecryptionSettings::PublicKey(identities)
            }
            ProviderKind::AwsKms => DecryptionSettings::AwsKms(self.kms(raw, section)?),
            ProviderKind::Local => {
                let mut files: Vec<(String, &ConfigString)> = Vec::new();
                if let Some(f) = &raw.key_file {
                    files.push((format!("{section}.key_file"), f));
                }
                if let Some(list) = &raw.key_files {
                    for (i, f) in list.0.iter().enumerate() {
                        let key = if list.0.len() == 1 {
                            format!("{section}.key_files")
                        } else {
                            format!("{section}.key_files[{i}]")
                        };
                        files.push((key, f));
                    }
                }
                if files.is_empty() {
                    return Err(self.invalid(
                        format!("{section}.key_files"),
                        line,
                        "is missing or empty: key_provider local needs the key files the backups \
                         were made with (the current one and any older ones)"
                            .to_owned(),
                    ));
                }
                let mut keys = Vec::new();
                for (path_key, file) in files {
                    keys.push(self.local_key(&path_key, file)?);
                }
                DecryptionSettings::Local(keys)
            }
        })
    }

    fn local_key(
        &mut self,
        path_key: &str,
        file: &ConfigString,
    ) -> Result<Arc<LocalKey>, ConfigError> {
        let read = self.read_key_file(
            path_key,
            file,
            Some(Private {
                what: "local key file",
                power: "decrypt every backup made with it",
            }),
        )?;
        let key = LocalKey::parse(&read.bytes).map_err(|e| {
            self.invalid(
                path_key.to_owned(),
                file.line,
                format!(
                    "names {}, which is not a local key file: {e}",
                    read.path.display()
                ),
            )
        })?;
        Ok(Arc::new(key))
    }

    /// Rejects a key that `provider` does not read in `mode`: ignoring it could drop the
    /// recipients or key the file asks for.
    fn encryption_keys_belong(
        &self,
        raw: &RawEncryption,
        mode: Mode,
        provider: ProviderKind,
        section: &str,
    ) -> Result<(), ConfigError> {
        let present: [(&str, Option<Option<u32>>); 12] = [
            (
                "recipients",
                raw.recipients
                    .as_ref()
                    .map(|v| v.first().and_then(|s| s.line)),
            ),
            (
                "recipients_file",
                raw.recipients_file.as_ref().map(|v| v.line),
            ),
            (
                "identity_files",
                raw.identity_files
                    .as_ref()
                    .map(|v| v.0.first().and_then(|s| s.line)),
            ),
            ("kms_key_id", raw.kms_key_id.as_ref().map(|v| v.line)),
            ("region", raw.region.as_ref().map(|v| v.line)),
            ("endpoint", raw.endpoint.as_ref().map(|v| v.line)),
            ("allow_http", raw.allow_http.map(|v| v.line)),
            ("access_key_id", raw.access_key_id.as_ref().map(|v| v.line)),
            (
                "secret_access_key",
                raw.secret_access_key.as_ref().map(|v| v.line),
            ),
            ("session_token", raw.session_token.as_ref().map(|v| v.line)),
            ("key_file", raw.key_file.as_ref().map(|v| v.line)),
            (
                "key_files",
                raw.key_files
                    .as_ref()
                    .map(|v| v.0.first().and_then(|s| s.line)),
            ),
        ];
        let allowed = provider_keys(mode, provider);
        for (key, line) in present {
            let Some(line) = line else { continue };
            if allowed.contains(&key) {
                continue;
            }
            let message = match (mode, key) {
                (Mode::Backup, "identity_files") => {
                    "`identity_files` are private keys, which a backup never needs and its host \
                     should never hold: a backup encrypts to recipients (public keys); give \
                     recipients (age-keygen -y IDENTITY_FILE prints them) and keep the identity \
                     files for restore.encryption"
                        .to_owned()
                }
                (Mode::Restore, "recipients" | "recipients_file") => format!(
                    "`{key}` lists public keys, which cannot decrypt; a restore needs the \
                     matching private keys: give identity_files"
                ),
                (Mode::Backup, "key_files") => {
                    "`key_files` is for restores (the current key and older ones); a backup \
                     wraps with one key: give key_file"
                        .to_owned()
                }
                _ => {
                    let owner = [
                        ProviderKind::PublicKey,
                        ProviderKind::AwsKms,
                        ProviderKind::Local,
                    ]
                    .into_iter()
                    .find(|p| provider_keys(mode, *p).contains(&key))
                    .map(|p| format!("a setting of key_provider {p}"))
                    .unwrap_or_else(|| "not used".to_owned());
                    format!(
                        "`{key}` is {owner}, but key_provider is {provider}, so it would be \
                         ignored; remove it, or change key_provider (the keys of {provider} are: \
                         {})",
                        allowed.join(", ")
                    )
                }
            };
            return Err(self.invalid(format!("{section}.{key}"), line, message));
        }
        Ok(())
    }

    fn kms(&mut self, raw: &RawEncryption, section: &str) -> Result<KmsSettings, ConfigError> {
        let key_id = match &raw.kms_key_id {
            None => None,
            Some(id) if id.value.trim().is_empty() || id.value.chars().any(char::is_whitespace) => {
                return Err(self.invalid(
                    format!("{section}.kms_key_id"),
                    id.line,
                    "is empty or contains blanks; give the key id, key ARN, alias name \
                     (alias/NAME) or alias ARN"
                        .to_owned(),
                ));
            }
            Some(id) => Some(id.value.trim().to_owned()),
        };
        let region = match &raw.region {
            None => None,
            Some(r) => {
                let value = r.value.trim();
                if value.is_empty()
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    return Err(self.invalid(
                        format!("{section}.region"),
                        r.line,
                        "is not a region name; give the key's region, e.g. eu-west-1 (or remove \
                         it to take the region from a key ARN or from AWS_REGION)"
                            .to_owned(),
                    ));
                }
                Some(value.to_owned())
            }
        };
        let endpoint = self.kms_endpoint(raw, section)?;
        let credentials = match (&raw.access_key_id, &raw.secret_access_key) {
            (Some(id), Some(secret)) => {
                if id.value.trim().is_empty() {
                    return Err(self.invalid(
                        format!("{section}.access_key_id"),
                        id.line,
                        "is empty; give the access key id (check that its ${VARIABLE} is \
                         exported), or remove access_key_id and secret_access_key to use the AWS \
                         credential chain"
                            .to_owned(),
                    ));
                }
                let non_empty = |key: &str, s: &ConfigSecret| {
                    if s.value.expose().trim().is_empty() {
                        Err(self.invalid(
                            format!("{section}.{key}"),
                            s.line,
                            "is empty; check that its ${VARIABLE} is exported and not empty"
                                .to_owned(),
                        ))
                    } else {
                        Ok(s.value.clone())
                    }
                };
                Some(KmsCredentials {
                    access_key_id: id.value.trim().to_owned(),
                    secret_access_key: non_empty("secret_access_key", secret)?,
                    session_token: raw
                        .session_token
                        .as_ref()
                        .map(|t| non_empty("session_token", t))
                        .transpose()?,
                })
            }
            (Some(id), None) => {
                return Err(self.invalid(
                    format!("{section}.access_key_id"),
                    id.line,
                    "is set without secret_access_key; add secret_access_key (from a \
                     ${VARIABLE}), or remove access_key_id to use the AWS credential chain"
                        .to_owned(),
                ));
            }
            (None, Some(secret)) => {
                return Err(self.invalid(
                    format!("{section}.secret_access_key"),
                    secret.line,
                    "is set without access_key_id; add the access key id it belongs to".to_owned(),
                ));
            }
            (None, None) => {
                if let Some(token) = &raw.session_token {
                    return Err(self.invalid(
                        format!("{section}.session_token"),
                        token.line,
                        "is set without access_key_id and secret_access_key; a session token \
                         only works with the temporary key pair it was issued with"
                            .to_owned(),
                    ));
                }
                None
            }
        };
        Ok(KmsSettings {
            key_id,
            region,
            endpoint,
            credentials,
        })
    }

    /// `endpoint`, checked against `allow_http`: KMS answers GenerateDataKey with the data key
    /// itself, so plain HTTP is only for a local test server.
    fn kms_endpoint(
        &mut self,
        raw: &RawEncryption,
        section: &str,
    ) -> Result<Option<String>, ConfigError> {
        let allow = raw.allow_http.is_some_and(|b| b.value);
        let Some(endpoint) = &raw.endpoint else {
            if allow {
                self.warnings.push(format!(
                    "{section}.allow_http is true but no endpoint is set, so AWS KMS is reached \
                     over HTTPS and the setting has no effect; remove it"
                ));
            }
            return Ok(None);
        };
        let fail =
            |message: String| self.invalid(format!("{section}.endpoint"), endpoint.line, message);
        let value = endpoint.value.trim();
        let url = url::Url::parse(value).map_err(|e| {
            fail(format!(
                "is not a URL ({e}); write it as https://host[:port]"
            ))
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(fail(
                "contains a user name or password; remove them and give the credentials in \
                 access_key_id and secret_access_key"
                    .to_owned(),
            ));
        }
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => {
                return Err(fail(
                    "has no host; write it as https://host[:port]".to_owned(),
                ));
            }
        };
        let shown = url.as_str().trim_end_matches('/').to_owned();
        match url.scheme() {
            "https" => {}
            "http" if allow => {
                if !loopback {
                    self.warnings.push(format!(
                        "{section}.allow_http is true and the KMS endpoint {shown} is not on this \
                         machine: data keys and request signatures cross the network in clear \
                         text; use https://"
                    ));
                }
            }
            "http" => {
                return Err(fail(
                    "uses http://, which would carry the data keys KMS returns in clear text; use \
                     https://, or set allow_http: true (only for a local test server such as moto)"
                        .to_owned(),
                ));
            }
            other => {
                return Err(fail(format!("uses the scheme `{other}`; use https://")));
            }
        }
        Ok(Some(shown))
    }
}

impl Validator<'_> {
    /// Warns about an unrestricted KMS entry when nothing else authenticates objects: KMS
    /// then decrypts with whatever key a wrapped key names, so storage could plant objects
    /// under a key (even of another account) whose policy lets this identity decrypt.
    pub(super) fn warn_unrestricted_kms(
        &mut self,
        decryption: &[DecryptionSettings],
        verify_keys: &backup_format::signing::VerifyingKeys,
    ) {
        let unrestricted = decryption
            .iter()
            .any(|d| matches!(d, DecryptionSettings::AwsKms(k) if k.key_id.is_none()));
        if unrestricted && verify_keys.is_empty() {
            self.warnings.push(
                "restore.encryption: an aws-kms entry has no kms_key_id, so KMS decrypts with \
                 whatever key a wrapped key names (also a key of another account whose policy \
                 allows it), and without restore.verify_key nothing tells planted objects from \
                 the backup's: set kms_key_id to the backup's key (one entry per key), or sign \
                 the backups (backup.signing_key) and set restore.verify_key"
                    .to_owned(),
            );
        }
    }
}

impl LoadedConfig {
    /// The key ring that validate, describe and restore unwrap data keys with: a restore
    /// configuration's `restore.encryption`; for a backup configuration, what the backup's own
    /// settings could unwrap (the local key, or KMS Decrypt with the same settings; nothing
    /// for public-key, whose host holds no private key). Never touches the network.
    pub fn key_ring(&self) -> KeyRing {
        let settings: Vec<DecryptionSettings> = match self.mode {
            Mode::Restore => self
                .restore
                .as_ref()
                .map(|r| r.decryption.clone())
                .unwrap_or_default(),
            Mode::Backup => self
                .backup
                .as_ref()
                .and_then(|b| b.encryption.as_ref())
                .and_then(EncryptionSettings::self_decryption)
                .into_iter()
                .collect(),
        };
        KeyRing::new(&settings)
    }
}

//! The `storage:` section: its raw serde form, its validation into
//! [`crate::storage::StorageConfig`], and the help texts for its keys.
//!
//! ```yaml
//! storage:
//!   backend: s3                  # filesystem | s3 | azure | gcs
//!   bucket: kafka-backups
//!   region: eu-west-1
//!   prefix: prod                 # optional
//!   sse: aws:kms                 # optional: AES256 | aws:kms
//!   kms_key_id: alias/kafka-backup
//!   object_lock:                 # optional, S3 only: retention set on every object written
//!     mode: GOVERNANCE           # GOVERNANCE | COMPLIANCE
//!     retain_days: 30            # 1 to 36500
//!   # endpoint, force_path_style, allow_http: for S3-compatible stores
//!   # access_key, secret_key, session_token: else the standard AWS credential chain
//! ```
//!
//! The section is optional in the file, so that `kafka-backup check` works on a file that
//! only describes a cluster; backup and restore call [`LoadedConfig::require_storage`].
//!
//! Every backend's keys live in one flat serde struct (serde's tagged enums would buffer the
//! values and lose their line numbers); validation then rejects a key of another backend with
//! a message naming the backend that uses it, and [`refine_unknown_key`] narrows the list of
//! valid keys in an unknown-key error to the chosen backend's.

use std::fmt;
use std::path::PathBuf;

use kafka_client::Secret;
use serde::Deserialize;

use super::env::{ConfigBool, ConfigSecret, ConfigString, ConfigU64};
use super::error::ConfigError;
use super::model::LoadedConfig;
use super::validator::Validator;
use super::vocabulary::{Keyword, KeywordSet};
use crate::storage::{
    AzureConfig, AzureCredentials, FilesystemConfig, GcsConfig, ObjectLock, ObjectLockMode,
    S3Config, S3Credentials, S3Encryption, StorageConfig, validate_key,
};

/// `storage:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub backend: Keyword<BackendName>,
    pub path: Option<ConfigString>,
    pub bucket: Option<ConfigString>,
    pub region: Option<ConfigString>,
    pub prefix: Option<ConfigString>,
    pub endpoint: Option<ConfigString>,
    pub force_path_style: Option<ConfigBool>,
    pub allow_http: Option<ConfigBool>,
    pub access_key: Option<ConfigString>,
    pub secret_key: Option<ConfigSecret>,
    pub session_token: Option<ConfigSecret>,
    pub sse: Option<Keyword<SseName>>,
    pub kms_key_id: Option<ConfigString>,
    pub account_name: Option<ConfigString>,
    pub container_name: Option<ConfigString>,
    pub account_key: Option<ConfigSecret>,
    pub sas_token: Option<ConfigSecret>,
    pub service_account_path: Option<ConfigString>,
    pub object_lock: Option<RawObjectLock>,
    pub connect_timeout_ms: Option<ConfigU64>,
    pub request_timeout_ms: Option<ConfigU64>,
    pub max_retries: Option<ConfigU64>,
    pub retry_timeout_ms: Option<ConfigU64>,
}

/// `storage.object_lock:` as written. Both keys are optional here so that a missing one is
/// reported with this section's own words (serde's message would describe the top-level
/// `mode`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawObjectLock {
    pub mode: Option<Keyword<ObjectLockMode>>,
    pub retain_days: Option<ConfigU64>,
}

impl RawObjectLock {
    /// The first line of the section that is known.
    fn line(&self) -> Option<u32> {
        self.mode
            .and_then(|m| m.line)
            .or(self.retain_days.and_then(|d| d.line))
    }
}

/// `storage.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackendName {
    Filesystem,
    S3,
    Azure,
    Gcs,
}

impl BackendName {
    fn as_str(self) -> &'static str {
        match self {
            Self::Filesystem => "filesystem",
            Self::S3 => "s3",
            Self::Azure => "azure",
            Self::Gcs => "gcs",
        }
    }

    /// The keys of this backend, `backend` first.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Filesystem => &["backend", "path"],
            Self::S3 => &[
                "backend",
                "bucket",
                "region",
                "prefix",
                "endpoint",
                "force_path_style",
                "allow_http",
                "access_key",
                "secret_key",
                "session_token",
                "sse",
                "kms_key_id",
                "object_lock",
            ],
            Self::Azure => &[
                "backend",
                "account_name",
                "container_name",
                "prefix",
                "account_key",
                "sas_token",
                "endpoint",
                "allow_http",
            ],
            Self::Gcs => &[
                "backend",
                "bucket",
                "prefix",
                "service_account_path",
                "endpoint",
                "allow_http",
            ],
        }
    }

    const ALL: [Self; 4] = [Self::Filesystem, Self::S3, Self::Azure, Self::Gcs];
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl KeywordSet for BackendName {
    const NAMES: &'static [&'static str] = &["filesystem", "s3", "azure", "gcs"];

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(name))
    }
}

/// `storage.sse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SseName {
    Aes256,
    Kms,
}

impl KeywordSet for SseName {
    const NAMES: &'static [&'static str] = &["AES256", "aws:kms"];

    fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("AES256") {
            Some(Self::Aes256)
        } else if name.eq_ignore_ascii_case("aws:kms") {
            Some(Self::Kms)
        } else {
            None
        }
    }
}

/// `storage.object_lock.mode`.
impl KeywordSet for ObjectLockMode {
    const NAMES: &'static [&'static str] = &["GOVERNANCE", "COMPLIANCE"];

    fn from_name(name: &str) -> Option<Self> {
        [Self::Governance, Self::Compliance]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name))
    }
}

/// What a storage key holds, for "expected ..." in parser messages; `None` for other keys.
pub(crate) fn expected_for(key: &str) -> Option<&'static str> {
    Some(match key {
        "storage" => {
            "a mapping with `backend` (filesystem, s3, azure or gcs) and that backend's settings"
        }
        "backend" => "one of filesystem, s3, azure, gcs",
        "path" => "a directory path",
        "bucket" => "a bucket name",
        "region" => "a region name, e.g. eu-west-1",
        "prefix" => "a key prefix such as backups/prod",
        "endpoint" => "a URL such as https://minio.example:9000",
        "force_path_style" | "allow_http" => "true or false",
        "access_key" => "an access key id, usually ${VARIABLE}",
        "secret_key" | "session_token" | "account_key" | "sas_token" => {
            "a string, usually ${VARIABLE} (quote it if it contains YAML special characters)"
        }
        "sse" => "AES256 or aws:kms",
        "kms_key_id" => "a KMS key id, alias or ARN",
        "account_name" => "a storage account name",
        "container_name" => "a container name",
        "service_account_path" => "a file path",
        "object_lock" => {
            "a mapping with `mode` (GOVERNANCE or COMPLIANCE) and `retain_days` (1 to 36500)"
        }
        "retain_days" => "a whole number of days, 1 to 36500",
        _ => return None,
    })
}

/// The backends that use `key`.
fn backends_using(key: &str) -> Vec<BackendName> {
    BackendName::ALL
        .into_iter()
        .filter(|b| b.keys().contains(&key))
        .collect()
}

/// An unknown key inside `storage:` lists, and is matched against, only the keys of the
/// backend the file chose (read from `text` leniently, since the parse failed).
pub(crate) fn refine_unknown_key(err: ConfigError, text: &str) -> ConfigError {
    let ConfigError::UnknownKey {
        origin,
        path,
        line,
        suggestion,
        expected,
    } = err
    else {
        return err;
    };
    let backend = path
        .strip_prefix("storage.")
        .filter(|key| !key.contains('.'))
        .and_then(|_| peek_backend(text));
    match backend {
        Some(backend) => {
            let key = path.rsplit('.').next().unwrap_or(&path);
            ConfigError::UnknownKey {
                suggestion: super::vocabulary::suggest(key, backend.keys()),
                expected: backend.keys().to_vec(),
                origin,
                path,
                line,
            }
        }
        None => ConfigError::UnknownKey {
            origin,
            path,
            line,
            suggestion,
            expected,
        },
    }
}

fn peek_backend(text: &str) -> Option<BackendName> {
    #[derive(Deserialize)]
    struct Peek {
        storage: Option<PeekStorage>,
    }
    #[derive(Deserialize)]
    struct PeekStorage {
        backend: Option<String>,
    }
    let peek: Peek = serde_saphyr::from_str_with_options(text, super::yaml_options()).ok()?;
    BackendName::from_name(peek.storage?.backend?.trim())
}

impl LoadedConfig {
    /// The `storage:` section, which backup and restore need; `origin` (the file name) is
    /// for the message when it is missing.
    pub fn require_storage(&self, origin: &str) -> Result<&StorageConfig, ConfigError> {
        self.storage
            .as_ref()
            .ok_or_else(|| ConfigError::MissingKey {
                origin: origin.to_owned(),
                path: "storage".to_owned(),
                line: None,
                expected: format!(
                    "a `storage:` section for the {}, e.g. storage: {{backend: s3, bucket: \
                     kafka-backups, region: eu-west-1}}",
                    self.mode
                ),
            })
    }
}

impl Validator<'_> {
    /// Timeouts and retries of storage requests, for every backend.
    pub(super) fn storage_options(
        &self,
        raw: &RawStorage,
    ) -> Result<crate::storage::StorageOptions, ConfigError> {
        let d = crate::storage::StorageOptions::default();
        let ms = |v: u64| std::time::Duration::from_millis(v);
        Ok(crate::storage::StorageOptions {
            connect_timeout: ms(self.bounded(
                raw.connect_timeout_ms,
                "storage.connect_timeout_ms",
                d.connect_timeout.as_millis() as u64,
                100,
                600_000,
                "ms",
            )?),
            request_timeout: ms(self.bounded(
                raw.request_timeout_ms,
                "storage.request_timeout_ms",
                d.request_timeout.as_millis() as u64,
                100,
                3_600_000,
                "ms",
            )?),
            max_retries: self.bounded(
                raw.max_retries,
                "storage.max_retries",
                d.max_retries as u64,
                0,
                100,
                "retries",
            )? as usize,
            // Signed requests may be reused for retries: keep under S3's 5 minutes.
            retry_timeout: ms(self.bounded(
                raw.retry_timeout_ms,
                "storage.retry_timeout_ms",
                d.retry_timeout.as_millis() as u64,
                100,
                240_000,
                "ms",
            )?),
        })
    }

    /// Checks `storage:` and builds the backend's settings.
    pub(super) fn storage(&mut self, raw: RawStorage) -> Result<StorageConfig, ConfigError> {
        let backend = raw.backend.value;
        let backend_line = raw.backend.line;
        self.storage_keys_belong(&raw, backend)?;
        let RawStorage {
            backend: _,
            path,
            bucket,
            region,
            prefix,
            endpoint,
            force_path_style,
            allow_http,
            access_key,
            secret_key,
            session_token,
            sse,
            kms_key_id,
            account_name,
            container_name,
            account_key,
            sas_token,
            service_account_path,
            object_lock,
            connect_timeout_ms: _,
            request_timeout_ms: _,
            max_retries: _,
            retry_timeout_ms: _,
        } = raw;
        let required = |value: Option<ConfigString>, key: &'static str| {
            value.ok_or_else(|| ConfigError::MissingKey {
                origin: self.origin.to_owned(),
                path: format!("storage.{key}"),
                line: backend_line,
                expected: format!(
                    "{} (backend {backend} needs it)",
                    expected_for(key).unwrap_or("a value")
                ),
            })
        };
        match backend {
            BackendName::Filesystem => {
                let path = required(path, "path")?;
                Ok(StorageConfig::Filesystem(FilesystemConfig {
                    path: self.storage_dir(&path)?,
                }))
            }
            BackendName::S3 => {
                let bucket = required(bucket, "bucket")?;
                let bucket = self.bucket_name(&bucket)?;
                let region = region.map(|r| self.region(&r)).transpose()?;
                let prefix = self.prefix(prefix.as_ref())?;
                let endpoint_line = endpoint.as_ref().and_then(|e| e.line);
                let endpoint = self.endpoint(endpoint.as_ref(), allow_http, backend)?;
                if let Some(url) = &endpoint
                    && !force_path_style.is_some_and(|b| b.value)
                {
                    let line = force_path_style.and_then(|b| b.line).or(endpoint_line);
                    self.check_virtual_hosted(url, line)?;
                }
                let force_path_style = force_path_style.is_some_and(|b| b.value);
                let credentials = self.s3_credentials(access_key, secret_key, session_token)?;
                let sse = self.sse(sse, kms_key_id)?;
                let object_lock = object_lock.map(|l| self.object_lock(l)).transpose()?;
                Ok(StorageConfig::S3(S3Config {
                    bucket,
                    region,
                    prefix,
                    endpoint,
                    force_path_style,
                    allow_http: allow_http.is_some_and(|b| b.value),
                    credentials,
                    sse,
                    object_lock,
                }))
            }
            BackendName::Azure => {
                let account = required(account_name, "account_name")?;
                let container = required(container_name, "container_name")?;
                let account_name = self.azure_account(&account)?;
                let container_name = self.azure_container(&container)?;
                let prefix = self.prefix(prefix.as_ref())?;
                let endpoint = self.endpoint(endpoint.as_ref(), allow_http, backend)?;
                let credentials = match (account_key, sas_token) {
                    (Some(key), Some(sas)) => {
                        return Err(self.invalid(
                            "storage.sas_token".to_owned(),
                            sas.line.or(key.line),
                            "is set together with account_key; give one of them (the account key \
                             grants everything on the account, a SAS token can be limited to this \
                             container and to write+list or read+list: prefer the SAS token)"
                                .to_owned(),
                        ));
                    }
                    (Some(key), None) => AzureCredentials::AccountKey(self.account_key(key)?),
                    (None, Some(sas)) => AzureCredentials::SasToken(self.sas_token(sas)?),
                    (None, None) => AzureCredentials::Environment,
                };
                Ok(StorageConfig::Azure(AzureConfig {
                    account_name,
                    container_name,
                    prefix,
                    endpoint,
                    allow_http: allow_http.is_some_and(|b| b.value),
                    credentials,
                }))
            }
            BackendName::Gcs => {
                let bucket = required(bucket, "bucket")?;
                let bucket = self.bucket_name(&bucket)?;
                let prefix = self.prefix(prefix.as_ref())?;
                let endpoint = self.endpoint(endpoint.as_ref(), allow_http, backend)?;
                let service_account_path = service_account_path
                    .map(|p| self.service_account_file(&p))
                    .transpose()?;
                Ok(StorageConfig::Gcs(GcsConfig {
                    bucket,
                    prefix,
                    service_account_path,
                    endpoint,
                    allow_http: allow_http.is_some_and(|b| b.value),
                }))
            }
        }
    }

    /// Rejects a key that the chosen backend does not read: ignoring it would, for example,
    /// drop the encryption the file asks for.
    fn storage_keys_belong(
        &self,
        raw: &RawStorage,
        backend: BackendName,
    ) -> Result<(), ConfigError> {
        let present: [(&str, Option<Option<u32>>); 18] = [
            ("path", raw.path.as_ref().map(|v| v.line)),
            ("bucket", raw.bucket.as_ref().map(|v| v.line)),
            ("region", raw.region.as_ref().map(|v| v.line)),
            ("prefix", raw.prefix.as_ref().map(|v| v.line)),
            ("endpoint", raw.endpoint.as_ref().map(|v| v.line)),
            ("force_path_style", raw.force_path_style.map(|v| v.line)),
            ("allow_http", raw.allow_http.map(|v| v.line)),
            ("access_key", raw.access_key.as_ref().map(|v| v.line)),
            ("secret_key", raw.secret_key.as_ref().map(|v| v.line)),
            ("session_token", raw.session_token.as_ref().map(|v| v.line)),
            ("sse", raw.sse.map(|v| v.line)),
            ("kms_key_id", raw.kms_key_id.as_ref().map(|v| v.line)),
            ("account_name", raw.account_name.as_ref().map(|v| v.line)),
            (
                "container_name",
                raw.container_name.as_ref().map(|v| v.line),
            ),
            ("account_key", raw.account_key.as_ref().map(|v| v.line)),
            ("sas_token", raw.sas_token.as_ref().map(|v| v.line)),
            (
                "service_account_path",
                raw.service_account_path.as_ref().map(|v| v.line),
            ),
            ("object_lock", raw.object_lock.as_ref().map(|v| v.line())),
        ];
        for (key, line) in present {
            let Some(line) = line else { continue };
            if backend.keys().contains(&key) {
                continue;
            }
            let users = backends_using(key);
            let names: Vec<&str> = users.iter().map(|b| b.as_str()).collect();
            let owner = match names.as_slice() {
                [one] => format!("a setting of the {one} backend"),
                many => format!("a setting of the {} backends", many.join(" and ")),
            };
            let advice = match (key, backend) {
                ("sse" | "kms_key_id", BackendName::Azure) => {
                    "; Azure Blob Storage always encrypts at rest (with Microsoft-managed keys, or \
                     the customer-managed key configured on the storage account), so remove it"
                        .to_owned()
                }
                ("sse" | "kms_key_id", BackendName::Gcs) => {
                    "; Google Cloud Storage always encrypts at rest (with Google-managed keys, or \
                     the bucket's default Cloud KMS key), so remove it"
                        .to_owned()
                }
                ("sse" | "kms_key_id", BackendName::Filesystem) => {
                    "; the file system backend does not encrypt: use an encrypted volume, and \
                     remove it"
                        .to_owned()
                }
                ("object_lock", BackendName::Azure) => {
                    "; Azure Blob Storage sets immutability on the container (a time-based \
                     retention policy, which can be locked) or, with version-level immutability, \
                     as the container's or account's default for every new blob version, not per \
                     write: configure it there and remove object_lock"
                        .to_owned()
                }
                ("object_lock", BackendName::Gcs) => {
                    "; Google Cloud Storage sets retention on the bucket (a bucket retention \
                     policy, which can be locked), not per write: configure it there and remove \
                     object_lock"
                        .to_owned()
                }
                ("object_lock", BackendName::Filesystem) => {
                    "; a file system has no object lock: store backups on S3 with Object Lock (or \
                     on a WORM volume), and remove it"
                        .to_owned()
                }
                _ => format!(
                    "; remove it, or set backend: {} if that is the storage meant (the keys of \
                     the {backend} backend are: {})",
                    names.first().copied().unwrap_or(""),
                    backend.keys().join(", ")
                ),
            };
            return Err(self.invalid(
                format!("storage.{key}"),
                line,
                format!(
                    "`{key}` is {owner}, but backend is {backend}, so it would be ignored{advice}"
                ),
            ));
        }
        Ok(())
    }

    fn storage_dir(&self, path: &ConfigString) -> Result<PathBuf, ConfigError> {
        let fail =
            |message: &str| self.invalid("storage.path".to_owned(), path.line, message.to_owned());
        if path.value.trim().is_empty() {
            return Err(fail(
                "is empty; give the directory to store backups in, e.g. /var/backups/kafka",
            ));
        }
        if path.value.chars().any(char::is_control) {
            return Err(fail(
                "contains a control character; give a plain directory path",
            ));
        }
        std::path::absolute(&path.value).map_err(|e| {
            self.invalid(
                "storage.path".to_owned(),
                path.line,
                format!(
                    "is relative and the working directory cannot be read ({e}); give an absolute \
                     path"
                ),
            )
        })
    }

    fn bucket_name(&self, bucket: &ConfigString) -> Result<String, ConfigError> {
        let value = bucket.value.trim();
        let fail =
            |message: String| self.invalid("storage.bucket".to_owned(), bucket.line, message);
        let rule = "bucket names are 3 to 222 characters of a-z, 0-9, `.`, `-` (and `_` on GCS); \
                    give the name alone, without s3:// or gs:// and without a path";
        if value.is_empty() {
            return Err(fail(format!("is empty; {rule}")));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(fail(format!(
                "contains `{}`, which is not allowed; {rule}",
                bad.escape_debug()
            )));
        }
        if !(3..=222).contains(&value.len()) {
            return Err(fail(format!("is {} characters long; {rule}", value.len())));
        }
        Ok(value.to_owned())
    }

    fn region(&self, region: &ConfigString) -> Result<String, ConfigError> {
        let value = region.value.trim();
        if value.is_empty()
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(self.invalid(
                "storage.region".to_owned(),
                region.line,
                "is not a region name; give the bucket's region, e.g. eu-west-1 (remove the key to \
                 take AWS_REGION from the environment)"
                    .to_owned(),
            ));
        }
        Ok(value.to_owned())
    }

    fn prefix(&self, prefix: Option<&ConfigString>) -> Result<String, ConfigError> {
        let Some(prefix) = prefix else {
            return Ok(String::new());
        };
        let value = prefix.value.trim().trim_matches('/');
        if value.is_empty() {
            return Ok(String::new());
        }
        validate_key(value).map_err(|reason| {
            self.invalid(
                "storage.prefix".to_owned(),
                prefix.line,
                format!(
                    "is not a usable prefix: {reason}; use `/`-separated segments of A-Z, a-z, \
                     0-9, `.`, `_`, `-` and `=`, e.g. backups/prod"
                ),
            )
        })?;
        Ok(value.to_owned())
    }

    /// Checks `endpoint` against `allow_http`; returns it without a trailing `/`.
    fn endpoint(
        &mut self,
        endpoint: Option<&ConfigString>,
        allow_http: Option<ConfigBool>,
        backend: BackendName,
    ) -> Result<Option<String>, ConfigError> {
        let allow = allow_http.is_some_and(|b| b.value);
        let Some(endpoint) = endpoint else {
            if allow {
                self.warnings.push(
                    "storage.allow_http is true but no endpoint is set, so the service's HTTPS \
                     endpoint is used and the setting has no effect; remove it"
                        .to_owned(),
                );
            }
            return Ok(None);
        };
        let fail =
            |message: String| self.invalid("storage.endpoint".to_owned(), endpoint.line, message);
        let value = endpoint.value.trim();
        let url = url::Url::parse(value).map_err(|e| {
            fail(format!(
                "is not a URL ({e}); write it as https://host[:port], e.g. \
                 https://minio.example:9000"
            ))
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            // Not quoted: it holds a password.
            return Err(fail(
                "contains a user name or password (user:password@); remove them from the URL and \
                 give the credentials in their own keys, from ${VARIABLES}"
                    .to_owned(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            // Not quoted: a query string may be a SAS token.
            let hint = if backend == BackendName::Azure {
                " (a SAS token goes in storage.sas_token)"
            } else {
                ""
            };
            return Err(fail(format!(
                "has a query string or fragment; give the endpoint alone{hint}"
            )));
        }
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(fail(format!(
                "uses the scheme `{scheme}`; use https:// (or http:// with allow_http: true for a \
                 local test server)"
            )));
        }
        let Some(host) = url.host() else {
            return Err(fail(
                "has no host; write it as https://host[:port]".to_owned(),
            ));
        };
        let loopback = match host {
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
            url::Host::Domain(d) => {
                d.eq_ignore_ascii_case("localhost")
                    || d.to_ascii_lowercase().ends_with(".localhost")
            }
        };
        let shown = url.as_str().trim_end_matches('/').to_owned();
        if scheme == "http" && !allow {
            return Err(fail(format!(
                "uses http://, which sends the credentials' signatures and all backed-up data \
                 unencrypted; use https://, or set allow_http: true (only for a local test \
                 server such as {})",
                match backend {
                    BackendName::Azure => "Azurite",
                    BackendName::Gcs => "fake-gcs-server",
                    _ => "MinIO or moto",
                }
            )));
        }
        if allow && scheme == "http" && !loopback {
            self.warnings.push(format!(
                "storage.allow_http is true and the endpoint {shown} is not on this machine: \
                 request signatures, tokens and every backed-up record cross the network in clear \
                 text, readable and alterable by anyone on the path; use https://"
            ));
        } else if allow && scheme == "https" {
            self.warnings.push(format!(
                "storage.allow_http is true but the endpoint {shown} uses https://, so the \
                 setting has no effect; remove it"
            ));
        }
        Ok(Some(shown))
    }

    /// Virtual-hosted-style requests put the bucket into the host name, which cannot work for
    /// an IP address or `localhost`.
    fn check_virtual_hosted(&self, endpoint: &str, line: Option<u32>) -> Result<(), ConfigError> {
        let Ok(url) = url::Url::parse(endpoint) else {
            return Ok(());
        };
        let unusable = match url.host() {
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if unusable {
            return Err(self.invalid(
                "storage.force_path_style".to_owned(),
                line,
                format!(
                    "is not true, so requests would go to BUCKET.{} (virtual-hosted style), \
                     which cannot resolve for an IP address or localhost; set force_path_style: \
                     true (as MinIO, moto and most S3-compatible servers need)",
                    url.host_str().unwrap_or("")
                ),
            ));
        }
        Ok(())
    }

    fn s3_credentials(
        &self,
        access_key: Option<ConfigString>,
        secret_key: Option<ConfigSecret>,
        session_token: Option<ConfigSecret>,
    ) -> Result<Option<S3Credentials>, ConfigError> {
        match (access_key, secret_key) {
            (Some(key), Some(secret)) => {
                let access_key_id = key.value.trim().to_owned();
                if access_key_id.is_empty() {
                    return Err(self.invalid(
                        "storage.access_key".to_owned(),
                        key.line,
                        "is empty; give the access key id (check that its ${VARIABLE} is \
                         exported), or remove access_key and secret_key to use the AWS credential \
                         chain"
                            .to_owned(),
                    ));
                }
                let secret_access_key = self.non_empty_secret("secret_key", secret)?;
                let session_token = session_token
                    .map(|t| self.non_empty_secret("session_token", t))
                    .transpose()?;
                Ok(Some(S3Credentials {
                    access_key_id,
                    secret_access_key,
                    session_token,
                }))
            }
            (Some(key), None) => Err(self.invalid(
                "storage.access_key".to_owned(),
                key.line,
                "is set without secret_key; add secret_key (from a ${VARIABLE}), or remove \
                 access_key to use the AWS credential chain (environment, web identity, instance \
                 role)"
                    .to_owned(),
            )),
            (None, Some(secret)) => Err(self.invalid(
                "storage.secret_key".to_owned(),
                secret.line,
                "is set without access_key; add the access key id it belongs to".to_owned(),
            )),
            (None, None) => match session_token {
                Some(token) => Err(self.invalid(
                    "storage.session_token".to_owned(),
                    token.line,
                    "is set without access_key and secret_key; a session token only works with \
                     the temporary key pair it was issued with"
                        .to_owned(),
                )),
                None => Ok(None),
            },
        }
    }

    fn non_empty_secret(&self, key: &str, secret: ConfigSecret) -> Result<Secret, ConfigError> {
        if secret.value.expose().trim().is_empty() {
            return Err(self.invalid(
                format!("storage.{key}"),
                secret.line,
                "is empty; check that its ${VARIABLE} is exported and not empty".to_owned(),
            ));
        }
        Ok(secret.value)
    }

    fn sse(
        &self,
        sse: Option<Keyword<SseName>>,
        kms_key_id: Option<ConfigString>,
    ) -> Result<Option<S3Encryption>, ConfigError> {
        let key_id = match kms_key_id {
            Some(id) if id.value.trim().is_empty() => {
                return Err(self.invalid(
                    "storage.kms_key_id".to_owned(),
                    id.line,
                    "is empty; give the KMS key id, alias (alias/...) or ARN, or remove it to use \
                     the AWS managed key aws/s3"
                        .to_owned(),
                ));
            }
            other => other,
        };
        match (sse.map(|s| s.value), key_id) {
            (Some(SseName::Kms), id) => Ok(Some(S3Encryption::Kms {
                key_id: id.map(|i| i.value.trim().to_owned()),
            })),
            (Some(SseName::Aes256), None) => Ok(Some(S3Encryption::Aes256)),
            (None, None) => Ok(None),
            (sse_value, Some(id)) => Err(self.invalid(
                "storage.kms_key_id".to_owned(),
                id.line,
                format!(
                    "is set but sse is {}, so the key would not be used; set sse: aws:kms",
                    if sse_value.is_some() {
                        "AES256"
                    } else {
                        "not set"
                    }
                ),
            )),
        }
    }

    fn object_lock(&self, raw: RawObjectLock) -> Result<ObjectLock, ConfigError> {
        let line = raw.line();
        let mode = raw.mode.ok_or_else(|| ConfigError::MissingKey {
            origin: self.origin.to_owned(),
            path: "storage.object_lock.mode".to_owned(),
            line,
            expected: "GOVERNANCE or COMPLIANCE (the S3 Object Lock retention mode)".to_owned(),
        })?;
        let days = raw.retain_days.ok_or_else(|| ConfigError::MissingKey {
            origin: self.origin.to_owned(),
            path: "storage.object_lock.retain_days".to_owned(),
            line,
            expected: format!(
                "a whole number of days, 1 to {} (how long each object stays locked after it \
                 is written)",
                ObjectLock::MAX_RETAIN_DAYS
            ),
        })?;
        let retain_days = u32::try_from(days.value)
            .ok()
            .filter(|d| (1..=ObjectLock::MAX_RETAIN_DAYS).contains(d))
            .ok_or_else(|| {
                self.invalid(
                    "storage.object_lock.retain_days".to_owned(),
                    days.line,
                    format!(
                        "is {}; give 1 to {} days ({})",
                        days.value,
                        ObjectLock::MAX_RETAIN_DAYS,
                        if days.value == 0 {
                            "0 days would protect nothing; remove object_lock to write without \
                             a retention"
                        } else {
                            "100 years is the longest retention kafka-backup sets"
                        }
                    ),
                )
            })?;
        Ok(ObjectLock {
            mode: mode.value,
            retain_days,
        })
    }

    fn azure_account(&self, account: &ConfigString) -> Result<String, ConfigError> {
        let value = account.value.trim();
        if !(3..=24).contains(&value.len())
            || !value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(self.invalid(
                "storage.account_name".to_owned(),
                account.line,
                format!(
                    "`{}` is not a storage account name: 3 to 24 lowercase letters and digits \
                     (the name alone, not the URL: the endpoint goes in storage.endpoint)",
                    value.escape_debug()
                ),
            ));
        }
        Ok(value.to_owned())
    }

    fn azure_container(&self, container: &ConfigString) -> Result<String, ConfigError> {
        let value = container.value.trim();
        let valid = (3..=63).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !value.starts_with('-')
            && !value.ends_with('-')
            && !value.contains("--");
        if !valid {
            return Err(self.invalid(
                "storage.container_name".to_owned(),
                container.line,
                format!(
                    "`{}` is not a container name: 3 to 63 lowercase letters, digits and single \
                     hyphens, starting and ending with a letter or digit",
                    value.escape_debug()
                ),
            ));
        }
        Ok(value.to_owned())
    }

    fn account_key(&self, key: ConfigSecret) -> Result<Secret, ConfigError> {
        let line = key.line;
        let secret = self.non_empty_secret("account_key", key)?;
        if !is_base64(secret.expose().trim()) {
            return Err(self.invalid(
                "storage.account_key".to_owned(),
                line,
                "is not base64 (the value is not shown); use key1 or key2 from the storage \
                 account's Access keys page, exactly as shown"
                    .to_owned(),
            ));
        }
        Ok(Secret::new(secret.expose().trim()))
    }

    fn sas_token(&self, sas: ConfigSecret) -> Result<Secret, ConfigError> {
        let line = sas.line;
        let secret = self.non_empty_secret("sas_token", sas)?;
        let value = secret.expose().trim();
        if value.contains("://") {
            return Err(self.invalid(
                "storage.sas_token".to_owned(),
                line,
                "is a URL (the value is not shown); give only its query string, the part after \
                 `?` (sv=...&sig=...), and the account in storage.account_name"
                    .to_owned(),
            ));
        }
        if !value
            .trim_start_matches('?')
            .split('&')
            .any(|p| p.starts_with("sig="))
        {
            return Err(self.invalid(
                "storage.sas_token".to_owned(),
                line,
                "has no sig= parameter, so it is not a SAS token (the value is not shown); copy \
                 the whole token (sv=...&sig=...)"
                    .to_owned(),
            ));
        }
        Ok(Secret::new(value))
    }

    fn service_account_file(&mut self, path: &ConfigString) -> Result<PathBuf, ConfigError> {
        let file = self.readable_file("storage.service_account_path", path)?;
        let file = std::path::absolute(&file).unwrap_or(file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(&file) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o044 != 0 {
                    self.warnings.push(format!(
                        "storage.service_account_path: the service account key {} is readable by \
                         other users (mode {mode:03o}); whoever can read it can act as that \
                         service account: run chmod 600 {}",
                        file.display(),
                        file.display()
                    ));
                }
            }
        }
        Ok(file)
    }
}

/// Standard base64 with padding, as Azure shows account keys.
fn is_base64(value: &str) -> bool {
    !value.is_empty()
        && value.len().is_multiple_of(4)
        && value
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        && value.len() - value.trim_end_matches('=').len() <= 2
}

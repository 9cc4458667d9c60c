//! The validated `storage:` settings: what [`super::Storage::open`] needs to reach one
//! backend. The configuration loader builds these from the YAML file (and checks them); a
//! program or a test may also build them directly.
//!
//! Secrets (`secret_key`, `session_token`, `account_key`, `sas_token`) are
//! [`kafka_client::Secret`], so `Debug` and `Display` of every type here print `***` for them.

use std::fmt;
use std::path::PathBuf;

use kafka_client::Secret;

/// Where backups are stored, and how to authenticate there.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// A directory on a local or mounted file system.
    Filesystem(FilesystemConfig),
    /// Amazon S3 or an S3-compatible store.
    S3(S3Config),
    /// Azure Blob Storage.
    Azure(AzureConfig),
    /// Google Cloud Storage.
    Gcs(GcsConfig),
}

impl StorageConfig {
    /// The `backend` name as written in configuration.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Filesystem(_) => "filesystem",
            Self::S3(_) => "s3",
            Self::Azure(_) => "azure",
            Self::Gcs(_) => "gcs",
        }
    }

    /// The key prefix inside the bucket or container (`""` for none; always `""` for the
    /// file system, whose `path` is the root).
    pub fn prefix(&self) -> &str {
        match self {
            Self::Filesystem(_) => "",
            Self::S3(c) => &c.prefix,
            Self::Azure(c) => &c.prefix,
            Self::Gcs(c) => &c.prefix,
        }
    }
}

/// One line for the startup log: backend, location and how it authenticates. Never shows a
/// secret.
impl fmt::Display for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Filesystem(c) => write!(f, "filesystem {}", c.path.display()),
            Self::S3(c) => {
                write!(f, "s3://{}", c.bucket)?;
                slash_prefix(f, &c.prefix)?;
                if let Some(endpoint) = &c.endpoint {
                    write!(f, " at {endpoint}")?;
                }
                if let Some(region) = &c.region {
                    write!(f, " in {region}")?;
                }
                match &c.sse {
                    Some(S3Encryption::Aes256) => f.write_str(", SSE AES256")?,
                    Some(S3Encryption::Kms { key_id: Some(id) }) => {
                        write!(f, ", SSE aws:kms with key {id}")?
                    }
                    Some(S3Encryption::Kms { key_id: None }) => {
                        f.write_str(", SSE aws:kms with the AWS managed key")?
                    }
                    None => {}
                }
                if let Some(lock) = &c.object_lock {
                    write!(f, ", object lock {lock}")?;
                }
                match &c.credentials {
                    Some(creds) => write!(f, ", access key {}", creds.access_key_id),
                    None => f.write_str(", credentials from the environment"),
                }
            }
            Self::Azure(c) => {
                write!(
                    f,
                    "azure account {} container {}",
                    c.account_name, c.container_name
                )?;
                if !c.prefix.is_empty() {
                    write!(f, " prefix {}", c.prefix)?;
                }
                if let Some(endpoint) = &c.endpoint {
                    write!(f, " at {endpoint}")?;
                }
                match c.credentials {
                    AzureCredentials::AccountKey(_) => f.write_str(", account key"),
                    AzureCredentials::SasToken(_) => f.write_str(", SAS token"),
                    AzureCredentials::Environment => {
                        f.write_str(", credentials from the environment")
                    }
                }
            }
            Self::Gcs(c) => {
                write!(f, "gs://{}", c.bucket)?;
                slash_prefix(f, &c.prefix)?;
                if let Some(endpoint) = &c.endpoint {
                    write!(f, " at {endpoint}")?;
                }
                match &c.service_account_path {
                    Some(p) => write!(f, ", service account {}", p.display()),
                    None => f.write_str(", application default credentials"),
                }
            }
        }
    }
}

fn slash_prefix(f: &mut fmt::Formatter<'_>, prefix: &str) -> fmt::Result {
    if prefix.is_empty() {
        Ok(())
    } else {
        write!(f, "/{prefix}")
    }
}

/// `backend: filesystem`.
#[derive(Debug, Clone)]
pub struct FilesystemConfig {
    /// The root directory, absolute. Created with mode 0700 when missing.
    pub path: PathBuf,
}

/// `backend: s3`.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The region; `None` takes `AWS_REGION`, then `AWS_DEFAULT_REGION`, then `us-east-1`.
    pub region: Option<String>,
    /// Key prefix inside the bucket, without leading or trailing `/` (`""` for none).
    pub prefix: String,
    /// An S3-compatible endpoint (`https://minio.example:9000`); `None` for AWS.
    pub endpoint: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`) rather than virtual-hosted ones
    /// (`bucket.endpoint/key`).
    pub force_path_style: bool,
    /// Allow an `http://` endpoint.
    pub allow_http: bool,
    /// Static credentials; `None` uses the environment (see [`super::Storage::open`]).
    pub credentials: Option<S3Credentials>,
    /// Server-side encryption requested on every put; `None` leaves it to the bucket's default
    /// encryption.
    pub sse: Option<S3Encryption>,
    /// S3 Object Lock retention set on every object written; `None` leaves it to the bucket
    /// (its default retention, if it has one).
    pub object_lock: Option<ObjectLock>,
}

impl S3Config {
    /// A configuration for `bucket` with every other setting at its default.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            region: None,
            prefix: String::new(),
            endpoint: None,
            force_path_style: false,
            allow_http: false,
            credentials: None,
            sse: None,
            object_lock: None,
        }
    }
}

/// `access_key`, `secret_key` and `session_token`.
#[derive(Debug, Clone)]
pub struct S3Credentials {
    /// The access key id (not a secret: it names the key, and appears in server logs).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// A session token, for temporary credentials.
    pub session_token: Option<Secret>,
}

/// `sse` (and `kms_key_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3Encryption {
    /// `sse: AES256`: SSE-S3, keys managed by S3.
    Aes256,
    /// `sse: aws:kms`: SSE-KMS with `key_id`, or with the AWS managed key `aws/s3` when
    /// `None`.
    Kms {
        /// Key id, alias or ARN.
        key_id: Option<String>,
    },
}

/// `object_lock:` (S3 only): the retention every object gets when it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLock {
    /// GOVERNANCE or COMPLIANCE.
    pub mode: ObjectLockMode,
    /// Days from the write until the retention ends, 1 to [`ObjectLock::MAX_RETAIN_DAYS`].
    pub retain_days: u32,
}

impl ObjectLock {
    /// The longest retention accepted: 100 years.
    pub const MAX_RETAIN_DAYS: u32 = 36_500;
}

impl fmt::Display for ObjectLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} retention of {} day{}",
            self.mode,
            self.retain_days,
            if self.retain_days == 1 { "" } else { "s" }
        )
    }
}

/// S3 Object Lock retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectLockMode {
    /// Identities with `s3:BypassGovernanceRetention` may still shorten the retention or
    /// delete the object version (with the bypass header); nobody else can.
    Governance,
    /// Nobody, not even the account root user, can shorten the retention or delete the object
    /// version before it ends.
    Compliance,
}

impl ObjectLockMode {
    /// The value of S3's `x-amz-object-lock-mode` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Governance => "GOVERNANCE",
            Self::Compliance => "COMPLIANCE",
        }
    }
}

impl fmt::Display for ObjectLockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `backend: azure`.
#[derive(Debug, Clone)]
pub struct AzureConfig {
    /// The storage account.
    pub account_name: String,
    /// The blob container.
    pub container_name: String,
    /// Blob name prefix, without leading or trailing `/` (`""` for none).
    pub prefix: String,
    /// The account's blob endpoint, for Azurite or sovereign clouds (Azurite:
    /// `http://127.0.0.1:10000/devstoreaccount1`); `None` for
    /// `https://ACCOUNT.blob.core.windows.net`.
    pub endpoint: Option<String>,
    /// Allow an `http://` endpoint.
    pub allow_http: bool,
    /// How to authenticate.
    pub credentials: AzureCredentials,
}

/// Azure authentication.
#[derive(Debug, Clone)]
pub enum AzureCredentials {
    /// `account_key`: shared key.
    AccountKey(Secret),
    /// `sas_token`: a shared access signature (`sv=...&sig=...`, with or without `?`).
    SasToken(Secret),
    /// Neither: workload identity, a service principal secret or managed identity, as the
    /// environment provides (see [`super::Storage::open`]).
    Environment,
}

/// `backend: gcs`.
#[derive(Debug, Clone)]
pub struct GcsConfig {
    /// The bucket.
    pub bucket: String,
    /// Object name prefix, without leading or trailing `/` (`""` for none).
    pub prefix: String,
    /// Service account key file; `None` uses application default credentials.
    pub service_account_path: Option<PathBuf>,
    /// Another endpoint (an emulator such as fake-gcs-server); `None` for
    /// `https://storage.googleapis.com`.
    pub endpoint: Option<String>,
    /// Allow an `http://` endpoint.
    pub allow_http: bool,
}

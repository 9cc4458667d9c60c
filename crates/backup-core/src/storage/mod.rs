//! Object storage for backups: a local directory, Amazon S3 (or an S3-compatible store),
//! Azure Blob Storage or Google Cloud Storage, through the `object_store` crate.
//!
//! [`Storage`] offers exactly what the tool needs and nothing that could destroy data:
//!
//! - [`Storage::put_new`] creates an object and never replaces one (`PutMode::Create`:
//!   `If-None-Match: *` on S3 and Azure, `ifGenerationMatch=0` on GCS, a hard link that
//!   fails on an existing name on the file system). A taken key is read back (bounded by the
//!   size being written): the very same bytes mean an earlier attempt of this write stored
//!   them and lost its answer, which counts as written ([`PutOutcome::AlreadyStored`]); other
//!   bytes are [`StorageError::AlreadyExists`]. On S3 with [`S3Config::object_lock`], every object is
//!   written with that S3 Object Lock retention, set by the `PutObject` request itself (its
//!   `x-amz-object-lock-*` headers, signed with it): there is no second request a crash could
//!   skip. A bucket without Object Lock refuses such writes:
//!   [`StorageError::ObjectLockNotEnabled`].
//! - [`Storage::list`] / [`Storage::list_stream`], [`Storage::get`], [`Storage::get_range`],
//!   [`Storage::head`].
//! - [`Storage::get_bounded`] reads a whole object of bounded size from storage that is not
//!   trusted: it holds at most the limit (plus one read buffer) and stops with
//!   [`StorageError::TooLarge`] as soon as more arrives, whatever sizes the storage claimed;
//!   [`Storage::check_listed_size`] refuses a listed object above the limit before any
//!   request.
//! - There is no delete of anything kafka-backup wrote, and no way to reach the underlying
//!   store: [`Storage::probe_delete`] only tries to delete the permission probe's own canary
//!   objects (under [`PROBE_PREFIX`]) and refuses every other key before any request.
//! - [`Storage::verify_reachable`] is the start-up probe. It lists the prefix (one request),
//!   because `s3:ListBucket` (or its equivalent) is the one permission both the write-only
//!   backup identity and the read-only restore identity have; it never writes or reads an
//!   object.
//!
//! Keys are relative to the configured prefix (`storage.prefix`, or `storage.path` for the
//! file system), `/`-separated, and limited to `A-Z a-z 0-9 . _ - =` so that every backend
//! stores them the same way, without percent-encoding.
//!
//! # Credentials
//!
//! From the configuration when given there, otherwise from the environment, reading only the
//! variables listed here (never the builders' `from_env()`, which would also pick up
//! settings such as `AWS_ALLOW_HTTP`):
//!
//! - **S3**: `access_key`/`secret_key` (+ `session_token`); else `AWS_ACCESS_KEY_ID` +
//!   `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`); else web identity / IRSA
//!   (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, optional `AWS_ROLE_SESSION_NAME`,
//!   `AWS_ENDPOINT_URL_STS`); else the ECS task role (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`);
//!   else EKS Pod Identity (`AWS_CONTAINER_CREDENTIALS_FULL_URI` +
//!   `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`); else EC2 instance metadata (IMDSv2 only).
//!   Not supported by `object_store`: named profiles (`~/.aws/credentials`, `~/.aws/config`,
//!   `AWS_PROFILE`), SSO, `credential_process`, and role chaining.
//! - **Azure**: `account_key` or `sas_token`; else workload identity (`AZURE_CLIENT_ID` +
//!   `AZURE_TENANT_ID` + `AZURE_FEDERATED_TOKEN_FILE`, optional `AZURE_AUTHORITY_HOST`); else a
//!   service principal secret (`AZURE_CLIENT_ID` + `AZURE_TENANT_ID` + `AZURE_CLIENT_SECRET`);
//!   else managed identity (user-assigned when `AZURE_CLIENT_ID` is set). The Azure CLI
//!   credential that `object_store` also has is not offered: it is for interactive use.
//! - **GCS**: `service_account_path`; else application default credentials:
//!   `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's `application_default_credentials.json`, then
//!   the GCE metadata server. Emulators without authentication (fake-gcs-server) work with a
//!   service account file of `{"disable_oauth": true, "client_email": "", "private_key": ""}`,
//!   `object_store`'s convention for them.
//!
//! # Timeouts and retries
//!
//! See [`StorageOptions`]: 5 s to connect, 120 s per request, and `object_store`'s retries
//! (5xx, connection errors, and timeouts of idempotent requests) limited to 5 retries within
//! 60 s, with exponential backoff from 100 ms to 5 s. `object_store` does not retry a
//! create-only write that timed out or was cut off once sent; [`Storage::put_new`] does, within
//! the same budget, since its read-back makes such a retry safe. Past that the error surfaces, and
//! [`StorageError::is_retriable`] says whether a later, higher-level retry may help.

mod backends;
mod bucket;
mod error;
mod object_lock;
mod settings;

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use kafka_client::Secret;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub use bucket::{Answer, BucketFacts, BucketLock};
pub use error::{Missing, Operation, StorageError};
pub use settings::{
    AzureConfig, AzureCredentials, FilesystemConfig, GcsConfig, ObjectLock, ObjectLockMode,
    S3Config, S3Credentials, S3Encryption, StorageConfig,
};

use error::{Facts, Variant, sanitize};

/// Longest key accepted, in bytes (S3's limit for a whole key is 1024).
pub const MAX_KEY_BYTES: usize = 1024;

/// First pause before [`Storage::put_new`] tries a cut-off write again; doubled each time, as
/// `object_store`'s own backoff is.
const PUT_RETRY_FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest such pause.
const PUT_RETRY_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether `err` is a request that was sent, or may have been, and then timed out or lost its
/// connection without an answer (or in the middle of one): what `object_store` does not retry
/// for requests it cannot tell are idempotent, nor while it reads a listing's body.
fn cut_off(err: &object_store::Error) -> bool {
    let facts = Facts::read(err);
    facts.status.is_none()
        && matches!(
            facts.transport,
            Some(
                object_store::client::HttpErrorKind::Timeout
                    | object_store::client::HttpErrorKind::Interrupted
            )
        )
}

/// [`cut_off`], or a connection closed before the answer was complete: for listings, whose
/// bodies `object_store` reads after its retries are done with.
fn listing_cut_off(err: &object_store::Error) -> bool {
    cut_off(err) || Facts::read(err).transport == Some(object_store::client::HttpErrorKind::Request)
}

/// What [`Storage::put_new`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// This call created the object.
    Created,
    /// The key already held exactly these bytes: an earlier attempt of this write had stored
    /// them, and its answer was lost.
    AlreadyStored,
}

/// Timeouts and retry budget of the HTTP backends (the file system has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageOptions {
    /// TCP connect and TLS handshake. Default 5 s.
    pub connect_timeout: Duration,
    /// One whole request, body included. Default 120 s: enough for a few hundred MiB at a
    /// few MB/s; raise it for larger objects on slow links.
    pub request_timeout: Duration,
    /// Retries of one request (5xx, connection errors, timeouts of idempotent requests).
    /// Default 5.
    pub max_retries: usize,
    /// No retry starts later than this after the first attempt. Default 60 s (it also bounds
    /// how long signed requests are reused, which must stay under 5 minutes).
    pub retry_timeout: Duration,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(120),
            max_retries: 5,
            retry_timeout: Duration::from_secs(60),
        }
    }
}

/// An object, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key, relative to the configured prefix.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was written.
    pub last_modified: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Filesystem,
    S3,
    Azure,
    Gcs,
}

/// Everything errors need to name: where the data is, and who is asking.
pub(crate) struct Target {
    backend: Backend,
    /// Bucket, container, or root directory.
    container: String,
    /// Azure storage account.
    account: Option<String>,
    /// Prefix inside the bucket or container.
    prefix: String,
    /// The endpoint URL (or root directory) for "unreachable" messages.
    endpoint: String,
    /// Which credentials are used, in words, without secrets.
    credential_source: String,
    /// SSE-KMS is requested: KMS permissions are needed too.
    kms: bool,
    /// Values masked in any text that comes from outside.
    secrets: Vec<Secret>,
    /// The file-system root.
    root_dir: Option<PathBuf>,
    /// The retention every S3 write carries.
    object_lock: Option<ObjectLock>,
    /// S3: how to ask about the bucket's own settings.
    s3_control: Option<bucket::SharedControl>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("backend", &self.backend)
            .field("container", &self.container)
            .field("account", &self.account)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("credential_source", &self.credential_source)
            .finish_non_exhaustive()
    }
}

/// The backup storage: an object store plus the key prefix everything lives under. Cheap to
/// clone (two `Arc`s); clones share connections.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    target: Arc<Target>,
    options: StorageOptions,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("location", &self.location(""))
            .field("credential_source", &self.target.credential_source)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.location(""))
    }
}

impl Storage {
    /// Opens the storage `config` describes, with default [`StorageOptions`] and credentials
    /// from the process environment where the configuration has none. No request is made
    /// (call [`Storage::verify_reachable`]); the file-system root is created (mode 0700) if
    /// missing.
    pub fn open(config: &StorageConfig) -> Result<Self, StorageError> {
        Self::open_with(config, &StorageOptions::default(), &|name| {
            std::env::var(name).ok()
        })
    }

    /// [`Storage::open`] with explicit options and environment (`None` = not set).
    pub fn open_with(
        config: &StorageConfig,
        options: &StorageOptions,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, StorageError> {
        let (store, target) = backends::build(config, options, env)?;
        Ok(Self {
            store,
            target: Arc::new(target),
            options: options.clone(),
        })
    }

    /// `filesystem`, `s3`, `azure` or `gcs`.
    pub fn backend_name(&self) -> &'static str {
        match self.target.backend {
            Backend::Filesystem => "filesystem",
            Backend::S3 => "s3",
            Backend::Azure => "azure",
            Backend::Gcs => "gcs",
        }
    }

    /// Which credentials requests are made with, in words (never a secret).
    pub fn credential_source(&self) -> &str {
        &self.target.credential_source
    }

    /// The full location of `key` (`""`: the prefix itself): `s3://bucket/prefix/key`,
    /// `az://account/container/prefix/key`, `gs://bucket/prefix/key`, or a path.
    pub fn location(&self, key: &str) -> String {
        let t = &self.target;
        let mut path = t.prefix.clone();
        if !key.is_empty() {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(key);
        }
        let base = match t.backend {
            Backend::Filesystem => {
                let root = t.root_dir.as_deref().unwrap_or(std::path::Path::new("/"));
                return if path.is_empty() {
                    root.display().to_string()
                } else {
                    root.join(&path).display().to_string()
                };
            }
            Backend::S3 => format!("s3://{}", t.container),
            Backend::Gcs => format!("gs://{}", t.container),
            Backend::Azure => format!(
                "az://{}/{}",
                t.account.as_deref().unwrap_or(""),
                t.container
            ),
        };
        if path.is_empty() {
            base
        } else {
            format!("{base}/{path}")
        }
    }

    /// Creates `key` with `data`, failing with [`StorageError::AlreadyExists`] (and leaving
    /// the object untouched) when the key holds a different object. One request per attempt:
    /// objects up to the backend's single-request limit (5 GiB on S3). With
    /// [`S3Config::object_lock`], that request also sets the object's retention (and its
    /// `Content-MD5`).
    ///
    /// A key that is taken is read back ([`Storage::get_bounded`], limited to `data`'s size):
    /// if it holds exactly `data`, an earlier attempt of this write stored it and only its
    /// answer was lost (a 5xx or a reset after the upload, then a retry that found the key
    /// taken), so the write counts as done: [`PutOutcome::AlreadyStored`]. That is sound
    /// because every key kafka-backup writes, other than the backup descriptor, carries the
    /// SHA-256 of its content: the same name with the same bytes is the same object. When the
    /// object cannot be read back (an identity without read permission), nothing can be
    /// told apart and the answer stays [`StorageError::AlreadyExists`].
    ///
    /// Because such a retry is safe, an attempt that timed out or was cut off after its request
    /// may have been sent (which `object_store` does not retry for create-only writes, as they
    /// are not idempotent in general) is tried again here, within the same
    /// [`StorageOptions::max_retries`] and [`StorageOptions::retry_timeout`].
    pub async fn put_new(&self, key: &str, data: Bytes) -> Result<PutOutcome, StorageError> {
        let path = self.path(key)?;
        let started = std::time::Instant::now();
        let mut backoff = PUT_RETRY_FIRST_BACKOFF;
        let mut retries = 0;
        loop {
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            // `Bytes` clones share the buffer: a retry costs no copy.
            let payload = PutPayload::from_bytes(data.clone());
            let err = match self.store.put_opts(&path, payload, options).await {
                Ok(_) => return Ok(PutOutcome::Created),
                Err(e) => e,
            };
            let sent_maybe = cut_off(&err);
            let classified = self.classify(Operation::Put, key, &err);
            if matches!(classified, StorageError::AlreadyExists { .. }) {
                return self.compare_existing(key, &data, classified).await;
            }
            if !sent_maybe
                || retries >= self.options.max_retries
                || started.elapsed() + backoff > self.options.retry_timeout
            {
                return Err(classified);
            }
            retries += 1;
            tracing::info!(
                key,
                retries,
                error = %classified,
                "write timed out or was cut off; trying it again"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(PUT_RETRY_MAX_BACKOFF);
        }
    }

    /// The answer to a create-only write that found `key` taken (`taken`): success if the
    /// object holds exactly `data`, else `taken`, saying what was found.
    async fn compare_existing(
        &self,
        key: &str,
        data: &Bytes,
        taken: StorageError,
    ) -> Result<PutOutcome, StorageError> {
        let StorageError::AlreadyExists {
            location, key: k, ..
        } = taken
        else {
            return Err(taken);
        };
        let found = match self.get_bounded(key, data.len() as u64).await {
            Ok(existing) if existing == *data => {
                tracing::info!(
                    key,
                    size = data.len(),
                    "an earlier attempt had already stored this object (its answer was lost); \
                     the stored bytes are identical, so it counts as written"
                );
                return Ok(PutOutcome::AlreadyStored);
            }
            Ok(existing) => format!(
                " and holds other bytes ({} bytes; {} were to be written)",
                existing.len(),
                data.len()
            ),
            Err(StorageError::TooLarge { claimed, .. }) => match claimed {
                Some(size) => format!(
                    " and holds other bytes ({size} bytes; {} were to be written)",
                    data.len()
                ),
                None => format!(
                    " and holds other bytes (more than the {} to be written)",
                    data.len()
                ),
            },
            Err(StorageError::PermissionDenied { permission, .. }) => {
                match self.listed_size(key).await {
                    Ok(Some(size)) if size == data.len() as u64 => {
                        tracing::warn!(
                            key,
                            size,
                            "an object of exactly this size is already stored under this \
                             name, which carries the SHA-256 of its content; this identity \
                             cannot read it back ({permission} is not granted), so it counts \
                             as written by an earlier attempt whose answer was lost \
                             (`kafka-backup validate` checks its bytes against the name)"
                        );
                        return Ok(PutOutcome::AlreadyStored);
                    }
                    Ok(Some(size)) => format!(
                        " and holds other bytes ({size} bytes listed; {} were to be written)",
                        data.len()
                    ),
                    Ok(None) | Err(_) => format!(
                        " and could not be read back to compare it with what was to be written \
                         ({permission} is not granted to this identity)"
                    ),
                }
            }
            // The read-back's own failure (unreachable, ...) is the better explanation.
            Err(e) => return Err(e),
        };
        Err(StorageError::AlreadyExists {
            location,
            key: k,
            found,
        })
    }

    /// The size of `key` as its directory's listing gives it (`s3:ListBucket`, which the
    /// write-only backup identity has, where reading the object back needs `s3:GetObject`);
    /// `None` when it is not listed. Lists the key's directory, stopping at the first name past
    /// the key on the cloud backends, whose listings are in key order: a rare path (a lost
    /// answer to a write-only identity), so one request per 1,000 names before it is fine.
    async fn listed_size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let (dir, _) = key.rsplit_once('/').unwrap_or(("", key));
        let mut listing = self.list_stream(dir);
        let sorted = self.target.backend != Backend::Filesystem;
        while let Some(info) = listing.next().await {
            let info = info?;
            if info.key == key {
                return Ok(Some(info.size));
            }
            if sorted && info.key.as_str() > key {
                break;
            }
        }
        Ok(None)
    }

    /// Tries to delete `key`, which must be under [`PROBE_PREFIX`]: the permission probe's
    /// own canary objects, deleted to find out whether the identity could (a backup or
    /// restore identity should not). Any other key is refused before a request is made.
    pub async fn probe_delete(&self, key: &str) -> Result<(), StorageError> {
        if !key.starts_with(PROBE_PREFIX) {
            return Err(StorageError::InvalidKey {
                key: key.escape_debug().to_string(),
                reason: "only the permission probe's own objects may be deleted",
            });
        }
        match self.delete_object(key).await? {
            Deleted::Yes => Ok(()),
            Deleted::Locked(_) => Err(StorageError::InvalidKey {
                key: key.escape_debug().to_string(),
                reason: "the store keeps it under a retention lock",
            }),
        }
    }

    /// Deletes `key` for retention (`prune`, the admin role): the only deletion of backup
    /// data kafka-backup makes. An object the store refuses to delete because a retention
    /// lock or immutability policy holds it is [`Deleted::Locked`], not an error; one that
    /// is already gone counts as deleted (a prune that was cut off runs again).
    ///
    /// On a versioned bucket a delete adds a delete marker and the data stays as a
    /// non-current version until the bucket's lifecycle rule expires it.
    pub async fn delete_for_retention(&self, key: &str) -> Result<Deleted, StorageError> {
        if key.starts_with(PROBE_PREFIX) || key.starts_with("audit/") {
            return Err(StorageError::InvalidKey {
                key: key.escape_debug().to_string(),
                reason: "retention deletes backup objects only, never the audit trail",
            });
        }
        self.delete_object(key).await
    }

    async fn delete_object(&self, key: &str) -> Result<Deleted, StorageError> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(Deleted::Yes),
            // The object's own name is left out of the match: a topic called "worm-events"
            // must not turn a refused delete into a lock.
            Err(e)
                if is_lock_refusal(&e.to_string().replace(path.as_ref(), "").replace(key, "")) =>
            {
                Ok(Deleted::Locked(sanitize(
                    &e.to_string(),
                    &self.target.secrets,
                )))
            }
            // S3 deletes go through DeleteObjects, whose refusals arrive per key inside a
            // successful answer: object_store reports them as text with the S3 code.
            Err(e) if e.to_string().contains("(code: AccessDenied)") => {
                let (permission, grant) = self.permission_for(Operation::Delete);
                Err(StorageError::PermissionDenied {
                    operation: Operation::Delete,
                    location: self.location(key),
                    key: key.to_owned(),
                    permission,
                    identity: self.target.credential_source.clone(),
                    hint: format!("; grant {permission} {grant}"),
                })
            }
            Err(e) => Err(self.classify(Operation::Delete, key, &e)),
        }
    }

    /// What the bucket's own settings say about its protection (default encryption, public
    /// access), asked of the service with the configured credentials; `None` for backends
    /// other than S3, whose services encrypt at rest always and whose public access the
    /// tool does not ask about.
    pub async fn bucket_facts(&self) -> Option<BucketFacts> {
        Some(self.target.s3_control.as_ref()?.facts().await)
    }

    /// The bucket's Object Lock configuration, asked of the service
    /// (GetObjectLockConfiguration); `None` for backends other than S3.
    pub async fn bucket_object_lock(&self) -> Option<Result<BucketLock, String>> {
        Some(self.target.s3_control.as_ref()?.object_lock().await)
    }

    /// The whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.classify(Operation::Get, key, &e))?;
        result
            .bytes()
            .await
            .map_err(|e| self.classify(Operation::Get, key, &e))
    }

    /// The whole object, if it has at most `max_bytes`: for objects whose size is bounded by
    /// what kafka-backup writes (a manifest, a segment), read from storage that is not trusted.
    ///
    /// The body is streamed into one buffer of the size the storage declared (its
    /// `Content-Length`, or the file's size), which must be at most `max_bytes`, else the read
    /// stops at once with [`StorageError::TooLarge`]. The body must then be exactly that long:
    /// bytes beyond the declared size are counted but not kept, and as soon as more than
    /// `max_bytes` have arrived the read stops with [`StorageError::TooLarge`]; a body longer
    /// or shorter than declared is refused ([`StorageError::Other`]). So at most `max_bytes`
    /// (plus the read buffer of one chunk) are ever held, whatever the storage claims or sends.
    /// Same permission as [`Storage::get`].
    pub async fn get_bounded(&self, key: &str, max_bytes: u64) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.classify(Operation::Get, key, &e))?;
        let declared = result.meta.size;
        if declared > max_bytes {
            // Dropping the result closes the body unread.
            return Err(self.too_large(key, max_bytes, Some(declared)));
        }
        // At most `max_bytes`, which was given as an amount of memory to hold.
        let capacity = usize::try_from(declared).unwrap_or(usize::MAX);
        let mut data: Vec<u8> = Vec::with_capacity(capacity);
        let mut received: u64 = 0;
        let mut body = result.into_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.classify(Operation::Get, key, &e))?;
            received = received.saturating_add(chunk.len() as u64);
            if received > max_bytes {
                return Err(self.too_large(key, max_bytes, None));
            }
            // Past the declared size the answer is a lie: count, do not keep.
            if received <= declared {
                data.extend_from_slice(&chunk);
            }
        }
        if received != declared {
            return Err(StorageError::Other {
                operation: Operation::Get,
                location: self.location(key),
                detail: format!(
                    "the storage declared {declared} bytes for this object but sent {received}, \
                     so the answer was not used (a broken or hostile endpoint, or a proxy that \
                     altered the body)"
                ),
                retriable: false,
            });
        }
        Ok(Bytes::from(data))
    }

    /// Refuses an object whose listed size is above `max_bytes` with
    /// [`StorageError::TooLarge`], before any request: the cheap check to make on a listing
    /// before [`Storage::get_bounded`] (which enforces the limit on the data itself).
    pub fn check_listed_size(
        &self,
        object: &ObjectInfo,
        max_bytes: u64,
    ) -> Result<(), StorageError> {
        if object.size > max_bytes {
            Err(self.too_large(&object.key, max_bytes, Some(object.size)))
        } else {
            Ok(())
        }
    }

    fn too_large(&self, key: &str, limit: u64, claimed: Option<u64>) -> StorageError {
        StorageError::TooLarge {
            location: self.location(key),
            key: key.to_owned(),
            limit,
            claimed,
        }
    }

    /// Bytes `range` of the object (end exclusive).
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        self.store
            .get_range(&path, range)
            .await
            .map_err(|e| self.classify(Operation::Get, key, &e))
    }

    /// The object's size and time, without its data. Needs the same permission as `get`
    /// (`s3:GetObject` on S3).
    pub async fn head(&self, key: &str) -> Result<ObjectInfo, StorageError> {
        let path = self.path(key)?;
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| self.classify(Operation::Head, key, &e))?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size: meta.size,
            last_modified: SystemTime::from(meta.last_modified),
        })
    }

    /// Every object under `prefix` (`""`: everything), as the service pages them (1,000 per
    /// request on S3): only one page is held at a time. `prefix` matches whole segments:
    /// `a/b` lists `a/b/...`, not `a/bc`. Order is the service's (lexicographic on the
    /// cloud backends, unspecified on the file system).
    pub fn list_stream(
        &self,
        prefix: &str,
    ) -> BoxStream<'static, Result<ObjectInfo, StorageError>> {
        let path = match self.list_path(prefix) {
            Ok(path) => path,
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let this = self.clone();
        let root_len = if self.target.prefix.is_empty() {
            0
        } else {
            self.target.prefix.len() + 1
        };
        let prefix = prefix.to_owned();
        let root_dir = self.target.root_dir.clone();
        self.resumable_list(path)
            .map(move |item| match item {
                Ok(meta) => {
                    let full: &str = meta.location.as_ref();
                    let key = full.get(root_len..).unwrap_or(full).to_owned();
                    // The file system's listing follows links: refuse what it found through one.
                    if let Some(root) = &root_dir {
                        refuse_links(root, &key)?;
                    }
                    Ok(ObjectInfo {
                        key,
                        size: meta.size,
                        last_modified: SystemTime::from(meta.last_modified),
                    })
                }
                Err(e) => Err(this.classify(Operation::List, &prefix, &e)),
            })
            .boxed()
    }

    /// The store's listing of `path`, which on the cloud backends picks up after the last key
    /// it returned when a page's answer is cut off (a reset mid-body, a timeout):
    /// `object_store` retries a page request that fails, but not a failure while its body is
    /// read. Within [`StorageOptions::max_retries`] and [`StorageOptions::retry_timeout`].
    /// Their listings are in key order, which is what makes resuming after a key exact; the
    /// file system's is not, and has no such failures.
    fn resumable_list(
        &self,
        path: Option<StorePath>,
    ) -> BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        struct State {
            stream: BoxStream<'static, object_store::Result<object_store::ObjectMeta>>,
            last: Option<StorePath>,
            retries: usize,
            backoff: Duration,
            done: bool,
        }
        let first = self.store.list(path.as_ref());
        if self.target.backend == Backend::Filesystem {
            return first;
        }
        let store = self.store.clone();
        let options = self.options.clone();
        let started = std::time::Instant::now();
        let state = State {
            stream: first,
            last: None,
            retries: 0,
            backoff: PUT_RETRY_FIRST_BACKOFF,
            done: false,
        };
        futures::stream::unfold(state, move |mut st| {
            let store = store.clone();
            let path = path.clone();
            let options = options.clone();
            async move {
                if st.done {
                    return None;
                }
                loop {
                    match st.stream.next().await {
                        None => return None,
                        Some(Ok(meta)) => {
                            st.last = Some(meta.location.clone());
                            return Some((Ok(meta), st));
                        }
                        Some(Err(e))
                            if listing_cut_off(&e)
                                && st.retries < options.max_retries
                                && started.elapsed() + st.backoff < options.retry_timeout =>
                        {
                            st.retries += 1;
                            tracing::info!(
                                retries = st.retries,
                                error = %e,
                                "a listing was cut off; resuming after the last key received"
                            );
                            tokio::time::sleep(st.backoff).await;
                            st.backoff = (st.backoff * 2).min(PUT_RETRY_MAX_BACKOFF);
                            st.stream = match &st.last {
                                Some(last) => store.list_with_offset(path.as_ref(), last),
                                None => store.list(path.as_ref()),
                            };
                        }
                        Some(Err(e)) => {
                            st.done = true;
                            return Some((Err(e), st));
                        }
                    }
                }
            }
        })
        .boxed()
    }

    /// [`Storage::list_stream`] collected: a few dozen bytes per object.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        self.list_stream(prefix).try_collect().await
    }

    /// The "directories" directly under `prefix` (`""`: the configured prefix itself): the
    /// distinct next path segments of the keys below it, found with a delimiter LIST, so the
    /// objects underneath are not listed (one request per 1,000 names on S3). Returned as keys
    /// relative to the configured prefix (`a/b` for `b` under `a`), sorted. Same permission as
    /// [`Storage::list`].
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let path = self.list_path(prefix)?;
        let started = std::time::Instant::now();
        let mut backoff = PUT_RETRY_FIRST_BACKOFF;
        let mut retries = 0;
        // A LIST may be repeated: a cut-off answer is asked for again (see `resumable_list`).
        let result = loop {
            match self.store.list_with_delimiter(path.as_ref()).await {
                Ok(result) => break result,
                Err(e)
                    if listing_cut_off(&e)
                        && retries < self.options.max_retries
                        && started.elapsed() + backoff < self.options.retry_timeout =>
                {
                    retries += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(PUT_RETRY_MAX_BACKOFF);
                }
                Err(e) => return Err(self.classify(Operation::List, prefix, &e)),
            }
        };
        let root_len = if self.target.prefix.is_empty() {
            0
        } else {
            self.target.prefix.len() + 1
        };
        let mut dirs: Vec<String> = result
            .common_prefixes
            .iter()
            .map(|p| {
                let full: &str = p.as_ref();
                full.get(root_len..).unwrap_or(full).to_owned()
            })
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// The start-up probe: one LIST request on the prefix (no object is read or written),
    /// which proves that the endpoint answers, the credentials are accepted, the bucket or
    /// container exists and the identity may list it. On the file system, that the root is
    /// a readable directory.
    pub async fn verify_reachable(&self) -> Result<(), StorageError> {
        if let Some(root) = &self.target.root_dir {
            return match std::fs::read_dir(root) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound {
                    what: Missing::Directory,
                    location: root.display().to_string(),
                    key: None,
                    hint: String::new(),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    Err(StorageError::PermissionDenied {
                        operation: Operation::List,
                        location: root.display().to_string(),
                        key: String::new(),
                        permission: "read and execute (search) permission",
                        identity: self.target.credential_source.clone(),
                        hint: format!(
                            "; grant read and execute (search) permission on {} to this user",
                            root.display()
                        ),
                    })
                }
                Err(e) => Err(StorageError::Other {
                    operation: Operation::List,
                    location: root.display().to_string(),
                    detail: backends::describe_io(&e),
                    retriable: false,
                }),
            };
        }
        let path = self.list_path("")?;
        let mut stream = self.resumable_list(path);
        match stream.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(self.classify(Operation::List, "", &e)),
        }
    }

    // -----------------------------------------------------------------------

    fn path(&self, key: &str) -> Result<StorePath, StorageError> {
        validate_key(key).map_err(|reason| StorageError::InvalidKey {
            key: key.escape_debug().to_string(),
            reason,
        })?;
        if let Some(root) = &self.target.root_dir {
            refuse_links(root, key)?;
        }
        Ok(self.full_path(key))
    }

    /// The path to list; `None` for the whole store.
    fn list_path(&self, prefix: &str) -> Result<Option<StorePath>, StorageError> {
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() {
            return Ok((!self.target.prefix.is_empty())
                .then(|| StorePath::from_iter(self.target.prefix.split('/'))));
        }
        self.path(prefix).map(Some)
    }

    fn full_path(&self, key: &str) -> StorePath {
        let root = self.target.prefix.split('/').filter(|s| !s.is_empty());
        StorePath::from_iter(root.chain(key.split('/')))
    }

    /// Turns an `object_store` error into a [`StorageError`]; see `error.rs` for how it is
    /// read.
    fn classify(&self, operation: Operation, key: &str, err: &object_store::Error) -> StorageError {
        let t = &self.target;
        let facts = Facts::read(err);
        let location = self.location(key);
        let detail = facts.service_detail().map(|d| sanitize(&d, &t.secrets));

        if facts.variant == Variant::InvalidPath {
            return StorageError::InvalidKey {
                key: key.escape_debug().to_string(),
                reason: "the store rejected it as a path",
            };
        }
        if facts.credential_failure && !matches!(facts.variant, Variant::NotFound) {
            return StorageError::Unauthenticated {
                operation,
                location,
                credential_source: t.credential_source.clone(),
                detail: Some(detail.unwrap_or_else(|| sanitize(&facts.innermost, &t.secrets))),
                fix: "the credentials could not be obtained: check that the role, token file or \
                      metadata service named here is available to this process, or configure \
                      credentials explicitly"
                    .to_owned(),
            };
        }
        if let Some(kind) = facts.transport
            && facts.status.is_none()
            && matches!(
                kind,
                object_store::client::HttpErrorKind::Connect
                    | object_store::client::HttpErrorKind::Timeout
                    | object_store::client::HttpErrorKind::Request
                    | object_store::client::HttpErrorKind::Interrupted
            )
        {
            return StorageError::Unreachable {
                endpoint: t.endpoint.clone(),
                operation,
                location,
                cause: sanitize(
                    facts.transport_cause.as_deref().unwrap_or("no detail"),
                    &t.secrets,
                ),
                max_retries: self.options.max_retries,
                retry_window_secs: self.options.retry_timeout.as_secs(),
            };
        }

        // A bucket with a default retention takes writes only with an integrity header, which
        // the lock connector adds when storage.object_lock is set.
        if operation == Operation::Put
            && t.object_lock.is_none()
            && facts.status == Some(400)
            && (facts.code_is(&["MissingUploadObjectWithObjectLockHeaders"])
                || facts.message.as_deref().is_some_and(|m| {
                    let m = m.to_ascii_lowercase();
                    m.contains("content-md5") && m.contains("object lock")
                }))
        {
            return StorageError::DefaultRetentionNeedsLock {
                bucket: t.container.clone(),
                location,
                detail,
            };
        }

        // Lock headers on a bucket without Object Lock: S3 answers 400 InvalidRequest "Bucket is
        // missing Object Lock Configuration" (moto and MinIO: "ObjectLockConfiguration").
        if operation == Operation::Put
            && t.object_lock.is_some()
            && facts.status == Some(400)
            && facts.code_is(&["InvalidRequest"])
            && facts.message.as_deref().is_some_and(|m| {
                m.to_ascii_lowercase()
                    .replace(' ', "")
                    .contains("objectlockconfiguration")
            })
        {
            return StorageError::ObjectLockNotEnabled {
                bucket: t.container.clone(),
                location,
                key: key.to_owned(),
                detail,
            };
        }

        // Creating a key that exists.
        if operation == Operation::Put
            && (matches!(
                facts.variant,
                Variant::AlreadyExists | Variant::Precondition
            ) || matches!(facts.status, Some(409 | 412)))
        {
            return StorageError::AlreadyExists {
                location,
                key: key.to_owned(),
                found: String::new(),
            };
        }

        let status = facts.status;
        // Azure's (and Azurite's) answer to a wrong key or signature is 403 with
        // AuthenticationFailed, or AuthorizationFailure with this message.
        let unauthenticated = facts.variant == Variant::Unauthenticated
            || status == Some(401)
            || (status == Some(403) && facts.text_mentions("failed to authenticate the request"))
            || facts.code_is(&[
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "InvalidToken",
                "ExpiredToken",
                "TokenRefreshRequired",
                "InvalidClientTokenId",
                "AuthenticationFailed",
                "InvalidAuthenticationInfo",
                "NoAuthenticationInformation",
                "AuthorizationHeaderMalformed",
                "MissingSecurityHeader",
            ]);
        if unauthenticated {
            return StorageError::Unauthenticated {
                operation,
                location,
                credential_source: t.credential_source.clone(),
                detail,
                fix: self.unauthenticated_fix(&facts),
            };
        }

        if facts.variant == Variant::PermissionDenied
            || status == Some(403)
            || facts.io == Some(std::io::ErrorKind::PermissionDenied)
        {
            let (permission, grant) = self.permission_for(operation);
            let detail = detail.filter(|_| facts.status.is_some()).map(|d| {
                if operation == Operation::Head && facts.code.is_none() {
                    format!(
                        "{d}; HEAD answers carry no reason, so this may also be a credential \
                         problem"
                    )
                } else {
                    d
                }
            });
            return StorageError::PermissionDenied {
                operation,
                location,
                key: key.to_owned(),
                permission,
                identity: t.credential_source.clone(),
                hint: format!(
                    "{}; grant {permission} {grant}",
                    error::detail_suffix(detail.as_deref())
                ),
            };
        }

        let bucket_named_missing = facts.code_is(&[
            "NoSuchBucket",
            "ContainerNotFound",
            "ResourceNotFound",
            "AccountNotFound",
        ]) || facts.text_mentions("bucket does not exist")
            // fake-gcs-server answers 500 with this where GCS answers 404.
            || facts.text_mentions("no bucket named");
        if facts.variant == Variant::NotFound || status == Some(404) || bucket_named_missing {
            let bucket_missing = operation == Operation::List || bucket_named_missing;
            if bucket_missing && t.backend != Backend::Filesystem {
                let what = if t.backend == Backend::Azure {
                    Missing::Container
                } else {
                    Missing::Bucket
                };
                let location = match t.backend {
                    Backend::Azure => format!(
                        "`{}` (storage account `{}`)",
                        t.container,
                        t.account.as_deref().unwrap_or("")
                    ),
                    _ => format!("`{}`", t.container),
                };
                return StorageError::NotFound {
                    what,
                    location,
                    key: None,
                    hint: match detail {
                        Some(d) => format!(" at {} ({d})", t.endpoint),
                        None => format!(" at {}", t.endpoint),
                    },
                };
            }
            if operation == Operation::List {
                return StorageError::NotFound {
                    what: Missing::Directory,
                    location,
                    key: None,
                    hint: String::new(),
                };
            }
            return StorageError::NotFound {
                what: Missing::Object,
                location,
                key: Some(key.to_owned()),
                hint: String::new(),
            };
        }

        let retriable = matches!(status, Some(408 | 429 | 500..=599))
            || facts.code_is(&["SlowDown", "ServerBusy", "InternalError", "RequestTimeout"]);
        let detail = match (&detail, facts.status) {
            (Some(d), Some(s)) => format!("HTTP {s}: {d}"),
            (Some(d), None) => d.clone(),
            (None, _) => match facts.io {
                Some(kind) => sanitize(
                    &backends::describe_io(&std::io::Error::from(kind)),
                    &t.secrets,
                ),
                None => sanitize(&facts.innermost, &t.secrets),
            },
        };
        let detail = if facts.variant == Variant::Unsupported {
            format!("{detail} (the store does not support this operation)")
        } else {
            detail
        };
        StorageError::Other {
            operation,
            location,
            detail,
            retriable,
        }
    }

    fn unauthenticated_fix(&self, facts: &Facts) -> String {
        let t = &self.target;
        if facts.code_is(&["SignatureDoesNotMatch"]) {
            "the secret key does not match the access key id: check secret_key (a stale or \
             mistyped secret, or one for another key)"
                .to_owned()
        } else if facts.code_is(&["InvalidAccessKeyId", "InvalidClientTokenId"]) {
            "this endpoint does not know the access key id: check access_key, and that the \
             endpoint and account are the ones the key was issued for"
                .to_owned()
        } else if facts.code_is(&["ExpiredToken", "TokenRefreshRequired", "InvalidToken"]) {
            "the session token is expired or invalid: obtain fresh temporary credentials".to_owned()
        } else if facts.code_is(&["AuthorizationHeaderMalformed"]) {
            "the request was signed for the wrong region: set storage.region to the bucket's \
             region"
                .to_owned()
        } else if t.backend == Backend::Azure {
            format!(
                "check that the account key or SAS token belongs to storage account `{}`, is \
                 current (keys rotate, SAS tokens expire), and that the endpoint is that \
                 account's",
                t.account.as_deref().unwrap_or("")
            )
        } else {
            "check that the credentials are current (not rotated, revoked or expired) and issued \
             for this account and endpoint"
                .to_owned()
        }
    }

    /// The permission `operation` needs on this backend (`s3:PutObject`,
    /// `storage.objects.create`, an Azure data action, ...), without the backticks.
    pub fn permission_name(&self, operation: Operation) -> String {
        self.permission_for(operation).0.replace('`', "")
    }

    /// The permission an operation needs, and where to grant it.
    fn permission_for(&self, operation: Operation) -> (&'static str, String) {
        let t = &self.target;
        let objects = if t.prefix.is_empty() {
            "*".to_owned()
        } else {
            format!("{}/*", t.prefix)
        };
        match t.backend {
            Backend::S3 => {
                let kms = |action: &str| {
                    if t.kms {
                        format!(", plus {action} on the SSE-KMS key")
                    } else {
                        String::new()
                    }
                };
                match operation {
                    Operation::Put if t.object_lock.is_some() => (
                        "`s3:PutObject` and `s3:PutObjectRetention`",
                        format!(
                            "on arn:aws:s3:::{}/{objects} in the identity's IAM policy (and the \
                             bucket policy; S3 checks s3:PutObjectRetention because \
                             storage.object_lock makes every write set a retention){}",
                            t.container,
                            kms("kms:GenerateDataKey")
                        ),
                    ),
                    Operation::Put => (
                        "`s3:PutObject`",
                        format!(
                            "on arn:aws:s3:::{}/{objects} in the identity's IAM policy (and the \
                             bucket policy){}",
                            t.container,
                            kms("kms:GenerateDataKey")
                        ),
                    ),
                    Operation::Get | Operation::Head => (
                        "`s3:GetObject`",
                        format!(
                            "on arn:aws:s3:::{}/{objects} in the identity's IAM policy (and the \
                             bucket policy){}",
                            t.container,
                            kms("kms:Decrypt")
                        ),
                    ),
                    Operation::Delete => (
                        "`s3:DeleteObject`",
                        format!(
                            "on arn:aws:s3:::{}/{objects} in the identity's IAM policy",
                            t.container
                        ),
                    ),
                    Operation::List => (
                        "`s3:ListBucket`",
                        format!(
                            "on arn:aws:s3:::{}{} in the identity's IAM policy (and the bucket \
                             policy)",
                            t.container,
                            if t.prefix.is_empty() {
                                String::new()
                            } else {
                                format!(" (an s3:prefix condition must allow `{}/`)", t.prefix)
                            }
                        ),
                    ),
                }
            }
            Backend::Azure => {
                let (action, sas) = match operation {
                    Operation::Put => (
                        "the data action \
                         `Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write`",
                        "c (create) and w (write)",
                    ),
                    Operation::Get | Operation::Head => (
                        "the data action \
                         `Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read`",
                        "r (read)",
                    ),
                    Operation::List => (
                        "the data action \
                         `Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read`",
                        "l (list)",
                    ),
                    Operation::Delete => (
                        "the data action \
                         `Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete`",
                        "d (delete)",
                    ),
                };
                (
                    action,
                    format!(
                        "on container `{}` of account `{}` (e.g. through the role Storage Blob \
                         Data {}), or use a SAS token with permission {sas}",
                        t.container,
                        t.account.as_deref().unwrap_or(""),
                        if operation == Operation::Put {
                            "Contributor"
                        } else {
                            "Reader"
                        }
                    ),
                )
            }
            Backend::Gcs => {
                let (permission, role) = match operation {
                    Operation::Put => ("`storage.objects.create`", "roles/storage.objectCreator"),
                    Operation::Get | Operation::Head => {
                        ("`storage.objects.get`", "roles/storage.objectViewer")
                    }
                    Operation::List => ("`storage.objects.list`", "roles/storage.objectViewer"),
                    Operation::Delete => ("`storage.objects.delete`", "roles/storage.objectAdmin"),
                };
                (
                    permission,
                    format!("on bucket `{}` (e.g. the role {role})", t.container),
                )
            }
            Backend::Filesystem => match operation {
                Operation::Put | Operation::Delete => (
                    "write permission",
                    format!(
                        "on {} and its subdirectories to this user",
                        self.location("")
                    ),
                ),
                _ => (
                    "read permission",
                    format!(
                        "on {} and its subdirectories to this user",
                        self.location("")
                    ),
                ),
            },
        }
    }
}

/// Where the permission probe writes its canary objects (never inside a backup).
pub const PROBE_PREFIX: &str = "_kb-permission-probe/";

/// What became of an object retention asked to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// It is gone (or was already).
    Yes,
    /// A retention lock or immutability policy keeps it; the store's words, secrets masked.
    Locked(String),
}

/// Whether a refused delete was refused because of a retention lock (S3 Object Lock, Azure
/// immutability policies, GCS retention policies and holds) rather than a permission.
fn is_lock_refusal(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "object lock",
        "objectlock",
        "worm",
        "immutab",
        "retention policy",
        "under active retention",
        "event-based hold",
        "temporary hold",
    ]
    .iter()
    .any(|needle| t.contains(needle))
}

/// Checks a key (or list prefix): see [`StorageError::InvalidKey`] for the rules.
pub fn validate_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("it is empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return Err("it is longer than 1024 bytes");
    }
    if key.starts_with('/') || key.ends_with('/') {
        return Err("it starts or ends with `/`");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return Err("it has an empty segment (`//`)");
        }
        if segment == "." || segment == ".." {
            return Err("it has a `.` or `..` segment");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'='))
        {
            return Err("it has a character outside A-Z, a-z, 0-9, `.`, `_`, `-`, `=` and `/`");
        }
    }
    Ok(())
}

/// Refuses a key of the file-system store that passes through a symbolic link below `root`
/// (the root itself may be one: the user chose it). A link inside the store could send a
/// restore's reads or a backup's writes anywhere the user can reach, so none is followed.
/// Components that do not exist yet are fine: the store creates them as directories.
fn refuse_links(root: &std::path::Path, key: &str) -> Result<(), StorageError> {
    let mut path = root.to_path_buf();
    for part in key.split('/').filter(|p| !p.is_empty()) {
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(StorageError::Config {
                    backend: "filesystem",
                    message: format!(
                        "{} is a symbolic link inside the storage directory {}, and kafka-backup \
                         follows none there: a link could send reads and writes outside the \
                         directory. Replace the link with the directory or file itself, or \
                         point `storage.path` at the real location",
                        path.display(),
                        root.display()
                    ),
                });
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        for ok in ["a", "prod/topic.x/0/00000000000000000042.seg", "a=b/c-d_e"] {
            assert_eq!(validate_key(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "a/../b", ".", "a b", "a#b", "ä", "a\nb",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        assert!(validate_key(&"a".repeat(1025)).is_err());
    }
}

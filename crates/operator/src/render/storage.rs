//! `spec.storage` as the configuration's `storage:`.
//!
//! A setting of another backend is refused (as backend-core's loader does), here naming the
//! resource's field: silently dropping `sse` or `objectLock` would weaken what the user asked
//! for.

use super::RenderError;
use super::model::{ObjectLock, Storage};
use super::mounts::{Mounts, literal};
use crate::crd::{
    ObjectLockMode, ServerSideEncryption, StorageBackend, StorageCredentialsSecretRef, StorageSpec,
};

use StorageBackend::{Azure, Filesystem, Gcs, S3};

/// Backends that make requests over the network (timeouts and retries apply).
const REMOTE: &[StorageBackend] = &[S3, Azure, Gcs];

/// The storage section, recording the credentials Secret (if any) in `mounts`.
pub(super) fn storage(spec: &StorageSpec, mounts: &mut Mounts) -> Result<Storage, RenderError> {
    let backend = spec.backend;
    let fields: [(&str, bool, &[StorageBackend]); 16] = [
        ("bucket", spec.bucket.is_some(), &[S3, Gcs]),
        ("region", spec.region.is_some(), &[S3]),
        ("prefix", spec.prefix.is_some(), REMOTE),
        ("endpoint", spec.endpoint.is_some(), REMOTE),
        ("forcePathStyle", spec.force_path_style.is_some(), &[S3]),
        ("allowHttp", spec.allow_http.is_some(), REMOTE),
        ("sse", spec.sse.is_some(), &[S3]),
        ("kmsKeyId", spec.kms_key_id.is_some(), &[S3]),
        ("objectLock", spec.object_lock.is_some(), &[S3]),
        ("accountName", spec.account_name.is_some(), &[Azure]),
        ("containerName", spec.container_name.is_some(), &[Azure]),
        ("path", spec.path.is_some(), &[Filesystem]),
        (
            "persistentVolumeClaim",
            spec.persistent_volume_claim.is_some(),
            &[Filesystem],
        ),
        (
            "connectTimeoutMs",
            spec.connect_timeout_ms.is_some(),
            REMOTE,
        ),
        (
            "requestTimeoutMs",
            spec.request_timeout_ms.is_some(),
            REMOTE,
        ),
        ("maxRetries", spec.max_retries.is_some(), REMOTE),
    ];
    for (field, set, backends) in fields {
        if set && !backends.contains(&backend) {
            let users: Vec<&str> = backends.iter().map(|b| b.as_str()).collect();
            return Err(invalid(
                field,
                &format!(
                    "is a setting of backend {}, not of {}; remove it, or set backend to the \
                     one it belongs to",
                    users.join(" or "),
                    backend.as_str()
                ),
            ));
        }
    }
    let required: &[(&str, bool)] = match backend {
        S3 | Gcs => &[("bucket", spec.bucket.is_some())],
        Azure => &[
            ("accountName", spec.account_name.is_some()),
            ("containerName", spec.container_name.is_some()),
        ],
        Filesystem => &[
            ("path", spec.path.is_some()),
            (
                "persistentVolumeClaim",
                spec.persistent_volume_claim.is_some(),
            ),
        ],
    };
    if let Some((field, _)) = required.iter().find(|(_, set)| !set) {
        let why = if *field == "persistentVolumeClaim" {
            "the Pod's root filesystem is read-only and vanishes with the Pod: name the \
             PersistentVolumeClaim to mount at path"
        } else {
            "the backend needs it"
        };
        return Err(invalid(
            field,
            &format!("is missing for backend {}: {why}", backend.as_str()),
        ));
    }
    if let Some(path) = &spec.path
        && !path.starts_with('/')
    {
        return Err(invalid(
            "path",
            &format!("`{path}` is relative; give the absolute directory to mount the volume at"),
        ));
    }
    if spec.kms_key_id.is_some() && spec.sse != Some(ServerSideEncryption::AwsKms) {
        return Err(invalid(
            "kmsKeyId",
            "names the KMS key of SSE-KMS, so it needs sse: aws:kms; add it, or remove kmsKeyId",
        ));
    }
    if let Some(endpoint) = &spec.endpoint
        && endpoint.starts_with("http://")
        && spec.allow_http != Some(true)
    {
        return Err(invalid(
            "endpoint",
            "is http://, so everything would cross the network in clear text; use https://, \
             or set allowHttp: true for a test server",
        ));
    }
    let mut storage = Storage {
        backend: backend.as_str(),
        bucket: spec.bucket.as_deref().map(literal),
        region: spec.region.as_deref().map(literal),
        account_name: spec.account_name.as_deref().map(literal),
        container_name: spec.container_name.as_deref().map(literal),
        path: spec.path.as_deref().map(literal),
        prefix: spec.prefix.as_deref().map(literal),
        sse: spec.sse.map(|sse| match sse {
            ServerSideEncryption::Aes256 => "AES256",
            ServerSideEncryption::AwsKms => "aws:kms",
        }),
        kms_key_id: spec.kms_key_id.as_deref().map(literal),
        object_lock: spec.object_lock.as_ref().map(|lock| ObjectLock {
            mode: match lock.mode {
                ObjectLockMode::Governance => "GOVERNANCE",
                ObjectLockMode::Compliance => "COMPLIANCE",
            },
            retain_days: lock.retain_days,
        }),
        endpoint: spec.endpoint.as_deref().map(literal),
        force_path_style: spec.force_path_style,
        allow_http: spec.allow_http,
        connect_timeout_ms: spec.connect_timeout_ms,
        request_timeout_ms: spec.request_timeout_ms,
        max_retries: spec.max_retries,
        ..Storage::default()
    };
    if let Some(secret) = &spec.credentials_secret {
        credentials(backend, secret, &mut storage, mounts)?;
    }
    Ok(storage)
}

fn invalid(field: &str, reason: &str) -> RenderError {
    RenderError::InvalidSpec {
        field: format!("spec.storage.{field}"),
        reason: reason.to_owned(),
    }
}

fn credentials(
    backend: StorageBackend,
    secret: &StorageCredentialsSecretRef,
    storage: &mut Storage,
    mounts: &mut Mounts,
) -> Result<(), RenderError> {
    let field = "spec.storage.credentialsSecret";
    let keys: [(&str, bool, StorageBackend); 6] = [
        ("accessKeyKey", secret.access_key_key.is_some(), S3),
        ("secretKeyKey", secret.secret_key_key.is_some(), S3),
        ("sessionTokenKey", secret.session_token_key.is_some(), S3),
        ("accountKeyKey", secret.account_key_key.is_some(), Azure),
        ("sasTokenKey", secret.sas_token_key.is_some(), Azure),
        (
            "serviceAccountJsonKey",
            secret.service_account_json_key.is_some(),
            Gcs,
        ),
    ];
    if let Some((key, _, owner)) = keys.iter().find(|(_, set, b)| *set && *b != backend) {
        return Err(RenderError::InvalidSpec {
            field: format!("{field}.{key}"),
            reason: format!(
                "is a credential of backend {}, not of {}; name the keys of the {} credentials \
                 instead",
                owner.as_str(),
                backend.as_str(),
                backend.as_str()
            ),
        });
    }
    let missing = |missing: &str, hint: &str| RenderError::MissingSecretKey {
        field: field.into(),
        secret: secret.name.clone(),
        missing: missing.into(),
        hint: hint.into(),
    };
    match backend {
        S3 => {
            let (Some(access), Some(key)) = (&secret.access_key_key, &secret.secret_key_key) else {
                return Err(missing(
                    if secret.access_key_key.is_none() {
                        "accessKeyKey"
                    } else {
                        "secretKeyKey"
                    },
                    "static S3 credentials are an access key id and a secret access key: name \
                     both keys (e.g. accessKeyKey: access-key-id, secretKeyKey: \
                     secret-access-key), or remove credentialsSecret to use the Pod's IAM role \
                     (IRSA, EKS Pod Identity)",
                ));
            };
            storage.access_key = Some(mounts.secret_value(&secret.name, access));
            storage.secret_key = Some(mounts.secret_value(&secret.name, key));
            storage.session_token = secret
                .session_token_key
                .as_ref()
                .map(|k| mounts.secret_value(&secret.name, k));
        }
        Azure => match (&secret.account_key_key, &secret.sas_token_key) {
            (Some(key), None) => {
                storage.account_key = Some(mounts.secret_value(&secret.name, key));
            }
            (None, Some(key)) => {
                storage.sas_token = Some(mounts.secret_value(&secret.name, key));
            }
            (Some(_), Some(_)) => {
                return Err(RenderError::InvalidSpec {
                    field: format!("{field}.sasTokenKey"),
                    reason: "accountKeyKey and sasTokenKey are both given; Azure takes one: \
                             keep the one the Secret holds"
                        .into(),
                });
            }
            (None, None) => {
                return Err(missing(
                    "accountKeyKey or sasTokenKey",
                    "name the key holding the storage account key or a SAS token, or remove \
                     credentialsSecret to use workload identity",
                ));
            }
        },
        Gcs => {
            let Some(key) = &secret.service_account_json_key else {
                return Err(missing(
                    "serviceAccountJsonKey",
                    "name the key holding the service account's JSON key file, or remove \
                     credentialsSecret to use workload identity",
                ));
            };
            storage.service_account_path = Some(mounts.secret_file(&secret.name, key));
        }
        Filesystem => {
            return Err(RenderError::InvalidSpec {
                field: field.into(),
                reason: "backend filesystem has no credentials: the volume is mounted; remove \
                         credentialsSecret"
                    .into(),
            });
        }
    }
    Ok(())
}

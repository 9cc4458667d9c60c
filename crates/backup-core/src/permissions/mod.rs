//! The least-privilege probe of storage (`kafka-backup check --permissions`): does the
//! configured identity have each right its role needs, and none that it should not have?
//!
//! It tries, without touching any backup: listing the prefix; creating a uniquely named canary
//! object under [`PROBE_PREFIX`]; reading it back (or, for the reading roles, reading the
//! backup's descriptor); deleting the canary. Each attempt's outcome is compared with the
//! role: the backup role must create and list but not read or delete; the restore and
//! validate roles must read and list but not create or delete; the admin role (prune,
//! quarantine) must list, create, read and delete, and use no KMS key. With an `aws-kms` key, it
//! also generates a throwaway data key and tries to decrypt it: the backup role must only
//! generate, the reading roles must only decrypt.
//!
//! What it can prove: an attempt that succeeds proves the right (over-privilege is certain).
//! What it cannot: a denial proves only that this request was refused, not that no other
//! request could succeed (a policy may allow other prefixes, or conditions the probe does
//! not meet); and stores that ignore some IAM features (moto ignores conditions) are
//! probed as they behave.

pub mod kafka;

use bytes::Bytes;
use serde::Serialize;

use crate::storage::{Operation, PROBE_PREFIX, Storage, StorageError};

/// The role an identity is configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writes backups: create and list.
    Backup,
    /// Reads backups into Kafka: read and list.
    Restore,
    /// Reads backups to check them: read and list.
    Validate,
    /// Prunes and quarantines: list, create (prune records, markers), read (manifest parts
    /// hashed into a prune record) and delete; no KMS.
    Admin,
}

impl Role {
    /// `backup`, `restore`, `validate` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Validate => "validate",
            Self::Admin => "admin",
        }
    }
}

/// What the role requires of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// The role needs it.
    Needed,
    /// The role must not have it.
    Forbidden,
}

/// What the attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Found {
    /// The request succeeded: the right is proven.
    Allowed,
    /// The store refused it for lack of permission.
    Denied,
    /// Nothing could be concluded (e.g. nothing to read yet), with the reason.
    Unknown,
}

/// One probed action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `list`, `create`, `read`, `delete`, `kms generate`, `kms decrypt`.
    pub action: &'static str,
    /// The permission it exercises (`s3:PutObject`, ...).
    pub permission: String,
    /// Needed or forbidden for the role.
    pub expect: Expect,
    /// What happened.
    pub found: Found,
    /// Whether the outcome is what the role wants.
    pub ok: bool,
    /// What happened, in words, and what to change when not ok.
    pub detail: String,
}

/// The probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The role probed.
    pub role: Role,
    /// Where.
    pub location: String,
    /// Which credential.
    pub credential_source: String,
    /// Each action.
    pub checks: Vec<Check>,
    /// A canary object that is still there (the identity could not delete it): harmless, and
    /// an administrator may remove it.
    pub canary_left: Option<String>,
    /// True when every check is ok.
    pub ok: bool,
}

fn classify(result: Result<(), StorageError>) -> (Found, String) {
    match result {
        Ok(()) => (Found::Allowed, "allowed".to_owned()),
        Err(StorageError::PermissionDenied { .. }) => (Found::Denied, "denied".to_owned()),
        Err(e) => (Found::Unknown, e.to_string()),
    }
}

/// The permission an action exercises on this store (what its errors would name).
fn permission(storage: &Storage, action: &str) -> String {
    match action {
        "list" => storage.permission_name(Operation::List),
        "create" => storage.permission_name(Operation::Put),
        "read" => storage.permission_name(Operation::Get),
        "delete" => storage.permission_name(Operation::Delete),
        "kms generate" => "kms:GenerateDataKey".into(),
        "kms decrypt" => "kms:Decrypt".into(),
        other => other.into(),
    }
}

fn classify_key(result: Result<(), crate::keys::KeyError>) -> (Found, String) {
    match result {
        Ok(()) => (Found::Allowed, "allowed".to_owned()),
        Err(e) if e.kind() == crate::keys::KeyErrorKind::AccessDenied => {
            (Found::Denied, format!("denied ({e})"))
        }
        Err(e) => (Found::Unknown, e.to_string()),
    }
}

/// Compares what an attempt found with what `role` expects, into a [`Check`] whose detail
/// says what to grant or remove.
pub(crate) fn judge(
    role: Role,
    action: &'static str,
    permission: String,
    expect: Expect,
    (found, what): (Found, String),
) -> Check {
    let ok = matches!(
        (expect, found),
        (Expect::Needed, Found::Allowed) | (Expect::Forbidden, Found::Denied)
    );
    let detail = match (expect, found) {
        (Expect::Needed, Found::Allowed) => {
            format!("{what}: needed by the {} role", role.as_str())
        }
        (Expect::Forbidden, Found::Denied) => {
            format!("{what}, as it should be for the {} role", role.as_str())
        }
        (Expect::Needed, Found::Denied) => format!(
            "{what}: MISSING, the {} role needs {permission}; grant it",
            role.as_str()
        ),
        (Expect::Forbidden, Found::Allowed) => format!(
            "{what}: OVER-PRIVILEGED, the {} role must not have {permission}; remove it from \
             the identity's policy",
            role.as_str()
        ),
        (_, Found::Unknown) => format!("not determined: {what}"),
    };
    Check {
        action,
        permission,
        expect,
        found,
        ok,
        detail,
    }
}

/// Probes `storage` (and the KMS key of `kms`, when the configuration uses one) for `role`;
/// `backup_id` names the backup a reading role reads from.
pub async fn probe(
    storage: &Storage,
    role: Role,
    backup_id: &str,
    kms: Option<(
        &crate::keys::KmsSettings,
        Option<(&crate::keys::WrappedKey, &crate::keys::KeyContext)>,
    )>,
) -> Report {
    let mut checks = Vec::new();
    let mut add = |action: &'static str, expect: Expect, outcome: (Found, String)| {
        let permission = permission(storage, action);
        checks.push(judge(role, action, permission, expect, outcome));
    };
    add(
        "list",
        Expect::Needed,
        classify(storage.verify_reachable().await),
    );

    let canary = format!(
        "{PROBE_PREFIX}{}-{}",
        role.as_str(),
        uuid::Uuid::new_v4().simple()
    );
    let body = Bytes::from_static(b"kafka-backup permission probe: safe to delete\n");
    let created = classify(storage.put_new(&canary, body.clone()).await.map(|_| ()));
    let canary_exists = created.0 == Found::Allowed;
    let (create_expect, read_expect) = match role {
        Role::Backup => (Expect::Needed, Expect::Forbidden),
        Role::Restore | Role::Validate => (Expect::Forbidden, Expect::Needed),
        Role::Admin => (Expect::Needed, Expect::Needed),
    };
    add("create", create_expect, created);

    let read = if canary_exists {
        classify(
            storage
                .get_bounded(&canary, body.len() as u64)
                .await
                .map(|_| ()),
        )
    } else {
        // Nothing of ours to read: read what a reading role reads, the backup's descriptor.
        let descriptor = format!("{backup_id}/backup.json");
        match storage.get_bounded(&descriptor, 1 << 20).await {
            Ok(_) => (Found::Allowed, "allowed".to_owned()),
            Err(StorageError::PermissionDenied { .. }) => (Found::Denied, "denied".to_owned()),
            Err(StorageError::NotFound { .. }) => (
                Found::Unknown,
                format!(
                    "{descriptor} does not exist yet, so reading could not be tried; run the \
                     probe again after the first backup"
                ),
            ),
            Err(e) => (Found::Unknown, e.to_string()),
        }
    };
    add("read", read_expect, read);

    let mut canary_left = None;
    if canary_exists {
        let deleted = classify(storage.probe_delete(&canary).await);
        if deleted.0 != Found::Allowed {
            canary_left = Some(storage.location(&canary));
        }
        let delete_expect = match role {
            Role::Admin => Expect::Needed,
            _ => Expect::Forbidden,
        };
        add("delete", delete_expect, deleted);
    }
    if let Some((settings, real)) = kms {
        let (generate, decrypt) = crate::keys::aws_kms::probe(settings, real).await;
        let (generate_expect, decrypt_expect) = match role {
            Role::Backup => (Expect::Needed, Expect::Forbidden),
            Role::Restore | Role::Validate => (Expect::Forbidden, Expect::Needed),
            Role::Admin => (Expect::Forbidden, Expect::Forbidden),
        };
        add("kms generate", generate_expect, classify_key(generate));
        add("kms decrypt", decrypt_expect, classify_key(decrypt));
    }
    let ok = checks.iter().all(|c| c.ok);
    Report {
        role,
        location: storage.location(""),
        credential_source: storage.credential_source().to_owned(),
        checks,
        canary_left,
        ok,
    }
}

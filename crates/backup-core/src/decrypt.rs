//! What readers of a backup (validate, restore, describe) need to decrypt it: a source of
//! unwrapped data keys, behind a small trait so that the engines do not depend on how keys are
//! configured or fetched (an `age` identity, a KMS call, a key file).

use std::fmt;

use backup_format::crypto::{DataKey, WrappedKey};
use futures::future::BoxFuture;

/// Why a data key could not be unwrapped; its message names the cause and the fix, without
/// key material.
pub type UnwrapError = Box<dyn std::error::Error + Send + Sync>;

/// Unwraps the data keys of a backup's runs.
pub trait DataKeys: Send + Sync + fmt::Debug {
    /// The data key that `wrapped` holds, for the run `run_id` of backup `backup_id` (a KMS
    /// binds both into the wrapped key's encryption context).
    fn data_key<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        backup_id: &'a str,
        run_id: &'a str,
    ) -> BoxFuture<'a, Result<DataKey, UnwrapError>>;
}

impl DataKeys for crate::keys::KeyRing {
    fn data_key<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        backup_id: &'a str,
        run_id: &'a str,
    ) -> BoxFuture<'a, Result<DataKey, UnwrapError>> {
        Box::pin(async move {
            let ctx = crate::keys::KeyContext::new(backup_id, run_id);
            self.unwrap(wrapped, &ctx)
                .await
                .map_err(|e| Box::new(e) as UnwrapError)
        })
    }
}

impl crate::config::LoadedConfig {
    /// The keys this configuration can decrypt a backup with (a restore's
    /// `restore.encryption`; for a backup configuration, what its own provider can unwrap),
    /// or `None` when it has none. The key ring caches what it unwraps.
    pub fn data_keys(&self) -> Option<std::sync::Arc<dyn DataKeys>> {
        let ring = self.key_ring();
        (!ring.is_empty()).then(|| std::sync::Arc::new(ring) as std::sync::Arc<dyn DataKeys>)
    }

    /// What a reading command trusts and decrypts with: this configuration's verify keys and
    /// key ring, plus `extra_keys` and `expected_runs` from the command line.
    pub fn read_keys(
        &self,
        extra_keys: &[backup_format::signing::VerifyingKey],
        expected_runs: &[String],
    ) -> ReadKeys {
        let mut keys = self.verifying_keys().keys().to_vec();
        for k in extra_keys {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        ReadKeys {
            trust: crate::catalog::trust::Trust {
                keys: backup_format::signing::VerifyingKeys::new(keys),
                expected_runs: expected_runs.to_vec(),
                admin_keys: self.release_keys().unwrap_or_default(),
            },
            data: self.data_keys(),
        }
    }
}

/// Remembers unwrapped keys: every segment of a run carries the same wrapped key, and a
/// restore of thousands of segments must not call a KMS thousands of times.
#[derive(Debug)]
pub struct CachedKeys<K> {
    inner: K,
    cache: std::sync::Mutex<std::collections::HashMap<(String, String, String), DataKey>>,
}

impl<K: DataKeys> CachedKeys<K> {
    /// Caches what `inner` unwraps.
    pub fn new(inner: K) -> Self {
        Self {
            inner,
            cache: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl<K: DataKeys> DataKeys for CachedKeys<K> {
    fn data_key<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        backup_id: &'a str,
        run_id: &'a str,
    ) -> BoxFuture<'a, Result<DataKey, UnwrapError>> {
        Box::pin(async move {
            let id = (
                wrapped.fingerprint(),
                backup_id.to_owned(),
                run_id.to_owned(),
            );
            if let Some(k) = self
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
            {
                return Ok(k.clone());
            }
            let key = self.inner.data_key(wrapped, backup_id, run_id).await?;
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, key.clone());
            Ok(key)
        })
    }
}

/// What a reader of a backup may use: the signatures it trusts and the keys it can decrypt
/// with.
#[derive(Debug, Clone, Default)]
pub struct ReadKeys {
    /// Verify keys and anchors.
    pub trust: crate::catalog::trust::Trust,
    /// Unwraps data keys; `None` when no decryption key is configured.
    pub data: Option<std::sync::Arc<dyn DataKeys>>,
}

/// Why an object could not be decrypted: what to tell the operator, and the kind of failure
/// (a key to configure, a key service that refuses, ...), which decides the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFailure {
    /// One sentence, naming the keys needed; never key material.
    pub message: String,
    /// What the operator can do about it.
    pub kind: crate::keys::KeyErrorKind,
}

impl std::fmt::Display for KeyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl KeyFailure {
    /// The failure of an unwrap, classified when it is a [`crate::keys::KeyError`].
    pub fn of_unwrap(why: &UnwrapError) -> Self {
        let kind = why
            .downcast_ref::<crate::keys::KeyError>()
            .map_or(crate::keys::KeyErrorKind::Internal, |e| e.kind());
        Self {
            message: format!("cannot decrypt it: {why}"),
            kind,
        }
    }
}

/// The data key of an encrypted segment (by its clear header), `None` for a segment in the
/// clear. Without keys, an encrypted segment is an error naming the keys it needs.
pub async fn segment_data_key(
    keys: Option<&dyn DataKeys>,
    header: &backup_format::SegmentHeader,
) -> Result<Option<DataKey>, KeyFailure> {
    let Some(e) = &header.encryption else {
        return Ok(None);
    };
    let Some(keys) = keys else {
        return Err(KeyFailure {
            message: format!(
                "it is encrypted ({} key {}) and no decryption key is configured: set \
                 restore.encryption",
                e.key.provider,
                e.key.key_ids.join(", ")
            ),
            kind: crate::keys::KeyErrorKind::NoMatchingKey,
        });
    };
    keys.data_key(&e.key, &header.backup_id, &header.run_id)
        .await
        .map(Some)
        .map_err(|why| KeyFailure::of_unwrap(&why))
}

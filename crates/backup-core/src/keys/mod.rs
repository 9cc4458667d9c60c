//! Key providers: who wraps a run's data key on backup, and who unwraps it on restore.
//!
//! A backup run draws one random [`DataKey`] (or has KMS draw it) and stores only its
//! [`WrappedKey`]. Three providers, one module each, behind two small traits:
//!
//! | provider | backup ([`WrapKeys`]) | restore ([`UnwrapKeys`]) | bound to the run |
//! |---|---|---|---|
//! | `public-key` ([`public_key`]) | age X25519 recipients | age identities | no (age has no associated data) |
//! | `aws-kms` ([`aws_kms`]) | `GenerateDataKey` | `Decrypt` | KMS encryption context |
//! | `local` ([`local`]) | AES-256-GCM with a key file | the same key files | AES-GCM associated data |
//!
//! The backup side is a [`KeyWrapper`] built from [`EncryptionSettings`]; the restore side a
//! [`KeyRing`] built from any number of [`DecryptionSettings`] (keys rotate, providers
//! change), which picks candidates by the wrapped key's provider and key ids and caches what
//! it unwrapped, so a restore of thousands of segments of one run calls KMS once.
//!
//! Nothing here ever prints key material: every type's `Debug` shows key ids only, and
//! [`KeyError`] messages name keys by id.

pub mod aws_kms;
mod error;
mod generate;
pub mod local;
pub mod public_key;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use backup_format::crypto::{DataKey, ProviderKind, WrappedKey};
use tokio::sync::OnceCell;

pub use aws_kms::{KmsCredentials, KmsSettings};
pub use error::{KeyError, KeyErrorKind};
pub use generate::{GeneratedKey, KeyType, generate_key};
pub use local::LocalKey;
pub use public_key::{AgeIdentities, AgeRecipients};

/// What a wrapped key is bound to: the backup and the run that wrapped it. KMS puts it in
/// the encryption context, the local provider in the AES-GCM associated data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyContext {
    /// The backup id.
    pub backup_id: String,
    /// The run id.
    pub run_id: String,
}

impl KeyContext {
    /// The context of run `run_id` of backup `backup_id`.
    pub fn new(backup_id: impl Into<String>, run_id: impl Into<String>) -> Self {
        Self {
            backup_id: backup_id.into(),
            run_id: run_id.into(),
        }
    }
}

/// A boxed future of a provider call (the traits stay object-safe).
pub type KeyFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, KeyError>> + Send + 'a>>;

/// The backup side of a provider: makes a run's data key and its wrapped form.
pub trait WrapKeys: fmt::Debug + Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> ProviderKind;
    /// The key ids wrapped keys will name (never secret).
    fn key_ids(&self) -> Vec<String>;
    /// A fresh data key for the run of `ctx`, and its wrapped form.
    fn new_run_key<'a>(&'a self, ctx: &'a KeyContext) -> KeyFuture<'a, (DataKey, WrappedKey)>;
}

/// Whether a configured key can unwrap a wrapped key, decided without the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMatch {
    /// Yes: this configured key (by id) is one the wrapped key names.
    Yes(String),
    /// Only the key service can tell (a KMS alias, or no key id configured): why.
    Maybe(String),
    /// No.
    No,
}

/// The restore side of a provider: unwraps what its provider wrapped.
pub trait UnwrapKeys: fmt::Debug + Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> ProviderKind;
    /// The configured key ids, for messages.
    fn key_ids(&self) -> Vec<String>;
    /// Whether one of the configured keys fits `wrapped` (no network).
    fn matches(&self, wrapped: &WrappedKey) -> KeyMatch;
    /// Unwraps `wrapped`, made for the run of `ctx`.
    fn unwrap_key<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        ctx: &'a KeyContext,
    ) -> KeyFuture<'a, DataKey>;
}

/// Validated `backup.encryption`: the provider and its public settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptionSettings {
    /// Encrypt to these age recipients.
    PublicKey(AgeRecipients),
    /// KMS `GenerateDataKey` with this key.
    AwsKms(KmsSettings),
    /// Wrap with this local key.
    Local(Arc<LocalKey>),
}

impl EncryptionSettings {
    /// The provider.
    pub fn provider(&self) -> ProviderKind {
        match self {
            Self::PublicKey(_) => ProviderKind::PublicKey,
            Self::AwsKms(_) => ProviderKind::AwsKms,
            Self::Local(_) => ProviderKind::Local,
        }
    }

    /// What the backup side could itself unwrap: the local key, or KMS `Decrypt` with the
    /// same settings; nothing for public keys (the backup host holds none).
    pub fn self_decryption(&self) -> Option<DecryptionSettings> {
        match self {
            Self::PublicKey(_) => None,
            Self::AwsKms(kms) => Some(DecryptionSettings::AwsKms(kms.clone())),
            Self::Local(key) => Some(DecryptionSettings::Local(vec![key.clone()])),
        }
    }
}

/// One entry of `restore.encryption`: a provider and the private keys or access it unwraps
/// with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptionSettings {
    /// age identities.
    PublicKey(AgeIdentities),
    /// KMS `Decrypt`.
    AwsKms(KmsSettings),
    /// Local key files (the current one and older ones).
    Local(Vec<Arc<LocalKey>>),
}

impl DecryptionSettings {
    /// The provider.
    pub fn provider(&self) -> ProviderKind {
        match self {
            Self::PublicKey(_) => ProviderKind::PublicKey,
            Self::AwsKms(_) => ProviderKind::AwsKms,
            Self::Local(_) => ProviderKind::Local,
        }
    }
}

/// The backup side, built from the backup configuration.
#[derive(Debug, Clone)]
pub struct KeyWrapper {
    inner: Arc<dyn WrapKeys>,
}

impl KeyWrapper {
    /// The wrapper for `settings`. Never touches the network (a KMS client is built on first
    /// use).
    pub fn new(settings: &EncryptionSettings) -> Self {
        let inner: Arc<dyn WrapKeys> = match settings {
            EncryptionSettings::PublicKey(r) => Arc::new(public_key::AgeWrapper {
                recipients: r.clone(),
            }),
            EncryptionSettings::AwsKms(s) => Arc::new(aws_kms::Kms::new(s.clone())),
            EncryptionSettings::Local(k) => Arc::new(local::LocalWrapper { key: k.clone() }),
        };
        Self { inner }
    }

    /// A provider of one's own (tests, other key services).
    pub fn from_provider(provider: Arc<dyn WrapKeys>) -> Self {
        Self { inner: provider }
    }

    /// A fresh data key for the run of `ctx`, and the wrapped form to store.
    pub async fn new_run_key(&self, ctx: &KeyContext) -> Result<(DataKey, WrappedKey), KeyError> {
        let (key, wrapped) = self.inner.new_run_key(ctx).await?;
        wrapped
            .validate()
            .map_err(|e| KeyError::internal(format!("the provider's wrapped key: {e}")))?;
        Ok((key, wrapped))
    }

    /// The provider.
    pub fn provider(&self) -> ProviderKind {
        self.inner.provider()
    }

    /// The key ids wrapped keys will name.
    pub fn key_ids(&self) -> Vec<String> {
        self.inner.key_ids()
    }

    /// One line for logs and reports: the provider and key ids, no secret.
    pub fn description(&self) -> String {
        describe(self.provider(), &self.key_ids())
    }
}

fn describe(provider: ProviderKind, ids: &[String]) -> String {
    match provider {
        ProviderKind::PublicKey => format!("public-key to {}", ids.join(", ")),
        ProviderKind::AwsKms if ids.is_empty() => "aws-kms".to_owned(),
        ProviderKind::AwsKms => format!("aws-kms key {}", ids.join(", ")),
        ProviderKind::Local => format!("local key {}", ids.join(", ")),
    }
}

/// Whether a [`KeyRing`] holds a key for a wrapped key (for `describe`; no network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAvailability {
    /// A configured key is one the wrapped key names.
    Available {
        /// The configured key's id.
        key_id: String,
    },
    /// Only the key service can tell (KMS): why.
    Possible {
        /// The reason.
        reason: String,
    },
    /// No configured key can unwrap it.
    Missing {
        /// The key ids of the wrapped key's provider that are configured.
        configured: Vec<String>,
    },
}

/// Cached unwrapped keys: one slot per wrapped key and context, filled once even when many
/// tasks ask at the same time.
type Cache = HashMap<(String, KeyContext), Arc<OnceCell<DataKey>>>;

/// Most cached data keys; beyond it the cache starts over (a restore touches a few runs).
const MAX_CACHED: usize = 4096;

/// The restore side: every configured provider entry, tried in turn.
#[derive(Clone, Default)]
pub struct KeyRing {
    entries: Vec<Arc<dyn UnwrapKeys>>,
    cache: Arc<Mutex<Cache>>,
    calls: Arc<AtomicU64>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// The ring of `settings`, in order. Never touches the network.
    pub fn new(settings: &[DecryptionSettings]) -> Self {
        let entries = settings
            .iter()
            .map(|s| -> Arc<dyn UnwrapKeys> {
                match s {
                    DecryptionSettings::PublicKey(ids) => Arc::new(public_key::AgeUnwrapper {
                        identities: ids.clone(),
                    }),
                    DecryptionSettings::AwsKms(k) => Arc::new(aws_kms::Kms::new(k.clone())),
                    DecryptionSettings::Local(keys) => {
                        Arc::new(local::LocalUnwrapper { keys: keys.clone() })
                    }
                }
            })
            .collect();
        Self::from_providers(entries)
    }

    /// A ring of providers of one's own.
    pub fn from_providers(entries: Vec<Arc<dyn UnwrapKeys>>) -> Self {
        Self {
            entries,
            cache: Arc::default(),
            calls: Arc::default(),
        }
    }

    /// True when no key is configured: nothing encrypted can be read.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// One line per entry: provider and key ids, no secret.
    pub fn descriptions(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| describe(e.provider(), &e.key_ids()))
            .collect()
    }

    /// How many times a provider was asked to unwrap (cache misses), for tests and reports.
    pub fn provider_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Whether a configured key can unwrap `wrapped`, without the network.
    pub fn availability(&self, wrapped: &WrappedKey) -> KeyAvailability {
        let mut possible = None;
        for entry in self.same_provider(wrapped.provider) {
            match entry.matches(wrapped) {
                KeyMatch::Yes(key_id) => return KeyAvailability::Available { key_id },
                KeyMatch::Maybe(reason) => {
                    possible.get_or_insert(reason);
                }
                KeyMatch::No => {}
            }
        }
        match possible {
            Some(reason) => KeyAvailability::Possible { reason },
            None => KeyAvailability::Missing {
                configured: self.configured(wrapped.provider),
            },
        }
    }

    /// The data key of `wrapped`, made for the run of `ctx`: from the cache, or from the
    /// first configured key that unwraps it.
    pub async fn unwrap(
        &self,
        wrapped: &WrappedKey,
        ctx: &KeyContext,
    ) -> Result<DataKey, KeyError> {
        wrapped
            .validate()
            .map_err(|e| KeyError::InvalidWrappedKey {
                provider: wrapped.provider,
                key_ids: Vec::new(),
                reason: e.to_string(),
            })?;
        let slot = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache
                .entry((wrapped.fingerprint(), ctx.clone()))
                .or_default()
                .clone()
        };
        slot.get_or_try_init(|| self.unwrap_uncached(wrapped, ctx))
            .await
            .cloned()
    }

    async fn unwrap_uncached(
        &self,
        wrapped: &WrappedKey,
        ctx: &KeyContext,
    ) -> Result<DataKey, KeyError> {
        let mut candidates: Vec<(&Arc<dyn UnwrapKeys>, bool)> = Vec::new();
        for entry in self.same_provider(wrapped.provider) {
            match entry.matches(wrapped) {
                KeyMatch::Yes(_) => candidates.push((entry, true)),
                KeyMatch::Maybe(_) => candidates.push((entry, false)),
                KeyMatch::No => {}
            }
        }
        // Sure matches first.
        candidates.sort_by_key(|(_, sure)| !*sure);
        if candidates.is_empty() {
            return Err(KeyError::NoMatchingKey {
                provider: wrapped.provider,
                needed: wrapped.key_ids.clone(),
                configured: self.configured(wrapped.provider),
            });
        }
        let mut best: Option<KeyError> = None;
        for (entry, _) in candidates {
            self.calls.fetch_add(1, Ordering::Relaxed);
            match entry.unwrap_key(wrapped, ctx).await {
                Ok(key) => return Ok(key),
                Err(e) => {
                    if best.as_ref().is_none_or(|b| rank(&e) < rank(b)) {
                        best = Some(e);
                    }
                }
            }
        }
        Err(best.expect("at least one candidate was tried"))
    }

    fn same_provider(&self, provider: ProviderKind) -> impl Iterator<Item = &Arc<dyn UnwrapKeys>> {
        self.entries
            .iter()
            .filter(move |e| e.provider() == provider)
    }

    fn configured(&self, provider: ProviderKind) -> Vec<String> {
        self.same_provider(provider)
            .flat_map(|e| e.key_ids())
            .collect()
    }
}

/// Which of several candidates' errors to report: the one the operator can act on first.
fn rank(e: &KeyError) -> u8 {
    match e {
        KeyError::AccessDenied { .. } | KeyError::Unauthenticated { .. } => 0,
        KeyError::Unreachable { .. } => 1,
        KeyError::Configuration { .. } => 2,
        KeyError::InvalidWrappedKey { .. } => 3,
        KeyError::NoMatchingKey { .. } => 4,
        KeyError::Internal { .. } => 5,
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every settings, provider and ring type, and every error, formatted: no key material.
    #[test]
    fn nothing_prints_key_material() {
        let age = generate_key(KeyType::Age, "now").unwrap();
        let local = generate_key(KeyType::Local, "now").unwrap();
        let signing = generate_key(KeyType::Signing, "now").unwrap();
        let mut recipients = AgeRecipients::new();
        recipients.add(&age.id).unwrap();
        let mut identities = AgeIdentities::new();
        identities.add_file_text(&age.private_file).unwrap();
        let local_key = Arc::new(LocalKey::parse(local.private_file.as_bytes()).unwrap());
        let kms = KmsSettings {
            key_id: Some("alias/k".into()),
            region: Some("eu-west-1".into()),
            endpoint: None,
            credentials: Some(KmsCredentials {
                access_key_id: "AKIAEXAMPLE".into(),
                secret_access_key: kafka_client::Secret::new("Secret-Access-Key-Value-99"),
                session_token: Some(kafka_client::Secret::new("Session-Token-Value-77")),
            }),
        };
        let encryption = [
            EncryptionSettings::PublicKey(recipients),
            EncryptionSettings::AwsKms(kms.clone()),
            EncryptionSettings::Local(local_key.clone()),
        ];
        let decryption = [
            DecryptionSettings::PublicKey(identities),
            DecryptionSettings::AwsKms(kms),
            DecryptionSettings::Local(vec![local_key]),
        ];
        let wrappers: Vec<KeyWrapper> = encryption.iter().map(KeyWrapper::new).collect();
        let ring = KeyRing::new(&decryption);
        let data_key = DataKey::generate().unwrap();
        let errors = [
            KeyError::configuration("c"),
            KeyError::NoMatchingKey {
                provider: ProviderKind::Local,
                needed: vec![local.id.clone()],
                configured: ring.configured(ProviderKind::Local),
            },
            KeyError::internal("i"),
        ];
        let text = format!(
            "{encryption:?} {decryption:?} {wrappers:?} {ring:?} {data_key:?} {age:?} {local:?} \
             {signing:?} {errors:?} {} {}",
            wrappers
                .iter()
                .map(KeyWrapper::description)
                .collect::<Vec<_>>()
                .join(" "),
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        );
        let secret_lines = [
            &age.private_file,
            &local.private_file,
            &signing.private_file,
        ]
        .into_iter()
        .flat_map(|f| {
            f.lines()
                .filter(|l| !l.starts_with('#') && !l.starts_with("-----"))
        })
        .map(ToOwned::to_owned)
        .collect::<Vec<_>>();
        assert!(!secret_lines.is_empty());
        for secret in secret_lines
            .iter()
            .map(String::as_str)
            .chain(["Secret-Access-Key-Value-99", "Session-Token-Value-77"])
        {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(!text.contains(&hex(data_key.expose_bytes())));
        // What is shown: ids.
        assert!(text.contains(&age.id) && text.contains(&local.id) && text.contains(&signing.id));
    }
}

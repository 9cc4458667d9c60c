//! `spec.encryption` of a backup and the key ring of a restore.
//!
//! These fail closed: a block that cannot be rendered exactly as written is a
//! [`RenderError::Encryption`], so the backup never runs unencrypted or encrypted to other
//! keys than the resource names.

use super::RenderError;
use super::model::Encryption;
use super::mounts::{Mounts, literal};
use crate::crd::{
    AwsCredentialsSecretRef, DecryptionKeySpec, EncryptionAlgorithm, EncryptionSpec, KeyProvider,
};

/// The backup's `backup.encryption`.
pub(super) fn backup_encryption(
    spec: &EncryptionSpec,
    mounts: &mut Mounts,
) -> Result<Encryption, RenderError> {
    let section = "spec.encryption";
    let provider = spec.key_provider;
    let keys = [
        (
            "recipients",
            !spec.recipients.is_empty(),
            KeyProvider::PublicKey,
        ),
        (
            "recipientsConfigMap",
            spec.recipients_config_map.is_some(),
            KeyProvider::PublicKey,
        ),
        ("kmsKeyId", spec.kms_key_id.is_some(), KeyProvider::AwsKms),
        ("region", spec.region.is_some(), KeyProvider::AwsKms),
        ("endpoint", spec.endpoint.is_some(), KeyProvider::AwsKms),
        ("allowHttp", spec.allow_http.is_some(), KeyProvider::AwsKms),
        (
            "credentialsSecret",
            spec.credentials_secret.is_some(),
            KeyProvider::AwsKms,
        ),
        ("keySecret", spec.key_secret.is_some(), KeyProvider::Local),
    ];
    foreign_keys(section, provider, &keys)?;
    let mut block = Encryption {
        enabled: spec.enabled,
        algorithm: spec.algorithm.map(|a| match a {
            EncryptionAlgorithm::Aes256Gcm => "AES-256-GCM",
        }),
        key_provider: provider.as_str(),
        ..Encryption::default()
    };
    match provider {
        KeyProvider::PublicKey => {
            if spec.recipients.is_empty() && spec.recipients_config_map.is_none() {
                return Err(unusable(
                    section,
                    "recipients",
                    "keyProvider public-key encrypts to age recipients, and none is given: list \
                     them in recipients (age1...) or name a ConfigMap key in \
                     recipientsConfigMap (create them with `kafka-backup keys generate --type \
                     age`)",
                ));
            }
            for (index, recipient) in spec.recipients.iter().enumerate() {
                if !recipient.trim().starts_with("age1") {
                    return Err(unusable(
                        section,
                        &format!("recipients[{index}]"),
                        "is not an age X25519 recipient (a public key starting with age1); an \
                         identity (AGE-SECRET-KEY-...) must never be given to a backup, and an \
                         SSH key is not supported",
                    ));
                }
                block.recipients.push(literal(recipient.trim()));
            }
            block.recipients_file = spec
                .recipients_config_map
                .as_ref()
                .map(|c| mounts.config_map_file(&c.name, &c.key));
        }
        KeyProvider::AwsKms => {
            let Some(key_id) = &spec.kms_key_id else {
                return Err(unusable(
                    section,
                    "kmsKeyId",
                    "keyProvider aws-kms needs the KMS key that wraps each run's data key: \
                     give its key id, ARN or alias (e.g. alias/kafka-backup)",
                ));
            };
            block.kms_key_id = Some(literal(key_id));
            kms_settings(
                section,
                spec.region.as_deref(),
                spec.endpoint.as_deref(),
                spec.allow_http,
                spec.credentials_secret.as_ref(),
                &mut block,
                mounts,
            )?;
        }
        KeyProvider::Local => {
            let Some(secret) = &spec.key_secret else {
                return Err(unusable(
                    section,
                    "keySecret",
                    "keyProvider local needs the key file: name the Secret and key holding it \
                     (create one with `kafka-backup keys generate --type local`)",
                ));
            };
            block.key_file = Some(mounts.secret_file(&secret.name, &secret.key));
        }
    }
    Ok(block)
}

/// One entry of a restore's `restore.encryption` key ring; `section` is its path in the spec.
pub(super) fn decryption_key(
    spec: &DecryptionKeySpec,
    section: &str,
    mounts: &mut Mounts,
) -> Result<Encryption, RenderError> {
    let provider = spec.key_provider;
    let keys = [
        (
            "identitySecrets",
            !spec.identity_secrets.is_empty(),
            KeyProvider::PublicKey,
        ),
        ("kmsKeyId", spec.kms_key_id.is_some(), KeyProvider::AwsKms),
        ("region", spec.region.is_some(), KeyProvider::AwsKms),
        ("endpoint", spec.endpoint.is_some(), KeyProvider::AwsKms),
        ("allowHttp", spec.allow_http.is_some(), KeyProvider::AwsKms),
        (
            "credentialsSecret",
            spec.credentials_secret.is_some(),
            KeyProvider::AwsKms,
        ),
        (
            "keySecrets",
            !spec.key_secrets.is_empty(),
            KeyProvider::Local,
        ),
    ];
    foreign_keys(section, provider, &keys)?;
    let mut block = Encryption {
        key_provider: provider.as_str(),
        ..Encryption::default()
    };
    match provider {
        KeyProvider::PublicKey => {
            if spec.identity_secrets.is_empty() {
                return Err(unusable(
                    section,
                    "identitySecrets",
                    "keyProvider public-key decrypts with age identities: name the Secret keys \
                     holding them (age-keygen format)",
                ));
            }
            block.identity_files = spec
                .identity_secrets
                .iter()
                .map(|s| mounts.secret_file(&s.name, &s.key))
                .collect();
        }
        KeyProvider::AwsKms => {
            block.kms_key_id = spec.kms_key_id.as_deref().map(literal);
            kms_settings(
                section,
                spec.region.as_deref(),
                spec.endpoint.as_deref(),
                spec.allow_http,
                spec.credentials_secret.as_ref(),
                &mut block,
                mounts,
            )?;
        }
        KeyProvider::Local => {
            if spec.key_secrets.is_empty() {
                return Err(unusable(
                    section,
                    "keySecrets",
                    "keyProvider local decrypts with key files: name the Secret keys holding \
                     the current key and any older one the backup still needs",
                ));
            }
            block.key_files = spec
                .key_secrets
                .iter()
                .map(|s| mounts.secret_file(&s.name, &s.key))
                .collect();
        }
    }
    Ok(block)
}

fn unusable(section: &str, field: &str, reason: &str) -> RenderError {
    RenderError::Encryption {
        field: format!("{section}.{field}"),
        reason: reason.to_owned(),
    }
}

/// A key of another provider is refused: ignoring it could change what the backup is
/// encrypted to without anyone noticing.
fn foreign_keys(
    section: &str,
    provider: KeyProvider,
    keys: &[(&str, bool, KeyProvider)],
) -> Result<(), RenderError> {
    match keys
        .iter()
        .find(|(_, set, owner)| *set && *owner != provider)
    {
        None => Ok(()),
        Some((key, _, owner)) => Err(unusable(
            section,
            key,
            &format!(
                "is a setting of keyProvider {}, but keyProvider is {}; remove it, or change \
                 keyProvider",
                owner.as_str(),
                provider.as_str()
            ),
        )),
    }
}

fn kms_settings(
    section: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
    allow_http: Option<bool>,
    credentials: Option<&AwsCredentialsSecretRef>,
    block: &mut Encryption,
    mounts: &mut Mounts,
) -> Result<(), RenderError> {
    if let Some(endpoint) = endpoint
        && endpoint.starts_with("http://")
        && allow_http != Some(true)
    {
        return Err(unusable(
            section,
            "endpoint",
            "is http://, and KMS answers carry the data keys: use https://, or set allowHttp: \
             true for a local test server",
        ));
    }
    block.region = region.map(literal);
    block.endpoint = endpoint.map(literal);
    block.allow_http = allow_http;
    if let Some(secret) = credentials {
        block.access_key_id = Some(mounts.secret_value(&secret.name, &secret.access_key_id_key));
        block.secret_access_key =
            Some(mounts.secret_value(&secret.name, &secret.secret_access_key_key));
        block.session_token = secret
            .session_token_key
            .as_ref()
            .map(|k| mounts.secret_value(&secret.name, k));
    }
    Ok(())
}

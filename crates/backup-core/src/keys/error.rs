//! Why a data key could not be wrapped or unwrapped, classified by what the operator can do.
//!
//! Every message reads as the end of a sentence that the caller starts with the object's
//! name: `cannot decrypt <object>: <KeyError>`. No message ever contains key material: only
//! key ids (age recipients, KMS key ARNs, local key fingerprints), file names and the
//! services' own error codes.

use backup_format::crypto::ProviderKind;

/// A data key could not be wrapped or unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file or a provider setting cannot be used (unreadable or malformed key file,
    /// unknown KMS key, missing region). Fixed in the configuration or the key file.
    #[error("{message}")]
    Configuration {
        /// What is wrong and how to fix it.
        message: String,
    },

    /// None of the configured keys is one that the wrapped key names.
    #[error(
        "its data key was wrapped by {provider} for {}; {}",
        list_or_none(needed),
        no_match_advice(*provider, configured)
    )]
    NoMatchingKey {
        /// The provider that wrapped the key.
        provider: ProviderKind,
        /// The key ids the wrapped key names (public, never secret).
        needed: Vec<String>,
        /// The key ids of that provider that are configured.
        configured: Vec<String>,
    },

    /// The key service refused the operation to this identity.
    #[error(
        "{service} denied {action} on {key} ({message}); grant {action} on {key} to the identity \
         that runs this command{}",
        role_hint(action)
    )]
    AccessDenied {
        /// The service, e.g. `AWS KMS`.
        service: &'static str,
        /// The action that was refused, e.g. `kms:Decrypt`.
        action: &'static str,
        /// The key it was refused on.
        key: String,
        /// The service's error code and message.
        message: String,
    },

    /// The key service did not accept the credentials (unknown key id, wrong secret, expired
    /// session token).
    #[error(
        "{service} did not accept the credentials ({message}); check access_key_id, \
         secret_access_key and session_token in the configuration, or the AWS credential chain \
         (environment, web identity, instance role) when they are not set"
    )]
    Unauthenticated {
        /// The service, e.g. `AWS KMS`.
        service: &'static str,
        /// The service's error code and message.
        message: String,
    },

    /// The key service could not be reached.
    #[error(
        "{service} at {endpoint} cannot be reached ({message}); check the endpoint and region in \
         the configuration, the network path and any proxy, then run the command again"
    )]
    Unreachable {
        /// The service, e.g. `AWS KMS`.
        service: &'static str,
        /// Where it was looked for.
        endpoint: String,
        /// What failed.
        message: String,
    },

    /// The wrapped key does not unwrap although a matching key is configured: it was altered,
    /// or moved from another backup or run.
    #[error(
        "its data key (wrapped by {provider} for {}) does not unwrap: {reason}; the object was \
         altered or moved from another backup or run: restore it from a good copy, or run \
         `kafka-backup validate` to see what else is affected",
        list_or_none(key_ids)
    )]
    InvalidWrappedKey {
        /// The provider that wrapped the key.
        provider: ProviderKind,
        /// The key ids the wrapped key names.
        key_ids: Vec<String>,
        /// What failed.
        reason: String,
    },

    /// A failure that the operator cannot fix (the random number generator, an answer the
    /// key service should never give).
    #[error("internal error: {message}; please report it")]
    Internal {
        /// What happened.
        message: String,
    },
}

impl KeyError {
    /// A [`KeyError::Configuration`].
    pub fn configuration(message: impl Into<String>) -> Self {
        Self::Configuration {
            message: message.into(),
        }
    }

    /// A [`KeyError::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
        }
    }

    /// Whether running the same command again, unchanged, may succeed (the key service was
    /// unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// Which of the error's kinds this is, for code that decides on it (exit codes, audit).
    pub fn kind(&self) -> KeyErrorKind {
        match self {
            Self::Configuration { .. } => KeyErrorKind::Configuration,
            Self::NoMatchingKey { .. } => KeyErrorKind::NoMatchingKey,
            Self::AccessDenied { .. } | Self::Unauthenticated { .. } => KeyErrorKind::AccessDenied,
            Self::Unreachable { .. } => KeyErrorKind::Unreachable,
            Self::InvalidWrappedKey { .. } => KeyErrorKind::InvalidWrappedKey,
            Self::Internal { .. } => KeyErrorKind::Internal,
        }
    }
}

/// The classes of [`KeyError`], by what the operator can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyErrorKind {
    /// Fix the configuration or the key file.
    Configuration,
    /// Configure the key the object needs.
    NoMatchingKey,
    /// Grant the permission, or fix the credentials.
    AccessDenied,
    /// Reach the key service (network, endpoint); may work when run again.
    Unreachable,
    /// The stored object is damaged or misplaced.
    InvalidWrappedKey,
    /// A bug or a broken platform.
    Internal,
}

fn list_or_none(ids: &[String]) -> String {
    if ids.is_empty() {
        "no named key".to_owned()
    } else {
        ids.join(", ")
    }
}

fn no_match_advice(provider: ProviderKind, configured: &[String]) -> String {
    let fix = match provider {
        ProviderKind::PublicKey => {
            "add the identity file of one of those recipients to restore.encryption \
             (key_provider: public-key, identity_files: [...])"
        }
        ProviderKind::AwsKms => {
            "add an aws-kms entry to restore.encryption whose kms_key_id is that key (or leave \
             kms_key_id out to let KMS choose the key from the wrapped key)"
        }
        ProviderKind::Local => {
            "add the key file with that fingerprint to restore.encryption (key_provider: local, \
             key_files: [...]); a key file made by `kafka-backup keys generate` has its \
             fingerprint on its `# fingerprint:` line"
        }
    };
    if configured.is_empty() {
        format!("no {provider} key is configured: {fix}")
    } else {
        format!(
            "the configured {provider} keys are {}, none of them: {fix}",
            configured.join(", ")
        )
    }
}

fn role_hint(action: &str) -> &'static str {
    match action {
        "kms:Decrypt" => {
            " (restore, validate and describe need kms:Decrypt; the backup role needs only \
             kms:GenerateDataKey)"
        }
        "kms:GenerateDataKey" => " (the backup role needs kms:GenerateDataKey)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_after_the_object_name_and_name_the_fix() {
        let e = KeyError::NoMatchingKey {
            provider: ProviderKind::Local,
            needed: vec!["0123456789abcdef".into()],
            configured: vec!["fedcba9876543210".into()],
        };
        let text = format!("cannot decrypt b/x.kbseg: {e}");
        assert!(
            text.contains("wrapped by local for 0123456789abcdef"),
            "{text}"
        );
        assert!(text.contains("fedcba9876543210"), "{text}");
        assert!(text.contains("key_files"), "{text}");
        assert_eq!(e.kind(), KeyErrorKind::NoMatchingKey);

        let e = KeyError::AccessDenied {
            service: "AWS KMS",
            action: "kms:Decrypt",
            key: "arn:aws:kms:eu-west-1:1:key/k".into(),
            message: "AccessDeniedException".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("grant kms:Decrypt on arn:aws:kms:eu-west-1:1:key/k"),
            "{text}"
        );
        assert!(!text.contains('\n'));
        assert!(
            KeyError::Unreachable {
                service: "AWS KMS",
                endpoint: "x".into(),
                message: "refused".into()
            }
            .is_transient()
        );
    }
}

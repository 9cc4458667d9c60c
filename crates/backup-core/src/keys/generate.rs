//! New keys for `kafka-backup keys generate`, in exactly the formats the configuration
//! loaders read.

use backup_format::signing::SigningKey;
use zeroize::Zeroizing;

use super::{KeyError, LocalKey, public_key};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// An age X25519 identity (restore) and its recipient (backup).
    Age,
    /// A 256-bit local key.
    Local,
    /// An Ed25519 signing key (backup) and its verify key (restore, validate).
    Signing,
}

/// A generated key: the private file's text, the public file's text (when the type has
/// one), and the id to show.
pub struct GeneratedKey {
    /// Contents of the private key file (mode 600).
    pub private_file: Zeroizing<String>,
    /// Contents of the public key file, if any.
    pub public_file: Option<String>,
    /// What identifies the key: the age recipient, the local key's fingerprint, the signing
    /// key's id.
    pub id: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A new key of `kind`; `created` (RFC 3339) goes into the file's comment where the format
/// has one.
pub fn generate_key(kind: KeyType, created: &str) -> Result<GeneratedKey, KeyError> {
    match kind {
        KeyType::Age => {
            let (private_file, recipient) = public_key::generate_identity(created);
            Ok(GeneratedKey {
                private_file,
                public_file: Some(format!("{recipient}\n")),
                id: recipient,
            })
        }
        KeyType::Local => {
            let key = LocalKey::generate()?;
            Ok(GeneratedKey {
                private_file: key.to_file_text(created),
                public_file: None,
                id: key.fingerprint().to_owned(),
            })
        }
        KeyType::Signing => {
            let (key, pem) =
                SigningKey::generate().map_err(|e| KeyError::internal(e.to_string()))?;
            Ok(GeneratedKey {
                private_file: pem,
                public_file: Some(key.verifying_key().to_pem()),
                id: key.verifying_key().key_id(),
            })
        }
    }
}

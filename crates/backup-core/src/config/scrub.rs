//! The last pass over every error: secret values from the file replaced by `***`, and control
//! characters escaped so that each message stays one line and cannot drive a terminal.
//!
//! Messages are built not to contain secrets; this is the second line of defence, for a
//! secret that reaches a message some other way, e.g. a password variable pasted into
//! `security_protocol`. A parse stops at its first error, possibly before the secret keys,
//! so on a parse error the document is read once more, leniently, only to collect the values
//! of every secret key.

use std::fmt;

use kafka_client::Secret;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::env::{self, ConfigSecret};
use super::error::ConfigError;
use super::vocabulary::SECRET_KEYS;

/// Minimum length of a secret that is scrubbed: shorter ones would mangle ordinary words in
/// the message, and are not passwords anyone relies on.
const MIN_SCRUBBED_LEN: usize = 4;

impl ConfigError {
    /// Replaces any of `secrets` found in the message fields with `***`, and escapes control
    /// characters (from values such as a variable holding a newline).
    pub(crate) fn finish(mut self, secrets: &[Secret]) -> Self {
        let secrets: Vec<&str> = secrets
            .iter()
            .map(Secret::expose)
            .filter(|s| s.len() >= MIN_SCRUBBED_LEN)
            .collect();
        let fields: Vec<&mut String> = match &mut self {
            ConfigError::Io { .. } => Vec::new(),
            ConfigError::Limit { message, .. } | ConfigError::Syntax { message, .. } => {
                vec![message]
            }
            ConfigError::UnknownKey { path, .. }
            | ConfigError::DuplicateKey { path, .. }
            | ConfigError::MissingKey { path, .. }
            | ConfigError::UnsetVariable { path, .. } => vec![path],
            ConfigError::UnknownValue { path, value, .. } => vec![path, value],
            ConfigError::WrongType { path, detail, .. } => {
                let mut fields = vec![path];
                fields.extend(detail.as_mut());
                fields
            }
            ConfigError::BadReference { path, detail, .. } => vec![path, detail],
            ConfigError::SecretFile {
                path, file, reason, ..
            } => vec![path, file, reason],
            ConfigError::Invalid { path, message, .. } => vec![path, message],
        };
        for field in fields {
            for secret in &secrets {
                if field.contains(secret) {
                    *field = field.replace(secret, kafka_client::secret::MASK);
                }
            }
            if field.contains(char::is_control) {
                *field = field
                    .chars()
                    .map(|c| {
                        if c.is_control() {
                            c.escape_debug().to_string()
                        } else {
                            c.to_string()
                        }
                    })
                    .collect();
            }
        }
        self
    }
}

/// Values of every secret key anywhere in `text`, as far as the document can be read.
pub(crate) fn harvest_secrets(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<Secret> {
    env::with_substitution(text, env, || {
        // The result does not matter: the secrets are collected as they are read.
        let _ = serde_saphyr::with_deserializer_from_str_with_options(
            text,
            super::yaml_options(),
            |deserializer| Harvest::deserialize(deserializer).map(drop),
        );
    })
    .map(|outcome| outcome.secrets)
    .unwrap_or_default()
}

/// Walks any YAML node; under a secret key, reads the value as a [`ConfigSecret`], which
/// records it in the substitution scope.
struct Harvest;

impl<'de> Deserialize<'de> for Harvest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(HarvestVisitor)
    }
}

struct HarvestVisitor;

impl<'de> Visitor<'de> for HarvestVisitor {
    type Value = Harvest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Harvest, E> {
        Ok(Harvest)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Harvest, E> {
        Ok(Harvest)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Harvest, E> {
        Ok(Harvest)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Harvest, E> {
        Ok(Harvest)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Harvest, E> {
        Ok(Harvest)
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Harvest, E> {
        Ok(Harvest)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Harvest, E> {
        Ok(Harvest)
    }
    fn visit_none<E: de::Error>(self) -> Result<Harvest, E> {
        Ok(Harvest)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Harvest, D::Error> {
        Harvest::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Harvest, A::Error> {
        while seq.next_element::<Harvest>()?.is_some() {}
        Ok(Harvest)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Harvest, A::Error> {
        while let Some(KeyName(key)) = map.next_key()? {
            if key.as_deref().is_some_and(|k| SECRET_KEYS.contains(&k)) {
                map.next_value::<Option<ConfigSecret>>()?;
            } else if key.as_deref() == Some("sasl_options") {
                // A plugin's options are all secrets, whatever their names.
                map.next_value::<Option<std::collections::BTreeMap<String, Option<ConfigSecret>>>>(
                )?;
            } else {
                map.next_value::<Harvest>()?;
            }
        }
        Ok(Harvest)
    }
}

/// A mapping key: its text when it is a string, `None` for other keys.
struct KeyName(Option<String>);

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
                Ok(KeyName(Some(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<KeyName, E> {
                Ok(KeyName(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<KeyName, E> {
                Ok(KeyName(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<KeyName, E> {
                Ok(KeyName(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<KeyName, E> {
                Ok(KeyName(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyName, E> {
                Ok(KeyName(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyName, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KeyName(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyName, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(KeyName(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finishing_scrubs_secrets_and_escapes_control_characters() {
        let err = ConfigError::Invalid {
            origin: "c.yaml".into(),
            path: "x".into(),
            line: None,
            message: "value hunter2hunter2 is\nbad".into(),
        }
        .finish(&[Secret::new("hunter2hunter2"), Secret::new("ab")]);
        assert_eq!(err.to_string(), "c.yaml: `x`: value *** is\\nbad");
    }

    #[test]
    fn harvest_finds_secrets_anywhere_and_after_errors() {
        let env = |name: &str| (name == "PW").then(|| "from-env-pw".to_owned());
        let text = "a: [1, {sasl_password: lit-pw}]\nb:\n  c:\n    ssl_key_password: ${PW}\n\
                    d: {1: x, [k]: y}\nsasl_password: ~\n";
        let found: Vec<String> = harvest_secrets(text, &env)
            .iter()
            .map(|s| s.expose().to_owned())
            .collect();
        assert_eq!(found, ["lit-pw", "from-env-pw"]);
    }
}

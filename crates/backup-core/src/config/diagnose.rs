//! Parser failures turned into [`ConfigError`]s: the serde path cleaned into a key path, the
//! structured serde-saphyr error classified, a suggestion found for typos, and parser
//! details left out where the key holds a secret.

use std::borrow::Cow;

use serde_path_to_error::Segment;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{MessageFormatter, UserMessageFormatter};

use super::env::ValueFailure;
use super::error::{ConfigError, at_line};
use super::vocabulary::{SECRET_KEYS, suggest};

/// What a key holds, for "expected ..." in messages.
pub(crate) fn expected_for(key: &str) -> &'static str {
    match key {
        "" => "a mapping with `mode`, `backup_id` and `source` (backup) or `target` (restore)",
        "mode" => "`backup` or `restore`",
        "backup_id" => {
            "a name of 1 to 128 characters from A-Z, a-z, 0-9, `.`, `_` and `-`, e.g. prod-orders"
        }
        "source" | "target" => {
            "a mapping with `bootstrap_servers` and, optionally, `security` and timeouts"
        }
        "bootstrap_servers" => {
            "a list of host:port broker addresses, e.g. [\"kafka-0:9093\", \"kafka-1:9093\"], \
             or one comma-separated string"
        }
        "client_id" => "a string",
        "connect_timeout_ms"
        | "request_timeout_ms"
        | "retry_backoff_ms"
        | "retry_backoff_max_ms" => "a whole number of milliseconds",
        "max_response_bytes" => "a whole number of bytes",
        "security" => "a mapping with `security_protocol` and the SASL or TLS settings",
        "security_protocol" => "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        "sasl_mechanism" => "one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        "sasl_username" | "sasl_kerberos_service_name" => "a string",
        "sasl_password" | "ssl_key_password" => {
            "a string, usually ${VARIABLE} (quote it if it contains YAML special characters)"
        }
        "ssl_ca_location"
        | "ssl_certificate_location"
        | "ssl_key_location"
        | "sasl_keytab_path"
        | "sasl_krb5_config_path" => "a file path",
        "ssl_endpoint_identification_algorithm" => "`https` (the default) or `none`",
        _ => super::storage::expected_for(key)
            .or_else(|| super::encryption::expected_for(key))
            .or_else(|| super::signing::expected_for(key))
            .or_else(|| super::audit::expected_for(key))
            .unwrap_or("a value of another type"),
    }
}

/// A key path as serde_path_to_error reports it, cleaned for people: the `value` level that
/// `serde_saphyr::Spanned` inserts is dropped (no configuration key is named `value`), and
/// the `?` of an unknown position is dropped.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyPath(Vec<PathPart>);

#[derive(Debug, Clone)]
enum PathPart {
    Key(String),
    Index(usize),
}

impl KeyPath {
    pub(crate) fn from_serde(path: &serde_path_to_error::Path) -> Self {
        Self(
            path.iter()
                .filter_map(|segment| match segment {
                    Segment::Map { key } if key == "value" => None,
                    Segment::Map { key } => Some(PathPart::Key(key.clone())),
                    Segment::Enum { variant } => Some(PathPart::Key(variant.clone())),
                    Segment::Seq { index } => Some(PathPart::Index(*index)),
                    Segment::Unknown => None,
                })
                .collect(),
        )
    }

    fn with_key(mut self, key: &str) -> Self {
        self.0.push(PathPart::Key(key.to_owned()));
        self
    }

    fn last_key(&self) -> &str {
        self.0
            .iter()
            .rev()
            .find_map(|p| match p {
                PathPart::Key(k) => Some(k.as_str()),
                PathPart::Index(_) => None,
            })
            .unwrap_or("")
    }

    fn ends_with_key(&self, key: &str) -> bool {
        matches!(self.0.last(), Some(PathPart::Key(k)) if k == key)
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                PathPart::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                PathPart::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    fn render_or_top(&self) -> String {
        if self.0.is_empty() {
            "(top level)".to_owned()
        } else {
            self.render()
        }
    }
}

/// Peels the wrappers that only add alias or snippet context.
fn original(mut err: &serde_saphyr::Error) -> &serde_saphyr::Error {
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = err
    {
        err = error;
    }
    err
}

/// The parser's own message, without location, with control characters escaped so that a
/// crafted file cannot write to the terminal.
fn parser_message(err: &serde_saphyr::Error) -> String {
    let text: Cow<'_, str> = UserMessageFormatter.format_message(err);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Turns a parse failure into a [`ConfigError`]. `path` is where serde was when it failed;
/// `failure` is set when the error is a substitution failure recorded by `env`.
pub(crate) fn from_yaml_error(
    err: &serde_saphyr::Error,
    path: Option<KeyPath>,
    failure: Option<ValueFailure>,
    origin: &str,
) -> ConfigError {
    use serde_saphyr::Error as E;

    let origin = origin.to_owned();
    let line = err
        .location()
        .and_then(|l| u32::try_from(l.line()).ok())
        .filter(|&l| l > 0);
    let path = path.unwrap_or_default();
    let inner = original(err);
    if let (E::Message { .. }, Some(failure)) = (inner, failure) {
        return match failure {
            ValueFailure::Unset { variable } => ConfigError::UnsetVariable {
                origin,
                variable,
                path: path.render_or_top(),
                line,
            },
            ValueFailure::BadReference { detail } => ConfigError::BadReference {
                origin,
                path: path.render_or_top(),
                line,
                detail,
            },
            ValueFailure::File { path: file, reason } => ConfigError::SecretFile {
                origin,
                file,
                path: path.render_or_top(),
                line,
                reason,
            },
        };
    }
    match inner {
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            // serde_path_to_error records the key before the struct rejects it.
            let path = if path.ends_with_key(field) {
                path
            } else {
                path.with_key(field)
            };
            ConfigError::UnknownKey {
                origin,
                path: path.render(),
                line,
                suggestion: suggest(field, expected),
                expected: expected.clone(),
            }
        }
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => ConfigError::UnknownValue {
            origin,
            path: path.render_or_top(),
            line,
            value: variant.clone(),
            suggestion: suggest(variant, expected),
            expected: expected.clone(),
        },
        E::DuplicateMappingKey { key, .. } => ConfigError::DuplicateKey {
            path: match key {
                Some(k) => path.with_key(k).render(),
                None => path.render_or_top(),
            },
            origin,
            line,
        },
        E::SerdeMissingField { field, .. } => ConfigError::MissingKey {
            origin,
            path: path.with_key(field).render(),
            line,
            expected: expected_for(field).to_owned(),
        },
        E::Eof { .. } if path.0.is_empty() => ConfigError::Syntax {
            origin,
            line,
            message: format!("the file is empty; write {}", expected_for("")),
        },
        E::MultipleDocuments { .. }
        | E::Budget {
            breach: BudgetBreach::Documents { .. },
            ..
        } => ConfigError::Syntax {
            origin,
            line,
            message:
                "the file holds more than one YAML document (a second `---`); a configuration \
                      is one document: remove the extra `---` and what follows, or merge them"
                    .to_owned(),
        },
        E::Budget { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => ConfigError::Limit {
            origin,
            message: format!(
                "the YAML is larger or more deeply nested than a configuration can be{} ({}); \
                 write the configuration without deep nesting or alias chains",
                at_line(line),
                parser_message(inner)
            ),
        },
        E::SerdeInvalidType { .. }
        | E::SerdeInvalidValue { .. }
        | E::SerdeInvalidLength { .. }
        | E::Unexpected { .. }
        | E::NullIntoString { .. }
        | E::InvalidScalar { .. }
        | E::InvalidBooleanStrict { .. }
        | E::InvalidCharNull { .. }
        | E::InvalidCharNotSingleScalar { .. }
        | E::TaggedScalarCannotDeserializeIntoString { .. }
        | E::BytesNotSupportedMissingBinaryTag { .. }
        | E::InvalidBinaryBase64 { .. }
        | E::BinaryNotUtf8 { .. }
        | E::Eof { .. } => {
            let key = path.last_key();
            let rendered = path.render_or_top();
            let secret = SECRET_KEYS.contains(&key) || rendered.contains("sasl_options");
            ConfigError::WrongType {
                origin,
                expected: expected_for(key).to_owned(),
                detail: (!secret).then(|| parser_message(inner)),
                path: rendered,
                line,
            }
        }
        _ => ConfigError::Syntax {
            origin,
            line,
            message: format!("{}; fix the YAML there", parser_message(inner)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_for_typos_only() {
        let keys = ["sasl_password", "sasl_username", "ssl_key_password"];
        assert_eq!(suggest("sasl_pasword", &keys), Some("sasl_password"));
        assert_eq!(suggest("SASL_USERNAME", &keys), Some("sasl_username"));
        assert_eq!(suggest("topics", &keys), None);
        let protocols = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
        assert_eq!(suggest("SASL_SLL", &protocols), Some("SASL_SSL"));
        assert_eq!(suggest("sasl-ssl", &protocols), Some("SASL_SSL"));
    }
}

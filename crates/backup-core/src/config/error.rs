//! Why a configuration was refused, classified for the caller, and worded for the person who
//! has to fix the file: each message names the key, the line when known, and what to do.
//!
//! `diagnose` builds these from parser failures, `validate` and `security` from checks, and
//! `scrub` makes the last pass over each. No message ever contains a secret: secret values
//! are never put into an error, and as a second line of defence `scrub` replaces any secret
//! value from the file that shows up anyway.

use std::path::PathBuf;

/// A configuration that could not be loaded. Every `Display` is one paragraph: the cause,
/// where it is, and the fix. None of them contains a password or key passphrase.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error(
        "cannot read the configuration file {}: {source}; check the path, and that this user may read the file",
        path.display()
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },

    /// The input is larger or more deeply nested than any configuration needs; refused to
    /// protect the process from memory or CPU exhaustion.
    #[error("{origin}: {message}")]
    Limit {
        /// File name or other label of the input.
        origin: String,
        /// What limit, and what to do.
        message: String,
    },

    /// Not valid YAML, or not a single YAML mapping.
    #[error("{origin}: the configuration is not valid YAML{}: {message}", at_line(*line))]
    Syntax {
        /// File name or other label of the input.
        origin: String,
        /// Line of the problem.
        line: Option<u32>,
        /// The parser's description, with the fix where one is known.
        message: String,
    },

    /// A key that the configuration does not have, most likely misspelt.
    #[error(
        "{origin}: unknown key `{path}`{}; {}",
        at_line(*line),
        unknown_key_advice(path, *suggestion, expected)
    )]
    UnknownKey {
        /// File name or other label of the input.
        origin: String,
        /// Full key path, e.g. `source.security.sasl_pasword`.
        path: String,
        /// Line of the key.
        line: Option<u32>,
        /// The closest valid key, if one is close.
        suggestion: Option<&'static str>,
        /// The keys valid at that place.
        expected: Vec<&'static str>,
    },

    /// A keyword value (protocol, mechanism, mode) that is not one of the allowed names.
    #[error(
        "{origin}: unknown value `{value}` for `{path}`{}; {}use one of: {}",
        at_line(*line),
        did_you_mean(*suggestion),
        expected.join(", ")
    )]
    UnknownValue {
        /// File name or other label of the input.
        origin: String,
        /// Full key path.
        path: String,
        /// Line of the key.
        line: Option<u32>,
        /// The value given (keyword fields only, never a secret).
        value: String,
        /// The closest allowed value, if one is close.
        suggestion: Option<&'static str>,
        /// The allowed values.
        expected: Vec<&'static str>,
    },

    /// A key given twice in one mapping. YAML parsers differ on which one wins, so neither
    /// is taken.
    #[error(
        "{origin}: key `{path}` is given more than once{}; keep exactly one of them, because which \
         value would win is easy to get wrong (with credentials, silently)",
        at_line(*line)
    )]
    DuplicateKey {
        /// Full key path.
        path: String,
        /// File name or other label of the input.
        origin: String,
        /// Line of the second occurrence.
        line: Option<u32>,
    },

    /// A required key is absent.
    #[error(
        "{origin}: missing required key `{path}`{}; add it: expected {expected}",
        in_mapping_at(*line)
    )]
    MissingKey {
        /// File name or other label of the input.
        origin: String,
        /// Full key path of the missing key.
        path: String,
        /// Line of the mapping that lacks it.
        line: Option<u32>,
        /// What the key holds.
        expected: String,
    },

    /// A value of the wrong type (a list where a string goes, text where a number goes).
    #[error(
        "{origin}: wrong type for `{path}`{}{}; expected {expected}",
        at_line(*line),
        detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    WrongType {
        /// File name or other label of the input.
        origin: String,
        /// Full key path.
        path: String,
        /// Line of the value.
        line: Option<u32>,
        /// What the key holds.
        expected: String,
        /// The parser's description; left out for secret keys.
        detail: Option<String>,
    },

    /// `${NAME}` refers to a variable that is not set. Never replaced by an empty string.
    #[error(
        "{origin}: environment variable {variable} is not set (referenced by {path}{}); export it, \
         or write $${{ for a literal ${{",
        at_line_inline(*line)
    )]
    UnsetVariable {
        /// File name or other label of the input.
        origin: String,
        /// The variable.
        variable: String,
        /// Full key path of the value that refers to it.
        path: String,
        /// Line of the value.
        line: Option<u32>,
    },

    /// `${file:PATH}` names a file that cannot be used.
    #[error(
        "{origin}: the secret file {file} (referenced by {path}{}) cannot be used: {reason}",
        at_line_inline(*line)
    )]
    SecretFile {
        /// File name or other label of the input.
        origin: String,
        /// The secret file.
        file: String,
        /// Full key path of the value that refers to it.
        path: String,
        /// Line of the value.
        line: Option<u32>,
        /// Why, naming the fix; never the file's content.
        reason: String,
    },

    /// A malformed `${...}`.
    #[error(
        "{origin}: `{path}`{}: {detail}; write ${{NAME}} with a NAME of letters, digits and _ \
         that does not start with a digit, or $${{ for a literal ${{",
        at_line(*line)
    )]
    BadReference {
        /// File name or other label of the input.
        origin: String,
        /// Full key path.
        path: String,
        /// Line of the value.
        line: Option<u32>,
        /// What is wrong; never quotes a secret.
        detail: String,
    },

    /// The values parse but are wrong or inconsistent (a SASL mechanism without a SASL
    /// protocol, a missing certificate file, a zero timeout).
    #[error("{origin}: `{path}`{}: {message}", at_line(*line))]
    Invalid {
        /// File name or other label of the input.
        origin: String,
        /// Full key path of the offending key.
        path: String,
        /// Line of its value, when known.
        line: Option<u32>,
        /// What is wrong and how to fix it.
        message: String,
    },
}

pub(crate) fn at_line(line: Option<u32>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

fn at_line_inline(line: Option<u32>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}

fn in_mapping_at(line: Option<u32>) -> String {
    line.map(|l| format!(" (in the mapping at line {l})"))
        .unwrap_or_default()
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default()
}

/// Keys of OSO kafka-backup's format that this version does not read yet; naming them as
/// such tells a migrating user the key is right, only early.
const NOT_YET_SUPPORTED: &[&str] = &["offset_storage", "metrics", "connection"];

/// Where a key that is unknown at its place belongs, when it is valid elsewhere: a wrongly
/// indented key is more likely than a new one.
fn belongs_under(key: &str, parent: Option<&str>) -> Option<&'static str> {
    const CLUSTER_KEYS: &[&str] = &[
        "bootstrap_servers",
        "client_id",
        "connect_timeout_ms",
        "request_timeout_ms",
        "max_response_bytes",
        "retry_backoff_ms",
        "retry_backoff_max_ms",
        "security",
    ];
    let in_cluster = matches!(parent, Some("source" | "target"));
    if in_cluster && crate::config::vocabulary::SECURITY_KEYS.contains(&key) {
        Some("`security:`")
    } else if parent.is_none()
        && (CLUSTER_KEYS.contains(&key) || crate::config::vocabulary::SECURITY_KEYS.contains(&key))
    {
        Some("`source:` (backup) or `target:` (restore)")
    } else {
        None
    }
}

fn unknown_key_advice(path: &str, suggestion: Option<&str>, expected: &[&str]) -> String {
    let key = path.rsplit('.').next().unwrap_or(path);
    let parent = path.rsplit_once('.').map(|(p, _)| p);
    let place = match parent {
        Some(p) => format!("in `{p}`"),
        None => "at the top level".to_owned(),
    };
    let allowed = expected.join(", ");
    if let Some(section) = belongs_under(key, parent) {
        return format!(
            "`{key}` belongs under {section}: check its indentation (the keys allowed {place} are: \
             {allowed})"
        );
    }
    if suggestion.is_none() && NOT_YET_SUPPORTED.contains(&key) {
        return format!(
            "`{key}` is part of OSO kafka-backup's format but this version does not support it yet; \
             remove it for now (the keys allowed {place} are: {allowed})"
        );
    }
    match suggestion {
        Some(s) => format!("did you mean `{s}`? (the keys allowed {place} are: {allowed})"),
        None => {
            format!("remove it or fix its spelling; the keys allowed {place} are: {allowed}")
        }
    }
}

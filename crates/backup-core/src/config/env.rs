//! `${VAR}` substitution, done inside string values after YAML has parsed them.
//!
//! Substituting on the raw text before parsing would let a variable's value (a password with
//! `: ` or a newline in it) inject YAML, and would skip or mangle quoted scalars. Here the
//! parser has already decided what is a string, so a value can only ever become that string.
//!
//! Serde's `Deserialize` has no way to receive the lookup function, so the lookup results
//! live in a thread-local [`Scope`] for the duration of a parse. Because `parse` takes a
//! borrowed closure, it cannot be stored there; instead every name is looked up before a
//! pass, and the rare name that the pre-scan could not see (one spelled with YAML escapes,
//! e.g. `"\x24{NAME}"`) triggers another pass with that name looked up.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use kafka_client::Secret;
use serde::de::{self, Deserialize, Deserializer, Error as _, Unexpected, Visitor};
use serde_saphyr::Spanned;

/// Text of the serde error raised when substitution fails; the structured cause is kept in
/// the scope and turned into a [`super::ConfigError`] once the key path is known.
pub(crate) const SUBSTITUTION_FAILED: &str = "environment variable substitution failed";

/// Upper bound on parse passes. Each extra pass exists only for a name hidden behind YAML
/// escapes, so real files need one pass, or two.
const MAX_PASSES: usize = 8;

/// Why a value's `${...}` could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueFailure {
    /// `${NAME}` names a variable that is not set.
    Unset {
        /// The variable.
        variable: String,
    },
    /// `${` without `}`, or a name that is not `[A-Za-z_][A-Za-z0-9_]*`. The text is safe to
    /// show: for secrets it never quotes the value.
    BadReference {
        /// What is wrong, without the fix.
        detail: String,
    },
    /// `${file:PATH}` names a file that cannot be used.
    File {
        /// The file.
        path: String,
        /// Why, without the file's content.
        reason: String,
    },
}

/// A piece of a parsed value template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Literal(&'a str),
    Variable(&'a str),
    /// `${file:/path}`: the content of a mounted secret file.
    File(&'a str),
}

/// Splits a value into literal text and `${NAME}` references; `$${` is a literal `${`.
/// `secret` keeps the value's text out of error details.
fn parse_template(raw: &str, secret: bool) -> Result<Vec<Piece<'_>>, ValueFailure> {
    let mut pieces = Vec::new();
    let mut literal_start = 0;
    let mut i = 0;
    let bytes = raw.as_bytes();
    // Byte-wise, so that multi-byte characters are stepped over; `i` only stops on `$`, an
    // ASCII byte, so slicing at it stays on a character boundary.
    while i < bytes.len() {
        if bytes[i..].starts_with(b"$${") {
            pieces.push(Piece::Literal(&raw[literal_start..i]));
            pieces.push(Piece::Literal("${"));
            i += 3;
            literal_start = i;
        } else if bytes[i..].starts_with(b"${") {
            pieces.push(Piece::Literal(&raw[literal_start..i]));
            let rest = &raw[i + 2..];
            let Some(end) = rest.find('}') else {
                return Err(ValueFailure::BadReference {
                    detail: "a `${` is not closed by `}`".to_owned(),
                });
            };
            let name = &rest[..end];
            if let Some(path) = name.strip_prefix(FILE_PREFIX) {
                if !is_file_reference(path) {
                    return Err(ValueFailure::BadReference {
                        detail:
                            "`${file:...}` needs an absolute path (`${file:/run/secrets/NAME}`)"
                                .to_owned(),
                    });
                }
                pieces.push(Piece::File(path));
                i += 2 + end + 1;
                literal_start = i;
                continue;
            }
            if !is_variable_name(name) {
                let detail = if secret {
                    "a `${...}` in this secret value is not a valid variable reference (the value is not shown)"
                        .to_owned()
                } else {
                    format!("`${{{name}}}` is not a valid variable reference")
                };
                return Err(ValueFailure::BadReference { detail });
            }
            pieces.push(Piece::Variable(name));
            i += 2 + end + 1;
            literal_start = i;
        } else {
            i += 1;
        }
    }
    pieces.push(Piece::Literal(&raw[literal_start..]));
    pieces.retain(|p| *p != Piece::Literal(""));
    Ok(pieces)
}

/// What starts a file reference inside `${...}`.
const FILE_PREFIX: &str = "file:";

/// Largest secret file read: a password, token or key passphrase is far smaller.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// An absolute path without control characters.
fn is_file_reference(path: &str) -> bool {
    path.starts_with('/') && path.len() > 1 && !path.chars().any(char::is_control)
}

/// Paths that look referenced as `${file:PATH}` anywhere in the raw text.
fn scan_files(text: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${file:") {
        let escaped = rest[..start].ends_with('$');
        rest = &rest[start + 2 + FILE_PREFIX.len()..];
        if escaped {
            // `$${file:...}` is a literal, not a reference.
            continue;
        }
        let Some(end) = rest.find(['}', '\n']) else {
            break;
        };
        if rest[end..].starts_with('}') && is_file_reference(&rest[..end]) {
            paths.insert(rest[..end].to_owned());
        }
    }
    paths
}

/// Where the Kubernetes operator mounts each Secret a resource names, whole, one directory
/// per Secret (`{dir}/{secret}/{key}`): a missing file there is a missing key, and the error
/// says so in those words.
pub const KUBERNETES_SECRETS_DIR: &str = "/var/run/kafka-backup/secrets";

/// The Secret and key of a path under [`KUBERNETES_SECRETS_DIR`] (found anywhere in the path,
/// so that a copy of the pod's files under another root is recognised too).
fn kubernetes_secret_key(path: &str) -> Option<(&str, &str)> {
    let at = path.find(KUBERNETES_SECRETS_DIR)?;
    let rest = path[at + KUBERNETES_SECRETS_DIR.len()..].strip_prefix('/')?;
    let (secret, key) = rest.split_once('/')?;
    (!secret.is_empty() && !key.is_empty() && !key.contains('/')).then_some((secret, key))
}

/// Reads a mounted secret file (a Kubernetes secret volume, a Vault agent's file): its
/// content with one trailing newline removed, and a warning when other users may read it.
fn read_secret_file(path: &str) -> (Result<String, ValueFailure>, Option<String>) {
    use std::io::Read as _;
    let failure = |reason: String| ValueFailure::File {
        path: path.to_owned(),
        reason,
    };
    // Looked at before it is opened: opening a FIFO would block.
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            return (Err(failure("it is not a regular file".into())), None);
        }
        _ => {}
    }
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let reason = match kubernetes_secret_key(path) {
                Some((secret, key)) => format!(
                    "it does not exist: Secret `{secret}` has no key `{key}` (the operator \
                     mounts each Secret a resource names whole under {KUBERNETES_SECRETS_DIR}/); \
                     add the key to the Secret, or name the key it has in the resource"
                ),
                None => "it does not exist: mount the secret there, or fix the path".into(),
            };
            return (Err(failure(reason)), None);
        }
        Err(e) => return (Err(failure(format!("it cannot be read ({e})"))), None),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return (Err(failure(format!("it cannot be read ({e})"))), None),
    };
    if !meta.is_file() {
        return (Err(failure("it is not a regular file".into())), None);
    }
    let mut bytes = Vec::new();
    if let Err(e) = file.take(MAX_SECRET_FILE + 1).read_to_end(&mut bytes) {
        return (Err(failure(format!("it cannot be read ({e})"))), None);
    }
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return (
            Err(failure(format!(
                "it is larger than {MAX_SECRET_FILE} bytes, far more than any secret value"
            ))),
            None,
        );
    }
    let Ok(mut text) = String::from_utf8(bytes) else {
        return (Err(failure("it is not UTF-8 text".into())), None);
    };
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    let warning = {
        use std::os::unix::fs::PermissionsExt as _;
        (meta.permissions().mode() & 0o004 != 0).then(|| {
            format!(
                "the secret file {path} is readable by every user of this host; make it 0400 \
                 or 0600 (in Kubernetes: defaultMode: 0400 on the secret volume)"
            )
        })
    };
    (Ok(text), warning)
}

/// `[A-Za-z_][A-Za-z0-9_]*`, the portable shell variable names.
pub(crate) fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Names that look referenced anywhere in the raw text (comments included), so that they can
/// be looked up before parsing. Over-collecting only costs a lookup.
fn scan_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        // Only name characters are stepped over, so the scan stays linear in the text.
        let len = rest
            .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
            .unwrap_or(rest.len());
        let name = &rest[..len];
        if rest[len..].starts_with('}') && is_variable_name(name) {
            names.insert(name.to_owned());
        }
    }
    names
}

/// What one parse pass sees and records.
#[derive(Default)]
struct Scope {
    /// Looked-up variables: `None` means unset.
    known: HashMap<String, Option<String>>,
    /// Referenced in this pass but not looked up yet; the pass's result is discarded.
    missing: BTreeSet<String>,
    /// Cause of the last substitution failure.
    failure: Option<ValueFailure>,
    /// Every secret value read, so that errors can be scrubbed of them.
    secrets: Vec<Secret>,
    /// Lines of secret values written in the file itself rather than as `${VAR}`.
    literal_secret_lines: Vec<u32>,
    /// Read `${file:PATH}` files, by path.
    files: HashMap<String, Result<String, ValueFailure>>,
    /// Referenced files not read yet; the pass's result is discarded.
    missing_files: BTreeSet<String>,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// What a parse yields besides its result.
pub(crate) struct PassOutcome<T> {
    /// The deserialization result of the final pass.
    pub result: T,
    /// Structured cause of a substitution error in that result, if any.
    pub failure: Option<ValueFailure>,
    /// Secret values read during the pass.
    pub secrets: Vec<Secret>,
    /// Lines of secrets written literally (not as a `${VAR}` reference).
    pub literal_secret_lines: Vec<u32>,
    /// Warnings about the secret files read (readable by others).
    pub warnings: Vec<String>,
}

/// Runs `pass` (one full deserialization) with substitution available, repeating it when a
/// referenced name had not been looked up. Returns `None` when the passes ran out, which
/// needs a file that builds many names out of YAML escapes.
pub(crate) fn with_substitution<T>(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    mut pass: impl FnMut() -> T,
) -> Option<PassOutcome<T>> {
    let mut known: HashMap<String, Option<String>> = scan_names(text)
        .into_iter()
        .map(|name| {
            let value = env(&name);
            (name, value)
        })
        .collect();
    let mut warnings = Vec::new();
    let mut read = |path: &str, files: &mut HashMap<String, Result<String, ValueFailure>>| {
        let (content, warning) = read_secret_file(path);
        warnings.extend(warning);
        files.insert(path.to_owned(), content);
    };
    let mut files = HashMap::new();
    for path in scan_files(text) {
        read(&path, &mut files);
    }
    for _ in 0..MAX_PASSES {
        let scope = Scope {
            known,
            files,
            ..Scope::default()
        };
        let (result, scope) = run_in_scope(scope, &mut pass);
        if scope.missing.is_empty() && scope.missing_files.is_empty() {
            let mut secrets = scope.secrets;
            secrets.extend(
                scope
                    .files
                    .values()
                    .filter_map(|f| f.as_ref().ok())
                    .filter(|v| !v.is_empty())
                    .map(|v| Secret::new(v.clone())),
            );
            return Some(PassOutcome {
                result,
                failure: scope.failure,
                secrets,
                literal_secret_lines: scope.literal_secret_lines,
                warnings,
            });
        }
        known = scope.known;
        for name in scope.missing {
            let value = env(&name);
            known.insert(name, value);
        }
        files = scope.files;
        for path in scope.missing_files {
            read(&path, &mut files);
        }
    }
    None
}

fn run_in_scope<T>(scope: Scope, pass: &mut impl FnMut() -> T) -> (T, Scope) {
    /// Puts back whatever scope was installed before, also when `pass` panics.
    struct Restore(Option<Scope>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SCOPE.with(|s| *s.borrow_mut() = previous);
        }
    }
    let _restore = Restore(SCOPE.with(|s| s.replace(Some(scope))));
    let result = pass();
    let scope = SCOPE.with(|s| s.borrow_mut().take()).unwrap_or_default();
    (result, scope)
}

/// Substitutes the references in one parsed value. Outside a scope every variable counts as
/// unset, so nothing is ever read from an environment that was not handed in.
fn expand(raw: &str, secret: bool) -> Result<String, ValueFailure> {
    let pieces = parse_template(raw, secret)?;
    SCOPE.with(|cell| {
        let mut guard = cell.borrow_mut();
        let mut out = String::with_capacity(raw.len());
        let mut incomplete = false;
        for piece in pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Variable(name) => match guard.as_mut() {
                    None => {
                        return Err(ValueFailure::Unset {
                            variable: name.to_owned(),
                        });
                    }
                    Some(scope) => match scope.known.get(name) {
                        Some(Some(value)) => out.push_str(value),
                        Some(None) => {
                            return Err(ValueFailure::Unset {
                                variable: name.to_owned(),
                            });
                        }
                        None => {
                            scope.missing.insert(name.to_owned());
                            incomplete = true;
                        }
                    },
                },
                Piece::File(path) => match guard.as_mut() {
                    None => {
                        return Err(ValueFailure::File {
                            path: path.to_owned(),
                            reason: "files are read only while a configuration is loaded".into(),
                        });
                    }
                    Some(scope) => match scope.files.get(path) {
                        Some(Ok(value)) => out.push_str(value),
                        Some(Err(failure)) => return Err(failure.clone()),
                        None => {
                            scope.missing_files.insert(path.to_owned());
                            incomplete = true;
                        }
                    },
                },
            }
        }
        if incomplete {
            // This pass will be thrown away; any value keeps it going to find more names.
            out.clear();
        }
        Ok(out)
    })
}

/// Records why substitution failed and returns the serde error that aborts the parse.
fn fail<E: de::Error>(failure: ValueFailure) -> E {
    SCOPE.with(|cell| {
        if let Some(scope) = cell.borrow_mut().as_mut() {
            scope.failure = Some(failure);
        }
    });
    E::custom(SUBSTITUTION_FAILED)
}

fn remember_literal_secret(line: Option<u32>) {
    SCOPE.with(|cell| {
        if let (Some(scope), Some(line)) = (cell.borrow_mut().as_mut(), line) {
            scope.literal_secret_lines.push(line);
        }
    });
}

fn remember_secret(secret: &Secret) {
    SCOPE.with(|cell| {
        if let Some(scope) = cell.borrow_mut().as_mut() {
            scope.secrets.push(secret.clone());
        }
    });
}

/// Line of a span; `None` when the parser did not know it.
fn line_of<T>(spanned: &Spanned<T>) -> Option<u32> {
    u32::try_from(spanned.referenced.line())
        .ok()
        .filter(|&line| line > 0)
}

/// A string value from the configuration, with `${VAR}` already substituted, and the line it
/// came from for later error messages.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ConfigString {
    /// The substituted value.
    pub value: String,
    /// Line in the file.
    pub line: Option<u32>,
}

impl fmt::Debug for ConfigString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.value, f)
    }
}

impl<'de> Deserialize<'de> for ConfigString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Spanned::<String>::deserialize(deserializer)?;
        let value = expand(&raw.value, false).map_err(fail::<D::Error>)?;
        Ok(Self {
            value,
            line: line_of(&raw),
        })
    }
}

/// A secret value (password, key passphrase) with `${VAR}` substituted. It is wrapped in
/// [`Secret`] as soon as it exists, and error details about it never quote it.
#[derive(Clone, Debug)]
pub(crate) struct ConfigSecret {
    /// The substituted value.
    pub value: Secret,
    /// Line in the file.
    pub line: Option<u32>,
}

impl<'de> Deserialize<'de> for ConfigSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Spanned::<String>::deserialize(deserializer)?;
        let line = line_of(&raw);
        let literal = Secret::new(raw.value);
        let references = parse_template(literal.expose(), true).is_ok_and(|pieces| {
            pieces
                .iter()
                .any(|p| matches!(p, Piece::Variable(_) | Piece::File(_)))
        });
        if !references && !literal.expose().is_empty() {
            remember_literal_secret(line);
        }
        match expand(literal.expose(), true) {
            Ok(value) => {
                let value = Secret::new(value);
                remember_secret(&value);
                Ok(Self { value, line })
            }
            Err(failure) => {
                // A malformed secret may be a literal password with a `$` in it.
                remember_secret(&literal);
                Err(fail(failure))
            }
        }
    }
}

/// A whole number, written as a YAML integer or as a string (which may use `${VAR}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConfigU64 {
    /// The number.
    pub value: u64,
    /// Line in the file.
    pub line: Option<u32>,
}

/// The node before substitution: YAML gives either a number or text.
enum NumberOrText {
    Number(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for NumberOrText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumberOrText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(NumberOrText::Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(NumberOrText::Number)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(NumberOrText::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ConfigU64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Spanned::<NumberOrText>::deserialize(deserializer)?;
        let line = line_of(&raw);
        let value = match raw.value {
            NumberOrText::Number(n) => n,
            NumberOrText::Text(text) => {
                let text = expand(&text, false).map_err(fail::<D::Error>)?;
                let trimmed = text.trim();
                trimmed.parse().map_err(|_| {
                    D::Error::invalid_value(Unexpected::Str(trimmed), &"a whole number")
                })?
            }
        };
        Ok(Self { value, line })
    }
}

/// A boolean, written as a YAML boolean or as a string (which may use `${VAR}`) holding
/// `true` or `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConfigBool {
    /// The value.
    pub value: bool,
    /// Line in the file.
    pub line: Option<u32>,
}

/// The node before substitution: YAML gives either a boolean or text.
enum BoolOrText {
    Bool(bool),
    Text(String),
}

impl<'de> Deserialize<'de> for BoolOrText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = BoolOrText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(BoolOrText::Bool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BoolOrText::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ConfigBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Spanned::<BoolOrText>::deserialize(deserializer)?;
        let line = line_of(&raw);
        let value = match raw.value {
            BoolOrText::Bool(b) => b,
            BoolOrText::Text(text) => {
                let text = expand(&text, false).map_err(fail::<D::Error>)?;
                match text.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(D::Error::invalid_value(
                            Unexpected::Str(other),
                            &"true or false",
                        ));
                    }
                }
            }
        };
        Ok(Self { value, line })
    }
}

/// Substitutes a string that a hand-written visitor received, for values that are a string or
/// something else (a list) and so cannot go through [`ConfigString`].
pub(crate) fn expand_visited<E: de::Error>(raw: &str) -> Result<String, E> {
    expand(raw, false).map_err(fail::<E>)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER_NAME" => Some("alice".to_owned()),
            "EMPTY" => Some(String::new()),
            "TRICKY" => Some("a: b\n- c ${USER_NAME}".to_owned()),
            _ => None,
        }
    }

    fn run(raw: &str) -> Result<String, ValueFailure> {
        with_substitution(raw, &env, || expand(raw, false))
            .unwrap()
            .result
    }

    #[test]
    fn substitutes_and_escapes() {
        assert_eq!(run("x-${USER_NAME}-y").unwrap(), "x-alice-y");
        assert_eq!(run("${USER_NAME}${USER_NAME}").unwrap(), "alicealice");
        assert_eq!(run("$${USER_NAME}").unwrap(), "${USER_NAME}");
        assert_eq!(run("a$b$$c$").unwrap(), "a$b$$c$");
        assert_eq!(run("pässwörd-€${USER_NAME}ü").unwrap(), "pässwörd-€aliceü");
        assert_eq!(run("[${EMPTY}]").unwrap(), "[]");
        // A value is inserted as is: never parsed as YAML, never expanded again.
        assert_eq!(run("${TRICKY}").unwrap(), "a: b\n- c ${USER_NAME}");
    }

    #[test]
    fn rejects_bad_references() {
        assert_eq!(
            run("pre-${NOPE}"),
            Err(ValueFailure::Unset {
                variable: "NOPE".to_owned()
            })
        );
        let ValueFailure::BadReference { detail } = run("${USER_NAME").unwrap_err() else {
            panic!()
        };
        assert!(detail.contains("not closed"), "{detail}");
        for bad in ["${}", "${1X}", "${A-B}", "${A:-x}"] {
            let ValueFailure::BadReference { detail } = run(bad).unwrap_err() else {
                panic!("{bad}")
            };
            assert!(
                detail.contains("not a valid variable reference"),
                "{detail}"
            );
        }
        let Err(ValueFailure::BadReference { detail }) = parse_template("pw${x-1}", true) else {
            panic!()
        };
        assert!(!detail.contains("x-1"), "{detail}");
    }

    #[test]
    fn outside_a_scope_nothing_is_read() {
        assert_eq!(
            expand("${HOME}", false),
            Err(ValueFailure::Unset {
                variable: "HOME".to_owned()
            })
        );
    }

    #[test]
    fn names_hidden_behind_escapes_get_another_pass() {
        let mut passes = 0;
        // What a double-quoted "\x24{USER_NAME}" becomes after YAML parsing.
        let outcome = with_substitution("no reference visible", &env, || {
            passes += 1;
            expand("${USER_NAME}", false)
        })
        .unwrap();
        assert_eq!(outcome.result.unwrap(), "alice");
        assert_eq!(passes, 2);
    }
}

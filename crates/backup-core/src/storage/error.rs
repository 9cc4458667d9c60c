//! [`StorageError`]: storage failures classified by what the caller (and the operator) can do
//! about them, and the mapping from `object_store`'s errors.
//!
//! `object_store` reports most HTTP failures as text (its retry error type is private), so the
//! mapping reads the variant first (`NotFound`, `PermissionDenied`, `AlreadyExists`, ...),
//! then the HTTP status and the service's error code (`<Code>` in S3 and Azure XML bodies,
//! `"message"` in GCS JSON) from the error chain's text, then transport errors
//! ([`object_store::client::HttpError`]) and I/O errors.
//!
//! No message ever quotes a response body or an error chain as is: an S3
//! `SignatureDoesNotMatch` body echoes the signed headers, session token included. Only the
//! service's code and message are kept, then every configured secret is masked, URL query
//! strings (SAS tokens) are cut, and the text is bounded.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use kafka_client::Secret;
use object_store::client::{HttpError, HttpErrorKind};

/// What was being done when storage failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `put_new`: create an object.
    Put,
    /// `get`, `get_bounded` or `get_range`: read an object.
    Get,
    /// `head`: read an object's metadata.
    Head,
    /// `list` or `verify_reachable`: list objects under a prefix.
    List,
    /// `probe_delete`: the permission probe's attempt to delete its own canary object.
    Delete,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Self::Put => "write",
            Self::Get => "read",
            Self::Head => "read the metadata of",
            Self::List => "list",
            Self::Delete => "delete",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::Head => "head",
            Self::List => "list",
            Self::Delete => "delete",
        })
    }
}

/// What does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Missing {
    /// The S3 or GCS bucket.
    Bucket,
    /// The Azure container (or storage account).
    Container,
    /// The file-system root directory.
    Directory,
    /// The object.
    Object,
}

/// A storage operation that failed. Each `Display` is one paragraph naming the cause, the
/// bucket, container or directory and the key, and the fix. None contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The settings cannot work (rejected before any request, or by the first one).
    #[error("storage ({backend}): {message}")]
    Config {
        /// `filesystem`, `s3`, `azure` or `gcs`.
        backend: &'static str,
        /// What is wrong, and the fix.
        message: String,
    },

    /// The bucket, container, directory or object does not exist.
    #[error("{}", not_found_message(*what, location, key.as_deref(), hint))]
    NotFound {
        /// What is missing.
        what: Missing,
        /// The bucket, container or directory (for [`Missing::Object`], the object's full
        /// location).
        location: String,
        /// The key, relative to the configured prefix, when an object was asked for.
        key: Option<String>,
        /// Where to look, beyond the generic fix.
        hint: String,
    },

    /// The identity may not do this. `permission` names what would allow it.
    #[error(
        "storage denied permission to {} {location}{} using {identity}{hint}, or run with the \
         identity meant for this job (a backup needs only write and list, a restore only read \
         and list)",
        operation.verb(),
        key_suffix(key)
    )]
    PermissionDenied {
        /// What was attempted.
        operation: Operation,
        /// The full location (e.g. `s3://bucket/prefix/key`).
        location: String,
        /// The key relative to the configured prefix (`""` for the prefix itself).
        key: String,
        /// The permission that allows it: `s3:PutObject`, `s3:GetObject`, `s3:ListBucket`,
        /// `storage.objects.create`, an Azure data action, or file-system write/read access.
        permission: &'static str,
        /// The credential source used, e.g. "the access key AKIA... (storage.access_key)".
        identity: String,
        /// What the service said, and where to grant `permission` (the resource, or a role
        /// that carries it); starts with "; grant" or " (the service said".
        hint: String,
    },

    /// The credentials are missing, malformed, wrong, expired or revoked.
    #[error(
        "storage did not accept the credentials from {credential_source} when trying to {} \
         {location}{}; {fix}",
        operation.verb(),
        detail_suffix(detail.as_deref())
    )]
    Unauthenticated {
        /// What was attempted.
        operation: Operation,
        /// The full location.
        location: String,
        /// Which credential source was tried.
        credential_source: String,
        /// The service's own code and message, sanitized.
        detail: Option<String>,
        /// What to check.
        fix: String,
    },

    /// `put_new` found the key taken by an object that is not the one being written (or that
    /// could not be read back to tell); the existing object was left as it was.
    #[error(
        "{location} already exists{found}, so it was not written (storage objects are never \
         overwritten); another run may be writing to the same backup id, or the object was \
         replaced by someone else: use a new backup id, or compare the existing object with \
         what was to be written"
    )]
    AlreadyExists {
        /// The full location.
        location: String,
        /// The key relative to the configured prefix.
        key: String,
        /// What the read-back found, as a clause starting with a space (or empty): different
        /// bytes, or why it could not be compared.
        found: String,
    },

    /// No answer from the endpoint: DNS, connection refused or reset, timeout, TLS.
    #[error(
        "cannot reach the storage endpoint {endpoint} to {} {location}: {cause}; check the \
         endpoint (and region), DNS, firewalls and proxies, and for TLS errors the server's \
         certificate (the request was already retried, up to {max_retries} times within \
         {retry_window_secs} s)",
        operation.verb()
    )]
    Unreachable {
        /// The endpoint URL.
        endpoint: String,
        /// What was attempted.
        operation: Operation,
        /// The full location.
        location: String,
        /// The transport error, sanitized (e.g. "tcp connect error: Connection refused").
        cause: String,
        /// The retry budget: at most this many retries...
        max_retries: usize,
        /// ...started within this many seconds of the first attempt.
        retry_window_secs: u64,
    },

    /// A key this tool would never generate (a bug in the caller, not a storage problem).
    #[error(
        "invalid storage key `{key}`: {reason}; keys are 1 to 1024 bytes of A-Z, a-z, 0-9, `.`, \
         `_`, `-` and `=`, in `/`-separated segments that are not empty, `.` or `..`"
    )]
    InvalidKey {
        /// The key (escaped).
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The bucket applies a default Object Lock retention, and S3 accepts writes into it only
    /// with an integrity header that kafka-backup sends when `storage.object_lock` is set.
    #[error(
        "the bucket `{bucket}` applies a default S3 Object Lock retention, and S3 accepts \
         writes into it only with a Content-MD5 (or checksum) header, which kafka-backup sends \
         when storage.object_lock is set; {location} was not written{}. Set storage.object_lock \
         to the bucket's default retention (`aws s3api get-object-lock-configuration --bucket \
         {bucket}` shows its mode and days)",
        detail_suffix(detail.as_deref())
    )]
    DefaultRetentionNeedsLock {
        /// The bucket.
        bucket: String,
        /// The full location of the object that was not written.
        location: String,
        /// The service's own code and message, sanitized.
        detail: Option<String>,
    },

    /// `storage.object_lock` is set, but the bucket does not have S3 Object Lock enabled, so S3
    /// refused to write the object with a retention. Nothing was written.
    #[error(
        "storage.object_lock is set, but the bucket `{bucket}` does not have S3 Object Lock \
         enabled, so S3 refused to write {location} with a retention and nothing was written{}; \
         write to a bucket that has Object Lock enabled (create one with `aws s3api \
         create-bucket --bucket NAME --object-lock-enabled-for-bucket ...`, which also turns on \
         versioning), or enable it on this bucket: AWS S3 allows that on an existing bucket \
         once versioning is enabled (`aws s3api put-bucket-versioning --bucket {bucket} \
         --versioning-configuration Status=Enabled`, then `aws s3api \
         put-object-lock-configuration --bucket {bucket} --object-lock-configuration \
         ObjectLockEnabled=Enabled`; it cannot be turned off again, and objects already in the \
         bucket stay unlocked), while some S3-compatible stores allow it only when the bucket \
         is created; or remove storage.object_lock to write without a retention",
        detail_suffix(detail.as_deref())
    )]
    ObjectLockNotEnabled {
        /// The bucket.
        bucket: String,
        /// The full location of the object that was not written.
        location: String,
        /// The key relative to the configured prefix.
        key: String,
        /// The service's own code and message, sanitized.
        detail: Option<String>,
    },

    /// An object is larger than the caller allows for its kind: reading stopped at the limit.
    #[error(
        "{location} (key `{key}`) is larger than {limit} bytes ({}), larger than any object of \
         its kind that kafka-backup writes, so it was not written by kafka-backup or it was \
         replaced; it was not read further. Find out who else writes under this prefix, and \
         compare the object with what the backup's manifest lists",
        match claimed {
            Some(size) => format!("the storage reports {size} bytes"),
            None => format!("more than {limit} bytes arrived"),
        }
    )]
    TooLarge {
        /// The full location.
        location: String,
        /// The key relative to the configured prefix.
        key: String,
        /// The most bytes the caller accepts.
        limit: u64,
        /// The size the storage reported (a listing, or the answer's Content-Length), when that
        /// is how it was found; `None` when the data itself went past the limit.
        claimed: Option<u64>,
    },

    /// Anything else: a server error, an unexpected answer, a local I/O error.
    #[error(
        "storage failed to {} {location}: {detail}{}",
        operation.verb(),
        if *retriable {
            "; this looks transient (it was retried already): try again later, and check the \
             service's status if it persists"
        } else {
            ""
        }
    )]
    Other {
        /// What was attempted.
        operation: Operation,
        /// The full location.
        location: String,
        /// What happened, sanitized.
        detail: String,
        /// Whether trying again later may succeed.
        retriable: bool,
    },
}

impl StorageError {
    /// Whether the same operation may succeed if tried again later: the endpoint was
    /// unreachable, or the service reported a transient failure (5xx, throttling).
    /// `object_store` has already retried within its own budget before this error surfaced.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Other { retriable, .. } => *retriable,
            _ => false,
        }
    }
}

fn key_suffix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!(" (key `{key}`)")
    }
}

pub(crate) fn detail_suffix(detail: Option<&str>) -> String {
    detail
        .map(|d| format!(" (the service said: {d})"))
        .unwrap_or_default()
}

fn not_found_message(what: Missing, location: &str, key: Option<&str>, hint: &str) -> String {
    match what {
        Missing::Bucket => format!(
            "the bucket {location} does not exist{hint}; create it (kafka-backup never creates \
             buckets), or fix `storage.bucket`"
        ),
        Missing::Container => format!(
            "the container {location} does not exist{hint}; create it (kafka-backup never \
             creates containers), or fix `storage.container_name` and `storage.account_name`"
        ),
        Missing::Directory => format!(
            "the storage directory {location} does not exist{hint}; create it, or fix \
             `storage.path`"
        ),
        Missing::Object => format!(
            "{location} does not exist (key `{}`){hint}; check the backup id and \
             `storage.prefix`, and that the backup was written completely",
            key.unwrap_or("")
        ),
    }
}

// ---------------------------------------------------------------------------
// Reading object_store errors

/// What can be read out of one `object_store` error.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// The `object_store::Error` variant.
    pub variant: Variant,
    /// HTTP status, when the service answered.
    pub status: Option<u16>,
    /// The service's error code (`NoSuchBucket`, `AccessDenied`, `AuthenticationFailed`).
    pub code: Option<String>,
    /// The service's error message.
    pub message: Option<String>,
    /// The transport failure, when there was no usable answer.
    pub transport: Option<HttpErrorKind>,
    /// Text of the transport error's causes.
    pub transport_cause: Option<String>,
    /// The innermost I/O error's kind, for the file system.
    pub io: Option<io::ErrorKind>,
    /// The innermost cause's text.
    pub innermost: String,
    /// Whether the failure happened while obtaining credentials.
    pub credential_failure: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    NotFound,
    AlreadyExists,
    Precondition,
    PermissionDenied,
    Unauthenticated,
    InvalidPath,
    Unsupported,
    #[default]
    Generic,
}

impl Facts {
    pub(crate) fn read(err: &object_store::Error) -> Self {
        use object_store::Error as E;
        let variant = match err {
            E::NotFound { .. } => Variant::NotFound,
            E::AlreadyExists { .. } => Variant::AlreadyExists,
            E::Precondition { .. } => Variant::Precondition,
            E::PermissionDenied { .. } => Variant::PermissionDenied,
            E::Unauthenticated { .. } => Variant::Unauthenticated,
            E::InvalidPath { .. } => Variant::InvalidPath,
            E::NotSupported { .. } | E::NotImplemented { .. } => Variant::Unsupported,
            _ => Variant::Generic,
        };
        let mut facts = Facts {
            variant,
            ..Facts::default()
        };
        let mut chain: Vec<&(dyn StdError + 'static)> = Vec::new();
        let mut current: Option<&(dyn StdError + 'static)> = Some(err);
        while let Some(e) = current {
            chain.push(e);
            current = e.source();
        }
        for (i, e) in chain.iter().enumerate() {
            let text = e.to_string();
            if facts.status.is_none()
                && let Some((status, body)) = parse_status(&text)
            {
                facts.status = Some(status);
                let (code, message) = parse_body(body);
                facts.code = code;
                facts.message = message;
            }
            if let Some(http) = e.downcast_ref::<HttpError>()
                && facts.transport.is_none()
            {
                facts.transport = Some(http.kind());
                let causes: Vec<String> = chain[i + 1..].iter().map(|c| c.to_string()).collect();
                facts.transport_cause = Some(join_causes(&causes));
            }
            if let Some(io) = e.downcast_ref::<io::Error>() {
                facts.io = Some(io.kind());
            }
            if CREDENTIAL_MARKERS.iter().any(|m| text.contains(m)) {
                facts.credential_failure = true;
            }
        }
        facts.innermost = chain.last().map(|e| e.to_string()).unwrap_or_default();
        facts
    }

    /// The service's code and message as one phrase.
    pub(crate) fn service_detail(&self) -> Option<String> {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => Some(format!("{c}: {m}")),
            (Some(c), None) => Some(c.clone()),
            (None, Some(m)) => Some(m.clone()),
            (None, None) => self.status.map(|s| format!("HTTP {s}")),
        }
    }

    pub(crate) fn code_is(&self, codes: &[&str]) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| codes.iter().any(|k| c.eq_ignore_ascii_case(k)))
    }

    pub(crate) fn text_mentions(&self, needle: &str) -> bool {
        let needle = needle.to_ascii_lowercase();
        [self.message.as_deref(), Some(self.innermost.as_str())]
            .into_iter()
            .flatten()
            .any(|t| t.to_ascii_lowercase().contains(&needle))
    }
}

/// Text that only the credential providers' errors contain: their endpoints (instance
/// metadata, ECS and EKS agents, STS, Entra ID, Google OAuth) and their own messages.
const CREDENTIAL_MARKERS: &[&str] = &[
    "169.254.169.254",
    "169.254.170.2",
    "169.254.170.23",
    "fd00:ec2::",
    "://sts.",
    "AssumeRoleWithWebIdentity",
    "token file",
    "login.microsoftonline.com",
    "oauth2.googleapis.com",
    "metadata.google.internal",
    "Error performing token request",
    "Error getting token response",
    "service account file",
    "CreateSession",
];

/// `object_store`'s retry error renders as "... Server returned non-2xx status code: 403
/// Forbidden: BODY".
fn parse_status(text: &str) -> Option<(u16, &str)> {
    const MARK: &str = "status code: ";
    let at = text.find(MARK)? + MARK.len();
    let rest = &text[at..];
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let body = rest.find(": ").map(|i| &rest[i + 2..]).unwrap_or("");
    Some((status, body))
}

/// The error code and message of an S3/Azure XML or GCS JSON error body.
fn parse_body(body: &str) -> (Option<String>, Option<String>) {
    let xml = |tag: &str| {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&close)? + start;
        Some(body[start..end].trim().to_owned()).filter(|s| !s.is_empty())
    };
    let json = |key: &str| {
        let pattern = format!("\"{key}\"");
        let at = body.find(&pattern)? + pattern.len();
        let rest = body[at..].trim_start().strip_prefix(':')?.trim_start();
        let rest = rest.strip_prefix('"')?;
        let end = rest.find('"')?;
        Some(rest[..end].to_owned()).filter(|s| !s.is_empty())
    };
    let code = xml("Code").or_else(|| json("reason"));
    let message = xml("Message").or_else(|| json("message"));
    // Azure puts the request id and time on further lines of its message.
    let message = message.map(|m| m.lines().next().unwrap_or("").trim().to_owned());
    (code, message)
}

/// Transport causes, outermost first, without repeats (hyper and reqwest nest the same text).
fn join_causes(causes: &[String]) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in causes {
        let c = c.trim();
        if !c.is_empty() && !parts.iter().any(|p| p.contains(c) || c.contains(*p)) {
            parts.push(c);
        } else if let Some(last) = parts.last_mut()
            && c.contains(*last)
        {
            *last = c;
        }
    }
    if parts.is_empty() {
        "no further detail".to_owned()
    } else {
        parts.join(": ")
    }
}

/// Makes text from outside safe to show: configured secrets masked, URL query strings cut
/// (a SAS token is one), control characters escaped, length bounded.
pub(crate) fn sanitize(text: &str, secrets: &[Secret]) -> String {
    const MAX: usize = 300;
    let mut out = text.to_owned();
    for secret in secrets {
        let s = secret.expose();
        if s.len() >= 4 && out.contains(s) {
            out = out.replace(s, kafka_client::secret::MASK);
        }
    }
    // Cut `?query` from URLs.
    let mut cleaned = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("://") {
        let (before, url) = rest.split_at(at);
        cleaned.push_str(before);
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | '<'))
            .unwrap_or(url.len());
        let (url, after) = url.split_at(end);
        match url.find('?') {
            Some(q) => {
                cleaned.push_str(&url[..q]);
                cleaned.push_str("?...");
            }
            None => cleaned.push_str(url),
        }
        rest = after;
    }
    cleaned.push_str(rest);
    let mut bounded = String::with_capacity(cleaned.len().min(MAX + 4));
    for (count, c) in cleaned.chars().enumerate() {
        if count >= MAX {
            bounded.push_str("...");
            break;
        }
        if c.is_control() {
            bounded.extend(c.escape_debug());
        } else {
            bounded.push(c);
        }
    }
    bounded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_body_are_read_from_the_retry_text() {
        let text = "Error performing GET http://h/b?list-type=2 in 3ms - Server returned non-2xx \
                    status code: 404 Not Found: <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
                    <Message>The specified bucket does not exist</Message></Error>";
        let (status, body) = parse_status(text).unwrap();
        assert_eq!(status, 404);
        let (code, message) = parse_body(body);
        assert_eq!(code.as_deref(), Some("NoSuchBucket"));
        assert_eq!(
            message.as_deref(),
            Some("The specified bucket does not exist")
        );
        let (code, message) = parse_body(
            r#"{"error": {"code": 404, "message": "The specified bucket does not exist.", "errors": [{"reason": "notFound"}]}}"#,
        );
        assert_eq!(code.as_deref(), Some("notFound"));
        assert_eq!(
            message.as_deref(),
            Some("The specified bucket does not exist.")
        );
    }

    #[test]
    fn sanitize_masks_secrets_and_queries() {
        let secrets = [Secret::new("TopSecretValue"), Secret::new("ab")];
        let text = "GET https://acct.blob.core.windows.net/c/k?sv=2020&sig=abc%2F in 2ms: \
                    key TopSecretValue\nbad ab";
        let clean = sanitize(text, &secrets);
        assert_eq!(
            clean,
            "GET https://acct.blob.core.windows.net/c/k?... in 2ms: key ***\\nbad ab"
        );
        let long = "x".repeat(1000);
        assert_eq!(sanitize(&long, &[]).len(), 303);
    }

    #[test]
    fn causes_are_joined_without_repeats() {
        let causes = [
            "client error (Connect)".to_owned(),
            "tcp connect error".to_owned(),
            "Connection refused (os error 111)".to_owned(),
            "Connection refused (os error 111)".to_owned(),
        ];
        assert_eq!(
            join_causes(&causes),
            "client error (Connect): tcp connect error: Connection refused (os error 111)"
        );
    }
}

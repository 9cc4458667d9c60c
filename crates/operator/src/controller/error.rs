//! What can go wrong while reconciling, classified by what happens next.

use std::time::Duration;

/// Why a reconciliation stopped. [`Error::disposition`] says whether waiting helps.
///
/// A spec that cannot be rendered is not an error here: it is the resource's status (phase
/// `Failed` with a condition), and reconciling it succeeded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or did not answer a request.
    #[error("{action}: {}{}", api_message(.source), api_hint(.source))]
    Api {
        /// What the operator was doing, e.g. `server-side apply of CronJob kafka/orders`.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The object lacks metadata the API server always sets (a name, a namespace, a uid): it
    /// did not come from the API server, or a rendered object is unnamed.
    #[error("the {kind} has no {field}, which the operator needs to {purpose}")]
    MissingMetadata {
        /// The object, e.g. `KafkaBackup kafka/orders`.
        kind: String,
        /// e.g. `metadata.uid`.
        field: &'static str,
        /// What it is needed for.
        purpose: &'static str,
    },
    /// A value the operator built does not serialise to JSON (a bug: no input causes it).
    #[error("cannot serialise {what}: {source}")]
    Serialize {
        /// e.g. `the status of KafkaBackup kafka/orders`.
        what: String,
        /// The serialiser's error.
        #[source]
        source: serde_json::Error,
    },
}

/// What to do about an [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Transient (a conflict, a timeout, the API server restarting): try again soon.
    Retry,
    /// Waiting alone does not help: a person must change something (the operator's RBAC, an
    /// object the API server rejects as invalid). Retried rarely, in case they did.
    UserMustFix,
}

impl Error {
    /// Whether retrying soon can succeed.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Api {
                source: kube::Error::Api(status),
                ..
            } => match status.code {
                // Unauthorized and forbidden: the RBAC in deploy/rbac.yaml is missing a rule;
                // invalid or bad request: the object as rendered is refused.
                400 | 401 | 403 | 422 => Disposition::UserMustFix,
                _ => Disposition::Retry,
            },
            Self::Api { .. } => Disposition::Retry,
            Self::MissingMetadata { .. } | Self::Serialize { .. } => Disposition::UserMustFix,
        }
    }

    /// The HTTP status code of an API error (404, 409, ...).
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Api {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }

    /// The requeue delay after `failures` failures in a row (1 for the first): doubling from
    /// 5 s (retry) or 1 min (user must fix), at most 5 and 15 min.
    pub fn backoff(&self, failures: u32) -> Duration {
        let (first, most) = match self.disposition() {
            Disposition::Retry => (5, 300),
            Disposition::UserMustFix => (60, 900),
        };
        let doublings = failures.saturating_sub(1).min(16);
        Duration::from_secs((first << doublings).min(most))
    }
}

fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

fn api_hint(error: &kube::Error) -> &'static str {
    match error {
        kube::Error::Api(status) => match status.code {
            401 | 403 => {
                "; the operator's ServiceAccount lacks this right: apply deploy/rbac.yaml \
                 (and a ClusterRole binding when it watches all namespaces)"
            }
            404 => {
                "; the object or its CRD is not there: `kafka-backup operator crds | \
                 kubectl apply -f -` installs the CRDs"
            }
            409 => "; another writer changed the object: retried",
            422 | 400 => {
                "; the API server refuses the object as the operator renders it: see the \
                 message"
            }
            _ => "",
        },
        _ => "; the API server could not be reached: retried",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str) -> Error {
        Error::Api {
            action: "server-side apply of Job kafka/orders".into(),
            source: kube::Error::Api(Box::new(kube::core::Status {
                code,
                reason: reason.into(),
                message: "jobs.batch \"orders\" is forbidden".into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn errors_are_classified_by_what_helps() {
        let forbidden = api(403, "Forbidden");
        assert_eq!(forbidden.disposition(), Disposition::UserMustFix);
        let text = forbidden.to_string();
        assert!(text.contains("Job kafka/orders"), "{text}");
        assert!(text.contains("deploy/rbac.yaml"), "{text}");
        assert_eq!(api(422, "Invalid").disposition(), Disposition::UserMustFix);
        assert_eq!(api(409, "Conflict").disposition(), Disposition::Retry);
        assert_eq!(api(500, "InternalError").disposition(), Disposition::Retry);
        let unreachable = Error::Api {
            action: "list Jobs".into(),
            source: kube::Error::LinesCodecMaxLineLengthExceeded,
        };
        assert_eq!(unreachable.disposition(), Disposition::Retry);
        assert!(unreachable.to_string().contains("could not be reached"));
    }

    #[test]
    fn backoff_doubles_up_to_a_ceiling() {
        let conflict = api(409, "Conflict");
        assert_eq!(conflict.backoff(1), Duration::from_secs(5));
        assert_eq!(conflict.backoff(2), Duration::from_secs(10));
        assert_eq!(conflict.backoff(40), Duration::from_secs(300));
        let forbidden = api(403, "Forbidden");
        assert_eq!(forbidden.backoff(1), Duration::from_secs(60));
        assert_eq!(forbidden.backoff(u32::MAX), Duration::from_secs(900));
    }
}

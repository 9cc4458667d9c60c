//! `audit:`: where a command's audit events go (see [`crate::audit`]).
//!
//! ```yaml
//! audit:
//!   file: /var/log/kafka-backup/audit.jsonl   # JSON lines, chained, created 0600
//!   stdout: false                             # also print each event on stdout
//!   storage: true                             # also append to audit/{backup_id}/ in the storage
//!   syslog: tcp://syslog.example:514          # also RFC 5424 to syslog (tcp://, udp://, unix:)
//!   syslog_facility: authpriv                 # the default
//!   signing_key: /keys/audit.key              # default: backup.signing_key (backup mode)
//! ```
//!
//! The command line's `--audit-file` and `--audit-stdout` add to these, and are the only
//! sinks of a command whose configuration does not load.

use std::path::PathBuf;

use backup_format::signing::SigningKey;
use serde::Deserialize;

use super::env::{ConfigBool, ConfigString};
use super::error::ConfigError;
use super::validator::Validator;

/// `audit:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub file: Option<ConfigString>,
    pub stdout: Option<ConfigBool>,
    pub storage: Option<ConfigBool>,
    pub syslog: Option<ConfigString>,
    pub syslog_facility: Option<ConfigString>,
    pub signing_key: Option<ConfigString>,
}

/// Where audit events go, from the configuration.
#[derive(Debug, Clone, Default)]
pub struct AuditSettings {
    /// `audit.file`: a JSON-lines file.
    pub file: Option<PathBuf>,
    /// `audit.stdout`.
    pub stdout: bool,
    /// `audit.storage`: append to the backup storage's `audit/{backup_id}/` stream.
    pub storage: bool,
    /// `audit.syslog` and `audit.syslog_facility`.
    pub syslog: Option<crate::audit::syslog::SyslogTarget>,
    /// `audit.signing_key`: signs events (when absent, a backup configuration's
    /// `backup.signing_key` does).
    pub signing_key: Option<SigningKey>,
}

/// What a key holds, for "expected ..." in parser messages; `None` for other keys.
pub(crate) fn expected_for(key: &str) -> Option<&'static str> {
    Some(match key {
        "file" => "the path of the audit log (a JSON-lines file)",
        "stdout" | "storage" => "true or false",
        "syslog" => "tcp://HOST:PORT, udp://HOST:PORT or unix:/dev/log",
        "syslog_facility" => {
            "a syslog facility name: authpriv (the default), auth, local0 to local7, ..."
        }
        _ => return None,
    })
}

impl Validator<'_> {
    /// Reads `audit:`.
    pub(super) fn audit(&mut self, raw: Option<RawAudit>) -> Result<AuditSettings, ConfigError> {
        let Some(raw) = raw else {
            return Ok(AuditSettings::default());
        };
        let file = match raw.file {
            Some(f) if f.value.trim().is_empty() => {
                return Err(self.invalid(
                    "audit.file".to_owned(),
                    f.line,
                    "is empty; give the path of the audit log, or remove the key".to_owned(),
                ));
            }
            Some(f) => Some(PathBuf::from(f.value)),
            None => None,
        };
        let syslog = match raw.syslog {
            None => {
                if let Some(f) = raw.syslog_facility {
                    return Err(self.invalid(
                        "audit.syslog_facility".to_owned(),
                        f.line,
                        "is set but audit.syslog is not; add the syslog address, or remove the \
                         facility"
                            .to_owned(),
                    ));
                }
                None
            }
            Some(address) => {
                let transport = crate::audit::syslog::Transport::parse(&address.value)
                    .map_err(|why| self.invalid("audit.syslog".to_owned(), address.line, why))?;
                let facility = match raw.syslog_facility {
                    None => "authpriv".to_owned(),
                    Some(f) => {
                        if crate::audit::syslog::facility(&f.value).is_none() {
                            return Err(self.invalid(
                                "audit.syslog_facility".to_owned(),
                                f.line,
                                format!(
                                    "`{}` is not a syslog facility; use authpriv (security \
                                     events, the default), auth, or local0 to local7",
                                    f.value
                                ),
                            ));
                        }
                        f.value
                    }
                };
                Some(crate::audit::syslog::SyslogTarget {
                    transport,
                    facility,
                })
            }
        };
        Ok(AuditSettings {
            syslog,
            file,
            stdout: raw.stdout.is_some_and(|b| b.value),
            storage: raw.storage.is_some_and(|b| b.value),
            signing_key: self.signing_key_at("audit.signing_key", raw.signing_key)?,
        })
    }
}

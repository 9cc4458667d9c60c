//! Checks of the GSSAPI (Kerberos) keys of `security:`: the service name and a readable
//! keytab are required, a krb5.conf must be readable when given, and password or OAuth keys
//! would be ignored, so they are errors. A binary built without the `gssapi` feature says
//! how to get one.

use super::env::{ConfigSecret, ConfigString};
use super::error::ConfigError;
use super::model::{KerberosSettings, SaslCredentials, SaslMechanismName, SaslSettings};
use super::validator::Validator;

/// The Kerberos keys as written.
pub(super) struct RawKerberos {
    pub service_name: Option<ConfigString>,
    pub keytab_path: Option<ConfigString>,
    pub krb5_config_path: Option<ConfigString>,
    pub principal: Option<ConfigString>,
}

impl RawKerberos {
    /// Every key with the line it is on, `None` for keys not set.
    pub fn keys(&self) -> [(&'static str, Option<Option<u32>>); 4] {
        let line = |v: &Option<ConfigString>| v.as_ref().map(|s| s.line);
        [
            ("sasl_kerberos_service_name", line(&self.service_name)),
            ("sasl_keytab_path", line(&self.keytab_path)),
            ("sasl_krb5_config_path", line(&self.krb5_config_path)),
            ("sasl_kerberos_principal", line(&self.principal)),
        ]
    }
}

impl Validator<'_> {
    /// Validates GSSAPI's settings.
    pub(super) fn kerberos(
        &mut self,
        sec: &str,
        mechanism_line: Option<u32>,
        username: Option<ConfigString>,
        password: Option<ConfigSecret>,
        raw: RawKerberos,
        oauth_keys: [(&'static str, Option<Option<u32>>); 8],
    ) -> Result<SaslSettings, ConfigError> {
        // Check the files first: a wrong path is worth knowing about even in a binary that
        // cannot use them yet.
        let keytab = raw
            .keytab_path
            .as_ref()
            .map(|k| {
                let key = format!("{sec}.sasl_keytab_path");
                let path = self.readable_file(&key, k)?;
                self.warn_if_shared(&key, "keytab", &path);
                Ok::<_, ConfigError>(path)
            })
            .transpose()?;
        let krb5 = raw
            .krb5_config_path
            .as_ref()
            .map(|k| self.readable_file(&format!("{sec}.sasl_krb5_config_path"), k))
            .transpose()?;
        if !cfg!(feature = "gssapi") {
            return Err(self.invalid(
                format!("{sec}.sasl_mechanism"),
                mechanism_line,
                "GSSAPI (Kerberos) is not built into this binary of kafka-backup; build one with \
                 `cargo build --release --features gssapi` (Debian needs libkrb5-dev and \
                 libclang-dev to build it, libgssapi-krb5-2 to run it), or meanwhile \
                 authenticate with SCRAM-SHA-512 or SCRAM-SHA-256 (ask the Kafka administrators \
                 for a SCRAM user), or with a client certificate (security_protocol: SSL with \
                 ssl_certificate_location and ssl_key_location)"
                    .to_owned(),
            ));
        }
        self.refuse_password(
            sec,
            username.as_ref(),
            password.as_ref(),
            "is not used with sasl_mechanism GSSAPI: Kerberos logs in with the keytab. Remove it, \
             and set sasl_keytab_path (and sasl_kerberos_principal if the keytab holds more than \
             one principal)",
        )?;
        self.refuse_set_keys(
            sec,
            oauth_keys,
            "is only used with sasl_mechanism OAUTHBEARER, but sasl_mechanism is GSSAPI; remove it",
        )?;
        let service_name = match raw.service_name {
            Some(s) if !s.value.trim().is_empty() => s.value.trim().to_owned(),
            other => {
                return Err(self.invalid(
                    format!("{sec}.sasl_kerberos_service_name"),
                    other.and_then(|s| s.line).or(mechanism_line),
                    "is not set (or empty) but GSSAPI needs it: the first part of the brokers' \
                     service principals, `kafka` for kafka/broker-1.example.com@REALM (the \
                     brokers' sasl.kerberos.service.name)"
                        .to_owned(),
                ));
            }
        };
        let Some(keytab_path) = keytab else {
            return Err(self.invalid(
                format!("{sec}.sasl_keytab_path"),
                mechanism_line,
                "is not set but GSSAPI needs it: the keytab kafka-backup logs in with (it never \
                 uses the default credential cache or a password)"
                    .to_owned(),
            ));
        };
        let principal = match raw.principal {
            Some(p) if p.value.trim().is_empty() => {
                return Err(self.invalid(
                    format!("{sec}.sasl_kerberos_principal"),
                    p.line,
                    "is empty (an unset variable?); give the principal to log in as, or remove the \
                     key to use the keytab's first principal"
                        .to_owned(),
                ));
            }
            Some(p) => Some(p.value.trim().to_owned()),
            None => None,
        };
        let username = principal
            .clone()
            .unwrap_or_else(|| format!("the first principal in {}", keytab_path.display()));
        Ok(SaslSettings {
            mechanism: SaslMechanismName::Gssapi,
            username,
            credentials: SaslCredentials::Kerberos(KerberosSettings {
                service_name,
                keytab_path,
                principal,
                krb5_config_path: krb5,
            }),
        })
    }
}

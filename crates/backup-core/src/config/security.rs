//! Checks of the `security` section: which keys go with which `security_protocol`, SASL
//! credentials, TLS files, and the warnings for settings that weaken security.
//!
//! The rule throughout: a key that the chosen protocol would ignore (TLS settings with TLS
//! off, credentials with SASL off) is an error, because ignoring it is the silent downgrade
//! this loader exists to prevent.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use kafka_client::{SecurityProtocol, TlsOptions};

use super::env::{ConfigSecret, ConfigString};
use super::error::ConfigError;
use super::kerberos::RawKerberos;
use super::model::{SaslCredentials, SaslMechanismName, SaslSettings, SecurityConfig};
use super::oauth::RawOAuth;
use super::raw::{EndpointIdentification, RawMechanism, RawSecurity};
use super::validator::Validator;

impl Validator<'_> {
    pub(super) fn security(
        &mut self,
        raw: RawSecurity,
        key: &str,
    ) -> Result<SecurityConfig, ConfigError> {
        // Destructured, so that a new key cannot be added without deciding how it is checked.
        let RawSecurity {
            security_protocol,
            sasl_mechanism,
            sasl_username,
            sasl_password,
            ssl_ca_location,
            ssl_certificate_location,
            ssl_key_location,
            ssl_key_password,
            ssl_endpoint_identification_algorithm,
            sasl_kerberos_service_name,
            sasl_keytab_path,
            sasl_krb5_config_path,
            sasl_kerberos_principal,
            sasl_oauthbearer_token_endpoint_url,
            sasl_oauthbearer_client_id,
            sasl_oauthbearer_client_secret,
            sasl_oauthbearer_scope,
            sasl_oauthbearer_extensions,
            sasl_oauthbearer_token_file,
            sasl_oauthbearer_ca_location,
            sasl_oauthbearer_allow_http,
            sasl_options,
        } = raw;
        let oauth = RawOAuth {
            token_endpoint_url: sasl_oauthbearer_token_endpoint_url,
            client_id: sasl_oauthbearer_client_id,
            client_secret: sasl_oauthbearer_client_secret,
            scope: sasl_oauthbearer_scope,
            extensions: sasl_oauthbearer_extensions,
            token_file: sasl_oauthbearer_token_file,
            ca_location: sasl_oauthbearer_ca_location,
            allow_http: sasl_oauthbearer_allow_http,
        };
        let sec = format!("{key}.security");
        let protocol = security_protocol.map_or(SecurityProtocol::Plaintext, |p| p.value);
        let protocol_line = security_protocol.and_then(|p| p.line);
        let protocol_text = match security_protocol {
            Some(p) => format!("security_protocol is {}", p.value),
            None => "security_protocol is not set, so it is PLAINTEXT".to_owned(),
        };

        let kerberos = RawKerberos {
            service_name: sasl_kerberos_service_name,
            keytab_path: sasl_keytab_path,
            krb5_config_path: sasl_krb5_config_path,
            principal: sasl_kerberos_principal,
        };
        // SASL keys need a SASL protocol.
        let sasl_keys = [
            ("sasl_mechanism", sasl_mechanism.map(|m| m.line)),
            ("sasl_username", sasl_username.as_ref().map(|s| s.line)),
            ("sasl_password", sasl_password.as_ref().map(|s| s.line)),
        ]
        .into_iter()
        .chain(kerberos.keys())
        .chain(oauth.keys())
        .chain([(
            "sasl_options",
            sasl_options
                .as_ref()
                .map(|o| o.values().next().and_then(|v| v.line)),
        )]);
        if !protocol.uses_sasl() {
            let present = sasl_keys
                .filter_map(|(k, line)| line.map(|l| (k, l)))
                .next();
            if let Some((name, line)) = present {
                let fix = if protocol == SecurityProtocol::Ssl {
                    "use SASL_SSL"
                } else {
                    "use SASL_SSL (or SASL_PLAINTEXT if the listener has no TLS)"
                };
                return Err(self.invalid(
                    format!("{sec}.{name}"),
                    line,
                    format!(
                        "{name} is set but {protocol_text}, so SASL is off and these credentials \
                         would not be used; {fix}"
                    ),
                ));
            }
        }

        // TLS keys need a TLS protocol.
        let ssl_keys = [
            ("ssl_ca_location", ssl_ca_location.as_ref().map(|s| s.line)),
            (
                "ssl_certificate_location",
                ssl_certificate_location.as_ref().map(|s| s.line),
            ),
            (
                "ssl_key_location",
                ssl_key_location.as_ref().map(|s| s.line),
            ),
            (
                "ssl_key_password",
                ssl_key_password.as_ref().map(|s| s.line),
            ),
            (
                "ssl_endpoint_identification_algorithm",
                ssl_endpoint_identification_algorithm.map(|s| s.line),
            ),
        ];
        if !protocol.uses_tls() {
            let present = ssl_keys.iter().find_map(|(k, line)| line.map(|l| (*k, l)));
            if let Some((name, line)) = present {
                let fix = if protocol == SecurityProtocol::SaslPlaintext {
                    "SASL_SSL"
                } else {
                    "SSL (or SASL_SSL with SASL credentials)"
                };
                return Err(self.invalid(
                    format!("{sec}.{name}"),
                    line,
                    format!(
                        "{name} is set but {protocol_text}, so TLS is off: did you mean {fix}?"
                    ),
                ));
            }
        }

        let sasl = if protocol.uses_sasl() {
            Some(self.sasl(
                &sec,
                protocol,
                protocol_line,
                sasl_mechanism.map(|m| (m.value, m.line)),
                sasl_username,
                sasl_password,
                kerberos,
                oauth,
                sasl_options,
            )?)
        } else {
            None
        };

        let tls = if protocol.uses_tls() {
            self.tls(
                &sec,
                ssl_ca_location,
                ssl_certificate_location,
                ssl_key_location,
                ssl_key_password,
                ssl_endpoint_identification_algorithm.map(|e| e.value),
            )?
        } else {
            TlsOptions::default()
        };

        if protocol == SecurityProtocol::SaslPlaintext
            && let Some(s) = &sasl
        {
            self.warnings.push(match s.mechanism {
                SaslMechanismName::Plain => format!(
                    "{sec}: sasl_mechanism PLAIN over SASL_PLAINTEXT sends the password of `{}` across \
                     the network in clear text, readable by anyone who can see the traffic; use \
                     SASL_SSL, or at least SCRAM-SHA-512",
                    s.username
                ),
                SaslMechanismName::Gssapi => format!(
                    "{sec}: SASL_PLAINTEXT with GSSAPI keeps the keys off the wire, but every record \
                     backed up or restored crosses the network unencrypted and unprotected against \
                     tampering; use SASL_SSL if the brokers offer it"
                ),
                SaslMechanismName::OAuthBearer => format!(
                    "{sec}: sasl_mechanism OAUTHBEARER over SASL_PLAINTEXT sends the bearer token \
                     across the network in clear; whoever sees it can use it until it expires. Use \
                     SASL_SSL"
                ),
                scram => format!(
                    "{sec}: SASL_PLAINTEXT with {scram} keeps the password off the wire, but every \
                     record backed up or restored crosses the network unencrypted and unprotected \
                     against tampering; use SASL_SSL if the brokers offer it"
                ),
            });
        }

        Ok(SecurityConfig {
            protocol,
            tls,
            sasl,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn sasl(
        &mut self,
        sec: &str,
        protocol: SecurityProtocol,
        protocol_line: Option<u32>,
        mechanism: Option<(RawMechanism, Option<u32>)>,
        username: Option<ConfigString>,
        password: Option<ConfigSecret>,
        kerberos: RawKerberos,
        oauth: RawOAuth,
        options: Option<BTreeMap<String, ConfigSecret>>,
    ) -> Result<SaslSettings, ConfigError> {
        let Some((mechanism, mechanism_line)) = mechanism else {
            return Err(self.invalid(
                format!("{sec}.security_protocol"),
                protocol_line,
                format!(
                    "security_protocol is {protocol} but sasl_mechanism is not set; add \
                     sasl_mechanism: SCRAM-SHA-512 (or SCRAM-SHA-256, or PLAIN) with sasl_username \
                     and sasl_password"
                ),
            ));
        };
        if let RawMechanism::Plugin(name) = mechanism {
            return self.plugin(sec, name, username, password, options, &kerberos, &oauth);
        }
        if let Some(line) = options
            .as_ref()
            .map(|o| o.values().next().and_then(|v| v.line))
        {
            return Err(self.invalid(
                format!("{sec}.sasl_options"),
                line,
                "is only used with a SASL mechanism registered by a plugin, and the built-in \
                 mechanisms take their settings as named keys; remove it"
                    .to_owned(),
            ));
        }
        let name = match mechanism {
            RawMechanism::Plain => SaslMechanismName::Plain,
            RawMechanism::ScramSha256 => SaslMechanismName::ScramSha256,
            RawMechanism::ScramSha512 => SaslMechanismName::ScramSha512,
            RawMechanism::Gssapi => {
                return self.kerberos(
                    sec,
                    mechanism_line,
                    username,
                    password,
                    kerberos,
                    oauth.keys(),
                );
            }
            RawMechanism::OAuthBearer => {
                let kerberos_keys = kerberos.keys();
                return self.oauth(
                    sec,
                    mechanism_line,
                    username,
                    password,
                    oauth,
                    kerberos_keys,
                );
            }
            RawMechanism::Plugin(_) => unreachable!("handled above"),
        };
        self.refuse_set_keys(
            sec,
            oauth.keys(),
            &format!(
                "is only used with sasl_mechanism OAUTHBEARER, but sasl_mechanism is {name}; \
                 remove it, or set sasl_mechanism: OAUTHBEARER"
            ),
        )?;
        // OSO's tool ignores the Kerberos keys with other mechanisms; so do we, but say so.
        for (key, _) in kerberos.keys().iter().filter(|(_, v)| v.is_some()) {
            self.warnings.push(format!(
                "{sec}.{key} is ignored: sasl_mechanism is {name}, and the Kerberos keys are only \
                 used with GSSAPI; remove it"
            ));
        }
        let username = match username {
            None => {
                return Err(self.invalid(
                    format!("{sec}.sasl_username"),
                    mechanism_line,
                    format!(
                        "sasl_mechanism is {name} but sasl_username is not set; add the SASL user name"
                    ),
                ));
            }
            Some(u) if u.value.trim().is_empty() => {
                return Err(self.invalid(
                    format!("{sec}.sasl_username"),
                    u.line,
                    format!("is empty, but sasl_mechanism {name} needs a user name; set it"),
                ));
            }
            Some(u) => u.value,
        };
        let password = match password {
            None => {
                return Err(self.invalid(
                    format!("{sec}.sasl_password"),
                    mechanism_line,
                    format!(
                        "sasl_mechanism is {name} but sasl_password is not set; add \
                         sasl_password: ${{KAFKA_PASSWORD}} and export that variable"
                    ),
                ));
            }
            Some(p) if p.value.is_empty() => {
                return Err(self.invalid(
                    format!("{sec}.sasl_password"),
                    p.line,
                    format!(
                        "is empty (an environment variable that is set but empty does this); set \
                         it to the password of `{username}`"
                    ),
                ));
            }
            Some(p) => p.value,
        };
        Ok(SaslSettings {
            mechanism: name,
            username,
            credentials: SaslCredentials::Password(password),
        })
    }

    fn tls(
        &mut self,
        sec: &str,
        ca: Option<ConfigString>,
        certificate: Option<ConfigString>,
        key: Option<ConfigString>,
        key_password: Option<ConfigSecret>,
        endpoint: Option<EndpointIdentification>,
    ) -> Result<TlsOptions, ConfigError> {
        match (&certificate, &key) {
            (Some(c), None) => {
                return Err(self.invalid(
                    format!("{sec}.ssl_certificate_location"),
                    c.line,
                    "is set without ssl_key_location; a client certificate needs its private key: \
                     add ssl_key_location, or remove both to connect without a client certificate"
                        .to_owned(),
                ));
            }
            (None, Some(k)) => {
                return Err(self.invalid(
                    format!("{sec}.ssl_key_location"),
                    k.line,
                    "is set without ssl_certificate_location; a private key is only used with its \
                     client certificate: add ssl_certificate_location, or remove both"
                        .to_owned(),
                ));
            }
            _ => {}
        }
        if let (Some(p), None) = (&key_password, &key) {
            return Err(self.invalid(
                format!("{sec}.ssl_key_password"),
                p.line,
                "is set without ssl_key_location; it only decrypts that key: add ssl_key_location \
                 and ssl_certificate_location, or remove ssl_key_password"
                    .to_owned(),
            ));
        }
        let ca_location = ca
            .map(|c| self.readable_file(&format!("{sec}.ssl_ca_location"), &c))
            .transpose()?;
        let certificate_location = certificate
            .map(|c| self.readable_file(&format!("{sec}.ssl_certificate_location"), &c))
            .transpose()?;
        let key_location = key
            .map(|k| {
                let path_key = format!("{sec}.ssl_key_location");
                let path = self.readable_file(&path_key, &k)?;
                self.warn_if_shared(&path_key, "private key", &path);
                Ok(path)
            })
            .transpose()?;
        let verify_hostname = endpoint != Some(EndpointIdentification::None);
        if !verify_hostname {
            self.warnings.push(format!(
                "{sec}: HOSTNAME VERIFICATION IS OFF (ssl_endpoint_identification_algorithm: none). \
                 The brokers' certificates are still checked against the CA, but not against the \
                 host names, so any server holding a certificate from that CA can impersonate \
                 these brokers and receive the credentials and every record; remove the setting \
                 (or set it to https) once the broker certificates name their hosts"
            ));
        }
        Ok(TlsOptions {
            ca_location,
            certificate_location,
            key_location,
            key_password: key_password.map(|p| p.value),
            verify_hostname,
        })
    }

    /// An error at the first of `keys` that is set: keys the chosen mechanism would ignore
    /// are refused, never dropped, so that a credential never silently goes unused.
    pub(super) fn refuse_set_keys(
        &self,
        sec: &str,
        keys: impl IntoIterator<Item = (&'static str, Option<Option<u32>>)>,
        why: &str,
    ) -> Result<(), ConfigError> {
        match keys.into_iter().find_map(|(k, line)| line.map(|l| (k, l))) {
            Some((key, line)) => Err(self.invalid(format!("{sec}.{key}"), line, why.to_owned())),
            None => Ok(()),
        }
    }

    /// `refuse_set_keys` for `sasl_username` and `sasl_password`, which only PLAIN and SCRAM use.
    pub(super) fn refuse_password(
        &self,
        sec: &str,
        username: Option<&ConfigString>,
        password: Option<&ConfigSecret>,
        why: &str,
    ) -> Result<(), ConfigError> {
        self.refuse_set_keys(
            sec,
            [
                ("sasl_username", username.map(|u| u.line)),
                ("sasl_password", password.map(|p| p.line)),
            ],
            why,
        )
    }

    /// Checks that a file named by `path_key` exists and can be read now, so that a wrong
    /// path fails at startup with the key's name rather than at the first connection.
    pub(crate) fn readable_file(
        &self,
        path_key: &str,
        value: &ConfigString,
    ) -> Result<PathBuf, ConfigError> {
        let fail = |message: String| self.invalid(path_key.to_owned(), value.line, message);
        if value.value.is_empty() {
            return Err(fail(
                "is empty; give the path of the file, or remove the key".to_owned(),
            ));
        }
        let path = PathBuf::from(&value.value);
        let shown = path.display();
        let relative = if path.is_relative() {
            match std::env::current_dir() {
                Ok(dir) => format!(
                    " (a relative path is taken from the working directory, {})",
                    dir.display()
                ),
                Err(_) => " (a relative path is taken from the working directory)".to_owned(),
            }
        } else {
            String::new()
        };
        match fs::metadata(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(fail(format!(
                    "names {shown}, which does not exist; check the path{relative}"
                )));
            }
            Err(e) => {
                return Err(fail(format!(
                    "names {shown}, which cannot be accessed ({e}); check the path and the \
                     permissions of its directories{relative}"
                )));
            }
            Ok(meta) if meta.is_dir() => {
                return Err(fail(format!(
                    "names {shown}, which is a directory; give the path of the file itself"
                )));
            }
            Ok(_) => {}
        }
        if let Err(e) = File::open(&path) {
            let why = if e.kind() == ErrorKind::PermissionDenied {
                "this user may not read it".to_owned()
            } else {
                e.to_string()
            };
            return Err(fail(format!(
                "names {shown}, which cannot be read ({why}); make it readable by the user that \
                 runs kafka-backup"
            )));
        }
        Ok(path)
    }

    /// Warns when a private key (or keytab) is readable by group or others.
    pub(super) fn warn_if_shared(&mut self, path_key: &str, what: &str, path: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o044 != 0 {
                    let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
                        (true, true) => "its group and all other users",
                        (true, false) => "its group",
                        _ => "all other users",
                    };
                    self.warnings.push(format!(
                        "{path_key}: the {what} {} is readable by {who} (mode {mode:03o}); \
                         whoever can read it can impersonate this client: run chmod 600 {}",
                        path.display(),
                        path.display()
                    ));
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (path_key, what, path);
        }
    }
}

#[cfg(test)]
pub(crate) fn check_file_for_tests(path_key: &str, value: &str) -> Result<PathBuf, ConfigError> {
    Validator {
        origin: "test.yaml",
        warnings: Vec::new(),
        private_files: Vec::new(),
    }
    .readable_file(
        path_key,
        &ConfigString {
            value: value.to_owned(),
            line: Some(1),
        },
    )
}

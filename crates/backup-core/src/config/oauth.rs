//! Checks of the OAUTHBEARER keys of `security:`: exactly one token source (the
//! client-credentials grant or a token file), each with only the keys it uses, an https
//! token endpoint unless plain http is explicitly allowed, and extensions as RFC 7628 allows.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kafka_client::sasl::{ClientCredentials, OAuthBearerConfig, TokenSource};

use super::env::{ConfigBool, ConfigSecret, ConfigString};
use super::error::ConfigError;
use super::model::{SaslCredentials, SaslMechanismName, SaslSettings};
use super::validator::Validator;

/// How long one request to the token endpoint may take.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The `sasl_oauthbearer_*` keys as written.
pub(super) struct RawOAuth {
    pub token_endpoint_url: Option<ConfigString>,
    pub client_id: Option<ConfigString>,
    pub client_secret: Option<ConfigSecret>,
    pub scope: Option<ConfigString>,
    pub extensions: Option<BTreeMap<String, ConfigString>>,
    pub token_file: Option<ConfigString>,
    pub ca_location: Option<ConfigString>,
    pub allow_http: Option<ConfigBool>,
}

impl RawOAuth {
    /// Every key with the line it is on, `None` for keys not set.
    pub fn keys(&self) -> [(&'static str, Option<Option<u32>>); 8] {
        let string = |v: &Option<ConfigString>| v.as_ref().map(|s| s.line);
        [
            (
                "sasl_oauthbearer_token_endpoint_url",
                string(&self.token_endpoint_url),
            ),
            ("sasl_oauthbearer_client_id", string(&self.client_id)),
            (
                "sasl_oauthbearer_client_secret",
                self.client_secret.as_ref().map(|s| s.line),
            ),
            ("sasl_oauthbearer_scope", string(&self.scope)),
            (
                "sasl_oauthbearer_extensions",
                self.extensions
                    .as_ref()
                    .map(|e| e.values().next().and_then(|v| v.line)),
            ),
            ("sasl_oauthbearer_token_file", string(&self.token_file)),
            ("sasl_oauthbearer_ca_location", string(&self.ca_location)),
            (
                "sasl_oauthbearer_allow_http",
                self.allow_http.as_ref().map(|b| b.line),
            ),
        ]
    }
}

impl Validator<'_> {
    /// Validates OAUTHBEARER's settings; `kerberos_keys` are the Kerberos keys as set, which it
    /// would ignore.
    pub(super) fn oauth(
        &mut self,
        sec: &str,
        mechanism_line: Option<u32>,
        username: Option<ConfigString>,
        password: Option<ConfigSecret>,
        raw: RawOAuth,
        kerberos_keys: [(&'static str, Option<Option<u32>>); 4],
    ) -> Result<SaslSettings, ConfigError> {
        self.refuse_set_keys(
            sec,
            kerberos_keys,
            "is only used with sasl_mechanism GSSAPI, but sasl_mechanism is OAUTHBEARER; remove it",
        )?;
        self.refuse_password(
            sec,
            username.as_ref(),
            password.as_ref(),
            "is not used with sasl_mechanism OAUTHBEARER: the identity comes from the token. \
             Remove it, and set sasl_oauthbearer_client_id and sasl_oauthbearer_client_secret \
             (or sasl_oauthbearer_token_file)",
        )?;
        let extensions = self.oauth_extensions(sec, raw.extensions.as_ref())?;
        let RawOAuth {
            token_endpoint_url,
            client_id,
            client_secret,
            scope,
            token_file,
            ca_location,
            allow_http,
            ..
        } = raw;
        let (source, username) = match (token_endpoint_url, token_file) {
            (Some(_), Some(file)) => {
                return Err(self.invalid(
                    format!("{sec}.sasl_oauthbearer_token_file"),
                    file.line,
                    "is set together with sasl_oauthbearer_token_endpoint_url; choose one source of \
                     tokens: the token endpoint (with client id and secret) or a token file kept \
                     current by something else"
                        .to_owned(),
                ));
            }
            (None, None) => {
                return Err(self.invalid(
                    format!("{sec}.sasl_mechanism"),
                    mechanism_line,
                    "is OAUTHBEARER but no token source is set; add \
                     sasl_oauthbearer_token_endpoint_url with sasl_oauthbearer_client_id and \
                     sasl_oauthbearer_client_secret, or sasl_oauthbearer_token_file"
                        .to_owned(),
                ));
            }
            (None, Some(file)) => {
                let endpoint_only = [
                    (
                        "sasl_oauthbearer_client_id",
                        client_id.as_ref().map(|c| c.line),
                    ),
                    (
                        "sasl_oauthbearer_client_secret",
                        client_secret.as_ref().map(|c| c.line),
                    ),
                    ("sasl_oauthbearer_scope", scope.as_ref().map(|c| c.line)),
                    (
                        "sasl_oauthbearer_ca_location",
                        ca_location.as_ref().map(|c| c.line),
                    ),
                    (
                        "sasl_oauthbearer_allow_http",
                        allow_http.as_ref().map(|c| c.line),
                    ),
                ];
                if let Some((key, line)) = endpoint_only
                    .into_iter()
                    .find_map(|(k, l)| l.map(|l| (k, l)))
                {
                    return Err(self.invalid(
                        format!("{sec}.{key}"),
                        line,
                        "is only used with sasl_oauthbearer_token_endpoint_url, but the tokens come \
                         from sasl_oauthbearer_token_file; remove it"
                            .to_owned(),
                    ));
                }
                let key = format!("{sec}.sasl_oauthbearer_token_file");
                if !PathBuf::from(&file.value).is_absolute() {
                    return Err(self.invalid(
                        key,
                        file.line,
                        format!(
                            "is `{}`, a relative path; give the absolute path of the mounted token",
                            file.value
                        ),
                    ));
                }
                let path = self.readable_file(&key, &file)?;
                let username = format!("the token in {}", path.display());
                (TokenSource::File(path), username)
            }
            (Some(url), None) => {
                let Some(client_id) = client_id.filter(|c| !c.value.trim().is_empty()) else {
                    return Err(self.invalid(
                        format!("{sec}.sasl_oauthbearer_client_id"),
                        url.line,
                        "is not set (or empty) but the token endpoint needs it; set it to the client \
                         id the identity provider registered for kafka-backup"
                            .to_owned(),
                    ));
                };
                let Some(client_secret) = client_secret.filter(|c| !c.value.is_empty()) else {
                    return Err(self.invalid(
                        format!("{sec}.sasl_oauthbearer_client_secret"),
                        url.line,
                        "is not set (or empty) but the token endpoint needs it; set \
                         sasl_oauthbearer_client_secret: ${OAUTH_CLIENT_SECRET} (or \
                         ${file:/path/to/secret}) and provide that secret"
                            .to_owned(),
                    ));
                };
                let allow_http = allow_http.is_some_and(|b| b.value);
                if allow_http {
                    self.warnings.push(format!(
                        "{sec}: sasl_oauthbearer_allow_http is true, so the client secret and the \
                         tokens may cross the network in clear to an http token endpoint; use it \
                         only for a local test"
                    ));
                }
                // Without its own CA file, the system trust store: an identity provider is
                // usually public even when the brokers' CA is private.
                let ca = ca_location
                    .map(|ca| {
                        self.readable_file(&format!("{sec}.sasl_oauthbearer_ca_location"), &ca)
                    })
                    .transpose()?;
                let client_id = client_id.value.trim().to_owned();
                let settings = ClientCredentials {
                    token_endpoint_url: url.value.trim().to_owned(),
                    client_id: client_id.clone(),
                    client_secret: client_secret.value,
                    scope: scope
                        .map(|s| s.value.trim().to_owned())
                        .filter(|s| !s.is_empty()),
                    ca_location: ca,
                    allow_http,
                    timeout: TOKEN_REQUEST_TIMEOUT,
                };
                // The URL rules are the client's; check them now, against the key's line.
                let source = TokenSource::ClientCredentials(settings);
                let probe = OAuthBearerConfig {
                    source: source.clone(),
                    extensions: extensions.clone(),
                };
                if let Err(e) = kafka_client::sasl::OAuthBearer::new(probe) {
                    return Err(self.invalid(
                        format!("{sec}.sasl_oauthbearer_token_endpoint_url"),
                        url.line,
                        e.to_string(),
                    ));
                }
                (source, client_id)
            }
        };
        Ok(SaslSettings {
            mechanism: SaslMechanismName::OAuthBearer,
            username,
            credentials: SaslCredentials::OAuth(OAuthBearerConfig { source, extensions }),
        })
    }

    fn oauth_extensions(
        &self,
        sec: &str,
        extensions: Option<&BTreeMap<String, ConfigString>>,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let Some(extensions) = extensions else {
            return Ok(Vec::new());
        };
        let list: Vec<(String, String)> = extensions
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect();
        // The client's RFC 7628 rules, reported against the key.
        let probe = OAuthBearerConfig {
            source: TokenSource::File(PathBuf::from("/")),
            extensions: list.clone(),
        };
        if let Err(e) = kafka_client::sasl::OAuthBearer::new(probe) {
            let line = extensions.values().next().and_then(|v| v.line);
            return Err(self.invalid(
                format!("{sec}.sasl_oauthbearer_extensions"),
                line,
                e.to_string(),
            ));
        }
        Ok(list)
    }
}

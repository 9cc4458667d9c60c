//! SASL OAUTHBEARER (RFC 7628, KIP-255/KIP-768): presents an OAuth 2.0 bearer token, from the
//! client-credentials grant or from a file kept current by someone else, and explains a
//! broker's refusal in terms of the token it refused.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{SaslError, SaslExchange, SaslMechanism, SaslStep, shorten};
use crate::address::BrokerAddress;

mod endpoint;
mod refresh;
mod token;

pub use endpoint::ClientCredentials;
pub use token::BearerToken;

use endpoint::TokenEndpoint;
use refresh::{Source, Tokens};

const NAME: &str = "OAUTHBEARER";
/// RFC 7628's separator between the parts of a message.
const SEP: char = '\u{1}';

/// Where the mechanism gets its tokens.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// Ask the identity provider's token endpoint (client-credentials grant).
    ClientCredentials(ClientCredentials),
    /// Read the token from a file, re-read when it changes (`sasl_oauthbearer_token_file`).
    File(PathBuf),
}

/// The OAUTHBEARER settings.
#[derive(Debug, Clone)]
pub struct OAuthBearerConfig {
    /// Where tokens come from.
    pub source: TokenSource,
    /// SASL extensions sent with the token (`sasl_oauthbearer_extensions`), e.g. a Confluent
    /// Cloud `logicalCluster`. Keys are letters only; `auth` is reserved.
    pub extensions: Vec<(String, String)>,
}

/// The OAUTHBEARER mechanism: one token cache shared by every connection.
pub struct OAuthBearer {
    tokens: Arc<Tokens>,
    extensions: Vec<(String, String)>,
    principal: Option<String>,
}

impl fmt::Debug for OAuthBearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthBearer")
            .field("principal", &self.principal)
            .field("extensions", &self.extensions)
            .finish_non_exhaustive()
    }
}

impl OAuthBearer {
    /// Checks the settings. No token is fetched until [`SaslMechanism::prepare`].
    pub fn new(config: OAuthBearerConfig) -> Result<Self, SaslError> {
        check_extensions(&config.extensions)?;
        let (source, principal) = match config.source {
            TokenSource::ClientCredentials(c) => {
                let endpoint = TokenEndpoint::new(c).map_err(SaslError::Setup)?;
                let principal = Some(endpoint.client_id().to_owned());
                (Source::Endpoint(Box::new(endpoint)), principal)
            }
            TokenSource::File(path) => {
                if !path.is_absolute() {
                    return Err(SaslError::Setup(format!(
                        "sasl_oauthbearer_token_file {} is not an absolute path; write the full path \
                         of the mounted token",
                        path.display()
                    )));
                }
                (Source::File(path), None)
            }
        };
        Ok(Self {
            tokens: Arc::new(Tokens::new(source)),
            extensions: config.extensions,
            principal,
        })
    }
}

/// RFC 7628 §3.1: `key = 1*(ALPHA)`, `value = *(VCHAR / SP / HTAB / CR / LF)`; Kafka also
/// reserves `auth`, which carries the token.
fn check_extensions(extensions: &[(String, String)]) -> Result<(), SaslError> {
    for (key, value) in extensions {
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(SaslError::Setup(format!(
                "sasl_oauthbearer_extensions key `{}` is not allowed: keys are ASCII letters only \
                 (RFC 7628)",
                shorten(key, 64)
            )));
        }
        if key == "auth" {
            return Err(SaslError::Setup(
                "sasl_oauthbearer_extensions may not set `auth`: it carries the token".to_owned(),
            ));
        }
        if !value
            .chars()
            .all(|c| matches!(c, '\u{21}'..='\u{7e}' | ' ' | '\t' | '\r' | '\n'))
        {
            return Err(SaslError::Setup(format!(
                "sasl_oauthbearer_extensions value of `{key}` holds a character an extension value \
                 cannot carry (printable ASCII, space and tab only)"
            )));
        }
    }
    Ok(())
}

impl SaslMechanism for OAuthBearer {
    fn name(&self) -> &str {
        NAME
    }

    fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    fn start(&self, _broker: &BrokerAddress) -> Result<Box<dyn SaslExchange>, SaslError> {
        let token = self.tokens.current().map_err(SaslError::Credentials)?;
        Ok(Box::new(OAuthExchange {
            token: Some(token),
            extensions: self.extensions.clone(),
            sent: false,
        }))
    }

    fn prepare(&self) -> BoxFuture<'_, Result<(), SaslError>> {
        Box::pin(async move { self.tokens.prepare().await.map_err(SaslError::Credentials) })
    }
}

/// One OAUTHBEARER exchange: the client's message, then the broker's empty success or its
/// error document.
struct OAuthExchange {
    token: Option<BearerToken>,
    extensions: Vec<(String, String)>,
    sent: bool,
}

impl SaslExchange for OAuthExchange {
    fn step(&mut self, server_message: Option<&[u8]>) -> Result<SaslStep, SaslError> {
        match (server_message, self.sent) {
            (None, false) => {
                let token = self
                    .token
                    .as_ref()
                    .ok_or(SaslError::OutOfSequence("OAUTHBEARER started twice"))?;
                self.sent = true;
                Ok(SaslStep::Respond(client_first_message(
                    token.value.expose(),
                    &self.extensions,
                )))
            }
            (Some([]), true) => {
                self.token = None;
                Ok(SaslStep::Done)
            }
            (Some(error), true) => {
                let token = self.token.take();
                Err(SaslError::ServerRejected(explain_refusal(
                    error,
                    token.as_ref(),
                )))
            }
            (Some(_), false) => Err(SaslError::OutOfSequence(
                "OAUTHBEARER got a broker message before sending its own",
            )),
            (None, true) => Err(SaslError::OutOfSequence(
                "OAUTHBEARER stepped without the broker's answer",
            )),
        }
    }
}

/// `n,,^Aauth=Bearer TOKEN^A[key=value^A]...^A`, as Kafka's client writes it.
fn client_first_message(token: &str, extensions: &[(String, String)]) -> Vec<u8> {
    let mut message = format!("n,,{SEP}auth=Bearer {token}{SEP}");
    for (key, value) in extensions {
        message.push_str(key);
        message.push('=');
        message.push_str(value);
        message.push(SEP);
    }
    message.push(SEP);
    message.into_bytes()
}

/// RFC 7628 §3.2.2's error document.
#[derive(Deserialize)]
struct ServerError {
    status: Option<String>,
    scope: Option<String>,
    #[serde(rename = "openid-configuration")]
    openid_configuration: Option<String>,
}

/// Turns the broker's error document into what to fix, with what we know of the token it
/// refused (never the token itself).
fn explain_refusal(message: &[u8], token: Option<&BearerToken>) -> String {
    let parsed: Option<ServerError> = serde_json::from_slice(message).ok();
    let Some(error) = parsed else {
        return format!(
            "the broker refused the OAuth token with a message that is not an RFC 7628 error \
             document: {}",
            shorten(&String::from_utf8_lossy(message), 200)
        );
    };
    let status = error.status.unwrap_or_default();
    let about = token
        .map(|t| format!(" The token: {}.", t.describe(SystemTime::now())))
        .unwrap_or_default();
    let discovery = error
        .openid_configuration
        .map(|u| format!(" The broker trusts the provider at {}.", shorten(&u, 200)))
        .unwrap_or_default();
    let explanation = match status.as_str() {
        "invalid_token" => "the broker did not accept the token (invalid_token): it is expired or \
                            not yet valid, signed by a key the broker does not trust (another \
                            identity provider or issuer), or issued for another audience than \
                            the broker expects (sasl.oauthbearer.expected.audience); compare the \
                            token below with the broker's OAuth settings"
            .to_owned(),
        "insufficient_scope" => format!(
            "the token lacks a scope the broker requires (insufficient_scope{}); ask for it with \
             sasl_oauthbearer_scope and allow it for this client at the identity provider",
            error
                .scope
                .as_deref()
                .map(|s| format!(", needs `{}`", shorten(s, 100)))
                .unwrap_or_default()
        ),
        "invalid_request" => "the broker found the OAUTHBEARER message malformed \
                              (invalid_request); check sasl_oauthbearer_extensions"
            .to_owned(),
        other => format!(
            "the broker refused the OAuth token with status `{}`",
            shorten(other, 64)
        ),
    };
    format!("{explanation}.{about}{discovery}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::tests::test_broker;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use std::time::{Duration, UNIX_EPOCH};

    fn token_file(dir: &std::path::Path, claims: &str) -> PathBuf {
        let token = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let path = dir.join("token");
        std::fs::write(&path, token).unwrap();
        path
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[tokio::test]
    async fn the_first_message_carries_the_token_and_extensions_as_kafka_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = token_file(
            dir.path(),
            &format!(r#"{{"sub":"kb","exp":{}}}"#, now() + 600),
        );
        let token = std::fs::read_to_string(&path).unwrap();
        let mechanism = OAuthBearer::new(OAuthBearerConfig {
            source: TokenSource::File(path),
            extensions: vec![("logicalCluster".into(), "lkc-1".into())],
        })
        .unwrap();
        // Before prepare there is no token, and starting says so.
        let e = mechanism.start(&test_broker()).err().unwrap();
        assert!(e.to_string().contains("no OAuth token"), "{e}");
        mechanism.prepare().await.unwrap();
        let mut exchange = mechanism.start(&test_broker()).unwrap();
        let SaslStep::Respond(first) = exchange.step(None).unwrap() else {
            panic!("OAUTHBEARER speaks first")
        };
        assert_eq!(
            first,
            format!("n,,\u{1}auth=Bearer {token}\u{1}logicalCluster=lkc-1\u{1}\u{1}").into_bytes()
        );
        assert_eq!(exchange.step(Some(b"")).unwrap(), SaslStep::Done);
        assert!(!format!("{mechanism:?}").contains(&token));
    }

    #[tokio::test]
    async fn refusals_are_explained_with_the_token_they_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = token_file(
            dir.path(),
            &format!(
                r#"{{"sub":"kb","aud":"other","scope":"read","exp":{}}}"#,
                now() + 600
            ),
        );
        let token = std::fs::read_to_string(&path).unwrap();
        let mechanism = OAuthBearer::new(OAuthBearerConfig {
            source: TokenSource::File(path),
            extensions: vec![],
        })
        .unwrap();
        mechanism.prepare().await.unwrap();
        let refuse = |doc: &[u8]| {
            let mut exchange = mechanism.start(&test_broker()).unwrap();
            exchange.step(None).unwrap();
            exchange.step(Some(doc)).unwrap_err().to_string()
        };
        let e = refuse(br#"{"status":"invalid_token"}"#);
        assert!(
            e.contains("invalid_token") && e.contains("audience other") && e.contains("expires in"),
            "{e}"
        );
        assert!(!e.contains(&token));
        let e = refuse(br#"{"status":"insufficient_scope","scope":"kafka"}"#);
        assert!(
            e.contains("needs `kafka`") && e.contains("sasl_oauthbearer_scope"),
            "{e}"
        );
        let e = refuse(b"\x07garbage");
        assert!(
            e.contains("not an RFC 7628 error document: ?garbage"),
            "{e}"
        );
    }

    #[test]
    fn extensions_follow_rfc_7628() {
        let file = TokenSource::File(PathBuf::from("/run/token"));
        let with = |key: &str, value: &str| {
            OAuthBearer::new(OAuthBearerConfig {
                source: file.clone(),
                extensions: vec![(key.into(), value.into())],
            })
        };
        assert!(with("traceId", "abc 123").is_ok());
        for (key, value) in [
            ("auth", "x"),
            ("bad-key", "x"),
            ("", "x"),
            ("ok", "a\u{1}b"),
        ] {
            assert!(with(key, value).is_err(), "{key}={value:?}");
        }
        let relative = OAuthBearer::new(OAuthBearerConfig {
            source: TokenSource::File(PathBuf::from("token")),
            extensions: vec![],
        });
        assert!(relative.unwrap_err().to_string().contains("absolute"));
        let _ = Duration::ZERO;
    }
}

//! The OAuth 2.0 client-credentials grant (RFC 6749 §4.4) against the identity provider's
//! token endpoint, over TLS verified like the broker connection, with errors that say which
//! setting to change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::token::{BearerToken, MAX_TOKEN_BYTES};
use crate::sasl::shorten;
use crate::secret::Secret;
use crate::tls::files::{RootsFor, load_roots};

/// A token endpoint's answer is a small JSON document; more is refused before it is read.
const MAX_RESPONSE_BYTES: usize = MAX_TOKEN_BYTES + 16 * 1024;

/// How to reach the token endpoint and prove who we are.
#[derive(Clone)]
pub struct ClientCredentials {
    /// `sasl_oauthbearer_token_endpoint_url`.
    pub token_endpoint_url: String,
    /// `sasl_oauthbearer_client_id`.
    pub client_id: String,
    /// `sasl_oauthbearer_client_secret`.
    pub client_secret: Secret,
    /// `sasl_oauthbearer_scope`, space separated; none asks for the client's default scope.
    pub scope: Option<String>,
    /// PEM CA file for the endpoint's certificate; `None` uses the system trust store.
    pub ca_location: Option<PathBuf>,
    /// Allows an `http://` endpoint. Only for tests on loopback: the client secret and the
    /// token would travel in clear.
    pub allow_http: bool,
    /// How long one token request may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_endpoint_url", &self.token_endpoint_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scope", &self.scope)
            .field("ca_location", &self.ca_location)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// A token endpoint ready to be asked: the URL checked, the HTTP client built.
pub(crate) struct TokenEndpoint {
    settings: ClientCredentials,
    url: reqwest::Url,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenEndpoint {
    /// Checks the URL and builds the HTTP client. Fails on configuration mistakes, before any
    /// request: a URL that is not https (unless allowed), carries credentials, or does not
    /// parse, and an unreadable CA file.
    pub(crate) fn new(settings: ClientCredentials) -> Result<Self, String> {
        let url = reqwest::Url::parse(settings.token_endpoint_url.trim()).map_err(|e| {
            format!(
                "sasl_oauthbearer_token_endpoint_url `{}` is not a URL ({e}); write it as \
                 https://idp.example.com/oauth2/token",
                shorten(&settings.token_endpoint_url, 200)
            )
        })?;
        match url.scheme() {
            "https" => {}
            "http" if settings.allow_http && is_loopback(&url) => {}
            "http" if settings.allow_http => {
                return Err(format!(
                    "sasl_oauthbearer_token_endpoint_url {url} uses http to another machine; \
                     sasl_oauthbearer_allow_http only allows a token endpoint on this machine \
                     (localhost, 127.0.0.1, ::1), for local tests: use the provider's https \
                     endpoint"
                ));
            }
            "http" => {
                return Err(format!(
                    "sasl_oauthbearer_token_endpoint_url {url} uses http, which would send the client \
                     secret and the token in clear; use the provider's https endpoint (set \
                     sasl_oauthbearer_allow_http: true only for a local test)"
                ));
            }
            other => {
                return Err(format!(
                    "sasl_oauthbearer_token_endpoint_url uses the scheme `{}`; it must be https",
                    shorten(other, 32)
                ));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "sasl_oauthbearer_token_endpoint_url carries credentials in the URL, where they would \
                 be logged; remove them and set sasl_oauthbearer_client_id and \
                 sasl_oauthbearer_client_secret"
                    .to_owned(),
            );
        }
        if settings.client_id.is_empty() {
            return Err(
                "sasl_oauthbearer_client_id is empty; set it to the client id the identity \
                        provider registered for kafka-backup"
                    .to_owned(),
            );
        }
        if settings.client_secret.is_empty() {
            return Err(
                "sasl_oauthbearer_client_secret is empty; set it (is its environment variable \
                        or secret file set?)"
                    .to_owned(),
            );
        }
        let mut warnings = Vec::new();
        let (roots, _) = load_roots(
            settings.ca_location.as_deref(),
            RootsFor::TOKEN_ENDPOINT,
            &mut warnings,
        )
        .map_err(|e| format!("the token endpoint's trust roots: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS for the token endpoint: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(!settings.allow_http)
            // A redirect could take the client secret to another host.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| format!("could not set up the HTTP client for the token endpoint: {e}"))?;
        Ok(Self {
            settings,
            url,
            http,
        })
    }

    /// The client id, which is also the identity in reports until a token names its subject.
    pub(crate) fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    /// Asks for a new token.
    pub(crate) async fn fetch(&self) -> Result<BearerToken, String> {
        let s = &self.settings;
        // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic authentication.
        let encode =
            |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        let basic = Secret::new(format!(
            "Basic {}",
            STANDARD.encode(format!(
                "{}:{}",
                encode(&s.client_id),
                encode(s.client_secret.expose())
            ))
        ));
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if let Some(scope) = s.scope.as_deref().filter(|s| !s.trim().is_empty()) {
                form.append_pair("scope", scope.trim());
            }
            form.finish()
        };
        let endpoint = self.url.as_str();
        let response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::AUTHORIZATION, basic.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        drop(basic);
        let status = response.status();
        let body = read_bounded(response)
            .await
            .map_err(|e| format!("reading the answer of the token endpoint {endpoint}: {e}"))?;
        if !status.is_success() {
            return Err(self.explain_refusal(status, &body));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            format!(
                "the token endpoint {endpoint} answered HTTP {status} with something that is not a \
                 token response ({e}); check that sasl_oauthbearer_token_endpoint_url is the token \
                 endpoint, not the issuer or the authorization endpoint"
            )
        })?;
        let token = parsed.access_token.ok_or_else(|| {
            format!("the token endpoint {endpoint} answered without an access_token")
        })?;
        if let Some(kind) = &parsed.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(format!(
                "the token endpoint {endpoint} issued a `{}` token; Kafka's OAUTHBEARER needs a Bearer token",
                shorten(kind, 32)
            ));
        }
        // Some providers send expires_in as a string.
        let expires_in = match parsed.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        BearerToken::new(
            token,
            expires_in,
            SystemTime::now(),
            &format!("the token endpoint {endpoint}"),
        )
    }

    fn transport_error(&self, e: &reqwest::Error) -> String {
        // The chain holds the useful part (connection refused, unknown issuer).
        let mut chain = String::new();
        let mut source: Option<&dyn std::error::Error> = Some(e);
        while let Some(err) = source {
            if !chain.is_empty() {
                chain.push_str(": ");
            }
            chain.push_str(&err.to_string());
            source = err.source();
        }
        let chain = shorten(&chain, 400);
        let endpoint = self.url.as_str();
        let hint = if chain.contains("certificate") || chain.contains("UnknownIssuer") {
            "the endpoint's TLS certificate was not trusted: set sasl_oauthbearer_ca_location to \
             the PEM file of the CA that issued it, or check that the host name in the URL is one \
             the certificate names"
        } else if e.is_timeout() {
            "the endpoint did not answer in time: check the URL and network access"
        } else if e.is_connect() {
            "could not connect: check sasl_oauthbearer_token_endpoint_url and that this machine \
             can reach the identity provider"
        } else {
            "check sasl_oauthbearer_token_endpoint_url"
        };
        format!("could not get a token from {endpoint} ({chain}); {hint}")
    }

    fn explain_refusal(&self, status: reqwest::StatusCode, body: &[u8]) -> String {
        let endpoint = self.url.as_str();
        let parsed: Option<ErrorResponse> = serde_json::from_slice(body).ok();
        let code = parsed
            .as_ref()
            .and_then(|p| p.error.clone())
            .unwrap_or_default();
        // Providers write what they like here; one that echoed the request must not put our
        // secret in a message.
        let description = parsed
            .as_ref()
            .and_then(|p| p.error_description.as_deref())
            .map(|d| d.replace(self.settings.client_secret.expose(), crate::secret::MASK))
            .map(|d| format!(": {}", shorten(&d, 200)))
            .unwrap_or_default();
        let s = &self.settings;
        let fix = match code.as_str() {
            "invalid_client" => format!(
                "the identity provider did not accept client `{}` with the configured secret; check \
                 sasl_oauthbearer_client_id and sasl_oauthbearer_client_secret",
                shorten(&s.client_id, 100)
            ),
            "invalid_scope" => format!(
                "the client may not ask for scope `{}`; set sasl_oauthbearer_scope to a scope the \
                 client is registered for",
                shorten(s.scope.as_deref().unwrap_or(""), 100)
            ),
            "unauthorized_client" => "the client may not use the client-credentials grant; enable \
                                      it for this client at the identity provider"
                .to_owned(),
            "invalid_target" => {
                "the requested resource or audience is not allowed for this client".to_owned()
            }
            "unsupported_grant_type" => "the provider does not offer the client-credentials grant \
                                         at this endpoint"
                .to_owned(),
            _ if status == reqwest::StatusCode::NOT_FOUND => {
                "nothing answers at this URL; check sasl_oauthbearer_token_endpoint_url (the \
                 provider's discovery document names its token_endpoint)"
                    .to_owned()
            }
            _ => "check the client's registration at the identity provider".to_owned(),
        };
        let named = if code.is_empty() {
            String::new()
        } else {
            format!(" {}", shorten(&code, 64))
        };
        format!(
            "the token endpoint {endpoint} refused with HTTP {status}{named}{description}: {fix}"
        )
    }
}

/// Whether the URL's host is this machine.
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(format!("it announced more than {MAX_RESPONSE_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("it sent more than {MAX_RESPONSE_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> ClientCredentials {
        ClientCredentials {
            token_endpoint_url: url.to_owned(),
            client_id: "kb".into(),
            client_secret: Secret::new("s3cr3t-value"),
            scope: None,
            ca_location: None,
            allow_http: false,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn only_https_endpoints_without_credentials_in_the_url() {
        let e = TokenEndpoint::new(settings("http://idp.test/token"))
            .err()
            .unwrap();
        assert!(
            e.contains("uses http") && e.contains("sasl_oauthbearer_allow_http"),
            "{e}"
        );
        let mut allowed = settings("http://127.0.0.1:1/token");
        allowed.allow_http = true;
        assert!(TokenEndpoint::new(allowed).is_ok());
        let mut remote = settings("http://idp.example.com/token");
        remote.allow_http = true;
        let e = TokenEndpoint::new(remote).err().unwrap();
        assert!(e.contains("uses http to another machine"), "{e}");
        let e = TokenEndpoint::new(settings("https://u:p@idp.test/token"))
            .err()
            .unwrap();
        assert!(e.contains("credentials in the URL"), "{e}");
        let e = TokenEndpoint::new(settings("ftp://idp.test/token"))
            .err()
            .unwrap();
        assert!(e.contains("must be https"), "{e}");
        let e = TokenEndpoint::new(settings("not a url")).err().unwrap();
        assert!(e.contains("is not a URL"), "{e}");
        let mut no_secret = settings("https://idp.test/token");
        no_secret.client_secret = Secret::new("");
        let e = TokenEndpoint::new(no_secret).err().unwrap();
        assert!(e.contains("client_secret is empty"), "{e}");
        let debug = format!("{:?}", settings("https://idp.test/token"));
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
    }

    #[test]
    fn refusals_name_the_setting_to_fix() {
        let endpoint = TokenEndpoint::new(settings("https://idp.test/token")).unwrap();
        let e = endpoint.explain_refusal(
            reqwest::StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
        );
        assert!(
            e.contains("HTTP 401 Unauthorized invalid_client: client authentication failed")
                && e.contains("sasl_oauthbearer_client_secret"),
            "{e}"
        );
        let e = endpoint.explain_refusal(
            reqwest::StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_scope"}"#,
        );
        assert!(e.contains("sasl_oauthbearer_scope"), "{e}");
        let e = endpoint.explain_refusal(reqwest::StatusCode::NOT_FOUND, b"<html>");
        assert!(e.contains("discovery document"), "{e}");
        assert!(!e.contains("s3cr3t"));
        let e = endpoint.explain_refusal(
            reqwest::StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client","error_description":"bad secret s3cr3t-value"}"#,
        );
        assert!(e.contains("bad secret ***") && !e.contains("s3cr3t"), "{e}");
    }
}

//! The `aws-kms` provider, on the official AWS SDK (`aws-sdk-kms`, `aws-config`).
//!
//! A backup run calls `GenerateDataKey` (KeySpec `AES_256`) once; KMS returns the data key
//! and its ciphertext blob, which is the wrapped key. Restore calls `Decrypt`. Both carry the
//! encryption context `{"kafka-backup:backup-id": …, "kafka-backup:run-id": …}`, which KMS
//! binds into the ciphertext: a wrapped key moved to another backup or run does not decrypt.
//!
//! The backup identity needs only `kms:GenerateDataKey`; restore, validate and describe need
//! `kms:Decrypt`. Credentials are the configured key pair (and session token) when given,
//! else the AWS default chain (environment, profile, web identity, container and instance
//! roles). The client is built on first use, so loading a configuration never touches the
//! network.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use backup_format::crypto::{DataKey, ProviderKind, WrappedKey};
use kafka_client::Secret;
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use super::{KeyContext, KeyError, KeyFuture, KeyMatch, UnwrapKeys, WrapKeys};

/// Encryption context key of the backup id.
pub const CONTEXT_BACKUP_ID: &str = "kafka-backup:backup-id";
/// Encryption context key of the run id.
pub const CONTEXT_RUN_ID: &str = "kafka-backup:run-id";

const SERVICE: &str = "AWS KMS";
/// The AWS SDK's switch for logging sensitive bodies (data keys) at trace level.
const SENSITIVE_BODIES_VAR: &str = "LOG_SENSITIVE_BODIES";

/// How to reach KMS and which key to use.
#[derive(Clone, PartialEq, Eq)]
pub struct KmsSettings {
    /// Key id, key ARN, alias name (`alias/…`) or alias ARN. Required to back up; for a
    /// restore it restricts which key may decrypt (KMS otherwise takes the key from the
    /// ciphertext).
    pub key_id: Option<String>,
    /// AWS region; else the key ARN's region, else the AWS default chain (`AWS_REGION`).
    pub region: Option<String>,
    /// A KMS-compatible endpoint (`http://127.0.0.1:PORT` for moto); else AWS's.
    pub endpoint: Option<String>,
    /// Static credentials; else the AWS default chain.
    pub credentials: Option<KmsCredentials>,
}

impl fmt::Debug for KmsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsSettings")
            .field("key_id", &self.key_id)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl KmsSettings {
    /// The region requests go to: the configured one, else the key ARN's.
    pub fn effective_region(&self) -> Option<String> {
        self.region
            .clone()
            .or_else(|| self.key_id.as_deref().and_then(arn_region))
    }

    /// Where KMS is, for messages.
    pub fn endpoint_text(&self) -> String {
        match (&self.endpoint, self.effective_region()) {
            (Some(e), _) => e.clone(),
            (None, Some(r)) => format!("https://kms.{r}.amazonaws.com"),
            (None, None) => "the AWS KMS endpoint of the default region".to_owned(),
        }
    }
}

/// A static AWS key pair. `Debug` shows the access key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct KmsCredentials {
    /// `AKIA…` / `ASIA…`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// For temporary credentials.
    pub session_token: Option<Secret>,
}

impl fmt::Debug for KmsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

/// The region of a KMS ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID` or `…:alias/NAME`).
fn arn_region(id: &str) -> Option<String> {
    let mut parts = id.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    let _partition = parts.next()?;
    (parts.next() == Some("kms")).then_some(())?;
    parts
        .next()
        .filter(|r| !r.is_empty())
        .map(ToOwned::to_owned)
}

/// The key's UUID when `id` is a key id or key ARN (not an alias).
fn key_uuid(id: &str) -> Option<&str> {
    let tail = match id.rsplit_once(":key/") {
        Some((_, tail)) => tail,
        None if !id.contains(':') && !id.starts_with("alias/") => id,
        None => return None,
    };
    (!tail.is_empty()).then_some(tail)
}

/// One KMS client per provider entry, built on first use.
pub(crate) struct Kms {
    settings: KmsSettings,
    client: OnceCell<aws_sdk_kms::Client>,
}

impl fmt::Debug for Kms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kms")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Kms {
    pub(crate) fn new(settings: KmsSettings) -> Self {
        Self {
            settings,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&aws_sdk_kms::Client, KeyError> {
        // The SDK redacts GenerateDataKey and Decrypt answers from its trace logs unless this
        // variable says otherwise: then it would log every data key.
        if std::env::var(SENSITIVE_BODIES_VAR).is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err(KeyError::configuration(format!(
                "{SENSITIVE_BODIES_VAR}=true is set, which makes the AWS SDK log the data keys \
                 KMS returns; unset it"
            )));
        }
        Ok(self
            .client
            .get_or_init(|| async {
                let s = &self.settings;
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_attempt_timeout(Duration::from_secs(30))
                            .operation_timeout(Duration::from_secs(90))
                            .build(),
                    )
                    .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3));
                if let Some(region) = s.effective_region() {
                    loader = loader.region(aws_config::Region::new(region));
                }
                if let Some(endpoint) = &s.endpoint {
                    loader = loader.endpoint_url(endpoint.clone());
                }
                if let Some(c) = &s.credentials {
                    loader = loader.credentials_provider(aws_sdk_kms::config::Credentials::new(
                        c.access_key_id.clone(),
                        c.secret_access_key.expose().to_owned(),
                        c.session_token.as_ref().map(|t| t.expose().to_owned()),
                        None,
                        "kafka-backup configuration",
                    ));
                }
                aws_sdk_kms::Client::new(&loader.load().await)
            })
            .await)
    }

    fn context(ctx: &KeyContext) -> HashMap<String, String> {
        HashMap::from([
            (CONTEXT_BACKUP_ID.to_owned(), ctx.backup_id.clone()),
            (CONTEXT_RUN_ID.to_owned(), ctx.run_id.clone()),
        ])
    }

    async fn generate(&self, ctx: &KeyContext) -> Result<(DataKey, WrappedKey), KeyError> {
        let Some(key_id) = self.settings.key_id.clone() else {
            return Err(KeyError::configuration(
                "aws-kms needs kms_key_id to back up: set backup.encryption.kms_key_id to the key \
                 id, ARN or alias (alias/NAME)",
            ));
        };
        let out = self
            .client()
            .await?
            .generate_data_key()
            .key_id(&key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(Self::context(ctx)))
            .send()
            .await
            .map_err(|e| self.error(e, "kms:GenerateDataKey", &key_id, None))?;
        let plaintext = Zeroizing::new(
            out.plaintext
                .ok_or_else(|| KeyError::internal("KMS GenerateDataKey returned no plaintext"))?
                .into_inner(),
        );
        let data_key = DataKey::from_slice(&plaintext)
            .map_err(|e| KeyError::internal(format!("KMS GenerateDataKey: {e}")))?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| KeyError::internal("KMS GenerateDataKey returned no ciphertext"))?
            .into_inner();
        let arn = out.key_id.unwrap_or(key_id);
        Ok((
            data_key,
            WrappedKey {
                provider: ProviderKind::AwsKms,
                key_ids: vec![arn],
                blob,
            },
        ))
    }

    /// The permission probe: tries `kms:GenerateDataKey` (a throwaway key, context
    /// `_kb-permission-probe`), then `kms:Decrypt` of that key or, when generating was refused,
    /// of `real` (a run's wrapped key and its context). Each result is `Ok` when allowed; the
    /// data keys are dropped at once.
    pub(crate) async fn probe(
        &self,
        real: Option<(&WrappedKey, &KeyContext)>,
    ) -> (Result<(), KeyError>, Result<(), KeyError>) {
        let ctx = KeyContext {
            backup_id: "_kb-permission-probe".to_owned(),
            run_id: uuid::Uuid::new_v4().simple().to_string(),
        };
        let generated = self.generate(&ctx).await;
        let decrypted = match (&generated, real) {
            (Ok((_, wrapped)), _) => self.decrypt(wrapped, &ctx).await.map(|_| ()),
            // Generating was refused: decrypt a run's real wrapped key instead.
            (Err(_), Some((wrapped, run))) => self.decrypt(wrapped, run).await.map(|_| ()),
            (Err(_), None) => Err(KeyError::configuration(
                "no data key to try kms:Decrypt on: this identity may not generate one, and the \
                 backup has no KMS-encrypted run yet; run the probe again after the first \
                 encrypted backup",
            )),
        };
        (generated.map(|_| ()), decrypted)
    }

    async fn decrypt(&self, wrapped: &WrappedKey, ctx: &KeyContext) -> Result<DataKey, KeyError> {
        let shown = self
            .settings
            .key_id
            .clone()
            .or_else(|| wrapped.key_ids.first().cloned())
            .unwrap_or_else(|| "the key named in the wrapped key".to_owned());
        let out = self
            .client()
            .await?
            .decrypt()
            .ciphertext_blob(Blob::new(wrapped.blob.clone()))
            .set_encryption_context(Some(Self::context(ctx)))
            .set_key_id(self.settings.key_id.clone())
            .send()
            .await
            .map_err(|e| self.error(e, "kms:Decrypt", &shown, Some(wrapped)))?;
        let plaintext = Zeroizing::new(
            out.plaintext
                .ok_or_else(|| KeyError::internal("KMS Decrypt returned no plaintext"))?
                .into_inner(),
        );
        DataKey::from_slice(&plaintext).map_err(|_| KeyError::InvalidWrappedKey {
            provider: ProviderKind::AwsKms,
            key_ids: wrapped.key_ids.clone(),
            reason: format!(
                "KMS decrypted it to {} bytes, not a 32-byte data key",
                plaintext.len()
            ),
        })
    }

    /// Maps an SDK failure to what the operator can do about it.
    fn error<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
        action: &'static str,
        key: &str,
        wrapped: Option<&WrappedKey>,
    ) -> KeyError {
        let detail = |code: Option<&str>, message: Option<&str>| match (code, message) {
            (Some(c), Some(m)) => format!("{c}: {}", one_line(m)),
            (Some(c), None) => c.to_owned(),
            (None, Some(m)) => one_line(m),
            (None, None) => "no error code".to_owned(),
        };
        match &err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                // A KMS-compatible service may answer a denial with an IAM-style XML body
                // (moto does, with HTTP 403): read its code and message from there.
                let body = service.raw().body().bytes().unwrap_or_default();
                let code = e
                    .code()
                    .map(ToOwned::to_owned)
                    .or_else(|| xml_element(body, "Code"));
                let message = e
                    .message()
                    .map(ToOwned::to_owned)
                    .or_else(|| xml_element(body, "Message"));
                let text = detail(code.as_deref(), message.as_deref());
                let code = match code.as_deref() {
                    None | Some("") if service.raw().status().as_u16() == 403 => "AccessDenied",
                    other => other.unwrap_or(""),
                };
                match code {
                    "AccessDeniedException" | "AccessDenied" => KeyError::AccessDenied {
                        service: SERVICE,
                        action,
                        key: key.to_owned(),
                        message: text,
                    },
                    "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "SignatureDoesNotMatch"
                    | "InvalidAccessKeyId"
                    | "IncompleteSignature"
                    | "InvalidClientTokenId"
                    | "ExpiredTokenException"
                    | "MissingAuthenticationToken" => KeyError::Unauthenticated {
                        service: SERVICE,
                        message: text,
                    },
                    "InvalidCiphertextException" => KeyError::InvalidWrappedKey {
                        provider: ProviderKind::AwsKms,
                        key_ids: wrapped.map(|w| w.key_ids.clone()).unwrap_or_default(),
                        reason: format!(
                            "KMS refused to decrypt it with this backup's encryption context \
                             (backup id and run id) ({text})"
                        ),
                    },
                    "IncorrectKeyException" => KeyError::NoMatchingKey {
                        provider: ProviderKind::AwsKms,
                        needed: wrapped.map(|w| w.key_ids.clone()).unwrap_or_default(),
                        configured: self.settings.key_id.iter().cloned().collect(),
                    },
                    "NotFoundException" => KeyError::configuration(format!(
                        "the KMS key {key} does not exist in {} ({text}); check kms_key_id and \
                         region",
                        self.settings.endpoint_text()
                    )),
                    "DisabledException" | "KMSInvalidStateException" => {
                        KeyError::configuration(format!(
                            "the KMS key {key} cannot be used now ({text}); enable it or cancel \
                             its pending deletion"
                        ))
                    }
                    "KeyUnavailableException"
                    | "DependencyTimeoutException"
                    | "KMSInternalException"
                    | "ThrottlingException"
                    | "LimitExceededException" => KeyError::Unreachable {
                        service: SERVICE,
                        endpoint: self.settings.endpoint_text(),
                        message: text,
                    },
                    _ => KeyError::internal(format!("KMS {action} on {key} failed: {text}")),
                }
            }
            SdkError::TimeoutError(_) => KeyError::Unreachable {
                service: SERVICE,
                endpoint: self.settings.endpoint_text(),
                message: "no answer in time".to_owned(),
            },
            SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => KeyError::Unreachable {
                service: SERVICE,
                endpoint: self.settings.endpoint_text(),
                message: error_chain(&err),
            },
            SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
                let text = error_chain(&err);
                if text.to_ascii_lowercase().contains("credential") {
                    KeyError::configuration(format!(
                        "no AWS credentials for KMS ({text}); set access_key_id and \
                         secret_access_key (from ${{VARIABLES}}), or provide credentials through \
                         the AWS default chain (environment, web identity, instance role)"
                    ))
                } else if text.to_ascii_lowercase().contains("region") {
                    KeyError::configuration(format!(
                        "no AWS region for KMS ({text}); set region (e.g. eu-west-1) or give \
                         kms_key_id as an ARN"
                    ))
                } else {
                    KeyError::configuration(format!("KMS {action} could not be sent: {text}"))
                }
            }
            _ => KeyError::internal(format!("KMS {action} on {key}: {}", error_chain(&err))),
        }
    }
}

/// The text of the first `<name>…</name>` in an XML error body (bounded, unescaped as is).
fn xml_element(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(&body[..body.len().min(8192)]).ok()?;
    let start = text.find(&format!("<{name}>"))? + name.len() + 2;
    let len = text[start..].find(&format!("</{name}>"))?;
    Some(one_line(&text[start..start + len])).filter(|t| !t.is_empty())
}

/// At most 1000 characters (cut with an ellipsis), whitespace runs (newlines included) as
/// one space.
fn one_line(text: &str) -> String {
    let mut t: String = text.chars().take(1000).collect();
    if t.len() < text.len() {
        t.push('…');
    }
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    one_line(&parts.join(": "))
}

impl WrapKeys for Kms {
    fn provider(&self) -> ProviderKind {
        ProviderKind::AwsKms
    }

    fn key_ids(&self) -> Vec<String> {
        self.settings.key_id.iter().cloned().collect()
    }

    fn new_run_key<'a>(&'a self, ctx: &'a KeyContext) -> KeyFuture<'a, (DataKey, WrappedKey)> {
        Box::pin(self.generate(ctx))
    }
}

impl UnwrapKeys for Kms {
    fn provider(&self) -> ProviderKind {
        ProviderKind::AwsKms
    }

    fn key_ids(&self) -> Vec<String> {
        match &self.settings.key_id {
            Some(id) => vec![id.clone()],
            None => vec!["any key these credentials may use".to_owned()],
        }
    }

    fn matches(&self, wrapped: &WrappedKey) -> KeyMatch {
        let Some(configured) = &self.settings.key_id else {
            return KeyMatch::Maybe(
                "KMS decides at restore time: no kms_key_id restricts the key".to_owned(),
            );
        };
        match key_uuid(configured) {
            // A key id or key ARN can be compared with the ARN stored in the wrapped key.
            Some(uuid) => {
                let same = wrapped
                    .key_ids
                    .iter()
                    .any(|id| id == configured || key_uuid(id) == Some(uuid));
                if same {
                    KeyMatch::Yes(configured.clone())
                } else {
                    KeyMatch::No
                }
            }
            // An alias can only be resolved by KMS.
            None => KeyMatch::Maybe(format!(
                "KMS decides at restore time whether {configured} names the key"
            )),
        }
    }

    fn unwrap_key<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        ctx: &'a KeyContext,
    ) -> KeyFuture<'a, DataKey> {
        Box::pin(self.decrypt(wrapped, ctx))
    }
}

/// The permission probe of `settings`' identity: whether `kms:GenerateDataKey` and then
/// `kms:Decrypt` are allowed (`Ok`), see `Kms::probe`.
pub async fn probe(
    settings: &KmsSettings,
    real: Option<(&WrappedKey, &KeyContext)>,
) -> (Result<(), KeyError>, Result<(), KeyError>) {
    Kms::new(settings.clone()).probe(real).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_give_their_region_and_key() {
        let arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(arn_region(arn).as_deref(), Some("eu-west-1"));
        assert_eq!(key_uuid(arn), Some("1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert_eq!(
            key_uuid("1234abcd-12ab-34cd-56ef-1234567890ab"),
            Some("1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        assert_eq!(key_uuid("alias/backup"), None);
        assert_eq!(key_uuid("arn:aws:kms:eu-west-1:1:alias/backup"), None);
        assert_eq!(arn_region("alias/backup"), None);
    }

    #[test]
    fn xml_error_bodies_give_their_code() {
        let body =
            b"<?xml version=\"1.0\"?><ErrorResponse><Errors><Error><Code>AccessDenied</Code>\
                     <Message>User: u is not authorized to perform: kms:Decrypt</Message></Error>\
                     </Errors></ErrorResponse>";
        assert_eq!(xml_element(body, "Code").as_deref(), Some("AccessDenied"));
        assert!(
            xml_element(body, "Message")
                .unwrap()
                .contains("kms:Decrypt")
        );
        assert_eq!(xml_element(b"{}", "Code"), None);
    }

    #[test]
    fn settings_never_print_secrets() {
        let s = KmsSettings {
            key_id: Some("alias/x".into()),
            region: None,
            endpoint: None,
            credentials: Some(KmsCredentials {
                access_key_id: "AKIAEXAMPLE".into(),
                secret_access_key: Secret::new("kms-secret-value-1234"),
                session_token: Some(Secret::new("kms-token-value-5678")),
            }),
        };
        let text = format!("{:?}", Kms::new(s));
        assert!(text.contains("AKIAEXAMPLE"), "{text}");
        assert!(!text.contains("kms-secret-value") && !text.contains("kms-token-value"));
    }

    #[test]
    fn a_configured_key_id_restricts_the_match() {
        let arn = "arn:aws:kms:us-east-1:123456789012:key/aaaa-bbbb";
        let wrapped = WrappedKey {
            provider: ProviderKind::AwsKms,
            key_ids: vec![arn.to_owned()],
            blob: vec![1],
        };
        let with = |id: Option<&str>| {
            Kms::new(KmsSettings {
                key_id: id.map(Into::into),
                region: None,
                endpoint: None,
                credentials: None,
            })
        };
        assert!(matches!(
            with(Some("aaaa-bbbb")).matches(&wrapped),
            KeyMatch::Yes(_)
        ));
        assert!(matches!(
            with(Some(arn)).matches(&wrapped),
            KeyMatch::Yes(_)
        ));
        assert!(matches!(with(Some("cccc")).matches(&wrapped), KeyMatch::No));
        assert!(matches!(
            with(Some("alias/x")).matches(&wrapped),
            KeyMatch::Maybe(_)
        ));
        assert!(matches!(with(None).matches(&wrapped), KeyMatch::Maybe(_)));
    }
}

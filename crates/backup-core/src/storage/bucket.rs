//! What an S3 bucket's own settings say about its protection (default encryption, public
//! access), asked with the configured credentials, for `check --security --storage`.
//!
//! `object_store` has no API for bucket sub-resources, so each question is one GET of a
//! sub-resource (`?encryption`, `?publicAccessBlock`, `?policyStatus`, `?acl`), signed with
//! SigV4 by `object_store`'s own signer and sent through its HTTP client (same TLS, proxy and
//! timeout settings as every other request). The answers are small XML documents; only the
//! few elements that matter are read, with a bound on the body.

use std::sync::Arc;

use http::Method;
use object_store::ClientOptions;
use object_store::aws::AwsAuthorizer;
use object_store::client::{HttpConnector, HttpRequest, HttpRequestBody, ReqwestConnector};
use serde::Serialize;

use super::object_lock::CredentialCell;

/// Largest answer read: these documents are a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;

/// How to reach the bucket's sub-resources.
#[derive(Debug, Clone)]
pub(crate) struct S3Control {
    /// Where object paths start (`https://BUCKET.s3.REGION.amazonaws.com`, or `ENDPOINT/BUCKET`).
    pub bucket_url: String,
    pub region: String,
    pub credentials: CredentialCell,
    pub client_options: ClientOptions,
}

/// One answer about the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "answer", content = "detail")]
pub enum Answer {
    /// The setting is there; what it says.
    Set(String),
    /// The service says it is not configured.
    NotSet,
    /// The identity may not ask; the permission it would need.
    Denied(String),
    /// Something else went wrong.
    Failed(String),
}

/// A bucket's Object Lock configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketLock {
    /// Object Lock is enabled on the bucket.
    pub enabled: bool,
    /// Its default retention, in days (years counted as 366 days), when it has one.
    pub default_days: Option<u32>,
}

/// What the bucket's settings say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketFacts {
    /// `GetBucketEncryption`: the default algorithm (`AES256`, `aws:kms`, ...).
    pub default_encryption: Answer,
    /// `GetPublicAccessBlock`: which of the four blocks are off (empty detail: all on).
    pub public_access_block: Answer,
    /// `GetBucketPolicyStatus`: `public` or `not public`.
    pub policy_status: Answer,
    /// `GetBucketAcl`: the public grantees, if any.
    pub acl: Answer,
}

/// The text of the first `<name>…</name>` in `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim())
}

impl S3Control {
    async fn get(&self, subresource: &str, permission: &str, absent: &[&str]) -> Answer {
        match self.fetch(subresource).await {
            Ok((200, body)) => Answer::Set(body),
            Ok((status, body)) => {
                let code = element(&body, "Code").unwrap_or("").to_owned();
                if absent.contains(&code.as_str()) {
                    Answer::NotSet
                } else if status == 403 || code == "AccessDenied" {
                    Answer::Denied(permission.to_owned())
                } else {
                    Answer::Failed(format!("HTTP {status} {code}"))
                }
            }
            Err(e) => Answer::Failed(e),
        }
    }

    async fn fetch(&self, subresource: &str) -> Result<(u16, String), String> {
        let url = format!("{}?{subresource}", self.bucket_url.trim_end_matches('/'));
        self.fetch_url(&url).await
    }

    /// GetObjectLockConfiguration: whether the bucket has Object Lock, and its default
    /// retention in days.
    pub(crate) async fn object_lock(&self) -> Result<BucketLock, String> {
        match self
            .get(
                "object-lock",
                "s3:GetBucketObjectLockConfiguration",
                &["ObjectLockConfigurationNotFoundError"],
            )
            .await
        {
            Answer::Set(xml) => {
                let number = |name: &str| element(&xml, name).and_then(|n| n.parse::<u32>().ok());
                let days = number("Days").filter(|&d| d > 0).or_else(|| {
                    number("Years")
                        .filter(|&y| y > 0)
                        .map(|y| y.saturating_mul(366))
                });
                Ok(BucketLock {
                    enabled: element(&xml, "ObjectLockEnabled") == Some("Enabled"),
                    default_days: days,
                })
            }
            Answer::NotSet => Ok(BucketLock::default()),
            Answer::Denied(permission) => Err(format!("access denied (needs {permission})")),
            Answer::Failed(why) => Err(why),
        }
    }

    async fn fetch_url(&self, url: &str) -> Result<(u16, String), String> {
        let mut request: HttpRequest = http::Request::builder()
            .method(Method::GET)
            .uri(url)
            .body(HttpRequestBody::empty())
            .map_err(|e| format!("cannot build the request: {e}"))?;
        if let Some(provider) = self.credentials.get() {
            let credential = provider
                .get_credential()
                .await
                .map_err(|e| format!("cannot obtain credentials: {e}"))?;
            AwsAuthorizer::new(&credential, "s3", &self.region)
                .try_authorize(&mut request, None)
                .map_err(|e| format!("cannot sign the request: {e}"))?;
        }
        let client = ReqwestConnector::default()
            .connect(&self.client_options)
            .map_err(|e| e.to_string())?;
        let response = client
            .execute(request)
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        let status = response.status().as_u16();
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err("the answer is far larger than expected; not read".to_owned());
        }
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| format!("the answer was cut off: {e}"))?;
        if body.len() > MAX_ANSWER {
            return Err(format!(
                "the answer is {} bytes, far more than expected",
                body.len()
            ));
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Asks the four questions.
    pub(crate) async fn facts(&self) -> BucketFacts {
        let default_encryption = match self
            .get(
                "encryption",
                "s3:GetEncryptionConfiguration",
                &["ServerSideEncryptionConfigurationNotFoundError"],
            )
            .await
        {
            Answer::Set(xml) => match element(&xml, "SSEAlgorithm") {
                Some(alg) => Answer::Set(alg.to_owned()),
                None => Answer::NotSet,
            },
            other => other,
        };
        let public_access_block = match self
            .get(
                "publicAccessBlock",
                "s3:GetBucketPublicAccessBlock",
                &["NoSuchPublicAccessBlockConfiguration"],
            )
            .await
        {
            Answer::Set(xml) => {
                let off: Vec<&str> = [
                    "BlockPublicAcls",
                    "IgnorePublicAcls",
                    "BlockPublicPolicy",
                    "RestrictPublicBuckets",
                ]
                .into_iter()
                .filter(|k| element(&xml, k) != Some("true"))
                .collect();
                Answer::Set(off.join(", "))
            }
            other => other,
        };
        let policy_status = match self
            .get(
                "policyStatus",
                "s3:GetBucketPolicyStatus",
                &["NoSuchBucketPolicy"],
            )
            .await
        {
            Answer::Set(xml) => Answer::Set(
                if element(&xml, "IsPublic") == Some("true") {
                    "public"
                } else {
                    "not public"
                }
                .to_owned(),
            ),
            other => other,
        };
        let acl = match self.get("acl", "s3:GetBucketAcl", &[]).await {
            Answer::Set(xml) => {
                let public: Vec<&str> = ["global/AllUsers", "global/AuthenticatedUsers"]
                    .into_iter()
                    .filter(|g| xml.contains(&format!("http://acs.amazonaws.com/groups/{g}")))
                    .collect();
                Answer::Set(public.join(", "))
            }
            other => other,
        };
        BucketFacts {
            default_encryption,
            public_access_block,
            policy_status,
            acl,
        }
    }
}

/// Shared so that a clone of the storage asks with the same credentials.
pub(crate) type SharedControl = Arc<S3Control>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_read_from_the_first_match_only() {
        let xml = "<A><SSEAlgorithm> aws:kms </SSEAlgorithm><SSEAlgorithm>x</SSEAlgorithm></A>";
        assert_eq!(element(xml, "SSEAlgorithm"), Some("aws:kms"));
        assert_eq!(element(xml, "Code"), None);
        assert_eq!(element("<Code>unclosed", "Code"), None);
    }
}

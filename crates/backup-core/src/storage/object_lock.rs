//! S3 Object Lock on every object write: an HTTP connector for `object_store`'s S3 client that
//! puts the retention on the `PutObject` request itself.
//!
//! `object_store` 0.14 cannot add arbitrary headers to one S3 request, and S3 requires every
//! `x-amz-*` header to be covered by the SigV4 signature. So this connector wraps
//! `object_store`'s own reqwest connector and, for each object `PUT` to the bucket (no query
//! string: not a multipart part, not a sub-resource such as `?retention`; no copy source), adds
//!
//! - `x-amz-object-lock-mode` and `x-amz-object-lock-retain-until-date` (the time of this
//!   attempt plus `retain_days`, rounded up to the second),
//! - `Content-MD5` of the body (S3 requires an integrity header on writes that set a
//!   retention; moto refuses them without one),
//!
//! then signs the request again with the same credentials, region and payload hash
//! (`x-amz-content-sha256`, computed by `object_store`), so the lock headers are part of the
//! signature. The retention is therefore set atomically with the write: there is no second
//! request that a crash could skip. Every retry passes through here again and is signed anew.
//!
//! Everything else (listing, reads, the credential providers' own requests to STS or the
//! instance metadata service, which use clients from the same connector) passes through
//! unchanged. A multipart upload (`POST ?uploads`) to the bucket is refused, since its parts
//! could not carry the retention; `Storage` never starts one.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use base64::Engine as _;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::{Method, Request};
use http_body_util::BodyExt as _;
use md5::{Digest as _, Md5};
use object_store::ClientOptions;
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody,
    HttpResponse, HttpService, ReqwestConnector,
};

use super::settings::ObjectLock;

const LOCK_MODE: HeaderName = HeaderName::from_static("x-amz-object-lock-mode");
const LOCK_UNTIL: HeaderName = HeaderName::from_static("x-amz-object-lock-retain-until-date");
const CONTENT_MD5: HeaderName = HeaderName::from_static("content-md5");
const CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");
const SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");
const COPY_SOURCE: HeaderName = HeaderName::from_static("x-amz-copy-source");

/// The credentials requests are signed with, available once the store is built (the store
/// builds its clients from the connector first).
pub(super) type CredentialCell = Arc<OnceLock<AwsCredentialProvider>>;

/// Builds clients that put `lock` on every object written to the bucket at `bucket_url`.
#[derive(Debug)]
pub(super) struct LockConnector {
    inner: ReqwestConnector,
    lock: ObjectLock,
    bucket_url: url::Url,
    region: String,
    credentials: CredentialCell,
}

impl LockConnector {
    /// `bucket_url` is where object paths start: `https://BUCKET.s3.REGION.amazonaws.com`, or
    /// `ENDPOINT/BUCKET` for path-style requests.
    pub(super) fn new(
        lock: ObjectLock,
        bucket_url: url::Url,
        region: String,
        credentials: CredentialCell,
    ) -> Self {
        Self {
            inner: ReqwestConnector::default(),
            lock,
            bucket_url,
            region,
            credentials,
        }
    }
}

impl HttpConnector for LockConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(LockService {
            inner: self.inner.connect(options)?,
            lock: self.lock,
            bucket_url: self.bucket_url.clone(),
            region: self.region.clone(),
            credentials: Arc::clone(&self.credentials),
        }))
    }
}

#[derive(Debug)]
struct LockService {
    inner: HttpClient,
    lock: ObjectLock,
    bucket_url: url::Url,
    region: String,
    credentials: CredentialCell,
}

/// What a request is, for this connector.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// `PUT` of an object of the bucket: gets the retention.
    ObjectPut,
    /// `POST ?uploads` on an object of the bucket: refused.
    MultipartStart,
    /// Anything else: passed through.
    Other,
}

/// Why a locked write could not be prepared. Shown in the storage error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct LockError(String);

fn fail(message: impl Into<String>) -> HttpError {
    HttpError::new(HttpErrorKind::Unknown, LockError(message.into()))
}

#[async_trait]
impl HttpService for LockService {
    async fn call(&self, mut request: HttpRequest) -> Result<HttpResponse, HttpError> {
        match classify(&request, &self.bucket_url) {
            Kind::Other => {}
            Kind::MultipartStart => {
                return Err(fail(
                    "a multipart upload was started on a bucket written with \
                     storage.object_lock; its parts could not carry the retention, so it was \
                     refused before it was sent (a bug: kafka-backup writes single requests)",
                ));
            }
            Kind::ObjectPut => self.lock(&mut request).await?,
        }
        self.inner.execute(request).await
    }
}

impl LockService {
    async fn lock(&self, request: &mut HttpRequest) -> Result<(), HttpError> {
        let md5 = body_md5(request.body()).await?;
        let until = retain_until(time::OffsetDateTime::now_utc(), self.lock.retain_days)?;
        let headers = request.headers_mut();
        headers.insert(LOCK_MODE, HeaderValue::from_static(self.lock.mode.as_str()));
        headers.insert(
            LOCK_UNTIL,
            HeaderValue::from_str(&until).map_err(|e| fail(e.to_string()))?,
        );
        headers.insert(
            CONTENT_MD5,
            HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(md5))
                .map_err(|e| fail(e.to_string()))?,
        );
        if !request.headers().contains_key(AUTHORIZATION) {
            // An unsigned request (no credentials configured): nothing to sign again.
            return Ok(());
        }
        let provider = self.credentials.get().ok_or_else(|| {
            fail("the S3 client made a request before its credentials were known (a bug)")
        })?;
        let credential = provider.get_credential().await.map_err(|e| {
            fail(format!(
                "cannot obtain the credentials to sign the write again with its retention: {e}"
            ))
        })?;
        sign_again(request, &credential, &self.region)
    }
}

/// Signs `request` again, over all its headers (the lock headers included), keeping the payload
/// hash `object_store` computed.
fn sign_again(
    request: &mut HttpRequest,
    credential: &object_store::aws::AwsCredential,
    region: &str,
) -> Result<(), HttpError> {
    let payload = request
        .headers()
        .get(&CONTENT_SHA256)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let headers = request.headers_mut();
    headers.remove(AUTHORIZATION);
    // Set again from the credential, if it has one.
    headers.remove(&SECURITY_TOKEN);
    let authorizer = AwsAuthorizer::new(credential, "s3", region);
    let result = match payload.as_deref() {
        Some("UNSIGNED-PAYLOAD") => authorizer
            .with_sign_payload(false)
            .try_authorize(request, None),
        Some(hex) => {
            let digest = decode_sha256_hex(hex).ok_or_else(|| {
                fail(format!(
                    "the write's payload hash `{}` is not a SHA-256 (streaming signatures \
                     cannot be signed again with a retention)",
                    hex.escape_debug()
                ))
            })?;
            authorizer.try_authorize(request, Some(&digest))
        }
        None => {
            return Err(fail(
                "the write carries no x-amz-content-sha256 header, so it cannot be signed again \
                 with its retention",
            ));
        }
    };
    result.map_err(|e| fail(format!("cannot sign the write with its retention: {e}")))
}

fn classify(request: &Request<HttpRequestBody>, bucket_url: &url::Url) -> Kind {
    let Ok(url) = url::Url::parse(&request.uri().to_string()) else {
        return Kind::Other;
    };
    let same_origin = url.scheme() == bucket_url.scheme()
        && url.host_str() == bucket_url.host_str()
        && url.port_or_known_default() == bucket_url.port_or_known_default();
    let base = bucket_url.path().trim_end_matches('/');
    let object = url
        .path()
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|key| !key.is_empty());
    if !same_origin || !object {
        return Kind::Other;
    }
    match (request.method(), url.query()) {
        (&Method::PUT, None) if !request.headers().contains_key(&COPY_SOURCE) => Kind::ObjectPut,
        (&Method::POST, Some(query))
            if query.split('&').any(|p| p == "uploads" || p == "uploads=") =>
        {
            Kind::MultipartStart
        }
        _ => Kind::Other,
    }
}

/// MD5 of the whole body, read from a clone (the body is `Bytes`, cheap to clone).
async fn body_md5(body: &HttpRequestBody) -> Result<[u8; 16], HttpError> {
    let mut body = body.clone();
    let mut md5 = Md5::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            md5.update(&data);
        }
    }
    Ok(md5.finalize().into())
}

/// `now + days`, rounded up to a whole second, as S3 wants it (`2026-01-31T12:00:00Z`).
fn retain_until(now: time::OffsetDateTime, days: u32) -> Result<String, HttpError> {
    let mut until = now + time::Duration::days(i64::from(days));
    if until.nanosecond() != 0 {
        until = until
            .replace_nanosecond(0)
            .map_err(|e| fail(e.to_string()))?
            + time::Duration::SECOND;
    }
    until
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| fail(e.to_string()))
}

fn decode_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use object_store::aws::AwsCredential;

    fn request(method: Method, uri: &str) -> HttpRequest {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(HttpRequestBody::from(Bytes::from_static(b"data")))
            .unwrap()
    }

    #[test]
    fn only_object_puts_of_the_bucket_are_locked() {
        let path_style = url::Url::parse("http://127.0.0.1:9000/kb-lock").unwrap();
        let cases = [
            (
                Method::PUT,
                "http://127.0.0.1:9000/kb-lock/a/b.seg",
                Kind::ObjectPut,
            ),
            (
                Method::PUT,
                "http://127.0.0.1:9000/kb-lock/a?partNumber=1&uploadId=x",
                Kind::Other,
            ),
            (
                Method::PUT,
                "http://127.0.0.1:9000/kb-lock/a?retention",
                Kind::Other,
            ),
            (Method::PUT, "http://127.0.0.1:9000/kb-lock", Kind::Other),
            (Method::PUT, "http://127.0.0.1:9000/kb-lock/", Kind::Other),
            (Method::PUT, "http://127.0.0.1:9000/kb-lockx/a", Kind::Other),
            (Method::PUT, "http://127.0.0.1:9001/kb-lock/a", Kind::Other),
            (
                Method::PUT,
                "http://169.254.169.254/latest/api/token",
                Kind::Other,
            ),
            (Method::GET, "http://127.0.0.1:9000/kb-lock/a", Kind::Other),
            (
                Method::POST,
                "http://127.0.0.1:9000/kb-lock/a?uploads",
                Kind::MultipartStart,
            ),
            (
                Method::POST,
                "http://127.0.0.1:9000/kb-lock/a?uploads=",
                Kind::MultipartStart,
            ),
        ];
        for (method, uri, kind) in cases {
            assert_eq!(classify(&request(method, uri), &path_style), kind, "{uri}");
        }
        let mut copy = request(Method::PUT, "http://127.0.0.1:9000/kb-lock/a");
        copy.headers_mut()
            .insert(COPY_SOURCE, HeaderValue::from_static("kb-lock/b"));
        assert_eq!(classify(&copy, &path_style), Kind::Other);

        let hosted = url::Url::parse("https://kb-lock.s3.eu-west-1.amazonaws.com").unwrap();
        assert_eq!(
            classify(
                &request(
                    Method::PUT,
                    "https://kb-lock.s3.eu-west-1.amazonaws.com/a/b"
                ),
                &hosted
            ),
            Kind::ObjectPut
        );
        assert_eq!(
            classify(
                &request(Method::PUT, "https://other.s3.eu-west-1.amazonaws.com/a/b"),
                &hosted
            ),
            Kind::Other
        );
    }

    #[test]
    fn retain_until_is_rounded_up_to_the_second() {
        let now = time::macros::datetime!(2026-01-30 23:59:59.25 UTC);
        assert_eq!(retain_until(now, 1).unwrap(), "2026-02-01T00:00:00Z");
        let now = time::macros::datetime!(2026-01-30 12:00:00 UTC);
        assert_eq!(retain_until(now, 36_500).unwrap(), "2126-01-06T12:00:00Z");
    }

    #[tokio::test]
    async fn content_md5_is_the_bodys() {
        // RFC 1321's test vector.
        let body = HttpRequestBody::from(Bytes::from_static(b"abc"));
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(body_md5(&body).await.unwrap()),
            base64::engine::general_purpose::STANDARD
                .encode(decode_hex16("900150983cd24fb0d6963f7d28e17f72"))
        );
        let parts: object_store::PutPayload =
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"bc")]
                .into_iter()
                .collect();
        assert_eq!(
            body_md5(&HttpRequestBody::from(parts)).await.unwrap(),
            decode_hex16("900150983cd24fb0d6963f7d28e17f72")
        );
    }

    fn decode_hex16(hex: &str) -> [u8; 16] {
        let full = format!("{hex}{}", "0".repeat(32));
        decode_sha256_hex(&full).unwrap()[..16].try_into().unwrap()
    }

    /// The lock headers are signed: they appear in SignedHeaders, next to the payload hash that
    /// was kept. (That the signature itself is right is shown by the IAM-enforcing moto, which
    /// checks it with botocore, in tests/storage_object_lock.rs.)
    #[tokio::test]
    async fn lock_headers_are_signed_and_the_payload_hash_is_kept() {
        let credential = AwsCredential {
            key_id: "AKIDEXAMPLE".to_owned(),
            secret_key: "secret".to_owned(),
            token: Some("token".to_owned()),
        };
        let hash = "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7";
        let mut req = request(Method::PUT, "http://127.0.0.1:9000/kb-lock/a");
        let headers = req.headers_mut();
        headers.insert(CONTENT_SHA256, HeaderValue::from_static(hash));
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 old"),
        );
        headers.insert(LOCK_MODE, HeaderValue::from_static("GOVERNANCE"));
        headers.insert(LOCK_UNTIL, HeaderValue::from_static("2030-01-01T00:00:00Z"));
        headers.insert(
            CONTENT_MD5,
            HeaderValue::from_static("jVGjEJnEuhhXkfdtxy08Mg=="),
        );
        sign_again(&mut req, &credential, "eu-west-1").unwrap();
        let auth = req.headers()[AUTHORIZATION].to_str().unwrap();
        let signed = auth
            .split("SignedHeaders=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        for name in [
            "content-md5",
            "host",
            "x-amz-content-sha256",
            "x-amz-date",
            "x-amz-object-lock-mode",
            "x-amz-object-lock-retain-until-date",
            "x-amz-security-token",
        ] {
            assert!(
                signed.split(';').any(|s| s == name),
                "{name} not in {signed}"
            );
        }
        assert!(auth.contains("/eu-west-1/s3/aws4_request"), "{auth}");
        assert_eq!(req.headers()[CONTENT_SHA256], hash);
        assert_eq!(req.headers()[SECURITY_TOKEN], "token");

        // A streaming payload cannot be signed again.
        let mut req = request(Method::PUT, "http://127.0.0.1:9000/kb-lock/a");
        req.headers_mut().insert(
            CONTENT_SHA256,
            HeaderValue::from_static("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        );
        assert!(sign_again(&mut req, &credential, "eu-west-1").is_err());
    }
}

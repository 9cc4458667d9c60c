//! Amazon MSK IAM authentication (SASL mechanism `AWS_MSK_IAM`, as aws-msk-iam-auth does it)
//! as a kafka-backup mechanism plugin: an example of the plugin contract, kept small.
//!
//! For each connection the client sends one JSON message: a SigV4 presigned
//! `kafka-cluster:Connect` request for the host of *that* broker (so the signature is per
//! broker, made in [`SaslMechanism::start`]), valid for 15 minutes. The broker answers with a
//! small JSON document. Configuration:
//!
//! ```yaml
//! security:
//!   security_protocol: SASL_SSL
//!   sasl_mechanism: AWS_MSK_IAM
//!   sasl_options:
//!     region: eu-west-1
//!     access_key_id: ${AWS_ACCESS_KEY_ID}
//!     secret_access_key: ${AWS_SECRET_ACCESS_KEY}
//!     session_token: ${AWS_SESSION_TOKEN}   # optional
//! ```
//!
//! Static keys only, to keep the example short; a production plugin would take credentials
//! from the AWS SDK's provider chain (IRSA, instance profiles) and refresh them.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use kafka_client::BrokerAddress;
use kafka_client::Secret;
use kafka_client::sasl::{
    PluginSettings, SaslError, SaslExchange, SaslMechanism, SaslMechanismFactory, SaslStep,
    register_mechanism,
};

/// The mechanism's name, in configuration and on the wire.
pub const NAME: &str = "AWS_MSK_IAM";
/// The payload format aws-msk-iam-auth sends.
const VERSION: &str = "2020_10_22";
/// How long a signature is valid.
const EXPIRES: Duration = Duration::from_secs(900);

/// Registers `AWS_MSK_IAM` with kafka-backup's mechanism registry.
pub fn register() -> Result<(), SaslError> {
    register_mechanism(NAME, Arc::new(MskIamFactory))
}

/// Builds [`MskIam`] from `sasl_options`.
pub struct MskIamFactory;

impl SaslMechanismFactory for MskIamFactory {
    fn build(&self, settings: &PluginSettings) -> Result<Arc<dyn SaslMechanism>, SaslError> {
        if settings.username.is_some() || settings.password.is_some() {
            return Err(SaslError::Setup(format!(
                "sasl_mechanism {NAME} takes no sasl_username or sasl_password: set \
                 sasl_options.access_key_id and sasl_options.secret_access_key"
            )));
        }
        let region = settings.required("region")?.expose().trim().to_owned();
        let access_key_id = settings
            .required("access_key_id")?
            .expose()
            .trim()
            .to_owned();
        Ok(Arc::new(MskIam {
            region,
            access_key_id,
            secret_access_key: settings.required("secret_access_key")?.clone(),
            session_token: settings
                .options
                .get("session_token")
                .filter(|t| !t.is_empty())
                .cloned(),
        }))
    }

    fn option_keys(&self) -> &'static [&'static str] {
        &[
            "region",
            "access_key_id",
            "secret_access_key",
            "session_token",
        ]
    }
}

/// `AWS_MSK_IAM` with static credentials.
pub struct MskIam {
    region: String,
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

impl std::fmt::Debug for MskIam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MskIam")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl MskIam {
    /// The signed payload for `host` at `now`.
    pub fn payload(&self, host: &str, now: SystemTime) -> Result<Vec<u8>, SaslError> {
        let signing = |what: &str, e: &dyn std::fmt::Display| {
            SaslError::Setup(format!("{NAME}: could not {what}: {e}"))
        };
        let identity: Identity = Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose(),
            self.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "kafka-backup",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(EXPIRES);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("kafka-cluster")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| signing("set up signing", &e))?
            .into();
        let url = format!("https://{host}/?Action=kafka-cluster%3AConnect");
        let request = SignableRequest::new(
            "GET",
            &url,
            std::iter::once(("host", host)),
            SignableBody::Bytes(&[]),
        )
        .map_err(|e| signing("build the request to sign", &e))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| signing("sign", &e))?
            .into_parts();
        let mut payload = serde_json::Map::new();
        payload.insert("version".into(), VERSION.into());
        payload.insert("host".into(), host.into());
        payload.insert(
            "user-agent".into(),
            concat!("kafka-backup-msk-iam/", env!("CARGO_PKG_VERSION")).into(),
        );
        payload.insert("action".into(), "kafka-cluster:Connect".into());
        for (name, value) in instructions.params() {
            payload.insert(name.to_ascii_lowercase(), value.as_ref().into());
        }
        serde_json::to_vec(&payload).map_err(|e| signing("encode the payload", &e))
    }
}

impl SaslMechanism for MskIam {
    fn name(&self) -> &str {
        NAME
    }

    fn principal(&self) -> Option<&str> {
        Some(&self.access_key_id)
    }

    fn start(&self, broker: &BrokerAddress) -> Result<Box<dyn SaslExchange>, SaslError> {
        Ok(Box::new(Exchange {
            payload: Some(self.payload(&broker.host, SystemTime::now())?),
        }))
    }
}

/// One exchange: the signed payload, then the broker's JSON answer.
struct Exchange {
    payload: Option<Vec<u8>>,
}

impl SaslExchange for Exchange {
    fn step(&mut self, server_message: Option<&[u8]>) -> Result<SaslStep, SaslError> {
        match (server_message, self.payload.take()) {
            (None, Some(payload)) => Ok(SaslStep::Respond(payload)),
            (Some(answer), None) => {
                // MSK answers {"version": ..., "request-id": ...}; anything else is not MSK.
                let parsed: serde_json::Value = serde_json::from_slice(answer).map_err(|_| {
                    SaslError::MalformedServerMessage(format!(
                        "the broker's {NAME} answer is not JSON"
                    ))
                })?;
                if parsed.get("request-id").is_none() {
                    return Err(SaslError::MalformedServerMessage(format!(
                        "the broker's {NAME} answer has no request-id"
                    )));
                }
                Ok(SaslStep::Done)
            }
            _ => Err(SaslError::OutOfSequence("AWS_MSK_IAM stepped out of order")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings(options: &[(&str, &str)]) -> PluginSettings {
        PluginSettings {
            mechanism: NAME,
            username: None,
            password: None,
            options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Secret::new(*v)))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn the_payload_is_a_presigned_connect_for_the_broker_host() {
        let mechanism = MskIamFactory
            .build(&settings(&[
                ("region", "eu-west-1"),
                ("access_key_id", "AKIDEXAMPLE"),
                (
                    "secret_access_key",
                    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                ),
            ]))
            .unwrap();
        assert!(!format!("{mechanism:?}").contains("wJalr"));
        let mut exchange = mechanism
            .start(&BrokerAddress::new(
                "b-1.example.kafka.eu-west-1.amazonaws.com",
                9098,
            ))
            .unwrap();
        let SaslStep::Respond(payload) = exchange.step(None).unwrap() else {
            panic!("the client speaks first")
        };
        let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(json["version"], VERSION);
        assert_eq!(json["host"], "b-1.example.kafka.eu-west-1.amazonaws.com");
        assert_eq!(json["action"], "kafka-cluster:Connect");
        assert_eq!(json["x-amz-algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(json["x-amz-signedheaders"], "host");
        assert_eq!(json["x-amz-expires"], "900");
        let credential = json["x-amz-credential"].as_str().unwrap();
        assert!(
            credential.starts_with("AKIDEXAMPLE/")
                && credential.ends_with("/eu-west-1/kafka-cluster/aws4_request"),
            "{credential}"
        );
        assert_eq!(json["x-amz-signature"].as_str().unwrap().len(), 64);
        assert!(!String::from_utf8_lossy(&payload).contains("wJalr"));
        assert_eq!(
            exchange
                .step(Some(br#"{"version":"2020_10_22","request-id":"x"}"#))
                .unwrap(),
            SaslStep::Done
        );
    }

    #[test]
    fn missing_options_name_the_key() {
        let e = MskIamFactory
            .build(&settings(&[("region", "eu-west-1")]))
            .unwrap_err();
        assert!(e.to_string().contains("sasl_options.access_key_id"), "{e}");
    }
}

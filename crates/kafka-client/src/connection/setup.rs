//! Connection setup after TCP and TLS: ApiVersions negotiation, and the transport SASL
//! authentication runs over, in order on the unsplit stream before the connection is shared.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::sasl::{SaslTransport, wipe};
use super::{ConnectSettings, describe_frame_error};
use crate::config::BrokerAddress;
use crate::error::{Error, Result};
use crate::frame::{FrameError, decode_response, encode_request, peek_correlation_id, read_frame};
use crate::stream::MaybeTlsStream;
use crate::versions::{ApiVersions, api_name, support_for};

/// The requests made while setting up a connection, before it is shared: run in order on the
/// unsplit stream, so a TLS alert surfacing on the first read is still seen as what it is.
pub(super) struct Setup<'a> {
    pub(super) stream: &'a mut MaybeTlsStream,
    pub(super) broker: &'a BrokerAddress,
    pub(super) label: &'a str,
    pub(super) settings: &'a ConnectSettings,
    pub(super) deadline: Instant,
    pub(super) correlation_id: i32,
}

impl SaslTransport for Setup<'_> {
    async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        hint: &'static str,
    ) -> Result<R::Response> {
        Setup::call(self, request, version, hint).await
    }
}

impl Setup<'_> {
    async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        hint: &'static str,
    ) -> Result<R::Response> {
        let api = api_name(R::KEY);
        let frame = self.round_trip(request, version, &api, hint).await?;
        decode_response::<R>(frame, version).map_err(|detail| Error::Protocol {
            broker: self.label.to_owned(),
            detail: format!("{api} v{version}: {detail}"),
        })
    }

    async fn round_trip<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        api: &str,
        hint: &'static str,
    ) -> Result<Bytes> {
        self.correlation_id += 1;
        let id = self.correlation_id;
        let frame = encode_request(request, version, id, &self.settings.client_id)
            .map_err(|detail| Error::Config(format!("{api} v{version}: {detail}")))?;
        let max = self.settings.max_response_bytes;
        let stream = &mut *self.stream;
        let io = async {
            let written = stream.write_all(&frame).await;
            // SASL messages can carry the password (PLAIN); wipe our copy once it is sent.
            wipe(frame);
            written.map_err(FrameError::Io)?;
            stream.flush().await.map_err(FrameError::Io)?;
            read_frame(stream, max).await
        };
        let result = tokio::time::timeout_at(self.deadline, io)
            .await
            .map_err(|_| Error::Timeout {
                broker: self.label.to_owned(),
                what: format!("the {api} response"),
                after: self.settings.connect_timeout,
                hint,
            })?;
        let frame = result.map_err(|e| self.setup_error(e, api))?;
        let got = peek_correlation_id(&frame);
        if got != id {
            return Err(Error::Protocol {
                broker: self.label.to_owned(),
                detail: format!("the {api} response carried correlation id {got}, expected {id}"),
            });
        }
        Ok(frame)
    }

    fn setup_error(&self, e: FrameError, api: &str) -> Error {
        let broker = self.label.to_owned();
        match e {
            FrameError::Io(io) => {
                if let Some(connector) = &self.settings.tls
                    && let Some(tls) = connector.classify_io_error(self.broker, &io)
                {
                    return Error::Tls(tls);
                }
                let hint = if self.settings.tls.is_some() {
                    ""
                } else {
                    ". If this listener expects TLS, set security_protocol to SSL or SASL_SSL"
                };
                let context = if io.kind() == std::io::ErrorKind::UnexpectedEof {
                    format!("before answering {api}{hint}")
                } else {
                    format!("during {api} ({io}){hint}")
                };
                Error::Disconnected { broker, context }
            }
            other => Error::Protocol {
                broker,
                detail: describe_frame_error(&other),
            },
        }
    }

    pub(super) async fn negotiate_versions(&mut self) -> Result<ApiVersions> {
        const HINT: &str = "The port accepted the connection but did not answer as a Kafka broker. Check \
                            that it is a Kafka listener and that security_protocol matches it (a TLS \
                            listener waits silently for a TLS handshake).";
        let ours = support_for(ApiKey::ApiVersions).map(|s| s.max).unwrap_or(0);
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kafka-backup"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = ours;
        for _ in 0..2 {
            let frame = self
                .round_trip(&request, version, "ApiVersions", HINT)
                .await?;
            let response =
                decode_api_versions(frame, version).map_err(|detail| Error::Protocol {
                    broker: self.label.to_owned(),
                    detail: format!("ApiVersions: {detail}"),
                })?;
            if response.error_code == ResponseError::UnsupportedVersion.code() {
                // The broker answers in v0 and lists the ApiVersions versions it does speak.
                let theirs = response
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map(|k| k.max_version)
                    .unwrap_or(0);
                let next = theirs.min(ours);
                if next >= version {
                    break;
                }
                version = next;
                continue;
            }
            if let Some(code) = ResponseError::try_from_code(response.error_code) {
                return Err(Error::Broker {
                    broker: self.label.to_owned(),
                    api: "ApiVersions",
                    resource: None,
                    code,
                    message: None,
                });
            }
            return Ok(ApiVersions::from_response(&response));
        }
        Err(Error::UnsupportedVersion {
            broker: self.label.to_owned(),
            api: "ApiVersions",
            min: 0,
            offered: "no version we can use".into(),
        })
    }
}

/// Decodes an ApiVersions response. A broker that does not support the version we sent
/// answers in v0 (KIP-511), so fall back to v0 when the newer layout does not parse.
fn decode_api_versions(frame: Bytes, version: i16) -> Result<ApiVersionsResponse, String> {
    // ApiVersions responses always use header v0: just the correlation id.
    let body = frame.slice(4..);
    let mut b = body.clone();
    match ApiVersionsResponse::decode(&mut b, version) {
        Ok(r) if r.error_code == 0 || version == 0 => Ok(r),
        first => {
            let mut b = body;
            match ApiVersionsResponse::decode(&mut b, 0) {
                Ok(r) => Ok(r),
                Err(e) => first.map_err(|_| format!("malformed response: {e}")),
            }
        }
    }
}

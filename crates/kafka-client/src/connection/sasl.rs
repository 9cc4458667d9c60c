//! The SASL exchange, SaslHandshake then SaslAuthenticate round trips, over any transport:
//! at setup on the unshared stream, and again on the shared connection for KIP-368
//! re-authentication.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::time::Instant;
use zeroize::Zeroize;

use super::SaslSessionInfo;
use crate::config::BrokerAddress;
use crate::error::{Error, Result, error_name};
use crate::sasl::{SaslError, SaslMechanism, SaslStep};
use crate::versions::{ApiVersions, support_for};

/// A SASL exchange needs a handful of round trips; a peer that keeps asking for more is
/// broken or hostile.
const MAX_SASL_ROUNDS: usize = 16;

/// Sends one request and waits for its response; the SASL messages may carry a password
/// (PLAIN), so implementations wipe their copy of the encoded request once it is sent.
pub(super) trait SaslTransport {
    /// Sends `request` at `version`; `hint` explains a timeout.
    async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        hint: &'static str,
    ) -> Result<R::Response>;
}

/// Authenticates with `mechanism` to `peer` (named `label` in messages).
pub(super) async fn authenticate<T: SaslTransport>(
    transport: &mut T,
    peer: &BrokerAddress,
    label: &str,
    versions: &ApiVersions,
    mechanism: &dyn SaslMechanism,
) -> Result<SaslSessionInfo> {
    const HINT: &str = "The broker did not answer the SASL exchange in time. Check that the listener \
                        uses SASL (security_protocol SASL_PLAINTEXT or SASL_SSL).";
    let broker = label.to_owned();
    let name = mechanism.name().to_owned();
    let user = mechanism.principal().unwrap_or("").to_owned();
    let unsupported = |api: ApiKey, min: i16| Error::UnsupportedVersion {
        broker: broker.clone(),
        api: support_for(api).map(|s| s.name).unwrap_or("SASL"),
        min,
        offered: versions.offered(api),
    };
    let handshake_v = versions
        .chosen(ApiKey::SaslHandshake)
        .ok_or_else(|| unsupported(ApiKey::SaslHandshake, 1))?;
    let auth_v = versions
        .chosen(ApiKey::SaslAuthenticate)
        .ok_or_else(|| unsupported(ApiKey::SaslAuthenticate, 0))?;

    // Some brokers (and Kafka before KIP-152 for bad credentials) close the connection
    // instead of answering; retrying cannot help, so say what it most likely means.
    let hung_up = |e: Error, what: &str| match e {
        Error::Disconnected { .. } => Error::Authentication {
            broker: broker.clone(),
            mechanism: name.clone(),
            user: user.clone(),
            reason: format!("the broker closed the connection {what}"),
        },
        other => other,
    };
    let handshake = transport
        .call(
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(name.clone())),
            handshake_v,
            HINT,
        )
        .await
        .map_err(|e| {
            hung_up(
                e,
                &format!(
                    "when asked for mechanism {name} instead of answering; it most likely does not \
                     enable {name} on this listener (compare sasl_mechanism with the listener's \
                     sasl.enabled.mechanisms), or the listener does not use SASL at all"
                ),
            )
        })?;
    if handshake.error_code != 0 {
        let enabled: Vec<String> = handshake.mechanisms.iter().map(|m| m.to_string()).collect();
        if handshake.error_code == ResponseError::UnsupportedSaslMechanism.code() {
            return Err(Error::SaslMechanismNotEnabled {
                broker,
                mechanism: name,
                enabled,
            });
        }
        return Err(Error::Authentication {
            broker,
            mechanism: name,
            user,
            reason: format!(
                "the SASL handshake failed with {}",
                error_name(
                    ResponseError::try_from_code(handshake.error_code)
                        .unwrap_or(ResponseError::Unknown(handshake.error_code))
                )
            ),
        });
    }

    let sasl_error = |source| match source {
        // A SCRAM server says "invalid-proof" or "unknown-user" inside the exchange: that is
        // a rejection of the credentials, not a failure of the mechanism.
        SaslError::ServerRejected(why) => Error::Authentication {
            broker: broker.clone(),
            mechanism: name.clone(),
            user: user.clone(),
            reason: format!("the broker rejected the credentials ({why})"),
        },
        source => Error::Sasl {
            broker: broker.clone(),
            mechanism: name.clone(),
            source,
        },
    };
    let mut exchange = mechanism.start(peer).map_err(sasl_error)?;
    let mut message = match exchange.step(None).map_err(sasl_error)? {
        SaslStep::Respond(bytes) => bytes,
        SaslStep::Done => Vec::new(),
    };
    for _ in 0..MAX_SASL_ROUNDS {
        let auth_bytes = Bytes::from(message);
        let request = SaslAuthenticateRequest::default().with_auth_bytes(auth_bytes.clone());
        let response = transport.call(&request, auth_v, HINT).await.map_err(|e| {
            hung_up(
                e,
                "during authentication instead of answering; brokers that do this rejected the credentials",
            )
        });
        drop(request);
        wipe(auth_bytes);
        let response = response?;
        if response.error_code != 0 {
            let reason = response
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| {
                    error_name(
                        ResponseError::try_from_code(response.error_code)
                            .unwrap_or(ResponseError::Unknown(response.error_code)),
                    )
                });
            return Err(Error::Authentication {
                broker,
                mechanism: name,
                user,
                reason: format!("the broker said: {reason}"),
            });
        }
        let session_lifetime_ms = response.session_lifetime_ms;
        match exchange
            .step(Some(&response.auth_bytes))
            .map_err(sasl_error)?
        {
            SaslStep::Respond(next) => message = next,
            SaslStep::Done => {
                return Ok(SaslSessionInfo {
                    mechanism: name,
                    principal: mechanism.principal().map(str::to_owned),
                    session_lifetime_ms,
                    authenticated_at: Instant::now(),
                });
            }
        }
    }
    Err(Error::Protocol {
        broker,
        detail: format!("the SASL exchange did not finish within {MAX_SASL_ROUNDS} round trips"),
    })
}

/// Overwrites bytes that may hold a secret, when we hold the only reference to them.
pub(super) fn wipe(bytes: Bytes) {
    if let Ok(mut owned) = bytes.try_into_mut() {
        owned.as_mut().zeroize();
    }
}

//! One connection to one broker: set up in order (TCP, TLS, ApiVersions, SASL) under one
//! deadline, then shared by many concurrent requests that are matched to their responses by
//! correlation id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Request;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

mod sasl;
mod setup;
use sasl::{SaslTransport, authenticate};
use setup::Setup;

use crate::config::{BrokerAddress, ClientConfig};
use crate::error::{Error, Result};
use crate::frame::{FrameError, decode_response, encode_request, peek_correlation_id, read_frame};
use crate::sasl::SaslMechanism;
use crate::stream::MaybeTlsStream;
use crate::tls::{TlsConnector, TlsSessionInfo};
use crate::versions::{ApiVersions, api_name, support_for};

/// What the SASL exchange established.
#[derive(Debug, Clone)]
pub struct SaslSessionInfo {
    /// The mechanism used.
    pub mechanism: String,
    /// The authenticated user, as configured.
    pub principal: Option<String>,
    /// The broker's session lifetime (KIP-368), 0 when it does not expire sessions.
    pub session_lifetime_ms: i64,
    /// When the exchange finished: the session's lifetime counts from here.
    pub authenticated_at: Instant,
}

/// What was negotiated when the connection was set up.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The address dialled.
    pub broker: BrokerAddress,
    /// TLS session details, when TLS is used.
    pub tls: Option<TlsSessionInfo>,
    /// SASL details, when SASL is used.
    pub sasl: Option<SaslSessionInfo>,
    /// API versions offered by the broker and chosen by us.
    pub api_versions: ApiVersions,
}

/// Settings a connection needs, taken from [`ClientConfig`].
#[derive(Clone)]
pub(crate) struct ConnectSettings {
    pub client_id: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_response_bytes: usize,
    pub max_in_flight: usize,
    pub tls: Option<TlsConnector>,
    pub sasl: Option<Arc<dyn SaslMechanism>>,
}

impl ConnectSettings {
    pub(crate) fn new(config: &ClientConfig, tls: Option<TlsConnector>) -> Self {
        Self {
            client_id: config.client_id.clone(),
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            max_response_bytes: config.max_response_bytes,
            max_in_flight: config.max_in_flight_per_connection.max(1),
            tls,
            sasl: if config.security.protocol.uses_sasl() {
                config.security.sasl.clone()
            } else {
                None
            },
        }
    }
}

/// Why a connection stopped serving requests.
#[derive(Debug, Clone)]
enum CloseReason {
    /// The peer broke the protocol.
    Protocol(String),
    /// The socket closed or failed.
    Disconnected(String),
}

#[derive(Default)]
struct SharedState {
    pending: HashMap<i32, oneshot::Sender<Bytes>>,
    closed: Option<CloseReason>,
}

/// State shared between request senders and the reader and writer tasks.
#[derive(Default)]
struct Shared {
    state: Mutex<SharedState>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SharedState> {
        // A panic while holding this lock cannot leave the map inconsistent in a way that
        // matters (entries are independent), so keep going with the inner value.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the connection closed and wakes every waiting request; the first reason wins.
    fn close(&self, reason: CloseReason) {
        let mut st = self.lock();
        if st.closed.is_none() {
            tracing::debug!(?reason, "connection closed");
            st.closed = Some(reason);
        }
        // Dropping the senders makes every waiter see the close.
        st.pending.clear();
    }
}

struct Inner {
    label: String,
    info: ConnectionInfo,
    client_id: String,
    request_timeout: Duration,
    writer: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
    in_flight: Semaphore,
    next_correlation_id: AtomicI32,
    reader: AbortHandle,
    /// When to stop handing this connection out because its SASL session is about to expire
    /// (only for mechanisms that cannot re-authenticate).
    retire_at: Option<Instant>,
    /// The permits of `in_flight`: re-authentication takes them all, so that it runs between
    /// requests.
    max_in_flight: u32,
    /// The mechanism, for re-authentication.
    sasl: Option<Arc<dyn SaslMechanism>>,
    /// How many times the session was renewed in place.
    reauthentications: AtomicU64,
    /// Set when the session cannot be renewed in time: the connection then takes no new
    /// requests, as when a mechanism cannot re-authenticate.
    retired: AtomicBool,
}

/// A frame for the writer task.
struct Outgoing {
    frame: Bytes,
    /// The frame may hold a secret (a PLAIN password in a re-authentication): zero it once it
    /// is written.
    secret: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer task ends when its channel closes; the reader would wait for the peer.
        self.reader.abort();
    }
}

/// An established, authenticated connection to one broker. Cloning shares it.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.inner.label)
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl Connection {
    /// Connects to `broker`, performs TLS and SASL as configured, and negotiates API versions,
    /// all within the connect timeout.
    pub(crate) async fn open(broker: &BrokerAddress, settings: &ConnectSettings) -> Result<Self> {
        let label = broker.to_string();
        let started = Instant::now();
        let deadline = started + settings.connect_timeout;
        let timeout = settings.connect_timeout;

        let tcp = tokio::time::timeout_at(
            deadline,
            TcpStream::connect((broker.host.as_str(), broker.port)),
        )
        .await
        .map_err(|_| Error::Timeout {
            broker: label.clone(),
            what: "the TCP connection".into(),
            after: timeout,
            hint: "The host may be unreachable or a firewall may drop the packets. Check bootstrap_servers \
                   and network access, or raise connect_timeout_ms.",
        })?
        .map_err(|source| Error::Connect {
            broker: label.clone(),
            source,
        })?;
        // Requests are small and latency-bound; Nagle would delay them.
        let _ = tcp.set_nodelay(true);

        let (mut stream, tls_info) = match &settings.tls {
            Some(tls) => {
                let (s, info) = tokio::time::timeout_at(deadline, tls.connect(broker, tcp))
                    .await
                    .map_err(|_| Error::Timeout {
                        broker: label.clone(),
                        what: "the TLS handshake".into(),
                        after: timeout,
                        hint: "The port accepted TCP but did not complete a TLS handshake. Check that it \
                               is a TLS listener (SSL and SASL_SSL need one) and that it is the right port.",
                    })??;
                (MaybeTlsStream::Tls(Box::new(s)), Some(info))
            }
            None => (MaybeTlsStream::Plain(tcp), None),
        };

        let mut setup = Setup {
            stream: &mut stream,
            broker,
            label: &label,
            settings,
            deadline,
            correlation_id: 0,
        };
        let api_versions = setup.negotiate_versions().await?;
        if let Some(mechanism) = &settings.sasl {
            // Within the connection's deadline: a slow token endpoint must not hold an open,
            // unauthenticated socket to the broker past connect_timeout.
            tokio::time::timeout_at(deadline, mechanism.prepare())
                .await
                .map_err(|_| Error::Timeout {
                    broker: label.clone(),
                    what: format!("the {} credentials", mechanism.name()),
                    after: timeout,
                    hint: "Getting fresh SASL credentials (an OAuth token) took longer than the \
                           connection may: check that the identity provider answers, or raise \
                           connect_timeout_ms.",
                })?
                .map_err(|source| Error::SaslCredentials {
                    mechanism: mechanism.name().to_owned(),
                    source,
                })?;
        }
        let sasl = match &settings.sasl {
            Some(mechanism) => Some(
                authenticate(
                    &mut setup,
                    broker,
                    &label,
                    &api_versions,
                    mechanism.as_ref(),
                )
                .await?,
            ),
            None => None,
        };
        let next_id = setup.correlation_id + 1;

        let info = ConnectionInfo {
            broker: broker.clone(),
            tls: tls_info,
            sasl,
            api_versions,
        };
        // A session with a lifetime is renewed in place when the mechanism can do that, and
        // otherwise retired before it ends.
        let session = info
            .sasl
            .as_ref()
            .map(|s| (s.authenticated_at, s.session_lifetime_ms));
        // A session too short to renew within Kafka's one-second minimum is retired too.
        let renew_at = session
            .filter(|_| settings.sasl.as_ref().is_some_and(|m| m.reauthenticates()))
            .and_then(|(at, lifetime)| reauthentication_due(at, lifetime).map(|due| (at, due)))
            .filter(|(at, due)| *due >= *at + MIN_REAUTHENTICATION_INTERVAL)
            .map(|(_, due)| due);
        let retire_at = session
            .filter(|_| renew_at.is_none())
            .and_then(|(_, lifetime)| retirement(started, lifetime));
        let connection = Self::spawn(stream, label, info, settings, next_id, retire_at);
        if let Some(when) = renew_at {
            tokio::spawn(reauthenticate_loop(Arc::downgrade(&connection.inner), when));
        }
        Ok(connection)
    }

    fn spawn(
        stream: MaybeTlsStream,
        label: String,
        info: ConnectionInfo,
        settings: &ConnectSettings,
        next_id: i32,
        retire_at: Option<Instant>,
    ) -> Self {
        let (read_half, write_half) = tokio::io::split(stream);
        let shared = Arc::new(Shared::default());
        // One more slot than requests in flight, for a re-authentication's message.
        let (tx, rx) = mpsc::channel(settings.max_in_flight + 1);
        let reader = tokio::spawn(read_loop(
            read_half,
            shared.clone(),
            settings.max_response_bytes,
            label.clone(),
        ))
        .abort_handle();
        tokio::spawn(write_loop(write_half, rx, shared.clone()));
        Self {
            inner: Arc::new(Inner {
                label,
                info,
                client_id: settings.client_id.clone(),
                request_timeout: settings.request_timeout,
                writer: tx,
                shared,
                in_flight: Semaphore::new(settings.max_in_flight),
                next_correlation_id: AtomicI32::new(next_id),
                reader,
                retire_at,
                max_in_flight: u32::try_from(settings.max_in_flight).unwrap_or(u32::MAX),
                sasl: settings.sasl.clone(),
                reauthentications: AtomicU64::new(0),
                retired: AtomicBool::new(false),
            }),
        }
    }

    /// What was negotiated at setup.
    pub fn info(&self) -> &ConnectionInfo {
        &self.inner.info
    }

    /// The broker's address, for messages.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// Whether the connection can still carry requests.
    pub fn is_alive(&self) -> bool {
        self.inner.shared.lock().closed.is_none() && !self.is_retiring()
    }

    /// How many times this connection's SASL session was renewed in place (KIP-368).
    pub fn reauthentications(&self) -> u64 {
        self.inner.reauthentications.load(Ordering::Relaxed)
    }

    /// Whether the SASL session is close to the lifetime the broker announced (KIP-368) and
    /// the mechanism cannot renew it in place. The broker closes such a connection at
    /// expiry; the client stops using it beforehand and opens a fresh, newly authenticated
    /// one, while requests already sent finish here.
    pub fn is_retiring(&self) -> bool {
        self.inner.retired.load(Ordering::Relaxed)
            || self.inner.retire_at.is_some_and(|t| Instant::now() >= t)
    }

    /// Closes the connection; outstanding requests fail with a disconnect error.
    pub fn close(&self) {
        self.inner.shared.close(CloseReason::Disconnected(
            "because the client closed it".into(),
        ));
    }

    /// The version negotiated for request type `R`, or an error naming the API when the
    /// broker is too old.
    pub fn version<R: Request>(&self) -> Result<i16> {
        let key = ApiKey::try_from(R::KEY)
            .map_err(|_| Error::Config(format!("request type with unknown API key {}", R::KEY)))?;
        self.inner
            .info
            .api_versions
            .chosen(key)
            .ok_or_else(|| Error::UnsupportedVersion {
                broker: self.inner.label.clone(),
                api: support_for(key).map(|s| s.name).unwrap_or("an API"),
                min: support_for(key).map(|s| s.min).unwrap_or(0),
                offered: self.inner.info.api_versions.offered(key),
            })
    }

    /// Sends `request` at the negotiated version and waits for its response.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response> {
        let version = self.version::<R>()?;
        self.send_at(request, version, Duration::ZERO).await
    }

    /// Sends `request` at `version`. `extra_wait` is added to the request timeout for
    /// requests the broker may legitimately hold (Fetch's max_wait).
    pub async fn send_at<R: Request>(
        &self,
        request: &R,
        version: i16,
        extra_wait: Duration,
    ) -> Result<R::Response> {
        // The semaphore is never closed, so acquire cannot fail.
        let _permit = self
            .inner
            .in_flight
            .acquire()
            .await
            .map_err(|_| self.closed_error(&api_name(R::KEY)))?;
        self.exchange(request, version, extra_wait, false).await
    }

    /// Sends `request` and waits for its response, without taking an in-flight permit (the
    /// caller holds one, or all of them). `secret` frames are zeroed once written.
    async fn exchange<R: Request>(
        &self,
        request: &R,
        version: i16,
        extra_wait: Duration,
        secret: bool,
    ) -> Result<R::Response> {
        let inner = &self.inner;
        let api = api_name(R::KEY);
        let correlation_id = self.next_correlation_id();
        let frame = encode_request(request, version, correlation_id, &inner.client_id)
            .map_err(|detail| Error::Config(format!("{api} v{version}: {detail}")))?;

        let (tx, rx) = oneshot::channel();
        {
            let mut st = inner.shared.lock();
            if st.closed.is_some() {
                drop(st);
                return Err(self.closed_error(&api));
            }
            st.pending.insert(correlation_id, tx);
        }
        if inner.writer.send(Outgoing { frame, secret }).await.is_err() {
            inner.shared.lock().pending.remove(&correlation_id);
            return Err(self.closed_error(&api));
        }

        let limit = inner.request_timeout + extra_wait;
        let frame = match tokio::time::timeout(limit, rx).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(_)) => return Err(self.closed_error(&api)),
            Err(_) => {
                // A response may still arrive later and would then match nothing; a clean
                // reconnect is simpler and safer than tracking abandoned ids.
                inner.shared.close(CloseReason::Disconnected(format!(
                    "after a {api} request timed out"
                )));
                return Err(Error::Timeout {
                    broker: inner.label.clone(),
                    what: format!("the {api} response"),
                    after: limit,
                    hint: "The broker may be overloaded or the network failing; the connection was \
                           closed. Raise request_timeout_ms if the broker is just slow.",
                });
            }
        };
        decode_response::<R>(frame, version).map_err(|detail| {
            let detail = format!("{api} v{version}: {detail}");
            inner.shared.close(CloseReason::Protocol(detail.clone()));
            Error::Protocol {
                broker: inner.label.clone(),
                detail,
            }
        })
    }

    fn next_correlation_id(&self) -> i32 {
        // Correlation ids only need to be unique among requests in flight; keep them positive.
        self.inner
            .next_correlation_id
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_abs()
    }

    fn closed_error(&self, api: &str) -> Error {
        let reason = self.inner.shared.lock().closed.clone();
        let broker = self.inner.label.clone();
        match reason {
            Some(CloseReason::Protocol(detail)) => Error::Protocol { broker, detail },
            Some(CloseReason::Disconnected(why)) => Error::Disconnected {
                broker,
                context: format!("{why} (while waiting for a {api} response)"),
            },
            None => Error::Disconnected {
                broker,
                context: format!("while waiting for a {api} response"),
            },
        }
    }
}

async fn read_loop(
    mut reader: ReadHalf<MaybeTlsStream>,
    shared: Arc<Shared>,
    max_response_bytes: usize,
    label: String,
) {
    loop {
        match read_frame(&mut reader, max_response_bytes).await {
            Ok(frame) => {
                let id = peek_correlation_id(&frame);
                let waiter = shared.lock().pending.remove(&id);
                match waiter {
                    // The requester may have given up (its future was dropped); that is fine.
                    Some(tx) => drop(tx.send(frame)),
                    None => {
                        shared.close(CloseReason::Protocol(format!(
                            "a response carried correlation id {id}, which matches no request in flight"
                        )));
                        return;
                    }
                }
            }
            Err(e) => {
                let reason = match e {
                    FrameError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        CloseReason::Disconnected("by the broker".into())
                    }
                    FrameError::Io(e) => {
                        CloseReason::Disconnected(format!("after a read error on {label}: {e}"))
                    }
                    other => CloseReason::Protocol(describe_frame_error(&other)),
                };
                shared.close(reason);
                return;
            }
        }
    }
}

async fn write_loop(
    mut writer: WriteHalf<MaybeTlsStream>,
    mut frames: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
) {
    async fn write(writer: &mut WriteHalf<MaybeTlsStream>, out: Outgoing) -> std::io::Result<()> {
        let result = writer.write_all(&out.frame).await;
        if out.secret {
            sasl::wipe(out.frame);
        }
        result
    }
    while let Some(out) = frames.recv().await {
        let mut result = write(&mut writer, out).await;
        // Write whatever else is queued before flushing, so concurrent requests share a flush.
        while result.is_ok() {
            match frames.try_recv() {
                Ok(next) => result = write(&mut writer, next).await,
                Err(_) => break,
            }
        }
        if result.is_ok() {
            result = writer.flush().await;
        }
        if let Err(e) = result {
            shared.close(CloseReason::Disconnected(format!(
                "after a write error: {e}"
            )));
            return;
        }
    }
    let _ = writer.shutdown().await;
}

pub(crate) fn describe_frame_error(e: &FrameError) -> String {
    match e {
        FrameError::Io(e) => e.to_string(),
        FrameError::TooLarge { announced, max } => format!(
            "it announced a {announced}-byte response, more than max_response_bytes ({max})"
        ),
        FrameError::TooSmall(n) => {
            format!("it announced a {n}-byte response, too short for a header")
        }
    }
}

/// The shared connection as a transport for a re-authentication: its requests bypass the
/// in-flight permits, which the re-authentication holds all of.
struct Reauthentication<'a>(&'a Connection);

impl SaslTransport for Reauthentication<'_> {
    async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        _hint: &'static str,
    ) -> Result<R::Response> {
        self.0
            .exchange(request, version, Duration::ZERO, true)
            .await
    }
}

impl Connection {
    /// Runs the SASL exchange again on this connection (KIP-368), once every request in
    /// flight has finished and before any new one is sent, and returns when to do it next.
    async fn reauthenticate(&self) -> Result<Option<Instant>> {
        let inner = &self.inner;
        let Some(mechanism) = inner.sasl.clone() else {
            return Ok(None);
        };
        // Fresh credentials first, while requests still flow; a failure is the exchange's
        // to report if the current credentials no longer do.
        if let Err(e) = mechanism.prepare().await {
            tracing::warn!(broker = %inner.label, error = %e, "could not renew the SASL credentials before re-authenticating");
        }
        // Fair semaphore: requests that arrive now queue behind this and wait for it.
        let _all = inner
            .in_flight
            .acquire_many(inner.max_in_flight)
            .await
            .map_err(|_| self.closed_error("SaslHandshake"))?;
        if inner.shared.lock().closed.is_some() {
            return Ok(None);
        }
        let started = Instant::now();
        let session = authenticate(
            &mut Reauthentication(self),
            &inner.info.broker,
            &inner.label,
            &inner.info.api_versions,
            mechanism.as_ref(),
        )
        .await?;
        inner.reauthentications.fetch_add(1, Ordering::Relaxed);
        let next = reauthentication_due(session.authenticated_at, session.session_lifetime_ms);
        // Kafka refuses a re-authentication begun within a second of the previous one. A
        // session that short (credentials about to expire) is left to end: the connection
        // takes no new requests and the pool opens a fresh one.
        if next.is_some_and(|at| at < started + MIN_REAUTHENTICATION_INTERVAL) {
            inner.retired.store(true, Ordering::Relaxed);
            tracing::debug!(broker = %inner.label, lifetime_ms = session.session_lifetime_ms, "the SASL session is too short to renew; retiring the connection");
            return Ok(None);
        }
        tracing::debug!(
            broker = %inner.label,
            lifetime_ms = session.session_lifetime_ms,
            "re-authenticated the connection's SASL session"
        );
        Ok(next)
    }
}

/// Renews a connection's SASL session before the broker ends it, for as long as the
/// connection lives. Holds only a weak reference between renewals, so that it never keeps a
/// dropped connection open.
async fn reauthenticate_loop(connection: Weak<Inner>, first: Instant) {
    let mut when = first;
    loop {
        tokio::time::sleep_until(when).await;
        let Some(inner) = connection.upgrade() else {
            return;
        };
        let connection = Connection { inner };
        match connection.reauthenticate().await {
            Ok(Some(next)) => when = next,
            Ok(None) => return,
            Err(e) => {
                // Requests waiting for this connection fail and the client opens a new one,
                // whose authentication then reports the cause in full.
                tracing::warn!(broker = %connection.label(), error = %e, "re-authentication failed; closing the connection");
                connection
                    .inner
                    .shared
                    .close(CloseReason::Disconnected(format!(
                        "because re-authenticating its SASL session failed: {e}"
                    )));
                return;
            }
        }
    }
}

/// The shortest time between two re-authentications a Kafka broker accepts.
const MIN_REAUTHENTICATION_INTERVAL: Duration = Duration::from_secs(1);

/// When to renew a SASL session that lasts `lifetime_ms` from `start`: at 80% of the
/// lifetime, moved by up to ±5 s (at most 5% of the lifetime) of jitter so that many
/// connections do not renew at once, never sooner than 30 s unless 80% of the lifetime is
/// shorter, and never later than 90% of it. `None` when the broker does not expire sessions.
fn reauthentication_due(start: Instant, lifetime_ms: i64) -> Option<Instant> {
    let jitter = rand::random_range(-1.0..=1.0);
    reauthentication_delay(lifetime_ms, jitter).map(|d| start + d)
}

/// [`reauthentication_due`]'s delay, with `jitter` in -1..=1 chosen by the caller.
fn reauthentication_delay(lifetime_ms: i64, jitter: f64) -> Option<Duration> {
    let lifetime = Duration::from_millis(u64::try_from(lifetime_ms).ok().filter(|l| *l > 0)?);
    let target = lifetime.mul_f64(0.8);
    let spread = Duration::from_secs(5).min(lifetime.mul_f64(0.05));
    let moved = if jitter >= 0.0 {
        target + spread.mul_f64(jitter.min(1.0))
    } else {
        target.saturating_sub(spread.mul_f64((-jitter).min(1.0)))
    };
    let floor = Duration::from_secs(30).min(target);
    Some(moved.max(floor).min(lifetime.mul_f64(0.9)))
}

/// When a connection whose SASL session lasts `lifetime_ms` should stop taking new requests:
/// at 85% of the lifetime, leaving room for requests in flight to finish before the broker
/// closes it. `None` when the broker does not expire sessions.
fn retirement(started: Instant, lifetime_ms: i64) -> Option<Instant> {
    let lifetime = Duration::from_millis(u64::try_from(lifetime_ms).ok().filter(|l| *l > 0)?);
    Some(started + lifetime.mul_f64(0.85))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_renewed_at_80_percent_with_bounded_jitter() {
        let ms = Duration::from_millis;
        assert_eq!(reauthentication_delay(0, 0.0), None);
        assert_eq!(reauthentication_delay(-5, 0.0), None);
        // An hour: 48 min ± 5 s.
        assert_eq!(reauthentication_delay(3_600_000, 0.0), Some(ms(2_880_000)));
        assert_eq!(reauthentication_delay(3_600_000, 1.0), Some(ms(2_885_000)));
        assert_eq!(reauthentication_delay(3_600_000, -1.0), Some(ms(2_875_000)));
        // 40 s: 32 s, jitter 2 s down is held at the 30 s floor.
        assert_eq!(reauthentication_delay(40_000, -1.0), Some(ms(30_000)));
        assert_eq!(reauthentication_delay(40_000, 1.0), Some(ms(34_000)));
        // 3 s (a test broker): the floor gives way to the lifetime, 2.4 s to 2.55 s.
        assert_eq!(reauthentication_delay(3_000, -1.0), Some(ms(2_400)));
        assert_eq!(reauthentication_delay(3_000, 1.0), Some(ms(2_550)));
        for jitter in [-1.0, -0.3, 0.0, 0.7, 1.0] {
            for lifetime in [1_000, 3_000, 37_000, 600_000, 86_400_000] {
                let d = reauthentication_delay(lifetime, jitter).unwrap();
                assert!(d <= ms(lifetime as u64).mul_f64(0.9), "{lifetime} {jitter}");
                assert!(d >= ms(30_000).min(ms(lifetime as u64).mul_f64(0.8)));
            }
        }
    }

    #[test]
    fn sessions_retire_before_the_broker_expires_them() {
        let t0 = Instant::now();
        assert_eq!(retirement(t0, 0), None);
        assert_eq!(retirement(t0, -1), None);
        assert_eq!(
            retirement(t0, 60_000),
            Some(t0 + Duration::from_millis(51_000))
        );
    }
}

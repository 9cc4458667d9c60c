//! SASL GSSAPI: Kerberos V5 as Kafka speaks it (RFC 4752 with no security layer), through the
//! system's MIT Kerberos library. Built only with the `gssapi` cargo feature.
//!
//! # Credentials
//!
//! Each [`Gssapi`] value logs in from its keytab into its own in-memory credential cache
//! (`MEMORY:kafka-backup-...`), with MIT's `gss_acquire_cred_from` and a credential store of
//! `client_keytab` (the keytab) and `ccache` (that cache). So:
//!
//! - the user's default cache (`KRB5CCNAME`, `default_ccache_name`) is never read, so a
//!   stale or foreign ticket there cannot be used, and nothing is written to disk;
//! - no process-wide environment (`KRB5CCNAME`, `KRB5_CLIENT_KTNAME`) is set, so several
//!   mechanisms with different keytabs can live in one process;
//! - MIT obtains a new TGT from the keytab by itself when the current one nears its end, so
//!   a long backup keeps working without a renewal thread of ours;
//! - the cache is destroyed when the last exchange using it is dropped, so its tickets and
//!   session keys do not outlive the mechanism in memory.
//!
//! The login happens in [`Gssapi::new`], which therefore talks to the KDC: an unreachable
//! KDC or a key the KDC refuses is reported at configuration time.
//!
//! # The broker's service principal
//!
//! [`start`](SaslMechanism::start) targets the host-based service `SERVICE@HOST`, with HOST
//! exactly as the client connects to the broker (bootstrap_servers, then the advertised
//! listeners in metadata). This code does no reverse DNS and no canonicalisation; what MIT
//! does with the name is up to the user's krb5.conf (`rdns`, `dns_canonicalize_hostname`,
//! `[domain_realm]`). The first exchange with a broker asks the KDC for its service ticket,
//! which is then cached in the mechanism's memory cache.
//!
//! # krb5.conf
//!
//! MIT reads its configuration from the file named by `KRB5_CONFIG` and has no per-call way
//! to name another file. [`set_krb5_config`] therefore sets `KRB5_CONFIG` once, before the
//! first Kerberos call of the process, and refuses a second, different value: one krb5.conf
//! per process.
//!
//! # The exchange
//!
//! 1. `gss_init_sec_context` tokens (AP-REQ, then the broker's AP-REP) until the context is
//!    established with mutual authentication: the broker has proven it holds the service
//!    key. The client then sends an empty message, as Java's client does.
//! 2. The broker sends a wrapped 4-byte message: the security layers it offers and its
//!    maximum message size. The client answers, wrapped with integrity only, with layer 0x01
//!    (none), maximum size 0 and its principal as authorization identity, as Kafka's Java
//!    client does.
//! 3. The broker's final (empty) answer ends the exchange.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext};
use libgssapi::credential::Cred;
use libgssapi::error::{Error as GssError, MajorFlags};
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_NT_HOSTBASED_SERVICE};
use libgssapi_sys as sys;

use super::{SaslError, SaslExchange, SaslMechanism, SaslStep, shorten};
use crate::address::BrokerAddress;

/// The mechanism name in SaslHandshake.
pub const MECHANISM: &str = "GSSAPI";

/// RFC 4752 security layer bit for "no security layer", the only one Kafka uses.
const LAYER_NONE: u8 = 0x01;

/// Real AP-REP and wrap tokens are a few hundred bytes; the bound keeps a hostile broker
/// from handing megabytes to the Kerberos library.
const MAX_SERVER_MESSAGE_LEN: usize = 64 * 1024;

/// DER of the Kerberos V5 mechanism OID 1.2.840.113554.1.2.2.
const KRB5_MECH_OID: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02";
/// DER of the Kerberos principal name type OID 1.2.840.113554.1.2.2.1
/// (GSS_KRB5_NT_PRINCIPAL_NAME): `primary/instance@REALM`, parsed by krb5 as is.
const KRB5_PRINCIPAL_NAME_OID: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01";

/// How a [`Gssapi`] mechanism is configured.
///
/// `Debug` is safe to log: a keytab holds keys, but this holds only its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssapiConfig {
    /// The primary of the brokers' service principals, `kafka` for `kafka/HOST@REALM`
    /// (configuration key `sasl_kerberos_service_name`).
    pub service_name: String,
    /// The keytab to log in with (`sasl_keytab_path`). Only read, never written.
    pub keytab_path: PathBuf,
    /// The client principal, e.g. `backup@EXAMPLE.COM` (`sasl_kerberos_principal`). `None`
    /// uses the keytab's first principal.
    pub principal: Option<String>,
    /// The krb5.conf to use (`sasl_krb5_config_path`). `None` uses what the process uses: a
    /// path set earlier (by another mechanism or [`set_krb5_config`]), else `KRB5_CONFIG`
    /// from the environment, else /etc/krb5.conf. One file per process: see
    /// [`set_krb5_config`].
    pub krb5_config_path: Option<PathBuf>,
}

/// SASL GSSAPI (Kerberos V5) with credentials from a keytab, shared by every connection.
/// See the [module documentation](self) for how credentials are kept.
pub struct Gssapi {
    service_name: String,
    principal: String,
    keytab_path: PathBuf,
    cache: Arc<MemoryCache>,
}

impl Gssapi {
    /// Checks the configuration, then logs in: reads the keytab and gets a TGT from the KDC
    /// into a new in-memory credential cache. Errors say what to fix (keytab unreadable or
    /// without the principal, KDC unreachable or refusing the key, clock skew).
    ///
    /// This blocks while the KDC answers (MIT's own timeouts apply when it does not): inside
    /// an async runtime, call it from a blocking context (`spawn_blocking`).
    pub fn new(config: GssapiConfig) -> Result<Self, SaslError> {
        let GssapiConfig {
            service_name,
            keytab_path,
            principal,
            krb5_config_path,
        } = config;
        check_service_name(&service_name)?;
        if let Some(principal) = &principal {
            check_principal(principal)?;
        }
        // Before any Kerberos call of ours: MIT reads the variable when it builds a context.
        if let Some(path) = &krb5_config_path {
            set_krb5_config(path)?;
        } else {
            KRB5_CONFIG.lock().unwrap_or_else(|e| e.into_inner()).used = true;
        }
        check_keytab(&keytab_path)?;

        let cache = may_block(|| MemoryCache::login(&keytab_path, principal.as_deref()))?;
        let principal = cache.principal.clone();
        tracing::debug!(
            principal = %principal,
            keytab = %keytab_path.display(),
            "Kerberos login from keytab into an in-memory credential cache"
        );
        Ok(Self {
            service_name,
            principal,
            keytab_path,
            cache: Arc::new(cache),
        })
    }

    /// The service name brokers' principals start with (`kafka`).
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The keytab this mechanism logged in with.
    pub fn keytab_path(&self) -> &Path {
        &self.keytab_path
    }

    /// Starts an exchange with `broker`: the concrete type behind
    /// [`SaslMechanism::start`], for tests and callers that want to inspect it.
    pub fn exchange(&self, broker: &BrokerAddress) -> Result<GssapiExchange, SaslError> {
        let target = format!("{}@{}", self.service_name, broker.host);
        let name = Name::new(target.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE)).map_err(|e| {
            SaslError::Setup(format!(
                "Kerberos cannot use the service name `{}` for broker {}: {}",
                shorten(&target, 200),
                shorten(&broker.host, 200),
                gss_text(&e)
            ))
        })?;
        // Mutual authentication: the broker proves it holds the service key. Integrity is
        // needed for the wrapped security-layer messages; confidentiality is requested as
        // Java's client does, although no security layer is used afterwards.
        let flags =
            CtxFlags::GSS_C_MUTUAL_FLAG | CtxFlags::GSS_C_INTEG_FLAG | CtxFlags::GSS_C_CONF_FLAG;
        let ctx = ClientCtx::new(
            Some(self.cache.cred.clone()),
            name,
            flags,
            Some(GSS_MECH_KRB5),
        );
        Ok(GssapiExchange {
            ctx,
            phase: Phase::Start,
            service_name: self.service_name.clone(),
            host: broker.host.clone(),
            principal: self.principal.clone(),
            _cache: Arc::clone(&self.cache),
        })
    }
}

impl fmt::Debug for Gssapi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gssapi")
            .field("service_name", &self.service_name)
            .field("principal", &self.principal)
            .field("keytab_path", &self.keytab_path)
            .finish_non_exhaustive()
    }
}

impl SaslMechanism for Gssapi {
    fn name(&self) -> &str {
        MECHANISM
    }

    fn principal(&self) -> Option<&str> {
        Some(&self.principal)
    }

    fn start(&self, broker: &BrokerAddress) -> Result<Box<dyn SaslExchange>, SaslError> {
        Ok(Box::new(self.exchange(broker)?))
    }
}

/// Which step an exchange is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    /// Sent an init_sec_context token, waiting for the broker's.
    Context,
    /// Context established, waiting for the broker's wrapped security-layer offer.
    SecurityLayer,
    /// Sent the wrapped choice, waiting for the broker's final (empty) message.
    Final,
    Done,
    Failed,
}

/// One GSSAPI exchange with one broker.
pub struct GssapiExchange {
    // Dropped before `_cache`: the context holds a handle on the cache's credential.
    ctx: ClientCtx,
    phase: Phase,
    service_name: String,
    host: String,
    principal: String,
    _cache: Arc<MemoryCache>,
}

impl fmt::Debug for GssapiExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GssapiExchange")
            .field(
                "target",
                &format_args!("{}@{}", self.service_name, self.host),
            )
            .field("principal", &self.principal)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl SaslExchange for GssapiExchange {
    fn step(&mut self, server_message: Option<&[u8]>) -> Result<SaslStep, SaslError> {
        let result = self.advance(server_message);
        if result.is_err() {
            self.phase = Phase::Failed;
        }
        result
    }
}

impl GssapiExchange {
    fn advance(&mut self, server_message: Option<&[u8]>) -> Result<SaslStep, SaslError> {
        if let Some(message) = server_message
            && message.len() > MAX_SERVER_MESSAGE_LEN
        {
            return Err(SaslError::MalformedServerMessage(format!(
                "a GSSAPI message of {} bytes from the broker, more than the {MAX_SERVER_MESSAGE_LEN} a Kerberos exchange needs",
                message.len()
            )));
        }
        match (self.phase, server_message) {
            (Phase::Start, None) => match may_block(|| self.ctx.step(None, None)) {
                Ok(Some(token)) => {
                    self.phase = Phase::Context;
                    Ok(SaslStep::Respond(token.to_vec()))
                }
                Ok(None) => Err(SaslError::Setup(
                    "Kerberos finished the security context without a token for the broker"
                        .to_owned(),
                )),
                Err(e) => Err(self.explain(Stage::Initiate, &e)),
            },
            (Phase::Context, Some(message)) => {
                match may_block(|| self.ctx.step(Some(message), None)) {
                    Ok(token) => {
                        let token = token.map(|t| t.to_vec()).unwrap_or_default();
                        if self.ctx.is_complete() {
                            self.established()?;
                            self.phase = Phase::SecurityLayer;
                        }
                        // An empty message after the context is complete, as RFC 4752 and
                        // Java's client send it.
                        Ok(SaslStep::Respond(token))
                    }
                    Err(e) => Err(self.explain(Stage::BrokerReply, &e)),
                }
            }
            (Phase::SecurityLayer, Some(message)) => self.choose_security_layer(message),
            (Phase::Final, Some(message)) => {
                if !message.is_empty() {
                    return Err(SaslError::MalformedServerMessage(format!(
                        "the broker sent {} bytes after the GSSAPI exchange was complete, where Kafka sends none",
                        message.len()
                    )));
                }
                self.phase = Phase::Done;
                Ok(SaslStep::Done)
            }
            (Phase::Done, _) => Err(SaslError::OutOfSequence(
                "stepped after the exchange finished",
            )),
            (Phase::Failed, _) => Err(SaslError::OutOfSequence(
                "stepped after the exchange failed",
            )),
            (Phase::Start, Some(_)) => Err(SaslError::OutOfSequence(
                "the first step takes no broker message",
            )),
            (_, None) => Err(SaslError::OutOfSequence("a broker message is needed")),
        }
    }

    /// The context is complete: insist the broker proved its identity.
    fn established(&self) -> Result<(), SaslError> {
        let flags = self
            .ctx
            .flags()
            .map_err(|e| self.explain(Stage::BrokerReply, &e))?;
        if !flags.contains(CtxFlags::GSS_C_MUTUAL_FLAG) {
            return Err(SaslError::ServerRejected(format!(
                "the Kerberos context with {}@{} was established without mutual authentication, \
                 so the broker did not prove it holds the service key",
                self.service_name,
                shorten(&self.host, 200)
            )));
        }
        if !flags.contains(CtxFlags::GSS_C_INTEG_FLAG) {
            return Err(SaslError::ServerRejected(
                "the Kerberos context has no integrity protection, which the GSSAPI security-layer step needs"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// RFC 4752 section 3.1: read the broker's offer, answer "no security layer" with our
    /// principal as authorization identity.
    fn choose_security_layer(&mut self, message: &[u8]) -> Result<SaslStep, SaslError> {
        let offer = self.ctx.unwrap(message).map_err(|e| {
            SaslError::MalformedServerMessage(format!(
                "the broker's GSSAPI security-layer message did not unwrap: {}",
                gss_text(&e)
            ))
        })?;
        if offer.len() != 4 {
            return Err(SaslError::MalformedServerMessage(format!(
                "the broker's GSSAPI security-layer message has {} bytes, not 4",
                offer.len()
            )));
        }
        if offer[0] & LAYER_NONE == 0 {
            return Err(SaslError::ServerRejected(format!(
                "the broker requires a SASL security layer (offered {:#04x}); Kafka clients use \
                 none (0x01), with TLS (SASL_SSL) for protection",
                offer[0]
            )));
        }
        // Layer "none" and a maximum size of 0 (no wrapped messages follow), then the
        // authorization identity: our own principal, as Kafka's Java client sends it.
        let mut choice = vec![LAYER_NONE, 0, 0, 0];
        choice.extend_from_slice(self.principal.as_bytes());
        let wrapped = self.ctx.wrap(false, &choice).map_err(|e| {
            SaslError::Setup(format!(
                "Kerberos could not wrap the GSSAPI security-layer answer: {}",
                gss_text(&e)
            ))
        })?;
        self.phase = Phase::Final;
        Ok(SaslStep::Respond(wrapped.to_vec()))
    }

    fn explain(&self, stage: Stage, error: &GssError) -> SaslError {
        explain(
            stage,
            error,
            &Subject {
                principal: Some(&self.principal),
                keytab: None,
                service: Some((&self.service_name, &self.host)),
            },
        )
    }
}

mod explain;
mod login;

use explain::*;
pub use login::set_krb5_config;
use login::*;

/// Runs a Kerberos call that may wait for the KDC (a login, a service ticket for a new
/// broker). On a multi-threaded tokio runtime the worker first hands its other tasks to
/// another thread, so timers and sockets keep being served; elsewhere the call just runs.
fn may_block<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

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
use crate::config::BrokerAddress;

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

// MIT krb5 error codes (krb5.h, com_err table "krb5"), as GSSAPI minor status codes.
const KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN: i32 = -1765328378;
const KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN: i32 = -1765328377;
const KRB5KDC_ERR_POLICY: i32 = -1765328372;
const KRB5KDC_ERR_ETYPE_NOSUPP: i32 = -1765328370;
const KRB5KDC_ERR_CLIENT_REVOKED: i32 = -1765328366;
const KRB5KDC_ERR_KEY_EXP: i32 = -1765328361;
const KRB5KDC_ERR_PREAUTH_FAILED: i32 = -1765328360;
const KRB5KRB_AP_ERR_BAD_INTEGRITY: i32 = -1765328353;
const KRB5KRB_AP_ERR_TKT_EXPIRED: i32 = -1765328352;
const KRB5KRB_AP_ERR_NOT_US: i32 = -1765328349;
const KRB5KRB_AP_ERR_SKEW: i32 = -1765328347;
const KRB5KRB_AP_ERR_MODIFIED: i32 = -1765328343;
const KRB5KRB_AP_ERR_BADKEYVER: i32 = -1765328340;
const KRB5KRB_AP_ERR_NOKEY: i32 = -1765328339;
const KRB5_CONFIG_CANTOPEN: i32 = -1765328249;
const KRB5_CONFIG_BADFORMAT: i32 = -1765328248;
const KRB5_REALM_UNKNOWN: i32 = -1765328230;
const KRB5_KDC_UNREACH: i32 = -1765328228;
const KRB5_KT_NOTFOUND: i32 = -1765328203;
const KRB5_FCC_NOFILE: i32 = -1765328189;
const KRB5_CC_NOTFOUND: i32 = -1765328243;
const KRB5_KT_END: i32 = -1765328202;
const KRB5_KEYTAB_BADVNO: i32 = -1765328171;
const KRB5_ERR_HOST_REALM_UNKNOWN: i32 = -1765328167;
const KRB5_REALM_CANT_RESOLVE: i32 = -1765328164;
const KRB5_KT_KVNONOTFOUND: i32 = -1765328154;
const KRB5_KT_FORMAT: i32 = -1765328149;
// MIT's krb5 GSSAPI mechanism codes (com_err table "k5g", gssapi_err_krb5.h).
const KG_KEYTAB_NOMATCH: i32 = 39756033;
const KG_EMPTY_CCACHE: i32 = 39756044;

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

        let cache = MemoryCache::login(&keytab_path, principal.as_deref())?;
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

    /// Kafka brokers can re-authenticate GSSAPI sessions, but that is not tested here yet,
    /// so connections are replaced instead.
    fn reauthenticates(&self) -> bool {
        false
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
            (Phase::Start, None) => match self.ctx.step(None, None) {
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
            (Phase::Context, Some(message)) => match self.ctx.step(Some(message), None) {
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
            },
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

/// Where a Kerberos call failed, which decides whose fault it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Logging in from the keytab (AS exchange with the KDC).
    Login,
    /// Building the first token for a broker (TGS exchange with the KDC).
    Initiate,
    /// Processing the broker's reply token.
    BrokerReply,
}

/// What a message may name, for the operator.
struct Subject<'a> {
    principal: Option<&'a str>,
    keytab: Option<&'a Path>,
    service: Option<(&'a str, &'a str)>,
}

/// Maps a GSSAPI failure to an error that says what to fix. The library's own message is
/// kept at the end (it names principals and realms, never keys); it must be formatted on
/// the failing thread right away, because MIT keeps the detail in thread-local state.
fn explain(stage: Stage, error: &GssError, subject: &Subject<'_>) -> SaslError {
    let detail = gss_text(error);
    let minor = error.minor as i32;
    let principal = subject.principal.unwrap_or("the keytab's first principal");
    let keytab = subject
        .keytab
        .map(|p| format!("keytab {}", p.display()))
        .unwrap_or_else(|| "the keytab".to_owned());
    let service = subject
        .service
        .map(|(s, h)| (s.to_owned(), shorten(h, 200)))
        .unwrap_or_else(|| ("kafka".to_owned(), "HOST".to_owned()));
    let fix = match minor {
        KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN => format!(
            "the KDC does not know the broker's service principal {0}/{1}: the host in \
             bootstrap_servers and in the brokers' advertised listeners must match the broker's \
             service principal {0}/HOST exactly (no reverse DNS is done; krb5.conf's \
             dns_canonicalize_hostname and [domain_realm] apply), and \
             sasl_kerberos_service_name must be its first part",
            service.0, service.1
        ),
        KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN => format!(
            "the KDC does not know the client principal {principal}: check \
             sasl_kerberos_principal and that the keytab belongs to this realm"
        ),
        // MIT falls back to the credential cache when the client keytab cannot supply the
        // principal; ours is a fresh memory cache, so "no cache" means "not in the keytab".
        KRB5_KT_NOTFOUND | KRB5_KT_KVNONOTFOUND | KG_KEYTAB_NOMATCH | KG_EMPTY_CCACHE
        | KRB5_FCC_NOFILE | KRB5_CC_NOTFOUND
            if stage == Stage::Login =>
        {
            format!(
                "{keytab} has no key for {principal}: export one for it (`ktadd -k`) or set \
                 sasl_kerberos_principal to a principal `klist -k` lists"
            )
        }
        KRB5_KT_END | KRB5_KT_FORMAT | KRB5_KEYTAB_BADVNO => {
            format!(
                "{keytab} is empty or not a keytab: export it again with `ktadd -k` or `ktutil`"
            )
        }
        KRB5KRB_AP_ERR_SKEW => "the clocks of this machine and the KDC or the broker differ by \
             more than the allowed skew (5 minutes by default): synchronise them (NTP)"
            .to_owned(),
        KRB5_KDC_UNREACH | KRB5_REALM_CANT_RESOLVE => format!(
            "no KDC answered: check that the realm's KDC is up and reachable from here, and \
             the realm's `kdc` entries in krb5.conf ({})",
            krb5_config_description()
        ),
        KRB5_REALM_UNKNOWN | KRB5_ERR_HOST_REALM_UNKNOWN => format!(
            "krb5.conf ({}) does not say which realm to use: set default_realm, a [realms] \
             entry, or [domain_realm] for the broker's host",
            krb5_config_description()
        ),
        KRB5_CONFIG_CANTOPEN | KRB5_CONFIG_BADFORMAT => format!(
            "the Kerberos configuration ({}) cannot be read or parsed",
            krb5_config_description()
        ),
        KRB5KDC_ERR_PREAUTH_FAILED | KRB5KRB_AP_ERR_BAD_INTEGRITY if stage == Stage::Login => {
            format!(
                "the KDC refused {keytab}'s key for {principal}: the keytab is stale (the \
                 principal's key changed since it was exported); export a new one"
            )
        }
        KRB5KDC_ERR_KEY_EXP | KRB5KDC_ERR_CLIENT_REVOKED | KRB5KDC_ERR_POLICY => format!(
            "the KDC refuses tickets to {principal} (key expired, account locked or disabled, \
             or a KDC policy): ask the Kerberos administrators"
        ),
        KRB5KDC_ERR_ETYPE_NOSUPP => format!(
            "the KDC and {keytab} share no encryption type for {principal}: export keys with \
             an encryption type the KDC allows (e.g. aes256-cts-hmac-sha1-96)"
        ),
        KRB5KRB_AP_ERR_MODIFIED
        | KRB5KRB_AP_ERR_BADKEYVER
        | KRB5KRB_AP_ERR_NOKEY
        | KRB5KRB_AP_ERR_NOT_US
        | KRB5KRB_AP_ERR_BAD_INTEGRITY => {
            return SaslError::ServerRejected(format!(
                "Kerberos says the broker's key for {}/{} does not match the KDC's (the \
                 broker's keytab is stale, or the host names a different broker): {detail}",
                service.0, service.1
            ));
        }
        KRB5KRB_AP_ERR_TKT_EXPIRED => {
            "the Kerberos ticket expired and could not be renewed from the keytab".to_owned()
        }
        _ => match stage {
            Stage::BrokerReply
                if error.major.intersects(
                    MajorFlags::GSS_S_DEFECTIVE_TOKEN
                        | MajorFlags::GSS_S_BAD_SIG
                        | MajorFlags::GSS_S_BAD_MIC
                        | MajorFlags::GSS_S_DEFECTIVE_CREDENTIAL,
                ) =>
            {
                return SaslError::ServerRejected(format!(
                    "the broker's Kerberos reply did not verify, so the broker could not prove \
                     it is {}/{}: {detail}",
                    service.0, service.1
                ));
            }
            Stage::Login => format!("Kerberos login as {principal} from {keytab} failed"),
            Stage::Initiate => format!(
                "Kerberos could not get a ticket for the broker's service {}/{}",
                service.0, service.1
            ),
            Stage::BrokerReply => "Kerberos refused the broker's reply".to_owned(),
        },
    };
    SaslError::Setup(format!("{fix} (Kerberos: {detail})"))
}

/// The GSSAPI library's text for an error, on one line and bounded.
fn gss_text(error: &GssError) -> String {
    shorten(error.to_string().trim(), 600)
}

/// Brokers' service names are one principal component: `kafka`, not `kafka/host`.
fn check_service_name(service_name: &str) -> Result<(), SaslError> {
    if service_name.is_empty() {
        return Err(SaslError::Setup(
            "sasl_kerberos_service_name is empty; set it to the first part of the brokers' \
             Kerberos principals (usually `kafka`, for kafka/HOST@REALM)"
                .to_owned(),
        ));
    }
    if service_name.contains(['/', '@', '\0']) || service_name.chars().any(char::is_whitespace) {
        return Err(SaslError::Setup(format!(
            "sasl_kerberos_service_name `{}` must be only the first part of the brokers' \
             principals (e.g. `kafka` for kafka/HOST@REALM), without `/`, `@` or spaces",
            shorten(service_name, 64)
        )));
    }
    Ok(())
}

fn check_principal(principal: &str) -> Result<(), SaslError> {
    if principal.is_empty() || principal.contains('\0') {
        return Err(SaslError::Setup(
            "sasl_kerberos_principal is empty or contains NUL; set it to a principal such as \
             backup@EXAMPLE.COM, or leave it unset to use the keytab's first principal"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Opens the keytab ourselves first, so a missing or unreadable file is reported with the
/// operating system's reason instead of Kerberos' "no credentials".
fn check_keytab(path: &Path) -> Result<(), SaslError> {
    if path.as_os_str().is_empty() {
        return Err(SaslError::Setup(
            "sasl_keytab_path is empty; set it to the keytab of the client principal".to_owned(),
        ));
    }
    let mut header = [0u8; 2];
    let read = File::open(path).and_then(|mut f| f.read_exact(&mut header));
    match read {
        // MIT keytab files start with version 0x0501 or 0x0502.
        Ok(()) if header[0] == 0x05 && (header[1] == 0x01 || header[1] == 0x02) => Ok(()),
        Ok(()) => Err(SaslError::Setup(format!(
            "keytab {} is not a Kerberos keytab file (export one with `ktadd -k` or `ktutil`)",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(SaslError::Setup(format!(
            "keytab {} is empty: export the client principal's keys into it with `ktadd -k`",
            path.display()
        ))),
        Err(e) => Err(SaslError::Setup(format!(
            "cannot read keytab {} ({e}): check sasl_keytab_path and that this user may read it",
            path.display()
        ))),
    }
}

/// The process's krb5.conf setting: MIT has one configuration per process in practice.
struct Krb5ConfigState {
    /// The path set through [`set_krb5_config`], if any.
    path: Option<PathBuf>,
    /// Whether Kerberos was used with the configuration as it was (so changing it now would
    /// give two mechanisms different realms' settings half-way).
    used: bool,
}

static KRB5_CONFIG: Mutex<Krb5ConfigState> = Mutex::new(Krb5ConfigState {
    path: None,
    used: false,
});

/// Points MIT Kerberos at `path` for the whole process, by setting `KRB5_CONFIG`.
///
/// MIT has no way to give GSSAPI a configuration file other than this variable, so one
/// krb5.conf per process is supported: calling again with the same path is fine, a different
/// path (or a path after a mechanism already used the default configuration) is an error.
///
/// Setting an environment variable is only safe while no other thread reads the environment
/// through the C library. [`Gssapi::new`] calls this before its first Kerberos call; a
/// program should call it early, before starting threads (an async runtime), when it can.
pub fn set_krb5_config(path: &Path) -> Result<(), SaslError> {
    let mut state = KRB5_CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    match &state.path {
        Some(current) if current == path => return Ok(()),
        Some(current) => {
            return Err(SaslError::Setup(format!(
                "sasl_krb5_config_path {} differs from {}, already in use in this process; \
                 MIT Kerberos reads one krb5.conf per process, so every GSSAPI connection must \
                 use the same file",
                path.display(),
                current.display()
            )));
        }
        None if state.used => {
            return Err(SaslError::Setup(format!(
                "sasl_krb5_config_path {} was given after Kerberos was already used with {} in \
                 this process; MIT Kerberos reads one krb5.conf per process, so set it for \
                 every GSSAPI connection or for none",
                path.display(),
                krb5_config_description_of(None)
            )));
        }
        None => {}
    }
    if let Err(e) = File::open(path) {
        return Err(SaslError::Setup(format!(
            "cannot read the krb5.conf {} ({e}): check sasl_krb5_config_path",
            path.display()
        )));
    }
    // SAFETY: environment writes race with C code reading the environment on other threads.
    // This runs before this process's first Kerberos call (checked above under the lock), so
    // krb5 itself is not reading it; std's own readers take the same lock as `set_var`. The
    // remaining risk, another library calling getenv at this instant, is why the function
    // documents that it should be called early, before threads are started.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("KRB5_CONFIG", path);
    }
    state.path = Some(path.to_owned());
    state.used = true;
    Ok(())
}

/// Which krb5.conf is in effect, for messages.
fn krb5_config_description() -> String {
    let state = KRB5_CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    krb5_config_description_of(state.path.as_deref())
}

fn krb5_config_description_of(path: Option<&Path>) -> String {
    match path {
        Some(path) => format!("sasl_krb5_config_path {}", path.display()),
        None => match std::env::var_os("KRB5_CONFIG") {
            Some(value) => format!("KRB5_CONFIG={}", Path::new(&value).display()),
            None => "the default /etc/krb5.conf".to_owned(),
        },
    }
}

/// A credential in its own in-memory cache. Fields drop in order: the credential is released
/// first, then the cache is destroyed (MIT keeps MEMORY caches, tickets and session keys
/// included, until they are destroyed).
struct MemoryCache {
    cred: Cred,
    principal: String,
    _ccache: CacheDestroyer,
}

/// Destroys the named cache when dropped.
struct CacheDestroyer(CString);

impl Drop for CacheDestroyer {
    fn drop(&mut self) {
        krb5::destroy_ccache(&self.0);
    }
}

/// Distinguishes the caches of one process; with the pid and a random part, names never
/// collide with another cache in the process (MEMORY caches are per process).
static NEXT_CACHE: AtomicU64 = AtomicU64::new(0);

impl MemoryCache {
    fn login(keytab: &Path, principal: Option<&str>) -> Result<Self, SaslError> {
        let keytab_c = CString::new(keytab.as_os_str().as_bytes()).map_err(|_| {
            SaslError::Setup(format!(
                "sasl_keytab_path {} contains a NUL byte",
                keytab.display()
            ))
        })?;
        // Made before the login, so a cache a failed login left behind is destroyed too.
        let ccache = CacheDestroyer(
            CString::new(format!(
                "MEMORY:kafka-backup-{}-{}-{:016x}",
                std::process::id(),
                NEXT_CACHE.fetch_add(1, Ordering::Relaxed),
                rand::random::<u64>()
            ))
            .expect("no NUL in a formatted cache name"),
        );
        let subject = Subject {
            principal,
            keytab: Some(keytab),
            service: None,
        };
        let cred = acquire_from_keytab(principal, &keytab_c, &ccache.0)
            .map_err(|e| explain(Stage::Login, &e, &subject))?;
        // The principal the library chose (the keytab's first one when none was named),
        // for reports and as the authorization identity.
        let name = cred
            .name()
            .map_err(|e| explain(Stage::Login, &e, &subject))?;
        Ok(MemoryCache {
            cred,
            principal: name.to_string(),
            _ccache: ccache,
        })
    }
}

/// Frees a GSSAPI name this module imported.
struct ImportedName(sys::gss_name_t);

impl Drop for ImportedName {
    fn drop(&mut self) {
        if !self.0.is_null() {
            let mut minor: sys::OM_uint32 = 0;
            // SAFETY: the name came from gss_import_name and is released once.
            #[allow(unsafe_code)]
            unsafe {
                sys::gss_release_name(&mut minor, &mut self.0);
            }
        }
    }
}

/// `gss_acquire_cred_from` with the cred store `client_keytab` = `keytab`, `ccache` =
/// `ccache`, for `principal` (or, when `None`, the keytab's first principal), Kerberos only.
/// The safe crate does not wrap this MIT extension, hence the raw call.
#[allow(unsafe_code)]
fn acquire_from_keytab(
    principal: Option<&str>,
    keytab: &CStr,
    ccache: &CStr,
) -> Result<Cred, GssError> {
    let failed = |major: u32, minor: u32| GssError {
        major: MajorFlags::from_bits_retain(major),
        minor,
    };
    let mut minor: sys::OM_uint32 = 0;
    let mut name = ImportedName(ptr::null_mut());
    if let Some(principal) = principal {
        let mut name_oid = sys::gss_OID_desc {
            length: KRB5_PRINCIPAL_NAME_OID.len() as sys::OM_uint32,
            elements: KRB5_PRINCIPAL_NAME_OID.as_ptr() as *mut c_void,
        };
        let mut buffer = sys::gss_buffer_desc {
            length: principal.len(),
            value: principal.as_ptr() as *mut c_void,
        };
        // SAFETY: every pointer is valid for the call; gss_import_name copies the buffer
        // and does not keep the OID, and the output name is owned by `name`.
        let major =
            unsafe { sys::gss_import_name(&mut minor, &mut buffer, &mut name_oid, &mut name.0) };
        if major != sys::GSS_S_COMPLETE {
            return Err(failed(major, minor));
        }
    }
    let mut mech_oid = sys::gss_OID_desc {
        length: KRB5_MECH_OID.len() as sys::OM_uint32,
        elements: KRB5_MECH_OID.as_ptr() as *mut c_void,
    };
    let mut mechs = sys::gss_OID_set_desc {
        count: 1,
        elements: &mut mech_oid,
    };
    let mut elements = [
        sys::gss_key_value_element_desc {
            key: c"client_keytab".as_ptr(),
            value: keytab.as_ptr(),
        },
        sys::gss_key_value_element_desc {
            key: c"ccache".as_ptr(),
            value: ccache.as_ptr(),
        },
    ];
    let store = sys::gss_key_value_set_desc {
        count: elements.len() as sys::OM_uint32,
        elements: elements.as_mut_ptr(),
    };
    let mut cred: sys::gss_cred_id_t = ptr::null_mut();
    // SAFETY: all inputs outlive the call and MIT copies what it keeps (the store's strings
    // are resolved into its own keytab and ccache handles); the output credential is handed
    // to `Cred`, which releases it exactly once.
    let major = unsafe {
        sys::gss_acquire_cred_from(
            &mut minor,
            name.0,
            sys::_GSS_C_INDEFINITE,
            &mut mechs,
            sys::GSS_C_INITIATE as sys::gss_cred_usage_t,
            &store,
            &mut cred,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if major != sys::GSS_S_COMPLETE {
        return Err(failed(major, minor));
    }
    // SAFETY: `cred` is a fresh credential from gss_acquire_cred_from, owned by nobody else.
    Ok(unsafe { Cred::from_c(cred) })
}

/// The three krb5 calls needed to destroy a MEMORY cache, which GSSAPI has no call for.
#[allow(unsafe_code)]
mod krb5 {
    use super::{CStr, c_char, c_int, c_void, ptr};

    type Krb5Context = *mut c_void;
    type Krb5Ccache = *mut c_void;

    #[link(name = "krb5")]
    unsafe extern "C" {
        fn krb5_init_context(context: *mut Krb5Context) -> c_int;
        fn krb5_free_context(context: Krb5Context);
        fn krb5_cc_resolve(
            context: Krb5Context,
            name: *const c_char,
            cache: *mut Krb5Ccache,
        ) -> c_int;
        fn krb5_cc_destroy(context: Krb5Context, cache: Krb5Ccache) -> c_int;
    }

    /// Destroys the named cache; failures are ignored (the cache may already be gone, and
    /// nothing else can be done from a destructor).
    pub(super) fn destroy_ccache(name: &CStr) {
        let mut context: Krb5Context = ptr::null_mut();
        // SAFETY: standard krb5 usage: a context of our own, a cache handle resolved from a
        // NUL-terminated name and consumed by krb5_cc_destroy, then the context freed.
        unsafe {
            if krb5_init_context(&mut context) != 0 {
                return;
            }
            let mut cache: Krb5Ccache = ptr::null_mut();
            if krb5_cc_resolve(context, name.as_ptr(), &mut cache) == 0 {
                krb5_cc_destroy(context, cache);
            }
            krb5_free_context(context);
        }
    }
}

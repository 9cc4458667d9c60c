//! Kerberos and GSSAPI failures turned into what to fix: the MIT status codes that say whose
//! fault it is (a principal the KDC does not know, a keytab without the key, clock skew, an
//! unreachable KDC), named in terms of the configuration keys.

// The mechanism's imports and items: this file is a part of it, split out by job.
use super::*;

// MIT krb5 error codes (krb5.h, com_err table "krb5"), as GSSAPI minor status codes.
pub(super) const KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN: i32 = -1765328378;
pub(super) const KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN: i32 = -1765328377;
pub(super) const KRB5KDC_ERR_POLICY: i32 = -1765328372;
pub(super) const KRB5KDC_ERR_ETYPE_NOSUPP: i32 = -1765328370;
pub(super) const KRB5KDC_ERR_CLIENT_REVOKED: i32 = -1765328366;
pub(super) const KRB5KDC_ERR_KEY_EXP: i32 = -1765328361;
pub(super) const KRB5KDC_ERR_PREAUTH_FAILED: i32 = -1765328360;
pub(super) const KRB5KRB_AP_ERR_BAD_INTEGRITY: i32 = -1765328353;
pub(super) const KRB5KRB_AP_ERR_TKT_EXPIRED: i32 = -1765328352;
pub(super) const KRB5KRB_AP_ERR_NOT_US: i32 = -1765328349;
pub(super) const KRB5KRB_AP_ERR_SKEW: i32 = -1765328347;
pub(super) const KRB5KRB_AP_ERR_MODIFIED: i32 = -1765328343;
pub(super) const KRB5KRB_AP_ERR_BADKEYVER: i32 = -1765328340;
pub(super) const KRB5KRB_AP_ERR_NOKEY: i32 = -1765328339;
pub(super) const KRB5_CONFIG_CANTOPEN: i32 = -1765328249;
pub(super) const KRB5_CONFIG_BADFORMAT: i32 = -1765328248;
pub(super) const KRB5_REALM_UNKNOWN: i32 = -1765328230;
pub(super) const KRB5_KDC_UNREACH: i32 = -1765328228;
pub(super) const KRB5_KT_NOTFOUND: i32 = -1765328203;
pub(super) const KRB5_FCC_NOFILE: i32 = -1765328189;
pub(super) const KRB5_CC_NOTFOUND: i32 = -1765328243;
pub(super) const KRB5_KT_END: i32 = -1765328202;
pub(super) const KRB5_KEYTAB_BADVNO: i32 = -1765328171;
pub(super) const KRB5_ERR_HOST_REALM_UNKNOWN: i32 = -1765328167;
pub(super) const KRB5_REALM_CANT_RESOLVE: i32 = -1765328164;
pub(super) const KRB5_KT_KVNONOTFOUND: i32 = -1765328154;
pub(super) const KRB5_KT_FORMAT: i32 = -1765328149;
// MIT's krb5 GSSAPI mechanism codes (com_err table "k5g", gssapi_err_krb5.h).
pub(super) const KG_KEYTAB_NOMATCH: i32 = 39756033;
pub(super) const KG_EMPTY_CCACHE: i32 = 39756044;

/// Where a Kerberos call failed, which decides whose fault it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Logging in from the keytab (AS exchange with the KDC).
    Login,
    /// Building the first token for a broker (TGS exchange with the KDC).
    Initiate,
    /// Processing the broker's reply token.
    BrokerReply,
}

/// What a message may name, for the operator.
pub(super) struct Subject<'a> {
    pub(super) principal: Option<&'a str>,
    pub(super) keytab: Option<&'a Path>,
    pub(super) service: Option<(&'a str, &'a str)>,
}

/// Maps a GSSAPI failure to an error that says what to fix. The library's own message is
/// kept at the end (it names principals and realms, never keys); it must be formatted on
/// the failing thread right away, because MIT keeps the detail in thread-local state.
pub(super) fn explain(stage: Stage, error: &GssError, subject: &Subject<'_>) -> SaslError {
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
pub(super) fn gss_text(error: &GssError) -> String {
    shorten(error.to_string().trim(), 600)
}

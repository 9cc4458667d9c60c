//! A bearer token and what the client reads from it: when it expires, whose it is, and, for
//! messages, its audience and scope. The signature is the broker's to check, not ours.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::secret::Secret;

/// The longest a token is taken to live, whatever it says: renewals are planned over it.
const MAX_LIFE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Tokens are short strings; a megabyte-long one is a mistake or an attack.
pub(crate) const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// An access token with its expiry.
#[derive(Clone)]
pub struct BearerToken {
    /// The token as sent to the broker.
    pub(crate) value: Secret,
    /// When the token stops being valid.
    pub(crate) expires_at: SystemTime,
    /// When it was obtained: refreshes are scheduled over `obtained_at..expires_at`.
    pub(crate) obtained_at: SystemTime,
    /// The claims read from a JWT, for principals and messages.
    pub(crate) claims: Claims,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken")
            .field("value", &self.value)
            .field("expires_at", &self.expires_at)
            .field("claims", &self.claims)
            .finish()
    }
}

/// The JWT claims the client uses. None of them is secret.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Claims {
    /// `sub`: the principal the broker will see.
    pub sub: Option<String>,
    /// `aud`, as a list.
    pub aud: Vec<String>,
    /// `scope` (space separated) or `scp`.
    pub scope: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub exp: Option<u64>,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    #[serde(default)]
    aud: Option<OneOrMany>,
    scope: Option<OneOrMany>,
    scp: Option<OneOrMany>,
    exp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_list(self, split_spaces: bool) -> Vec<String> {
        match self {
            Self::One(s) if split_spaces => s.split_whitespace().map(str::to_owned).collect(),
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// Reads the claims of a JWT without checking its signature (the broker does that).
/// `Ok(None)` when the token is not a JWT at all (an opaque token); an error when it looks
/// like a JWT but its payload does not parse.
pub(crate) fn peek_claims(token: &str) -> Result<Option<Claims>, String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Ok(None);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .map_err(|_| "its payload is not base64url".to_owned())?;
    let raw: RawClaims = serde_json::from_slice(&payload)
        .map_err(|e| format!("its payload is not a JSON claims object ({e})"))?;
    let exp = match raw.exp {
        Some(e) if e.is_finite() && e >= 0.0 => Some(e as u64),
        Some(_) => return Err("its exp claim is not a time".to_owned()),
        None => None,
    };
    Ok(Some(Claims {
        sub: raw.sub,
        aud: raw.aud.map(|a| a.into_list(false)).unwrap_or_default(),
        scope: raw
            .scope
            .or(raw.scp)
            .map(|s| s.into_list(true))
            .unwrap_or_default(),
        exp,
    }))
}

impl BearerToken {
    /// Builds a token from its text, taking the expiry from the JWT's `exp` claim, else from
    /// `expires_in` (seconds, as a token endpoint says). `source` names where it came from,
    /// for errors.
    pub(crate) fn new(
        value: String,
        expires_in: Option<u64>,
        now: SystemTime,
        source: &str,
    ) -> Result<Self, String> {
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(format!("{source} gave an empty token"));
        }
        if value.len() > MAX_TOKEN_BYTES {
            return Err(format!(
                "{source} gave a token of {} bytes, more than the {MAX_TOKEN_BYTES} a bearer token can be",
                value.len()
            ));
        }
        // RFC 6750 b64token characters; anything else cannot travel in the SASL message.
        if let Some(c) = value.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '='))
        }) {
            return Err(format!(
                "{source} gave a token with the character {:?}, which a bearer token cannot hold",
                if c.is_control() { '?' } else { c }
            ));
        }
        let claims = peek_claims(&value)
            .map_err(|e| format!("{source} gave a JWT that cannot be read: {e}"))?;
        // Past a year is as good as a year: no arithmetic overflow from a hostile number.
        let cap = now + MAX_LIFE;
        let at = |base: SystemTime, secs: u64| {
            base.checked_add(Duration::from_secs(secs))
                .map_or(cap, |t| t.min(cap))
        };
        let from_claims = claims
            .as_ref()
            .and_then(|c| c.exp)
            .map(|exp| at(UNIX_EPOCH, exp));
        let from_response = expires_in.map(|s| at(now, s));
        let expires_at = match (from_claims, from_response) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => {
                return Err(format!(
                    "{source} gave a token without an expiry (no JWT exp claim and no expires_in), \
                     so it cannot be refreshed in time; the identity provider must issue expiring tokens"
                ));
            }
        };
        if expires_at <= now {
            return Err(format!(
                "{source} gave a token that has already expired ({} s ago); check the clock of this \
                 machine and of the identity provider",
                now.duration_since(expires_at).unwrap_or_default().as_secs()
            ));
        }
        Ok(Self {
            value: Secret::new(value),
            expires_at,
            obtained_at: now,
            claims: claims.unwrap_or_default(),
        })
    }

    /// Whether the token is still valid at `now`.
    pub(crate) fn valid_at(&self, now: SystemTime) -> bool {
        now < self.expires_at
    }

    /// What an operator needs to know about a token a broker refused: whose it is, for which
    /// audience and scope, and how long it has left. Never the token itself.
    pub(crate) fn describe(&self, now: SystemTime) -> String {
        let mut parts = Vec::new();
        if let Some(sub) = &self.claims.sub {
            parts.push(format!("sub {}", super::super::shorten(sub, 128)));
        }
        if !self.claims.aud.is_empty() {
            parts.push(format!(
                "audience {}",
                super::super::shorten(&self.claims.aud.join(", "), 200)
            ));
        } else {
            parts.push("no audience".to_owned());
        }
        if !self.claims.scope.is_empty() {
            parts.push(format!(
                "scope {}",
                super::super::shorten(&self.claims.scope.join(" "), 200)
            ));
        }
        match self.expires_at.duration_since(now) {
            Ok(left) => parts.push(format!("expires in {} s", left.as_secs())),
            Err(e) => parts.push(format!("expired {} s ago", e.duration().as_secs())),
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode("signature")
        )
    }

    #[test]
    fn jwt_claims_give_expiry_principal_audience_and_scope() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let t = BearerToken::new(
            jwt(r#"{"sub":"kb-backup","aud":["kafka","x"],"scope":"kafka read","exp":1600}"#),
            Some(3600),
            now,
            "the endpoint",
        )
        .unwrap();
        // exp is earlier than expires_in: the token's own claim wins.
        assert_eq!(t.expires_at, UNIX_EPOCH + Duration::from_secs(1600));
        assert_eq!(t.claims.sub.as_deref(), Some("kb-backup"));
        assert_eq!(t.claims.aud, ["kafka", "x"]);
        assert_eq!(t.claims.scope, ["kafka", "read"]);
        assert_eq!(
            t.describe(now),
            "sub kb-backup, audience kafka, x, scope kafka read, expires in 600 s"
        );
        assert!(!format!("{t:?}").contains(t.value.expose()));
    }

    #[test]
    fn opaque_tokens_need_expires_in_and_bad_tokens_are_refused() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let t = BearerToken::new("opaque-token".into(), Some(60), now, "e").unwrap();
        assert_eq!(t.expires_at, now + Duration::from_secs(60));
        let e = BearerToken::new("opaque-token".into(), None, now, "e").unwrap_err();
        assert!(e.contains("without an expiry"), "{e}");
        let e = BearerToken::new(jwt(r#"{"exp":900}"#), None, now, "e").unwrap_err();
        assert!(e.contains("already expired (100 s ago)"), "{e}");
        let e = BearerToken::new("a.%%%.c".into(), Some(5), now, "e").unwrap_err();
        assert!(e.contains("character '%'"), "{e}");
        let e = BearerToken::new("a.bm90LWpzb24.c".into(), Some(5), now, "e").unwrap_err();
        assert!(e.contains("not a JSON claims object"), "{e}");
        // Absurd expiries do not overflow: a year at most.
        let t = BearerToken::new("opaque".into(), Some(u64::MAX), now, "e").unwrap();
        assert_eq!(t.expires_at, now + MAX_LIFE);
        let t = BearerToken::new(jwt(r#"{"exp":1e300}"#), None, now, "e").unwrap();
        assert_eq!(t.expires_at, now + MAX_LIFE);
        let e = BearerToken::new("  ".into(), Some(5), now, "e").unwrap_err();
        assert!(e.contains("empty token"), "{e}");
        let e = BearerToken::new("a".repeat(MAX_TOKEN_BYTES + 1), Some(5), now, "e").unwrap_err();
        assert!(e.contains("more than"), "{e}");
    }
}

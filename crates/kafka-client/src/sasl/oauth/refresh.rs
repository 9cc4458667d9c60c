//! Keeps a valid token at hand: obtained before the first connection, renewed in the
//! background at about 80% of its life, and re-read from a token file when the file changes
//! (Kubernetes rotates projected tokens in place). Connections take the current token
//! without waiting.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use tokio::io::AsyncReadExt;

use super::endpoint::TokenEndpoint;
use super::token::{BearerToken, MAX_TOKEN_BYTES};

/// How often a token file is checked for a new token.
const FILE_POLL: Duration = Duration::from_secs(5);
/// Bounds of the wait before retrying a failed refresh: it doubles with each failure in a
/// row, so an identity provider that is down is not hammered by every client.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Where tokens come from.
pub(crate) enum Source {
    /// The client-credentials grant.
    Endpoint(Box<TokenEndpoint>),
    /// A file someone else keeps current.
    File(PathBuf),
}

/// The current token and how to get the next.
pub(crate) struct Tokens {
    source: Source,
    state: Mutex<State>,
    refresher: AtomicBool,
    /// One request to the source at a time: connections that find the token stale together
    /// wait for the same answer instead of each asking.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    current: Option<BearerToken>,
    last_error: Option<String>,
    /// Failed attempts in a row, and when the next may be made.
    failures: u32,
    retry_at: Option<SystemTime>,
    /// The token file's modification time and length when last read.
    file_stamp: Option<(Option<SystemTime>, u64)>,
}

impl Tokens {
    pub(crate) fn new(source: Source) -> Self {
        Self {
            source,
            state: Mutex::new(State::default()),
            refresher: AtomicBool::new(false),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes sure a fresh token is at hand (one not yet past its renewal point), obtaining
    /// one if needed, and starts the background refresh. Called before the first connection
    /// and before each authentication, so that a session never starts on a token about to
    /// expire (the broker would end the session with the token). When a new token cannot be
    /// had but the current one is still valid, the current one is used and the failure
    /// kept for the refresher to retry.
    pub(crate) async fn prepare(self: &Arc<Self>) -> Result<(), String> {
        self.refresh(false).await?;
        if !self.refresher.swap(true, Ordering::SeqCst) {
            tokio::spawn(refresh_loop(Arc::downgrade(self)));
        }
        Ok(())
    }

    /// Obtains a new token unless the current one is still fresh (or `force`, for a token
    /// file that changed), or a failure asks to wait. Fails only when no valid token is left.
    async fn refresh(&self, force: bool) -> Result<(), String> {
        let _one_at_a_time = self.fetching.lock().await;
        // Checked under the lock: whoever held it may just have renewed the token.
        let now = SystemTime::now();
        let (fresh, valid, waiting) = {
            let state = self.state();
            let fresh = state
                .current
                .as_ref()
                .is_some_and(|t| refresh_at(t, 0.0) > now);
            let valid = state.current.as_ref().is_some_and(|t| t.valid_at(now));
            let waiting = state.retry_at.is_some_and(|at| at > now);
            (fresh, valid, waiting)
        };
        if (fresh && !force) || (waiting && valid && !force) {
            return Ok(());
        }
        if waiting && !valid {
            return Err(self.current().err().unwrap_or_default());
        }
        match self.obtain().await {
            Ok(token) => {
                self.store(token);
                Ok(())
            }
            Err(e) => {
                let mut state = self.state();
                state.failures = state.failures.saturating_add(1);
                let wait = retry_delay(state.failures, rand::random_range(0.0..=1.0));
                state.retry_at = Some(now + wait);
                state.last_error = Some(e.clone());
                tracing::warn!(
                    error = %e,
                    failures = state.failures,
                    retry_in_s = wait.as_secs(),
                    "could not renew the OAuth token; the current one is used while it lasts"
                );
                if valid { Ok(()) } else { Err(e) }
            }
        }
    }

    /// The token to present now. Fails when none is valid, with the reason the last refresh
    /// failed.
    pub(crate) fn current(&self) -> Result<BearerToken, String> {
        let state = self.state();
        match &state.current {
            Some(t) if t.valid_at(SystemTime::now()) => Ok(t.clone()),
            Some(t) => Err(format!(
                "the OAuth token expired {} s ago and could not be renewed{}",
                SystemTime::now()
                    .duration_since(t.expires_at)
                    .unwrap_or_default()
                    .as_secs(),
                state
                    .last_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )),
            None => Err(state
                .last_error
                .clone()
                .unwrap_or_else(|| "no OAuth token has been obtained yet".to_owned())),
        }
    }

    fn store(&self, token: BearerToken) {
        let mut state = self.state();
        state.current = Some(token);
        state.last_error = None;
        state.failures = 0;
        state.retry_at = None;
    }

    async fn obtain(&self) -> Result<BearerToken, String> {
        match &self.source {
            Source::Endpoint(endpoint) => endpoint.fetch().await,
            Source::File(path) => {
                let (token, stamp) = read_token_file(path).await?;
                self.state().file_stamp = Some(stamp);
                Ok(token)
            }
        }
    }

    /// Whether the token file changed since it was last read.
    async fn file_changed(&self, path: &Path) -> bool {
        let Ok(meta) = tokio::fs::metadata(path).await else {
            return false;
        };
        let stamp = (meta.modified().ok(), meta.len());
        self.state().file_stamp != Some(stamp)
    }

    /// How long to wait before the next look at the source.
    fn next_wait(&self) -> Duration {
        let now = SystemTime::now();
        let state = self.state();
        let until = |at: SystemTime| at.duration_since(now).unwrap_or_default();
        let due = match (&state.current, state.retry_at) {
            (_, Some(retry)) => until(retry),
            (Some(t), None) => until(refresh_at(t, rand::random_range(-1.0..=1.0))),
            (None, None) => RETRY_MIN,
        };
        match self.source {
            Source::File(_) => due.min(FILE_POLL),
            Source::Endpoint(_) => due,
        }
        .max(Duration::from_millis(100))
    }
}

/// The wait after `failures` failed attempts in a row: 1 s, doubling up to a minute, the
/// upper half of it chosen by `jitter` in 0..=1 so that clients started together spread out.
fn retry_delay(failures: u32, jitter: f64) -> Duration {
    let doubled = RETRY_MIN.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let ceiling = doubled.min(RETRY_MAX);
    ceiling.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// When to renew `token`: at 80% of its life, moved by up to ±5 s (at most 5% of the life)
/// so that many clients started together do not all ask at once.
fn refresh_at(token: &BearerToken, jitter: f64) -> SystemTime {
    let life = token
        .expires_at
        .duration_since(token.obtained_at)
        .unwrap_or_default();
    let spread = Duration::from_secs(5).min(life.mul_f64(0.05));
    let base = token.obtained_at + life.mul_f64(0.8);
    if jitter >= 0.0 {
        base + spread.mul_f64(jitter.min(1.0))
    } else {
        base - spread.mul_f64((-jitter).min(1.0))
    }
}

async fn refresh_loop(tokens: Weak<Tokens>) {
    loop {
        let wait = match tokens.upgrade() {
            Some(t) => t.next_wait(),
            None => return,
        };
        tokio::time::sleep(wait).await;
        let Some(tokens) = tokens.upgrade() else {
            return;
        };
        let changed = match &tokens.source {
            Source::File(path) => tokens.file_changed(path).await,
            Source::Endpoint(_) => false,
        };
        // Failures are logged and scheduled for a retry by `refresh` itself.
        let _ = tokens.refresh(changed).await;
    }
}

/// Reads a token file: a regular file of at most [`MAX_TOKEN_BYTES`], whose content (one
/// trailing newline aside) is the token.
async fn read_token_file(path: &Path) -> Result<(BearerToken, (Option<SystemTime>, u64)), String> {
    let name = path.display();
    let meta = tokio::fs::metadata(path).await.map_err(|e| {
        format!(
            "cannot read sasl_oauthbearer_token_file {name}: {e}; check the path and that the \
             token is mounted there"
        )
    })?;
    if !meta.is_file() {
        return Err(format!(
            "sasl_oauthbearer_token_file {name} is not a regular file"
        ));
    }
    if meta.len() > MAX_TOKEN_BYTES as u64 {
        return Err(format!(
            "sasl_oauthbearer_token_file {name} holds {} bytes, more than a token can be ({MAX_TOKEN_BYTES})",
            meta.len()
        ));
    }
    // Bounded by the read itself too: the file may grow between the check and the read.
    let mut bytes = Vec::new();
    tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot read sasl_oauthbearer_token_file {name}: {e}"))?
        .take(MAX_TOKEN_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("cannot read sasl_oauthbearer_token_file {name}: {e}"))?;
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(format!(
            "sasl_oauthbearer_token_file {name} holds more than a token can be ({MAX_TOKEN_BYTES} bytes)"
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("sasl_oauthbearer_token_file {name} is not UTF-8 text"))?;
    let token = BearerToken::new(
        text,
        None,
        SystemTime::now(),
        &format!("sasl_oauthbearer_token_file {name}"),
    )?;
    Ok((token, (meta.modified().ok(), meta.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use std::time::UNIX_EPOCH;

    fn jwt(sub: &str, exp: u64) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{sub}","exp":{exp}}}"#))
        )
    }

    #[test]
    fn renewal_is_due_at_80_percent_of_the_life() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let token = BearerToken::new(jwt("a", 1_003_600), None, t0, "t").unwrap();
        assert_eq!(refresh_at(&token, 0.0), t0 + Duration::from_secs(2880));
        assert_eq!(refresh_at(&token, 1.0), t0 + Duration::from_secs(2885));
        assert_eq!(refresh_at(&token, -1.0), t0 + Duration::from_secs(2875));
        let short = BearerToken::new(jwt("a", 1_000_010), None, t0, "t").unwrap();
        assert_eq!(refresh_at(&short, 1.0), t0 + Duration::from_millis(8_500));
    }

    #[test]
    fn failed_refreshes_back_off_to_a_minute() {
        let s = Duration::from_secs;
        assert_eq!(retry_delay(1, 1.0), s(1));
        assert_eq!(retry_delay(2, 1.0), s(2));
        assert_eq!(retry_delay(5, 1.0), s(16));
        assert_eq!(retry_delay(7, 1.0), s(60));
        assert_eq!(retry_delay(u32::MAX, 1.0), s(60));
        assert_eq!(retry_delay(7, 0.0), s(30));
    }

    #[tokio::test]
    async fn one_request_at_a_time_and_none_while_backing_off() {
        // A token endpoint that never answers successfully: nothing listens on the port.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let endpoint = TokenEndpoint::new(super::super::ClientCredentials {
            token_endpoint_url: format!("http://127.0.0.1:{port}/token"),
            client_id: "kb".into(),
            client_secret: crate::secret::Secret::new("s"),
            scope: None,
            ca_location: None,
            allow_http: true,
            timeout: Duration::from_secs(2),
        })
        .unwrap();
        let tokens = Arc::new(Tokens::new(Source::Endpoint(Box::new(endpoint))));
        let first = tokens.refresh(false).await.unwrap_err();
        assert!(first.contains("could not connect"), "{first}");
        assert_eq!(tokens.state().failures, 1);
        // Within the back-off nobody asks again: the same error, no new attempt.
        for _ in 0..5 {
            assert_eq!(tokens.refresh(false).await.unwrap_err(), first);
        }
        assert_eq!(tokens.state().failures, 1);
    }

    #[tokio::test]
    async fn a_token_file_is_read_and_reread_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        std::fs::write(&path, format!("{}\n", jwt("first", now + 600))).unwrap();
        let tokens = Arc::new(Tokens::new(Source::File(path.clone())));
        tokens.prepare().await.unwrap();
        assert_eq!(
            tokens.current().unwrap().claims.sub.as_deref(),
            Some("first")
        );
        assert!(!tokens.file_changed(&path).await);
        std::fs::write(&path, jwt("second-rotated", now + 900)).unwrap();
        assert!(tokens.file_changed(&path).await);
        // The refresher polls every few seconds; wait for it rather than calling it.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while tokens.current().unwrap().claims.sub.as_deref() != Some("second-rotated") {
            assert!(
                std::time::Instant::now() < deadline,
                "the rotated token was not picked up"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test]
    async fn a_missing_or_expired_token_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Arc::new(Tokens::new(Source::File(dir.path().join("nope"))));
        let e = missing.prepare().await.unwrap_err();
        assert!(
            e.contains("cannot read sasl_oauthbearer_token_file") && e.contains("nope"),
            "{e}"
        );
        let path = dir.path().join("old");
        std::fs::write(&path, jwt("x", 1_000)).unwrap();
        let e = Arc::new(Tokens::new(Source::File(path)))
            .prepare()
            .await
            .unwrap_err();
        assert!(e.contains("already expired"), "{e}");
        let e = Arc::new(Tokens::new(Source::File(dir.path().to_owned())))
            .prepare()
            .await
            .unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }
}

//! Authentication: [`Auth`] per service; for Exact Online the OAuth2 refresh-token flow
//! (exact-online.md §3) over a [`TokenStore`].
//!
//! Rules from §3 that the `TokenManager` keeps:
//! * access tokens live 600 s (`expires_in` arrives as the string `"600"`); a new one is
//!   asked for only when less than [`ClientOptions::refresh_margin`](super::ClientOptions)
//!   (30 s) remains **and** the current one is at least
//!   [`ClientOptions::min_token_age`](super::ClientOptions) (570 s) old — Exact refuses earlier
//!   refreshes and counts them as errors (§4.4);
//! * refresh tokens rotate (single use): the new pair is saved in the store before it is used;
//! * refreshes happen under the store's lock ([`TokenStore::lock`]), and after taking it the
//!   store is read again: if another task or process refreshed meanwhile, its tokens are used;
//! * 401 "Old refresh token used" means someone else refreshed: re-read the store, retry once.

use super::clock::{BoxFuture, Clock};
use super::error::{service_message, ClientError};
use std::sync::{Arc, Mutex};
use tracing::{debug, info, warn};

/// A credential: `Debug` and `Display` print `***`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

/// An OAuth2 token pair as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// When the access token expires (UTC epoch ms; counted from when the request was sent).
    pub expires_at_ms: i64,
    /// When the access token was received (UTC epoch ms); the 570-second rule counts from here.
    pub obtained_at_ms: i64,
}

/// Held while a refresh is in progress. The in-memory store wraps an async mutex guard; a
/// database store wraps its file lock or advisory-lock connection. Dropping it releases.
pub struct RefreshLock {
    _guard: Box<dyn Send + Sync>,
}

impl RefreshLock {
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        RefreshLock {
            _guard: Box::new(guard),
        }
    }
}

impl std::fmt::Debug for RefreshLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshLock")
    }
}

/// An error of a [`TokenStore`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenStoreError(pub String);

/// Where the Exact OAuth2 tokens live. Shared by every task and (for database-backed stores)
/// every process that uses the same app registration and user.
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// The current pair, if there is one.
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>>;
    /// Replaces the pair (durably, before the new tokens are used).
    fn save(&self, tokens: TokenSet) -> BoxFuture<'_, Result<(), TokenStoreError>>;
    /// Takes the refresh lock; at most one holder at a time, across everything sharing the
    /// store (in-process: an async mutex; later: a file lock / PostgreSQL advisory lock).
    fn lock(&self) -> BoxFuture<'_, Result<RefreshLock, TokenStoreError>>;
}

/// A [`TokenStore`] in memory (one process; clone the `Arc` to share it between clients).
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<Option<TokenSet>>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl MemoryTokenStore {
    pub fn new(tokens: Option<TokenSet>) -> Self {
        MemoryTokenStore {
            tokens: Mutex::new(tokens),
            lock: Arc::default(),
        }
    }

    /// A store holding a pair that was just granted at `now_ms` with a lifetime of `ttl_s`.
    pub fn with_fresh_tokens(access: Secret, refresh: Secret, now_ms: i64, ttl_s: i64) -> Self {
        Self::new(Some(TokenSet {
            access_token: access,
            refresh_token: refresh,
            expires_at_ms: now_ms + ttl_s * 1000,
            obtained_at_ms: now_ms,
        }))
    }

    /// The current pair (synchronously, for tests and status output).
    pub fn current(&self) -> Option<TokenSet> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>> {
        let t = self.current();
        Box::pin(async move { Ok(t) })
    }

    fn save(&self, tokens: TokenSet) -> BoxFuture<'_, Result<(), TokenStoreError>> {
        *self.tokens.lock().unwrap_or_else(|e| e.into_inner()) = Some(tokens);
        Box::pin(async { Ok(()) })
    }

    fn lock(&self) -> BoxFuture<'_, Result<RefreshLock, TokenStoreError>> {
        let m = self.lock.clone();
        Box::pin(async move { Ok(RefreshLock::new(m.lock_owned().await)) })
    }
}

/// Exact Online OAuth2 settings (§3).
#[derive(Clone, Debug)]
pub struct ExactOAuth2 {
    pub client_id: String,
    pub client_secret: Secret,
    /// `https://start.exactonline.nl/api/oauth2/token` (per country, §1.1).
    pub token_url: String,
    /// The registered redirect URI (used by the authorization-code exchange).
    pub redirect_uri: String,
    pub store: Arc<dyn TokenStore>,
}

impl ExactOAuth2 {
    /// The URL to send the user to for the first consent (§3: `/api/oauth2/auth` next to the
    /// token endpoint).
    pub fn authorize_url(&self, state: &str) -> Result<String, ClientError> {
        let base = self
            .token_url
            .strip_suffix("/token")
            .map(|b| format!("{b}/auth"))
            .ok_or_else(|| ClientError::Url {
                url: self.token_url.clone(),
                detail: "the token URL does not end in /token".into(),
            })?;
        let mut u = url::Url::parse(&base).map_err(|e| ClientError::Url {
            url: base.clone(),
            detail: e.to_string(),
        })?;
        u.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("force_login", "0")
            .append_pair("state", state);
        Ok(u.to_string())
    }
}

/// How requests to a service authenticate.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// `Authorization: Bearer …`.
    Bearer(Secret),
    /// HTTP basic authentication (user, password).
    Basic(String, Secret),
    /// Exact Online OAuth2 with rotating refresh tokens (§3).
    ExactOAuth2(ExactOAuth2),
}

/// What the token endpoint answers.
#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    expires_in: StrOrNum,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum StrOrNum {
    N(i64),
    S(String),
}

impl StrOrNum {
    fn secs(&self) -> Option<i64> {
        match self {
            StrOrNum::N(n) => Some(*n),
            StrOrNum::S(s) => s.trim().parse().ok(),
        }
    }
}

enum GrantError {
    /// 401 "Old refresh token used." (§3).
    RotatedRefreshToken,
    /// 400 "Rate limit exceeded: access_token not expired" (§3).
    TooEarly,
    Other(ClientError),
}

/// Keeps the access token of one [`ExactOAuth2`] app fresh (shared by the clones of a client).
#[derive(Debug)]
pub(crate) struct TokenManager {
    pub(crate) cfg: ExactOAuth2,
    cache: Mutex<Option<TokenSet>>,
    pub(crate) margin_ms: i64,
    pub(crate) min_age_ms: i64,
    pub(crate) grant_attempts: u32,
}

impl TokenManager {
    pub(crate) fn new(cfg: ExactOAuth2, margin_ms: i64, min_age_ms: i64) -> Self {
        TokenManager {
            cfg,
            cache: Mutex::new(None),
            margin_ms,
            min_age_ms,
            grant_attempts: 3,
        }
    }

    fn cached(&self) -> Option<TokenSet> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_cache(&self, t: &TokenSet) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.clone());
    }

    fn usable(&self, t: &TokenSet, now: i64) -> bool {
        now < t.expires_at_ms - self.margin_ms
    }

    async fn load(&self) -> Result<TokenSet, ClientError> {
        let t = self
            .cfg
            .store
            .load()
            .await
            .map_err(|e| ClientError::TokenStore(e.0))?
            .ok_or_else(|| {
                ClientError::Auth(
                    "the token store holds no tokens: log in first (authorization code, exact-online.md §3)".into(),
                )
            })?;
        self.set_cache(&t);
        Ok(t)
    }

    /// An access token to send. `rejected` is a token the service just answered 401
    /// "expired" for: a different one is returned if the store has it, or the pair is
    /// refreshed if the 570-second rule allows; otherwise the same token is returned once more.
    pub(crate) async fn access_token(
        &self,
        http: &reqwest::Client,
        clock: &dyn Clock,
        rejected: Option<&Secret>,
    ) -> Result<Secret, ClientError> {
        let t = match self.cached() {
            Some(t) => t,
            None => self.load().await?,
        };
        let now = clock.now_ms();
        if self.usable(&t, now) && rejected != Some(&t.access_token) {
            return Ok(t.access_token);
        }
        let _lock = self
            .cfg
            .store
            .lock()
            .await
            .map_err(|e| ClientError::TokenStore(e.0))?;
        let mut t = self.load().await?;
        let mut retried_rotation = false;
        loop {
            let now = clock.now_ms();
            if self.usable(&t, now) && rejected != Some(&t.access_token) {
                return Ok(t.access_token); // fresh, or refreshed by someone else meanwhile
            }
            let may_refresh_at = t.obtained_at_ms + self.min_age_ms;
            if now < may_refresh_at {
                if now < t.expires_at_ms {
                    debug!("access token rejected but too young to refresh (570 s rule); using it again");
                    return Ok(t.access_token);
                }
                // Expired by our clock before the refresh window opened: only with a clock
                // jump. Wait for the window rather than risk a refused early refresh.
                super::clock::sleep_until(clock, may_refresh_at).await;
                continue;
            }
            match self.grant(http, clock, &[("grant_type", "refresh_token"), ("refresh_token", t.refresh_token.expose())]).await {
                Ok(new) => {
                    self.cfg
                        .store
                        .save(new.clone())
                        .await
                        .map_err(|e| ClientError::TokenStore(e.0))?;
                    self.set_cache(&new);
                    info!(expires_at_ms = new.expires_at_ms, "access token refreshed");
                    return Ok(new.access_token);
                }
                Err(GrantError::RotatedRefreshToken) if !retried_rotation => {
                    retried_rotation = true;
                    warn!("refresh token already rotated by someone else; re-reading the token store");
                    let s = self.load().await?;
                    if s.refresh_token == t.refresh_token {
                        return Err(ClientError::Auth(
                            "the refresh token was already used (rotated) and the token store holds no newer one: a new consent (login) is needed".into(),
                        ));
                    }
                    t = s;
                }
                Err(GrantError::RotatedRefreshToken) => {
                    return Err(ClientError::Auth(
                        "the refresh token was already used (rotated): a new consent (login) is needed".into(),
                    ))
                }
                Err(GrantError::TooEarly) if now < t.expires_at_ms => {
                    warn!("token endpoint: too early to refresh; keeping the current access token");
                    return Ok(t.access_token);
                }
                Err(GrantError::TooEarly) => {
                    return Err(ClientError::Auth(
                        "the token endpoint refused the refresh as too early, and the access token has expired".into(),
                    ))
                }
                Err(GrantError::Other(e)) => return Err(e),
            }
        }
    }

    /// The authorization-code grant (first login); saves the pair under the lock.
    pub(crate) async fn exchange_code(
        &self,
        http: &reqwest::Client,
        clock: &dyn Clock,
        code: &str,
    ) -> Result<TokenSet, ClientError> {
        // The code arrives URL-encoded (`%21` for `!`, §3): decode it once.
        let decoded = percent_encoding::percent_decode_str(code)
            .decode_utf8_lossy()
            .into_owned();
        let _lock = self
            .cfg
            .store
            .lock()
            .await
            .map_err(|e| ClientError::TokenStore(e.0))?;
        let redirect = self.cfg.redirect_uri.clone();
        let t = self
            .grant(
                http,
                clock,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &decoded),
                    ("redirect_uri", &redirect),
                ],
            )
            .await
            .map_err(|e| match e {
                GrantError::Other(e) => e,
                GrantError::RotatedRefreshToken | GrantError::TooEarly => {
                    ClientError::Auth("the token endpoint refused the authorization code".into())
                }
            })?;
        self.cfg
            .store
            .save(t.clone())
            .await
            .map_err(|e| ClientError::TokenStore(e.0))?;
        self.set_cache(&t);
        Ok(t)
    }

    /// One grant at the token endpoint; an empty body or a 5xx is retried a few times (the
    /// server issued nothing then, §2.6).
    async fn grant(
        &self,
        http: &reqwest::Client,
        clock: &dyn Clock,
        form: &[(&str, &str)],
    ) -> Result<TokenSet, GrantError> {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("client_id", &self.cfg.client_id));
        fields.push(("client_secret", self.cfg.client_secret.expose()));
        let mut last = None;
        for attempt in 1..=self.grant_attempts.max(1) {
            if attempt > 1 {
                clock
                    .sleep(std::time::Duration::from_millis(500 * u64::from(attempt)))
                    .await;
            }
            let sent = clock.now_ms();
            let r = http
                .post(&self.cfg.token_url)
                .header(reqwest::header::ACCEPT, "application/json")
                .form(&fields)
                .send()
                .await;
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    last = Some(ClientError::Connection {
                        url: self.cfg.token_url.clone(),
                        detail: super::reqwest_detail(&e),
                    });
                    continue;
                }
            };
            let status = r.status().as_u16();
            let reason = r
                .headers()
                .get("reason")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = match r.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    last = Some(ClientError::Connection {
                        url: self.cfg.token_url.clone(),
                        detail: super::reqwest_detail(&e),
                    });
                    continue;
                }
            };
            let received = clock.now_ms();
            if status == 200 {
                match serde_json::from_slice::<TokenResponse>(&body) {
                    Ok(tr) => {
                        let ttl = tr.expires_in.secs().unwrap_or(600);
                        return Ok(TokenSet {
                            access_token: Secret(tr.access_token),
                            refresh_token: Secret(tr.refresh_token),
                            expires_at_ms: sent + ttl * 1000,
                            obtained_at_ms: received,
                        });
                    }
                    Err(_) => {
                        // Never echo the body: it may hold tokens.
                        last = Some(ClientError::Auth(format!(
                            "the token endpoint answered 200 with {} where a token response was expected",
                            if body.is_empty() { "an empty body".to_string() } else { format!("{} bytes that are not a token response", body.len()) }
                        )));
                        continue;
                    }
                }
            }
            let msg = service_message(&body);
            let lower = msg.to_ascii_lowercase();
            if lower.contains("old refresh token") {
                return Err(GrantError::RotatedRefreshToken);
            }
            if lower.contains("not expired")
                || reason.as_deref().is_some_and(|r| r.contains("TooEarly"))
            {
                return Err(GrantError::TooEarly);
            }
            let message = match reason {
                Some(r) => format!("{msg} (Reason: {r})"),
                None => msg,
            };
            let e = ClientError::Http {
                status,
                url: self.cfg.token_url.clone(),
                message,
            };
            if status >= 500 {
                last = Some(e);
                continue;
            }
            return Err(GrantError::Other(e));
        }
        Err(GrantError::Other(last.unwrap_or_else(|| {
            ClientError::Auth("the token endpoint could not be reached".into())
        })))
    }
}

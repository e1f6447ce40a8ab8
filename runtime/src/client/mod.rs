//! The HTTP client of the runtime (cargo feature `client`): typed, lazily paged reads of OData
//! V2/V3/V4 services, with Exact Online's rules built in (`shared/exact-online.md`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), odata_runtime::client::ClientError> {
//! use futures_util::TryStreamExt;
//! use odata_runtime::client::{Auth, Client, ExactOAuth2, MemoryTokenStore, Secret};
//! use std::sync::Arc;
//! let store = Arc::new(MemoryTokenStore::new(None)); // filled by exchange_authorization_code
//! let client = Client::builder("https://start.exactonline.nl/api/v1/{division}/")
//!     .auth(Auth::ExactOAuth2(ExactOAuth2 {
//!         client_id: "…".into(),
//!         client_secret: Secret::new("…"),
//!         token_url: "https://start.exactonline.nl/api/oauth2/token".into(),
//!         redirect_uri: "https://app.example/callback".into(),
//!         store,
//!     }))
//!     .build()?;
//! for division in client.divisions().await? {
//!     let rows = client
//!         .raw_rows(division, "bulk/Financial/GLAccounts")
//!         .select(["ID", "Code", "Description"])
//!         .filter("Code ge '8000'")
//!         .stream();
//!     futures_util::pin_mut!(rows);
//!     while let Some(row) = rows.try_next().await? {
//!         println!("{row}");
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! * Paging (§2.3): V2 `d.__next` (absolute; a loopback link naming `localhost` where we
//!   called `127.0.0.1` is accepted), V4 `@odata.nextLink` (relative links are resolved
//!   against the request URL); a link leaving the service is an error; `$skip` paging when
//!   asked for ([`Query::skip_paging`]); an empty page ends. `$select` is always sent for typed
//!   rows ([`Entity::SELECT`], §2.4), `Accept: application/json` (§2.1), and for V4
//!   `IEEE754Compatible=true`.
//! * Errors (§2.6): [`ClientError`]. Retries (§4.5) with bounded exponential back-off
//!   (`backon`); rate limits and the error budget (§4) in [`limits`]; OAuth2 (§3) in [`auth`].

pub mod auth;
pub mod call_budget;
pub mod clock;
mod error;
pub mod limits;
mod page;

pub use auth::{
    Auth, ExactOAuth2, MemoryTokenStore, RefreshLock, Secret, TokenSet, TokenStore, TokenStoreError,
};
pub use call_budget::{CallBudget, RateLimitHeaders, Reservation};
pub use clock::{BoxFuture, Clock, SystemClock};
pub use error::ClientError;
pub use limits::RateLimitInfo;

use crate::{Dialect, Entity};
use backon::BackoffBuilder;
use futures_util::Stream;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};
use url::Url;

/// Characters escaped in query option values. OData literals keep `$ , ' ( ) :` readable;
/// spaces become `%20` (not `+`, which some OData servers take literally).
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'=')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Tunables of a [`Client`]. Durations are of the client's [`Clock`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Attempts per request for retryable errors (5xx, 408, HTML pages, truncated bodies,
    /// connection errors), the first included.
    pub max_attempts: u32,
    /// First back-off delay; doubles up to `max_backoff` (with jitter).
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Errors (400/401/403/404) per (endpoint, division) per hour after which the client stops
    /// calling that endpoint; below Exact's limit of 10 (§4.4).
    pub error_budget_per_hour: usize,
    /// The longest rate-limit wait (a minutely reset, §4.1) the client sits out; a longer one
    /// (the daily limit) is an error.
    pub max_rate_limit_wait: Duration,
    /// How many 429 answers one request may wait out.
    pub max_429_waits: u32,
    /// Calls per minute and per day to leave unused in each division (for other processes of
    /// the same app, which share Exact's counters, §4.3): the client waits for the reset when
    /// a remaining count reaches this. 0 uses the whole limit.
    pub rate_limit_reserve: u64,
    /// Refresh the access token when less than this remains (§3: ~30 s).
    pub refresh_margin: Duration,
    /// Never refresh an access token younger than this (§3: Exact refuses within 570 s).
    pub min_token_age: Duration,
    /// Per-request timeout (real time).
    pub request_timeout: Duration,
    pub user_agent: String,
    /// A call budget shared with other processes of the app (scale-out workers), asked before
    /// every request with a division and fed the `X-RateLimit-*` headers of every answer.
    pub call_budget: Option<std::sync::Arc<dyn CallBudget>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_attempts: 6,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            error_budget_per_hour: 8,
            max_rate_limit_wait: Duration::from_secs(120),
            max_429_waits: 10,
            rate_limit_reserve: 0,
            refresh_margin: Duration::from_secs(30),
            min_token_age: Duration::from_secs(570),
            request_timeout: Duration::from_secs(300),
            user_agent: concat!("odata-runtime/", env!("CARGO_PKG_VERSION")).to_string(),
            call_budget: None,
        }
    }
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    base_url: String,
    auth: Auth,
    dialect: Dialect,
    clock: Arc<dyn Clock>,
    options: ClientOptions,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
    /// Protocol version for untyped requests ([`Client::raw_rows`]); typed ones use
    /// [`Entity::DIALECT`]. Default V4.
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }
    /// A call budget shared with other processes ([`CallBudget`]).
    pub fn call_budget(mut self, budget: Arc<dyn CallBudget>) -> Self {
        self.options.call_budget = Some(budget);
        self
    }
    /// A preconfigured `reqwest::Client` (proxies, certificates).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    pub fn build(self) -> Result<Client, ClientError> {
        let url_err = |detail: String| ClientError::Url {
            url: self.base_url.clone(),
            detail,
        };
        let mut base = self.base_url.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        // The service root: everything before `{division}` (Exact: `…/api/v1/`), else the base.
        let root = match base.find("{division}") {
            Some(i) => base[..i].to_string(),
            None => base.clone(),
        };
        let service_root = Url::parse(&root).map_err(|e| url_err(e.to_string()))?;
        if service_root.cannot_be_a_base() {
            return Err(url_err("not an absolute http(s) URL".into()));
        }
        let http = match self.http {
            Some(h) => h,
            None => reqwest::Client::builder()
                .user_agent(self.options.user_agent.clone())
                .timeout(self.options.request_timeout)
                .connect_timeout(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| url_err(format!("HTTP client: {}", reqwest_detail(&e))))?,
        };
        let tokens = match &self.auth {
            Auth::ExactOAuth2(cfg) => Some(auth::TokenManager::new(
                cfg.clone(),
                self.options.refresh_margin.as_millis() as i64,
                self.options.min_token_age.as_millis() as i64,
            )),
            _ => None,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                service_root,
                auth: self.auth,
                tokens,
                dialect: self.dialect,
                clock: self.clock,
                options: self.options,
                limits: limits::Limits::default(),
                requests: AtomicU64::new(0),
            }),
            own_requests: None,
        })
    }
}

struct Inner {
    http: reqwest::Client,
    /// Base URL template, ending in `/`, possibly with `{division}`.
    base: String,
    service_root: Url,
    auth: Auth,
    tokens: Option<auth::TokenManager>,
    dialect: Dialect,
    clock: Arc<dyn Clock>,
    options: ClientOptions,
    limits: limits::Limits,
    requests: AtomicU64,
}

/// A client for one OData service. Cheap to clone (clones share limits, counters and tokens).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Requests sent through this handle and its clones ([`Client::counting_separately`]).
    own_requests: Option<Arc<AtomicU64>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

/// What to expect from a response body.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Json,
    Text,
    Xml,
}

/// One GET as the retry loop sees it.
struct Get<'a> {
    url: &'a Url,
    division: Option<i32>,
    /// Error-budget key ([`limits::endpoint_key`]).
    endpoint: &'a str,
    dialect: Dialect,
    expect: Expect,
}

impl Client {
    /// A client for `base_url` (`https://start.exactonline.nl/api/v1/{division}/` or a plain
    /// service root such as `https://services.odata.org/V4/Northwind/Northwind.svc/`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            auth: Auth::None,
            dialect: Dialect::V4,
            clock: Arc::new(SystemClock),
            options: ClientOptions::default(),
            http: None,
        }
    }

    pub fn new(base_url: impl Into<String>, auth: Auth) -> Result<Client, ClientError> {
        Self::builder(base_url).auth(auth).build()
    }

    /// Requests sent so far (every attempt, retries included; token requests excluded): by
    /// every handle on this client, or, for a handle from [`Client::counting_separately`], by
    /// that handle and its clones only.
    pub fn requests_sent(&self) -> u64 {
        match &self.own_requests {
            Some(n) => n.load(Ordering::Relaxed),
            None => self.inner.requests.load(Ordering::Relaxed),
        }
    }

    /// A handle on the same client (connections, tokens, limits, the total count all shared)
    /// whose [`Client::requests_sent`] counts only the requests sent through it and its
    /// clones, from 0: the calls of one job when several jobs use one client at once.
    pub fn counting_separately(&self) -> Client {
        Client {
            inner: self.inner.clone(),
            own_requests: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// The last known rate-limit state of a division (§4.2).
    pub fn rate_limit(&self, division: impl Into<Option<i32>>) -> RateLimitInfo {
        self.inner.limits.info(division.into())
    }

    /// The clock the client uses.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The URL of `endpoint` (a path below the service, e.g. `crm/Accounts`) in `division`.
    /// Without a division, `{division}/` is dropped from the base (Exact's `current/Me`).
    pub fn url(&self, division: Option<i32>, endpoint: &str) -> Result<Url, ClientError> {
        let base = match division {
            Some(d) => self.inner.base.replace("{division}", &d.to_string()),
            None => self
                .inner
                .base
                .replace("{division}/", "")
                .replace("{division}", ""),
        };
        let full = format!("{base}{}", endpoint.trim_start_matches('/'));
        Url::parse(&full).map_err(|e| ClientError::Url {
            url: full.clone(),
            detail: e.to_string(),
        })
    }

    /// Typed rows of `E` from its entity set (override the path with [`Query::endpoint`]),
    /// selecting [`Entity::SELECT`].
    pub fn rows<E: Entity>(&self, division: impl Into<Option<i32>>) -> Query<E> {
        Query {
            client: self.clone(),
            division: division.into(),
            endpoint: E::ENTITY_SET.to_string(),
            select: E::SELECT.iter().map(|s| s.to_string()).collect(),
            filter: None,
            order_by: None,
            top: None,
            extra: Vec::new(),
            skip_page: None,
            dialect: E::DIALECT,
            _rows: PhantomData,
        }
    }

    /// Untyped rows (`serde_json::Value`) of an endpoint by name (`crm/Accounts`,
    /// `bulk/Financial/GLAccounts`). Add [`Query::select`]: Exact demands it on some endpoints.
    pub fn raw_rows(
        &self,
        division: impl Into<Option<i32>>,
        endpoint: &str,
    ) -> Query<serde_json::Value> {
        Query {
            client: self.clone(),
            division: division.into(),
            endpoint: endpoint.trim_matches('/').to_string(),
            select: Vec::new(),
            filter: None,
            order_by: None,
            top: None,
            extra: Vec::new(),
            skip_page: None,
            dialect: self.inner.dialect,
            _rows: PhantomData,
        }
    }

    /// The number of rows of an endpoint (`{endpoint}/$count`, §2.2).
    pub async fn count(
        &self,
        division: impl Into<Option<i32>>,
        endpoint: &str,
    ) -> Result<u64, ClientError> {
        self.raw_rows(division, endpoint).count().await
    }

    /// The current division of the token's user (`current/Me`, §1.2; not counted in the
    /// daily limit).
    pub async fn current_division(&self) -> Result<i32, ClientError> {
        let url = self.url(None, "current/Me")?;
        let mut url = url;
        url.set_query(Some("$select=CurrentDivision"));
        let page: page::Page<serde_json::Value> = self
            .get_parsed(
                &Get {
                    url: &url,
                    division: None,
                    endpoint: "current/me",
                    dialect: Dialect::V2,
                    expect: Expect::Json,
                },
                page::parse_page,
            )
            .await?;
        page.rows
            .first()
            .and_then(|r| r["CurrentDivision"].as_i64())
            .and_then(|d| i32::try_from(d).ok())
            .ok_or_else(|| ClientError::Unexpected {
                url: url.to_string(),
                detail: "no CurrentDivision in current/Me".into(),
            })
    }

    /// The division codes the token can reach (`system/Divisions`, §1.2, read in the current
    /// division).
    pub async fn divisions(&self) -> Result<Vec<i32>, ClientError> {
        use futures_util::TryStreamExt;
        let current = self.current_division().await?;
        let rows: Vec<serde_json::Value> = self
            .raw_rows(current, "system/Divisions")
            .select(["Code"])
            .stream()
            .try_collect()
            .await?;
        let mut codes: Vec<i32> = rows
            .iter()
            .filter_map(|r| {
                let c = &r["Code"];
                c.as_i64()
                    .or_else(|| c.as_str().and_then(|s| s.trim().parse().ok()))
                    .and_then(|c| i32::try_from(c).ok())
            })
            .collect();
        codes.sort_unstable();
        codes.dedup();
        Ok(codes)
    }

    /// A document below the service as text, with the client's auth, limits and retries
    /// (`Accept: application/xml`), e.g. `financial/$metadata` in a division or `$metadata` at
    /// the root. The body is returned unchanged (a UTF-8 BOM included); a body that is not
    /// UTF-8 is [`ClientError::Unexpected`], an HTML page [`ClientError::Html`].
    pub async fn get_text(
        &self,
        division: impl Into<Option<i32>>,
        path: &str,
    ) -> Result<String, ClientError> {
        let division = division.into();
        let url = self.url(division, path)?;
        let key = limits::endpoint_key(path);
        self.get_parsed(
            &Get {
                url: &url,
                division,
                endpoint: &key,
                dialect: self.inner.dialect,
                expect: Expect::Xml,
            },
            |u, body| {
                String::from_utf8(body.to_vec()).map_err(|e| ClientError::Unexpected {
                    url: u.to_string(),
                    detail: format!(
                        "the body is not UTF-8 (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    ),
                })
            },
        )
        .await
    }

    /// First login (§3): exchanges an authorization code (as received on the redirect, URL
    /// encoded or not) for a token pair and saves it in the store.
    pub async fn exchange_authorization_code(&self, code: &str) -> Result<TokenSet, ClientError> {
        let tm = self.inner.tokens.as_ref().ok_or_else(|| {
            ClientError::Auth("the client is not configured for Exact OAuth2".into())
        })?;
        tm.exchange_code(&self.inner.http, self.inner.clock.as_ref(), code)
            .await
    }

    async fn auth_header(
        &self,
        rejected: Option<&Secret>,
    ) -> Result<Option<HeaderValue>, ClientError> {
        let value = match &self.inner.auth {
            Auth::None => return Ok(None),
            Auth::Bearer(t) => format!("Bearer {}", t.expose()),
            Auth::Basic(user, pass) => {
                use base64::Engine;
                let raw = format!("{user}:{}", pass.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            Auth::ExactOAuth2(_) => {
                let tm = self
                    .inner
                    .tokens
                    .as_ref()
                    .ok_or_else(|| ClientError::Auth("token manager missing".into()))?;
                let t = tm
                    .access_token(&self.inner.http, self.inner.clock.as_ref(), rejected)
                    .await?;
                format!("Bearer {}", t.expose())
            }
        };
        let mut v = HeaderValue::from_str(&value)
            .map_err(|_| ClientError::Auth("the credential is not a valid header value".into()))?;
        v.set_sensitive(true);
        Ok(Some(v))
    }

    /// The token currently in the `Authorization` header (to tell the token manager which one
    /// was rejected).
    fn bearer_of(h: &HeaderValue) -> Option<Secret> {
        h.to_str()
            .ok()?
            .strip_prefix("Bearer ")
            .map(|t| Secret::new(t.to_string()))
    }

    /// GET with limits, auth, retries; `parse` turns a 2xx body into `R` (its retryable errors
    /// — truncated or garbled JSON — are retried too).
    async fn get_parsed<R>(
        &self,
        req: &Get<'_>,
        parse: impl Fn(&str, &[u8]) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        let inner = &self.inner;
        let opts = &inner.options;
        let clock = inner.clock.as_ref();
        let url_s = req.url.to_string();
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(opts.min_backoff)
            .with_max_delay(opts.max_backoff)
            .with_max_times(opts.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
            .build();
        let accept = match (req.expect, req.dialect) {
            (Expect::Text, _) => "text/plain, application/json;q=0.5",
            (Expect::Xml, _) => "application/xml, text/xml;q=0.9",
            (Expect::Json, Dialect::V4) => "application/json;IEEE754Compatible=true",
            (Expect::Json, _) => "application/json",
        };
        let mut attempts = 0u32;
        let mut waits_429 = 0u32;
        let mut auth_retries = 0u32;
        let mut rejected: Option<Secret> = None;
        loop {
            // Error budget (§4.4): errors of the last hour plus calls in flight (each may
            // still fail) stay below the budget; the slot is held until the answer is recorded.
            let _slot = loop {
                let now = clock.now_ms();
                match inner.limits.check_budget(
                    req.endpoint,
                    req.division,
                    now,
                    opts.error_budget_per_hour,
                ) {
                    Ok(Some(slot)) => break slot,
                    Ok(None) => clock.sleep(Duration::from_millis(50)).await,
                    Err((errors, retry_at)) => {
                        return Err(ClientError::ErrorBudget {
                            endpoint: req.endpoint.to_string(),
                            division: req.division.map_or("-".into(), |d| d.to_string()),
                            errors,
                            retry_in_s: (retry_at - now + 999) / 1000,
                        })
                    }
                }
            };
            // Rate limits (§4.1–4.3): do not send while a count is exhausted; then reserve the
            // call in the shared budget, if any (a full window: wait and pace again).
            'pace: loop {
                loop {
                    let now = clock.now_ms();
                    match inner
                        .limits
                        .try_acquire(req.division, now, opts.rate_limit_reserve)
                    {
                        Ok(()) => break,
                        Err(until) => {
                            let wait = until - now;
                            if wait > opts.max_rate_limit_wait.as_millis() as i64 {
                                return Err(ClientError::RateLimited {
                                url: url_s.clone(),
                                detail: format!(
                                    "no calls left for division {} until {until} (epoch ms, in {} s); longer than the configured maximum wait",
                                    req.division.map_or("-".into(), |d| d.to_string()),
                                    wait / 1000
                                ),
                            });
                            }
                            debug!(division = ?req.division, wait_ms = wait, "rate limit: waiting for the reset");
                            // A little past the reset, so the server's window has surely turned.
                            clock::sleep_until(clock, until + 250).await;
                        }
                    }
                }
                let (Some(budget), Some(division)) = (&opts.call_budget, req.division) else {
                    break 'pace;
                };
                let now = clock.now_ms();
                match budget.reserve(division, now).await {
                    Ok(call_budget::Reservation::Go) => break 'pace,
                    Ok(call_budget::Reservation::WaitUntil(until)) => {
                        if until - now > opts.max_rate_limit_wait.as_millis() as i64 {
                            return Err(ClientError::RateLimited {
                            url: url_s.clone(),
                            detail: format!(
                                "the shared call budget of division {division} is used up until {until} (epoch ms, in {} s); longer than the configured maximum wait",
                                (until - now) / 1000
                            ),
                        });
                        }
                        debug!(
                            division,
                            wait_ms = until - now,
                            "call budget: waiting for the next window"
                        );
                        clock::sleep_until(clock, until).await;
                    }
                    Err(e) => {
                        return Err(ClientError::RateLimited {
                            url: url_s.clone(),
                            detail: format!("the shared call budget: {e}"),
                        })
                    }
                }
            }
            let auth = self.auth_header(rejected.take().as_ref()).await?;
            attempts += 1;
            inner.requests.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = &self.own_requests {
                n.fetch_add(1, Ordering::Relaxed);
            }
            let mut rb = inner.http.get(req.url.clone()).header(ACCEPT, accept);
            if req.dialect != Dialect::V4 {
                rb = rb
                    .header("DataServiceVersion", "2.0")
                    .header("MaxDataServiceVersion", "3.0");
            } else {
                rb = rb.header("OData-MaxVersion", "4.0");
            }
            if let Some(a) = &auth {
                rb = rb.header(AUTHORIZATION, a.clone());
            }
            debug!(url = %url_s, attempt = attempts, "GET");
            let err = match rb.send().await {
                Err(e) => ClientError::Connection {
                    url: url_s.clone(),
                    detail: reqwest_detail(&e),
                },
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    inner.limits.update(req.division, &headers);
                    if let (Some(budget), Some(division)) = (&opts.call_budget, req.division) {
                        let seen = call_budget::RateLimitHeaders::from_headers(&headers);
                        if !seen.is_empty() {
                            budget.observe(division, seen, clock.now_ms()).await;
                        }
                    }
                    let reset = (status == 429)
                        .then(|| inner.limits.on_429(req.division, &headers, clock.now_ms()))
                        .flatten();
                    if let Some(until) = reset {
                        drop(resp);
                        waits_429 += 1;
                        warn!(url = %url_s, until_ms = until, "429 Too Many Requests: waiting for the reset");
                        if waits_429 > opts.max_429_waits {
                            return Err(ClientError::RateLimited {
                                url: url_s,
                                detail: format!("{waits_429} answers 429 in a row"),
                            });
                        }
                        attempts -= 1;
                        continue;
                    }
                    match read_body(resp).await {
                        Err(e) => ClientError::Connection {
                            url: url_s.clone(),
                            detail: format!("reading the body: {}", reqwest_detail(&e)),
                        },
                        Ok(body) => {
                            if matches!(status, 400 | 401 | 403 | 404) {
                                inner.limits.record_error(
                                    req.endpoint,
                                    req.division,
                                    clock.now_ms(),
                                );
                            }
                            let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
                            if error::is_html(ct, &body) {
                                ClientError::Html {
                                    status,
                                    url: url_s.clone(),
                                    title: error::html_title(&body),
                                }
                            } else if (200..300).contains(&status) {
                                match parse(&url_s, &body) {
                                    Ok(r) => return Ok(r),
                                    Err(e) => e,
                                }
                            } else if status == 401
                                && auth_retries < 2
                                && matches!(inner.auth, Auth::ExactOAuth2(_))
                            {
                                auth_retries += 1;
                                rejected = auth.as_ref().and_then(Self::bearer_of);
                                warn!(url = %url_s, "401: renewing the access token and retrying");
                                attempts -= 1;
                                continue;
                            } else {
                                let mut message = error::service_message(&body);
                                if let Some(r) = headers.get("reason").and_then(|v| v.to_str().ok())
                                {
                                    message = format!("{message} (Reason: {r})");
                                }
                                ClientError::Http {
                                    status,
                                    url: url_s.clone(),
                                    message,
                                }
                            }
                        }
                    }
                }
            };
            if !err.is_retryable() {
                return Err(err);
            }
            match backoff.next() {
                Some(d) => {
                    warn!(url = %url_s, attempt = attempts, delay_ms = d.as_millis() as u64, error = %err, "retrying");
                    clock.sleep(d).await;
                }
                None => {
                    return Err(ClientError::RetriesExhausted {
                        attempts,
                        last: Box::new(err),
                    })
                }
            }
        }
    }
}

/// A reqwest error with its causes, without the URL (callers add it).
pub(crate) fn reqwest_detail(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else if e.is_body() || e.is_decode() {
        "the body could not be read".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// A read of one endpoint: options, then [`Query::stream`] or [`Query::count`].
pub struct Query<T> {
    client: Client,
    division: Option<i32>,
    endpoint: String,
    select: Vec<String>,
    filter: Option<String>,
    order_by: Option<String>,
    top: Option<u64>,
    extra: Vec<(String, String)>,
    skip_page: Option<u64>,
    dialect: Dialect,
    _rows: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + Send + 'static> Query<T> {
    /// The path below the service (`bulk/Financial/GLAccounts` instead of the entity set).
    pub fn endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = endpoint.trim_matches('/').to_string();
        self
    }
    /// `$select` (replaces the default).
    pub fn select<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.select = fields.into_iter().map(Into::into).collect();
        self
    }
    /// `$filter` (an OData expression as written, e.g. `Timestamp gt 123L`).
    pub fn filter(mut self, expr: impl Into<String>) -> Self {
        self.filter = Some(expr.into());
        self
    }
    pub fn order_by(mut self, expr: impl Into<String>) -> Self {
        self.order_by = Some(expr.into());
        self
    }
    /// `$top`: at most `n` rows in all.
    pub fn top(mut self, n: u64) -> Self {
        self.top = Some(n);
        self
    }
    /// Any other query option (`$expand`, custom parameters).
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }
    /// For servers that give no next link: ask for pages of `page_size` rows with `$top`,
    /// and while a full page comes back without a link, ask for the next with `$skip`.
    pub fn skip_paging(mut self, page_size: u64) -> Self {
        self.skip_page = Some(page_size.max(1));
        self
    }

    fn build_url(
        &self,
        endpoint: &str,
        skip: Option<u64>,
        with_paging: bool,
    ) -> Result<Url, ClientError> {
        let mut url = self.client.url(self.division, endpoint)?;
        let mut q: Vec<String> = url
            .query()
            .filter(|s| !s.is_empty())
            .map(|s| vec![s.to_string()])
            .unwrap_or_default();
        let mut add = |k: &str, v: &str| {
            q.push(format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)));
        };
        if let Some(f) = &self.filter {
            add("$filter", f);
        }
        if with_paging {
            if !self.select.is_empty() {
                add("$select", &self.select.join(","));
            }
            if let Some(o) = &self.order_by {
                add("$orderby", o);
            }
            let top = match (self.top, self.skip_page) {
                (Some(t), Some(p)) => Some(t.min(p)),
                (t, p) => t.or(p),
            };
            if let Some(t) = top {
                add("$top", &t.to_string());
            }
            if let Some(s) = skip.filter(|s| *s > 0) {
                add("$skip", &s.to_string());
            }
        }
        for (k, v) in &self.extra {
            add(k, v);
        }
        let joined = q.join("&");
        url.set_query((!joined.is_empty()).then_some(joined.as_str()));
        Ok(url)
    }

    /// The number of rows matching the filter (`{endpoint}/$count`, §2.2).
    pub async fn count(self) -> Result<u64, ClientError> {
        let endpoint = format!("{}/$count", self.endpoint);
        let url = self.build_url(&endpoint, None, false)?;
        let key = limits::endpoint_key(&self.endpoint);
        self.client
            .get_parsed(
                &Get {
                    url: &url,
                    division: self.division,
                    endpoint: &key,
                    dialect: self.dialect,
                    expect: Expect::Text,
                },
                |u, body| {
                    let text = String::from_utf8_lossy(body);
                    let t = text.trim().trim_start_matches('\u{feff}');
                    t.parse::<u64>().map_err(|_| ClientError::Unexpected {
                        url: u.to_string(),
                        detail: format!(
                            "$count is not a number: {:?}",
                            t.chars().take(80).collect::<String>()
                        ),
                    })
                },
            )
            .await
    }

    /// The number of rows matching the filter from one small page that asks for the total
    /// (`$inlinecount=allpages`, §2.2; V4 `$count=true`).
    pub async fn inline_count(mut self) -> Result<u64, ClientError> {
        self.top = Some(1);
        self.skip_page = None;
        let opt = if self.dialect == Dialect::V4 {
            ("$count", "true")
        } else {
            ("$inlinecount", "allpages")
        };
        self.extra.push((opt.0.into(), opt.1.into()));
        let url = self.build_url(&self.endpoint, None, true)?;
        let key = limits::endpoint_key(&self.endpoint);
        let page: page::Page<serde_json::Value> = self
            .client
            .get_parsed(
                &Get {
                    url: &url,
                    division: self.division,
                    endpoint: &key,
                    dialect: self.dialect,
                    expect: Expect::Json,
                },
                page::parse_page,
            )
            .await?;
        page.count.ok_or_else(|| ClientError::Unexpected {
            url: url.to_string(),
            detail: "no count (`__count` / `@odata.count`) in the response".into(),
        })
    }

    /// The rows, one by one: a page is requested when the rows of the previous one have been
    /// consumed, and dropped before the next one is requested. After an error the stream ends.
    pub fn stream(self) -> impl Stream<Item = Result<T, ClientError>> + Send + 'static {
        use futures_util::TryStreamExt;
        self.pages()
            .map_ok(|rows| futures_util::stream::iter(rows.into_iter().map(Ok)))
            .try_flatten()
    }

    /// The rows, a page at a time as the service sent it (empty pages are not yielded). The
    /// next page is requested when the stream is polled again, so at most the page being
    /// parsed is held besides the ones the caller keeps. After an error the stream ends.
    pub fn pages(self) -> impl Stream<Item = Result<Vec<T>, ClientError>> + Send + 'static {
        let first = self.build_url(&self.endpoint, None, true);
        let key = limits::endpoint_key(&self.endpoint);
        let state = PageState {
            next: None,
            pending_error: None,
            fetched: 0,
            done: false,
            key,
            query: self,
        };
        let state = match first {
            Ok(u) => PageState {
                next: Some(u),
                ..state
            },
            Err(e) => PageState {
                pending_error: Some(e),
                ..state
            },
        };
        futures_util::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(e) = st.pending_error.take() {
                    st.done = true;
                    return Some((Err(e), st));
                }
                if st.done {
                    return None;
                }
                let url = st.next.take()?;
                match st.fetch(url).await {
                    Ok(rows) if rows.is_empty() => continue,
                    Ok(rows) => return Some((Ok(rows), st)),
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
        })
    }
}

impl<E: Entity> Query<E> {
    /// `$select` every property the entity type declares ([`Entity::SELECT`], the default of
    /// [`Client::rows`]; undoes an earlier [`Query::select`]).
    pub fn select_all(mut self) -> Self {
        self.select = E::SELECT.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// The whole body of a response, read chunk by chunk into one buffer sized by its
/// `Content-Length` (reqwest's `bytes()` collects the chunks and then copies them into one
/// buffer, holding the body twice for a moment).
async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    // A declared length is a hint, not a promise: the buffer still grows past it, and an
    // absurd one does not reserve memory up front.
    let hint = resp.content_length().unwrap_or(0).min(64 << 20) as usize;
    let mut body = Vec::with_capacity(hint);
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

struct PageState<T> {
    query: Query<T>,
    key: String,
    next: Option<Url>,
    pending_error: Option<ClientError>,
    fetched: u64,
    done: bool,
}

impl<T: DeserializeOwned + Send + 'static> PageState<T> {
    /// Requests one page; sets the next link (or the error it holds) and returns the rows.
    async fn fetch(&mut self, url: Url) -> Result<Vec<T>, ClientError> {
        let q = &self.query;
        let page: page::Page<T> = q
            .client
            .get_parsed(
                &Get {
                    url: &url,
                    division: q.division,
                    endpoint: &self.key,
                    dialect: q.dialect,
                    expect: Expect::Json,
                },
                page::parse_page,
            )
            .await?;
        let n = page.rows.len() as u64;
        self.fetched += n;
        if n == 0 {
            self.done = true; // an empty page ends, whatever it links to
            return Ok(page.rows);
        }
        if let Some(link) = page.next {
            match page::resolve_next(&url, &link, &q.client.inner.service_root) {
                Ok(next) if next == url => {
                    self.pending_error = Some(ClientError::Unexpected {
                        url: url.to_string(),
                        detail: "the next link repeats the request".into(),
                    })
                }
                Ok(next) => self.next = Some(next),
                Err(e) => self.pending_error = Some(e),
            }
        } else if let Some(p) = q.skip_page {
            let remaining = q.top.map(|t| t.saturating_sub(self.fetched));
            if n >= p && remaining != Some(0) {
                let mut next = match q.build_url(&q.endpoint, Some(self.fetched), true) {
                    Ok(u) => u,
                    Err(e) => {
                        self.pending_error = Some(e); // after this page's rows
                        return Ok(page.rows);
                    }
                };
                if let Some(r) = remaining {
                    if r < p {
                        // Fewer rows wanted than a page: replace `$top`.
                        let query = next
                            .query()
                            .unwrap_or("")
                            .replace(&format!("$top={p}"), &format!("$top={r}"));
                        next.set_query(Some(&query));
                    }
                }
                self.next = Some(next);
            }
        }
        Ok(page.rows)
    }
}

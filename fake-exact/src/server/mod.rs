//! The fake Exact Online HTTP server (see `shared/exact-online.md`, §8 for the checklist).
//!
//! * [`FakeExact::start`] serves on a loopback port in a background thread with its own tokio
//!   runtime and returns a [`Handle`] (server stops when it is dropped). It works from plain
//!   `#[test]`s and from inside a tokio runtime alike.
//! * Surface: `/api/oauth2/auth`, `/api/oauth2/token` (§3); `/api/v1/current/Me`,
//!   `/api/v1/{division}/{service…}/{EntitySet}` for every entity set of the cached `$metadata`
//!   (plus `(key)`, `/$count`, `$metadata`), `read/sync/Sync/SyncTimestamp`,
//!   `webhooks/WebhookSubscriptions` (§1, §2, §5); test controls under `/_test/` (see the
//!   `control` module: mutate, stats, checksum, faults, clock, key).
//! * Data: rows are generated on the fly from (seed, entity set, division, row index), so a
//!   million-row entity costs no memory; `crm/Accounts`, `bulk/CRM/Accounts` and
//!   `sync/CRM/Accounts` serve the same rows (data identity = entity set name). Mutations live
//!   in a small overlay ([`store`]).
//! * Referential integrity: a Guid property that names another entity set
//!   (`TransactionLines.GLAccount` → `GLAccounts`, `.Account` → `Accounts`,
//!   `SalesInvoiceLines.InvoiceID` → `SalesInvoices`, …) holds the key of an existing generated
//!   row of that set in the same division, and its `…Code`/`…Name`/`…Description` siblings
//!   are that row's values; a String `…Code` without such a Guid (`JournalCode`) is the `Code`
//!   of an existing row. The rule is documented at [`catalog::Catalog::link`].
//!
//! ```no_run
//! use fake_exact::{Clock, Config, FakeExact};
//! let h = FakeExact::start(Config { clock: Clock::accelerated(10.0), ..Config::default() });
//! let (access, _refresh) = h.issue_tokens();
//! let url = format!("{}/api/v1/100001/crm/Accounts?$select=ID,Name", h.base_url());
//! // GET url with `Authorization: Bearer {access}` and `Accept: application/json`
//! # let _ = (access, url);
//! ```
//! * Modules: [`catalog`] (entity sets of the cached `$metadata`), [`gen`] (deterministic rows),
//!   [`store`] (overlay of test mutations and the query engine), [`query`] (`$filter` subset),
//!   [`auth`] (OAuth2, §3), [`limits`] (rate limits and error budget, §4), [`clock`] (virtual
//!   time), `api` (the `/api/...` surface) and `control` (the `/_test/...` controls).

mod api;
mod atom;
pub mod auth;
pub mod catalog;
pub mod clock;
mod control;
pub mod gen;
pub mod limits;
pub mod query;
pub mod store;
pub mod webhooks;

pub use clock::Clock;

use auth::{AuthState, AuthTimes};
use catalog::Catalog;
use limits::Limits;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use store::Store;

/// Fault injection rates (each in 0.0..=1.0, checked in this order) for `/api/v1` calls (§8).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// 500 with an Exact error body.
    pub http_500: f64,
    /// 503 with an HTML page (Akamai edge, §2.6).
    pub http_503: f64,
    /// 408 Request Timeout.
    pub http_408: f64,
    /// 599 (non-standard, §2.6).
    pub http_599: f64,
    /// HTML error page with status 200.
    pub html_200: f64,
    /// HTML error page with status 500.
    pub html_500: f64,
    /// Correct status and headers, body cut in half, then the connection is closed.
    pub truncated: f64,
    /// Status and headers, then the connection is closed without a body.
    pub drop_connection: f64,
    /// Answer after `slow_ms` (real milliseconds).
    pub slow: f64,
    pub slow_ms: u64,
    /// 401 with `WWW-Authenticate` "access token expired" although the token is valid.
    pub http_401_expired: f64,
    /// 403 "Forbidden - Customer's license expired." (§2.6).
    pub http_403_license: f64,
    /// A sync page repeats one of its rows (§1.3: duplicates within a sync run).
    pub duplicate_rows: f64,
    /// The token endpoint answers 200 with an empty body and issues nothing (§2.6); rolled
    /// separately for token requests.
    pub empty_token_body: f64,
}

/// Server configuration. `Config::default()` is a ready-to-use setup.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; default `127.0.0.1:0` (a free port).
    pub addr: SocketAddr,
    pub seed: u64,
    /// Divisions the user may access (the first is `Me.CurrentDivision`).
    pub divisions: Vec<i32>,
    /// Generated rows per entity per division.
    pub rows_per_entity: u64,
    /// Row counts per entity set name or endpoint path (e.g. `"Accounts"` or `"crm/Accounts"`;
    /// data is shared per entity set name, so `crm/Accounts`, `bulk/CRM/Accounts` and
    /// `sync/CRM/Accounts` serve the same rows).
    pub rows: BTreeMap<String, u64>,
    /// Page size of regular endpoints (§2.3).
    pub page_size: usize,
    /// Page size of bulk and sync endpoints (§2.3).
    pub bulk_page_size: usize,
    pub client_id: String,
    pub client_secret: String,
    /// The registered redirect URI; `None` accepts any.
    pub redirect_uri: Option<String>,
    pub clock: Clock,
    /// Calls per (client, division) per clock minute (§4.1).
    pub minutely_limit: u32,
    /// Calls per (client, division) per UTC day (§4.1).
    pub daily_limit: u32,
    /// Errors (400/401/403/404) per (client, division, endpoint) per hour before a block (§4.4).
    pub error_limit: u32,
    /// First block length; doubles on each further block (§4.4 "gradually increase").
    pub block_ms: i64,
    /// Status answered while blocked (§4.4: unconfirmed, so configurable).
    pub block_status: u16,
    /// Regular endpoints (paths such as `purchaseentry/PurchaseEntries`) that need `$select`
    /// or `$top=1` (§2.4). Bulk and sync endpoints always need `$select` (§1.3).
    pub select_required: BTreeSet<String>,
    /// Mandatory filtering (§1.3): endpoint path → the field list quoted in the 400
    /// "A GET request for this endpoint must have a $filter parameter with one of the following
    /// fields in the url:…". Empty by default.
    pub filter_required: BTreeMap<String, String>,
    /// Regular endpoints that reject `$skip` (§2.3); bulk and sync always do.
    pub skip_rejected: BTreeSet<String>,
    /// Where the `$metadata` documents are.
    pub metadata_dir: PathBuf,
    /// Access-token lifetime (§3: 600 s).
    pub access_token_ttl_ms: i64,
    /// Minimum age of the previous access token before a refresh (§3: 570 s).
    pub refresh_min_age_ms: i64,
    /// Refresh-token lifetime (§3: 30 days).
    pub refresh_token_ttl_ms: i64,
    /// Authorization-code lifetime (§3: 3 minutes).
    pub code_ttl_ms: i64,
    /// How long a rotated refresh token keeps working (§3: 0; some apps have a grace).
    pub refresh_reuse_grace_ms: i64,
    /// `false` serves data without a bearer token (for quick manual exploration only).
    pub require_auth: bool,
    pub faults: Faults,
    /// The app's webhook secret (key of the deliveries' HashCode, §5).
    pub webhook_secret: String,
    /// Clock milliseconds every API answer (`/api/v1/…`, not tokens) takes before it is sent:
    /// the round trip of the real service (a few hundred ms), which a worker spends waiting.
    /// 0 (the default) answers at once.
    pub latency_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 42,
            divisions: vec![100001, 100002, 100003],
            rows_per_entity: 10,
            rows: BTreeMap::new(),
            page_size: 60,
            bulk_page_size: 1000,
            client_id: "b81cc4de-d192-400e-bcb4-09254394c52a".into(),
            client_secret: "fake-secret".into(),
            redirect_uri: None,
            clock: Clock::real(),
            minutely_limit: 60,
            daily_limit: 5000,
            error_limit: 10,
            block_ms: limits::HOUR_MS,
            block_status: 429,
            select_required: [
                "purchaseentry/PurchaseEntries",
                "logistics/SalesItemPrices",
                "cashflow/DirectDebitMandates",
                "salesorder/GoodsDeliveries",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            skip_rejected: BTreeSet::new(),
            filter_required: BTreeMap::new(),
            metadata_dir: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../metadata-cache/exact"
            )),
            access_token_ttl_ms: 600_000,
            refresh_min_age_ms: 570_000,
            refresh_token_ttl_ms: 30 * limits::DAY_MS,
            code_ttl_ms: 180_000,
            refresh_reuse_grace_ms: 0,
            require_auth: true,
            faults: Faults::default(),
            webhook_secret: "fake-webhook-secret".into(),
            latency_ms: 0,
        }
    }
}

/// A client violation seen by the server (`/_test/stats`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Violation {
    /// `early_refresh`, `rotated_refresh_token_reuse`, `expired_refresh_token`,
    /// `authorization_code_reuse`, `expired_access_token`, `call_while_blocked`,
    /// `call_while_rate_limited` (another call after a 429 in the same window).
    pub kind: String,
    pub client_id: String,
    pub detail: String,
    /// Server clock, UTC ms.
    pub at_ms: i64,
}

/// Counters served by `GET /_test/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// `"{division} {endpoint}"` (endpoint lower-cased, e.g. `100001 crm/accounts`) → calls.
    pub calls: BTreeMap<String, u64>,
    pub calls_total: u64,
    /// 429 answers (rate limits).
    pub rate_limited: u64,
    /// Error answers by status.
    pub errors: BTreeMap<u16, u64>,
    /// Token grants by grant type (`authorization_code`, `refresh_token`).
    pub token_grants: BTreeMap<String, u64>,
    /// Injected faults by kind.
    pub faults: BTreeMap<String, u64>,
    pub violations: Vec<Violation>,
    /// Webhook deliveries answered with 2xx / not.
    pub webhooks_delivered: u64,
    pub webhooks_failed: u64,
}

pub(crate) struct App {
    pub cfg: Config,
    pub catalog: Catalog,
    pub base_url: String,
    pub store: Mutex<Store>,
    pub auth: Mutex<AuthState>,
    pub limits: Mutex<Limits>,
    pub stats: Mutex<Stats>,
    pub faults: Mutex<Faults>,
    pub fault_counter: AtomicU64,
    pub webhooks: Mutex<webhooks::Webhooks>,
}

impl App {
    pub fn times(&self) -> AuthTimes {
        AuthTimes {
            access_ttl: self.cfg.access_token_ttl_ms,
            refresh_min_age: self.cfg.refresh_min_age_ms,
            refresh_ttl: self.cfg.refresh_token_ttl_ms,
            code_ttl: self.cfg.code_ttl_ms,
            reuse_grace: self.cfg.refresh_reuse_grace_ms,
        }
    }

    pub fn violation(&self, kind: &str, client: &str, detail: impl Into<String>) {
        let at_ms = self.cfg.clock.now_ms();
        self.stats.lock().unwrap().violations.push(Violation {
            kind: kind.into(),
            client_id: client.into(),
            detail: detail.into(),
            at_ms,
        });
    }

    /// Table name (data identity) of an entity: its set name, lower-cased.
    pub fn table(entity: &catalog::Entity) -> String {
        entity.set_name.to_lowercase()
    }

    /// Generated row count of an entity in a division.
    pub fn rows(&self, entity: &catalog::Entity) -> u64 {
        rows_for(&self.cfg, entity)
    }

    pub fn gen<'a>(&self, entity: &'a catalog::Entity, division: i32) -> gen::Gen<'a> {
        gen::Gen::new(
            self.cfg.seed,
            entity,
            division,
            catalog::fnv1a(&Self::table(entity)),
        )
    }
}

/// Generated row count of an entity (per division) under `cfg`.
fn rows_for(cfg: &Config, entity: &catalog::Entity) -> u64 {
    match entity.path.as_str() {
        "system/divisions" => return cfg.divisions.len() as u64,
        "current/me" => return 1,
        "sync/deleted" => return 0,
        _ => {}
    }
    let table = App::table(entity);
    for (k, v) in &cfg.rows {
        let k = k.trim_matches('/').to_lowercase();
        if k == entity.path || k.rsplit('/').next() == Some(table.as_str()) {
            return *v;
        }
    }
    cfg.rows_per_entity
}

/// The server (see [`FakeExact::start`]).
pub struct FakeExact;

impl FakeExact {
    /// Loads the metadata, binds `config.addr` and serves in a background thread.
    /// Panics if the metadata cannot be loaded or the address cannot be bound.
    pub fn start(config: Config) -> Handle {
        Self::try_start(config).expect("start fake Exact Online")
    }

    pub fn try_start(config: Config) -> Result<Handle, String> {
        let mut catalog = Catalog::load(&config.metadata_dir)?;
        catalog.set_ref_rows(|e| rows_for(&config, e));
        let listener = std::net::TcpListener::bind(config.addr)
            .map_err(|e| format!("bind {}: {e}", config.addr))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let base_url = format!("http://{addr}");
        let app = Arc::new(App {
            base_url: base_url.clone(),
            catalog,
            store: Mutex::new(Store::default()),
            auth: Mutex::new(AuthState::new(config.seed)),
            limits: Mutex::new(Limits::default()),
            stats: Mutex::new(Stats::default()),
            faults: Mutex::new(config.faults.clone()),
            fault_counter: AtomicU64::new(0),
            webhooks: Mutex::new(webhooks::Webhooks::default()),
            cfg: config,
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = axum::Router::new()
            .fallback(api::dispatch)
            .with_state(app.clone());
        let thread = std::thread::Builder::new()
            .name("fake-exact".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    // Stop at once on shutdown (open keep-alive connections are dropped with the
                    // runtime instead of being waited for).
                    tokio::select! {
                        _ = axum::serve(listener, router) => {}
                        _ = rx => {}
                    }
                });
                rt.shutdown_timeout(std::time::Duration::from_millis(200));
            })
            .map_err(|e| e.to_string())?;
        Ok(Handle {
            app,
            addr,
            base_url,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

/// A running server; stops when dropped.
pub struct Handle {
    app: Arc<App>,
    addr: SocketAddr,
    base_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn clock(&self) -> &Clock {
        &self.app.cfg.clock
    }
    pub fn config(&self) -> &Config {
        &self.app.cfg
    }
    /// A copy of the counters of `/_test/stats`.
    pub fn stats(&self) -> Stats {
        self.app.stats.lock().unwrap().clone()
    }
    /// The key literal (`guid'…'`) of generated row `index` of `endpoint` in `division`, as
    /// used in `$skiptoken` and `$filter`; `None` for an unknown endpoint.
    pub fn key_literal(&self, endpoint: &str, division: i32, index: u64) -> Option<String> {
        let e = self.app.catalog.entity(endpoint)?;
        Some(self.app.gen(e, division).key_literal(index))
    }
    /// An (access, refresh) token pair for the configured client, as after a consent (§3),
    /// without the `/api/oauth2/auth` round trip.
    pub fn issue_tokens(&self) -> (String, String) {
        let now = self.app.cfg.clock.now_ms();
        let t = self.app.times();
        self.app
            .auth
            .lock()
            .unwrap()
            .grant(&self.app.cfg.client_id, now, &t)
            .expect("token pair")
    }

    /// Entity endpoint paths (lower-cased) the server knows.
    pub fn endpoints(&self) -> Vec<String> {
        self.app.catalog.entities.keys().cloned().collect()
    }
    /// Blocks the calling thread until the server stops (for the binary).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

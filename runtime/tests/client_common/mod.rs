//! Helpers for the `client_*` tests: the fake Exact Online (`fake_exact`) in-process on
//! loopback, a client clock that follows the fake's (accelerated) clock, test entities, a token
//! store that records every pair, and a tracing subscriber that writes to a buffer.
#![allow(dead_code)]

use fake_exact::{Config, FakeExact, Handle};
use odata_runtime::client::{
    Auth, BoxFuture, Client, ClientOptions, Clock, ExactOAuth2, MemoryTokenStore, RefreshLock,
    Secret, TokenSet, TokenStore, TokenStoreError,
};
use odata_runtime::{Dialect, Entity, PropertyInfo};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DIV: i32 = 100001;
pub const REDIRECT: &str = "https://app.example.nl/callback";

/// The client's clock = the fake server's clock (possibly accelerated); sleeps last the
/// corresponding real time.
#[derive(Debug, Clone)]
pub struct FakeClock(pub fake_exact::Clock);

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let real = self.0.real_duration(d.as_millis() as i64);
        Box::pin(tokio::time::sleep(real))
    }
}

/// `crm/Accounts` (standard endpoint, 60 rows a page).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Account {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: Option<String>,
}

impl Entity for Account {
    const TYPE_NAME: &'static str = "Exact.Web.Api.Models.Account";
    const ENTITY_SET: &'static str = "Accounts";
    const DIALECT: Dialect = Dialect::V2;
    const PROPERTIES: &'static [PropertyInfo] = &[];
    const KEY: &'static [&'static str] = &["ID"];
    const SELECT: &'static [&'static str] = &["ID", "Name"];
    type Key = String;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// `bulk/Financial/GLAccounts` (bulk endpoint, 1000 rows a page).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GlAccount {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Code")]
    pub code: Option<String>,
    #[serde(rename = "Description")]
    pub description: Option<String>,
}

impl Entity for GlAccount {
    const TYPE_NAME: &'static str = "Exact.Web.Api.Models.GLAccountBulk";
    const ENTITY_SET: &'static str = "GLAccounts";
    const DIALECT: Dialect = Dialect::V2;
    const PROPERTIES: &'static [PropertyInfo] = &[];
    const KEY: &'static [&'static str] = &["ID"];
    const SELECT: &'static [&'static str] = &["ID", "Code", "Description"];
    type Key = String;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// A [`MemoryTokenStore`] that remembers every pair it held (to look for tokens in logs).
#[derive(Debug, Default)]
pub struct RecordingStore {
    pub inner: MemoryTokenStore,
    pub seen: Mutex<Vec<TokenSet>>,
}

impl RecordingStore {
    pub fn secrets(&self) -> Vec<String> {
        let mut v = Vec::new();
        for t in self.seen.lock().unwrap().iter() {
            v.push(t.access_token.expose().to_string());
            v.push(t.refresh_token.expose().to_string());
        }
        v
    }
}

impl TokenStore for RecordingStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>> {
        self.inner.load()
    }
    fn save(&self, tokens: TokenSet) -> BoxFuture<'_, Result<(), TokenStoreError>> {
        self.seen.lock().unwrap().push(tokens.clone());
        self.inner.save(tokens)
    }
    fn lock(&self) -> BoxFuture<'_, Result<RefreshLock, TokenStoreError>> {
        self.inner.lock()
    }
}

pub fn start(cfg: Config) -> Handle {
    FakeExact::start(cfg)
}

/// A store holding a fresh pair issued by the fake (as after a consent).
pub fn store_for(h: &Handle) -> Arc<RecordingStore> {
    let (a, r) = h.issue_tokens();
    let t = TokenSet {
        access_token: Secret::new(a),
        refresh_token: Secret::new(r),
        expires_at_ms: h.clock().now_ms() + 600_000,
        obtained_at_ms: h.clock().now_ms(),
    };
    let s = RecordingStore::default();
    s.seen.lock().unwrap().push(t.clone());
    futures_util::FutureExt::now_or_never(s.inner.save(t))
        .expect("memory store saves at once")
        .expect("save");
    Arc::new(s)
}

pub fn fast_options() -> ClientOptions {
    ClientOptions {
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
        ..ClientOptions::default()
    }
}

pub fn client(h: &Handle, store: Arc<dyn TokenStore>, options: ClientOptions) -> Client {
    let cfg = h.config();
    Client::builder(format!("{}/api/v1/{{division}}/", h.base_url()))
        .auth(Auth::ExactOAuth2(ExactOAuth2 {
            client_id: cfg.client_id.clone(),
            client_secret: Secret::new(cfg.client_secret.clone()),
            token_url: format!("{}/api/oauth2/token", h.base_url()),
            redirect_uri: REDIRECT.into(),
            store,
        }))
        .dialect(Dialect::V2)
        .clock(Arc::new(FakeClock(h.clock().clone())))
        .options(options)
        .build()
        .expect("client")
}

/// The IDs (`guid'…'` → bare GUID) of generated rows `0..n` of an endpoint.
pub fn expected_ids(h: &Handle, endpoint: &str, division: i32, n: u64) -> Vec<String> {
    let mut v: Vec<String> = (0..n)
        .map(|i| {
            let lit = h.key_literal(endpoint, division, i).expect("endpoint");
            lit.trim_start_matches("guid'")
                .trim_end_matches('\'')
                .to_string()
        })
        .collect();
    v.sort();
    v
}

/// Calls the fake counted for `"{division} {endpoint}"`.
pub fn calls(h: &Handle, division: i32, endpoint: &str) -> u64 {
    h.stats()
        .calls
        .get(&format!("{division} {}", endpoint.to_lowercase()))
        .copied()
        .unwrap_or(0)
}

/// A `tracing` subscriber (all levels) writing into a shared buffer.
#[derive(Clone, Default)]
pub struct LogBuffer(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    /// Installs the subscriber for the current thread (use a current-thread runtime).
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let me = self.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || me.clone())
            .finish();
        tracing::subscriber::set_default(sub)
    }
}

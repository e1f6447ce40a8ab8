//! Exact OAuth2 (exact-online.md §3) against the fake over loopback, with its clock sped up:
//! refreshes in time, never early (570-second rule), rotated refresh tokens never reused, one
//! token store shared by 8 concurrent clients, the authorization-code exchange, recovery from
//! "Old refresh token used".
//! (No token in logs or errors: `client_logs.rs`.)
#![cfg(feature = "client")]

mod client_common;

use client_common::*;
use fake_exact::{Clock, Config, Handle};
use futures_util::TryStreamExt;
use odata_runtime::client::{
    Auth, BoxFuture, Client, ClientError, ExactOAuth2, MemoryTokenStore, RefreshLock, Secret,
    TokenSet, TokenStore, TokenStoreError,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Clock speed of these tests: the refresh window (the last 30 s of a token) lasts 250 ms of
/// real time, ample on a loaded machine; 2 virtual hours take a minute.
const SPEED: f64 = 120.0;

fn cfg() -> Config {
    Config {
        clock: Clock::accelerated(SPEED),
        ..Config::default()
    }
}

/// One small call every `every_ms` of virtual time, for `for_ms` of virtual time.
async fn keep_calling(c: &Client, h_clock: &Clock, for_ms: i64, every_ms: i64) -> u64 {
    let end = h_clock.now_ms() + for_ms;
    let mut n = 0;
    while h_clock.now_ms() < end {
        let rows = c
            .raw_rows(DIV, "crm/Accounts")
            .select(["ID"])
            .top(1)
            .stream()
            .try_collect::<Vec<_>>()
            .await
            .unwrap_or_else(|e| panic!("call {n}: {e}"));
        assert_eq!(rows.len(), 1);
        n += 1;
        tokio::time::sleep(h_clock.real_duration(every_ms)).await;
    }
    n
}

fn refreshes(h: &Handle) -> u64 {
    h.stats()
        .token_grants
        .get("refresh_token")
        .copied()
        .unwrap_or(0)
}

/// Two virtual hours of calls every 20 s: the token is refreshed about every 570–600 s
/// (12 times), never early, never with a rotated refresh token, never used expired.
#[tokio::test]
async fn two_hour_run_refreshes_in_time_and_never_early() {
    let h = start(cfg());
    let store = store_for(&h);
    let c = client(&h, store.clone(), fast_options());
    let calls = keep_calling(&c, h.clock(), 2 * 3_600_000, 20_000).await;
    let stats = h.stats();
    println!(
        "calls: {calls}, refreshes: {}, violations: {:?}",
        refreshes(&h),
        stats.violations
    );
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    let r = refreshes(&h);
    assert!((11..=13).contains(&r), "refreshes: {r}");
    assert_eq!(store.seen.lock().unwrap().len() as u64, r + 1);
}

/// Eight clients (as eight processes would: each its own token cache) share one token store:
/// one refresh per token lifetime between them, 0 violations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_share_one_token_store() {
    let h = Arc::new(start(cfg()));
    let store = store_for(&h);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let h = h.clone();
        let c = client(&h, store.clone(), fast_options());
        tasks.push(tokio::spawn(async move {
            // stagger the tasks
            tokio::time::sleep(h.clock().real_duration(i * 3_000)).await;
            keep_calling(&c, h.clock(), 3_600_000, 30_000).await
        }));
    }
    let mut calls = 0;
    for t in tasks {
        calls += t.await.expect("task");
    }
    let stats = h.stats();
    println!(
        "calls: {calls}, refreshes: {}, violations: {:?}",
        refreshes(&h),
        stats.violations
    );
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    let r = refreshes(&h);
    assert!(
        (5..=7).contains(&r),
        "one refresh per lifetime, not per client: {r}"
    );
}

/// First login: the authorization code from `/api/oauth2/auth` (URL-encoded on the redirect)
/// is exchanged and the pair saved; then the client reads data with it.
#[tokio::test]
async fn authorization_code_exchange_saves_the_pair() {
    let h = start(Config {
        redirect_uri: Some(REDIRECT.into()),
        ..Config::default()
    });
    let store = Arc::new(MemoryTokenStore::new(None));
    let oauth = ExactOAuth2 {
        client_id: h.config().client_id.clone(),
        client_secret: Secret::new(h.config().client_secret.clone()),
        token_url: format!("{}/api/oauth2/token", h.base_url()),
        redirect_uri: REDIRECT.into(),
        store: store.clone(),
    };
    let auth_url = oauth.authorize_url("xyz").unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(&auth_url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let raw_code = loc
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("code="))
        .expect("code")
        .to_string();
    let c = Client::builder(format!("{}/api/v1/{{division}}/", h.base_url()))
        .auth(Auth::ExactOAuth2(oauth))
        .clock(Arc::new(FakeClock(h.clock().clone())))
        .build()
        .unwrap();
    // before the exchange: a clear error, no call
    let e = c.current_division().await.unwrap_err();
    assert!(e.to_string().contains("log in first"), "{e}");
    let t = c
        .exchange_authorization_code(&raw_code)
        .await
        .expect("exchange");
    assert_eq!(store.current().as_ref(), Some(&t));
    assert!(t.expires_at_ms > h.clock().now_ms() + 590_000);
    assert_eq!(c.current_division().await.unwrap(), 100001);
    assert_eq!(h.stats().token_grants.get("authorization_code"), Some(&1));
    // the code is single use (§3)
    let e = c.exchange_authorization_code(&raw_code).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
}

/// A store whose first reads lag behind another process's refresh (it returns the old pair
/// twice, then the new one). The client's refresh with the old refresh token gets 401 "Old
/// refresh token used"; it re-reads the store and continues with the other process's pair.
#[derive(Debug)]
struct LaggingStore {
    old: TokenSet,
    new: Mutex<Option<TokenSet>>,
    stale_reads: AtomicU32,
    inner: MemoryTokenStore,
}

impl TokenStore for LaggingStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>> {
        let n = self.stale_reads.fetch_add(1, Ordering::SeqCst);
        let newer = self.new.lock().unwrap().clone();
        let t = match newer {
            Some(t) if n >= 2 => Some(t),
            _ => Some(self.old.clone()),
        };
        Box::pin(async move { Ok(t) })
    }
    fn save(&self, tokens: TokenSet) -> BoxFuture<'_, Result<(), TokenStoreError>> {
        *self.new.lock().unwrap() = Some(tokens.clone());
        self.inner.save(tokens)
    }
    fn lock(&self) -> BoxFuture<'_, Result<RefreshLock, TokenStoreError>> {
        self.inner.lock()
    }
}

#[tokio::test]
async fn old_refresh_token_used_rereads_the_store() {
    let h = start(Config::default());
    let old_store = store_for(&h);
    let old = old_store.inner.current().unwrap();
    // Another process refreshes after 575 s and saves its pair.
    h.clock().advance(Duration::from_secs(575));
    let other = client(&h, old_store.clone(), fast_options());
    other.current_division().await.expect("other process");
    let newer = old_store.inner.current().unwrap();
    assert_ne!(
        newer.refresh_token, old.refresh_token,
        "the other process refreshed"
    );
    let store = Arc::new(LaggingStore {
        old: old.clone(),
        new: Mutex::new(Some(newer.clone())),
        stale_reads: AtomicU32::new(0),
        inner: MemoryTokenStore::new(Some(newer)),
    });
    let c = client(&h, store, fast_options());
    assert_eq!(c.current_division().await.expect("recovered"), 100001);
    let v = h.stats().violations;
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind, "rotated_refresh_token_reuse");

    // Without a newer pair anywhere: a clear error asking for a new consent.
    let store = Arc::new(MemoryTokenStore::new(Some(old)));
    let c = client(&h, store, fast_options());
    let e = c.current_division().await.unwrap_err();
    assert!(matches!(e, ClientError::Auth(_)), "{e}");
    assert!(e.to_string().contains("new consent"), "{e}");
}

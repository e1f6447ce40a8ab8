//! No access token, refresh token or client secret in any error message or log line
//! (exact-online.md §3), with every log level captured by a buffer subscriber. Alone in its
//! test binary: `tracing`'s per-thread default subscriber and its callsite cache are not
//! reliable while other tests log on other threads.
#![cfg(feature = "client")]

mod client_common;

use client_common::*;
use fake_exact::{Clock, Config, Faults};
use futures_util::TryStreamExt;
use odata_runtime::client::{MemoryTokenStore, Secret, TokenSet};
use std::sync::Arc;

fn cfg() -> Config {
    Config {
        clock: Clock::accelerated(120.0),
        ..Config::default()
    }
}

/// Faults, refreshes, 401s and failing refreshes, with a subscriber capturing every log line
/// (all levels): no access token, refresh token or client secret appears in a log line or an
/// error message.
#[tokio::test]
async fn no_token_in_errors_or_logs() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let h = start(Config {
        faults: Faults {
            http_500: 0.05,
            html_500: 0.05,
            http_401_expired: 0.05,
            truncated: 0.05,
            ..Faults::default()
        },
        ..cfg()
    });
    let store = store_for(&h);
    let c = client(&h, store.clone(), fast_options());
    let mut errors = Vec::new();
    // ~25 virtual minutes: two refreshes
    let end = h.clock().now_ms() + 25 * 60_000;
    while h.clock().now_ms() < end {
        if let Err(e) = c
            .raw_rows(DIV, "crm/Accounts")
            .select(["ID"])
            .top(1)
            .stream()
            .try_collect::<Vec<_>>()
            .await
        {
            errors.push(format!("{e} / {e:?}"));
        }
        tokio::time::sleep(h.clock().real_duration(20_000)).await;
    }
    // errors on purpose: a 400, a rejected refresh, a rotated refresh token
    for e in [
        c.raw_rows(DIV, "crm/Accounts")
            .select(["Nope"])
            .stream()
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err(),
        {
            let bad = Arc::new(MemoryTokenStore::new(Some(TokenSet {
                access_token: Secret::new("expired-access-SECRET1"),
                refresh_token: Secret::new("bogus-refresh-SECRET2"),
                expires_at_ms: h.clock().now_ms() - 1,
                obtained_at_ms: h.clock().now_ms() - 700_000,
            })));
            client(&h, bad, fast_options())
                .current_division()
                .await
                .unwrap_err()
        },
    ] {
        errors.push(format!("{e} / {e:?}"));
    }
    let mut secrets = store.secrets();
    secrets.push(h.config().client_secret.clone());
    secrets.push("SECRET1".into());
    secrets.push("SECRET2".into());
    assert!(secrets.len() >= 4);
    let text = logs.text();
    assert!(
        text.contains("access token refreshed"),
        "logs captured:\n{text}"
    );
    assert!(
        store.seen.lock().unwrap().len() >= 3,
        "refreshed at least twice"
    );
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret in the logs");
        for e in &errors {
            assert!(!e.contains(s.as_str()), "a secret in an error: {e}");
        }
    }
    println!(
        "{} errors checked, {} log bytes, {} secrets",
        errors.len(),
        text.len(),
        secrets.len()
    );
}

//! Retries, rate limits and the error budget against the fake Exact Online (exact-online.md
//! §2.6, §4): injected faults, a low minutely limit, 4xx answers.
#![cfg(feature = "client")]

mod client_common;

use client_common::*;
use fake_exact::{Clock, Config, Faults};
use futures_util::TryStreamExt;
use odata_runtime::client::ClientError;
use std::collections::BTreeMap;

/// 2026-11-23T10:00:00Z (a minute boundary).
const T0: i64 = 1_795_428_000_000;

fn rows(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// 10% of the calls fail (500, HTML with 200 and 500, truncated bodies, dropped
/// connections): the streams still yield exactly the right rows.
#[tokio::test]
async fn faults_at_ten_percent_still_yield_exactly_the_rows() {
    let h = start(Config {
        rows: rows(&[("Accounts", 150), ("GLAccounts", 2500)]),
        page_size: 5,
        bulk_page_size: 100,
        faults: Faults {
            http_500: 0.03,
            html_200: 0.02,
            html_500: 0.02,
            truncated: 0.015,
            drop_connection: 0.015,
            ..Faults::default()
        },
        ..Config::default()
    });
    let c = client(&h, store_for(&h), fast_options());
    for (ep, n) in [
        ("crm/Accounts", 150u64),
        ("bulk/Financial/GLAccounts", 2500),
    ] {
        let rows: Vec<serde_json::Value> = c
            .raw_rows(DIV, ep)
            .select(["ID"])
            .stream()
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{ep}: {e}"));
        let mut ids: Vec<String> = rows
            .iter()
            .map(|r| r["ID"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        assert_eq!(rows.len() as u64, n, "{ep}: no row twice");
        assert_eq!(ids, expected_ids(&h, ep, DIV, n), "{ep}");
    }
    let stats = h.stats();
    let faults: u64 = stats.faults.values().sum();
    println!("faults injected: {:?}", stats.faults);
    assert!(faults >= 2, "faults were injected: {:?}", stats.faults);
    assert_eq!(c.requests_sent(), 30 + 25 + faults);
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
}

/// A minutely limit of 3 and two clients on one division (each with its own view of the
/// limit): both complete; the clients pace by the headers, wait out 429s until the reset they
/// name and never call while rate limited.
#[tokio::test]
async fn low_minutely_limit_is_paced_and_429s_are_waited_out() {
    let h = start(Config {
        rows: rows(&[("Accounts", 60)]),
        page_size: 10,
        minutely_limit: 3,
        clock: Clock::starting_at(T0, 120.0),
        ..Config::default()
    });
    let store = store_for(&h);
    let c1 = client(&h, store.clone(), fast_options());
    let c2 = client(&h, store.clone(), fast_options());
    let (a, b) = tokio::join!(
        c1.rows::<Account>(DIV)
            .endpoint("crm/Accounts")
            .stream()
            .try_collect::<Vec<_>>(),
        c2.rows::<Account>(DIV)
            .endpoint("crm/Accounts")
            .stream()
            .try_collect::<Vec<_>>(),
    );
    assert_eq!(a.expect("client 1").len(), 60);
    assert_eq!(b.expect("client 2").len(), 60);
    let stats = h.stats();
    println!(
        "429 answers: {}, calls: {}, virtual minutes: {:.1}",
        stats.rate_limited,
        stats.calls_total,
        (h.clock().now_ms() - T0) as f64 / 60_000.0
    );
    assert!(
        stats.violations.is_empty(),
        "no call while rate limited: {:?}",
        stats.violations
    );
    assert_eq!(
        calls(&h, DIV, "crm/Accounts"),
        12,
        "429s are not counted as calls"
    );
}

/// With a reserve of 1 call per minute (for other processes of the app), one client on a
/// limit of 4 a minute uses 3 a minute and never meets a 429.
#[tokio::test]
async fn rate_limit_reserve_leaves_calls_unused_and_avoids_429() {
    let h = start(Config {
        rows: rows(&[("Accounts", 60)]),
        page_size: 10,
        minutely_limit: 4,
        clock: Clock::starting_at(T0, 120.0),
        ..Config::default()
    });
    let c = client(
        &h,
        store_for(&h),
        odata_runtime::client::ClientOptions {
            rate_limit_reserve: 1,
            ..fast_options()
        },
    );
    let got = c
        .rows::<Account>(DIV)
        .endpoint("crm/Accounts")
        .stream()
        .try_collect::<Vec<_>>()
        .await
        .expect("rows");
    assert_eq!(got.len(), 60);
    let stats = h.stats();
    assert_eq!(stats.rate_limited, 0, "paced by the headers alone");
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    assert!(c.rate_limit(DIV).minutely_remaining >= Some(1));
    // 6 calls at 3 a minute: the second window was waited for
    assert!(h.clock().now_ms() - T0 >= 60_000);
}

/// 400s count against the endpoint's hourly budget (§4.4): the client stops the endpoint
/// after 8 errors with a clear message, so the fake's block (after 10) never happens; other
/// endpoints are unaffected.
#[tokio::test]
async fn error_budget_stops_the_endpoint_before_the_limit() {
    let h = start(Config::default());
    let c = client(&h, store_for(&h), fast_options());
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let e = c
            .raw_rows(DIV, "crm/Accounts")
            .select(["NoSuchField"])
            .stream()
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        statuses.push(e.status());
        if let ClientError::ErrorBudget { errors, .. } = &e {
            assert_eq!(*errors, 8);
            assert!(e.to_string().contains("stopping this endpoint before it reaches the service's limit of 10 errors per hour"), "{e}");
        } else {
            assert!(e.to_string().contains("does not have a property"), "{e}");
        }
    }
    assert_eq!(statuses[..8], [Some(400); 8]);
    assert_eq!(statuses[8..], [None; 4]);
    let stats = h.stats();
    assert_eq!(stats.errors.get(&400), Some(&8));
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    // another endpoint still works
    let n = c
        .raw_rows(DIV, "crm/Contacts")
        .select(["ID"])
        .stream()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .len();
    assert_eq!(n, 10);
}

/// Twelve concurrent bad requests on one endpoint: calls in flight count against the budget
/// too, so no more than 8 reach the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_budget_holds_under_concurrency() {
    let h = start(Config::default());
    let c = client(&h, store_for(&h), fast_options());
    let tasks = (0..12).map(|_| {
        let c = c.clone();
        tokio::spawn(async move {
            c.raw_rows(DIV, "financial/GLAccounts")
                .select(["NoSuchField"])
                .stream()
                .try_collect::<Vec<_>>()
                .await
                .unwrap_err()
        })
    });
    let errors = futures_util::future::join_all(tasks).await;
    let budget = errors
        .iter()
        .filter(|e| matches!(e.as_ref().unwrap(), ClientError::ErrorBudget { .. }))
        .count();
    let stats = h.stats();
    assert_eq!(stats.errors.get(&400), Some(&8));
    assert_eq!(budget, 4);
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
}

/// A 401 "access token expired" for a token that is not (fault injection): the client does not
/// refresh early (570-second rule, §3); it retries with the token it has (at most twice).
#[tokio::test]
async fn spurious_401_expired_does_not_cause_an_early_refresh() {
    let h = start(Config {
        rows: rows(&[("Accounts", 100)]),
        page_size: 10,
        faults: Faults {
            http_401_expired: 0.1,
            ..Faults::default()
        },
        ..Config::default()
    });
    let c = client(&h, store_for(&h), fast_options());
    let got = c
        .rows::<Account>(DIV)
        .endpoint("crm/Accounts")
        .stream()
        .try_collect::<Vec<_>>()
        .await
        .expect("rows");
    assert_eq!(got.len(), 100);
    let stats = h.stats();
    assert!(stats.token_grants.is_empty(), "{:?}", stats.token_grants);
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
}

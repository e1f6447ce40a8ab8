//! Paging against the fake Exact Online over loopback (exact-online.md §2.3): every row once,
//! one API call per page; `$count` and `$inlinecount`; divisions (§1.2).
#![cfg(feature = "client")]

mod client_common;

use client_common::*;
use fake_exact::Config;
use futures_util::TryStreamExt;
use std::collections::BTreeMap;
use std::time::Instant;

fn rows_cfg(entries: &[(&str, u64)]) -> Config {
    Config {
        rows: entries
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>(),
        ..Config::default()
    }
}

/// 150 rows of a standard endpoint at 60 a page: 3 calls; 2,500 rows of a bulk endpoint at
/// 1000 a page: 3 calls; every row exactly once.
#[tokio::test]
async fn pages_through_standard_and_bulk_endpoints() {
    let h = start(rows_cfg(&[("Accounts", 150), ("GLAccounts", 2500)]));
    let c = client(&h, store_for(&h), fast_options());

    let rows: Vec<Account> = c
        .rows::<Account>(DIV)
        .endpoint("crm/Accounts")
        .select(["ID"])
        .select_all()
        .stream()
        .try_collect()
        .await
        .expect("accounts");
    assert!(rows.iter().any(|r| r.name.is_some()), "Name selected");
    let mut ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    assert_eq!(ids.len(), 150);
    assert_eq!(ids, expected_ids(&h, "crm/Accounts", DIV, 150));
    assert_eq!(calls(&h, DIV, "crm/Accounts"), 3, "⌈150/60⌉ calls");

    let rows: Vec<GlAccount> = c
        .rows::<GlAccount>(DIV)
        .endpoint("bulk/Financial/GLAccounts")
        .stream()
        .try_collect()
        .await
        .expect("gl accounts");
    let mut ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(rows.len(), 2500);
    assert_eq!(
        ids,
        expected_ids(&h, "bulk/Financial/GLAccounts", DIV, 2500)
    );
    assert_eq!(
        calls(&h, DIV, "bulk/Financial/GLAccounts"),
        3,
        "⌈2500/1000⌉ calls"
    );
    assert_eq!(c.requests_sent(), 6);
    assert!(
        h.stats().violations.is_empty(),
        "{:?}",
        h.stats().violations
    );
    // the rate-limit headers were read (§4.2)
    let rl = c.rate_limit(DIV);
    assert_eq!(rl.minutely_remaining, Some(54));
    assert_eq!(rl.daily_remaining, Some(4994));
}

/// Two jobs paging at once through one client: each handle from `counting_separately` counts
/// its own calls, the client counts them all.
#[tokio::test]
async fn separately_counting_handles_count_their_own_calls() {
    let h = start(rows_cfg(&[("Accounts", 150), ("GLAccounts", 2500)]));
    let c = client(&h, store_for(&h), fast_options());
    let (a, b) = (c.counting_separately(), c.counting_separately());
    let (ra, rb) = tokio::join!(
        a.rows::<Account>(DIV)
            .endpoint("crm/Accounts")
            .select(["ID"])
            .stream()
            .try_collect::<Vec<_>>(),
        b.rows::<GlAccount>(DIV)
            .endpoint("bulk/Financial/GLAccounts")
            .stream()
            .try_collect::<Vec<_>>(),
    );
    assert_eq!((ra.unwrap().len(), rb.unwrap().len()), (150, 2500));
    assert_eq!(a.requests_sent(), 3, "⌈150/60⌉ calls");
    assert_eq!(b.clone().requests_sent(), 3, "⌈2500/1000⌉ calls");
    assert_eq!(c.requests_sent(), 6);
}

/// Untyped rows by endpoint name, a filter, `$top`, `$count` and `$inlinecount`.
#[tokio::test]
async fn raw_rows_filter_top_and_counts() {
    let h = start(rows_cfg(&[("Accounts", 150)]));
    let c = client(&h, store_for(&h), fast_options());
    let n = c.count(DIV, "crm/Accounts").await.expect("$count");
    assert_eq!(n, 150);
    let n = c
        .raw_rows(DIV, "crm/Accounts")
        .select(["ID"])
        .inline_count()
        .await
        .expect("$inlinecount");
    assert_eq!(n, 150);
    let rows: Vec<serde_json::Value> = c
        .raw_rows(DIV, "crm/Accounts")
        .select(["ID", "Name"])
        .top(70)
        .stream()
        .try_collect()
        .await
        .expect("top");
    assert_eq!(rows.len(), 70);
    assert!(rows[0]["Name"].is_string());
    // a filter on a key: one row
    let key = h.key_literal("crm/Accounts", DIV, 7).unwrap();
    let rows: Vec<Account> = c
        .rows::<Account>(DIV)
        .endpoint("crm/Accounts")
        .filter(format!("ID eq {key}"))
        .stream()
        .try_collect()
        .await
        .expect("filter");
    assert_eq!(rows.len(), 1);
    assert_eq!(format!("guid'{}'", rows[0].id), key);
}

/// `current/Me` and `system/Divisions` (§1.2).
#[tokio::test]
async fn divisions_and_current_division() {
    let h = start(Config::default());
    let c = client(&h, store_for(&h), fast_options());
    assert_eq!(c.current_division().await.expect("me"), 100001);
    assert_eq!(
        c.divisions().await.expect("divisions"),
        vec![100001, 100002, 100003]
    );
}

/// `$skip` paging when the server sends no link: `$top` = page size; the fake omits
/// `__next` when `$top` rows came back, so the client continues with `$skip`.
#[tokio::test]
async fn skip_paging_without_next_links() {
    let h = start(rows_cfg(&[("Accounts", 125)]));
    let c = client(&h, store_for(&h), fast_options());
    let rows: Vec<Account> = c
        .rows::<Account>(DIV)
        .endpoint("crm/Accounts")
        .skip_paging(50)
        .stream()
        .try_collect()
        .await
        .expect("skip paging");
    let mut ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, expected_ids(&h, "crm/Accounts", DIV, 125));
    assert_eq!(calls(&h, DIV, "crm/Accounts"), 3);
}

/// Figures: rows/s paging 1000-row bulk pages over loopback (debug builds are slow; run
/// with `--release` for real numbers).
#[tokio::test]
#[ignore]
async fn bench_bulk_paging_rows_per_second() {
    let n = 50_000u64;
    let h = start(Config {
        minutely_limit: 1000,
        ..rows_cfg(&[("GLAccounts", n)])
    });
    let c = client(&h, store_for(&h), fast_options());
    let t = Instant::now();
    let s = c
        .rows::<GlAccount>(DIV)
        .endpoint("bulk/Financial/GLAccounts")
        .stream();
    futures_util::pin_mut!(s);
    let mut count = 0u64;
    while let Some(r) = s.try_next().await.expect("row") {
        std::hint::black_box(&r);
        count += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(count, n);
    println!(
        "bulk paging, typed rows of 3 fields: {count} rows in {secs:.2} s = {:.0} rows/s, {} API calls",
        count as f64 / secs,
        c.requests_sent()
    );

    // Untyped rows (serde_json::Value) of 15 fields from bulk/CRM/Accounts.
    let h = start(Config {
        minutely_limit: 1000,
        ..rows_cfg(&[("Accounts", n)])
    });
    let c = client(&h, store_for(&h), fast_options());
    let t = Instant::now();
    let s = c
        .raw_rows(DIV, "bulk/CRM/Accounts")
        .select([
            "ID",
            "Code",
            "Name",
            "City",
            "Country",
            "Email",
            "Created",
            "Blocked",
            "Classification",
            "CreditLineSales",
            "Currency",
            "Division",
            "ChamberOfCommerce",
            "CustomerSince",
            "Fax",
        ])
        .stream();
    futures_util::pin_mut!(s);
    let mut count = 0u64;
    while let Some(r) = s.try_next().await.expect("row") {
        std::hint::black_box(&r);
        count += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(count, n);
    println!(
        "bulk paging, JSON rows of 15 fields: {count} rows in {secs:.2} s = {:.0} rows/s, {} API calls",
        count as f64 / secs,
        c.requests_sent()
    );
}

//! `odatasync sync` under the conditions of exact-online.md §4 and §2.6, as subprocesses
//! against the fake Exact Online (its clock agrees with the system clock the binary uses, so
//! rate-limit waits are real; they are kept to one minute boundary at most):
//!
//! * `rate_limits` runs two scenarios at once. `rate_limit_paced`: 10 calls a minute and a
//!   sync that needs ~17: the client waits for the reset instead of running into 429s; data
//!   correct, no `call_while_rate_limited`.
//!   `rate_limit_429`: the minute's calls are used up by another client of the same app before
//!   the sync starts, so its first call gets a 429: it waits for the reset and completes.
//! * `faults`: ~5.5 % of the calls answer 500, HTML pages (200 and 500), truncated bodies or
//!   a dropped connection (then a full refresh of two entities with 15 % truncated bodies):
//!   the syncs complete, data correct, nothing counted against the error budget.
//! * `concurrent_sqlite` / `concurrent_postgres`: 8 `odatasync sync --entities <one>` processes
//!   at once on one database (one token store, seeded by all of them from the same refresh
//!   token): all exit 0, data correct, exactly one token refresh, 0 violations.

mod common;

use common::*;
use fake_exact::{Faults, Handle};
use odata_runtime::client::{BoxFuture, Client, Clock as ClientClock};
use odata_runtime::sql::Db;
use std::time::{Duration, Instant};

/// The fake's clock as the verifier's clock: waits jump the fake's clock forward instead of
/// sleeping (only used once the binary is done, so nothing else sees the jump).
#[derive(Debug)]
struct FakeTime(fake_exact::Clock);

impl ClientClock for FakeTime {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let c = self.0.clone();
        Box::pin(async move {
            c.advance(d);
            tokio::task::yield_now().await;
        })
    }
}

/// A verifier for a fake with tight rate limits.
fn fast_verifier(h: &Handle) -> Client {
    verifier_with_clock(h, std::sync::Arc::new(FakeTime(h.clock().clone())))
}

const RL_DIV: i32 = 100001;
const RL_ENTITIES: &str = "SyncAccounts,SyncContacts,SyncGLAccounts,SyncItems";

fn rl_entities() -> Vec<ConfigEntity> {
    RL_ENTITIES.split(',').map(entity).collect()
}

fn rate_limited_fake(per_minute: u32) -> (Handle, String) {
    let mut cfg = roomy_config(&[RL_DIV], 100);
    cfg.minutely_limit = per_minute;
    for set in ["Accounts", "Contacts", "GLAccounts", "Items"] {
        cfg.rows.insert(set.into(), 2500);
    }
    start_fake(cfg)
}

fn check_rate_limited_run(h: &Handle, cli: &Cli, out: &Out, what: &str) {
    out.assert_code(0, what);
    let stats = h.stats();
    assert!(
        stats.violations.is_empty(),
        "{what}: violations {:?}",
        violations(&stats)
    );
    let rt = runtime();
    let db = rt.block_on(Db::connect(&cli.open_url())).expect("db");
    let batch = rt.block_on(last_batch(&db));
    assert_eq!(batch.len(), 4);
    assert!(batch.iter().all(|r| r.status == "succeeded"), "{batch:?}");
    let calls: i64 = batch.iter().map(|r| r.api_calls).sum();
    println!(
        "{what}: {:.1} s, {calls} calls by the runs ({} seen by the fake), {} answered 429",
        out.elapsed.as_secs_f64(),
        stats.calls_total,
        stats.rate_limited
    );
    let c = fast_verifier(h);
    rt.block_on(assert_all_equal(&c, &db, &rl_entities(), &[RL_DIV], what));
}

fn rate_limit_paced() {
    let (h, refresh) = rate_limited_fake(10);
    let cli = Cli::new(&h, &refresh, None);
    let out = cli.sync(&["--entities", RL_ENTITIES]);
    check_rate_limited_run(&h, &cli, &out, "paced");
    let stats = h.stats();
    assert!(
        stats.calls_total > 10,
        "the sync needs more than one minute's calls"
    );
    assert_eq!(
        stats.rate_limited, 0,
        "a single process paces itself by the X-RateLimit-Minutely-* headers"
    );
}

fn rate_limit_429() {
    let rt = runtime();
    let (h, refresh) = rate_limited_fake(25);
    // Not too close to a minute boundary, so the used-up minute is still running when the
    // sync starts.
    let to_boundary = 60_000 - h.clock().now_ms().rem_euclid(60_000);
    if to_boundary < 8_000 {
        std::thread::sleep(Duration::from_millis(to_boundary as u64 + 200));
    }
    // Another client of the same app uses up this minute (and never calls after a 429).
    let (access, _) = h.issue_tokens();
    let http = reqwest::Client::new();
    let url = format!(
        "{}/api/v1/{RL_DIV}/crm/Accounts?$select=ID&$top=1",
        h.base_url()
    );
    let mut burnt = 0;
    rt.block_on(async {
        loop {
            let r = http
                .get(&url)
                .header("accept", "application/json")
                .bearer_auth(&access)
                .send()
                .await
                .expect("burn a call");
            assert_eq!(r.status().as_u16(), 200);
            burnt += 1;
            let left: u64 = r
                .headers()
                .get("x-ratelimit-minutely-remaining")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("minutely remaining");
            if left == 0 {
                break;
            }
        }
    });
    let cli = Cli::new(&h, &refresh, None);
    let out = cli.sync(&["--entities", RL_ENTITIES]);
    println!("429: {burnt} calls used up by another client first");
    check_rate_limited_run(&h, &cli, &out, "429");
    let stats = h.stats();
    assert!(stats.rate_limited >= 1, "the sync met a 429");
}

/// Both rate-limit scenarios at once (each waits for a minute boundary in real time; the test
/// harness runs only as many tests at once as there are cores).
#[test]
fn rate_limits() {
    let paced = std::thread::spawn(rate_limit_paced);
    let r429 = std::thread::spawn(rate_limit_429);
    let a = paced.join();
    let b = r429.join();
    assert!(a.is_ok(), "rate_limit_paced failed");
    assert!(b.is_ok(), "rate_limit_429 failed");
}

#[test]
fn faults() {
    let rt = runtime();
    let divs = [100001, 100002];
    let mut cfg = roomy_config(&divs, 1500);
    for set in ["Journals", "GLTransactionTypes"] {
        cfg.rows.insert(set.into(), 300);
    }
    // Smaller bulk and sync pages: more calls, so that every kind of fault comes up.
    cfg.bulk_page_size = 100;
    cfg.faults = Faults {
        http_500: 0.015,
        html_200: 0.01,
        html_500: 0.01,
        truncated: 0.01,
        drop_connection: 0.01,
        ..Faults::default()
    };
    let (h, refresh) = start_fake(cfg);
    let cli = Cli::new(&h, &refresh, None);
    let out = cli.sync(&[]);
    out.assert_code(0, "sync with faults");
    let stats = h.stats();
    assert!(
        stats.violations.is_empty(),
        "violations: {:?}",
        violations(&stats)
    );
    // The fake draws faults from a fixed sequence: which kinds come up depends on the number
    // of calls. Every kind must come up in this run or in the truncated-only run below.
    let mut seen = stats.faults.clone();
    assert!(
        seen.values().sum::<u64>() >= 5,
        "faults injected: {:?}",
        stats.faults
    );
    // A second run through truncated bodies only (15 %): a full refresh of two entities.
    rt.block_on(set_faults(
        &h,
        &Faults {
            truncated: 0.15,
            ..Faults::default()
        },
    ));
    let again = cli.sync(&[
        "--full-refresh",
        "--entities",
        "SyncAccounts,SyncTransactionLines",
    ]);
    again.assert_code(0, "full refresh through truncated bodies");
    let stats2 = h.stats();
    for (k, n) in &stats2.faults {
        let before = stats.faults.get(k).copied().unwrap_or(0);
        *seen.entry(k.clone()).or_default() += n - before;
    }
    for kind in [
        "http_500",
        "html_200",
        "html_500",
        "truncated",
        "drop_connection",
    ] {
        assert!(
            seen.get(kind).copied().unwrap_or(0) >= 1,
            "no {kind} among the faults injected: {seen:?}"
        );
    }
    assert!(
        stats2.violations.is_empty(),
        "violations: {:?}",
        violations(&stats2)
    );
    for s in [400u16, 401, 403, 404] {
        assert_eq!(
            stats2.errors.get(&s).copied().unwrap_or(0),
            0,
            "answers counted against the error budget: {:?}",
            stats2.errors
        );
    }
    println!(
        "faults: {:.1} s, {} calls, injected {:?}, errors by status {:?}; then a full refresh of 2 entities through {} truncated bodies ({:.1} s)",
        out.elapsed.as_secs_f64(),
        stats.calls_total,
        stats.faults,
        stats.errors,
        seen.get("truncated").copied().unwrap_or(0),
        again.elapsed.as_secs_f64()
    );
    rt.block_on(set_faults(&h, &Faults::default()));
    let db = rt.block_on(Db::connect(&cli.open_url())).expect("db");
    let batch = rt.block_on(last_batch(&db));
    assert!(batch.iter().all(|r| r.status == "succeeded"), "{batch:?}");
    let c = verifier(&h);
    rt.block_on(assert_all_equal(
        &c,
        &db,
        &default_entities(),
        &divs,
        "faults",
    ));
}

/// One config.json entity per process.
const CONCURRENT: [&str; 8] = [
    "GLTransactionTypes",
    "Journals",
    "BulkSalesInvoiceLines",
    "SyncGLAccounts",
    "SyncAccounts",
    "SyncContacts",
    "SyncItems",
    "SyncTransactionLines",
];

fn concurrent(backend: &str, db_url: Option<String>) {
    let rt = runtime();
    let divs = [100001, 100002];
    let mut cfg = roomy_config(&divs, 1500);
    for set in ["Journals", "GLTransactionTypes"] {
        cfg.rows.insert(set.into(), 300);
    }
    let (h, refresh) = start_fake(cfg);
    let cli = Cli::new(&h, &refresh, db_url);
    let started = Instant::now();
    let children: Vec<_> = CONCURRENT
        .iter()
        .map(|e| {
            let c = cli.sync_command(&["--entities", e]).spawn().expect("spawn");
            (e, c)
        })
        .collect();
    // Every child's pipes are drained at once (a child blocked writing to a full stderr pipe
    // while holding SQLite's write lock would stall the others).
    let waiting: Vec<_> = children
        .into_iter()
        .map(|(e, c)| {
            let t = std::thread::spawn(move || {
                let o = c.wait_with_output().expect("wait");
                Out {
                    code: o.status.code(),
                    stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                    elapsed: started.elapsed(),
                }
            });
            (e, t)
        })
        .collect();
    let outs: Vec<(&&str, Out)> = waiting
        .into_iter()
        .map(|(e, t)| (e, t.join().expect("waiter")))
        .collect();
    let failed: Vec<String> = outs
        .iter()
        .filter(|(_, o)| o.code != Some(0))
        .map(|(e, o)| {
            format!(
                "{e}: exit {:?} after {:.1} s\n{}",
                o.code,
                o.elapsed.as_secs_f64(),
                o.stderr
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{backend}: processes failed:\n{}",
        failed.join("\n")
    );
    let elapsed = started.elapsed();
    let stats = h.stats();
    assert!(
        stats.violations.is_empty(),
        "{backend}: violations {:?}",
        violations(&stats)
    );
    assert_eq!(
        stats.token_grants.get("refresh_token").copied(),
        Some(1),
        "{backend}: one refresh shared by 8 processes: {:?}",
        stats.token_grants
    );
    let db = rt.block_on(Db::connect(&cli.open_url())).expect("db");
    let all = rt.block_on(runs(&db));
    let expected: usize = CONCURRENT
        .iter()
        .map(|e| if entity(e).one_division_only { 1 } else { 2 })
        .sum();
    assert_eq!(all.len(), expected, "{backend}: runs {all:?}");
    assert!(all.iter().all(|r| r.status == "succeeded"), "{all:?}");
    let entities: Vec<ConfigEntity> = CONCURRENT.iter().map(|e| entity(e)).collect();
    let c = verifier(&h);
    let n = rt.block_on(assert_all_equal(&c, &db, &entities, &divs, backend));
    println!(
        "{backend}: 8 processes in {:.1} s, {} calls, {} rows equal the fake, grants {:?}",
        elapsed.as_secs_f64(),
        stats.calls_total,
        n.values().sum::<usize>(),
        stats.token_grants
    );
}

#[test]
fn concurrent_sqlite() {
    concurrent("sqlite", None);
}

#[test]
fn concurrent_postgres() {
    let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
    let url = pg.create_database("cli_faults").expect("create database");
    concurrent("postgres", Some(url));
}

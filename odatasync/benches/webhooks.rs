//! Webhook events applied per second: the receiver of `odatasync webhooks serve` in-process
//! (axum on loopback), deliveries signed like Exact's posted by 4 concurrent senders, each
//! checked (HMAC), stored (committed, SQLite with `synchronous = FULL`) and applied:
//! `Update` events read the row by key from the in-process fake Exact Online and upsert it
//! (one API call each); `Delete` events set `deleted_at` (no API call).
//!
//! ```sh
//! cargo bench -p odatasync --bench webhooks                       # 1,000 events of each
//! ODATASYNC_BENCH_EVENTS=5000 cargo bench -p odatasync --bench webhooks
//! ```
//! SQLite always; PostgreSQL too when a server can be started (odata-test-support). Prints
//! figures; asserts only that every event was applied.

#[path = "../tests/common/mod.rs"]
mod common;

use fake_exact::{Config, FakeExact, Handle};
use odata_runtime::sql::{sqlx, Db};
use odata_runtime::sync::apply_migrations;
use odatasync::service::Service;
use odatasync::webhooks::{apply::Applier, events, receiver, signature, topics::Topics};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIV: i32 = 100001;
const SENDERS: usize = 4;

fn content(h: &Handle, action: &str, key: &str) -> String {
    format!(
        "{{\"Topic\":\"GLAccounts\",\"ClientId\":\"{}\",\"Division\":{DIV},\"Action\":\"{action}\",\"Key\":\"{key}\",\"ExactOnlineEndpoint\":\"{}/api/v1/{DIV}/financial/GLAccounts(guid'{key}')\",\"EventCreatedOn\":\"2026-01-17T22:56:23.087\"}}",
        h.config().client_id,
        h.base_url()
    )
}

async fn done(db: &Db) -> i64 {
    events::counts(db, "exact")
        .await
        .expect("counts")
        .iter()
        .filter(|(s, _)| s != events::RECEIVED)
        .map(|(_, n)| n)
        .sum()
}

/// Posts `bodies` with SENDERS concurrent senders; waits until `expect_done` events are done.
/// (seconds until every 200, seconds until every event applied).
async fn round(url: &str, bodies: Vec<String>, db: &Db, expect_done: i64) -> (f64, f64) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let bodies = Arc::new(bodies);
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let (http, bodies, url) = (http.clone(), bodies.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            for b in bodies.iter().skip(s).step_by(SENDERS) {
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(b.clone())
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status().as_u16(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let received = started.elapsed().as_secs_f64();
    while done(db).await < expect_done {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (received, started.elapsed().as_secs_f64())
}

async fn bench(h: &Handle, backend: &str, db: Db, n: usize) {
    apply_migrations(&db).await.expect("migrations");
    let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata-cache");
    let service = Service::load(&cache, "exact").expect("service");
    let topics = Arc::new(Topics::of(&service));
    let secret = h.config().webhook_secret.clone();
    let wake = Arc::new(tokio::sync::Notify::new());
    let recv = receiver::Receiver {
        db: db.clone(),
        service: "exact".into(),
        topics: topics.clone(),
        secret: secret.clone().into_bytes(),
        wake,
    };
    let applier = Applier {
        db: db.clone(),
        client: common::verifier(h),
        service: "exact".into(),
        topics,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let server = tokio::spawn(receiver::serve(listener, recv, applier, Duration::ZERO));
    let keys: Vec<String> = (0..n as u64)
        .map(|i| {
            h.key_literal("financial/GLAccounts", DIV, i)
                .expect("key")
                .trim_start_matches("guid'")
                .trim_end_matches('\'')
                .to_lowercase()
        })
        .collect();
    let sign = |action: &str| -> Vec<String> {
        keys.iter()
            .map(|k| signature::delivery(secret.as_bytes(), &content(h, action, k)))
            .collect()
    };
    let calls0 = h.stats().calls_total;
    let (recv_s, all_s) = round(&url, sign("Update"), &db, n as i64).await;
    let calls = h.stats().calls_total - calls0;
    println!(
        "{backend:<10} Update: {n} events, 200s at {:>7.0}/s, applied (1 API call + upsert each) {:>7.0}/s ({all_s:.2} s, {calls} API calls)",
        n as f64 / recv_s,
        n as f64 / all_s
    );
    let (recv_s, all_s) = round(&url, sign("Delete"), &db, 2 * n as i64).await;
    println!(
        "{backend:<10} Delete: {n} events, 200s at {:>7.0}/s, applied (deleted_at)          {:>7.0}/s ({all_s:.2} s)",
        n as f64 / recv_s,
        n as f64 / all_s
    );
    let failed: i64 = events::counts(&db, "exact")
        .await
        .expect("counts")
        .iter()
        .filter(|(s, _)| s != events::APPLIED)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(failed, 0, "events not applied");
    let deleted: i64 = match &db {
        Db::Sqlite(p) => sqlx::query_scalar(
            "SELECT COUNT(*) FROM exact_gl_accounts WHERE deleted_at IS NOT NULL",
        )
        .fetch_one(p)
        .await
        .expect("count"),
        Db::Postgres(p) => sqlx::query_scalar(
            "SELECT COUNT(*) FROM exact_gl_accounts WHERE deleted_at IS NOT NULL",
        )
        .fetch_one(p)
        .await
        .expect("count"),
    };
    assert_eq!(deleted, n as i64);
    server.abort();
}

fn main() {
    let n: usize = std::env::var("ODATASYNC_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut cfg = Config {
        divisions: vec![DIV],
        rows_per_entity: 10,
        minutely_limit: 1_000_000,
        daily_limit: 100_000_000,
        metadata_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../metadata-cache/exact"),
        ..Config::default()
    };
    cfg.rows.insert("GLAccounts".into(), n as u64);
    let h = FakeExact::start(cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("w.sqlite").display());
    rt.block_on(async {
        let db = Db::connect(&url).await.expect("sqlite");
        bench(&h, "sqlite", db, n).await;
    });
    match odata_test_support::PgServer::start() {
        Ok(pg) => {
            let url = pg.create_database("bench_webhooks").expect("database");
            rt.block_on(async {
                let db = Db::connect(&url).await.expect("postgres");
                bench(&h, "postgres", db, n).await;
            });
        }
        Err(e) => println!("postgres: skipped ({e})"),
    }
}

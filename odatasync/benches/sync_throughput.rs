//! Sync throughput and memory: `odatasync sync` of one entity (sync/Financial/TransactionLines,
//! 1000 rows a page) from the in-process fake Exact Online into SQLite and PostgreSQL, against a
//! bare page-through of the same rows with the typed client (the floor: HTTP + JSON parsing,
//! nothing written). Peak RSS is the `odatasync` process's VmHWM (polled from /proc).
//!
//! ```sh
//! cargo bench -p odatasync --bench sync_throughput                          # 200,000 rows
//! ODATASYNC_BENCH_ROWS=1000000 cargo bench -p odatasync --bench sync_throughput
//! ```
//! Prints figures; asserts nothing about time.

use fake_exact::{Config, FakeExact, Handle};
use futures_util::TryStreamExt;
use odata_runtime::client::{Auth, Client, ExactOAuth2, MemoryTokenStore, Secret, TokenSet};
use odata_runtime::Dialect;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIV: i32 = 100001;
const ENDPOINT: &str = "sync/Financial/TransactionLines";

fn client(h: &Handle) -> Client {
    let (a, r) = h.issue_tokens();
    let now = h.clock().now_ms();
    let store = Arc::new(MemoryTokenStore::new(Some(TokenSet {
        access_token: Secret::new(a),
        refresh_token: Secret::new(r),
        expires_at_ms: now + 600_000,
        obtained_at_ms: now,
    })));
    let cfg = h.config();
    Client::builder(format!("{}/api/v1/{{division}}/", h.base_url()))
        .auth(Auth::ExactOAuth2(ExactOAuth2 {
            client_id: cfg.client_id.clone(),
            client_secret: Secret::new(cfg.client_secret.clone()),
            token_url: format!("{}/api/oauth2/token", h.base_url()),
            redirect_uri: "https://app.example.nl/callback".into(),
            store,
        }))
        .dialect(Dialect::V2)
        .build()
        .expect("client")
}

/// Runs the CLI; returns (wall time, peak RSS in KiB, stdout).
fn run_cli(h: &Handle, database: &str, dir: &std::path::Path) -> (Duration, u64, String) {
    // A refresh token as a user would hand it over: its access token is past the 570-second
    // mark (Exact refuses earlier refreshes), so move the fake's clock on by 10 minutes.
    let (_, refresh) = h.issue_tokens();
    reqwest::blocking::Client::new()
        .post(format!("{}/_test/clock", h.base_url()))
        .header("content-type", "application/json")
        .body(r#"{"advance_ms": 600000}"#)
        .send()
        .expect("advance the fake's clock");
    let cfg = h.config();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_odatasync"))
        .args([
            "sync",
            "--no-progress",
            "--service",
            "exact",
            "--entities",
            "SyncTransactionLines",
            "--division",
            &DIV.to_string(),
            "--database",
            database,
        ])
        .env(
            "ODATASYNC_BASE_URL",
            format!("{}/api/v1/{{division}}/", h.base_url()),
        )
        .env(
            "ODATASYNC_TOKEN_URL",
            format!("{}/api/oauth2/token", h.base_url()),
        )
        .env("ODATASYNC_CLIENT_ID", &cfg.client_id)
        .env("ODATASYNC_CLIENT_SECRET", &cfg.client_secret)
        .env("ODATASYNC_REFRESH_TOKEN", refresh)
        .env("ODATASYNC_SECRET_KEY_FILE", dir.join("key"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("odatasync");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(v) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(v);
            }
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "odatasync failed:\n{stdout}");
    (elapsed, peak_kib, stdout)
}

fn main() {
    let rows: u64 = std::env::var("ODATASYNC_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut cfg = Config {
        divisions: vec![DIV],
        rows_per_entity: 10,
        minutely_limit: 1_000_000,
        daily_limit: 100_000_000,
        ..Config::default()
    };
    cfg.rows.insert("TransactionLines".into(), rows);
    let h = FakeExact::start(cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The floor: typed rows paged through and dropped.
    let c = client(&h);
    let t = Instant::now();
    let n = rt.block_on(async {
        let s = c
            .rows::<generated::exact::TransactionLineSync>(DIV)
            .endpoint(ENDPOINT)
            .stream();
        futures_util::pin_mut!(s);
        let mut n = 0u64;
        while let Some(r) = s.try_next().await.expect("row") {
            std::hint::black_box(&r);
            n += 1;
        }
        n
    });
    let bare = t.elapsed();
    assert_eq!(n, rows);
    println!(
        "bare page-through: {rows} rows in {:.2} s = {:.0} rows/s ({} calls)",
        bare.as_secs_f64(),
        rows as f64 / bare.as_secs_f64(),
        c.requests_sent()
    );

    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("bench.sqlite").display()
    );
    let (t, rss, out) = run_cli(&h, &sqlite, dir.path());
    println!(
        "odatasync sync → SQLite: {rows} rows in {:.2} s = {:.0} rows/s ({:.2}× the bare page-through), peak RSS {:.1} MiB",
        t.as_secs_f64(),
        rows as f64 / t.as_secs_f64(),
        t.as_secs_f64() / bare.as_secs_f64(),
        rss as f64 / 1024.0
    );
    print!("{out}");

    match odata_test_support::PgServer::start() {
        Ok(pg) => {
            let url = pg.create_database("bench").expect("create database");
            let (t, rss, out) = run_cli(&h, &url, dir.path());
            println!(
                "odatasync sync → PostgreSQL: {rows} rows in {:.2} s = {:.0} rows/s ({:.2}× the bare page-through), peak RSS {:.1} MiB",
                t.as_secs_f64(),
                rows as f64 / t.as_secs_f64(),
                t.as_secs_f64() / bare.as_secs_f64(),
                rss as f64 / 1024.0
            );
            print!("{out}");
        }
        Err(e) => println!("PostgreSQL: skipped ({e})"),
    }
}

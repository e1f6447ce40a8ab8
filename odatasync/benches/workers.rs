//! Scale-out workers: divisions synced per minute as workers go 1 → 2 → 4, against the fake
//! Exact Online with its rate limits on (60 calls per minute and 5000 per day per division by
//! default) and its clock sped up, on a real PostgreSQL.
//!
//! ```sh
//! cargo bench -p odatasync --bench workers
//! BENCH_DIVISIONS=40 BENCH_MINUTELY=6 BENCH_SPEED=30 cargo bench -p odatasync --bench workers
//! BENCH_LATENCY_MS=300 cargo bench -p odatasync --bench workers
//! ```
//!
//! Settings (environment): `BENCH_DIVISIONS` (default 30), `BENCH_ROWS` rows per entity and
//! division (default 100: standard endpoints page 60 rows a call, bulk and sync 1000),
//! `BENCH_MINUTELY` the fake's calls per minute per division (default 60), `BENCH_LATENCY_MS`
//! the (virtual) milliseconds each API answer takes (default 0; Exact's round trip is a few
//! hundred), `BENCH_SPEED` the clock factor (default 60: a virtual minute is a real second),
//! `BENCH_WORKERS` (default `1,2,4`), `BENCH_CONCURRENCY` jobs per worker (default 1). Workers are child processes of
//! the bench (it runs itself again with `WORKERS_BENCH_CHILD` set), each running the library's
//! worker loop with the fake's clock. Prints virtual and real time and divisions per minute.

use fake_exact::{Config, FakeExact};
use odata_runtime::client::{BoxFuture, ClientOptions, Clock, Secret, TokenSet, TokenStore};
use odata_runtime::sql::Db;
use odata_runtime::sync::budget::BudgetOptions;
use odata_runtime::sync::{apply_migrations, DbTokenStore, SecretKey};
use odata_test_support::PgServer;
use odatasync::connect::ConnectOptions;
use odatasync::plan;
use odatasync::service::Service;
use odatasync::worker::{self, ScheduleOptions, WorkerOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CHILD_ENV: &str = "WORKERS_BENCH_CHILD";

#[derive(Debug, Clone)]
struct FakeClock(fake_exact::Clock);

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(
            self.0.real_duration(d.as_millis() as i64),
        ))
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn system_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn metadata_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata-cache")
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn child() {
    let speed: f64 = env("W_SPEED").parse().expect("W_SPEED");
    let v0: i64 = env("W_V0_MS").parse().expect("W_V0_MS");
    let s0: i64 = env("W_S0_US").parse().expect("W_S0_US");
    let clock = fake_exact::Clock::starting_at(
        v0 + ((system_us() - s0) as f64 * speed / 1000.0) as i64,
        speed,
    );
    let base = env("W_BASE_URL");
    let db = Db::connect(&env("W_DB")).await.expect("child: connect");
    let mut opts = WorkerOptions::new(metadata_cache());
    opts.concurrency = env_or("W_CONCURRENCY", 1);
    opts.exit_when_idle = true;
    opts.lease = Duration::from_secs(10);
    opts.heartbeat = Duration::from_secs(2);
    opts.poll = Duration::from_millis(50);
    opts.connect = ConnectOptions {
        clock: Some(Arc::new(FakeClock(clock))),
        client: Some(ClientOptions {
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            ..ClientOptions::default()
        }),
        credentials: Some((env("W_CLIENT_ID"), Secret::new(env("W_CLIENT_SECRET")))),
        base_url: Some(format!("{base}/api/v1/{{division}}/")),
        token_url: Some(format!("{base}/api/oauth2/token")),
        secret_key_file: Some(PathBuf::from(env("W_KEY_FILE"))),
        ..ConnectOptions::default()
    };
    opts.budget = BudgetOptions {
        minutely_limit: env_or("W_MINUTELY", 60),
        daily_limit: 5000,
        minutely_reserve: 0,
        daily_reserve: 0,
        edge_guard_ms: 5_000,
        start_margin_ms: 1_000,
    };
    let r = worker::run_worker(&db, opts).await.expect("child: worker");
    println!("WORKER-DONE succeeded={} failed={}", r.succeeded, r.failed);
}

fn main() {
    if std::env::var(CHILD_ENV).is_ok() {
        rt().block_on(child());
        return;
    }
    let divisions: i32 = env_or("BENCH_DIVISIONS", 30);
    let rows: u64 = env_or("BENCH_ROWS", 100);
    let minutely: u32 = env_or("BENCH_MINUTELY", 60);
    let speed: f64 = env_or("BENCH_SPEED", 60.0);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 1);
    let latency_ms: i64 = env_or("BENCH_LATENCY_MS", 0);
    let workers: Vec<usize> = std::env::var("BENCH_WORKERS")
        .unwrap_or_else(|_| "1,2,4".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let pg = PgServer::start().expect("PostgreSQL");
    let dir = std::env::temp_dir().join(format!("workers-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let service = Service::load(&metadata_cache(), "exact").expect("metadata-cache/exact");
    let planned = plan::plan(&service, None).expect("plan");
    println!(
        "workers bench: {divisions} divisions x {} entities, {rows} rows per entity, fake limits {minutely}/min and 5000/day per division, API latency {latency_ms} ms, clock x{speed}, {concurrency} job(s) per worker ({} build)",
        planned.len(),
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    println!(
        "{:>7}  {:>5}  {:>6}  {:>10}  {:>8}  {:>14}  {:>11}  {:>5}",
        "workers", "jobs", "calls", "virtual s", "real s", "div/virt min", "div/real min", "429s"
    );
    for (i, n) in workers.iter().enumerate() {
        let fake = FakeExact::start(Config {
            clock: fake_exact::Clock::accelerated(speed),
            divisions: (0..divisions).map(|d| 400_001 + d).collect(),
            rows_per_entity: rows,
            minutely_limit: minutely,
            daily_limit: 5000,
            latency_ms,
            ..Config::default()
        });
        let db_url = pg
            .create_database(&format!("bench{i}"))
            .expect("create database");
        let key = SecretKey::generate().expect("key");
        let key_file = dir.join(format!("bench{i}.key"));
        std::fs::write(&key_file, key.to_base64()).expect("key file");
        let jobs = rt().block_on(async {
            let db = Db::connect(&db_url).await.expect("connect");
            apply_migrations(&db).await.expect("migrations");
            let store = DbTokenStore::new(db.clone(), "exact", &fake.config().client_id, key)
                .expect("store");
            let (a, r) = fake.issue_tokens();
            let now = fake.clock().now_ms();
            store
                .save(TokenSet {
                    access_token: Secret::new(a),
                    refresh_token: Secret::new(r),
                    expires_at_ms: now + 600_000,
                    obtained_at_ms: now,
                })
                .await
                .expect("tokens");
            let divs: Vec<Option<i32>> = fake.config().divisions.iter().map(|d| Some(*d)).collect();
            worker::schedule(&db, &service, &planned, &divs, &ScheduleOptions::default())
                .await
                .expect("schedule")
                .jobs
        });
        let v0 = fake.clock().now_ms();
        let t0 = Instant::now();
        let kids: Vec<_> = (0..*n)
            .map(|_| {
                Command::new(std::env::current_exe().expect("current_exe"))
                    .env(CHILD_ENV, "1")
                    .env("W_DB", &db_url)
                    .env("W_BASE_URL", fake.base_url())
                    .env("W_CLIENT_ID", &fake.config().client_id)
                    .env("W_CLIENT_SECRET", &fake.config().client_secret)
                    .env("W_KEY_FILE", &key_file)
                    .env("W_SPEED", speed.to_string())
                    .env("W_V0_MS", fake.clock().now_ms().to_string())
                    .env("W_S0_US", system_us().to_string())
                    .env("W_MINUTELY", minutely.to_string())
                    .env("W_CONCURRENCY", concurrency.to_string())
                    .env("RUST_LOG", "error")
                    .env_remove("ODATASYNC_SECRET_KEY")
                    .env_remove("ODATASYNC_SECRET_KEY_FILE")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("spawn worker")
            })
            .collect();
        for k in kids {
            let out = k.wait_with_output().expect("worker");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.contains("failed=0"),
                "worker: {} {text}",
                out.status
            );
        }
        let real = t0.elapsed().as_secs_f64();
        let virt = (fake.clock().now_ms() - v0) as f64 / 1000.0;
        let stats = fake.stats();
        println!(
            "{n:>7}  {jobs:>5}  {:>6}  {virt:>10.0}  {real:>8.1}  {:>14.1}  {:>11.1}  {:>5}",
            stats.calls_total,
            f64::from(divisions) / (virt / 60.0),
            f64::from(divisions) / (real / 60.0),
            stats.rate_limited
        );
        drop(fake);
        // Each run's database is dropped after it (disk space on small machines).
        let _ = pg.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS bench{i} WITH (FORCE)"),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

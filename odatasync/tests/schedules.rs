//! config.json `schedule` (cron slots enqueued once) and budget-aware leasing, on a real
//! PostgreSQL; "now" is injected (`schedule_due`'s argument, `schedule --due --at`, the
//! worker's clock = the fake's accelerated clock), so no test waits for real minutes.
//!
//! * `due_slots_are_enqueued_once`: only the entities with a due slot, once per slot even with
//!   two schedulers at the same moment, missed slots collapsed into one run, a clock that lags
//!   enqueues nothing already passed; a due entity whose `dependsOn` entity is not due is leased
//!   at once, one whose dependency is due in the same batch waits for it.
//! * `lease_skips_divisions_whose_minute_is_used_up`: `claim` takes a job in another division
//!   while the current minute of the first division's shared budget is used up.
//! * `worker_enqueues_due_slots_and_runs_them`: `run_worker` with `schedule` against the fake
//!   (clock ×60): the slots of 10:00 and of 10:15 (virtual) are enqueued by the worker itself
//!   and synced; rows equal the fake's, 0 429s.
//! * `schedule_due_binary`: `odatasync schedule --due --at`, a second call enqueues nothing, an
//!   invalid `schedule` is a configuration error naming the file and the entity.
//! * `worker_binary_with_schedule`: `odatasync worker --schedule exact --exit-when-idle`
//!   enqueues the due slots itself and runs them.

use fake_exact::{Config, FakeExact};
use odata_runtime::client::{
    BoxFuture, ClientOptions, Clock, Reservation, Secret, TokenSet, TokenStore,
};
use odata_runtime::sql::{sqlx, Db};
use odata_runtime::sync::budget::{BudgetOptions, PgCallBudget, MINUTE_MS};
use odata_runtime::sync::{apply_migrations, count_live, DbTokenStore, SecretKey};
use odata_test_support::PgServer;
use odatasync::connect::ConnectOptions;
use odatasync::plan;
use odatasync::schedules::{schedule_due, ScheduledSlots};
use odatasync::service::Service;
use odatasync::worker::{self, LeaseBudget, ScheduleOptions, WorkerOptions};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SERVICE: &str = "exact";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("RFC 3339")
        .with_timezone(&chrono::Utc)
}

/// A metadata cache with `exact`'s service.toml and config.json, plus these schedules.
fn cache_with(dir: &Path, schedules: &[(&str, &str)]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata-cache/exact");
    let cache = dir.join("cache");
    let svc = cache.join(SERVICE);
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::copy(src.join("service.toml"), svc.join("service.toml")).unwrap();
    let text = std::fs::read_to_string(src.join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (entity, expr) in schedules {
        v[*entity]["schedule"] = serde_json::Value::String(expr.to_string());
    }
    std::fs::write(
        svc.join("config.json"),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
    cache
}

/// Every 15 minutes the small entities, daily the dependency of one of them, hourly Journals;
/// SyncAccounts (the other dependency of SyncTransactionLines) has no schedule.
const SCHEDULES: &[(&str, &str)] = &[
    ("GLTransactionTypes", "*/15 * * * *"),
    ("Journals", "@hourly"),
    ("SyncGLAccounts", "@daily"),
    ("SyncTransactionLines", "*/15 * * * *"),
];

async fn migrated(pg: &PgServer, name: &str) -> (Db, String) {
    let url = pg.create_database(name).expect("create database");
    let db = Db::connect(&url).await.unwrap();
    apply_migrations(&db).await.unwrap();
    (db, url)
}

fn entities(s: &ScheduledSlots) -> BTreeSet<String> {
    s.slots.iter().map(|s| s.entity.clone()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Job (entity, division, depends_on) of a batch.
async fn jobs_of(db: &Db, batch: &str) -> Vec<(String, i64, String)> {
    let Db::Postgres(pool) = db else {
        unreachable!()
    };
    sqlx::query_as("SELECT \"entity\", \"division\", \"depends_on\" FROM \"odata_jobs\" WHERE \"batch_id\" = $1 ORDER BY \"entity\", \"division\"")
        .bind(batch)
        .fetch_all(pool)
        .await
        .unwrap()
}

fn no_budget() -> LeaseBudget {
    LeaseBudget {
        client_id: None,
        now_ms: 0,
        budget: BudgetOptions::default(),
    }
}

#[test]
fn due_slots_are_enqueued_once() {
    let pg = PgServer::start().expect("PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_with(dir.path(), SCHEDULES);
    let service = Service::load(&cache, SERVICE).unwrap();
    rt().block_on(async {
        let (db, url) = migrated(&pg, "schedules_due").await;
        let divs = || async { Ok::<_, odatasync::Error>(vec![Some(1), Some(2)]) };
        let opts = ScheduleOptions::default();
        // 10:07: every scheduled entity's latest slot is due (none was ever enqueued).
        let first = schedule_due(&db, &service, at("2026-01-05T10:07:00Z"), &opts, divs)
            .await
            .unwrap()
            .expect("due at 10:07");
        assert_eq!(
            entities(&first),
            set(&["GLTransactionTypes", "Journals", "SyncGLAccounts", "SyncTransactionLines"])
        );
        assert_eq!(first.batch.jobs, 1 + 2 + 2 + 2, "GLTransactionTypes: one division only");
        let daily = first.slots.iter().find(|s| s.entity == "SyncGLAccounts").unwrap();
        assert_eq!(daily.at, at("2026-01-05T00:00:00Z"));
        let jobs = jobs_of(&db, &first.batch.batch_id).await;
        let stl: Vec<&String> = jobs
            .iter()
            .filter(|j| j.0 == "SyncTransactionLines")
            .map(|j| &j.2)
            .collect();
        assert_eq!(stl, ["SyncGLAccounts", "SyncGLAccounts"], "{jobs:?}");
        // The same slots again: nothing.
        for now in ["2026-01-05T10:07:30Z", "2026-01-05T10:14:59Z"] {
            let r = schedule_due(&db, &service, at(now), &opts, divs).await.unwrap();
            assert!(r.is_none(), "{now}: {r:?}");
        }
        // 10:16, two schedulers at once (two connection pools): one batch with the 10:15 slots.
        let db2 = Db::connect(&url).await.unwrap();
        let now = at("2026-01-05T10:16:00Z");
        let (a, b) = tokio::join!(
            schedule_due(&db, &service, now, &opts, divs),
            schedule_due(&db2, &service, now, &opts, divs)
        );
        let won: Vec<ScheduledSlots> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
        assert_eq!(won.len(), 1, "{won:?}");
        let second = &won[0];
        assert_eq!(
            entities(second),
            set(&["GLTransactionTypes", "SyncTransactionLines"])
        );
        assert_eq!(second.batch.jobs, 1 + 2);
        let jobs = jobs_of(&db, &second.batch.batch_id).await;
        assert!(
            jobs.iter().all(|j| j.2.is_empty()),
            "the dependencies are not due: {jobs:?}"
        );
        // The scheduler was down from 10:16 to 14:52: one run per entity, not one per slot.
        let third = schedule_due(&db, &service, at("2026-01-05T14:52:00Z"), &opts, divs)
            .await
            .unwrap()
            .expect("due at 14:52");
        assert_eq!(
            entities(&third),
            set(&["GLTransactionTypes", "Journals", "SyncTransactionLines"])
        );
        let Db::Postgres(pool) = &db else {
            unreachable!()
        };
        let slots: Vec<i64> = sqlx::query_scalar("SELECT \"slot_at_ms\" FROM \"odata_schedule_slots\" WHERE \"service\" = $1 AND \"entity\" = 'SyncTransactionLines' ORDER BY 1")
            .bind(SERVICE)
            .fetch_all(pool)
            .await
            .unwrap();
        let ms = |s: &str| at(s).timestamp_millis();
        assert_eq!(
            slots,
            [
                ms("2026-01-05T10:00:00Z"),
                ms("2026-01-05T10:15:00Z"),
                ms("2026-01-05T14:45:00Z")
            ]
        );
        // A scheduler whose clock lags (10:31) does not enqueue a slot that a later one passed.
        let r = schedule_due(&db, &service, at("2026-01-05T10:31:00Z"), &opts, divs)
            .await
            .unwrap();
        assert!(r.is_none(), "{r:?}");
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM \"odata_jobs\"")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(total as usize, first.batch.jobs + second.batch.jobs + third.batch.jobs);

        // Leasing: everything that can run now, in queue order.
        let mut leased: Vec<(String, String, i64)> = Vec::new();
        while let Some(j) = worker::claim(pool, "w1", Duration::from_secs(60), &no_budget())
            .await
            .unwrap()
        {
            leased.push((j.batch_id, j.entity, j.division));
        }
        let has = |batch: &str, entity: &str| {
            leased
                .iter()
                .filter(|(b, e, _)| b == batch && e == entity)
                .count()
        };
        // Its dependency not due: SyncTransactionLines of the 10:15 slot runs at once.
        assert_eq!(has(&second.batch.batch_id, "SyncTransactionLines"), 2, "{leased:?}");
        // Its dependency due in the same batch: it waits for SyncGLAccounts of that batch.
        assert_eq!(has(&first.batch.batch_id, "SyncTransactionLines"), 0, "{leased:?}");
        assert_eq!(has(&first.batch.batch_id, "SyncGLAccounts"), 2, "{leased:?}");
        assert_eq!(leased.len(), total as usize - 2, "{leased:?}");
        sqlx::query("UPDATE \"odata_jobs\" SET \"status\" = 'succeeded' WHERE \"batch_id\" = $1 AND \"entity\" = 'SyncGLAccounts'")
            .bind(&first.batch.batch_id)
            .execute(pool)
            .await
            .unwrap();
        let j = worker::claim(pool, "w1", Duration::from_secs(60), &no_budget())
            .await
            .unwrap()
            .expect("SyncTransactionLines after its dependency");
        assert_eq!(
            (j.batch_id.as_str(), j.entity.as_str()),
            (first.batch.batch_id.as_str(), "SyncTransactionLines")
        );
    });
}

#[test]
fn lease_skips_divisions_whose_minute_is_used_up() {
    let pg = PgServer::start().expect("PostgreSQL");
    let service = Service::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata-cache"),
        SERVICE,
    )
    .unwrap();
    rt().block_on(async {
        let (db, _) = migrated(&pg, "schedules_budget").await;
        let Db::Postgres(pool) = &db else {
            unreachable!()
        };
        let planned = plan::plan(&service, Some(&["Journals".to_string()])).unwrap();
        worker::schedule(
            &db,
            &service,
            &planned,
            &[Some(1), Some(2)],
            &ScheduleOptions::default(),
        )
        .await
        .unwrap();
        // Division 1 (first in the queue) uses up its minute: 3 calls of 3.
        let opts = BudgetOptions {
            minutely_limit: 3,
            minutely_reserve: 0,
            ..BudgetOptions::default()
        };
        let budget = PgCallBudget::new(&db, SERVICE, "app", opts.clone()).unwrap();
        let minute = 1_767_607_200_000; // 2026-01-05T10:00:00Z
        let now = minute + 30_000;
        for _ in 0..3 {
            assert_eq!(budget.try_reserve(1, now).await.unwrap(), Reservation::Go);
        }
        assert!(matches!(
            budget.try_reserve(1, now).await.unwrap(),
            Reservation::WaitUntil(_)
        ));
        let lease = |now_ms: i64| LeaseBudget {
            client_id: Some("app".into()),
            now_ms,
            budget: opts.clone(),
        };
        let claim = |now_ms: i64| {
            let b = lease(now_ms);
            async move {
                worker::claim(pool, "w1", Duration::from_secs(60), &b)
                    .await
                    .unwrap()
                    .map(|j| j.division)
            }
        };
        assert_eq!(claim(now + 1_000).await, Some(2), "division 1's minute is used up");
        assert_eq!(claim(now + 2_000).await, None, "only division 1 is left");
        // Another app's budget does not hold the worker back.
        let other = LeaseBudget {
            client_id: Some("other-app".into()),
            ..lease(now + 3_000)
        };
        let j = worker::claim(pool, "w2", Duration::from_secs(60), &other)
            .await
            .unwrap()
            .map(|j| j.division);
        assert_eq!(j, Some(1));
        // Hand it back; in the next minute division 1 is leased again.
        sqlx::query("UPDATE \"odata_jobs\" SET \"status\" = 'queued', \"lease_owner\" = NULL, \"attempts\" = 0 WHERE \"division\" = 1")
            .execute(pool)
            .await
            .unwrap();
        assert_eq!(claim(now + 2_000).await, None);
        assert_eq!(claim(minute + MINUTE_MS + 1_000).await, Some(1));
    });
}

/// The client's clock = the fake's (accelerated) clock.
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

#[test]
fn worker_enqueues_due_slots_and_runs_them() {
    const SPEED: f64 = 60.0; // a virtual minute is a real second
    let pg = PgServer::start().expect("PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_with(dir.path(), SCHEDULES);
    let key = SecretKey::generate().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, key.to_base64()).unwrap();
    let runtime = rt();
    let (db, _) = runtime.block_on(migrated(&pg, "schedules_worker"));
    // Virtual 10:14 once the database is ready: the 10:00 slots are due at once, the 10:15 ones
    // a real second later.
    let clock =
        fake_exact::Clock::starting_at(at("2026-01-05T10:14:00Z").timestamp_millis(), SPEED);
    let fake = FakeExact::start(Config {
        clock: clock.clone(),
        divisions: vec![400_001],
        rows_per_entity: 3,
        ..Config::default()
    });
    runtime.block_on(async {
        let store =
            DbTokenStore::new(db.clone(), SERVICE, &fake.config().client_id, key.clone()).unwrap();
        let now = fake.clock().now_ms();
        let (a, r) = fake.issue_tokens();
        store
            .save(TokenSet {
                access_token: Secret::new(a),
                refresh_token: Secret::new(r),
                expires_at_ms: now + 600_000,
                obtained_at_ms: now,
            })
            .await
            .unwrap();
        let base = fake.base_url();
        let mut opts = WorkerOptions::new(cache.clone());
        opts.concurrency = 2;
        opts.poll = Duration::from_millis(50);
        opts.lease = Duration::from_secs(5);
        opts.heartbeat = Duration::from_secs(1);
        opts.schedule = vec![SERVICE.to_string()];
        opts.connect = ConnectOptions {
            clock: Some(Arc::new(FakeClock(clock.clone()))),
            client: Some(ClientOptions {
                min_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(5),
                ..ClientOptions::default()
            }),
            credentials: Some((
                fake.config().client_id.clone(),
                Secret::new(fake.config().client_secret.clone()),
            )),
            base_url: Some(format!("{base}/api/v1/{{division}}/")),
            token_url: Some(format!("{base}/api/oauth2/token")),
            secret_key_file: Some(key_file.clone()),
            ..ConnectOptions::default()
        };
        let (tx, rx) = tokio::sync::watch::channel(false);
        opts.shutdown = Some(rx);
        let Db::Postgres(pool) = &db else {
            unreachable!()
        };
        let started = Instant::now();
        // Until the 10:15 slot's batch (the second) has run: its SyncTransactionLines job
        // (whose dependencies are not due) and GLTransactionTypes.
        let watch = async {
            loop {
                let done: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT \"batch_id\", \"status\", COUNT(*) FROM \"odata_jobs\" GROUP BY 1, 2 ORDER BY 1, 2",
                )
                .fetch_all(pool)
                .await
                .unwrap();
                let batches: BTreeSet<&String> = done.iter().map(|r| &r.0).collect();
                let open = done.iter().any(|r| r.1 != "succeeded" && r.1 != "failed");
                if batches.len() >= 2 && !open {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(40),
                    "the worker did not run two scheduled batches: {done:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = tx.send(true);
        };
        let (report, ()) = tokio::join!(worker::run_worker(&db, opts), watch);
        let report = report.expect("worker");
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT s.\"batch_id\", s.\"entity\", j.\"status\", s.\"slot_at_ms\" FROM \"odata_schedule_slots\" s JOIN \"odata_jobs\" j ON j.\"batch_id\" = s.\"batch_id\" AND j.\"entity\" = s.\"entity\" ORDER BY s.\"slot_at_ms\", s.\"entity\"",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let ms = |s: &str| at(s).timestamp_millis();
        let summary: Vec<(&str, &str, i64)> = rows
            .iter()
            .map(|r| (r.1.as_str(), r.2.as_str(), r.3))
            .collect();
        assert_eq!(
            summary,
            [
                ("SyncGLAccounts", "succeeded", ms("2026-01-05T00:00:00Z")),
                ("GLTransactionTypes", "succeeded", ms("2026-01-05T10:00:00Z")),
                ("Journals", "succeeded", ms("2026-01-05T10:00:00Z")),
                ("SyncTransactionLines", "succeeded", ms("2026-01-05T10:00:00Z")),
                ("GLTransactionTypes", "succeeded", ms("2026-01-05T10:15:00Z")),
                ("SyncTransactionLines", "succeeded", ms("2026-01-05T10:15:00Z")),
            ],
            "{report:?}"
        );
        assert_eq!((report.succeeded, report.failed), (6, 0));
        // The data equals the fake's.
        let service = Service::load(&cache, SERVICE).unwrap();
        for name in ["GLTransactionTypes", "Journals", "SyncTransactionLines"] {
            let p = &plan::plan(&service, Some(&[name.to_string()])).unwrap()[0];
            let url = format!(
                "{base}/_test/checksum?entity={}&division=400001",
                p.endpoint
            );
            let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let stored = count_live(&db, p.table, Some(400_001)).await.unwrap();
            assert_eq!(Some(stored), v["count"].as_i64(), "{name}");
        }
        println!(
            "worker --schedule: 2 scheduled batches, 6 jobs, {:.1} s real",
            started.elapsed().as_secs_f64()
        );
    });
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 0);
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
}

#[test]
fn schedule_due_binary() {
    let pg = PgServer::start().expect("PostgreSQL");
    let url = pg
        .create_database("schedules_cli")
        .expect("create database");
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_with(dir.path(), SCHEDULES);
    let run = |cache: &Path, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_odatasync"))
            .args(["schedule", "--service", SERVICE, "--database", &url])
            .args(args)
            .env("ODATASYNC_METADATA_CACHE", cache)
            .env_remove("ODATASYNC_BASE_URL")
            .stdin(Stdio::null())
            .output()
            .expect("odatasync schedule");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let due = |now: &str| run(&cache, &["--due", "--division", "100001", "--at", now]);
    let (code, out, err) = due("2026-01-05T10:07:00Z");
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("4 jobs queued")
            && out.contains("SyncGLAccounts (2026-01-05T00:00Z)")
            && out.contains("SyncTransactionLines (2026-01-05T10:00Z)"),
        "{out}"
    );
    let (code, out, _) = due("2026-01-05T10:10:00Z");
    assert_eq!(code, Some(0));
    assert!(out.contains("nothing due at 2026-01-05T10:10:00Z"), "{out}");
    let (_, out, _) = due("2026-01-05T10:15:00Z");
    assert!(
        out.contains("2 jobs queued")
            && out.contains(
                "GLTransactionTypes (2026-01-05T10:15Z), SyncTransactionLines (2026-01-05T10:15Z)"
            ),
        "{out}"
    );
    // `status` shows the schedules.
    let out = Command::new(env!("CARGO_BIN_EXE_odatasync"))
        .args(["status", "--service", SERVICE, "--database", &url])
        .env("ODATASYNC_METADATA_CACHE", &cache)
        .output()
        .expect("odatasync status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let (_, section) = text
        .split_once("schedules (config.json, UTC):")
        .unwrap_or_else(|| panic!("no schedules in {text}"));
    let stl = section
        .lines()
        .find(|l| l.trim_start().starts_with("SyncTransactionLines"))
        .unwrap_or_else(|| panic!("{section}"));
    println!("schedules:{section}");
    assert!(
        stl.contains("*/15 * * * *") && stl.contains("last enqueued 2026-01-05T10:15Z"),
        "{stl}"
    );
    // --due and --entities do not go together; --at needs --due.
    let (code, _, err) = run(&cache, &["--due", "--entities", "Journals"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = run(&cache, &["--at", "2026-01-05T10:15:00Z"]);
    assert_eq!(code, Some(2), "{err}");
    // An invalid expression: a configuration error naming the file and the entity.
    let bad_dir = tempfile::tempdir().unwrap();
    let bad = cache_with(bad_dir.path(), &[("Journals", "*/15 * * *")]);
    let (code, _, err) = run(&bad, &["--due", "--division", "100001"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("config.json: error: entity 'Journals': 'schedule' = \"*/15 * * *\""),
        "{err}"
    );
    // A valid expression that never matches (the 30th of February).
    let never_dir = tempfile::tempdir().unwrap();
    let never = cache_with(never_dir.path(), &[("Journals", "0 0 30 2 *")]);
    let (code, _, err) = run(&never, &["--due", "--division", "100001"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("entity 'Journals': 'schedule' = \"0 0 30 2 *\" never matches a time"),
        "{err}"
    );
}

/// The real binary: `odatasync worker --schedule exact --exit-when-idle` (credentials and the
/// refresh token from the environment) enqueues the due slots itself, runs them, and exits
/// once nothing is due, queued or running.
#[test]
fn worker_binary_with_schedule() {
    let pg = PgServer::start().expect("PostgreSQL");
    let url = pg
        .create_database("schedules_worker_cli")
        .expect("create database");
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_with(dir.path(), SCHEDULES);
    let system_ms = chrono::Utc::now().timestamp_millis();
    // A refresh token whose chain is old enough (> 570 s) to be refreshed at once.
    let clock = fake_exact::Clock::starting_at(system_ms - 600_000, 1.0);
    let fake = FakeExact::start(Config {
        clock: clock.clone(),
        divisions: vec![100_001],
        rows_per_entity: 3,
        ..Config::default()
    });
    let (_access, refresh) = fake.issue_tokens();
    clock.advance(Duration::from_secs(600));
    let key = SecretKey::generate().unwrap();
    let worker = |schedule: &str| {
        Command::new(env!("CARGO_BIN_EXE_odatasync"))
            .args(["worker", "--exit-when-idle", "--concurrency", "2"])
            .args(["--schedule", schedule, "--database", &url])
            .env("ODATASYNC_METADATA_CACHE", &cache)
            .env(
                "ODATASYNC_BASE_URL",
                format!("{}/api/v1/{{division}}/", fake.base_url()),
            )
            .env(
                "ODATASYNC_TOKEN_URL",
                format!("{}/api/oauth2/token", fake.base_url()),
            )
            .env("ODATASYNC_CLIENT_ID", &fake.config().client_id)
            .env("ODATASYNC_CLIENT_SECRET", &fake.config().client_secret)
            .env("ODATASYNC_REFRESH_TOKEN", &refresh)
            .env("ODATASYNC_SECRET_KEY", key.to_base64())
            .env_remove("ODATASYNC_SECRET_KEY_FILE")
            .stdin(Stdio::null())
            .output()
            .expect("odatasync worker")
    };
    let out = worker("exact");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // 4 jobs: the latest slots of the 4 scheduled entities in the fake's one division (6 when
    // a quarter hour begins during the run: 2 more slots).
    assert!(
        out.status.success()
            && (stdout.contains("4 jobs succeeded, 0 failed")
                || stdout.contains("6 jobs succeeded, 0 failed")),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let slots: BTreeSet<String> = rt().block_on(async {
        let db = Db::connect(&url).await.unwrap();
        let Db::Postgres(pool) = &db else {
            unreachable!()
        };
        sqlx::query_scalar("SELECT \"entity\" FROM \"odata_schedule_slots\"")
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .collect()
    });
    assert_eq!(
        slots,
        set(&[
            "GLTransactionTypes",
            "Journals",
            "SyncGLAccounts",
            "SyncTransactionLines"
        ])
    );
    // A service that is not in the metadata cache: a usage error.
    let out = worker("northwind");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 0);
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
}

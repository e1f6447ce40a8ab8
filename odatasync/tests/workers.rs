//! Scale-out workers (`odatasync::worker`) on a real PostgreSQL against the fake Exact Online
//! with its rate limits on and its clock sped up.
//!
//! Workers are child processes: this test binary runs itself again
//! (`current_exe() --exact child_process`, with `WORKERS_CHILD` set; without it `child_process`
//! returns at once), and each child runs the library's worker loop with the fake's accelerated
//! clock rebuilt from (virtual start, wall-clock start, speed) — the pattern of
//! `runtime/tests/token_store.rs` — so the production binary needs no clock hook.
//!
//! * `four_workers_fifty_divisions_one_killed`: 4 workers, 50 divisions, one worker killed
//!   with SIGKILL mid-run: every (division, entity) job done once (`odata_jobs`, one
//!   `odata_sync_runs` record each), the rows equal the fake's (count per division and entity),
//!   0 429s, no early refresh, no rotated refresh token reused, one refresh per token lifetime
//!   for all workers together.
//! * `four_workers_share_the_budget_of_one_division`: every job in one division with a limit of
//!   6 calls a minute: the shared budget makes the 4 workers wait for the next minute instead of
//!   overrunning (0 429s) and the run spans the minutes the calls need.

use fake_exact::{Config, FakeExact, Handle};
use odata_runtime::client::{BoxFuture, ClientOptions, Clock, Secret, TokenSet, TokenStore};
use odata_runtime::sql::{sqlx, Db};
use odata_runtime::sync::budget::BudgetOptions;
use odata_runtime::sync::{apply_migrations, count_live, DbTokenStore, SecretKey};
use odata_test_support::PgServer;
use odatasync::connect::ConnectOptions;
use odatasync::plan::{self, PlannedEntity};
use odatasync::service::Service;
use odatasync::worker::{self, ScheduleOptions, WorkerOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CHILD_ENV: &str = "WORKERS_CHILD";
const SERVICE: &str = "exact";

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

/// The client's clock = the fake's (accelerated) clock; sleeps last the matching real time.
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

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child: {name} not set"))
}

fn env_i64(name: &str) -> i64 {
    env(name)
        .parse()
        .unwrap_or_else(|_| panic!("child: {name}"))
}

/// The entry point of the worker processes (returns at once in a normal test run).
#[test]
fn child_process() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    rt().block_on(worker_child());
}

/// One worker: the library's loop with the fake's clock, until the queue is empty.
async fn worker_child() {
    let speed: f64 = env("W_SPEED").parse().expect("W_SPEED");
    let clock = fake_exact::Clock::starting_at(
        env_i64("W_V0_MS") + ((system_us() - env_i64("W_S0_US")) as f64 * speed / 1000.0) as i64,
        speed,
    );
    let base = env("W_BASE_URL");
    let db = Db::connect(&env("W_DB")).await.expect("child: connect");
    let lease = Duration::from_millis(env_i64("W_LEASE_MS") as u64);
    let mut opts = WorkerOptions::new(metadata_cache());
    opts.concurrency = env_i64("W_CONCURRENCY") as usize;
    opts.exit_when_idle = true;
    opts.lease = lease;
    opts.heartbeat = lease / 4;
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
        minutely_limit: env_i64("W_MINUTELY"),
        daily_limit: 5000,
        // The whole limit: the test proves that the workers never overrun it.
        minutely_reserve: 0,
        daily_reserve: 0,
        // Virtual ms; at the test's speeds 5 s are 80-250 ms of real time, more than a request
        // takes on a loaded machine.
        edge_guard_ms: 5_000,
        start_margin_ms: 1_000,
    };
    let r = worker::run_worker(&db, opts).await.expect("child: worker");
    println!(
        "\nWORKER-DONE succeeded={} failed={} lost={}",
        r.succeeded, r.failed, r.lost
    );
}

/// A fake, a migrated database with a fresh token pair, a key file.
struct Setup {
    fake: Handle,
    db_url: String,
    key_file: PathBuf,
    service: Service,
    plan: Vec<PlannedEntity>,
    divisions: Vec<i32>,
}

fn setup(
    pg: &PgServer,
    name: &str,
    dir: &Path,
    divisions: Vec<i32>,
    minutely_limit: u32,
    speed: f64,
) -> Setup {
    let fake = FakeExact::start(Config {
        clock: fake_exact::Clock::accelerated(speed),
        divisions: divisions.clone(),
        rows_per_entity: 3,
        minutely_limit,
        daily_limit: 5000,
        ..Config::default()
    });
    let db_url = pg.create_database(name).expect("create database");
    let key = SecretKey::generate().unwrap();
    rt().block_on(async {
        let db = Db::connect(&db_url).await.unwrap();
        apply_migrations(&db).await.unwrap();
        let store = DbTokenStore::new(db, SERVICE, &fake.config().client_id, key.clone()).unwrap();
        // A pair obtained 540 s ago: every worker finds it due for a refresh 30 s (virtual) into
        // the run, and exactly one of them may do it (the store's advisory lock + re-read).
        let now = fake.clock().now_ms();
        let (a, r) = fake.issue_tokens();
        fake.clock().advance(Duration::from_secs(540));
        store
            .save(TokenSet {
                access_token: Secret::new(a),
                refresh_token: Secret::new(r),
                expires_at_ms: now + 600_000,
                obtained_at_ms: now,
            })
            .await
            .unwrap();
    });
    let key_file = dir.join(format!("{name}.key"));
    std::fs::write(&key_file, key.to_base64()).unwrap();
    let service = Service::load(&metadata_cache(), SERVICE).expect("metadata-cache/exact");
    let plan = plan::plan(&service, None).expect("plan");
    Setup {
        fake,
        db_url,
        key_file,
        service,
        plan,
        divisions,
    }
}

impl Setup {
    fn schedule(&self) -> (String, usize) {
        rt().block_on(async {
            let db = Db::connect(&self.db_url).await.unwrap();
            let divs: Vec<Option<i32>> = self.divisions.iter().map(|d| Some(*d)).collect();
            let s = worker::schedule(
                &db,
                &self.service,
                &self.plan,
                &divs,
                &ScheduleOptions::default(),
            )
            .await
            .expect("schedule");
            (s.batch_id, s.jobs)
        })
    }

    fn spawn(&self, speed: f64, minutely: u32, concurrency: usize, lease_ms: u64) -> Child {
        Command::new(std::env::current_exe().expect("current_exe"))
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, "1")
            .env("W_DB", &self.db_url)
            .env("W_BASE_URL", self.fake.base_url())
            .env("W_CLIENT_ID", &self.fake.config().client_id)
            .env("W_CLIENT_SECRET", &self.fake.config().client_secret)
            .env("W_KEY_FILE", &self.key_file)
            .env("W_SPEED", speed.to_string())
            .env("W_V0_MS", self.fake.clock().now_ms().to_string())
            .env("W_S0_US", system_us().to_string())
            .env("W_MINUTELY", minutely.to_string())
            .env("W_CONCURRENCY", concurrency.to_string())
            .env("W_LEASE_MS", lease_ms.to_string())
            .env("RUST_LOG", "warn")
            .env_remove("ODATASYNC_SECRET_KEY")
            .env_remove("ODATASYNC_SECRET_KEY_FILE")
            .env_remove("ODATASYNC_BASE_URL")
            .env_remove("ODATASYNC_TOKEN_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn worker")
    }

    /// Every job of the batch succeeded, each with exactly one run record; the rows equal the
    /// fake's; the fake saw no 429 and no violation. Returns the refresh count.
    fn check(&self, batch: &str, jobs: usize) -> u64 {
        rt().block_on(async {
            let db = Db::connect(&self.db_url).await.unwrap();
            let Db::Postgres(pool) = &db else {
                unreachable!()
            };
            let by_status: Vec<(String, i64)> = sqlx::query_as(
                "SELECT \"status\", COUNT(*) FROM \"odata_jobs\" WHERE \"batch_id\" = $1 GROUP BY \"status\"",
            )
            .bind(batch)
            .fetch_all(pool)
            .await
            .unwrap();
            let failed: Vec<(String, i64, Option<String>)> = sqlx::query_as(
                "SELECT \"entity\", \"division\", \"message\" FROM \"odata_jobs\" WHERE \"batch_id\" = $1 AND \"status\" <> 'succeeded' LIMIT 5",
            )
            .bind(batch)
            .fetch_all(pool)
            .await
            .unwrap();
            assert_eq!(
                by_status,
                vec![("succeeded".to_string(), jobs as i64)],
                "jobs by status; not succeeded: {failed:?}"
            );
            // One run record per job, each succeeded (a job taken over after a kill reuses it).
            let runs: Vec<(i64, String, i64, i64)> = sqlx::query_as(
                "SELECT \"division\", \"entity\", COUNT(*), COUNT(*) FILTER (WHERE \"status\" = 'succeeded') FROM \"odata_sync_runs\" WHERE \"batch_id\" = $1 GROUP BY \"division\", \"entity\"",
            )
            .bind(batch)
            .fetch_all(pool)
            .await
            .unwrap();
            assert_eq!(runs.len(), jobs, "one run record per (division, entity)");
            for r in &runs {
                assert_eq!((r.2, r.3), (1, 1), "runs of {r:?}");
            }
            // The data: rows stored (not deleted) per division and entity = the fake's rows.
            let http = reqwest::Client::new();
            let mut compared = 0;
            for (di, d) in self.divisions.iter().enumerate() {
                for p in &self.plan {
                    if p.is_deletion_log || (p.one_division_only && di > 0) {
                        continue;
                    }
                    let url = format!(
                        "{}/_test/checksum?entity={}&division={d}",
                        self.fake.base_url(),
                        p.endpoint
                    );
                    let text = http.get(&url).send().await.unwrap().text().await.unwrap();
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let served = v["count"].as_i64().unwrap_or_else(|| panic!("{url}: {v}"));
                    let stored = count_live(&db, p.table, Some(*d)).await.unwrap();
                    assert_eq!(stored, served, "{} in division {d}", p.name);
                    compared += 1;
                }
            }
            assert!(compared > 0);
        });
        let stats = self.fake.stats();
        assert_eq!(stats.rate_limited, 0, "429s: {:?}", stats.calls_total);
        let kind = |k: &str| stats.violations.iter().filter(|v| v.kind == k).count();
        assert_eq!(kind("call_while_rate_limited"), 0);
        assert_eq!(kind("early_refresh"), 0, "a refresh before 570 s");
        assert_eq!(
            kind("rotated_refresh_token_reuse"),
            0,
            "a rotated refresh token was used"
        );
        assert!(stats.violations.is_empty(), "{:?}", stats.violations);
        assert_eq!(stats.errors.get(&401), None, "401s: {:?}", stats.errors);
        stats
            .token_grants
            .get("refresh_token")
            .copied()
            .unwrap_or(0)
    }
}

fn finish(name: &str, c: Child) -> String {
    let out = c.wait_with_output().expect("wait for worker");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("WORKER-DONE"),
        "{name} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
        .lines()
        .find(|l| l.starts_with("WORKER-DONE"))
        .unwrap_or_default()
        .to_string()
}

fn succeeded_jobs(db_url: &str, batch: &str) -> i64 {
    rt().block_on(async {
        let db = Db::connect(db_url).await.unwrap();
        let Db::Postgres(pool) = &db else {
            unreachable!()
        };
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM \"odata_jobs\" WHERE \"batch_id\" = $1 AND \"status\" = 'succeeded'",
        )
        .bind(batch)
        .fetch_one(pool)
        .await
        .unwrap()
    })
}

/// Speed of the 50-division run: a virtual minute is 0.5 s; the run spans more than one token
/// lifetime (600 s virtual = 5 s real).
const SPEED: f64 = 120.0;

#[test]
fn four_workers_fifty_divisions_one_killed() {
    let started = Instant::now();
    let pg = PgServer::start().expect("PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let divisions: Vec<i32> = (0..50).map(|i| 200_001 + i).collect();
    let s = setup(&pg, "workers50", dir.path(), divisions, 60, SPEED);
    let (batch, jobs) = s.schedule();
    assert_eq!(jobs, (s.plan.len() - 1) * 50 + 1, "one_division_only once");
    let v0 = s.fake.clock().now_ms();
    let mut kids: Vec<Child> = (0..4).map(|_| s.spawn(SPEED, 60, 2, 3_000)).collect();
    // Kill one worker with SIGKILL once a fifth of the jobs is done: its leased jobs expire and
    // are resumed by the others from the committed cursors.
    let t = Instant::now();
    loop {
        let done = succeeded_jobs(&s.db_url, &batch);
        if done * 5 >= jobs as i64 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no progress: {done}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut victim = kids.remove(0);
    victim.kill().expect("kill -9");
    let _ = victim.wait();
    let killed_at = succeeded_jobs(&s.db_url, &batch);
    let lines: Vec<String> = kids
        .into_iter()
        .enumerate()
        .map(|(i, k)| finish(&format!("worker {}", i + 1), k))
        .collect();
    let virtual_ms = s.fake.clock().now_ms() - v0;
    let refreshes = s.check(&batch, jobs);
    let retaken: i64 = rt().block_on(async {
        let db = Db::connect(&s.db_url).await.unwrap();
        let Db::Postgres(pool) = &db else {
            unreachable!()
        };
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM \"odata_jobs\" WHERE \"batch_id\" = $1 AND \"attempts\" > 1",
        )
        .bind(&batch)
        .fetch_one(pool)
        .await
        .unwrap()
    });
    let stats = s.fake.stats();
    println!(
        "4 workers, 50 divisions, {jobs} jobs ({killed_at} done when one worker was killed, {retaken} taken over): {:.1} virtual min, {:.1} s real, {} API calls, 0 429s, {refreshes} token refreshes; {lines:?}",
        virtual_ms as f64 / 60_000.0,
        started.elapsed().as_secs_f64(),
        stats.calls_total
    );
    // One refresh per token lifetime for all workers together (570-600 s apart).
    let lifetimes = virtual_ms / 570_000 + 1;
    assert!(
        refreshes as i64 <= lifetimes,
        "{refreshes} refreshes in {virtual_ms} virtual ms"
    );
    assert!(refreshes >= 1, "the pair was due 30 s into the run");
}

#[test]
fn four_workers_share_the_budget_of_one_division() {
    const SPEED1: f64 = 20.0;
    const LIMIT: u32 = 6;
    let pg = PgServer::start().expect("PostgreSQL");
    let dir = tempfile::tempdir().unwrap();
    let s = setup(&pg, "workers1", dir.path(), vec![300_001], LIMIT, SPEED1);
    let (batch, jobs) = s.schedule();
    let v0 = s.fake.clock().now_ms();
    let kids: Vec<Child> = (0..4).map(|_| s.spawn(SPEED1, LIMIT, 2, 3_000)).collect();
    for (i, k) in kids.into_iter().enumerate() {
        finish(&format!("worker {i}"), k);
    }
    let virtual_ms = s.fake.clock().now_ms() - v0;
    s.check(&batch, jobs);
    let calls = s.fake.stats().calls_total;
    println!(
        "4 workers, 1 division, {jobs} jobs, {calls} calls at {LIMIT}/min: {:.1} virtual min",
        virtual_ms as f64 / 60_000.0
    );
    // The calls need this many minute windows at the limit: the workers waited for them
    // instead of overrunning (the fake answered no 429).
    let windows = calls.div_ceil(u64::from(LIMIT));
    assert!(calls > u64::from(LIMIT) * 2, "{calls} calls");
    assert!(
        virtual_ms >= (windows as i64 - 2) * 60_000,
        "{calls} calls in {virtual_ms} virtual ms"
    );
}

/// The real binary: `odatasync worker` registers, and on SIGTERM stops gracefully (exit 0,
/// marked `stopped`); `status` shows the worker and the queue.
#[test]
fn worker_binary_stops_on_sigterm() {
    let pg = PgServer::start().expect("PostgreSQL");
    let url = pg.create_database("workersterm").expect("create database");
    let mut w = Command::new(env!("CARGO_BIN_EXE_odatasync"))
        .args(["worker", "--database", &url, "--concurrency", "1"])
        .env("ODATASYNC_METADATA_CACHE", metadata_cache())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("odatasync worker");
    let status_of = |id: Option<&str>| -> Vec<(String, String)> {
        rt().block_on(async {
            let db = Db::connect(&url).await.unwrap();
            let Db::Postgres(pool) = &db else {
                unreachable!()
            };
            sqlx::query_as("SELECT \"id\", \"status\" FROM \"odata_workers\" WHERE \"id\" = COALESCE($1, \"id\")")
                .bind(id)
                .fetch_all(pool)
                .await
                .unwrap_or_default()
        })
    };
    let t = Instant::now();
    let id = loop {
        if let Some((id, st)) = status_of(None).into_iter().next() {
            assert_eq!(st, "running");
            break id;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the worker did not register"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = Command::new(env!("CARGO_BIN_EXE_odatasync"))
        .args(["status", "--service", SERVICE, "--database", &url])
        .env("ODATASYNC_METADATA_CACHE", metadata_cache())
        .output()
        .expect("odatasync status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("workers:") && text.contains(&id), "{text}");
    let kill = Command::new("kill")
        .args(["-TERM", &w.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(kill.success());
    let t = Instant::now();
    let code = loop {
        if let Some(c) = w.try_wait().expect("wait") {
            break c;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut s) = w.stdout.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut out);
    }
    assert!(code.success(), "exit {code}: {out}");
    assert!(out.contains("0 jobs succeeded"), "{out}");
    assert_eq!(
        status_of(Some(&id)),
        vec![(id.clone(), "stopped".to_string())]
    );
}

/// The real binaries end to end: `odatasync schedule --division` enqueues, `odatasync worker
/// --exit-when-idle` (credentials and the refresh token from the environment, as in production)
/// runs every job, `status` shows the queue done.
#[test]
fn schedule_and_worker_binaries() {
    let pg = PgServer::start().expect("PostgreSQL");
    let url = pg.create_database("workerscli").expect("create database");
    // A refresh token whose chain is old enough (> 570 s) to be refreshed at once.
    let clock = fake_exact::Clock::starting_at(system_us() / 1000 - 600_000, 1.0);
    let fake = FakeExact::start(Config {
        clock: clock.clone(),
        divisions: vec![100_001],
        rows_per_entity: 3,
        ..Config::default()
    });
    let (_access, refresh) = fake.issue_tokens();
    clock.advance(Duration::from_secs(600));
    let key = SecretKey::generate().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_odatasync"))
            .args(args)
            .args(["--database", &url])
            .env("ODATASYNC_METADATA_CACHE", metadata_cache())
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
            .expect("odatasync");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let s = run(&["schedule", "--service", SERVICE, "--division", "100001"]);
    assert!(s.contains("jobs") && s.contains("queued"), "{s}");
    let w = run(&["worker", "--exit-when-idle", "--concurrency", "2"]);
    let plan_len = plan::plan(&Service::load(&metadata_cache(), SERVICE).unwrap(), None)
        .unwrap()
        .len();
    assert!(
        w.contains(&format!("{plan_len} jobs succeeded, 0 failed")),
        "{w}"
    );
    let st = run(&["status", "--service", SERVICE]);
    println!("{st}");
    assert!(
        st.contains(&format!("{plan_len} succeeded")) && st.contains("call budget"),
        "{st}"
    );
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 0);
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    // Two jobs at a time share one client; each run counts its own calls, so together they
    // are every call the fake saw in the division except the divisions lookups.
    let recorded: u64 = pg
        .psql(
            "workerscli",
            "SELECT COALESCE(SUM(api_calls), 0) FROM odata_sync_runs",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let served: u64 = stats
        .calls
        .iter()
        .filter(|(k, _)| k.starts_with("100001 ") && !k.ends_with("system/divisions"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        recorded, served,
        "per-run api_calls vs the fake: {:?}",
        stats.calls
    );
}

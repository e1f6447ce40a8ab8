//! Scale-out workers: any number of `odatasync worker` processes on any number of machines
//! share one PostgreSQL database, which is the whole coordination engine (no broker):
//!
//! * [`schedule`] enqueues a batch: one row of `odata_jobs` per (division, planned entity)
//!   (`one_division_only` entities in the first division only), `depends_on` = the plan's
//!   dependencies, and a `queued` run record per job (`odata_sync_runs`, as `sync` does). Worker
//!   batches live in `odata_jobs` only: `odata_sync_batches` holds the batches of `odatasync
//!   serve`, which runs its queued ones itself.
//! * [`run_worker`] registers in `odata_workers`, heartbeats, and leases jobs with
//!   `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1)`: a job is taken when it is
//!   queued, or running under a lease that expired (its worker died), and every job it depends
//!   on in the same batch and division has succeeded. The lease is renewed with the heartbeat
//!   while the job runs. A job runs from the committed cursor ([`crate::run::run_one`]), so a
//!   job resumed after a `kill -9` loses nothing. A failed job fails its dependents. A
//!   dependency that is not in the batch (a `schedule --due` batch holds only the due entities)
//!   is not waited for.
//! * Budget-aware leasing: the lease query skips the jobs of divisions whose current minute or
//!   day window in the shared budget (`odata_rate_budget`, the worker's app) is used up, so a
//!   worker takes work in another division instead of holding a job that waits for the window.
//! * `--schedule SERVICE`: on every idle poll the worker enqueues the due config.json
//!   `schedule` slots of those services ([`crate::schedules`]), so a fleet needs no cron.
//! * Every request reserves a call in the shared budget of (app, division)
//!   ([`odata_runtime::sync::budget::PgCallBudget`]), so N workers together stay under the
//!   service's limits; tokens are refreshed once for all under the token store's advisory lock.
//! * SIGTERM / SIGINT: no new jobs; running ones finish (up to a drain timeout, after which
//!   their leases are handed back), then the worker deregisters.

use crate::connect::{self, ConnectOptions};
use crate::error::Error;
use crate::plan::{self, PlannedEntity};
use crate::run::{run_one, Outcome, Status};
use crate::schedules;
use crate::service::Service;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use odata_runtime::sql::{sqlx, Db};
use odata_runtime::sync::budget::{budget_rows, BudgetOptions, PgCallBudget, DAY_MS, MINUTE_MS};
use odata_runtime::sync::{queue_run, SyncSpec};
use sqlx::PgPool;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub(crate) fn pg(db: &Db) -> Result<&PgPool, Error> {
    match db {
        Db::Postgres(p) => Ok(p),
        Db::Sqlite(_) => Err(Error::Usage(
            "workers share a PostgreSQL database (--database postgres://...); a SQLite file serves one process: use `odatasync sync`".into(),
        )),
    }
}

/// What [`schedule`] enqueues.
#[derive(Debug, Clone, Default)]
pub struct ScheduleOptions {
    /// Ignore the cursors of the planned entities.
    pub full_refresh: bool,
    /// `--entities` as given (recorded with the batch).
    pub entities: Option<Vec<String>>,
    /// The batch id (default: a new one).
    pub batch_id: Option<String>,
}

/// A batch in the queue.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub batch_id: String,
    pub jobs: usize,
}

pub(crate) fn new_batch_id() -> String {
    format!(
        "{}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        std::process::id()
    )
}

/// The id of a job: the batch, the entity's position in the plan, the division. Ids sort the
/// queue: the plan's first entity in every division, then the second, ..., which spreads the
/// calls of concurrent workers over divisions (each has its own rate limit).
fn job_id(batch: &str, pos: usize, division: i64) -> String {
    format!("{batch}/{pos:03}/{division:010}")
}

/// Enqueues `plan` over `divisions` as one batch (see the module docs).
pub async fn schedule(
    db: &Db,
    service: &Service,
    plan: &[PlannedEntity],
    divisions: &[Option<i32>],
    opts: &ScheduleOptions,
) -> Result<Scheduled, Error> {
    let pool = pg(db)?;
    let mut tx = pool.begin().await?;
    let s = enqueue(db, &mut tx, service, plan, divisions, opts).await?;
    tx.commit().await?;
    Ok(s)
}

/// The jobs of [`schedule`], inserted in `tx` (the caller commits; `schedule --due` inserts
/// its slots in the same transaction). The queued run records are written through `db`.
pub(crate) async fn enqueue(
    db: &Db,
    tx: &mut sqlx::PgConnection,
    service: &Service,
    plan: &[PlannedEntity],
    divisions: &[Option<i32>],
    opts: &ScheduleOptions,
) -> Result<Scheduled, Error> {
    let batch_id = opts.batch_id.clone().unwrap_or_else(new_batch_id);
    let mut jobs: Vec<(String, i64, String, String, String)> = Vec::new();
    for (di, div) in divisions.iter().enumerate() {
        for (pi, p) in plan.iter().enumerate() {
            if p.one_division_only && di > 0 {
                continue;
            }
            let mut spec = SyncSpec::new(&service.name, &p.name, &p.endpoint, *div);
            spec.full_refresh = opts.full_refresh;
            spec.batch_id = Some(batch_id.clone());
            let run_id = queue_run(db, &spec).await?;
            let d = i64::from(div.unwrap_or(0));
            jobs.push((
                job_id(&batch_id, pi, d),
                d,
                p.name.clone(),
                p.depends_on.join(","),
                run_id,
            ));
        }
    }
    for (id, division, entity, deps, run_id) in &jobs {
        sqlx::query("INSERT INTO \"odata_jobs\" (\"id\", \"batch_id\", \"service\", \"division\", \"entity\", \"depends_on\", \"status\", \"attempts\", \"run_id\", \"created_at\") VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, now())")
            .bind(id)
            .bind(&batch_id)
            .bind(&service.name)
            .bind(division)
            .bind(entity)
            .bind(deps)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(Scheduled {
        batch_id,
        jobs: jobs.len(),
    })
}

/// How a worker runs.
#[derive(Clone)]
pub struct WorkerOptions {
    /// The metadata-cache folder (services are loaded by the name in each job).
    pub cache: PathBuf,
    /// Jobs run at once by this worker.
    pub concurrency: usize,
    /// Stop when no job is queued or running anywhere (instead of waiting for new batches).
    pub exit_when_idle: bool,
    /// A lease lasts this long (real time) unless renewed; a dead worker's jobs are taken over
    /// after it.
    pub lease: Duration,
    /// Heartbeat and lease renewal interval.
    pub heartbeat: Duration,
    /// How often an idle worker looks for jobs.
    pub poll: Duration,
    /// A job whose lease expired this many times (its workers died) is failed, not retried.
    pub max_attempts: i64,
    /// After SIGTERM: how long running jobs may take to finish before their leases are handed
    /// back.
    pub drain_timeout: Duration,
    /// Client settings (tests: an accelerated clock; credentials; URLs).
    pub connect: ConnectOptions,
    /// The shared call budget's defaults.
    pub budget: BudgetOptions,
    /// Overlap of `Modified` cursors (default 5 minutes).
    pub modified_overlap: Option<Duration>,
    /// Becomes `true` to stop gracefully (the CLI wires SIGTERM and SIGINT to it).
    pub shutdown: Option<watch::Receiver<bool>>,
    /// Services whose config.json `schedule` slots this worker enqueues when it finds nothing
    /// to lease ([`crate::schedules::schedule_due`], evaluated on the client's clock).
    pub schedule: Vec<String>,
}

impl WorkerOptions {
    pub fn new(cache: PathBuf) -> WorkerOptions {
        WorkerOptions {
            cache,
            concurrency: 2,
            exit_when_idle: false,
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_secs(2),
            max_attempts: 3,
            drain_timeout: Duration::from_secs(120),
            connect: ConnectOptions::default(),
            budget: BudgetOptions::default(),
            modified_overlap: None,
            shutdown: None,
            schedule: Vec::new(),
        }
    }
}

/// What one worker did.
#[derive(Debug, Clone, Default)]
pub struct WorkerReport {
    pub worker_id: String,
    pub succeeded: u64,
    pub failed: u64,
    /// Jobs whose lease this worker lost (another worker took them over).
    pub lost: u64,
    /// Jobs handed back at shutdown (the drain timeout passed).
    pub released: u64,
}

/// A leased job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: String,
    pub batch_id: String,
    pub service: String,
    pub division: i64,
    pub entity: String,
    pub run_id: Option<String>,
    pub attempts: i64,
}

/// A service as a worker uses it: loaded and connected once per worker.
struct ServiceCtx {
    service: Service,
    conn: connect::Connection,
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Marks jobs whose lease expired `max_attempts` times as failed (their dependents too), and
/// workers that stopped heartbeating as `lost`.
async fn reap(pool: &PgPool, opts: &WorkerOptions) -> Result<(), Error> {
    let dead: Vec<(String, Option<String>)> = sqlx::query_as(
        "UPDATE \"odata_jobs\" SET \"status\" = 'failed', \"finished_at\" = now(), \"lease_expires_at\" = NULL, \"message\" = 'abandoned: the lease expired ' || \"attempts\" || ' times (its workers died)' WHERE \"status\" = 'running' AND \"lease_expires_at\" < now() AND \"attempts\" >= $1 RETURNING \"batch_id\", \"run_id\"",
    )
    .bind(opts.max_attempts)
    .fetch_all(pool)
    .await?;
    for (batch, run_id) in dead {
        fail_runs(pool, &[run_id], "abandoned: its workers died").await?;
        fail_dependents(pool, &batch).await?;
    }
    let stale = (opts.lease.as_secs_f64() * 3.0).max(1.0);
    sqlx::query("UPDATE \"odata_workers\" SET \"status\" = 'lost' WHERE \"status\" = 'running' AND \"heartbeat_at\" < now() - make_interval(secs => $1)")
        .bind(stale)
        .execute(pool)
        .await?;
    Ok(())
}

/// Which divisions [`claim`] leaves alone for now: those whose current minute or day window
/// of the shared call budget (`odata_rate_budget`, see [`PgCallBudget`]) is used up for the
/// worker's app, so that the worker takes work in another division instead of holding a job
/// that would wait for the next window.
#[derive(Debug, Clone)]
pub struct LeaseBudget {
    /// The app whose budget the worker's calls draw from (`None`: no budget, no skipping).
    pub client_id: Option<String>,
    /// Now on the clock the budget is kept with (the client's), UTC epoch ms.
    pub now_ms: i64,
    /// The limits until the service's headers said otherwise, and the reserves.
    pub budget: BudgetOptions,
}

/// Leases the next job for `owner`, if one can run: queued (or running under an expired
/// lease), every dependency in the same batch succeeded (dependencies not in the batch are
/// not waited for), and its division's call budget not used up in the current minute or day
/// window ([`LeaseBudget`]).
pub async fn claim(
    pool: &PgPool,
    owner: &str,
    lease: Duration,
    budget: &LeaseBudget,
) -> Result<Option<Job>, Error> {
    const SQL: &str = "UPDATE \"odata_jobs\" SET \"status\" = 'running', \"lease_owner\" = $1, \"lease_expires_at\" = now() + make_interval(secs => $2), \"attempts\" = \"attempts\" + 1 \
        WHERE \"id\" = ( \
          SELECT j.\"id\" FROM \"odata_jobs\" j \
          WHERE (j.\"status\" = 'queued' OR (j.\"status\" = 'running' AND j.\"lease_expires_at\" < now())) \
            AND NOT EXISTS ( \
              SELECT 1 FROM \"odata_jobs\" d \
              WHERE d.\"batch_id\" = j.\"batch_id\" \
                AND d.\"entity\" = ANY(string_to_array(j.\"depends_on\", ',')) \
                AND d.\"status\" <> 'succeeded' \
                AND (d.\"division\" = j.\"division\" OR NOT EXISTS ( \
                  SELECT 1 FROM \"odata_jobs\" e WHERE e.\"batch_id\" = j.\"batch_id\" AND e.\"division\" = j.\"division\" AND e.\"entity\" = d.\"entity\"))) \
            AND NOT EXISTS ( \
              SELECT 1 FROM \"odata_rate_budget\" b \
              WHERE b.\"service\" = j.\"service\" AND b.\"client_id\" = $3 AND b.\"division\" = j.\"division\" \
                AND ((b.\"window_kind\" = 'minute' AND b.\"window_start_ms\" >= $4 AND b.\"used\" >= COALESCE(b.\"limit_value\", $5) - $6) \
                  OR (b.\"window_kind\" = 'day' AND b.\"window_start_ms\" >= $7 AND b.\"used\" >= COALESCE(b.\"limit_value\", $8) - $9))) \
          ORDER BY j.\"created_at\", j.\"id\" \
          FOR UPDATE SKIP LOCKED LIMIT 1) \
        RETURNING \"id\", \"batch_id\", \"service\", \"division\", \"entity\", \"run_id\", \"attempts\"";
    let b = &budget.budget;
    let window = |len: i64| budget.now_ms - budget.now_ms.rem_euclid(len);
    let job: Option<Job> = sqlx::query_as(SQL)
        .bind(owner)
        .bind(lease.as_secs_f64())
        .bind(&budget.client_id)
        .bind(window(MINUTE_MS))
        .bind(b.minutely_limit)
        .bind(b.minutely_reserve)
        .bind(window(DAY_MS))
        .bind(b.daily_limit)
        .bind(b.daily_reserve)
        .fetch_optional(pool)
        .await?;
    Ok(job)
}

async fn fail_runs(pool: &PgPool, run_ids: &[Option<String>], msg: &str) -> Result<(), Error> {
    let ids: Vec<String> = run_ids.iter().flatten().cloned().collect();
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE \"odata_sync_runs\" SET \"status\" = 'failed', \"errors\" = \"errors\" + 1, \"message\" = COALESCE(\"message\", $1), \"finished_at\" = COALESCE(\"finished_at\", now()) WHERE \"id\" = ANY($2) AND \"status\" IN ('queued', 'running')")
        .bind(msg)
        .bind(&ids)
        .execute(pool)
        .await?;
    Ok(())
}

/// Fails the queued jobs of `batch` whose dependency failed, until none is left.
async fn fail_dependents(pool: &PgPool, batch: &str) -> Result<(), Error> {
    loop {
        let rows: Vec<(Option<String>, String)> = sqlx::query_as(
            "UPDATE \"odata_jobs\" j SET \"status\" = 'failed', \"finished_at\" = now(), \"message\" = 'not run: ' || d.\"entity\" || ' failed in this division' \
             FROM \"odata_jobs\" d \
             WHERE j.\"batch_id\" = $1 AND j.\"status\" = 'queued' AND d.\"batch_id\" = j.\"batch_id\" AND d.\"status\" = 'failed' \
               AND d.\"entity\" = ANY(string_to_array(j.\"depends_on\", ',')) \
               AND (d.\"division\" = j.\"division\" OR NOT EXISTS ( \
                 SELECT 1 FROM \"odata_jobs\" e WHERE e.\"batch_id\" = j.\"batch_id\" AND e.\"division\" = j.\"division\" AND e.\"entity\" = d.\"entity\")) \
             RETURNING j.\"run_id\", j.\"message\"",
        )
        .bind(batch)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        for (run_id, msg) in rows {
            fail_runs(pool, &[run_id], &msg).await?;
        }
    }
}

/// Records the end of a job this worker holds; `false` when the lease was lost.
async fn record(pool: &PgPool, owner: &str, job: &Job, outcome: &Outcome) -> Result<bool, Error> {
    let (status, msg) = match outcome.status {
        Status::Succeeded => ("succeeded", None),
        Status::Failed => ("failed", outcome.error.clone()),
    };
    let done = sqlx::query("UPDATE \"odata_jobs\" SET \"status\" = $1, \"message\" = $2, \"finished_at\" = now(), \"lease_expires_at\" = NULL WHERE \"id\" = $3 AND \"lease_owner\" = $4 AND \"status\" = 'running'")
        .bind(status)
        .bind(msg)
        .bind(&job.id)
        .bind(owner)
        .execute(pool)
        .await?
        .rows_affected()
        == 1;
    if done && outcome.status == Status::Failed {
        fail_dependents(pool, &job.batch_id).await?;
    }
    Ok(done)
}

/// Queued jobs plus running ones (anywhere).
async fn pending(pool: &PgPool) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM \"odata_jobs\" WHERE \"status\" IN ('queued', 'running')",
    )
    .fetch_one(pool)
    .await?)
}

/// The app (client id) whose budget a service's calls draw from: `exact-oauth2` only.
fn budget_client_id(service: &Service, opts: &ConnectOptions) -> Option<String> {
    if !matches!(service.toml.auth.as_str(), "exact-oauth2" | "") {
        return None;
    }
    opts.credentials
        .as_ref()
        .map(|(id, _)| id.clone())
        .or_else(|| std::env::var(connect::ENV_CLIENT_ID).ok())
        .filter(|s| !s.is_empty())
}

async fn service_ctx(db: &Db, opts: &WorkerOptions, name: &str) -> Result<ServiceCtx, Error> {
    let service = Service::load(&opts.cache, name)?;
    let mut copts = opts.connect.clone();
    if let Some(client_id) = budget_client_id(&service, &copts) {
        let budget = PgCallBudget::new(db, &service.name, &client_id, opts.budget.clone())?;
        let mut c = copts.client.clone().unwrap_or_default();
        c.call_budget = Some(Arc::new(budget));
        copts.client = Some(c);
    }
    let conn = connect::connect(&service, db, &copts).await?;
    Ok(ServiceCtx { service, conn })
}

async fn execute(
    ctx: Arc<ServiceCtx>,
    db: Db,
    job: Job,
    full_refresh: bool,
    overlap: Option<Duration>,
) -> Outcome {
    let division = (ctx.conn.has_divisions)
        .then(|| i32::try_from(job.division).ok())
        .flatten();
    let failed = |msg: String| Outcome {
        entity: job.entity.clone(),
        division,
        status: Status::Failed,
        report: Default::default(),
        error: Some(msg),
        count_check: None,
        unseen_deleted: 0,
        changed: false,
    };
    let p = match plan::plan(&ctx.service, Some(std::slice::from_ref(&job.entity))) {
        Ok(mut v) if v.len() == 1 => v.remove(0),
        Ok(_) => return failed(format!("{}: not in the plan", job.entity)),
        Err(e) => return failed(e.to_string()),
    };
    let mut spec = SyncSpec::new(&ctx.service.name, &p.name, &p.endpoint, division);
    spec.full_refresh = full_refresh;
    spec.batch_id = Some(job.batch_id.clone());
    spec.run_id = job.run_id.clone();
    spec.skip_paging = p.skip_paging;
    if let Some(o) = overlap {
        spec.modified_overlap = o;
    }
    run_one(&ctx.conn.client, &db, &ctx.service, &p, &spec).await
}

/// The loaded and connected service `name` (once per worker).
async fn service_ctx_cached(
    db: &Db,
    opts: &WorkerOptions,
    services: &mut HashMap<String, Arc<ServiceCtx>>,
    name: &str,
) -> Result<Arc<ServiceCtx>, Error> {
    if let Some(c) = services.get(name) {
        return Ok(c.clone());
    }
    let c = Arc::new(service_ctx(db, opts, name).await?);
    services.insert(name.to_string(), c.clone());
    Ok(c)
}

/// Now on the worker's clock (the client's: tests speed it up), UTC epoch ms.
fn now_ms(opts: &WorkerOptions) -> i64 {
    opts.connect
        .clock
        .as_ref()
        .map(|c| c.now_ms())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
}

/// The budget filter of [`claim`] for this worker: its app (credentials or
/// `$ODATASYNC_CLIENT_ID`), its clock, its budget defaults.
fn lease_budget(opts: &WorkerOptions) -> LeaseBudget {
    LeaseBudget {
        client_id: opts
            .connect
            .credentials
            .as_ref()
            .map(|(id, _)| id.clone())
            .or_else(|| std::env::var(connect::ENV_CLIENT_ID).ok())
            .filter(|s| !s.is_empty()),
        now_ms: now_ms(opts),
        budget: opts.budget.clone(),
    }
}

/// `--schedule`: enqueues the due slots of each service (one batch per service with any);
/// returns the number of jobs enqueued. The divisions are resolved (a call to the service
/// unless `service.toml` lists them) only when something is due.
async fn enqueue_due(
    db: &Db,
    opts: &WorkerOptions,
    services: &mut HashMap<String, Arc<ServiceCtx>>,
) -> Result<usize, Error> {
    let now = chrono::DateTime::from_timestamp_millis(now_ms(opts))
        .ok_or_else(|| Error::Other("the clock is out of range".into()))?;
    let mut jobs = 0;
    for name in &opts.schedule {
        let service = Service::load(&opts.cache, name)?;
        if schedules::due_slots(db, &service, now).await?.is_empty() {
            continue;
        }
        let ctx = service_ctx_cached(db, opts, services, name).await?;
        let scheduled =
            schedules::schedule_due(db, &service, now, &ScheduleOptions::default(), || {
                connect::divisions(&ctx.service, &ctx.conn, None)
            })
            .await?;
        if let Some(s) = scheduled {
            let due: Vec<String> = s
                .slots
                .iter()
                .map(|s| format!("{} ({})", s.entity, s.at.format("%Y-%m-%dT%H:%MZ")))
                .collect();
            tracing::info!(batch = %s.batch.batch_id, jobs = s.batch.jobs, "{name}: enqueued the due schedule slots: {}", due.join(", "));
            jobs += s.batch.jobs;
        }
    }
    Ok(jobs)
}

/// Runs a worker until it is told to stop (or, with `exit_when_idle`, until no job is queued
/// or running). Returns what it did.
pub async fn run_worker(db: &Db, opts: WorkerOptions) -> Result<WorkerReport, Error> {
    let pool = pg(db)?.clone();
    for name in &opts.schedule {
        let service = Service::load(&opts.cache, name)?;
        if schedules::scheduled_entities(&service, chrono::Utc::now())?.is_empty() {
            return Err(Error::Usage(format!(
                "--schedule {name}: no entity of {}/config.json has a 'schedule'",
                service.dir.display()
            )));
        }
    }
    let host = hostname();
    let pid = std::process::id();
    let worker_id = format!(
        "{host}:{pid}:{:06x}",
        chrono::Utc::now().timestamp_subsec_micros()
    );
    sqlx::query("INSERT INTO \"odata_workers\" (\"id\", \"host\", \"pid\", \"status\", \"started_at\", \"heartbeat_at\") VALUES ($1, $2, $3, 'running', now(), now())")
        .bind(&worker_id)
        .bind(&host)
        .bind(i64::from(pid))
        .execute(&pool)
        .await?;
    tracing::info!(worker = %worker_id, "worker registered");
    // Heartbeat: the worker row and the leases of every job it runs.
    let heartbeat = {
        let pool = pool.clone();
        let id = worker_id.clone();
        let (every, lease) = (opts.heartbeat, opts.lease);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let r = async {
                    sqlx::query("UPDATE \"odata_workers\" SET \"heartbeat_at\" = now(), \"status\" = 'running' WHERE \"id\" = $1")
                        .bind(&id)
                        .execute(&pool)
                        .await?;
                    sqlx::query("UPDATE \"odata_jobs\" SET \"lease_expires_at\" = now() + make_interval(secs => $2) WHERE \"lease_owner\" = $1 AND \"status\" = 'running'")
                        .bind(&id)
                        .bind(lease.as_secs_f64())
                        .execute(&pool)
                        .await?;
                    Ok::<_, sqlx::Error>(())
                }
                .await;
                if let Err(e) = r {
                    tracing::warn!("heartbeat: {e}");
                }
            }
        })
    };
    let mut report = WorkerReport {
        worker_id: worker_id.clone(),
        ..WorkerReport::default()
    };
    let result = work(db, &pool, &opts, &worker_id, &mut report).await;
    heartbeat.abort();
    let _ = sqlx::query("UPDATE \"odata_workers\" SET \"status\" = 'stopped', \"heartbeat_at\" = now() WHERE \"id\" = $1")
        .bind(&worker_id)
        .execute(&pool)
        .await;
    result.map(|()| report)
}

async fn work(
    db: &Db,
    pool: &PgPool,
    opts: &WorkerOptions,
    worker_id: &str,
    report: &mut WorkerReport,
) -> Result<(), Error> {
    let mut services: HashMap<String, Arc<ServiceCtx>> = HashMap::new();
    // Jobs run concurrently within this task (the sync futures are not all `Send`).
    let mut running: FuturesUnordered<LocalBoxFuture<'_, (Job, Outcome)>> = FuturesUnordered::new();
    let mut held: HashMap<String, Job> = HashMap::new();
    let mut shutdown = opts.shutdown.clone();
    let stopping = |s: &Option<watch::Receiver<bool>>| s.as_ref().is_some_and(|r| *r.borrow());
    let mut last_reap = std::time::Instant::now() - opts.heartbeat;
    loop {
        if stopping(&shutdown) {
            break;
        }
        if last_reap.elapsed() >= opts.heartbeat {
            reap(pool, opts).await?;
            last_reap = std::time::Instant::now();
        }
        let mut looked_for_slots = false;
        while running.len() < opts.concurrency.max(1) {
            let Some(job) = claim(pool, worker_id, opts.lease, &lease_budget(opts)).await? else {
                // Idle: enqueue the due schedule slots of `--schedule` services, then lease again.
                if !opts.schedule.is_empty() && !looked_for_slots {
                    looked_for_slots = true;
                    match enqueue_due(db, opts, &mut services).await {
                        Ok(0) => {}
                        Ok(_) => continue,
                        Err(e) => tracing::warn!("--schedule: {e}"),
                    }
                }
                break;
            };
            tracing::info!(job = %job.id, entity = %job.entity, division = job.division, attempt = job.attempts, "leased");
            let ctx = match service_ctx_cached(db, opts, &mut services, &job.service).await {
                Ok(c) => c,
                Err(e) => {
                    let outcome = Outcome {
                        entity: job.entity.clone(),
                        division: i32::try_from(job.division).ok(),
                        status: Status::Failed,
                        report: Default::default(),
                        error: Some(format!("service {}: {e}", job.service)),
                        count_check: None,
                        unseen_deleted: 0,
                        changed: false,
                    };
                    fail_runs(
                        pool,
                        std::slice::from_ref(&job.run_id),
                        outcome.error.as_deref().unwrap_or(""),
                    )
                    .await?;
                    record(pool, worker_id, &job, &outcome).await?;
                    report.failed += 1;
                    continue;
                }
            };
            // `schedule` recorded --full-refresh in the job's queued run record.
            let full_refresh: bool = sqlx::query_scalar(
                "SELECT COALESCE((SELECT \"full_refresh\" FROM \"odata_sync_runs\" WHERE \"id\" = $1), FALSE)",
            )
            .bind(&job.run_id)
            .fetch_one(pool)
            .await?;
            let (db2, job2, overlap) = (db.clone(), job.clone(), opts.modified_overlap);
            running.push(Box::pin(async move {
                let outcome = execute(ctx, db2, job2.clone(), full_refresh, overlap).await;
                (job2, outcome)
            }));
            held.insert(job.id.clone(), job);
        }
        if running.is_empty() && opts.exit_when_idle && pending(pool).await? == 0 {
            break;
        }
        tokio::select! {
            Some(done) = running.next(), if !running.is_empty() => {
                finished(pool, worker_id, done, &mut held, report).await?;
            }
            _ = tokio::time::sleep(opts.poll) => {}
            _ = async {
                match shutdown.as_mut() {
                    Some(r) => { let _ = r.changed().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    }
    // Draining: running jobs may finish; after the timeout their leases are handed back.
    let deadline = tokio::time::Instant::now() + opts.drain_timeout;
    while !running.is_empty() {
        match tokio::time::timeout_at(deadline, running.next()).await {
            Ok(Some(done)) => finished(pool, worker_id, done, &mut held, report).await?,
            Ok(None) => break,
            Err(_) => {
                running.clear();
                let ids: Vec<String> = held.values().map(|j| j.id.clone()).collect();
                let n = sqlx::query("UPDATE \"odata_jobs\" SET \"status\" = 'queued', \"lease_owner\" = NULL, \"lease_expires_at\" = NULL WHERE \"id\" = ANY($1) AND \"lease_owner\" = $2 AND \"status\" = 'running'")
                    .bind(&ids)
                    .bind(worker_id)
                    .execute(pool)
                    .await?
                    .rows_affected();
                report.released += n;
                break;
            }
        }
    }
    Ok(())
}

async fn finished(
    pool: &PgPool,
    worker_id: &str,
    (job, outcome): (Job, Outcome),
    held: &mut HashMap<String, Job>,
    report: &mut WorkerReport,
) -> Result<(), Error> {
    held.remove(&job.id);
    if record(pool, worker_id, &job, &outcome).await? {
        match outcome.status {
            Status::Succeeded => report.succeeded += 1,
            Status::Failed => report.failed += 1,
        }
        tracing::info!(job = %job.id, status = outcome.status.as_str(), calls = outcome.report.api_calls, "done");
    } else {
        report.lost += 1;
        tracing::warn!(job = %job.id, "the lease was lost (another worker took the job over); its result is not recorded by this worker");
    }
    Ok(())
}

fn parse_ts(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// The workers / leases / queue / budget part of `odatasync status` (empty when no worker
/// ever ran and no batch was scheduled). `now_ms`: UTC epoch ms.
pub async fn status_section(db: &Db, service: &str, now_ms: i64) -> Result<String, Error> {
    let q = |sql: &str| match db {
        Db::Sqlite(_) => sql.replace("$1", "?"),
        Db::Postgres(_) => sql.to_string(),
    };
    macro_rules! fetch {
        ($sql:expr, $t:ty) => {{
            let sql = sqlx::AssertSqlSafe(q($sql));
            let rows: Vec<$t> = match db {
                Db::Sqlite(p) => sqlx::query_as(sql).bind(service).fetch_all(p).await?,
                Db::Postgres(p) => sqlx::query_as(sql).bind(service).fetch_all(p).await?,
            };
            rows
        }};
    }
    let workers = fetch!(
        "SELECT \"id\", \"status\", CAST(\"heartbeat_at\" AS TEXT) FROM \"odata_workers\" WHERE CAST($1 AS TEXT) IS NOT NULL ORDER BY \"started_at\"",
        (String, String, String)
    );
    let queue = fetch!(
        "SELECT \"batch_id\", \"status\", COUNT(*) FROM \"odata_jobs\" WHERE \"service\" = $1 GROUP BY \"batch_id\", \"status\" ORDER BY \"batch_id\", \"status\"",
        (String, String, i64)
    );
    let leases = fetch!(
        "SELECT \"entity\", \"division\", COALESCE(\"lease_owner\", '-'), CAST(\"lease_expires_at\" AS TEXT), \"attempts\" FROM \"odata_jobs\" WHERE \"service\" = $1 AND \"status\" = 'running' ORDER BY \"division\", \"entity\"",
        (String, i64, String, Option<String>, i64)
    );
    let budget = budget_rows(db, service).await?;
    if workers.is_empty() && queue.is_empty() && budget.is_empty() {
        return Ok(String::new());
    }
    let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let ago = |t: &str| {
        parse_ts(t)
            .map(|t| format!("{} s ago", (now - t).num_seconds()))
            .unwrap_or_else(|| t.to_string())
    };
    let mut out = String::new();
    let _ = writeln!(out, "\nworkers:");
    if workers.is_empty() {
        let _ = writeln!(out, "  none registered");
    }
    for (id, status, hb) in &workers {
        let _ = writeln!(out, "  {id:<40} {status:<8} heartbeat {}", ago(hb));
    }
    let _ = writeln!(out, "\nqueue (jobs by batch and status):");
    let mut by_batch: Vec<(String, Vec<(String, i64)>)> = Vec::new();
    for (b, s, n) in queue {
        match by_batch.last_mut() {
            Some((lb, v)) if *lb == b => v.push((s, n)),
            _ => by_batch.push((b, vec![(s, n)])),
        }
    }
    if by_batch.is_empty() {
        let _ = writeln!(out, "  empty");
    }
    for (b, v) in &by_batch {
        let parts: Vec<String> = v.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let _ = writeln!(out, "  {b}: {}", parts.join(", "));
    }
    let _ = writeln!(out, "\nleases:");
    if leases.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for (entity, division, owner, expires, attempts) in &leases {
        let left = expires
            .as_deref()
            .and_then(parse_ts)
            .map(|t| format!("expires in {} s", (t - now).num_seconds()))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  {entity:<24} {division:>8}  {owner}  {left}, attempt {attempts}"
        );
    }
    let _ = writeln!(
        out,
        "\ncall budget (per app and division, current windows):"
    );
    let mut shown = 0;
    for r in &budget {
        let len = if r.window_kind == "minute" {
            MINUTE_MS
        } else {
            DAY_MS
        };
        if r.window_start_ms + len <= now_ms {
            continue; // an old window: nothing used in the current one
        }
        shown += 1;
        let _ = writeln!(
            out,
            "  {:<38} {:>8}  {:<6} {}/{} used{}",
            r.client_id,
            r.division,
            r.window_kind,
            r.used,
            r.limit_value.map_or("?".into(), |l| l.to_string()),
            r.remaining_reported
                .map(|n| format!(", service says {n} left"))
                .unwrap_or_default()
        );
    }
    if shown == 0 {
        let _ = writeln!(out, "  nothing used in the current windows");
    }
    Ok(out)
}

/// `odatasync worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// `postgres://...` (default: $ODATASYNC_DATABASE).
    #[arg(long)]
    pub database: Option<String>,
    /// Jobs this worker runs at once (1 to 12: each running job holds one of the process's
    /// 16 database connections while it writes).
    #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
        .range(1..=odata_runtime::sql::MAX_CONCURRENT_WRITERS as u64))]
    pub concurrency: usize,
    /// Exit when no job is queued or running anywhere.
    #[arg(long)]
    pub exit_when_idle: bool,
    /// Lease length in seconds (a dead worker's jobs are taken over after it).
    #[arg(long, default_value_t = 60)]
    pub lease_secs: u64,
    /// Calls per division per minute and per day until the service's headers say otherwise
    /// (Exact: 60 and 5000; older apps have other limits).
    #[arg(long, default_value_t = 60)]
    pub minutely_limit: i64,
    #[arg(long, default_value_t = 5000)]
    pub daily_limit: i64,
    /// Calls per minute / per day left unused in each division for others of the app.
    #[arg(long, default_value_t = 2)]
    pub minutely_reserve: i64,
    #[arg(long, default_value_t = 100)]
    pub daily_reserve: i64,
    /// Services whose config.json `schedule` slots this worker enqueues when it is idle
    /// (repeatable or comma-separated), as `schedule --due` does.
    #[arg(long, value_delimiter = ',', value_name = "SERVICE")]
    pub schedule: Vec<String>,
}

/// `odatasync schedule`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScheduleArgs {
    #[arg(long)]
    pub service: String,
    /// `postgres://...` (default: $ODATASYNC_DATABASE).
    #[arg(long)]
    pub database: Option<String>,
    /// Only these config.json entities (comma-separated; skipped ones may be named).
    #[arg(long, value_delimiter = ',', conflicts_with = "due")]
    pub entities: Option<Vec<String>>,
    /// Only this division.
    #[arg(long)]
    pub division: Option<i32>,
    /// Ignore the cursors of the scheduled entities.
    #[arg(long)]
    pub full_refresh: bool,
    /// Only the entities whose config.json `schedule` has a slot due that was not enqueued yet
    /// (nothing when none is due).
    #[arg(long)]
    pub due: bool,
    /// With --due: evaluate the schedules at this UTC time (RFC 3339) instead of now.
    #[arg(long, requires = "due", value_name = "TIME")]
    pub at: Option<String>,
}

/// The divisions of `schedule`: `--division`, `service.toml`, else the ones the token reaches.
async fn cli_divisions(
    service: &Service,
    db: &Db,
    division: Option<i32>,
) -> Result<Vec<Option<i32>>, Error> {
    Ok(if !service.has_divisions() {
        vec![None]
    } else if let Some(d) = division {
        vec![Some(d)]
    } else {
        let conn = connect::connect(service, db, &ConnectOptions::default()).await?;
        if !connect::has_tokens(&conn).await? {
            return Err(Error::Usage(format!(
                "no tokens for service '{}': run `odatasync auth --service {}` once, or set ODATASYNC_REFRESH_TOKEN (or name a --division)",
                service.name, service.name
            )));
        }
        connect::divisions(service, &conn, None).await?
    })
}

/// `odatasync schedule --due`: see [`schedules::schedule_due`].
async fn cli_schedule_due(db: &Db, service: &Service, args: &ScheduleArgs) -> Result<u8, Error> {
    let now = match &args.at {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| {
                Error::Usage(format!(
                    "--at {t:?}: {e} (expected RFC 3339, e.g. 2026-01-05T10:15:00Z)"
                ))
            })?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    let scheduled = schedules::scheduled_entities(service, now)?.len();
    if scheduled == 0 {
        return Err(Error::Usage(format!(
            "--due: no entity of {}/config.json has a 'schedule'",
            service.dir.display()
        )));
    }
    let opts = ScheduleOptions {
        full_refresh: args.full_refresh,
        ..ScheduleOptions::default()
    };
    let r = schedules::schedule_due(db, service, now, &opts, || {
        cli_divisions(service, db, args.division)
    })
    .await?;
    let at = now.format("%Y-%m-%dT%H:%M:%SZ");
    match r {
        None => println!("nothing due at {at} ({scheduled} entities have a schedule)"),
        Some(s) => {
            let due: Vec<String> = s
                .slots
                .iter()
                .map(|s| format!("{} ({})", s.entity, s.at.format("%Y-%m-%dT%H:%MZ")))
                .collect();
            println!(
                "batch {}: {} jobs queued for the workers; due at {at}: {}",
                s.batch.batch_id,
                s.batch.jobs,
                due.join(", ")
            );
        }
    }
    Ok(0)
}

/// `odatasync schedule`: the divisions as for `sync` (`--division`, `service.toml`, else the
/// ones the token reaches), then [`schedule`]. Prints the batch id.
pub async fn cli_schedule(
    cache: &std::path::Path,
    db: &Db,
    args: &ScheduleArgs,
) -> Result<u8, Error> {
    pg(db)?;
    let service = Service::load(cache, &args.service)?;
    if args.due {
        return cli_schedule_due(db, &service, args).await;
    }
    let planned = plan::plan(&service, args.entities.as_deref())?;
    for a in plan::advice(&service, &planned) {
        tracing::warn!("{a}");
    }
    let divisions = cli_divisions(&service, db, args.division).await?;
    let s = schedule(
        db,
        &service,
        &planned,
        &divisions,
        &ScheduleOptions {
            full_refresh: args.full_refresh,
            entities: args.entities.clone(),
            batch_id: None,
        },
    )
    .await?;
    println!(
        "batch {}: {} jobs ({} entities x {} divisions) queued for the workers",
        s.batch_id,
        s.jobs,
        planned.len(),
        divisions.len()
    );
    Ok(0)
}

/// `odatasync worker`: runs until SIGTERM / SIGINT (graceful: running jobs finish), or with
/// `--exit-when-idle` until the queue is empty. Exit 1 when a job it ran failed.
pub async fn cli_worker(cache: &std::path::Path, db: &Db, args: &WorkerArgs) -> Result<u8, Error> {
    pg(db)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("stopping: no new jobs; running ones finish");
        let _ = tx.send(true);
    });
    let mut opts = WorkerOptions::new(cache.to_path_buf());
    opts.concurrency = args.concurrency.max(1);
    opts.exit_when_idle = args.exit_when_idle;
    opts.lease = Duration::from_secs(args.lease_secs.max(2));
    opts.heartbeat = opts.lease / 4;
    opts.budget = BudgetOptions {
        minutely_limit: args.minutely_limit,
        daily_limit: args.daily_limit,
        minutely_reserve: args.minutely_reserve,
        daily_reserve: args.daily_reserve,
        ..BudgetOptions::default()
    };
    opts.shutdown = Some(rx);
    opts.schedule = args.schedule.clone();
    let r = run_worker(db, opts).await?;
    println!(
        "worker {}: {} jobs succeeded, {} failed, {} lost to other workers, {} handed back",
        r.worker_id, r.succeeded, r.failed, r.lost, r.released
    );
    Ok(u8::from(r.failed > 0))
}

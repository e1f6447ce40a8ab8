//! Runs a plan: every planned entity of every division, in `dependsOn` order, each run
//! recorded (`odata_sync_runs`: queued → running → succeeded / failed); a failing entity does
//! not stop the others (its dependents in that division are not run). After a complete fetch
//! rows the service no longer has get `deleted_at`, and `check_count` compares the stored rows
//! with the service's `$count`.

use crate::error::Error;
use crate::plan::PlannedEntity;
use crate::service::Service;
use chrono::Utc;
use futures_util::future::BoxFuture;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use odata_runtime::client::Client;
use odata_runtime::sql::Db;
use odata_runtime::sync::{
    count_live, mark_unseen_deleted, queue_run, sync_deleted_spec, sync_table, PageProgress,
    Progress, RunReport, SyncError, SyncSpec,
};
use odata_runtime::{Entity, TableInfo, TableVisitor};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How a batch runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Ignore the cursors of the planned entities (others are untouched).
    pub full_refresh: bool,
    /// Groups the runs (`odata_sync_runs.batch_id`); default: a new id.
    pub batch_id: Option<String>,
    /// Progress bars (one per running entity).
    pub progress: Option<MultiProgress>,
    /// Overlap of `Modified` cursors (default 5 minutes).
    pub modified_overlap: Option<Duration>,
}

/// The end state of one (division, entity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        }
    }
}

/// One (division, entity) of a batch.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub entity: String,
    pub division: Option<i32>,
    pub status: Status,
    pub report: RunReport,
    pub error: Option<String>,
    /// `check_count` after a complete fetch: (rows stored and not deleted, the service's
    /// `$count`).
    pub count_check: Option<(i64, u64)>,
    /// Rows marked deleted because a complete fetch no longer returned them.
    pub unseen_deleted: u64,
    /// Whether this run changed the table (new, updated or deleted rows).
    pub changed: bool,
}

/// Everything a batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub batch_id: String,
    pub outcomes: Vec<Outcome>,
    pub elapsed: Duration,
}

impl BatchReport {
    /// Entities whose tables changed (sorted, once each): what a BI refresh hook needs.
    pub fn changed_entities(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .outcomes
            .iter()
            .filter(|o| o.changed)
            .map(|o| o.entity.as_str())
            .collect();
        set.into_iter().map(String::from).collect()
    }

    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.status == Status::Failed)
    }

    /// 0: every run succeeded; 1: some failed (what succeeded is committed).
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failures().next().is_some())
    }

    /// API calls of the whole batch.
    pub fn api_calls(&self) -> u64 {
        self.outcomes.iter().map(|o| o.report.api_calls).sum()
    }

    /// A text table: entity, division, status, rows, inserted, updated, deleted, API calls,
    /// seconds.
    pub fn summary_table(&self) -> String {
        let head = [
            "entity", "division", "status", "rows", "new", "updated", "deleted", "calls", "seconds",
        ];
        let mut rows: Vec<[String; 9]> = Vec::new();
        for o in &self.outcomes {
            let r = &o.report;
            rows.push([
                o.entity.clone(),
                o.division
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
                o.status.as_str().to_string(),
                r.rows_fetched.to_string(),
                r.rows_inserted.to_string(),
                r.rows_updated.to_string(),
                (r.rows_deleted + o.unseen_deleted).to_string(),
                r.api_calls.to_string(),
                format!("{:.2}", r.elapsed.as_secs_f64()),
            ]);
        }
        let mut w = head.map(str::len);
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = w[i] - c.chars().count();
                // Text left, figures right.
                if i < 3 {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                }
                if i + 1 < cells.len() {
                    s.push_str("  ");
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&head.map(String::from));
        out.push_str(&line(&w.map(|n| "-".repeat(n))));
        for r in &rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// Picks the generated type of a table by name and starts its sync.
struct SyncVisitor<'a> {
    target: &'static str,
    client: &'a Client,
    db: &'a Db,
    spec: &'a SyncSpec,
    fut: Option<BoxFuture<'a, Result<RunReport, SyncError>>>,
}

impl<'a> TableVisitor for SyncVisitor<'a> {
    fn visit<E: Entity + PartialEq>(&mut self, table: &'static TableInfo) {
        if self.fut.is_none() && table.name == self.target {
            self.fut = Some(Box::pin(sync_table::<E>(
                self.client,
                self.db,
                self.spec,
                table,
            )));
        }
    }
}

fn new_batch_id() -> String {
    let now = Utc::now();
    format!(
        "{}-{:08x}",
        now.format("%Y%m%dT%H%M%S%.6fZ"),
        std::process::id()
    )
}

fn bar(mp: &MultiProgress, entity: &str, division: Option<i32>) -> ProgressBar {
    let pb = mp.add(ProgressBar::new_spinner());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {prefix:<28} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_prefix(match division {
        Some(d) => format!("{entity} [{d}]"),
        None => entity.to_string(),
    });
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Runs `plan` over `divisions` (`None` for services without divisions).
pub async fn run_batch(
    client: &Client,
    db: &Db,
    service: &Service,
    plan: &[PlannedEntity],
    divisions: &[Option<i32>],
    opts: &RunOptions,
) -> Result<BatchReport, Error> {
    let started = Instant::now();
    let batch_id = opts.batch_id.clone().unwrap_or_else(new_batch_id);
    // The whole plan is recorded as queued first (status shows what is still to come).
    let mut queued: Vec<(usize, Option<i32>, SyncSpec)> = Vec::new();
    for (di, div) in divisions.iter().enumerate() {
        for (pi, p) in plan.iter().enumerate() {
            if p.one_division_only && di > 0 {
                continue;
            }
            let mut spec = SyncSpec::new(&service.name, &p.name, &p.endpoint, *div);
            spec.full_refresh = opts.full_refresh;
            spec.batch_id = Some(batch_id.clone());
            spec.skip_paging = p.skip_paging;
            if let Some(o) = opts.modified_overlap {
                spec.modified_overlap = o;
            }
            spec.run_id = Some(queue_run(db, &spec).await?);
            queued.push((pi, *div, spec));
        }
    }
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (pi, div, mut spec) in queued {
        let p = &plan[pi];
        // A dependency that failed in this division: this entity is not run.
        let failed_dep = p.depends_on.iter().find(|d| {
            outcomes.iter().any(|o| {
                &o.entity == *d
                    && o.status == Status::Failed
                    && (o.division == div
                        || plan.iter().any(|x| &x.name == *d && x.one_division_only))
            })
        });
        if let Some(dep) = failed_dep {
            let msg = format!("not run: {dep} failed in this division");
            fail_queued(db, spec.run_id.as_deref(), &msg).await?;
            outcomes.push(Outcome {
                entity: p.name.clone(),
                division: div,
                status: Status::Failed,
                report: RunReport {
                    entity: p.name.clone(),
                    division: div,
                    ..RunReport::default()
                },
                error: Some(msg),
                count_check: None,
                unseen_deleted: 0,
                changed: false,
            });
            continue;
        }
        let pb = opts.progress.as_ref().map(|mp| bar(mp, &p.name, div));
        if let Some(pb) = &pb {
            let pb2 = pb.clone();
            pb.set_message("starting");
            spec.progress = Some(Progress::new(move |pp: PageProgress| {
                pb2.set_message(format!("{} rows, {} pages", pp.rows, pp.pages));
            }));
        }
        let outcome = run_one(client, db, service, p, &spec).await;
        if let Some(pb) = pb {
            pb.finish_with_message(match &outcome.error {
                None => format!(
                    "{} rows, {} calls: {}",
                    outcome.report.rows_fetched,
                    outcome.report.api_calls,
                    outcome.status.as_str()
                ),
                Some(e) => format!("failed: {e}"),
            });
        }
        outcomes.push(outcome);
    }
    Ok(BatchReport {
        batch_id,
        outcomes,
        elapsed: started.elapsed(),
    })
}

/// Runs one planned entity in one division with `spec` (its cursor, run record, batch id,
/// progress) and records the outcome: the sync itself (`sync_table` through the generated
/// types, or `sync_deleted_spec` for the deletion log), then, after a complete fetch,
/// deletions by absence and `check_count`. What `run_batch` does for each (division, entity);
/// scale-out workers call it for each job they lease.
pub async fn run_one(
    client: &Client,
    db: &Db,
    service: &Service,
    p: &PlannedEntity,
    spec: &SyncSpec,
) -> Outcome {
    // Calls are counted per run even when runs share the client concurrently (workers with
    // --concurrency > 1).
    let client = &client.counting_separately();
    let fetch_started = Utc::now();
    let res = if p.is_deletion_log {
        match spec.division {
            Some(_) => sync_deleted_spec(client, db, spec, service.tables).await,
            None => Err(SyncError::Other(format!(
                "{}: sync/Deleted needs a division",
                p.name
            ))),
        }
    } else {
        let mut v = SyncVisitor {
            target: p.table.name,
            client,
            db,
            spec,
            fut: None,
        };
        generated::visit_tables(&service.name, &mut v);
        match v.fut {
            Some(f) => f.await,
            None => Err(SyncError::Other(format!(
                "{}: no generated type for table {}",
                p.name, p.table.name
            ))),
        }
    };
    match res {
        Ok(report) => {
            finish_ok(
                client,
                db,
                p,
                spec.division,
                report,
                fetch_started,
                spec.run_id.as_deref(),
            )
            .await
        }
        Err(e) => {
            tracing::error!(entity = %p.name, division = ?spec.division, "{e}");
            Outcome {
                entity: p.name.clone(),
                division: spec.division,
                status: Status::Failed,
                report: RunReport {
                    entity: p.name.clone(),
                    division: spec.division,
                    ..RunReport::default()
                },
                error: Some(e.to_string()),
                count_check: None,
                unseen_deleted: 0,
                changed: false,
            }
        }
    }
}

/// After a successful run: deletions by absence after a complete fetch, `check_count`.
async fn finish_ok(
    client: &Client,
    db: &Db,
    p: &PlannedEntity,
    div: Option<i32>,
    mut report: RunReport,
    fetch_started: chrono::DateTime<Utc>,
    run_id: Option<&str>,
) -> Outcome {
    let complete = !p.is_deletion_log && report.cursor_before.is_none();
    let mut outcome = Outcome {
        entity: p.name.clone(),
        division: div,
        status: Status::Succeeded,
        report: report.clone(),
        error: None,
        count_check: None,
        unseen_deleted: 0,
        changed: false,
    };
    if complete {
        match mark_unseen_deleted(db, p.table, div, fetch_started).await {
            Ok(n) => outcome.unseen_deleted = n,
            Err(e) => outcome.error = Some(format!("marking rows no longer served: {e}")),
        }
        if p.check_count && outcome.error.is_none() {
            let calls0 = client.requests_sent();
            let served = client.count(div, &p.count_endpoint).await;
            let count_calls = client.requests_sent() - calls0;
            report.api_calls += count_calls;
            outcome.report.api_calls = report.api_calls;
            let _ = add_to_run(db, run_id, "api_calls", count_calls).await;
            match (served, count_live(db, p.table, div).await) {
                (Ok(n), Ok(stored)) => {
                    outcome.count_check = Some((stored, n));
                    if u64::try_from(stored).ok() != Some(n) {
                        outcome.error = Some(format!(
                            "check_count: {stored} rows stored, the service counts {n} ($count of {})",
                            p.count_endpoint
                        ));
                    }
                }
                (Err(e), _) => outcome.error = Some(format!("check_count: $count: {e}")),
                (_, Err(e)) => outcome.error = Some(format!("check_count: {e}")),
            }
        }
    }
    let advanced = report.cursor_after != report.cursor_before;
    outcome.changed = report.rows_inserted > 0
        || report.rows_deleted > 0
        || outcome.unseen_deleted > 0
        || (advanced && report.rows_fetched > 0)
        || report.content_changed == Some(true);
    if let Some(e) = &outcome.error {
        outcome.status = Status::Failed;
        tracing::error!(entity = %p.name, division = ?div, "{e}");
        let _ = set_run_failed(db, run_id, e).await;
    } else if outcome.unseen_deleted > 0 {
        let _ = add_to_run(db, run_id, "rows_deleted", outcome.unseen_deleted).await;
    }
    outcome
}

async fn fail_queued(db: &Db, run_id: Option<&str>, msg: &str) -> Result<(), Error> {
    set_run_failed(db, run_id, msg).await
}

async fn set_run_failed(db: &Db, run_id: Option<&str>, msg: &str) -> Result<(), Error> {
    let Some(id) = run_id else { return Ok(()) };
    match db {
        Db::Sqlite(p) => {
            odata_runtime::sql::sqlx::query("UPDATE \"odata_sync_runs\" SET \"status\" = 'failed', \"errors\" = \"errors\" + 1, \"message\" = ?, \"finished_at\" = COALESCE(\"finished_at\", ?) WHERE \"id\" = ?")
                .bind(msg)
                .bind(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                .bind(id)
                .execute(p)
                .await?;
        }
        Db::Postgres(p) => {
            odata_runtime::sql::sqlx::query("UPDATE \"odata_sync_runs\" SET \"status\" = 'failed', \"errors\" = \"errors\" + 1, \"message\" = $1, \"finished_at\" = COALESCE(\"finished_at\", $2) WHERE \"id\" = $3")
                .bind(msg)
                .bind(Utc::now())
                .bind(id)
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

/// Adds `n` to a figure (`api_calls`, `rows_deleted`) of a run record.
async fn add_to_run(db: &Db, run_id: Option<&str>, column: &str, n: u64) -> Result<(), Error> {
    let Some(id) = run_id else { return Ok(()) };
    if !matches!(column, "api_calls" | "rows_deleted") {
        return Err(Error::Other(format!("not a run figure: {column}")));
    }
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let sql = |p1: &str, p2: &str| {
        format!(
            "UPDATE \"odata_sync_runs\" SET \"{column}\" = \"{column}\" + {p1} WHERE \"id\" = {p2}"
        )
    };
    match db {
        Db::Sqlite(p) => {
            odata_runtime::sql::sqlx::query(odata_runtime::sql::sqlx::AssertSqlSafe(sql("?", "?")))
                .bind(n)
                .bind(id)
                .execute(p)
                .await?;
        }
        Db::Postgres(p) => {
            odata_runtime::sql::sqlx::query(odata_runtime::sql::sqlx::AssertSqlSafe(sql(
                "$1", "$2",
            )))
            .bind(n)
            .bind(id)
            .execute(p)
            .await?;
        }
    }
    Ok(())
}

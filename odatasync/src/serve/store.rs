//! The batches of the status API in the database (`odata_sync_batches`, created by the runtime
//! migrations) and the runs that carry their id (`odata_sync_runs.batch_id`). Every status lives
//! here and only here, so a restarted server loses nothing.
//!
//! One SQL text serves both backends: SQLite understands PostgreSQL's `$N` parameters, and
//! timestamps are read as text (`CAST(.. AS TEXT)`) and normalised by [`rfc3339`]. Only the bound
//! timestamps differ: RFC 3339 text on SQLite (the runtime's format, so text order is time
//! order), `TIMESTAMPTZ` on PostgreSQL.

use crate::error::Error;
use chrono::{DateTime, SecondsFormat, Utc};
use odata_runtime::sql::{sqlx, Db};

/// Runs `$body` with `$p` bound to the pool and `$now` to the current time in the form the
/// backend stores.
macro_rules! on_db {
    ($db:expr, |$p:ident, $now:ident| $body:expr) => {
        match $db {
            Db::Sqlite($p) => {
                let $now = utc_text(&Utc::now());
                $body
            }
            Db::Postgres($p) => {
                let $now = Utc::now();
                $body
            }
        }
    };
}

fn utc_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A stored timestamp (SQLite: RFC 3339 text; PostgreSQL: `timestamptz` cast to text, e.g.
/// `2026-11-23 14:03:36.123456+00`) as RFC 3339 in UTC.
pub fn rfc3339(text: Option<&str>) -> Option<String> {
    let t = text?;
    let parsed = DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()?;
    Some(
        parsed
            .with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Micros, true),
    )
}

/// The request of a new batch.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: String,
    pub service: String,
    /// config.json names; `None`: the default plan.
    pub entities: Option<Vec<String>>,
    pub division: Option<i32>,
    pub full_refresh: bool,
    pub callback_url: Option<String>,
}

/// One row of `odata_sync_batches`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Batch {
    pub id: String,
    pub service: String,
    pub entities: Option<String>,
    pub division: Option<i64>,
    pub full_refresh: bool,
    pub status: String,
    pub owner: Option<String>,
    pub callback_url: Option<String>,
    pub callback_status: Option<String>,
    pub callback_attempts: i64,
    pub message: Option<String>,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Batch {
    /// The requested entities (`None`: the default plan).
    pub fn entity_names(&self) -> Option<Vec<String>> {
        self.entities
            .as_deref()
            .map(|s| s.split(',').map(String::from).collect())
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed")
    }
}

/// One run (division, entity) of a batch.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BatchRun {
    pub entity: String,
    pub division: i64,
    pub status: String,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_deleted: i64,
    pub api_calls: i64,
    pub errors: i64,
    pub message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

const BATCH_COLUMNS: &str = "\"id\", \"service\", \"entities\", \"division\", \"full_refresh\", \"status\", \"owner\", \"callback_url\", \"callback_status\", \"callback_attempts\", \"message\", CAST(\"created_at\" AS TEXT) AS \"created_at\", CAST(\"started_at\" AS TEXT) AS \"started_at\", CAST(\"finished_at\" AS TEXT) AS \"finished_at\"";

/// Records a new `queued` batch.
pub async fn insert(db: &Db, b: &NewBatch) -> Result<(), Error> {
    const SQL: &str = "INSERT INTO \"odata_sync_batches\" (\"id\", \"service\", \"entities\", \"division\", \"full_refresh\", \"status\", \"callback_url\", \"callback_status\", \"callback_attempts\", \"created_at\") VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, 0, $8)";
    let entities = b.entities.as_ref().map(|v| v.join(","));
    let division = b.division.map(i64::from);
    let cb_status = b.callback_url.as_ref().map(|_| "pending");
    on_db!(db, |p, now| {
        sqlx::query(SQL)
            .bind(&b.id)
            .bind(&b.service)
            .bind(&entities)
            .bind(division)
            .bind(b.full_refresh)
            .bind(&b.callback_url)
            .bind(cb_status)
            .bind(now)
            .execute(p)
            .await?;
    });
    Ok(())
}

/// One batch by id.
pub async fn get(db: &Db, id: &str) -> Result<Option<Batch>, Error> {
    let sql = format!("SELECT {BATCH_COLUMNS} FROM \"odata_sync_batches\" WHERE \"id\" = $1");
    let q = sqlx::AssertSqlSafe(sql);
    Ok(on_db!(db, |p, _now| sqlx::query_as(q)
        .bind(id)
        .fetch_optional(p)
        .await?))
}

/// The newest batches first (optionally of one service, in one status).
pub async fn list(
    db: &Db,
    service: Option<&str>,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Batch>, Error> {
    let sql = format!(
        "SELECT {BATCH_COLUMNS} FROM \"odata_sync_batches\" WHERE ($1 IS NULL OR \"service\" = $1) AND ($2 IS NULL OR \"status\" = $2) ORDER BY \"created_at\" DESC, \"id\" DESC LIMIT $3 OFFSET $4"
    );
    let q = sqlx::AssertSqlSafe(sql);
    Ok(on_db!(db, |p, _now| sqlx::query_as(q)
        .bind(service)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(p)
        .await?))
}

/// The runs of a batch in the order they were queued (the plan's order).
pub async fn runs(db: &Db, batch_id: &str) -> Result<Vec<BatchRun>, Error> {
    const SQL: &str = "SELECT \"entity\", \"division\", \"status\", \"rows_inserted\", \"rows_updated\", \"rows_deleted\", \"api_calls\", \"errors\", \"message\", CAST(\"started_at\" AS TEXT) AS \"started_at\", CAST(\"finished_at\" AS TEXT) AS \"finished_at\" FROM \"odata_sync_runs\" WHERE \"batch_id\" = $1 ORDER BY \"queued_at\", \"id\"";
    Ok(on_db!(db, |p, _now| sqlx::query_as(SQL)
        .bind(batch_id)
        .fetch_all(p)
        .await?))
}

/// Services with queued batches.
pub async fn queued_services(db: &Db) -> Result<Vec<String>, Error> {
    const SQL: &str = "SELECT DISTINCT \"service\" FROM \"odata_sync_batches\" WHERE \"status\" = 'queued' ORDER BY \"service\"";
    Ok(on_db!(db, |p, _now| sqlx::query_scalar(SQL)
        .fetch_all(p)
        .await?))
}

/// Takes the oldest queued batch of `service` for `owner`, unless a batch of that service is
/// running (anywhere: one running batch per service, so two batches never refresh the same
/// token chain or write the same tables at once). PostgreSQL serialises claimers of one service
/// with a transaction-scoped advisory lock; SQLite has one writer anyway.
pub async fn claim(db: &Db, service: &str, owner: &str) -> Result<Option<Batch>, Error> {
    const SQL: &str = "UPDATE \"odata_sync_batches\" SET \"status\" = 'running', \"owner\" = $1, \"started_at\" = $2 WHERE \"status\" = 'queued' AND \"id\" = (SELECT \"id\" FROM \"odata_sync_batches\" WHERE \"service\" = $3 AND \"status\" = 'queued' ORDER BY \"created_at\", \"id\" LIMIT 1) AND NOT EXISTS (SELECT 1 FROM \"odata_sync_batches\" WHERE \"service\" = $3 AND \"status\" = 'running') RETURNING \"id\"";
    let id: Option<String> = match db {
        Db::Sqlite(p) => {
            sqlx::query_scalar(SQL)
                .bind(owner)
                .bind(utc_text(&Utc::now()))
                .bind(service)
                .fetch_optional(p)
                .await?
        }
        Db::Postgres(p) => {
            let mut tx = p.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('odatasync serve ' || $1))")
                .bind(service)
                .execute(&mut *tx)
                .await?;
            let id = sqlx::query_scalar(SQL)
                .bind(owner)
                .bind(Utc::now())
                .bind(service)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            id
        }
    };
    match id {
        Some(id) => get(db, &id).await,
        None => Ok(None),
    }
}

/// Ends a batch (`succeeded` or `failed`), and fails its runs that never ended (a batch that
/// stopped early, an interrupted process). The callback, when there is one, becomes `pending`.
// `&now`: a `String` on SQLite (bound twice), a `Copy` timestamp on PostgreSQL.
#[allow(clippy::needless_borrows_for_generic_args)]
pub async fn finish(db: &Db, id: &str, status: &str, message: Option<&str>) -> Result<(), Error> {
    const BATCH: &str = "UPDATE \"odata_sync_batches\" SET \"status\" = $1, \"message\" = $2, \"finished_at\" = $3, \"callback_status\" = CASE WHEN \"callback_url\" IS NULL THEN NULL ELSE 'pending' END WHERE \"id\" = $4";
    const RUNS: &str = "UPDATE \"odata_sync_runs\" SET \"status\" = 'failed', \"errors\" = \"errors\" + 1, \"message\" = COALESCE(\"message\", $1), \"finished_at\" = $2 WHERE \"batch_id\" = $3 AND \"status\" IN ('queued', 'running')";
    let run_msg = message.unwrap_or("not run: the batch ended before this run");
    on_db!(db, |p, now| {
        sqlx::query(RUNS)
            .bind(run_msg)
            .bind(&now)
            .bind(id)
            .execute(p)
            .await?;
        sqlx::query(BATCH)
            .bind(status)
            .bind(message)
            .bind(&now)
            .bind(id)
            .execute(p)
            .await?;
    });
    Ok(())
}

/// Batches in a status (oldest first): `running` ones to recover, finished ones whose callback
/// is still `pending`.
pub async fn in_status(db: &Db, status: &str, callback_pending: bool) -> Result<Vec<Batch>, Error> {
    let sql = format!(
        "SELECT {BATCH_COLUMNS} FROM \"odata_sync_batches\" WHERE \"status\" = $1 AND ($2 = 0 OR \"callback_status\" = 'pending') ORDER BY \"created_at\", \"id\""
    );
    let q = sqlx::AssertSqlSafe(sql);
    let pending = i64::from(callback_pending);
    Ok(on_db!(db, |p, _now| sqlx::query_as(q)
        .bind(status)
        .bind(pending)
        .fetch_all(p)
        .await?))
}

/// Makes `owner` the owner of a batch that `previous` held (compare-and-set: two servers
/// recovering at once take it only once).
pub async fn take_over(
    db: &Db,
    id: &str,
    previous: Option<&str>,
    owner: &str,
) -> Result<bool, Error> {
    const SQL: &str = "UPDATE \"odata_sync_batches\" SET \"owner\" = $1 WHERE \"id\" = $2 AND ((\"owner\" IS NULL AND $3 IS NULL) OR \"owner\" = $3)";
    let n = on_db!(db, |p, _now| sqlx::query(SQL)
        .bind(owner)
        .bind(id)
        .bind(previous)
        .execute(p)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// Counts one callback attempt (before it is sent, so a crash mid-attempt still counts it).
pub async fn count_callback_attempt(db: &Db, id: &str) -> Result<i64, Error> {
    const SQL: &str = "UPDATE \"odata_sync_batches\" SET \"callback_attempts\" = \"callback_attempts\" + 1 WHERE \"id\" = $1 RETURNING \"callback_attempts\"";
    Ok(on_db!(db, |p, _now| sqlx::query_scalar(SQL)
        .bind(id)
        .fetch_one(p)
        .await?))
}

/// `delivered` or `failed`.
pub async fn set_callback_status(db: &Db, id: &str, status: &str) -> Result<(), Error> {
    const SQL: &str =
        "UPDATE \"odata_sync_batches\" SET \"callback_status\" = $1 WHERE \"id\" = $2";
    on_db!(db, |p, _now| {
        sqlx::query(SQL).bind(status).bind(id).execute(p).await?;
    });
    Ok(())
}

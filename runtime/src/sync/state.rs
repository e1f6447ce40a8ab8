//! The runtime's state tables (`odata_sync_cursors`, `odata_sync_runs`) and the per-page
//! transaction that writes rows and the cursor together.

use super::{deletion_sql, Deletion, RunReport, SyncError, SyncSpec};
use crate::sql::{
    insert_postgres, is_unique_violation, upsert_postgres, upsert_sqlite, Db, DbConn, TableInfo,
};
use crate::Entity;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::{AssertSqlSafe, Connection as _};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a stored cursor counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorKind {
    /// `Timestamp` (Int64 row version of sync endpoints), stored as decimal text.
    Timestamp,
    /// `Modified` (DateTime), stored as `YYYY-MM-DDTHH:MM:SS.mmm` (the service's wall clock).
    Modified,
}

impl CursorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CursorKind::Timestamp => "timestamp",
            CursorKind::Modified => "modified",
        }
    }
    pub fn parse(s: &str) -> Option<CursorKind> {
        match s {
            "timestamp" => Some(CursorKind::Timestamp),
            "modified" => Some(CursorKind::Modified),
            _ => None,
        }
    }
}

/// A row of `odata_sync_cursors`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub kind: CursorKind,
    pub value: Option<String>,
}

/// `division` of the state tables: 0 for services without divisions.
fn div(d: Option<i32>) -> i64 {
    d.map_or(0, i64::from)
}

fn utc_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The `odata_sync_cursors` row of (service, division, entity): its kind and value.
async fn cursor_row(
    db: &Db,
    service: &str,
    division: Option<i32>,
    entity: &str,
) -> Result<Option<(String, Option<String>)>, SyncError> {
    const SQL_LITE: &str = "SELECT \"cursor_kind\", \"cursor_value\" FROM \"odata_sync_cursors\" WHERE \"service\" = ? AND \"division\" = ? AND \"entity\" = ?";
    const SQL_PG: &str = "SELECT \"cursor_kind\", \"cursor_value\" FROM \"odata_sync_cursors\" WHERE \"service\" = $1 AND \"division\" = $2 AND \"entity\" = $3";
    Ok(match db {
        Db::Sqlite(p) => {
            sqlx::query_as(SQL_LITE)
                .bind(service)
                .bind(div(division))
                .bind(entity)
                .fetch_optional(p)
                .await?
        }
        Db::Postgres(p) => {
            sqlx::query_as(SQL_PG)
                .bind(service)
                .bind(div(division))
                .bind(entity)
                .fetch_optional(p)
                .await?
        }
    })
}

/// The stored cursor of (service, division, entity), if any (of a known kind).
pub async fn read_cursor(
    db: &Db,
    service: &str,
    division: Option<i32>,
    entity: &str,
) -> Result<Option<Cursor>, SyncError> {
    let row = cursor_row(db, service, division, entity).await?;
    Ok(row.and_then(|(k, value)| CursorKind::parse(&k).map(|kind| Cursor { kind, value })))
}

/// `cursor_kind` of the content fingerprint an entity without a cursor keeps in
/// `odata_sync_cursors` ([`read_cursor`] ignores it).
const FINGERPRINT_KIND: &str = "fingerprint";

/// The content fingerprint stored by the last complete fetch of an entity without a cursor.
pub(crate) async fn read_fingerprint(
    db: &Db,
    service: &str,
    division: Option<i32>,
    entity: &str,
) -> Result<Option<String>, SyncError> {
    let row = cursor_row(db, service, division, entity).await?;
    Ok(row.and_then(|(k, v)| if k == FINGERPRINT_KIND { v } else { None }))
}

/// Stores the content fingerprint of a complete fetch.
pub(crate) async fn write_fingerprint(
    db: &Db,
    spec: &SyncSpec,
    value: &str,
) -> Result<(), SyncError> {
    let now = Utc::now();
    match db {
        Db::Sqlite(p) => {
            let mut c = p.acquire().await?;
            cursor_sqlite(&mut c, spec, (FINGERPRINT_KIND, value), now).await
        }
        Db::Postgres(p) => {
            let mut c = p.acquire().await?;
            cursor_postgres(&mut c, spec, (FINGERPRINT_KIND, value), now).await
        }
    }
}

/// A run record being written.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub id: String,
}

fn new_run_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!(
        "{nanos:016x}-{:08x}-{:04x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

/// Records a run of `spec` as `queued` (before a batch starts, so that the whole plan is
/// visible); pass the id as [`SyncSpec::run_id`] when the run starts. Returns the id.
pub async fn queue_run(db: &Db, spec: &SyncSpec) -> Result<String, SyncError> {
    let id = new_run_id();
    insert_queued(db, spec, &id).await?;
    Ok(id)
}

async fn insert_queued(db: &Db, spec: &SyncSpec, id: &str) -> Result<(), SyncError> {
    let now = Utc::now();
    let cols = "\"id\", \"batch_id\", \"service\", \"division\", \"entity\", \"status\", \"full_refresh\", \"rows_inserted\", \"rows_updated\", \"rows_deleted\", \"api_calls\", \"errors\", \"queued_at\"";
    match db {
        Db::Sqlite(p) => {
            let sql = format!("INSERT INTO \"odata_sync_runs\" ({cols}) VALUES (?, ?, ?, ?, ?, 'queued', ?, 0, 0, 0, 0, 0, ?)");
            sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(&spec.batch_id)
                .bind(&spec.service)
                .bind(div(spec.division))
                .bind(&spec.entity)
                .bind(spec.full_refresh)
                .bind(utc_text(&now))
                .execute(p)
                .await?;
        }
        Db::Postgres(p) => {
            let sql = format!("INSERT INTO \"odata_sync_runs\" ({cols}) VALUES ($1, $2, $3, $4, $5, 'queued', $6, 0, 0, 0, 0, 0, $7)");
            sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(&spec.batch_id)
                .bind(&spec.service)
                .bind(div(spec.division))
                .bind(&spec.entity)
                .bind(spec.full_refresh)
                .bind(now)
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

/// Marks the run `running` (inserting it as `queued` first unless [`queue_run`] did).
pub(crate) async fn start_run(
    db: &Db,
    spec: &SyncSpec,
    _table: &TableInfo,
) -> Result<Run, SyncError> {
    let id = match &spec.run_id {
        Some(id) => id.clone(),
        None => {
            let id = new_run_id();
            insert_queued(db, spec, &id).await?;
            id
        }
    };
    match db {
        Db::Sqlite(p) => {
            sqlx::query("UPDATE \"odata_sync_runs\" SET \"status\" = 'running', \"started_at\" = ? WHERE \"id\" = ?")
                .bind(utc_text(&Utc::now()))
                .bind(&id)
                .execute(p)
                .await?;
        }
        Db::Postgres(p) => {
            sqlx::query("UPDATE \"odata_sync_runs\" SET \"status\" = 'running', \"started_at\" = $1 WHERE \"id\" = $2")
                .bind(Utc::now())
                .bind(&id)
                .execute(p)
                .await?;
        }
    }
    Ok(Run { id })
}

/// Writes the final status and figures of a run.
pub(crate) async fn finish_run(
    db: &Db,
    run: &Run,
    r: &RunReport,
    status: &str,
    message: Option<&str>,
) -> Result<(), SyncError> {
    let errors = i64::from(message.is_some());
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    match db {
        Db::Sqlite(p) => {
            sqlx::query("UPDATE \"odata_sync_runs\" SET \"status\" = ?, \"rows_inserted\" = ?, \"rows_updated\" = ?, \"rows_deleted\" = ?, \"api_calls\" = ?, \"errors\" = ?, \"message\" = ?, \"finished_at\" = ? WHERE \"id\" = ?")
                .bind(status)
                .bind(n(r.rows_inserted))
                .bind(n(r.rows_updated))
                .bind(n(r.rows_deleted))
                .bind(n(r.api_calls))
                .bind(errors)
                .bind(message)
                .bind(utc_text(&Utc::now()))
                .bind(&run.id)
                .execute(p)
                .await?;
        }
        Db::Postgres(p) => {
            sqlx::query("UPDATE \"odata_sync_runs\" SET \"status\" = $1, \"rows_inserted\" = $2, \"rows_updated\" = $3, \"rows_deleted\" = $4, \"api_calls\" = $5, \"errors\" = $6, \"message\" = $7, \"finished_at\" = $8 WHERE \"id\" = $9")
                .bind(status)
                .bind(n(r.rows_inserted))
                .bind(n(r.rows_updated))
                .bind(n(r.rows_deleted))
                .bind(n(r.api_calls))
                .bind(errors)
                .bind(message)
                .bind(Utc::now())
                .bind(&run.id)
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

const CURSOR_UPSERT_TAIL: &str = " ON CONFLICT (\"service\", \"division\", \"entity\") DO UPDATE SET \"cursor_kind\" = excluded.\"cursor_kind\", \"cursor_value\" = excluded.\"cursor_value\", \"updated_at\" = excluded.\"updated_at\"";

async fn cursor_sqlite(
    conn: &mut sqlx::SqliteConnection,
    spec: &SyncSpec,
    (kind, value): (&str, &str),
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    let sql = format!("INSERT INTO \"odata_sync_cursors\" (\"service\", \"division\", \"entity\", \"cursor_kind\", \"cursor_value\", \"updated_at\") VALUES (?, ?, ?, ?, ?, ?){CURSOR_UPSERT_TAIL}");
    sqlx::query(AssertSqlSafe(sql))
        .bind(&spec.service)
        .bind(div(spec.division))
        .bind(&spec.entity)
        .bind(kind)
        .bind(value)
        .bind(utc_text(&now))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn cursor_postgres(
    conn: &mut sqlx::PgConnection,
    spec: &SyncSpec,
    (kind, value): (&str, &str),
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    let sql = format!("INSERT INTO \"odata_sync_cursors\" (\"service\", \"division\", \"entity\", \"cursor_kind\", \"cursor_value\", \"updated_at\") VALUES ($1, $2, $3, $4, $5, $6){CURSOR_UPSERT_TAIL}");
    sqlx::query(AssertSqlSafe(sql))
        .bind(&spec.service)
        .bind(div(spec.division))
        .bind(&spec.entity)
        .bind(kind)
        .bind(value)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// One page: the rows and (when given) the cursor they advance to, in one transaction.
/// `all_new`: no row of the page can be stored yet (the run started on an empty table, or
/// division of it), so PostgreSQL takes the rows with `COPY` instead of an upsert; a key that
/// is stored after all rolls the page back, writes it by upsert and clears the flag.
pub(crate) async fn write_page<E: Entity>(
    conn: &mut DbConn,
    spec: &SyncSpec,
    table: &TableInfo,
    rows: &[E],
    cursor: Option<&(super::CursorKind, String)>,
    synced_at: DateTime<Utc>,
    all_new: &mut bool,
) -> Result<(), SyncError> {
    match conn {
        DbConn::Sqlite(c) => {
            let mut tx = c.begin().await?;
            if !rows.is_empty() {
                upsert_sqlite(&mut tx, table, spec.division, rows, synced_at).await?;
            }
            if let Some(c) = cursor {
                cursor_sqlite(&mut tx, spec, (c.0.as_str(), &c.1), synced_at).await?;
            }
            tx.commit().await?;
        }
        DbConn::Postgres(c) => {
            let mut tx = c.begin().await?;
            if !rows.is_empty() {
                let mut copied = false;
                if *all_new {
                    match insert_postgres(&mut tx, table, spec.division, rows, synced_at).await {
                        Ok(_) => copied = true,
                        Err(e) if is_unique_violation(&e) => {
                            // A key is stored after all (written by another process, or
                            // repeated in this page or an earlier one): this page and the rest
                            // by upsert, in a fresh transaction (the failed COPY aborted this one).
                            tx.rollback().await?;
                            tx = c.begin().await?;
                            *all_new = false;
                            tracing::debug!(
                                table = table.name,
                                "a key is already stored: upserting from here on"
                            );
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                if !copied {
                    upsert_postgres(&mut tx, table, spec.division, rows, synced_at).await?;
                }
            }
            if let Some(c) = cursor {
                cursor_postgres(&mut tx, spec, (c.0.as_str(), &c.1), synced_at).await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

/// One page of `sync/Deleted`: `deleted_at` on the target rows and the cursor, in one
/// transaction. Returns the number of rows marked.
pub(crate) async fn write_deletions<'t>(
    db: &Db,
    spec: &SyncSpec,
    dels: &[Deletion],
    targets: &dyn Fn(&str) -> Vec<&'t TableInfo>,
    cursor: Option<&(super::CursorKind, String)>,
) -> Result<u64, SyncError> {
    let now = Utc::now();
    let mut marked = 0;
    match db {
        Db::Sqlite(p) => {
            let mut tx = p.begin().await?;
            for d in dels {
                for t in targets(d.entity_set) {
                    let (sql, has_ts) = deletion_sql(t, false);
                    let mut q = sqlx::query(AssertSqlSafe(sql))
                        .bind(utc_text(&d.deleted_at))
                        .bind(&d.key);
                    if t.division {
                        q = q.bind(div(spec.division));
                    }
                    if has_ts {
                        q = q.bind(d.timestamp);
                    }
                    marked += q.execute(&mut *tx).await?.rows_affected();
                }
            }
            if let Some(c) = cursor {
                cursor_sqlite(&mut tx, spec, (c.0.as_str(), &c.1), now).await?;
            }
            tx.commit().await?;
        }
        Db::Postgres(p) => {
            let mut tx = p.begin().await?;
            for d in dels {
                for t in targets(d.entity_set) {
                    let (sql, has_ts) = deletion_sql(t, true);
                    let mut q = sqlx::query(AssertSqlSafe(sql))
                        .bind(d.deleted_at)
                        .bind(&d.key);
                    if t.division {
                        q = q.bind(spec.division.unwrap_or(0));
                    }
                    if has_ts {
                        q = q.bind(d.timestamp);
                    }
                    marked += q.execute(&mut *tx).await?.rows_affected();
                }
            }
            if let Some(c) = cursor {
                cursor_postgres(&mut tx, spec, (c.0.as_str(), &c.1), now).await?;
            }
            tx.commit().await?;
        }
    }
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::test_fixtures::{row, DDL, PG_TABLE};

    #[tokio::test]
    async fn a_stored_key_turns_the_copy_into_an_upsert_for_the_rest_of_the_run() {
        let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
        let db = Db::connect(&pg.create_database("pages").unwrap())
            .await
            .unwrap();
        db.execute_script(DDL).await.unwrap();
        let spec = SyncSpec::new("svc", "Wides", "Wides", Some(7));
        let at = Utc::now();
        let (a, b) = (
            "00000000-0000-0000-0000-00000000000a",
            "00000000-0000-0000-0000-00000000000b",
        );
        let mut all_new = true;
        let mut conn = db.acquire().await.unwrap();
        write_page(
            &mut conn,
            &spec,
            &PG_TABLE,
            &[row(a)],
            None,
            at,
            &mut all_new,
        )
        .await
        .unwrap();
        assert!(all_new, "new rows keep the COPY path");

        // The next page repeats `a` with a new name: the COPY fails, the page is upserted.
        let mut again = row(a);
        again.name = Some("second".into());
        write_page(
            &mut conn,
            &spec,
            &PG_TABLE,
            &[row(b), again],
            None,
            at,
            &mut all_new,
        )
        .await
        .unwrap();
        assert!(!all_new, "the rest of the run upserts");
        let Db::Postgres(p) = &db else { unreachable!() };
        let names: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT id::text, name FROM \"wide\" ORDER BY id")
                .fetch_all(p)
                .await
                .unwrap();
        assert_eq!(
            names,
            vec![
                (a.to_string(), Some("second".to_string())),
                (b.to_string(), row(b).name)
            ]
        );
    }
}

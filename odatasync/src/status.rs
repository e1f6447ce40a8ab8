//! `odatasync status`: the last run of every (division, entity), the cursors and when the
//! access token expires. Tokens themselves are never shown.

use crate::error::Error;
use odata_runtime::sql::sqlx;
use odata_runtime::sql::Db;
use std::fmt::Write as _;

/// The last run of one (division, entity).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LastRun {
    pub entity: String,
    pub division: i64,
    pub status: String,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_deleted: i64,
    pub api_calls: i64,
    pub message: Option<String>,
    pub finished: Option<String>,
}

/// The last run of every (division, entity) of `service`.
pub async fn last_runs(db: &Db, service: &str) -> Result<Vec<LastRun>, Error> {
    // Latest by queue time; ties (one batch queues all at once) by id, which grows.
    const SQL: &str = "SELECT r.\"entity\", r.\"division\", r.\"status\", r.\"rows_inserted\", r.\"rows_updated\", r.\"rows_deleted\", r.\"api_calls\", r.\"message\", CAST(r.\"finished_at\" AS TEXT) AS \"finished\" FROM \"odata_sync_runs\" r WHERE r.\"service\" = $1 AND r.\"id\" = (SELECT x.\"id\" FROM \"odata_sync_runs\" x WHERE x.\"service\" = r.\"service\" AND x.\"division\" = r.\"division\" AND x.\"entity\" = r.\"entity\" ORDER BY x.\"queued_at\" DESC, x.\"id\" DESC LIMIT 1) ORDER BY r.\"division\", r.\"entity\"";
    Ok(match db {
        Db::Sqlite(p) => {
            sqlx::query_as(sqlx::AssertSqlSafe(SQL.replace("$1", "?")))
                .bind(service)
                .fetch_all(p)
                .await?
        }
        Db::Postgres(p) => sqlx::query_as(SQL).bind(service).fetch_all(p).await?,
    })
}

/// (division, entity, kind, value) of every cursor of `service`.
pub async fn cursors(
    db: &Db,
    service: &str,
) -> Result<Vec<(i64, String, String, Option<String>)>, Error> {
    const SQL: &str = "SELECT \"division\", \"entity\", \"cursor_kind\", \"cursor_value\" FROM \"odata_sync_cursors\" WHERE \"service\" = $1 ORDER BY \"division\", \"entity\"";
    Ok(match db {
        Db::Sqlite(p) => {
            sqlx::query_as(sqlx::AssertSqlSafe(SQL.replace("$1", "?")))
                .bind(service)
                .fetch_all(p)
                .await?
        }
        Db::Postgres(p) => sqlx::query_as(SQL).bind(service).fetch_all(p).await?,
    })
}

/// (client id, access token expiry, obtained at) of the stored tokens of `service` (epoch ms).
pub async fn tokens(db: &Db, service: &str) -> Result<Vec<(String, i64, i64)>, Error> {
    const SQL: &str = "SELECT \"client_id\", \"expires_at_ms\", \"obtained_at_ms\" FROM \"odata_tokens\" WHERE \"service\" = $1 ORDER BY \"client_id\"";
    Ok(match db {
        Db::Sqlite(p) => {
            sqlx::query_as(sqlx::AssertSqlSafe(SQL.replace("$1", "?")))
                .bind(service)
                .fetch_all(p)
                .await?
        }
        Db::Postgres(p) => sqlx::query_as(SQL).bind(service).fetch_all(p).await?,
    })
}

/// The report `odatasync status` prints.
pub async fn report(db: &Db, service: &str, now_ms: i64) -> Result<String, Error> {
    let mut out = String::new();
    let toks = tokens(db, service).await?;
    let _ = writeln!(out, "service {service}");
    if toks.is_empty() {
        let _ = writeln!(out, "tokens: none stored (run `odatasync auth --service {service}`, or set ODATASYNC_REFRESH_TOKEN)");
    }
    for (client, expires, obtained) in toks {
        let left = (expires - now_ms) / 1000;
        let state = if expires == 0 {
            "not yet used (seeded refresh token)".to_string()
        } else if left > 0 {
            format!("access token valid for {left} s more")
        } else {
            format!(
                "access token expired {} s ago (refreshed on the next call)",
                -left
            )
        };
        let age = if obtained > 0 {
            format!(", obtained {} s ago", (now_ms - obtained) / 1000)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "tokens of app {client}: {state}{age}; refresh token stored encrypted"
        );
    }
    let runs = last_runs(db, service).await?;
    let _ = writeln!(out, "\nlast runs:");
    if runs.is_empty() {
        let _ = writeln!(out, "  none yet");
    }
    for r in &runs {
        let _ = writeln!(
            out,
            "  {:<24} {:>8}  {:<9} +{} ~{} -{}  {} calls  {}{}",
            r.entity,
            r.division,
            r.status,
            r.rows_inserted,
            r.rows_updated,
            r.rows_deleted,
            r.api_calls,
            r.finished.as_deref().unwrap_or("-"),
            r.message
                .as_deref()
                .map(|m| format!("  {m}"))
                .unwrap_or_default()
        );
    }
    let cs = cursors(db, service).await?;
    let _ = writeln!(out, "\ncursors:");
    if cs.is_empty() {
        let _ = writeln!(out, "  none yet");
    }
    for (d, e, k, v) in cs {
        let _ = writeln!(
            out,
            "  {e:<24} {d:>8}  {k} = {}",
            v.as_deref().unwrap_or("-")
        );
    }
    Ok(out)
}

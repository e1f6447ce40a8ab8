//! `odata_webhook_events`: every accepted delivery, written (and on SQLite synced with
//! `synchronous = FULL`) before the receiver answers 200, then marked `applied`, `failed` or
//! `ignored`. The id is the SHA-256 of the raw Content, so a repeated delivery is the same row
//! (`ON CONFLICT DO NOTHING`) and is neither stored nor applied twice.

use crate::error::Error;
use chrono::{DateTime, SecondsFormat, Utc};
use odata_runtime::sql::{sqlx, Db};

/// Event states (the `status` column).
pub const RECEIVED: &str = "received";
pub const APPLIED: &str = "applied";
pub const IGNORED: &str = "ignored";
pub const FAILED: &str = "failed";

/// A delivery to store.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub service: &'a str,
    pub topic: &'a str,
    pub action: &'a str,
    pub division: i64,
    pub entity_key: &'a str,
    pub endpoint: Option<&'a str>,
    pub content: &'a str,
    /// [`RECEIVED`], or [`IGNORED`] (a topic no config.json entity lists).
    pub status: &'static str,
    pub message: Option<&'a str>,
}

/// A stored event still to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: String,
    pub topic: String,
    pub action: String,
    pub division: i64,
    pub entity_key: String,
    pub attempts: i64,
}

fn utc_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

const COLUMNS: &str = "INSERT INTO \"odata_webhook_events\" (\"id\", \"service\", \"topic\", \"action\", \"division\", \"entity_key\", \"endpoint\", \"content\", \"status\", \"attempts\", \"message\", \"received_at\") VALUES ";
const ON_CONFLICT: &str = " ON CONFLICT (\"id\") DO NOTHING";

/// Stores one event, durably; `false` when it was there already (a repeated delivery).
pub async fn insert(db: &Db, e: &NewEvent<'_>) -> Result<bool, Error> {
    let now = Utc::now();
    let n = match db {
        Db::Sqlite(p) => {
            let sql = format!("{COLUMNS}(?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?){ON_CONFLICT}");
            let mut conn = p.acquire().await?;
            // The pool runs WAL with synchronous = NORMAL, which may lose the last commits in
            // a power cut; Exact is told 200 only for events that survive one.
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await?;
            if sync < 2 {
                sqlx::query("PRAGMA synchronous = FULL")
                    .execute(&mut *conn)
                    .await?;
            }
            let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(e.id)
                .bind(e.service)
                .bind(e.topic)
                .bind(e.action)
                .bind(e.division)
                .bind(e.entity_key)
                .bind(e.endpoint)
                .bind(e.content)
                .bind(e.status)
                .bind(e.message)
                .bind(utc_text(&now))
                .execute(&mut *conn)
                .await;
            if sync < 2 {
                sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA synchronous = {sync}")))
                    .execute(&mut *conn)
                    .await?;
            }
            r?.rows_affected()
        }
        Db::Postgres(p) => {
            let sql =
                format!("{COLUMNS}($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11){ON_CONFLICT}");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(e.id)
                .bind(e.service)
                .bind(e.topic)
                .bind(e.action)
                .bind(e.division)
                .bind(e.entity_key)
                .bind(e.endpoint)
                .bind(e.content)
                .bind(e.status)
                .bind(e.message)
                .bind(now)
                .execute(p)
                .await?
                .rows_affected()
        }
    };
    Ok(n > 0)
}

/// Events of `service` still `received` (oldest first), and `failed` ones tried fewer than
/// `retry_below` times.
pub async fn pending(
    db: &Db,
    service: &str,
    retry_below: i64,
    limit: i64,
) -> Result<Vec<Pending>, Error> {
    type R = (String, String, String, i64, String, i64);
    const SQL: &str = "SELECT \"id\", \"topic\", \"action\", \"division\", \"entity_key\", \"attempts\" FROM \"odata_webhook_events\" WHERE \"service\" = {1} AND (\"status\" = 'received' OR (\"status\" = 'failed' AND \"attempts\" < {2})) ORDER BY \"received_at\", \"id\" LIMIT {3}";
    let rows: Vec<R> = match db {
        Db::Sqlite(p) => {
            let sql = SQL
                .replace("{1}", "?")
                .replace("{2}", "?")
                .replace("{3}", "?");
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(service)
                .bind(retry_below)
                .bind(limit)
                .fetch_all(p)
                .await?
        }
        Db::Postgres(p) => {
            let sql = SQL
                .replace("{1}", "$1")
                .replace("{2}", "$2")
                .replace("{3}", "$3");
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(service)
                .bind(retry_below)
                .bind(limit)
                .fetch_all(p)
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(
            |(id, topic, action, division, entity_key, attempts)| Pending {
                id,
                topic,
                action,
                division,
                entity_key,
                attempts,
            },
        )
        .collect())
}

/// Records the outcome of one application: `status`, one more attempt, the message, and
/// `applied_at` when applied.
pub async fn finish(db: &Db, id: &str, status: &str, message: Option<&str>) -> Result<(), Error> {
    let now = Utc::now();
    let applied = (status == APPLIED).then_some(now);
    match db {
        Db::Sqlite(p) => {
            sqlx::query("UPDATE \"odata_webhook_events\" SET \"status\" = ?, \"attempts\" = \"attempts\" + 1, \"message\" = ?, \"applied_at\" = ? WHERE \"id\" = ?")
                .bind(status)
                .bind(message)
                .bind(applied.as_ref().map(utc_text))
                .bind(id)
                .execute(p)
                .await?;
        }
        Db::Postgres(p) => {
            sqlx::query("UPDATE \"odata_webhook_events\" SET \"status\" = $1, \"attempts\" = \"attempts\" + 1, \"message\" = $2, \"applied_at\" = $3 WHERE \"id\" = $4")
                .bind(status)
                .bind(message)
                .bind(applied)
                .bind(id)
                .execute(p)
                .await?;
        }
    }
    Ok(())
}

/// Events of `service` per status.
pub async fn counts(db: &Db, service: &str) -> Result<Vec<(String, i64)>, Error> {
    const SQL: &str = "SELECT \"status\", COUNT(*) FROM \"odata_webhook_events\" WHERE \"service\" = {1} GROUP BY \"status\" ORDER BY \"status\"";
    Ok(match db {
        Db::Sqlite(p) => {
            sqlx::query_as(sqlx::AssertSqlSafe(SQL.replace("{1}", "?")))
                .bind(service)
                .fetch_all(p)
                .await?
        }
        Db::Postgres(p) => {
            sqlx::query_as(sqlx::AssertSqlSafe(SQL.replace("{1}", "$1")))
                .bind(service)
                .fetch_all(p)
                .await?
        }
    })
}

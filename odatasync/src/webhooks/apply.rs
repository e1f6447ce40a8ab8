//! Applying stored events to the tables (exact-online.md §5: a delivery carries no data).
//!
//! * `Delete`: `deleted_at` on the rows with that key (and division) in every table of the
//!   topic's entity set ([`Topic::delete`]); rows are never removed.
//! * Anything else (`Create`, `Update`, §5 accepts any action): the row is read by key
//!   (`$filter=ID eq guid'…'`) through each listing entity's endpoint and upserted; a row the
//!   service no longer serves is marked deleted in that table.
//!
//! Applying is idempotent (upserts, `deleted_at IS NULL` guards), so an event applied twice
//! (two receivers, a crash between applying and marking) does no harm.

use super::events::{self, Pending, APPLIED, FAILED, IGNORED};
use super::topics::{single_key, FetchTarget, Topics};
use crate::error::Error;
use chrono::{SecondsFormat, Utc};
use futures_util::future::BoxFuture;
use futures_util::TryStreamExt;
use odata_runtime::client::Client;
use odata_runtime::sql::{quote_ident, sqlx, upsert_batch, Db};
use odata_runtime::{ColumnKind, Entity, TableInfo, TableVisitor};

/// A failed event is tried again on the next start until it has been tried this often.
pub const MAX_ATTEMPTS: i64 = 3;

/// What [`Applier::apply_pending`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub applied: u64,
    pub failed: u64,
    pub ignored: u64,
}

/// Applies the stored events of one service.
#[derive(Clone)]
pub struct Applier {
    pub db: Db,
    pub client: Client,
    pub service: String,
    pub topics: std::sync::Arc<Topics>,
}

impl Applier {
    /// Applies stored events oldest first until none is left: every `received` one, and
    /// `failed` ones tried fewer than `retry_below` times (0: none). Each event is marked when
    /// done; a database error stops the pass (the event stays `received`).
    pub async fn apply_pending(&self, retry_below: i64) -> Result<Applied, Error> {
        let mut done = Applied::default();
        loop {
            let batch = events::pending(&self.db, &self.service, retry_below, 100).await?;
            if batch.is_empty() {
                return Ok(done);
            }
            for ev in batch {
                let (status, message) = match self.apply(&ev).await {
                    Ok(Outcome::Applied(m)) => (APPLIED, m),
                    Ok(Outcome::Ignored(m)) => (IGNORED, m),
                    Err(m) => {
                        tracing::warn!(event = %ev.id, topic = %ev.topic, action = %ev.action, key = %ev.entity_key, "webhook event failed: {m}");
                        (FAILED, m)
                    }
                };
                match status {
                    APPLIED => done.applied += 1,
                    IGNORED => done.ignored += 1,
                    _ => done.failed += 1,
                }
                events::finish(&self.db, &ev.id, status, Some(&message)).await?;
            }
        }
    }

    async fn apply(&self, ev: &Pending) -> Result<Outcome, String> {
        let Some(topic) = self.topics.get(&ev.topic) else {
            return Ok(Outcome::Ignored(format!(
                "topic {} is not in config.json webhookTopics",
                ev.topic
            )));
        };
        let division = i32::try_from(ev.division)
            .map_err(|_| format!("division {} is out of range", ev.division))?;
        if ev.action.eq_ignore_ascii_case("Delete") {
            let mut n = 0;
            for t in &topic.delete {
                n += mark_deleted(&self.db, t, division, &ev.entity_key).await?;
            }
            return Ok(Outcome::Applied(format!("{n} rows marked deleted")));
        }
        let mut parts = Vec::new();
        for target in &topic.fetch {
            let rows = self.refresh(target, division, &ev.entity_key).await?;
            if rows == 0 {
                let n = mark_deleted(&self.db, target.table, division, &ev.entity_key).await?;
                parts.push(format!(
                    "{}: not served any more, {n} rows marked deleted",
                    target.entity
                ));
            } else {
                parts.push(format!("{}: {rows} rows upserted", target.entity));
            }
        }
        Ok(Outcome::Applied(parts.join("; ")))
    }

    /// Reads the row with `key` through `target`'s endpoint and upserts it; the number of rows
    /// read.
    async fn refresh(&self, target: &FetchTarget, division: i32, key: &str) -> Result<u64, String> {
        let filter = key_filter(target.table, key)?;
        let mut v = FetchVisitor {
            target: target.table.name,
            client: &self.client,
            db: &self.db,
            endpoint: &target.endpoint,
            division,
            filter,
            fut: None,
        };
        generated::visit_tables(&self.service, &mut v);
        match v.fut {
            Some(f) => f.await,
            None => Err(format!("no generated type for table {}", target.table.name)),
        }
    }
}

enum Outcome {
    Applied(String),
    Ignored(String),
}

struct FetchVisitor<'a> {
    target: &'static str,
    client: &'a Client,
    db: &'a Db,
    endpoint: &'a str,
    division: i32,
    filter: String,
    fut: Option<BoxFuture<'a, Result<u64, String>>>,
}

impl<'a> TableVisitor for FetchVisitor<'a> {
    fn visit<E: Entity + PartialEq>(&mut self, table: &'static TableInfo) {
        if self.fut.is_none() && table.name == self.target {
            self.fut = Some(Box::pin(fetch_and_upsert::<E>(
                self.client,
                self.db,
                table,
                self.endpoint,
                self.division,
                std::mem::take(&mut self.filter),
            )));
        }
    }
}

async fn fetch_and_upsert<E: Entity>(
    client: &Client,
    db: &Db,
    table: &'static TableInfo,
    endpoint: &str,
    division: i32,
    filter: String,
) -> Result<u64, String> {
    let rows: Vec<E> = client
        .rows::<E>(division)
        .endpoint(endpoint)
        .filter(filter)
        .stream()
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    if !rows.is_empty() {
        upsert_batch(db, table, Some(division), &rows, Utc::now())
            .await
            .map_err(|e| format!("{}: {e}", table.name))?;
    }
    Ok(rows.len() as u64)
}

/// `$filter` for the row with `key` (the table's one key property, written as its literal).
pub fn key_filter(table: &TableInfo, key: &str) -> Result<String, String> {
    let col = single_key(table)
        .and_then(|k| table.column(k))
        .ok_or_else(|| format!("{}: no single key column", table.name))?;
    let prop = col.wire_name.unwrap_or(col.name);
    let literal = match col.kind {
        ColumnKind::Uuid => format!("guid'{}'", guid(key)?),
        ColumnKind::Int16 | ColumnKind::Int32 | ColumnKind::Int64 => key
            .parse::<i64>()
            .map_err(|_| format!("key {key:?} is not a number"))?
            .to_string(),
        _ => format!("'{}'", key.replace('\'', "''")),
    };
    Ok(format!("{prop} eq {literal}"))
}

/// A GUID key, lower case; anything else is refused (the key goes into a URL).
fn guid(key: &str) -> Result<String, String> {
    let k = key
        .trim()
        .trim_start_matches("guid'")
        .trim_end_matches('\'')
        .to_ascii_lowercase();
    let ok = k.len() == 36
        && k.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if ok {
        Ok(k)
    } else {
        Err(format!("key {key:?} is not a GUID"))
    }
}

/// Sets `deleted_at` on the live rows with `key` in `division`; the number of rows marked.
pub async fn mark_deleted(db: &Db, t: &TableInfo, division: i32, key: &str) -> Result<u64, String> {
    let Some(col) = single_key(t).and_then(|k| t.column(k)) else {
        return Ok(0);
    };
    if t.column("deleted_at").is_none() {
        return Ok(0);
    }
    let err = |e: sqlx::Error| format!("{}: {e}", t.name);
    let now = Utc::now();
    let by_division = if t.division {
        " AND \"division\" = {3}"
    } else {
        ""
    };
    let base = format!(
        "UPDATE {} SET \"deleted_at\" = {{1}} WHERE {} = {{2}} AND \"deleted_at\" IS NULL{by_division}",
        quote_ident(t.name),
        quote_ident(col.name)
    );
    let key = match col.kind {
        ColumnKind::Uuid => guid(key)?,
        _ => key.to_string(),
    };
    let int_key = matches!(
        col.kind,
        ColumnKind::Int16 | ColumnKind::Int32 | ColumnKind::Int64
    );
    let n = match db {
        Db::Sqlite(p) => {
            let sql = base
                .replace("{1}", "?")
                .replace("{2}", if int_key { "CAST(? AS INTEGER)" } else { "?" })
                .replace("{3}", "?");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now.to_rfc3339_opts(SecondsFormat::Micros, true))
                .bind(&key);
            if t.division {
                q = q.bind(division);
            }
            q.execute(p).await.map_err(err)?.rows_affected()
        }
        Db::Postgres(p) => {
            let cast = match col.kind {
                ColumnKind::Uuid => "$2::uuid",
                ColumnKind::Int16 | ColumnKind::Int32 | ColumnKind::Int64 => "$2::bigint",
                _ => "$2",
            };
            let sql = base
                .replace("{1}", "$1")
                .replace("{2}", cast)
                .replace("{3}", "$3");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(&key);
            if t.division {
                q = q.bind(division);
            }
            q.execute(p).await.map_err(err)?.rows_affected()
        }
    };
    Ok(n)
}

//! The API call budget shared by every process of an app, kept in PostgreSQL
//! (`odata_rate_budget`): Exact counts calls per app (client ID) and division in fixed clock
//! minutes and UTC days (exact-online.md §4.1), whichever process makes them (§4.3), so workers
//! on several machines reserve each call from one counter before they send it.
//!
//! * [`PgCallBudget::reserve`]: in one transaction, rolls the `minute` and `day` rows of
//!   (service, client_id, division) over to the windows of `now` (the client's [`Clock`], the
//!   service's notion of time), locks them, and adds one call to both when both are below their
//!   limit minus the reserve; otherwise the caller waits for the next window.
//! * Windows are fixed like the service's: a call reserved at the very end of a window may
//!   reach the service in the next one and count there. No call is reserved in the last
//!   [`BudgetOptions::edge_guard_ms`] of a window nor in the first
//!   [`BudgetOptions::start_margin_ms`] of the next one (clocks of other machines may lag).
//! * [`PgCallBudget::observe`]: the `X-RateLimit-*` headers of every answer (§4.2) set the
//!   limit (`limit_value`), the service's remaining count and reset (`remaining_reported`,
//!   `reset_at_ms`), and raise `used` to what the service counted when it counted more (calls
//!   made outside the budget, e.g. by another tool of the same app).
//!
//! [`Clock`]: crate::client::Clock

use crate::client::{BoxFuture, CallBudget, RateLimitHeaders, Reservation};
use crate::sql::Db;
use crate::sync::SyncError;
use sqlx::PgPool;

pub const MINUTE_MS: i64 = 60_000;
pub const DAY_MS: i64 = 86_400_000;

/// Limits until the service's headers say otherwise, and what is left unused.
#[derive(Debug, Clone)]
pub struct BudgetOptions {
    /// Calls per division per minute (Exact: 60, §4.1); replaced by `X-RateLimit-Minutely-Limit`.
    pub minutely_limit: i64,
    /// Calls per division per day (Exact: 5000); replaced by `X-RateLimit-Limit`.
    pub daily_limit: i64,
    /// Calls per minute left for others of the app (interactive users, other tools).
    pub minutely_reserve: i64,
    /// Calls per day left for others of the app.
    pub daily_reserve: i64,
    /// No reservation in the last this-many ms of a window (client clock): the call could
    /// reach the service in the next window, which is counted afresh.
    pub edge_guard_ms: i64,
    /// No reservation in the first this-many ms of a window (other machines' clocks may lag).
    pub start_margin_ms: i64,
}

impl Default for BudgetOptions {
    fn default() -> Self {
        BudgetOptions {
            minutely_limit: 60,
            daily_limit: 5000,
            minutely_reserve: 2,
            daily_reserve: 100,
            edge_guard_ms: 1_000,
            start_margin_ms: 250,
        }
    }
}

/// The shared call budget of one app (service, client_id) in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgCallBudget {
    pool: PgPool,
    service: String,
    client_id: String,
    opts: BudgetOptions,
}

/// Start of the window of length `len` that holds `t`.
fn window_start(t: i64, len: i64) -> i64 {
    t - t.rem_euclid(len)
}

/// When a reservation at `now` must wait because of the window edges: the time to try again.
fn edge_wait(now: i64, len: i64, opts: &BudgetOptions) -> Option<i64> {
    let start = window_start(now, len);
    let pos = now - start;
    if pos < opts.start_margin_ms {
        Some(start + opts.start_margin_ms)
    } else if pos >= len - opts.edge_guard_ms {
        Some(start + len + opts.start_margin_ms)
    } else {
        None
    }
}

/// One row of `odata_rate_budget` (for status output).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BudgetRow {
    pub client_id: String,
    pub division: i64,
    /// `minute` or `day`.
    pub window_kind: String,
    pub window_start_ms: i64,
    pub used: i64,
    pub limit_value: Option<i64>,
    pub remaining_reported: Option<i64>,
    pub reset_at_ms: Option<i64>,
}

impl PgCallBudget {
    /// The budget of `client_id`'s calls to `service`. PostgreSQL only (the budget is for
    /// workers on several machines; a SQLite file has one machine).
    pub fn new(
        db: &Db,
        service: &str,
        client_id: &str,
        opts: BudgetOptions,
    ) -> Result<PgCallBudget, SyncError> {
        match db {
            Db::Postgres(p) => Ok(PgCallBudget {
                pool: p.clone(),
                service: service.to_string(),
                client_id: client_id.to_string(),
                opts,
            }),
            Db::Sqlite(_) => Err(SyncError::Other(
                "the shared call budget needs a PostgreSQL database (workers on several machines share it)".into(),
            )),
        }
    }

    pub fn options(&self) -> &BudgetOptions {
        &self.opts
    }

    /// Reserves one call in `division` at `now_ms`, or says when to ask again.
    pub async fn try_reserve(&self, division: i32, now_ms: i64) -> Result<Reservation, SyncError> {
        let o = &self.opts;
        let waits = [
            edge_wait(now_ms, MINUTE_MS, o),
            edge_wait(now_ms, DAY_MS, o),
        ];
        if let Some(t) = waits.into_iter().flatten().max() {
            return Ok(Reservation::WaitUntil(t));
        }
        let minute = window_start(now_ms, MINUTE_MS);
        let day = window_start(now_ms, DAY_MS);
        let mut tx = self.pool.begin().await?;
        self.lock_division(&mut tx, division).await?;
        // Roll both rows over to the current windows (a row already in a later window, moved
        // on by a process whose clock runs ahead, stays there) and lock them, minute first.
        let rows: Vec<(String, i64, i64, Option<i64>)> = sqlx::query_as(
            "INSERT INTO \"odata_rate_budget\" AS b (\"service\", \"client_id\", \"division\", \"window_kind\", \"window_start_ms\", \"used\", \"limit_value\", \"updated_at\") \
             VALUES ($1, $2, $3, 'minute', $4, 0, $5, now()), ($1, $2, $3, 'day', $6, 0, $7, now()) \
             ON CONFLICT (\"service\", \"client_id\", \"division\", \"window_kind\") DO UPDATE SET \
               \"used\" = CASE WHEN b.\"window_start_ms\" < excluded.\"window_start_ms\" THEN 0 ELSE b.\"used\" END, \
               \"remaining_reported\" = CASE WHEN b.\"window_start_ms\" < excluded.\"window_start_ms\" THEN NULL ELSE b.\"remaining_reported\" END, \
               \"reset_at_ms\" = CASE WHEN b.\"window_start_ms\" < excluded.\"window_start_ms\" THEN NULL ELSE b.\"reset_at_ms\" END, \
               \"window_start_ms\" = GREATEST(b.\"window_start_ms\", excluded.\"window_start_ms\"), \
               \"limit_value\" = COALESCE(b.\"limit_value\", excluded.\"limit_value\") \
             RETURNING \"window_kind\", \"window_start_ms\", \"used\", \"limit_value\"",
        )
        .bind(&self.service)
        .bind(&self.client_id)
        .bind(i64::from(division))
        .bind(minute)
        .bind(o.minutely_limit)
        .bind(day)
        .bind(o.daily_limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut wait: Option<i64> = None;
        for (kind, start, used, limit) in &rows {
            let (len, dflt, reserve) = if kind == "minute" {
                (MINUTE_MS, o.minutely_limit, o.minutely_reserve)
            } else {
                (DAY_MS, o.daily_limit, o.daily_reserve)
            };
            if *used >= limit.unwrap_or(dflt) - reserve {
                let next = start + len + o.start_margin_ms;
                wait = Some(wait.map_or(next, |w| w.max(next)));
            }
        }
        if let Some(t) = wait {
            tx.commit().await?; // keeps the roll-over; nothing reserved
            return Ok(Reservation::WaitUntil(t));
        }
        sqlx::query(
            "UPDATE \"odata_rate_budget\" SET \"used\" = \"used\" + 1, \"updated_at\" = now() \
             WHERE \"service\" = $1 AND \"client_id\" = $2 AND \"division\" = $3",
        )
        .bind(&self.service)
        .bind(&self.client_id)
        .bind(i64::from(division))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Reservation::Go)
    }

    /// Serialises the budget transactions of one (app, division): a reservation locks the
    /// minute row then the day row, a header update both rows in the join's order; without
    /// this lock two of them could wait on each other (PostgreSQL: "deadlock detected").
    async fn lock_division(
        &self,
        tx: &mut sqlx::PgConnection,
        division: i32,
    ) -> Result<(), SyncError> {
        sqlx::query(
            "SELECT pg_advisory_xact_lock(7201, hashtext($1 || '/' || $2 || '/' || $3::text))",
        )
        .bind(&self.service)
        .bind(&self.client_id)
        .bind(i64::from(division))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Takes the service's headers into account (see the module docs).
    pub async fn record(&self, division: i32, h: RateLimitHeaders) -> Result<(), SyncError> {
        let ws = |reset: Option<i64>, len: i64| reset.map(|r| r - len);
        let mut tx = self.pool.begin().await?;
        self.lock_division(&mut tx, division).await?;
        sqlx::query(
            "UPDATE \"odata_rate_budget\" AS b SET \
               \"limit_value\" = COALESCE(v.lim, b.\"limit_value\"), \
               \"remaining_reported\" = CASE WHEN b.\"window_start_ms\" = v.ws THEN v.rem ELSE b.\"remaining_reported\" END, \
               \"reset_at_ms\" = CASE WHEN b.\"window_start_ms\" = v.ws THEN v.reset ELSE b.\"reset_at_ms\" END, \
               \"used\" = CASE WHEN b.\"window_start_ms\" = v.ws AND v.lim IS NOT NULL AND v.rem IS NOT NULL \
                          THEN GREATEST(b.\"used\", v.lim - v.rem) ELSE b.\"used\" END, \
               \"updated_at\" = now() \
             FROM (VALUES ('minute', $4::BIGINT, $5::BIGINT, $6::BIGINT, $7::BIGINT), \
                          ('day', $8::BIGINT, $9::BIGINT, $10::BIGINT, $11::BIGINT)) AS v(kind, ws, lim, rem, reset) \
             WHERE b.\"service\" = $1 AND b.\"client_id\" = $2 AND b.\"division\" = $3 AND b.\"window_kind\" = v.kind",
        )
        .bind(&self.service)
        .bind(&self.client_id)
        .bind(i64::from(division))
        .bind(ws(h.minutely_reset_ms, MINUTE_MS))
        .bind(h.minutely_limit)
        .bind(h.minutely_remaining)
        .bind(h.minutely_reset_ms)
        .bind(ws(h.daily_reset_ms, DAY_MS))
        .bind(h.daily_limit)
        .bind(h.daily_remaining)
        .bind(h.daily_reset_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl CallBudget for PgCallBudget {
    fn reserve(&self, division: i32, now_ms: i64) -> BoxFuture<'_, Result<Reservation, String>> {
        Box::pin(async move {
            self.try_reserve(division, now_ms)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn observe(&self, division: i32, headers: RateLimitHeaders, _now_ms: i64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.record(division, headers).await {
                tracing::warn!(
                    division,
                    "call budget: recording the rate-limit headers: {e}"
                );
            }
        })
    }
}

/// Every budget row of `service` (all apps), by division and window kind.
pub async fn budget_rows(db: &Db, service: &str) -> Result<Vec<BudgetRow>, SyncError> {
    const SQL: &str = "SELECT \"client_id\", \"division\", \"window_kind\", \"window_start_ms\", \"used\", \"limit_value\", \"remaining_reported\", \"reset_at_ms\" FROM \"odata_rate_budget\" WHERE \"service\" = $1 ORDER BY \"client_id\", \"division\", \"window_kind\" DESC";
    Ok(match db {
        Db::Postgres(p) => sqlx::query_as(SQL).bind(service).fetch_all(p).await?,
        Db::Sqlite(p) => {
            sqlx::query_as(sqlx::AssertSqlSafe(SQL.replace("$1", "?")))
                .bind(service)
                .fetch_all(p)
                .await?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_reservation_at_the_edges_of_a_window() {
        let o = BudgetOptions::default();
        let m = 1_700_000_040_000; // a minute boundary
        assert_eq!(window_start(m + 5, MINUTE_MS), m);
        assert_eq!(edge_wait(m + 100, MINUTE_MS, &o), Some(m + 250));
        assert_eq!(edge_wait(m + 30_000, MINUTE_MS, &o), None);
        assert_eq!(
            edge_wait(m + 59_500, MINUTE_MS, &o),
            Some(m + MINUTE_MS + 250)
        );
    }
}

//! config.json `schedule`: a cron expression per entity (5 fields, UTC; `@hourly`, `@daily`,
//! ...). [`schedule_due`] enqueues one worker batch holding the entities that have a slot due,
//! for `odatasync schedule --due` and for `odatasync worker --schedule SERVICE` (which calls it
//! on every idle poll, so a fleet of workers needs no external cron).
//!
//! * A slot is due at `now` when it is the entity's latest cron time ≤ `now` and neither it nor
//!   a later slot of the entity is in `odata_schedule_slots`. Only the latest slot counts: a
//!   scheduler that was down for hours runs each entity once, not once per missed slot.
//! * The slot rows are inserted in the transaction that inserts the batch's jobs, under a
//!   per-service advisory lock, with `(service, entity, slot_at_ms)` as primary key: two
//!   schedulers at the same time (processes, machines) never enqueue one slot twice.
//! * The batch holds only the due entities; a `dependsOn` entity that is not due is not part
//!   of it, and the lease query only waits for dependencies in the same batch, so the due
//!   entity runs (from its committed cursor, against what its dependency last stored).

use crate::error::Error;
use crate::plan;
use crate::service::Service;
use crate::worker::{enqueue, pg, ScheduleOptions, Scheduled};
use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use odata_runtime::sql::{sqlx, Db};
use std::collections::BTreeMap;

/// `schedule` parsed as the generator checked it (`odata_codegen::config`): five fields, no
/// seconds, no year, POSIX day-of-month / day-of-week semantics.
pub fn parse_schedule(entity: &str, expr: &str) -> Result<Cron, Error> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| {
            Error::Config(format!(
                "entity '{entity}': 'schedule' = \"{expr}\" is not a 5-field cron expression: {e}"
            ))
        })
}

/// The entities of `service` with a `schedule`, checked: an error names the entity whose
/// expression never matches (e.g. `0 0 30 2 *`, the 30th of February) and says so.
pub fn scheduled_entities(service: &Service, now: DateTime<Utc>) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for (name, cfg) in &service.config.entities {
        let Some(expr) = &cfg.schedule else { continue };
        let cron = parse_schedule(name, expr)?;
        if cron.find_next_occurrence(&now, false).is_err()
            && cron.find_previous_occurrence(&now, true).is_err()
        {
            return Err(Error::Config(format!(
                "{}: entity '{name}': 'schedule' = \"{expr}\" never matches a time",
                service.dir.join("config.json").display()
            )));
        }
        out.push(name.clone());
    }
    Ok(out)
}

/// One entity's latest cron slot at some time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// config.json name.
    pub entity: String,
    /// The slot's time (UTC, on a whole minute).
    pub at: DateTime<Utc>,
}

/// The latest slot ≤ `now` of every entity of `service` with a `schedule`, by name.
pub fn latest_slots(service: &Service, now: DateTime<Utc>) -> Result<Vec<Slot>, Error> {
    let mut out = Vec::new();
    for (name, cfg) in &service.config.entities {
        let Some(expr) = &cfg.schedule else { continue };
        let cron = parse_schedule(name, expr)?;
        match cron.find_previous_occurrence(&now, true) {
            Ok(at) => out.push(Slot {
                entity: name.clone(),
                at,
            }),
            // A pattern with no time before `now` (e.g. the 30th of February): nothing due.
            Err(e) => {
                tracing::debug!(entity = %name, "schedule {expr:?}: no slot before {now}: {e}")
            }
        }
    }
    Ok(out)
}

/// The slots of [`latest_slots`] not yet enqueued (nor passed by a later enqueued slot). A
/// read without locks: [`schedule_due`] checks again under its lock.
pub async fn due_slots(db: &Db, service: &Service, now: DateTime<Utc>) -> Result<Vec<Slot>, Error> {
    let pool = pg(db)?;
    let latest = latest_slots(service, now)?;
    if latest.is_empty() {
        return Ok(latest);
    }
    let done: BTreeMap<String, i64> = sqlx::query_as(
        "SELECT \"entity\", MAX(\"slot_at_ms\") FROM \"odata_schedule_slots\" WHERE \"service\" = $1 GROUP BY \"entity\"",
    )
    .bind(&service.name)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    Ok(latest
        .into_iter()
        .filter(|s| {
            done.get(&s.entity)
                .is_none_or(|d| *d < s.at.timestamp_millis())
        })
        .collect())
}

/// What [`schedule_due`] enqueued.
#[derive(Debug, Clone)]
pub struct ScheduledSlots {
    pub batch: Scheduled,
    /// The entities of the batch and their slots, by name.
    pub slots: Vec<Slot>,
}

/// Enqueues one batch over `divisions` with the entities that have a slot due at `now` (see
/// the module docs); `None` when nothing is due (or another scheduler enqueued it first).
/// `divisions` is only called when something is due (it may ask the service).
pub async fn schedule_due<F, Fut>(
    db: &Db,
    service: &Service,
    now: DateTime<Utc>,
    opts: &ScheduleOptions,
    divisions: F,
) -> Result<Option<ScheduledSlots>, Error>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Option<i32>>, Error>>,
{
    let pool = pg(db)?;
    if due_slots(db, service, now).await?.is_empty() {
        return Ok(None);
    }
    let divisions = divisions().await?;
    let batch_id = opts
        .batch_id
        .clone()
        .unwrap_or_else(crate::worker::new_batch_id);
    let mut tx = pool.begin().await?;
    // One scheduler of a service at a time: the check below and the inserts are then atomic.
    sqlx::query("SELECT pg_advisory_xact_lock(7202, hashtext($1))")
        .bind(&service.name)
        .execute(&mut *tx)
        .await?;
    let mut won: Vec<Slot> = Vec::new();
    for slot in latest_slots(service, now)? {
        let inserted = sqlx::query(
            "INSERT INTO \"odata_schedule_slots\" (\"service\", \"entity\", \"slot_at_ms\", \"batch_id\", \"created_at\") \
             SELECT $1, $2, $3, $4, now() WHERE NOT EXISTS ( \
               SELECT 1 FROM \"odata_schedule_slots\" WHERE \"service\" = $1 AND \"entity\" = $2 AND \"slot_at_ms\" >= $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&service.name)
        .bind(&slot.entity)
        .bind(slot.at.timestamp_millis())
        .bind(&batch_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            won.push(slot);
        }
    }
    if won.is_empty() {
        tx.rollback().await?;
        return Ok(None);
    }
    let names: Vec<String> = won.iter().map(|s| s.entity.clone()).collect();
    let planned = plan::plan(service, Some(&names))?;
    let opts = ScheduleOptions {
        entities: Some(names),
        batch_id: Some(batch_id),
        ..opts.clone()
    };
    let batch = enqueue(db, &mut tx, service, &planned, &divisions, &opts).await?;
    tx.commit().await?;
    Ok(Some(ScheduledSlots { batch, slots: won }))
}

/// The `schedules` part of `odatasync status`: per scheduled entity its expression, the last
/// slot enqueued, whether a slot is due, and the next slot (empty when no entity has a
/// `schedule`).
pub async fn status_section(
    db: &Db,
    service: &Service,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    use std::fmt::Write as _;
    let scheduled: Vec<(&String, &String)> = service
        .config
        .entities
        .iter()
        .filter_map(|(n, c)| c.schedule.as_ref().map(|s| (n, s)))
        .collect();
    if scheduled.is_empty() {
        return Ok(String::new());
    }
    const SQL: &str = "SELECT \"entity\", MAX(\"slot_at_ms\") FROM \"odata_schedule_slots\" WHERE \"service\" = $1 GROUP BY \"entity\"";
    let last: BTreeMap<String, i64> = match db {
        Db::Postgres(p) => sqlx::query_as(SQL).bind(&service.name).fetch_all(p).await?,
        Db::Sqlite(p) => {
            sqlx::query_as(sqlx::AssertSqlSafe(SQL.replace("$1", "?")))
                .bind(&service.name)
                .fetch_all(p)
                .await?
        }
    }
    .into_iter()
    .collect();
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
    let mut out = String::new();
    let _ = writeln!(out, "\nschedules (config.json, UTC):");
    for (name, expr) in scheduled {
        let cron = parse_schedule(name, expr)?;
        let last_at = last
            .get(name)
            .and_then(|ms| DateTime::from_timestamp_millis(*ms));
        let due = cron
            .find_previous_occurrence(&now, true)
            .ok()
            .is_some_and(|p| last_at.is_none_or(|l| l < p));
        let next = cron
            .find_next_occurrence(&now, false)
            .map(fmt)
            .unwrap_or_else(|_| "-".into());
        let _ = writeln!(
            out,
            "  {name:<24} {expr:<16} last enqueued {}{}, next {next}",
            last_at.map(fmt).unwrap_or_else(|| "never".into()),
            if due { ", a slot is due" } else { "" },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_slot_at_or_before_now() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let c = parse_schedule("A", "*/15 * * * *").unwrap();
        let prev = |now: &str| c.find_previous_occurrence(&at(now), true).unwrap();
        assert_eq!(prev("2026-01-05T10:07:31Z"), at("2026-01-05T10:00:00Z"));
        assert_eq!(prev("2026-01-05T10:15:00Z"), at("2026-01-05T10:15:00Z"));
        assert_eq!(prev("2026-01-05T14:52:00Z"), at("2026-01-05T14:45:00Z"));
        let d = parse_schedule("A", "@daily").unwrap();
        assert_eq!(
            d.find_previous_occurrence(&at("2026-01-05T10:07:00Z"), true)
                .unwrap(),
            at("2026-01-05T00:00:00Z")
        );
        assert!(parse_schedule("A", "* * * * * *").is_err());
    }
}

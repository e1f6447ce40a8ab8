//! Upserts into PostgreSQL with `COPY … FROM STDIN` into a staging table, then one
//! `INSERT … SELECT … ON CONFLICT … DO UPDATE`.
//!
//! A multi-row `INSERT … VALUES` binds every value as its own parameter (an allocation or two
//! each on the client, a parameter to decode on the server) and needs many statements per page
//! under the parameter cap. `COPY` streams the page as text, each row serialised straight into
//! the stream by [`super::row_sink`], and the server parses it into the staging table's
//! column types, which are the target table's (`LIKE`).
//!
//! The staging table is a temporary table of the session, created on first use and emptied
//! (`TRUNCATE`) before each batch; its name carries a hash of the table's column list, so a
//! migrated table gets a new one. Rows with the same key keep the last one (`DISTINCT ON …
//! ORDER BY ctid DESC`: PostgreSQL refuses an `ON CONFLICT DO UPDATE` that touches a row twice).
//! Everything runs in a transaction (a savepoint inside the caller's), so a failing batch
//! leaves nothing behind.

use super::db::{value_error, SqlError};
use super::row_sink::{Cell, Param, Plan, Sink};
use super::{quote_ident, ColumnKind, TableInfo};
use crate::wire::datetime::{date_text, time_text};
use crate::Entity;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};
use std::fmt::Write as _;

/// `COPY` data is sent in chunks of about this size.
const SEND_BYTES: usize = 256 * 1024;

/// Upserts `rows` into `table` on `conn` (a connection, or a transaction: `&mut *tx`). A key
/// repeated in `rows` ends with its last row. `division` fills the `division` column (tables
/// that have one; `None` takes each row's own `Division` property). Returns the number of rows
/// written.
pub async fn upsert_postgres<E: Entity>(
    conn: &mut PgConnection,
    table: &TableInfo,
    division: Option<i32>,
    rows: &[E],
    synced_at: DateTime<Utc>,
) -> Result<u64, SqlError> {
    upsert_rows(conn, table, division, rows, synced_at, false).await
}

/// [`upsert_postgres`]; `general_only` converts every value by the general path (tests).
pub(super) async fn upsert_rows<E: Entity>(
    conn: &mut PgConnection,
    table: &TableInfo,
    division: Option<i32>,
    rows: &[E],
    synced_at: DateTime<Utc>,
    general_only: bool,
) -> Result<u64, SqlError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let cols = table
        .insert_columns()
        .map(|c| quote_ident(c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let stage = stage_name(table);
    let mut tx = conn.begin().await?;
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("pg_temp.{stage}"))
        .fetch_one(&mut *tx)
        .await?;
    let prepare = if exists.is_some() {
        format!("TRUNCATE {stage}")
    } else {
        format!(
            "CREATE TEMP TABLE {stage} (LIKE {} INCLUDING DEFAULTS)",
            quote_ident(table.name)
        )
    };
    sqlx::raw_sql(AssertSqlSafe(prepare))
        .execute(&mut *tx)
        .await?;

    let mut copy = tx
        .copy_in_raw(&format!("COPY {stage} ({cols}) FROM STDIN"))
        .await?;
    let mut sink = CopyRows::new(table);
    let mut plan = Plan::new(table, division.filter(|_| table.division));
    plan.general_only = general_only;
    let mut failed = plan.constants(&mut sink, table, synced_at).err();
    for row in rows {
        if failed.is_some() {
            break;
        }
        if let Err(e) = plan.write_row(&mut sink, table, row) {
            failed = Some(e);
            break;
        }
        sink.end_row();
        if sink.buf.len() >= SEND_BYTES {
            if let Err(e) = copy.send(&sink.buf[..]).await {
                failed = Some(e.into());
                break;
            }
            sink.buf.clear();
        }
    }
    if let Some(e) = failed {
        let _ = copy.abort(e.to_string()).await;
        return Err(e);
    }
    if !sink.buf.is_empty() {
        copy.send(&sink.buf[..]).await?;
    }
    copy.finish().await?;

    let target = quote_ident(table.name);
    let sql = if table.primary_key.is_empty() {
        format!("INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage}")
    } else {
        let key = table
            .primary_key
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {target} ({cols}) SELECT DISTINCT ON ({key}) {cols} FROM {stage} ORDER BY {key}, ctid DESC{}",
            table.upsert_tail
        )
    };
    let written = sqlx::query(AssertSqlSafe(sql))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(written)
}

/// The session's staging table for `table` (unquoted names are lower case; this one is quoted).
fn stage_name(table: &TableInfo) -> String {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same name for the same columns in every process.
    let mut h = std::hash::DefaultHasher::new();
    table.name.hash(&mut h);
    for c in table.insert_columns() {
        c.name.hash(&mut h);
        format!("{:?}", c.kind).hash(&mut h);
    }
    format!("\"odata_stage_{:016x}\"", h.finish())
}

/// Rows in `COPY` text format: a row's values are kept per column until the row ends (fields
/// arrive in the type's order, columns go in the table's).
struct CopyRows<'t> {
    table: &'t TableInfo,
    /// Each insert column's text for the current row (constants stay from row to row).
    slots: Vec<String>,
    buf: Vec<u8>,
}

impl<'t> CopyRows<'t> {
    fn new(table: &'t TableInfo) -> CopyRows<'t> {
        CopyRows {
            table,
            slots: vec![String::from("\\N"); table.insert_columns().count()],
            buf: Vec::with_capacity(SEND_BYTES + 64 * 1024),
        }
    }

    fn end_row(&mut self) {
        for (i, s) in self.slots.iter().enumerate() {
            if i > 0 {
                self.buf.push(b'\t');
            }
            self.buf.extend_from_slice(s.as_bytes());
        }
        self.buf.push(b'\n');
    }
}

/// `s` escaped for `COPY` text format (backslash, and the delimiters tab, newline, return).
fn push_escaped(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// A float as PostgreSQL reads it (shortest text that reads back the same value).
fn push_float(out: &mut String, v: f64, single: bool) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else if single {
        let _ = write!(out, "{}", v as f32);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// `YYYY-MM-DD` for years 1–9999; other years as PostgreSQL writes them (`0044-03-15 BC` is
/// 44 BC, i.e. year −43). Returns whether the year is BC.
fn push_pg_date(out: &mut String, d: NaiveDate) -> bool {
    let y = d.year();
    if (1..=9999).contains(&y) {
        out.push_str(&date_text(d));
        return false;
    }
    let bc = y <= 0;
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}",
        if bc { 1 - y } else { y },
        d.month(),
        d.day()
    );
    bc
}

fn push_pg_timestamp(out: &mut String, dt: NaiveDateTime, utc: bool) {
    let bc = push_pg_date(out, dt.date());
    out.push(' ');
    out.push_str(&time_text(dt.time()));
    if utc {
        out.push_str("+00");
    }
    if bc {
        out.push_str(" BC");
    }
}

impl Sink for CopyRows<'_> {
    fn put(&mut self, p: Param, v: Cell<'_>) -> Result<(), SqlError> {
        let out = &mut self.slots[p.slot];
        out.clear();
        match v {
            Cell::Null => out.push_str("\\N"),
            Cell::Text(s) => push_escaped(out, s),
            Cell::Bool(v) => out.push(if v { 't' } else { 'f' }),
            Cell::Int(v) => {
                let range = |r: Result<(), std::num::TryFromIntError>| {
                    r.map_err(|e| value_error(self.table, p.col, e.to_string()))
                };
                match p.col.kind {
                    ColumnKind::Int16 => range(i16::try_from(v).map(drop))?,
                    ColumnKind::Int32 | ColumnKind::Division => range(i32::try_from(v).map(drop))?,
                    _ => {}
                }
                let _ = write!(out, "{v}");
            }
            Cell::Float(v) => push_float(out, v, p.col.kind == ColumnKind::Float32),
            Cell::Date(d) => {
                if push_pg_date(out, d) {
                    out.push_str(" BC");
                }
            }
            Cell::DateTime(d) => push_pg_timestamp(out, d, false),
            Cell::Instant(t) => push_pg_timestamp(out, t.naive_utc(), true),
            Cell::Time(t) => out.push_str(&time_text(t)),
            Cell::Uuid(u) => out.push_str(
                u.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            ),
            Cell::Bytes(b) => {
                // bytea hex input `\x…`, its backslash escaped for COPY.
                out.push_str("\\\\x");
                for byte in b {
                    let _ = write!(out, "{byte:02x}");
                }
            }
            Cell::Json(v) => push_escaped(out, &v.to_string()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut String)) -> String {
        let mut s = String::new();
        f(&mut s);
        s
    }

    #[test]
    fn copy_text_escapes_delimiters_and_writes_postgres_forms() {
        assert_eq!(
            text(|s| push_escaped(s, "a\tb\nc\\d\re")),
            "a\\tb\\nc\\\\d\\re"
        );
        assert_eq!(text(|s| push_float(s, 0.1, false)), "0.1");
        assert_eq!(text(|s| push_float(s, 1.5, true)), "1.5");
        assert_eq!(text(|s| push_float(s, f64::NAN, false)), "NaN");
        assert_eq!(
            text(|s| push_float(s, f64::NEG_INFINITY, false)),
            "-Infinity"
        );
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(
            text(|s| {
                push_pg_date(s, d(2024, 2, 29));
            }),
            "2024-02-29"
        );
        assert_eq!(
            text(|s| push_pg_timestamp(s, d(-43, 3, 15).and_hms_opt(10, 0, 0).unwrap(), true)),
            "0044-03-15 10:00:00+00 BC"
        );
        assert_eq!(
            text(|s| push_pg_timestamp(s, d(10000, 1, 1).and_hms_opt(0, 0, 0).unwrap(), false)),
            "10000-01-01 00:00:00"
        );
    }

    const CREATE: &str = "CREATE TABLE \"wide\" (\"division\" INTEGER NOT NULL, \"id\" UUID NOT NULL, \"name\" TEXT, \"amount\" NUMERIC, \"flag\" BOOLEAN, \"small\" SMALLINT, \"big\" BIGINT, \"ratio\" DOUBLE PRECISION, \"whole\" REAL, \"nan\" DOUBLE PRECISION, \"modified\" TIMESTAMP, \"legacy\" TIMESTAMP, \"at\" TIMESTAMPTZ, \"day\" DATE, \"clock\" TIME, \"guid\" UUID, \"data\" BYTEA, \"extra\" JSONB, \"state\" TEXT, \"code_text\" TEXT, \"code_int\" INTEGER, \"missing\" TEXT, \"synced_at\" TIMESTAMPTZ, \"deleted_at\" TIMESTAMPTZ, PRIMARY KEY (\"division\", \"id\"))";

    /// Every column of row `id` as PostgreSQL prints it.
    async fn stored(c: &mut PgConnection, id: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for name in crate::sql::test_rows::NAMES.split(", ") {
            out.push(
                sqlx::query_scalar::<_, Option<String>>(AssertSqlSafe(format!(
                    "SELECT {name}::text FROM \"wide\" WHERE \"id\" = $1::uuid"
                )))
                .bind(id)
                .fetch_one(&mut *c)
                .await
                .unwrap(),
            );
        }
        out
    }

    #[tokio::test]
    async fn copy_stores_what_the_general_conversion_stores_on_a_real_postgresql() {
        use crate::sql::test_rows::{row, NAMES, TABLE};
        let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
        let url = pg.create_database("copy").unwrap();
        let mut c = PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(CREATE).execute(&mut c).await.unwrap();
        // `::text` of a TIMESTAMPTZ is in the session's zone.
        sqlx::raw_sql("SET TIME ZONE 'UTC'")
            .execute(&mut c)
            .await
            .unwrap();
        let at = DateTime::parse_from_rfc3339("2025-01-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&Utc);
        let (a, b) = (
            "00000000-0000-0000-0000-00000000000a",
            "00000000-0000-0000-0000-00000000000b",
        );
        let mut first = row(a);
        first.name = Some("replaced".into());
        let n = upsert_rows(&mut c, &TABLE, Some(7), &[first, row(a)], at, false)
            .await
            .unwrap();
        assert_eq!(n, 1, "a repeated key is written once, the last row winning");
        upsert_rows(&mut c, &TABLE, Some(7), &[row(b)], at, true)
            .await
            .unwrap();
        // Again, inside the caller's transaction: the staging table is reused and emptied.
        let mut tx = c.begin().await.unwrap();
        let n = upsert_rows(&mut tx, &TABLE, Some(7), &[row(a)], at, false)
            .await
            .unwrap();
        assert_eq!(n, 1);
        tx.commit().await.unwrap();
        let (direct, general) = (stored(&mut c, a).await, stored(&mut c, b).await);
        for ((name, d), g) in NAMES.split(", ").zip(&direct).zip(&general) {
            if name != "\"id\"" {
                assert_eq!(d, g, "column {name}");
            }
        }
        let get = |n: &str| direct[NAMES.split(", ").position(|c| c == n).unwrap()].as_deref();
        assert_eq!(get("\"name\""), Some("Ünïcode \"quoted\"\t\\ new\nline\r"));
        assert_eq!(get("\"amount\""), Some("12.50"));
        assert_eq!(get("\"big\""), Some("9007199254740993"));
        assert_eq!(get("\"flag\""), Some("true"));
        assert_eq!(get("\"legacy\""), Some("2023-11-14 22:13:20.123"));
        assert_eq!(get("\"at\""), Some("2024-01-01 08:00:00+00"));
        assert_eq!(get("\"data\""), Some("\\x000102ff"));
        assert_eq!(get("\"extra\""), Some("[1, 2]"));
        assert_eq!(get("\"nan\""), None);
        assert_eq!(get("\"missing\""), None);
        assert_eq!(get("\"synced_at\""), Some("2025-01-02 03:04:05.678+00"));
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM \"wide\"")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(rows, 2);

        // A value out of its column's range names the column; nothing of the batch is kept.
        let mut bad = row("00000000-0000-0000-0000-00000000000c");
        bad.code = u32::MAX;
        let e = upsert_rows(
            &mut c,
            &TABLE,
            Some(7),
            &[row("00000000-0000-0000-0000-00000000000d"), bad],
            at,
            false,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("wide.code_int: out of range"), "{e}");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM \"wide\"")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(rows, 2, "a failed batch leaves nothing behind");
        // The connection is usable afterwards.
        upsert_rows(&mut c, &TABLE, Some(7), &[row(b)], at, false)
            .await
            .unwrap();
    }
}

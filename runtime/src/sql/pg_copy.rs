//! Inserting new rows into PostgreSQL with `COPY … FROM STDIN`: the initial load of a table.
//!
//! An upsert (`INSERT … VALUES … ON CONFLICT … DO UPDATE`) makes the server plan a statement
//! per few dozen rows, decode every value as its own parameter and look each key up before it
//! inserts. When the rows are known to be new, `COPY` streams them into the table instead: a
//! page is one command, its rows are parsed in one pass, and nothing is looked up twice.
//!
//! The values are the upsert's: each row is captured and converted column by column by the same
//! code ([`super::db`]'s `convert`), and only the last step differs, rendering the converted
//! value as `COPY` text instead of binding it. Dates, times and timestamps keep microseconds,
//! truncated as sqlx truncates what it binds.
//!
//! `COPY` only inserts: a row whose key is already stored (or repeated in the page) fails the
//! whole command with a unique violation ([`is_unique_violation`]), and the caller's
//! transaction is then aborted. The sync engine uses this path only for a (division of a)
//! table that was empty when the run started, and on that error rolls the page back and writes
//! it, and every later page of the run, by upsert.

use super::db::{convert, value_error, wire_names_unique, Bound, SqlError};
use super::{quote_ident, ColumnInfo, ColumnKind, TableInfo};
use crate::wire::datetime::{date_text, time_text};
use crate::Entity;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use sqlx::postgres::PgConnection;
use std::io::Write as _;

/// `COPY` data is sent in chunks of about this size; the server parses one chunk while the next
/// is built.
const SEND_BYTES: usize = 128 * 1024;

/// Inserts `rows` into `table` on `conn` (a connection, or a transaction: `&mut *tx`) with one
/// `COPY`. `division` fills the `division` column (tables that have one; `None` takes each
/// row's own `Division` property). Returns the number of rows inserted.
///
/// Fails, and leaves the transaction aborted, when a key is already stored or repeated in
/// `rows` ([`is_unique_violation`]); a value that does not convert is the same error as
/// [`super::upsert_postgres`]'s, and the `COPY` is abandoned.
pub async fn insert_postgres<E: Entity>(
    conn: &mut PgConnection,
    table: &TableInfo,
    division: Option<i32>,
    rows: &[E],
    synced_at: DateTime<Utc>,
) -> Result<u64, SqlError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let cols: Vec<&ColumnInfo> = table.insert_columns().collect();
    let names = cols
        .iter()
        .map(|c| quote_ident(c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let division = division.filter(|_| table.division);
    let synced_at = Bound::Instant(synced_at);
    let take = wire_names_unique(table);
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {} ({names}) FROM STDIN",
            quote_ident(table.name)
        ))
        .await?;
    let mut buf: Vec<u8> = Vec::with_capacity(SEND_BYTES + 16 * 1024);
    let mut failed = None;
    'rows: for row in rows {
        let mut obj = match super::fields::Fields::of(row) {
            Ok(o) => o,
            Err(source) => {
                failed = Some(SqlError::Json {
                    table: table.name.to_string(),
                    source,
                });
                break;
            }
        };
        for (i, col) in cols.iter().enumerate() {
            if i > 0 {
                buf.push(b'\t');
            }
            let written = convert(table, col, &mut obj, take, division, &synced_at).and_then(|b| {
                push_value(&mut buf, col.kind, b).map_err(|m| value_error(table, col, m))
            });
            if let Err(e) = written {
                failed = Some(e);
                break 'rows;
            }
        }
        buf.push(b'\n');
        if buf.len() >= SEND_BYTES {
            if let Err(e) = copy.send(&buf[..]).await {
                failed = Some(e.into());
                break;
            }
            buf.clear();
        }
    }
    if let Some(e) = failed {
        // The server ends the COPY with an error naming this message; the transaction is
        // aborted either way, so only the original error is reported.
        let _ = copy.abort(e.to_string()).await;
        return Err(e);
    }
    if !buf.is_empty() {
        copy.send(&buf[..]).await?;
    }
    Ok(copy.finish().await?)
}

/// Whether `e` is PostgreSQL's unique violation (SQLSTATE 23505): a key that is already stored.
pub fn is_unique_violation(e: &SqlError) -> bool {
    match e {
        SqlError::Sqlx(sqlx::Error::Database(d)) => d.is_unique_violation(),
        _ => false,
    }
}

/// One value in `COPY` text format (`\N` for NULL). The integer range checks are the ones
/// binding does (a SMALLINT column refuses 40,000 on the client, with the same message).
fn push_value(out: &mut Vec<u8>, kind: ColumnKind, b: Bound) -> Result<(), String> {
    use ColumnKind as K;
    match b {
        Bound::Null => out.extend_from_slice(b"\\N"),
        Bound::Text(s) => push_escaped(out, &s),
        Bound::Bool(v) => out.push(if v { b't' } else { b'f' }),
        Bound::Int(v) => {
            match kind {
                K::Int16 => drop(i16::try_from(v).map_err(|e| e.to_string())?),
                K::Int32 | K::Division => drop(i32::try_from(v).map_err(|e| e.to_string())?),
                _ => {}
            }
            let _ = write!(out, "{v}");
        }
        Bound::Float(v) => push_float(out, v, kind == K::Float32),
        Bound::Date(d) => {
            let bc = push_date(out, d);
            if bc {
                out.extend_from_slice(b" BC");
            }
        }
        Bound::DateTime(t) => push_timestamp(out, t, false),
        Bound::Instant(t) => push_timestamp(out, t.naive_utc(), true),
        Bound::Time(t) => out.extend_from_slice(time_text(micros(t)).as_bytes()),
        Bound::Uuid(u) => {
            let mut b = uuid::Uuid::encode_buffer();
            out.extend_from_slice(u.hyphenated().encode_lower(&mut b).as_bytes());
        }
        Bound::Bytes(v) => {
            // bytea's hex format, its backslash escaped for COPY.
            out.extend_from_slice(b"\\\\x");
            for byte in v {
                let _ = write!(out, "{byte:02x}");
            }
        }
        Bound::Json(v) => push_escaped(out, &v.to_string()),
    }
    Ok(())
}

/// `s` escaped for `COPY` text format: backslash and the delimiters tab, newline and return.
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Most values need no escape: one branch-free pass decides.
    let special = |c: u8| (c == b'\\') | (c == b'\t') | (c == b'\n') | (c == b'\r');
    if !bytes.iter().fold(false, |any, &c| any | special(c)) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// A float as PostgreSQL reads it back exactly (Rust prints the shortest text that round-trips;
/// a REAL column gets the value as the `f32` binding would send).
fn push_float(out: &mut Vec<u8>, v: f64, single: bool) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else if single {
        let _ = write!(out, "{}", v as f32);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// A time truncated to microseconds (PostgreSQL's precision; sqlx truncates what it binds,
/// PostgreSQL would round the text).
fn micros(t: NaiveTime) -> NaiveTime {
    t.with_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}

/// `YYYY-MM-DD`; years before 1 as PostgreSQL writes them (year 0 is `0001-… BC`). Returns
/// whether the date is BC.
fn push_date(out: &mut Vec<u8>, d: NaiveDate) -> bool {
    let y = d.year();
    if (1..=9999).contains(&y) {
        out.extend_from_slice(date_text(d).as_bytes());
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

fn push_timestamp(out: &mut Vec<u8>, t: NaiveDateTime, utc: bool) {
    let bc = push_date(out, t.date());
    out.push(b' ');
    out.extend_from_slice(time_text(micros(t.time())).as_bytes());
    if utc {
        out.extend_from_slice(b"+00");
    }
    if bc {
        out.extend_from_slice(b" BC");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sql::sqlite_write::tests::{col, row, Wide, COLUMNS, NAMES, TABLE};
    use sqlx::{Connection, Row as _};

    /// The `wide` test table's columns with PostgreSQL's cast for the decimal.
    const PG_COLUMNS: &[ColumnInfo] = &{
        let mut c = [col("", None, ColumnKind::Text); COLUMNS.len()];
        let mut i = 0;
        while i < COLUMNS.len() {
            c[i] = COLUMNS[i];
            if matches!(COLUMNS[i].kind, ColumnKind::Decimal) {
                c[i].pg_cast = "::NUMERIC";
            }
            i += 1;
        }
        c
    };

    pub(crate) const PG_TABLE: TableInfo = TableInfo {
        columns: PG_COLUMNS,
        insert_head: "INSERT INTO \"wide\" (\"division\", \"id\", \"name\", \"amount\", \"flag\", \"small\", \"big\", \"ratio\", \"whole\", \"nan\", \"modified\", \"legacy\", \"at\", \"day\", \"clock\", \"guid\", \"data\", \"extra\", \"state\", \"code_text\", \"code_int\", \"missing\", \"synced_at\") VALUES ",
        upsert_tail: " ON CONFLICT (\"division\", \"id\") DO UPDATE SET \"name\" = excluded.\"name\", \"deleted_at\" = NULL",
        ..TABLE
    };

    pub(crate) const DDL: &str = "CREATE TABLE \"wide\" (\"division\" INTEGER NOT NULL, \"id\" UUID NOT NULL, \"name\" TEXT, \"amount\" NUMERIC, \"flag\" BOOLEAN, \"small\" SMALLINT, \"big\" BIGINT, \"ratio\" DOUBLE PRECISION, \"whole\" REAL, \"nan\" DOUBLE PRECISION, \"modified\" TIMESTAMP, \"legacy\" TIMESTAMP, \"at\" TIMESTAMPTZ, \"day\" DATE, \"clock\" TIME, \"guid\" UUID, \"data\" BYTEA, \"extra\" JSONB, \"state\" TEXT, \"code_text\" TEXT, \"code_int\" INTEGER, \"missing\" TEXT, \"synced_at\" TIMESTAMPTZ, \"deleted_at\" TIMESTAMPTZ, PRIMARY KEY (\"division\", \"id\"))";

    /// Every column of a row as PostgreSQL prints it.
    async fn stored(c: &mut PgConnection, id: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for name in NAMES.split(", ") {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {name}::text FROM \"wide\" WHERE \"id\" = $1::uuid"
            )))
            .bind(id)
            .fetch_one(&mut *c)
            .await
            .unwrap();
            out.push(r.get::<Option<String>, _>(0));
        }
        out
    }

    async fn count(c: &mut PgConnection) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM \"wide\"")
            .fetch_one(&mut *c)
            .await
            .unwrap()
    }

    /// A row whose text needs COPY's escapes, and a time finer than PostgreSQL keeps.
    fn awkward(id: &str) -> Wide {
        let mut r = row(id);
        r.name = Some("tab\there, new\nline, return\r, back\\slash \\N, Ünïcode".into());
        r.modified = "2024-02-29T10:11:12.3456789".into();
        r.clock = "PT13H20M15.1234567S".into();
        r
    }

    #[tokio::test]
    async fn copy_stores_what_the_upsert_stores_and_refuses_a_stored_key() {
        let pg = odata_test_support::PgServer::start().expect("PostgreSQL");
        let url = pg.create_database("copy").unwrap();
        let mut c = PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(DDL).execute(&mut c).await.unwrap();
        let at = DateTime::parse_from_rfc3339("2025-01-02T03:04:05.678901Z")
            .unwrap()
            .with_timezone(&Utc);
        let (a, b, x, y) = (
            "00000000-0000-0000-0000-00000000000a",
            "00000000-0000-0000-0000-00000000000b",
            "00000000-0000-0000-0000-0000000000cc",
            "00000000-0000-0000-0000-0000000000dd",
        );
        let n = insert_postgres(&mut c, &PG_TABLE, Some(7), &[awkward(a)], at)
            .await
            .unwrap();
        assert_eq!(n, 1);
        crate::sql::upsert_postgres(&mut c, &PG_TABLE, Some(7), &[awkward(b)], at)
            .await
            .unwrap();
        let (copied, upserted) = (stored(&mut c, a).await, stored(&mut c, b).await);
        for ((name, p), u) in NAMES.split(", ").zip(&copied).zip(&upserted) {
            if name != "\"id\"" {
                assert_eq!(p, u, "column {name}");
            }
        }
        let get = |n: &str| copied[NAMES.split(", ").position(|c| c == n).unwrap()].as_deref();
        assert_eq!(
            get("\"name\""),
            Some("tab\there, new\nline, return\r, back\\slash \\N, Ünïcode")
        );
        assert_eq!(get("\"amount\""), Some("12.50"));
        assert_eq!(get("\"big\""), Some("9007199254740993"));
        assert_eq!(get("\"nan\""), None, "a NaN is captured as JSON null");
        assert_eq!(get("\"modified\""), Some("2024-02-29 10:11:12.345678"));
        assert_eq!(get("\"clock\""), Some("13:20:15.123456"));
        assert_eq!(
            get("\"guid\""),
            Some("6f9619ff-8b86-d011-b42d-00c04fc964ff")
        );
        assert_eq!(get("\"data\""), Some("\\x000102ff"));
        assert_eq!(get("\"extra\""), Some("[1, 2]"));
        assert_eq!(get("\"missing\""), None);
        assert_eq!(get("\"division\""), Some("7"));
        assert_eq!(get("\"synced_at\""), Some("2025-01-02 03:04:05.678901+00"));

        // A stored key fails the whole COPY as a unique violation: nothing of it is kept.
        let mut tx = c.begin().await.unwrap();
        let e = insert_postgres(&mut tx, &PG_TABLE, Some(7), &[row(x), row(a)], at)
            .await
            .unwrap_err();
        assert!(is_unique_violation(&e), "{e}");
        tx.rollback().await.unwrap();
        assert_eq!(count(&mut c).await, 2);

        // A value that does not convert is the upsert's error, and the COPY is abandoned.
        let mut bad = row(y);
        bad.big = "twelve".into();
        let e = insert_postgres(&mut c, &PG_TABLE, Some(7), &[row(x), bad], at)
            .await
            .unwrap_err();
        assert!(!is_unique_violation(&e));
        assert_eq!(e.to_string(), "wide.big: not an integer: \"twelve\"");
        assert_eq!(count(&mut c).await, 2);
    }
}

//! Upserts into SQLite through SQLite's C API, on the connection sqlx opened.
//!
//! sqlx's own path costs more than SQLite itself for wide rows: every text argument becomes an
//! `Arc<String>` (two allocations), SQLite copies it again when binding, and the arguments are
//! freed on sqlx's worker thread (a cross-thread `free`, contended in glibc's allocator). In a
//! 200,000-row sync of a 72-column entity, allocation and freeing took a third of the CPU.
//!
//! Here one prepared one-row upsert (`INSERT … VALUES (?, …) ON CONFLICT … DO UPDATE`) is
//! stepped once per row, each row serialised straight into the statement's parameters by
//! [`super::row_sink`] (strings are bound from the row's own memory; SQLite copies them).
//!
//! The connection is used through sqlx's [`LockedSqliteHandle`](sqlx::sqlite::LockedSqliteHandle),
//! which guarantees that sqlx's worker thread makes no call on it meanwhile; the statements run
//! in the caller's transaction. Bindings persist across `sqlite3_reset`, so the batch's
//! constants (`synced_at`, a given `division`) are bound once.

use super::db::{utc_text, SqlError};
use super::row_sink::{Cell, Param, Plan, Sink};
use super::TableInfo;
use crate::wire::datetime::{date_text, datetime_text, time_text};
use crate::Entity;
use chrono::{DateTime, Utc};
use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;
use std::ffi::{c_int, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Upserts `rows` into `table` on `conn` (a connection, or a transaction: `&mut *tx`): one
/// prepared statement stepped once per row, in order, so a key repeated in `rows` ends with its
/// last row. `division` fills the `division` column (tables that have one; `None` takes each
/// row's own `Division` property). Returns the number of rows written.
///
/// Runs synchronously on the calling thread once the connection is locked (about 5 µs a row
/// for a 72-column entity): call it with a batch the size of a page, not a whole entity set.
pub async fn upsert_sqlite<E: Entity>(
    conn: &mut SqliteConnection,
    table: &TableInfo,
    division: Option<i32>,
    rows: &[E],
    synced_at: DateTime<Utc>,
) -> Result<u64, SqlError> {
    upsert_rows(conn, table, division, rows, synced_at, false).await
}

/// [`upsert_sqlite`]; `general_only` converts every value by the general path (to test that
/// the direct one stores the same).
async fn upsert_rows<E: Entity>(
    conn: &mut SqliteConnection,
    table: &TableInfo,
    division: Option<i32>,
    rows: &[E],
    synced_at: DateTime<Utc>,
    general_only: bool,
) -> Result<u64, SqlError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle();
    // SAFETY: `handle` locks the connection for this scope: sqlx's worker makes no call on it
    // until the guard drops, and the statement is finalised before that (`Statement: Drop`,
    // declared after `handle`).
    let mut stmt = unsafe { Statement::prepare(db, &one_row_sql(table), table)? };
    let mut plan = Plan::new(table, division.filter(|_| table.division));
    plan.general_only = general_only;
    plan.constants(&mut stmt, table, synced_at)?;
    let mut written = 0u64;
    for row in rows {
        plan.write_row(&mut stmt, table, row)?;
        written += stmt.step()?;
    }
    drop(stmt);
    drop(handle);
    Ok(written)
}

/// `INSERT INTO … (…) VALUES (?, …) ON CONFLICT … DO UPDATE …` for one row.
fn one_row_sql(table: &TableInfo) -> String {
    let mut sql = String::with_capacity(
        table.insert_head.len() + table.values_sqlite.len() + table.upsert_tail.len(),
    );
    sql.push_str(table.insert_head);
    sql.push_str(table.values_sqlite);
    sql.push_str(table.upsert_tail);
    sql
}

/// A prepared statement on a locked connection; finalised when dropped.
struct Statement<'h> {
    db: NonNull<ffi::sqlite3>,
    raw: NonNull<ffi::sqlite3_stmt>,
    table: &'static str,
    _handle: PhantomData<&'h mut ffi::sqlite3>,
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` was prepared on `db` and is finalised exactly once, here.
        unsafe {
            ffi::sqlite3_finalize(self.raw.as_ptr());
        }
    }
}

impl<'h> Statement<'h> {
    /// # Safety
    /// `db` must be an open connection that no other thread uses while the statement lives.
    unsafe fn prepare(
        db: NonNull<ffi::sqlite3>,
        sql: &str,
        table: &TableInfo,
    ) -> Result<Statement<'h>, SqlError> {
        let mut raw = std::ptr::null_mut();
        let len = c_int::try_from(sql.len())
            .map_err(|_| SqlError::Other(format!("{}: upsert statement too long", table.name)))?;
        // SAFETY: `sql` is valid for `len` bytes; `raw` receives the statement or NULL.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                &mut raw,
                std::ptr::null_mut(),
            )
        };
        let table_name = table.name;
        match NonNull::new(raw) {
            Some(raw) if rc == ffi::SQLITE_OK => Ok(Statement {
                db,
                raw,
                table: table_name,
                _handle: PhantomData,
            }),
            _ => Err(sqlite_error(db, rc, table_name, "preparing the upsert")),
        }
    }

    fn check(&self, rc: c_int, what: &str) -> Result<(), SqlError> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(sqlite_error(self.db, rc, self.table, what))
        }
    }

    fn bind_null(&mut self, i: c_int) -> Result<(), SqlError> {
        // SAFETY: a live statement; SQLite checks the index.
        let rc = unsafe { ffi::sqlite3_bind_null(self.raw.as_ptr(), i) };
        self.check(rc, "binding a value")
    }

    fn bind_i64(&mut self, i: c_int, v: i64) -> Result<(), SqlError> {
        // SAFETY: as above.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.raw.as_ptr(), i, v) };
        self.check(rc, "binding a value")
    }

    fn bind_f64(&mut self, i: c_int, v: f64) -> Result<(), SqlError> {
        // SAFETY: as above.
        let rc = unsafe { ffi::sqlite3_bind_double(self.raw.as_ptr(), i, v) };
        self.check(rc, "binding a value")
    }

    fn bind_text(&mut self, i: c_int, v: &str) -> Result<(), SqlError> {
        // SAFETY: `v` is valid UTF-8 for `len` bytes; SQLITE_TRANSIENT makes SQLite copy it
        // before returning, so the borrow may end afterwards.
        let rc = unsafe {
            ffi::sqlite3_bind_text64(
                self.raw.as_ptr(),
                i,
                v.as_ptr().cast(),
                v.len() as u64,
                ffi::SQLITE_TRANSIENT(),
                ffi::SQLITE_UTF8 as u8,
            )
        };
        self.check(rc, "binding a value")
    }

    fn bind_blob(&mut self, i: c_int, v: &[u8]) -> Result<(), SqlError> {
        // SAFETY: as for `bind_text`.
        let rc = unsafe {
            ffi::sqlite3_bind_blob64(
                self.raw.as_ptr(),
                i,
                v.as_ptr().cast(),
                v.len() as u64,
                ffi::SQLITE_TRANSIENT(),
            )
        };
        self.check(rc, "binding a value")
    }

    /// Runs the statement once and resets it for the next row; returns the rows it changed.
    fn step(&mut self) -> Result<u64, SqlError> {
        // SAFETY: a live statement with every parameter bound (unbound ones are NULL).
        let rc = unsafe { ffi::sqlite3_step(self.raw.as_ptr()) };
        // SAFETY: as above; reset keeps the bindings.
        let reset = unsafe { ffi::sqlite3_reset(self.raw.as_ptr()) };
        if rc != ffi::SQLITE_DONE {
            let rc = if reset != ffi::SQLITE_OK { reset } else { rc };
            return Err(sqlite_error(self.db, rc, self.table, "writing a row"));
        }
        // SAFETY: the connection is live.
        let n = unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) };
        Ok(n.max(0) as u64)
    }
}

impl Sink for Statement<'_> {
    /// Binds a value as every SQLite reader of the runtime expects it: dates and times as ISO
    /// 8601 text (instants in UTC with `Z`), UUIDs as lower-case hyphenated text, booleans as
    /// 0/1, JSON as its text.
    fn put(&mut self, p: Param, v: Cell<'_>) -> Result<(), SqlError> {
        let i = p.slot as c_int + 1;
        match v {
            Cell::Null => self.bind_null(i),
            Cell::Text(s) => self.bind_text(i, s),
            Cell::Bool(v) => self.bind_i64(i, v.into()),
            Cell::Int(v) => self.bind_i64(i, v),
            Cell::Float(v) => self.bind_f64(i, v),
            Cell::Date(d) => self.bind_text(i, &date_text(d)),
            Cell::DateTime(d) => self.bind_text(i, &datetime_text(&d)),
            Cell::Instant(t) => self.bind_text(i, &utc_text(&t)),
            Cell::Time(t) => self.bind_text(i, &time_text(t)),
            Cell::Uuid(u) => self.bind_text(
                i,
                u.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            ),
            Cell::Bytes(v) => self.bind_blob(i, v),
            Cell::Json(v) => self.bind_text(i, &v.to_string()),
        }
    }
}

fn sqlite_error(db: NonNull<ffi::sqlite3>, rc: c_int, table: &str, what: &str) -> SqlError {
    // SAFETY: the connection is live; sqlite3_errmsg returns a NUL-terminated string owned by
    // SQLite, copied here before any other call.
    let msg = unsafe {
        let p = ffi::sqlite3_errmsg(db.as_ptr());
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    SqlError::Other(format!("{table}: SQLite error {rc} while {what}: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::test_rows::{row, NAMES, TABLE};
    use sqlx::{Connection, Row as _};

    /// Every column as SQLite holds it: its storage class and SQL literal.
    async fn stored(c: &mut sqlx::SqliteConnection, id: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for name in NAMES.split(", ") {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT typeof({name}), quote({name}) FROM \"wide\" WHERE \"id\" = ?"
            )))
            .bind(id)
            .fetch_one(&mut *c)
            .await
            .unwrap();
            out.push((r.get::<String, _>(0), r.get::<String, _>(1)));
        }
        out
    }

    #[tokio::test]
    async fn the_direct_path_stores_what_the_general_conversion_stores() {
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE \"wide\" ({NAMES}, \"deleted_at\", PRIMARY KEY (\"division\", \"id\"))"
        )))
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
        let n = upsert_rows(&mut c, &TABLE, Some(7), &[row(a), row(a)], at, false)
            .await
            .unwrap();
        assert_eq!(
            n, 2,
            "a repeated key is written twice, the last row winning"
        );
        upsert_rows(&mut c, &TABLE, Some(7), &[row(b)], at, true)
            .await
            .unwrap();
        let (direct, general) = (stored(&mut c, a).await, stored(&mut c, b).await);
        for ((name, d), g) in NAMES.split(", ").zip(&direct).zip(&general) {
            if name != "\"id\"" {
                assert_eq!(d, g, "column {name}");
            }
        }
        let get = |n: &str| &direct[NAMES.split(", ").position(|c| c == n).unwrap()];
        assert_eq!(get("\"amount\"").1, "'12.50'");
        assert_eq!(get("\"big\"").1, "9007199254740993");
        assert_eq!(get("\"flag\"").1, "1");
        assert_eq!(get("\"legacy\"").0, "text");
        assert_eq!(get("\"guid\"").1, "'6f9619ff-8b86-d011-b42d-00c04fc964ff'");
        assert_eq!(get("\"data\"").0, "blob");
        assert_eq!(get("\"nan\"").0, "null");
        assert_eq!(get("\"missing\"").0, "null");
        assert_eq!(get("\"division\"").1, "7");
        assert_eq!(get("\"synced_at\"").1, "'2025-01-02T03:04:05.678Z'");
    }

    #[tokio::test]
    async fn a_bad_value_names_the_table_and_column() {
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE \"wide\" ({NAMES}, \"deleted_at\", PRIMARY KEY (\"division\", \"id\"))"
        )))
        .execute(&mut c)
        .await
        .unwrap();
        let mut bad = row("00000000-0000-0000-0000-00000000000c");
        bad.big = "twelve".into();
        let at = Utc::now();
        let e = upsert_rows(&mut c, &TABLE, Some(7), &[bad], at, false)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("wide.big: not an integer"), "{e}");
        // Nothing half-written: the failing row is not stored.
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM \"wide\"")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(n, 0);
        // No division given and none in the row.
        let e = upsert_rows(&mut c, &TABLE, None, &[row("x")], at, false)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no division given"), "{e}");
    }
}

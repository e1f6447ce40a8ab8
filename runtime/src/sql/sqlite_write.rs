//! Upserts into SQLite through SQLite's C API, on the connection sqlx opened.
//!
//! sqlx's own path costs more than SQLite itself for wide rows: every text argument becomes an
//! `Arc<String>` (two allocations), SQLite copies it again when binding, and the arguments are
//! freed on sqlx's worker thread (a cross-thread `free`, contended in glibc's allocator). In a
//! 200,000-row sync of a 72-column entity, allocation and freeing took a third of the CPU.
//!
//! Here one prepared one-row upsert (`INSERT … VALUES (?, …) ON CONFLICT … DO UPDATE`) is
//! stepped once per row. Each row is serialised straight into the statement's parameters by a
//! serde [`Serializer`](serde::Serializer): strings are bound from the row's own memory
//! (SQLite copies them), numbers as numbers, and dates, times and UUIDs are parsed and written
//! in the same text form the rest of the runtime reads. Anything else (a complex value, a
//! number in a text column, a value that does not parse) goes through the general conversion
//! of [`super::db`], so both paths store the same thing and report the same errors.
//!
//! The connection is used through sqlx's [`LockedSqliteHandle`], which guarantees that sqlx's
//! worker thread makes no call on it meanwhile; the statement (the table's generated
//! [`TableInfo::upsert_sqlite`]) runs in the caller's transaction.
//! Bindings persist across `sqlite3_reset`, so the batch's constants (`synced_at`, a given
//! `division`) are bound once.

use super::db::{convert_value, utc_text, value_error, Bound, SqlError};
use super::{ColumnInfo, ColumnKind, TableInfo};
use crate::wire::datetime::{
    date_text, datetime_text, parse_edm_date, parse_edm_datetime, parse_edm_datetime_offset,
    parse_edm_time, time_text,
};
use crate::Entity;
use chrono::{DateTime, Utc};
use libsqlite3_sys as ffi;
use serde::ser::{self, Impossible, Serialize};
use sqlx::sqlite::{LockedSqliteHandle, SqliteConnection};
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
    let mut stmt = Statement::prepare(&mut handle, table)?;
    let mut plan = Plan::new(table, division.filter(|_| table.division));
    plan.general_only = general_only;
    plan.bind_constants(&mut stmt, table, &utc_text(&synced_at))?;
    let mut written = 0u64;
    for row in rows {
        written += plan.write_row(&mut stmt, table, row)?;
    }
    Ok(written)
}

/// A prepared statement on a locked connection; finalised when dropped. It borrows the lock
/// ([`LockedSqliteHandle`]: sqlx's worker thread makes no call on the connection while it is
/// held), so it cannot outlive it.
struct Statement<'h> {
    db: NonNull<ffi::sqlite3>,
    raw: NonNull<ffi::sqlite3_stmt>,
    table: &'static str,
    _lock: PhantomData<&'h mut LockedSqliteHandle<'h>>,
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
    /// Prepares the table's one-row upsert ([`TableInfo::upsert_sqlite`]).
    fn prepare(
        handle: &'h mut LockedSqliteHandle<'_>,
        table: &TableInfo,
    ) -> Result<Statement<'h>, SqlError> {
        let db = handle.as_raw_handle();
        let sql = table.upsert_sqlite;
        let mut raw = std::ptr::null_mut();
        let len = c_int::try_from(sql.len())
            .map_err(|_| SqlError::Other(format!("{}: upsert statement too long", table.name)))?;
        // SAFETY: `db` is open and locked for this thread; `sql` is valid for `len` bytes;
        // `raw` receives the statement or NULL.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                &mut raw,
                std::ptr::null_mut(),
            )
        };
        match NonNull::new(raw) {
            Some(raw) if rc == ffi::SQLITE_OK => Ok(Statement {
                db,
                raw,
                table: table.name,
                _lock: PhantomData,
            }),
            _ => Err(sqlite_error(db, rc, table.name, "preparing the upsert")),
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

    /// Binds an already converted value exactly as the general path stores it.
    fn bind_bound(&mut self, i: c_int, b: Bound) -> Result<(), SqlError> {
        match b {
            Bound::Null => self.bind_null(i),
            Bound::Text(s) => self.bind_text(i, &s),
            Bound::Bool(v) => self.bind_i64(i, v.into()),
            Bound::Int(v) => self.bind_i64(i, v),
            Bound::Float(v) => self.bind_f64(i, v),
            Bound::Date(d) => self.bind_text(i, &date_text(d)),
            Bound::DateTime(d) => self.bind_text(i, &datetime_text(&d)),
            Bound::Instant(t) => self.bind_text(i, &utc_text(&t)),
            Bound::Time(t) => self.bind_text(i, &time_text(t)),
            Bound::Uuid(u) => self.bind_text(
                i,
                u.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            ),
            Bound::Bytes(v) => self.bind_blob(i, &v),
            Bound::Json(v) => self.bind_text(i, &v.to_string()),
        }
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

/// Where each serialised field of a row goes: the parameters (1-based) that read it, found by
/// wire name once and then by position (a type serialises its fields in the same order every
/// time).
struct Plan {
    /// Parameters that take a serialised field, by wire name.
    by_wire: Vec<(&'static str, Vec<Param>)>,
    /// The i-th serialised field's entry in `by_wire`, learnt from earlier rows.
    by_position: Vec<Option<(&'static str, usize)>>,
    /// The row each wire parameter was last bound for (unbound ones are set NULL).
    bound_in_row: Vec<u64>,
    row: u64,
    division: Option<i32>,
    /// Skip the direct conversions (tests).
    general_only: bool,
}

#[derive(Clone, Copy)]
struct Param {
    index: c_int,
    col: &'static ColumnInfo,
}

impl Plan {
    fn new(table: &TableInfo, division: Option<i32>) -> Plan {
        let mut by_wire: Vec<(&'static str, Vec<Param>)> = Vec::new();
        for (i, col) in table.insert_columns().enumerate() {
            let from_row = match col.kind {
                ColumnKind::SyncedAt | ColumnKind::DeletedAt => false,
                ColumnKind::Division => division.is_none(),
                _ => true,
            };
            let Some(w) = col.wire_name.filter(|_| from_row) else {
                continue;
            };
            let p = Param {
                index: i as c_int + 1,
                col,
            };
            match by_wire.iter_mut().find(|(n, _)| *n == w) {
                Some((_, ps)) => ps.push(p),
                None => by_wire.push((w, vec![p])),
            }
        }
        let n = by_wire.len();
        Plan {
            by_wire,
            by_position: Vec::new(),
            bound_in_row: vec![0; n],
            row: 0,
            division,
            general_only: false,
        }
    }

    /// Binds what is the same for every row of the batch.
    fn bind_constants(
        &self,
        stmt: &mut Statement,
        table: &TableInfo,
        synced_at: &str,
    ) -> Result<(), SqlError> {
        for (i, col) in table.insert_columns().enumerate() {
            let i = i as c_int + 1;
            match col.kind {
                ColumnKind::SyncedAt => stmt.bind_text(i, synced_at)?,
                ColumnKind::Division => match self.division {
                    Some(d) => stmt.bind_i64(i, d.into())?,
                    None if col.wire_name.is_none() => {
                        return Err(value_error(
                            table,
                            col,
                            "no division given and the row has no Division value",
                        ))
                    }
                    None => {}
                },
                _ if col.wire_name.is_none() => stmt.bind_null(i)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// The `by_wire` entry of the `pos`-th serialised field named `key`.
    fn entry(&mut self, pos: usize, key: &'static str) -> Option<usize> {
        if let Some(Some((k, e))) = self.by_position.get(pos) {
            if *k == key {
                return Some(*e);
            }
        }
        let e = self.by_wire.iter().position(|(n, _)| *n == key)?;
        if self.by_position.len() <= pos {
            self.by_position.resize(pos + 1, None);
        }
        self.by_position[pos] = Some((key, e));
        Some(e)
    }

    fn write_row<E: Entity>(
        &mut self,
        stmt: &mut Statement,
        table: &TableInfo,
        row: &E,
    ) -> Result<u64, SqlError> {
        self.row += 1;
        match row.serialize(RowSer {
            plan: self,
            stmt,
            table,
        }) {
            Ok(()) => {}
            Err(RowError::Sql(e)) => return Err(e),
            Err(RowError::Custom(m)) => {
                return Err(SqlError::Other(format!(
                    "{}: cannot serialise a row: {m}",
                    table.name
                )))
            }
            // Not a plain struct (an open type's dynamic properties, `#[serde(flatten)]`, make
            // it a map): the general path, field by field.
            Err(RowError::NotAStruct | RowError::Fallback) => {
                self.write_object(stmt, table, row)?
            }
        }
        // Fields the row did not serialise (e.g. skipped when absent) are NULL.
        for e in 0..self.by_wire.len() {
            if self.bound_in_row[e] != self.row {
                for p in &self.by_wire[e].1 {
                    let b = convert_value(table, p.col, None)?;
                    stmt.bind_bound(p.index, b)?;
                }
            }
        }
        stmt.step()
    }
}

impl Plan {
    /// Binds a row that does not serialise as a struct through its JSON object.
    fn write_object<E: Entity>(
        &mut self,
        stmt: &mut Statement,
        table: &TableInfo,
        row: &E,
    ) -> Result<(), SqlError> {
        let json = |source| SqlError::Json {
            table: table.name.to_string(),
            source,
        };
        let serde_json::Value::Object(fields) = serde_json::to_value(row).map_err(json)? else {
            return Err(SqlError::Other(format!(
                "{}: a row does not serialise to a JSON object",
                table.name
            )));
        };
        for (e, (wire, params)) in self.by_wire.iter().enumerate() {
            let Some(v) = fields.get(*wire) else {
                continue;
            };
            self.bound_in_row[e] = self.row;
            for p in params {
                let b = convert_value(table, p.col, Some(v.clone()))?;
                stmt.bind_bound(p.index, b)?;
            }
        }
        Ok(())
    }
}

/// Why a row or field could not be written directly.
#[derive(Debug)]
enum RowError {
    Sql(SqlError),
    Custom(String),
    NotAStruct,
    /// The field's value needs the general conversion.
    Fallback,
}

impl From<SqlError> for RowError {
    fn from(e: SqlError) -> Self {
        RowError::Sql(e)
    }
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowError::Sql(e) => e.fmt(f),
            RowError::Custom(m) => f.write_str(m),
            RowError::NotAStruct => f.write_str("not a struct"),
            RowError::Fallback => f.write_str("needs the general conversion"),
        }
    }
}

impl std::error::Error for RowError {}

impl ser::Error for RowError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        RowError::Custom(msg.to_string())
    }
}

/// Serialises one row (a struct) into the statement's parameters.
struct RowSer<'p, 's, 'h> {
    plan: &'p mut Plan,
    stmt: &'s mut Statement<'h>,
    table: &'p TableInfo,
}

struct RowFields<'p, 's, 'h> {
    inner: RowSer<'p, 's, 'h>,
    pos: usize,
}

impl ser::SerializeStruct for RowFields<'_, '_, '_> {
    type Ok = ();
    type Error = RowError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), RowError> {
        let pos = self.pos;
        self.pos += 1;
        let plan = &mut *self.inner.plan;
        let Some(e) = plan.entry(pos, key) else {
            return Ok(()); // a property without a column (e.g. a navigation link)
        };
        plan.bound_in_row[e] = plan.row;
        let general_only = plan.general_only;
        let table = self.inner.table;
        for i in 0..plan.by_wire[e].1.len() {
            let p = plan.by_wire[e].1[i];
            let direct = if general_only {
                Err(RowError::Fallback)
            } else {
                value.serialize(FieldSer {
                    stmt: &mut *self.inner.stmt,
                    param: p,
                })
            };
            match direct {
                Ok(()) => {}
                Err(RowError::Fallback) => {
                    let v = serde_json::to_value(value).map_err(|e| {
                        RowError::Sql(SqlError::Json {
                            table: table.name.to_string(),
                            source: e,
                        })
                    })?;
                    let b = convert_value(table, p.col, Some(v))?;
                    self.inner.stmt.bind_bound(p.index, b)?;
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    fn end(self) -> Result<(), RowError> {
        Ok(())
    }
}

impl<'p, 's, 'h> ser::Serializer for RowSer<'p, 's, 'h> {
    type Ok = ();
    type Error = RowError;
    type SerializeSeq = Impossible<(), RowError>;
    type SerializeTuple = Impossible<(), RowError>;
    type SerializeTupleStruct = Impossible<(), RowError>;
    type SerializeTupleVariant = Impossible<(), RowError>;
    type SerializeMap = Impossible<(), RowError>;
    type SerializeStruct = RowFields<'p, 's, 'h>;
    type SerializeStructVariant = Impossible<(), RowError>;

    serializer_refuses!((), RowError::NotAStruct; scalars);
    serializer_refuses!((), RowError::NotAStruct; compounds);
    serializer_unwraps!(());

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, RowError> {
        Ok(RowFields {
            inner: self,
            pos: 0,
        })
    }
}

/// Serialises one field's value into one parameter, for the common cases; everything else is
/// [`RowError::Fallback`] (the general conversion, which also words the errors).
struct FieldSer<'s, 'h> {
    stmt: &'s mut Statement<'h>,
    param: Param,
}

impl FieldSer<'_, '_> {
    /// Binds a converted value the way [`Statement::bind_bound`] stores every value.
    fn put(self, b: Bound) -> Result<(), RowError> {
        Ok(self.stmt.bind_bound(self.param.index, b)?)
    }

    /// A parsed value, or the general path (which words the error).
    fn parsed<T, E>(self, r: Result<T, E>, bound: impl FnOnce(T) -> Bound) -> Result<(), RowError> {
        match r {
            Ok(v) => self.put(bound(v)),
            Err(_) => Err(RowError::Fallback),
        }
    }

    fn int(self, v: i64) -> Result<(), RowError> {
        use ColumnKind as K;
        match self.param.col.kind {
            K::Int16 | K::Int32 | K::Int64 | K::Division => self.put(Bound::Int(v)),
            K::Float32 | K::Float64 => self.put(Bound::Float(v as f64)),
            _ => Err(RowError::Fallback),
        }
    }

    fn null(self) -> Result<(), RowError> {
        if self.param.col.kind == ColumnKind::Division {
            return Err(RowError::Fallback); // the general path words the error
        }
        self.put(Bound::Null)
    }
}

/// `FieldSer` methods for integers that fit an `i64`.
macro_rules! serialize_ints {
    ($($name:ident($t:ty)),* $(,)?) => {
        $(fn $name(self, v: $t) -> Result<(), RowError> {
            self.int(v.into())
        })*
    };
}

impl ser::Serializer for FieldSer<'_, '_> {
    type Ok = ();
    type Error = RowError;
    type SerializeSeq = Impossible<(), RowError>;
    type SerializeTuple = Impossible<(), RowError>;
    type SerializeTupleStruct = Impossible<(), RowError>;
    type SerializeTupleVariant = Impossible<(), RowError>;
    type SerializeMap = Impossible<(), RowError>;
    type SerializeStruct = Impossible<(), RowError>;
    type SerializeStructVariant = Impossible<(), RowError>;

    serializer_refuses!((), RowError::Fallback; serialize_char(char), serialize_bytes(&[u8]));
    serializer_refuses!((), RowError::Fallback; compounds);
    serializer_unwraps!(());

    fn serialize_bool(self, v: bool) -> Result<(), RowError> {
        match self.param.col.kind {
            ColumnKind::Bool => self.put(Bound::Bool(v)),
            _ => Err(RowError::Fallback),
        }
    }

    serialize_ints!(
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
    );

    fn serialize_u64(self, v: u64) -> Result<(), RowError> {
        match i64::try_from(v) {
            Ok(v) => self.int(v),
            Err(_) => Err(RowError::Fallback),
        }
    }

    fn serialize_f32(self, v: f32) -> Result<(), RowError> {
        self.serialize_f64(v.into())
    }

    fn serialize_f64(self, v: f64) -> Result<(), RowError> {
        match self.param.col.kind {
            ColumnKind::Float32 | ColumnKind::Float64 if v.is_finite() => self.put(Bound::Float(v)),
            _ => Err(RowError::Fallback),
        }
    }

    fn serialize_str(self, s: &str) -> Result<(), RowError> {
        use ColumnKind as K;
        match self.param.col.kind {
            // Text is bound from the row's own memory (a `Bound::Text` would copy it).
            K::Text | K::Enum | K::Duration => Ok(self.stmt.bind_text(self.param.index, s)?),
            K::Decimal => Ok(self.stmt.bind_text(self.param.index, s.trim())?),
            K::Int16 | K::Int32 | K::Int64 | K::Division => {
                self.parsed(s.trim().parse::<i64>(), Bound::Int)
            }
            K::DateTime => self.parsed(parse_edm_datetime(s), Bound::DateTime),
            K::DateTimeOffset => self.parsed(parse_edm_datetime_offset(s), |t| {
                Bound::Instant(t.with_timezone(&Utc))
            }),
            K::Date => self.parsed(parse_edm_date(s), Bound::Date),
            K::Time => self.parsed(parse_edm_time(s), Bound::Time),
            K::Uuid => self.parsed(uuid::Uuid::parse_str(s.trim()), Bound::Uuid),
            _ => Err(RowError::Fallback),
        }
    }

    fn serialize_none(self) -> Result<(), RowError> {
        self.null()
    }

    fn serialize_unit(self) -> Result<(), RowError> {
        self.null()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), RowError> {
        self.null()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), RowError> {
        match self.param.col.kind {
            ColumnKind::Text | ColumnKind::Enum => {
                Ok(self.stmt.bind_text(self.param.index, variant)?)
            }
            _ => Err(RowError::Fallback),
        }
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, RowError> {
        Err(RowError::Fallback)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Dialect, PropertyInfo};
    use serde::{Deserialize, Serialize};
    use sqlx::{Connection, Row as _};

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    pub(crate) enum Status {
        Open,
    }

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    pub(crate) struct Wide {
        #[serde(rename = "ID")]
        pub(crate) id: String,
        #[serde(rename = "Name")]
        pub(crate) name: Option<String>,
        #[serde(rename = "Amount")]
        pub(crate) amount: String,
        #[serde(rename = "Flag")]
        pub(crate) flag: bool,
        #[serde(rename = "Small")]
        pub(crate) small: i16,
        #[serde(rename = "Big")]
        pub(crate) big: String,
        #[serde(rename = "Ratio")]
        pub(crate) ratio: f64,
        #[serde(rename = "Whole")]
        pub(crate) whole: i32,
        #[serde(rename = "NotANumber")]
        pub(crate) not_a_number: f64,
        #[serde(rename = "Modified")]
        pub(crate) modified: String,
        #[serde(rename = "Legacy")]
        pub(crate) legacy: String,
        #[serde(rename = "At")]
        pub(crate) at: String,
        #[serde(rename = "Day")]
        pub(crate) day: String,
        #[serde(rename = "Clock")]
        pub(crate) clock: String,
        #[serde(rename = "Guid")]
        pub(crate) guid: String,
        #[serde(rename = "Data")]
        pub(crate) data: String,
        #[serde(rename = "Extra")]
        pub(crate) extra: Vec<u8>,
        #[serde(rename = "State")]
        pub(crate) state: Status,
        #[serde(rename = "Code")]
        pub(crate) code: u32,
        #[serde(rename = "Missing", skip_serializing_if = "Option::is_none")]
        pub(crate) missing: Option<String>,
        #[serde(rename = "NoColumn")]
        pub(crate) no_column: String,
    }

    impl Entity for Wide {
        const TYPE_NAME: &'static str = "T.Wide";
        const ENTITY_SET: &'static str = "Wides";
        const DIALECT: Dialect = Dialect::V2;
        const PROPERTIES: &'static [PropertyInfo] = &[];
        const KEY: &'static [&'static str] = &["ID"];
        const SELECT: &'static [&'static str] = &[];
        type Key = String;
        fn key(&self) -> String {
            self.id.clone()
        }
    }

    pub(crate) const fn col(
        name: &'static str,
        wire: Option<&'static str>,
        kind: ColumnKind,
    ) -> ColumnInfo {
        ColumnInfo {
            name,
            wire_name: wire,
            kind,
            nullable: true,
            pg_cast: "",
        }
    }

    pub(crate) const COLUMNS: &[ColumnInfo] = &[
        col("division", None, ColumnKind::Division),
        col("id", Some("ID"), ColumnKind::Uuid),
        col("name", Some("Name"), ColumnKind::Text),
        col("amount", Some("Amount"), ColumnKind::Decimal),
        col("flag", Some("Flag"), ColumnKind::Bool),
        col("small", Some("Small"), ColumnKind::Int16),
        col("big", Some("Big"), ColumnKind::Int64),
        col("ratio", Some("Ratio"), ColumnKind::Float64),
        col("whole", Some("Whole"), ColumnKind::Float32),
        col("nan", Some("NotANumber"), ColumnKind::Float64),
        col("modified", Some("Modified"), ColumnKind::DateTime),
        col("legacy", Some("Legacy"), ColumnKind::DateTime),
        col("at", Some("At"), ColumnKind::DateTimeOffset),
        col("day", Some("Day"), ColumnKind::Date),
        col("clock", Some("Clock"), ColumnKind::Time),
        col("guid", Some("Guid"), ColumnKind::Uuid),
        col("data", Some("Data"), ColumnKind::Bytes),
        col("extra", Some("Extra"), ColumnKind::Json),
        col("state", Some("State"), ColumnKind::Enum),
        col("code_text", Some("Code"), ColumnKind::Text),
        col("code_int", Some("Code"), ColumnKind::Int32),
        col("missing", Some("Missing"), ColumnKind::Text),
        col("synced_at", None, ColumnKind::SyncedAt),
        col("deleted_at", None, ColumnKind::DeletedAt),
    ];

    pub(crate) const NAMES: &str = "\"division\", \"id\", \"name\", \"amount\", \"flag\", \"small\", \"big\", \"ratio\", \"whole\", \"nan\", \"modified\", \"legacy\", \"at\", \"day\", \"clock\", \"guid\", \"data\", \"extra\", \"state\", \"code_text\", \"code_int\", \"missing\", \"synced_at\"";

    pub(crate) const TABLE: TableInfo = TableInfo {
        name: "wide",
        entity: "Wides",
        entity_set: "Wides",
        entity_type: "T.Wide",
        division: true,
        columns: COLUMNS,
        primary_key: &["division", "id"],
        upsert_sqlite: concat!(
            "INSERT INTO \"wide\" (\"division\", \"id\", \"name\", \"amount\", \"flag\", \"small\", \"big\", \"ratio\", \"whole\", \"nan\", \"modified\", \"legacy\", \"at\", \"day\", \"clock\", \"guid\", \"data\", \"extra\", \"state\", \"code_text\", \"code_int\", \"missing\", \"synced_at\") VALUES ",
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            " ON CONFLICT (\"division\", \"id\") DO UPDATE SET \"name\" = excluded.\"name\", \"deleted_at\" = NULL"
        ),
        upsert_postgres: "",
        insert_head: "",
        values_sqlite: "",
        upsert_tail: "",
        select_sqlite: "",
        select_postgres: "",
    };

    pub(crate) fn row(id: &str) -> Wide {
        Wide {
            id: id.into(),
            name: Some("Ünïcode \"quoted\"".into()),
            amount: " 12.50 ".into(),
            flag: true,
            small: -7,
            big: " 9007199254740993".into(),
            ratio: 0.1,
            whole: 3,
            not_a_number: f64::NAN,
            modified: "2024-02-29T10:11:12.345".into(),
            legacy: "/Date(1700000000123)/".into(),
            at: "2024-01-01T10:00:00+02:00".into(),
            day: "/Date(1709251200000)/".into(),
            clock: "PT13H20M15.5S".into(),
            guid: "6F9619FF-8B86-D011-B42D-00C04FC964FF".into(),
            data: "AAEC/w==".into(),
            extra: vec![1, 2],
            state: Status::Open,
            code: 42,
            missing: None,
            no_column: "ignored".into(),
        }
    }

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

    /// An in-memory database with the `wide` table.
    async fn wide_table() -> sqlx::SqliteConnection {
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE \"wide\" ({NAMES}, \"deleted_at\", PRIMARY KEY (\"division\", \"id\"))"
        )))
        .execute(&mut c)
        .await
        .unwrap();
        c
    }

    #[tokio::test]
    async fn the_direct_path_stores_what_the_general_conversion_stores() {
        let mut c = wide_table().await;
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

    /// An open type: its dynamic properties make serde write a map, not a struct.
    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    struct Open {
        #[serde(rename = "ID")]
        id: String,
        #[serde(flatten)]
        extra: serde_json::Map<String, serde_json::Value>,
    }

    impl Entity for Open {
        const TYPE_NAME: &'static str = "T.Open";
        const ENTITY_SET: &'static str = "Opens";
        const DIALECT: Dialect = Dialect::V4;
        const PROPERTIES: &'static [PropertyInfo] = &[];
        const KEY: &'static [&'static str] = &["ID"];
        const SELECT: &'static [&'static str] = &[];
        type Key = String;
        fn key(&self) -> String {
            self.id.clone()
        }
    }

    #[tokio::test]
    async fn an_open_type_row_is_written_through_its_json_object() {
        const COLS: &[ColumnInfo] = &[
            col("id", Some("ID"), ColumnKind::Text),
            col("name", Some("Name"), ColumnKind::Text),
            col("day", Some("Day"), ColumnKind::Date),
            col("synced_at", None, ColumnKind::SyncedAt),
        ];
        const OPEN: TableInfo = TableInfo {
            name: "open",
            entity: "Opens",
            entity_set: "Opens",
            entity_type: "T.Open",
            division: false,
            columns: COLS,
            primary_key: &["id"],
            upsert_sqlite: concat!(
                "INSERT INTO \"open\" (\"id\", \"name\", \"day\", \"synced_at\") VALUES ",
                "(?, ?, ?, ?)",
                " ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\""
            ),
            upsert_postgres: "",
            insert_head: "",
            values_sqlite: "",
            upsert_tail: "",
            select_sqlite: "",
            select_postgres: "",
        };
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE \"open\" (\"id\" PRIMARY KEY, \"name\", \"day\", \"synced_at\")",
        )
        .execute(&mut c)
        .await
        .unwrap();
        let mut extra = serde_json::Map::new();
        extra.insert("Name".into(), "dynamic".into());
        extra.insert("Day".into(), "/Date(1709251200000)/".into());
        let row = Open {
            id: "k".into(),
            extra,
        };
        upsert_rows(&mut c, &OPEN, None, &[row], Utc::now(), false)
            .await
            .unwrap();
        let (name, day): (String, String) =
            sqlx::query_as("SELECT \"name\", \"day\" FROM \"open\" WHERE \"id\" = 'k'")
                .fetch_one(&mut c)
                .await
                .unwrap();
        assert_eq!((name.as_str(), day.as_str()), ("dynamic", "2024-03-01"));
    }

    #[tokio::test]
    async fn a_bad_value_names_the_table_and_column() {
        let mut c = wide_table().await;
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

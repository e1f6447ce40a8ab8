//! The tables of generated entity types, and (with the cargo feature `sql`) the code that fills
//! and reads them.
//!
//! The generator writes, per service module, `pub const TABLES: &[TableInfo]` (one entry per
//! selected entity set, sorted by table name), `impl Table for <Entity>` (the table of the
//! entity's first entity set) and `pub fn visit_tables(&mut impl TableVisitor)`, which calls the
//! visitor once per table with the table's entity type as a type parameter. Everything a backend
//! needs is in [`TableInfo`]: column names and kinds, the primary key, and the parameter-bound
//! SQL text, generated once so that the runtime assembles a batch of N rows without parsing SQL.
//!
//! The types in this module are outside any cargo feature (generated code names them); the
//! sqlx-based functions ([`Db`], [`upsert_batch`], [`read_rows`], ...) need the feature `sql`.

use crate::Entity;

/// `serde::Serializer` methods that refuse a value with `$err` (`$ok`: the serializer's `Ok`):
/// the named ones, all `scalars` (every non-compound kind, `Option` and unit ones included), or
/// all `compounds` (sequences, tuples, maps, variants; not structs).
#[cfg(feature = "sql")]
macro_rules! serializer_refuses {
    ($ok:ty, $err:expr; scalars) => {
        serializer_refuses!($ok, $err;
            serialize_bool(bool),
            serialize_i8(i8),
            serialize_i16(i16),
            serialize_i32(i32),
            serialize_i64(i64),
            serialize_u8(u8),
            serialize_u16(u16),
            serialize_u32(u32),
            serialize_u64(u64),
            serialize_f32(f32),
            serialize_f64(f64),
            serialize_char(char),
            serialize_str(&str),
            serialize_bytes(&[u8]),
            serialize_none(),
            serialize_unit(),
            serialize_unit_struct(&'static str),
            serialize_unit_variant(&'static str, u32, &'static str),
        );
    };
    ($ok:ty, $err:expr; compounds) => {
        fn serialize_newtype_variant<T: serde::Serialize + ?Sized>(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _value: &T,
        ) -> Result<$ok, Self::Error> {
            Err($err)
        }

        fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
            Err($err)
        }

        fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Self::Error> {
            Err($err)
        }

        fn serialize_tuple_struct(
            self,
            _name: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleStruct, Self::Error> {
            Err($err)
        }

        fn serialize_tuple_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleVariant, Self::Error> {
            Err($err)
        }

        fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
            Err($err)
        }

        fn serialize_struct_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeStructVariant, Self::Error> {
            Err($err)
        }
    };
    ($ok:ty, $err:expr; $($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<$ok, Self::Error> {
            Err($err)
        })*
    };
}

/// `serde::Serializer` methods that serialise what `Some(…)` and a newtype struct wrap in
/// place of the wrapper.
#[cfg(feature = "sql")]
macro_rules! serializer_unwraps {
    ($ok:ty) => {
        fn serialize_some<T: serde::Serialize + ?Sized>(
            self,
            value: &T,
        ) -> Result<$ok, Self::Error> {
            value.serialize(self)
        }

        fn serialize_newtype_struct<T: serde::Serialize + ?Sized>(
            self,
            _name: &'static str,
            value: &T,
        ) -> Result<$ok, Self::Error> {
            value.serialize(self)
        }
    };
}

#[cfg(feature = "sql")]
mod db;
#[cfg(feature = "sql")]
mod fields;
#[cfg(feature = "sql")]
mod pg_copy;
#[cfg(feature = "sql")]
mod sqlite_write;
#[cfg(feature = "sql")]
pub use db::{
    chunk_rows, pg_object, read_rows, read_rows_postgres, read_rows_sqlite, sqlite_object, upsert,
    upsert_batch, upsert_postgres, CheckpointGuard, Db, DbConn, Row, SqlError,
    MAX_CONCURRENT_WRITERS, MAX_CONNECTIONS,
};
#[cfg(feature = "sql")]
pub use pg_copy::{insert_postgres, is_unique_violation};
/// The `wide` test table (every column kind) on both backends, for the sync engine's tests.
#[cfg(all(test, feature = "sql"))]
pub(crate) mod test_fixtures {
    pub(crate) use super::pg_copy::tests::{DDL, PG_TABLE};
    pub(crate) use super::sqlite_write::tests::row;
}
#[cfg(feature = "sql")]
pub use sqlite_write::upsert_sqlite;
/// The sqlx this module is built on (for callers' own queries, e.g. `query_as::<_, Row<E>>`).
#[cfg(feature = "sql")]
pub use sqlx;

/// Maximum number of bind parameters in one SQLite statement (`SQLITE_MAX_VARIABLE_NUMBER`,
/// the default of SQLite ≥ 3.32, which sqlx bundles).
pub const SQLITE_BIND_LIMIT: usize = 32_766;
/// Maximum number of bind parameters in one PostgreSQL statement (the protocol's 16-bit count).
pub const POSTGRES_BIND_LIMIT: usize = 65_535;
/// Parameters per statement of the PostgreSQL upsert (well under its cap): a statement of
/// thousands of parameters costs megabytes of prepared-statement memory per cached size and is
/// no faster than several smaller ones in the same transaction. (SQLite steps a one-row
/// statement per row.)
pub const STATEMENT_PARAMS: usize = 2_000;

/// What a column holds: decides its SQL type per backend and how the runtime binds and reads it.
/// Mirrors `odata_codegen::sql::ColumnKind` (same variant names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    Text,
    Bool,
    /// Edm.Byte, Edm.SByte, Edm.Int16.
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Edm.Decimal: exact. PostgreSQL `NUMERIC` (bound as text and cast); SQLite `TEXT` holding
    /// the decimal string as the service sent it.
    Decimal,
    Date,
    /// Edm.DateTime (no zone).
    DateTime,
    /// Edm.DateTimeOffset: stored in UTC (SQLite: ISO 8601 text ending in `Z`).
    DateTimeOffset,
    /// Edm.TimeOfDay, Edm.Time (stored as a time of day, `HH:MM:SS[.f]` in SQLite).
    Time,
    /// Edm.Duration (ISO 8601 text).
    Duration,
    /// Lower-case hyphenated text in SQLite, `UUID` in PostgreSQL.
    Uuid,
    Bytes,
    /// Complex types, collections, geography, untyped: the JSON value.
    Json,
    /// Enum member name(s) as text.
    Enum,
    /// System column: the division a row belongs to.
    Division,
    /// System column: when a sync last wrote the row.
    SyncedAt,
    /// System column: when the row was seen deleted at the source (reset by every upsert).
    DeletedAt,
}

/// One column of a [`TableInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Column name (unquoted; every generated statement quotes it).
    pub name: &'static str,
    /// The entity property stored in this column (its JSON name); `None` for system columns,
    /// except the `division` column of an entity that has a `Division` property of its own.
    pub wire_name: Option<&'static str>,
    pub kind: ColumnKind,
    pub nullable: bool,
    /// The cast written after this column's bind parameter in PostgreSQL (`"::NUMERIC"` for
    /// decimals, which are bound as exact text), or `""`.
    pub pg_cast: &'static str,
}

/// A table of generated entity rows and the SQL to fill and read it (generated by odatagen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableInfo {
    /// Table name (unquoted).
    pub name: &'static str,
    /// The selection name (config.json entity name, or the entity set's name).
    pub entity: &'static str,
    /// Wire name of the entity set.
    pub entity_set: &'static str,
    /// Qualified entity type name.
    pub entity_type: &'static str,
    /// Whether rows carry a `division` column (first in the primary key).
    pub division: bool,
    /// Every column, in table order (`division` first when present; `synced_at`, `deleted_at`
    /// last).
    pub columns: &'static [ColumnInfo],
    /// Primary key column names (empty for keyless entities: then upserts are plain inserts).
    pub primary_key: &'static [&'static str],
    /// One-row upsert for SQLite (`?` parameters, one per column in [`TableInfo::insert_columns`]
    /// order): what [`upsert_sqlite`] prepares once per batch and steps per row.
    pub upsert_sqlite: &'static str,
    /// One-row upsert for PostgreSQL (`$1…$n`, with casts).
    pub upsert_postgres: &'static str,
    /// `INSERT INTO "table" ("a", "b", …) VALUES ` — the head of a batch. Every column except
    /// `deleted_at` (which a write resets to NULL) is inserted.
    pub insert_head: &'static str,
    /// One row's parameter group for SQLite: `(?, ?, …)` (the middle of
    /// [`TableInfo::upsert_sqlite`]).
    pub values_sqlite: &'static str,
    /// The tail of a batch on both backends: ` ON CONFLICT ("pk", …) DO UPDATE SET "c" =
    /// excluded."c", …, "deleted_at" = NULL` (every non-key column), or `""` for keyless tables.
    pub upsert_tail: &'static str,
    /// `SELECT "a", "b", … FROM "table"` (every column, in order).
    pub select_sqlite: &'static str,
    /// The same for PostgreSQL; decimals are read as text (`"c"::text AS "c"`) so every digit
    /// and the scale survive.
    pub select_postgres: &'static str,
}

impl TableInfo {
    /// The columns an upsert binds, in parameter order (all but `deleted_at`).
    pub fn insert_columns(&self) -> impl Iterator<Item = &'static ColumnInfo> + '_ {
        self.columns
            .iter()
            .filter(|c| c.kind != ColumnKind::DeletedAt)
    }

    /// Number of bind parameters per row.
    pub fn params_per_row(&self) -> usize {
        self.insert_columns().count()
    }

    /// How many rows fit in one statement under a bind-parameter cap (at least 1).
    pub fn rows_per_statement(&self, bind_limit: usize) -> usize {
        (bind_limit / self.params_per_row().max(1)).max(1)
    }

    /// The column by name.
    pub fn column(&self, name: &str) -> Option<&'static ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Implemented by every generated entity type that has a table: the table of its first entity
/// set (types with several entity sets have a table per set; see the service's `TABLES`).
pub trait Table: Entity {
    const TABLE: &'static TableInfo;
}

/// Called by the generated `visit_tables` once per table, with the table's entity type
/// (generated entity types derive `PartialEq`).
pub trait TableVisitor {
    fn visit<E: Entity + PartialEq>(&mut self, table: &'static TableInfo);
}

/// `name` as a quoted SQL identifier (`"` doubled inside), valid in SQLite and PostgreSQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

//! Rows serialised straight into a backend's column slots, without building a JSON object.
//!
//! A generated row serialises (serde) as a struct of `(wire name, value)` fields. [`Plan`] maps
//! each field to the insert columns that read it (by wire name once, then by position: a type
//! serialises its fields in the same order every time) and hands each value to a [`Sink`] as a
//! [`Cell`]: strings borrowed from the row, numbers as numbers, dates, times and UUIDs parsed.
//! Anything unusual (a complex value, a number in a text column, a value that does not parse)
//! takes the general conversion of [`super::db::convert_value`], so every backend stores the
//! same thing and reports the same errors whichever way a value came.
//!
//! Sinks: the SQLite statement ([`super::sqlite_write`]) and PostgreSQL's `COPY` text
//! ([`super::pg_copy`]).

use super::db::{convert_value, value_error, Bound, SqlError};
use super::{ColumnInfo, ColumnKind, TableInfo};
use crate::wire::datetime::{
    parse_edm_date, parse_edm_datetime, parse_edm_datetime_offset, parse_edm_time,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::ser::{self, Impossible, Serialize};
use serde_json::Value;

/// One column's value, as a backend stores it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cell<'a> {
    Null,
    Text(&'a str),
    Bool(bool),
    Int(i64),
    Float(f64),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
    Instant(DateTime<Utc>),
    Time(NaiveTime),
    Uuid(uuid::Uuid),
    Bytes(&'a [u8]),
    Json(&'a Value),
}

impl Bound {
    pub(super) fn cell(&self) -> Cell<'_> {
        match self {
            Bound::Null => Cell::Null,
            Bound::Text(s) => Cell::Text(s),
            Bound::Bool(v) => Cell::Bool(*v),
            Bound::Int(v) => Cell::Int(*v),
            Bound::Float(v) => Cell::Float(*v),
            Bound::Date(d) => Cell::Date(*d),
            Bound::DateTime(d) => Cell::DateTime(*d),
            Bound::Instant(t) => Cell::Instant(*t),
            Bound::Time(t) => Cell::Time(*t),
            Bound::Uuid(u) => Cell::Uuid(*u),
            Bound::Bytes(v) => Cell::Bytes(v),
            Bound::Json(v) => Cell::Json(v),
        }
    }
}

/// An insert column of the batch: its position among [`TableInfo::insert_columns`] (0-based).
#[derive(Debug, Clone, Copy)]
pub(super) struct Param {
    pub(super) slot: usize,
    pub(super) col: &'static ColumnInfo,
}

/// Where a row's values go.
pub(super) trait Sink {
    fn put(&mut self, p: Param, v: Cell<'_>) -> Result<(), SqlError>;
}

/// Where each serialised field of a row goes.
pub(super) struct Plan {
    /// Columns that take a serialised field, by wire name.
    by_wire: Vec<(&'static str, Vec<Param>)>,
    /// The i-th serialised field's entry in `by_wire`, learnt from earlier rows.
    by_position: Vec<Option<(&'static str, usize)>>,
    /// The row each `by_wire` entry was last set for (the others are set NULL).
    set_in_row: Vec<u64>,
    row: u64,
    division: Option<i32>,
    /// Skip the direct conversions (tests compare both paths).
    pub(super) general_only: bool,
}

impl Plan {
    /// `division`: the batch's division (fills a `division` column; `None` reads each row's
    /// own `Division`).
    pub(super) fn new(table: &TableInfo, division: Option<i32>) -> Plan {
        let mut by_wire: Vec<(&'static str, Vec<Param>)> = Vec::new();
        for (slot, col) in table.insert_columns().enumerate() {
            let from_row = match col.kind {
                ColumnKind::SyncedAt | ColumnKind::DeletedAt => false,
                ColumnKind::Division => division.is_none(),
                _ => true,
            };
            let Some(w) = col.wire_name.filter(|_| from_row) else {
                continue;
            };
            let p = Param { slot, col };
            match by_wire.iter_mut().find(|(n, _)| *n == w) {
                Some((_, ps)) => ps.push(p),
                None => by_wire.push((w, vec![p])),
            }
        }
        let n = by_wire.len();
        Plan {
            by_wire,
            by_position: Vec::new(),
            set_in_row: vec![0; n],
            row: 0,
            division,
            general_only: false,
        }
    }

    /// Sets the columns that are the same for every row of the batch (`synced_at`, a given
    /// `division`, columns no row property fills). A sink that forgets values between rows
    /// calls this per row.
    pub(super) fn constants(
        &self,
        sink: &mut impl Sink,
        table: &TableInfo,
        synced_at: DateTime<Utc>,
    ) -> Result<(), SqlError> {
        for (slot, col) in table.insert_columns().enumerate() {
            let p = Param { slot, col };
            match col.kind {
                ColumnKind::SyncedAt => sink.put(p, Cell::Instant(synced_at))?,
                ColumnKind::Division => match self.division {
                    Some(d) => sink.put(p, Cell::Int(d.into()))?,
                    None if col.wire_name.is_none() => {
                        return Err(value_error(
                            table,
                            col,
                            "no division given and the row has no Division value",
                        ))
                    }
                    None => {}
                },
                _ if col.wire_name.is_none() => sink.put(p, Cell::Null)?,
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

    /// Puts every column of `row` that comes from its properties into `sink`.
    pub(super) fn write_row<T: Serialize + ?Sized>(
        &mut self,
        sink: &mut impl Sink,
        table: &TableInfo,
        row: &T,
    ) -> Result<(), SqlError> {
        self.row += 1;
        match row.serialize(RowSer {
            plan: self,
            sink,
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
            // Not a plain struct (an open type's dynamic properties make it a map): the
            // general path, field by field.
            Err(RowError::NotAStruct | RowError::Fallback) => {
                self.write_object(sink, table, row)?
            }
        }
        // Fields the row did not serialise (e.g. skipped when absent) are NULL.
        for e in 0..self.by_wire.len() {
            if self.set_in_row[e] != self.row {
                for &p in &self.by_wire[e].1 {
                    let b = convert_value(table, p.col, None)?;
                    sink.put(p, b.cell())?;
                }
            }
        }
        Ok(())
    }
}

impl Plan {
    /// [`Plan::write_row`] for a row that does not serialise as a struct: through its JSON
    /// object.
    fn write_object<T: Serialize + ?Sized>(
        &mut self,
        sink: &mut impl Sink,
        table: &TableInfo,
        row: &T,
    ) -> Result<(), SqlError> {
        let json = |source| SqlError::Json {
            table: table.name.to_string(),
            source,
        };
        let Value::Object(fields) = serde_json::to_value(row).map_err(json)? else {
            return Err(SqlError::Other(format!(
                "{}: a row does not serialise to a JSON object",
                table.name
            )));
        };
        for (e, (wire, params)) in self.by_wire.iter().enumerate() {
            let Some(v) = fields.get(*wire) else {
                continue;
            };
            self.set_in_row[e] = self.row;
            for &p in params {
                let b = convert_value(table, p.col, Some(v.clone()))?;
                sink.put(p, b.cell())?;
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

/// Serialises one row (a struct) into a sink.
struct RowSer<'a, S> {
    plan: &'a mut Plan,
    sink: &'a mut S,
    table: &'a TableInfo,
}

struct RowFields<'a, S> {
    inner: RowSer<'a, S>,
    pos: usize,
}

impl<S: Sink> ser::SerializeStruct for RowFields<'_, S> {
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
        plan.set_in_row[e] = plan.row;
        let table = self.inner.table;
        for &p in &plan.by_wire[e].1 {
            let direct = if plan.general_only {
                Err(RowError::Fallback)
            } else {
                value.serialize(FieldSer {
                    sink: &mut *self.inner.sink,
                    param: p,
                })
            };
            match direct {
                Err(RowError::Fallback) => {
                    let v = serde_json::to_value(value).map_err(|source| SqlError::Json {
                        table: table.name.to_string(),
                        source,
                    })?;
                    let b = convert_value(table, p.col, Some(v))?;
                    self.inner.sink.put(p, b.cell())?;
                }
                other => other?,
            }
        }
        Ok(())
    }

    fn end(self) -> Result<(), RowError> {
        Ok(())
    }
}

/// Serializer methods that refuse: `$err` for each.
macro_rules! refuse {
    ($err:expr; $($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<(), RowError> {
            Err($err)
        })*
    };
}

/// Serializer methods for compound values that refuse with `$err`.
macro_rules! refuse_compound {
    ($err:expr) => {
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _value: &T,
        ) -> Result<(), RowError> {
            Err($err)
        }

        fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, RowError> {
            Err($err)
        }

        fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, RowError> {
            Err($err)
        }

        fn serialize_tuple_struct(
            self,
            _name: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleStruct, RowError> {
            Err($err)
        }

        fn serialize_tuple_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleVariant, RowError> {
            Err($err)
        }

        fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, RowError> {
            Err($err)
        }

        fn serialize_struct_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeStructVariant, RowError> {
            Err($err)
        }
    };
}

impl<'a, S: Sink> ser::Serializer for RowSer<'a, S> {
    type Ok = ();
    type Error = RowError;
    type SerializeSeq = Impossible<(), RowError>;
    type SerializeTuple = Impossible<(), RowError>;
    type SerializeTupleStruct = Impossible<(), RowError>;
    type SerializeTupleVariant = Impossible<(), RowError>;
    type SerializeMap = Impossible<(), RowError>;
    type SerializeStruct = RowFields<'a, S>;
    type SerializeStructVariant = Impossible<(), RowError>;

    refuse!(RowError::NotAStruct;
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
    refuse_compound!(RowError::NotAStruct);

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), RowError> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), RowError> {
        value.serialize(self)
    }

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

/// Serialises one field's value into one column, for the common cases; everything else is
/// [`RowError::Fallback`] (the general conversion, which also words the errors).
struct FieldSer<'a, S> {
    sink: &'a mut S,
    param: Param,
}

impl<S: Sink> FieldSer<'_, S> {
    fn put(self, v: Cell<'_>) -> Result<(), RowError> {
        Ok(self.sink.put(self.param, v)?)
    }

    fn int(self, v: i64) -> Result<(), RowError> {
        use ColumnKind as K;
        match self.param.col.kind {
            K::Int16 | K::Int32 | K::Int64 | K::Division => self.put(Cell::Int(v)),
            K::Float32 | K::Float64 => self.put(Cell::Float(v as f64)),
            _ => Err(RowError::Fallback),
        }
    }

    fn null(self) -> Result<(), RowError> {
        if self.param.col.kind == ColumnKind::Division {
            return Err(RowError::Fallback); // the general path words the error
        }
        self.put(Cell::Null)
    }

    /// `parse`d, or the general path (which words the error).
    fn parsed<T, E>(
        self,
        r: Result<T, E>,
        cell: impl Fn(T) -> Cell<'static>,
    ) -> Result<(), RowError> {
        match r {
            Ok(v) => self.put(cell(v)),
            Err(_) => Err(RowError::Fallback),
        }
    }
}

impl<S: Sink> ser::Serializer for FieldSer<'_, S> {
    type Ok = ();
    type Error = RowError;
    type SerializeSeq = Impossible<(), RowError>;
    type SerializeTuple = Impossible<(), RowError>;
    type SerializeTupleStruct = Impossible<(), RowError>;
    type SerializeTupleVariant = Impossible<(), RowError>;
    type SerializeMap = Impossible<(), RowError>;
    type SerializeStruct = Impossible<(), RowError>;
    type SerializeStructVariant = Impossible<(), RowError>;

    refuse!(RowError::Fallback;
        serialize_char(char),
        serialize_bytes(&[u8]),
    );
    refuse_compound!(RowError::Fallback);

    fn serialize_bool(self, v: bool) -> Result<(), RowError> {
        match self.param.col.kind {
            ColumnKind::Bool => self.put(Cell::Bool(v)),
            _ => Err(RowError::Fallback),
        }
    }

    fn serialize_i8(self, v: i8) -> Result<(), RowError> {
        self.int(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<(), RowError> {
        self.int(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<(), RowError> {
        self.int(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result<(), RowError> {
        self.int(v)
    }

    fn serialize_u8(self, v: u8) -> Result<(), RowError> {
        self.int(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), RowError> {
        self.int(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), RowError> {
        self.int(v.into())
    }

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
            ColumnKind::Float32 | ColumnKind::Float64 if v.is_finite() => self.put(Cell::Float(v)),
            _ => Err(RowError::Fallback),
        }
    }

    fn serialize_str(self, s: &str) -> Result<(), RowError> {
        use ColumnKind as K;
        match self.param.col.kind {
            K::Text | K::Enum | K::Duration => self.put(Cell::Text(s)),
            K::Decimal => self.put(Cell::Text(s.trim())),
            K::Int16 | K::Int32 | K::Int64 | K::Division => {
                self.parsed(s.trim().parse::<i64>(), Cell::Int)
            }
            K::DateTime => self.parsed(parse_edm_datetime(s), Cell::DateTime),
            K::DateTimeOffset => self.parsed(parse_edm_datetime_offset(s), |t| {
                Cell::Instant(t.with_timezone(&Utc))
            }),
            K::Date => self.parsed(parse_edm_date(s), Cell::Date),
            K::Time => self.parsed(parse_edm_time(s), Cell::Time),
            K::Uuid => self.parsed(uuid::Uuid::parse_str(s.trim()), Cell::Uuid),
            _ => Err(RowError::Fallback),
        }
    }

    fn serialize_none(self) -> Result<(), RowError> {
        self.null()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), RowError> {
        value.serialize(self)
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
            ColumnKind::Text | ColumnKind::Enum => self.put(Cell::Text(variant)),
            _ => Err(RowError::Fallback),
        }
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), RowError> {
        value.serialize(self)
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, RowError> {
        Err(RowError::Fallback)
    }
}

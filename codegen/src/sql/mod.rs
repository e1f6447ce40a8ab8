//! The SQL side: tables derived from the model ([`schema`]), and the emitters over them.

pub mod schema;

pub use schema::{
    runtime_tables, tables, Backend, ColumnDef, ColumnKind, IndexDef, SqlTypes, TableDef,
    TableOptions,
};

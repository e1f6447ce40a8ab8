//! The SQL side: tables derived from the model ([`schema`]), and the emitters over them.

pub mod ddl;
pub mod diff;
pub mod migrations;
pub mod schema;

pub use schema::{
    runtime_tables, tables, Backend, ColumnDef, ColumnKind, IndexDef, SqlTypes, TableDef,
    TableOptions,
};

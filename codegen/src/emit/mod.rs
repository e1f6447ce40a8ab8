//! Emitters: pure functions of the [`Model`](crate::model::Model).

pub mod diesel;
pub mod rust;
pub mod sql_tables;

//! Emitters: pure functions of the [`Model`](crate::model::Model).

pub mod rust;
pub mod sql_tables;

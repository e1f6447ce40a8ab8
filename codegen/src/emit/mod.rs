//! Emitters: pure functions of the [`Model`](crate::model::Model).

pub mod rust;

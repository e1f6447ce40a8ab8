//! Runtime support for Rust code generated from OData `$metadata`.
//!
//! The code generator emits plain structs with `#[derive(Serialize, Deserialize)]`; everything that
//! the OData wire formats need beyond what serde does out of the box lives here so the generated
//! code stays small:
//!
//! * [`wire`]: `serde_with` adapters for the OData JSON forms of primitive types (Int64 and
//!   Decimal as strings, `/Date(ms)/`, `PT13H20M00S`, base64, ...). Generated fields use them as
//!   `#[serde(with = "::odata_runtime::serde_with::As::<::odata_runtime::wire::Lenient>")]`.
//! * [`types`]: value types for Edm types that have no good counterpart in the ecosystem
//!   ([`types::IsoDuration`], [`types::Flags`]).
//! * [`ODataEnum`], [`serialize_enum`], [`deserialize_enum`]: what generated enum types implement
//!   and call.
//! * [`Entity`], [`PropertyInfo`], [`Dialect`], [`select_clause`]: the description of a generated
//!   entity type that the (feature-gated) sync runtime works from.
//!
//! * [`TableInfo`], [`Table`], [`TableVisitor`]: the generated tables of entity types; with the
//!   cargo feature `sql`, [`sql`] writes and reads them in SQLite and PostgreSQL (sqlx).
//!
//! * `client` (cargo feature `client`): the HTTP client — typed, lazily paged reads of OData
//!   V2/V3/V4 services with Exact Online's rate limits, error budget and OAuth2 built in.
//!
//! Everything here except the sqlx-based part of [`sql`] (cargo feature `sql`) is outside any
//! cargo feature: generated crates depend on this crate with `default-features = false`.

/// Re-exported so generated code can name `::odata_runtime::serde_with::As` without depending on
/// `serde_with` itself (and without version skew between the two).
pub use serde_with;

#[cfg(feature = "client")]
pub mod client;
mod edm_enum;
mod entity;
pub mod sql;
#[cfg(feature = "sync")]
pub mod sync;
pub mod types;
pub mod wire;

pub use edm_enum::{deserialize_enum, serialize_enum, ODataEnum};
pub use entity::{select_clause, Dialect, Entity, PropertyInfo};
pub use sql::{ColumnInfo, ColumnKind, Table, TableInfo, TableVisitor};

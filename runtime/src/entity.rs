//! The description of a generated entity type that the runtime works from.
//!
//! The generator resolves names, keys and the property selection once and writes them as
//! constants, so the runtime never needs `$metadata` at run time.

/// OData protocol version of a service. It decides the JSON envelope (`{"d": {"results": ...}}`
/// in V2, `{"value": ...}` in V4), paging links and literal forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OData V2 (`DataServiceVersion: 2.0`), verbose JSON.
    V2,
    /// OData V3 (`DataServiceVersion: 3.0`).
    V3,
    /// OData V4 / V4.01.
    V4,
}

/// What the runtime needs to know about one property of an entity (generated as a const table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertyInfo {
    /// Name in JSON and in `$select`.
    pub wire_name: &'static str,
    /// Field name in the generated struct.
    pub rust_name: &'static str,
    /// Column name in the database.
    pub sql_name: &'static str,
    /// The Edm type as written in `$metadata`, e.g. `"Edm.Int64"`, `"Collection(Edm.String)"`,
    /// `"NS.Address"`.
    pub edm_type: &'static str,
    /// `Nullable` facet (for key properties always `false`).
    pub nullable: bool,
    /// Part of the entity key.
    pub is_key: bool,
}

/// Implemented by every generated entity struct.
pub trait Entity:
    serde::de::DeserializeOwned + serde::Serialize + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// Qualified type name, e.g. `"NorthwindModel.Order"`.
    const TYPE_NAME: &'static str;
    /// Wire name of the entity set (or singleton) that holds this type (`"Orders"`).
    const ENTITY_SET: &'static str;
    /// OData protocol version of the service.
    const DIALECT: Dialect;
    /// Every structural property, key properties first, in a stable order.
    const PROPERTIES: &'static [PropertyInfo];
    /// Wire names of the key properties (empty for keyless types).
    const KEY: &'static [&'static str];
    /// Wire names to send in `$select`.
    const SELECT: &'static [&'static str];
    /// The key of one row.
    type Key: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static;
    /// The key of this row.
    fn key(&self) -> Self::Key;
}

/// The value of the `$select` query option for `E`: its [`Entity::SELECT`] names joined with `,`
/// (OData URL Conventions §5.1.3). Empty when `SELECT` is empty.
pub fn select_clause<E: Entity>() -> String {
    E::SELECT.join(",")
}

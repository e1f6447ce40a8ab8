//! Edm primitive types and the table that maps them to Rust types.
//!
//! The mapping is data, not a `match` in an emitter: [`TypeMap::default`] holds the defaults and a
//! service's `service.toml` can override an Edm type (`[types]`) or one property (`[properties]`).
//! Every Rust type is written as an absolute path so that services with types named `Option`,
//! `String` or `Result` cannot shadow it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The Edm primitive types of OData V2, V3 and V4 (CSDL 4.01 §4.4, CSDL 2.0 §6.2 for V2's `Time`
/// and `DateTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Prim {
    Binary,
    Boolean,
    Byte,
    Date,
    DateTime,
    DateTimeOffset,
    Decimal,
    Double,
    Duration,
    Guid,
    Int16,
    Int32,
    Int64,
    SByte,
    Single,
    Stream,
    String,
    Time,
    TimeOfDay,
    Geography,
    Geometry,
    Untyped,
    PrimitiveType,
}

impl Prim {
    /// Parses `Edm.X` (the `Edm.` prefix is required). Every `Edm.Geography*`/`Edm.Geometry*`
    /// subtype maps to [`Prim::Geography`]/[`Prim::Geometry`].
    pub fn from_edm(name: &str) -> Option<Prim> {
        let n = name.strip_prefix("Edm.")?;
        Some(match n {
            "Binary" => Prim::Binary,
            "Boolean" => Prim::Boolean,
            "Byte" => Prim::Byte,
            "Date" => Prim::Date,
            "DateTime" => Prim::DateTime,
            "DateTimeOffset" => Prim::DateTimeOffset,
            "Decimal" => Prim::Decimal,
            "Double" => Prim::Double,
            "Duration" => Prim::Duration,
            "Guid" => Prim::Guid,
            "Int16" => Prim::Int16,
            "Int32" => Prim::Int32,
            "Int64" => Prim::Int64,
            "SByte" => Prim::SByte,
            "Single" => Prim::Single,
            "Stream" => Prim::Stream,
            "String" => Prim::String,
            "Time" => Prim::Time,
            "TimeOfDay" => Prim::TimeOfDay,
            "Untyped" => Prim::Untyped,
            "PrimitiveType" => Prim::PrimitiveType,
            n if n.starts_with("Geography") => Prim::Geography,
            n if n.starts_with("Geometry") => Prim::Geometry,
            _ => return None,
        })
    }

    pub fn edm_name(self) -> &'static str {
        match self {
            Prim::Binary => "Edm.Binary",
            Prim::Boolean => "Edm.Boolean",
            Prim::Byte => "Edm.Byte",
            Prim::Date => "Edm.Date",
            Prim::DateTime => "Edm.DateTime",
            Prim::DateTimeOffset => "Edm.DateTimeOffset",
            Prim::Decimal => "Edm.Decimal",
            Prim::Double => "Edm.Double",
            Prim::Duration => "Edm.Duration",
            Prim::Guid => "Edm.Guid",
            Prim::Int16 => "Edm.Int16",
            Prim::Int32 => "Edm.Int32",
            Prim::Int64 => "Edm.Int64",
            Prim::SByte => "Edm.SByte",
            Prim::Single => "Edm.Single",
            Prim::Stream => "Edm.Stream",
            Prim::String => "Edm.String",
            Prim::Time => "Edm.Time",
            Prim::TimeOfDay => "Edm.TimeOfDay",
            Prim::Geography => "Edm.Geography",
            Prim::Geometry => "Edm.Geometry",
            Prim::Untyped => "Edm.Untyped",
            Prim::PrimitiveType => "Edm.PrimitiveType",
        }
    }

    /// Stream properties are not part of an entity's JSON body (they are media resources), so they
    /// are left out of `$select` and of the stored row.
    pub fn is_stream(self) -> bool {
        self == Prim::Stream
    }
}

/// The Rust side of one mapping: the type, the serde adapter that reads its wire forms, and the
/// crate the type comes from (so the generated Cargo.toml lists exactly what the code uses).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RustType {
    /// Absolute path, e.g. `::chrono::NaiveDateTime` or `i64`.
    pub rust: String,
    /// A `serde_with::SerializeAs`/`DeserializeAs` adapter path, e.g. `::odata_runtime::wire::Lenient`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Extra crates the type needs (`chrono`, `uuid`, `rust_decimal`, `bigdecimal`, `serde_json`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crates: Vec<String>,
}

impl RustType {
    fn new(rust: &str, adapter: Option<&str>, crates: &[&str]) -> Self {
        RustType {
            rust: rust.to_string(),
            adapter: adapter.map(str::to_string),
            crates: crates.iter().map(|c| c.to_string()).collect(),
        }
    }
}

/// Which Rust type a property gets: defaults per Edm type, and user overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeMap {
    /// Keyed by Edm type name (`Edm.Int64`); also the special key `Edm.Decimal(big)` for decimals
    /// that [`rust_decimal`](https://docs.rs/rust_decimal) cannot hold (see [`TypeMap::for_decimal`]).
    pub types: BTreeMap<String, RustType>,
    /// Per property, keyed by `Namespace.Type/Property` (wire names). Wins over `types`.
    pub properties: BTreeMap<String, RustType>,
}

/// The key under which [`TypeMap`] stores the mapping of decimals that need more than 28 digits
/// or have no fixed scale.
pub const BIG_DECIMAL_KEY: &str = "Edm.Decimal(big)";

const LENIENT: &str = "::odata_runtime::wire::Lenient";

impl Default for TypeMap {
    fn default() -> Self {
        let mut t = BTreeMap::new();
        let mut put = |edm: &str, rt: RustType| {
            t.insert(edm.to_string(), rt);
        };
        put(
            "Edm.String",
            RustType::new("::std::string::String", None, &[]),
        );
        put("Edm.Boolean", RustType::new("bool", Some(LENIENT), &[]));
        put("Edm.Byte", RustType::new("u8", Some(LENIENT), &[]));
        put("Edm.SByte", RustType::new("i8", Some(LENIENT), &[]));
        put("Edm.Int16", RustType::new("i16", Some(LENIENT), &[]));
        put("Edm.Int32", RustType::new("i32", Some(LENIENT), &[]));
        // V2 JSON sends Int64 as a string, V4 as a number: Lenient takes both.
        put("Edm.Int64", RustType::new("i64", Some(LENIENT), &[]));
        put("Edm.Single", RustType::new("f32", Some(LENIENT), &[]));
        put("Edm.Double", RustType::new("f64", Some(LENIENT), &[]));
        put(
            "Edm.Decimal",
            RustType::new("::rust_decimal::Decimal", Some(LENIENT), &["rust_decimal"]),
        );
        put(
            BIG_DECIMAL_KEY,
            RustType::new("::bigdecimal::BigDecimal", Some(LENIENT), &["bigdecimal"]),
        );
        put(
            "Edm.DateTime",
            RustType::new(
                "::chrono::NaiveDateTime",
                Some("::odata_runtime::wire::EdmDateTime"),
                &["chrono"],
            ),
        );
        put(
            "Edm.DateTimeOffset",
            RustType::new(
                "::chrono::DateTime<::chrono::FixedOffset>",
                Some("::odata_runtime::wire::EdmDateTimeOffset"),
                &["chrono"],
            ),
        );
        put(
            "Edm.Date",
            RustType::new(
                "::chrono::NaiveDate",
                Some("::odata_runtime::wire::EdmDate"),
                &["chrono"],
            ),
        );
        put(
            "Edm.TimeOfDay",
            RustType::new(
                "::chrono::NaiveTime",
                Some("::odata_runtime::wire::EdmTimeOfDay"),
                &["chrono"],
            ),
        );
        put(
            "Edm.Time",
            RustType::new(
                "::chrono::NaiveTime",
                Some("::odata_runtime::wire::EdmTime"),
                &["chrono"],
            ),
        );
        put(
            "Edm.Duration",
            RustType::new("::odata_runtime::types::IsoDuration", None, &[]),
        );
        put("Edm.Guid", RustType::new("::uuid::Uuid", None, &["uuid"]));
        put(
            "Edm.Binary",
            RustType::new(
                "::std::vec::Vec<u8>",
                Some("::odata_runtime::wire::Base64"),
                &[],
            ),
        );
        for json in [
            "Edm.Stream",
            "Edm.Geography",
            "Edm.Geometry",
            "Edm.Untyped",
            "Edm.PrimitiveType",
        ] {
            put(
                json,
                RustType::new("::serde_json::Value", None, &["serde_json"]),
            );
        }
        TypeMap {
            types: t,
            properties: BTreeMap::new(),
        }
    }
}

impl TypeMap {
    /// Whether a decimal with these facets fits `rust_decimal` (28 significant digits and a fixed
    /// scale). A decimal with `Precision` > 28, no `Precision`, or a `variable`/absent `Scale` goes
    /// to the big-decimal mapping so that no digit is lost.
    pub fn decimal_is_big(precision: Option<u32>, scale_is_number: bool) -> bool {
        match precision {
            Some(p) => p > 28 || !scale_is_number,
            None => true,
        }
    }

    /// The mapping of a primitive, honouring the decimal rule.
    pub fn for_prim(
        &self,
        prim: Prim,
        precision: Option<u32>,
        scale_is_number: bool,
    ) -> Option<&RustType> {
        if prim == Prim::Decimal && Self::decimal_is_big(precision, scale_is_number) {
            if let Some(rt) = self.types.get(BIG_DECIMAL_KEY) {
                return Some(rt);
            }
        }
        self.types.get(prim.edm_name())
    }

    /// Applies user overrides on top of the defaults.
    pub fn with_overrides(
        mut self,
        types: &BTreeMap<String, RustType>,
        properties: &BTreeMap<String, RustType>,
    ) -> Self {
        for (k, v) in types {
            self.types.insert(k.clone(), v.clone());
        }
        for (k, v) in properties {
            self.properties.insert(k.clone(), v.clone());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prim_has_a_default_mapping() {
        let m = TypeMap::default();
        for p in [
            Prim::Binary,
            Prim::Boolean,
            Prim::Byte,
            Prim::Date,
            Prim::DateTime,
            Prim::DateTimeOffset,
            Prim::Decimal,
            Prim::Double,
            Prim::Duration,
            Prim::Guid,
            Prim::Int16,
            Prim::Int32,
            Prim::Int64,
            Prim::SByte,
            Prim::Single,
            Prim::Stream,
            Prim::String,
            Prim::Time,
            Prim::TimeOfDay,
            Prim::Geography,
            Prim::Geometry,
            Prim::Untyped,
            Prim::PrimitiveType,
        ] {
            assert!(m.for_prim(p, Some(10), true).is_some(), "{p:?}");
            assert_eq!(Prim::from_edm(p.edm_name()), Some(p));
        }
        assert_eq!(Prim::from_edm("Edm.GeographyPoint"), Some(Prim::Geography));
        assert_eq!(Prim::from_edm("Edm.Nope"), None);
        assert_eq!(Prim::from_edm("String"), None);
    }

    #[test]
    fn decimals_beyond_28_digits_or_without_scale_are_big() {
        let m = TypeMap::default();
        assert_eq!(
            m.for_prim(Prim::Decimal, Some(13), true).unwrap().rust,
            "::rust_decimal::Decimal"
        );
        assert_eq!(
            m.for_prim(Prim::Decimal, Some(34), true).unwrap().rust,
            "::bigdecimal::BigDecimal"
        );
        assert_eq!(
            m.for_prim(Prim::Decimal, Some(13), false).unwrap().rust,
            "::bigdecimal::BigDecimal"
        );
        assert_eq!(
            m.for_prim(Prim::Decimal, None, false).unwrap().rust,
            "::bigdecimal::BigDecimal"
        );
    }
}

//! OData enumeration types (`<EnumType>`, OData V4 CSDL §10).
//!
//! A generated enum has one unit variant per member plus one fallback variant that holds a wire
//! value the generator did not know about. Deserialisation never fails on an unknown member: a
//! service that adds a member must not break a running sync, so the value is kept as it came and
//! can be stored and written back unchanged.

use std::fmt;

use serde::de::{self, Visitor};

/// Implemented by generated enum types.
///
/// The generator also emits `Serialize`/`Deserialize` impls that call [`serialize_enum`] and
/// [`deserialize_enum`].
pub trait ODataEnum: Sized {
    /// (wire name, value) of every member, in declaration order.
    const MEMBERS: &'static [(&'static str, i64)];
    /// The member with this wire name, or the fallback variant holding `name`.
    fn from_wire(name: &str) -> Self;
    /// The wire name (for the fallback variant: the value it holds).
    fn wire_name(&self) -> &str;
}

/// The member of `E` with numeric value `value`, or the fallback holding the number as text.
pub(crate) fn from_value<E: ODataEnum>(value: i64) -> E {
    match E::MEMBERS.iter().find(|(_, v)| *v == value) {
        Some((name, _)) => E::from_wire(name),
        None => E::from_wire(&value.to_string()),
    }
}

/// One `singleEnumValue` of the OData ABNF: a member name or the member's integer value
/// (OData JSON Format v4.01 §7.1 allows both inside the JSON string).
pub(crate) fn from_single<E: ODataEnum>(text: &str) -> E {
    if E::MEMBERS.iter().any(|(name, _)| *name == text) {
        return E::from_wire(text);
    }
    match text.parse::<i64>() {
        Ok(value) => from_value(value),
        Err(_) => E::from_wire(text),
    }
}

/// Serialises an enum value as its wire name (a JSON string), the form every OData version uses.
pub fn serialize_enum<E: ODataEnum, S: serde::Serializer>(
    value: &E,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.wire_name())
}

/// Deserialises an enum value from a member name (`"Red"`), a member value inside a string
/// (`"1"`), or a JSON integer (`1`, which some servers send for V2/V3 enum-like properties).
///
/// Unknown names and values go to the fallback variant via [`ODataEnum::from_wire`]; this never
/// fails for a string or an integer.
pub fn deserialize_enum<'de, E: ODataEnum, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<E, D::Error> {
    deserializer.deserialize_any(EnumVisitor(std::marker::PhantomData))
}

struct EnumVisitor<E>(std::marker::PhantomData<E>);

impl<E: ODataEnum> Visitor<'_> for EnumVisitor<E> {
    type Value = E;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an enumeration member name or an integer value")
    }

    fn visit_str<Er: de::Error>(self, v: &str) -> Result<E, Er> {
        Ok(from_single(v.trim()))
    }

    fn visit_i64<Er: de::Error>(self, v: i64) -> Result<E, Er> {
        Ok(from_value(v))
    }

    fn visit_u64<Er: de::Error>(self, v: u64) -> Result<E, Er> {
        match i64::try_from(v) {
            Ok(v) => Ok(from_value(v)),
            Err(_) => Ok(E::from_wire(&v.to_string())),
        }
    }
}

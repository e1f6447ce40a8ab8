//! Numbers and booleans that may arrive as JSON strings.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, IntoDeserializer, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_with::{DeserializeAs, SerializeAs};

/// Accepts a value in its own JSON form *or* as a JSON string parsed with [`FromStr`].
///
/// Why: the JSON forms of numeric Edm types differ between versions and settings.
/// * OData V2 JSON ("verbose" format) writes `Edm.Int64` and `Edm.Decimal` as strings (`"123"`,
///   `"19.99"`), and some V2 servers do so for every numeric type.
/// * OData JSON Format v4.01 §7.1 ("Primitive Value") writes them as numbers, except when the
///   client asks for the `IEEE754Compatible=true` format parameter (§3.2 "Controlling the
///   Representation of Numbers"), in which case Int64 and Decimal are strings (so values beyond
///   2^53 survive JavaScript clients).
/// * §7.1 also writes the non-finite `Edm.Double`/`Edm.Single` values as the strings `"INF"`,
///   `"-INF"` and `"NaN"`.
///
/// Used for `i8 i16 i32 i64 u8 f32 f64 bool rust_decimal::Decimal bigdecimal::BigDecimal` (and
/// works for any `T: Deserialize + FromStr`). A string is parsed with `T::from_str`, so an Int64
/// such as `"9007199254740993"` or a 38-digit decimal keeps every digit. A JSON *number* is read by
/// serde_json as `u64`/`i64`/`f64` first, so a non-integer number with more than ~15 significant
/// digits has already lost precision before `T` sees it; ask V4 services for
/// `IEEE754Compatible=true` to get such values as strings.
///
/// Serialises `T`'s own serde form (numbers as JSON numbers; `rust_decimal::Decimal` and
/// `bigdecimal::BigDecimal` as strings through their serde features), except non-finite `f32`/
/// `f64`, which are written as `"INF"`, `"-INF"` and `"NaN"` per §7.1 (JSON has no number for them).
pub struct Lenient;

impl<'de, T> DeserializeAs<'de, T> for Lenient
where
    T: Deserialize<'de> + FromStr,
    T::Err: fmt::Display,
{
    fn deserialize_as<D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_any(LenientVisitor(PhantomData))
    }
}

impl<T: Serialize + Any> SerializeAs<T> for Lenient {
    fn serialize_as<S: Serializer>(source: &T, serializer: S) -> Result<S::Ok, S::Error> {
        let any: &dyn Any = source;
        if let Some(v) = any.downcast_ref::<f64>() {
            if let Some(text) = non_finite_name(v.is_nan(), v.is_infinite(), *v < 0.0) {
                return serializer.serialize_str(text);
            }
        } else if let Some(v) = any.downcast_ref::<f32>() {
            if let Some(text) = non_finite_name(v.is_nan(), v.is_infinite(), *v < 0.0) {
                return serializer.serialize_str(text);
            }
        }
        source.serialize(serializer)
    }
}

/// The OData JSON spelling of a non-finite floating-point value (OData JSON Format v4.01 §7.1).
fn non_finite_name(is_nan: bool, is_infinite: bool, negative: bool) -> Option<&'static str> {
    match (is_nan, is_infinite, negative) {
        (true, _, _) => Some("NaN"),
        (false, true, false) => Some("INF"),
        (false, true, true) => Some("-INF"),
        (false, false, _) => None,
    }
}

/// The Edm type a Rust type stands for, for error messages (`invalid Edm.Int64 value "abc"`).
fn edm_name<T>() -> &'static str {
    let rust = std::any::type_name::<T>();
    match rust {
        "i8" => "Edm.SByte",
        "u8" => "Edm.Byte",
        "i16" => "Edm.Int16",
        "i32" => "Edm.Int32",
        "i64" => "Edm.Int64",
        "f32" => "Edm.Single",
        "f64" => "Edm.Double",
        "bool" => "Edm.Boolean",
        _ if rust.ends_with("::Decimal") || rust.ends_with("::BigDecimal") => "Edm.Decimal",
        _ => rust,
    }
}

struct LenientVisitor<T>(PhantomData<T>);

impl<'de, T> Visitor<'de> for LenientVisitor<T>
where
    T: Deserialize<'de> + FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a JSON number or boolean, or a string holding one ({})",
            edm_name::<T>()
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse::<T>().map_err(|err| {
            E::custom(format_args!(
                "invalid {} value {v:?}: {err}",
                edm_name::<T>()
            ))
        })
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        T::deserialize(v.into_deserializer())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::deserialize(v.into_deserializer())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::deserialize(v.into_deserializer())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<T, E> {
        T::deserialize(v.into_deserializer())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<T, E> {
        T::deserialize(v.into_deserializer())
    }

    /// A JSON number with a fraction or exponent. Its shortest decimal form (the digits that were
    /// on the wire, up to f64 precision) goes through `FromStr` first, so `19.99` becomes the
    /// decimal `19.99` and not the binary expansion of the nearest double (which is what
    /// `BigDecimal`'s own `visit_f64` would produce); an integral value such as `3.0` is thereby
    /// accepted for integer types too. Otherwise `T`'s own deserializer reports the error.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        if std::any::type_name::<T>() == "f64" {
            // Already the value (the shortest decimal form would parse back to it).
            return T::deserialize(v.into_deserializer());
        }
        if v.is_finite() {
            if let Ok(value) = v.to_string().parse::<T>() {
                return Ok(value);
            }
        }
        T::deserialize(v.into_deserializer())
    }
}

//! Attribute values with a fixed syntax: booleans, type facets (`Nullable`, `MaxLength`,
//! `Precision`, `Scale`, `SRID`, `DefaultValue`, `FixedLength`, `Unicode`) and enum member values.
//! A value that does not parse is a warning and is dropped (the model then applies the CSDL
//! default), except enum member values, whose loss would silently renumber members: an error.
//!
//! CSDL 4.01 §6.2 (facets), CSDL 2.0 (`FixedLength`, `Unicode`), XML Schema `boolean`.

use super::reader::{Attr, PResult, Parser};
use crate::csdl::{Facets, MaxLength, Scale};

/// XML Schema booleans (`true`, `false`, `1`, `0`); `True`/`False` as written by some services
/// (a RESO server writes `OpenType="True"`) are accepted too.
pub(super) fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    if s == "1" || s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s == "0" || s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A number, or `max` in any case (V4 `max`, V2/V3 `Max`).
pub(super) fn parse_max_length(s: &str) -> Option<MaxLength> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("max") {
        Some(MaxLength::Max)
    } else {
        s.parse().ok().map(MaxLength::Length)
    }
}

/// A number, `variable` (V4; also written `Variable`) or `floating` (4.01).
pub(super) fn parse_scale(s: &str) -> Option<Scale> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("variable") {
        Some(Scale::Variable)
    } else if s.eq_ignore_ascii_case("floating") {
        Some(Scale::Floating)
    } else {
        s.parse().ok().map(Scale::Number)
    }
}

/// An enum member value: a (possibly negative) 64-bit integer.
pub(super) fn parse_enum_value(s: &str) -> Option<i64> {
    s.trim().parse().ok()
}

impl<'a> Parser<'a> {
    /// Reads `a` into `facets` if it is a facet attribute; returns whether it was one.
    pub(super) fn facet(&mut self, facets: &mut Facets, a: &Attr<'_>) -> PResult<bool> {
        match a.key {
            "Nullable" => facets.nullable = self.bool_value(a, "'true' or 'false'")?,
            "MaxLength" => {
                let v = self.value(a)?;
                facets.max_length = parse_max_length(&v);
                if facets.max_length.is_none() {
                    self.invalid_value(a, &v, "a number or 'max'");
                }
            }
            "Precision" => {
                let v = self.value(a)?;
                facets.precision = v.trim().parse().ok();
                if facets.precision.is_none() {
                    self.invalid_value(a, &v, "a number");
                }
            }
            "Scale" => {
                let v = self.value(a)?;
                facets.scale = parse_scale(&v);
                if facets.scale.is_none() {
                    self.invalid_value(a, &v, "a number, 'variable' or 'floating'");
                }
            }
            "SRID" => facets.srid = Some(self.value(a)?),
            "DefaultValue" => facets.default_value = Some(self.value(a)?),
            "FixedLength" => facets.fixed_length = self.bool_value(a, "'true' or 'false'")?,
            "Unicode" => facets.unicode = self.bool_value(a, "'true' or 'false'")?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A boolean attribute; an unreadable value is a warning and `None`.
    pub(super) fn bool_value(&mut self, a: &Attr<'_>, expected: &str) -> PResult<Option<bool>> {
        let v = self.value(a)?;
        let b = parse_bool(&v);
        if b.is_none() {
            self.invalid_value(a, &v, expected);
        }
        Ok(b)
    }

    /// A flag such as `Abstract` or `IsFlags`: absent or unreadable means false.
    pub(super) fn flag(&mut self, a: &Attr<'_>) -> PResult<bool> {
        Ok(self.bool_value(a, "'true' or 'false'")?.unwrap_or(false))
    }

    fn invalid_value(&mut self, a: &Attr<'_>, value: &str, expected: &str) {
        let at = self.value_offset(a);
        let key = a.key;
        self.warn(
            at,
            format!(
                "invalid {key} value '{value}' (expected {expected}); the attribute is ignored"
            ),
        );
    }
}

//! `Edm.Duration` (OData V4) and the xsd:duration parser shared with V2's `Edm.Time`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The components of an xsd:duration (`-PnYnMnDTnHnMnS`, XML Schema Part 2 §3.2.6), as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DurationParts {
    pub negative: bool,
    pub years: u64,
    pub months: u64,
    pub days: u64,
    pub hours: u64,
    pub minutes: u64,
    pub seconds: u64,
    /// Fraction of a second, truncated to nanoseconds.
    pub nanos: u32,
}

/// Parses an xsd:duration. Only the seconds may have a fraction; at least one component must be
/// present, and a `T` must be followed by at least one time component. The error is a short
/// reason, without the input.
pub(crate) fn parse_duration(text: &str) -> Result<DurationParts, &'static str> {
    let mut parts = DurationParts::default();
    let mut rest = text;
    if let Some(r) = rest.strip_prefix('-') {
        parts.negative = true;
        rest = r;
    }
    rest = rest.strip_prefix('P').ok_or("a duration starts with 'P'")?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => {
            if time.is_empty() {
                return Err("'T' must be followed by hours, minutes or seconds");
            }
            (date, Some(time))
        }
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return Err("no components after 'P'");
    }

    let mut slots: [(&mut u64, char); 3] = [
        (&mut parts.years, 'Y'),
        (&mut parts.months, 'M'),
        (&mut parts.days, 'D'),
    ];
    parse_components(date, &mut slots, None)?;

    if let Some(time) = time {
        let mut nanos = 0u32;
        let mut slots: [(&mut u64, char); 3] = [
            (&mut parts.hours, 'H'),
            (&mut parts.minutes, 'M'),
            (&mut parts.seconds, 'S'),
        ];
        parse_components(time, &mut slots, Some(&mut nanos))?;
        parts.nanos = nanos;
    }
    Ok(parts)
}

/// Reads `<digits><designator>` pairs in the order given by `slots`. The last slot may carry a
/// fraction when `nanos` is given.
fn parse_components(
    mut text: &str,
    slots: &mut [(&mut u64, char)],
    mut nanos: Option<&mut u32>,
) -> Result<(), &'static str> {
    let mut next_slot = 0;
    while !text.is_empty() {
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or("a number must be followed by a designator (Y, M, D, H, M or S)")?;
        let (number, after) = text.split_at(digits_end);
        let mut designator_chars = after.chars();
        let designator = designator_chars.next().ok_or("missing designator")?;
        text = designator_chars.as_str();

        let offset = slots[next_slot..]
            .iter()
            .position(|(_, d)| *d == designator)
            .ok_or("unknown or out-of-order designator")?;
        let index = next_slot + offset;
        next_slot = index + 1;

        let (whole, fraction) = match number.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (number, None),
        };
        if whole.is_empty() {
            return Err("a component needs digits before its designator");
        }
        *slots[index].0 = whole.parse().map_err(|_| "component value out of range")?;
        if let Some(fraction) = fraction {
            let is_last = index + 1 == slots.len();
            match (&mut nanos, is_last) {
                (Some(nanos), true) => **nanos = fraction_to_nanos(fraction)?,
                _ => return Err("only seconds may have a fraction"),
            }
        }
    }
    Ok(())
}

/// `"1234567"` → 123_456_700 ns; digits beyond nanoseconds are dropped.
pub(crate) fn fraction_to_nanos(fraction: &str) -> Result<u32, &'static str> {
    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a fraction needs digits after '.'");
    }
    let mut nanos = 0u32;
    for (i, b) in fraction.bytes().take(9).enumerate() {
        nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    Ok(nanos)
}

/// An OData V4 `Edm.Duration` (OData CSDL JSON v4.01 §4.4 / OData ABNF `duration`), e.g.
/// `"P1DT2H3M4.5S"`, `"-PT5M"`.
///
/// Stores the text as received after checking it is an xsd:duration, so a value round-trips
/// byte for byte (including fractions finer than nanoseconds and components beyond their usual
/// range such as `PT90M`). Equality and hashing compare that text: `PT60S != PT1M`; compare
/// [`IsoDuration::total_seconds`] for value equality.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IsoDuration(String);

/// Why a string is not a valid [`IsoDuration`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Edm.Duration value {value:?}: {reason} (expected e.g. \"P1DT2H3M4.5S\")")]
pub struct InvalidDuration {
    value: String,
    reason: &'static str,
}

impl IsoDuration {
    /// The duration as received, e.g. `"P1DT2H3M4.5S"`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The signed length in seconds, or `None` when the duration has a non-zero year or month
    /// component (their length depends on the date they are applied to).
    pub fn total_seconds(&self) -> Option<f64> {
        // The text was validated on construction.
        let parts = parse_duration(&self.0).ok()?;
        if parts.years != 0 || parts.months != 0 {
            return None;
        }
        let whole = parts.days as f64 * 86_400.0
            + parts.hours as f64 * 3_600.0
            + parts.minutes as f64 * 60.0
            + parts.seconds as f64;
        let total = whole + f64::from(parts.nanos) / 1e9;
        Some(if parts.negative { -total } else { total })
    }
}

impl FromStr for IsoDuration {
    type Err = InvalidDuration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match parse_duration(s) {
            Ok(_) => Ok(IsoDuration(s.to_owned())),
            Err(reason) => Err(InvalidDuration {
                value: s.to_owned(),
                reason,
            }),
        }
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for IsoDuration {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for IsoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for IsoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = IsoDuration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an ISO 8601 duration string (Edm.Duration)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<IsoDuration, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_components() {
        let p = parse_duration("-P1Y2M3DT4H5M6.25S").expect("valid");
        assert!(p.negative);
        assert_eq!(
            (p.years, p.months, p.days, p.hours, p.minutes, p.seconds),
            (1, 2, 3, 4, 5, 6)
        );
        assert_eq!(p.nanos, 250_000_000);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "P", "PT", "1D", "P1", "PT1D", "P1H", "PT1.5M", "PT5S3M", "P1DT", "PT.5S", "PT1.S",
            "PT1M1M", "PTS",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}

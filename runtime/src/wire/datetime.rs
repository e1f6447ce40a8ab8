//! Date and time types: `Edm.DateTime` (V2/V3), `Edm.DateTimeOffset`, `Edm.Date`,
//! `Edm.TimeOfDay` (V4) and `Edm.Time` (V2/V3).
//!
//! Two textual families reach us:
//! * the OData V2 JSON form `"/Date(<ms>[(+|-)<minutes>])/"` ("Representing Primitive Types in JSON"
//!   in the OData V2 JSON Format spec: `<ms>` is milliseconds since 1970-01-01T00:00:00 UTC and the
//!   optional suffix an offset in *minutes*, so `+0060` is one hour), sent by V2 and V3 verbose JSON
//!   services (SAP Gateway, SharePoint, Exact Online, ...);
//! * ISO 8601 / RFC 3339 text, used by V3 "light" JSON and V4 (OData JSON Format v4.01 §7.1).
//!
//! Every adapter below accepts both families, because services mix them (anchors: V4 servers that
//! send `DateTimeOffset` without an offset, V2 servers that send ISO strings).

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};
use serde_with::{DeserializeAs, SerializeAs};

use super::invalid_value;
use crate::types::{fraction_to_nanos, parse_duration};

const UTC: FixedOffset = match FixedOffset::east_opt(0) {
    Some(utc) => utc,
    None => unreachable!(),
};

// ---------------------------------------------------------------------------------------------
// Text forms written without parsing a chrono format string per value (the upsert path formats
// every date-time column of every row).

fn push_digits(out: &mut String, v: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut v = v;
    let mut i = buf.len();
    while v > 0 && i > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = (buf.len() - width).min(i);
    out.extend(buf[start..].iter().map(|&b| b as char));
}

/// `%Y-%m-%d` (years outside 0..=9999 as chrono prints them).
pub(crate) fn date_text(d: NaiveDate) -> String {
    let mut out = String::with_capacity(10);
    push_date(&mut out, d);
    out
}

fn push_date(out: &mut String, d: NaiveDate) {
    use chrono::Datelike;
    match u32::try_from(d.year()) {
        Ok(y) if y <= 9999 => {
            push_digits(out, y, 4);
            out.push('-');
            push_digits(out, d.month(), 2);
            out.push('-');
            push_digits(out, d.day(), 2);
        }
        _ => out.push_str(&d.format("%Y-%m-%d").to_string()),
    }
}

/// `%H:%M:%S%.f`: a fraction of 0, 3, 6 or 9 digits, as chrono prints it.
pub(crate) fn time_text(t: NaiveTime) -> String {
    let mut out = String::with_capacity(18);
    push_time(&mut out, t);
    out
}

fn push_time(out: &mut String, t: NaiveTime) {
    use chrono::Timelike;
    let ns = t.nanosecond();
    if ns >= 1_000_000_000 {
        // A leap second: chrono prints `:60`.
        out.push_str(&t.format("%H:%M:%S%.f").to_string());
        return;
    }
    push_digits(out, t.hour(), 2);
    out.push(':');
    push_digits(out, t.minute(), 2);
    out.push(':');
    push_digits(out, t.second(), 2);
    if ns == 0 {
    } else if ns.is_multiple_of(1_000_000) {
        out.push('.');
        push_digits(out, ns / 1_000_000, 3);
    } else if ns.is_multiple_of(1_000) {
        out.push('.');
        push_digits(out, ns / 1_000, 6);
    } else {
        out.push('.');
        push_digits(out, ns, 9);
    }
}

/// `%Y-%m-%dT%H:%M:%S%.f`.
pub(crate) fn datetime_text(dt: &NaiveDateTime) -> String {
    let mut out = String::with_capacity(29);
    push_date(&mut out, dt.date());
    out.push('T');
    push_time(&mut out, dt.time());
    out
}

// ---------------------------------------------------------------------------------------------
// Parsers shared by the adapters.

/// The inside of `"/Date(...)/"`, or `None` when `text` is not in that form. serde_json has
/// already turned the JSON escape `\/` into `/`.
fn ms_date_body(text: &str) -> Option<&str> {
    text.strip_prefix("/Date(")?.strip_suffix(")/")
}

/// Parses the body of `/Date(<ms>[(+|-)<minutes>])/` into the instant and the optional offset.
fn parse_ms_date(body: &str) -> Option<(DateTime<chrono::Utc>, Option<FixedOffset>)> {
    // The first character may be the sign of `<ms>`; a later sign starts the offset.
    let split = body
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map(|(i, _)| i);
    let (millis, offset) = match split {
        Some(i) => (&body[..i], Some(&body[i..])),
        None => (body, None),
    };
    let digits = millis.strip_prefix('-').unwrap_or(millis);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let instant = DateTime::from_timestamp_millis(millis.parse().ok()?)?;
    let offset = match offset {
        None => None,
        Some(offset) => {
            let (sign, minutes) = offset.split_at(1);
            if minutes.is_empty() || !minutes.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let seconds = minutes.parse::<i32>().ok()?.checked_mul(60)?;
            let seconds = if sign == "-" { -seconds } else { seconds };
            Some(FixedOffset::east_opt(seconds)?)
        }
    };
    Some((instant, offset))
}

/// Parses `HH:MM`, `HH:MM:SS` or `HH:MM:SS.f+` (any number of fraction digits; beyond
/// nanoseconds they are dropped).
fn parse_time_of_day(text: &str) -> Option<NaiveTime> {
    fn two_digits(s: &str) -> Option<u32> {
        if s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    }
    let mut fields = text.splitn(3, ':');
    let hour = two_digits(fields.next()?)?;
    let minute = two_digits(fields.next()?)?;
    let (second, nanos) = match fields.next() {
        None => (0, 0),
        Some(seconds) => match seconds.split_once('.') {
            Some((whole, fraction)) => (two_digits(whole)?, fraction_to_nanos(fraction).ok()?),
            None => (two_digits(seconds)?, 0),
        },
    };
    NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)
}

/// Splits a trailing zone designator (`Z`, `+01:00`, `+0100`, `+01`) off a time.
fn split_zone(time: &str) -> Option<(&str, Option<FixedOffset>)> {
    if let Some(time) = time.strip_suffix(['Z', 'z']) {
        return Some((time, Some(UTC)));
    }
    let Some(at) = time.find(['+', '-']) else {
        return Some((time, None));
    };
    let (time, zone) = time.split_at(at);
    let (sign, hhmm) = zone.split_at(1);
    let (hours, minutes) = match hhmm.len() {
        2 => (hhmm, "00"),
        4 => hhmm.split_at(2),
        5 if hhmm.as_bytes()[2] == b':' => (&hhmm[..2], &hhmm[3..]),
        _ => return None,
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(hours) || !all_digits(minutes) {
        return None;
    }
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let seconds = (hours * 60 + minutes) * 60;
    let offset = FixedOffset::east_opt(if sign == "-" { -seconds } else { seconds })?;
    Some((time, Some(offset)))
}

/// Parses an ISO 8601 date-time `YYYY-MM-DDTHH:MM[:SS[.f+]][zone]` (a space instead of `T` is
/// accepted too) into the local date-time as written and its zone, if any.
fn parse_iso_datetime(text: &str) -> Option<(NaiveDateTime, Option<FixedOffset>)> {
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let date = parse_date(date)?;
    let (time, zone) = split_zone(time)?;
    Some((date.and_time(parse_time_of_day(time)?), zone))
}

/// Parses `YYYY-MM-DD`.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &bytes[r];
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0u32, |n, b| n * 10 + u32::from(b - b'0')))
    };
    NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)
}

/// The wall-clock date-time of a `/Date(...)/` value: the UTC instant shifted by the offset.
fn ms_date_wall_clock(body: &str) -> Option<NaiveDateTime> {
    let (instant, offset) = parse_ms_date(body)?;
    Some(instant.with_timezone(&offset.unwrap_or(UTC)).naive_local())
}

/// Reads any string-valued wire form with `parse`, reporting failures with `invalid_value`.
fn deserialize_text<'de, D, T>(
    deserializer: D,
    edm_type: &'static str,
    expected: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct TextVisitor<T> {
        edm_type: &'static str,
        expected: &'static str,
        parse: fn(&str) -> Result<T, String>,
    }

    impl<T> Visitor<'_> for TextVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a string holding {} ({})", self.expected, self.edm_type)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(|reason| {
                if reason.is_empty() {
                    invalid_value(self.edm_type, v, self.expected)
                } else {
                    E::custom(format_args!(
                        "invalid {} value {v:?}: {reason}",
                        self.edm_type
                    ))
                }
            })
        }
    }

    deserializer.deserialize_str(TextVisitor {
        edm_type,
        expected,
        parse,
    })
}

// ---------------------------------------------------------------------------------------------
// Edm.DateTime

/// `Edm.DateTime` (OData V2/V3: a date-time without a zone) as [`chrono::NaiveDateTime`].
///
/// Accepts:
/// * `"/Date(1583152200000)/"` (OData V2 JSON format): milliseconds since the epoch, read as UTC
///   (→ `2020-03-02T12:30:00`); negative values are before 1970;
/// * `"/Date(1583152200000+0060)/"`: the offset is in minutes, the milliseconds are UTC, and the
///   result is the wall clock `ms + offset` (→ `2020-03-02T13:30:00`);
/// * ISO 8601 `"2020-01-31T12:34:56"`, with or without seconds and fractional seconds (digits beyond
///   nanoseconds are dropped), and a bare date `"2020-01-31"` (midnight);
/// * ISO 8601 with a zone, `"...Z"` or `"...+01:00"`: **converted to UTC and the zone dropped**.
///   `Edm.DateTime` has no zone, so a server that adds one states the instant; UTC is the reading
///   that agrees with the `/Date(ms)/` form of the same service.
///
/// Serialises ISO 8601 `YYYY-MM-DDTHH:MM:SS[.fff]` without a zone (fraction only when non-zero).
pub struct EdmDateTime;

pub(crate) fn parse_edm_datetime(text: &str) -> Result<NaiveDateTime, String> {
    if let Some(body) = ms_date_body(text) {
        return ms_date_wall_clock(body).ok_or_default();
    }
    if let Some(date) = parse_date(text) {
        return Ok(date.and_time(NaiveTime::MIN));
    }
    let (local, zone) = parse_iso_datetime(text).ok_or_default()?;
    match zone {
        None => Ok(local),
        Some(zone) => zone
            .from_local_datetime(&local)
            .single()
            .map(|dt| dt.naive_utc())
            .ok_or_default(),
    }
}

impl<'de> DeserializeAs<'de, NaiveDateTime> for EdmDateTime {
    fn deserialize_as<D: Deserializer<'de>>(deserializer: D) -> Result<NaiveDateTime, D::Error> {
        deserialize_text(
            deserializer,
            "Edm.DateTime",
            "\"/Date(<ms>)/\", \"/Date(<ms>+<minutes>)/\" or an ISO 8601 date-time such as \"2020-01-31T12:34:56\"",
            parse_edm_datetime,
        )
    }
}

impl SerializeAs<NaiveDateTime> for EdmDateTime {
    fn serialize_as<S: Serializer>(
        source: &NaiveDateTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&datetime_text(source))
    }
}

// ---------------------------------------------------------------------------------------------
// Edm.DateTimeOffset

/// `Edm.DateTimeOffset` as [`chrono::DateTime<FixedOffset>`].
///
/// Accepts RFC 3339 / ISO 8601 with `Z` or an offset (`+02:00`, `+0200`, `+02`), with or without
/// seconds (`"2020-01-01T10:00Z"`) and fractional seconds; an ISO string **without** an offset,
/// which servers do send (odata.net#2113), is read as UTC; `"/Date(<ms>)/"` is the UTC instant and
/// `"/Date(<ms>+0060)/"` the same instant at offset +60 minutes (OData V2/V3 verbose JSON).
///
/// Serialises RFC 3339 (`Z` for UTC, fraction only when non-zero), the form OData JSON Format
/// v4.01 §7.1 requires.
pub struct EdmDateTimeOffset;

pub(crate) fn parse_edm_datetime_offset(text: &str) -> Result<DateTime<FixedOffset>, String> {
    if let Some(body) = ms_date_body(text) {
        let (instant, offset) = parse_ms_date(body).ok_or_default()?;
        return Ok(instant.with_timezone(&offset.unwrap_or(UTC)));
    }
    let (local, zone) = parse_iso_datetime(text).ok_or_default()?;
    zone.unwrap_or(UTC)
        .from_local_datetime(&local)
        .single()
        .ok_or_default()
}

impl<'de> DeserializeAs<'de, DateTime<FixedOffset>> for EdmDateTimeOffset {
    fn deserialize_as<D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<FixedOffset>, D::Error> {
        deserialize_text(
            deserializer,
            "Edm.DateTimeOffset",
            "an RFC 3339 date-time such as \"2020-01-31T12:34:56Z\" or \"/Date(<ms>)/\"",
            parse_edm_datetime_offset,
        )
    }
}

impl SerializeAs<DateTime<FixedOffset>> for EdmDateTimeOffset {
    fn serialize_as<S: Serializer>(
        source: &DateTime<FixedOffset>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&source.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

// ---------------------------------------------------------------------------------------------
// Edm.Date

/// `Edm.Date` (V4) as [`chrono::NaiveDate`].
///
/// Accepts `"2020-01-31"`; `"/Date(<ms>)/"` (the UTC date; with an offset suffix, the date of the
/// wall clock as for [`EdmDateTime`]), which V2 services use for date-only `Edm.DateTime` properties
/// (`sap:display-format="Date"`); and an ISO date-time, of which the date part as written is taken.
///
/// Serialises `YYYY-MM-DD`.
pub struct EdmDate;

pub(crate) fn parse_edm_date(text: &str) -> Result<NaiveDate, String> {
    if let Some(body) = ms_date_body(text) {
        return ms_date_wall_clock(body).map(|dt| dt.date()).ok_or_default();
    }
    if let Some(date) = parse_date(text) {
        return Ok(date);
    }
    parse_iso_datetime(text)
        .map(|(local, _)| local.date())
        .ok_or_default()
}

impl<'de> DeserializeAs<'de, NaiveDate> for EdmDate {
    fn deserialize_as<D: Deserializer<'de>>(deserializer: D) -> Result<NaiveDate, D::Error> {
        deserialize_text(
            deserializer,
            "Edm.Date",
            "a date such as \"2020-01-31\" or \"/Date(<ms>)/\"",
            parse_edm_date,
        )
    }
}

impl SerializeAs<NaiveDate> for EdmDate {
    fn serialize_as<S: Serializer>(source: &NaiveDate, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&date_text(*source))
    }
}

// ---------------------------------------------------------------------------------------------
// Edm.TimeOfDay

/// `Edm.TimeOfDay` (V4) as [`chrono::NaiveTime`].
///
/// Accepts `"13:20"`, `"13:20:00"` and fractional seconds of any length (`"13:20:00.1234567"`,
/// as .NET servers send; digits beyond nanoseconds are dropped).
///
/// Serialises `HH:MM:SS[.fff]` (fraction only when non-zero).
pub struct EdmTimeOfDay;

fn parse_edm_time_of_day(text: &str) -> Result<NaiveTime, String> {
    parse_time_of_day(text).ok_or_default()
}

impl<'de> DeserializeAs<'de, NaiveTime> for EdmTimeOfDay {
    fn deserialize_as<D: Deserializer<'de>>(deserializer: D) -> Result<NaiveTime, D::Error> {
        deserialize_text(
            deserializer,
            "Edm.TimeOfDay",
            "a time of day such as \"13:20:00\"",
            parse_edm_time_of_day,
        )
    }
}

impl SerializeAs<NaiveTime> for EdmTimeOfDay {
    fn serialize_as<S: Serializer>(source: &NaiveTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time_text(*source))
    }
}

// ---------------------------------------------------------------------------------------------
// Edm.Time

/// `Edm.Time` (OData V2/V3: a time of day written as an xsd:duration since midnight) as
/// [`chrono::NaiveTime`].
///
/// Accepts `"PT13H20M00S"`, `"PT9H"`, `"PT13H20M15.5S"` (also with a zero day part, `"P0DT9H"`)
/// and the time-of-day form `"13:20:00"` that some servers send instead. A negative duration, one
/// with years or months, or one of 24 hours or more is an error: it is not a time of day.
///
/// Serialises `PTHHhMMmSS[.fff]S`, e.g. `"PT13H20M00S"`, the form V2 services emit.
pub struct EdmTime;

pub(crate) fn parse_edm_time(text: &str) -> Result<NaiveTime, String> {
    if !(text.starts_with('P') || text.starts_with("-P")) {
        return parse_time_of_day(text).ok_or_default();
    }
    let parts = parse_duration(text).map_err(str::to_owned)?;
    if parts.negative {
        return Err("a time of day cannot be negative".to_owned());
    }
    if parts.years != 0 || parts.months != 0 {
        return Err("a time of day cannot have years or months".to_owned());
    }
    let seconds = parts
        .days
        .checked_mul(86_400)
        .and_then(|s| s.checked_add(parts.hours.checked_mul(3_600)?))
        .and_then(|s| s.checked_add(parts.minutes.checked_mul(60)?))
        .and_then(|s| s.checked_add(parts.seconds));
    match seconds.and_then(|s| u32::try_from(s).ok()) {
        Some(seconds) if seconds < 86_400 => {
            NaiveTime::from_num_seconds_from_midnight_opt(seconds, parts.nanos).ok_or_default()
        }
        _ => Err("a time of day must be less than 24 hours".to_owned()),
    }
}

impl<'de> DeserializeAs<'de, NaiveTime> for EdmTime {
    fn deserialize_as<D: Deserializer<'de>>(deserializer: D) -> Result<NaiveTime, D::Error> {
        deserialize_text(
            deserializer,
            "Edm.Time",
            "a duration since midnight such as \"PT13H20M00S\" or a time such as \"13:20:00\"",
            parse_edm_time,
        )
    }
}

impl SerializeAs<NaiveTime> for EdmTime {
    fn serialize_as<S: Serializer>(source: &NaiveTime, serializer: S) -> Result<S::Ok, S::Error> {
        use chrono::Timelike;
        // A leap second (nanos ≥ 1e9) is written as second 60.
        let nanos = source.nanosecond();
        let seconds = source.second() + nanos / 1_000_000_000;
        let fraction = nanos % 1_000_000_000;
        let mut text = format!(
            "PT{:02}H{:02}M{:02}",
            source.hour(),
            source.minute(),
            seconds
        );
        if fraction != 0 {
            let digits = format!("{fraction:09}");
            text.push('.');
            text.push_str(digits.trim_end_matches('0'));
        }
        text.push('S');
        serializer.serialize_str(&text)
    }
}

// ---------------------------------------------------------------------------------------------

/// `Option` → `Result` with an empty reason, which [`deserialize_text`] turns into the generic
/// "expected ..." message.
trait OkOrDefault<T> {
    fn ok_or_default(self) -> Result<T, String>;
}

impl<T> OkOrDefault<T> for Option<T> {
    fn ok_or_default(self) -> Result<T, String> {
        self.ok_or_else(String::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_suffixes() {
        assert_eq!(split_zone("10:00"), Some(("10:00", None)));
        assert_eq!(split_zone("10:00Z"), Some(("10:00", Some(UTC))));
        let two = FixedOffset::east_opt(2 * 3600);
        assert_eq!(split_zone("10:00+02:00"), Some(("10:00", two)));
        assert_eq!(split_zone("10:00+0200"), Some(("10:00", two)));
        assert_eq!(split_zone("10:00+02"), Some(("10:00", two)));
        assert_eq!(
            split_zone("10:00-01:30"),
            Some(("10:00", FixedOffset::west_opt(90 * 60)))
        );
        assert_eq!(split_zone("10:00+2"), None);
        assert_eq!(split_zone("10:00+24:00"), None);
    }

    #[test]
    fn ms_date_bodies() {
        assert!(parse_ms_date("").is_none());
        assert!(parse_ms_date("abc").is_none());
        assert!(parse_ms_date("12+").is_none());
        assert!(parse_ms_date("12+ab").is_none());
        // The offset is in minutes (OData V2 JSON format), not hhmm: -0130 is -130 minutes.
        let (instant, offset) = parse_ms_date("-1234-0130").expect("valid");
        assert_eq!(instant.timestamp_millis(), -1234);
        assert_eq!(offset, FixedOffset::west_opt(130 * 60));
    }

    #[test]
    fn times_of_day() {
        assert_eq!(
            parse_time_of_day("13:20"),
            NaiveTime::from_hms_opt(13, 20, 0)
        );
        assert_eq!(
            parse_time_of_day("13:20:00.1234567891"),
            NaiveTime::from_hms_nano_opt(13, 20, 0, 123_456_789)
        );
        for bad in [
            "13",
            "1:20",
            "13:2",
            "24:00",
            "13:20:60",
            "13:20:00.",
            "13:20:00:00",
        ] {
            assert_eq!(parse_time_of_day(bad), None, "{bad:?}");
        }
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn date_and_time_texts_match_chrono_formats() {
        for (y, m, d) in [
            (2026, 1, 5),
            (1, 12, 31),
            (0, 1, 1),
            (9999, 12, 31),
            (-5, 1, 1),
            (10000, 1, 1),
        ] {
            let d = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(date_text(d), d.format("%Y-%m-%d").to_string());
        }
        for ns in [
            0,
            5_000_000,
            120_000,
            123_456_789,
            999_999_999,
            1_500_000_000,
        ] {
            let t = NaiveTime::from_hms_nano_opt(23, 59, 59, ns).unwrap();
            assert_eq!(time_text(t), t.format("%H:%M:%S%.f").to_string(), "{ns}");
            let dt = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap().and_time(t);
            assert_eq!(
                datetime_text(&dt),
                dt.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
                "{ns}"
            );
        }
        let t = NaiveTime::from_hms_opt(7, 8, 9).unwrap();
        assert_eq!(time_text(t), "07:08:09");
    }

    #[test]
    fn dates_parse_only_as_four_two_two_digits() {
        assert_eq!(
            parse_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        assert_eq!(parse_date("0001-01-01"), NaiveDate::from_ymd_opt(1, 1, 1));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1a-01",
            "+024-01-01",
            "2024/01/01",
            "24-01-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}

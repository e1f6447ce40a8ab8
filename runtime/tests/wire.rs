//! The wire adapters, the enum support and the value types, used exactly as generated code uses
//! them (`#[serde(with = "::odata_runtime::serde_with::As::<...>")]`, absolute paths).

use std::str::FromStr;

use bigdecimal::BigDecimal;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use odata_runtime::types::{Flags, IsoDuration};
use odata_runtime::{Dialect, Entity, ODataEnum, PropertyInfo};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Fixtures shaped like generated code.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Numbers {
    #[serde(
        rename = "ID",
        with = "::odata_runtime::serde_with::As::<::odata_runtime::wire::Lenient>"
    )]
    id: i64,
    #[serde(
        rename = "Amount",
        with = "::odata_runtime::serde_with::As::<::odata_runtime::wire::Lenient>"
    )]
    amount: Decimal,
    #[serde(
        rename = "Big",
        with = "::odata_runtime::serde_with::As::<::odata_runtime::wire::Lenient>"
    )]
    big: BigDecimal,
    #[serde(
        rename = "Ratio",
        with = "::odata_runtime::serde_with::As::<::odata_runtime::wire::Lenient>"
    )]
    ratio: f64,
    #[serde(
        rename = "Small",
        with = "::odata_runtime::serde_with::As::<::odata_runtime::wire::Lenient>"
    )]
    small: u8,
    #[serde(
        rename = "Flag",
        with = "::odata_runtime::serde_with::As::<::odata_runtime::wire::Lenient>"
    )]
    flag: bool,
    #[serde(
        rename = "Count",
        default,
        with = "::odata_runtime::serde_with::As::<::std::option::Option<::odata_runtime::wire::Lenient>>"
    )]
    count: ::std::option::Option<i32>,
    #[serde(
        rename = "Ids",
        default,
        with = "::odata_runtime::serde_with::As::<::std::vec::Vec<::odata_runtime::wire::Lenient>>"
    )]
    ids: ::std::vec::Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Times {
    #[serde(
        rename = "Modified",
        default,
        with = "::odata_runtime::serde_with::As::<::std::option::Option<::odata_runtime::wire::EdmDateTime>>"
    )]
    modified: ::std::option::Option<::chrono::NaiveDateTime>,
    #[serde(
        rename = "Stamp",
        default,
        with = "::odata_runtime::serde_with::As::<::std::option::Option<::odata_runtime::wire::EdmDateTimeOffset>>"
    )]
    stamp: ::std::option::Option<::chrono::DateTime<::chrono::FixedOffset>>,
    #[serde(
        rename = "Day",
        default,
        with = "::odata_runtime::serde_with::As::<::std::option::Option<::odata_runtime::wire::EdmDate>>"
    )]
    day: ::std::option::Option<::chrono::NaiveDate>,
    #[serde(
        rename = "At",
        default,
        with = "::odata_runtime::serde_with::As::<::std::option::Option<::odata_runtime::wire::EdmTimeOfDay>>"
    )]
    at: ::std::option::Option<::chrono::NaiveTime>,
    #[serde(
        rename = "Time",
        default,
        with = "::odata_runtime::serde_with::As::<::std::option::Option<::odata_runtime::wire::EdmTime>>"
    )]
    time: ::std::option::Option<::chrono::NaiveTime>,
    #[serde(
        rename = "Data",
        default,
        with = "::odata_runtime::serde_with::As::<::std::option::Option<::odata_runtime::wire::Base64>>"
    )]
    data: ::std::option::Option<::std::vec::Vec<u8>>,
}

/// A generated enum, written by hand the way the generator emits it.
#[derive(Debug, Clone, PartialEq)]
enum Color {
    Red,
    Green,
    Blue,
    /// A member the generator did not know about.
    Other(String),
}

impl ODataEnum for Color {
    const MEMBERS: &'static [(&'static str, i64)] = &[("Red", 1), ("Green", 2), ("Blue", 4)];

    fn from_wire(name: &str) -> Self {
        match name {
            "Red" => Color::Red,
            "Green" => Color::Green,
            "Blue" => Color::Blue,
            other => Color::Other(other.to_owned()),
        }
    }

    fn wire_name(&self) -> &str {
        match self {
            Color::Red => "Red",
            Color::Green => "Green",
            Color::Blue => "Blue",
            Color::Other(name) => name,
        }
    }
}

impl ::serde::Serialize for Color {
    fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
        ::odata_runtime::serialize_enum(self, s)
    }
}

impl<'de> ::serde::Deserialize<'de> for Color {
    fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
        ::odata_runtime::deserialize_enum(d)
    }
}

/// A flags enum with a composite member declared after its parts.
#[derive(Debug, Clone, PartialEq)]
enum Access {
    None,
    Read,
    Write,
    ReadWrite,
    Other(String),
}

impl ODataEnum for Access {
    const MEMBERS: &'static [(&'static str, i64)] =
        &[("None", 0), ("Read", 1), ("Write", 2), ("ReadWrite", 3)];

    fn from_wire(name: &str) -> Self {
        match name {
            "None" => Access::None,
            "Read" => Access::Read,
            "Write" => Access::Write,
            "ReadWrite" => Access::ReadWrite,
            other => Access::Other(other.to_owned()),
        }
    }

    fn wire_name(&self) -> &str {
        match self {
            Access::None => "None",
            Access::Read => "Read",
            Access::Write => "Write",
            Access::ReadWrite => "ReadWrite",
            Access::Other(name) => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    #[serde(
        rename = "ID",
        with = "::odata_runtime::serde_with::As::<::odata_runtime::wire::Lenient>"
    )]
    id: i64,
    #[serde(rename = "Color")]
    color: Color,
    #[serde(rename = "Colors", default)]
    colors: ::std::vec::Vec<Color>,
    #[serde(rename = "Access", default)]
    access: ::std::option::Option<Flags<Access>>,
    #[serde(rename = "Span", default)]
    span: ::std::option::Option<IsoDuration>,
}

impl Entity for Product {
    const TYPE_NAME: &'static str = "Shop.Product";
    const ENTITY_SET: &'static str = "Products";
    const DIALECT: Dialect = Dialect::V4;
    const PROPERTIES: &'static [PropertyInfo] = &[
        PropertyInfo {
            wire_name: "ID",
            rust_name: "id",
            sql_name: "ID",
            edm_type: "Edm.Int64",
            nullable: false,
            is_key: true,
        },
        PropertyInfo {
            wire_name: "Color",
            rust_name: "color",
            sql_name: "Color",
            edm_type: "Shop.Color",
            nullable: false,
            is_key: false,
        },
    ];
    const KEY: &'static [&'static str] = &["ID"];
    const SELECT: &'static [&'static str] = &["ID", "Color", "Colors", "Access", "Span"];
    type Key = i64;

    fn key(&self) -> i64 {
        self.id
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    match serde_json::from_value(value.clone()) {
        Ok(v) => v,
        Err(err) => panic!("{value} should deserialize: {err}"),
    }
}

fn error<T: serde::de::DeserializeOwned + std::fmt::Debug>(value: Value) -> String {
    match serde_json::from_value::<T>(value.clone()) {
        Ok(v) => panic!("{value} should be rejected, got {v:?}"),
        Err(err) => err.to_string(),
    }
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializes")
}

/// Serialize, then deserialize the JSON text again: must give the same value.
fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let text = serde_json::to_string(value).expect("serializes");
    let back: T = serde_json::from_str(&text).expect("deserializes its own output");
    assert_eq!(&back, value, "round trip through {text}");
}

fn numbers(id: Value, amount: Value, big: Value, ratio: Value) -> Value {
    json!({"ID": id, "Amount": amount, "Big": big, "Ratio": ratio, "Small": 1, "Flag": true})
}

fn times(field: &str, value: Value) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert(field.to_owned(), value);
    Value::Object(obj)
}

fn dt(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .and_then(|date| date.and_hms_opt(h, mi, s))
        .expect("valid date-time")
}

fn dto(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).expect("valid RFC 3339")
}

fn time(h: u32, m: u32, s: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, s).expect("valid time")
}

// ---------------------------------------------------------------------------------------------
// Lenient numbers.

#[test]
fn int64_string_beyond_f64_precision_round_trips_exactly() {
    let n: Numbers = from(numbers(
        json!("9007199254740993"),
        json!("1"),
        json!("1"),
        json!(1),
    ));
    assert_eq!(n.id, 9_007_199_254_740_993);
    assert_eq!(to_json(&n)["ID"], json!(9_007_199_254_740_993_i64));
    assert_eq!(
        serde_json::to_string(&n.id).expect("serializes"),
        "9007199254740993"
    );
    round_trip(&n);
}

#[test]
fn int64_number_and_negative_string() {
    let n: Numbers = from(numbers(json!(42), json!(1), json!(1), json!(1)));
    assert_eq!(n.id, 42);
    let n: Numbers = from(numbers(
        json!("-9223372036854775808"),
        json!(1),
        json!(1),
        json!(1),
    ));
    assert_eq!(n.id, i64::MIN);
    let n: Numbers = from(numbers(
        json!(9_223_372_036_854_775_807_i64),
        json!(1),
        json!(1),
        json!(1),
    ));
    assert_eq!(n.id, i64::MAX);
}

#[test]
fn decimal_from_string_and_number() {
    let n: Numbers = from(numbers(
        json!(1),
        json!("1234567890.123456789"),
        json!(1),
        json!(1),
    ));
    assert_eq!(
        n.amount,
        Decimal::from_str("1234567890.123456789").expect("decimal")
    );
    // rust_decimal's serde-str feature: serialised as a string, every digit kept.
    assert_eq!(to_json(&n)["Amount"], json!("1234567890.123456789"));
    round_trip(&n);

    let n: Numbers = from(numbers(json!(1), json!(19.99), json!(1), json!(1)));
    assert_eq!(n.amount, Decimal::from_str("19.99").expect("decimal"));
    let n: Numbers = from(numbers(json!(1), json!(-7), json!(1), json!(1)));
    assert_eq!(n.amount, Decimal::from(-7));
}

#[test]
fn bigdecimal_string_keeps_every_digit() {
    let digits = "12345678901234567890.123456789012345678"; // 38 digits
    let n: Numbers = from(numbers(json!(1), json!(1), json!(digits), json!(1)));
    assert_eq!(n.big, BigDecimal::from_str(digits).expect("bigdecimal"));
    assert_eq!(n.big.to_string(), digits);
    assert_eq!(to_json(&n)["Big"], json!(digits));
    round_trip(&n);

    let n: Numbers = from(numbers(json!(1), json!(1), json!(12), json!(1)));
    assert_eq!(n.big, BigDecimal::from(12));
    // A JSON float becomes the decimal that was written, not the double's binary expansion.
    let n: Numbers = from(numbers(json!(1), json!(1), json!(19.99), json!(1)));
    assert_eq!(n.big, BigDecimal::from_str("19.99").expect("bigdecimal"));
    assert_eq!(to_json(&n)["Big"], json!("19.99"));
}

#[test]
fn double_special_values_and_numbers() {
    let n: Numbers = from(numbers(json!(1), json!(1), json!(1), json!("INF")));
    assert_eq!(n.ratio, f64::INFINITY);
    assert_eq!(to_json(&n)["Ratio"], json!("INF"));
    round_trip(&n);

    let n: Numbers = from(numbers(json!(1), json!(1), json!(1), json!("-INF")));
    assert_eq!(n.ratio, f64::NEG_INFINITY);
    assert_eq!(to_json(&n)["Ratio"], json!("-INF"));
    round_trip(&n);

    let n: Numbers = from(numbers(json!(1), json!(1), json!(1), json!("NaN")));
    assert!(n.ratio.is_nan());
    assert_eq!(to_json(&n)["Ratio"], json!("NaN"));

    let n: Numbers = from(numbers(json!(1), json!(1), json!(1), json!(1.5)));
    assert_eq!(n.ratio, 1.5);
    assert_eq!(to_json(&n)["Ratio"], json!(1.5));
    round_trip(&n);

    let n: Numbers = from(numbers(json!(1), json!(1), json!(1), json!("2.25")));
    assert_eq!(n.ratio, 2.25);
    let n: Numbers = from(numbers(json!(1), json!(1), json!(1), json!(3)));
    assert_eq!(n.ratio, 3.0);
}

#[test]
fn byte_and_boolean_as_strings() {
    let mut value = numbers(json!(1), json!(1), json!(1), json!(1));
    value["Small"] = json!("255");
    value["Flag"] = json!("false");
    let n: Numbers = from(value);
    assert_eq!(n.small, 255);
    assert!(!n.flag);
    assert_eq!(to_json(&n)["Small"], json!(255));
    assert_eq!(to_json(&n)["Flag"], json!(false));
}

#[test]
fn lenient_option_null_missing_and_present() {
    let mut value = numbers(json!(1), json!(1), json!(1), json!(1));
    let n: Numbers = from(value.clone());
    assert_eq!(n.count, None, "missing field with #[serde(default)]");

    value["Count"] = Value::Null;
    let n: Numbers = from(value.clone());
    assert_eq!(n.count, None, "JSON null");
    assert_eq!(to_json(&n)["Count"], Value::Null);
    round_trip(&n);

    value["Count"] = json!("17");
    let n: Numbers = from(value.clone());
    assert_eq!(n.count, Some(17));
    value["Count"] = json!(18);
    let n: Numbers = from(value);
    assert_eq!(n.count, Some(18));
    assert_eq!(to_json(&n)["Count"], json!(18));
    round_trip(&n);
}

#[test]
fn lenient_vec_of_strings_and_numbers() {
    let mut value = numbers(json!(1), json!(1), json!(1), json!(1));
    value["Ids"] = json!(["9007199254740993", 2, "-3"]);
    let n: Numbers = from(value);
    assert_eq!(n.ids, vec![9_007_199_254_740_993, 2, -3]);
    assert_eq!(
        to_json(&n)["Ids"],
        json!([9_007_199_254_740_993_i64, 2, -3])
    );
    round_trip(&n);
}

#[test]
fn bad_int64_error_names_the_value() {
    let msg = error::<Numbers>(numbers(json!("abc"), json!(1), json!(1), json!(1)));
    assert!(msg.contains("\"abc\""), "{msg}");
    assert!(msg.contains("Edm.Int64"), "{msg}");

    let msg = error::<Numbers>(numbers(json!("1.5"), json!(1), json!(1), json!(1)));
    assert!(msg.contains("\"1.5\""), "{msg}");

    let msg = error::<Numbers>(numbers(json!(1.5), json!(1), json!(1), json!(1)));
    assert!(msg.contains("1.5"), "{msg}");

    let msg = error::<Numbers>(numbers(json!([1]), json!(1), json!(1), json!(1)));
    assert!(msg.contains("Edm.Int64"), "{msg}");

    let msg = error::<Numbers>(numbers(json!(null), json!(1), json!(1), json!(1)));
    assert!(msg.contains("null"), "{msg}");

    let msg = error::<Numbers>(numbers(json!(1), json!("12,5"), json!(1), json!(1)));
    assert!(
        msg.contains("\"12,5\"") && msg.contains("Edm.Decimal"),
        "{msg}"
    );
}

#[test]
fn out_of_range_numbers_are_rejected() {
    let mut value = numbers(json!(1), json!(1), json!(1), json!(1));
    value["Small"] = json!(256);
    let msg = error::<Numbers>(value.clone());
    assert!(msg.contains("256"), "{msg}");
    value["Small"] = json!("-1");
    let msg = error::<Numbers>(value);
    assert!(msg.contains("\"-1\"") && msg.contains("Edm.Byte"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Edm.DateTime

#[test]
fn datetime_ms_form_is_utc() {
    let t: Times = from(times("Modified", json!("/Date(1583152200000)/")));
    assert_eq!(t.modified, Some(dt(2020, 3, 2, 12, 30, 0)));
    assert_eq!(to_json(&t)["Modified"], json!("2020-03-02T12:30:00"));
    round_trip(&t);
}

#[test]
fn datetime_ms_form_escaped_slashes_from_json_text() {
    let t: Times =
        serde_json::from_str(r#"{"Modified": "\/Date(1583152200000)\/"}"#).expect("parses");
    assert_eq!(t.modified, Some(dt(2020, 3, 2, 12, 30, 0)));
}

#[test]
fn datetime_ms_form_with_offset_minutes_is_wall_clock() {
    let t: Times = from(times("Modified", json!("/Date(1583152200000+0060)/")));
    assert_eq!(t.modified, Some(dt(2020, 3, 2, 13, 30, 0)));
    // Minutes, not hhmm: -0130 is 130 minutes west.
    let t: Times = from(times("Modified", json!("/Date(1583152200000-0130)/")));
    assert_eq!(t.modified, Some(dt(2020, 3, 2, 10, 20, 0)));
    let t: Times = from(times("Modified", json!("/Date(1583152200000+0000)/")));
    assert_eq!(t.modified, Some(dt(2020, 3, 2, 12, 30, 0)));
}

#[test]
fn datetime_ms_form_negative() {
    let t: Times = from(times("Modified", json!("/Date(-1234)/")));
    let expected =
        dt(1969, 12, 31, 23, 59, 58) + chrono::TimeDelta::try_milliseconds(766).expect("delta");
    assert_eq!(t.modified, Some(expected));
    assert_eq!(to_json(&t)["Modified"], json!("1969-12-31T23:59:58.766"));
    round_trip(&t);

    let t: Times = from(times("Modified", json!("/Date(-2208988800000)/")));
    assert_eq!(t.modified, Some(dt(1900, 1, 1, 0, 0, 0)));
}

#[test]
fn datetime_iso_forms() {
    let t: Times = from(times("Modified", json!("2020-01-31T12:34:56")));
    assert_eq!(t.modified, Some(dt(2020, 1, 31, 12, 34, 56)));
    round_trip(&t);

    let t: Times = from(times("Modified", json!("2020-01-31T12:34")));
    assert_eq!(t.modified, Some(dt(2020, 1, 31, 12, 34, 0)));

    let t: Times = from(times("Modified", json!("2020-01-31T12:34:56.1234567")));
    let expected = dt(2020, 1, 31, 12, 34, 56) + chrono::TimeDelta::nanoseconds(123_456_700);
    assert_eq!(t.modified, Some(expected));
    assert_eq!(
        to_json(&t)["Modified"],
        json!("2020-01-31T12:34:56.123456700")
    );
    round_trip(&t);

    let t: Times = from(times("Modified", json!("2020-01-31")));
    assert_eq!(t.modified, Some(dt(2020, 1, 31, 0, 0, 0)));
}

#[test]
fn datetime_iso_with_zone_is_converted_to_utc() {
    let t: Times = from(times("Modified", json!("2020-01-31T12:34:56Z")));
    assert_eq!(t.modified, Some(dt(2020, 1, 31, 12, 34, 56)));
    let t: Times = from(times("Modified", json!("2020-01-31T12:34:56+01:00")));
    assert_eq!(t.modified, Some(dt(2020, 1, 31, 11, 34, 56)));
    let t: Times = from(times("Modified", json!("2020-01-31T00:30:00-02:00")));
    assert_eq!(t.modified, Some(dt(2020, 1, 31, 2, 30, 0)));
    assert_eq!(to_json(&t)["Modified"], json!("2020-01-31T02:30:00"));
}

#[test]
fn datetime_null_and_missing() {
    let t: Times = from(json!({}));
    assert_eq!(t.modified, None);
    let t: Times = from(json!({"Modified": null}));
    assert_eq!(t.modified, None);
    assert_eq!(to_json(&t)["Modified"], Value::Null);
    round_trip(&t);
}

#[test]
fn bad_dates_error_names_the_value() {
    for bad in [
        "/Date(abc)/",
        "/Date()/",
        "/Date(12+xy)/",
        "2020-13-01T00:00:00",
        "2020-02-30",
        "31.01.2020",
        "2020-01-31T25:00:00",
        "",
    ] {
        let msg = error::<Times>(times("Modified", json!(bad)));
        assert!(msg.contains(&format!("{bad:?}")), "{msg}");
        assert!(msg.contains("Edm.DateTime"), "{msg}");
    }
    let msg = error::<Times>(times("Modified", json!(1583152200000_i64)));
    assert!(msg.contains("Edm.DateTime"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Edm.DateTimeOffset

#[test]
fn datetimeoffset_iso_forms() {
    let t: Times = from(times("Stamp", json!("2020-01-31T12:34:56Z")));
    assert_eq!(t.stamp, Some(dto("2020-01-31T12:34:56Z")));
    assert_eq!(to_json(&t)["Stamp"], json!("2020-01-31T12:34:56Z"));
    round_trip(&t);

    let t: Times = from(times("Stamp", json!("2020-01-31T12:34:56.5+02:00")));
    let stamp = t.stamp.expect("present");
    assert_eq!(stamp, dto("2020-01-31T12:34:56.5+02:00"));
    assert_eq!(stamp.offset().local_minus_utc(), 7200, "offset kept");
    assert_eq!(to_json(&t)["Stamp"], json!("2020-01-31T12:34:56.500+02:00"));
    round_trip(&t);

    let t: Times = from(times("Stamp", json!("2020-01-01T10:00Z")));
    assert_eq!(t.stamp, Some(dto("2020-01-01T10:00:00Z")));
}

#[test]
fn datetimeoffset_without_offset_is_utc() {
    let t: Times = from(times("Stamp", json!("2020-01-31T12:34:56")));
    let stamp = t.stamp.expect("present");
    assert_eq!(stamp, dto("2020-01-31T12:34:56Z"));
    assert_eq!(stamp.offset().local_minus_utc(), 0);
}

#[test]
fn datetimeoffset_ms_forms() {
    let t: Times = from(times("Stamp", json!("/Date(1583152200000)/")));
    assert_eq!(t.stamp, Some(dto("2020-03-02T12:30:00Z")));
    assert_eq!(to_json(&t)["Stamp"], json!("2020-03-02T12:30:00Z"));

    let t: Times = from(times("Stamp", json!("/Date(1583152200000+0060)/")));
    let stamp = t.stamp.expect("present");
    assert_eq!(stamp, dto("2020-03-02T13:30:00+01:00"));
    assert_eq!(stamp.offset().local_minus_utc(), 3600);
    assert_eq!(to_json(&t)["Stamp"], json!("2020-03-02T13:30:00+01:00"));
    round_trip(&t);
}

#[test]
fn bad_datetimeoffset_names_the_value() {
    let msg = error::<Times>(times("Stamp", json!("2020-01-31T12:34:56+25:00")));
    assert!(msg.contains("\"2020-01-31T12:34:56+25:00\""), "{msg}");
    assert!(msg.contains("Edm.DateTimeOffset"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Edm.Date, Edm.TimeOfDay, Edm.Time

#[test]
fn date_forms() {
    let day = NaiveDate::from_ymd_opt(2020, 1, 31);
    let t: Times = from(times("Day", json!("2020-01-31")));
    assert_eq!(t.day, day);
    assert_eq!(to_json(&t)["Day"], json!("2020-01-31"));
    round_trip(&t);

    let t: Times = from(times("Day", json!("/Date(1580428800000)/")));
    assert_eq!(t.day, day);
    let t: Times = from(times("Day", json!("2020-01-31T23:30:00-05:00")));
    assert_eq!(t.day, day, "the date part as written");

    let msg = error::<Times>(times("Day", json!("2020-1-31")));
    assert!(
        msg.contains("\"2020-1-31\"") && msg.contains("Edm.Date"),
        "{msg}"
    );
}

#[test]
fn time_of_day_forms() {
    let t: Times = from(times("At", json!("13:20:00")));
    assert_eq!(t.at, Some(time(13, 20, 0)));
    assert_eq!(to_json(&t)["At"], json!("13:20:00"));
    round_trip(&t);

    let t: Times = from(times("At", json!("13:20")));
    assert_eq!(t.at, Some(time(13, 20, 0)));

    let t: Times = from(times("At", json!("13:20:00.1234567")));
    assert_eq!(t.at, NaiveTime::from_hms_nano_opt(13, 20, 0, 123_456_700));
    round_trip(&t);

    let msg = error::<Times>(times("At", json!("25:00")));
    assert!(
        msg.contains("\"25:00\"") && msg.contains("Edm.TimeOfDay"),
        "{msg}"
    );
}

#[test]
fn edm_time_duration_forms() {
    let t: Times = from(times("Time", json!("PT13H20M00S")));
    assert_eq!(t.time, Some(time(13, 20, 0)));
    assert_eq!(to_json(&t)["Time"], json!("PT13H20M00S"));
    round_trip(&t);

    let t: Times = from(times("Time", json!("PT9H")));
    assert_eq!(t.time, Some(time(9, 0, 0)));
    assert_eq!(to_json(&t)["Time"], json!("PT09H00M00S"));

    let t: Times = from(times("Time", json!("PT13H20M15.5S")));
    assert_eq!(t.time, NaiveTime::from_hms_milli_opt(13, 20, 15, 500));
    assert_eq!(to_json(&t)["Time"], json!("PT13H20M15.5S"));
    round_trip(&t);

    let t: Times = from(times("Time", json!("P0DT0H0M0S")));
    assert_eq!(t.time, Some(time(0, 0, 0)));

    let t: Times = from(times("Time", json!("13:20:00")));
    assert_eq!(t.time, Some(time(13, 20, 0)));
}

#[test]
fn edm_time_rejects_non_times_of_day() {
    for bad in ["PT24H", "P1D", "PT1440M", "-PT1H", "P1MT1H", "PT", "13h"] {
        let msg = error::<Times>(times("Time", json!(bad)));
        assert!(msg.contains(&format!("{bad:?}")), "{msg}");
        assert!(msg.contains("Edm.Time"), "{msg}");
    }
    let msg = error::<Times>(times("Time", json!("PT24H")));
    assert!(msg.contains("24 hours"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Edm.Binary

#[test]
fn base64_both_alphabets_with_and_without_padding() {
    let bytes: Vec<u8> = vec![0xfb, 0xff, 0xbf, 0x01];
    for text in ["+/+/AQ==", "+/+/AQ", "-_-_AQ==", "-_-_AQ", "+/+/\nAQ=="] {
        let t: Times = from(times("Data", json!(text)));
        assert_eq!(t.data.as_deref(), Some(bytes.as_slice()), "{text:?}");
    }
    let t: Times = from(times("Data", json!("-_-_AQ")));
    assert_eq!(to_json(&t)["Data"], json!("+/+/AQ=="));
    round_trip(&t);

    let t: Times = from(times("Data", json!("")));
    assert_eq!(t.data, Some(Vec::new()));

    let msg = error::<Times>(times("Data", json!("not base64!")));
    assert!(
        msg.contains("\"not base64!\"") && msg.contains("Edm.Binary"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// Enums, flags, durations, entity.

#[test]
fn enum_known_unknown_and_numeric() {
    let p: Product = from(json!({"ID": "7", "Color": "Green"}));
    assert_eq!(p.color, Color::Green);
    assert_eq!(to_json(&p)["Color"], json!("Green"));

    let p: Product = from(json!({"ID": 7, "Color": "Purple"}));
    assert_eq!(p.color, Color::Other("Purple".to_owned()));
    assert_eq!(
        to_json(&p)["Color"],
        json!("Purple"),
        "unknown value written back"
    );
    round_trip(&p);

    let p: Product = from(json!({"ID": 7, "Color": 4}));
    assert_eq!(p.color, Color::Blue);
    let p: Product = from(json!({"ID": 7, "Color": "2"}));
    assert_eq!(p.color, Color::Green);
    let p: Product = from(json!({"ID": 7, "Color": 99}));
    assert_eq!(p.color, Color::Other("99".to_owned()));

    let p: Product = from(json!({"ID": 7, "Color": "Red", "Colors": ["Blue", "Teal", 1]}));
    assert_eq!(
        p.colors,
        vec![Color::Blue, Color::Other("Teal".to_owned()), Color::Red]
    );
    round_trip(&p);

    let msg = error::<Product>(json!({"ID": 7, "Color": true}));
    assert!(msg.contains("enumeration"), "{msg}");
}

#[test]
fn flags_from_string_and_integer() {
    let p: Product = from(json!({"ID": 1, "Color": "Red", "Access": "Read, Write"}));
    assert_eq!(p.access, Some(Flags(vec![Access::Read, Access::Write])));
    assert_eq!(to_json(&p)["Access"], json!("Read,Write"));
    round_trip(&p);

    let p: Product = from(json!({"ID": 1, "Color": "Red", "Access": 3}));
    assert_eq!(p.access, Some(Flags(vec![Access::Read, Access::Write])));

    let p: Product = from(json!({"ID": 1, "Color": "Red", "Access": 0}));
    assert_eq!(p.access, Some(Flags(vec![Access::None])));

    // Bit 8 is no member: kept as a fallback value holding the leftover bits.
    let p: Product = from(json!({"ID": 1, "Color": "Red", "Access": 9}));
    let access = p.access.clone().expect("present");
    assert_eq!(access.0, vec![Access::Read, Access::Other("8".to_owned())]);
    assert!(access.contains(&Access::Read));
    assert!(!access.contains(&Access::Write));
    assert_eq!(to_json(&p)["Access"], json!("Read,8"));
    round_trip(&p);

    let p: Product = from(json!({"ID": 1, "Color": "Red", "Access": "ReadWrite,Execute"}));
    assert_eq!(
        p.access,
        Some(Flags(vec![
            Access::ReadWrite,
            Access::Other("Execute".to_owned())
        ]))
    );

    let p: Product = from(json!({"ID": 1, "Color": "Red", "Access": null}));
    assert_eq!(p.access, None);

    let empty: Flags<Access> = Flags::default();
    assert_eq!(to_json(&empty), json!("0"));
    assert_eq!(from::<Flags<Access>>(json!("")), empty);
}

#[test]
fn flags_prefer_the_member_declared_first() {
    #[derive(Debug, Clone, PartialEq)]
    enum Perm {
        All,
        Read,
        Write,
        Other(String),
    }
    impl ODataEnum for Perm {
        const MEMBERS: &'static [(&'static str, i64)] = &[("All", 3), ("Read", 1), ("Write", 2)];
        fn from_wire(name: &str) -> Self {
            match name {
                "All" => Perm::All,
                "Read" => Perm::Read,
                "Write" => Perm::Write,
                other => Perm::Other(other.to_owned()),
            }
        }
        fn wire_name(&self) -> &str {
            match self {
                Perm::All => "All",
                Perm::Read => "Read",
                Perm::Write => "Write",
                Perm::Other(name) => name,
            }
        }
    }
    assert_eq!(Flags::<Perm>::from_bits(3).0, vec![Perm::All]);
    assert_eq!(Flags::<Perm>::from_bits(2).0, vec![Perm::Write]);
    assert_eq!(Flags::<Perm>::from_bits(0).0, Vec::<Perm>::new());
    assert_eq!(
        Flags::<Perm>::from_wire_str("Read,2").0,
        vec![Perm::Read, Perm::Write]
    );
}

#[test]
fn iso_duration_valid() {
    for (text, seconds) in [
        ("P1DT2H3M4.5S", Some(93_784.5)),
        ("-PT5M", Some(-300.0)),
        ("PT0S", Some(0.0)),
        ("P12DT23H59M59.999999999999S", Some(1_123_199.999_999_999)),
        ("P1Y2M", None),
        ("P0Y0M3D", Some(259_200.0)),
    ] {
        let d: IsoDuration = text.parse().expect("valid duration");
        assert_eq!(d.as_str(), text);
        assert_eq!(d.to_string(), text);
        match (d.total_seconds(), seconds) {
            (Some(got), Some(want)) => assert!((got - want).abs() < 1e-6, "{text}: {got}"),
            (got, want) => assert_eq!(got, want, "{text}"),
        }
        let p: Product = from(json!({"ID": 1, "Color": "Red", "Span": text}));
        assert_eq!(p.span.as_ref(), Some(&d));
        assert_eq!(to_json(&p)["Span"], json!(text));
        round_trip(&p);
    }
}

#[test]
fn iso_duration_invalid() {
    for bad in [
        "",
        "P",
        "PT",
        "1D",
        "P1H",
        "PT1.5M",
        "P1DT",
        "PT-5M",
        "5 minutes",
        "P1.5D",
    ] {
        let err = IsoDuration::from_str(bad).expect_err(bad);
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        let msg = error::<Product>(json!({"ID": 1, "Color": "Red", "Span": bad}));
        assert!(msg.contains(&format!("{bad:?}")), "{msg}");
    }
}

#[test]
fn entity_constants_and_select_clause() {
    assert_eq!(
        odata_runtime::select_clause::<Product>(),
        "ID,Color,Colors,Access,Span"
    );
    assert_eq!(Product::KEY, &["ID"]);
    assert_eq!(Product::DIALECT, Dialect::V4);
    assert!(Product::PROPERTIES.iter().filter(|p| p.is_key).count() == Product::KEY.len());
    let p: Product = from(json!({"ID": "9007199254740993", "Color": "Red"}));
    assert_eq!(p.key(), 9_007_199_254_740_993);
}

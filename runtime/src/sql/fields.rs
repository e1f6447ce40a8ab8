//! A row as its serialised fields in declaration order, without building a JSON object.
//!
//! `serde_json::to_value` of a 60-field entity builds a `BTreeMap` with 60 allocated keys per
//! row; the upsert path only needs each field's value once, by wire name, in (almost always)
//! the table's column order. [`Fields`] captures `(field name, value)` pairs straight from
//! `Serialize::serialize_struct`, and [`Fields::get`] finds a name starting after the previous
//! hit, so a lookup in column order costs one comparison.

use serde::ser::{self, Impossible, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The fields of one serialised row.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    items: Vec<(Cow<'static, str>, Value)>,
    /// Where the next lookup starts (one past the previous hit).
    hint: AtomicUsize,
}

impl Fields {
    /// Serialises `row` (a struct, or anything that serialises to a JSON object).
    pub(crate) fn of<T: Serialize + ?Sized>(row: &T) -> Result<Fields, serde_json::Error> {
        match row.serialize(Capture) {
            Ok(f) => Ok(f),
            // Not a plain struct (e.g. a map): the general path.
            Err(CaptureError::NotAStruct) => match serde_json::to_value(row)? {
                Value::Object(m) => Ok(Fields::from_map(m)),
                _ => Err(ser::Error::custom(
                    "a row does not serialise to a JSON object",
                )),
            },
            Err(CaptureError::Json(e)) => Err(e),
        }
    }

    pub(crate) fn from_map(m: Map<String, Value>) -> Fields {
        Fields {
            items: m.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect(),
            hint: AtomicUsize::new(0),
        }
    }

    /// The index of field `name`, searched from one past the previous hit.
    fn find(&self, name: &str) -> Option<usize> {
        let n = self.items.len();
        let start = self.hint.load(Ordering::Relaxed);
        let j = (0..n)
            .map(|i| (start + i) % n)
            .find(|&j| self.items[j].0 == name)?;
        self.hint.store((j + 1) % n, Ordering::Relaxed);
        Some(j)
    }

    /// Moves the value of field `name` out (leaving `null`): for callers that read every field
    /// once and would otherwise clone it.
    pub(crate) fn take(&mut self, name: &str) -> Option<Value> {
        let j = self.find(name)?;
        Some(std::mem::take(&mut self.items[j].1))
    }

    /// The value of field `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.find(name).map(|j| &self.items[j].1)
    }
}

/// Why [`Capture`] stopped.
#[derive(Debug)]
enum CaptureError {
    NotAStruct,
    Json(serde_json::Error),
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaptureError::NotAStruct => f.write_str("not a struct"),
            CaptureError::Json(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CaptureError {}

impl ser::Error for CaptureError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        CaptureError::Json(serde_json::Error::custom(msg))
    }
}

/// A serializer that accepts one struct and captures its fields.
struct Capture;

struct CaptureStruct {
    items: Vec<(Cow<'static, str>, Value)>,
}

impl ser::SerializeStruct for CaptureStruct {
    type Ok = Fields;
    type Error = CaptureError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CaptureError> {
        let v = serde_json::to_value(value).map_err(CaptureError::Json)?;
        self.items.push((Cow::Borrowed(key), v));
        Ok(())
    }

    fn end(self) -> Result<Fields, CaptureError> {
        Ok(Fields {
            items: self.items,
            hint: AtomicUsize::new(0),
        })
    }
}

impl ser::Serializer for Capture {
    type Ok = Fields;
    type Error = CaptureError;
    type SerializeSeq = Impossible<Fields, CaptureError>;
    type SerializeTuple = Impossible<Fields, CaptureError>;
    type SerializeTupleStruct = Impossible<Fields, CaptureError>;
    type SerializeTupleVariant = Impossible<Fields, CaptureError>;
    type SerializeMap = Impossible<Fields, CaptureError>;
    type SerializeStruct = CaptureStruct;
    type SerializeStructVariant = Impossible<Fields, CaptureError>;

    serializer_refuses!(Fields, CaptureError::NotAStruct; scalars);
    serializer_refuses!(Fields, CaptureError::NotAStruct; compounds);
    serializer_unwraps!(Fields);

    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<CaptureStruct, CaptureError> {
        Ok(CaptureStruct {
            items: Vec::with_capacity(len),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Row {
        #[serde(rename = "ID")]
        id: u32,
        #[serde(rename = "Name")]
        name: Option<String>,
        #[serde(rename = "Nav", skip_serializing_if = "Option::is_none")]
        nav: Option<u8>,
        #[serde(rename = "When")]
        when: Vec<u8>,
    }

    #[test]
    fn captures_struct_fields_in_order_and_finds_them_in_any_order() {
        let f = Fields::of(&Row {
            id: 7,
            name: None,
            nav: None,
            when: vec![1, 2],
        })
        .unwrap();
        assert_eq!(f.items.len(), 3);
        assert_eq!(f.get("ID"), Some(&json!(7)));
        assert_eq!(f.get("Name"), Some(&Value::Null));
        assert_eq!(f.get("When"), Some(&json!([1, 2])));
        // Backwards and missing names.
        assert_eq!(f.get("ID"), Some(&json!(7)));
        assert_eq!(f.get("Nav"), None);
        assert_eq!(f.get("When"), Some(&json!([1, 2])));
    }

    #[test]
    fn take_moves_a_value_out_once() {
        let mut f = Fields::of(&Row {
            id: 7,
            name: Some("x".into()),
            nav: None,
            when: vec![],
        })
        .unwrap();
        assert_eq!(f.take("Name"), Some(json!("x")));
        assert_eq!(f.take("Name"), Some(Value::Null));
        assert_eq!(f.take("ID"), Some(json!(7)));
        assert_eq!(f.take("Nav"), None);
    }

    #[test]
    fn a_map_takes_the_general_path_and_a_scalar_is_an_error() {
        let mut m = BTreeMap::new();
        m.insert("A".to_string(), 1);
        let f = Fields::of(&m).unwrap();
        assert_eq!(f.get("A"), Some(&json!(1)));
        assert!(Fields::of(&5).is_err());
    }
}

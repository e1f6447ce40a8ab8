//! Navigation properties: `#[serde(default, with = "::odata_runtime::wire::nav")]` on fields of type
//! `Option<Box<T>>` (to-one) and `Option<Vec<T>>` (to-many).
//!
//! A navigation property is in the payload only when the request expands it. What services send:
//! - OData V2 (JSON verbose) unexpanded: `{"__deferred": {"uri": "…"}}` → `None`;
//! - V2 expanded to-many: `{"results": [ … ]}` (V2 JSON §2.2.6.3.9), V3/V4: a bare array;
//! - expanded to-one: the object; `null` when there is no related entity → `None`.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implemented for `Box<T>` (to-one) and `Vec<T>` (to-many).
pub trait Expandable: Sized {
    fn from_json(value: serde_json::Value) -> Result<Option<Self>, serde_json::Error>;
}

fn is_deferred(v: &serde_json::Value) -> bool {
    v.as_object().is_some_and(|o| o.contains_key("__deferred"))
}

impl<T: DeserializeOwned> Expandable for Box<T> {
    fn from_json(value: serde_json::Value) -> Result<Option<Self>, serde_json::Error> {
        if value.is_null() || is_deferred(&value) {
            return Ok(None);
        }
        serde_json::from_value(value).map(|t| Some(Box::new(t)))
    }
}

impl<T: DeserializeOwned> Expandable for Vec<T> {
    fn from_json(value: serde_json::Value) -> Result<Option<Self>, serde_json::Error> {
        if value.is_null() || is_deferred(&value) {
            return Ok(None);
        }
        let value = match value {
            serde_json::Value::Object(mut o) if o.contains_key("results") => {
                o.remove("results").unwrap_or(serde_json::Value::Null)
            }
            other => other,
        };
        serde_json::from_value(value).map(Some)
    }
}

pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Expandable,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    T::from_json(value).map_err(D::Error::custom)
}

pub fn serialize<S, T>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    T: Serialize,
{
    value.serialize(serializer)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Line {
        #[serde(rename = "ID")]
        id: i32,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Order {
        #[serde(
            rename = "Lines",
            default,
            skip_serializing_if = "Option::is_none",
            with = "crate::wire::nav"
        )]
        lines: Option<Vec<Line>>,
        #[serde(
            rename = "First",
            default,
            skip_serializing_if = "Option::is_none",
            with = "crate::wire::nav"
        )]
        first: Option<Box<Line>>,
    }

    #[test]
    fn v2_deferred_and_results_wrapper_and_v4_arrays() {
        let o: Order = serde_json::from_str(
            r#"{"Lines": {"__deferred": {"uri": "x"}}, "First": {"__deferred": {}}}"#,
        )
        .unwrap();
        assert_eq!(
            o,
            Order {
                lines: None,
                first: None
            }
        );
        let o: Order = serde_json::from_str(
            r#"{"Lines": {"results": [{"ID": 1}, {"ID": 2}]}, "First": {"ID": 7}}"#,
        )
        .unwrap();
        assert_eq!(o.lines.as_ref().map(Vec::len), Some(2));
        assert_eq!(o.first.as_ref().map(|l| l.id), Some(7));
        let o: Order = serde_json::from_str(r#"{"Lines": [{"ID": 3}], "First": null}"#).unwrap();
        assert_eq!(o.lines, Some(vec![Line { id: 3 }]));
        assert_eq!(o.first, None);
        let o: Order = serde_json::from_str("{}").unwrap();
        assert_eq!(
            o,
            Order {
                lines: None,
                first: None
            }
        );
        assert_eq!(serde_json::to_string(&o).unwrap(), "{}");
        let e = serde_json::from_str::<Order>(r#"{"Lines": [{"ID": "x"}]}"#).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
    }
}

//! `Edm.Binary`.

use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, Engine, GeneralPurpose, GeneralPurposeConfig};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};
use serde_with::{DeserializeAs, SerializeAs};

/// `Edm.Binary` as base64 text.
///
/// OData V2 JSON and OData JSON Format v4.01 §7.1 use standard base64 (RFC 4648 §4) in JSON
/// payloads, while V4 URL literals and several servers use the URL-safe alphabet (RFC 4648 §5),
/// and padding is not always present. Deserialising accepts both alphabets, with or without
/// padding, and ignores ASCII whitespace (line-wrapped MIME-style output). Serialises the standard
/// alphabet with padding.
pub struct Base64;

const PADDING_OPTIONAL: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, PADDING_OPTIONAL);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, PADDING_OPTIONAL);

/// Decodes standard or URL-safe base64, with or without padding.
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String;
    let text = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        compact = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        compact.as_str()
    } else {
        text
    };
    if text.contains(['-', '_']) {
        URL_SAFE_LENIENT.decode(text)
    } else {
        STANDARD_LENIENT.decode(text)
    }
}

impl<'de> DeserializeAs<'de, Vec<u8>> for Base64 {
    fn deserialize_as<D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_str(Base64Visitor)
    }
}

impl SerializeAs<Vec<u8>> for Base64 {
    fn serialize_as<S: Serializer>(source: &Vec<u8>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(source))
    }
}

struct Base64Visitor;

impl Visitor<'_> for Base64Visitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a base64 string (Edm.Binary)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        decode(v).map_err(|err| {
            E::custom(format_args!(
                "invalid Edm.Binary value {v:?}: expected base64 ({err})"
            ))
        })
    }
}

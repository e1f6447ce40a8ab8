//! Values of OData V4 flags enumerations (`<EnumType IsFlags="true">`, OData CSDL v4.01 §10.2).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::edm_enum::ODataEnum;

/// A value of a flags enumeration: the selected members, in the order received.
///
/// The JSON form (OData JSON Format v4.01 §7.1, ABNF `enumValue`) is a string of comma-separated
/// members, each a member name or an integer value: `"Read,Write"`, `"Read, 4"`. Deserialising
/// also accepts a JSON integer. Integers are decomposed into members by bits: members are tried in
/// declaration order ([`ODataEnum::MEMBERS`]) and one is taken when all its bits are set and it
/// adds at least one bit not yet covered (so a composite member such as `ReadWrite = 3` is taken
/// only when declared before its parts). Bits that no member covers become one fallback value,
/// `E::from_wire(&leftover.to_string())`, so no information is lost. Unknown names also go to the
/// fallback; deserialising never fails for a string or an integer.
///
/// Serialises as the members' wire names joined with `,`; an empty value serialises as `"0"`
/// (the ABNF needs at least one value, and `0` is the value with no flag set).
#[derive(Debug, Clone, PartialEq)]
pub struct Flags<E>(pub Vec<E>);

impl<E> Default for Flags<E> {
    fn default() -> Self {
        Flags(Vec::new())
    }
}

impl<E> From<Vec<E>> for Flags<E> {
    fn from(members: Vec<E>) -> Self {
        Flags(members)
    }
}

impl<E: PartialEq> Flags<E> {
    /// Whether `member` is selected.
    pub fn contains(&self, member: &E) -> bool {
        self.0.contains(member)
    }
}

impl<E: ODataEnum> Flags<E> {
    /// The members whose bits make up `value` (see the type's documentation).
    pub fn from_bits(value: i64) -> Self {
        let mut members = Vec::new();
        let mut remaining = value;
        for (name, bits) in E::MEMBERS {
            if value == 0 {
                if *bits == 0 {
                    members.push(E::from_wire(name));
                    break;
                }
                continue;
            }
            if *bits != 0 && value & bits == *bits && remaining & bits != 0 {
                members.push(E::from_wire(name));
                remaining &= !bits;
            }
        }
        if remaining != 0 {
            members.push(E::from_wire(&remaining.to_string()));
        }
        Flags(members)
    }

    /// Parses the string form: comma-separated member names or integer values, blanks trimmed,
    /// empty pieces ignored. Integer pieces are decomposed like [`Flags::from_bits`].
    pub fn from_wire_str(text: &str) -> Self {
        let mut members = Vec::new();
        for piece in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let is_member = E::MEMBERS.iter().any(|(name, _)| *name == piece);
            match piece.parse::<i64>() {
                Ok(value) if !is_member => members.extend(Self::from_bits(value).0),
                _ => members.push(E::from_wire(piece)),
            }
        }
        Flags(members)
    }

    /// The string form: wire names joined with `,`, or `"0"` when empty.
    pub fn to_wire_string(&self) -> String {
        if self.0.is_empty() {
            return "0".to_owned();
        }
        let names: Vec<&str> = self.0.iter().map(ODataEnum::wire_name).collect();
        names.join(",")
    }
}

impl<E: ODataEnum> Serialize for Flags<E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_wire_string())
    }
}

impl<'de, E: ODataEnum> Deserialize<'de> for Flags<E> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FlagsVisitor(PhantomData))
    }
}

struct FlagsVisitor<E>(PhantomData<E>);

impl<E: ODataEnum> Visitor<'_> for FlagsVisitor<E> {
    type Value = Flags<E>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a comma-separated string of flag names or an integer")
    }

    fn visit_str<Er: de::Error>(self, v: &str) -> Result<Flags<E>, Er> {
        Ok(Flags::from_wire_str(v))
    }

    fn visit_i64<Er: de::Error>(self, v: i64) -> Result<Flags<E>, Er> {
        Ok(Flags::from_bits(v))
    }

    fn visit_u64<Er: de::Error>(self, v: u64) -> Result<Flags<E>, Er> {
        match i64::try_from(v) {
            Ok(v) => Ok(Flags::from_bits(v)),
            Err(_) => Ok(Flags(vec![E::from_wire(&v.to_string())])),
        }
    }
}

//! `serde_with` adapters for the OData JSON forms of primitive types.
//!
//! Each adapter is a unit struct implementing [`serde_with::DeserializeAs`] and
//! [`serde_with::SerializeAs`], used by generated fields as
//!
//! ```text
//! #[serde(with = "::odata_runtime::serde_with::As::<::odata_runtime::wire::Lenient>")]
//! pub id: i64,
//! #[serde(default, with = "::odata_runtime::serde_with::As::<::std::option::Option<::odata_runtime::wire::EdmDateTime>>")]
//! pub modified: ::std::option::Option<::chrono::NaiveDateTime>,
//! ```
//!
//! `serde_with` provides the `Option<A>` (JSON `null` → `None`) and `Vec<A>` impls; a missing
//! field needs `#[serde(default)]` as usual.
//!
//! Deserialisers are lenient (they accept every form that real V2, V3 and V4 services send);
//! serialisers write one canonical form, documented on each adapter.

mod binary;
pub(crate) mod datetime;
mod lenient;
pub mod nav;

pub use binary::Base64;
pub use datetime::{EdmDate, EdmDateTime, EdmDateTimeOffset, EdmTime, EdmTimeOfDay};
pub use lenient::Lenient;

/// The error every adapter reports for text it cannot read: names the Edm type, quotes the value
/// as received and says what was expected.
pub(crate) fn invalid_value<E: serde::de::Error>(edm_type: &str, value: &str, expected: &str) -> E {
    E::custom(format_args!(
        "invalid {edm_type} value {value:?}: expected {expected}"
    ))
}

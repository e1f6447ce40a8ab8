//! Value types for Edm types that have no good counterpart in the Rust ecosystem.

mod duration;
mod flags;

pub(crate) use duration::{fraction_to_nanos, parse_duration};
pub use duration::{InvalidDuration, IsoDuration};
pub use flags::Flags;

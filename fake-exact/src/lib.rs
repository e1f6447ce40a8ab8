//! A local stand-in for Exact Online.
//!
//! * [`metadata_convert`]: derives OData V2 `$metadata` documents (one per Exact API area) from the
//!   scraped Exact Online REST API reference, because Exact does not publish its `$metadata`.
//!   The binary `exact-metadata` is its command-line front end.
//!
//! * [`server`]: the fake Exact Online HTTP server ([`FakeExact::start`]); the binary
//!   `fake-exact` serves it on a given loopback address.

pub mod metadata_convert;
pub mod server;

pub use server::{Clock, Config, FakeExact, Faults, Handle, Stats, Violation};

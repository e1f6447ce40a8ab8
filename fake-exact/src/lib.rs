//! A local stand-in for Exact Online.
//!
//! * [`metadata_convert`]: derives OData V2 `$metadata` documents (one per Exact API area) from the
//!   scraped Exact Online REST API reference, because Exact does not publish its `$metadata`.
//!   The binary `exact-metadata` is its command-line front end.
//!
//! The fake HTTP server will live in this crate too.

pub mod metadata_convert;

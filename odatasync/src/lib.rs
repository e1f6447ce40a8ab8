//! `odatasync`: replicate OData services into SQLite or PostgreSQL with the entity types of the
//! `generated` crate. The CLI (`src/main.rs`) is a thin layer over this library:
//!
//! * [`service::Service`]: a `metadata-cache/<service>/` folder and its generated tables;
//! * [`connect`]: the client (credentials from the environment, encrypted token store in the
//!   target database, first login, divisions);
//! * [`plan`]: which entities, in which order (`config.json`: `skip`, `dependsOn`, ...);
//! * [`run`]: runs a plan over divisions, records every run, reports what changed;
//! * [`export`], [`ingest`]: change files out (`sync --export`) and in (`ingest`);
//! * [`worker`], [`schedules`]: scale-out workers sharing a PostgreSQL queue, and the
//!   config.json `schedule` slots they enqueue;
//! * [`status`], [`demo`].

pub mod connect;
pub mod demo;
pub mod error;
pub mod export;
pub mod ingest;
pub mod keys;
pub mod plan;
pub mod refresh;
pub mod run;
pub mod schedules;
pub mod serve;
pub mod service;
pub mod status;
pub mod webhooks;
pub mod worker;

pub use error::Error;

//! The lake I/O shared by [`crate::crawl`] and [`crate::step`]: S3 access ([`s3`]), the
//! Iceberg REST catalog through iceberg-rust ([`catalog`]) and the raw REST calls it lacks
//! ([`rest`]), Arrow schemas normalized to Iceberg types ([`schema`]) and the Parquet data file
//! writer ([`writer`]).
//!
//! Nothing here knows about crawlers or workflow steps: what a crawl or a step decides lives in
//! its own module, which calls into this one (never the other way round). Errors are
//! [`LakeError`] (the run fails) and [`ReadError`] (one object could not be read).

pub mod catalog;
pub mod error;
pub mod rest;
pub mod s3;
pub mod schema;
pub mod writer;

pub use error::{LakeError, ReadError};

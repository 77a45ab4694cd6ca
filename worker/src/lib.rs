//! lakeform data plane (crawler, workflow steps).
//!
//! [`crawl`] is the crawler engine (DESIGN.md §7): list objects under zone prefixes, classify
//! them, infer their schemas from footers, headers and samples, group them into tables with
//! partitions, and register the tables in the Iceberg REST catalog.
//!
//! [`step`] runs workflow steps: SQL over the catalog (DataFusion) and database extracts.
//!
//! [`lake`] is the lake I/O both share: S3, the Iceberg REST catalog, REST commits, schema
//! normalization and the Parquet writer. `crawl` and `step` depend on `lake`, never on each
//! other.

pub mod crawl;
pub mod lake;
pub mod step;

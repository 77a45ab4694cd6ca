//! lakeform data plane (crawler, workflow steps).
//!
//! [`crawl`] is the crawler engine (DESIGN.md §7): list objects under zone prefixes, classify
//! them, infer their schemas from footers, headers and samples, group them into tables with
//! partitions, and register the tables in the Iceberg REST catalog.
//!
//! [`step`] runs workflow steps: SQL over the catalog (DataFusion) and database extracts.

pub mod crawl;
pub mod step;

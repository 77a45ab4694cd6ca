//! A managed lake for real: MinIO, PostgreSQL, the Nessie catalog and a Trino coordinator run as
//! pods on the node from images built here (`images/build-lake`, named by the
//! `LAKEFORM_E2E_<NAME>_IMAGE` variables `e2e/run` sets), and the lake answers SQL.
//!
//! One scenario, in the order a platform team meets it: the DataLake becomes Ready with every
//! component's pods Ready; files put into its own MinIO are crawled into a table in Nessie;
//! `lakeform query` prints the table's count and sum as Trino computes them, and PyIceberg
//! (reading the files Nessie's metadata names) agrees; a workgroup's `maxScanBytes` makes Trino
//! itself refuse a query; `configOverrides` and `podOverrides` reach the running coordinator;
//! crawls sign with the Crawler's own S3 identity, and a data-location Grant gives a principal
//! keys that MinIO honours under the granted prefix only (`identities`).
//! Deleted with `Retain`, the lake leaves its data, credentials and volumes, and the same
//! manifest applied again answers with the same rows; deleted with `Delete`, nothing is left.

mod identities;
mod scenario;
pub mod support;

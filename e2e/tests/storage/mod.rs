//! DataLake storage against the real API server and MinIO, with the real `lakeform run`
//! operator process (issue: DataLake controller, part 1). `e2e/run storage` selects these.

mod buckets;
pub mod common;
mod crash;
mod deletion;
mod failures;
mod managed;

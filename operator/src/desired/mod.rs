//! Pure functions from a validated spec to the desired objects. Nothing here talks to the
//! network; every builder is unit-tested from YAML fixtures.

pub mod buckets;
pub mod connection;
pub mod crawler;
pub mod lake;
pub mod lakekeeper;
pub mod meta;
pub mod minio;
pub mod set;
pub mod spark;
pub mod trino;
pub mod workflow;
pub mod workflow_access;
pub mod workflow_events;

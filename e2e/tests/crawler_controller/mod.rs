//! The Crawler controller (issue 8) against the real API server, CronJob and Job controllers,
//! the real node, MinIO and the REST catalog, with the real `lakeform run` operator.
//! `e2e/run crawler-controller` selects these.

pub mod common;
mod events;
mod invalid;
mod on_demand;
mod rbac;
mod scheduled;

//! The local control plane itself: the real Job, CronJob and garbage-collector controllers with
//! Jobs running as containers on the real node, and the API server's validation of our CRDs.

pub mod common;
mod gc;
mod invalid;
mod jobs;
mod lake_io;

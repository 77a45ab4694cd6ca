//! The e2e suite, one test binary against the environment `e2e/up` starts (see `e2e/run`).
//! Every test works in its own namespace; `cargo test --test e2e -- controlplane` selects the
//! control-plane tests.

mod blueprint;
mod catalog;
mod chart;
mod cluster;
mod controlplane;
mod crawler;
mod crawler_controller;
mod grants;
mod managed_lake;
mod storage;
mod workflow;

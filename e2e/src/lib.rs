//! Shared harness for the e2e suite.
//!
//! The suite runs against the environment that `e2e/up` starts (DESIGN.md §5): a real
//! kube-apiserver + kube-controller-manager, MinIO, the Iceberg REST catalog and the pod runner
//! (`src/bin/pod-runner.rs`, the test-only stand-in for a kubelet). `e2e/up` describes that
//! environment in `$LAKEFORM_CACHE/run/env`; [`Env::load`] reads it.
//!
//! Typical test:
//!
//! ```no_run
//! # async fn t() -> anyhow::Result<()> {
//! let ctx = lakeform_e2e::TestContext::new("jobs").await?;
//! // ... create objects in ctx.ns ...
//! # Ok(()) }
//! ```

pub mod apply;
pub mod catalog_server;
pub mod env;
pub mod lake;
pub mod operator;
pub mod podspec;
pub mod wait;

mod context;

pub use apply::{ApplyOptions, apply_yaml_file, apply_yaml_str, split_documents};
pub use context::{POD_RUNNER_NODE, TestContext, pod_runner_heartbeat_age};
pub use env::{Env, lakeform_bin, repo_root};
pub use wait::{describe, has_condition, wait_for, wait_for_any, wait_for_deleted};

/// The label every object lakeform creates carries (DESIGN.md §6); the pod runner only picks up
/// pods with this label.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on our objects.
pub const MANAGED_BY_VALUE: &str = "lakeform";

//! Shared harness for the e2e suite.
//!
//! The suite runs against the environment that `e2e/up` starts (DESIGN.md §5, §10): a real
//! kube-apiserver + kube-controller-manager and a real node (containerd, kubelet, kube-proxy,
//! kube-scheduler, CoreDNS, the local-path provisioner), MinIO, the Iceberg REST catalog and
//! PostgreSQL. `e2e/up` describes that environment in `$LAKEFORM_CACHE/run/env`; [`Env::load`]
//! reads it.
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
pub mod wait;

mod context;

pub use apply::{ApplyOptions, apply_yaml_file, apply_yaml_str, split_documents};
pub use context::{TestContext, node_ready};
pub use env::{Env, lakeform_bin, repo_root};
pub use wait::{describe, has_condition, wait_for, wait_for_any, wait_for_deleted};

/// The label every object lakeform creates carries (DESIGN.md §6).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on our objects.
pub const MANAGED_BY_VALUE: &str = "lakeform";

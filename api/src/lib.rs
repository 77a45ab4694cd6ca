//! lakeform.dev/v1alpha1 API types: one module per kind, the CRD set, pure validators for
//! what a schema cannot check, and how a lake's storage is reached ([`connection`], shared by
//! the operator and the worker).
pub mod blueprint;
pub mod common;
pub mod connection;
pub mod crawler;
pub mod crd;
pub mod datalake;
pub mod grant;
pub mod validate;
pub mod workflow;
pub mod workflow_run;

pub use blueprint::{Blueprint, BlueprintSpec, ClusterBlueprint};
pub use crawler::{Crawler, CrawlerSpec};
pub use datalake::{DataLake, DataLakeSpec};
pub use grant::{Grant, GrantSpec};
pub use workflow::{Workflow, WorkflowSpec};
pub use workflow_run::{WorkflowRun, WorkflowRunSpec};

//! Workflow steps run by the worker inside a step Job (`lakeform step`): [`sql`] and
//! [`extract`]. The Job's environment carries the step (`LAKEFORM_STEP_SPEC`, JSON), the run's
//! identity and the lake connection; the report (JSON) goes to stdout.

pub mod commit;
pub mod error;
pub mod extract;
pub mod merge;
pub mod objects;
pub mod partition;
pub mod sql;
pub mod table;

use std::collections::HashMap;
use std::sync::Arc;

use lakeform_api::connection::{DEFAULT_REGION, S3Connection};
use lakeform_api::workflow::Step;
use serde::Serialize;

use crate::lake::catalog::{CatalogConn, connect};
pub use error::StepError;
use extract::bookmark::Bookmarks;
use table::Lake;

/// Environment variable holding the step definition (JSON of one `spec.steps[]` entry).
pub const SPEC_ENV: &str = "LAKEFORM_STEP_SPEC";
/// Environment variable holding an extract's connection URL (from its Secret).
pub const SOURCE_URL_ENV: &str = "LAKEFORM_SOURCE_URL";
/// Environment variable naming the Workflow's bookmark ConfigMap.
pub const BOOKMARKS_ENV: &str = "LAKEFORM_BOOKMARKS";
/// Environment variable with the Workflow's namespace.
pub const NAMESPACE_ENV: &str = "LAKEFORM_NAMESPACE";
/// Environment variable with the step's index in the Workflow's `spec.steps` (errors name
/// fields as `spec.steps[<index>]…`).
pub const INDEX_ENV: &str = "LAKEFORM_STEP_INDEX";

/// `lakeform step`: run one `sql` or `extract` step.
#[derive(clap::Args, Debug, Clone)]
pub struct StepArgs {
    /// The step, as the JSON of one Workflow `spec.steps[]` entry.
    #[arg(long, env = SPEC_ENV, value_name = "JSON", hide_env_values = true)]
    pub spec: String,
    /// The workflow run (names data files and snapshot properties).
    #[arg(long, env = "LAKEFORM_RUN_ID", default_value = "manual")]
    pub run_id: String,
    /// The workflow (snapshot properties).
    #[arg(long, env = "LAKEFORM_WORKFLOW", default_value = "")]
    pub workflow: String,
    /// Namespace of the Workflow (for the bookmark ConfigMap).
    #[arg(long, env = NAMESPACE_ENV)]
    pub namespace: Option<String>,
    /// The bookmark ConfigMap of incremental extracts. Unset: bookmarks live only for this run.
    #[arg(long, env = BOOKMARKS_ENV)]
    pub bookmarks: Option<String>,
    /// The step's index in the Workflow's `spec.steps`, for field paths in errors.
    #[arg(long, env = INDEX_ENV)]
    pub step_index: Option<usize>,
}

/// The step report printed on stdout.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<sql::SqlReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<extract::TableReport>,
}

fn env(name: &str) -> Result<String, StepError> {
    std::env::var(name)
        .map_err(|_| StepError::Config(format!("environment variable {name} is not set")))
}

/// The lake connection from the step Job's environment (`LAKEFORM_S3_*`, `LAKEFORM_CATALOG_*`).
pub fn lake_from_env() -> Result<(S3Connection, CatalogConn), StepError> {
    let s3 = S3Connection {
        endpoint: env("LAKEFORM_S3_ENDPOINT")?,
        region: std::env::var("LAKEFORM_S3_REGION").unwrap_or_else(|_| DEFAULT_REGION.into()),
        path_style: std::env::var("LAKEFORM_S3_PATH_STYLE")
            .map(|v| v != "false")
            .unwrap_or(true),
        access_key: env("LAKEFORM_S3_ACCESS_KEY")?,
        secret_key: env("LAKEFORM_S3_SECRET_KEY")?,
    };
    let catalog = CatalogConn {
        uri: env("LAKEFORM_CATALOG_URI").map_err(|_| {
            StepError::Config("the lake has no catalog (LAKEFORM_CATALOG_URI is not set): sql and extract steps write catalog tables".into())
        })?,
        warehouse: std::env::var("LAKEFORM_CATALOG_WAREHOUSE").ok(),
    };
    Ok((s3, catalog))
}

/// Runs the step and prints its report.
pub async fn run(args: StepArgs) -> Result<StepReport, StepError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let step: Step = serde_json::from_str(&args.spec)
        .map_err(|e| StepError::Config(format!("{SPEC_ENV} is not a workflow step: {e}")))?;
    let (s3, conn) = lake_from_env()?;
    let lake = Lake {
        catalog: Arc::new(connect(&conn, &s3).await?),
        conn,
        s3,
    };
    let properties = HashMap::from([
        ("lakeform.workflow".to_string(), args.workflow.clone()),
        ("lakeform.run".to_string(), args.run_id.clone()),
        ("lakeform.step".to_string(), step.name.clone()),
    ]);
    let mut report = StepReport {
        step: step.name.clone(),
        sql: None,
        tables: Vec::new(),
    };
    if let Some(s) = &step.sql {
        let path = match args.step_index {
            Some(i) => format!("spec.steps[{i}].sql"),
            None => "spec.steps[].sql".to_string(),
        };
        report.sql = Some(sql::run_at(&lake, s, &path, &args.run_id, properties).await?);
    } else if let Some(x) = &step.extract {
        let url = env(SOURCE_URL_ENV)?;
        let mut bookmarks = match (&args.bookmarks, &args.namespace) {
            (Some(name), Some(ns)) => {
                let client =
                    kube::Client::try_default()
                        .await
                        .map_err(|source| StepError::Bookmarks {
                            context: "connecting to the cluster".into(),
                            source: Box::new(source),
                        })?;
                Bookmarks::load(client, ns, name).await?
            }
            _ => Bookmarks::in_memory(),
        };
        report.tables = extract::run(
            &lake,
            &step.name,
            x,
            &url,
            &mut bookmarks,
            &args.run_id,
            properties,
        )
        .await?;
    } else {
        return Err(StepError::Config(format!(
            "step {} is neither sql nor extract (crawl steps run `lakeform crawl`)",
            step.name
        )));
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(report)
}

/// [`run`] on a new multi-threaded tokio runtime (for the synchronous CLI).
pub fn run_blocking(args: StepArgs) -> Result<StepReport, StepError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StepError::Runtime)?
        .block_on(run(args))
}

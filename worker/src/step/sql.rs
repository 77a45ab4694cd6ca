//! `sql` steps: statements run by DataFusion over the lake's catalog (every namespace is a
//! schema, so tables are `<database>.<table>`); the last statement's result is written to the
//! target table by `Append`, `Overwrite` or `Merge`. Earlier statements can create views and
//! external tables over zone objects (`s3://<bucket>/…`, the lake's S3). With `partitionBy`
//! the target is identity-partitioned on those result columns and every mode writes one set of
//! data files per partition value.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::CatalogProvider;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use iceberg_datafusion::IcebergCatalogProvider;
use lakeform_api::workflow::{SqlStep, WriteMode};
use serde::Serialize;

use crate::step::commit::overwrite;
use crate::step::error::StepError;
use crate::step::merge::merge;
use crate::step::objects::LakeStores;
use crate::step::partition::PartitionBy;
use crate::step::table::{FileSink, Lake, append, ident, prepare_partitioned};

/// What a SQL step wrote.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SqlReport {
    /// `database.table` written.
    pub target: String,
    /// `Append`, `Overwrite` or `Merge`.
    pub mode: String,
    /// Rows the query produced.
    pub rows: u64,
    /// Merge: rows with a new key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inserted: Option<u64>,
    /// Merge: rows that replaced a row with the same key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<u64>,
    /// Overwrite: rows the table held before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_rows: Option<u64>,
}

/// A DataFusion session whose default catalog has one schema per catalog namespace (views
/// from earlier statements go to its in-memory `public` schema); the Iceberg catalog is also
/// reachable as `lake.<database>.<table>`.
pub async fn session(lake: &Lake) -> Result<SessionContext, StepError> {
    let config = SessionConfig::new().with_information_schema(true);
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(LakeStores::new(lake.s3.clone())))
        .build_arc()
        .map_err(StepError::sql("the SQL runtime"))?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let iceberg = IcebergCatalogProvider::try_new(lake.catalog.clone())
        .await
        .map_err(StepError::catalog(
            "listing the catalog's namespaces and tables",
        ))?;
    let default = ctx
        .catalog("datafusion")
        .ok_or_else(|| StepError::Config("DataFusion has no default catalog".into()))?;
    for ns in iceberg.schema_names() {
        if let Some(schema) = iceberg.schema(&ns) {
            default
                .register_schema(&ns, schema)
                .map_err(StepError::sql(format!("registering namespace {ns}")))?;
        }
    }
    ctx.register_catalog("lake", Arc::new(iceberg));
    Ok(ctx)
}

/// Runs the statements and writes the last one's rows to the target ([`run_at`] for a step
/// whose place in the Workflow is unknown).
pub async fn run(
    lake: &Lake,
    step: &SqlStep,
    run_id: &str,
    properties: HashMap<String, String>,
) -> Result<SqlReport, StepError> {
    run_at(lake, step, "spec.steps[].sql", run_id, properties).await
}

/// [`run`] for the step at `path` (`spec.steps[2].sql`), which errors about its fields name.
pub async fn run_at(
    lake: &Lake,
    step: &SqlStep,
    path: &str,
    run_id: &str,
    properties: HashMap<String, String>,
) -> Result<SqlReport, StepError> {
    let ctx = session(lake).await?;
    let Some((last, before)) = step.statements.split_last() else {
        return Err(StepError::Config(format!("{path}.statements is empty")));
    };
    for (i, s) in before.iter().enumerate() {
        let what = format!("statement {}", i + 1);
        ctx.sql(s)
            .await
            .map_err(StepError::sql(what.clone()))?
            .collect()
            .await
            .map_err(StepError::sql(what))?;
    }
    let what = format!("statement {} (the query)", step.statements.len());
    let df = ctx.sql(last).await.map_err(StepError::sql(what.clone()))?;
    let schema = df.schema().as_arrow().clone();
    let target = ident(&step.target.database, &step.target.table);
    let field = format!("{path}.partitionBy");
    let partition_by = PartitionBy {
        columns: &step.partition_by,
        field: &field,
    };
    let table = prepare_partitioned(
        lake,
        &target,
        &schema,
        Some(partition_by),
        properties.clone(),
    )
    .await?;
    let mut report = SqlReport {
        target: target.to_string(),
        mode: format!("{:?}", step.mode),
        ..Default::default()
    };
    if step.mode == WriteMode::Merge {
        let batches = df.collect().await.map_err(StepError::sql(what))?;
        report.rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let m = merge(lake, &table, batches, &step.merge_keys, run_id, properties).await?;
        report.inserted = Some(m.inserted);
        report.updated = Some(m.updated);
        return Ok(report);
    }
    let mut stream = df
        .execute_stream()
        .await
        .map_err(StepError::sql(what.clone()))?;
    let mut sink = FileSink::open(&table, run_id).await?;
    while let Some(b) = stream.next().await {
        sink.write(&b.map_err(StepError::sql(what.clone()))?)
            .await?;
    }
    report.rows = sink.rows;
    let files = sink.close().await?;
    if step.mode == WriteMode::Overwrite {
        let r = overwrite(lake, &table, files, properties).await?;
        report.replaced_rows = Some(r.removed_rows);
    } else {
        append(lake, &table, files, properties).await?;
    }
    Ok(report)
}

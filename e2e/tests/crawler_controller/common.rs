//! Helpers of the Crawler controller tests: a Ready DataLake on the local MinIO and REST
//! catalog, crawler manifests, waiting for conditions, cleanup of what a test left outside
//! Kubernetes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::ListParams;
use lakeform_api::crawler::Crawler;
use lakeform_e2e::catalog_server::CatalogServer;
use lakeform_e2e::operator::Operator;
use lakeform_e2e::{TestContext, lake, wait_for};

use crate::storage::common::{apply, delete_lake, secret, wait_ready};

/// Time a Crawler may take to settle.
pub const SETTLE: Duration = Duration::from_secs(60);

/// A lake (and database) name unique to the test: buckets and catalog namespaces are shared by
/// every test.
pub fn names(ctx: &TestContext, prefix: &str) -> (String, String) {
    let suffix = &ctx.ns[ctx.ns.len() - 6..];
    (format!("{prefix}{suffix}"), format!("{prefix}_{suffix}"))
}

/// The DataLake manifest: external storage on the local MinIO (Secret `s3`), one zone `raw`
/// (bucket `<lake>-raw`), the REST catalog at `catalog` with `database` in `raw`. Data is
/// retained.
pub fn lake_yaml(ctx: &TestContext, catalog: &str, lake: &str, database: &str) -> String {
    format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: DataLake
metadata: {{name: {lake}}}
spec:
  storage:
    deletionPolicy: Retain
    external:
      endpoint: {endpoint}
      region: {region}
      credentials: {{secretName: s3}}
  zones:
    - name: raw
  catalog:
    external:
      uri: {catalog}
      warehouse: {warehouse}
    databases:
      - name: {database}
        zone: raw
",
        endpoint = ctx.env.s3_endpoint,
        region = ctx.env.s3_region,
        warehouse = ctx.env.catalog_warehouse,
    )
}

/// Create the credentials Secret and the DataLake, and wait until the lake is Ready.
pub async fn ready_lake(
    ctx: &TestContext,
    catalog: &str,
    lake: &str,
    database: &str,
) -> Result<()> {
    secret(ctx, "s3", &ctx.env.s3_access_key, &ctx.env.s3_secret_key).await?;
    apply(ctx, &lake_yaml(ctx, catalog, lake, database)).await?;
    wait_ready(ctx, lake).await.map(drop)
}

/// A Crawler manifest over `raw/data/` with one table per first-level folder; `extra` is
/// appended under `spec:` (indented by two spaces).
pub fn crawler_yaml(name: &str, lake: &str, database: &str, extra: &str) -> String {
    format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: Crawler
metadata: {{name: {name}}}
spec:
  lakeRef: {{name: {lake}}}
  database: {database}
  targets:
    - zone: raw
      prefix: data/
  grouping: {{tableLevel: 1}}
{extra}"
    )
}

/// The condition `ctype` of a crawler as (status, reason).
pub fn condition(c: &Crawler, ctype: &str) -> Option<(String, String)> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|x| x.type_ == ctype)
        .map(|x| (x.status.clone(), x.reason.clone()))
}

/// Wait until the crawler's `Ready` has `status`/`reason` for its current generation.
pub async fn wait_ready_is(
    ctx: &TestContext,
    name: &str,
    status: &str,
    reason: &str,
) -> Result<Crawler> {
    let want = (status.to_string(), reason.to_string());
    wait_for(
        &ctx.api::<Crawler>(),
        name,
        &format!("Crawler Ready={status} ({reason})"),
        SETTLE,
        move |c: Option<&Crawler>| {
            c.is_some_and(|c| {
                c.status.as_ref().and_then(|s| s.observed_generation) == c.metadata.generation
                    && condition(c, "Ready").as_ref() == Some(&want)
            })
        },
    )
    .await
}

/// Does the crawler's CronJob (`<crawler>-crawl`) exist?
pub async fn cronjob_exists(ctx: &TestContext, crawler: &str) -> Result<bool> {
    Ok(ctx
        .api::<CronJob>()
        .get_opt(&format!("{crawler}-crawl"))
        .await?
        .is_some())
}

/// The Jobs of a crawler (label `lakeform.dev/crawler`), oldest first.
pub async fn crawler_jobs(ctx: &TestContext, crawler: &str) -> Result<Vec<Job>> {
    let mut jobs = ctx
        .api::<Job>()
        .list(&ListParams::default().labels(&format!("lakeform.dev/crawler={crawler}")))
        .await?
        .items;
    jobs.sort_by_key(|j| j.metadata.creation_timestamp.clone().map(|t| t.0));
    Ok(jobs)
}

/// A small CSV table: `id,name,amount` with `rows` rows starting at `start`.
pub fn csv(start: i64, rows: i64) -> Vec<u8> {
    let mut s = String::from("id,name,amount\n");
    for i in start..start + rows {
        s.push_str(&format!("{i},item-{},{}.5\n", i % 5, i % 9));
    }
    s.into_bytes()
}

/// A small Parquet file: `id` (long), `host` (string), `value` (double).
pub fn parquet(start: i64, rows: i64) -> Result<Vec<u8>> {
    let ids: Vec<i64> = (start..start + rows).collect();
    let hosts: Vec<String> = ids.iter().map(|i| format!("h{}", i % 3)).collect();
    let values: Vec<f64> = ids.iter().map(|i| (*i % 7) as f64 / 2.0).collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("host", Arc::new(StringArray::from(hosts)) as ArrayRef),
        ("value", Arc::new(Float64Array::from(values)) as ArrayRef),
    ])?;
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None)?;
    w.write(&batch)?;
    w.close()?;
    Ok(out)
}

/// Upload the test corpus into `<lake>-raw/data/`: two CSV files of `orders` (30 + 20 rows) and
/// two Parquet files of `metrics` (25 + 15 rows). Returns the number of objects.
pub async fn upload_corpus(ctx: &TestContext, lake_name: &str) -> Result<usize> {
    let s3 = lake::s3_client(&ctx.env);
    let bucket = format!("{lake_name}-raw");
    let objects = vec![
        ("data/orders/part-1.csv", csv(0, 30)),
        ("data/orders/part-2.csv", csv(30, 20)),
        ("data/metrics/a.parquet", parquet(0, 25)?),
        ("data/metrics/b.parquet", parquet(100, 15)?),
    ];
    let n = objects.len();
    for (key, body) in objects {
        lake::put_object(&s3, &bucket, key, body).await?;
    }
    Ok(n)
}

/// Remove what a test left outside Kubernetes: the DataLake (Retain: its finalizer only lets
/// go) and the bucket. The catalog is the test's own ([`catalog`]), its tables go with it.
pub async fn cleanup(ctx: &TestContext, lake_name: &str) {
    if let Err(e) = delete_lake(ctx, lake_name).await {
        eprintln!("cleanup: DataLake {lake_name}: {e:#}");
    }
    let s3 = lake::s3_client(&ctx.env);
    let _ = lake::delete_bucket(&s3, &format!("{lake_name}-raw")).await;
}

/// What a staged scenario needs besides a namespace, a catalog and an operator.
#[derive(Clone, Copy, Debug, Default)]
pub struct Needs {
    /// The node (the scenario runs Jobs).
    pub jobs: bool,
    /// The operator's bucket-notification receiver (such tests take turns).
    pub events: bool,
}

/// Run `scenario(ctx, catalog, lake, database)` in a new namespace `e2e-<prefix>-…`, with a
/// REST catalog of its own, lake and database names made from `short`, and a `lakeform run`
/// operator; then clean up while the operator still runs (it removes the DataLake's
/// finalizer).
pub async fn staged(
    prefix: &str,
    short: &str,
    needs: Needs,
    scenario: impl AsyncFnOnce(&TestContext, &str, &str, &str) -> Result<()>,
) -> Result<()> {
    lake::install_rustls_provider();
    // MinIO's webhook target delivers to one address: one receiving operator at a time
    static EVENTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _events = match needs.events {
        true => Some(EVENTS.lock().await),
        false => None,
    };
    let ctx = TestContext::new(prefix).await?;
    if needs.jobs {
        ctx.require_node().await?;
    }
    let server = catalog(&ctx).await?;
    let (lake_name, database) = names(&ctx, short);
    let op = if needs.events {
        Operator::start_with_events(&ctx, "3s")?
    } else {
        Operator::start(&ctx, "3s")?
    };
    let result = scenario(&ctx, &server.uri, &lake_name, &database).await;
    cleanup(&ctx, &lake_name).await;
    drop(op);
    result
}

/// A REST catalog of the test's own (the same pinned fixture as the shared one, its own SQLite
/// file): tests running side by side do not contend for one catalog database.
pub async fn catalog(ctx: &TestContext) -> Result<CatalogServer> {
    CatalogServer::start(&ctx.env, &ctx.ns).await
}

/// Run a command and return (success, stdout + stderr).
pub async fn command(program: &std::path::Path, args: &[&str]) -> Result<(bool, String)> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", program.display()))?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// Row counts of `tables` in `database` as PyIceberg reads them (`e2e/py/table_stats.py`).
pub async fn pyiceberg_rows(
    ctx: &TestContext,
    catalog: &str,
    database: &str,
    tables: &[&str],
) -> Result<std::collections::BTreeMap<String, u64>> {
    let env = &ctx.env;
    let script = lakeform_e2e::repo_root().join("e2e/py/table_stats.py");
    let out = tokio::process::Command::new(&env.python)
        .arg(&script)
        .arg("pyiceberg")
        .arg(database)
        .args(tables)
        .envs([
            ("LAKEFORM_S3_ENDPOINT", &env.s3_endpoint),
            ("LAKEFORM_S3_REGION", &env.s3_region),
            ("LAKEFORM_S3_ACCESS_KEY", &env.s3_access_key),
            ("LAKEFORM_S3_SECRET_KEY", &env.s3_secret_key),
            ("LAKEFORM_CATALOG_URI", &catalog.to_string()),
            ("LAKEFORM_CATALOG_WAREHOUSE", &env.catalog_warehouse),
        ])
        .kill_on_drop(true)
        .output()
        .await
        .context("running PyIceberg")?;
    anyhow::ensure!(
        out.status.success(),
        "table_stats.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout)?;
    Ok(stats
        .into_iter()
        .map(|(t, v)| (t, v["rows"].as_u64().unwrap_or(u64::MAX)))
        .collect())
}

/// Set the on-demand annotation `lakeform.dev/run` (and any `others`) on a crawler.
pub async fn annotate(
    ctx: &TestContext,
    crawler: &str,
    annotations: serde_json::Value,
) -> Result<()> {
    ctx.api::<Crawler>()
        .patch(
            crawler,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                &serde_json::json!({"metadata": {"annotations": annotations}}),
            ),
        )
        .await
        .with_context(|| format!("annotating Crawler {crawler}"))?;
    Ok(())
}

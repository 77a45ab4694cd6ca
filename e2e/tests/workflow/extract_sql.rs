//! The ETL DAG of issue 9: extract two PostgreSQL tables incrementally → SQL join into a
//! curated table (merge) → crawl the raw zone, through the real Job controller and the pod
//! runner. DuckDB reads the curated table and it equals the same SQL computed in PostgreSQL;
//! new rows load only themselves (the bookmark moves); a bookmark reset reloads everything
//! without duplicates; a missing Secret is refused naming the field.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use lakeform_api::workflow::Workflow;
use lakeform_api::workflow_run::Phase;
use lakeform_e2e::{TestContext, lake, wait_for};
use tokio_postgres::{Client, NoTls};

use super::common::{RUN, run_yaml, step, wait_finished, wait_ready_reason};
use crate::controlplane::common::only_pod;
use crate::crawler_controller::common::{
    Needs, crawler_yaml, csv, ready_lake, staged, wait_ready_is,
};
use crate::storage::common::{apply, wait_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_join_crawl_dag_with_bookmarks() -> Result<()> {
    staged(
        "wf-extract",
        "wx",
        Needs {
            jobs: true,
            ..Needs::default()
        },
        scenario,
    )
    .await
}

/// A client of the test PostgreSQL at `url`.
pub(crate) async fn pg(url: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| "connecting to the test PostgreSQL")?;
    tokio::spawn(conn);
    Ok(client)
}

/// `url` with its database replaced.
pub(crate) fn with_database(url: &str, db: &str) -> String {
    match url.rfind('/') {
        Some(i) => format!("{}/{db}", &url[..i]),
        None => url.to_string(),
    }
}

const SEED: &str = "
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, country text NOT NULL,
                        updated_at timestamptz NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
                     amount numeric(10,2) NOT NULL, ordered_on date NOT NULL);
CREATE TABLE audit_log (id serial PRIMARY KEY, note text);
INSERT INTO customers
  SELECT i, 'customer ' || i, (ARRAY['DE','FR','NL','PL'])[1 + i % 4],
         timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute'
    FROM generate_series(1, 40) i;
INSERT INTO orders
  SELECT i, 1 + (i * 7) % 40, round((i * 13 % 1000) / 7.0, 2), date '2026-01-01' + (i % 300)
    FROM generate_series(1, 600) i;
INSERT INTO audit_log (note) VALUES ('not extracted');
";

/// The curated table, computed by PostgreSQL itself.
const TRUTH: &str = "SELECT c.country, count(*)::bigint, sum(o.amount)::text
                       FROM orders o JOIN customers c ON c.id = o.customer_id
                      GROUP BY c.country ORDER BY c.country";

async fn truth(client: &Client) -> Result<BTreeMap<String, (i64, String)>> {
    Ok(client
        .query(TRUTH, &[])
        .await?
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                (r.get::<_, i64>(1), r.get::<_, String>(2)),
            )
        })
        .collect())
}

/// The curated table as DuckDB (through the REST catalog) reads it.
async fn curated(
    ctx: &TestContext,
    catalog: &str,
    database: &str,
) -> Result<BTreeMap<String, (i64, String)>> {
    let rows =
        lake::read_with_python_at(&ctx.env, catalog, "duckdb-rest", &[database, "revenue"]).await?;
    rows.iter()
        .map(|r| {
            let country = r["country"].as_str().context("country")?.to_string();
            let orders = r["orders"].as_i64().context("orders")?;
            let revenue = match &r["revenue"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Ok((country, (orders, revenue)))
        })
        .collect()
}

/// Rows of a lake table (PyIceberg), and how many distinct ids they have.
async fn ids(
    ctx: &TestContext,
    catalog: &str,
    database: &str,
    table: &str,
) -> Result<(usize, usize)> {
    let rows =
        lake::read_with_python_at(&ctx.env, catalog, "pyiceberg", &[database, table]).await?;
    let distinct: std::collections::BTreeSet<i64> =
        rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    Ok((rows.len(), distinct.len()))
}

pub(crate) fn extract_report(log: &str) -> Result<serde_json::Value> {
    let start = log
        .find("{\n")
        .context("no JSON report in the step output")?;
    let end = log.rfind('}').context("no JSON report end")?;
    Ok(serde_json::from_str(&log[start..=end])?)
}

pub(crate) async fn step_log(ctx: &TestContext, job: &str) -> Result<String> {
    let pod = only_pod(ctx, job).await?;
    ctx.pod_log(&pod.metadata.name.clone().unwrap_or_default(), "step")
        .await
}

pub(crate) fn table_report<'a>(
    report: &'a serde_json::Value,
    source: &str,
) -> Result<&'a serde_json::Value> {
    report["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["source"] == source))
        .with_context(|| format!("no report for {source}: {report}"))
}

async fn run_ok(ctx: &TestContext, name: &str) -> Result<()> {
    apply(ctx, &run_yaml(name, "etl", "", None)).await?;
    let run = wait_finished(ctx, name).await?;
    ensure!(
        run.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded),
        "run {name}: {:?}",
        run.status
    );
    for s in ["extract", "join", "crawl"] {
        ensure!(step(&run, s)?.phase == Phase::Succeeded, "{name}: step {s}");
    }
    Ok(())
}

async fn scenario(ctx: &TestContext, catalog: &str, lake_name: &str, database: &str) -> Result<()> {
    let db = format!("{}_{}", lake_name.replace('-', "_"), "src");
    let admin = pg(&ctx.env.pg_url).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    let result = with_source(ctx, catalog, lake_name, database, &db).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await?;
    result
}

async fn with_source(
    ctx: &TestContext,
    catalog: &str,
    lake_name: &str,
    database: &str,
    db: &str,
) -> Result<()> {
    let url = with_database(&ctx.env.pg_url, db);
    let source = pg(&url).await?;
    source.batch_execute(SEED).await?;
    ready_lake(ctx, catalog, lake_name, database).await?;
    let s3 = lake::s3_client(&ctx.env);
    lake::put_object(
        &s3,
        &format!("{lake_name}-raw"),
        "data/landing/1.csv",
        csv(0, 5),
    )
    .await?;
    apply(ctx, &crawler_yaml("landing", lake_name, database, "")).await?;
    wait_ready_is(ctx, "landing", "True", "OnDemand").await?;

    let workflow = format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: etl}}
spec:
  lakeRef: {{name: {lake_name}}}
  steps:
    - name: extract
      extract:
        source: {{engine: Postgres, connectionSecretRef: {{name: source-db, key: url}}}}
        tables: [{db}/public/%]
        exclude: [{db}/public/audit%]
        mode: Incremental
        bookmarks:
          - {{table: public.orders, column: id}}
          - {{table: public.customers, column: updated_at}}
        targetDatabase: {database}
        tablePrefix: pg_
    - name: join
      dependsOn: [extract]
      sql:
        statements:
          - >-
            SELECT c.country, count(*) AS orders, sum(o.amount) AS revenue
            FROM {database}.pg_orders o JOIN {database}.pg_customers c ON c.id = o.customer_id
            GROUP BY c.country
        target: {{database: {database}, table: revenue}}
        mode: Merge
        mergeKeys: [country]
    - name: crawl
      dependsOn: [join]
      crawl: {{crawlerRef: {{name: landing}}}}
"
    );
    // the Secret does not exist yet: refused, naming the field
    apply(ctx, &workflow).await?;
    let message = wait_ready_reason(ctx, "etl", "SecretNotFound").await?;
    ensure!(
        message.contains("spec.steps[0] (extract).extract.source.connectionSecretRef")
            && message.contains("source-db"),
        "{message}"
    );
    wait_event(ctx, "etl", "Warning", "SecretNotFound").await?;
    apply(
        ctx,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: source-db}}\nstringData: {{url: '{url}'}}\n"
        ),
    )
    .await?;
    wait_ready_reason(ctx, "etl", "Ready").await?;

    // first run: everything loads; the curated table equals PostgreSQL's answer
    run_ok(ctx, "etl-1").await?;
    let report = extract_report(&step_log(ctx, "etl-1-extract-1").await?)?;
    ensure!(
        table_report(&report, "public.orders")?["inserted"] == 600,
        "{report}"
    );
    ensure!(
        table_report(&report, "public.customers")?["inserted"] == 40,
        "{report}"
    );
    ensure!(
        report["tables"].as_array().map(Vec::len) == Some(2),
        "audit_log is excluded: {report}"
    );
    let want = truth(&source).await?;
    let got = curated(ctx, catalog, database).await?;
    ensure!(
        got == want,
        "curated table (DuckDB) {got:?} != PostgreSQL {want:?}"
    );
    println!("run 1: curated revenue per country equals PostgreSQL's: {got:?}");
    let marks = ctx
        .api::<ConfigMap>()
        .get("etl-bookmarks")
        .await?
        .data
        .unwrap_or_default();
    ensure!(
        marks
            .get("extract.public.orders")
            .is_some_and(|v| v.contains("\"600\"")),
        "bookmarks: {marks:?}"
    );

    // new rows (and one changed customer) load only themselves
    source
        .batch_execute(
            "INSERT INTO orders SELECT i, 1 + (i * 7) % 40, 10.50, date '2026-11-30'
               FROM generate_series(601, 625) i;
             UPDATE customers SET country = 'DE', updated_at = now() WHERE id = 3;",
        )
        .await?;
    run_ok(ctx, "etl-2").await?;
    let report = extract_report(&step_log(ctx, "etl-2-extract-1").await?)?;
    let orders = table_report(&report, "public.orders")?;
    ensure!(
        orders["rowsRead"] == 25 && orders["inserted"] == 25 && orders["updated"] == 0,
        "only the 25 new orders: {orders}"
    );
    let customers = table_report(&report, "public.customers")?;
    ensure!(
        customers["rowsRead"] == 1 && customers["updated"] == 1,
        "only the changed customer: {customers}"
    );
    ensure!(ids(ctx, catalog, database, "pg_orders").await? == (625, 625));
    let want = truth(&source).await?;
    let got = curated(ctx, catalog, database).await?;
    ensure!(got == want, "after new rows: {got:?} != {want:?}");

    // reset the bookmarks: everything is read again, merged without duplicates
    ctx.api::<Workflow>()
        .patch(
            "etl",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"annotations": {"lakeform.dev/reset-bookmarks": "r1"}}})),
        )
        .await?;
    wait_for(
        &ctx.api::<Workflow>(),
        "etl",
        "the bookmark reset to be acted on",
        RUN,
        |w: Option<&Workflow>| {
            w.and_then(|w| w.status.as_ref())
                .is_some_and(|s| s.last_bookmark_reset.as_deref() == Some("r1"))
        },
    )
    .await?;
    run_ok(ctx, "etl-3").await?;
    let report = extract_report(&step_log(ctx, "etl-3-extract-1").await?)?;
    let orders = table_report(&report, "public.orders")?;
    ensure!(
        orders["rowsRead"] == 625 && orders["updated"] == 625 && orders["inserted"] == 0,
        "all rows read again, each replacing itself: {orders}"
    );
    ensure!(
        ids(ctx, catalog, database, "pg_orders").await? == (625, 625),
        "no duplicates after the reset"
    );
    ensure!(ids(ctx, catalog, database, "pg_customers").await? == (40, 40));
    let got = curated(ctx, catalog, database).await?;
    ensure!(got == truth(&source).await?, "after the reset: {got:?}");
    println!("bookmarks: 600 → +25 rows → reset reloads 625 rows, 0 duplicates");
    Ok(())
}

//! The built-in blueprints (`blueprints/`, installed by `e2e/run` as ClusterBlueprints) end to
//! end: instantiated against the local environment, their child workflows run through the real
//! Job controller, and PyIceberg — a client we did not write — reads every table they make.
//!
//! - database-snapshot and database-incremental over a PostgreSQL database of four tables
//!   (one without a primary key and with a compound bookmark, one excluded by a pattern): every
//!   target table equals its source; new rows → the next incremental run loads only those.
//! - log-files over Apache combined logs: the curated table has every line and a real
//!   timestamp column; landing-zone: an uploaded CSV reaches the curated table through a
//!   bucket event.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kube::api::ListParams;
use lakeform_api::workflow_run::{Phase, WorkflowRun};
use lakeform_e2e::{TestContext, lake};
use tokio_postgres::{Client, NoTls};

use super::common::{children, wait_condition};
use crate::controlplane::common::only_pod;
use crate::crawler_controller::common::{Needs, csv, ready_lake, staged};
use crate::storage::common::{apply, eventually};
use crate::workflow::common::{RUN, run_yaml, wait_finished};

/// A blueprint instance (a Workflow naming a ClusterBlueprint).
fn instance(name: &str, lake: &str, blueprint: &str, params: &[(&str, String)]) -> String {
    let params: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("      {k}: {}", serde_json::Value::from(v.as_str())))
        .collect();
    format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: {name}}}
spec:
  lakeRef: {{name: {lake}}}
  blueprintRef:
    kind: ClusterBlueprint
    name: {blueprint}
    parameters:
{}
",
        params.join("\n")
    )
}

/// Run the child workflow `workflow` once by hand; it must succeed.
async fn run_ok(ctx: &TestContext, run: &str, workflow: &str) -> Result<WorkflowRun> {
    apply(ctx, &run_yaml(run, workflow, "", None)).await?;
    let done = wait_finished(ctx, run).await?;
    ensure!(
        done.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded),
        "run {run}: {:?}",
        done.status
    );
    Ok(done)
}

/// Rows of a lake table as PyIceberg reads them.
async fn lake_rows(
    ctx: &TestContext,
    catalog: &str,
    database: &str,
    table: &str,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    lake::read_with_python_at(&ctx.env, catalog, "pyiceberg", &[database, table]).await
}

/// Each row as the text of `columns`, joined by `|`.
fn tuples(
    rows: &[serde_json::Map<String, serde_json::Value>],
    columns: &[&str],
) -> BTreeSet<String> {
    rows.iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| match &r.get(*c) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => "∅".into(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

// ------------------------------------------------------------------------------ databases

const SEED: &str = "
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, amount int NOT NULL);
CREATE TABLE events (day date NOT NULL, seq int NOT NULL, kind text NOT NULL);
CREATE TABLE audit_log (id serial PRIMARY KEY, note text);
INSERT INTO customers SELECT i, 'customer ' || i, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 30) i;
INSERT INTO orders SELECT i, 1 + i % 30, i * 3 FROM generate_series(1, 200) i;
INSERT INTO events SELECT date '2026-11-01' + (i / 10), i % 10, 'kind-' || (i % 3) FROM generate_series(0, 49) i;
INSERT INTO audit_log (note) VALUES ('never copied');
";

/// The columns compared per table, and the same as text in PostgreSQL.
const TABLES: [(&str, &[&str], &str); 3] = [
    (
        "customers",
        &["id", "name"],
        "SELECT id::text || '|' || name FROM customers",
    ),
    (
        "orders",
        &["id", "customer_id", "amount"],
        "SELECT id || '|' || customer_id || '|' || amount FROM orders",
    ),
    (
        "events",
        &["day", "seq", "kind"],
        "SELECT to_char(day, 'YYYY-MM-DD') || '|' || seq || '|' || kind FROM events",
    ),
];

async fn pg(url: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to the test PostgreSQL")?;
    tokio::spawn(conn);
    Ok(client)
}

/// Every target table (`<prefix><table>`) equals its source table; the excluded one is absent.
async fn tables_equal_source(
    ctx: &TestContext,
    catalog: &str,
    database: &str,
    prefix: &str,
    source: &Client,
) -> Result<()> {
    for (table, columns, sql) in TABLES {
        let want: BTreeSet<String> = source
            .query(sql, &[])
            .await?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
        let got = tuples(
            &lake_rows(ctx, catalog, database, &format!("{prefix}{table}")).await?,
            columns,
        );
        ensure!(
            got == want,
            "{prefix}{table}: lake {} rows, source {} rows; lake-only {:?}",
            got.len(),
            want.len(),
            got.difference(&want).take(3).collect::<Vec<_>>()
        );
    }
    ensure!(
        lake_rows(ctx, catalog, database, &format!("{prefix}audit_log"))
            .await
            .is_err(),
        "audit_log is excluded"
    );
    Ok(())
}

/// The extract report the step printed (its JSON), for one source table.
async fn extract_counts(ctx: &TestContext, job: &str, table: &str) -> Result<(i64, i64)> {
    let pod = only_pod(ctx, job).await?;
    let log = ctx
        .pod_log(&pod.metadata.name.clone().unwrap_or_default(), "step")
        .await?;
    let start = log
        .find("{\n")
        .context("no JSON report in the step output")?;
    let end = log.rfind('}').context("no JSON report end")?;
    let report: serde_json::Value = serde_json::from_str(&log[start..=end])?;
    let t = report["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["source"] == table))
        .with_context(|| format!("no report for {table}: {report}"))?;
    Ok((
        t["rowsRead"].as_i64().unwrap_or(-1),
        t["inserted"].as_i64().unwrap_or(-1),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_blueprints_copy_postgres_tables_and_then_only_new_rows() -> Result<()> {
    staged(
        "bp-db",
        "bd",
        Needs {
            jobs: true,
            ..Needs::default()
        },
        databases,
    )
    .await
}

async fn databases(
    ctx: &TestContext,
    catalog: &str,
    lake_name: &str,
    database: &str,
) -> Result<()> {
    let db = format!("{}_src", lake_name.replace('-', "_"));
    let admin = pg(&ctx.env.pg_url).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    let result = with_database(ctx, catalog, lake_name, database, &db).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await?;
    result
}

async fn with_database(
    ctx: &TestContext,
    catalog: &str,
    lake_name: &str,
    database: &str,
    db: &str,
) -> Result<()> {
    let url = match ctx.env.pg_url.rfind('/') {
        Some(i) => format!("{}/{db}", &ctx.env.pg_url[..i]),
        None => anyhow::bail!("LAKEFORM_PG_URL has no database: {}", ctx.env.pg_url),
    };
    let source = pg(&url).await?;
    source.batch_execute(SEED).await?;
    ready_lake(ctx, catalog, lake_name, database).await?;
    apply(ctx, &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: shop-db}}\nstringData: {{url: '{url}'}}\n")).await?;
    let common = |prefix: &str| {
        vec![
            ("connectionSecret", "shop-db".to_string()),
            ("tables", format!("{db}/public/%")),
            ("exclude", format!("{db}/public/audit%")),
            ("targetDatabase", database.to_string()),
            ("tablePrefix", prefix.to_string()),
            ("schedule", "0 3 1 1 *".to_string()),
        ]
    };
    apply(
        ctx,
        &instance("snap", lake_name, "database-snapshot", &common("snap_")),
    )
    .await?;
    let mut inc = common("inc_");
    inc.push((
        "bookmarks",
        "public.orders=id, public.events=day+seq, public.customers=updated_at".into(),
    ));
    apply(
        ctx,
        &instance("inc", lake_name, "database-incremental", &inc),
    )
    .await?;
    wait_condition(ctx, "snap", "Ready", "Expanded").await?;
    wait_condition(ctx, "inc", "Ready", "Expanded").await?;

    run_ok(ctx, "snap-1", "snap-snapshot").await?;
    run_ok(ctx, "inc-1", "inc-load").await?;
    tables_equal_source(ctx, catalog, database, "snap_", &source).await?;
    tables_equal_source(ctx, catalog, database, "inc_", &source).await?;
    println!(
        "database-snapshot and database-incremental: 3 tables equal PostgreSQL's, audit_log excluded"
    );

    source
        .batch_execute(
            "INSERT INTO orders SELECT i, 1 + i % 30, i * 3 FROM generate_series(201, 205) i;
             INSERT INTO events SELECT date '2026-11-06', i, 'late' FROM generate_series(0, 2) i;",
        )
        .await?;
    run_ok(ctx, "inc-2", "inc-load").await?;
    let orders = extract_counts(ctx, "inc-2-extract-1", "public.orders").await?;
    let events = extract_counts(ctx, "inc-2-extract-1", "public.events").await?;
    ensure!(
        orders == (5, 5),
        "only the 5 new orders: (read, inserted) = {orders:?}"
    );
    ensure!(
        events == (3, 3),
        "only the 3 new events past (day, seq): {events:?}"
    );
    tables_equal_source(ctx, catalog, database, "inc_", &source).await?;
    println!("database-incremental: +5 orders, +3 events (compound bookmark day+seq) loaded alone");
    Ok(())
}

// ---------------------------------------------------------------------------------- files

/// `n` Apache combined log lines, one per minute from 2026-11-30 23:50 UTC.
fn access_log(n: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        let (hour, minute) = (23 + (50 + i) / 60, (50 + i) % 60);
        let (day, hour) = if hour >= 24 {
            ("01/Dec", hour - 24)
        } else {
            ("30/Nov", hour)
        };
        s.push_str(&format!(
            "10.0.0.{} - - [{day}/2026:{hour:02}:{minute:02}:00 +0000] \"GET /item/{i} HTTP/1.1\" {} {} \"-\" \"curl/8\"\n",
            i % 250,
            if i % 7 == 0 { 404 } else { 200 },
            100 + i
        ));
    }
    s.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_and_landing_blueprints_curate_logs_and_landed_files() -> Result<()> {
    staged(
        "bp-files",
        "bf",
        Needs {
            jobs: true,
            events: true,
        },
        files,
    )
    .await
}

async fn files(ctx: &TestContext, catalog: &str, lake_name: &str, database: &str) -> Result<()> {
    ready_lake(ctx, catalog, lake_name, database).await?;
    let s3 = lake::s3_client(&ctx.env);
    let bucket = format!("{lake_name}-raw");
    lake::put_object(&s3, &bucket, "logs/web/access-1.log", access_log(40)).await?;
    lake::put_object(&s3, &bucket, "logs/web/access-2.log", access_log(25)).await?;
    let params = [
        ("prefix", "logs/web/".to_string()),
        ("database", database.to_string()),
        ("table", "requests".to_string()),
        ("schedule", "0 3 1 1 *".to_string()),
    ];
    apply(ctx, &instance("weblogs", lake_name, "log-files", &params)).await?;
    wait_condition(ctx, "weblogs", "Ready", "Expanded").await?;
    run_ok(ctx, "weblogs-1", "weblogs-curate").await?;
    let rows = lake_rows(ctx, catalog, database, "requests").await?;
    ensure!(
        rows.len() == 65,
        "every log line curated: {} rows",
        rows.len()
    );
    let times: BTreeSet<String> = rows
        .iter()
        .filter_map(|r| r["event_time"].as_str().map(str::to_string))
        .collect();
    ensure!(
        times.contains("2026-11-30T23:50:00") && times.contains("2026-12-01T00:14:00"),
        "event_time is a timestamp (UTC), not the log's text: {:?}",
        times.iter().take(3).collect::<Vec<_>>()
    );
    let days: BTreeSet<&str> = rows.iter().filter_map(|r| r["day"].as_str()).collect();
    ensure!(
        days == BTreeSet::from(["2026-11-30", "2026-12-01"]),
        "{days:?}"
    );
    println!("log-files: 65 lines → requests with an event_time timestamp (UTC) over 2 days");

    let params = [
        ("prefix", "landing/orders/".to_string()),
        ("database", database.to_string()),
        ("table", "orders_curated".to_string()),
        ("mergeKeys", "id".to_string()),
        ("batchWindowSeconds", "5".to_string()),
    ];
    apply(ctx, &instance("intake", lake_name, "landing-zone", &params)).await?;
    wait_condition(ctx, "intake", "Ready", "Expanded").await?;
    wait_condition(ctx, "intake-convert", "Ready", "Ready").await?;
    lake::put_object(&s3, &bucket, "landing/orders/1.csv", csv(1, 12)).await?;
    let deadline = tokio::time::Instant::now() + RUN;
    let run = loop {
        let runs = ctx
            .api::<WorkflowRun>()
            .list(&ListParams::default().labels("lakeform.dev/workflow=intake-convert"))
            .await?
            .items;
        if let Some(name) = runs.first().and_then(|r| r.metadata.name.clone()) {
            break name;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no run started by the uploaded file"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let done = wait_finished(ctx, &run).await?;
    ensure!(
        done.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded),
        "{:?}",
        done.status
    );
    let rows = lake_rows(ctx, catalog, database, "orders_curated").await?;
    let ids: BTreeSet<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    ensure!(
        rows.len() == 12 && ids == (1..=12).collect(),
        "{} rows, ids {ids:?}",
        rows.len()
    );
    println!("landing-zone: an uploaded CSV → event → crawl → merge: 12 rows in orders_curated");

    // deleting an instance removes its children, never the data
    ctx.api::<lakeform_api::Workflow>()
        .delete("weblogs", &Default::default())
        .await?;
    eventually("the weblogs children garbage-collected", RUN, || async {
        children(ctx, "weblogs").await.is_ok_and(|c| c.is_empty())
    })
    .await?;
    let rows = lake_rows(ctx, catalog, database, "requests").await?;
    ensure!(
        rows.len() == 65,
        "the curated table stays: {} rows",
        rows.len()
    );
    ensure!(
        lake_rows(ctx, catalog, database, "web").await?.len() == 65,
        "the raw table stays"
    );
    println!("weblogs deleted: its crawler and workflow went, both tables (65 rows each) stayed");
    Ok(())
}

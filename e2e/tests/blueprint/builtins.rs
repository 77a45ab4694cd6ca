//! The built-in blueprints (`blueprints/`, installed by `e2e/run` as ClusterBlueprints) end to
//! end: instantiated against the local environment, their child workflows run through the real
//! Job controller, and PyIceberg — a client we did not write — reads every table they make.
//!
//! - database-snapshot and database-incremental over a PostgreSQL and a MariaDB database of
//!   four tables each (one without a primary key and with a compound bookmark, one excluded by a
//!   pattern): every target table equals its source; new rows → the next incremental run loads
//!   only those.
//! - log-files over Apache combined logs: the curated table has every line and a real
//!   timestamp column; landing-zone: an uploaded CSV reaches the curated table through a
//!   bucket event.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kube::api::ListParams;
use lakeform_api::workflow_run::{Phase, WorkflowRun};
use lakeform_e2e::{TestContext, lake};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde_json::json;
use tokio_postgres::Client;

use super::common::{children, wait_condition};
use crate::crawler_controller::common::{Needs, csv, ready_lake, staged};
use crate::storage::common::{apply, eventually};
use crate::workflow::common::{RUN, run_yaml, wait_finished};
use crate::workflow::extract_mysql::{connect, exec_all};
use crate::workflow::extract_sql::{extract_report, pg, step_log, table_report, with_database};

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

/// A source database, PostgreSQL or MariaDB, and the SQL spoken to it.
enum Source {
    Postgres(Client),
    Mysql(Conn),
}

const PG_SEED: &str = "
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

const PG_NEW_ROWS: &str = "
INSERT INTO orders SELECT i, 1 + i % 30, i * 3 FROM generate_series(201, 205) i;
INSERT INTO events SELECT date '2026-11-06', i, 'late' FROM generate_series(0, 2) i;
";

/// The same tables in MariaDB (its sequence engine stands in for generate_series).
const MYSQL_SEED: &str = "
CREATE TABLE customers (id int PRIMARY KEY, name varchar(64) NOT NULL, updated_at datetime(6) NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, amount int NOT NULL);
CREATE TABLE events (day date NOT NULL, seq int NOT NULL, kind varchar(16) NOT NULL);
CREATE TABLE audit_log (id int AUTO_INCREMENT PRIMARY KEY, note text);
INSERT INTO customers SELECT seq, CONCAT('customer ', seq), TIMESTAMP('2026-01-01') + INTERVAL seq MINUTE FROM seq_1_to_30;
INSERT INTO orders SELECT seq, 1 + seq % 30, seq * 3 FROM seq_1_to_200;
INSERT INTO events SELECT DATE('2026-11-01') + INTERVAL (seq DIV 10) DAY, seq % 10, CONCAT('kind-', seq % 3) FROM seq_0_to_49;
INSERT INTO audit_log (note) VALUES ('never copied')
";

const MYSQL_NEW_ROWS: &str = "
INSERT INTO orders SELECT seq, 1 + seq % 30, seq * 3 FROM seq_201_to_205;
INSERT INTO events SELECT DATE('2026-11-06'), seq, 'late' FROM seq_0_to_2
";

/// The tables compared: lake columns, and the same row as text in PostgreSQL and in MariaDB.
const TABLES: [(&str, &[&str], &str, &str); 3] = [
    (
        "customers",
        &["id", "name"],
        "SELECT id::text || '|' || name FROM customers",
        "SELECT CONCAT(id, '|', name) FROM customers",
    ),
    (
        "orders",
        &["id", "customer_id", "amount"],
        "SELECT id || '|' || customer_id || '|' || amount FROM orders",
        "SELECT CONCAT(id, '|', customer_id, '|', amount) FROM orders",
    ),
    (
        "events",
        &["day", "seq", "kind"],
        "SELECT to_char(day, 'YYYY-MM-DD') || '|' || seq || '|' || kind FROM events",
        "SELECT CONCAT(DATE_FORMAT(day, '%Y-%m-%d'), '|', seq, '|', kind) FROM events",
    ),
];

impl Source {
    /// Run statements separated by `;`.
    async fn execute(&mut self, sql: &str) -> Result<()> {
        match self {
            Source::Postgres(c) => c.batch_execute(sql).await.map_err(Into::into),
            Source::Mysql(c) => exec_all(c, sql).await,
        }
    }

    /// Table `i` of [`TABLES`] as text rows.
    async fn rows(&mut self, i: usize) -> Result<BTreeSet<String>> {
        let (_, _, pg_sql, mysql_sql) = TABLES[i];
        Ok(match self {
            Source::Postgres(c) => c
                .query(pg_sql, &[])
                .await?
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect(),
            Source::Mysql(c) => c.query::<String, _>(mysql_sql).await?.into_iter().collect(),
        })
    }
}

/// Every target table (`<prefix><table>`) equals its source table; the excluded one is absent.
async fn tables_equal_source(
    ctx: &TestContext,
    catalog: &str,
    database: &str,
    prefix: &str,
    source: &mut Source,
) -> Result<()> {
    for (i, (table, columns, _, _)) in TABLES.iter().enumerate() {
        let want = source.rows(i).await?;
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

/// `(rowsRead, inserted)` of one source table in the extract report the step printed.
async fn extract_counts(ctx: &TestContext, job: &str, table: &str) -> Result<(i64, i64)> {
    let report = extract_report(&step_log(ctx, job).await?)?;
    let t = table_report(&report, table)?;
    Ok((
        t["rowsRead"].as_i64().unwrap_or(-1),
        t["inserted"].as_i64().unwrap_or(-1),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_blueprints_copy_postgres_tables_and_then_only_new_rows() -> Result<()> {
    staged(
        "bp-pg",
        "bp",
        Needs {
            jobs: true,
            ..Needs::default()
        },
        async |ctx, catalog, lake_name, database| {
            let db = format!("{}_src", lake_name.replace('-', "_"));
            let mut admin = Source::Postgres(pg(&ctx.env.pg_url).await?);
            admin
                .execute(&format!("DROP DATABASE IF EXISTS {db}"))
                .await?;
            // (one statement per call: PostgreSQL runs a batch in a transaction)
            admin.execute(&format!("CREATE DATABASE {db}")).await?;
            let url = with_database(&ctx.env.pg_url, &db);
            let source = Source::Postgres(pg(&url).await?);
            let stage = Stage {
                ctx,
                catalog,
                lake_name,
                database,
                url,
                engine: "Postgres",
                schema: "public".into(),
                db: db.clone(),
            };
            let result = stage.run(source, PG_SEED, PG_NEW_ROWS).await;
            admin
                .execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await?;
            result
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_blueprints_copy_mariadb_tables_and_then_only_new_rows() -> Result<()> {
    staged(
        "bp-maria",
        "bm",
        Needs {
            jobs: true,
            ..Needs::default()
        },
        async |ctx, catalog, lake_name, database| {
            let admin_url = ctx.env.mysql_url.clone().context(
                "LAKEFORM_MYSQL_URL is not in the e2e env: rerun e2e/up (it starts MariaDB)",
            )?;
            let db = format!("{}_src", lake_name.replace('-', "_"));
            let mut admin = Source::Mysql(connect(&admin_url).await?);
            admin
                .execute(&format!(
                    "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"
                ))
                .await?;
            let url = with_database(&admin_url, &db);
            let source = Source::Mysql(connect(&url).await?);
            // in MySQL the schema of database/schema/table is the database itself
            let stage = Stage {
                ctx,
                catalog,
                lake_name,
                database,
                url,
                engine: "Mysql",
                schema: db.clone(),
                db: db.clone(),
            };
            let result = stage.run(source, MYSQL_SEED, MYSQL_NEW_ROWS).await;
            admin
                .execute(&format!("DROP DATABASE IF EXISTS {db}"))
                .await?;
            result
        },
    )
    .await
}

/// One database scenario: the lake, the source database, and how tables are named in it.
struct Stage<'a> {
    ctx: &'a TestContext,
    catalog: &'a str,
    lake_name: &'a str,
    database: &'a str,
    url: String,
    /// `Postgres` or `Mysql`.
    engine: &'static str,
    /// The middle part of `database/schema/table` (and of bookmarks' `schema.table`).
    schema: String,
    db: String,
}

impl Stage<'_> {
    /// The parameters both database blueprints take.
    fn parameters(&self, prefix: &str) -> Vec<(&'static str, String)> {
        let (db, schema) = (&self.db, &self.schema);
        vec![
            ("engine", self.engine.to_string()),
            ("connectionSecret", "source-db".to_string()),
            ("tables", format!("{db}/{schema}/%")),
            ("exclude", format!("{db}/{schema}/audit%")),
            ("targetDatabase", self.database.to_string()),
            ("tablePrefix", prefix.to_string()),
            ("schedule", "0 3 1 1 *".to_string()),
        ]
    }

    async fn run(&self, mut source: Source, seed: &str, new_rows: &str) -> Result<()> {
        let (ctx, catalog, database, schema) =
            (self.ctx, self.catalog, self.database, &self.schema);
        source.execute(seed).await?;
        ready_lake(ctx, catalog, self.lake_name, database).await?;
        apply(ctx, &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: source-db}}\nstringData: {{url: '{}'}}\n", self.url)).await?;
        apply(
            ctx,
            &instance(
                "snap",
                self.lake_name,
                "database-snapshot",
                &self.parameters("snap_"),
            ),
        )
        .await?;
        let mut inc = self.parameters("inc_");
        inc.push((
            "bookmarks",
            format!("{schema}.orders=id, {schema}.events=day+seq, {schema}.customers=updated_at"),
        ));
        inc.push(("partitions", format!("{schema}.events=day")));
        apply(
            ctx,
            &instance("inc", self.lake_name, "database-incremental", &inc),
        )
        .await?;
        wait_condition(ctx, "snap", "Ready", "Expanded").await?;
        wait_condition(ctx, "inc", "Ready", "Expanded").await?;

        run_ok(ctx, "snap-1", "snap-snapshot").await?;
        run_ok(ctx, "inc-1", "inc-load").await?;
        tables_equal_source(ctx, catalog, database, "snap_", &mut source).await?;
        tables_equal_source(ctx, catalog, database, "inc_", &mut source).await?;
        println!(
            "{schema}: database-snapshot and database-incremental: 3 tables equal the source's, audit_log excluded"
        );

        source.execute(new_rows).await?;
        run_ok(ctx, "inc-2", "inc-load").await?;
        let orders = extract_counts(ctx, "inc-2-extract-1", &format!("{schema}.orders")).await?;
        let events = extract_counts(ctx, "inc-2-extract-1", &format!("{schema}.events")).await?;
        ensure!(
            orders == (5, 5),
            "only the 5 new orders: (read, inserted) = {orders:?}"
        );
        ensure!(
            events == (3, 3),
            "only the 3 new events past (day, seq): {events:?}"
        );
        tables_equal_source(ctx, catalog, database, "inc_", &mut source).await?;
        let files = lake::read_with_python_at(
            &ctx.env,
            catalog,
            "pyiceberg-files",
            &[database, "inc_events"],
        )
        .await?;
        let spec = json!([{"name": "day", "source": "day", "transform": "identity"}]);
        let days: BTreeSet<&str> = files
            .iter()
            .filter_map(|f| f["partition"]["day"].as_str())
            .collect();
        ensure!(
            files.iter().all(|f| f["spec"] == spec) && days.len() == 6,
            "inc_events is partitioned by day (6 days): {files:?}"
        );
        println!(
            "{schema}: database-incremental: inc_events partitioned by day (6 partitions); +5 orders, +3 events (compound bookmark day+seq) loaded alone"
        );
        Ok(())
    }
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
    let files = lake::read_with_python_at(
        &ctx.env,
        catalog,
        "pyiceberg-files",
        &[database, "requests"],
    )
    .await?;
    let spec = json!([{"name": "day", "source": "day", "transform": "identity"}]);
    let partitions: BTreeSet<String> = files
        .iter()
        .filter(|f| f["spec"] == spec)
        .filter_map(|f| f["partition"]["day"].as_str().map(str::to_string))
        .collect();
    ensure!(
        files.len() >= 2 && files.iter().all(|f| f["spec"] == spec) && partitions.len() == 2,
        "requests is partitioned by day, one file set per day: {files:?}"
    );
    println!(
        "log-files: 65 lines → requests, partitioned by day (2 partitions), with an event_time timestamp (UTC)"
    );

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

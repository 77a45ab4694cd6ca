//! Extracts from MariaDB (the e2e server `e2e/up` starts; `engine: Mysql`) through the real
//! Job controller and step Jobs on the node: a `Snapshot` workflow, then an `Incremental` one with a
//! single-column bookmark (`customers`), a compound bookmark on a table without a primary key
//! (`ledger`: `(day, line)`, appended) and a `Descending` bookmark (`countdown`); `tmp_scratch`
//! is excluded by a pattern. PyIceberg reads every lake table and it equals the source, value
//! for value (decimals, dates, datetimes, UTC timestamps, booleans, doubles, unsigned
//! bigints); new rows — on the bookmark's last day, past the last line — load only themselves.

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use lakeform_api::workflow_run::Phase;
use lakeform_e2e::{TestContext, lake};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use super::common::{run_yaml, step, wait_finished, wait_ready_reason};
use super::extract_sql::{extract_report, step_log, table_report, with_database};
use crate::crawler_controller::common::{Needs, ready_lake, staged};
use crate::storage::common::apply;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_snapshot_then_incremental_with_compound_and_descending_bookmarks() -> Result<()> {
    staged(
        "wf-mysql",
        "wm",
        Needs {
            jobs: true,
            ..Needs::default()
        },
        scenario,
    )
    .await
}

/// A session in UTC (so `timestamp` columns read back as the UTC instants the lake holds).
/// A connection to the test MariaDB at `url`, in UTC.
pub(crate) async fn connect(url: &str) -> Result<Conn> {
    let opts = OptsBuilder::from_opts(Opts::from_url(url)?)
        .prefer_socket(false)
        .init(vec!["SET time_zone = '+00:00'"]);
    Conn::new(opts)
        .await
        .with_context(|| "connecting to the test MariaDB")
}

/// Run statements separated by `;`, one at a time.
pub(crate) async fn exec_all(conn: &mut Conn, sql: &str) -> Result<()> {
    for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        conn.query_drop(stmt)
            .await
            .with_context(|| format!("running {stmt}"))?;
    }
    Ok(())
}

const SEED: &str = "
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, vip BOOL NOT NULL,
                        balance DECIMAL(10,2) NOT NULL, score DOUBLE NOT NULL, born DATE NOT NULL,
                        updated_at DATETIME NOT NULL);
CREATE TABLE ledger (day DATE NOT NULL, line INT NOT NULL, amount DECIMAL(12,2) NOT NULL,
                     note TEXT, booked_at TIMESTAMP NOT NULL DEFAULT '2026-01-01 00:00:00');
CREATE TABLE countdown (id BIGINT UNSIGNED PRIMARY KEY, seq INT NOT NULL, label VARCHAR(20));
CREATE TABLE tmp_scratch (id INT PRIMARY KEY);
INSERT INTO customers
  SELECT seq, CONCAT('customer ', seq), seq % 3 = 0, seq * 1.25, seq + 0.25,
         DATE '1990-01-01' + INTERVAL seq DAY, TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq MINUTE
    FROM seq_1_to_40;
INSERT INTO ledger
  SELECT DATE '2026-01-01' + INTERVAL (seq DIV 10) DAY, seq % 10, seq * 3.5,
         IF(seq % 7 = 0, NULL, CONCAT('note ', seq)),
         TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq HOUR
    FROM seq_1_to_60;
INSERT INTO countdown SELECT seq, 1000 - seq, CONCAT('t-', seq) FROM seq_1_to_30;
INSERT INTO tmp_scratch VALUES (1);
";

/// New rows: a changed and five new customers; ledger lines past the compound bookmark
/// `(2026-01-07, 0)` (same day, later lines, and the next day); countdown rows below its
/// smallest `seq`.
const CHANGES: &str = "
UPDATE customers SET vip = 1, updated_at = '2026-06-01 00:00:00' WHERE id = 4;
INSERT INTO customers
  SELECT seq, CONCAT('customer ', seq), 0, seq * 1.25, seq + 0.25, DATE '1990-01-01' + INTERVAL seq DAY,
         TIMESTAMP '2026-06-01 00:00:00' + INTERVAL seq SECOND
    FROM seq_41_to_45;
INSERT INTO ledger (day, line, amount, note) VALUES
  ('2026-01-07', 1, 1.10, 'late line'), ('2026-01-07', 2, 2.20, NULL), ('2026-01-08', 0, 3.30, 'next day');
INSERT INTO countdown SELECT seq, 1000 - seq, CONCAT('t-', seq) FROM seq_31_to_33;
";

/// Per table: the lake's columns, and the source's rows spelled as PyIceberg's JSON spells
/// them (ISO dates and times, decimals with their scale, `true`/`false`).
const TABLES: [(&str, &[&str], &str); 3] = [
    (
        "customers",
        &[
            "id",
            "name",
            "vip",
            "balance",
            "score",
            "born",
            "updated_at",
        ],
        "SELECT CAST(id AS CHAR), name, IF(vip, 'true', 'false'), CAST(balance AS CHAR),
                CAST(score AS CHAR), DATE_FORMAT(born, '%Y-%m-%d'),
                DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s') FROM customers",
    ),
    (
        "ledger",
        &["day", "line", "amount", "note", "booked_at"],
        "SELECT DATE_FORMAT(day, '%Y-%m-%d'), CAST(line AS CHAR), CAST(amount AS CHAR),
                IFNULL(note, 'NULL'), DATE_FORMAT(booked_at, '%Y-%m-%dT%H:%i:%s+00:00')
           FROM ledger",
    ),
    (
        "countdown",
        &["id", "seq", "label"],
        "SELECT CAST(id AS CHAR), CAST(seq AS CHAR), label FROM countdown",
    ),
];

/// A JSON value as the source query spells it.
fn spell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every row of the lake table `<prefix><table>` (PyIceberg), spelled, sorted.
async fn lake_rows(
    ctx: &TestContext,
    catalog: &str,
    database: &str,
    table: &str,
    columns: &[&str],
) -> Result<Vec<Vec<String>>> {
    let rows =
        lake::read_with_python_at(&ctx.env, catalog, "pyiceberg", &[database, table]).await?;
    let mut out: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| spell(&r[*c])).collect())
        .collect();
    out.sort();
    Ok(out)
}

/// Every row of a source table, spelled, sorted.
async fn source_rows(conn: &mut Conn, sql: &str) -> Result<Vec<Vec<String>>> {
    let rows: Vec<mysql_async::Row> = conn.query(sql).await?;
    let mut out: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    r.get::<Option<String>, _>(i)
                        .flatten()
                        .unwrap_or_else(|| "NULL".into())
                })
                .collect()
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Each lake table `<prefix><table>` equals its source table.
async fn lake_equals_source(
    ctx: &TestContext,
    conn: &mut Conn,
    catalog: &str,
    database: &str,
    prefix: &str,
) -> Result<()> {
    for (table, columns, sql) in TABLES {
        let want = source_rows(conn, sql).await?;
        let got = lake_rows(ctx, catalog, database, &format!("{prefix}{table}"), columns).await?;
        if got != want {
            let diff: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(3).collect();
            let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(3).collect();
            bail!(
                "{prefix}{table}: the lake has {} rows, the source {}; only in the lake {diff:?}, only in the source {missing:?}",
                got.len(),
                want.len()
            );
        }
        println!("{prefix}{table}: {} rows, equal to MariaDB's", got.len());
    }
    Ok(())
}

fn workflow(name: &str, lake_name: &str, db: &str, database: &str, incremental: bool) -> String {
    let (mode, prefix, bookmarks) = if incremental {
        (
            "Incremental",
            "i_",
            format!(
                "        bookmarks:
          - {{table: {db}.customers, column: updated_at}}
          - {{table: {db}.ledger, columns: [day, line]}}
          - {{table: {db}.countdown, column: seq, order: Descending}}
"
            ),
        )
    } else {
        ("Snapshot", "s_", String::new())
    };
    format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: {name}}}
spec:
  lakeRef: {{name: {lake_name}}}
  steps:
    - name: extract
      extract:
        source: {{engine: Mysql, connectionSecretRef: {{name: mysql-db, key: url}}}}
        tables: ['{db}/{db}/%']
        exclude: ['%/%/tmp_%']
        mode: {mode}
{bookmarks}        targetDatabase: {database}
        tablePrefix: {prefix}
"
    )
}

/// Runs `workflow` as `run` and returns the extract step's JSON report.
async fn run_ok(ctx: &TestContext, workflow: &str, run: &str) -> Result<serde_json::Value> {
    apply(ctx, &run_yaml(run, workflow, "", None)).await?;
    let finished = wait_finished(ctx, run).await?;
    let log = step_log(ctx, &format!("{run}-extract-1")).await?;
    ensure!(
        finished.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded)
            && step(&finished, "extract")?.phase == Phase::Succeeded,
        "run {run}: {:?}\n{log}",
        finished.status
    );
    let report = extract_report(&log)?;
    ensure!(
        report["tables"].as_array().map(Vec::len) == Some(3),
        "tmp_scratch is excluded: {report}"
    );
    Ok(report)
}

async fn scenario(ctx: &TestContext, catalog: &str, lake_name: &str, database: &str) -> Result<()> {
    let Some(admin_url) = ctx.env.mysql_url.clone() else {
        bail!("LAKEFORM_MYSQL_URL is not in the e2e env: rerun e2e/up (it starts MariaDB)");
    };
    let db = format!("{}_msrc", lake_name.replace('-', "_"));
    let mut admin = connect(&admin_url).await?;
    exec_all(
        &mut admin,
        &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"),
    )
    .await?;
    let result = with_source(ctx, catalog, lake_name, database, &db, &admin_url).await;
    exec_all(&mut admin, &format!("DROP DATABASE IF EXISTS {db}")).await?;
    admin.disconnect().await?;
    result
}

async fn with_source(
    ctx: &TestContext,
    catalog: &str,
    lake_name: &str,
    database: &str,
    db: &str,
    admin_url: &str,
) -> Result<()> {
    let url = with_database(admin_url, db);
    let mut source = connect(&url).await?;
    exec_all(&mut source, SEED).await?;
    ready_lake(ctx, catalog, lake_name, database).await?;
    apply(
        ctx,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: mysql-db}}\nstringData: {{url: '{url}'}}\n"
        ),
    )
    .await?;

    // Snapshot: every selected table, value for value
    apply(ctx, &workflow("msnap", lake_name, db, database, false)).await?;
    wait_ready_reason(ctx, "msnap", "Ready").await?;
    let report = run_ok(ctx, "msnap", "msnap-1").await?;
    ensure!(
        table_report(&report, &format!("{db}.ledger"))?["inserted"] == 60,
        "{report}"
    );
    lake_equals_source(ctx, &mut source, catalog, database, "s_").await?;

    // Incremental, first run: everything up to each bookmark
    apply(ctx, &workflow("minc", lake_name, db, database, true)).await?;
    wait_ready_reason(ctx, "minc", "Ready").await?;
    let report = run_ok(ctx, "minc", "minc-1").await?;
    let counts = [("customers", 40), ("ledger", 60), ("countdown", 30)];
    for (table, rows) in counts {
        let t = table_report(&report, &format!("{db}.{table}"))?;
        ensure!(
            t["rowsRead"] == rows && t["inserted"] == rows,
            "{table}: {t}"
        );
    }
    ensure!(
        table_report(&report, &format!("{db}.countdown"))?["bookmark"] == "970",
        "the Descending bookmark is the smallest seq: {report}"
    );
    lake_equals_source(ctx, &mut source, catalog, database, "i_").await?;
    let marks = ctx
        .api::<ConfigMap>()
        .get("minc-bookmarks")
        .await?
        .data
        .unwrap_or_default();
    let ledger_mark = marks
        .get(&format!("extract.{db}.ledger"))
        .with_context(|| format!("no ledger bookmark: {marks:?}"))?;
    ensure!(
        ledger_mark.contains("\"columns\":[\"day\",\"line\"]")
            && ledger_mark.contains("\"2026-01-07\""),
        "compound bookmark: {ledger_mark}"
    );

    // new rows load only themselves
    exec_all(&mut source, CHANGES).await?;
    let report = run_ok(ctx, "minc", "minc-2").await?;
    let customers = table_report(&report, &format!("{db}.customers"))?;
    ensure!(
        customers["rowsRead"] == 6 && customers["inserted"] == 5 && customers["updated"] == 1,
        "five new customers and a changed one: {customers}"
    );
    let ledger = table_report(&report, &format!("{db}.ledger"))?;
    ensure!(
        ledger["rowsRead"] == 3 && ledger["inserted"] == 3,
        "only the three ledger lines past (2026-01-07, 0): {ledger}"
    );
    let countdown = table_report(&report, &format!("{db}.countdown"))?;
    ensure!(
        countdown["rowsRead"] == 3 && countdown["bookmark"] == "967",
        "only the three rows below seq 970: {countdown}"
    );
    lake_equals_source(ctx, &mut source, catalog, database, "i_").await?;
    println!(
        "mysql: snapshot 40/60/30 rows → incremental 40/60/30 → +6/+3/+3 rows, lake == MariaDB"
    );
    source.disconnect().await?;
    Ok(())
}

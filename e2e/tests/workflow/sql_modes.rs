//! The sql step's engine in-process against MinIO and a REST catalog of the test's own:
//! CSV zone objects → Iceberg (`CREATE EXTERNAL TABLE … LOCATION 's3://…'`), `Append` (with a
//! new column), `Overwrite` (one `overwrite` snapshot) and `Merge` (upsert; duplicate keys are
//! refused and nothing is committed), then `partitionBy: [day]`: a table created
//! identity-partitioned on a date column, written by Append, Merge and Overwrite one set of
//! files per day, and refused when asked for another partitioning. DuckDB and PyIceberg read
//! every result; PyIceberg lists the partition spec and every file's partition value.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Result, ensure};
use iceberg::Catalog;
use iceberg::spec::Operation;
use lakeform_api::connection::S3Connection;
use lakeform_api::workflow::SqlStep;
use lakeform_e2e::catalog_server::CatalogServer;
use lakeform_e2e::{TestContext, lake};
use lakeform_worker::lake::catalog::{CatalogConn, connect};
use lakeform_worker::step::sql;
use lakeform_worker::step::table::{Lake, ident};

fn step(statements: &[&str], mode: &str, keys: &[&str]) -> Result<SqlStep> {
    Ok(serde_json::from_value(serde_json::json!({
        "statements": statements,
        "target": {"database": "curated", "table": "people"},
        "mode": mode,
        "mergeKeys": keys,
    }))?)
}

/// A step writing `curated.visits` partitioned by `by`.
fn partitioned(statements: &[&str], mode: &str, keys: &[&str], by: &[&str]) -> Result<SqlStep> {
    Ok(serde_json::from_value(serde_json::json!({
        "statements": statements,
        "target": {"database": "curated", "table": "visits"},
        "mode": mode,
        "mergeKeys": keys,
        "partitionBy": by,
    }))?)
}

/// `day → rows` over the live data files of `curated.visits` as PyIceberg lists them, after
/// checking that its partition spec is identity on `day` and every file is in one partition.
async fn rows_per_day(ctx: &TestContext, catalog: &str) -> Result<BTreeMap<String, i64>> {
    let files =
        lake::read_with_python_at(&ctx.env, catalog, "pyiceberg-files", &["curated", "visits"])
            .await?;
    let mut days = BTreeMap::new();
    for f in &files {
        let spec = &f["spec"];
        ensure!(
            *spec == serde_json::json!([{"name": "day", "source": "day", "transform": "identity"}]),
            "PyIceberg sees the partition spec {spec}"
        );
        let day = f["partition"]["day"].as_str().unwrap_or("null").to_string();
        let path = f["file_path"].as_str().unwrap_or_default();
        ensure!(
            path.contains(&format!("/day={day}/")),
            "{path} is not in day={day}"
        );
        *days.entry(day).or_insert(0) += f["record_count"].as_i64().unwrap_or(0);
    }
    Ok(days)
}

/// `id → day` of `curated.visits` as PyIceberg reads its rows.
async fn visit_days(ctx: &TestContext, catalog: &str) -> Result<BTreeMap<i64, String>> {
    let rows =
        lake::read_with_python_at(&ctx.env, catalog, "pyiceberg", &["curated", "visits"]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let day = r["day"].as_str().unwrap_or("null").to_string();
            (r["id"].as_i64().unwrap_or(-1), day)
        })
        .collect())
}

/// `id → (name, score, tag)` as DuckDB reads the table through the REST catalog.
async fn read(
    ctx: &TestContext,
    catalog: &str,
) -> Result<BTreeMap<i64, (String, f64, Option<String>)>> {
    let rows =
        lake::read_with_python_at(&ctx.env, catalog, "duckdb-rest", &["curated", "people"]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap_or(-1),
                (
                    r["name"].as_str().unwrap_or_default().to_string(),
                    r["score"].as_f64().unwrap_or(f64::NAN),
                    r.get("tag").and_then(|t| t.as_str()).map(str::to_string),
                ),
            )
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_step_modes_write_iceberg_tables_other_engines_read() -> Result<()> {
    lake::install_rustls_provider();
    let ctx = TestContext::new("wf-sql").await?;
    let server = CatalogServer::start(&ctx.env, &ctx.ns).await?;
    let s3c = lake::s3_client(&ctx.env);
    let bucket = format!("{}-raw", ctx.ns);
    lake::create_bucket(&s3c, &bucket).await?;
    let mut csv = String::from("id,name,score\n");
    for i in 1..=20 {
        csv.push_str(&format!("{i},person {i},{}.5\n", i * 2));
    }
    lake::put_object(&s3c, &bucket, "people/part-0.csv", csv.into_bytes()).await?;

    let s3 = S3Connection {
        endpoint: ctx.env.s3_endpoint.clone(),
        region: ctx.env.s3_region.clone(),
        path_style: true,
        access_key: ctx.env.s3_access_key.clone(),
        secret_key: ctx.env.s3_secret_key.clone(),
    };
    let conn = CatalogConn {
        uri: server.uri.clone(),
        warehouse: Some(ctx.env.catalog_warehouse.clone()),
    };
    let lake = Lake {
        catalog: Arc::new(connect(&conn, &s3).await?),
        conn,
        s3,
    };
    let external = format!(
        "CREATE EXTERNAL TABLE people_csv (id BIGINT, name VARCHAR, score DOUBLE) STORED AS CSV \
         LOCATION 's3://{bucket}/people/' OPTIONS ('format.has_header' 'true')"
    );
    let props = HashMap::new();

    // Append: the table is created from the query's schema
    let r = sql::run(
        &lake,
        &step(
            &[&external, "SELECT * FROM people_csv WHERE id <= 10"],
            "Append",
            &[],
        )?,
        "r1",
        props.clone(),
    )
    .await?;
    ensure!(r.rows == 10, "{r:?}");
    let t = read(&ctx, &server.uri).await?;
    ensure!(
        t.len() == 10 && t[&3] == ("person 3".to_string(), 6.5, None),
        "{t:?}"
    );

    // Append with a new column: the column is added, older rows read it as null
    let r = sql::run(
        &lake,
        &step(
            &[
                &external,
                "SELECT *, 'late' AS tag FROM people_csv WHERE id > 10",
            ],
            "Append",
            &[],
        )?,
        "r2",
        props.clone(),
    )
    .await?;
    ensure!(r.rows == 10);
    let t = read(&ctx, &server.uri).await?;
    ensure!(
        t.len() == 20 && t[&3].2.is_none() && t[&15].2.as_deref() == Some("late"),
        "{t:?}"
    );

    // Overwrite: the table holds exactly the new rows, in an `overwrite` snapshot
    let r = sql::run(
        &lake,
        &step(
            &["SELECT id, name, score * 10 AS score FROM curated.people WHERE id % 2 = 0"],
            "Overwrite",
            &[],
        )?,
        "r3",
        props.clone(),
    )
    .await?;
    ensure!(r.rows == 10 && r.replaced_rows == Some(20), "{r:?}");
    let t = read(&ctx, &server.uri).await?;
    ensure!(
        t.len() == 10 && t[&4] == ("person 4".to_string(), 85.0, None),
        "{t:?}"
    );
    let table = lake.catalog.load_table(&ident("curated", "people")).await?;
    let snap = table.metadata().current_snapshot().expect("snapshot");
    ensure!(
        snap.summary().operation == Operation::Overwrite,
        "{:?}",
        snap.summary()
    );
    ensure!(
        table.metadata().snapshots().count() == 3,
        "one snapshot per write"
    );
    let py = lake::read_with_python_at(&ctx.env, &server.uri, "pyiceberg", &["curated", "people"])
        .await?;
    ensure!(
        py.len() == 10,
        "PyIceberg reads the overwritten table: {} rows",
        py.len()
    );

    // Merge: ids 2 and 4 change, 21 is new, the others stay
    let merge = step(
        &[
            "SELECT * FROM (VALUES (2, 'two', 1.0), (4, 'four', 2.0), (21, 'new', 3.0)) AS v(id, name, score)",
        ],
        "Merge",
        &["id"],
    )?;
    let r = sql::run(&lake, &merge, "r4", props.clone()).await?;
    ensure!(r.inserted == Some(1) && r.updated == Some(2), "{r:?}");
    let t = read(&ctx, &server.uri).await?;
    ensure!(t.len() == 11, "{t:?}");
    ensure!(
        t[&2].0 == "two" && t[&4].1 == 2.0 && t[&21].0 == "new" && t[&6].1 == 125.0,
        "{t:?}"
    );

    // the same merge again changes nothing visible (idempotent)
    sql::run(&lake, &merge, "r5", props.clone()).await?;
    ensure!(read(&ctx, &server.uri).await? == t);

    // duplicate keys: refused, nothing committed
    let before = lake
        .catalog
        .load_table(&ident("curated", "people"))
        .await?
        .metadata()
        .current_snapshot_id();
    let dup = step(
        &["SELECT * FROM (VALUES (1, 'a', 1.0), (1, 'b', 2.0)) AS v(id, name, score)"],
        "Merge",
        &["id"],
    )?;
    let err = sql::run(&lake, &dup, "r6", props.clone())
        .await
        .expect_err("duplicate keys");
    ensure!(err.to_string().contains("more than once"), "{err}");
    let after = lake
        .catalog
        .load_table(&ident("curated", "people"))
        .await?
        .metadata()
        .current_snapshot_id();
    ensure!(before == after, "nothing committed");

    partition_by_day(&ctx, &lake, &external, &server.uri).await?;

    // a location outside the lake's S3 is refused with a clear error
    let err = sql::run(
        &lake,
        &step(
            &[
                "CREATE EXTERNAL TABLE f (a INT) STORED AS CSV LOCATION 'file:///etc/'",
                "SELECT * FROM f",
            ],
            "Append",
            &[],
        )?,
        "r7",
        props,
    )
    .await
    .expect_err("local files");
    ensure!(err.to_string().contains("s3://<bucket>"), "{err}");
    println!(
        "sql step: append 10+10 (new column), overwrite 20→10, merge +1/~2, duplicate keys refused; \
         partitioned by day: append 20 rows into 3 days, merge +1/~2 (one row moves day), \
         overwrite 21→9, other partitionings refused"
    );
    drop(server);
    lake::delete_bucket(&s3c, &bucket).await?;
    Ok(())
}

/// `partitionBy: [day]` through Append, Merge and Overwrite, then other partitionings refused.
async fn partition_by_day(
    ctx: &TestContext,
    lake: &Lake,
    external: &str,
    catalog: &str,
) -> Result<()> {
    let props = HashMap::new();
    let visits = "SELECT id, name, score, CASE id % 3 WHEN 0 THEN DATE '2026-11-01' \
                  WHEN 1 THEN DATE '2026-11-02' ELSE DATE '2026-11-03' END AS day FROM people_csv";
    let r = sql::run(
        lake,
        &partitioned(&[external, visits], "Append", &[], &["day"])?,
        "p1",
        props.clone(),
    )
    .await?;
    ensure!(r.rows == 20, "{r:?}");
    let days = rows_per_day(ctx, catalog).await?;
    let expected = BTreeMap::from([
        ("2026-11-01".to_string(), 6),
        ("2026-11-02".to_string(), 7),
        ("2026-11-03".to_string(), 7),
    ]);
    ensure!(days == expected, "append: rows per day file set {days:?}");
    ensure!(visit_days(ctx, catalog).await?.len() == 20);

    // id 1 moves from the 2nd to the 4th, id 2 stays on the 3rd, id 21 is new on the 4th
    let merge = partitioned(
        &[
            "SELECT * FROM (VALUES (1, 'one', 1.0, DATE '2026-11-04'), (2, 'two', 2.0, DATE '2026-11-03'), \
           (21, 'new', 3.0, DATE '2026-11-04')) AS v(id, name, score, day)",
        ],
        "Merge",
        &["id"],
        &["day"],
    )?;
    let r = sql::run(lake, &merge, "p2", props.clone()).await?;
    ensure!(r.inserted == Some(1) && r.updated == Some(2), "{r:?}");
    let expected = BTreeMap::from([
        ("2026-11-01".to_string(), 6),
        ("2026-11-02".to_string(), 6),
        ("2026-11-03".to_string(), 7),
        ("2026-11-04".to_string(), 2),
    ]);
    ensure!(
        rows_per_day(ctx, catalog).await? == expected,
        "merge: rows per day"
    );
    let rows = visit_days(ctx, catalog).await?;
    ensure!(
        rows.len() == 21 && rows[&1] == "2026-11-04" && rows[&21] == "2026-11-04",
        "{rows:?}"
    );
    sql::run(lake, &merge, "p3", props.clone()).await?;
    ensure!(
        visit_days(ctx, catalog).await? == rows,
        "the same merge again changes nothing"
    );

    let overwrite = partitioned(
        &["SELECT * FROM curated.visits WHERE day >= DATE '2026-11-03'"],
        "Overwrite",
        &[],
        &["day"],
    )?;
    let r = sql::run(lake, &overwrite, "p4", props.clone()).await?;
    ensure!(r.rows == 9 && r.replaced_rows == Some(21), "{r:?}");
    let days = rows_per_day(ctx, catalog).await?;
    ensure!(
        days.keys()
            .map(String::as_str)
            .eq(["2026-11-03", "2026-11-04"]),
        "{days:?}"
    );

    // another partitioning (or none) is refused naming the field; nothing is committed
    let ident = ident("curated", "visits");
    let before = lake
        .catalog
        .load_table(&ident)
        .await?
        .metadata()
        .current_snapshot_id();
    for by in [&["name"][..], &[]] {
        let step = partitioned(&[external, visits], "Append", &[], by)?;
        let err = sql::run(lake, &step, "p5", props.clone())
            .await
            .expect_err("another partitioning");
        let msg = err.to_string();
        ensure!(
            msg.starts_with(
                "spec.steps[].sql.partitionBy: table curated.visits is partitioned by [day]"
            ),
            "{msg}"
        );
    }
    let after = lake
        .catalog
        .load_table(&ident)
        .await?
        .metadata()
        .current_snapshot_id();
    ensure!(before == after, "nothing committed");
    Ok(())
}

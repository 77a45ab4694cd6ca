//! Issue 7: the crawler engine against the local MinIO and Iceberg REST catalog. The corpus
//! (every format and layout) is uploaded to a fresh bucket, crawled in-process, and every
//! table is read back by PyIceberg and DuckDB; then schema evolution, deprecation of a
//! vanished folder and the zero-GET re-run.

mod corpus;
mod real_world;
mod status;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use lakeform_api::connection::S3Connection;
use lakeform_api::crawler::{Crawler, CrawlerSpec};
use lakeform_api::datalake::DataLake;
use lakeform_e2e::{Env, lake};
use lakeform_worker::crawl::{CrawlInput, CrawlOutcome, crawl};
use lakeform_worker::lake::catalog::CatalogConn;
use serde_json::{Value, json};

const PREFIX: &str = "corpus/";

fn input(env: &Env, bucket: &str, database: &str) -> Result<CrawlInput> {
    input_at(env, bucket, database, PREFIX)
}

/// A crawl of `prefix` in `bucket` into `database` (one table per first-level folder).
fn input_at(env: &Env, bucket: &str, database: &str, prefix: &str) -> Result<CrawlInput> {
    let lake: DataLake = serde_json::from_value(json!({
        "apiVersion": "lakeform.dev/v1alpha1",
        "kind": "DataLake",
        "metadata": {"name": "crawl-e2e", "namespace": "default"},
        "spec": {
            "storage": {"external": {
                "endpoint": env.s3_endpoint,
                "region": env.s3_region,
                "pathStyle": true,
                "credentials": {"secretName": "unused"}
            }},
            "zones": [{"name": "raw", "bucket": bucket}],
            "catalog": {
                "external": {"uri": env.catalog_uri, "warehouse": env.catalog_warehouse},
                "databases": [{"name": database, "zone": "raw"}]
            }
        }
    }))?;
    let crawler: Crawler = serde_json::from_value(json!({
        "apiVersion": "lakeform.dev/v1alpha1",
        "kind": "Crawler",
        "metadata": {"name": "corpus", "namespace": "default"},
        "spec": {
            "lakeRef": {"name": "crawl-e2e"},
            "database": database,
            "targets": [{"zone": "raw", "prefix": prefix, "exclude": ["scratch/**"]}],
            "grouping": {"tableLevel": 1},
            "schemaChangePolicy": {"update": "Update", "delete": "Deprecate"}
        }
    }))?;
    let spec: CrawlerSpec = crawler.spec;
    Ok(CrawlInput {
        crawler_id: "default/corpus".into(),
        spec,
        lake,
        s3: S3Connection {
            endpoint: env.s3_endpoint.clone(),
            region: env.s3_region.clone(),
            path_style: true,
            access_key: env.s3_access_key.clone(),
            secret_key: env.s3_secret_key.clone(),
        },
        catalog: CatalogConn {
            uri: env.catalog_uri.clone(),
            warehouse: Some(env.catalog_warehouse.clone()),
        },
        only_keys: None,
    })
}

/// Per-table stats from `e2e/py/table_stats.py` (`pyiceberg` or `duckdb`).
async fn stats(
    env: &Env,
    mode: &str,
    database: &str,
    tables: &[&str],
) -> Result<BTreeMap<String, Value>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/table_stats.py");
    let out = tokio::process::Command::new(&env.python)
        .arg(&script)
        .arg(mode)
        .arg(database)
        .args(tables)
        .envs([
            ("LAKEFORM_S3_ENDPOINT", &env.s3_endpoint),
            ("LAKEFORM_S3_REGION", &env.s3_region),
            ("LAKEFORM_S3_ACCESS_KEY", &env.s3_access_key),
            ("LAKEFORM_S3_SECRET_KEY", &env.s3_secret_key),
            ("LAKEFORM_CATALOG_URI", &env.catalog_uri),
            ("LAKEFORM_CATALOG_WAREHOUSE", &env.catalog_warehouse),
        ])
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "table_stats.py {mode} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| String::from_utf8_lossy(&out.stdout).to_string())
}

fn check_stats(
    reader: &str,
    got: &BTreeMap<String, Value>,
    want: &BTreeMap<String, corpus::Expected>,
) -> Result<()> {
    for (table, exp) in want {
        let g = got
            .get(table)
            .with_context(|| format!("{reader}: no stats for {table}"))?;
        let rows = g["rows"].as_u64().unwrap_or(u64::MAX);
        ensure!(
            rows == exp.rows,
            "{reader}: {table} has {rows} rows, expected {}",
            exp.rows
        );
        for (col, sum) in &exp.sums {
            let s = g["sums"][col]
                .as_f64()
                .with_context(|| format!("{reader}: {table}.{col} has no sum: {g}"))?;
            ensure!(
                (s - sum).abs() < 1e-6,
                "{reader}: sum({table}.{col}) = {s}, expected {sum}"
            );
        }
    }
    Ok(())
}

fn summary(o: &CrawlOutcome) -> String {
    format!(
        "{} (gets {}, lists {}, errors {:?})",
        o.run.message.clone().unwrap_or_default(),
        o.gets,
        o.lists,
        o.run.errors
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawler_corpus_reads_back_evolves_and_recrawls_for_free() -> Result<()> {
    lake::install_rustls_provider();
    let mut env = Env::load()?;
    let bucket = lake::unique_name("lakeform-crawl");
    // a REST catalog of the test's own: tests side by side do not contend for one SQLite file
    let server = lakeform_e2e::catalog_server::CatalogServer::start(&env, &bucket).await?;
    env.catalog_uri = server.uri.clone();
    let s3 = lake::s3_client(&env);
    let database = bucket.replace('-', "_");
    lake::create_bucket(&s3, &bucket).await?;
    let result = scenario(&env, &s3, &bucket, &database).await;

    cleanup(&env, &s3, &bucket, &database).await;
    result
}

/// Drop what a crawl test made: its tables, its namespace and its bucket (failures printed).
async fn cleanup(env: &Env, s3: &aws_sdk_s3::Client, bucket: &str, database: &str) {
    if let Ok(catalog) = lake::rest_catalog(env).await {
        let ns = NamespaceIdent::new(database.to_string());
        for t in catalog.list_tables(&ns).await.unwrap_or_default() {
            if let Err(e) = catalog.purge_table(&t).await {
                eprintln!("cleanup: purge {t}: {e}");
            }
        }
        if let Err(e) = catalog.drop_namespace(&ns).await {
            eprintln!("cleanup: drop namespace {database}: {e}");
        }
    }
    if let Err(e) = lake::delete_bucket(s3, bucket).await {
        eprintln!("cleanup: bucket {bucket}: {e}");
    }
}

async fn scenario(env: &Env, s3: &aws_sdk_s3::Client, bucket: &str, database: &str) -> Result<()> {
    let corpus = corpus::generate()?;
    for (key, body) in &corpus.objects {
        lake::put_object(s3, bucket, &format!("{PREFIX}{key}"), body.clone()).await?;
    }
    let input = input(env, bucket, database)?;

    // tableThreshold: a run that would create more tables fails and creates nothing
    let mut capped = input.clone();
    capped.spec.table_threshold = Some(3);
    match crawl(&capped).await {
        Err(lakeform_worker::crawl::CrawlError::TableThreshold { would_create, .. }) => {
            ensure!(
                would_create == corpus.tables.len(),
                "would create {would_create}"
            )
        }
        other => bail!("expected the table threshold to stop the run, got {other:?}"),
    }
    let catalog = lake::rest_catalog(env).await?;
    let ns = NamespaceIdent::new(database.to_string());
    ensure!(
        catalog.list_tables(&ns).await?.is_empty(),
        "tables were created past the threshold"
    );

    // first crawl: every table created, the truncated file reported, nothing else failing
    let first = crawl(&input).await.context("first crawl")?;
    eprintln!("first crawl: {}", summary(&first));
    let names: Vec<&str> = first.tables.iter().map(|t| t.name.as_str()).collect();
    let want: Vec<&str> = corpus.tables.keys().map(String::as_str).collect();
    ensure!(
        names == want,
        "tables {names:?}, expected {want:?}: {}",
        summary(&first)
    );
    ensure!(
        first.run.tables_created == want.len() as i64,
        "{}",
        summary(&first)
    );
    ensure!(
        first.run.objects_scanned == corpus.objects.len() as i64,
        "{}",
        summary(&first)
    );
    ensure!(
        first.run.unclassified_objects == corpus.unclassified as i64,
        "{}",
        summary(&first)
    );
    let error_keys: Vec<String> = first.run.errors.iter().map(|e| e.key.clone()).collect();
    let bad: Vec<String> = corpus
        .bad
        .iter()
        .map(|k| format!("{bucket}/{PREFIX}{k}"))
        .collect();
    ensure!(
        error_keys == bad,
        "errors {:?}, expected {bad:?}",
        first.run.errors
    );
    let metrics = first
        .tables
        .iter()
        .find(|t| t.name == "metrics")
        .context("metrics")?;
    ensure!(
        metrics.partitions == vec!["region".to_string()],
        "{metrics:?}"
    );
    ensure!(
        metrics.location == format!("s3://{bucket}/corpus/metrics"),
        "{metrics:?}"
    );
    let events = first
        .tables
        .iter()
        .find(|t| t.name == "events")
        .context("events")?;
    ensure!(
        events.partitions == vec!["partition_0".to_string(), "partition_1".to_string()],
        "{events:?}"
    );

    // every table read back by two clients we did not write
    let tables: Vec<&str> = want.clone();
    let py = stats(env, "pyiceberg", database, &tables).await?;
    check_stats("pyiceberg", &py, &corpus.tables)?;
    let duck = stats(env, "duckdb", database, &tables).await?;
    check_stats("duckdb", &duck, &corpus.tables)?;

    // parquet registered in place: the bytes read are the footers (+ 8-byte tails), not data
    // an unchanged re-run: LIST only
    let again = crawl(&input).await.context("unchanged re-crawl")?;
    eprintln!("unchanged re-crawl: {}", summary(&again));
    ensure!(
        again.gets == 0 && again.run.bytes_read == 0,
        "re-run read data: {}",
        summary(&again)
    );
    ensure!(
        again.run.tables_created == 0 && again.run.tables_updated == 0,
        "re-run changed tables: {}",
        summary(&again)
    );
    ensure!(
        again.run.errors.len() == corpus.bad.len(),
        "the bad file is still reported: {}",
        summary(&again)
    );

    // a new file with one more column: the schema evolves (new id), old rows read as null
    let (key, body, rows, discount) = corpus::orders_with_discount();
    lake::put_object(s3, bucket, &format!("{PREFIX}{key}"), body).await?;
    let before = first
        .tables
        .iter()
        .find(|t| t.name == "orders")
        .context("orders")?
        .schema_version;
    let evolved = crawl(&input).await.context("crawl after a new column")?;
    eprintln!("crawl with a new column: {}", summary(&evolved));
    ensure!(
        evolved.run.tables_updated == 1 && evolved.run.tables_created == 0,
        "{}",
        summary(&evolved)
    );
    let after = evolved
        .tables
        .iter()
        .find(|t| t.name == "orders")
        .context("orders")?
        .schema_version;
    ensure!(after > before, "orders schema id {before} → {after}");
    let old_rows = corpus.tables["orders"].rows;
    for mode in ["pyiceberg", "duckdb"] {
        let s = stats(env, mode, database, &["orders"]).await?;
        let o = &s["orders"];
        ensure!(
            o["rows"].as_u64() == Some(old_rows + rows),
            "{mode}: orders after evolution: {o}"
        );
        ensure!(
            o["nulls"]["discount"].as_u64() == Some(old_rows),
            "{mode}: old rows must read discount as null: {o}"
        );
        let d = o["sums"]["discount"].as_f64().unwrap_or(f64::NAN);
        ensure!(
            (d - discount).abs() < 1e-9,
            "{mode}: sum(discount) = {d}, expected {discount}"
        );
    }
    if let Some(id) =
        stats(env, "pyiceberg", database, &["orders"]).await?["orders"]["schema_id"].as_i64()
    {
        ensure!(
            id == after as i64,
            "pyiceberg sees schema id {id}, the crawler reported {after}"
        );
    }

    // a Parquet file whose int column is now long, with one more column: the type is promoted
    // (int → long) and the column added, each a new schema id; old files read unchanged
    let (key, body, rows, sum_id, sum_count) = corpus::metrics_widened()?;
    lake::put_object(s3, bucket, &format!("{PREFIX}{key}"), body).await?;
    let before = evolved
        .tables
        .iter()
        .find(|t| t.name == "metrics")
        .context("metrics")?
        .schema_version;
    let widened = crawl(&input).await.context("crawl after a wider type")?;
    eprintln!("crawl with a wider type: {}", summary(&widened));
    ensure!(widened.run.tables_updated == 1, "{}", summary(&widened));
    let after = widened
        .tables
        .iter()
        .find(|t| t.name == "metrics")
        .context("metrics")?
        .schema_version;
    ensure!(
        after >= before + 2,
        "metrics schema id {before} → {after}: promotion and addition are two schemas"
    );
    let m = &corpus.tables["metrics"];
    for mode in ["pyiceberg", "duckdb"] {
        let s = stats(env, mode, database, &["metrics"]).await?;
        let o = &s["metrics"];
        ensure!(
            o["rows"].as_u64() == Some(m.rows + rows),
            "{mode}: metrics after widening: {o}"
        );
        let ids = o["sums"]["id"].as_f64().unwrap_or(f64::NAN);
        ensure!(
            (ids - (m.sums["id"] + sum_id)).abs() < 1e-6,
            "{mode}: sum(id) = {ids}"
        );
        let count = o["sums"]["count"].as_f64().unwrap_or(f64::NAN);
        ensure!(
            (count - (m.sums["count"] + sum_count)).abs() < 1.0,
            "{mode}: sum(count) = {count}"
        );
        ensure!(
            o["nulls"]["note"].as_u64() == Some(m.rows),
            "{mode}: old rows must read note as null: {o}"
        );
    }

    // a folder deleted: its table is deprecated (delete: Deprecate), not dropped
    for (key, _) in corpus
        .objects
        .iter()
        .filter(|(k, _)| k.starts_with("people/"))
    {
        s3.delete_object()
            .bucket(bucket)
            .key(format!("{PREFIX}{key}"))
            .send()
            .await?;
    }
    let gone = crawl(&input)
        .await
        .context("crawl after deleting people/")?;
    eprintln!("crawl after a deletion: {}", summary(&gone));
    ensure!(
        gone.run.tables_deprecated == 1 && gone.run.tables_deleted == 0,
        "{}",
        summary(&gone)
    );
    let people = gone
        .tables
        .iter()
        .find(|t| t.name == "people")
        .context("people is kept")?;
    ensure!(people.deprecated, "{people:?}");
    let catalog = lake::rest_catalog(env).await?;
    let t = catalog
        .load_table(&TableIdent::new(
            NamespaceIdent::new(database.to_string()),
            "people".into(),
        ))
        .await?;
    ensure!(
        t.metadata()
            .properties()
            .get("lakeform.deprecated")
            .map(String::as_str)
            == Some("true"),
        "people is not marked deprecated"
    );
    Ok(())
}

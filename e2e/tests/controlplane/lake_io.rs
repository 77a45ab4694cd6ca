//! Issue 4: lake I/O from Rust against the local MinIO and Iceberg REST catalog, read back by
//! clients we did not write (PyIceberg and DuckDB from the venv).

use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use iceberg::{Catalog, NamespaceIdent, TableCreation, TableIdent};
use lakeform_e2e::Env;
use lakeform_e2e::lake;
use serde_json::{Map, Value, json};

/// A bucket created from Rust in MinIO takes an object and lists it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minio_bucket_put_and_list_from_rust() -> Result<()> {
    lake::install_rustls_provider();
    let env = Env::load()?;
    let s3 = lake::s3_client(&env);
    let bucket = lake::unique_name("lakeform-e2e");

    lake::create_bucket(&s3, &bucket).await?;
    let result = async {
        let body = b"id,name\n1,alice\n".to_vec();
        lake::put_object(&s3, &bucket, "raw/orders/part-0.csv", body.clone()).await?;
        lake::put_object(&s3, &bucket, "raw/other.txt", b"x".to_vec()).await?;

        let listed = lake::list_objects(&s3, &bucket, "raw/orders/").await?;
        ensure!(
            listed == vec![("raw/orders/part-0.csv".to_string(), body.len() as i64)],
            "listing s3://{bucket}/raw/orders/ returned {listed:?}"
        );
        let all = lake::list_objects(&s3, &bucket, "").await?;
        ensure!(all.len() == 2, "bucket {bucket} lists {all:?}");
        let read = lake::get_object(&s3, &bucket, "raw/orders/part-0.csv").await?;
        ensure!(read == body, "object read back differs: {read:?}");
        Ok(())
    }
    .await;

    let cleanup = lake::delete_bucket(&s3, &bucket).await;
    result?;
    cleanup.context("cleaning up the bucket")
}

/// A namespace and table created from Rust in the REST catalog, with rows appended from Rust as
/// a Parquet data file in MinIO, read back exactly by PyIceberg and DuckDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iceberg_table_written_from_rust_reads_back_in_pyiceberg_and_duckdb() -> Result<()> {
    lake::install_rustls_provider();
    let env = Env::load()?;
    let catalog = lake::rest_catalog(&env).await?;
    let ns = NamespaceIdent::new(lake::unique_name("e2e").replace('-', "_"));
    let ident = TableIdent::new(ns.clone(), "orders".to_string());

    catalog
        .create_namespace(&ns, Default::default())
        .await
        .with_context(|| format!("creating namespace {ns:?}"))?;
    let result = write_and_read_back(&env, &catalog, &ident).await;

    // Best-effort cleanup: purge the table (data files too), then the namespace.
    if let Err(e) = catalog.purge_table(&ident).await {
        eprintln!("cleanup: purge {ident}: {e}");
    }
    if let Err(e) = catalog.drop_namespace(&ns).await {
        eprintln!("cleanup: drop namespace {ns:?}: {e}");
    }
    result
}

async fn write_and_read_back(env: &Env, catalog: &dyn Catalog, ident: &TableIdent) -> Result<()> {
    let schema = Schema::builder()
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(2, "name", Type::Primitive(PrimitiveType::String)).into(),
            NestedField::optional(3, "amount", Type::Primitive(PrimitiveType::Double)).into(),
            NestedField::optional(4, "ts", Type::Primitive(PrimitiveType::Timestamp)).into(),
        ])
        .build()?;
    let creation = TableCreation::builder()
        .name(ident.name().to_string())
        .schema(schema)
        .build();
    let table = catalog
        .create_table(ident.namespace(), creation)
        .await
        .with_context(|| format!("creating table {ident}"))?;
    ensure!(
        table.metadata().current_snapshot().is_none(),
        "a new table has no snapshot"
    );

    // The rows: ids, names (one null, one non-ASCII), amounts, timestamps (µs, no zone).
    let rows: [(i64, Option<&str>, f64, i64, &str); 4] = [
        (
            1,
            Some("alice"),
            12.5,
            1_704_164_645_123_456,
            "2024-01-02T03:04:05.123456",
        ),
        (
            2,
            Some("bob"),
            -3.25,
            1_704_240_000_000_000,
            "2024-01-03T00:00:00",
        ),
        (
            3,
            Some("Zoë"),
            1_000_000.125,
            1_719_792_000_000_001,
            "2024-07-01T00:00:00.000001",
        ),
        (4, None, 0.0, 0, "1970-01-01T00:00:00"),
    ];
    // Build the Arrow batch from the table's own schema (field ids as the catalog assigned them).
    let arrow_schema = Arc::new(schema_to_arrow_schema(table.metadata().current_schema())?);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            rows.iter().map(|r| r.3),
        )),
    ];
    let batch = RecordBatch::try_new(arrow_schema, columns)?;

    let table = lake::append_batches(catalog, &table, vec![batch]).await?;

    // The commit produced a snapshot whose summary counts our rows, and its data file is in MinIO.
    let snapshot = table
        .metadata()
        .current_snapshot()
        .context("no snapshot after the append")?;
    let added = snapshot
        .summary()
        .additional_properties
        .get("added-records")
        .cloned();
    ensure!(
        added.as_deref() == Some("4"),
        "snapshot summary added-records = {added:?}"
    );
    let location = table.metadata().location();
    let (bucket, prefix) = location
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .with_context(|| format!("table location {location} is not s3://bucket/path"))?;
    let s3 = lake::s3_client(env);
    let data = lake::list_objects(&s3, bucket, &format!("{prefix}/data/")).await?;
    ensure!(
        data.iter()
            .any(|(k, size)| k.ends_with(".parquet") && *size > 0),
        "no Parquet data file under {location}/data: {data:?}"
    );
    let metadata_location = table
        .metadata_location()
        .context("committed table has no metadata location")?
        .to_string();

    let expected: Vec<Map<String, Value>> = rows
        .iter()
        .map(|(id, name, amount, _, ts)| {
            json!({"id": id, "name": name, "amount": amount, "ts": ts})
                .as_object()
                .cloned()
                .unwrap_or_default()
        })
        .collect();

    let ns = ident.namespace().join(".");
    let name = ident.name();
    eprintln!(
        "{ident}: snapshot {} at {metadata_location}",
        snapshot.snapshot_id()
    );
    let by_pyiceberg = lake::read_with_python(env, "pyiceberg", &[&ns, name]).await?;
    eprintln!("PyIceberg: {}", Value::from(by_pyiceberg.clone()));
    assert_eq!(by_pyiceberg, expected, "rows read by PyIceberg");

    let by_duckdb = lake::read_with_python(env, "duckdb-scan", &[&metadata_location]).await?;
    eprintln!("DuckDB iceberg_scan: {}", Value::from(by_duckdb.clone()));
    assert_eq!(
        by_duckdb, expected,
        "rows read by DuckDB iceberg_scan({metadata_location})"
    );

    let by_duckdb_rest = lake::read_with_python(env, "duckdb-rest", &[&ns, name]).await?;
    eprintln!(
        "DuckDB REST attach: {}",
        Value::from(by_duckdb_rest.clone())
    );
    assert_eq!(
        by_duckdb_rest, expected,
        "rows read by DuckDB through the attached REST catalog"
    );
    Ok(())
}

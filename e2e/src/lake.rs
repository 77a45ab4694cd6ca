//! Lake I/O from Rust against the local environment (DESIGN.md §5): buckets and objects in MinIO
//! through the AWS SDK, namespaces, tables and appends in the Iceberg REST catalog through
//! iceberg-rust, and the verification clients (PyIceberg, DuckDB) run from the venv.
//!
//! Connection settings come from [`Env`] (the env file that `e2e/up` writes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use arrow_array::RecordBatch;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use iceberg::spec::DataFileFormat;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_rest::{
    REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE, RestCatalog, RestCatalogBuilder,
};
use iceberg_storage_opendal::OpenDalStorageFactory;
use parquet::file::properties::WriterProperties;

use crate::env::Env;

/// The variables `e2e/py/read_table.py` reads (same names as in the env file).
fn script_env(env: &Env) -> [(&'static str, &str); 6] {
    [
        ("LAKEFORM_S3_ENDPOINT", &env.s3_endpoint),
        ("LAKEFORM_S3_REGION", &env.s3_region),
        ("LAKEFORM_S3_ACCESS_KEY", &env.s3_access_key),
        ("LAKEFORM_S3_SECRET_KEY", &env.s3_secret_key),
        ("LAKEFORM_CATALOG_URI", &env.catalog_uri),
        ("LAKEFORM_CATALOG_WAREHOUSE", &env.catalog_warehouse),
    ]
}

/// rustls ends up with both the `ring` (kube) and `aws-lc-rs` (opendal → reqwest) features in
/// this crate, so it cannot pick a process-wide default provider by itself and
/// `ClientConfig::builder()` (used by kube-client) would panic. Call this before building any
/// TLS client; it is idempotent.
pub fn install_rustls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A unique name usable as an S3 bucket (lower case, `prefix-<pid><nanos>`); replace `-` with
/// `_` where an SQL identifier is needed.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or_default();
    format!("{prefix}-{}{nanos}", std::process::id()).to_lowercase()
}

// ---------------------------------------------------------------------------------------------
// MinIO (S3)

/// An S3 client for the local MinIO: static credentials, path-style addressing.
pub fn s3_client(env: &Env) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(env.s3_region.clone()))
        .endpoint_url(&env.s3_endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            &env.s3_access_key,
            &env.s3_secret_key,
            None,
            None,
            "lakeform-e2e",
        ))
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| anyhow!("create bucket {bucket}: {}", DisplayErrorContext(&e)))?;
    Ok(())
}

pub async fn put_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<()> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| anyhow!("put s3://{bucket}/{key}: {}", DisplayErrorContext(&e)))?;
    Ok(())
}

pub async fn get_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| anyhow!("get s3://{bucket}/{key}: {}", DisplayErrorContext(&e)))?;
    let bytes = out
        .body
        .collect()
        .await
        .with_context(|| format!("reading body of s3://{bucket}/{key}"))?;
    Ok(bytes.into_bytes().to_vec())
}

/// Every object under `prefix` as (key, size), in listing order.
pub async fn list_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| anyhow!("list s3://{bucket}/{prefix}: {}", DisplayErrorContext(&e)))?;
        for obj in page.contents() {
            if let Some(key) = obj.key() {
                out.push((key.to_string(), obj.size().unwrap_or_default()));
            }
        }
    }
    Ok(out)
}

/// Deletes every object in the bucket, then the bucket.
pub async fn delete_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    for (key, _) in list_objects(s3, bucket, "").await? {
        s3.delete_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| anyhow!("delete s3://{bucket}/{key}: {}", DisplayErrorContext(&e)))?;
    }
    s3.delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| anyhow!("delete bucket {bucket}: {}", DisplayErrorContext(&e)))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Iceberg REST catalog

/// FileIO properties for the MinIO behind the catalog. `s3.path-style-access` must be explicit:
/// iceberg-storage-opendal defaults to virtual-host style (like the Java S3FileIO).
pub fn s3_file_io_props(env: &Env) -> HashMap<String, String> {
    HashMap::from([
        ("s3.endpoint".to_string(), env.s3_endpoint.clone()),
        ("s3.region".to_string(), env.s3_region.clone()),
        ("s3.access-key-id".to_string(), env.s3_access_key.clone()),
        (
            "s3.secret-access-key".to_string(),
            env.s3_secret_key.clone(),
        ),
        ("s3.path-style-access".to_string(), "true".to_string()),
        ("s3.disable-config-load".to_string(), "true".to_string()),
        ("s3.disable-ec2-metadata".to_string(), "true".to_string()),
    ])
}

/// A client for the local Iceberg REST catalog whose FileIO writes to MinIO.
pub async fn rest_catalog(env: &Env) -> Result<RestCatalog> {
    let mut props = s3_file_io_props(env);
    props.insert(REST_CATALOG_PROP_URI.to_string(), env.catalog_uri.clone());
    props.insert(
        REST_CATALOG_PROP_WAREHOUSE.to_string(),
        env.catalog_warehouse.clone(),
    );
    RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(OpenDalStorageFactory::S3 {
            customized_credential_load: None,
        }))
        .load("lakeform", props)
        .await
        .with_context(|| format!("connecting to the REST catalog at {}", env.catalog_uri))
}

/// Writes `batches` as one Parquet data file under the table's data location (iceberg-rust's
/// writer stack: Parquet → rolling file → data file) and commits it as a fast append.
/// Returns the table as committed (its new metadata location included).
pub async fn append_batches(
    catalog: &dyn Catalog,
    table: &Table,
    batches: Vec<RecordBatch>,
) -> Result<Table> {
    let metadata = table.metadata();
    let location = DefaultLocationGenerator::new(metadata).context("table data location")?;
    let file_names = DefaultFileNameGenerator::new(
        "lakeform".to_string(),
        Some(unique_name("e2e")),
        DataFileFormat::Parquet,
    );
    let parquet = ParquetWriterBuilder::new(
        WriterProperties::builder().build(),
        metadata.current_schema().clone(),
    );
    let rolling = RollingFileWriterBuilder::new_with_default_file_size(
        parquet,
        table.file_io().clone(),
        location,
        file_names,
    );
    let mut writer = DataFileWriterBuilder::new(rolling)
        .build(None)
        .await
        .context("building the data file writer")?;
    for batch in batches {
        writer
            .write(batch)
            .await
            .context("writing a record batch")?;
    }
    let data_files = writer
        .close()
        .await
        .context("closing the data file writer")?;
    if data_files.is_empty() {
        bail!("the writer produced no data file");
    }

    let tx = Transaction::new(table);
    let tx = tx
        .fast_append()
        .add_data_files(data_files)
        .apply(tx)
        .context("adding the data files to the transaction")?;
    tx.commit(catalog)
        .await
        .with_context(|| format!("committing the append to {}", table.identifier()))
}

// ---------------------------------------------------------------------------------------------
// Verification clients

/// Path of the Python reader next to this crate.
pub fn read_table_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py/read_table.py")
}

/// Runs `e2e/py/read_table.py MODE ARGS…` with the venv's Python and parses its JSON rows.
/// Modes: `pyiceberg NS TABLE`, `pyiceberg-files NS TABLE` (one row per data file: partition
/// values, record count, the partition spec), `duckdb-scan METADATA_LOCATION`,
/// `duckdb-rest NS TABLE`.
pub async fn read_with_python(
    env: &Env,
    mode: &str,
    args: &[&str],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    read_with_python_at(env, &env.catalog_uri, mode, args).await
}

/// [`read_with_python`] against the REST catalog at `catalog` (tests with a catalog of their
/// own).
pub async fn read_with_python_at(
    env: &Env,
    catalog: &str,
    mode: &str,
    args: &[&str],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let script = read_table_script();
    let out = tokio::process::Command::new(&env.python)
        .arg(&script)
        .arg(mode)
        .args(args)
        .envs(script_env(env))
        .env("LAKEFORM_CATALOG_URI", catalog)
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {} {}", env.python.display(), script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "read_table.py {mode} {args:?} failed ({}):\n{stderr}\n{stdout}",
            out.status
        );
    }
    serde_json::from_str(stdout.trim()).with_context(|| {
        format!("read_table.py {mode} printed no JSON rows:\n{stdout}\nstderr:\n{stderr}")
    })
}

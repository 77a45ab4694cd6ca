//! Target tables of steps: created when absent (identity-partitioned on a `sql` step's
//! `partitionBy`), widened with new columns, and written as Parquet data files under the table
//! location (iceberg-rust's writer stack), streaming, one set of files per partition.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_schema::{Field, Schema, SchemaRef};
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::DataFile;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use iceberg_catalog_rest::RestCatalog;
use lakeform_api::connection::S3Connection;

use crate::lake::catalog::{CatalogConn, add_columns, create_table, ensure_namespace};
use crate::lake::schema::normalize;
use crate::lake::writer::{MAX_OPEN_PARTITIONS, PartitionedWriter};
use crate::step::error::StepError;
use crate::step::partition::{self, PartitionBy};

/// Table property naming the workflow step that writes a table.
pub const PROP_WRITER: &str = "lakeform.written-by";

/// The lake's catalog: iceberg-rust's client plus the REST endpoint for raw commits.
pub struct Lake {
    pub catalog: Arc<RestCatalog>,
    pub conn: CatalogConn,
    /// The lake's S3, for zone objects that SQL reads.
    pub s3: S3Connection,
}

/// `database.table` as a table identifier.
pub fn ident(database: &str, table: &str) -> TableIdent {
    TableIdent::new(NamespaceIdent::new(database.to_string()), table.to_string())
}

/// Loads `ident`, creating the namespace and the table (columns of `schema`, normalized to
/// Iceberg types) when absent; columns `schema` has and the table lacks are added.
pub async fn prepare(
    lake: &Lake,
    ident: &TableIdent,
    schema: &Schema,
    properties: HashMap<String, String>,
) -> Result<Table, StepError> {
    prepare_partitioned(lake, ident, schema, None, properties).await
}

/// [`prepare`] with the partitioning a step asks for: a table it creates is identity-partitioned
/// on those columns; an existing table must be partitioned exactly so (checked before anything
/// changes). `None` takes the table as it is.
pub async fn prepare_partitioned(
    lake: &Lake,
    ident: &TableIdent,
    schema: &Schema,
    partition_by: Option<PartitionBy<'_>>,
    properties: HashMap<String, String>,
) -> Result<Table, StepError> {
    let wanted = normalize(schema);
    let partitions = match &partition_by {
        Some(p) => partition::columns(&wanted, p)?,
        None => Vec::new(),
    };
    let exists = lake
        .catalog
        .table_exists(ident)
        .await
        .map_err(StepError::catalog(format!("looking up {ident}")))?;
    if !exists {
        ensure_namespace(&lake.catalog, ident.namespace()).await?;
        let created = create_table(&lake.catalog, ident, &wanted, &partitions, properties).await?;
        return Ok(created);
    }
    let table = lake
        .catalog
        .load_table(ident)
        .await
        .map_err(StepError::catalog(format!("loading {ident}")))?;
    if let Some(p) = &partition_by {
        partition::check_table(&table, p)?;
    }
    let current = arrow_schema(&table)?;
    let missing: Vec<(Option<String>, Field)> = wanted
        .fields()
        .iter()
        .filter(|f| current.field_with_name(f.name()).is_err())
        .map(|f| (None, f.as_ref().clone()))
        .collect();
    if missing.is_empty() {
        return Ok(table);
    }
    tracing::info!(table = %ident, columns = ?missing.iter().map(|(_, f)| f.name()).collect::<Vec<_>>(), "adding columns");
    Ok(add_columns(&lake.catalog, &table, &missing).await?)
}

/// The table's current schema as arrow (with field ids).
pub fn arrow_schema(table: &Table) -> Result<SchemaRef, StepError> {
    schema_to_arrow_schema(table.metadata().current_schema())
        .map(Arc::new)
        .map_err(StepError::catalog(format!(
            "arrow schema of {}",
            table.identifier()
        )))
}

/// A batch with exactly `target`'s columns: matched by name, cast where types differ (a value
/// that does not fit is an error, never a silent null), null where the data has no column.
pub fn conform(
    batch: &RecordBatch,
    target: &SchemaRef,
    table: &str,
) -> Result<RecordBatch, StepError> {
    let rows = batch.num_rows();
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns: Vec<ArrayRef> = target
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => cast_with_options(c, f.data_type(), &strict).map_err(|e| StepError::Data {
                table: table.to_string(),
                message: format!(
                    "column {} ({}) does not fit the table's type {}: {e}",
                    f.name(),
                    c.data_type(),
                    f.data_type()
                ),
            }),
            None => Ok(new_null_array(f.data_type(), rows)),
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| StepError::Data {
        table: table.to_string(),
        message: e.to_string(),
    })
}

/// Parquet data files for one table, written batch by batch: split by the table's partition
/// spec, one rolling writer per open partition (at most [`MAX_OPEN_PARTITIONS`] open).
pub struct FileSink {
    writer: PartitionedWriter,
    target: SchemaRef,
    table: String,
    /// Rows written so far.
    pub rows: u64,
}

impl FileSink {
    /// Opens a writer for `table`; file names carry `run_id`.
    pub async fn open(table: &Table, run_id: &str) -> Result<FileSink, StepError> {
        let name = table.identifier().to_string();
        let writer = PartitionedWriter::new(table, run_id, MAX_OPEN_PARTITIONS)
            .map_err(StepError::catalog(format!("the partition spec of {name}")))?;
        Ok(FileSink {
            writer,
            target: arrow_schema(table)?,
            table: name,
            rows: 0,
        })
    }

    /// Writes one batch (conformed to the table's schema first).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), StepError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let b = conform(batch, &self.target, &self.table)?;
        self.rows += b.num_rows() as u64;
        self.writer
            .write(b)
            .await
            .map_err(StepError::catalog(format!(
                "writing a data file of {}",
                self.table
            )))
    }

    /// Closes the open files; returns every file written.
    pub async fn close(self) -> Result<Vec<DataFile>, StepError> {
        self.writer
            .close()
            .await
            .map_err(StepError::catalog(format!(
                "closing a data file of {}",
                self.table
            )))
    }
}

/// Appends `files` as one snapshot with `properties` in its summary.
pub async fn append(
    lake: &Lake,
    table: &Table,
    files: Vec<DataFile>,
    properties: HashMap<String, String>,
) -> Result<Table, StepError> {
    let ident = table.identifier().to_string();
    if files.is_empty() {
        return Ok(table.clone());
    }
    let tx = Transaction::new(table);
    let tx = tx
        .fast_append()
        .set_snapshot_properties(properties)
        .add_data_files(files)
        .apply(tx)
        .map_err(StepError::catalog(format!("append to {ident}")))?;
    tx.commit(&*lake.catalog)
        .await
        .map_err(StepError::catalog(format!(
            "committing the append to {ident}"
        )))
}

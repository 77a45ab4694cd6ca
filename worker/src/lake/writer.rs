//! Parquet data files under a table's location, through iceberg-rust's writer stack (rolling
//! at the default size, one writer per partition): the crawler ingests text and Avro objects
//! with it (one partition per object group), steps write their results with it
//! ([`PartitionedWriter`]: batches split by the table's partition spec).

use std::collections::HashMap;

use arrow_array::RecordBatch;
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::spec::{DataFile, DataFileFormat, PartitionKey, Struct};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::file::properties::WriterProperties;

/// iceberg-rust's data file writer: Parquet files under the table location.
pub type ParquetFiles =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// A writer of Parquet data files for `table` (in `partition`, if any), rolling at the default
/// size, with `run_id` in the file names.
pub async fn data_file_writer(
    table: &Table,
    partition: Option<Struct>,
    run_id: &str,
) -> Result<ParquetFiles, iceberg::Error> {
    let metadata = table.metadata();
    let location = DefaultLocationGenerator::new(metadata)?;
    let names = DefaultFileNameGenerator::new(
        "lakeform".to_string(),
        Some(run_id.to_string()),
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
        names,
    );
    let key = partition.map(|data| {
        PartitionKey::new(
            metadata.default_partition_spec().as_ref().clone(),
            metadata.current_schema().clone(),
            data,
        )
    });
    DataFileWriterBuilder::new(rolling).build(key).await
}

/// Most partitions a step keeps a data file open for at once: each open file buffers a row
/// group, so this bounds a step's memory however many partitions its result spans.
pub const MAX_OPEN_PARTITIONS: usize = 16;

/// Data files of one table written batch by batch, each batch split by the table's default
/// partition spec (identity or any other transform iceberg-rust computes): one rolling writer
/// per open partition. With more than `max_open` partitions open, the least recently written
/// one is closed; a later row of that partition starts a new file (named with a counter, so it
/// never overwrites the closed one). Unpartitioned tables get one writer.
pub struct PartitionedWriter {
    table: Table,
    run_id: String,
    /// `None` for an unpartitioned table.
    splitter: Option<RecordBatchPartitionSplitter>,
    open: HashMap<Struct, OpenFile>,
    /// Writers opened so far per partition (names the files of reopened partitions).
    opened: HashMap<Struct, u32>,
    max_open: usize,
    /// Batches written so far: orders the open writers by last use.
    tick: u64,
    files: Vec<DataFile>,
}

struct OpenFile {
    writer: ParquetFiles,
    last_used: u64,
}

impl PartitionedWriter {
    /// A writer for `table` (files named with `run_id`) keeping at most `max_open` (at least
    /// one) partitions open.
    pub fn new(table: &Table, run_id: &str, max_open: usize) -> Result<Self, iceberg::Error> {
        let metadata = table.metadata();
        let spec = metadata.default_partition_spec();
        let splitter = if spec.is_unpartitioned() {
            None
        } else {
            Some(RecordBatchPartitionSplitter::try_new_with_computed_values(
                metadata.current_schema().clone(),
                spec.clone(),
            )?)
        };
        Ok(PartitionedWriter {
            table: table.clone(),
            run_id: run_id.to_string(),
            splitter,
            open: HashMap::new(),
            opened: HashMap::new(),
            max_open: max_open.max(1),
            tick: 0,
            files: Vec::new(),
        })
    }

    /// Partitions open now.
    pub fn open_partitions(&self) -> usize {
        self.open.len()
    }

    /// Writes a batch with exactly the table's columns, in its order.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<(), iceberg::Error> {
        let parts = match &self.splitter {
            None => vec![(Struct::empty(), batch)],
            Some(s) => s
                .split(&batch)?
                .into_iter()
                .map(|(key, rows)| (key.data().clone(), rows))
                .collect(),
        };
        for (partition, rows) in parts {
            self.tick += 1;
            let tick = self.tick;
            let file = self.open_file(partition).await?;
            file.last_used = tick;
            file.writer.write(rows).await?;
        }
        Ok(())
    }

    /// The open writer of `partition`, opened (closing the least recently used one when
    /// `max_open` are open) if need be.
    async fn open_file(&mut self, partition: Struct) -> Result<&mut OpenFile, iceberg::Error> {
        if !self.open.contains_key(&partition) {
            if self.open.len() >= self.max_open {
                self.close_least_recent().await?;
            }
            let count = self.opened.entry(partition.clone()).or_insert(0);
            let names = match *count {
                0 => self.run_id.clone(),
                n => format!("{}-{n}", self.run_id),
            };
            *count += 1;
            let key = self.splitter.is_some().then(|| partition.clone());
            let writer = data_file_writer(&self.table, key, &names).await?;
            self.open.insert(
                partition.clone(),
                OpenFile {
                    writer,
                    last_used: 0,
                },
            );
        }
        self.open.get_mut(&partition).ok_or_else(|| {
            iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                "a partition writer vanished after it was opened",
            )
        })
    }

    async fn close_least_recent(&mut self) -> Result<(), iceberg::Error> {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, f)| f.last_used)
            .map(|(p, _)| p.clone());
        if let Some(mut file) = oldest.and_then(|p| self.open.remove(&p)) {
            self.files.extend(file.writer.close().await?);
        }
        Ok(())
    }

    /// Closes every open file; returns all the files written.
    pub async fn close(mut self) -> Result<Vec<DataFile>, iceberg::Error> {
        for (_, mut file) in self.open.drain() {
            self.files.extend(file.writer.close().await?);
        }
        Ok(self.files)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Arc;

    use arrow_array::{Date32Array, Int64Array, StringArray};
    use iceberg::arrow::schema_to_arrow_schema;
    use iceberg::io::FileIO;
    use iceberg::spec::{
        FormatVersion, Literal, NestedField, PartitionSpec, PrimitiveType, Schema as IcebergSchema,
        SortOrder, TableMetadataBuilder, Transform, Type,
    };
    use iceberg::{NamespaceIdent, TableIdent};

    use super::*;

    /// An in-memory table (`id` long, `day` date, `region` string) partitioned by `spec`:
    /// `(column, transform)` pairs. Call it inside a tokio runtime.
    pub(crate) fn memory_table(spec: &[(&str, Transform)]) -> Table {
        let schema = IcebergSchema::builder()
            .with_fields(vec![
                NestedField::optional(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
                NestedField::optional(2, "day", Type::Primitive(PrimitiveType::Date)).into(),
                NestedField::optional(3, "region", Type::Primitive(PrimitiveType::String)).into(),
            ])
            .build()
            .expect("schema");
        let mut builder = PartitionSpec::builder(schema.clone()).with_spec_id(0);
        for (column, transform) in spec {
            let name = match transform {
                Transform::Identity => column.to_string(),
                t => format!("{column}_{t}"),
            };
            builder = builder
                .add_partition_field(*column, name, *transform)
                .expect("partition field");
        }
        let unbound = builder.build().expect("spec").into_unbound();
        let metadata = TableMetadataBuilder::new(
            schema,
            unbound,
            SortOrder::unsorted_order(),
            "memory:///lake/t".to_string(),
            FormatVersion::V2,
            HashMap::new(),
        )
        .expect("metadata")
        .build()
        .expect("metadata")
        .metadata;
        Table::builder()
            .metadata(metadata)
            .identifier(TableIdent::new(
                NamespaceIdent::new("db".into()),
                "t".into(),
            ))
            .file_io(FileIO::new_with_memory())
            .runtime(iceberg::Runtime::current())
            .build()
            .expect("table")
    }

    /// Rows `(id, day, region)` as a batch of the table's columns.
    fn batch(table: &Table, rows: &[(i64, Option<i32>, &str)]) -> RecordBatch {
        let schema = schema_to_arrow_schema(table.metadata().current_schema()).expect("arrow");
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Date32Array::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("batch")
    }

    /// Rows per partition value of `files`, and the files' paths.
    fn by_partition(files: &[DataFile]) -> (BTreeMap<String, u64>, Vec<String>) {
        let mut rows = BTreeMap::new();
        for f in files {
            *rows.entry(format!("{:?}", f.partition())).or_insert(0) += f.record_count();
        }
        (
            rows,
            files.iter().map(|f| f.file_path().to_string()).collect(),
        )
    }

    #[tokio::test]
    async fn batches_are_split_into_one_file_set_per_partition_value() {
        let table = memory_table(&[("day", Transform::Identity)]);
        let mut w = PartitionedWriter::new(&table, "run1", 2).expect("writer");
        // three days and a null day, over two batches, with at most two files open
        w.write(batch(
            &table,
            &[(1, Some(1), "a"), (2, Some(2), "b"), (3, Some(1), "c")],
        ))
        .await
        .expect("first batch");
        assert_eq!(w.open_partitions(), 2);
        w.write(batch(
            &table,
            &[(4, Some(3), "a"), (5, None, "b"), (6, Some(1), "c")],
        ))
        .await
        .expect("second batch");
        assert!(w.open_partitions() <= 2);
        let files = w.close().await.expect("close");
        let (rows, paths) = by_partition(&files);
        let day = |d: i32| format!("{:?}", Struct::from_iter([Some(Literal::date(d))]));
        let null = format!("{:?}", Struct::from_iter([None::<Literal>]));
        let expected = BTreeMap::from([(day(1), 3), (day(2), 1), (day(3), 1), (null, 1)]);
        assert_eq!(rows, expected, "{paths:?}");
        assert!(
            paths.iter().any(|p| p.contains("/data/day=1970-01-02/")),
            "{paths:?}"
        );
        let unique: std::collections::HashSet<_> = paths.iter().collect();
        assert_eq!(
            unique.len(),
            paths.len(),
            "a reopened partition never reuses a name"
        );
    }

    #[tokio::test]
    async fn an_unpartitioned_table_gets_one_writer() {
        let table = memory_table(&[]);
        let mut w = PartitionedWriter::new(&table, "run1", MAX_OPEN_PARTITIONS).expect("writer");
        w.write(batch(&table, &[(1, Some(1), "a"), (2, Some(2), "b")]))
            .await
            .expect("batch");
        assert_eq!(w.open_partitions(), 1);
        let files = w.close().await.expect("close");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].record_count(), 2);
        assert_eq!(files[0].partition(), &Struct::empty());
    }
}

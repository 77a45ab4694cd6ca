//! Parquet data files under a table's location, through iceberg-rust's writer stack (rolling
//! at the default size, one writer per partition): the crawler ingests text and Avro objects
//! with it, steps write their results with it.

use iceberg::spec::{DataFileFormat, PartitionKey, Struct};
use iceberg::table::Table;
use iceberg::writer::IcebergWriterBuilder;
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
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

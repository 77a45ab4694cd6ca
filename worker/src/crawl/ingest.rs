//! CSV, JSON, log and Avro objects ingested: parsed with arrow's readers into the table's
//! schema, written as Parquet under the table location ([`crate::lake::writer`], one writer per
//! partition), returned as data files for one append.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow_schema::{DataType, Schema, SchemaRef};
use iceberg::spec::{DataFile, Struct};
use iceberg::table::Table;
use iceberg::writer::IcebergWriter;

use crate::crawl::error::ObjectFailure;
use crate::crawl::infer::csv::strip_bom;
use crate::crawl::infer::{json, log};
use crate::crawl::model::{CsvDialect, Dialect, Format};
use crate::lake::catalog::PartitionColumn;
use crate::lake::writer::data_file_writer;

const BATCH_ROWS: usize = 8192;

/// Parses a whole (decompressed) object into batches with exactly the fields of `data` (the
/// table's data columns, with field-id metadata): missing columns are null, narrower types
/// are cast, columns the table does not have are dropped.
pub fn decode(
    body: &[u8],
    format: Format,
    dialect: &Dialect,
    file_schema: &Schema,
    data: &SchemaRef,
) -> Result<Vec<RecordBatch>, ObjectFailure> {
    let raw: Vec<RecordBatch> = match (format, dialect) {
        (Format::Csv, Dialect::Csv(d)) => decode_csv(body, d, file_schema, data)?,
        (Format::Json, Dialect::JsonPath(path)) => {
            let records = json::records_at(body, path)?;
            from_json_values(&records, data, ObjectFailure::Json)?
        }
        (Format::Json, _) => arrow_json::ReaderBuilder::new(data.clone())
            .with_coerce_primitive(true)
            .with_batch_size(BATCH_ROWS)
            .build(Cursor::new(strip_bom(body)))
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ObjectFailure::Json(e.to_string()))?,
        (Format::Log, Dialect::Log(l)) => {
            let grok = log::Grok {
                regex: l.regex.clone(),
                schema: file_schema.clone(),
            };
            vec![log::parse(&grok, body)?.0]
        }
        (Format::Avro, _) => {
            let reader =
                apache_avro::Reader::new(body).map_err(|e| ObjectFailure::Avro(e.to_string()))?;
            let mut rows: Vec<serde_json::Value> = Vec::new();
            for v in reader {
                let v = v.map_err(|e| ObjectFailure::Avro(e.to_string()))?;
                rows.push(avro_to_json(v));
            }
            from_json_values(&rows, data, ObjectFailure::Avro)?
        }
        (f, _) => {
            return Err(ObjectFailure::Schema(format!(
                "{f} objects are not ingested"
            )));
        }
    };
    raw.iter().map(|b| conform(b, data)).collect()
}

/// CSV read with the file's columns in file order, typed as the table has them (columns the
/// table lacks keep their inferred type).
fn decode_csv(
    body: &[u8],
    d: &CsvDialect,
    file_schema: &Schema,
    data: &SchemaRef,
) -> Result<Vec<RecordBatch>, ObjectFailure> {
    let read = Schema::new(
        d.columns
            .iter()
            .enumerate()
            .map(|(i, name)| match data.field_with_name(name) {
                Ok(f) => f.clone(),
                Err(_) => {
                    let dt = file_schema
                        .fields()
                        .get(i)
                        .map(|f| f.data_type().clone())
                        .unwrap_or(DataType::Utf8);
                    arrow_schema::Field::new(name, dt, true)
                }
            })
            .collect::<Vec<_>>(),
    );
    arrow_csv::ReaderBuilder::new(Arc::new(read))
        .with_header(d.header)
        .with_delimiter(d.delimiter)
        .with_quote(d.quote)
        .with_truncated_rows(true)
        .with_batch_size(BATCH_ROWS)
        .build(Cursor::new(strip_bom(body)))
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ObjectFailure::Csv(e.to_string()))
}

/// JSON values (records found at a JSON path, Avro rows) decoded into `data`'s fields in one
/// batch at least as large as the rows; errors are reported as `failure`.
fn from_json_values(
    rows: &[serde_json::Value],
    data: &SchemaRef,
    failure: fn(String) -> ObjectFailure,
) -> Result<Vec<RecordBatch>, ObjectFailure> {
    let mut decoder = arrow_json::ReaderBuilder::new(data.clone())
        .with_coerce_primitive(true)
        .with_batch_size(BATCH_ROWS.max(rows.len()))
        .build_decoder()
        .map_err(|e| failure(e.to_string()))?;
    decoder
        .serialize(rows)
        .map_err(|e| failure(e.to_string()))?;
    Ok(decoder
        .flush()
        .map_err(|e| failure(e.to_string()))?
        .into_iter()
        .collect())
}

/// Avro values as JSON for arrow-json: unions unwrapped, timestamps as their integer values.
fn avro_to_json(v: apache_avro::types::Value) -> serde_json::Value {
    use apache_avro::types::Value as V;
    use serde_json::Value as J;
    match v {
        V::Null => J::Null,
        V::Boolean(b) => J::Bool(b),
        V::Int(i) | V::Date(i) | V::TimeMillis(i) => J::from(i),
        V::Long(i) | V::TimeMicros(i) | V::TimestampMicros(i) | V::LocalTimestampMicros(i) => {
            J::from(i)
        }
        V::TimestampMillis(i) | V::LocalTimestampMillis(i) => J::from(i * 1000),
        V::TimestampNanos(i) | V::LocalTimestampNanos(i) => J::from(i / 1000),
        V::Float(f) => J::from(f as f64),
        V::Double(f) => J::from(f),
        V::String(s) | V::Enum(_, s) => J::String(s),
        V::Uuid(u) => J::String(u.to_string()),
        V::Union(_, inner) => avro_to_json(*inner),
        V::Array(items) => J::Array(items.into_iter().map(avro_to_json).collect()),
        V::Map(m) => J::Object(m.into_iter().map(|(k, v)| (k, avro_to_json(v))).collect()),
        V::Record(fields) => J::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, avro_to_json(v)))
                .collect(),
        ),
        other => J::String(format!("{other:?}")),
    }
}

/// A batch with exactly `target`'s fields: by name, cast where types differ, null when absent.
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ObjectFailure> {
    let rows = batch.num_rows();
    let columns: Vec<ArrayRef> = target
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => arrow_cast::cast(c, f.data_type())
                .map_err(|e| ObjectFailure::Schema(format!("column {}: {e}", f.name()))),
            None => Ok(new_null_array(f.data_type(), rows)),
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| ObjectFailure::Schema(e.to_string()))
}

/// A full table batch: data columns plus constant partition columns, in the table's order.
pub fn with_partitions(
    data: &RecordBatch,
    table: &SchemaRef,
    partitions: &[PartitionColumn],
    values: &[Option<String>],
) -> Result<RecordBatch, ObjectFailure> {
    let rows = data.num_rows();
    let columns: Vec<ArrayRef> = table
        .fields()
        .iter()
        .map(|f| {
            if let Some(i) = partitions.iter().position(|p| &p.name == f.name()) {
                let v = values.get(i).cloned().flatten();
                let strings: ArrayRef = Arc::new(StringArray::from(vec![v; rows]));
                arrow_cast::cast(&strings, f.data_type()).map_err(|e| ObjectFailure::Partition {
                    column: f.name().clone(),
                    value: e.to_string(),
                    expected: f.data_type().to_string(),
                })
            } else {
                data.column_by_name(f.name())
                    .cloned()
                    .ok_or_else(|| ObjectFailure::Schema(format!("column {} missing", f.name())))
            }
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(table.clone(), columns).map_err(|e| ObjectFailure::Schema(e.to_string()))
}

/// Writes the batches of one partition as Parquet data files under the table location.
pub async fn write(
    table: &Table,
    partition: Option<Struct>,
    batches: Vec<RecordBatch>,
    run_id: &str,
) -> Result<Vec<DataFile>, ObjectFailure> {
    let w = |e: iceberg::Error| ObjectFailure::Write(e.to_string());
    let mut writer = data_file_writer(table, partition, run_id)
        .await
        .map_err(w)?;
    for b in batches {
        writer.write(b).await.map_err(w)?;
    }
    writer.close().await.map_err(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawl::classify::{Classifiers, classify_text};
    use arrow_array::{Int64Array, cast::AsArray};
    use arrow_schema::Field;

    fn table_schema(fields: Vec<Field>) -> SchemaRef {
        Arc::new(Schema::new(fields))
    }

    fn classifiers() -> Classifiers {
        let spec: lakeform_api::crawler::CrawlerSpec =
            serde_yaml::from_str("lakeRef: {name: l}\ndatabase: d\ntargets: [{zone: raw}]\n")
                .expect("spec");
        Classifiers::from_spec(&spec).expect("classifiers")
    }

    #[test]
    fn csv_into_a_wider_table() {
        let text = b"id,name\n1,a\n2,\"b\nc\"\n";
        let i = classify_text(text, true, &classifiers())
            .expect("ok")
            .expect("csv");
        let data = table_schema(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("extra", DataType::Float64, true),
        ]);
        let batches = decode(text, i.format, &i.dialect, &i.schema, &data).expect("decode");
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column(2).null_count(), 2);
        assert_eq!(b.column(1).as_string::<i32>().value(1), "b\nc");
        let full = table_schema(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("extra", DataType::Float64, true),
            Field::new("year", DataType::Int64, true),
        ]);
        let parts = vec![PartitionColumn {
            name: "year".into(),
            data_type: DataType::Int64,
        }];
        let out = with_partitions(b, &full, &parts, &[Some("2024".into())]).expect("partitions");
        let year = out
            .column(3)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64");
        assert_eq!(year.value(1), 2024);
    }

    #[test]
    fn json_lines_with_nested_and_widened_values() {
        let text =
            b"{\"id\":1,\"u\":{\"n\":\"a\"},\"v\":1}\n{\"id\":2,\"u\":{\"n\":\"b\"},\"v\":2.5}\n";
        let i = classify_text(text, true, &classifiers())
            .expect("ok")
            .expect("json");
        let data = Arc::new(i.schema.as_ref().clone());
        let batches = decode(text, i.format, &i.dialect, &i.schema, &data).expect("decode");
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    }

    #[test]
    fn avro_rows_through_json() {
        let file = crate::crawl::infer::avro::tests::sample_file(5);
        let schema = crate::crawl::infer::avro::infer_head(&file)
            .expect("avro")
            .expect("header");
        let data = Arc::new(schema.clone());
        let batches = decode(&file, Format::Avro, &Dialect::None, &schema, &data).expect("decode");
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
    }
}

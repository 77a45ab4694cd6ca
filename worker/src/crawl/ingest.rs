//! CSV, JSON, log and Avro objects ingested: parsed with arrow's readers into the table's
//! schema, written as Parquet under the table location ([`crate::lake::writer`], one writer per
//! partition), returned as data files for one append.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow_schema::{DataType, Schema, SchemaRef};
use iceberg::spec::{DataFile, Struct};
use iceberg::table::Table;
use iceberg::writer::IcebergWriter;

use crate::crawl::dates;
use crate::crawl::error::ObjectFailure;
use crate::crawl::infer::csv::strip_bom;
use crate::crawl::infer::{csv, document, json, log};
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
        (Format::Json, Dialect::JsonDocument(key)) => decode_document(body, key.as_deref(), data)?,
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
/// table lacks keep their inferred type). When arrow's typed reader refuses a value (a null
/// token such as `NA`, a date in another shape), the object is read again as text and each
/// typed column converted on its own ([`typed_from_text`]).
fn decode_csv(
    body: &[u8],
    d: &CsvDialect,
    file_schema: &Schema,
    data: &SchemaRef,
) -> Result<Vec<RecordBatch>, ObjectFailure> {
    let read = Arc::new(Schema::new(
        d.columns
            .iter()
            .enumerate()
            .map(|(i, name)| match data.field_with_name(name) {
                // the table's type, with the file's date shape (field metadata) if any
                Ok(f) => match file_schema.field_with_name(name) {
                    Ok(inferred) if inferred.data_type() == f.data_type() => {
                        f.clone().with_metadata(inferred.metadata().clone())
                    }
                    _ => f.clone(),
                },
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
    ));
    let shaped = read
        .fields()
        .iter()
        .any(|f| f.metadata().contains_key(dates::FORMAT_KEY));
    let typed = match shaped {
        true => Err(ObjectFailure::Csv("dates in a recorded shape".into())),
        false => read_csv(body, d, read.clone()),
    };
    match typed {
        Ok(batches) => Ok(batches),
        Err(_) => {
            let text = Arc::new(Schema::new(
                read.fields()
                    .iter()
                    .map(|f| arrow_schema::Field::new(f.name(), DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            ));
            read_csv(body, d, text)?
                .iter()
                .map(|b| typed_from_text(b, &read))
                .collect()
        }
    }
}

/// The CSV records of `body` in `schema`'s types.
fn read_csv(
    body: &[u8],
    d: &CsvDialect,
    schema: SchemaRef,
) -> Result<Vec<RecordBatch>, ObjectFailure> {
    arrow_csv::ReaderBuilder::new(schema)
        .with_header(d.header)
        .with_delimiter(d.delimiter)
        .with_quote(d.quote)
        .with_truncated_rows(true)
        .with_batch_size(BATCH_ROWS)
        .build(Cursor::new(strip_bom(body)))
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ObjectFailure::Csv(e.to_string()))
}

/// A batch of text columns in `schema`'s types: text columns as they are; in the others the
/// null tokens (`csv::is_null_token`) become nulls and every other value must convert
/// (dates in a recorded shape through `crate::crawl::dates`), or the object fails naming the
/// column and the value.
fn typed_from_text(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ObjectFailure> {
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            if field.data_type() == &DataType::Utf8 {
                return Ok(column.clone());
            }
            let strings = column.as_string::<i32>();
            let cleaned: StringArray = strings
                .iter()
                .map(|v| v.filter(|v| !csv::is_null_token(v.trim())))
                .collect();
            dates::cast_text(&cleaned, field).map_err(|e| {
                ObjectFailure::Csv(format!(
                    "column {} ({}): {e}",
                    field.name(),
                    field.data_type()
                ))
            })
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| ObjectFailure::Schema(e.to_string()))
}

/// The records of a JSON document fed to arrow's decoder one span at a time: no document
/// tree, batches of [`BATCH_ROWS`].
fn decode_document(
    body: &[u8],
    key: Option<&str>,
    data: &SchemaRef,
) -> Result<Vec<RecordBatch>, ObjectFailure> {
    let text = strip_bom(body);
    let spans = document::spans(text, key)?;
    let json = |e: arrow_schema::ArrowError| ObjectFailure::Json(e.to_string());
    let mut decoder = arrow_json::ReaderBuilder::new(data.clone())
        .with_coerce_primitive(true)
        .with_batch_size(BATCH_ROWS)
        .build_decoder()
        .map_err(json)?;
    let mut batches = Vec::new();
    for span in spans {
        for chunk in [&text[span], &b"\n"[..]] {
            let mut rest = chunk;
            while !rest.is_empty() {
                let read = decoder.decode(rest).map_err(json)?;
                if read == 0 {
                    // a full batch: flush it, then go on
                    match decoder.flush().map_err(json)? {
                        Some(batch) => batches.push(batch),
                        None => {
                            return Err(ObjectFailure::Json("the decoder took no bytes".into()));
                        }
                    }
                }
                rest = &rest[read..];
            }
        }
    }
    batches.extend(decoder.flush().map_err(json)?);
    Ok(batches)
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

    /// Classified as the crawler would, then decoded into the file's own (inferred) schema.
    fn read_back(text: &[u8]) -> (crate::crawl::model::Inferred, Vec<RecordBatch>) {
        let i = classify_text(text, true, &classifiers())
            .expect("ok")
            .expect("classified");
        let data = i.schema.clone();
        let batches = decode(text, i.format, &i.dialect, &i.schema, &data).expect("decode");
        (i, batches)
    }

    #[test]
    fn null_tokens_after_the_sample_are_nulls_in_typed_columns_only() {
        // 1500 rows: the classifier samples 1000, `NA` comes at row 1200 in a numeric column
        // and in a text column (where it stays text).
        let mut text = String::from("id,price,code\n");
        for r in 0..1500 {
            let (price, code) = if r == 1200 {
                ("NA", "NA")
            } else {
                ("2.5", "DE")
            };
            text.push_str(&format!("{r},{price},{code}\n"));
        }
        let (i, batches) = read_back(text.as_bytes());
        assert_eq!(i.schema.field(1).data_type(), &DataType::Float64);
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 1500, "every row ingested");
        let nulls: usize = batches.iter().map(|b| b.column(1).null_count()).sum();
        assert_eq!(nulls, 1);
        let codes: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                b.column(2)
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(codes.iter().any(|c| c == "NA"), "a text column keeps NA");
    }

    #[test]
    fn dates_in_common_shapes_are_typed_and_parsed() {
        let text = b"day,at,n\n2012/01/01,2010/01/01 00:00,1\n2012/01/02,2010/01/01 01:30,2\n";
        let (i, batches) = read_back(text);
        assert_eq!(i.schema.field(0).data_type(), &DataType::Date32);
        assert_eq!(
            i.schema
                .field(0)
                .metadata()
                .get(dates::FORMAT_KEY)
                .map(String::as_str),
            Some("%Y/%m/%d")
        );
        assert!(matches!(
            i.schema.field(1).data_type(),
            DataType::Timestamp(_, None)
        ));
        let days = batches[0]
            .column(0)
            .as_primitive::<arrow_array::types::Date32Type>();
        assert_eq!(days.value(1) - days.value(0), 1);
        assert_eq!(days.value(0), 15340, "2012-01-01");
    }

    #[test]
    fn json_documents_are_read_record_by_record() {
        let mut text = String::from("[\n");
        for r in 0..20_000 {
            let sep = if r == 19_999 { "" } else { "," };
            text.push_str(&format!(
                "  {{\"id\": {r}, \"tags\": [\"a\"], \"who\": {{\"n\": \"x\"}}}}{sep}\n"
            ));
        }
        text.push(']');
        let (i, batches) = read_back(text.as_bytes());
        assert_eq!(i.format, Format::Json);
        assert!(matches!(i.dialect, Dialect::JsonDocument(None)));
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 20_000);
        assert!(batches.len() >= 3, "batches of {BATCH_ROWS} rows");
        let wrapped = br#"{"Records": [{"eventName": "a"}, {"eventName": "b"}]}"#;
        let (i, batches) = read_back(wrapped);
        assert!(matches!(&i.dialect, Dialect::JsonDocument(Some(k)) if k == "Records"));
        assert_eq!(batches[0].num_rows(), 2);
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

//! Looking at one new object: as few and as small GETs as its format allows (Parquet: the last
//! 8 bytes, then the footer; Avro: the header; text: a sample), then classification.

use bytes::Bytes;

use crate::crawl::classify::{self, Classifiers, Magic};
use crate::crawl::compression::{self, Compression};
use crate::crawl::error::ObjectFailure;
use crate::crawl::infer::csv::{self, CsvOptions};
use crate::crawl::infer::{avro, document, json, parquet};
use crate::crawl::model::{Decision, Dialect, Format, Inferred, ObjectMeta};
use crate::lake::s3::Store;
use lakeform_api::crawler::HeaderMode;

/// Bytes of text sampled for classification and inference.
pub const SAMPLE_BYTES: u64 = 1 << 20;
/// Most decompressed bytes looked at from a compressed sample.
const SAMPLE_DECOMPRESSED: usize = 8 << 20;
/// Largest whole document read for JSON-path classifiers.
const MAX_DOCUMENT: u64 = 64 << 20;
/// A CSV object larger than the sample, up to this size, is read whole and its column types
/// inferred from every row: a `NA` or a wider value after the sample cannot fail its ingest
/// (CSV and JSON objects within the sample, with more rows than `sampleSize`, likewise).
const WHOLE_CSV: u64 = 16 << 20;
/// Most decompressed bytes of such a CSV object.
const WHOLE_CSV_DECOMPRESSED: usize = 64 << 20;
/// A whole object read for inference is kept for ingestion up to this size (decompressed).
const KEEP_BODY: usize = 8 << 20;

/// Outcome of examining an object.
#[derive(Debug)]
pub enum Examined {
    Classified(Box<Inferred>),
    /// No classifier claimed it (with the reason, for logs).
    Unclassified(String),
}

pub async fn examine(
    store: &Store,
    bucket: &str,
    obj: &ObjectMeta,
    cls: &Classifiers,
) -> Result<Examined, ObjectFailure> {
    if obj.size == 0 {
        return Ok(Examined::Unclassified("empty object".into()));
    }
    match classify::by_extension(&obj.key) {
        Some(Format::Parquet) if cls.allows(Format::Parquet) => {
            return parquet_footer(store, bucket, obj).await;
        }
        Some(Format::Avro) if cls.allows(Format::Avro) => {
            return avro_header(store, bucket, obj, None).await;
        }
        Some(Format::Orc) => {
            return Ok(Examined::Unclassified(
                "ORC: no maintained Rust crate reads its schema here".into(),
            ));
        }
        _ => {}
    }
    let whole = cls.needs_whole_documents() && obj.size <= MAX_DOCUMENT;
    let len = if whole {
        obj.size
    } else {
        obj.size.min(SAMPLE_BYTES)
    };
    let head = store.get_range(bucket, &obj.key, 0, len).await?;
    let complete = len == obj.size;
    match classify::magic(&head) {
        Magic::Parquet if cls.allows(Format::Parquet) => {
            return if complete {
                footer_from_bytes(&head)
            } else {
                parquet_footer(store, bucket, obj).await
            };
        }
        Magic::Avro if cls.allows(Format::Avro) => {
            return avro_header(store, bucket, obj, Some(head)).await;
        }
        Magic::Orc => {
            return Ok(Examined::Unclassified(
                "ORC: no maintained Rust crate reads its schema here".into(),
            ));
        }
        _ => {}
    }
    let compression = match Compression::from_magic(&head) {
        Compression::None => Compression::from_key(&obj.key),
        c => c,
    };
    let text = compression::decompress(&head, compression, !complete, SAMPLE_DECOMPRESSED)?;
    let text_complete = complete && text.len() < SAMPLE_DECOMPRESSED;
    match classify::classify_text(&text, text_complete, cls)? {
        Some(mut i) if i.format == Format::Csv && !text_complete && obj.size <= WHOLE_CSV => {
            let raw = store.get_all(bucket, &obj.key).await?;
            let whole = compression::decompress(&raw, compression, false, WHOLE_CSV_DECOMPRESSED)?;
            if whole.len() < WHOLE_CSV_DECOMPRESSED {
                every_row(whole, &mut i)?;
            }
            Ok(Examined::Classified(Box::new(i)))
        }
        Some(mut i) => {
            let more_rows = i.rows.is_some_and(|r| r >= cls.sample_rows as u64);
            if matches!(i.format, Format::Csv | Format::Json) && text_complete && more_rows {
                every_row(text, &mut i)?;
            } else {
                // keep the compressed body only when it is the whole object
                i.body = complete.then(|| Bytes::from(text));
            }
            Ok(Examined::Classified(Box::new(i)))
        }
        None => Ok(Examined::Unclassified("no classifier matched".into())),
    }
}

/// A CSV or JSON object's column types from every row of `text` (the whole object, read as
/// the sample classified it): a `NA` or a wider value after the sample widens the column here
/// rather than failing the ingest. The body is kept for ingestion when small enough.
fn every_row(text: Vec<u8>, i: &mut Inferred) -> Result<(), ObjectFailure> {
    let (schema, rows) = match &i.dialect {
        Dialect::Csv(dialect) => {
            let opts = CsvOptions {
                delimiter: Some(dialect.delimiter),
                quote: dialect.quote,
                header: match dialect.header {
                    true => HeaderMode::Present,
                    false => HeaderMode::Absent,
                },
                columns: dialect.columns.clone(),
                sample_rows: usize::MAX,
            };
            let whole = csv::infer(&text, true, &opts)?;
            i.decision.text_columns = whole.text_columns;
            (whole.schema, whole.rows)
        }
        Dialect::JsonDocument(_) => {
            let records = document::records(&text, true)
                .ok_or_else(|| ObjectFailure::Json("not a JSON document of records".into()))?;
            let whole = document::infer(&text, &records, usize::MAX)?;
            (whole.schema, whole.rows)
        }
        Dialect::None if i.format == Format::Json => {
            let whole = json::infer_lines(&text, true, usize::MAX)?;
            (whole.schema, whole.rows)
        }
        _ => return Ok(()),
    };
    i.schema = std::sync::Arc::new(schema);
    i.rows = Some(rows);
    i.body = (text.len() <= KEEP_BODY).then(|| Bytes::from(text));
    Ok(())
}

fn footer_from_bytes(data: &[u8]) -> Result<Examined, ObjectFailure> {
    let (meta, schema) = parquet::infer_bytes(data)?;
    Ok(Examined::Classified(Box::new(parquet_inferred(
        meta, schema,
    ))))
}

fn parquet_inferred(
    meta: std::sync::Arc<::parquet::file::metadata::ParquetMetaData>,
    schema: arrow_schema::Schema,
) -> Inferred {
    let rows = meta.file_metadata().num_rows().max(0) as u64;
    Inferred {
        format: Format::Parquet,
        schema: std::sync::Arc::new(schema),
        dialect: Dialect::None,
        parquet: Some(meta),
        body: None,
        rows: Some(rows),
        decision: Decision {
            classifier: "parquet".into(),
            certainty: 1.0,
            text_columns: Vec::new(),
        },
    }
}

/// Where a Parquet footer lies, given the last bytes (`tail`) of a `size`-byte file.
#[derive(Debug, PartialEq, Eq)]
enum FooterAt {
    /// Within the tail, at this range.
    InTail(std::ops::Range<usize>),
    /// It starts at `start`, before the tail; its last part is `tail[..tail_bytes]`.
    Before { start: u64, tail_bytes: usize },
}

fn locate_footer(tail: &[u8], size: u64) -> Result<FooterAt, ObjectFailure> {
    let end = tail.len().saturating_sub(parquet::TAIL as usize);
    let len = parquet::footer_len(&tail[end..])?;
    if len + parquet::TAIL + 4 > size {
        return Err(ObjectFailure::Parquet(format!(
            "truncated: footer of {len} bytes does not fit in {size} bytes"
        )));
    }
    let start = size - parquet::TAIL - len;
    let tail_start = size - tail.len() as u64;
    Ok(if start >= tail_start {
        FooterAt::InTail(usize::try_from(start - tail_start).unwrap_or(0)..end)
    } else {
        FooterAt::Before {
            start,
            tail_bytes: end,
        }
    })
}

/// Bytes read from the end of a Parquet file in the first GET. Footers of the files crawlers
/// meet are mostly a few KiB; more would read well past the footer (the bench checks bytes read
/// against the footer sizes).
const FOOTER_GUESS: u64 = 4 * 1024;

async fn parquet_footer(
    store: &Store,
    bucket: &str,
    obj: &ObjectMeta,
) -> Result<Examined, ObjectFailure> {
    if obj.size < 12 {
        return Err(ObjectFailure::Parquet(format!(
            "truncated: {} bytes",
            obj.size
        )));
    }
    // One GET of the last FOOTER_GUESS bytes holds most footers whole; a larger footer costs a
    // second GET for the part before the tail.
    let guess = obj.size.min(FOOTER_GUESS);
    let tail = store
        .get_range(bucket, &obj.key, obj.size - guess, obj.size)
        .await?;
    let footer = match locate_footer(&tail, obj.size)? {
        FooterAt::InTail(range) => tail.slice(range),
        FooterAt::Before { start, tail_bytes } => {
            let head = store
                .get_range(bucket, &obj.key, start, obj.size - guess)
                .await?;
            let mut whole = Vec::with_capacity(head.len() + tail_bytes);
            whole.extend_from_slice(&head);
            whole.extend_from_slice(&tail[..tail_bytes]);
            Bytes::from(whole)
        }
    };
    let (meta, schema) = parquet::decode(&footer)?;
    Ok(Examined::Classified(Box::new(parquet_inferred(
        meta, schema,
    ))))
}

async fn avro_header(
    store: &Store,
    bucket: &str,
    obj: &ObjectMeta,
    head: Option<Bytes>,
) -> Result<Examined, ObjectFailure> {
    let mut len = 64 * 1024;
    let mut head = match head {
        Some(h) => h,
        None => {
            store
                .get_range(bucket, &obj.key, 0, obj.size.min(len))
                .await?
        }
    };
    loop {
        if let Some(schema) = avro::infer_head(&head)? {
            let body = (head.len() as u64 == obj.size).then(|| head.clone());
            return Ok(Examined::Classified(Box::new(Inferred {
                format: Format::Avro,
                schema: std::sync::Arc::new(schema),
                dialect: Dialect::None,
                parquet: None,
                body,
                rows: None,
                decision: Decision {
                    classifier: "avro".into(),
                    certainty: 1.0,
                    text_columns: Vec::new(),
                },
            })));
        }
        if head.len() as u64 >= obj.size || len >= SAMPLE_BYTES * 16 {
            return Err(ObjectFailure::Avro("truncated header".into()));
        }
        len *= 4;
        head = store
            .get_range(bucket, &obj.key, 0, obj.size.min(len))
            .await?;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ::parquet::arrow::ArrowWriter;
    use arrow_array::{ArrayRef, Int64Array, RecordBatch};

    use super::*;

    fn parquet_file(columns: usize) -> Vec<u8> {
        let cols: Vec<(String, ArrayRef)> = (0..columns)
            .map(|i| {
                (
                    format!("a_rather_long_column_name_{i:04}"),
                    Arc::new(Int64Array::from(vec![i as i64, 1, 2])) as ArrayRef,
                )
            })
            .collect();
        let batch = RecordBatch::try_from_iter(cols).expect("batch");
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        out
    }

    fn tail(file: &[u8]) -> &[u8] {
        &file[file.len() - (FOOTER_GUESS as usize).min(file.len())..]
    }

    #[test]
    fn small_footers_come_whole_with_the_first_get() {
        let file = parquet_file(3);
        let t = tail(&file);
        let FooterAt::InTail(range) = locate_footer(t, file.len() as u64).expect("valid") else {
            panic!("a 3-column footer fits in {FOOTER_GUESS} bytes");
        };
        let (_, schema) = parquet::decode(&t[range]).expect("decodes");
        assert_eq!(schema.fields().len(), 3);
    }

    #[test]
    fn large_footers_take_a_second_range_before_the_tail() {
        let file = parquet_file(300);
        let size = file.len() as u64;
        let t = tail(&file);
        let FooterAt::Before { start, tail_bytes } = locate_footer(t, size).expect("valid") else {
            panic!("a 300-column footer is larger than {FOOTER_GUESS} bytes");
        };
        let head = &file[start as usize..file.len() - t.len()];
        let footer = [head, &t[..tail_bytes]].concat();
        let (_, schema) = parquet::decode(&footer).expect("decodes");
        assert_eq!(schema.fields().len(), 300);
    }

    #[test]
    fn truncated_files_are_reported() {
        let file = parquet_file(3);
        let cut = &file[file.len() - 40..];
        assert!(
            locate_footer(cut, 40).is_err(),
            "footer longer than the file"
        );
        assert!(locate_footer(b"not parquet at all", 18).is_err());
    }

    fn csv_sampled(text: &[u8]) -> Inferred {
        let spec: lakeform_api::crawler::CrawlerSpec =
            serde_yaml::from_str("lakeRef: {name: l}\ndatabase: d\ntargets: [{zone: raw}]\n")
                .expect("spec");
        let cls = Classifiers::from_spec(&spec).expect("classifiers");
        classify::classify_text(text, true, &cls)
            .expect("ok")
            .expect("classified")
    }

    #[test]
    fn a_wider_value_after_the_sample_widens_the_column() {
        let mut text = String::from("id,n\n");
        for r in 0..3000 {
            let n = if r == 2500 {
                "unknown".to_string()
            } else {
                r.to_string()
            };
            text.push_str(&format!("{r},{n}\n"));
        }
        let mut i = csv_sampled(text.as_bytes());
        assert_eq!(
            i.schema.field(1).data_type(),
            &arrow_schema::DataType::Int64
        );
        every_row(text.clone().into_bytes(), &mut i).expect("inferred");
        assert_eq!(i.schema.field(1).data_type(), &arrow_schema::DataType::Utf8);
        assert_eq!(i.rows, Some(3000));
        assert!(i.body.is_some(), "kept for ingestion");
    }

    #[test]
    fn null_tokens_do_not_make_a_numeric_column_text() {
        let mut text = String::from("id,amount\n");
        for r in 0..3000 {
            let a = if r % 700 == 5 {
                "N/A".to_string()
            } else {
                format!("{r}.5")
            };
            text.push_str(&format!("{r},{a}\n"));
        }
        let mut i = csv_sampled(text.as_bytes());
        every_row(text.into_bytes(), &mut i).expect("inferred");
        assert_eq!(
            i.schema.field(1).data_type(),
            &arrow_schema::DataType::Float64
        );
    }
}

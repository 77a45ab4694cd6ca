//! Looking at one new object: as few and as small GETs as its format allows (Parquet: the last
//! 8 bytes, then the footer; Avro: the header; text: a sample), then classification.

use bytes::Bytes;

use crate::crawl::classify::{self, Classifiers, Magic};
use crate::crawl::compression::{self, Compression};
use crate::crawl::error::ObjectFailure;
use crate::crawl::infer::{avro, parquet};
use crate::crawl::model::{Dialect, Format, Inferred, ObjectMeta};
use crate::crawl::s3::Store;

/// Bytes of text sampled for classification and inference.
pub const SAMPLE_BYTES: u64 = 1 << 20;
/// Most decompressed bytes looked at from a compressed sample.
const SAMPLE_DECOMPRESSED: usize = 8 << 20;
/// Largest whole document read for JSON-path classifiers.
const MAX_DOCUMENT: u64 = 64 << 20;

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
        Some(mut i) => {
            // keep the compressed body only when it is the whole object
            i.body = complete.then(|| Bytes::from(text));
            Ok(Examined::Classified(Box::new(i)))
        }
        None => Ok(Examined::Unclassified("no classifier matched".into())),
    }
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
    }
}

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
    let tail = store
        .get_range(bucket, &obj.key, obj.size - parquet::TAIL, obj.size)
        .await?;
    let len = parquet::footer_len(&tail)?;
    if len + parquet::TAIL + 4 > obj.size {
        return Err(ObjectFailure::Parquet(format!(
            "truncated: footer of {len} bytes does not fit in {} bytes",
            obj.size
        )));
    }
    let start = obj.size - parquet::TAIL - len;
    let footer = store
        .get_range(bucket, &obj.key, start, obj.size - parquet::TAIL)
        .await?;
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

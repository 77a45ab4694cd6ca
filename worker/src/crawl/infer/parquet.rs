//! Parquet: the schema from the footer only (the last 8 bytes, then the footer).

use std::sync::Arc;

use arrow_schema::Schema;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::crawl::error::ObjectFailure;
use crate::lake::schema::normalize;

/// Size of the Parquet tail: 4-byte footer length + `PAR1`.
pub const TAIL: u64 = 8;

/// Length of the footer metadata named by the last 8 bytes of a file.
pub fn footer_len(tail: &[u8]) -> Result<u64, ObjectFailure> {
    let tail: &[u8; 8] = tail.try_into().map_err(|_| {
        ObjectFailure::Parquet(format!("file shorter than 8 bytes ({})", tail.len()))
    })?;
    let t = parquet::file::metadata::FooterTail::try_from(*tail)
        .map_err(|e| ObjectFailure::Parquet(e.to_string()))?;
    Ok(t.metadata_length() as u64)
}

/// Decodes the footer metadata and the arrow schema it describes.
pub fn decode(footer: &[u8]) -> Result<(Arc<ParquetMetaData>, Schema), ObjectFailure> {
    let meta = ParquetMetaDataReader::decode_metadata(footer)
        .map_err(|e| ObjectFailure::Parquet(e.to_string()))?;
    let fm = meta.file_metadata();
    let schema =
        parquet::arrow::parquet_to_arrow_schema(fm.schema_descr(), fm.key_value_metadata())
            .map_err(|e| ObjectFailure::Parquet(e.to_string()))?;
    Ok((Arc::new(meta), normalize(&schema)))
}

/// Infers from a whole file in memory (tests and small objects).
pub fn infer_bytes(data: &[u8]) -> Result<(Arc<ParquetMetaData>, Schema), ObjectFailure> {
    if data.len() < 12 || !data.starts_with(b"PAR1") {
        return Err(ObjectFailure::Parquet("missing PAR1 magic".into()));
    }
    let len = footer_len(&data[data.len() - 8..])? as usize;
    if len + 8 + 4 > data.len() {
        return Err(ObjectFailure::Parquet(format!(
            "footer of {len} bytes does not fit in a file of {} bytes",
            data.len()
        )));
    }
    decode(&data[data.len() - 8 - len..data.len() - 8])
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{
        ArrayRef, Float64Array, Int16Array, Int64Array, RecordBatch, StringArray, StructArray,
    };
    use arrow_schema::{DataType, Field, Fields};

    /// A Parquet file with a nested struct, a list and a small int column.
    pub fn nested_file(rows: i64) -> Vec<u8> {
        let ids: Vec<i64> = (0..rows).collect();
        let mut tags = ListBuilder::new(StringBuilder::new());
        for i in &ids {
            tags.values().append_value(format!("t{i}"));
            tags.append(true);
        }
        let info = StructArray::new(
            Fields::from(vec![
                Field::new("host", DataType::Utf8, true),
                Field::new("cpu", DataType::Float64, true),
            ]),
            vec![
                std::sync::Arc::new(StringArray::from(vec!["h"; rows as usize])) as ArrayRef,
                std::sync::Arc::new(Float64Array::from(vec![0.5; rows as usize])) as ArrayRef,
            ],
            None,
        );
        let batch = RecordBatch::try_from_iter(vec![
            (
                "id",
                std::sync::Arc::new(Int64Array::from(ids.clone())) as ArrayRef,
            ),
            (
                "small",
                std::sync::Arc::new(Int16Array::from(vec![1i16; rows as usize])) as ArrayRef,
            ),
            ("info", std::sync::Arc::new(info) as ArrayRef),
            ("tags", std::sync::Arc::new(tags.finish()) as ArrayRef),
        ])
        .expect("batch");
        let mut out = Vec::new();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        out
    }

    #[test]
    fn nested_schema_from_the_footer_only() {
        let file = nested_file(100);
        let len = footer_len(&file[file.len() - 8..]).expect("tail") as usize;
        assert!(
            len < file.len() / 2,
            "the footer is a small part of the file"
        );
        let (meta, schema) = decode(&file[file.len() - 8 - len..file.len() - 8]).expect("footer");
        assert_eq!(meta.file_metadata().num_rows(), 100);
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(
            schema.field(1).data_type(),
            &DataType::Int32,
            "int16 widens to Iceberg int"
        );
        assert!(matches!(schema.field(2).data_type(), DataType::Struct(f) if f.len() == 2));
        assert!(matches!(schema.field(3).data_type(), DataType::List(_)));
    }

    #[test]
    fn truncated_files_are_errors() {
        let file = nested_file(10);
        assert!(infer_bytes(&file).is_ok());
        assert!(infer_bytes(&file[..file.len() / 2]).is_err());
        assert!(infer_bytes(&file[..file.len() - 1]).is_err());
        assert!(infer_bytes(b"PAR1").is_err());
        assert!(footer_len(b"short").is_err());
    }
}

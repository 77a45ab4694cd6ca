//! Parquet registered in place: an Iceberg data file built from the footer the crawler already
//! read (row count, column sizes, value and null counts, exact min/max bounds, split offsets)
//! and the identity partition values from the folders. No data page is read, nothing copied.

use std::collections::HashMap;

use arrow_schema::DataType;
use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, Literal, NestedFieldRef,
    PrimitiveType, Schema, Struct, Type,
};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

use crate::crawl::error::ObjectFailure;
use crate::lake::catalog::PartitionColumn;

/// Parquet leaf column paths → (field id, type) of the table schema's primitive fields. Lists
/// are found under the usual element names (`list.element`, `list.item`, `element`, `array`).
pub fn leaf_ids(schema: &Schema) -> HashMap<String, (i32, PrimitiveType)> {
    fn walk(
        prefix: &str,
        fields: &[NestedFieldRef],
        out: &mut HashMap<String, (i32, PrimitiveType)>,
    ) {
        for f in fields {
            let path = if prefix.is_empty() {
                f.name.clone()
            } else {
                format!("{prefix}.{}", f.name)
            };
            visit(&path, f.id, &f.field_type, out);
        }
    }
    fn visit(path: &str, id: i32, ty: &Type, out: &mut HashMap<String, (i32, PrimitiveType)>) {
        match ty {
            Type::Primitive(p) => {
                out.insert(path.to_string(), (id, p.clone()));
            }
            Type::Struct(s) => walk(path, s.fields(), out),
            Type::List(l) => {
                for e in [
                    "list.element",
                    "list.item",
                    "element",
                    "array",
                    "bag.array_element",
                ] {
                    visit(
                        &format!("{path}.{e}"),
                        l.element_field.id,
                        &l.element_field.field_type,
                        out,
                    );
                }
            }
            Type::Map(m) => {
                for kv in ["key_value", "map", "entries"] {
                    visit(
                        &format!("{path}.{kv}.key"),
                        m.key_field.id,
                        &m.key_field.field_type,
                        out,
                    );
                    visit(
                        &format!("{path}.{kv}.value"),
                        m.value_field.id,
                        &m.value_field.field_type,
                        out,
                    );
                }
            }
        }
    }
    let mut out = HashMap::new();
    walk("", schema.as_struct().fields(), &mut out);
    out
}

/// Exact min/max as Iceberg bounds, for the types where the Parquet value is the Iceberg value.
fn bounds(stats: &Statistics, ty: &PrimitiveType) -> Option<(Datum, Datum)> {
    if !stats.min_is_exact() || !stats.max_is_exact() {
        return None;
    }
    match (stats, ty) {
        (Statistics::Int32(s), PrimitiveType::Int) => {
            Some((Datum::int(*s.min_opt()?), Datum::int(*s.max_opt()?)))
        }
        (Statistics::Int32(s), PrimitiveType::Long) => Some((
            Datum::long(*s.min_opt()? as i64),
            Datum::long(*s.max_opt()? as i64),
        )),
        (Statistics::Int32(s), PrimitiveType::Date) => {
            Some((Datum::date(*s.min_opt()?), Datum::date(*s.max_opt()?)))
        }
        (Statistics::Int64(s), PrimitiveType::Long) => {
            Some((Datum::long(*s.min_opt()?), Datum::long(*s.max_opt()?)))
        }
        (Statistics::Boolean(s), PrimitiveType::Boolean) => {
            Some((Datum::bool(*s.min_opt()?), Datum::bool(*s.max_opt()?)))
        }
        (Statistics::ByteArray(s), PrimitiveType::String) => {
            let min = std::str::from_utf8(s.min_opt()?.data()).ok()?;
            let max = std::str::from_utf8(s.max_opt()?.data()).ok()?;
            Some((Datum::string(min), Datum::string(max)))
        }
        _ => None,
    }
}

/// The partition tuple of an object: one literal per partition column (None for null).
pub fn partition_struct(
    partitions: &[PartitionColumn],
    values: &[Option<String>],
) -> Result<Struct, ObjectFailure> {
    let mut out = Vec::with_capacity(partitions.len());
    for (p, v) in partitions.iter().zip(values) {
        let Some(v) = v else {
            out.push(None);
            continue;
        };
        let bad = || ObjectFailure::Partition {
            column: p.name.clone(),
            value: v.clone(),
            expected: p.data_type.to_string(),
        };
        out.push(Some(match p.data_type {
            DataType::Int64 => Literal::long(v.parse::<i64>().map_err(|_| bad())?),
            DataType::Date32 => Literal::date_from_str(v).map_err(|_| bad())?,
            _ => Literal::string(v),
        }));
    }
    Ok(Struct::from_iter(out))
}

/// The data file of a Parquet object registered in place.
pub fn data_file(
    path: String,
    size: u64,
    meta: &ParquetMetaData,
    table_schema: &Schema,
    partition: Struct,
    spec_id: i32,
) -> Result<DataFile, ObjectFailure> {
    let ids = leaf_ids(table_schema);
    let mut column_sizes: HashMap<i32, u64> = HashMap::new();
    let mut value_counts: HashMap<i32, u64> = HashMap::new();
    let mut null_counts: HashMap<i32, u64> = HashMap::new();
    let mut lower: HashMap<i32, Datum> = HashMap::new();
    let mut upper: HashMap<i32, Datum> = HashMap::new();
    let mut no_bounds: std::collections::HashSet<i32> = Default::default();
    for rg in meta.row_groups() {
        for col in rg.columns() {
            let Some((id, ty)) = ids.get(&col.column_descr().path().string()) else {
                continue;
            };
            *column_sizes.entry(*id).or_default() += col.compressed_size().max(0) as u64;
            *value_counts.entry(*id).or_default() += col.num_values().max(0) as u64;
            let stats = col.statistics();
            match stats.and_then(|s| s.null_count_opt()) {
                Some(n) => *null_counts.entry(*id).or_default() += n,
                None => {
                    null_counts.remove(id);
                }
            }
            match stats.and_then(|s| bounds(s, ty)) {
                Some((lo, hi)) if !no_bounds.contains(id) => {
                    let keep_lo = lower.get(id).is_none_or(|cur| lo < *cur);
                    let keep_hi = upper.get(id).is_none_or(|cur| hi > *cur);
                    if keep_lo {
                        lower.insert(*id, lo);
                    }
                    if keep_hi {
                        upper.insert(*id, hi);
                    }
                }
                _ => {
                    // bounds must cover every row group, or none
                    no_bounds.insert(*id);
                    lower.remove(id);
                    upper.remove(id);
                }
            }
        }
    }
    DataFileBuilder::default()
        .content(DataContentType::Data)
        .file_path(path)
        .file_format(DataFileFormat::Parquet)
        .partition(partition)
        .partition_spec_id(spec_id)
        .record_count(meta.file_metadata().num_rows().max(0) as u64)
        .file_size_in_bytes(size)
        .column_sizes(column_sizes)
        .value_counts(value_counts)
        .null_value_counts(null_counts)
        .lower_bounds(lower)
        .upper_bounds(upper)
        .split_offsets(Some(
            meta.row_groups()
                .iter()
                .filter_map(|rg| rg.file_offset())
                .collect(),
        ))
        .build()
        .map_err(|e| ObjectFailure::Parquet(format!("building the data file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawl::infer::parquet::{infer_bytes, tests::nested_file};

    #[test]
    fn data_file_from_footer_with_metrics_and_partition() {
        let file = nested_file(50);
        let (meta, schema) = infer_bytes(&file).expect("parquet");
        let mut fields: Vec<arrow_schema::Field> =
            schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(arrow_schema::Field::new("region", DataType::Utf8, true));
        let table = iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(
            &arrow_schema::Schema::new(fields),
        )
        .expect("iceberg schema");
        let parts = vec![PartitionColumn {
            name: "region".into(),
            data_type: DataType::Utf8,
        }];
        let p = partition_struct(&parts, &[Some("eu".into())]).expect("partition");
        let df = data_file(
            "s3://b/k.parquet".into(),
            file.len() as u64,
            &meta,
            &table,
            p,
            0,
        )
        .expect("data file");
        assert_eq!(df.record_count(), 50);
        assert_eq!(df.file_size_in_bytes(), file.len() as u64);
        let id = table.field_by_name("id").expect("id").id;
        assert_eq!(df.lower_bounds().get(&id), Some(&Datum::long(0)));
        assert_eq!(df.upper_bounds().get(&id), Some(&Datum::long(49)));
        assert_eq!(df.null_value_counts().get(&id), Some(&0));
        let host = table.field_by_name("info.host").expect("info.host").id;
        assert!(
            df.value_counts().contains_key(&host),
            "nested leaves get metrics"
        );
        let ids = leaf_ids(&table);
        assert!(ids.contains_key("tags.list.element"));
        assert_eq!(
            df.partition(),
            &Struct::from_iter(vec![Some(Literal::string("eu"))])
        );
        let bad = partition_struct(
            &[PartitionColumn {
                name: "year".into(),
                data_type: DataType::Int64,
            }],
            &[Some("x".into())],
        );
        assert!(bad.is_err());
    }
}

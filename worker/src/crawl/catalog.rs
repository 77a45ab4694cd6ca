//! The crawler's view of the catalog: the properties it keeps on its tables, the tables it
//! maintains, their schemas and partition columns in its terms, and name mappings. Connecting,
//! creating tables and adding columns are [`crate::lake::catalog`]'s.

use arrow_schema::{DataType, Schema};
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{NestedFieldRef, Schema as IcebergSchema, Type};
use iceberg::table::Table;
use iceberg::{Catalog, NamespaceIdent};
use iceberg_catalog_rest::RestCatalog;

use crate::crawl::error::CrawlError;
use crate::lake::catalog::PartitionColumn;
use crate::lake::schema::normalize;

/// Table property naming the crawler that maintains a table.
pub const PROP_CRAWLER: &str = "lakeform.crawler";
/// Table property: source format (`parquet`, `csv`, …).
pub const PROP_FORMAT: &str = "lakeform.format";
/// Table property: where the source objects are (`s3://bucket/prefix`).
pub const PROP_SOURCE: &str = "lakeform.source";
/// Table property: JSON map of source keys to `etag|size` already in the table.
pub const PROP_OBJECTS: &str = "lakeform.objects";
/// Table property set to `true` when the table's data is gone (`delete: Deprecate`).
pub const PROP_DEPRECATED: &str = "lakeform.deprecated";
/// Table property: the classifier that read the table's first objects (the least certain of
/// them) and its certainty, `json-document (certainty 1.00)`.
pub const PROP_CLASSIFIER: &str = "lakeform.classifier";
/// Table property prefix: the date or timestamp shape of a column (`…column-format.<name>`).
pub const PROP_COLUMN_FORMAT: &str = "lakeform.column-format.";
/// Table property: columns that fell back to text, one line per object and column, with why.
pub const PROP_TEXT_COLUMNS: &str = "lakeform.text-columns";
/// Iceberg's name mapping, for data files written without field ids (Parquet in place).
pub const PROP_NAME_MAPPING: &str = "schema.name-mapping.default";

/// What a table's properties say about how its objects were read: the classifier, then one
/// line per dated column and per column that fell back to text.
pub fn decisions(
    props: &std::collections::HashMap<String, String>,
) -> (Option<String>, Vec<String>) {
    let mut lines: Vec<String> = props
        .iter()
        .filter_map(|(k, v)| {
            let column = k.strip_prefix(PROP_COLUMN_FORMAT)?;
            Some(format!("{column}: dates of shape {v}"))
        })
        .collect();
    lines.sort();
    if let Some(text) = props.get(PROP_TEXT_COLUMNS) {
        lines.extend(text.lines().map(|l| format!("text: {l}")));
    }
    (props.get(PROP_CLASSIFIER).cloned(), lines)
}

/// The tables of `ns` maintained by `crawler`.
pub async fn crawler_tables(
    catalog: &RestCatalog,
    ns: &NamespaceIdent,
    crawler: &str,
) -> Result<Vec<Table>, CrawlError> {
    let idents = catalog
        .list_tables(ns)
        .await
        .map_err(CrawlError::catalog(format!("listing tables of {ns:?}")))?;
    let mut out = Vec::new();
    for ident in idents {
        let table = catalog
            .load_table(&ident)
            .await
            .map_err(CrawlError::catalog(format!("loading {ident}")))?;
        if table
            .metadata()
            .properties()
            .get(PROP_CRAWLER)
            .map(String::as_str)
            == Some(crawler)
        {
            out.push(table);
        }
    }
    Ok(out)
}

/// The table's schema in the crawler's arrow terms: no field ids, nullable, normalized.
pub fn arrow_schema(table: &Table) -> Result<Schema, CrawlError> {
    let s = schema_to_arrow_schema(table.metadata().current_schema()).map_err(
        CrawlError::catalog(format!("arrow schema of {}", table.identifier())),
    )?;
    Ok(normalize(&s))
}

/// Names of the identity partition columns of the table's default spec.
pub fn partition_columns(table: &Table) -> Vec<PartitionColumn> {
    let schema = table.metadata().current_schema();
    table
        .metadata()
        .default_partition_spec()
        .fields()
        .iter()
        .filter_map(|pf| {
            let f = schema.field_by_id(pf.source_id)?;
            let dt = match f.field_type.as_ref() {
                Type::Primitive(iceberg::spec::PrimitiveType::Long) => DataType::Int64,
                Type::Primitive(iceberg::spec::PrimitiveType::Date) => DataType::Date32,
                _ => DataType::Utf8,
            };
            Some(PartitionColumn {
                name: f.name.clone(),
                data_type: dt,
            })
        })
        .collect()
}

/// Data columns of a table schema (partition columns left out).
pub fn data_schema(full: &Schema, partitions: &[PartitionColumn]) -> Schema {
    Schema::new(
        full.fields()
            .iter()
            .filter(|f| !partitions.iter().any(|p| &p.name == f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    )
}

/// Iceberg's JSON name mapping of a schema (every field, nested included).
pub fn name_mapping(schema: &IcebergSchema) -> String {
    fn fields(fs: &[NestedFieldRef]) -> Vec<serde_json::Value> {
        fs.iter()
            .map(|f| mapping(f.id, &f.name, &f.field_type))
            .collect()
    }
    fn mapping(id: i32, name: &str, ty: &Type) -> serde_json::Value {
        let mut m = serde_json::json!({ "field-id": id, "names": [name] });
        let nested = match ty {
            Type::Struct(s) => fields(s.fields()),
            Type::List(l) => vec![mapping(
                l.element_field.id,
                "element",
                &l.element_field.field_type,
            )],
            Type::Map(mp) => vec![
                mapping(mp.key_field.id, "key", &mp.key_field.field_type),
                mapping(mp.value_field.id, "value", &mp.value_field.field_type),
            ],
            Type::Primitive(_) => Vec::new(),
        };
        if !nested.is_empty() {
            m["fields"] = serde_json::Value::Array(nested);
        }
        m
    }
    serde_json::Value::Array(fields(schema.as_struct().fields())).to_string()
}

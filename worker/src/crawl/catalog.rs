//! The Iceberg REST catalog through iceberg-rust 0.10.1: connect, namespaces, the crawler's
//! tables, creation with identity partitions, schema evolution and name mappings.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use iceberg::arrow::{arrow_schema_to_schema_auto_assign_ids, schema_to_arrow_schema};
use iceberg::spec::{
    NestedFieldRef, Schema as IcebergSchema, Transform, Type, UnboundPartitionSpec,
};
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_rest::{
    REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE, RestCatalog, RestCatalogBuilder,
};
use iceberg_storage_opendal::OpenDalStorageFactory;

use crate::crawl::error::CrawlError;
use crate::crawl::layout::PartitionColumn;
use crate::crawl::s3::S3Conn;
use crate::crawl::schema::normalize;

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
/// Iceberg's name mapping, for data files written without field ids (Parquet in place).
pub const PROP_NAME_MAPPING: &str = "schema.name-mapping.default";

/// Where the catalog is.
#[derive(Clone, Debug)]
pub struct CatalogConn {
    pub uri: String,
    pub warehouse: Option<String>,
}

/// FileIO properties for the lake's S3.
pub fn file_io_props(s3: &S3Conn) -> HashMap<String, String> {
    HashMap::from([
        ("s3.endpoint".to_string(), s3.endpoint.clone()),
        ("s3.region".to_string(), s3.region.clone()),
        ("s3.access-key-id".to_string(), s3.access_key.clone()),
        ("s3.secret-access-key".to_string(), s3.secret_key.clone()),
        (
            "s3.path-style-access".to_string(),
            s3.path_style.to_string(),
        ),
        ("s3.disable-config-load".to_string(), "true".to_string()),
        ("s3.disable-ec2-metadata".to_string(), "true".to_string()),
    ])
}

pub async fn connect(conn: &CatalogConn, s3: &S3Conn) -> Result<RestCatalog, CrawlError> {
    let mut props = file_io_props(s3);
    props.insert(REST_CATALOG_PROP_URI.to_string(), conn.uri.clone());
    if let Some(w) = &conn.warehouse {
        props.insert(REST_CATALOG_PROP_WAREHOUSE.to_string(), w.clone());
    }
    RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(OpenDalStorageFactory::S3 {
            customized_credential_load: None,
        }))
        .load("lakeform", props)
        .await
        .map_err(CrawlError::catalog(format!("connecting to {}", conn.uri)))
}

pub async fn ensure_namespace(
    catalog: &RestCatalog,
    ns: &NamespaceIdent,
) -> Result<(), CrawlError> {
    let exists = catalog
        .namespace_exists(ns)
        .await
        .map_err(CrawlError::catalog(format!("looking up namespace {ns:?}")))?;
    if !exists {
        catalog
            .create_namespace(ns, HashMap::new())
            .await
            .map_err(CrawlError::catalog(format!("creating namespace {ns:?}")))?;
    }
    Ok(())
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

/// Creates a table: data columns then partition columns, identity-partitioned on the latter.
pub async fn create_table(
    catalog: &RestCatalog,
    ident: &TableIdent,
    data: &Schema,
    partitions: &[PartitionColumn],
    properties: HashMap<String, String>,
) -> Result<Table, CrawlError> {
    let mut fields: Vec<Field> = data.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(
        partitions
            .iter()
            .map(|p| Field::new(&p.name, p.data_type.clone(), true)),
    );
    let schema = arrow_schema_to_schema_auto_assign_ids(&Schema::new(fields))
        .map_err(CrawlError::catalog(format!("schema of {ident}")))?;
    // the Java REST server rejects a partition spec without `spec-id`, which iceberg-rust
    // leaves out unless set
    let mut spec = UnboundPartitionSpec::builder().with_spec_id(0);
    for p in partitions {
        let source = schema.field_by_name(&p.name).ok_or_else(|| {
            CrawlError::Config(format!(
                "partition column {} missing from the schema",
                p.name
            ))
        })?;
        spec = spec
            .add_partition_field(source.id, &p.name, Transform::Identity)
            .map_err(CrawlError::catalog(format!("partition spec of {ident}")))?;
    }
    let creation = TableCreation::builder()
        .name(ident.name().to_string())
        .schema(schema)
        .partition_spec(spec.build())
        .properties(properties)
        .build();
    catalog
        .create_table(ident.namespace(), creation)
        .await
        .map_err(CrawlError::catalog(format!("creating {ident}")))
}

/// Iceberg type of an arrow type (nested types get placeholder ids, reassigned on commit).
fn iceberg_type(dt: &DataType) -> Result<Type, CrawlError> {
    let s = arrow_schema_to_schema_auto_assign_ids(&Schema::new(vec![Field::new(
        "x",
        dt.clone(),
        true,
    )]))
    .map_err(CrawlError::catalog(format!("iceberg type of {dt}")))?;
    s.as_struct()
        .fields()
        .first()
        .map(|f| f.field_type.as_ref().clone())
        .ok_or_else(|| CrawlError::Config(format!("no iceberg type for {dt}")))
}

/// Adds columns (top level, or inside existing structs: `parent` path) in one commit: a new
/// schema id. Returns the committed table.
pub async fn add_columns(
    catalog: &RestCatalog,
    table: &Table,
    columns: &[(Option<String>, Field)],
) -> Result<Table, CrawlError> {
    let tx = Transaction::new(table);
    let mut action = tx.update_schema();
    for (parent, f) in columns {
        let ty = iceberg_type(f.data_type())?;
        let add = match parent {
            Some(p) => AddColumn::builder()
                .parent(p.clone())
                .name(f.name().clone())
                .field_type(ty)
                .build(),
            None => AddColumn::optional(f.name(), ty),
        };
        action = action.add_column(add);
    }
    let tx = action.apply(tx).map_err(CrawlError::catalog(format!(
        "schema update of {}",
        table.identifier()
    )))?;
    tx.commit(catalog)
        .await
        .map_err(CrawlError::catalog(format!(
            "committing the schema update of {}",
            table.identifier()
        )))
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

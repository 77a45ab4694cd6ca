//! The Iceberg REST catalog through iceberg-rust 0.10.1: connect, namespaces, table creation
//! with identity partitions and column additions, as both the crawler and the steps use them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use iceberg::arrow::arrow_schema_to_schema_auto_assign_ids;
use iceberg::spec::{Transform, Type, UnboundPartitionSpec};
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_rest::{
    REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE, RestCatalog, RestCatalogBuilder,
};
use iceberg_storage_opendal::OpenDalStorageFactory;
use lakeform_api::connection::S3Connection;

use crate::lake::error::LakeError;

/// A column a table is identity-partitioned on.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionColumn {
    pub name: String,
    pub data_type: DataType,
}

/// Where the catalog is.
#[derive(Clone, Debug)]
pub struct CatalogConn {
    pub uri: String,
    pub warehouse: Option<String>,
}

/// FileIO properties for the lake's S3.
pub fn file_io_props(s3: &S3Connection) -> HashMap<String, String> {
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

/// A catalog client for `conn`, its FileIO signing with `s3`.
pub async fn connect(conn: &CatalogConn, s3: &S3Connection) -> Result<RestCatalog, LakeError> {
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
        .map_err(LakeError::catalog(format!("connecting to {}", conn.uri)))
}

/// Creates the namespace `ns` unless it exists.
pub async fn ensure_namespace(catalog: &RestCatalog, ns: &NamespaceIdent) -> Result<(), LakeError> {
    let exists = catalog
        .namespace_exists(ns)
        .await
        .map_err(LakeError::catalog(format!("looking up namespace {ns:?}")))?;
    if !exists {
        catalog
            .create_namespace(ns, HashMap::new())
            .await
            .map_err(LakeError::catalog(format!("creating namespace {ns:?}")))?;
    }
    Ok(())
}

/// Creates a table identity-partitioned on `partitions`: the columns of `data`, then the
/// partition columns `data` does not have (the crawler's partitions come from object paths;
/// a step's are columns of its query, which keep their place).
pub async fn create_table(
    catalog: &RestCatalog,
    ident: &TableIdent,
    data: &Schema,
    partitions: &[PartitionColumn],
    properties: HashMap<String, String>,
) -> Result<Table, LakeError> {
    let mut fields: Vec<Field> = data.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(
        partitions
            .iter()
            .filter(|p| data.field_with_name(&p.name).is_err())
            .map(|p| Field::new(&p.name, p.data_type.clone(), true)),
    );
    let schema = arrow_schema_to_schema_auto_assign_ids(&Schema::new(fields))
        .map_err(LakeError::catalog(format!("schema of {ident}")))?;
    // the Java REST server rejects a partition spec without `spec-id`, which iceberg-rust
    // leaves out unless set
    let mut spec = UnboundPartitionSpec::builder().with_spec_id(0);
    for p in partitions {
        let source = schema.field_by_name(&p.name).ok_or_else(|| {
            LakeError::Config(format!(
                "partition column {} missing from the schema",
                p.name
            ))
        })?;
        spec = spec
            .add_partition_field(source.id, &p.name, Transform::Identity)
            .map_err(LakeError::catalog(format!("partition spec of {ident}")))?;
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
        .map_err(LakeError::catalog(format!("creating {ident}")))
}

/// Iceberg type of an arrow type (nested types get placeholder ids, reassigned on commit).
fn iceberg_type(dt: &DataType) -> Result<Type, LakeError> {
    let s = arrow_schema_to_schema_auto_assign_ids(&Schema::new(vec![Field::new(
        "x",
        dt.clone(),
        true,
    )]))
    .map_err(LakeError::catalog(format!("iceberg type of {dt}")))?;
    s.as_struct()
        .fields()
        .first()
        .map(|f| f.field_type.as_ref().clone())
        .ok_or_else(|| LakeError::Config(format!("no iceberg type for {dt}")))
}

/// Adds columns (top level, or inside existing structs: `parent` path) in one commit: a new
/// schema id. Returns the committed table.
pub async fn add_columns(
    catalog: &RestCatalog,
    table: &Table,
    columns: &[(Option<String>, Field)],
) -> Result<Table, LakeError> {
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
    let tx = action.apply(tx).map_err(LakeError::catalog(format!(
        "schema update of {}",
        table.identifier()
    )))?;
    tx.commit(catalog).await.map_err(LakeError::catalog(format!(
        "committing the schema update of {}",
        table.identifier()
    )))
}

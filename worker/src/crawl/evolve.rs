//! Schema evolution of crawled tables beyond what iceberg-rust 0.10.1's transactions offer:
//! type promotions committed as a new schema through [`crate::lake::rest::commit_table`].

use crate::lake::catalog::CatalogConn;
use crate::lake::error::LakeError;
use crate::lake::rest::commit_table;

/// Type promotions Iceberg allows (int→long, float→double, decimal precision), committed as a
/// new schema through the REST commit endpoint: iceberg-rust 0.10.1's `UpdateSchemaAction`
/// only adds and deletes columns, and its `TableCommit` cannot be built outside the crate.
/// `columns`: dotted paths of primitive fields and their new types.
pub async fn widen_columns(
    conn: &CatalogConn,
    table: &iceberg::table::Table,
    columns: &[(String, iceberg::spec::PrimitiveType)],
) -> Result<(), LakeError> {
    use iceberg::spec::{NestedField, NestedFieldRef, Schema, StructType, Type};
    use iceberg::{TableRequirement, TableUpdate};

    fn rebuild(
        prefix: &str,
        fields: &[NestedFieldRef],
        columns: &[(String, iceberg::spec::PrimitiveType)],
    ) -> Vec<NestedFieldRef> {
        fields
            .iter()
            .map(|f| {
                let path = if prefix.is_empty() {
                    f.name.clone()
                } else {
                    format!("{prefix}.{}", f.name)
                };
                let mut nf: NestedField = f.as_ref().clone();
                match f.field_type.as_ref() {
                    Type::Primitive(_) => {
                        if let Some((_, t)) = columns.iter().find(|(p, _)| *p == path) {
                            nf.field_type = Box::new(Type::Primitive(t.clone()));
                        }
                    }
                    Type::Struct(s) => {
                        nf.field_type = Box::new(Type::Struct(StructType::new(rebuild(
                            &path,
                            s.fields(),
                            columns,
                        ))));
                    }
                    _ => {}
                }
                std::sync::Arc::new(nf)
            })
            .collect()
    }

    let metadata = table.metadata();
    let current = metadata.current_schema();
    let next_id = metadata
        .schemas_iter()
        .map(|s| s.schema_id())
        .max()
        .unwrap_or(0)
        + 1;
    let schema = Schema::builder()
        .with_schema_id(next_id)
        .with_identifier_field_ids(current.identifier_field_ids())
        .with_fields(rebuild("", current.as_struct().fields(), columns))
        .build()
        .map_err(|e| LakeError::Rest {
            context: format!("widened schema of {}", table.identifier()),
            message: e.to_string(),
        })?;
    commit_table(
        conn,
        table.identifier(),
        serde_json::json!([TableRequirement::CurrentSchemaIdMatch {
            current_schema_id: current.schema_id()
        }]),
        serde_json::json!([
            TableUpdate::AddSchema { schema },
            TableUpdate::SetCurrentSchema { schema_id: -1 }
        ]),
        &format!("widening columns of {}", table.identifier()),
    )
    .await
}

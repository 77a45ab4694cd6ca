//! Schema evolution of crawled tables: which columns a schema change adds and which types it
//! promotes ([`additions`]), and the promotions iceberg-rust 0.10.1's transactions cannot
//! make, committed as a new schema through [`crate::lake::rest::commit_table`]
//! ([`widen_columns`]).

use arrow_schema::{DataType, Field, Schema};

use crate::crawl::schema::SchemaDiff;
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

/// Columns to add (with their parent path for nested ones), promotions Iceberg allows (dotted
/// path → new type) and type changes it does not.
#[allow(clippy::type_complexity)]
pub fn additions(
    diff: &SchemaDiff,
) -> (
    Vec<(Option<String>, Field)>,
    Vec<(String, iceberg::spec::PrimitiveType)>,
    Vec<String>,
) {
    let mut adds: Vec<(Option<String>, Field)> =
        diff.added.iter().map(|f| (None, f.clone())).collect();
    let mut widen = Vec::new();
    let mut refused = Vec::new();
    fn nested(
        path: &str,
        old: &Field,
        new: &Field,
        adds: &mut Vec<(Option<String>, Field)>,
        widen: &mut Vec<(String, iceberg::spec::PrimitiveType)>,
        refused: &mut Vec<String>,
    ) {
        use iceberg::spec::PrimitiveType as P;
        match (old.data_type(), new.data_type()) {
            (DataType::Struct(of), DataType::Struct(nf)) => {
                for f in nf.iter() {
                    match of.iter().find(|o| o.name() == f.name()) {
                        None => adds.push((Some(path.to_string()), f.as_ref().clone())),
                        Some(o) if o.data_type() != f.data_type() => {
                            nested(&format!("{path}.{}", f.name()), o, f, adds, widen, refused)
                        }
                        Some(_) => {}
                    }
                }
            }
            (DataType::Int32, DataType::Int64) => widen.push((path.to_string(), P::Long)),
            (DataType::Float32, DataType::Float64) => widen.push((path.to_string(), P::Double)),
            (DataType::Decimal128(_, s1), DataType::Decimal128(p, s)) if s1 == s => widen.push((
                path.to_string(),
                P::Decimal {
                    precision: *p as u32,
                    scale: *s as u32,
                },
            )),
            (a, b) => refused.push(format!("{path}: {a}→{b}")),
        }
    }
    for (old, new) in &diff.widened {
        nested(old.name(), old, new, &mut adds, &mut widen, &mut refused);
    }
    (adds, widen, refused)
}

/// `name:type, …` of a schema, for messages.
pub fn describe(s: &Schema) -> String {
    s.fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `+added, name:old→new, …` of a schema change, for messages.
pub fn describe_diff(diff: &SchemaDiff) -> String {
    diff.added
        .iter()
        .map(|f| format!("+{}", f.name()))
        .chain(
            diff.widened
                .iter()
                .map(|(o, n)| format!("{}:{}→{}", o.name(), o.data_type(), n.data_type())),
        )
        .collect::<Vec<_>>()
        .join(", ")
}
